//! `holds.yaml` at the root of the config repository: holds that stop new
//! version deliveries (an environment, a wave, or everything) and releases
//! that are never offered (`skip`). The file is reviewed and audited in git
//! like every other input, and shared by every replica of hydrant; `hydrant
//! hold` and the daemon's `/api/v1/holds` commit changes to it straight to the
//! base branch.
//!
//! ```yaml
//! holds:
//!   - all: true
//!     reason: incident 4711
//!     by: alice
//!     since: 2026-12-01T10:00:00Z
//!   - environment: tenant-0042
//!     reason: customer freeze until their audit ends
//!     by: bob
//!   - wave: early
//!     reason: waiting for the 0.64 release notes
//!     by: carol
//! skip: ["0.64.0"]
//! ```
//!
//! Parsing and editing are pure; the caller reads and commits the file.

use serde::Serialize;

/// The file's path in the config repository.
pub const FILE: &str = "holds.yaml";

/// What a hold stops.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every environment: the stop switch.
    All,
    /// Every environment of one wave of `rollout.waves`.
    Wave(String),
    /// One environment.
    Environment(String),
}

/// One hold: no new version reaches what `scope` covers until it is released.
/// Override and template changes still flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub scope: Scope,
    /// Why, in the words of whoever set it.
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// When it was set (RFC 3339, UTC), if known.
    pub since: Option<String>,
}

/// The whole of `holds.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holds {
    pub holds: Vec<Hold>,
    /// Releases treated as if their channel never published them.
    pub skip: Vec<String>,
}

impl Holds {
    /// The hold that stops new versions for `env` (in wave `wave`), if any:
    /// a hold on everything first, then on its wave, then on the environment.
    pub fn holding(&self, env: &str, wave: Option<&str>) -> Option<&Hold> {
        let find = |want: &dyn Fn(&Scope) -> bool| self.holds.iter().find(|h| want(&h.scope));
        find(&|s| *s == Scope::All)
            .or_else(|| find(&|s| matches!((s, wave), (Scope::Wave(w), Some(x)) if w == x)))
            .or_else(|| find(&|s| matches!(s, Scope::Environment(e) if e == env)))
    }

    /// Whether `version` is skipped.
    pub fn skips(&self, version: &str) -> bool {
        self.skip.iter().any(|v| v == version)
    }
}

/// `holds.yaml` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    holds: Vec<HoldEntry>,
    #[serde(default)]
    skip: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldEntry {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    wave: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    reason: String,
    by: String,
    #[serde(default)]
    since: Option<String>,
}

impl Holds {
    /// Reads `holds.yaml`'s text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Holds, crate::config::ConfigError> {
        let parsed: File = crate::config::parse(file, text)?;
        let holds = parsed
            .holds
            .into_iter()
            .map(|h| Hold {
                scope: match (h.all, h.wave, h.environment) {
                    (_, Some(w), _) => Scope::Wave(w),
                    (_, None, Some(e)) => Scope::Environment(e),
                    _ => Scope::All,
                },
                reason: h.reason,
                by: h.by,
                since: h.since,
            })
            .collect();
        Ok(Holds {
            holds,
            skip: parsed.skip,
        })
    }
}
