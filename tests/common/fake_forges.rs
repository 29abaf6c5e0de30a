//! Stateful fakes of GitLab's merge requests (API v4) and Gitea's pull
//! requests (API v1) on 127.0.0.1: token auth, pagination with `Link`, `409`
//! on a duplicate, comments/notes, labels, reviewers, auto-merge, and a
//! `429` on demand.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    GitLab,
    Gitea,
}

#[derive(Debug, Clone, Default)]
pub struct Change {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub open: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub auto_merge: bool,
    pub comments: Vec<String>,
}

#[derive(Default)]
struct State {
    changes: Vec<Change>,
    writes: usize,
    too_many: usize,
}

#[derive(Clone)]
pub struct FakeForge {
    pub port: u16,
    dialect: Dialect,
    token: String,
    project: String,
    state: Arc<Mutex<State>>,
}

impl FakeForge {
    /// Serves `project` (`owner/name`) with `noise` unrelated open changes.
    pub fn start(dialect: Dialect, token: &str, project: &str, noise: usize) -> FakeForge {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let f = FakeForge {
            port: listener.local_addr().unwrap().port(),
            dialect,
            token: token.into(),
            project: project.into(),
            state: Arc::new(Mutex::new(State::default())),
        };
        for i in 0..noise {
            f.state.lock().unwrap().changes.push(Change {
                number: i as u64 + 1,
                title: format!("Unrelated {i}"),
                head: format!("feature/{i}"),
                base: "main".into(),
                open: true,
                ..Default::default()
            });
        }
        let g = f.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let g = g.clone();
                std::thread::spawn(move || {
                    let _ = g.serve(stream);
                });
            }
        });
        f
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn hydrant_changes(&self) -> Vec<Change> {
        self.state
            .lock()
            .unwrap()
            .changes
            .iter()
            .filter(|c| c.head.starts_with("hydrant/"))
            .cloned()
            .collect()
    }

    pub fn writes(&self) -> usize {
        self.state.lock().unwrap().writes
    }

    /// The next `n` requests answer `429` with `Retry-After: 1`.
    pub fn too_many(&self, n: usize) {
        self.state.lock().unwrap().too_many = n;
    }

    fn json(&self, c: &Change) -> Value {
        match self.dialect {
            Dialect::GitLab => json!({
                "iid": c.number, "title": c.title, "description": c.body,
                "source_branch": c.head, "target_branch": c.base,
                "state": if c.open { "opened" } else { "closed" },
                "web_url": format!("{}/{}/-/merge_requests/{}", self.url(), self.project, c.number),
                "labels": c.labels, "reviewers": c.reviewers.iter().map(|r| json!({"username": r})).collect::<Vec<_>>(),
                "merge_when_pipeline_succeeds": c.auto_merge, "draft": c.title.starts_with("Draft: "),
            }),
            Dialect::Gitea => json!({
                "number": c.number, "title": c.title, "body": c.body,
                "head": {"ref": c.head}, "base": {"ref": c.base},
                "state": if c.open { "open" } else { "closed" },
                "html_url": format!("{}/{}/pulls/{}", self.url(), self.project, c.number),
                "labels": c.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
            }),
        }
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
                    "private-token" if self.dialect == Dialect::GitLab => {
                        auth = Some(v.trim().to_string())
                    }
                    "authorization" if self.dialect == Dialect::Gitea => {
                        auth = v.trim().strip_prefix("token ").map(String::from)
                    }
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut respond = |status: u16, headers: &str, body: &Value| -> std::io::Result<()> {
            let text = body.to_string();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            )
        };
        if auth.as_deref() != Some(self.token.as_str()) {
            return respond(401, "", &json!({"message": "401 Unauthorized"}));
        }
        {
            let mut st = self.state.lock().unwrap();
            if st.too_many > 0 {
                st.too_many -= 1;
                return respond(
                    429,
                    "Retry-After: 1\r\n",
                    &json!({"message": "429 Too Many Requests"}),
                );
            }
            if method != "GET" {
                st.writes += 1;
            }
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(String::from)
        };
        let prefix = match self.dialect {
            Dialect::GitLab => format!("/api/v4/projects/{}", self.project.replace('/', "%2F")),
            Dialect::Gitea => format!("/api/v1/repos/{}", self.project),
        };
        if self.dialect == Dialect::GitLab && path == "/api/v4/users" {
            let name = param("username").unwrap_or_default();
            return respond(
                200,
                "",
                &json!([{"id": 1000 + name.len(), "username": name}]),
            );
        }
        let Some(rest) = path.strip_prefix(&prefix) else {
            return respond(404, "", &json!({"message": "404 Project Not Found"}));
        };
        let seg: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        let list_name = if self.dialect == Dialect::GitLab {
            "merge_requests"
        } else {
            "pulls"
        };
        let mut st = self.state.lock().unwrap();
        let find = |st: &mut State, n: &str| -> Option<usize> {
            let n: u64 = n.parse().ok()?;
            st.changes.iter().position(|c| c.number == n)
        };
        match (method.as_str(), seg.as_slice()) {
            ("GET", [l]) if *l == list_name => {
                let per_page: usize = param("per_page")
                    .or_else(|| param("limit"))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(20)
                    .min(50);
                let page: usize = param("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                let (src, dst) = (
                    param("source_branch").map(|s| s.replace("%2F", "/")),
                    param("target_branch"),
                );
                let all: Vec<&Change> = st
                    .changes
                    .iter()
                    .filter(|c| {
                        c.open
                            && src.as_deref().is_none_or(|s| s == c.head)
                            && dst.as_deref().is_none_or(|d| d == c.base)
                    })
                    .collect();
                let items: Vec<Value> = all
                    .iter()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .map(|c| self.json(c))
                    .collect();
                let link = if page * per_page < all.len() {
                    let mut q: Vec<String> = query
                        .split('&')
                        .filter(|kv| !kv.starts_with("page="))
                        .map(String::from)
                        .collect();
                    q.push(format!("page={}", page + 1));
                    format!(
                        "Link: <{}{path}?{}>; rel=\"next\"\r\n",
                        self.url(),
                        q.join("&")
                    )
                } else {
                    String::new()
                };
                respond(200, &link, &Value::Array(items))
            }
            ("POST", [l]) if *l == list_name => {
                let (head, base) = match self.dialect {
                    Dialect::GitLab => (
                        input["source_branch"].as_str(),
                        input["target_branch"].as_str(),
                    ),
                    Dialect::Gitea => (input["head"].as_str(), input["base"].as_str()),
                };
                let (head, base) = (
                    head.unwrap_or("").to_string(),
                    base.unwrap_or("").to_string(),
                );
                if st.changes.iter().any(|c| c.open && c.head == head) {
                    return respond(
                        409,
                        "",
                        &json!({"message": ["Another open merge request already exists for this source branch"]}),
                    );
                }
                let number = st.changes.iter().map(|c| c.number).max().unwrap_or(0) + 1;
                let c = Change {
                    number,
                    title: input["title"].as_str().unwrap_or("").into(),
                    body: input["description"]
                        .as_str()
                        .or(input["body"].as_str())
                        .unwrap_or("")
                        .into(),
                    head,
                    base,
                    open: true,
                    labels: input["labels"]
                        .as_str()
                        .map(|l| {
                            l.split(',')
                                .filter(|s| !s.is_empty())
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                    reviewers: input["reviewer_ids"]
                        .as_array()
                        .map(|ids| ids.iter().map(|i| format!("user-{i}")).collect())
                        .unwrap_or_default(),
                    ..Default::default()
                };
                let v = self.json(&c);
                st.changes.push(c);
                respond(201, "", &v)
            }
            ("PUT" | "PATCH", [l, n]) if *l == list_name => {
                let Some(i) = find(&mut st, n) else {
                    return respond(404, "", &json!({"message": "not found"}));
                };
                let c = &mut st.changes[i];
                if let Some(t) = input["title"].as_str() {
                    c.title = t.into();
                }
                if let Some(b) = input["description"].as_str().or(input["body"].as_str()) {
                    c.body = b.into();
                }
                if input["state_event"] == "close" || input["state"] == "closed" {
                    c.open = false;
                }
                let v = self.json(c);
                respond(200, "", &v)
            }
            ("PUT", [_, n, "merge"]) | ("POST", [_, n, "merge"]) => {
                let Some(i) = find(&mut st, n) else {
                    return respond(404, "", &json!({"message": "not found"}));
                };
                st.changes[i].auto_merge = input["merge_when_pipeline_succeeds"] == true
                    || input["merge_when_checks_succeed"] == true;
                let v = self.json(&st.changes[i]);
                respond(200, "", &v)
            }
            ("POST", [_, n, "notes"]) | ("POST", ["issues", n, "comments"]) => {
                let Some(i) = find(&mut st, n) else {
                    return respond(404, "", &json!({"message": "not found"}));
                };
                st.changes[i]
                    .comments
                    .push(input["body"].as_str().unwrap_or("").into());
                respond(201, "", &json!({"body": input["body"]}))
            }
            ("GET", [_, n, "notes"]) | ("GET", ["issues", n, "comments"]) => {
                let list: Vec<Value> = find(&mut st, n)
                    .map(|i| {
                        st.changes[i]
                            .comments
                            .iter()
                            .map(|c| json!({"body": c}))
                            .collect()
                    })
                    .unwrap_or_default();
                respond(200, "", &Value::Array(list))
            }
            ("GET", ["labels"]) => respond(
                200,
                "",
                &json!([{"id": 1, "name": "hydrant"}, {"id": 2, "name": "staging"}]),
            ),
            ("POST", ["issues", n, "labels"]) => {
                let Some(i) = find(&mut st, n) else {
                    return respond(404, "", &json!({"message": "not found"}));
                };
                let names: Vec<String> = input["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|id| match id.as_u64() {
                        Some(1) => "hydrant".to_string(),
                        Some(2) => "staging".to_string(),
                        other => format!("label-{other:?}"),
                    })
                    .collect();
                st.changes[i].labels.extend(names);
                respond(200, "", &json!([]))
            }
            ("POST", ["pulls", n, "requested_reviewers"]) => {
                let Some(i) = find(&mut st, n) else {
                    return respond(404, "", &json!({"message": "not found"}));
                };
                st.changes[i].reviewers.extend(
                    input["reviewers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r.as_str().map(String::from)),
                );
                respond(201, "", &json!({}))
            }
            _ => respond(
                404,
                "",
                &json!({"message": format!("no route {method} {rest}")}),
            ),
        }
    }
}
