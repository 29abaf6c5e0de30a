//! Talking to a running `hydrant run` on 127.0.0.1: a free port to give it, a
//! minimal HTTP/1.1 client for its endpoints, its metrics, and a bounded wait.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client: (status, body), or `None` when nothing answers.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Option<(u16, String)> {
    request(port, method, path, headers, body).map(|(status, _, body)| (status, body))
}

/// A minimal HTTP/1.1 client: (status, head, body), or `None` when nothing
/// answers.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Some((status, head.to_string(), body.to_string()))
}

/// A sample of the daemon's `/metrics` (0 when it is absent or nothing answers).
pub fn metric(port: u16, name: &str) -> f64 {
    http(port, "GET", "/metrics", &[], "").map_or(0.0, |(_, text)| sample(&text, name))
}

/// The value of the sample `name` (with its labels, as written) of the
/// Prometheus text, 0 when absent.
pub fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Cycles finished: (ok, failed).
pub fn cycles(port: u16) -> (f64, f64) {
    (
        metric(port, "hydrant_cycles_total{outcome=\"ok\"}"),
        metric(port, "hydrant_cycles_total{outcome=\"failed\"}"),
    )
}

/// Waits until `ok` holds, polling every 50 ms; panics after `limit`.
/// Returns how long it took.
pub fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ok() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Sends SIGTERM and waits: the exit code (-1 when a signal ended it).
pub fn stop(child: &mut Child) -> i32 {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap().code().unwrap_or(-1)
}
