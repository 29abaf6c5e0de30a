//! The daemon's `/api/v1`: holds.
//!
//! `POST /api/v1/holds` with `{"all": true, "reason": …, "by": …}` (or
//! `"wave"` / `"environment"` instead of `"all"`) holds; `DELETE
//! /api/v1/holds/all`, `/api/v1/holds/wave/NAME` and
//! `/api/v1/holds/environment/NAME` (`?by=NAME`) release. Each commits to
//! `holds.yaml` on the base branch ([`crate::delivery::holds`]) once the
//! cycle in flight has finished, answers with JSON naming the commit, and
//! triggers a cycle so that the change applies at once.
//!
//! The requests carry the trigger token or the fleet page's UI token as a
//! bearer token (compared in constant time), or come from the fleet page
//! itself: its login cookie with the page's own `X-Hydrant-UI` header, which
//! a form of another site cannot send. Without either token configured the
//! API answers `403`, without the right one `401`, before any body is read. A body is read within
//! [`super::http::REQUEST_TIMEOUT`] and is at most [`MAX_BODY`] bytes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::json;

use super::http::{REQUEST_TIMEOUT, bearer, same};
use super::{Scope, Shared};
use crate::delivery::holds::{Change, HoldsError};
use crate::rollout::holds::{Hold, Scope as HoldScope};

/// The largest request body of the API, in bytes.
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// Who releases a hold when the request does not say.
const DEFAULT_BY: &str = "the hydrant API";

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/v1/holds", post(hold))
        .route("/api/v1/holds/{*scope}", delete(release))
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut text = body.to_string();
    text.push('\n');
    (status, [("content-type", "application/json")], text).into_response()
}

fn refused(status: StatusCode, error: &str) -> Response {
    answer(status, json!({ "error": error }))
}

/// The answer refusing a request without the trigger token or the UI
/// token, if it is refused.
fn unauthorized(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let trigger = s.options.trigger_token.as_deref();
    let ui = s.board.token();
    if trigger.is_none() && ui.is_none() {
        return Some(answer(
            StatusCode::FORBIDDEN,
            json!({
                "error": "the holds API is off: no trigger token or UI token is configured",
                "hint": "set HYDRANT_TRIGGER_TOKEN or --trigger-token-file (or --ui-token-file), or use `hydrant hold`",
            }),
        ));
    }
    let presented = bearer(headers);
    let ok = [trigger, ui]
        .into_iter()
        .flatten()
        .any(|token| presented.is_some_and(|p| same(p.as_bytes(), token.as_bytes())))
        || ui.is_some_and(|token| crate::ui::from_page(headers, token));
    (!ok).then(|| refused(StatusCode::UNAUTHORIZED, "a valid bearer token is required"))
}

async fn hold(State(s): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    if let Some(no) = unauthorized(&s, request.headers()) {
        return no;
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY);
    let body = match tokio::time::timeout(REQUEST_TIMEOUT, body).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body must be JSON of at most {MAX_BODY} bytes"),
            );
        }
        Err(_) => return refused(StatusCode::REQUEST_TIMEOUT, "the body took too long"),
    };
    match Hold::from_json(&body) {
        Ok(hold) => {
            let by = hold.by.clone();
            edit(s, Change::Hold(vec![hold]), by, StatusCode::CREATED).await
        }
        Err(e) => refused(StatusCode::BAD_REQUEST, &e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ReleaseQuery {
    by: Option<String>,
}

async fn release(
    State(s): State<Arc<Shared>>,
    Path(scope): Path<String>,
    Query(query): Query<ReleaseQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(no) = unauthorized(&s, &headers) {
        return no;
    }
    let scope = match scope.split_once('/') {
        None if scope == "all" => HoldScope::All,
        Some(("wave", name)) => HoldScope::Wave(name.to_string()),
        Some(("environment", name)) => HoldScope::Environment(name.to_string()),
        _ => {
            return refused(
                StatusCode::NOT_FOUND,
                "no such hold: use /api/v1/holds/all, /api/v1/holds/wave/NAME or /api/v1/holds/environment/NAME",
            );
        }
    };
    let by = query.by.unwrap_or_else(|| DEFAULT_BY.to_string());
    // A release is checked like a hold: a name by the one rule, `by` as text.
    if let Err(e) = Hold::new(scope.clone(), "release", &by, None) {
        return refused(StatusCode::BAD_REQUEST, &e);
    }
    edit(s, Change::Release(vec![scope]), by, StatusCode::OK).await
}

/// Runs the edit between cycles; a commit triggers a cycle.
async fn edit(s: Arc<Shared>, change: Change, by: String, created: StatusCode) -> Response {
    let shared = s.clone();
    let done = tokio::task::spawn_blocking(move || (shared.jobs.holds)(change, by)).await;
    let error = match done {
        Ok(Ok(done)) => {
            let status = if done.commit.is_some() {
                s.trigger("holds changed through the API", Scope::All);
                created
            } else {
                StatusCode::OK
            };
            return answer(status, json!(done));
        }
        Ok(Err(e)) => e,
        Err(e) => {
            tracing::error!(error = %e, "a change of holds panicked");
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the change of holds failed",
            );
        }
    };
    tracing::warn!(error = %error, "a change of holds through the API failed");
    let status = match &error {
        HoldsError::UnknownEnvironment { .. } | HoldsError::UnknownWave { .. } => {
            StatusCode::BAD_REQUEST
        }
        HoldsError::Refused { .. }
        | HoldsError::Raced { .. }
        | HoldsError::File(_)
        | HoldsError::Waves(_) => StatusCode::CONFLICT,
        HoldsError::Git(_) => StatusCode::BAD_GATEWAY,
    };
    refused(status, &error.to_string())
}
