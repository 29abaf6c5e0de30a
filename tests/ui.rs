//! The fleet page (issue 19), with the real binary over the rollout fleet
//! of `tests/common/rollout.rs` (a bare remote, the local forge, a channel on
//! disk): what it prints is escaped (a pull request titled `<script>…`, a
//! base branch named with `"'&<`, an environment named like markup), every
//! answer carries a strict CSP, a UI token guards the pages, the status API
//! and the holds the page sets, `--no-ui` turns the pages off, and
//! `/api/v1/status` is `hydrant status --output json`.

mod common;

use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::daemon::{free_port, wait_for};
use common::git::git;
use common::rollout::{Fleet, waves};
use serde_json::Value;

const UI_TOKEN: &str = "fleet-page-token-1234";

/// An answer: status, head (lower-case header lines) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_string())
        })
    }
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Answer {
    request(port, "GET", path, headers, "")
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let headers: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let (status, head, body) =
        common::daemon::request(port, method, path, &headers, body).expect("an answer");
    Answer { status, head, body }
}

/// `hydrant status --serve` over the fleet, on a free port, until dropped.
struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(fleet: &Fleet, args: &[&str]) -> Served {
    let port = free_port();
    let dir = fleet.dirs.path();
    let child = common::hydrant()
        .args(["status", "--serve", &format!("127.0.0.1:{port}")])
        .args(["--repo", &fleet.remote.url(), "--work-dir"])
        .arg(dir.join("work-serve"))
        .arg("--state-dir")
        .arg(fleet.state())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap())
        .spawn()
        .unwrap();
    let served = Served { child, port };
    wait_for(Duration::from_secs(60), "status --serve to answer", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    served
}

fn token_file(fleet: &Fleet) -> String {
    let path = fleet.dirs.path().join("ui-token");
    std::fs::write(&path, UI_TOKEN).unwrap();
    path.to_str().unwrap().to_string()
}

/// Waits until the daemon's page has its first model.
fn ready(port: u16, headers: &[(&str, &str)]) -> Value {
    let mut last = None;
    wait_for(Duration::from_secs(60), "the first model", || {
        let a = get(port, "/api/v1/status", headers);
        let ok = a.status == 200;
        last = Some(a.body);
        ok
    });
    serde_json::from_str(&last.unwrap()).unwrap()
}

/// The titles of the local forge's pull requests can be anything: a person
/// may edit them. One becomes markup.
fn retitle(fleet: &Fleet, env: &str, title: &str) {
    let dir = fleet.state().join("pulls");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let mut pr: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if pr["head"] == format!("hydrant/{env}") && pr["state"] == "open" {
            pr["title"] = title.into();
            std::fs::write(&path, pr.to_string()).unwrap();
            return;
        }
    }
    panic!("no open pull request for {env}");
}

#[test]
fn markup_in_a_pull_request_title_a_branch_and_a_name_renders_as_text_under_a_strict_csp() {
    let mut tenants: Vec<String> = common::rollout::tenants();
    tenants.push("x-script-img".to_string());
    let fleet = Fleet::of(&tenants, &waves());
    fleet.publish("0.63.0");
    // A base branch whose name holds what markup needs; the canary's pull
    // requests target it.
    let base = "rel\"'&<i>x";
    git(&fleet.remote.bare(), &["branch", base, "main"]);
    fleet.run(&["reconcile", "--once", "--base", base]).ok();
    retitle(&fleet, "t01", "<script>alert(1)</script>");
    let served = serve(&fleet, &["--base", base]);
    let page = get(served.port, "/?q=&state=", &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("#1 &lt;script&gt;alert(1)&lt;/script&gt;")
            || page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(
        page.body.contains("rel&quot;&#39;&amp;&lt;i&gt;x"),
        "the base branch, escaped: {}",
        page.body
    );
    assert!(!page.body.contains("<i>x"), "{}", page.body);
    assert!(page.body.contains("href=\"/environments/x-script-img\""));
    // No inline script or style: the only script is the page's own file.
    assert_eq!(page.body.matches("<script").count(), 1, "{}", page.body);
    assert!(
        page.body
            .contains("<script src=\"/ui/app.js\" defer></script>")
    );
    assert!(!page.body.contains("style=\""), "{}", page.body);
    let csp = page.header("content-security-policy").expect("a CSP");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    // The environment page escapes the title too, and an unknown one is a 404 page.
    let env = get(served.port, "/environments/t01", &[]);
    assert_eq!(env.status, 200, "{}", env.body);
    assert!(
        env.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        env.body
    );
    assert!(!env.body.contains("<script>alert"));
    let missing = get(served.port, "/environments/%3Cb%3Enope", &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("&lt;b&gt;nope"), "{}", missing.body);
    assert!(missing.header("content-security-policy").is_some());
    for asset in ["/ui/app.js", "/ui/app.css"] {
        let a = get(served.port, asset, &[]);
        assert_eq!(a.status, 200, "{asset}");
        assert!(a.header("content-security-policy").is_some(), "{asset}");
    }
}

#[test]
fn a_ui_token_guards_the_pages_the_status_api_and_the_holds_the_page_sets() {
    let fleet = Fleet::new();
    let file = token_file(&fleet);
    let d = fleet.daemon_with("1h", &["--ui-token-file", &file], &[]);
    let bearer = format!("Bearer {UI_TOKEN}");
    ready(d.port, &[("Authorization", &bearer)]);
    for path in ["/", "/environments/t01", "/api/v1/status"] {
        let a = get(d.port, path, &[]);
        assert_eq!(a.status, 401, "{path}: {}", a.body);
        assert!(!a.body.contains(UI_TOKEN));
        let a = get(
            d.port,
            path,
            &[("Authorization", "Bearer wrong-token-000000")],
        );
        assert_eq!(a.status, 401, "{path}");
        let a = get(d.port, path, &[("Authorization", &bearer)]);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    // A wrong token at the login: refused, and never echoed.
    let wrong = get(d.port, "/login?token=nope-nope-nope", &[]);
    assert_eq!(wrong.status, 401);
    assert!(!wrong.body.contains("nope-nope-nope"));
    assert!(wrong.header("set-cookie").is_none());
    let login = get(d.port, &format!("/login?token={UI_TOKEN}"), &[]);
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location").as_deref(), Some("/"));
    let cookie = login.header("set-cookie").expect("a cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(
        !cookie.contains(UI_TOKEN),
        "the token itself is not the cookie"
    );
    assert!(!login.body.contains(UI_TOKEN));
    let session = cookie.split(';').next().unwrap().to_string();
    let page = get(d.port, "/", &[("Cookie", &session)]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-holds=\"on\""),
        "holds are offered with a token"
    );
    assert!(
        !page.body.contains(UI_TOKEN),
        "the page never shows the token"
    );
    // The holds API: the cookie alone (a form of another site could send
    // it) is refused; with the page's header it holds.
    let hold = r#"{"environment": "t03", "reason": "checking the page", "by": "the fleet page"}"#;
    let refused = request(
        d.port,
        "POST",
        "/api/v1/holds",
        &[("Cookie", &session)],
        hold,
    );
    assert_eq!(refused.status, 401, "{}", refused.body);
    let held = request(
        d.port,
        "POST",
        "/api/v1/holds",
        &[
            ("Cookie", &session),
            ("X-Hydrant-UI", "holds"),
            ("Content-Type", "application/json"),
        ],
        hold,
    );
    assert_eq!(held.status, 201, "{}", held.body);
    assert!(fleet.holds_on_main().contains("checking the page"));
    let released = request(
        d.port,
        "DELETE",
        "/api/v1/holds/environment/t03",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(released.status, 200, "{}", released.body);
    assert!(!fleet.holds_on_main().contains("checking the page"));
}

#[test]
fn without_a_token_the_page_offers_no_holds_and_no_ui_turns_the_pages_off() {
    let fleet = Fleet::new();
    let d = fleet.daemon_with("1h", &[], &[]);
    ready(d.port, &[]);
    let page = get(d.port, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-holds=\"off\""));
    assert!(
        !page.body.contains("hold-form"),
        "no hold forms without a token"
    );
    assert_eq!(get(d.port, "/login?token=x", &[]).status, 404);
    let holds = request(
        d.port,
        "POST",
        "/api/v1/holds",
        &[("X-Hydrant-UI", "holds")],
        "{}",
    );
    assert_eq!(holds.status, 403, "{}", holds.body);
    drop(d);

    let d = fleet.daemon_with("1h", &["--no-ui"], &[]);
    ready(d.port, &[]);
    for path in ["/", "/environments/t01", "/login?token=x", "/ui/app.js"] {
        assert_eq!(get(d.port, path, &[]).status, 404, "{path}");
    }
    assert_eq!(get(d.port, "/api/v1/status", &[]).status, 200);
    assert_eq!(get(d.port, "/healthz", &[]).status, 200);
}

/// The status with what changes between two observations of the same
/// state taken out: the daemon's cycle, and ages.
fn settled(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("cycle");
                map.remove("age_secs");
                map.remove("stale_secs");
                map.remove("soak_remaining_secs");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[test]
fn the_status_api_is_what_hydrant_status_prints_and_the_page_counts_agree() {
    let fleet = Fleet::new();
    fleet.publish("0.63.0");
    fleet.reconcile();
    let d = fleet.daemon_with("1h", &[], &[]);
    let served = ready(d.port, &[]);
    assert!(served["cycle"]["finished_at"].is_string(), "{served}");
    assert_eq!(served["cycle"]["outcome"], "ok", "{served}");
    // Its own work directory: the daemon holds the lock of its own.
    let dir = fleet.dirs.path();
    let printed = common::run_in(
        dir,
        &[
            "status",
            "--output",
            "json",
            "--repo",
            &fleet.remote.url(),
            "--work-dir",
            dir.join("work-status").to_str().unwrap(),
            "--state-dir",
            fleet.state().to_str().unwrap(),
        ],
    );
    let printed: Value =
        serde_json::from_str(&printed.stdout).unwrap_or_else(|e| panic!("{e}: {}", printed.stderr));
    assert_eq!(settled(served.clone()), settled(printed.clone()));
    assert_eq!(served["environments"].as_array().unwrap().len(), 12);
    assert_eq!(served["channels"][0]["name"], "stable");
    assert_eq!(served["channels"][0]["version"], "0.63.0");
    let canary = &served["waves"][0];
    assert_eq!(canary["wave"], "canary");
    assert_eq!(canary["progress"]["open"], 2, "{canary}");
    let early = &served["waves"][1];
    assert_eq!(early["progress"]["waiting"], 7, "{early}");
    // The page shows the same counts, and filters and pages on the server.
    let page = get(d.port, "/", &[]).body;
    assert!(
        page.contains("data-wave=\"canary\"") && page.contains("data-state=\"open\">open <b>2</b>"),
        "{page}"
    );
    let waiting = get(d.port, "/?q=&state=waiting", &[]).body;
    assert_eq!(waiting.matches("<tr data-env=").count(), 10, "{waiting}");
    let one = get(d.port, "/?q=t11&state=", &[]).body;
    assert_eq!(one.matches("<tr data-env=").count(), 1, "{one}");
    let paged: Value =
        serde_json::from_str(&get(d.port, "/api/v1/status?state=open&page=1", &[]).body).unwrap();
    assert_eq!(paged["matched"], 2, "{paged}");
    assert_eq!(paged["environments"].as_array().unwrap().len(), 2);
    // The environment page: its plan, its pull request and its provenance.
    let env = get(d.port, "/environments/t01", &[]).body;
    assert!(env.contains("id=\"plan\""), "{env}");
    assert!(env.contains("id=\"provenance\""), "{env}");
    assert!(env.contains("values.yaml"), "{env}");
}
