//! GitHub App authentication: the app's private key signs a short-lived JWT
//! (RS256), which buys an installation access token. The token is cached and
//! renewed five minutes before it expires, or at once when GitHub refuses it;
//! the same token authenticates the git push over HTTPS.
//!
//! Both calls go through [`Api`], the one forge HTTP client, with its
//! retries, rate limits, origin rule, redirect policy and deadlines, and
//! their answers are read into typed structs.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde::Deserialize;

use super::api::{Api, ApiAuth, ApiOptions};
use crate::auth::TokenSource;

/// Renew this long before a token expires.
const MARGIN: u64 = 300;

/// The app itself: each use signs a fresh JWT with its key. It goes to the
/// API through [`Api`] like any token, so the JWT too travels only to the
/// API's origin, under its deadlines, retries and rate limits, and never
/// shows in an error.
struct AppJwt {
    app_id: String,
    key: EncodingKey,
}

impl TokenSource for AppJwt {
    fn token(&self) -> Result<String, String> {
        let t = now();
        let claims = serde_json::json!({"iat": t - 60, "exp": t + 540, "iss": self.app_id});
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the GitHub App JWT: {e}"))
    }
}

/// GitHub's answer naming the installation that covers a repository.
#[derive(Debug, Deserialize)]
struct InstallationJson {
    id: u64,
}

/// GitHub's answer to the token exchange.
#[derive(Debug, Deserialize)]
struct AccessTokenJson {
    token: String,
    /// RFC 3339; an hour from now when GitHub does not say.
    expires_at: Option<String>,
}

pub struct AppToken {
    /// The API, authenticated as the app.
    api: Api,
    owner: String,
    repo: String,
    installation: Mutex<Option<u64>>,
    /// The token and when it expires (seconds since the epoch).
    cached: Mutex<Option<(String, u64)>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the epoch of an RFC 3339 time (`2026-11-21T12:00:00Z`).
fn parse_utc(s: &str) -> Option<u64> {
    let at: jiff::Timestamp = s.parse().ok()?;
    u64::try_from(at.as_second()).ok()
}

impl AppToken {
    pub fn new(
        app_id: &str,
        key_pem: &[u8],
        api: &str,
        owner: &str,
        repo: &str,
        installation: Option<u64>,
        options: ApiOptions,
    ) -> Result<AppToken, String> {
        let key = EncodingKey::from_rsa_pem(key_pem)
            .map_err(|e| format!("the GitHub App key is not an RSA private key in PEM: {e}"))?;
        let jwt = AppJwt {
            app_id: app_id.to_string(),
            key,
        };
        let api = Api::new("github app", api, ApiAuth::Bearer(Arc::new(jwt)), options)
            .map_err(|e| e.to_string())?;
        Ok(AppToken {
            api,
            owner: owner.to_string(),
            repo: repo.to_string(),
            installation: Mutex::new(installation),
            cached: Mutex::new(None),
        })
    }

    fn installation_id(&self) -> Result<u64, String> {
        let mut id = self
            .installation
            .lock()
            .map_err(|_| "lock poisoned".to_string())?;
        if let Some(id) = *id {
            return Ok(id);
        }
        let path = format!("/repos/{}/{}/installation", self.owner, self.repo);
        let found: InstallationJson = self
            .api
            .call_as(Method::GET, &path, None)
            .map_err(|e| e.to_string())?;
        *id = Some(found.id);
        Ok(found.id)
    }
}

impl TokenSource for AppToken {
    fn token(&self) -> Result<String, String> {
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| "lock poisoned".to_string())?;
        if let Some((token, expires)) = cached.as_ref()
            && now() + MARGIN < *expires
        {
            return Ok(token.clone());
        }
        let id = self.installation_id()?;
        let path = format!("/app/installations/{id}/access_tokens");
        let answer: AccessTokenJson = self
            .api
            .call_as(Method::POST, &path, None)
            .map_err(|e| e.to_string())?;
        let token = answer.token;
        let expires = match answer.expires_at {
            Some(at) => parse_utc(&at).ok_or_else(|| {
                let request = format!("POST {path}");
                let e = self
                    .api
                    .invalid(&request, "expires_at", "is no RFC 3339 time");
                e.to_string()
            })?,
            None => now() + 3600,
        };
        tracing::info!(
            installation = id,
            expires_in = expires.saturating_sub(now()),
            "renewed the GitHub App installation token"
        );
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    fn refused(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }

    fn renewable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    #[test]
    fn utc_times_are_read() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2026-11-21T12:00:00Z"), Some(1_795_262_400));
        assert_eq!(parse_utc("soon"), None);
    }

    /// A new RSA private key (PEM), made with `openssl` in `dir`.
    fn new_key(dir: &std::path::Path) -> Vec<u8> {
        let key = dir.join("app.pem");
        let out = std::process::Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&key)
            .arg("2048")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(key).unwrap()
    }

    /// Serves `answers` in turn on 127.0.0.1, one a connection; returns the
    /// server's URL and the request lines it saw.
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((stream, _)) = listener.accept() else {
                    return;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = seen.send(line.trim_end().to_string());
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
                        break;
                    }
                }
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (url, requests)
    }

    #[test]
    fn the_token_exchange_retries_a_server_error_and_names_a_missing_field() {
        let dir = tempfile::tempdir().unwrap();
        let (url, requests) = serve(vec![
            (502, r#"{"message": "Server Error"}"#),
            (201, r#"{"expires_at": "2026-11-21T12:00:00Z"}"#),
        ]);
        let options = ApiOptions {
            backoff: std::time::Duration::from_millis(1),
            ..ApiOptions::default()
        };
        let app = AppToken::new(
            "123",
            &new_key(dir.path()),
            &url,
            "acme",
            "config",
            Some(42),
            options,
        )
        .unwrap();
        let e = app.token().unwrap_err();
        assert_eq!(
            e,
            "github app: POST /app/installations/42/access_tokens: the answer's `token` is missing"
        );
        let seen: Vec<String> = requests.try_iter().collect();
        assert_eq!(
            seen,
            vec!["POST /app/installations/42/access_tokens HTTP/1.1"; 2],
            "the server error was retried"
        );
    }
}
