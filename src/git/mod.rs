//! The config repository as a git remote: fetch, read, commit, push.
//!
//! hydrant keeps a bare clone of the config repository in a work directory it
//! owns (`--work-dir`), fetches into it incrementally, reads the base branch's
//! commit straight from the object database and builds commits in memory. It
//! never checks anything out, so a user's own checkout (even when `--repo` is
//! that checkout) and its checked-out branch are never touched. Only
//! `hydrant/<env>` branches are ever pushed.
//!
//! A lock file in the work directory keeps two runs from using it at once.
//! Credentials (an HTTPS token or an SSH key) are handed to git on demand and
//! never written into a remote URL, a log line or an error.

mod snapshot;
mod workspace;

pub use snapshot::Snapshot;

pub use git2::{Oid, Signature};
pub use workspace::{Credentials, Fetched, Tip, Workspace, default_work_dir};

/// How long a remote may stay silent (connecting, or between two reads or
/// writes of a fetch or push) before the operation fails. libgit2 waits
/// forever by default, so a remote that accepts a connection and never
/// answers would stall every cycle that follows.
///
/// Call it before any git operation: libgit2's global options are not
/// guarded against a concurrent fetch or push.
pub fn set_timeout(timeout: std::time::Duration) {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: called once while setting up a command, before any thread
    // fetches or pushes; a failure leaves libgit2's default.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

/// The branch hydrant owns for an environment.
pub fn branch_name(env: &str) -> String {
    format!("hydrant/{env}")
}

/// The trailer marking a commit as hydrant's own.
pub const ENV_TRAILER: &str = "Hydrant-Environment";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot reach `{url}`: {message}")]
    Unreachable { url: String, message: String },
    #[error("authentication to `{url}` failed: {message}")]
    Auth { url: String, message: String },
    #[error("base branch `{branch}` does not exist on `{url}`{}", if known.is_empty() { String::new() } else { format!("; branches there: {}", known.join(", ")) })]
    MissingBase {
        branch: String,
        url: String,
        known: Vec<String>,
    },
    #[error("failed to push branch `{branch}` to `{url}`: {message}")]
    PushRejected {
        branch: String,
        url: String,
        message: String,
    },
    #[error(
        "base branch `{branch}` of `{url}` is a `hydrant/*` branch, which hydrant rewrites and deletes; hint: use the branch Argo CD or Flux applies (`main`), set with `--base`"
    )]
    HydrantBase { branch: String, url: String },
    #[error("another hydrant run holds `{path}`; waited {waited_secs}s")]
    Locked { path: String, waited_secs: u64 },
    #[error("work directory `{path}`: {message}")]
    WorkDir { path: String, message: String },
    #[error("git: {0}")]
    Other(String),
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> GitError {
        GitError::Other(e.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_are_named_after_environments() {
        assert_eq!(branch_name("prod"), "hydrant/prod");
    }
}
