//! Opening what a cycle works on, from settings resolved by the caller:
//! hydrant's clone of the config repository (its work directory, locked) and
//! the forge. Here is decided the one policy that joins the two: the forge's
//! token also pushes when no git token is given.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{CredentialError, Secret, fixed};
use crate::forge::Forge;
use crate::forge::connect::connect;
use crate::git::{Credentials, GitError, Workspace, default_work_dir};

// The forge's settings, so that the command line fills them without knowing
// the forge module.
pub use crate::forge::api::{ApiOptions, defaults as api_defaults};
pub use crate::forge::connect::{ConnectError, ForgeKind, ForgeSettings, GithubApp};

/// How to reach the config repository with git.
#[derive(Debug, Clone)]
pub struct GitSettings {
    /// The HTTPS token for the remote [default: the forge's token].
    pub token: Secret,
    /// The user name sent with the token.
    pub username: String,
    /// SSH private key for `ssh://` remotes.
    pub ssh_key: Option<PathBuf>,
    /// How long the remote may stay silent before an operation fails.
    pub timeout: Duration,
    /// How long to wait for another run holding the work directory.
    pub lock_timeout: Duration,
}

/// Where the config repository is, how to reach it, and its forge.
#[derive(Debug, Clone)]
pub struct Settings {
    /// hydrant's clone of the repository [default: under the user's cache directory].
    pub work_dir: Option<PathBuf>,
    pub git: GitSettings,
    /// The forge; its `repo` is the config repository.
    pub forge: ForgeSettings,
}

/// The work directory's clone and the forge, ready for a cycle.
pub struct Session {
    pub workspace: Workspace,
    pub forge: Box<dyn Forge>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Git(#[from] GitError),
}

impl From<CredentialError> for OpenError {
    fn from(e: CredentialError) -> OpenError {
        OpenError::Connect(ConnectError::Credential { source: e })
    }
}

/// Opens the work directory's clone of the repository and connects to its forge.
pub fn open(settings: &Settings) -> Result<Session, OpenError> {
    crate::git::set_timeout(settings.git.timeout);
    let repo = &settings.forge.repo;
    let work_dir = settings
        .work_dir
        .clone()
        .unwrap_or_else(|| default_work_dir(repo));
    let kind = settings.forge.resolved_kind()?;
    let forge_token = settings.forge.token(kind)?;
    let creds = Credentials {
        token: settings
            .git
            .token
            .read()?
            .map(fixed)
            .or_else(|| forge_token.clone()),
        username: settings.git.username.clone(),
        ssh_key: settings.git.ssh_key.clone(),
    };
    let workspace = Workspace::open(&work_dir, repo, creds, settings.git.lock_timeout)?;
    let forge = connect(&settings.forge, kind, forge_token, &work_dir)?;
    Ok(Session { workspace, forge })
}
