//! Runs one health gate check: the IO edge of [`crate::rollout::gate`].
//!
//! A check is one `GET` of the gate's URL (with `{env}` and `{version}`
//! filled in), under the rules of every outbound request
//! ([`crate::outbound`]): redirects only within the origin, a total deadline
//! on the answer, a size cap (1 MiB). The answer's verdict is the pure
//! module's; a server that cannot be reached, times out or refuses is "not
//! yet" ([`Verdict::Unknown`]), never a failure.
//!
//! Credentials are the operator's: the repository's `hydrant.yaml` names a
//! credential (`credential: argocd`), and only the operator's settings file
//! (the one `--config` names) binds that name to a token file and the
//! origins the token may be sent to:
//!
//! ```yaml
//! credentials:
//!   argocd:
//!     tokenFile: /etc/hydrant/argocd-token
//!     origins: ["https://argocd.example.com"]
//! ```
//!
//! So a pull request can neither read a token nor send one to a server of
//! its choosing: a gate whose URL lies outside its credential's origins is
//! refused before any request, and a name nobody bound is an error. The
//! token is read from its file at each check (so it may be rotated), sent
//! as a bearer token, and never appears in an error, a log line or a
//! verdict. It does not decide what a verdict means for a rollout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::blocking::Client;
use serde::Deserialize;

use crate::auth::CredentialError;
use crate::config::ConfigError;
use crate::outbound::{self, BodyError};
use crate::rollout::Rollout;
use crate::rollout::gate::{Gate, Verdict};
use crate::rollout::gating::Check;

/// The key of the operator's settings file that binds credentials.
pub const CREDENTIALS_KEY: &str = "credentials";
/// The longest a check may take, its answer included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read.
pub const MAX_BODY: u64 = 1 << 20;

/// What replaces a credential in text shown to people.
const REDACTED: &str = "<redacted>";

/// One credential as the operator binds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BindingSpec {
    token_file: PathBuf,
    origins: Vec<String>,
}

/// The part of the operator's settings file read here. Its other keys are
/// command-line settings, read by [`crate::settings`].
#[derive(Debug, Default, Deserialize)]
struct OperatorFile {
    #[serde(default)]
    credentials: BTreeMap<String, BindingSpec>,
}

/// A credential bound to a token file and the origins it may go to.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub token_file: PathBuf,
    pub origins: Vec<Url>,
}

/// The operator's credentials for gates, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credentials {
    bindings: BTreeMap<String, Binding>,
}

/// Why a gate could not be checked. No variant holds a token.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "gate `{gate}` names the credential `{credential}`, which the operator has not bound\nhint: bind it in the file `--config` names: `credentials: {{{credential}: {{tokenFile: /etc/hydrant/{credential}-token, origins: [\"https://…\"]}}}}`"
    )]
    Unbound { gate: String, credential: String },
    #[error(
        "gate `{gate}` would send the credential `{credential}` to `{origin}`, which is not one of its origins ({allowed})\nhint: point the gate at one of them, or add the origin to `credentials.{credential}.origins` in the file `--config` names"
    )]
    OutsideOrigins {
        gate: String,
        credential: String,
        origin: String,
        allowed: String,
    },
    #[error("gate `{gate}`: {message}")]
    Url { gate: String, message: String },
    #[error("gate `{gate}`: {source}")]
    Token {
        gate: String,
        #[source]
        source: CredentialError,
    },
    #[error("cannot set up the client for gates: {0}")]
    Client(String),
}

impl Credentials {
    /// Reads the `credentials` key of a settings file. `operator` says
    /// whether the operator named the file (`--config`); the config
    /// repository's own `hydrant.yaml` may not bind credentials. A relative
    /// `tokenFile` is relative to the file's directory.
    pub fn parse(path: &Path, text: &str, operator: bool) -> Result<Credentials, ConfigError> {
        let file = path.display().to_string();
        let parsed: OperatorFile = crate::config::parse(&file, text)?;
        let error = |message: String| ConfigError {
            file: file.clone(),
            line: line_of(text, CREDENTIALS_KEY),
            message,
        };
        if !operator && !parsed.credentials.is_empty() {
            return Err(error(format!(
                "`{CREDENTIALS_KEY}` is an operator setting: it says where a credential is read and sent, and the repository's own `hydrant.yaml` (edited by pull requests) may not set it\nhint: bind credentials in the file `--config` names"
            )));
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut bindings = BTreeMap::new();
        for (name, spec) in parsed.credentials {
            if !crate::names::is_valid(&name) {
                return Err(error(format!(
                    "`{CREDENTIALS_KEY}`: `{}` is not a credential name (1 to 253 of `A-Z a-z 0-9 . _ -`)",
                    name.escape_debug()
                )));
            }
            if spec.origins.is_empty() {
                return Err(error(format!(
                    "`{CREDENTIALS_KEY}.{name}.origins`: list the origins the token may be sent to, such as `[\"https://argocd.example.com\"]`"
                )));
            }
            let origins = spec
                .origins
                .iter()
                .map(|o| parse_origin(o))
                .collect::<Result<Vec<Url>, String>>()
                .map_err(|m| error(format!("`{CREDENTIALS_KEY}.{name}.origins`: {m}")))?;
            bindings.insert(
                name,
                Binding {
                    token_file: dir.join(spec.token_file),
                    origins,
                },
            );
        }
        Ok(Credentials { bindings })
    }

    /// The binding of `name`, if the operator made one.
    pub fn get(&self, name: &str) -> Option<&Binding> {
        self.bindings.get(name)
    }

    /// The binding a gate may use, after checking that its URL lies within
    /// the binding's origins; `None` for a gate without a credential.
    pub fn bind(&self, gate: &Gate) -> Result<Option<&Binding>, CheckError> {
        let Some(name) = &gate.credential else {
            return Ok(None);
        };
        let binding = self.get(name).ok_or_else(|| CheckError::Unbound {
            gate: gate.name.clone(),
            credential: name.clone(),
        })?;
        let target = gate.url.origin();
        if !binding
            .origins
            .iter()
            .any(|o| outbound::same_origin(o, target))
        {
            let allowed: Vec<String> = binding
                .origins
                .iter()
                .map(|o| format!("`{}`", outbound::origin(o)))
                .collect();
            return Err(CheckError::OutsideOrigins {
                gate: gate.name.clone(),
                credential: name.clone(),
                origin: outbound::origin(target),
                allowed: allowed.join(", "),
            });
        }
        Ok(Some(binding))
    }
}

/// The line of a top-level key, for errors about it as a whole.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|i| i + 1)
}

/// An origin as the operator writes it: `https://host[:port]`, nothing else.
fn parse_origin(text: &str) -> Result<Url, String> {
    crate::auth::check_url(text).map_err(|e| e.to_string())?;
    let url = Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !bare {
        return Err(format!(
            "`{text}` is not an origin: write scheme, host and port only, such as `https://argocd.example.com`"
        ));
    }
    Ok(url)
}

/// The HTTP client of gate checks.
pub struct GateClient {
    client: Client,
    timeout: Duration,
}

impl GateClient {
    /// A client whose checks take at most `timeout` each, answer included.
    pub fn new(timeout: Duration) -> Result<GateClient, CheckError> {
        let client = Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(outbound::redirects())
            .user_agent(concat!("hydrant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CheckError::Client(e.to_string()))?;
        Ok(GateClient { client, timeout })
    }
}

/// Checks `gate` once for environment `env` running `version`: the verdict
/// of its answer, or an error when the gate cannot be checked as configured
/// (an unbound credential, a URL outside its origins, an unreadable token).
pub fn check(
    gate: &Gate,
    env: &str,
    version: &str,
    creds: &Credentials,
    client: &GateClient,
) -> Result<Verdict, CheckError> {
    let binding = creds.bind(gate)?;
    let url = gate
        .url
        .render(env, version)
        .map_err(|message| CheckError::Url {
            gate: gate.name.clone(),
            message,
        })?;
    let token = binding
        .map(|b| crate::auth::read_credential_file(&b.token_file))
        .transpose()
        .map_err(|source| CheckError::Token {
            gate: gate.name.clone(),
            source,
        })?;
    let secrets: Vec<&str> = token.iter().map(String::as_str).collect();
    let verdict = answer(gate, &url, token.as_deref(), client);
    Ok(match verdict {
        Verdict::Healthy => Verdict::Healthy,
        Verdict::Unhealthy(why) => Verdict::Unhealthy(redact(&why, &secrets)),
        Verdict::Unknown(why) => Verdict::Unknown(redact(&why, &secrets)),
    })
}

/// How many checks run at once.
pub const PARALLEL: usize = 8;

/// Sends `checks` (at most [`PARALLEL`] at once, each within [`TIMEOUT`])
/// and gives their answers in order. A gate that cannot be checked as
/// configured (an unbound credential, a URL outside its origins, an
/// unreadable token) answers "not yet", with the reason.
pub fn check_all(rollout: &Rollout, checks: &[Check], creds: &Credentials) -> Vec<Verdict> {
    let client = match GateClient::new(TIMEOUT) {
        Ok(client) => client,
        Err(e) => {
            return checks
                .iter()
                .map(|_| Verdict::Unknown(e.to_string()))
                .collect();
        }
    };
    let one = |c: &Check| -> Verdict {
        let Some(gate) = rollout.gate(&c.gate) else {
            return Verdict::Unknown(format!("gate `{}` is not defined", c.gate));
        };
        match check(gate, &c.env, &c.version, creds, &client) {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::warn!(environment = %c.env, gate = %c.gate, error = %e, "cannot check the health gate");
                Verdict::Unknown(e.to_string().lines().next().unwrap_or("").to_string())
            }
        }
    };
    let mut out = Vec::with_capacity(checks.len());
    for chunk in checks.chunks(PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|c| s.spawn(|| one(c))).collect();
            for h in handles {
                out.push(
                    h.join()
                        .unwrap_or_else(|_| Verdict::Unknown("the check panicked".to_string())),
                );
            }
        });
    }
    out
}

fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s, REDACTED))
}

/// Sends the request and judges the answer.
fn answer(gate: &Gate, url: &Url, token: Option<&str>, client: &GateClient) -> Verdict {
    let started = Instant::now();
    let mut request = client
        .client
        .get(url.clone())
        .header("Accept", "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let shown = outbound::origin(url);
    let mut response = match request.send() {
        Ok(response) => response,
        Err(e) => {
            let why = if let Some(refused) = outbound::refused_redirect(&e) {
                refused
            } else if e.is_timeout() {
                format!(
                    "`{shown}` did not answer within {}s",
                    client.timeout.as_secs_f64()
                )
            } else if e.is_connect() {
                format!("cannot connect to `{shown}`")
            } else {
                format!("the request to `{shown}` failed")
            };
            return Verdict::Unknown(why);
        }
    };
    let status = response.status().as_u16();
    if response.content_length().is_some_and(|n| n > MAX_BODY) {
        return Verdict::Unknown(format!(
            "the answer is larger than the {MAX_BODY} bytes allowed"
        ));
    }
    match outbound::read_body(&mut response, started, client.timeout, MAX_BODY) {
        Ok(body) => gate.judge(status, &body),
        Err(BodyError::Deadline(_)) => Verdict::Unknown(format!(
            "`{shown}` did not answer within {}s",
            client.timeout.as_secs_f64()
        )),
        Err(e) => Verdict::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    const TOKEN: &str = "gate-token-s3cr3t-0123456789";

    /// One request a test server saw: its path and `Authorization` header.
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// A server on 127.0.0.1 answering Argo CD style by the last path
    /// segment: `healthy`, `degraded`, `echo` (its message echoes the
    /// `Authorization` header), `error` (500), `slow` (answers after 3 s),
    /// `redirect` (302 to `redirect_to`).
    fn server(redirect_to: Option<String>) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let redirect_to = redirect_to.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut first = String::new();
                    reader.read_line(&mut first).unwrap();
                    let path = first.split(' ').nth(1).unwrap_or("").to_string();
                    let mut auth = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':')
                            && k.eq_ignore_ascii_case("authorization")
                        {
                            auth = Some(v.trim().to_string());
                        }
                    }
                    log.lock().unwrap().push((path.clone(), auth.clone()));
                    let app = |health: &str, message: &str| {
                        format!(
                            r#"{{"status":{{"health":{{"status":"{health}","message":"{message}"}},"sync":{{"status":"Synced"}}}}}}"#
                        )
                    };
                    let (status, extra, body) = match path.rsplit('/').next().unwrap_or("") {
                        "healthy" => ("200 OK", String::new(), app("Healthy", "")),
                        "degraded" => ("200 OK", String::new(), app("Degraded", "crash loop")),
                        "echo" => (
                            "200 OK",
                            String::new(),
                            app("Degraded", auth.as_deref().unwrap_or("")),
                        ),
                        "error" => ("500 Internal Server Error", String::new(), "oops".into()),
                        "slow" => {
                            std::thread::sleep(Duration::from_secs(3));
                            ("200 OK", String::new(), app("Healthy", ""))
                        }
                        "redirect" => (
                            "302 Found",
                            format!("Location: {}\r\n", redirect_to.clone().unwrap_or_default()),
                            String::new(),
                        ),
                        _ => ("404 Not Found", String::new(), "{}".into()),
                    };
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        (origin, seen)
    }

    fn argocd_gate(server: &str, credential: Option<&str>) -> Gate {
        let credential = credential
            .map(|c| format!(", credential: {c}"))
            .unwrap_or_default();
        crate::config::parse_required(
            "hydrant.yaml",
            &format!(
                "name: argocd-healthy\nargocd: {{application: \"{{env}}\", server: \"{server}\"{credential}}}\n"
            ),
        )
        .unwrap()
    }

    fn credentials(dir: &Path, origins: &[&str]) -> Credentials {
        std::fs::write(dir.join("argocd-token"), format!("{TOKEN}\n")).unwrap();
        let origins: Vec<String> = origins.iter().map(|o| format!("\"{o}\"")).collect();
        let text = format!(
            "interval: 5m\ncredentials:\n  argocd:\n    tokenFile: argocd-token\n    origins: [{}]\n",
            origins.join(", ")
        );
        Credentials::parse(&dir.join("operator.yaml"), &text, true).unwrap()
    }

    fn client() -> GateClient {
        GateClient::new(Duration::from_millis(700)).unwrap()
    }

    #[test]
    fn answers_of_a_real_server_become_verdicts_and_the_token_goes_to_the_bound_origin_only() {
        let (other, other_seen) = server(None);
        let (origin, seen) = server(Some(format!("{other}/api/v1/applications/healthy")));
        let dir = tempfile::tempdir().unwrap();
        let creds = credentials(dir.path(), &[&origin]);
        let gate = argocd_gate(&origin, Some("argocd"));
        let client = client();
        let check = |env: &str| check(&gate, env, "0.62.1", &creds, &client).unwrap();

        assert_eq!(check("healthy"), Verdict::Healthy);
        assert_eq!(
            check("degraded"),
            Verdict::Unhealthy("Argo CD reports the Application `Degraded`: crash loop".into())
        );
        let server_error = check("error");
        assert!(
            matches!(&server_error, Verdict::Unknown(w) if w.contains("500")),
            "{server_error:?}"
        );
        let started = Instant::now();
        let slow = check("slow");
        assert!(
            matches!(&slow, Verdict::Unknown(w) if w.contains("did not answer")),
            "{slow:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the timeout held"
        );
        let redirect = check("redirect");
        assert!(
            matches!(&redirect, Verdict::Unknown(w) if w.contains("refused a redirect")),
            "{redirect:?}"
        );
        // An answer that echoes the token shows it redacted.
        let echo = check("echo");
        assert!(
            matches!(&echo, Verdict::Unhealthy(w) if w.contains(REDACTED) && !w.contains(TOKEN)),
            "{echo:?}"
        );

        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert!(
            seen.iter()
                .all(|(path, auth)| path.starts_with("/api/v1/applications/")
                    && auth.as_deref() == Some(&format!("Bearer {TOKEN}") as &str))
        );
        assert!(
            other_seen.lock().unwrap().is_empty(),
            "nothing reached the other origin"
        );
    }

    #[test]
    fn an_unreachable_gate_is_not_yet_and_a_gate_without_credential_sends_no_token() {
        let (origin, seen) = server(None);
        let creds = Credentials::default();
        let gate = argocd_gate(&origin, None);
        assert_eq!(
            check(&gate, "healthy", "1", &creds, &client()).unwrap(),
            Verdict::Healthy
        );
        assert_eq!(seen.lock().unwrap()[0].1, None);
        // A port nobody listens on.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let gate = argocd_gate(&format!("http://{closed}"), None);
        let v = check(&gate, "healthy", "1", &creds, &client()).unwrap();
        assert!(
            matches!(&v, Verdict::Unknown(w) if w.contains("cannot connect")),
            "{v:?}"
        );
    }

    #[test]
    fn a_gate_outside_its_credentials_origins_is_refused_before_any_request() {
        let (origin, seen) = server(None);
        let dir = tempfile::tempdir().unwrap();
        let creds = credentials(dir.path(), &["https://argocd.example.com"]);
        let gate = argocd_gate(&origin, Some("argocd"));
        let e = check(&gate, "healthy", "1", &creds, &client()).unwrap_err();
        assert!(matches!(e, CheckError::OutsideOrigins { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("`https://argocd.example.com:443`") && text.contains(&origin),
            "{text}"
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn a_gate_naming_an_unbound_credential_is_an_error_naming_it() {
        let gate = argocd_gate("https://argocd.example.com", Some("argo-prod"));
        let e = check(&gate, "healthy", "1", &Credentials::default(), &client()).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CheckError::Unbound { .. }), "{text}");
        assert!(
            text.contains("`argo-prod`") && text.contains("argocd-healthy"),
            "{text}"
        );
    }

    #[test]
    fn an_unreadable_token_file_is_named_never_shown() {
        let (origin, seen) = server(None);
        let dir = tempfile::tempdir().unwrap();
        let creds = credentials(dir.path(), &[&origin]);
        std::fs::write(
            dir.path().join("argocd-token"),
            format!("{TOKEN}\nsecond line\n"),
        )
        .unwrap();
        let e = check(
            &argocd_gate(&origin, Some("argocd")),
            "healthy",
            "1",
            &creds,
            &client(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("argocd-token") && !text.contains(TOKEN),
            "{text}"
        );
        assert!(seen.lock().unwrap().is_empty());
    }

    #[test]
    fn credentials_are_the_operators_and_bind_to_origins() {
        let path = Path::new("/etc/hydrant/operator.yaml");
        let text = "credentials:\n  argocd:\n    tokenFile: argocd-token\n    origins: [\"https://argocd.example.com\"]\n";
        let creds = Credentials::parse(path, text, true).unwrap();
        let binding = creds.get("argocd").unwrap();
        assert_eq!(binding.token_file, Path::new("/etc/hydrant/argocd-token"));
        assert_eq!(binding.origins[0].as_str(), "https://argocd.example.com/");
        // The repository's own hydrant.yaml may not bind one.
        let e = Credentials::parse(Path::new("hydrant.yaml"), text, false).unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.message.contains("operator setting"), "{e}");
        // An empty file, or one without the key, binds nothing.
        assert_eq!(
            Credentials::parse(path, "", true).unwrap(),
            Credentials::default()
        );
        assert_eq!(
            Credentials::parse(path, "interval: 5m\n", false).unwrap(),
            Credentials::default()
        );
        for (bad, says) in [
            (
                "credentials:\n  argocd:\n    tokenFile: t\n    origins: [\"https://a.example.com/api\"]\n",
                "not an origin",
            ),
            (
                "credentials:\n  argocd:\n    tokenFile: t\n    origins: [\"https://u:p@a.example.com\"]\n",
                "credential",
            ),
            (
                "credentials:\n  argocd:\n    tokenFile: t\n    origins: []\n",
                "list the origins",
            ),
            (
                "credentials:\n  argocd:\n    token: abc\n    origins: [\"https://a.example.com\"]\n",
                "unknown field `token`",
            ),
        ] {
            let e = Credentials::parse(path, bad, true).unwrap_err();
            assert!(e.to_string().contains(says), "{bad}: {e}");
            assert!(
                !e.to_string().contains("abc") && !e.to_string().contains("u:p"),
                "{e}"
            );
        }
    }
}
