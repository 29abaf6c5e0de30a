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
//! Reasons and names go into commit messages, pull request descriptions and
//! logs: a reason or `by` is one line of at most [`MAX_REASON`] (or
//! [`MAX_BY`]) printable characters, without `<` or `>`, and wave and
//! environment names follow the one name rule ([`crate::names`]). Whoever
//! shows a reason in Markdown still escapes it as untrusted text.

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::names::{self, NameKind};

/// The file's path in the config repository.
pub const FILE: &str = "holds.yaml";

/// The longest reason, in characters.
pub const MAX_REASON: usize = 200;
/// The longest `by`, in characters.
pub const MAX_BY: usize = 64;

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

impl Scope {
    /// What the scope covers, in words: `every environment`, `wave early`,
    /// `environment dev`.
    pub fn describe(&self) -> String {
        match self {
            Scope::All => "every environment".to_string(),
            Scope::Wave(w) => format!("wave {w}"),
            Scope::Environment(e) => format!("environment {e}"),
        }
    }

    /// Checks the name a wave or environment scope carries against the one
    /// name rule; `origin` says where it came from.
    pub fn check(&self, origin: &str) -> Result<(), String> {
        let checked = match self {
            Scope::All => Ok(()),
            Scope::Wave(w) => names::check(NameKind::Wave, w, origin),
            Scope::Environment(e) => names::check(NameKind::Environment, e, origin),
        };
        checked.map_err(|e| e.to_string())
    }
}

impl Hold {
    /// A hold whose scope, reason, author and time are checked as
    /// `holds.yaml` checks them.
    pub fn new(scope: Scope, reason: &str, by: &str, since: Option<&str>) -> Result<Hold, String> {
        scope.check("the hold")?;
        check_text("reason", reason, MAX_REASON)?;
        check_text("by", by, MAX_BY)?;
        let since = since.map(timestamp).transpose()?;
        Ok(Hold {
            scope,
            reason: reason.to_string(),
            by: by.to_string(),
            since,
        })
    }

    /// A hold sent as JSON (`{"all": true, "reason": …, "by": …}`, or
    /// `"wave"` / `"environment"` instead of `"all"`), checked like one of
    /// `holds.yaml`; the error names the key.
    pub fn from_json(body: &[u8]) -> Result<Hold, String> {
        let de = &mut serde_json::Deserializer::from_slice(body);
        let raw: RawHold = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            if path.is_empty() || path == "." {
                e.inner().to_string()
            } else {
                format!("`{path}`: {}", e.inner())
            }
        })?;
        raw.into_hold()
    }
}

impl Holds {
    /// Reads `holds.yaml` (`file` is its name in errors). An empty file holds
    /// nothing. Every error names the file, the line and the key.
    pub fn parse(file: &str, text: &str) -> Result<Holds, ConfigError> {
        let raw: RawHolds = crate::config::parse(file, text)?;
        let holds: Vec<Hold> = raw.holds.into_iter().map(|h| h.0).collect();
        let error = |path: [&str; 2], message: String| ConfigError {
            file: file.to_string(),
            line: line_of(text, &path),
            message,
        };
        for (i, hold) in holds.iter().enumerate() {
            if let Some(first) = holds[..i].iter().position(|h| h.scope == hold.scope) {
                let at = line_of(text, &["holds", &first.to_string()])
                    .map(|l| format!(" at line {l}"))
                    .unwrap_or_default();
                return Err(error(
                    ["holds", &i.to_string()],
                    format!(
                        "`holds.{i}`: a second hold on {}; the first is `holds.{first}`{at}: keep one",
                        hold.scope.describe()
                    ),
                ));
            }
        }
        let skip: Vec<String> = raw.skip.into_iter().map(|r| r.0).collect();
        for (i, release) in skip.iter().enumerate() {
            if skip[..i].contains(release) {
                return Err(error(
                    ["skip", &i.to_string()],
                    format!("`skip.{i}`: release `{release}` is listed twice"),
                ));
            }
        }
        Ok(Holds { holds, skip })
    }

    /// The file as hydrant writes it: a header saying what it is, then the
    /// holds in their order and the skipped releases. [`Holds::parse`] reads
    /// back exactly these holds.
    pub fn to_yaml(&self) -> String {
        let scalar = |s: &str| crate::yaml::to_block(&serde_json::Value::String(s.to_string()));
        let mut out = String::from(HEADER);
        if self.holds.is_empty() {
            out.push_str("holds: []\n");
        } else {
            out.push_str("holds:\n");
        }
        for h in &self.holds {
            match &h.scope {
                Scope::All => out.push_str("  - all: true\n"),
                Scope::Wave(w) => out.push_str(&format!("  - wave: {}\n", scalar(w))),
                Scope::Environment(e) => out.push_str(&format!("  - environment: {}\n", scalar(e))),
            }
            out.push_str(&format!("    reason: {}\n", scalar(&h.reason)));
            out.push_str(&format!("    by: {}\n", scalar(&h.by)));
            if let Some(since) = &h.since {
                out.push_str(&format!("    since: {}\n", scalar(since)));
            }
        }
        if self.skip.is_empty() {
            out.push_str("skip: []\n");
        } else {
            out.push_str("skip:\n");
            for release in &self.skip {
                out.push_str(&format!("  - {}\n", scalar(release)));
            }
        }
        out
    }

    /// Whether the file would say nothing: no hold, no skipped release.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty() && self.skip.is_empty()
    }

    /// Adds `hold`, or gives the hold of the same scope its reason, author
    /// and time. False when a hold of that scope with the same reason and
    /// author is there already: nothing changed.
    pub fn hold(&mut self, hold: Hold) -> bool {
        match self.holds.iter_mut().find(|h| h.scope == hold.scope) {
            Some(h) if h.reason == hold.reason && h.by == hold.by => false,
            Some(h) => {
                *h = hold;
                true
            }
            None => {
                self.holds.push(hold);
                true
            }
        }
    }

    /// Removes the hold of `scope`; false when there is none.
    pub fn release(&mut self, scope: &Scope) -> bool {
        let before = self.holds.len();
        self.holds.retain(|h| h.scope != *scope);
        self.holds.len() != before
    }
}

const HEADER: &str = "\
# Holds and skipped releases, read by hydrant from the base branch.
# A hold stops new versions (not override or template changes) from reaching
# every environment (`all: true`), a wave or an environment until it is
# released; `skip` lists releases hydrant never offers. Change it with
# `hydrant hold` and `hydrant release-hold`, or by a reviewed pull request.
";

/// The line of a list item of `holds.yaml`, looked up again for an error
/// found after parsing.
fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let node = crate::yaml::parse_single(text).ok().flatten()?;
    let mut lines = std::collections::HashMap::new();
    crate::yaml::add_item_lines(&node, &mut lines);
    let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    lines.get(&key).copied()
}

/// Checks a reason or an author: one line of printable text, at most `max`
/// characters, nothing that a Markdown or HTML reader takes for a tag, and
/// no invisible character that could make it read as something else.
fn check_text(key: &str, text: &str, max: usize) -> Result<(), String> {
    let invisible = |c: char| {
        matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{FEFF}')
            || ('\u{200B}'..='\u{200F}').contains(&c)
            || ('\u{202A}'..='\u{202E}').contains(&c)
            || ('\u{2060}'..='\u{206F}').contains(&c)
            || ('\u{FFF9}'..='\u{FFFB}').contains(&c)
    };
    let problem = if text.trim().is_empty() {
        "is empty".to_string()
    } else if text.chars().count() > max {
        format!("is longer than {max} characters")
    } else if text.contains(['\n', '\r']) {
        "holds a line break: it must be one line".to_string()
    } else if text.chars().any(|c| c.is_control() || invisible(c)) {
        "holds a control or invisible character".to_string()
    } else if text.contains(['<', '>']) {
        "holds `<` or `>`: it goes into commit messages and pull request descriptions, so write it as plain text".to_string()
    } else {
        return Ok(());
    };
    Err(format!("`{key}` {problem}"))
}

/// An RFC 3339 time, as hydrant writes it (UTC, `Z`).
fn timestamp(text: &str) -> Result<String, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.to_string())
        .map_err(|_| {
            let shown: String = text.chars().take(40).collect();
            format!(
                "`since`: `{}` is not an RFC 3339 time such as `2026-12-01T10:00:00Z`",
                shown.escape_debug()
            )
        })
}

/// `holds.yaml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHolds {
    #[serde(default)]
    holds: Vec<CheckedHold>,
    #[serde(default)]
    skip: Vec<ReleaseId>,
}

/// One entry of `holds`, checked as it is read, so that an error names its line.
#[derive(Debug, Deserialize)]
#[serde(try_from = "RawHold")]
struct CheckedHold(Hold);

impl TryFrom<RawHold> for CheckedHold {
    type Error = String;
    fn try_from(raw: RawHold) -> Result<CheckedHold, String> {
        raw.into_hold().map(CheckedHold)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHold {
    #[serde(default)]
    all: Option<bool>,
    #[serde(default, deserialize_with = "wave")]
    wave: Option<String>,
    #[serde(default, deserialize_with = "environment")]
    environment: Option<String>,
    #[serde(deserialize_with = "reason")]
    reason: String,
    #[serde(deserialize_with = "by")]
    by: String,
    #[serde(default, deserialize_with = "since")]
    since: Option<String>,
}

impl RawHold {
    fn into_hold(self) -> Result<Hold, String> {
        let scope = match (self.all, self.wave, self.environment) {
            (Some(true), None, None) => Scope::All,
            (None, Some(w), None) => Scope::Wave(w),
            (None, None, Some(e)) => Scope::Environment(e),
            (Some(false), None, None) => {
                return Err(
                    "`all: false` holds nothing: remove the hold, or say `all: true`".to_string(),
                );
            }
            _ => {
                return Err(
                    "a hold names exactly one of `all: true`, `wave: NAME` or `environment: NAME`"
                        .to_string(),
                );
            }
        };
        Hold::new(scope, &self.reason, &self.by, self.since.as_deref())
    }
}

fn checked<'de, D: serde::Deserializer<'de>>(
    d: D,
    check: impl FnOnce(&str) -> Result<String, String>,
) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    check(&text).map_err(serde::de::Error::custom)
}

fn name_of<'de, D: serde::Deserializer<'de>>(
    d: D,
    kind: NameKind,
) -> Result<Option<String>, D::Error> {
    checked(d, |n| {
        names::check(kind, n, "holds.yaml")
            .map(|()| n.to_string())
            .map_err(|e| e.to_string())
    })
    .map(Some)
}

fn wave<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    name_of(d, NameKind::Wave)
}

fn environment<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    name_of(d, NameKind::Environment)
}

fn reason<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |t| {
        check_text("reason", t, MAX_REASON).map(|()| t.to_string())
    })
}

fn by<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    checked(d, |t| check_text("by", t, MAX_BY).map(|()| t.to_string()))
}

fn since<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, timestamp).map(Some)
}

/// A release id of `skip`: a string, or a number as YAML reads `0.64`.
#[derive(Debug)]
struct ReleaseId(String);

impl<'de> Deserialize<'de> for ReleaseId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ReleaseId, D::Error> {
        let id = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom(
                    "expected a release id such as \"0.64.0\"",
                ));
            }
        };
        crate::config::check_release_id(&id).map_err(serde::de::Error::custom)?;
        Ok(ReleaseId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "\
holds:
  - all: true
    reason: incident 4711
    by: alice
    since: 2026-12-01T10:00:00Z
  - environment: tenant-0042
    reason: customer freeze until their audit ends
    by: bob
  - wave: early
    reason: waiting for the 0.64 release notes
    by: carol
skip: [\"0.64.0\", 0.65]
";

    fn hold(scope: Scope, reason: &str, by: &str) -> Hold {
        Hold::new(scope, reason, by, None).unwrap()
    }

    #[test]
    fn the_documented_example_parses() {
        let holds = Holds::parse(FILE, EXAMPLE).unwrap();
        assert_eq!(
            holds.holds[0],
            Hold {
                scope: Scope::All,
                reason: "incident 4711".to_string(),
                by: "alice".to_string(),
                since: Some("2026-12-01T10:00:00Z".to_string()),
            }
        );
        assert_eq!(
            holds.holds[1].scope,
            Scope::Environment("tenant-0042".to_string())
        );
        assert_eq!(holds.holds[2].scope, Scope::Wave("early".to_string()));
        assert_eq!(holds.skip, vec!["0.64.0", "0.65"]);
        assert!(holds.skips("0.64.0") && !holds.skips("0.64.1"));
        assert_eq!(
            holds.holding("tenant-0042", Some("early")).unwrap().by,
            "alice"
        );
    }

    #[test]
    fn an_empty_or_absent_file_holds_nothing() {
        assert_eq!(Holds::parse(FILE, "").unwrap(), Holds::default());
        assert_eq!(
            Holds::parse(FILE, "# nothing held\n").unwrap(),
            Holds::default()
        );
        assert_eq!(
            Holds::parse(FILE, "holds: []\nskip: []\n").unwrap(),
            Holds::default()
        );
    }

    /// (file text, line, words the error must hold)
    #[test]
    fn mistakes_are_errors_naming_the_file_line_and_key() {
        let cases: &[(&str, usize, &[&str])] = &[
            ("hold:\n  - all: true\n", 2, &["hold"]),
            (
                "holds:\n  - all: true\n    reason: x\n    by: a\n    until: tomorrow\n",
                5,
                &["until"],
            ),
            (
                "holds:\n  - all: true\n    reason: x\n    by: a\n  - wave: early\n    by: b\n",
                5,
                &["holds.1", "reason"],
            ),
            (
                "holds:\n  - all: true\n    reason: x\n    by: a\n  - wave: early\n    environment: dev\n    reason: y\n    by: b\n",
                5,
                &["holds.1", "exactly one"],
            ),
            (
                "holds:\n  - environment: ../prod\n    reason: x\n    by: a\n",
                2,
                &["holds.0.environment", "../prod"],
            ),
            (
                "holds:\n  - wave: early\n    reason: \"\"\n    by: a\n",
                3,
                &["holds.0.reason", "empty"],
            ),
            (
                "holds:\n  - wave: early\n    reason: \"a\\nHydrant-Environment: prod\"\n    by: a\n",
                3,
                &["holds.0.reason", "line break"],
            ),
            (
                "holds:\n  - wave: early\n    reason: x\n    by: a\n    since: yesterday\n",
                5,
                &["holds.0.since", "RFC 3339"],
            ),
            (
                "holds:\n  - all: true\n    reason: x\n    by: a\n  - all: true\n    reason: y\n    by: b\n",
                5,
                &["holds.1", "second hold on every environment", "line 2"],
            ),
            (
                "skip:\n  - 0.64.0\n  - \"../x\"\n",
                3,
                &["skip.1", "not a release id"],
            ),
            ("skip:\n  - 0.64.0\n  - 0.64.0\n", 3, &["skip.1", "twice"]),
            ("holds: {}\n", 1, &["holds"]),
        ];
        for (text, line, words) in cases {
            let err = Holds::parse("holds.yaml", text).unwrap_err();
            let shown = err.to_string();
            assert_eq!(err.line, Some(*line), "{text}\n{shown}");
            assert!(shown.starts_with("`holds.yaml`"), "{shown}");
            for w in *words {
                assert!(shown.contains(w), "{text}\n{shown} lacks {w}");
            }
        }
    }

    #[test]
    fn what_hydrant_writes_reads_back_the_same() {
        let mut holds = Holds::parse(FILE, EXAMPLE).unwrap();
        holds.hold(hold(
            Scope::Environment("prod".to_string()),
            "\"quoted\" # not a comment: [x](http://x) `code` 'single' true",
            "Dana O'Neil <no>".replace(['<', '>'], "").trim(),
        ));
        holds.hold(hold(Scope::Wave("0.1".to_string()), "yes", "null"));
        let text = holds.to_yaml();
        assert!(text.starts_with("# Holds and skipped releases"), "{text}");
        assert_eq!(Holds::parse(FILE, &text).unwrap(), holds, "{text}");
        assert_eq!(Holds::parse(FILE, &text).unwrap().to_yaml(), text);
        let empty = Holds::default().to_yaml();
        assert!(empty.ends_with("holds: []\nskip: []\n"), "{empty}");
        assert_eq!(Holds::parse(FILE, &empty).unwrap(), Holds::default());
    }

    #[test]
    fn holding_again_changes_only_a_new_reason_and_releasing_removes() {
        let mut holds = Holds::default();
        assert!(holds.hold(hold(Scope::All, "incident 4711", "alice")));
        let mut again = hold(Scope::All, "incident 4711", "alice");
        again.since = Some("2027-01-01T00:00:00Z".to_string());
        assert!(!holds.hold(again), "the same hold again changes nothing");
        assert!(holds.hold(hold(Scope::All, "incident 4712", "alice")));
        assert_eq!(holds.holds.len(), 1);
        assert_eq!(holds.holds[0].reason, "incident 4712");
        assert!(holds.hold(hold(Scope::Wave("early".to_string()), "x", "bob")));
        assert!(!holds.release(&Scope::Environment("dev".to_string())));
        assert!(holds.release(&Scope::All));
        assert!(!holds.release(&Scope::All));
        assert_eq!(holds.holds.len(), 1);
        assert_eq!(holds.holds[0].scope, Scope::Wave("early".to_string()));
    }

    #[test]
    fn a_hostile_reason_or_author_is_refused() {
        for reason in [
            "<script>alert(1)</script>",
            "line one\nline two",
            "carriage\rreturn",
            "bell\u{7}",
            "right-to-left \u{202E}gnp.exe",
            "zero\u{200B}width",
            " ",
            &"x".repeat(MAX_REASON + 1),
        ] {
            let err = Hold::new(Scope::All, reason, "alice", None).unwrap_err();
            assert!(err.starts_with("`reason`"), "{reason:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(Hold::new(Scope::All, "x", &"b".repeat(MAX_BY + 1), None).is_err());
        assert!(Hold::new(Scope::All, "x", "alice\nHydrant-Environment: prod", None).is_err());
        assert!(Hold::new(Scope::Wave("a/b".to_string()), "x", "a", None).is_err());
        assert!(Hold::new(Scope::All, &"x".repeat(MAX_REASON), "a", None).is_ok());
    }

    #[test]
    fn a_hold_in_json_is_checked_like_one_in_the_file() {
        let h = Hold::from_json(br#"{"environment": "dev", "reason": "r", "by": "b"}"#).unwrap();
        assert_eq!(h.scope, Scope::Environment("dev".to_string()));
        assert_eq!(h.since, None);
        for (body, words) in [
            (&br#"{"all": true, "reason": "r"}"#[..], "`by`"),
            (br#"{"all": true, "reason": "r", "by": "b", "x": 1}"#, "`x`"),
            (br#"{"wave": "../x", "reason": "r", "by": "b"}"#, "`wave`"),
            (br#"{"reason": "r", "by": "b"}"#, "exactly one"),
            (br#"{"all": true, "reason": "<b>", "by": "b"}"#, "`reason`"),
            (b"not json", "expected"),
        ] {
            let err = Hold::from_json(body).unwrap_err();
            assert!(err.contains(words), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_valid_holds_round_trip_through_the_file(
            picks in proptest::collection::vec(
                (0..3u8, "[a-z0-9][a-z0-9.-]{0,8}", "[ -~]{1,40}", "[a-zA-Z .@'-]{1,20}", proptest::option::of(0i64..4_000_000_000)),
                0..6,
            ),
            skip in proptest::collection::btree_set("[0-9]{1,2}\\.[0-9]{1,2}(\\.[0-9])?", 0..4),
        ) {
            let mut holds = Holds::default();
            for (kind, name, reason, by, since) in picks {
                let scope = match kind {
                    0 => Scope::All,
                    1 => Scope::Wave(name.replace("..", ".")),
                    _ => Scope::Environment(name.replace("..", ".")),
                };
                let since = since.map(|s| jiff::Timestamp::from_second(s).unwrap().to_string());
                if let Ok(h) = Hold::new(scope, &reason, &by, since.as_deref()) {
                    holds.hold(h);
                }
            }
            holds.skip = skip.into_iter().collect();
            let text = holds.to_yaml();
            proptest::prop_assert_eq!(Holds::parse(FILE, &text).unwrap(), holds, "{}", text);
        }
    }
}
