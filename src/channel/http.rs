//! Channel specs over HTTP: the reference operator's deploy server, or any
//! vendor's URL template.
//!
//! - Deploy-server mode (a base URL), as the reference operator: the latest
//!   spec at `GET {base}/api/v1/operator/channel` (the license chooses the
//!   channel), a pinned release at
//!   `GET {base}/api/v1/operator/channel/release/{release}`, HTTP Basic auth with
//!   user `license` and the license as password. `?channel=` is sent only when
//!   asked for, with the template
//!   `{base}/api/v1/operator/channel?channel={channel}`; pins still go to the
//!   release endpoint.
//! - Template mode (a URL holding `{channel}`, and `{release}` for pins), with an
//!   optional bearer token.
//!
//! Polling is cheap: every spec fetched is kept in a cache directory with its
//! `ETag` and `Last-Modified`, and sent back as `If-None-Match` /
//! `If-Modified-Since`; a `304` reuses the cached spec. Connection errors,
//! timeouts, 5xx, 408 and 429 are retried with exponential backoff and jitter
//! (honouring `Retry-After`), other 4xx are not. When the channel cannot be
//! reached, the last good spec is used with a warning saying how old it is.
//! Secrets (license, token) travel only in headers: never in a URL, a log
//! line, an error or the cache; and only to the channel's origin: a redirect to
//! another origin is refused. Each attempt, its body included, is bounded by
//! the timeout as a whole.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde::{Deserialize, Serialize};

use super::{ChannelError, ChannelSpec, Fetch, Source, Verifier, parse_spec};
use crate::outbound::{self, BodyError};

/// The deploy server's path of a channel's latest spec.
const DEPLOY_LATEST: &str = "/api/v1/operator/channel";

/// How the source authenticates.
#[derive(Clone, Default)]
pub enum Auth {
    #[default]
    None,
    /// HTTP Basic with user `license` (the deploy server's scheme).
    License(String),
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::License(_) => "License(<redacted>)",
            Auth::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

/// Settings of an HTTP source.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub auth: Auth,
    /// Extra CA certificates (PEM bundle) trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first backoff; it doubles on each retry.
    pub backoff: Duration,
    /// The longest single wait, `Retry-After` included.
    pub max_wait: Duration,
    /// The largest spec accepted, in bytes.
    pub max_bytes: u64,
    /// Where specs and validators are cached.
    pub cache_dir: PathBuf,
    /// When set, every spec must carry a valid signature.
    pub verifier: Option<Verifier>,
}

/// Defaults of a channel request, stated once: [`HttpOptions::new`] and the
/// command line's `--channel-*` flags both take them from here.
pub mod defaults {
    /// Total timeout of one request, in seconds (`--channel-timeout`).
    pub const TIMEOUT_SECS: u64 = 30;
    /// The longest wait to connect, in seconds.
    pub const CONNECT_TIMEOUT_SECS: u64 = 10;
    /// Retries of a failed request (`--channel-retries`).
    pub const RETRIES: u32 = 3;
    /// The first wait before a retry, in milliseconds (`--channel-backoff-ms`).
    pub const BACKOFF_MS: u64 = 500;
    /// The longest wait a server may ask for (`Retry-After`), in seconds.
    pub const MAX_WAIT_SECS: u64 = 60;
    /// The largest spec accepted, in bytes (`--channel-max-bytes`).
    pub const MAX_BYTES: u64 = 8 << 20;
}

impl HttpOptions {
    pub fn new(cache_dir: PathBuf) -> HttpOptions {
        HttpOptions {
            auth: Auth::None,
            ca_file: None,
            connect_timeout: Duration::from_secs(defaults::CONNECT_TIMEOUT_SECS),
            timeout: Duration::from_secs(defaults::TIMEOUT_SECS),
            retries: defaults::RETRIES,
            backoff: Duration::from_millis(defaults::BACKOFF_MS),
            max_wait: Duration::from_secs(defaults::MAX_WAIT_SECS),
            max_bytes: defaults::MAX_BYTES,
            cache_dir,
            verifier: None,
        }
    }
}

pub struct HttpSource {
    base: String,
    client: Client,
    options: HttpOptions,
}

/// What the cache keeps for one URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    /// Seconds since the epoch when the spec was last confirmed by the server.
    fetched_at: u64,
    version: String,
    body: String,
    #[serde(default)]
    signature: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// "3h 12m", for how old a cached spec is.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A spec's text with its `ETag` and `Last-Modified`.
struct Fresh {
    body: String,
    etag: Option<String>,
    last_modified: Option<String>,
    signature: Option<String>,
}

enum Failure {
    /// Worth trying again (after `wait`, when the server said).
    Transient(String, Option<Duration>),
    /// Trying again will not help.
    Permanent(ChannelError),
}

impl HttpSource {
    /// A source for `base`: a deploy-server base URL, or a template with `{channel}`.
    pub fn new(base: &str, options: HttpOptions) -> Result<HttpSource, ChannelError> {
        let invalid = |message: String| ChannelError::Invalid {
            origin: base.to_string(),
            message,
        };
        crate::auth::check_url(base).map_err(|e| ChannelError::Invalid {
            origin: crate::auth::redact_url(base),
            message: e.to_string(),
        })?;
        reqwest::Url::parse(&base.replace(['{', '}'], ""))
            .map_err(|e| invalid(format!("not a URL: {e}")))?;
        let mut builder = Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .redirect(outbound::redirects())
            .user_agent(concat!("hydrant/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca_file {
            let pem = std::fs::read(path).map_err(|source| ChannelError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| invalid(format!("`{}` is not a PEM bundle: {e}", path.display())))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| invalid(e.to_string()))?;
        Ok(HttpSource {
            base: base.trim_end_matches('/').to_string(),
            client,
            options,
        })
    }

    fn url(&self, channel: &str, release: Option<&str>) -> String {
        if self.base.contains("{channel}") {
            let url = self.base.replace("{channel}", channel);
            let path = url.split_once('?').map_or(url.as_str(), |(p, _)| p);
            return match release {
                Some(r) if url.contains("{release}") => url.replace("{release}", r),
                // The deploy server's latest with `?channel=` asked for: its
                // releases are still at its release endpoint.
                Some(r) if path.ends_with(DEPLOY_LATEST) => format!("{path}/release/{r}"),
                Some(r) => format!(
                    "{url}{}release={r}",
                    if url.contains('?') { '&' } else { '?' }
                ),
                None => url.replace("{release}", ""),
            };
        }
        // As the reference operator: the license chooses the channel.
        match release {
            Some(r) => format!("{}{DEPLOY_LATEST}/release/{r}", self.base),
            None => format!("{}{DEPLOY_LATEST}", self.base),
        }
    }

    /// Where the spec of `url` for `channel` is cached. A deploy server's
    /// latest URL names no channel, so the channel is part of the key: two
    /// channels asked of one server never share (or cross-check) an entry.
    fn cache_path(&self, channel: &str, url: &str) -> PathBuf {
        let key = if url.ends_with(DEPLOY_LATEST) {
            format!("{url}#{channel}")
        } else {
            url.to_string()
        };
        let id = crate::manifest::layout::sha256(key.as_bytes());
        self.options.cache_dir.join(format!("{}.json", &id[..24]))
    }

    fn read_cache(&self, channel: &str, url: &str) -> Option<Cached> {
        let text = std::fs::read_to_string(self.cache_path(channel, url)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the cache atomically: a crash never leaves a torn file.
    fn write_cache(&self, channel: &str, url: &str, entry: &Cached) {
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.options.cache_dir)?;
            let tmp = tempfile::NamedTempFile::new_in(&self.options.cache_dir)?;
            std::fs::write(tmp.path(), serde_json::to_vec(entry).unwrap_or_default())?;
            tmp.persist(self.cache_path(channel, url))
                .map_err(|e| e.error)?;
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(cache = %self.options.cache_dir.display(), error = %e, "cannot write the channel cache");
        }
    }

    fn request(&self, url: &str, cached: Option<&Cached>) -> Result<Response, Failure> {
        let mut req = self
            .client
            .get(url)
            .timeout(self.options.timeout)
            .header("Accept", "application/json");
        req = match &self.options.auth {
            Auth::None => req,
            Auth::License(license) => req.basic_auth("license", Some(license)),
            Auth::Bearer(token) => req.bearer_auth(token),
        };
        if let Some(c) = cached {
            if let Some(etag) = &c.etag {
                req = req.header("If-None-Match", etag);
            }
            if let Some(lm) = &c.last_modified {
                req = req.header("If-Modified-Since", lm);
            }
        }
        req.send().map_err(|e| {
            if let Some(why) = outbound::refused_redirect(&e) {
                return Failure::Permanent(ChannelError::Invalid {
                    origin: url.to_string(),
                    message: why,
                });
            }
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "request failed"
            };
            Failure::Transient(
                format!(
                    "{kind}: {}",
                    std::error::Error::source(&e)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| e.to_string())
                ),
                None,
            )
        })
    }

    fn retry_after(resp: &Response) -> Option<Duration> {
        let value = resp.headers().get("Retry-After")?.to_str().ok()?;
        crate::outbound::retry_after(value, SystemTime::now())
    }

    /// The body of an answer, read within what is left of the attempt's
    /// timeout, and no larger than `max_bytes`.
    fn read_body(
        &self,
        url: &str,
        started: Instant,
        mut resp: Response,
    ) -> Result<String, Failure> {
        let too_large = || {
            Failure::Permanent(ChannelError::Invalid {
                origin: url.to_string(),
                message: format!(
                    "the spec is larger than the {} bytes allowed",
                    self.options.max_bytes
                ),
            })
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.options.max_bytes)
        {
            return Err(too_large());
        }
        let body = match outbound::read_body(
            &mut resp,
            started,
            self.options.timeout,
            self.options.max_bytes,
        ) {
            Ok(body) => body,
            Err(BodyError::TooLarge(_)) => return Err(too_large()),
            Err(e) => return Err(Failure::Transient(e.to_string(), None)),
        };
        String::from_utf8(body).map_err(|_| {
            Failure::Permanent(ChannelError::Invalid {
                origin: url.to_string(),
                message: "the spec is not UTF-8 text".to_string(),
            })
        })
    }

    /// One attempt: the spec's text and validators, or `None` for a 304.
    fn attempt(&self, url: &str, cached: Option<&Cached>) -> Result<Option<Fresh>, Failure> {
        let started = Instant::now();
        let resp = self.request(url, cached)?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED && cached.is_some() {
            return Ok(None);
        }
        if status.is_success() {
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            let (etag, last_modified) = (header("ETag"), header("Last-Modified"));
            let signature = header("X-Hydrant-Signature");
            let body = self.read_body(url, started, resp)?;
            return Ok(Some(Fresh {
                body,
                etag,
                last_modified,
                signature,
            }));
        }
        let wait = Self::retry_after(&resp);
        let code = status.as_u16();
        if status.is_server_error() || code == 408 || code == 429 {
            return Err(Failure::Transient(
                format!("the server answered {status}"),
                wait,
            ));
        }
        let message = match code {
            401 => "the channel server rejected the credentials (401): check the license or token".to_string(),
            403 => "the channel server refused access (403): the license or token does not grant this channel".to_string(),
            404 => "no such channel or release (404)".to_string(),
            _ => format!("the server answered {status}"),
        };
        Err(Failure::Permanent(ChannelError::Invalid {
            origin: url.to_string(),
            message,
        }))
    }

    /// Checks a fresh spec's signature (from its header, or `<path>.sig`).
    fn verify(&self, url: &str, fresh: &mut Fresh) -> Result<(), Failure> {
        let Some(verifier) = &self.options.verifier else {
            return Ok(());
        };
        let refused = |message: String| {
            Failure::Permanent(ChannelError::Invalid {
                origin: url.to_string(),
                message,
            })
        };
        if fresh.signature.is_none() {
            let sig_url = match url.split_once('?') {
                Some((path, query)) => format!("{path}.sig?{query}"),
                None => format!("{url}.sig"),
            };
            let started = Instant::now();
            let resp = self.request(&sig_url, None)?;
            if !resp.status().is_success() {
                return Err(refused(format!(
                    "the spec is not signed (no `X-Hydrant-Signature` header, and `{sig_url}` answered {})",
                    resp.status()
                )));
            }
            fresh.signature = Some(self.read_body(&sig_url, started, resp)?.trim().to_string());
        }
        let signature = fresh.signature.as_deref().unwrap_or("");
        verifier
            .verify(fresh.body.as_bytes(), signature)
            .map_err(refused)
    }

    fn spec_of(
        &self,
        channel: &str,
        url: &str,
        cached: &Cached,
        fetch: Fetch,
    ) -> Result<ChannelSpec, ChannelError> {
        let mut spec = parse_spec(channel, url, &cached.body)?;
        spec.fetch = fetch;
        spec.signature = cached.signature.clone();
        Ok(spec)
    }

    /// The last good spec, for a channel that could not be reached (`reason`).
    fn stale(
        &self,
        channel: &str,
        url: &str,
        cached: &Cached,
        reason: String,
    ) -> Result<ChannelSpec, ChannelError> {
        let old = now().saturating_sub(cached.fetched_at);
        tracing::warn!(channel, url = %url, age = %age(old), reason = %reason, "channel unreachable; using the last good spec");
        self.spec_of(
            channel,
            url,
            cached,
            Fetch::StaleCache {
                age_secs: old,
                reason,
            },
        )
    }
}

impl Source for HttpSource {
    fn fetch(&self, channel: &str, release: Option<&str>) -> Result<ChannelSpec, ChannelError> {
        let url = self.url(channel, release);
        let cached = self.read_cache(channel, &url);
        let mut attempt = 0;
        let last_error = loop {
            match self.attempt(&url, cached.as_ref()) {
                Ok(None) => {
                    let c = cached.clone().expect("a 304 needs a cached spec");
                    let mut refreshed = c.clone();
                    refreshed.fetched_at = now();
                    self.write_cache(channel, &url, &refreshed);
                    return self.spec_of(channel, &url, &c, Fetch::NotModified);
                }
                Ok(Some(mut fresh)) => {
                    if let Err(failure) = self.verify(&url, &mut fresh) {
                        return Err(match failure {
                            Failure::Permanent(e) => e,
                            Failure::Transient(message, _) => ChannelError::Unreachable {
                                url: url.clone(),
                                message,
                            },
                        });
                    }
                    let Fresh {
                        body,
                        etag,
                        last_modified,
                        signature,
                    } = fresh;
                    // A 200 whose body is no spec (a proxy's HTML error page,
                    // truncated JSON) is a channel that could not be reached:
                    // the last good spec stands.
                    let mut spec = match parse_spec(channel, &url, &body) {
                        Ok(spec) => spec,
                        Err(e) => {
                            let reason = match e {
                                ChannelError::Invalid { message, .. } => {
                                    format!("not a channel spec: {message}")
                                }
                                other => format!("not a channel spec: {other}"),
                            };
                            return match cached {
                                Some(c) => self.stale(channel, &url, &c, reason),
                                None => Err(ChannelError::Invalid {
                                    origin: url,
                                    message: reason,
                                }),
                            };
                        }
                    };
                    spec.fetch = Fetch::Network;
                    spec.signature = signature.clone();
                    let previous = cached.as_ref().map(|c| c.version.clone());
                    if release.is_none()
                        && previous
                            .as_deref()
                            .is_some_and(|p| super::is_downgrade(p, &spec.version))
                    {
                        // Keep the higher version cached: the downgrade is refused
                        // unless an environment accepts it.
                        spec.previous_version = previous;
                        return Ok(spec);
                    }
                    spec.previous_version = previous;
                    let entry = Cached {
                        url: url.clone(),
                        etag,
                        last_modified,
                        fetched_at: now(),
                        version: spec.version.clone(),
                        body,
                        signature,
                    };
                    self.write_cache(channel, &url, &entry);
                    return Ok(spec);
                }
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transient(message, wait)) => {
                    if attempt >= self.options.retries {
                        break message;
                    }
                    let delay = wait
                        .unwrap_or_else(|| {
                            crate::backoff::delay(
                                self.options.backoff,
                                attempt,
                                self.options.max_wait,
                            )
                        })
                        .min(self.options.max_wait);
                    tracing::warn!(url = %url, attempt = attempt + 1, wait_ms = delay.as_millis() as u64, reason = %message, "channel fetch failed; retrying");
                    std::thread::sleep(delay);
                    attempt += 1;
                }
            }
        };
        match cached {
            Some(c) => self.stale(channel, &url, &c, last_error),
            None => Err(ChannelError::Unreachable {
                url,
                message: last_error,
            }),
        }
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

/// The default cache directory for channel specs.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("hydrant")
        .join("channels")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(base: &str) -> HttpSource {
        HttpSource::new(base, HttpOptions::new(std::env::temp_dir())).unwrap()
    }

    #[test]
    fn deploy_server_urls_follow_the_reference_operator() {
        let s = source("https://deploy.example.com/");
        assert_eq!(
            s.url("stable", None),
            "https://deploy.example.com/api/v1/operator/channel"
        );
        assert_eq!(
            s.url("stable", Some("0.62.1")),
            "https://deploy.example.com/api/v1/operator/channel/release/0.62.1"
        );
        assert_ne!(
            s.cache_path("stable", &s.url("stable", None)),
            s.cache_path("canary", &s.url("canary", None))
        );
        let s = source("https://deploy.example.com/api/v1/operator/channel?channel={channel}");
        assert_eq!(
            s.url("stable", None),
            "https://deploy.example.com/api/v1/operator/channel?channel=stable"
        );
        assert_eq!(
            s.url("stable", Some("0.62.1")),
            "https://deploy.example.com/api/v1/operator/channel/release/0.62.1"
        );
    }

    #[test]
    fn templates_fill_channel_and_release() {
        let s = source("https://vendor.example.com/channels/{channel}/{release}");
        assert_eq!(
            s.url("beta", Some("2.0")),
            "https://vendor.example.com/channels/beta/2.0"
        );
        let s = source("https://vendor.example.com/c/{channel}.json");
        assert_eq!(
            s.url("beta", Some("2.0")),
            "https://vendor.example.com/c/beta.json?release=2.0"
        );
    }

    #[test]
    fn credentials_in_the_url_are_refused() {
        assert!(
            HttpSource::new(
                "https://user:pw@deploy.example.com",
                HttpOptions::new(std::env::temp_dir())
            )
            .is_err()
        );
    }

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(age(2 * 86_400 + 3600), "2d 1h");
    }
}
