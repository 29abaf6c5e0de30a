//! The daemon's HTTP endpoints: health, readiness, metrics, and triggers
//! (verified webhooks and a token-protected `POST /trigger`), and the server
//! that carries them.
//!
//! A client must send its request headers within [`HEADER_TIMEOUT`]: a
//! connection that never finishes them is closed; a request (its body
//! included) that takes longer than [`REQUEST_TIMEOUT`] is answered `408`. A webhook delivery is
//! handled once: a replay (the same delivery id, or the same signed body
//! under another id) is answered `200` and triggers nothing.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Scope, Shared};

/// How long a client may take to send its request headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a request may take, its body included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How many recent webhook deliveries are remembered.
const REMEMBERED_DELIVERIES: usize = 1024;

/// Serves `app` on `listener` until the process ends, over HTTP/1.1, closing
/// any connection that does not finish its request headers in time.
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
        });
    }
}

/// The webhook deliveries handled lately, by delivery id and by the digest of
/// their body: a bounded memory, oldest forgotten first.
#[derive(Debug, Default)]
pub(crate) struct Deliveries {
    order: VecDeque<String>,
    seen: HashSet<String>,
}

impl Deliveries {
    /// Records a delivery; false when any of its keys was seen before (a replay).
    pub(crate) fn first_time(&mut self, keys: &[String]) -> bool {
        if keys.iter().any(|k| self.seen.contains(k)) {
            return false;
        }
        for key in keys {
            self.seen.insert(key.clone());
            self.order.push_back(key.clone());
        }
        while self.order.len() > REMEMBERED_DELIVERIES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// What identifies a verified delivery: the id the forge gave it (a header
/// outside the signature, so not enough alone) and the digest of its body.
fn delivery_keys(forge: &str, id: Option<&str>, body: &[u8]) -> Vec<String> {
    let digest = crate::manifest::layout::sha256(body);
    let mut keys = vec![format!("{forge} body {digest}")];
    if let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) {
        keys.push(format!("{forge} id {id}"));
    }
    keys
}

/// Whether a verified delivery is new; a replay is logged.
fn first_delivery(s: &Shared, forge: &str, id: Option<&str>, body: &[u8]) -> bool {
    let keys = delivery_keys(forge, id, body);
    let first = s
        .deliveries
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .first_time(&keys);
    if !first {
        tracing::info!(
            forge,
            delivery = id.unwrap_or(""),
            "a webhook delivery was replayed; ignored"
        );
    }
    first
}

pub fn router(shared: Arc<Shared>) -> Router {
    let ui = crate::ui::routes(shared.board.clone());
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/trigger", post(trigger))
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .layer(axum::middleware::from_fn(within_deadline))
        // The API reads its body within the same deadline, then waits for
        // the cycle in flight: it is outside the layer above.
        .merge(super::api::routes())
        .with_state(shared)
        .merge(ui)
}

/// Answers `408` to a request, its body included, that takes too long: a
/// client dripping a webhook body cannot hold a connection.
async fn within_deadline(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "the request took too long to arrive\n",
        )
            .into_response(),
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> (StatusCode, String) {
    match s.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> ([(&'static str, &'static str); 1], String) {
    let text = s.metrics.lock().map(|m| m.render()).unwrap_or_default();
    ([("content-type", "text/plain; version=0.0.4")], text)
}

/// The bearer token a request presents, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

pub(crate) use crate::ui::same;

#[derive(Debug, serde::Deserialize)]
struct TriggerQuery {
    /// Environments, separated by commas; all when absent.
    env: Option<String>,
}

async fn trigger(
    State(s): State<Arc<Shared>>,
    Query(query): Query<TriggerQuery>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let Some(token) = s.options.trigger_token.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "triggers are off: set HYDRANT_TRIGGER_TOKEN\n".to_string(),
        );
    };
    if !bearer(&headers).is_some_and(|p| same(p.as_bytes(), token.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n".to_string(),
        );
    }
    let scope = match query.env.as_deref() {
        None | Some("") => Scope::All,
        Some(list) => {
            let names: std::collections::BTreeSet<String> = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect();
            // Only names the cycles have seen: an unknown one is a typo, and
            // it must not grow the metrics' label set.
            if let Some(unknown) = names.iter().find(|n| !s.knows(n)) {
                return (
                    StatusCode::NOT_FOUND,
                    format!("unknown environment `{unknown}`\n"),
                );
            }
            Scope::Envs(names)
        }
    };
    s.trigger("POST /trigger", scope);
    (StatusCode::ACCEPTED, "cycle requested\n".to_string())
}

/// The value of `%XX`-and-`+` encoded form text.
fn form_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// The JSON event of a webhook body: the body itself, or the `payload` field
/// of a form (`application/x-www-form-urlencoded`, GitHub's default).
fn event_json(headers: &HeaderMap, body: &[u8]) -> Option<Vec<u8>> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim().starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Some(body.to_vec());
    }
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("payload="))
        .and_then(form_decode)
}

/// Whether a push event names the base branch (every branch when none is set).
fn pushes_base(s: &Shared, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(json) = event_json(headers, body) else {
        return false;
    };
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&json) else {
        return false;
    };
    match (event["ref"].as_str(), s.options.base.as_deref()) {
        (Some(r), Some(base)) => r == format!("refs/heads/{base}"),
        (Some(r), None) => !r.starts_with("refs/heads/hydrant/"),
        (None, _) => false,
    }
}

async fn github(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(secret) = s.options.github_secret.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "GitHub webhooks are off: set HYDRANT_GITHUB_WEBHOOK_SECRET\n",
        );
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok());
    let Some(signature) = signature else {
        return (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256\n");
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "bad secret\n");
    };
    mac.update(&body);
    if mac.verify_slice(&signature).is_err() {
        return (StatusCode::UNAUTHORIZED, "signature does not match\n");
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if event == "ping" {
        return (StatusCode::OK, "pong\n");
    }
    let id = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok());
    if !first_delivery(&s, "github", id, &body) {
        return (StatusCode::OK, "already handled: a replayed delivery\n");
    }
    if event != "push" || !pushes_base(&s, &headers, &body) {
        return (
            StatusCode::ACCEPTED,
            "ignored: not a push to the base branch\n",
        );
    }
    s.trigger("GitHub push webhook", Scope::All);
    (StatusCode::ACCEPTED, "cycle requested\n")
}

async fn gitlab(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(token) = s.options.gitlab_token.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "GitLab webhooks are off: set HYDRANT_GITLAB_WEBHOOK_TOKEN\n",
        );
    };
    let presented = headers
        .get("x-gitlab-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !same(presented.as_bytes(), token.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, "X-Gitlab-Token does not match\n");
    }
    let id = ["x-gitlab-event-uuid", "idempotency-key"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()));
    if !first_delivery(&s, "gitlab", id, &body) {
        return (StatusCode::OK, "already handled: a replayed delivery\n");
    }
    if !pushes_base(&s, &headers, &body) {
        return (
            StatusCode::ACCEPTED,
            "ignored: not a push to the base branch\n",
        );
    }
    s.trigger("GitLab push webhook", Scope::All);
    (StatusCode::ACCEPTED, "cycle requested\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_delivery_is_recognised_by_its_id_or_its_body() {
        let mut d = Deliveries::default();
        assert!(d.first_time(&delivery_keys("github", Some("a"), b"push 1")));
        assert!(!d.first_time(&delivery_keys("github", Some("a"), b"push 1")));
        assert!(
            !d.first_time(&delivery_keys("github", Some("b"), b"push 1")),
            "the same signed body under a new id"
        );
        assert!(d.first_time(&delivery_keys("github", Some("c"), b"push 2")));
        for n in 0..REMEMBERED_DELIVERIES {
            d.first_time(&delivery_keys("github", None, n.to_string().as_bytes()));
        }
        assert!(
            d.order.len() <= REMEMBERED_DELIVERIES,
            "the memory is bounded"
        );
        assert!(
            d.first_time(&delivery_keys("github", Some("a"), b"push 1")),
            "long forgotten"
        );
    }

    #[test]
    fn form_encoded_events_carry_their_json_in_payload() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let body = b"payload=%7B%22ref%22%3A+%22refs%2Fheads%2Fmain%22%7D";
        assert_eq!(
            event_json(&headers, body).unwrap(),
            br#"{"ref": "refs/heads/main"}"#
        );
        assert_eq!(event_json(&headers, b"payload=%zz"), None);
        assert_eq!(event_json(&HeaderMap::new(), b"{}").unwrap(), b"{}");
    }
}
