//! The command-line flags that say where channel specs come from and how to
//! reach them, shared by every command that reads a channel.

use std::path::PathBuf;

use clap::Args;

use super::http::defaults as http_defaults;

/// Where channel specs come from, and how to reach them.
#[derive(Debug, Args, Clone)]
pub struct ChannelArgs {
    /// Where channel specs come from: a directory holding `<channel>.yaml`, a
    /// single spec file, a deploy server's base URL, or a URL template with
    /// `{channel}` (and `{release}`). Overrides `channelSource` in hydrant.yaml.
    #[arg(long, env = "HYDRANT_CHANNEL")]
    pub channel: Option<String>,
    /// A file holding the license sent to a deploy server (or set `HYDRANT_LICENSE`).
    #[arg(long, env = "HYDRANT_LICENSE_FILE", value_name = "FILE")]
    pub license_file: Option<PathBuf>,
    /// A file holding a bearer token for a channel URL template (or set `HYDRANT_CHANNEL_TOKEN`).
    #[arg(long, env = "HYDRANT_CHANNEL_TOKEN_FILE", value_name = "FILE")]
    pub channel_token_file: Option<PathBuf>,
    /// Extra CA certificates (a PEM bundle) to trust for the channel server.
    #[arg(long, env = "HYDRANT_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Total timeout of one channel request, in seconds.
    #[arg(long, env = "HYDRANT_CHANNEL_TIMEOUT", default_value_t = http_defaults::TIMEOUT_SECS)]
    pub channel_timeout: u64,
    /// Retries of a failed channel request (connection errors, timeouts, 5xx, 408, 429).
    #[arg(long, env = "HYDRANT_CHANNEL_RETRIES", default_value_t = http_defaults::RETRIES)]
    pub channel_retries: u32,
    /// The first wait before retrying a channel request, in milliseconds; it
    /// doubles on each retry, with jitter.
    #[arg(long, env = "HYDRANT_CHANNEL_BACKOFF_MS", default_value_t = http_defaults::BACKOFF_MS)]
    pub channel_backoff_ms: u64,
    /// The largest channel spec accepted, in bytes.
    #[arg(long, env = "HYDRANT_CHANNEL_MAX_BYTES", default_value_t = http_defaults::MAX_BYTES)]
    pub channel_max_bytes: u64,
    /// Require every channel spec to carry a valid ed25519 signature by this
    /// public key (PEM, or 32 bytes in base64 or hex).
    #[arg(long, env = "HYDRANT_CHANNEL_PUBLIC_KEY", value_name = "FILE")]
    pub channel_public_key: Option<PathBuf>,
    /// Where fetched channel specs are cached [default: `~/.cache/hydrant/channels`].
    #[arg(long, env = "HYDRANT_CHANNEL_CACHE_DIR", value_name = "DIR")]
    pub channel_cache_dir: Option<PathBuf>,
}

impl ChannelArgs {
    /// The settings a [`crate::project::Project`] needs to reach channels.
    pub fn settings(&self) -> anyhow::Result<crate::project::ChannelSettings> {
        use crate::channel::{Auth, HttpOptions, http};
        let mut http = HttpOptions::new(
            self.channel_cache_dir
                .clone()
                .unwrap_or_else(http::default_cache_dir),
        );
        http.auth = match (
            crate::auth::secret(&self.license_file, "HYDRANT_LICENSE")?,
            crate::auth::secret(&self.channel_token_file, "HYDRANT_CHANNEL_TOKEN")?,
        ) {
            (Some(license), _) => Auth::License(license),
            (None, Some(token)) => Auth::Bearer(token),
            (None, None) => Auth::None,
        };
        if let Some(path) = &self.ca_file {
            crate::auth::check_ca_file(path)?;
        }
        http.ca_file = self.ca_file.clone();
        http.timeout = std::time::Duration::from_secs(self.channel_timeout.max(1));
        http.connect_timeout = http.timeout.min(http.connect_timeout);
        http.retries = self.channel_retries;
        http.backoff = std::time::Duration::from_millis(self.channel_backoff_ms);
        if let Some(path) = &self.channel_public_key {
            let text = crate::auth::read_file(path)?;
            let verifier = crate::channel::Verifier::parse(&text)
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))?;
            http.verifier = Some(verifier);
        }
        http.max_bytes = self.channel_max_bytes;
        Ok(crate::project::ChannelSettings {
            source: self.channel.clone(),
            http,
        })
    }
}
