//! Where pull requests live: the [`Forge`] trait and its implementations.
//!
//! A forge is transport only: it knows pull requests, not templates, git
//! objects or what a review says. Delivery pushes the branch, then asks the
//! forge to make sure one pull request per environment is open with the title
//! and body [`crate::delivery::review`] wrote.

pub mod api;
pub mod connect;
pub mod github_app;
pub mod gitlab;
pub mod local;
pub mod rest;

use serde::{Deserialize, Serialize};

pub use gitlab::GitLab;
pub use local::LocalForge;
pub use rest::{Dialect, Rest};

/// The host and the `owner/name` path of a repository URL
/// (`https://host/owner/name.git`, `ssh://git@host/owner/name`, `git@host:owner/name.git`).
pub fn repository_of(url: &str) -> Option<(String, String)> {
    let (host, path) = if let Some((_, rest)) = url.split_once("://") {
        let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
        rest.split_once('/')?
    } else {
        let (userhost, path) = url.split_once(':')?;
        (
            userhost
                .rsplit_once('@')
                .map(|(_, h)| h)
                .unwrap_or(userhost),
            path,
        )
    };
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let path = path.trim_matches('/').trim_end_matches(".git").to_string();
    (!host.is_empty() && path.contains('/')).then_some((host, path))
}

/// `scheme://host[:port]` of an http(s) repository URL: where its forge's web and API live.
pub fn server_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split('/').next()?;
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    Some(format!("{scheme}://{host}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    Open,
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub state: PrState,
    #[serde(default)]
    pub comments: Vec<Comment>,
    /// The forge's own id, where it has one besides the number (GitHub's node id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub reviewers: Vec<String>,
    #[serde(default)]
    pub draft: bool,
    /// Auto-merge was requested.
    #[serde(default)]
    pub auto_merge: bool,
    /// When it was opened (RFC 3339), where the forge says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The pull request reconcile wants open.
#[derive(Debug, Clone)]
pub struct PrRequest {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    /// Set on a new pull request.
    pub labels: Vec<String>,
    /// Asked to review a new pull request.
    pub reviewers: Vec<String>,
    pub draft: bool,
    /// Merge by itself once required checks pass.
    pub auto_merge: bool,
}

/// What `ensure_pull_request` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Updated,
    Unchanged,
}

/// What went wrong talking to a forge. HTTP statuses become these variants in
/// one place, [`api::Api`]; `request` is the method and path (never a token).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// 401, or a 403 that is no rate limit: the token was refused or lacks a permission.
    #[error("{forge}: {request}: {status} {message}; hint: {}", if *status == 401 { "the token was rejected: check it, and that it has not expired" } else { "the token lacks a permission this needs" })]
    Unauthorized {
        forge: String,
        request: String,
        status: u16,
        message: String,
    },
    #[error(
        "{forge}: {request}: 404 {message}; hint: no such repository or pull request, or the token cannot see it"
    )]
    NotFound {
        forge: String,
        request: String,
        message: String,
    },
    /// 409 or 422: the forge's state does not allow the request as made.
    #[error("{forge}: {request}: {status} {message}")]
    Conflict {
        forge: String,
        request: String,
        status: u16,
        message: String,
    },
    /// Another 4xx: the forge refused the request itself.
    #[error("{forge}: {request}: {status} {message}")]
    Rejected {
        forge: String,
        request: String,
        status: u16,
        message: String,
    },
    /// Rate limited: still after the retries, or for longer than hydrant waits.
    #[error("{forge}: {request}: rate limited ({status}){}; the next cycle tries again", waits_text(*wait_secs, *longest_wait_secs))]
    RateLimited {
        forge: String,
        request: String,
        status: u16,
        /// How long the forge asked to wait, where it said.
        wait_secs: Option<u64>,
        /// Set when the wait asked for was longer than hydrant waits.
        longest_wait_secs: Option<u64>,
    },
    /// 5xx.
    #[error("{forge}: {request}: the server answered {status}{}", if message.is_empty() { String::new() } else { format!(" {message}") })]
    Server {
        forge: String,
        request: String,
        status: u16,
        message: String,
    },
    /// No answer: connection failed, timed out, or the answer was cut short.
    #[error("{forge}: {request}: {problem}")]
    Transport {
        forge: String,
        request: String,
        problem: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An answer that does not say what the API promises.
    #[error("{forge}: {request}: the answer's `{field}` {message}")]
    Invalid {
        forge: String,
        request: String,
        field: String,
        message: String,
    },
    /// hydrant will not make the call: its settings, a redirect or link to
    /// another origin, an answer too large.
    #[error("{forge}: {message}")]
    Refused { forge: String, message: String },
    /// A token could not be had (a GitHub App's installation token exchange).
    #[error("{forge}: cannot get a token: {message}")]
    Token { forge: String, message: String },
    /// The local forge's state directory.
    #[error("{forge}: {message}")]
    State {
        forge: String,
        message: String,
        #[source]
        source: Option<std::io::Error>,
    },
}

/// ` for 90s, longer than the 60s hydrant waits`, or what of it is known.
fn waits_text(wait_secs: Option<u64>, longest_wait_secs: Option<u64>) -> String {
    let wait = wait_secs.map(|w| format!(" for {w}s")).unwrap_or_default();
    match longest_wait_secs {
        Some(max) => format!("{wait}, longer than the {max}s hydrant waits"),
        None => wait,
    }
}

impl ForgeError {
    /// Whether the failure may pass by itself, so that trying again later
    /// can succeed: no answer, a server error, a rate limit, a token exchange
    /// (the App key was checked when the forge was set up). A refused token,
    /// a missing repository, a conflict, a refused request, an answer that does
    /// not parse, hydrant's own refusal and an unreadable state directory stay
    /// until a person changes something. (The delivery layer turns this into
    /// its error class; the forge knows nothing of delivery.)
    pub fn transient(&self) -> bool {
        match self {
            ForgeError::RateLimited { .. }
            | ForgeError::Server { .. }
            | ForgeError::Transport { .. }
            | ForgeError::Token { .. } => true,
            ForgeError::Unauthorized { .. }
            | ForgeError::NotFound { .. }
            | ForgeError::Conflict { .. }
            | ForgeError::Rejected { .. }
            | ForgeError::Invalid { .. }
            | ForgeError::Refused { .. }
            | ForgeError::State { .. } => false,
        }
    }
}

/// Ends the description of a pull request whose labels, reviewers and
/// auto-merge are not set yet. On GitHub and Gitea they take calls after the
/// one that opens the pull request; should one of them fail, or the answer to
/// the opening call be lost, the next [`ensure`] that finds the pull request
/// sets them and drops the marker. Settings are never applied twice to a pull
/// request: a person may remove a label or turn auto-merge off for good.
pub(crate) const SETTINGS_PENDING: &str = "\n\n<!-- hydrant:settings-pending -->";

/// The description a new pull request is opened with: marked as waiting for
/// its settings when it has any to set after opening.
pub(crate) fn opening_body(req: &PrRequest) -> String {
    let pending = !req.labels.is_empty() || !req.reviewers.is_empty() || req.auto_merge;
    match pending {
        true => format!("{}{SETTINGS_PENDING}", req.body),
        false => req.body.clone(),
    }
}

/// The one way every hosted forge makes sure a pull request is open: find the
/// open one, or create it; when the forge answers that one exists (an earlier
/// answer was lost, or another replica was faster), look it up instead of
/// failing or opening a second; set the settings of one still marked
/// [`SETTINGS_PENDING`]; update title and body only when they differ.
///
/// `create` returns `None` for "already exists"; `title` is the title the
/// forge should show (GitLab marks drafts in it).
pub(crate) fn ensure(
    forge: &str,
    req: &PrRequest,
    title: &str,
    find: impl Fn() -> Result<Option<PullRequest>, ForgeError>,
    create: impl FnOnce() -> Result<Option<PullRequest>, ForgeError>,
    decorate: impl FnOnce(&PullRequest) -> Result<(), ForgeError>,
    update: impl FnOnce(&PullRequest) -> Result<PullRequest, ForgeError>,
) -> Result<(PullRequest, Ensured), ForgeError> {
    let (existing, created) = match find()? {
        Some(pr) => (pr, false),
        None => match create()? {
            Some(pr) => (pr, true),
            None => (
                find()?.ok_or_else(|| ForgeError::Conflict {
                    forge: forge.to_string(),
                    request: format!("open a pull request from `{}`", req.head),
                    status: 422,
                    message: format!("{forge} says one exists, but none is open"),
                })?,
                false,
            ),
        },
    };
    if existing.body.ends_with(SETTINGS_PENDING) {
        decorate(&existing)?;
    }
    let same = existing.title == title && existing.body == req.body;
    let pr = if same { existing } else { update(&existing)? };
    let ensured = match (created, same) {
        (true, _) => Ensured::Created,
        (false, true) => Ensured::Unchanged,
        (false, false) => Ensured::Updated,
    };
    Ok((pr, ensured))
}

/// Whether a pull request is from a `hydrant/*` branch.
/// Percent-encodes `text` for one segment or query value of a URL (a
/// GitLab project path, a branch name): every byte but the unreserved ones.
pub(crate) fn encode(text: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string()
}

pub(crate) fn is_hydrants(pr_head: &str) -> bool {
    pr_head.starts_with(&crate::git::branch_name(""))
}

/// When a pull request was opened, where the forge said in a form hydrant reads.
pub fn opened_at(pr: &PullRequest) -> Option<jiff::Timestamp> {
    pr.created_at.as_deref()?.parse().ok()
}

/// Whether a pull request counts for [`Forge::recent_pulls`]: hydrant's, and
/// open or opened at or after `since`. One the forge gives no time for counts
/// while open.
pub(crate) fn recent(pr: &PullRequest, since: jiff::Timestamp) -> bool {
    is_hydrants(&pr.head)
        && (pr.state == PrState::Open || opened_at(pr).is_some_and(|t| t >= since))
}

pub trait Forge: Send + Sync {
    /// The forge as shown in messages (`local`, `github`, …).
    fn name(&self) -> &str;
    /// The open pull request from `head` into `base`, if any.
    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError>;
    /// Opens the pull request, or updates the open one in place; never a second one.
    fn ensure_pull_request(&self, req: &PrRequest) -> Result<(PullRequest, Ensured), ForgeError>;
    /// Closes a pull request with a comment saying why.
    fn close_pull_request(&self, pr: &PullRequest, comment: &str) -> Result<(), ForgeError>;
    /// hydrant's pull requests (from `hydrant/*` branches): every one open
    /// now, and every one opened at or after `since`, whatever became of it.
    /// The pull-request budget is counted from them, in one call per cycle;
    /// a forge may leave their descriptions and comments out.
    fn recent_pulls(&self, since: jiff::Timestamp) -> Result<Vec<PullRequest>, ForgeError>;
    /// Comments on a pull request.
    fn comment(&self, pr: &PullRequest, body: &str) -> Result<(), ForgeError>;
    /// The comments of a pull request.
    fn comments(&self, pr: &PullRequest) -> Result<Vec<Comment>, ForgeError> {
        Ok(pr.comments.clone())
    }
    /// The hosting service's API calls and rate-limit waits so far; `None`
    /// for a forge without an API.
    fn api_stats(&self) -> Option<&api::ApiStats> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_read_from_their_urls() {
        let gh = Some(("github.com".to_string(), "acme/wandb-config".to_string()));
        assert_eq!(
            repository_of("https://github.com/acme/wandb-config.git"),
            gh
        );
        assert_eq!(repository_of("git@github.com:acme/wandb-config.git"), gh);
        assert_eq!(repository_of("ssh://git@github.com/acme/wandb-config"), gh);
        assert_eq!(
            repository_of("https://gitlab.example.com/group/sub/project"),
            Some((
                "gitlab.example.com".to_string(),
                "group/sub/project".to_string()
            ))
        );
        assert_eq!(repository_of("/srv/git/config"), None);
    }
}
