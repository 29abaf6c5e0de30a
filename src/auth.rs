//! Tokens for git remotes and forges: a fixed token, or one that renews
//! itself (a GitHub App installation token). Whoever holds a token source asks
//! it for the current token at each use, and reports a refusal so a renewable
//! token is fetched afresh. A token never appears in `Debug` output.

use std::sync::Arc;

pub trait TokenSource: Send + Sync {
    /// The token to send now.
    fn token(&self) -> Result<String, String>;
    /// The remote refused the token: the next call should renew it.
    fn refused(&self) {}
    /// Whether asking again after a refusal can give another token.
    fn renewable(&self) -> bool {
        false
    }
}

/// A token that never changes.
pub struct StaticToken(pub String);

impl TokenSource for StaticToken {
    fn token(&self) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

impl std::fmt::Debug for dyn TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<token>")
    }
}

/// A shared token source.
pub type Token = Arc<dyn TokenSource>;

/// A fixed token as a source.
pub fn fixed(token: String) -> Token {
    Arc::new(StaticToken(token))
}

/// The largest credential file read: a token or a license is a line, not a file's worth.
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;

/// A credential, a URL or a CA file that cannot be used. No variant holds a
/// credential: a file is named, never shown.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read the credential file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the credential in {origin} {problem}; a credential must be one line of printable text"
    )]
    NotOneLine {
        origin: String,
        problem: &'static str,
    },
    #[error("`{url}` holds a credential; hydrant refuses credentials inside URLs")]
    InUrl { url: String },
    #[error("`{url}` has a {part}; a base URL may not have one")]
    BaseUrlPart { url: String, part: &'static str },
    #[error("cannot read the CA file `{path}`: {source}")]
    CaRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file `{path}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NotPem { path: String },
}

impl CredentialError {
    /// What to do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            CredentialError::InUrl { .. } => Some(
                "remove the credential from the URL and give it in a file: `--git-token-file`, `--license-file`, `--channel-token-file` or the forge's `--…-token-file` (or their `HYDRANT_…` variables)",
            ),
            CredentialError::NotOneLine { .. } => {
                Some("write the token or license alone on one line, with no other text")
            }
            CredentialError::NotPem { .. } => {
                Some("give a PEM bundle of the CA certificates to trust")
            }
            _ => None,
        }
    }
}

/// Checks that `text` is one line of printable text (a final line break
/// allowed) and returns it without surrounding blanks. `origin` says where it
/// came from (a file, a variable); the text itself is never repeated.
pub fn credential_line(text: &str, origin: &str) -> Result<String, CredentialError> {
    let refuse = |problem| CredentialError::NotOneLine {
        origin: origin.to_string(),
        problem,
    };
    let line = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if line.contains(['\n', '\r']) {
        return Err(refuse("has more than one line"));
    }
    if line.chars().any(char::is_control) {
        return Err(refuse("holds a control character"));
    }
    let line = line.trim();
    if line.is_empty() {
        return Err(refuse("is empty"));
    }
    Ok(line.to_string())
}

/// Reads a credential (token, license, webhook secret) from a file: one line
/// of printable text. Errors name the file, never its content.
pub fn read_credential_file(path: &std::path::Path) -> Result<String, CredentialError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let read = |source| CredentialError::Read {
        path: shown.clone(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CREDENTIAL_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read)?;
    let origin = format!("`{shown}`");
    if bytes.len() as u64 > MAX_CREDENTIAL_BYTES {
        return Err(CredentialError::NotOneLine {
            origin,
            problem: "is larger than 64 KiB",
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| CredentialError::NotOneLine {
        origin: origin.clone(),
        problem: "is not UTF-8 text",
    })?;
    credential_line(&text, &origin)
}

/// A secret as configured: a file to read when it is needed, else the text of
/// an environment variable (which whoever reads the environment hands in).
/// Either way it is one line of printable text. Its `Debug` shows where it
/// comes from, never the secret.
#[derive(Clone, Default)]
pub struct Secret {
    file: Option<std::path::PathBuf>,
    var: String,
    value: Option<String>,
}

impl Secret {
    /// `file` if given, else `value`, the text of the variable `var`.
    pub fn new(file: Option<std::path::PathBuf>, var: &str, value: Option<String>) -> Secret {
        Secret {
            file,
            var: var.to_string(),
            value: value.filter(|v| !v.is_empty()),
        }
    }

    /// The environment variable it may come from (for hints).
    pub fn var(&self) -> &str {
        &self.var
    }

    /// The secret, if one is configured.
    pub fn read(&self) -> Result<Option<String>, CredentialError> {
        match (&self.file, &self.value) {
            (Some(path), _) => read_credential_file(path).map(Some),
            (None, Some(text)) => credential_line(text, &format!("`{}`", self.var)).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("file", &self.file)
            .field("var", &self.var)
            .field("set", &self.value.is_some())
            .finish()
    }
}

/// The authority part of a URL (`user:pass@host:port`) and where it starts and ends.
fn authority(url: &str) -> Option<(usize, usize)> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    Some((start, end))
}

/// A URL as it may be shown: a user name stays, a password becomes `***`;
/// a lone user name of an http(s) URL (often a token) becomes `***` too. The
/// one function that makes URLs fit for errors, logs and output.
pub fn redact_url(url: &str) -> String {
    let Some((start, end)) = authority(url) else {
        return url.to_string();
    };
    let Some(at) = url[start..end].rfind('@').map(|i| start + i) else {
        return url.to_string();
    };
    let userinfo = &url[start..at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if url.starts_with("ssh://") => userinfo.to_string(),
        None => "***".to_string(),
    };
    format!("{}{shown}{}", &url[..start], &url[at..])
}

/// Whether a URL carries a credential: a password, or any user name in an
/// http(s) URL (`https://TOKEN@host` authenticates too). An `ssh://` user
/// name (`git@`) is an account, not a secret.
fn has_credential(url: &str) -> bool {
    let Some((start, end)) = authority(url) else {
        return false;
    };
    match url[start..end].rfind('@') {
        None => false,
        Some(at) => {
            let userinfo = &url[start..start + at];
            userinfo.contains(':') || !url.starts_with("ssh://")
        }
    }
}

/// Refuses a URL (or a path, which passes) that holds a credential. The
/// error shows the URL redacted.
pub fn check_url(url: &str) -> Result<(), CredentialError> {
    if has_credential(url) {
        return Err(CredentialError::InUrl {
            url: redact_url(url),
        });
    }
    Ok(())
}

/// Refuses a base URL that holds a credential, a query or a fragment: paths
/// are appended to a base URL, so its query would swallow them.
pub fn check_base_url(url: &str) -> Result<(), CredentialError> {
    check_url(url)?;
    let end = authority(url).map_or(0, |(_, end)| end);
    let rest = &url[end..];
    for (mark, part) in [('?', "query"), ('#', "fragment")] {
        if rest.contains(mark) {
            let shown = redact_url(url);
            let cut = shown.find(mark).unwrap_or(shown.len());
            return Err(CredentialError::BaseUrlPart {
                url: format!("{}{mark}…", &shown[..cut]),
                part,
            });
        }
    }
    Ok(())
}

/// Whether every `CERTIFICATE` block of a PEM text is base64 of a DER
/// sequence, and there is at least one.
fn pem_certificates_are_der(text: &str) -> bool {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut rest = text;
    let mut found = 0;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let Some(end) = body.find(END) else {
            return false;
        };
        let b64: String = body[..end].split_whitespace().collect();
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(der) if der.first() == Some(&0x30) && der.len() > 2 => found += 1,
            _ => return false,
        }
        rest = &body[end + END.len()..];
    }
    found > 0
}

/// Checks that a CA file holds at least one PEM certificate, so that a wrong
/// file is refused instead of trusting nothing more, silently.
pub fn check_ca_file(path: &std::path::Path) -> Result<(), CredentialError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| CredentialError::CaRead {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&pem);
    let parsed = reqwest::Certificate::from_pem_bundle(&pem).is_ok_and(|c| !c.is_empty());
    if !(parsed && pem_certificates_are_der(&text)) {
        return Err(CredentialError::NotPem { path: shown });
    }
    Ok(())
}

/// A file's text, trimmed (public keys).
pub fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(text.trim().to_string())
}

/// A secret from its `--…-file` flag, else from its environment variable:
/// one line of printable text either way. Secrets are never flags of their
/// own: they would show in `ps`.
pub fn secret(file: &Option<std::path::PathBuf>, var: &str) -> anyhow::Result<Option<String>> {
    let with_hint = |e: CredentialError| match e.hint() {
        Some(hint) => anyhow::anyhow!("{e}\nhint: {hint}"),
        None => anyhow::Error::new(e),
    };
    secret_source(file, var).read().map_err(with_hint)
}

/// A secret from its `--…-file` flag, else from its environment variable,
/// read when it is needed.
pub fn secret_source(file: &Option<std::path::PathBuf>, var: &str) -> Secret {
    Secret::new(file.clone(), var, std::env::var(var).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate made for these tests.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS+gAwIBAgIUCx8WroXBgFHNQcWbd76U6WSfFcwwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPaHlkcmFudC10ZXN0LWNhMB4XDTI2MTIwMTAwNDE0N1oXDTM2
MTEyODAwNDE0N1owGjEYMBYGA1UEAwwPaHlkcmFudC10ZXN0LWNhMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAECOSRUfez6qPFTy8HgOkAzaGBXmWMrqB+GBFgaidq
DjVa3vGq6lHmGHFIlpRfNt6OBJYZcOu9AiuKSi7rQX3i0KNTMFEwHQYDVR0OBBYE
FB9lTNX5BIwDWhJKtCurIpFQfvjlMB8GA1UdIwQYMBaAFB9lTNX5BIwDWhJKtCur
IpFQfvjlMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgVsR+xWsK
LyTcF8vTTcT7o3uagG4MWNzqStMt358RWXcCIBJq/k8FinrJrMShvikADGRWUDIc
5DMOsA34z+xb2wb3
-----END CERTIFICATE-----
";

    #[test]
    fn a_credential_must_be_one_printable_line() {
        assert_eq!(credential_line("tok\n", "f").unwrap(), "tok");
        assert_eq!(credential_line("  tok  \r\n", "f").unwrap(), "tok");
        assert_eq!(
            credential_line("lic with spaces", "f").unwrap(),
            "lic with spaces"
        );
        for bad in [
            "",
            "\n",
            "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1\n",
            "tok\n\n",
            "tok\rX-Injected: 1",
            "tok\u{7}",
            "a\tb",
        ] {
            let err = credential_line(bad, "`/etc/passwd`")
                .unwrap_err()
                .to_string();
            assert!(err.contains("`/etc/passwd`"), "{err}");
            if !bad.trim().is_empty() {
                assert!(!err.contains("root:x") && !err.contains("tok"), "{err}");
            }
        }
    }

    #[test]
    fn a_credential_file_is_refused_by_name_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let multi = dir.path().join("passwd");
        std::fs::write(&multi, "root:x:0:0:root\nsecond:line\n").unwrap();
        let err = read_credential_file(&multi).unwrap_err().to_string();
        assert!(
            err.contains("passwd") && err.contains("more than one line"),
            "{err}"
        );
        assert!(!err.contains("root:x"), "{err}");
        let binary = dir.path().join("bin");
        std::fs::write(&binary, [0xffu8, 0xfe, 0x00]).unwrap();
        assert!(read_credential_file(&binary).is_err());
        let big = dir.path().join("big");
        std::fs::write(&big, "a".repeat(70_000)).unwrap();
        assert!(read_credential_file(&big).is_err());
        let good = dir.path().join("token");
        std::fs::write(&good, "ghp_abc\n").unwrap();
        assert_eq!(read_credential_file(&good).unwrap(), "ghp_abc");
    }

    #[test]
    fn credentials_in_urls_are_refused_and_never_echoed() {
        for url in [
            "https://user:s3cret@git.example.com/org/repo.git",
            "https://s3cret@github.com/org/repo",
            "http://license:s3cret@127.0.0.1:9/{channel}",
            "ssh://git:s3cret@host/repo",
            "HTTPS://x:s3cret@host",
        ] {
            let err = check_url(url).unwrap_err();
            let text = err.to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(err.hint().is_some_and(|h| h.contains("token-file")));
        }
        assert_eq!(
            redact_url("https://user:pw@host:8443/a?b@c"),
            "https://user:***@host:8443/a?b@c"
        );
        assert_eq!(redact_url("https://tok@host/x"), "https://***@host/x");
        assert_eq!(redact_url("ssh://git@host/x"), "ssh://git@host/x");
        for fine in [
            "ssh://git@github.com/org/repo.git",
            "git@github.com:org/repo.git",
            "/srv/git/repo.git",
            "https://host/a/b@c",
            "https://deploy.example.com/c/{channel}?release={release}",
        ] {
            check_url(fine).unwrap();
        }
    }

    #[test]
    fn a_base_url_with_a_query_or_fragment_is_refused() {
        check_base_url("https://ghe.example.com/api/v3").unwrap();
        check_base_url("https://gitlab.example.com/").unwrap();
        for (url, part) in [
            ("https://api.example.com/?access_token=s3cret", "query"),
            ("https://api.example.com/api#s3cret", "fragment"),
        ] {
            let err = check_base_url(url).unwrap_err().to_string();
            assert!(err.contains(part) && !err.contains("s3cret"), "{err}");
        }
        assert!(check_base_url("https://u:s3cret@api.example.com").is_err());
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.der");
        std::fs::write(&path, b"\x30\x82\x01\x0a not a pem").unwrap();
        let err = check_ca_file(&path).unwrap_err();
        assert!(err.to_string().contains("ca.der"), "{err}");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(check_ca_file(&path).is_err());
        std::fs::write(&path, format!("# a test CA\n{TEST_CA}")).unwrap();
        check_ca_file(&path).unwrap();
    }
}
