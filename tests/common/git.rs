//! Real git remotes for the tests: bare repositories seeded with the bundled
//! example, driven with the `git` command line, and served over smart HTTP by
//! `git http-backend` behind a small server on 127.0.0.1 that requires a token.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::{copy_dir, project_root};

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Pat Human")
        .env("GIT_AUTHOR_EMAIL", "pat@example.com")
        .env("GIT_COMMITTER_NAME", "Pat Human")
        .env("GIT_COMMITTER_EMAIL", "pat@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A bare remote whose `main` holds the bundled example: templates,
/// environments, channels (stable now at 0.63.0) and `rendered/` as last
/// merged (stable 0.62.1). Reconciling it changes `staging` and `prod`.
pub struct Remote {
    pub root: tempfile::TempDir,
}

impl Remote {
    pub fn new() -> Remote {
        let root = tempfile::tempdir().unwrap();
        let seed = root.path().join("seed");
        for sub in ["templates", "environments", "channels", "rendered"] {
            copy_dir(&project_root().join(sub), &seed.join(sub));
        }
        git(&seed, &["init", "-q", "-b", "main"]);
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-q", "-m", "Bundled example"]);
        git(
            root.path(),
            &["clone", "-q", "--bare", "seed", "remote.git"],
        );
        let remote = Remote { root };
        // The seed becomes a working clone of the remote, for edits by "people".
        git(
            &remote.work(),
            &["remote", "add", "origin", remote.bare().to_str().unwrap()],
        );
        git(&remote.work(), &["fetch", "-q", "origin"]);
        git(&remote.work(), &["branch", "-q", "-u", "origin/main"]);
        remote
    }

    pub fn bare(&self) -> PathBuf {
        self.root.path().join("remote.git")
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// A working clone of the remote for edits.
    pub fn work(&self) -> PathBuf {
        self.root.path().join("seed")
    }

    /// Commits a file change to `main` and pushes it.
    pub fn commit_to_main(&self, path: &str, text: &str, message: &str) {
        let w = self.work();
        git(&w, &["checkout", "-q", "main"]);
        git(&w, &["pull", "-q", "--ff-only", "origin", "main"]);
        std::fs::create_dir_all(w.join(path).parent().unwrap()).unwrap();
        std::fs::write(w.join(path), text).unwrap();
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-q", "-m", message]);
        git(&w, &["push", "-q", "origin", "main"]);
    }

    /// A person lands `hydrant/<env>`'s rendered files on `main` by other means
    /// (not by merging hydrant's pull request).
    pub fn land_by_hand(&self, env: &str) {
        let w = self.work();
        git(&w, &["fetch", "-q", "origin"]);
        git(&w, &["checkout", "-q", "main"]);
        git(&w, &["pull", "-q", "--ff-only", "origin", "main"]);
        let (branch, dir) = (format!("origin/hydrant/{env}"), format!("rendered/{env}"));
        git(&w, &["checkout", "-q", &branch, "--", &dir]);
        git(&w, &["commit", "-q", "-m", &format!("Apply {env} by hand")]);
        git(&w, &["push", "-q", "origin", "main"]);
    }

    /// Replaces the example's environments with `tenants` that follow
    /// stable (each with staging's values), puts stable back at 0.62.1 with
    /// 0.63.0 kept in `channels/stable/releases/`, writes `files` (such as
    /// `hydrant.yaml`) and pushes it all to `main` as one commit.
    pub fn seed_tenants(&self, tenants: &[String], files: &[(&str, &str)]) {
        let w = self.work();
        git(&w, &["rm", "-r", "-q", "environments", "rendered"]);
        let staging = project_root().join("environments/staging");
        for t in tenants {
            let dir = w.join("environments").join(t);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("environment.yaml"),
                format!("channel: stable\nnamespace: {t}\n"),
            )
            .unwrap();
            for f in ["values.yaml", "pinned.yaml"] {
                std::fs::copy(staging.join(f), dir.join(f)).unwrap();
            }
        }
        let channels = w.join("channels");
        std::fs::copy(
            channels.join("stable.yaml"),
            channels.join("stable/releases/0.63.0.yaml"),
        )
        .unwrap();
        std::fs::copy(
            channels.join("stable/releases/0.62.1.yaml"),
            channels.join("stable.yaml"),
        )
        .unwrap();
        for (path, text) in files {
            std::fs::write(w.join(path), text).unwrap();
        }
        git(&w, &["add", "-A"]);
        let message = format!("{} tenants on stable 0.62.1", tenants.len());
        git(&w, &["commit", "-q", "-m", &message]);
        git(&w, &["push", "-q", "origin", "main"]);
    }

    /// Runs `hydrant COMMAND` in `dir` on this remote, with its work
    /// directory and local forge state under `dir` (`work`, `state`).
    pub fn run_hydrant(&self, dir: &Path, command: &[&str]) -> super::Run {
        let (work, state) = (dir.join("work"), dir.join("state"));
        let url = self.url();
        let mut args = command.to_vec();
        args.extend([
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ]);
        super::run_in(dir, &args)
    }

    pub fn read_main(&self, path: &str) -> String {
        git(&self.bare(), &["show", &format!("main:{path}")])
    }

    /// The commit a branch points to on the remote, if it exists.
    pub fn branch(&self, name: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["rev-parse", "--verify", "-q", &format!("refs/heads/{name}")])
            .current_dir(self.bare())
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap().trim().to_string())
    }

    pub fn branches(&self) -> Vec<String> {
        git(
            &self.bare(),
            &["for-each-ref", "--format=%(refname:short)", "refs/heads/"],
        )
        .lines()
        .map(String::from)
        .collect()
    }
}

/// `git http-backend` behind a server on 127.0.0.1 that wants `token` as the
/// Basic-auth password. Serves every repository below `root`.
pub struct HttpGit {
    pub port: u16,
}

impl HttpGit {
    pub fn start(root: &Path, token: &str) -> HttpGit {
        let token = token.to_string();
        HttpGit::start_with(root, Arc::new(move |t: &str| t == token))
    }

    /// Accepts whichever tokens `accepts` says (user `x-access-token`).
    pub fn start_with(root: &Path, accepts: Arc<dyn Fn(&str) -> bool + Send + Sync>) -> HttpGit {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                let accepts = accepts.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &root, accepts.as_ref());
                });
            }
        });
        HttpGit { port }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

pub fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic_token(header: Option<&str>) -> Option<String> {
    let encoded = header?.strip_prefix("Basic ")?;
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in encoded.bytes().filter(|c| *c != b'=') {
        bits = bits << 6 | T.iter().position(|t| *t == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    text.strip_prefix("x-access-token:").map(String::from)
}

fn serve(
    stream: TcpStream,
    root: &Path,
    accepts: &(dyn Fn(&str) -> bool + Send + Sync),
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    if !basic_token(header("authorization").as_deref()).is_some_and(|t| accepts(&t)) {
        let msg = "authentication required";
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )?;
        return Ok(());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut child = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header("content-encoding").unwrap_or_default(),
        )
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_USER", "hydrant")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output()?;
    let _ = writer.join();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let (head, payload) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&out.stdout[..i]).to_string(),
            &out.stdout[i + n..],
        ),
        None => (String::new(), &out.stdout[..]),
    };
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for line in head.lines() {
        if let Some(s) = line.strip_prefix("Status:") {
            status = s.trim().to_string();
        } else if !line.is_empty() {
            response.push_str(line.trim_end());
            response.push_str("\r\n");
        }
    }
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    stream.write_all(payload)?;
    stream.flush()
}
