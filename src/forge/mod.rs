//! Where pull requests live: the [`Forge`] trait and its implementations.
//!
//! A forge knows pull requests, not templates or git objects: reconcile pushes
//! the branch, then asks the forge to make sure one pull request per environment
//! is open with the right title and body. The body, the same on every forge, is
//! built by [`review`].

pub mod local;
pub mod review;

use serde::{Deserialize, Serialize};

pub use local::LocalForge;

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
}

/// The pull request reconcile wants open.
#[derive(Debug, Clone)]
pub struct PrRequest {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
}

/// What `ensure_pull_request` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("{forge}: {message}")]
    Failed { forge: String, message: String },
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
    /// Comments on a pull request.
    fn comment(&self, pr: &PullRequest, body: &str) -> Result<(), ForgeError>;
}
