//! Health gates (`rollout.gates` in `hydrant.yaml`): the checks that decide
//! whether the environments that took a release are healthy, so its wave may
//! move on, or broken, so its rollout halts.
//!
//! ```yaml
//! rollout:
//!   gates:
//!     - name: api-healthy
//!       http:
//!         url: "https://status.example.com/envs/{env}/health?version={version}"
//!         expect: {path: status, equals: ok}     # or {path, oneOf: [..]}, or {status: 200}
//!       failAfter: 3
//!     - name: argocd-healthy
//!       argocd: {application: "wandb-{env}", server: "https://argocd.example.com", credential: argocd}
//!     - name: no-errors
//!       prometheus:
//!         server: "https://prometheus.example.com"
//!         query: 'sum(rate(http_errors_total{namespace="wandb-{env}"}[5m])) < 1'
//! ```
//!
//! This module decides, and does no IO: a gate's definition, the URL of one
//! check (`{env}` and `{version}` substituted into the parsed URL, each value
//! encoded as one path segment or one query value, so that no value can
//! change the host, the path's segments or the query's parameters), the
//! [`Verdict`] of one answer, and the accounting of answers across cycles
//! ([`GateTrack`]). Sending the request is [`crate::gates`]'s job; which
//! credential a gate may use is the operator's (the repository only names it).
//!
//! Only a definite answer fails a gate: a server that cannot be reached,
//! times out, answers 5xx, refuses the credential or sends something that
//! cannot be read says "not yet" ([`Verdict::Unknown`]), never "failed", so
//! a flaky monitor cannot roll a release back. A gate has failed for an
//! environment after `failAfter` (default 3) definite failures in a row.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

/// The default of `failAfter`.
pub const DEFAULT_FAIL_AFTER: u32 = 3;

/// One entry of `rollout.gates` as written. Deserializing a [`Gate`] checks
/// it with [`GateSpec::validate`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GateSpec {
    pub name: String,
    #[serde(default)]
    pub http: Option<HttpSpec>,
    #[serde(default)]
    pub argocd: Option<ArgoCdSpec>,
    #[serde(default)]
    pub prometheus: Option<PrometheusSpec>,
    #[serde(default)]
    pub fail_after: Option<u32>,
}

/// `http:`: any URL answering JSON or a status code.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpSpec {
    pub url: String,
    /// The name of a credential the operator binds to a token and origins.
    #[serde(default)]
    pub credential: Option<String>,
    pub expect: ExpectSpec,
}

/// `expect:` of an `http:` gate.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExpectSpec {
    /// A dotted path into the JSON answer (`status.health.status`; a number
    /// indexes a list).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    /// The status code of a healthy answer, when the body does not matter.
    #[serde(default)]
    pub status: Option<u16>,
}

/// `argocd:`: an Argo CD Application is healthy and synced.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArgoCdSpec {
    /// The Application's name, such as `wandb-{env}`.
    pub application: String,
    /// The Argo CD server, such as `https://argocd.example.com`.
    pub server: String,
    #[serde(default)]
    pub credential: Option<String>,
}

/// `prometheus:`: an instant query returns a non-empty vector.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrometheusSpec {
    pub server: String,
    /// PromQL; `{env}` and `{version}` are substituted.
    pub query: String,
    #[serde(default)]
    pub credential: Option<String>,
}

/// A checked gate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "GateSpec")]
pub struct Gate {
    pub name: String,
    /// Where each check is sent.
    pub url: UrlTemplate,
    /// The credential's name, bound by the operator.
    pub credential: Option<String>,
    pub expect: Expect,
    pub fail_after: u32,
}

/// What a healthy answer is.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// This status code.
    Status(u16),
    /// The value at `path` is one of `values`.
    Json {
        path: Vec<String>,
        values: Vec<Value>,
    },
    /// An Argo CD Application: health `Healthy` and sync `Synced`.
    ArgoCd,
    /// A Prometheus instant query: a non-empty vector.
    PrometheusVector,
}

/// A gate definition that cannot be used, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct GateError {
    pub key: &'static str,
    pub message: String,
}

fn refuse(key: &'static str, message: impl Into<String>) -> GateError {
    GateError {
        key,
        message: message.into(),
    }
}

impl GateSpec {
    /// Checks the definition (one kind of check, URLs, placeholders,
    /// expectations, `failAfter`) and returns it as a [`Gate`].
    pub fn validate(&self) -> Result<Gate, GateError> {
        if !crate::names::is_valid(&self.name) {
            return Err(refuse(
                "name",
                "a gate's name is 1 to 253 of `A-Z a-z 0-9 . _ -`, such as `argocd-healthy`",
            ));
        }
        let fail_after = self.fail_after.unwrap_or(DEFAULT_FAIL_AFTER);
        if fail_after == 0 {
            return Err(refuse("failAfter", "a gate fails after 1 or more failures"));
        }
        let (url, credential, expect) = match (&self.http, &self.argocd, &self.prometheus) {
            (Some(http), None, None) => (
                UrlTemplate::parse(&http.url, false).map_err(|m| refuse("http.url", m))?,
                http.credential.clone(),
                http.expect.validate()?,
            ),
            (None, Some(argo), None) => {
                let server = server("argocd.server", &argo.server)?;
                let mut url = server.with_segments(&["api", "v1", "applications"]);
                if argo.application.contains('/') || argo.application.trim().is_empty() {
                    return Err(refuse(
                        "argocd.application",
                        "an Application's name is one word, such as `wandb-{env}`",
                    ));
                }
                check_placeholders(&argo.application)
                    .map_err(|m| refuse("argocd.application", m))?;
                url.segments.push(encode_literal(&argo.application));
                (url, argo.credential.clone(), Expect::ArgoCd)
            }
            (None, None, Some(prom)) => {
                let server = server("prometheus.server", &prom.server)?;
                let mut url = server.with_segments(&["api", "v1", "query"]);
                check_placeholders(&prom.query).map_err(|m| refuse("prometheus.query", m))?;
                url.query.push(("query".to_string(), prom.query.clone()));
                url.tokens_only = true;
                (url, prom.credential.clone(), Expect::PrometheusVector)
            }
            _ => {
                return Err(refuse(
                    "http",
                    "a gate has exactly one of `http`, `argocd` and `prometheus`",
                ));
            }
        };
        if let Some(name) = &credential
            && !crate::names::is_valid(name)
        {
            return Err(refuse(
                "credential",
                "a credential's name is 1 to 253 of `A-Z a-z 0-9 . _ -`, such as `argocd`",
            ));
        }
        Ok(Gate {
            name: self.name.clone(),
            url,
            credential,
            expect,
            fail_after,
        })
    }
}

impl TryFrom<GateSpec> for Gate {
    type Error = GateError;

    fn try_from(spec: GateSpec) -> Result<Gate, GateError> {
        spec.validate()
    }
}

/// A preset's `server:`: an origin and maybe a path prefix, no query.
fn server(key: &'static str, text: &str) -> Result<UrlTemplate, GateError> {
    let url = UrlTemplate::parse(text, false).map_err(|m| refuse(key, m))?;
    if !url.query.is_empty() || url.segments.iter().any(|s| s.contains("%7B")) {
        return Err(refuse(
            key,
            "a server is a base URL, such as `https://argocd.example.com`, without a query or placeholders",
        ));
    }
    Ok(url)
}

impl ExpectSpec {
    fn validate(&self) -> Result<Expect, GateError> {
        match self {
            ExpectSpec {
                status: Some(code),
                path: None,
                equals: None,
                one_of: None,
            } => {
                if !(100..=599).contains(code) {
                    return Err(refuse("http.expect.status", "a status code is 100 to 599"));
                }
                Ok(Expect::Status(*code))
            }
            ExpectSpec {
                status: None,
                path: Some(path),
                equals,
                one_of,
            } => {
                let values = match (equals, one_of) {
                    (Some(v), None) => vec![v.clone()],
                    (None, Some(vs)) if !vs.is_empty() => vs.clone(),
                    _ => {
                        return Err(refuse(
                            "http.expect",
                            "give `path` with one of `equals` and `oneOf` (a non-empty list)",
                        ));
                    }
                };
                if values.iter().any(|v| v.is_object() || v.is_array()) {
                    return Err(refuse(
                        "http.expect",
                        "`equals` and `oneOf` take plain values: text, numbers, true or false",
                    ));
                }
                let path: Vec<String> = path.split('.').map(str::to_string).collect();
                if path.iter().any(String::is_empty) {
                    return Err(refuse(
                        "http.expect.path",
                        "a path is keys joined by dots, such as `status.health.status`",
                    ));
                }
                Ok(Expect::Json { path, values })
            }
            _ => Err(refuse(
                "http.expect",
                "expect `{path, equals}`, `{path, oneOf: [..]}` or `{status: 200}`",
            )),
        }
    }
}

/// The placeholders a template may hold.
const PLACEHOLDERS: [&str; 2] = ["env", "version"];

/// Refuses `{name}` placeholders other than `{env}` and `{version}`, so a
/// typo is an error rather than a literal. Braces around anything that is not
/// a plain word (PromQL's `{job="api"}`) are no placeholder.
fn check_placeholders(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(close) = after.find('}') {
            let word = &after[..close];
            let is_word =
                !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_word && !PLACEHOLDERS.contains(&word) {
                return Err(format!(
                    "`{{{word}}}` is not a placeholder: use `{{env}}` or `{{version}}`"
                ));
            }
        }
        rest = after;
    }
    Ok(())
}

/// What is encoded in a path segment: all but letters, digits and `-._~`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A literal path segment of a preset (such as `wandb-{env}`), encoded as
/// a parsed URL has it (a placeholder becomes `%7Benv%7D`).
fn encode_literal(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// A gate's URL with `{env}` and `{version}` still to fill, kept as its
/// parts: the origin is fixed, each path segment stays one segment and each
/// query parameter one parameter whatever the values.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlTemplate {
    /// Scheme, host and port only.
    base: Url,
    /// Path segments as the parsed URL has them (percent-encoded; a
    /// placeholder is `%7Benv%7D`).
    segments: Vec<String>,
    /// Query parameters, decoded.
    query: Vec<(String, String)>,
    /// Values must be tokens of `A-Z a-z 0-9 . _ + -` (substituted into
    /// PromQL, where a quote could change the query).
    tokens_only: bool,
}

impl UrlTemplate {
    /// Reads a URL with placeholders in its path or query.
    pub fn parse(text: &str, tokens_only: bool) -> Result<UrlTemplate, String> {
        crate::auth::check_url(text).map_err(|e| e.to_string())?;
        let url = Url::parse(text.trim()).map_err(|e| {
            format!(
                "`{}` is not a URL: {e}",
                crate::auth::redact_url(text).escape_debug()
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("`{url}` is not an http or https URL with a host"));
        }
        let host = url.host_str().unwrap_or("");
        if host.contains(['{', '}']) || host.to_ascii_lowercase().contains("%7b") {
            return Err(format!(
                "`{url}` has a placeholder in its host; `{{env}}` and `{{version}}` may stand only in the path or the query"
            ));
        }
        if url.fragment().is_some() {
            return Err(format!(
                "`{url}` has a fragment (`#…`); a gate's URL may not"
            ));
        }
        check_placeholders(&percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy())?;
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        for (k, v) in &query {
            check_placeholders(k)?;
            check_placeholders(v)?;
        }
        let segments = url
            .path_segments()
            .map(|s| s.map(str::to_string).collect())
            .unwrap_or_default();
        let mut base = url.clone();
        base.set_path("");
        base.set_query(None);
        Ok(UrlTemplate {
            base,
            segments,
            query,
            tokens_only,
        })
    }

    /// The template's origin (`scheme://host:port`): where a credential goes.
    pub fn origin(&self) -> &Url {
        &self.base
    }

    /// This template with `more` segments after its own (a trailing empty
    /// segment dropped).
    fn with_segments(mut self, more: &[&str]) -> UrlTemplate {
        if self.segments.last().is_some_and(String::is_empty) {
            self.segments.pop();
        }
        self.segments.extend(more.iter().map(|s| s.to_string()));
        self
    }

    /// The URL of one check: `{env}` and `{version}` filled in, each value
    /// encoded as part of one path segment or one query value.
    pub fn render(&self, env: &str, version: &str) -> Result<Url, String> {
        for (name, value) in [("environment", env), ("version", version)] {
            if value.is_empty() || value.chars().any(char::is_control) {
                return Err(format!("the {name} is empty or holds a control character"));
            }
            let token = value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
            if self.tokens_only && !token {
                return Err(format!(
                    "the {name} `{}` cannot go into a query: it holds characters other than `A-Z a-z 0-9 . _ + -`",
                    value.escape_debug()
                ));
            }
        }
        let encoded = |value: &str| utf8_percent_encode(value, SEGMENT).to_string();
        let (env_segment, version_segment) = (encoded(env), encoded(version));
        let mut segments = Vec::with_capacity(self.segments.len());
        for segment in &self.segments {
            let filled = segment
                .replace("%7Benv%7D", &env_segment)
                .replace("%7Bversion%7D", &version_segment);
            // `.` and `..` (or their escapes) are not segments but moves.
            let decoded = percent_encoding::percent_decode_str(&filled).decode_utf8_lossy();
            if filled != *segment && matches!(decoded.as_ref(), "." | "..") {
                return Err(format!(
                    "a value makes the path segment `{}`, which would move up the path",
                    decoded.escape_debug()
                ));
            }
            segments.push(filled);
        }
        let fill = |text: &str| text.replace("{env}", env).replace("{version}", version);
        let mut url = self.base.clone();
        url.set_path(&format!("/{}", segments.join("/")));
        if !self.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(self.query.iter().map(|(k, v)| (fill(k), fill(v))));
        }
        // The structure was decided on the template; check it held.
        let same = crate::outbound::same_origin(&url, &self.base)
            && url.path_segments().map(Iterator::count) == Some(segments.len().max(1))
            && url.query_pairs().count() == self.query.len()
            && url.fragment().is_none();
        if !same {
            return Err("the values would change the URL's structure".to_string());
        }
        Ok(url)
    }
}

/// The verdict of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// A definite failure, with why.
    Unhealthy(String),
    /// No verdict yet (unreachable, timeout, 5xx, refused, unreadable), with why.
    Unknown(String),
}

/// A server's text made fit to show.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    crate::outbound::server_text(&text, &[])
}

/// Equality of plain JSON values as YAML writes them: `200` equals `"200"`.
fn same_scalar(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) | Value::Null => Some(v.to_string()),
        _ => None,
    };
    matches!((text(a), text(b)), (Some(x), Some(y)) if x == y)
}

/// The value at a dotted path (a number indexes a list).
fn at_path<'v>(value: &'v Value, path: &[impl AsRef<str>]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key.as_ref()),
        Value::Array(items) => items.get(key.as_ref().parse::<usize>().ok()?),
        _ => None,
    })
}

impl Gate {
    /// The verdict of one answer: its status code and body.
    pub fn judge(&self, status: u16, body: &[u8]) -> Verdict {
        let unknown = |why: String| Verdict::Unknown(why);
        match status {
            500..=599 | 408 | 429 => {
                return unknown(format!("the server answered {status}; asking again later"));
            }
            401 | 403 | 407 => {
                return unknown(format!(
                    "the server refused the request ({status}); check the credential the operator bound to this gate"
                ));
            }
            _ => {}
        }
        if let Expect::Status(want) = self.expect {
            return if status == want {
                Verdict::Healthy
            } else {
                Verdict::Unhealthy(format!("the server answered {status}, not {want}"))
            };
        }
        if !(200..300).contains(&status) {
            return unknown(format!(
                "the server answered {status}, with no health to read"
            ));
        }
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return unknown("the answer is not JSON".to_string());
        };
        match &self.expect {
            Expect::Status(_) => Verdict::Healthy,
            Expect::Json { path, values } => {
                let dotted = path.join(".");
                match at_path(&json, path) {
                    None => unknown(format!("the answer has no `{dotted}`")),
                    Some(v) if v.is_object() || v.is_array() => {
                        unknown(format!("`{dotted}` is not a plain value in the answer"))
                    }
                    Some(v) if values.iter().any(|want| same_scalar(v, want)) => Verdict::Healthy,
                    Some(v) => {
                        let wanted: Vec<String> =
                            values.iter().map(|w| format!("`{}`", shown(w))).collect();
                        Verdict::Unhealthy(format!(
                            "`{dotted}` is `{}`, not {}",
                            shown(v),
                            wanted.join(" or ")
                        ))
                    }
                }
            }
            Expect::ArgoCd => argocd(&json),
            Expect::PrometheusVector => prometheus(&json),
        }
    }
}

/// An Argo CD Application: `Healthy` and `Synced` pass; `Degraded` fails;
/// anything else (`Progressing`, `Suspended`, `Missing`, out of sync) is not
/// yet, since the release may still be applying.
fn argocd(json: &Value) -> Verdict {
    let text = |path: &[&str]| at_path(json, path).and_then(Value::as_str);
    let Some(health) = text(&["status", "health", "status"]) else {
        return Verdict::Unknown("the answer has no `status.health.status`".to_string());
    };
    let sync = text(&["status", "sync", "status"]).unwrap_or("unknown");
    match (health, sync) {
        ("Healthy", "Synced") => Verdict::Healthy,
        ("Degraded", _) => {
            let message = text(&["status", "health", "message"])
                .map(|m| format!(": {}", crate::outbound::server_text(m, &[])))
                .unwrap_or_default();
            Verdict::Unhealthy(format!(
                "Argo CD reports the Application `Degraded`{message}"
            ))
        }
        ("Healthy", sync) => Verdict::Unknown(format!(
            "the Application is healthy but `{}`, not `Synced` yet",
            crate::outbound::server_text(sync, &[])
        )),
        (health, _) => Verdict::Unknown(format!(
            "the Application is `{}`, not `Healthy` yet",
            crate::outbound::server_text(health, &[])
        )),
    }
}

/// A Prometheus instant query: a non-empty vector passes, an empty one fails.
fn prometheus(json: &Value) -> Verdict {
    let text = |path: &[&str]| at_path(json, path).and_then(Value::as_str);
    if text(&["status"]) != Some("success") {
        let error = text(&["error"])
            .map(|e| format!(": {}", crate::outbound::server_text(e, &[])))
            .unwrap_or_default();
        return Verdict::Unknown(format!("Prometheus did not answer the query{error}"));
    }
    if text(&["data", "resultType"]) != Some("vector") {
        return Verdict::Unknown(
            "the query's result is not an instant vector; write a query that returns one"
                .to_string(),
        );
    }
    match at_path(json, &["data", "result"]).and_then(Value::as_array) {
        Some(series) if !series.is_empty() => Verdict::Healthy,
        Some(_) => Verdict::Unhealthy("the query returned no series".to_string()),
        None => Verdict::Unknown("the answer has no `data.result` list".to_string()),
    }
}

/// Where one gate stands for one environment and release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateState {
    /// The latest answer was healthy.
    Passing,
    /// No verdict yet, or failures fewer than `failAfter`: the wave waits.
    Pending(String),
    /// `failAfter` definite failures in a row: the rollout halts.
    Failed(String),
}

/// The answers of one gate for one environment across cycles, for the
/// release the environment runs: definite failures in a row (an unknown
/// answer neither adds to them nor resets them; a healthy one resets them).
/// Once failed it stays failed for that release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateTrack {
    /// The release the answers are about.
    pub version: String,
    /// Definite failures in a row.
    pub failures: u32,
    /// The latest answer.
    pub last: Option<Verdict>,
    /// Why it failed, once it has.
    pub failed: Option<String>,
}

impl GateTrack {
    /// Records one answer about `version` (a new version starts afresh) and
    /// says where the gate stands.
    pub fn record(&mut self, version: &str, verdict: Verdict, fail_after: u32) -> GateState {
        if self.version != version {
            *self = GateTrack {
                version: version.to_string(),
                ..GateTrack::default()
            };
        }
        match &verdict {
            Verdict::Healthy if self.failed.is_none() => self.failures = 0,
            Verdict::Unhealthy(why) if self.failed.is_none() => {
                self.failures += 1;
                if self.failures >= fail_after {
                    self.failed = Some(format!("{why} ({} failures in a row)", self.failures));
                }
            }
            _ => {}
        }
        self.last = Some(verdict);
        self.state(fail_after)
    }

    /// Where the gate stands after the answers recorded.
    pub fn state(&self, fail_after: u32) -> GateState {
        if let Some(why) = &self.failed {
            return GateState::Failed(why.clone());
        }
        match &self.last {
            None => GateState::Pending("not checked yet".to_string()),
            Some(Verdict::Healthy) => GateState::Passing,
            Some(Verdict::Unknown(why)) => GateState::Pending(format!("not yet: {why}")),
            Some(Verdict::Unhealthy(why)) => GateState::Pending(format!(
                "{why} ({} of {fail_after} failures before the gate fails)",
                self.failures
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(yaml: &str) -> Gate {
        crate::config::parse_required::<Gate>("hydrant.yaml", yaml).unwrap()
    }

    fn http_spec(url: &str) -> GateSpec {
        GateSpec {
            name: "g".into(),
            http: Some(HttpSpec {
                url: url.into(),
                credential: None,
                expect: ExpectSpec {
                    status: Some(200),
                    ..ExpectSpec::default()
                },
            }),
            ..GateSpec::default()
        }
    }

    fn http(url: &str) -> Gate {
        http_spec(url).validate().unwrap()
    }

    #[test]
    fn placeholders_are_filled_as_encoded_values() {
        let g = http("https://health.example.com/envs/{env}/v-{version}?release={version}&x=1");
        let url = g.url.render("prod-eu", "0.62.1+b7").unwrap();
        assert_eq!(
            url.as_str(),
            "https://health.example.com/envs/prod-eu/v-0.62.1%2Bb7?release=0.62.1%2Bb7&x=1"
        );
    }

    #[test]
    fn a_hostile_environment_or_version_cannot_change_host_path_or_query() {
        let g = http("https://health.example.com/envs/{env}/health?version={version}");
        let hostile = [
            "evil.example.com/x",
            "x/../../admin",
            "x?admin=true",
            "x#frag",
            "@evil.example.com",
            "a&b=c",
            "%2e%2e",
            "x y",
            "ünï",
        ];
        for value in hostile {
            for (env, version) in [(value, "1.0"), ("prod", value)] {
                let url = g.url.render(env, version).unwrap();
                assert_eq!(url.host_str(), Some("health.example.com"), "{url}");
                let segments: Vec<&str> = url.path_segments().unwrap().collect();
                assert_eq!(segments.len(), 3, "{url}");
                assert_eq!((segments[0], segments[2]), ("envs", "health"), "{url}");
                let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                assert_eq!(
                    query,
                    vec![("version".to_string(), version.to_string())],
                    "{url}"
                );
                assert_eq!(url.fragment(), None);
                // The value reads back whole from its one segment.
                let decoded = percent_encoding::percent_decode_str(segments[1]).decode_utf8_lossy();
                assert_eq!(decoded, env, "{url}");
            }
        }
        for dots in [".", ".."] {
            let error = g.url.render(dots, "1.0").unwrap_err();
            assert!(error.contains("move up the path"), "{error}");
        }
        assert!(g.url.render("", "1.0").is_err());
        assert!(g.url.render("a\nb", "1.0").is_err());
    }

    #[test]
    fn a_placeholder_in_the_host_or_an_unknown_one_is_refused() {
        for (url, says) in [
            ("https://{env}.example.com/health", "host"),
            (
                "https://example.com/{enviroment}/health",
                "`{enviroment}` is not a placeholder",
            ),
            (
                "https://example.com/health?e={enviroment}",
                "not a placeholder",
            ),
            ("https://example.com/health#{env}", "fragment"),
            ("https://user:pw@example.com/health", "credential"),
            ("ftp://example.com/health", "http or https"),
            ("not a url", "not a URL"),
        ] {
            let e = http_spec(url).validate().unwrap_err();
            assert_eq!(e.key, "http.url", "{url}: {e}");
            assert!(e.message.contains(says), "{url}: {e}");
            assert!(!e.message.contains("pw"), "{e}");
        }
    }

    #[test]
    fn the_argocd_preset_asks_for_the_application_and_wants_it_healthy_and_synced() {
        let g = gate(
            "name: argocd-healthy\nargocd: {application: \"wandb-{env}\", server: \"https://argocd.example.com/\", credential: argocd}\n",
        );
        assert_eq!(g.fail_after, 3);
        assert_eq!(g.credential.as_deref(), Some("argocd"));
        assert_eq!(
            g.url.render("prod", "0.62.1").unwrap().as_str(),
            "https://argocd.example.com/api/v1/applications/wandb-prod"
        );
        let answer = |health: &str, sync: &str| {
            format!(
                r#"{{"metadata":{{"name":"wandb-prod"}},"status":{{"health":{{"status":"{health}","message":"pod crash-looping"}},"sync":{{"status":"{sync}"}}}}}}"#
            )
        };
        assert_eq!(
            g.judge(200, answer("Healthy", "Synced").as_bytes()),
            Verdict::Healthy
        );
        let degraded = g.judge(200, answer("Degraded", "Synced").as_bytes());
        assert_eq!(
            degraded,
            Verdict::Unhealthy(
                "Argo CD reports the Application `Degraded`: pod crash-looping".into()
            )
        );
        for (health, sync) in [
            ("Healthy", "OutOfSync"),
            ("Progressing", "Synced"),
            ("Missing", "OutOfSync"),
        ] {
            let v = g.judge(200, answer(health, sync).as_bytes());
            assert!(matches!(v, Verdict::Unknown(_)), "{health} {sync}: {v:?}");
        }
        assert!(matches!(g.judge(404, b"{}"), Verdict::Unknown(_)));
        assert!(matches!(g.judge(403, b""), Verdict::Unknown(w) if w.contains("credential")));
        // A server with a path prefix keeps it.
        let g = gate(
            "name: a\nargocd: {application: \"app-{env}\", server: \"https://ops.example.com/argocd\"}\n",
        );
        assert_eq!(
            g.url.render("dev", "1").unwrap().as_str(),
            "https://ops.example.com/argocd/api/v1/applications/app-dev"
        );
    }

    #[test]
    fn the_prometheus_preset_wants_a_non_empty_vector() {
        let g = gate(
            "name: no-errors\nprometheus:\n  server: https://prometheus.example.com\n  query: 'sum(rate(errors_total{namespace=\"wandb-{env}\"}[5m])) < 1'\nfailAfter: 5\n",
        );
        assert_eq!(g.fail_after, 5);
        let url = g.url.render("prod", "0.62.1").unwrap();
        assert_eq!(url.path(), "/api/v1/query");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            query,
            vec![(
                "query".to_string(),
                "sum(rate(errors_total{namespace=\"wandb-prod\"}[5m])) < 1".to_string()
            )]
        );
        // A value with a quote could change the PromQL: refused.
        let e = g.url.render("prod\"} or vector(1) #", "1").unwrap_err();
        assert!(e.contains("cannot go into a query"), "{e}");
        let vector = |result: &str| {
            format!(r#"{{"status":"success","data":{{"resultType":"vector","result":{result}}}}}"#)
        };
        assert_eq!(
            g.judge(
                200,
                vector(r#"[{"metric":{},"value":[1,"0.2"]}]"#).as_bytes()
            ),
            Verdict::Healthy
        );
        assert_eq!(
            g.judge(200, vector("[]").as_bytes()),
            Verdict::Unhealthy("the query returned no series".into())
        );
        for answer in [
            r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#,
            "<html>",
        ] {
            assert!(
                matches!(g.judge(200, answer.as_bytes()), Verdict::Unknown(_)),
                "{answer}"
            );
        }
    }

    #[test]
    fn an_http_gate_checks_a_dotted_path_or_the_status() {
        let g = gate(
            "name: api\nhttp:\n  url: https://h.example.com/{env}\n  expect: {path: checks.0.state, oneOf: [ok, 200]}\n",
        );
        let v = |body: &str| g.judge(200, body.as_bytes());
        assert_eq!(v(r#"{"checks":[{"state":"ok"}]}"#), Verdict::Healthy);
        assert_eq!(v(r#"{"checks":[{"state":200}]}"#), Verdict::Healthy);
        assert_eq!(
            v(r#"{"checks":[{"state":"down"}]}"#),
            Verdict::Unhealthy("`checks.0.state` is `down`, not `ok` or `200`".into())
        );
        assert!(matches!(v(r#"{"checks":[]}"#), Verdict::Unknown(_)));
        assert!(matches!(
            v(r#"{"checks":[{"state":{"a":1}}]}"#),
            Verdict::Unknown(_)
        ));
        assert!(matches!(g.judge(503, b"{}"), Verdict::Unknown(_)));
        let g = gate(
            "name: up\nhttp: {url: \"https://h.example.com/healthz\", expect: {status: 200}}\n",
        );
        assert_eq!(g.judge(200, b""), Verdict::Healthy);
        assert_eq!(
            g.judge(404, b""),
            Verdict::Unhealthy("the server answered 404, not 200".into())
        );
        assert!(matches!(g.judge(502, b""), Verdict::Unknown(_)));
        assert!(matches!(g.judge(429, b""), Verdict::Unknown(_)));
    }

    #[test]
    fn a_bad_gate_definition_names_its_key() {
        for (yaml, key) in [
            ("name: x\n", "http"),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", expect: {status: 200}}\nargocd: {application: a, server: \"https://b.example.com\"}\n",
                "http",
            ),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", expect: {path: a}}\n",
                "http.expect",
            ),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", expect: {path: a, equals: 1, status: 200}}\n",
                "http.expect",
            ),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", expect: {path: \"a..b\", equals: 1}}\n",
                "http.expect.path",
            ),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", expect: {status: 999}}\n",
                "http.expect.status",
            ),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", expect: {status: 200}}\nfailAfter: 0\n",
                "failAfter",
            ),
            (
                "name: \"../x\"\nhttp: {url: \"https://a.example.com\", expect: {status: 200}}\n",
                "name",
            ),
            (
                "name: x\nhttp: {url: \"https://a.example.com\", credential: \"a b\", expect: {status: 200}}\n",
                "credential",
            ),
            (
                "name: x\nargocd: {application: \"a/{env}\", server: \"https://b.example.com\"}\n",
                "argocd.application",
            ),
            (
                "name: x\nprometheus: {query: up, server: \"https://p.example.com?x=1\"}\n",
                "prometheus.server",
            ),
        ] {
            let e = crate::config::parse_required::<Gate>("hydrant.yaml", yaml).unwrap_err();
            assert!(e.message.contains(&format!("`{key}`:")), "{yaml}: {e}");
        }
        let e = crate::config::parse_required::<Gate>(
            "hydrant.yaml",
            "name: x\nhttp: {url: \"https://a.example.com\", token: abc, expect: {status: 200}}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown field `token`"), "{e}");
    }

    #[test]
    fn a_gate_fails_after_fail_after_definite_failures_in_a_row() {
        let down = || Verdict::Unhealthy("Degraded".into());
        let unknown = || Verdict::Unknown("timed out".into());
        let mut t = GateTrack::default();
        assert_eq!(t.state(3), GateState::Pending("not checked yet".into()));
        assert!(
            matches!(t.record("1.0", down(), 3), GateState::Pending(w) if w.contains("1 of 3"))
        );
        // An unknown answer neither counts nor resets.
        assert!(
            matches!(t.record("1.0", unknown(), 3), GateState::Pending(w) if w.starts_with("not yet"))
        );
        assert!(
            matches!(t.record("1.0", down(), 3), GateState::Pending(w) if w.contains("2 of 3"))
        );
        // A healthy answer resets.
        assert_eq!(t.record("1.0", Verdict::Healthy, 3), GateState::Passing);
        for _ in 0..2 {
            t.record("1.0", down(), 3);
        }
        assert_eq!(
            t.record("1.0", down(), 3),
            GateState::Failed("Degraded (3 failures in a row)".into())
        );
        // It stays failed for that release, whatever comes next.
        assert!(matches!(
            t.record("1.0", Verdict::Healthy, 3),
            GateState::Failed(_)
        ));
        // A new release starts afresh.
        assert_eq!(t.record("1.1", Verdict::Healthy, 3), GateState::Passing);
        assert_eq!(t.failures, 0);
    }
}
