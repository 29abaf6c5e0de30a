//! Issue 13, the network parts: what a hostile server hydrant talks to (a
//! channel, a forge) or a client of the daemon can and cannot make it do. The
//! real binary, real git repositories, and servers on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::daemon::{free_port, http, metric, wait_for};
use common::git::Remote;
use hmac::{Hmac, Mac};

const TOKEN: &str = "glpat-secret-token-0123456789";
const LICENSE: &str = "license-0123456789-secret";
const WEBHOOK_SECRET: &str = "webhook-secret-xyz";

/// A server on 127.0.0.1 answering each request with what `answer` makes of
/// its head (request line and headers), and keeping every head it saw.
struct Scripted {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Scripted {
    fn start(answer: impl Fn(&str, &mut TcpStream) + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (log, answer) = (heads.clone(), Arc::new(answer));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, answer) = (log.clone(), answer.clone());
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let Some(head) = read_request(&mut stream) else {
                        return;
                    };
                    log.lock().unwrap().push(head.clone());
                    answer(&head, &mut stream);
                });
            }
        });
        Scripted { port, heads }
    }

    /// A server that answers everything `200 []` and records who called.
    fn thief() -> Scripted {
        Scripted::start(|_, s| respond(s, "200 OK", &[], "[]"))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// Reads a request's head and its body (by `Content-Length`); the head.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(head)
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let _ = stream.write_all(text.as_bytes());
}

/// The forges hydrant speaks to: name, token variable, URL flag.
const FORGES: [(&str, &str, &str); 3] = [
    ("github", "HYDRANT_GITHUB_TOKEN", "--github-api-url"),
    ("gitlab", "HYDRANT_GITLAB_TOKEN", "--gitlab-url"),
    ("gitea", "HYDRANT_GITEA_TOKEN", "--gitea-url"),
];

/// `hydrant reconcile --once` against a forge at `forge_url`, the git
/// remote on this machine; it must end within `limit`.
fn reconcile(
    remote: &Remote,
    forge: (&str, &str, &str),
    forge_url: &str,
    limit: Duration,
) -> (i32, String) {
    let dirs = tempfile::tempdir().unwrap();
    let (name, token_env, url_flag) = forge;
    let child = common::hydrant()
        .args([
            "reconcile",
            "--once",
            "--repo",
            &remote.url(),
            "--work-dir",
            dirs.path().join("work").to_str().unwrap(),
            "--forge",
            name,
            url_flag,
            forge_url,
            "--forge-repository",
            "acme/wandb-config",
            "--env",
            "staging",
        ])
        .env(token_env, TOKEN)
        .env("HYDRANT_FORGE_BACKOFF_MS", "20")
        .current_dir(dirs.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, limit)
}

/// Waits for a process at most `limit`: its exit code and everything it wrote.
fn finish(mut child: Child, limit: Duration) -> (i32, String) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn assert_never_saw_a_credential(thief: &Scripted, output: &str) {
    for head in thief.heads() {
        assert!(
            !head.contains(TOKEN) && !head.contains(LICENSE),
            "a credential reached another origin: {head}"
        );
    }
    assert!(
        thief.heads().is_empty(),
        "another origin was called: {:?}",
        thief.heads()
    );
    assert!(
        !output.contains(TOKEN),
        "the token is in the output: {output}"
    );
}

#[test]
fn forge_tokens_are_never_sent_to_a_next_link_of_another_origin() {
    let remote = Remote::new();
    for forge in FORGES {
        let thief = Scripted::thief();
        let next = format!("<{}/steal?page=2>; rel=\"next\"", thief.url());
        let api = Scripted::start(move |head, s| match head.starts_with("GET") {
            true => respond(s, "200 OK", &[("Link", next.clone())], "[]"),
            false => respond(s, "500 Internal Server Error", &[], "{}"),
        });
        let (code, output) = reconcile(&remote, forge, &api.url(), Duration::from_secs(60));
        assert_never_saw_a_credential(&thief, &output);
        assert_ne!(code, 0, "{}: {output}", forge.0);
        assert!(
            output.contains("another origin")
                && output.contains(&format!("127.0.0.1:{}", thief.port)),
            "{}: the error names the refused origin: {output}",
            forge.0
        );
    }
}

#[test]
fn forge_tokens_are_never_sent_along_a_redirect_to_another_origin() {
    let remote = Remote::new();
    for forge in FORGES {
        let thief = Scripted::thief();
        let to = thief.url();
        let api = Scripted::start(move |_, s| {
            respond(
                s,
                "307 Temporary Redirect",
                &[("Location", format!("{to}/moved"))],
                "",
            )
        });
        let (code, output) = reconcile(&remote, forge, &api.url(), Duration::from_secs(60));
        assert_never_saw_a_credential(&thief, &output);
        assert_ne!(code, 0, "{}: {output}", forge.0);
        assert!(
            output.contains("another origin")
                && output.contains(&format!("127.0.0.1:{}", thief.port)),
            "{}: {output}",
            forge.0
        );
    }
}

/// `hydrant render --env dev` with the channel at `url`, a license set.
fn render_from(url: &str, extra: &[&str], limit: Duration) -> (i32, String) {
    let example = common::Example::new();
    let child = common::hydrant()
        .args([
            "render",
            "--env",
            "dev",
            "--channel",
            url,
            "--channel-retries",
            "0",
        ])
        .arg("--channel-cache-dir")
        .arg(example.path().join(".cache"))
        .args(extra)
        .env("HYDRANT_LICENSE", LICENSE)
        .current_dir(example.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, limit)
}

#[test]
fn channel_credentials_are_never_sent_along_a_redirect_to_another_origin() {
    let thief = Scripted::thief();
    let to = thief.url();
    let channel = Scripted::start(move |_, s| {
        respond(
            s,
            "302 Found",
            &[("Location", format!("{to}/spec.json"))],
            "",
        )
    });
    let (code, output) = render_from(&channel.url(), &[], Duration::from_secs(60));
    assert_never_saw_a_credential(&thief, &output);
    assert!(!output.contains(LICENSE), "{output}");
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("another origin") && output.contains(&format!("127.0.0.1:{}", thief.port)),
        "{output}"
    );
}

/// A channel that sends its headers, then one byte every 200 ms.
fn dripping_channel() -> Scripted {
    Scripted::start(|_, s| {
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n";
        if s.write_all(head.as_bytes()).is_err() {
            return;
        }
        for _ in 0..1_000_000 {
            std::thread::sleep(Duration::from_millis(200));
            if s.write_all(b" ").and_then(|_| s.flush()).is_err() {
                return;
            }
        }
    })
}

#[test]
fn a_channel_that_drips_its_answer_is_cut_at_the_channel_timeout() {
    let channel = dripping_channel();
    let started = Instant::now();
    let (code, output) = render_from(
        &channel.url(),
        &["--channel-timeout", "2"],
        Duration::from_secs(30),
    );
    assert_ne!(code, 0, "{output}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the read was not bounded: {:?}",
        started.elapsed()
    );
    assert!(
        output.contains("longer than") || output.contains("timed out"),
        "{output}"
    );
}

#[test]
fn forge_error_bodies_are_cut_short_and_never_echo_a_token() {
    let remote = Remote::new();
    let echo = format!(
        "{{\"message\": \"Validation failed: token {TOKEN} (Authorization: Bearer {TOKEN}) {}\"}}",
        "padding ".repeat(2000)
    );
    for forge in FORGES {
        let echo = echo.clone();
        let api = Scripted::start(move |head, s| match head.starts_with("GET") {
            true => respond(s, "200 OK", &[], "[]"),
            false => respond(s, "400 Bad Request", &[], &echo),
        });
        let (code, output) = reconcile(&remote, forge, &api.url(), Duration::from_secs(60));
        assert_ne!(code, 0, "{}: {output}", forge.0);
        assert!(
            output.contains("Validation failed"),
            "{}: {output}",
            forge.0
        );
        assert!(
            !output.contains(TOKEN),
            "{}: the echoed token is shown: {output}",
            forge.0
        );
        assert!(
            !output.contains(&"padding ".repeat(100)),
            "{}: the error body is not cut short: {output}",
            forge.0
        );
    }
}

/// `hydrant run` on 127.0.0.1 against `remote`, logging to a file.
struct Daemon {
    child: Child,
    port: u16,
    dirs: tempfile::TempDir,
}

impl Daemon {
    fn start(remote: &Remote, extra: &[&str]) -> Daemon {
        let dirs = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = common::hydrant()
            .args([
                "run",
                "--repo",
                &remote.url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--work-dir",
                dirs.path().join("w").to_str().unwrap(),
                "--state-dir",
                dirs.path().join("s").to_str().unwrap(),
                "--channel-cache-dir",
                dirs.path().join("c").to_str().unwrap(),
                "--log-level",
                "info",
            ])
            .args(extra)
            .env("HYDRANT_LICENSE", LICENSE)
            .env("HYDRANT_GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .current_dir(dirs.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dirs.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, port, dirs };
        wait_for(Duration::from_secs(20), "the daemon to serve", || {
            http(d.port, "GET", "/healthz", &[], "").is_some_and(|(s, _)| s == 200)
        });
        d
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dirs.path().join("stderr.log")).unwrap_or_default()
    }

    fn cycles(&self) -> f64 {
        metric(self.port, "hydrant_cycles_total{outcome=\"ok\"}")
            + metric(self.port, "hydrant_cycles_total{outcome=\"failed\"}")
    }

    /// The environments with a pull request in the local forge.
    fn pulls(&self) -> String {
        std::fs::read_dir(self.dirs.path().join("s/pulls"))
            .map(|e| {
                e.flatten()
                    .filter_map(|f| std::fs::read_to_string(f.path()).ok())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    fn signal(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[test]
fn a_panic_while_rendering_fails_that_environment_only_and_never_wedges_later_cycles() {
    let remote = Remote::new();
    // A count past `isize::MAX` panics ("capacity overflow"); a smaller huge
    // one aborts the process on a failed allocation, which nothing can catch.
    remote.commit_to_main(
        "templates/boom.yaml.hbs",
        "{{#if (eq env.namespace \"wandb-dev\")}}{{indent 9999999999999999999 \"x\"}}{{/if}}\n",
        "a template that panics for dev only",
    );
    let d = Daemon::start(
        &remote,
        &["--interval", "1s", "--channel-poll-interval", "0"],
    );
    wait_for(Duration::from_secs(60), "three cycles", || {
        d.cycles() >= 3.0
    });
    let log = d.stderr();
    assert!(
        !log.contains("poisoned"),
        "a later cycle found the work directory wedged: {log}"
    );
    assert!(log.contains("rendering `dev` panicked"), "{log}");
    let pulls = d.pulls();
    assert!(
        pulls.contains("hydrant/staging") && pulls.contains("hydrant/prod"),
        "the other environments were delivered: {pulls}\n{log}"
    );
    assert!(!pulls.contains("hydrant/dev"), "{pulls}");
    assert_eq!(http(d.port, "GET", "/healthz", &[], "").unwrap().0, 200);
}

#[test]
fn shutdown_exits_when_its_timeout_passes_even_with_a_cycle_stuck_in_a_read() {
    let remote = Remote::new();
    let channel = dripping_channel();
    let mut d = Daemon::start(
        &remote,
        &[
            "--interval",
            "1h",
            "--channel",
            &channel.url(),
            "--channel-timeout",
            "600",
            "--shutdown-timeout",
            "1s",
        ],
    );
    wait_for(
        Duration::from_secs(20),
        "the cycle to reach the channel",
        || !channel.heads().is_empty(),
    );
    d.signal();
    let started = Instant::now();
    while d.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still alive {:?} after SIGTERM with a 1s shutdown timeout: {}",
            started.elapsed(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = d.child.wait().unwrap().code();
    assert_eq!(
        code,
        Some(1),
        "a cut cycle is not a clean stop: {}",
        d.stderr()
    );
    assert!(d.stderr().contains("exiting"), "{}", d.stderr());
}

#[test]
fn a_connection_that_never_finishes_its_request_headers_is_closed() {
    let remote = Remote::new();
    let d = Daemon::start(&remote, &["--interval", "1h"]);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let read = s.read(&mut buf);
    assert!(
        read.is_ok(),
        "the half-sent request was still open after 20 s: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        http(d.port, "GET", "/healthz", &[], "").unwrap().0,
        200,
        "other clients are served meanwhile"
    );
}

#[test]
fn a_request_whose_body_never_arrives_is_answered_and_closed() {
    let remote = Remote::new();
    let d = Daemon::start(&remote, &["--interval", "1h"]);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(b"POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    let read = s.read_to_string(&mut answer);
    assert!(
        read.is_ok(),
        "the dripping request was still open after 30 s: {read:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

fn signed(body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn push(d: &Daemon, body: &str, delivery: &str, form: bool) -> u16 {
    let mut headers = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("X-GitHub-Delivery", delivery.to_string()),
        ("X-Hub-Signature-256", signed(body)),
    ];
    if form {
        headers.push((
            "Content-Type",
            "application/x-www-form-urlencoded".to_string(),
        ));
    }
    http(d.port, "POST", "/hooks/github", &headers, body)
        .unwrap()
        .0
}

#[test]
fn a_form_encoded_github_push_triggers_a_cycle() {
    let remote = Remote::new();
    let d = Daemon::start(
        &remote,
        &["--interval", "1h", "--channel-poll-interval", "0"],
    );
    wait_for(Duration::from_secs(30), "the first cycle", || {
        d.cycles() >= 1.0
    });
    // GitHub's default content type: the JSON in a form's `payload` field.
    let form = "payload=%7B%22ref%22%3A+%22refs%2Fheads%2Fmain%22%2C+%22after%22%3A+%22a1%22%7D";
    assert_eq!(push(&d, form, "delivery-1", true), 202);
    wait_for(Duration::from_secs(20), "the pushed cycle", || {
        d.cycles() >= 2.0
    });
}

#[test]
fn a_replayed_webhook_delivery_triggers_no_cycle() {
    let remote = Remote::new();
    let d = Daemon::start(
        &remote,
        &["--interval", "1h", "--channel-poll-interval", "0"],
    );
    wait_for(Duration::from_secs(30), "the first cycle", || {
        d.cycles() >= 1.0
    });
    let first = r#"{"ref": "refs/heads/main", "after": "a1"}"#;
    assert_eq!(push(&d, first, "delivery-1", false), 202);
    wait_for(Duration::from_secs(20), "the pushed cycle", || {
        d.cycles() >= 2.0
    });
    // The same delivery again, and the same signed body under a new id (the
    // id is outside the signature).
    assert_eq!(push(&d, first, "delivery-1", false), 200);
    assert_eq!(push(&d, first, "delivery-2", false), 200);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.cycles(),
        2.0,
        "a replay triggered a cycle: {}",
        d.stderr()
    );
    // A new push is still heard.
    let next = r#"{"ref": "refs/heads/main", "after": "b2"}"#;
    assert_eq!(push(&d, next, "delivery-3", false), 202);
    wait_for(Duration::from_secs(20), "the next pushed cycle", || {
        d.cycles() >= 3.0
    });
}
