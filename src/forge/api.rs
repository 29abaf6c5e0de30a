//! A careful client for forge REST APIs: bounded retries, rate limits honoured,
//! pagination followed.
//!
//! - `429` and `403` rate-limit answers wait for `Retry-After` or
//!   `x-ratelimit-reset` (GitHub's secondary limits say so in a `403`), never
//!   longer than `max_wait`; a longer wait is an error saying until when.
//! - After a rate limit, no request at all is sent before the time it named:
//!   a call made meanwhile waits (or, when that is longer than `max_wait`,
//!   fails without being sent). Secondary limits (`429`, or `403` with
//!   `Retry-After`) are kept for an hour in [`ApiStats::throttles`]: the
//!   pull-request budget shrinks after them.
//! - 5xx and connection errors back off exponentially, a bounded number of times.
//! - `next` links of the `Link` header are followed for lists, within the
//!   API's origin only.
//! - The token travels only in a header, and only to the configured API origin
//!   (scheme, host, port): a next link or a redirect elsewhere is refused.
//! - Each attempt, its answer's body included, has one total deadline.
//! - Errors show the method and path and at most a short, redacted excerpt of
//!   what the server said; never the token, even when the server echoes it.
//! - An answer's status becomes a [`ForgeError`] variant here and nowhere else
//!   ([`status_error`]); an answer is read into a typed struct here too
//!   ([`Api::call_as`], [`Api::list_as`]): a field that is missing or holds
//!   something else is [`ForgeError::Invalid`] naming it, never a default.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ForgeError;
use crate::auth::Token;
use crate::outbound;

/// The largest answer a forge may send, in bytes.
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// How an API authenticates.
#[derive(Clone)]
pub enum ApiAuth {
    /// `Authorization: Bearer <token>` (GitHub, GitLab OAuth).
    Bearer(Token),
    /// `Authorization: token <token>` (Gitea, Forgejo).
    Token(Token),
    /// `PRIVATE-TOKEN: <token>` (GitLab personal and project tokens).
    PrivateToken(Token),
}

#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
    /// The longest hydrant waits for a rate limit or a `Retry-After`.
    pub max_wait: Duration,
}

/// Defaults of a forge call, stated once: [`ApiOptions::default`] and the
/// command line's `--forge-*` flags both take them from here.
pub mod defaults {
    /// Total timeout of one call, in seconds (`--forge-timeout`).
    pub const TIMEOUT_SECS: u64 = 30;
    /// Retries of a failed call.
    pub const RETRIES: u32 = 3;
    /// The first wait before a retry, in milliseconds (`--forge-backoff-ms`).
    pub const BACKOFF_MS: u64 = 500;
    /// The longest wait a rate limit may ask for, in seconds (`--forge-max-wait`).
    pub const MAX_WAIT_SECS: u64 = 60;
}

impl Default for ApiOptions {
    fn default() -> ApiOptions {
        ApiOptions {
            timeout: Duration::from_secs(defaults::TIMEOUT_SECS),
            retries: defaults::RETRIES,
            backoff: Duration::from_millis(defaults::BACKOFF_MS),
            max_wait: Duration::from_secs(defaults::MAX_WAIT_SECS),
        }
    }
}

/// Counters a daemon can export as metrics.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub calls: AtomicU64,
    pub rate_limit_waits: AtomicU64,
    /// The secondary rate limits of the last hour: when each came, and how
    /// long it asked to wait where it said.
    throttles: Mutex<Vec<(SystemTime, Option<Duration>)>>,
}

/// How long throttling answers are remembered.
const THROTTLE_MEMORY: Duration = Duration::from_secs(3_600);

impl ApiStats {
    /// The secondary rate limits of the last hour, oldest first.
    pub fn throttles(&self) -> Vec<(SystemTime, Option<Duration>)> {
        let now = SystemTime::now();
        self.throttles
            .lock()
            .map(|t| {
                t.iter()
                    .filter(|(at, _)| now.duration_since(*at).unwrap_or_default() < THROTTLE_MEMORY)
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn throttled(&self, retry_after: Option<Duration>) {
        let now = SystemTime::now();
        if let Ok(mut t) = self.throttles.lock() {
            t.retain(|(at, _)| now.duration_since(*at).unwrap_or_default() < THROTTLE_MEMORY);
            t.push((now, retry_after));
        }
    }
}

pub struct Api {
    forge: String,
    base: String,
    /// `base` parsed: the only origin the token is sent to.
    origin: Url,
    auth: ApiAuth,
    /// The tokens sent so far (the last few): hidden from every error.
    sent: Mutex<Vec<String>>,
    client: Client,
    options: ApiOptions,
    pub stats: ApiStats,
    /// No request is sent before this time (a rate limit asked so), and the
    /// status that asked.
    paused: Mutex<Option<(Instant, u16)>>,
}

/// An answer: status and JSON body (`Null` when there is none).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    next: Option<String>,
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `next` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

impl Api {
    pub fn new(
        forge: &str,
        base: &str,
        auth: ApiAuth,
        options: ApiOptions,
    ) -> Result<Api, ForgeError> {
        let failed = |message: String| ForgeError::Refused {
            forge: forge.to_string(),
            message,
        };
        let base = base.trim_end_matches('/');
        // Never echo the URL itself: it may hold a credential.
        crate::auth::check_base_url(base).map_err(|e| {
            let hint = e
                .hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            failed(format!("{e}{hint}"))
        })?;
        let origin =
            Url::parse(base).map_err(|e| failed(format!("the API URL is not a URL: {e}")))?;
        if !matches!(origin.scheme(), "http" | "https") || origin.host_str().is_none() {
            return Err(failed(
                "the API URL must be an http or https URL with a host".to_string(),
            ));
        }
        let client = Client::builder()
            .timeout(options.timeout)
            .redirect(outbound::redirects())
            .user_agent(concat!("hydrant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| failed(e.to_string()))?;
        Ok(Api {
            forge: forge.to_string(),
            base: base.to_string(),
            origin,
            auth,
            sent: Mutex::new(Vec::new()),
            client,
            options,
            stats: ApiStats::default(),
            paused: Mutex::new(None),
        })
    }

    /// hydrant will not make the call.
    fn refuse(&self, message: String) -> ForgeError {
        ForgeError::Refused {
            forge: self.forge.clone(),
            message,
        }
    }

    /// The error for an answer whose status is no success.
    pub(crate) fn refusal(&self, request: &str, answer: &Answer) -> ForgeError {
        status_error(
            &self.forge,
            request,
            answer.status,
            self.server_message(&answer.body),
        )
    }

    /// The error for an answer that lacks `field` or holds something else there.
    pub(crate) fn invalid(&self, request: &str, field: &str, message: &str) -> ForgeError {
        ForgeError::Invalid {
            forge: self.forge.clone(),
            request: request.to_string(),
            field: field.to_string(),
            message: message.to_string(),
        }
    }

    fn source(&self) -> &Token {
        match &self.auth {
            ApiAuth::Bearer(t) | ApiAuth::Token(t) | ApiAuth::PrivateToken(t) => t,
        }
    }

    fn authorised(&self, req: RequestBuilder) -> Result<RequestBuilder, ForgeError> {
        let req = req.header("Accept", "application/json");
        let token = self.source().token().map_err(|message| ForgeError::Token {
            forge: self.forge.clone(),
            message,
        })?;
        if let Ok(mut sent) = self.sent.lock()
            && !sent.contains(&token)
        {
            sent.push(token.clone());
            let excess = sent.len().saturating_sub(4);
            sent.drain(..excess);
        }
        Ok(match &self.auth {
            ApiAuth::Bearer(_) => req.bearer_auth(token),
            ApiAuth::Token(_) => req.header("Authorization", format!("token {token}")),
            ApiAuth::PrivateToken(_) => req.header("PRIVATE-TOKEN", token),
        })
    }

    /// The URL of a path under the API, or of an absolute URL (a next link)
    /// that must lie in the API's origin: the token goes nowhere else.
    fn resolve(&self, method: &Method, path_or_url: &str) -> Result<String, ForgeError> {
        if path_or_url.starts_with('/') {
            return Ok(format!("{}{path_or_url}", self.base));
        }
        let url = Url::parse(path_or_url).map_err(|_| {
            self.refuse(format!(
                "{method}: `{}` is neither a path under the API nor a URL",
                self.server_text(path_or_url)
            ))
        })?;
        if !outbound::same_origin(&url, &self.origin) {
            return Err(self.refuse(format!(
                "{method}: refused to follow a link to `{}`, another origin than the API's `{}`: the token is sent only to the API",
                outbound::origin(&url),
                outbound::origin(&self.origin)
            )));
        }
        Ok(url.to_string())
    }

    /// Text from the server, fit for an error: short, and without any token
    /// sent to it or anything that looks like a credential.
    pub(crate) fn server_text(&self, text: &str) -> String {
        let sent = self.sent.lock().map(|s| s.clone()).unwrap_or_default();
        let secrets: Vec<&str> = sent.iter().map(String::as_str).collect();
        outbound::server_text(text, &secrets)
    }

    /// What an error answer says: its `message` (or its text), fit for an error.
    pub(crate) fn server_message(&self, body: &Value) -> String {
        match body.get("message") {
            Some(Value::String(m)) => self.server_text(m),
            Some(other) => self.server_text(&other.to_string()),
            None => match body {
                Value::Null => String::new(),
                Value::String(text) => self.server_text(text),
                other => self.server_text(&other.to_string()),
            },
        }
    }

    /// How long a rate-limited answer asks to wait, if it is one.
    fn rate_limit_wait(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &str,
    ) -> Option<Duration> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
        let retry_after =
            header("retry-after").and_then(|v| outbound::retry_after(v, SystemTime::now()));
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|at| Duration::from_secs(at.saturating_sub(epoch()).max(1)));
        let limited = match status {
            429 => true,
            403 => {
                header("x-ratelimit-remaining") == Some("0")
                    || body.to_ascii_lowercase().contains("rate limit")
            }
            _ => false,
        };
        limited.then(|| retry_after.or(reset).unwrap_or(Duration::from_secs(60)))
    }

    fn transport(
        &self,
        request: &str,
        problem: &str,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ForgeError {
        ForgeError::Transport {
            forge: self.forge.clone(),
            request: request.to_string(),
            problem: problem.to_string(),
            source,
        }
    }

    /// Sends a request (with retries) and returns the answer, whatever its
    /// status below 500 that is no rate limit.
    pub fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ForgeError> {
        let url = self.resolve(&method, path_or_url)?;
        let shown = format!("{method} {}", url.strip_prefix(&self.base).unwrap_or(&url));
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            self.wait_for_pause(&shown)?;
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let mut req = self.authorised(
                self.client
                    .request(method.clone(), &url)
                    .timeout(self.options.timeout),
            )?;
            if let Some(b) = body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(serde_json::to_vec(b).unwrap_or_default());
            }
            let (wait, problem) = match req.send() {
                Err(e) if outbound::refused_redirect(&e).is_some() => {
                    let why = outbound::refused_redirect(&e).unwrap_or_default();
                    return Err(self.refuse(format!("{shown}: {why}")));
                }
                Err(e) => {
                    let problem = match e.is_timeout() {
                        true => "timed out",
                        false => "connection failed",
                    };
                    // The URL is the API's, shown already as `shown`.
                    let source = Box::new(e.without_url());
                    (None, self.transport(&shown, problem, Some(source)))
                }
                Ok(resp)
                    if resp.status().as_u16() == 401 && self.source().renewable() && !renewed =>
                {
                    // An expired installation token: renew it once and try again.
                    tracing::info!(forge = %self.forge, "the token was refused; renewing it");
                    self.source().refused();
                    renewed = true;
                    continue;
                }
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    // An answer cut short is no answer, never an empty success.
                    let text = match outbound::read_body(
                        &mut resp,
                        started,
                        self.options.timeout,
                        MAX_ANSWER_BYTES,
                    ) {
                        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                        Err(e @ outbound::BodyError::TooLarge(_)) => {
                            return Err(self.refuse(format!("{shown}: {e}")));
                        }
                        Err(e) => {
                            let problem = format!("the answer was cut short ({status})");
                            let failure = self.transport(&shown, &problem, Some(Box::new(e)));
                            self.retry_or_fail(&mut attempt, None, failure)?;
                            continue;
                        }
                    };
                    let body = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
                    };
                    if let Some(wait) = Self::rate_limit_wait(status, &headers, &text) {
                        self.pause(wait, status);
                        if status == 429 || headers.contains_key("retry-after") {
                            let said = headers
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| outbound::retry_after(v.trim(), SystemTime::now()));
                            self.stats.throttled(said);
                        }
                        let too_long = wait > self.options.max_wait;
                        let limited = ForgeError::RateLimited {
                            forge: self.forge.clone(),
                            request: shown.clone(),
                            status,
                            wait_secs: Some(wait.as_secs()),
                            longest_wait_secs: too_long.then_some(self.options.max_wait.as_secs()),
                        };
                        if too_long {
                            return Err(limited);
                        }
                        self.stats.rate_limit_waits.fetch_add(1, Ordering::Relaxed);
                        (Some(wait), limited)
                    } else if status >= 500 {
                        let answer = Answer {
                            status,
                            body,
                            next: None,
                        };
                        (None, self.refusal(&shown, &answer))
                    } else {
                        let next = headers
                            .get("link")
                            .and_then(|v| v.to_str().ok())
                            .and_then(next_link);
                        return Ok(Answer { status, body, next });
                    }
                }
            };
            self.retry_or_fail(&mut attempt, wait, problem)?;
        }
    }

    /// Sends nothing before `wait` has passed.
    fn pause(&self, wait: Duration, status: u16) {
        let until = Instant::now() + wait;
        if let Ok(mut p) = self.paused.lock()
            && p.is_none_or(|(at, _)| at < until)
        {
            *p = Some((until, status));
        }
    }

    /// Waits out a pause a rate limit asked for, or refuses to send when it
    /// lasts longer than hydrant waits.
    fn wait_for_pause(&self, request: &str) -> Result<(), ForgeError> {
        let left = self.paused.lock().ok().and_then(|p| {
            let (until, status) = (*p)?;
            let left = until.checked_duration_since(Instant::now())?;
            Some((left, status))
        });
        let Some((left, status)) = left else {
            return Ok(());
        };
        if left > self.options.max_wait {
            return Err(ForgeError::RateLimited {
                forge: self.forge.clone(),
                request: request.to_string(),
                status,
                wait_secs: Some(left.as_secs().max(1)),
                longest_wait_secs: Some(self.options.max_wait.as_secs()),
            });
        }
        tracing::debug!(forge = %self.forge, wait_ms = left.as_millis() as u64, "waiting out the forge's rate limit before the next request");
        std::thread::sleep(left);
        Ok(())
    }

    /// Waits before the next attempt, or gives up with `problem` when the
    /// retries are spent.
    fn retry_or_fail(
        &self,
        attempt: &mut u32,
        wait: Option<Duration>,
        problem: ForgeError,
    ) -> Result<(), ForgeError> {
        if *attempt >= self.options.retries {
            return Err(problem);
        }
        let delay = wait
            .unwrap_or_else(|| {
                crate::backoff::delay(self.options.backoff, *attempt, self.options.max_wait)
            })
            .min(self.options.max_wait);
        tracing::warn!(forge = %self.forge, attempt = *attempt + 1, wait_ms = delay.as_millis() as u64, reason = %problem, "forge API call failed; retrying");
        std::thread::sleep(delay);
        *attempt += 1;
        Ok(())
    }

    /// Like [`send`](Self::send), but any status outside 2xx is an error.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ForgeError> {
        let answer = self.send(method.clone(), path, body)?;
        if (200..300).contains(&answer.status) {
            return Ok(answer.body);
        }
        Err(self.refusal(&format!("{method} {path}"), &answer))
    }

    /// Like [`call`](Self::call), with the answer read into `T`.
    pub fn call_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, ForgeError> {
        let answer = self.call(method.clone(), path, body)?;
        self.decode(&format!("{method} {path}"), answer, None)
    }

    /// Like [`list`](Self::list), with each item read into `T`.
    pub fn list_as<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, ForgeError> {
        let request = format!("GET {path}");
        self.list(path)?
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.decode(&request, item, Some(i)))
            .collect()
    }

    /// Reads the answer to `request` (item `item` of a list) into `T`: a
    /// field that is missing or holds another type is [`ForgeError::Invalid`]
    /// naming the field (`head.ref`), never an empty string or a zero.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        request: &str,
        answer: Value,
        item: Option<usize>,
    ) -> Result<T, ForgeError> {
        serde_path_to_error::deserialize(answer).map_err(|e| {
            let (field, problem) = wire_problem(&e.path().to_string(), &e.inner().to_string());
            let problem = match item {
                Some(i) => format!("{problem} (item {} of the list)", i + 1),
                None => problem,
            };
            self.invalid(request, &field, &self.server_text(&problem))
        })
    }

    /// Every item of a paginated list, following `Link: <…>; rel="next"`.
    pub fn list(&self, path: &str) -> Result<Vec<Value>, ForgeError> {
        self.list_while(path, |_| true)
    }

    /// Like [`list_as`](Self::list_as) over a list sorted newest first: the
    /// items while `wanted` holds; no page after the first item it refuses
    /// is asked for.
    pub fn list_while_as<T: DeserializeOwned>(
        &self,
        path: &str,
        wanted: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, ForgeError> {
        let request = format!("GET {path}");
        let mut out = Vec::new();
        let mut done = false;
        let mut seen = 0;
        self.list_while(path, |item: &Value| {
            if done {
                return false;
            }
            seen += 1;
            // A decoding error is kept to be reported below.
            match self.decode::<T>(&request, item.clone(), Some(seen - 1)) {
                Ok(t) if wanted(&t) => out.push(Ok(t)),
                Ok(_) => done = true,
                Err(e) => {
                    out.push(Err(e));
                    done = true;
                }
            }
            !done
        })?;
        out.into_iter().collect()
    }

    /// The items of a paginated list up to the first that `more` refuses
    /// (that one included); no further page is asked for then.
    fn list_while(
        &self,
        path: &str,
        mut more: impl FnMut(&Value) -> bool,
    ) -> Result<Vec<Value>, ForgeError> {
        let request = format!("GET {path}");
        let mut items = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(url) = next {
            pages += 1;
            if pages > 1000 {
                return Err(self.refuse(format!("{request}: more than 1000 pages")));
            }
            let answer = self.send(Method::GET, &url, None)?;
            if !(200..300).contains(&answer.status) {
                return Err(self.refusal(&request, &answer));
            }
            match answer.body {
                Value::Array(a) => {
                    for item in a {
                        let go_on = more(&item);
                        items.push(item);
                        if !go_on {
                            return Ok(items);
                        }
                    }
                }
                other => {
                    let got = self.server_text(&other.to_string());
                    return Err(self.invalid(&request, "(body)", &format!("is no list: {got}")));
                }
            }
            next = answer.next;
        }
        Ok(items)
    }
}

/// The field and what is wrong with it, from where serde stopped (`path`,
/// `.` at the top) and what it said: serde names a missing field in its
/// message, at the path of the object that lacks it.
fn wire_problem(path: &str, message: &str) -> (String, String) {
    let at = |name: &str| match path {
        "." | "" => name.to_string(),
        _ => format!("{path}.{name}"),
    };
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    {
        return (at(name), "is missing".to_string());
    }
    let field = match path {
        "." | "" => "(body)".to_string(),
        _ => path.to_string(),
    };
    (field, format!("is not what the API promises: {message}"))
}

/// The error an answer's status stands for: the one place HTTP statuses
/// become [`ForgeError`] variants. `message` is what the server said, already
/// fit for an error. A 403 that is a rate limit never comes here: the client
/// waits for it, or gives up with [`ForgeError::RateLimited`].
pub(crate) fn status_error(forge: &str, request: &str, status: u16, message: String) -> ForgeError {
    let forge = forge.to_string();
    let request = request.to_string();
    match status {
        401 | 403 => ForgeError::Unauthorized {
            forge,
            request,
            status,
            message,
        },
        404 => ForgeError::NotFound {
            forge,
            request,
            message,
        },
        409 | 422 => ForgeError::Conflict {
            forge,
            request,
            status,
            message,
        },
        429 => ForgeError::RateLimited {
            forge,
            request,
            status,
            wait_secs: None,
            longest_wait_secs: None,
        },
        500.. => ForgeError::Server {
            forge,
            request,
            status,
            message,
        },
        // Any other status that is no success (400, 405, 410, and the 1xx
        // and 3xx a client should never be left with) is the forge refusing
        // the request as made: asking again the same way gets the same answer.
        _ => ForgeError::Rejected {
            forge,
            request,
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(base: &str) -> Result<Api, ForgeError> {
        let token = crate::auth::fixed("tok-0123456789-secret".to_string());
        Api::new(
            "github",
            base,
            ApiAuth::Bearer(token),
            ApiOptions::default(),
        )
    }

    #[test]
    fn the_token_goes_only_to_the_api_origin() {
        let api = api("https://api.example.com/").unwrap();
        let inside = api.resolve(
            &Method::GET,
            "https://api.example.com/repos/a/b/pulls?page=2",
        );
        assert_eq!(
            inside.unwrap(),
            "https://api.example.com/repos/a/b/pulls?page=2"
        );
        for elsewhere in [
            "https://evil.example.com/x",
            "http://api.example.com/x",
            "https://api.example.com:8443/x",
        ] {
            let refused = api
                .resolve(&Method::GET, elsewhere)
                .unwrap_err()
                .to_string();
            assert!(refused.contains("another origin"), "{refused}");
            assert!(!refused.contains("tok-0123456789-secret"), "{refused}");
        }
    }

    #[test]
    fn an_api_url_with_credentials_or_a_query_is_refused_without_echoing_it() {
        for url in [
            "https://user:hunter2-secret@api.example.com",
            "https://api.example.com/?access_token=hunter2-secret",
        ] {
            let refused = api(url).err().unwrap().to_string();
            assert!(!refused.contains("hunter2-secret"), "{refused}");
            assert!(refused.contains("https://"), "{refused}");
            assert!(refused.contains("api.example.com"), "{refused}");
        }
    }

    #[test]
    fn statuses_map_to_what_happened_and_whether_it_passes() {
        let cases: &[(u16, &str, bool)] = &[
            (400, "Rejected", false),
            (401, "Unauthorized", false),
            (403, "Unauthorized", false),
            (404, "NotFound", false),
            (405, "Rejected", false),
            (409, "Conflict", false),
            (410, "Rejected", false),
            (422, "Conflict", false),
            (429, "RateLimited", true),
            (500, "Server", true),
            (502, "Server", true),
            (503, "Server", true),
            (504, "Server", true),
        ];
        for (status, variant, transient) in cases {
            let e = status_error(
                "github",
                "GET /repos/a/b/pulls",
                *status,
                "said".to_string(),
            );
            let name = format!("{e:?}");
            assert!(name.starts_with(variant), "{status}: {name}");
            assert_eq!(e.transient(), *transient, "{status}");
            let text = e.to_string();
            assert!(text.contains("GET /repos/a/b/pulls"), "{text}");
        }
        let unauthorized = status_error("github", "GET /x", 401, String::new()).to_string();
        assert!(
            unauthorized.contains("hint: the token was rejected"),
            "{unauthorized}"
        );
    }

    #[test]
    fn no_answer_is_transient_and_keeps_its_cause() {
        let api = api("http://127.0.0.1:9/").unwrap();
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = api.transport("GET /x", "connection failed", Some(Box::new(cause)));
        assert!(e.transient());
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("reset by peer"));
        let refused = api.resolve(&Method::GET, "https://evil.example.com/x");
        assert!(!refused.unwrap_err().transient());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Wire {
        #[allow(dead_code)]
        number: u64,
        #[allow(dead_code)]
        head: WireRef,
    }

    #[derive(Debug, serde::Deserialize)]
    struct WireRef {
        #[serde(rename = "ref")]
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn an_answer_without_a_field_or_with_another_type_names_the_field() {
        let api = api("https://api.example.com/").unwrap();
        let decode = |v: Value, item| {
            api.decode::<Wire>("GET /repos/a/b/pulls", v, item)
                .unwrap_err()
                .to_string()
        };
        let missing = decode(serde_json::json!({"head": {"ref": "x"}}), None);
        assert_eq!(
            missing,
            "github: GET /repos/a/b/pulls: the answer's `number` is missing"
        );
        let mistyped = decode(
            serde_json::json!({"number": "x", "head": {"ref": "x"}}),
            None,
        );
        assert!(
            mistyped.contains(
                "the answer's `number` is not what the API promises: invalid type: string \"x\""
            ),
            "{mistyped}"
        );
        let nested = decode(serde_json::json!({"number": 1, "head": {}}), Some(2));
        assert!(
            nested.contains("the answer's `head.ref` is missing (item 3 of the list)"),
            "{nested}"
        );
        let body = decode(serde_json::json!("<html>"), None);
        assert!(body.contains("the answer's `(body)` is not what"), "{body}");
        let ok = api.decode::<Wire>(
            "GET /x",
            serde_json::json!({"number": 7, "head": {"ref": "x"}}),
            None,
        );
        assert_eq!(ok.unwrap().number, 7);
    }

    #[test]
    fn next_links_are_found() {
        let h = "<https://api.example.com/x?page=2>; rel=\"next\", <https://api.example.com/x?page=5>; rel=\"last\"";
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.example.com/x?page=2")
        );
        assert_eq!(next_link("<https://a/x?page=1>; rel=\"prev\""), None);
    }
}
