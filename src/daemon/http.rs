//! The daemon's HTTP endpoints: health, readiness, metrics, and triggers
//! (verified webhooks and a token-protected `POST /trigger`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Scope, Shared};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/trigger", post(trigger))
        .route("/hooks/github", post(github))
        .route("/hooks/gitlab", post(gitlab))
        .with_state(shared)
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

/// Compares secrets in constant time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|p| same(p.as_bytes(), token.as_bytes())) {
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

/// Whether a push event names the base branch (every branch when none is set).
fn pushes_base(s: &Shared, body: &[u8]) -> bool {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
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
    if event != "push" || !pushes_base(&s, &body) {
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
    if !pushes_base(&s, &body) {
        return (
            StatusCode::ACCEPTED,
            "ignored: not a push to the base branch\n",
        );
    }
    s.trigger("GitLab push webhook", Scope::All);
    (StatusCode::ACCEPTED, "cycle requested\n")
}
