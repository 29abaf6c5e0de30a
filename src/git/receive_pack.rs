//! A push over git's smart HTTP protocol, spoken by hydrant itself: the
//! remote's refs listed (`GET …/info/refs?service=git-receive-pack`), then
//! one `POST …/git-receive-pack` of every branch's command and the cycle's
//! own pack, streamed from disk, and the remote's report read back (`unpack
//! ok`, then `ok <ref>` or `ng <ref> <reason>` per branch).
//!
//! libgit2 would build a pack of its own for the same push, walking every
//! pushed commit's trees; the cycle's pack already holds exactly the new
//! objects, whole or as deltas against objects of the same pack.
//!
//! The pkt-line framing, the advertisement, the request's head and the report
//! are pure functions of bytes ([`advertisement`], [`request`], [`report`]);
//! [`Receiver`] sends them. It sends the token as HTTP Basic to the
//! configured URL only, follows no redirect, and reads every answer under a
//! total deadline and a size cap. It does not speak SSH (libgit2 does), ask
//! for side-band, or speak protocol v2 (receive-pack has none).

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use git2::Oid;
use reqwest::StatusCode;
use reqwest::blocking::{Body, Client, Response};
use sha1::{Digest, Sha1};

use super::GitError;
use crate::outbound;

const ADVERTISEMENT: &str = "application/x-git-receive-pack-advertisement";
const REQUEST: &str = "application/x-git-receive-pack-request";
const RESULT: &str = "application/x-git-receive-pack-result";

/// The largest ref listing read (about 60 bytes a branch).
const MAX_ADVERTISEMENT: u64 = 64 << 20;
/// The largest report read (a line a branch).
const MAX_REPORT: u64 = 16 << 20;

/// Bytes that break the protocol, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(String);

fn malformed(what: impl Into<String>) -> Malformed {
    Malformed(what.into())
}

/// Appends `data` as one pkt-line (its length in 4 hex digits, then it).
pub(crate) fn pkt_line(data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{:04x}", data.len() + 4).as_bytes());
    out.extend_from_slice(data);
}

/// The pkt-lines of `bytes`, `None` for a flush (`0000`); every byte must
/// belong to a line.
pub(crate) fn pkt_lines(bytes: &[u8]) -> Result<Vec<Option<&[u8]>>, Malformed> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 4)
            .ok_or_else(|| malformed(format!("a pkt-line cut short at byte {at}")))?;
        let len = std::str::from_utf8(head)
            .ok()
            .and_then(|h| usize::from_str_radix(h, 16).ok())
            .ok_or_else(|| {
                malformed(format!(
                    "`{}` at byte {at} is not a pkt-line length",
                    String::from_utf8_lossy(head).escape_debug()
                ))
            })?;
        match len {
            0 => {
                out.push(None);
                at += 4;
            }
            1..=3 => return Err(malformed(format!("pkt-line length {len} at byte {at}"))),
            _ => {
                let line = bytes
                    .get(at + 4..at + len)
                    .ok_or_else(|| malformed(format!("a pkt-line cut short at byte {at}")))?;
                out.push(Some(line));
                at += len;
            }
        }
    }
    Ok(out)
}

fn text(line: &[u8]) -> Result<&str, Malformed> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    std::str::from_utf8(line).map_err(|_| malformed("a line that is not UTF-8"))
}

fn oid(hex: &str) -> Result<Oid, Malformed> {
    match hex.len() {
        40 => Oid::from_str(hex).map_err(|_| malformed(format!("`{hex}` is not an object id"))),
        _ => Err(malformed(format!("`{hex}` is not a SHA-1 object id"))),
    }
}

/// What a remote's receive-pack advertised: its refs and capabilities.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Advertisement {
    pub refs: HashMap<String, Oid>,
    pub capabilities: Vec<String>,
}

/// Reads the answer to `GET …/info/refs?service=git-receive-pack`. An
/// empty repository advertises no ref, only its capabilities.
pub(crate) fn advertisement(body: &[u8]) -> Result<Advertisement, Malformed> {
    let lines = pkt_lines(body)?;
    let mut lines = lines.into_iter().peekable();
    if let Some(Some(first)) = lines.peek()
        && first.starts_with(b"# service=")
    {
        if text(first)? != "# service=git-receive-pack" {
            return Err(malformed(format!("the service is `{}`", text(first)?)));
        }
        lines.next();
        if lines.next() != Some(None) {
            return Err(malformed("no flush after the service line"));
        }
    }
    let mut out = Advertisement::default();
    let mut first = true;
    for line in lines {
        let Some(line) = line else {
            return Ok(out);
        };
        let (line, caps) = match line.iter().position(|b| *b == 0) {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        let line = text(line)?;
        if first && line == "version 1" {
            continue;
        }
        if let Some(caps) = caps {
            out.capabilities = text(caps)?.split(' ').map(String::from).collect();
        }
        first = false;
        let (id, name) = line
            .split_once(' ')
            .ok_or_else(|| malformed(format!("`{}` is not `<id> <ref>`", line.escape_debug())))?;
        let id = oid(id)?;
        if name == "capabilities^{}" || name == ".have" {
            continue;
        }
        out.refs.insert(name.to_string(), id);
    }
    Err(malformed("the ref listing has no final flush"))
}

/// One ref to move: from `old` (none: it must not exist) to `new` (none:
/// delete it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub name: String,
    pub old: Option<Oid>,
    pub new: Option<Oid>,
}

/// The head of a push request: a pkt-line per command (the first asking
/// for `report-status`), then a flush. The pack follows it, unless every
/// command is a deletion.
pub(crate) fn request(commands: &[Command]) -> Vec<u8> {
    let zero = Oid::ZERO_SHA1;
    let mut out = Vec::with_capacity(commands.len() * 100 + 40);
    for (i, c) in commands.iter().enumerate() {
        let mut line = format!(
            "{} {} {}",
            c.old.unwrap_or(zero),
            c.new.unwrap_or(zero),
            c.name
        );
        if i == 0 {
            line.push_str("\0report-status");
            if commands.iter().any(|c| c.new.is_none()) {
                line.push_str(" delete-refs");
            }
        }
        line.push('\n');
        pkt_line(line.as_bytes(), &mut out);
    }
    out.extend_from_slice(b"0000");
    out
}

/// Whether a request of `commands` carries a pack (one command at least
/// is not a deletion).
pub(crate) fn needs_pack(commands: &[Command]) -> bool {
    commands.iter().any(|c| c.new.is_some())
}

/// A pack of no object: what a push that moves refs to objects the remote
/// already holds sends.
pub(crate) fn empty_pack() -> Vec<u8> {
    let mut out = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
    let sum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&sum);
    out
}

/// What the remote made of a push.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Report {
    /// `Err` with the remote's words when it could not take the pack.
    pub unpack: Result<(), String>,
    /// Per ref: `None` when it moved, else why not.
    pub refs: HashMap<String, Option<String>>,
}

/// Reads a `report-status` answer.
pub(crate) fn report(body: &[u8]) -> Result<Report, Malformed> {
    let mut lines = pkt_lines(body)?.into_iter();
    let unpack = match lines.next().flatten().map(text).transpose()? {
        Some("unpack ok") => Ok(()),
        Some(l) if l.starts_with("unpack ") => Err(l["unpack ".len()..].to_string()),
        Some(l) => {
            return Err(malformed(format!(
                "`{}` is not `unpack …`",
                l.escape_debug()
            )));
        }
        None => return Err(malformed("the report is empty")),
    };
    let mut refs = HashMap::new();
    for line in lines {
        let Some(line) = line else {
            return Ok(Report { unpack, refs });
        };
        let line = text(line)?;
        if let Some(name) = line.strip_prefix("ok ") {
            refs.insert(name.to_string(), None);
        } else if let Some(rest) = line.strip_prefix("ng ") {
            let (name, why) = rest.split_once(' ').unwrap_or((rest, "refused"));
            refs.insert(name.to_string(), Some(why.to_string()));
        } else {
            return Err(malformed(format!(
                "`{}` is not `ok <ref>` or `ng <ref> <reason>`",
                line.escape_debug()
            )));
        }
    }
    Err(malformed("the report has no final flush"))
}

/// A remote reached over smart HTTP, with its credentials.
pub(crate) struct Receiver<'a> {
    /// The remote's URL, as configured (never with a credential in it).
    pub url: &'a str,
    pub username: &'a str,
    pub token: Option<&'a crate::auth::Token>,
    /// How long the remote may take to answer a listing; a push gets more
    /// by what it carries.
    pub timeout: Duration,
}

impl Receiver<'_> {
    fn client(&self) -> Result<Client, GitError> {
        Client::builder()
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            // The request carries a credential: never followed anywhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hydrant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| self.unreachable(format!("cannot build an HTTP client: {e}")))
    }

    fn unreachable(&self, message: String) -> GitError {
        GitError::Unreachable {
            url: self.url.to_string(),
            message,
            source: None,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.url.trim_end_matches('/'))
    }

    /// Sends the request `build` makes, with the token as HTTP Basic, once
    /// more with a renewed token when the remote refuses a renewable one.
    fn send(
        &self,
        what: &str,
        build: impl Fn(&Client) -> Result<reqwest::blocking::RequestBuilder, GitError>,
    ) -> Result<Response, GitError> {
        let client = self.client()?;
        let renewable = self.token.is_some_and(|t| t.renewable());
        let mut tries = 1 + u32::from(renewable);
        loop {
            tries -= 1;
            let mut request = build(&client)?;
            let mut secret = None;
            if let Some(token) = self.token {
                let t = token.token().map_err(|e| GitError::Auth {
                    url: self.url.to_string(),
                    message: e,
                    source: None,
                })?;
                request = request.basic_auth(self.username, Some(&t));
                secret = Some(t);
            }
            let secrets: Vec<&str> = secret.iter().map(String::as_str).collect();
            let response = request.send().map_err(|e| {
                let why = match e.is_timeout() {
                    true => format!("{what}: the remote did not answer in time"),
                    false => outbound::server_text(&format!("{what}: {e}"), &secrets),
                };
                self.unreachable(why)
            })?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                if tries > 0
                    && let Some(t) = self.token
                {
                    t.refused();
                    continue;
                }
                return Err(GitError::Auth {
                    url: self.url.to_string(),
                    message: match self.token {
                        Some(_) => format!("{what}: the remote refused the credentials ({status})"),
                        None => format!(
                            "{what}: the remote asks for credentials ({status}): set `HYDRANT_GIT_TOKEN` or pass `--git-token-file`"
                        ),
                    },
                    source: None,
                });
            }
            if !status.is_success() {
                let started = Instant::now();
                let mut response = response;
                let body = outbound::read_body(&mut response, started, self.timeout, 4096)
                    .unwrap_or_default();
                let text = outbound::server_text(&String::from_utf8_lossy(&body), &secrets);
                return Err(
                    self.unreachable(format!("{what}: the remote answered {status} {text}"))
                );
            }
            return Ok(response);
        }
    }

    /// Reads the answer's body, after checking it is `content_type`.
    fn body(
        &self,
        what: &str,
        mut response: Response,
        content_type: &str,
        deadline: Duration,
        max: u64,
    ) -> Result<Vec<u8>, GitError> {
        let found = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if found.split(';').next().map(str::trim) != Some(content_type) {
            return Err(self.unreachable(format!(
                "{what}: the answer is `{}`, not `{content_type}`: not a git smart HTTP server (hint: check the URL)",
                outbound::server_text(&found, &[])
            )));
        }
        outbound::read_body(&mut response, Instant::now(), deadline, max)
            .map_err(|e| self.unreachable(format!("{what}: {e}")))
    }

    /// The remote's refs and capabilities.
    pub(crate) fn list(&self) -> Result<Advertisement, GitError> {
        let what = "listing the refs";
        let url = self.endpoint("info/refs?service=git-receive-pack");
        let response = self.send(what, |c| Ok(c.get(&url)))?;
        let body = self.body(
            what,
            response,
            ADVERTISEMENT,
            self.timeout,
            MAX_ADVERTISEMENT,
        )?;
        advertisement(&body).map_err(|e| self.unreachable(format!("{what}: {e}")))
    }

    /// Sends `commands` and, unless every one is a deletion, the pack at
    /// `pack` (an empty pack for `None`), streamed from disk; the remote's
    /// report.
    pub(crate) fn push(
        &self,
        commands: &[Command],
        pack: Option<&Path>,
    ) -> Result<Report, GitError> {
        let what = "pushing";
        let head = request(commands);
        let pack_len = match (needs_pack(commands), pack) {
            (false, _) => 0,
            (true, None) => empty_pack().len() as u64,
            (true, Some(p)) => std::fs::metadata(p)
                .map_err(|e| GitError::WorkDir {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
                .len(),
        };
        // The remote is silent until it has taken the pack and moved every
        // ref: a deadline that grows with both.
        let deadline = self
            .timeout
            .saturating_add(Duration::from_secs(pack_len / (256 << 10)))
            .saturating_add(
                self.timeout
                    .saturating_mul(u32::try_from(commands.len() / 1000).unwrap_or(u32::MAX)),
            );
        let url = self.endpoint("git-receive-pack");
        let response = self.send(what, |c| {
            let body = match (needs_pack(commands), pack) {
                (false, _) => Body::from(head.clone()),
                (true, None) => {
                    let mut all = head.clone();
                    all.extend_from_slice(&empty_pack());
                    Body::from(all)
                }
                (true, Some(p)) => {
                    let file = std::fs::File::open(p).map_err(|e| GitError::WorkDir {
                        path: p.display().to_string(),
                        message: e.to_string(),
                    })?;
                    let len = head.len() as u64 + pack_len;
                    Body::sized(std::io::Cursor::new(head.clone()).chain(file), len)
                }
            };
            Ok(c.post(&url)
                .timeout(deadline)
                .header(reqwest::header::CONTENT_TYPE, REQUEST)
                .header(reqwest::header::ACCEPT, RESULT)
                .body(body))
        })?;
        let body = self.body(what, response, RESULT, deadline, MAX_REPORT)?;
        report(&body).map_err(|e| self.unreachable(format!("{what}: the report: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn lines(parts: &[Option<&str>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            match p {
                Some(l) => pkt_line(l.as_bytes(), &mut out),
                None => out.extend_from_slice(b"0000"),
            }
        }
        out
    }

    #[test]
    fn pkt_lines_are_written_and_read_back_with_their_flushes() {
        let mut out = Vec::new();
        pkt_line(b"a\n", &mut out);
        out.extend_from_slice(b"0000");
        pkt_line(b"hello world", &mut out);
        assert_eq!(out, b"0006a\n0000000fhello world");
        assert_eq!(
            pkt_lines(&out).unwrap(),
            vec![Some(&b"a\n"[..]), None, Some(&b"hello world"[..])]
        );
        assert!(pkt_lines(b"0009abc").unwrap_err().0.contains("cut short"));
        assert!(
            pkt_lines(b"zzzz")
                .unwrap_err()
                .0
                .contains("not a pkt-line length")
        );
        assert!(pkt_lines(b"0002").is_err());
        assert!(pkt_lines(b"00").is_err());
    }

    #[test]
    fn an_advertisement_gives_refs_and_capabilities() {
        let first = format!(
            "{} refs/heads/main\0report-status delete-refs ofs-delta\n",
            id(1)
        );
        let second = format!("{} refs/heads/hydrant/dev\n", id(2));
        let have = format!("{} .have\n", id(3));
        let body = lines(&[
            Some("# service=git-receive-pack\n"),
            None,
            Some(&first),
            Some(&second),
            Some(&have),
            None,
        ]);
        let ad = advertisement(&body).unwrap();
        assert_eq!(ad.refs.len(), 2);
        assert_eq!(ad.refs["refs/heads/main"], id(1));
        assert_eq!(ad.refs["refs/heads/hydrant/dev"], id(2));
        assert_eq!(
            ad.capabilities,
            ["report-status", "delete-refs", "ofs-delta"]
        );
    }

    #[test]
    fn an_empty_repository_advertises_no_ref() {
        let only = format!(
            "{} capabilities^{{}}\0report-status delete-refs\n",
            Oid::ZERO_SHA1
        );
        let body = lines(&[
            Some("# service=git-receive-pack\n"),
            None,
            Some(&only),
            None,
        ]);
        let ad = advertisement(&body).unwrap();
        assert!(ad.refs.is_empty(), "{ad:?}");
        assert_eq!(ad.capabilities, ["report-status", "delete-refs"]);
    }

    #[test]
    fn an_advertisement_of_another_service_or_cut_short_is_refused() {
        let other = lines(&[Some("# service=git-upload-pack\n"), None, None]);
        assert!(
            advertisement(&other)
                .unwrap_err()
                .0
                .contains("git-upload-pack")
        );
        let first = format!("{} refs/heads/main\0report-status\n", id(1));
        let cut = lines(&[Some("# service=git-receive-pack\n"), None, Some(&first)]);
        assert!(
            advertisement(&cut)
                .unwrap_err()
                .0
                .contains("no final flush")
        );
        assert!(advertisement(b"<html>login</html>").is_err());
    }

    #[test]
    fn a_request_has_a_line_per_branch_the_first_asking_for_the_report() {
        let commands = [
            Command {
                name: "refs/heads/hydrant/a".into(),
                old: Some(id(1)),
                new: Some(id(2)),
            },
            Command {
                name: "refs/heads/hydrant/b".into(),
                old: None,
                new: Some(id(3)),
            },
            Command {
                name: "refs/heads/hydrant/c".into(),
                old: Some(id(4)),
                new: None,
            },
        ];
        let head = request(&commands);
        let read = pkt_lines(&head).unwrap();
        let zero = Oid::ZERO_SHA1;
        assert_eq!(
            read,
            vec![
                Some(
                    format!(
                        "{} {} refs/heads/hydrant/a\0report-status delete-refs\n",
                        id(1),
                        id(2)
                    )
                    .as_bytes()
                ),
                Some(format!("{zero} {} refs/heads/hydrant/b\n", id(3)).as_bytes()),
                Some(format!("{} {zero} refs/heads/hydrant/c\n", id(4)).as_bytes()),
                None,
            ]
        );
        assert!(needs_pack(&commands));
        assert!(!needs_pack(&commands[2..]));
        let empty = empty_pack();
        assert_eq!(&empty[..12], b"PACK\0\0\0\x02\0\0\0\0");
        assert_eq!(
            hex::encode(&empty[12..]),
            "029d08823bd8a8eab510ad6ac75c823cfd3ed31e"
        );
    }

    #[test]
    fn a_report_gives_each_ref_its_result_and_the_reason_of_a_refusal() {
        let body = lines(&[
            Some("unpack ok\n"),
            Some("ok refs/heads/hydrant/a\n"),
            Some("ng refs/heads/hydrant/b failed to update ref\n"),
            Some("ng refs/heads/hydrant/c hook declined\n"),
            None,
        ]);
        let r = report(&body).unwrap();
        assert_eq!(r.unpack, Ok(()));
        assert_eq!(r.refs.len(), 3);
        assert_eq!(r.refs["refs/heads/hydrant/a"], None);
        assert_eq!(
            r.refs["refs/heads/hydrant/b"].as_deref(),
            Some("failed to update ref")
        );
        assert_eq!(
            r.refs["refs/heads/hydrant/c"].as_deref(),
            Some("hook declined")
        );
    }

    #[test]
    fn a_report_of_a_pack_the_remote_could_not_take_says_why() {
        let body = lines(&[
            Some("unpack index-pack abnormal exit\n"),
            Some("ng refs/heads/hydrant/a unpacker error\n"),
            None,
        ]);
        let r = report(&body).unwrap();
        assert_eq!(r.unpack, Err("index-pack abnormal exit".to_string()));
        assert_eq!(
            r.refs["refs/heads/hydrant/a"].as_deref(),
            Some("unpacker error")
        );
        assert!(report(b"0000").is_err());
        let odd = lines(&[Some("unpack ok\n"), Some("what refs/heads/x\n"), None]);
        assert!(report(&odd).unwrap_err().0.contains("is not `ok <ref>`"));
        let cut = lines(&[Some("unpack ok\n"), Some("ok refs/heads/x\n")]);
        assert!(report(&cut).unwrap_err().0.contains("no final flush"));
    }
}
