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
