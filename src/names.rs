//! The one rule for names that become a path or a URL segment.
//!
//! Environments, channels, releases and the file names of rendered objects
//! end up as directory names, file names, branch names and parts of URLs. A
//! name from the config repository, a flag or a rendered value passes
//! [`check`] before it is used that way: 1 to 253 characters of ASCII letters,
//! digits, `.`, `_` and `-`, starting with a letter or a digit, and no `..`.
//! So it is never empty, absolute, a climb (`../`), hidden, or a path of
//! several segments, and it needs no escaping in a URL path. Some places
//! narrow it further (environment names, Kubernetes kinds); none widens it.
//! This module does no IO.

use std::fmt;

/// The longest name accepted (a DNS subdomain's limit).
pub const MAX_LEN: usize = 253;

/// What a name names, for the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Environment,
    Wave,
    Channel,
    Release,
    Kind,
    FileName,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Environment => "environment",
            NameKind::Wave => "wave",
            NameKind::Channel => "channel",
            NameKind::Release => "release",
            NameKind::Kind => "kind",
            NameKind::FileName => "file name",
        })
    }
}

/// A name that breaks the rule, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} name `{}` from {origin} is not allowed: use 1 to {MAX_LEN} ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit, without `..`",
    shown(.name)
)]
pub struct NameError {
    pub kind: NameKind,
    pub name: String,
    /// Where the name came from: a file (and key) or a flag.
    pub origin: String,
}

/// The name as it can be shown on one line: control characters escaped and
/// cut short, so that a hostile name cannot forge lines of output.
fn shown(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(80)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// Whether `name` follows the rule.
pub fn is_valid(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        && !name.contains("..")
}

/// Checks `name` against the rule; `origin` says where it came from
/// (`environments/dev/environment.yaml, key \`channel\``, `--name`).
pub fn check(kind: NameKind, name: &str, origin: &str) -> Result<(), NameError> {
    if is_valid(name) {
        Ok(())
    } else {
        Err(NameError {
            kind,
            name: name.to_string(),
            origin: origin.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_a_directory_or_a_url_segment_are_refused() {
        for bad in [
            "",
            "..",
            "../x",
            "a/../b",
            "a..b",
            "/etc",
            "a/b",
            "a\\b",
            ".hidden",
            "-flag",
            "a b",
            "a\nb",
            "a%2fb",
            "a?b",
            "a#b",
            "é",
            &"x".repeat(MAX_LEN + 1),
        ] {
            assert!(!is_valid(bad), "{bad:?} should be refused");
        }
        for ok in [
            "stable",
            "v1.2.3",
            "0.68.1-rc_2",
            "ConfigMap",
            &"x".repeat(MAX_LEN),
        ] {
            assert!(is_valid(ok), "{ok:?} should pass");
        }
    }

    #[test]
    fn the_error_names_what_and_where_and_cannot_forge_lines() {
        let err = check(
            NameKind::Channel,
            "../x\nerror: forged",
            "environments/dev/environment.yaml, key `channel`",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("channel name `../x\\nerror: forged` from environments/dev/environment.yaml, key `channel`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
