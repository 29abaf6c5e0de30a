//! A stateful fake of GitHub's REST API on 127.0.0.1, for the calls hydrant
//! makes: pull requests (paginated with `Link`, `422` on a duplicate),
//! comments, labels, reviewers, GraphQL auto-merge, token auth, and rate
//! limits and faults on demand.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy)]
pub enum GhFault {
    /// `403` with `x-ratelimit-remaining: 0` and a reset one second ahead.
    PrimaryLimit,
    /// `403` "secondary rate limit" with `Retry-After: 1`.
    SecondaryLimit,
    /// `429` with `Retry-After: 1`.
    TooMany,
    ServerError,
    /// The next `POST …/pulls` is carried out, but its answer never arrives.
    LoseCreateAnswer,
    /// The next `POST …/pulls` is carried out, but its answer stops halfway
    /// through the body.
    CutCreateAnswer,
}

#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub open: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub draft: bool,
    pub auto_merge: bool,
    pub comments: Vec<String>,
    /// When it was opened, in seconds since the epoch.
    pub created_at: u64,
}

/// One request that reached the API: when, what, and the status answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: std::time::Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Default)]
struct App {
    id: String,
    public_pem: String,
    /// Installation tokens still valid, with the requests each has served.
    valid: Vec<(String, usize)>,
    issued: usize,
    /// A token stops working after this many requests (as if it expired).
    lifetime: usize,
}

#[derive(Default)]
struct State {
    app: Option<App>,
    pulls: Vec<Pr>,
    faults: VecDeque<GhFault>,
    /// Write requests (POST, PATCH) that reached the API.
    writes: usize,
    requests: usize,
}

#[derive(Clone)]
pub struct FakeGitHub {
    pub port: u16,
    token: String,
    owner_repo: String,
    state: Arc<Mutex<State>>,
    /// A field every pull request is sent without (`None`) or with another
    /// value, as by a GitHub whose API changed.
    changed_field: Arc<Mutex<Option<ChangedField>>>,
    /// Every request answered, in order.
    log: Arc<Mutex<Vec<Request>>>,
}

/// A field's name, and its new value (`None`: left out).
type ChangedField = (String, Option<Value>);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch.
fn rfc3339(t: u64) -> String {
    let (days, rem) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Adds the names of a JSON list that `to` does not hold yet.
fn add_new(to: &mut Vec<String>, names: &Value) {
    for name in names
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !to.iter().any(|n| n == name) {
            to.push(name.to_string());
        }
    }
}

impl FakeGitHub {
    /// Serves `owner/repo`, with `noise` unrelated open pull requests so that
    /// finding hydrant's needs more than one page.
    pub fn start(token: &str, owner_repo: &str, noise: usize) -> FakeGitHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let gh = FakeGitHub {
            port: listener.local_addr().unwrap().port(),
            token: token.to_string(),
            owner_repo: owner_repo.to_string(),
            state: Arc::new(Mutex::new(State::default())),
            changed_field: Arc::new(Mutex::new(None)),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        {
            let mut st = gh.state.lock().unwrap();
            for i in 0..noise {
                st.pulls.push(Pr {
                    number: i as u64 + 1,
                    title: format!("Unrelated change {i}"),
                    body: String::new(),
                    head: format!("feature/{i}"),
                    base: "main".into(),
                    open: true,
                    labels: vec![],
                    reviewers: vec![],
                    draft: false,
                    auto_merge: false,
                    comments: vec![],
                    created_at: now() - 86_400,
                });
            }
        }
        let g = gh.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || {
                    let _ = g.serve(stream);
                });
            }
        });
        gh
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Accepts GitHub App `app_id` (JWTs signed by the key whose public half is
    /// `public_pem`); its installation tokens expire after `lifetime` requests.
    pub fn enable_app(&self, app_id: &str, public_pem: &str, lifetime: usize) {
        self.state.lock().unwrap().app = Some(App {
            id: app_id.into(),
            public_pem: public_pem.into(),
            lifetime,
            ..Default::default()
        });
    }

    /// Makes an RSA key pair in `dir` (with `openssl`) and accepts GitHub App
    /// `app_id` signing with it, as [`FakeGitHub::enable_app`] says; returns
    /// the private key's file.
    pub fn enable_app_with_new_key(
        &self,
        app_id: &str,
        dir: &std::path::Path,
        lifetime: usize,
    ) -> std::path::PathBuf {
        let (key, public) = (dir.join("app.pem"), dir.join("app.pub"));
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let (k, p) = (key.to_str().unwrap(), public.to_str().unwrap());
        openssl(&["genrsa", "-out", k, "2048"]);
        openssl(&["rsa", "-in", k, "-pubout", "-out", p]);
        self.enable_app(app_id, &std::fs::read_to_string(&public).unwrap(), lifetime);
        key
    }

    /// A git server over smart HTTP for the repositories below `root` that
    /// takes the tokens this GitHub accepts.
    pub fn git_server(&self, root: &std::path::Path) -> super::git::HttpGit {
        let checker = self.clone();
        super::git::HttpGit::start_with(root, Arc::new(move |t: &str| checker.accepts(t)))
    }

    /// Every installation token handed out so far.
    pub fn issued_tokens(&self) -> Vec<String> {
        (1..=self.app_tokens_issued())
            .map(|n| format!("ghs_installation_{n}"))
            .collect()
    }

    pub fn app_tokens_issued(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .app
            .as_ref()
            .map(|a| a.issued)
            .unwrap_or(0)
    }

    /// Whether a token is accepted now (the fixed token, or a live App token);
    /// counts a use of an App token.
    pub fn accepts(&self, token: &str) -> bool {
        if token == self.token {
            return true;
        }
        let mut st = self.state.lock().unwrap();
        let Some(app) = st.app.as_mut() else {
            return false;
        };
        let lifetime = app.lifetime;
        match app.valid.iter_mut().position(|(t, _)| t == token) {
            Some(i) => {
                app.valid[i].1 += 1;
                if app.valid[i].1 > lifetime {
                    app.valid.remove(i);
                    return false;
                }
                true
            }
            None => false,
        }
    }

    fn check_jwt(&self, auth: Option<&str>) -> bool {
        let st = self.state.lock().unwrap();
        let Some(app) = st.app.as_ref() else {
            return false;
        };
        let Some(jwt) = auth.and_then(|a| a.strip_prefix("Bearer ")) else {
            return false;
        };
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(app.public_pem.as_bytes()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[&app.id]);
        jsonwebtoken::decode::<Value>(jwt, &key, &validation).is_ok()
    }

    pub fn fail(&self, faults: &[GhFault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(faults.iter().copied());
    }

    /// hydrant's pull requests (those from `hydrant/*`).
    pub fn hydrant_pulls(&self) -> Vec<Pr> {
        self.state
            .lock()
            .unwrap()
            .pulls
            .iter()
            .filter(|p| p.head.starts_with("hydrant/"))
            .cloned()
            .collect()
    }

    /// From now on, every pull request is sent without `field` (`None`) or
    /// with `value` in it.
    pub fn change_field(&self, field: &str, value: Option<Value>) {
        *self.changed_field.lock().unwrap() = Some((field.to_string(), value));
    }

    /// Every request that reached the API so far, in order, with its time.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    pub fn writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }

    fn json_pr(&self, p: &Pr) -> Value {
        let mut v = self.plain_json_pr(p);
        if let Some((field, value)) = self.changed_field.lock().unwrap().clone() {
            match value {
                Some(value) => v[field.as_str()] = value,
                None => {
                    v.as_object_mut().unwrap().remove(&field);
                }
            }
        }
        v
    }

    fn plain_json_pr(&self, p: &Pr) -> Value {
        json!({
            "number": p.number,
            "node_id": format!("PR_{}", p.number),
            "html_url": format!("{}/{}/pull/{}", self.url(), self.owner_repo, p.number),
            "title": p.title,
            "body": p.body,
            "state": if p.open { "open" } else { "closed" },
            "draft": p.draft,
            "head": {"ref": p.head, "label": format!("acme:{}", p.head), "repo": {"full_name": self.owner_repo}},
            "base": {"ref": p.base},
            "labels": p.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
            "requested_reviewers": p.reviewers.iter().map(|r| json!({"login": r})).collect::<Vec<_>>(),
            "auto_merge": if p.auto_merge { json!({"merge_method": "squash"}) } else { Value::Null },
            "created_at": rfc3339(p.created_at),
        })
    }

    fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut stream = stream;
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let (mut auth, mut length) = (None, 0usize);
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
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let logged = self.log.clone();
        let (log_method, log_target) = (method.clone(), target.clone());
        let mut respond = |status: u16, headers: &str, body: &Value| -> std::io::Result<()> {
            logged.lock().unwrap().push(Request {
                at: std::time::Instant::now(),
                method: log_method.clone(),
                path: log_target.clone(),
                status,
            });
            let text = if body.is_null() {
                String::new()
            } else {
                body.to_string()
            };
            write!(
                stream,
                "HTTP/1.1 {status} X\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
        };
        if target.starts_with("/app/installations/") || target.ends_with("/installation") {
            if !self.check_jwt(auth.as_deref()) {
                return respond(
                    401,
                    "",
                    &json!({"message": "A JSON web token could not be decoded"}),
                );
            }
            if method == "GET" {
                return respond(200, "", &json!({"id": 42}));
            }
            let mut st = self.state.lock().unwrap();
            let app = st.app.as_mut().unwrap();
            app.issued += 1;
            let token = format!("ghs_installation_{}", app.issued);
            app.valid.push((token.clone(), 0));
            return respond(
                201,
                "",
                &json!({"token": token, "expires_at": rfc3339(now() + 3600)}),
            );
        }
        let presented = auth.as_deref().and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("token "))
        });
        let authorised = presented.is_some_and(|t| self.accepts(t));
        if !authorised {
            return respond(401, "", &json!({"message": "Bad credentials"}));
        }
        let fault = {
            let mut st = self.state.lock().unwrap();
            st.requests += 1;
            let is_create = method == "POST" && target.ends_with("/pulls");
            match st.faults.front() {
                Some(GhFault::LoseCreateAnswer | GhFault::CutCreateAnswer) if !is_create => None,
                _ => st.faults.pop_front(),
            }
        };
        match fault {
            Some(GhFault::PrimaryLimit) => {
                let reset = now() + 1;
                return respond(
                    403,
                    &format!("x-ratelimit-remaining: 0\r\nx-ratelimit-reset: {reset}\r\n"),
                    &json!({"message": "API rate limit exceeded"}),
                );
            }
            Some(GhFault::SecondaryLimit) => {
                return respond(
                    403,
                    "Retry-After: 1\r\n",
                    &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
                );
            }
            Some(GhFault::TooMany) => {
                return respond(
                    429,
                    "Retry-After: 1\r\n",
                    &json!({"message": "Too many requests"}),
                );
            }
            Some(GhFault::ServerError) => {
                return respond(502, "", &json!({"message": "Server Error"}));
            }
            _ => {}
        }
        let lose_answer = matches!(fault, Some(GhFault::LoseCreateAnswer));
        let cut_answer = matches!(fault, Some(GhFault::CutCreateAnswer));
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
        };
        let repo_prefix = format!("/repos/{}", self.owner_repo);
        let Some(rest) = path.strip_prefix(&repo_prefix).or(if path == "/graphql" {
            Some("/graphql")
        } else {
            None
        }) else {
            return respond(404, "", &json!({"message": "Not Found"}));
        };
        let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let mut st = self.state.lock().unwrap();
        if method != "GET" {
            st.writes += 1;
        }
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["pulls"]) => {
                let per_page: usize = param("per_page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(30)
                    .min(100);
                let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let base = param("base");
                // `head=owner:branch`, as GitHub takes it: another owner's
                // branch (a fork's) is not this repository's.
                let owner = self.owner_repo.split('/').next().unwrap_or("");
                let head = param("head").map(|h| match h.split_once(':') {
                    Some((o, branch)) if o.eq_ignore_ascii_case(owner) => branch.to_string(),
                    _ => "\0 another owner's".to_string(),
                });
                let want_open = param("state").as_deref() != Some("closed");
                let all: Vec<&Pr> = st
                    .pulls
                    .iter()
                    .filter(|p| {
                        p.open == want_open
                            && base.as_deref().is_none_or(|b| b == p.base)
                            && head.as_deref().is_none_or(|h| h == p.head)
                    })
                    .collect();
                let mut all = all;
                if param("direction").as_deref() == Some("desc") {
                    all.reverse();
                }
                let items: Vec<Value> = all
                    .iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .map(|p| self.json_pr(p))
                    .collect();
                let link = if page * per_page < all.len() {
                    let kept: Vec<&str> = query
                        .split('&')
                        .filter(|kv| !kv.starts_with("page=") && !kv.is_empty())
                        .collect();
                    let next = format!("{}{path}?{}&page={}", self.url(), kept.join("&"), page + 1);
                    format!("Link: <{next}>; rel=\"next\"\r\n")
                } else {
                    String::new()
                };
                respond(200, &link, &Value::Array(items))
            }
            ("POST", ["pulls"]) => {
                let head = input["head"].as_str().unwrap_or("").to_string();
                if st.pulls.iter().any(|p| p.open && p.head == head) {
                    return respond(
                        422,
                        "",
                        &json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for acme:{head}.")}]}),
                    );
                }
                let number = st.pulls.iter().map(|p| p.number).max().unwrap_or(0) + 1;
                let pr = Pr {
                    number,
                    title: input["title"].as_str().unwrap_or("").into(),
                    body: input["body"].as_str().unwrap_or("").into(),
                    head,
                    base: input["base"].as_str().unwrap_or("").into(),
                    open: true,
                    labels: vec![],
                    reviewers: vec![],
                    draft: input["draft"].as_bool().unwrap_or(false),
                    auto_merge: false,
                    comments: vec![],
                    created_at: now(),
                };
                let v = self.json_pr(&pr);
                st.pulls.push(pr);
                if lose_answer {
                    return Ok(());
                }
                if cut_answer {
                    let text = v.to_string();
                    write!(
                        stream,
                        "HTTP/1.1 201 X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        text.len(),
                        &text[..text.len() / 2]
                    )?;
                    return stream.flush();
                }
                respond(201, "", &v)
            }
            ("PATCH", ["pulls", n]) => {
                let n: u64 = n.parse().unwrap_or(0);
                let Some(p) = st.pulls.iter_mut().find(|p| p.number == n) else {
                    return respond(404, "", &json!({"message": "Not Found"}));
                };
                if let Some(t) = input["title"].as_str() {
                    p.title = t.into();
                }
                if let Some(b) = input["body"].as_str() {
                    p.body = b.into();
                }
                if input["state"] == "closed" {
                    p.open = false;
                }
                let v = self.json_pr(p);
                respond(200, "", &v)
            }
            ("POST", ["issues", n, "comments"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                if let Some(p) = st.pulls.iter_mut().find(|p| p.number == n) {
                    p.comments.push(input["body"].as_str().unwrap_or("").into());
                }
                respond(201, "", &json!({"id": 1, "body": input["body"]}))
            }
            ("GET", ["issues", n, "comments"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                let list: Vec<Value> = st
                    .pulls
                    .iter()
                    .find(|p| p.number == n)
                    .map(|p| p.comments.iter().map(|c| json!({"body": c})).collect())
                    .unwrap_or_default();
                respond(200, "", &Value::Array(list))
            }
            ("POST", ["issues", n, "labels"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                if let Some(p) = st.pulls.iter_mut().find(|p| p.number == n) {
                    // Like GitHub, a label already there is not added again.
                    add_new(&mut p.labels, &input["labels"]);
                }
                respond(200, "", &json!([]))
            }
            ("POST", ["pulls", n, "requested_reviewers"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                if let Some(p) = st.pulls.iter_mut().find(|p| p.number == n) {
                    add_new(&mut p.reviewers, &input["reviewers"]);
                }
                respond(201, "", &json!({}))
            }
            ("POST", ["graphql"]) => {
                let id = input["variables"]["id"].as_str().unwrap_or("");
                let n: u64 = id.trim_start_matches("PR_").parse().unwrap_or(0);
                match st.pulls.iter_mut().find(|p| p.number == n) {
                    Some(p)
                        if input["query"]
                            .as_str()
                            .unwrap_or("")
                            .contains("enablePullRequestAutoMerge") =>
                    {
                        p.auto_merge = true;
                        respond(
                            200,
                            "",
                            &json!({"data": {"enablePullRequestAutoMerge": {"clientMutationId": null}}}),
                        )
                    }
                    _ => respond(
                        200,
                        "",
                        &json!({"errors": [{"message": "Could not resolve to a node"}]}),
                    ),
                }
            }
            _ => respond(404, "", &json!({"message": "Not Found"})),
        }
    }
}
