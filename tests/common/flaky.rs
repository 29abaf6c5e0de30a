//! A TCP proxy on 127.0.0.1 that fails at random, in front of any of the test
//! servers (the channel server, `git http-backend`, the fake forges): while
//! it is flaky, a share of the connections meets one of the faults of
//! [`Fault::ALL`]; the rest, and every connection once it is calm, reach the
//! server unchanged. Decisions come from a seeded generator, so a run can be
//! replayed with the same seed.
//!
//! Every server behind it answers one request per connection
//! (`Connection: close`), so a connection is a request.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// The connection is closed at once and the port stops listening for a
    /// moment: the connections meanwhile are refused.
    Refused,
    /// The request is read, then the connection is closed without an answer.
    Dropped,
    /// The request is read and never answered: the client must time out.
    Hang,
    /// `503 Service Unavailable` (or `502`, `500`), without reaching the server.
    ServerError,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    TooMany,
    /// The server's answer, cut short anywhere (headers included, or before
    /// its first byte: the server acted but its answer is lost).
    Truncated,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Refused,
        Fault::Dropped,
        Fault::Hang,
        Fault::ServerError,
        Fault::TooMany,
        Fault::Truncated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Refused => "refused",
            Fault::Dropped => "dropped",
            Fault::Hang => "hang",
            Fault::ServerError => "5xx",
            Fault::TooMany => "429",
            Fault::Truncated => "truncated",
        }
    }
}

/// One connection the proxy accepted.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// The request line (`GET /path HTTP/1.1`), when one arrived.
    pub request: String,
    /// The request's body when it came with a `Content-Length` of at most
    /// [`BODY_KEPT`] bytes (a forge call's JSON), else empty: two calls with
    /// the same line and body are the same call tried again.
    pub body: Vec<u8>,
    pub fault: Option<Fault>,
}

impl Seen {
    /// Whether `other` is this very request sent again (same line and body).
    pub fn same_call(&self, other: &Seen) -> bool {
        self.request == other.request && self.body == other.body
    }
}

/// The largest body the proxy reads whole before passing a request on.
const BODY_KEPT: usize = 1 << 20;

/// splitmix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Inner {
    backend: u16,
    /// Faulty connections per thousand; 0 is calm.
    per_mille: AtomicU32,
    rng: Mutex<Rng>,
    seen: Mutex<Vec<Seen>>,
    /// How long a hang lasts at most when the client never gives up.
    hang_cap: Duration,
}

#[derive(Clone)]
pub struct Flaky {
    pub port: u16,
    inner: Arc<Inner>,
}

impl Flaky {
    /// A proxy to `127.0.0.1:backend`, calm until [`Flaky::set_rate`].
    pub fn start(backend: u16, seed: u64) -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inner = Arc::new(Inner {
            backend,
            per_mille: AtomicU32::new(0),
            rng: Mutex::new(Rng(seed)),
            seen: Mutex::new(Vec::new()),
            hang_cap: Duration::from_secs(600),
        });
        let i = inner.clone();
        std::thread::spawn(move || accept(listener, port, i));
        Flaky { port, inner }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From now on, this share of connections (0.0–1.0) meets a fault.
    pub fn set_rate(&self, rate: f64) {
        let per_mille = (rate.clamp(0.0, 1.0) * 1000.0).round() as u32;
        self.inner.per_mille.store(per_mille, Ordering::SeqCst);
    }

    /// No more faults (a hang already going on goes on).
    pub fn calm(&self) {
        self.set_rate(0.0);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Faults injected so far, by kind.
    pub fn faults(&self) -> BTreeMap<Fault, usize> {
        let mut out = BTreeMap::new();
        for s in self.seen() {
            if let Some(f) = s.fault {
                *out.entry(f).or_default() += 1;
            }
        }
        out
    }

    /// The most connections accepted within any `window`.
    pub fn peak(&self, window: Duration) -> usize {
        let mut at: Vec<Instant> = self.seen().iter().map(|s| s.at).collect();
        at.sort();
        let mut peak = 0;
        let mut first = 0;
        for last in 0..at.len() {
            while at[last].duration_since(at[first]) >= window {
                first += 1;
            }
            peak = peak.max(last - first + 1);
        }
        peak
    }
}

impl Inner {
    fn roll(&self) -> Option<Fault> {
        let per_mille = self.per_mille.load(Ordering::SeqCst);
        let mut rng = self.rng.lock().unwrap();
        let hit = rng.below(1000) < u64::from(per_mille);
        hit.then(|| Fault::ALL[rng.below(Fault::ALL.len() as u64) as usize])
    }

    fn below(&self, n: u64) -> u64 {
        self.rng.lock().unwrap().below(n)
    }

    fn record(&self, at: Instant, request: String, body: Vec<u8>, fault: Option<Fault>) {
        self.seen.lock().unwrap().push(Seen {
            at,
            request,
            body,
            fault,
        });
    }
}

fn bind(port: u16) -> TcpListener {
    let start = Instant::now();
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => return l,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                panic!("cannot listen on 127.0.0.1:{port} again: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn accept(listener: TcpListener, port: u16, inner: Arc<Inner>) {
    let mut listener = listener;
    loop {
        let Ok((client, _)) = listener.accept() else {
            continue;
        };
        let at = Instant::now();
        let fault = inner.roll();
        if fault == Some(Fault::Refused) {
            inner.record(at, String::new(), Vec::new(), fault);
            drop(client);
            drop(listener);
            let outage = Duration::from_millis(200 + inner.below(800));
            std::thread::sleep(outage);
            listener = bind(port);
            continue;
        }
        let i = inner.clone();
        std::thread::spawn(move || {
            let _ = serve(&i, client, at, fault);
        });
    }
}

/// Reads the request's head and, when it gives a `Content-Length` of at most
/// [`BODY_KEPT`], its body; a longer or chunked body flows on afterwards.
/// Returns what was read and the body, if read whole.
fn request_head(client: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end_of_head = |buf: &[u8]| buf.windows(4).position(|w| w == b"\r\n\r\n");
    while end_of_head(&buf).is_none() && buf.len() < 64 * 1024 {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let Some(head_len) = end_of_head(&buf).map(|i| i + 4) else {
        return Ok((buf, Vec::new()));
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let header = |wanted: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.trim().to_string())
    };
    // A client waiting for `100 Continue` sends its body only once answered.
    if header("expect").is_some() {
        return Ok((buf, Vec::new()));
    }
    let length = header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n <= BODY_KEPT);
    let Some(length) = length else {
        return Ok((buf, Vec::new()));
    };
    while buf.len() < head_len + length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_len..buf.len().min(head_len + length)].to_vec();
    Ok((buf, body))
}

/// Reads and discards until the client closes (or `limit` passes), so that
/// closing afterwards does not reset an answer the client has yet to read.
fn drain(client: &mut TcpStream, limit: Duration) {
    let start = Instant::now();
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 8192];
    while start.elapsed() < limit {
        match client.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn canned(client: &mut TcpStream, status: &str, headers: &str) -> std::io::Result<()> {
    let body = "{\"message\": \"fault injected\"}";
    write!(
        client,
        "HTTP/1.1 {status}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.flush()?;
    client.shutdown(Shutdown::Write)?;
    drain(client, Duration::from_secs(5));
    Ok(())
}

fn serve(
    inner: &Inner,
    mut client: TcpStream,
    at: Instant,
    fault: Option<Fault>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body) = request_head(&mut client)?;
    let line = String::from_utf8_lossy(&head);
    let request = line.lines().next().unwrap_or("").to_string();
    inner.record(at, request, body, fault);
    match fault {
        Some(Fault::Refused) => unreachable!("handled when accepting"),
        Some(Fault::Dropped) => return Ok(()),
        Some(Fault::Hang) => {
            drain(&mut client, inner.hang_cap);
            return Ok(());
        }
        Some(Fault::ServerError) => {
            let status = [
                "503 Service Unavailable",
                "502 Bad Gateway",
                "500 Internal Server Error",
            ][inner.below(3) as usize];
            return canned(&mut client, status, "");
        }
        Some(Fault::TooMany) => {
            return canned(&mut client, "429 Too Many Requests", "Retry-After: 1\r\n");
        }
        Some(Fault::Truncated) | None => {}
    }
    let mut backend = TcpStream::connect(("127.0.0.1", inner.backend))?;
    backend.write_all(&head)?;
    // The rest of the request (its body) flows on while the answer comes back.
    let (mut from_client, mut to_backend) = (client.try_clone()?, backend.try_clone()?);
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_backend);
        let _ = to_backend.shutdown(Shutdown::Write);
    });
    if fault == Some(Fault::Truncated) {
        let mut answer = Vec::new();
        backend.read_to_end(&mut answer)?;
        let cut = inner.below(answer.len().max(1) as u64) as usize;
        client.write_all(&answer[..cut])?;
        client.flush()?;
        let _ = client.shutdown(Shutdown::Both);
    } else {
        std::io::copy(&mut backend, &mut client)?;
        client.flush()?;
        let _ = client.shutdown(Shutdown::Write);
    }
    let _ = upstream.join();
    Ok(())
}
