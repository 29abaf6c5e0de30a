//! The fleet page: `GET /` (the header, the rollout's waves, the
//! environments), `GET /environments/NAME`, `GET /login`, and
//! `GET /api/v1/status` (the same model as JSON, as `hydrant status
//! --output json` prints it), served by the daemon or by `hydrant status
//! --serve`.
//!
//! The model is [`crate::delivery::status`]'s, kept in a [`Board`] and
//! replaced after each cycle: a request only reads it (it never fetches,
//! renders or asks the forge). The HTML is server-rendered by [`page`], a
//! pure module; `app.css` and `app.js` are embedded in the binary. Every
//! answer carries a strict Content-Security-Policy. With a UI token
//! (`--ui-token-file`) every page and `/api/v1/status` need it, as a bearer
//! token or as the cookie `GET /login?token=` sets; `--no-ui` turns the
//! pages off (`404`), not the API. This module does not change holds: the
//! page's script calls the daemon's holds API ([`crate::daemon`]).

pub mod detail;
pub mod html;
pub mod page;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::delivery::status::{CycleState, Status};
use detail::Detail;

/// The page's Content-Security-Policy: nothing inline, nothing foreign.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The cookie `GET /login` sets.
pub const COOKIE: &str = "hydrant_ui";

/// The header the page's script sends with a change of holds: a form of
/// another site cannot send it.
pub const UI_HEADER: &str = "x-hydrant-ui";

const APP_CSS: &str = include_str!("app.css");
const APP_JS: &str = include_str!("app.js");

/// How the pages are served.
#[derive(Debug, Clone, Default)]
pub struct UiOptions {
    /// `--no-ui`: the pages answer `404`; `/api/v1/status` stays.
    pub disabled: bool,
    /// The token every page and `/api/v1/status` need, if any.
    pub token: Option<String>,
}

/// What the daemon (or `status --serve`) observed last: the status model,
/// and each environment's detail.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: Status,
    pub details: BTreeMap<String, Detail>,
    /// The channel fetches observing it made: (channel, result), as
    /// `/metrics` counts them.
    pub fetches: Vec<(String, &'static str)>,
}

/// The latest model, shared by whoever observes and the pages.
pub struct Board {
    options: UiOptions,
    /// Whether the daemon's holds API sits beside the pages.
    holds_api: bool,
    snapshot: RwLock<Option<Snapshot>>,
    /// The daemon's last cycle and its next one.
    cycle: RwLock<Option<CycleState>>,
}

impl Board {
    pub fn new(options: UiOptions, holds_api: bool) -> Board {
        Board {
            options,
            holds_api,
            snapshot: RwLock::new(None),
            cycle: RwLock::new(None),
        }
    }

    /// Replaces the model; the details of environments the new one leaves
    /// out (a cycle over some environments) are kept, those of
    /// environments gone are dropped.
    pub fn update(&self, mut next: Snapshot) {
        let mut kept = self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if next.status.cycle.is_none() {
            next.status.cycle = self
                .cycle
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
        }
        if let Some(old) = kept.take() {
            for (env, d) in old.details {
                if next.status.environment(&env).is_some() {
                    next.details.entry(env).or_insert(d);
                }
            }
        }
        *kept = Some(next);
    }

    /// Records the daemon's last cycle and its next one.
    pub fn set_cycle(&self, cycle: CycleState) {
        *self
            .cycle
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cycle.clone());
        if let Some(s) = self
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            s.status.cycle = Some(cycle);
        }
    }

    /// Runs `f` over the latest model, if there is one yet.
    pub fn read<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> Option<T> {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(f)
    }

    /// The UI token, if one is configured.
    pub fn token(&self) -> Option<&str> {
        self.options.token.as_deref()
    }

    fn abilities(&self) -> page::Abilities {
        page::Abilities {
            holds: self.holds_api && self.options.token.is_some(),
        }
    }

    /// Whether a request may read the pages and the status: no token is
    /// configured, or it presents it (bearer, or the login cookie).
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        match self.token() {
            None => true,
            Some(token) => presents(headers, token),
        }
    }
}

/// Whether the request presents `token`: as a bearer token, or as the
/// cookie set by `/login` (compared in constant time).
pub fn presents(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| same(b.as_bytes(), token.as_bytes())) {
        return true;
    }
    let session = session_of(token);
    cookie(headers).is_some_and(|c| same(c.as_bytes(), session.as_bytes()))
}

/// Whether a request comes from the page's script: the login cookie and
/// the page's own header, which a form of another site cannot send.
pub fn from_page(headers: &HeaderMap, token: &str) -> bool {
    let session = session_of(token);
    headers.contains_key(UI_HEADER)
        && cookie(headers).is_some_and(|c| same(c.as_bytes(), session.as_bytes()))
}

/// The value of the login cookie for `token`: a digest, so the token itself
/// is never stored by the browser nor sent back.
fn session_of(token: &str) -> String {
    crate::manifest::layout::sha256(format!("hydrant fleet page session\n{token}").as_bytes())
}

fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&format!("{COOKIE}=")))
}

/// Compares secrets in constant time.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds the headers every answer of the pages and the API carries.
async fn guard_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The pages and `/api/v1/status` over `board`.
pub fn routes(board: Arc<Board>) -> Router {
    let mut router = Router::new().route("/api/v1/status", get(api_status));
    if !board.options.disabled {
        router = router
            .route("/", get(index))
            .route("/environments/{name}", get(environment))
            .route("/login", get(login))
            .route("/ui/app.css", get(css))
            .route("/ui/app.js", get(js));
    }
    router
        .layer(axum::middleware::from_fn(guard_headers))
        .with_state(board)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn refused(board: &Board, headers: &HeaderMap) -> Option<Response> {
    if board.allows(headers) {
        return None;
    }
    Some(html(
        StatusCode::UNAUTHORIZED,
        page::message(
            "log in",
            "This page needs the UI token: log in, or send it as a bearer token.",
            true,
        ),
    ))
}

fn not_ready() -> Response {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page::message(
            "not ready",
            "No cycle has finished yet; this page shows the fleet after the first one.",
            false,
        ),
    )
}

async fn index(
    State(board): State<Arc<Board>>,
    Query(query): Query<page::Query>,
    headers: HeaderMap,
) -> Response {
    if let Some(no) = refused(&board, &headers) {
        return no;
    }
    let abilities = board.abilities();
    match board.read(|s| page::fleet(&s.status, &query, abilities)) {
        Some(body) => html(StatusCode::OK, body),
        None => not_ready(),
    }
}

async fn environment(
    State(board): State<Arc<Board>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(no) = refused(&board, &headers) {
        return no;
    }
    let abilities = board.abilities();
    let page = board.read(|s| page::environment(&s.status, s.details.get(&name), &name, abilities));
    match page {
        None => not_ready(),
        Some(Some(body)) => html(StatusCode::OK, body),
        Some(None) => html(
            StatusCode::NOT_FOUND,
            page::message(
                "not found",
                &format!("No environment is named `{name}`."),
                false,
            ),
        ),
    }
}

#[derive(Debug, serde::Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

async fn login(State(board): State<Arc<Board>>, Query(query): Query<LoginQuery>) -> Response {
    let Some(token) = board.token() else {
        return html(
            StatusCode::NOT_FOUND,
            page::message(
                "no login",
                "No UI token is configured: the page is open to whoever reaches this address.",
                false,
            ),
        );
    };
    match query.token {
        Some(given) if same(given.as_bytes(), token.as_bytes()) => {
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                session_of(token)
            );
            (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, cookie),
                    (header::LOCATION, "/".to_string()),
                ],
            )
                .into_response()
        }
        Some(_) => html(
            StatusCode::UNAUTHORIZED,
            page::message("log in", "That token does not match.", true),
        ),
        None => html(
            StatusCode::OK,
            page::message("log in", "Give the UI token to see the fleet.", true),
        ),
    }
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        APP_CSS,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        APP_JS,
    )
        .into_response()
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let mut text = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// `GET /api/v1/status`: the whole model; with `q`, `state` or `page`, the
/// same with `environments` cut to that page of the table, and `matched`,
/// `page`, `pages`.
async fn api_status(
    State(board): State<Arc<Board>>,
    Query(query): Query<page::Query>,
    headers: HeaderMap,
) -> Response {
    if !board.allows(&headers) {
        return json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({ "error": "a valid UI token is required" }),
        );
    }
    let paged = query != page::Query::default();
    let answer = board.read(|s| {
        if !paged {
            return serde_json::to_value(&s.status).unwrap_or_default();
        }
        let rows = page::rows(&s.status, &query);
        let mut value = serde_json::to_value(Status {
            environments: Vec::new(),
            ..s.status.header()
        })
        .unwrap_or_default();
        value["environments"] = serde_json::to_value(&rows.shown).unwrap_or_default();
        value["matched"] = rows.matched.into();
        value["page"] = rows.page.into();
        value["pages"] = rows.pages.into();
        value
    });
    match answer {
        Some(value) => json(StatusCode::OK, &value),
        None => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": "no cycle has finished yet" }),
        ),
    }
}

/// The model of the fleet now, and each environment's plan: the status
/// [`crate::delivery::status::status`] builds, and a dry-run cycle.
pub fn observe(
    ws: &crate::git::Workspace,
    forge: &dyn crate::forge::Forge,
    opts: &crate::reconcile::Options,
) -> anyhow::Result<Snapshot> {
    let status = crate::delivery::status::status(ws, forge, opts)?;
    let mut plan = opts.clone();
    plan.dry_run = true;
    let details = match crate::reconcile::run_cycle(ws, forge, &plan) {
        Ok(cycle) => detail::build(&cycle.outcomes, &cycle.project, &cycle.fetches),
        Err(e) => {
            tracing::warn!(error = %e, "the plan of the fleet page could not be made");
            BTreeMap::new()
        }
    };
    Ok(Snapshot {
        status,
        details,
        fetches: Vec::new(),
    })
}
