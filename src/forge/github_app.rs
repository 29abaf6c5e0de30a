//! GitHub App authentication: the app's private key signs a short-lived JWT
//! (RS256), which buys an installation access token. The token is cached and
//! renewed five minutes before it expires, or at once when GitHub refuses it;
//! the same token authenticates the git push over HTTPS.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::blocking::Client;
use serde_json::Value;

use crate::auth::TokenSource;

/// Renew this long before a token expires.
const MARGIN: u64 = 300;

/// The longest one call may take, its answer included.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The largest answer accepted, in bytes.
const MAX_ANSWER_BYTES: u64 = 1 << 20;

pub struct AppToken {
    app_id: String,
    key: EncodingKey,
    api: String,
    owner: String,
    repo: String,
    installation: Mutex<Option<u64>>,
    /// The token and when it expires (seconds since the epoch).
    cached: Mutex<Option<(String, u64)>>,
    client: Client,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-11-21T12:00:00Z`).
pub fn parse_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

impl AppToken {
    pub fn new(
        app_id: &str,
        key_pem: &[u8],
        api: &str,
        owner: &str,
        repo: &str,
        installation: Option<u64>,
    ) -> Result<AppToken, String> {
        let key = EncodingKey::from_rsa_pem(key_pem)
            .map_err(|e| format!("the GitHub App key is not an RSA private key in PEM: {e}"))?;
        let client = Client::builder()
            .user_agent(concat!("hydrant/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .redirect(crate::outbound::redirects())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(AppToken {
            app_id: app_id.to_string(),
            key,
            api: api.trim_end_matches('/').to_string(),
            owner: owner.to_string(),
            repo: repo.to_string(),
            installation: Mutex::new(installation),
            cached: Mutex::new(None),
            client,
        })
    }

    fn jwt(&self) -> Result<String, String> {
        let t = now();
        let claims = serde_json::json!({"iat": t - 60, "exp": t + 540, "iss": self.app_id});
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the GitHub App JWT: {e}"))
    }

    /// One call to the API with the app's JWT. The JWT goes only to the
    /// configured API origin (redirects elsewhere are refused), the answer
    /// is read under one deadline, and an error carries only a short,
    /// redacted excerpt of what GitHub said.
    fn call(&self, method: reqwest::Method, path: &str) -> Result<Value, String> {
        let jwt = self.jwt()?;
        let started = std::time::Instant::now();
        let mut resp = self
            .client
            .request(method.clone(), format!("{}{path}", self.api))
            .timeout(TIMEOUT)
            .bearer_auth(&jwt)
            .header("Accept", "application/vnd.github+json")
            .send()
            .map_err(|e| {
                let why =
                    crate::outbound::refused_redirect(&e).unwrap_or_else(|| match e.is_timeout() {
                        true => "timed out".to_string(),
                        false => "connection failed".to_string(),
                    });
                format!("{method} {path}: {why}")
            })?;
        let status = resp.status();
        let body = crate::outbound::read_body(&mut resp, started, TIMEOUT, MAX_ANSWER_BYTES)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            // (`token` holds the cache's lock while it calls: do not take it here.)
            let said = crate::outbound::server_text(
                body["message"].as_str().unwrap_or(""),
                &[jwt.as_str()],
            );
            return Err(format!("{method} {path}: {status} {said}"));
        }
        Ok(body)
    }

    fn installation_id(&self) -> Result<u64, String> {
        let mut id = self
            .installation
            .lock()
            .map_err(|_| "lock poisoned".to_string())?;
        if let Some(id) = *id {
            return Ok(id);
        }
        let v = self.call(
            reqwest::Method::GET,
            &format!("/repos/{}/{}/installation", self.owner, self.repo),
        )?;
        let found = v["id"]
            .as_u64()
            .ok_or("GitHub did not say which installation covers the repository")?;
        *id = Some(found);
        Ok(found)
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
        let v = self.call(
            reqwest::Method::POST,
            &format!("/app/installations/{id}/access_tokens"),
        )?;
        let token = v["token"]
            .as_str()
            .ok_or("GitHub sent no installation token")?
            .to_string();
        let expires = v["expires_at"]
            .as_str()
            .and_then(parse_utc)
            .unwrap_or(now() + 3600);
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

    #[test]
    fn utc_times_are_read() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2026-11-21T12:00:00Z"), Some(1_795_262_400));
        assert_eq!(parse_utc("soon"), None);
    }
}
