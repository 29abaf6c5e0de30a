//! Which forge a repository's pull requests go to, and connecting to it: the
//! factory behind `--forge`, and the policy of which token each forge takes
//! (a GitHub App's renewing installation token, or a fixed token).
//!
//! It reads the token and key files it is given; it reads no environment
//! variable (the caller hands their text in a [`Secret`]) and knows nothing of
//! git: whether the forge's token also pushes is the caller's decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::api::ApiOptions;
use super::github_app::AppToken;
use super::{Dialect, Forge, ForgeError, GitLab, LocalForge, Rest};
use crate::auth::{CredentialError, Secret, Token, fixed};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeKind {
    /// From the repository URL: `github.com` is GitHub, a path or `file://` is local.
    Auto,
    /// Pull requests as JSON files in `--state-dir` (offline, no hosting service).
    Local,
    /// GitHub or GitHub Enterprise (`--github-api-url`).
    Github,
    /// GitLab merge requests (GitLab.com or self-managed).
    Gitlab,
    /// Gitea or Forgejo pull requests.
    Gitea,
}

impl ForgeKind {
    fn name(self) -> &'static str {
        match self {
            ForgeKind::Auto => "auto",
            ForgeKind::Local => "local",
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
        }
    }
}

/// A GitHub App to authenticate as, instead of a token.
#[derive(Debug, Clone)]
pub struct GithubApp {
    pub app_id: String,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Its installation [default: the one covering the repository].
    pub installation_id: Option<u64>,
}

/// Everything that decides which forge, where, and with which credentials.
#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub kind: ForgeKind,
    /// The config repository as given (`--repo`): it tells the forge when
    /// `kind` is `Auto`, its server and the repository's `owner/name`.
    pub repo: String,
    /// `owner/name` on the forge [default: from `repo`].
    pub repository: Option<String>,
    pub github_api_url: String,
    pub github_token: Secret,
    pub github_app: Option<GithubApp>,
    /// [default: from `repo`, else `https://gitlab.com`]
    pub gitlab_url: Option<String>,
    pub gitlab_token: Secret,
    /// Send the GitLab token as an OAuth bearer token instead of `PRIVATE-TOKEN`.
    pub gitlab_oauth: bool,
    /// [default: from `repo`]
    pub gitea_url: Option<String>,
    pub gitea_token: Secret,
    pub api: ApiOptions,
    /// The local forge's state directory [default: `<work-dir>/local-forge`].
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "cannot tell which forge `{host}` is; hint: pass `--forge github`, `gitlab`, `gitea` or `local`"
    )]
    UnknownHost { host: String },
    #[error("{forge} needs a token; hint: set `{var}` or pass `--{forge}-token-file`")]
    NoToken { forge: &'static str, var: String },
    #[error(
        "cannot tell the repository on the forge from `{repo}`; hint: pass `--forge-repository OWNER/NAME`"
    )]
    NoRepository { repo: String },
    #[error("the repository on the forge is OWNER/NAME, not `{0}`")]
    NotOwnerName(String),
    #[error("cannot tell the {forge} server from `{repo}`; hint: pass `--{forge}-url`")]
    NoServer { forge: &'static str, repo: String },
    #[error("GitHub App {app_id} has no private key; hint: pass `--github-app-key-file`")]
    NoAppKey { app_id: String },
    #[error("cannot read the GitHub App key `{path}`")]
    AppKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GitHub App {app_id}: {message}")]
    App { app_id: String, message: String },
    #[error("{source}{}", source.hint().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Credential {
        #[from]
        source: CredentialError,
    },
    #[error(transparent)]
    Forge(#[from] ForgeError),
}

impl ForgeSettings {
    /// Which forge: `kind`, or told by the repository URL's host.
    pub fn resolved_kind(&self) -> Result<ForgeKind, ConnectError> {
        if self.kind != ForgeKind::Auto {
            return Ok(self.kind);
        }
        let host = super::repository_of(&self.repo).map(|(host, _)| host);
        Ok(match host.as_deref() {
            None => ForgeKind::Local,
            Some("github.com") => ForgeKind::Github,
            Some("gitlab.com") => ForgeKind::Gitlab,
            Some("codeberg.org") => ForgeKind::Gitea,
            Some(host) => {
                return Err(ConnectError::UnknownHost {
                    host: host.to_string(),
                });
            }
        })
    }

    /// The token forge `kind` takes, if one is configured.
    pub fn token(&self, kind: ForgeKind) -> Result<Option<Token>, ConnectError> {
        Ok(match kind {
            ForgeKind::Github => match &self.github_app {
                Some(app) => Some(self.app_token(app)?),
                None => self.github_token.read()?.map(fixed),
            },
            ForgeKind::Gitlab => self.gitlab_token.read()?.map(fixed),
            ForgeKind::Gitea => self.gitea_token.read()?.map(fixed),
            ForgeKind::Auto | ForgeKind::Local => None,
        })
    }

    /// `owner/name` on the forge.
    fn repository(&self) -> Result<String, ConnectError> {
        self.repository
            .clone()
            .or_else(|| super::repository_of(&self.repo).map(|(_, path)| path))
            .ok_or_else(|| ConnectError::NoRepository {
                repo: self.repo.clone(),
            })
    }

    /// `owner` and `name` on the forge.
    fn owner_name(&self) -> Result<(String, String), ConnectError> {
        let path = self.repository()?;
        match path.split_once('/') {
            Some((owner, name)) => Ok((owner.to_string(), name.to_string())),
            None => Err(ConnectError::NotOwnerName(path)),
        }
    }

    /// A GitHub App's installation token, renewed as it expires.
    fn app_token(&self, app: &GithubApp) -> Result<Token, ConnectError> {
        let key_file = app
            .key_file
            .as_ref()
            .ok_or_else(|| ConnectError::NoAppKey {
                app_id: app.app_id.clone(),
            })?;
        let pem = std::fs::read(key_file).map_err(|source| ConnectError::AppKey {
            path: key_file.display().to_string(),
            source,
        })?;
        let (owner, name) = self.owner_name()?;
        let token = AppToken::new(
            &app.app_id,
            &pem,
            &self.github_api_url,
            &owner,
            &name,
            app.installation_id,
            self.api.clone(),
        )
        .map_err(|message| ConnectError::App {
            app_id: app.app_id.clone(),
            message,
        })?;
        Ok(Arc::new(token))
    }

    /// The server of a GitLab or Gitea: its flag, else the repository URL's.
    fn server(
        &self,
        kind: ForgeKind,
        flag: &Option<String>,
        default: Option<&str>,
    ) -> Result<String, ConnectError> {
        flag.clone()
            .or_else(|| super::server_of(&self.repo))
            .or(default.map(String::from))
            .ok_or_else(|| ConnectError::NoServer {
                forge: kind.name(),
                repo: self.repo.clone(),
            })
    }
}

/// Connects to forge `kind` (resolved) with `token` (from
/// [`ForgeSettings::token`]); the local forge keeps its state under `work_dir`
/// unless told otherwise.
pub fn connect(
    settings: &ForgeSettings,
    kind: ForgeKind,
    token: Option<Token>,
    work_dir: &Path,
) -> Result<Box<dyn Forge>, ConnectError> {
    if matches!(kind, ForgeKind::Auto | ForgeKind::Local) {
        let dir = settings
            .state_dir
            .clone()
            .unwrap_or_else(|| work_dir.join("local-forge"));
        return Ok(Box::new(LocalForge::open(&dir)?));
    }
    let secret = match kind {
        ForgeKind::Gitlab => &settings.gitlab_token,
        ForgeKind::Gitea => &settings.gitea_token,
        _ => &settings.github_token,
    };
    let token = token.ok_or_else(|| ConnectError::NoToken {
        forge: kind.name(),
        var: secret.var().to_string(),
    })?;
    let options = settings.api.clone();
    Ok(match kind {
        ForgeKind::Gitlab => {
            let url = settings.server(kind, &settings.gitlab_url, Some("https://gitlab.com"))?;
            let path = settings.repository()?;
            Box::new(GitLab::new(
                &url,
                &path,
                token,
                settings.gitlab_oauth,
                options,
            )?)
        }
        ForgeKind::Gitea => {
            let url = settings.server(kind, &settings.gitea_url, None)?;
            let (owner, name) = settings.owner_name()?;
            Box::new(Rest::new(
                Dialect::GITEA,
                &url,
                &owner,
                &name,
                token,
                options,
            )?)
        }
        _ => {
            let (owner, name) = settings.owner_name()?;
            Box::new(Rest::new(
                Dialect::GITHUB,
                &settings.github_api_url,
                &owner,
                &name,
                token,
                options,
            )?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(repo: &str, kind: ForgeKind) -> ForgeSettings {
        ForgeSettings {
            kind,
            repo: repo.to_string(),
            repository: None,
            github_api_url: "https://api.github.com".to_string(),
            github_token: Secret::new(None, "HYDRANT_GITHUB_TOKEN", None),
            github_app: None,
            gitlab_url: None,
            gitlab_token: Secret::new(None, "HYDRANT_GITLAB_TOKEN", None),
            gitlab_oauth: false,
            gitea_url: None,
            gitea_token: Secret::new(None, "HYDRANT_GITEA_TOKEN", Some("tea-token".to_string())),
            api: ApiOptions::default(),
            state_dir: None,
        }
    }

    #[test]
    fn the_forge_is_told_by_the_repository_host_unless_named() {
        let cases = [
            ("https://github.com/acme/config.git", ForgeKind::Github),
            ("git@gitlab.com:acme/config.git", ForgeKind::Gitlab),
            ("https://codeberg.org/acme/config", ForgeKind::Gitea),
            ("/srv/git/config", ForgeKind::Local),
        ];
        for (repo, kind) in cases {
            let resolved = settings(repo, ForgeKind::Auto).resolved_kind().unwrap();
            assert_eq!(resolved, kind, "{repo}");
        }
        let unknown = settings("https://git.example.com/a/b", ForgeKind::Auto)
            .resolved_kind()
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("`git.example.com`") && unknown.contains("hint: pass `--forge"));
        let named = settings("https://git.example.com/a/b", ForgeKind::Gitea);
        assert_eq!(named.resolved_kind().unwrap(), ForgeKind::Gitea);
    }

    #[test]
    fn a_hosted_forge_without_a_token_names_the_variable_to_set() {
        let s = settings("https://github.com/acme/config", ForgeKind::Github);
        let token = s.token(ForgeKind::Github).unwrap();
        let e = connect(&s, ForgeKind::Github, token, Path::new("/nonexistent"));
        let text = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("`HYDRANT_GITHUB_TOKEN`"), "{text}");
        assert!(text.contains("--github-token-file"), "{text}");
    }

    #[test]
    fn each_forge_takes_its_own_token_and_never_shows_it() {
        let s = settings("https://git.example.com/acme/config", ForgeKind::Gitea);
        assert!(s.token(ForgeKind::Github).unwrap().is_none());
        let token = s.token(ForgeKind::Gitea).unwrap();
        assert_eq!(
            token.as_ref().map(|t| t.token()),
            Some(Ok("tea-token".to_string()))
        );
        assert!(!format!("{s:?}").contains("tea-token"));
        let forge = connect(&s, ForgeKind::Gitea, token, Path::new("/nonexistent")).unwrap();
        assert_eq!(forge.name(), "gitea");
    }
}
