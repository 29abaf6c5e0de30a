//! The rules every request hydrant sends to a server follows, whichever client
//! sends it (the channel client, the forge API client, the GitHub App token
//! exchange):
//!
//! - credentials go only to the origin (scheme, host, port) they were
//!   configured for: a redirect or a pagination link to another origin is
//!   refused, never followed;
//! - every answer is read under one total deadline and a size cap, so a server
//!   that sends one byte a second cannot hold a cycle;
//! - text a server sends back (an error message) is cut short and cleared of
//!   anything that looks like a credential before it reaches an error or a log;
//! - a `Retry-After` header is read one way, in seconds or as an HTTP date.
//!
//! It does not send requests, retry or parse answers: the clients do.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;

/// The longest server text kept in an error, in characters.
pub(crate) const SERVER_TEXT_CHARS: usize = 200;

/// What replaces a credential in text shown to people.
const REDACTED: &str = "<redacted>";

/// `scheme://host:port` of a URL: where a credential may be sent.
pub(crate) fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Whether two URLs share scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A redirect to an origin other than the request's.
#[derive(Debug, thiserror::Error)]
#[error(
    "refused a redirect from `{from}` to another origin, `{to}`: credentials are sent only to the configured origin (hint: configure `{to}` directly if it is the right server)"
)]
pub(crate) struct CrossOrigin {
    pub(crate) from: String,
    pub(crate) to: String,
}

/// The redirect policy of every client: follow a few redirects within the
/// origin of the first request, refuse any to another origin.
pub(crate) fn redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        if !same_origin(first, attempt.url()) {
            let refused = CrossOrigin {
                from: origin(first),
                to: origin(attempt.url()),
            };
            return attempt.error(refused);
        }
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        attempt.follow()
    })
}

/// The origin a cross-origin redirect was refused for, if that is what `e` is.
pub(crate) fn refused_redirect(e: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(c) = s.downcast_ref::<CrossOrigin>() {
            return Some(c.to_string());
        }
        source = s.source();
    }
    None
}

/// Why an answer's body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("the answer took longer than {}s to arrive", .0.as_secs_f64())]
    Deadline(Duration),
    #[error("the answer is larger than the {0} bytes allowed")]
    TooLarge(u64),
    #[error("the answer was cut short: {0}")]
    Cut(std::io::Error),
}

/// Reads a body in chunks until its end, failing once `deadline` has passed
/// (each read is itself bounded by the client's timeout, so the total is too)
/// or once it holds more than `max` bytes.
pub(crate) fn read_body(
    body: &mut impl Read,
    started: Instant,
    total: Duration,
    max: u64,
) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if started.elapsed() > total {
            return Err(BodyError::Deadline(total));
        }
        let n = match body.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if started.elapsed() > total => {
                drop(e);
                return Err(BodyError::Deadline(total));
            }
            Err(e) => return Err(BodyError::Cut(e)),
        };
        if out.len() as u64 + n as u64 > max {
            return Err(BodyError::TooLarge(max));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Words after which a credential follows (`Bearer abc`, `token=abc`).
const INTRODUCERS: [&str; 8] = [
    "bearer",
    "token",
    "basic",
    "authorization",
    "private-token",
    "password",
    "secret",
    "license",
];

/// Prefixes of well-known token formats.
const TOKEN_PREFIXES: [&str; 7] = [
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "github_pat_",
    "glpat-",
    "eyJ",
];

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+' | '/' | '=' | '~')
}

/// Whether a word looks like a credential: a known token format, or a long
/// run of letters and digits mixed.
fn looks_like_token(word: &str) -> bool {
    let long = word.len() >= 20
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic());
    long || TOKEN_PREFIXES
        .iter()
        .any(|p| word.starts_with(p) && word.len() > p.len() + 3)
}

/// Whether the word after an introducer (`Bearer x`) is worth hiding: not a
/// short plain word such as `was` in "the token was rejected".
fn secret_after_introducer(word: &str) -> bool {
    word.len() >= 8 || !word.chars().all(|c| c.is_ascii_alphabetic())
}

/// Text a server sent, made fit for an error or a log line: the configured
/// `secrets` and anything that looks like a credential replaced, control
/// characters turned into spaces, and cut to [`SERVER_TEXT_CHARS`].
pub(crate) fn server_text(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret, REDACTED);
    }
    let mut out = String::new();
    let mut introduced = false;
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if out.len() > 8 * SERVER_TEXT_CHARS {
            break;
        }
        if !token_char(c) {
            chars.next();
            out.push(if c.is_control() { ' ' } else { c });
            // `Authorization: Bearer x` and `"token": "x"` keep the introducer alive.
            introduced &= matches!(c, ':' | ' ' | '"' | '\'' | '\t');
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek().filter(|c| token_char(**c)) {
            word.push(c);
            chars.next();
        }
        let is_introducer = |w: &str| INTRODUCERS.contains(&w.to_ascii_lowercase().as_str());
        match word.split_once('=') {
            // `token=abc`: the value is part of the same word.
            Some((key, value)) if !value.is_empty() && is_introducer(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ if looks_like_token(&word) || (introduced && secret_after_introducer(&word)) => {
                out.push_str(REDACTED)
            }
            _ => out.push_str(&word),
        }
        introduced = is_introducer(word.trim_end_matches('='));
    }
    let out = out.trim();
    match out.char_indices().nth(SERVER_TEXT_CHARS) {
        Some((at, _)) => format!("{}…", &out[..at]),
        None => out.to_string(),
    }
}

/// How long a `Retry-After` header value asks to wait, as of `now`: a number
/// of seconds, or an HTTP date (a date already past is no wait). `None` for a
/// value that is neither, which callers treat as if the header were absent.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_an_http_date_and_garbage_is_ignored() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        // Wed, 21 Oct 2015 07:28:00 GMT is `now`.
        let cases: &[(&str, Option<u64>)] = &[
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("Wed, 21 Oct 2015 07:28:30 GMT", Some(30)),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(0)),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
            ("", None),
            ("Wed, 32 Oct 2015 07:28:00 GMT", None),
            ("99999999999999999999999", None),
        ];
        for (value, secs) in cases {
            assert_eq!(
                retry_after(value, now),
                secs.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origins_differ_by_scheme_host_or_port() {
        let a = url("https://api.example.com/x");
        assert!(same_origin(
            &a,
            &url("https://API.example.com:443/y?page=2")
        ));
        assert!(!same_origin(&a, &url("http://api.example.com/x")));
        assert!(!same_origin(&a, &url("https://api.example.com:8443/x")));
        assert!(!same_origin(&a, &url("https://evil.example.com/x")));
        assert_eq!(origin(&a), "https://api.example.com:443");
    }

    #[test]
    fn server_text_never_carries_a_credential_and_stays_short() {
        let secret = "s3cr3t-value-of-the-operator";
        let echoed = format!(
            "Bad credentials: {secret}; Authorization: Bearer abcdef12; header token=xyz123 ghp_0123456789abcdefghij and glpat-abcdefgh\nsecond line"
        );
        let shown = server_text(&echoed, &[secret]);
        for leaked in [secret, "abcdef12", "xyz123", "ghp_0123", "glpat-abc"] {
            assert!(!shown.contains(leaked), "{leaked} in {shown}");
        }
        assert!(shown.starts_with("Bad credentials: <redacted>"), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
        let long = "word ".repeat(1000);
        assert!(server_text(&long, &[]).chars().count() <= SERVER_TEXT_CHARS + 1);
        assert_eq!(server_text("Not Found", &[]), "Not Found");
        assert_eq!(
            server_text("the token was rejected", &[]),
            "the token was rejected"
        );
    }

    #[test]
    fn a_body_read_stops_at_its_deadline_and_its_cap() {
        struct Drip;
        impl Read for Drip {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                buf[0] = b'x';
                Ok(1)
            }
        }
        let started = Instant::now();
        let read = read_body(&mut Drip, started, Duration::from_millis(200), 1 << 20);
        assert!(matches!(read, Err(BodyError::Deadline(_))), "{read:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let read = read_body(&mut Drip, Instant::now(), Duration::from_secs(10), 3);
        assert!(matches!(read, Err(BodyError::TooLarge(3))), "{read:?}");
        let read = read_body(
            &mut &b"hello"[..],
            Instant::now(),
            Duration::from_secs(1),
            5,
        );
        assert_eq!(read.unwrap(), b"hello");
    }
}
