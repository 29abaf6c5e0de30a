//! A deploy server on 127.0.0.1 for the tests: it serves channel specs at the
//! reference operator's endpoints with HTTP Basic auth (user `license`) and
//! ETags, and can be told to fail in the ways networks and servers do.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One thing to go wrong, used up by the next request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Status(u16),
    /// `429` (or any status) with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Accept, then say nothing for this long.
    Hang(Duration),
    /// Promise more bytes than are sent, then close.
    Truncated,
    InvalidJson,
    /// A body of this many bytes.
    Huge(usize),
}

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub if_none_match: Option<String>,
    pub authorized: bool,
    pub status: u16,
}

#[derive(Default)]
struct State {
    /// channel → latest spec JSON.
    latest: BTreeMap<String, String>,
    /// release id → spec JSON.
    releases: BTreeMap<String, String>,
    faults: VecDeque<Fault>,
    log: Vec<Request>,
    /// channel → signature sent in `X-Hydrant-Signature`.
    signatures: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct ChannelServer {
    pub port: u16,
    pub license: String,
    state: Arc<Mutex<State>>,
}

fn etag(body: &str) -> String {
    let mut h: u64 = 1469598103934665603;
    for b in body.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    format!("\"{h:x}\"")
}

impl ChannelServer {
    pub fn start(license: &str) -> ChannelServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = ChannelServer {
            port: listener.local_addr().unwrap().port(),
            license: license.to_string(),
            state: Arc::new(Mutex::new(State::default())),
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = s.serve(stream);
                });
            }
        });
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server asked for each channel by name (`?channel=`), which
    /// hydrant sends only when its channel source says so.
    pub fn channel_url(&self) -> String {
        format!("{}/api/v1/operator/channel?channel={{channel}}", self.url())
    }

    pub fn set_latest(&self, channel: &str, spec: &str) {
        self.state
            .lock()
            .unwrap()
            .latest
            .insert(channel.to_string(), spec.to_string());
    }

    pub fn set_release(&self, release: &str, spec: &str) {
        self.state
            .lock()
            .unwrap()
            .releases
            .insert(release.to_string(), spec.to_string());
    }

    pub fn set_signature(&self, channel: &str, signature: &str) {
        self.state
            .lock()
            .unwrap()
            .signatures
            .insert(channel.to_string(), signature.to_string());
    }

    pub fn fail(&self, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(faults.iter().cloned());
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    pub fn log(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut stream = stream;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut auth = None;
        let mut if_none_match = None;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "authorization" => auth = Some(v.trim().to_string()),
                    "if-none-match" => if_none_match = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let expected = format!(
            "Basic {}",
            super::git::b64(&format!("license:{}", self.license))
        );
        let authorized = auth.as_deref() == Some(expected.as_str());
        let fault = self.state.lock().unwrap().faults.pop_front();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let (body, signature) = {
            let st = self.state.lock().unwrap();
            if let Some(release) = path.strip_prefix("/api/v1/operator/channel/release/") {
                (st.releases.get(release).cloned(), None)
            } else if path == "/api/v1/operator/channel" {
                let channel = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("channel="))
                    .unwrap_or("stable");
                (
                    st.latest.get(channel).cloned(),
                    st.signatures.get(channel).cloned(),
                )
            } else {
                (None, None)
            }
        };
        let sig_header = signature
            .map(|s| format!("X-Hydrant-Signature: {s}\r\n"))
            .unwrap_or_default();
        let mut respond = |status: u16, headers: &str, body: &str| -> std::io::Result<()> {
            self.state.lock().unwrap().log.push(Request {
                path: target.clone(),
                if_none_match: if_none_match.clone(),
                authorized,
                status,
            });
            write!(
                stream,
                "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        };
        if !authorized {
            return respond(
                401,
                "WWW-Authenticate: Basic realm=\"deploy\"\r\n",
                "license required",
            );
        }
        match fault {
            Some(Fault::Status(code)) => return respond(code, "", "fault"),
            Some(Fault::RetryAfter(code, secs)) => {
                return respond(code, &format!("Retry-After: {secs}\r\n"), "slow down");
            }
            Some(Fault::Hang(d)) => {
                std::thread::sleep(d);
                return Ok(());
            }
            Some(Fault::Truncated) => {
                self.state.lock().unwrap().log.push(Request {
                    path: target.clone(),
                    if_none_match: if_none_match.clone(),
                    authorized,
                    status: 200,
                });
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n{{\"metadata\": {{"
                )?;
                return stream.flush();
            }
            Some(Fault::InvalidJson) => {
                return respond(200, "", "{\"metadata\": {\"version\": \"1\"}, \"values\": ");
            }
            Some(Fault::Huge(n)) => {
                let big = format!(
                    "{{\"metadata\": {{\"version\": \"9\"}}, \"values\": {{\"pad\": \"{}\"}}}}",
                    "x".repeat(n)
                );
                return respond(200, "", &big);
            }
            None => {}
        }
        match body {
            None => respond(404, "", "no such channel"),
            Some(body) => {
                let tag = etag(&body);
                if if_none_match.as_deref() == Some(tag.as_str()) {
                    return respond(304, &format!("ETag: {tag}\r\n"), "");
                }
                respond(
                    200,
                    &format!("ETag: {tag}\r\nContent-Type: application/json\r\n{sig_header}"),
                    &body,
                )
            }
        }
    }
}

/// A bundled channel spec (`channels/<…>.yaml`) as the JSON a deploy server
/// serves, optionally with another version.
pub fn bundled_spec(rel: &str, version: Option<&str>) -> String {
    let text = std::fs::read_to_string(super::project_root().join(rel)).unwrap();
    let node = hydrant::yaml::parse_single(&text).unwrap().unwrap();
    let mut v = hydrant::yaml::to_value(&node, &mut |_, _| {}).unwrap();
    if let Some(version) = version {
        v["metadata"]["version"] = serde_json::Value::String(version.into());
    }
    v.to_string()
}
