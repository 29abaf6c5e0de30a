//! The fleet page in a real browser (issue 19): Debian's headless Chromium,
//! driven over the DevTools protocol (a small WebSocket client below),
//! against `hydrant run` over a fleet of 200 environments in three waves.
//! It checks the header, the waves' progress against `/api/v1/status`,
//! filters the table, opens an environment's page, sets and releases a hold
//! with the UI token, and keeps screenshots under `target/ui-screenshots/`
//! (one also taken with Chromium's own `--screenshot`).
//!
//! Without Chromium the test is skipped, unless `HYDRANT_TEST_REQUIRE_TOOLS`
//! is set (as in CI), where it fails.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{free_port, http, wait_for};
use common::rollout::Fleet;
use serde_json::{Value, json};

const UI_TOKEN: &str = "browser-ui-token-5678";

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(PathBuf::from)
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A WebSocket client, just enough for the DevTools protocol: text frames
/// out (masked), text frames in (unmasked, maybe fragmented).
struct Socket {
    stream: TcpStream,
}

impl Socket {
    fn connect(url: &str) -> Socket {
        let rest = url.strip_prefix("ws://").expect("a ws:// address");
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = TcpStream::connect(host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Socket { stream }
    }

    fn send(&mut self, text: &str) {
        let payload = text.as_bytes();
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).unwrap();
    }

    fn receive(&mut self) -> String {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.stream.read_exact(&mut head).unwrap();
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.stream.read_exact(&mut b).unwrap();
                    u64::from(u16::from_be_bytes(b))
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.stream.read_exact(&mut b).unwrap();
                    u64::from_be_bytes(b)
                }
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).unwrap();
            match opcode {
                0x8 => panic!("the browser closed the connection"),
                0x9 | 0xA => continue,
                _ => message.extend(payload),
            }
            if fin {
                return String::from_utf8(message).unwrap();
            }
        }
    }
}

/// A page of the browser, over the DevTools protocol.
struct Tab {
    socket: Socket,
    next: u64,
    /// What the page logged: exceptions, console lines, CSP reports.
    events: Vec<String>,
}

impl Tab {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        self.socket
            .send(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let message: Value = serde_json::from_str(&self.socket.receive()).unwrap();
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
            let logged = [
                "Runtime.exceptionThrown",
                "Runtime.consoleAPICalled",
                "Log.entryAdded",
            ];
            if logged.iter().any(|m| message["method"] == *m) {
                self.events.push(message["params"].to_string());
            }
        }
    }

    /// The value of a JavaScript expression (promises awaited).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    fn wait(&mut self, what: &str, expression: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.eval(expression);
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}: `{expression}`; the page logged: {:#?}",
                self.events
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens `url` and waits for the page it leads to (after redirects).
    fn open(&mut self, url: &str) {
        self.eval("window.leaving = true");
        self.call("Page.navigate", json!({"url": url}));
        self.wait(
            &format!("{url} to load"),
            "window.leaving === undefined && document.readyState === 'complete'",
        );
    }

    fn screenshot(&mut self, name: &str) {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": false}),
        );
        let png = decode64(shot["data"].as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(screenshots().join(name), png).unwrap();
    }
}

fn decode64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|c| u32::from(value(*c))).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, x)| n | (x << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// A headless Chromium with its DevTools port, killed when dropped.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn flags(profile: &Path) -> Vec<String> {
    vec![
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--no-first-run".into(),
        "--hide-scrollbars".into(),
        "--window-size=1400,1000".into(),
        format!("--user-data-dir={}", profile.display()),
    ]
}

fn launch(binary: &Path) -> Browser {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary)
        .args(flags(profile.path()))
        .arg("--remote-debugging-port=0")
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.split("DevTools listening on ").nth(1) {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Chromium to listen for DevTools");
    let port = url
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Browser {
        child,
        port,
        _profile: profile,
    }
}

impl Browser {
    /// `/json/list` of the DevTools server, which keeps connections open:
    /// read by its length.
    fn targets(&self) -> Option<Value> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let request = format!(
            "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        s.write_all(request.as_bytes()).ok()?;
        let mut reader = BufReader::new(s);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().ok()?;
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }

    fn tab(&self) -> Tab {
        let mut targets = Value::Null;
        wait_for(Duration::from_secs(30), "a page target", || {
            targets = self.targets().unwrap_or(Value::Null);
            targets
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["type"] == "page"))
        });
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap();
        let socket = Socket::connect(page["webSocketDebuggerUrl"].as_str().unwrap());
        let mut tab = Tab {
            socket,
            next: 0,
            events: Vec::new(),
        };
        tab.call("Page.enable", json!({}));
        tab.call("Runtime.enable", json!({}));
        tab.call("Log.enable", json!({}));
        tab
    }
}

fn three_waves() -> String {
    "rollout:\n  waves:\n    - name: canary\n      environments: [t001, t002, t003, t004, t005]\n      soak: 1h\n    - name: early\n      environments: [\"t0*\"]\n      soak: 1h\n    - name: everyone\n      environments: [\"*\"]\n".to_string()
}

#[test]
fn a_browser_sees_the_fleet_filters_it_opens_an_environment_and_holds_it() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var_os("HYDRANT_TEST_REQUIRE_TOOLS").is_none(),
            "chromium is required (HYDRANT_TEST_REQUIRE_TOOLS is set) but not installed"
        );
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let tenants: Vec<String> = (1..=200).map(|i| format!("t{i:03}")).collect();
    let fleet = Fleet::of(&tenants, &three_waves());
    fleet.publish("0.63.0");
    fleet.reconcile_unpaced();
    let token = fleet.dirs.path().join("ui-token");
    std::fs::write(&token, UI_TOKEN).unwrap();
    let d = fleet.daemon_with(
        "1h",
        &[
            "--ui-token-file",
            token.to_str().unwrap(),
            "--max-new-pull-requests-per-hour",
            "1000000",
        ],
        &[],
    );
    let bearer = format!("Bearer {UI_TOKEN}");
    let mut api = Value::Null;
    wait_for(Duration::from_secs(120), "the first model", || {
        match http(
            d.port,
            "GET",
            "/api/v1/status",
            &[("Authorization", bearer.clone())],
            "",
        ) {
            Some((200, body)) => {
                api = serde_json::from_str(&body).unwrap();
                true
            }
            _ => false,
        }
    });
    assert_eq!(api["environments"].as_array().unwrap().len(), 200);
    let base = format!("http://127.0.0.1:{}", d.port);

    let browser = launch(&binary);
    let mut tab = browser.tab();
    // Without the token: the login page.
    tab.open(&format!("{base}/"));
    assert_eq!(tab.eval("!!document.getElementById('login')"), json!(true));
    tab.open(&format!("{base}/login?token={UI_TOKEN}"));
    tab.wait(
        "the fleet page after login",
        "!!document.getElementById('rollout')",
    );
    assert_eq!(tab.eval("location.pathname"), json!("/"));
    assert_eq!(
        tab.eval("document.cookie"),
        json!(""),
        "the cookie is HttpOnly"
    );

    // The header.
    let repository = tab.eval("document.getElementById('repository').textContent");
    assert!(
        repository.as_str().unwrap().ends_with("remote.git"),
        "{repository}"
    );
    assert_eq!(
        tab.eval("document.getElementById('base').textContent.split(' @ ')[0]"),
        json!("main")
    );
    assert_eq!(
        tab.eval(
            "document.querySelector('.channel[data-channel=\"stable\"] .version').textContent"
        ),
        json!("0.63.0")
    );
    assert_eq!(
        tab.eval("document.getElementById('cycle').className"),
        json!("cycle-ok")
    );

    // Each wave's progress, as the API counts it.
    let waves = api["waves"].as_array().unwrap();
    assert_eq!(waves.len(), 3);
    for w in waves {
        for (state, n) in w["progress"].as_object().unwrap() {
            let shown = tab.eval(&format!(
                "document.querySelector('.wave[data-wave=\"{}\"] .count[data-state=\"{state}\"] b').textContent",
                w["wave"].as_str().unwrap()
            ));
            assert_eq!(shown, json!(n.to_string()), "wave {} {state}", w["wave"]);
        }
    }
    assert_eq!(waves[0]["progress"]["open"], 5, "{}", waves[0]);
    assert_eq!(waves[1]["progress"]["waiting"], 94, "{}", waves[1]);
    assert_eq!(waves[2]["progress"]["waiting"], 101, "{}", waves[2]);
    assert_eq!(
        tab.eval("document.querySelectorAll('#environments tbody tr').length"),
        json!(100)
    );
    assert_eq!(
        tab.eval("document.getElementById('page').textContent"),
        json!("page 1 of 2")
    );
    tab.screenshot("fleet.png");

    // Filtering, live: no reload, the address follows.
    tab.eval("window.notReloaded = true");
    tab.eval(
        "(() => { const q = document.getElementById('q'); q.value = 't15'; \
         q.dispatchEvent(new Event('input', {bubbles: true})); return true })()",
    );
    tab.wait(
        "the table to show the 10 matches",
        "document.querySelectorAll('#environments tbody tr').length === 10",
    );
    assert_eq!(tab.eval("window.notReloaded === true"), json!(true));
    assert_eq!(tab.eval("location.search"), json!("?q=t15&state="));
    tab.eval(
        "(() => { const s = document.getElementById('state'); s.value = 'waiting'; \
         s.dispatchEvent(new Event('change', {bubbles: true})); return true })()",
    );
    tab.wait(
        "the waiting ones",
        "document.querySelectorAll('#environments tbody tr[data-state=\"waiting\"]').length === 10",
    );
    tab.screenshot("fleet-filtered.png");

    // An environment's page.
    tab.eval("document.querySelector('#environments tbody tr[data-env=\"t150\"] a').click(), true");
    tab.wait(
        "t150's page",
        "document.getElementById('env-name')?.textContent === 't150'",
    );
    assert_eq!(
        tab.eval("document.querySelector('#state .state').textContent"),
        json!("waiting")
    );
    assert!(
        tab.eval("document.getElementById('plan').textContent")
            .as_str()
            .unwrap()
            .contains("Plan")
    );
    tab.wait(
        "its provenance",
        "document.querySelectorAll('#provenance tbody tr').length > 0",
    );

    // A hold, with the token, then its release.
    tab.eval(
        "(() => { const f = document.querySelector('.hold-form[data-method=\"POST\"]'); \
         f.elements.reason.value = 'browser check'; f.requestSubmit(); return true })()",
    );
    tab.wait(
        "the hold to be committed",
        "document.querySelector('.hold-form output')?.textContent.startsWith('done') || \
         document.querySelector('.hold-form[data-method=\"DELETE\"]') !== null",
    );
    assert!(fleet.holds_on_main().contains("browser check"));
    tab.wait(
        "the page to show the hold",
        "document.querySelector('.hold-form[data-method=\"DELETE\"]') !== null",
    );
    assert_eq!(
        tab.eval("document.querySelector('#state .state').textContent"),
        json!("held")
    );
    tab.screenshot("environment-held.png");
    tab.eval("document.querySelector('.hold-form[data-method=\"DELETE\"]').requestSubmit(), true");
    tab.wait(
        "the page to show the release",
        "document.querySelector('.hold-form[data-method=\"POST\"]') !== null",
    );
    assert!(!fleet.holds_on_main().contains("browser check"));
    drop(tab);
    drop(browser);

    // Chromium's own screenshot of the page, served without a token by
    // `status --serve` over the same fleet.
    let port = free_port();
    let mut serve = common::hydrant()
        .args(["status", "--serve", &format!("127.0.0.1:{port}")])
        .args(["--repo", &fleet.remote.url(), "--work-dir"])
        .arg(fleet.dirs.path().join("work-serve"))
        .arg("--state-dir")
        .arg(fleet.state())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(120), "status --serve", || {
        http(port, "GET", "/", &[], "").is_some_and(|(s, _)| s == 200)
    });
    let profile = tempfile::tempdir().unwrap();
    let shot = screenshots().join("fleet-screenshot-flag.png");
    let _ = std::fs::remove_file(&shot);
    let status = Command::new(&binary)
        .args(flags(profile.path()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(status.success());
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
