//! `rollout:` in the repository's `hydrant.yaml`: the waves a new release
//! goes through, each with the environments it selects (names, globs,
//! labels), its soak and the time it may start.
//!
//! ```yaml
//! rollout:
//!   waves:
//!     - name: canary
//!       environments: [dev, "tenant-000*"]
//!       soak: 2h
//!     - name: early
//!       labels: {ring: early}
//!       soak: 1d
//!     - name: everyone
//!       environments: ["*"]
//!       notBefore: 2027-01-27T09:00:00Z
//!       pullRequest: {group: wave}   # one pull request for the whole wave
//!   freeze:                              # see `super::freeze`
//!     - {schedule: "0 17 * * FRI", duration: 64h, timezone: Europe/Berlin, reason: weekend}
//! ```
//!
//! Health gates are defined once under `rollout.gates` ([`super::gate`]) and
//! named by the waves that use them; `onFailure` says what a failed gate does:
//! `halt` (the default) or `rollback`.
//!
//! ```yaml
//! rollout:
//!   gates:
//!     - name: argocd-healthy
//!       argocd: {application: "wandb-{env}", server: "https://argocd.example.com", credential: argocd}
//!   waves:
//!     - {name: canary, environments: [dev], soak: 2h, gates: [argocd-healthy], onFailure: rollback}
//! ```
//!
//! Parsing is pure; the caller reads the file and the environments' labels.
//! Every error names the file, the line and the key.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer};

use super::freeze::Freeze;
use super::gate::Gate;
use crate::config::{self, ConfigError};

/// The waves of a rollout, in order, and its freeze windows. No waves: one
/// implicit wave holding every environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rollout {
    pub waves: Vec<Wave>,
    /// `rollout.gates`: the health gates the waves name.
    pub gates: Vec<Gate>,
    /// When no new version reaches an environment (`rollout.freeze`).
    pub freeze: Vec<Freeze>,
}

impl Rollout {
    /// The gate of this name.
    pub fn gate(&self, name: &str) -> Option<&Gate> {
        self.gates.iter().find(|g| g.name == name)
    }

    /// The wave of this name.
    pub fn wave(&self, name: &str) -> Option<&Wave> {
        self.waves.iter().find(|w| w.name == name)
    }
}

/// What a failed gate does to the rollout of the release it judged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// No further wave takes the release (an automatic hold).
    #[default]
    Halt,
    /// Halt, skip the release, and take the failed environments back to
    /// the release they ran before, by pull request.
    Rollback,
}

/// One wave.
#[derive(Debug, Clone, PartialEq)]
pub struct Wave {
    pub name: String,
    /// Names or globs (`*`, `?`); empty: any name.
    pub environments: Vec<String>,
    /// Labels an environment must all carry; empty: any.
    pub labels: BTreeMap<String, String>,
    /// How long the wave's last merge must stand before the next wave starts.
    pub soak_secs: i64,
    /// The wave does not start before this time.
    pub not_before: Option<jiff::Timestamp>,
    /// `pullRequest: {group: wave}`: its environments are delivered together
    /// in one branch, `hydrant/wave-<name>`, and one pull request.
    pub group: bool,
    /// The names of the gates checked for its environments (in
    /// `rollout.gates`).
    pub gates: Vec<String>,
    pub on_failure: OnFailure,
}

impl Wave {
    /// Whether the wave selects an environment of this name and labels.
    pub fn selects(&self, env: &str, labels: &BTreeMap<String, String>) -> bool {
        let named = self.environments.is_empty() || self.environments.iter().any(|p| glob(p, env));
        let labelled = self.labels.iter().all(|(k, v)| labels.get(k) == Some(v));
        named && labelled
    }
}

/// The part of `hydrant.yaml` read here; its other keys are flags' settings.
#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    rollout: Option<Block>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Block {
    #[serde(default)]
    waves: Vec<WaveBlock>,
    #[serde(default)]
    gates: Vec<Gate>,
    #[serde(default)]
    freeze: Vec<Freeze>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WaveBlock {
    name: String,
    #[serde(default)]
    environments: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "soak")]
    soak: i64,
    #[serde(default, deserialize_with = "timestamp")]
    not_before: Option<jiff::Timestamp>,
    #[serde(default)]
    pull_request: Option<PullRequestBlock>,
    #[serde(default)]
    gates: Vec<String>,
    #[serde(default)]
    on_failure: OnFailure,
}

/// A wave's `pullRequest:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PullRequestBlock {
    #[serde(default)]
    group: Option<GroupBy>,
}

/// What a wave's pull requests are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum GroupBy {
    /// One pull request for all the wave's environments.
    Wave,
}

fn soak<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let text = match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => {
            return Err(serde::de::Error::custom(
                "expected a duration such as `90s`, `30m`, `2h`, `1d` or `1h30m` (`0` for none)",
            ));
        }
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<jiff::Timestamp>, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<jiff::Timestamp>().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{}` is not a time: give one in RFC 3339, such as `2027-01-27T09:00:00Z`",
            text.escape_debug()
        ))
    })
}

/// `90s`, `30m`, `2h`, `1d`, `1h30m` (or `0`) in seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let d = crate::duration::parse_duration(text)?;
    i64::try_from(d.as_secs()).map_err(|_| format!("`{}` is too long", text.escape_debug()))
}

/// The names of the waves `rollout:` lists in `hydrant.yaml`'s text, in
/// order (none without a block). Unlike [`parse`], it does not check what the
/// waves select: it is what a hold on a wave is checked against.
pub fn wave_names(file: &str, text: &str) -> Result<Vec<String>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    match config::parse_located::<File>(file, text) {
        Ok((parsed, _)) => Ok(parsed
            .rollout
            .map(|b| b.waves.into_iter().map(|w| w.name).collect())
            .unwrap_or_default()),
        Err(e) if e.message == "the file is empty" => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters and `?` for one.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Reads `rollout:` from `hydrant.yaml`'s text (`file` names it in errors);
/// `environments` are every environment of the repository with its labels,
/// against which each selector is checked. No block, or neither waves nor
/// freeze windows: `None`.
pub fn parse(
    file: &str,
    text: &str,
    environments: &[(String, BTreeMap<String, String>)],
) -> Result<Option<Rollout>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let (parsed, lines) = match config::parse_located::<File>(file, text) {
        Ok(parsed) => parsed,
        Err(e) if e.message == "the file is empty" => return Ok(None),
        Err(e) => return Err(e),
    };
    let Some(block) = parsed.rollout else {
        return Ok(None);
    };
    let error = |path: &[&str], message: String| {
        let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let line = (0..=path.len())
            .rev()
            .find_map(|n| lines.get(&path[..n]).copied());
        ConfigError {
            file: file.to_string(),
            line,
            message: format!("`{}`: {message}", crate::yaml::display_path(&path)),
        }
    };
    let mut gate_names = BTreeSet::new();
    for (i, g) in block.gates.iter().enumerate() {
        if !gate_names.insert(g.name.as_str()) {
            let i = i.to_string();
            return Err(error(
                &["rollout", "gates", &i, "name"],
                format!(
                    "gate `{}` is defined twice: each gate needs its own name",
                    g.name
                ),
            ));
        }
    }
    let mut names = BTreeSet::new();
    let mut waves = Vec::with_capacity(block.waves.len());
    for (i, w) in block.waves.into_iter().enumerate() {
        let i = i.to_string();
        let at = |rest: &[&'static str]| {
            let mut p = vec!["rollout", "waves", i.as_str()];
            p.extend_from_slice(rest);
            p.iter().map(|s| s.to_string()).collect::<Vec<String>>()
        };
        let err = |rest: &[&'static str], message: String| {
            let p = at(rest);
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            error(&p, message)
        };
        if !names.insert(w.name.clone()) {
            return Err(err(
                &["name"],
                format!(
                    "wave `{}` is named twice: each wave needs its own name",
                    w.name
                ),
            ));
        }
        if crate::names::check(crate::names::NameKind::Channel, &w.name, file).is_err() {
            return Err(err(
                &["name"],
                format!(
                    "`{}` is not a wave name: use letters, digits, `-`, `_` and `.`",
                    w.name.escape_debug()
                ),
            ));
        }
        if w.environments.is_empty() && w.labels.is_empty() {
            return Err(err(
                &[],
                format!(
                    "wave `{}` selects nothing: give `environments` (names or globs) or `labels`",
                    w.name
                ),
            ));
        }
        for (j, pattern) in w.environments.iter().enumerate() {
            if !environments.iter().any(|(n, _)| glob(pattern, n)) {
                let j = j.to_string();
                let p = at(&["environments"]);
                let mut p: Vec<&str> = p.iter().map(String::as_str).collect();
                p.push(&j);
                return Err(error(
                    &p,
                    format!(
                        "`{}` (wave `{}`) selects no environment",
                        pattern.escape_debug(),
                        w.name
                    ),
                ));
            }
        }
        if !w.labels.is_empty()
            && !environments
                .iter()
                .any(|(_, l)| w.labels.iter().all(|(k, v)| l.get(k) == Some(v)))
        {
            let shown: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            return Err(err(
                &["labels"],
                format!(
                    "no environment carries the labels `{}` (wave `{}`)",
                    shown.join(", "),
                    w.name
                ),
            ));
        }
        let group = w.pull_request.and_then(|p| p.group) == Some(GroupBy::Wave);
        let branch = crate::git::group_key(&w.name);
        if group && environments.iter().any(|(n, _)| *n == branch) {
            return Err(err(
                &["pullRequest", "group"],
                format!(
                    "wave `{}` would deliver its pull request from `hydrant/{branch}`, the branch of environment `{branch}`: rename the wave or the environment",
                    w.name
                ),
            ));
        }
        for (j, gate) in w.gates.iter().enumerate() {
            if !gate_names.contains(gate.as_str()) {
                let j = j.to_string();
                let p = at(&["gates"]);
                let mut p: Vec<&str> = p.iter().map(String::as_str).collect();
                p.push(&j);
                let known: Vec<String> = gate_names.iter().map(|n| format!("`{n}`")).collect();
                let known = if known.is_empty() {
                    "`rollout.gates` defines none".to_string()
                } else {
                    format!("`rollout.gates` defines {}", known.join(", "))
                };
                return Err(error(
                    &p,
                    format!(
                        "wave `{}` names the gate `{}`, which is not defined: {known}",
                        w.name,
                        gate.escape_debug()
                    ),
                ));
            }
        }
        waves.push(Wave {
            name: w.name,
            environments: w.environments,
            labels: w.labels,
            soak_secs: w.soak,
            not_before: w.not_before,
            group,
            gates: w.gates,
            on_failure: w.on_failure,
        });
    }
    let freeze = block.freeze;
    Ok(
        (!waves.is_empty() || !freeze.is_empty()).then_some(Rollout {
            waves,
            gates: block.gates,
            freeze,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Vec<(String, BTreeMap<String, String>)> {
        ["dev", "tenant-0001", "tenant-0002", "tenant-0150", "prod"]
            .iter()
            .map(|n| {
                let mut labels = BTreeMap::new();
                if *n == "prod" {
                    labels.insert("ring".to_string(), "last".to_string());
                }
                (n.to_string(), labels)
            })
            .collect()
    }

    #[test]
    fn durations_read_in_seconds_minutes_hours_and_days() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1_800),
            ("2h", 7_200),
            ("1d", 86_400),
            ("1h30m", 5_400),
            ("0", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for bad in ["", "h", "2", "2x", "1.5h", "-1h", "2h3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_match_any_run_or_one_character() {
        assert!(glob("*", "anything"));
        assert!(glob("tenant-000*", "tenant-0001"));
        assert!(!glob("tenant-000*", "tenant-0150"));
        assert!(glob("tenant-0?50", "tenant-0150"));
        assert!(glob("dev", "dev"));
        assert!(!glob("dev", "dev2"));
        assert!(glob("*-eu-*", "prod-eu-1"));
    }

    #[test]
    fn wave_names_are_read_without_checking_what_the_waves_select() {
        let text = "rollout:\n  waves:\n    - name: canary\n      environments: [nosuch]\n    - name: everyone\n";
        assert_eq!(
            wave_names("hydrant.yaml", text),
            Ok(vec!["canary".to_string(), "everyone".to_string()])
        );
        assert_eq!(wave_names("hydrant.yaml", "interval: 5m\n"), Ok(Vec::new()));
        assert_eq!(wave_names("hydrant.yaml", ""), Ok(Vec::new()));
        let err = wave_names("hydrant.yaml", "rollout:\n  waves:\n    - nme: a\n").unwrap_err();
        assert_eq!(
            (err.file.as_str(), err.line),
            ("hydrant.yaml", Some(3)),
            "{err}"
        );
    }

    #[test]
    fn a_rollout_block_reads_its_waves() {
        let text = "interval: 5m\nrollout:\n  waves:\n    - name: canary\n      environments: [dev, \"tenant-000*\"]\n      soak: 2h\n    - name: everyone\n      labels: {ring: last}\n      notBefore: 2027-01-27T09:00:00Z\n";
        let r = parse("hydrant.yaml", text, &fleet()).unwrap().unwrap();
        assert_eq!(r.waves.len(), 2);
        assert_eq!(r.waves[0].soak_secs, 7_200);
        assert!(r.waves[0].selects("tenant-0002", &BTreeMap::new()));
        assert_eq!(
            r.waves[1].not_before,
            Some("2027-01-27T09:00:00Z".parse().unwrap())
        );
        assert!(!r.waves[0].group);
        assert_eq!(parse("hydrant.yaml", "interval: 5m\n", &fleet()), Ok(None));
        assert_eq!(parse("hydrant.yaml", "", &fleet()), Ok(None));
    }

    #[test]
    fn a_wave_may_deliver_its_environments_in_one_pull_request() {
        let text = "rollout:\n  waves:\n    - name: canary\n      environments: [dev]\n    - name: tenants\n      environments: [\"tenant-*\"]\n      pullRequest: {group: wave}\n";
        let r = parse("hydrant.yaml", text, &fleet()).unwrap().unwrap();
        assert_eq!(
            r.waves.iter().map(|w| w.group).collect::<Vec<_>>(),
            vec![false, true]
        );
        // A grouped wave's branch may not be an environment's branch.
        let mut fleet = fleet();
        fleet.push(("wave-tenants".to_string(), BTreeMap::new()));
        let err = parse("hydrant.yaml", text, &fleet).unwrap_err();
        assert_eq!(err.line, Some(7), "{err}");
        assert!(err.to_string().contains("`hydrant/wave-tenants`"), "{err}");
    }

    #[test]
    fn waves_name_the_gates_they_check_and_what_a_failure_does() {
        let text = "rollout:\n  gates:\n    - name: argocd-healthy\n      argocd: {application: \"wandb-{env}\", server: \"https://argocd.example.com\", credential: argocd}\n  waves:\n    - {name: canary, environments: [dev], soak: 2h, gates: [argocd-healthy], onFailure: rollback}\n    - {name: rest, environments: [\"*\"]}\n";
        let r = parse("hydrant.yaml", text, &fleet()).unwrap().unwrap();
        assert_eq!(r.gates.len(), 1);
        assert_eq!(r.waves[0].gates, vec!["argocd-healthy".to_string()]);
        assert_eq!(r.waves[0].on_failure, OnFailure::Rollback);
        assert_eq!(r.waves[1].on_failure, OnFailure::Halt);
        assert!(r.waves[1].gates.is_empty());
        assert_eq!(
            r.gate("argocd-healthy").map(|g| g.credential.as_deref()),
            Some(Some("argocd"))
        );
    }

    #[test]
    fn a_rollout_block_may_hold_freeze_windows_with_or_without_waves() {
        let text = "rollout:\n  freeze:\n    - from: 2026-12-20T00:00:00Z\n      to: 2027-01-04T00:00:00Z\n      reason: holidays\n";
        let r = parse("hydrant.yaml", text, &fleet()).unwrap().unwrap();
        assert!(r.waves.is_empty());
        assert_eq!(r.freeze.len(), 1);
        assert_eq!(r.freeze[0].reason.as_deref(), Some("holidays"));
        let text = "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n  freeze:\n    - schedule: \"0 17 * * FRY\"\n      duration: 64h\n";
        let err = parse("hydrant.yaml", text, &fleet()).unwrap_err();
        assert_eq!(err.line, Some(6), "{err}");
        assert!(err.to_string().contains("schedule"), "{err}");
    }

    #[test]
    fn a_misconfigured_rollout_names_file_line_and_key() {
        for (text, line, says) in [
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      sok: 2h\n",
                5,
                "sok",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n    - name: b\n      environments: [\"tenant-9*\"]\n",
                6,
                "`tenant-9*` (wave `b`) selects no environment",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments:\n        - dev\n        - staging\n",
                6,
                "`staging` (wave `a`) selects no environment",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      soak: 2 hours\n",
                5,
                "rollout.waves.0.soak",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      notBefore: tomorrow\n",
                5,
                "not a time",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n    - name: a\n      environments: [prod]\n",
                5,
                "named twice",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      labels: {ring: first}\n",
                4,
                "no environment carries the labels `ring: first`",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      soak: 1h\n",
                3,
                "selects nothing",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      pullRequest: {group: environment}\n",
                5,
                "unknown variant `environment`",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      pullRequest: {grup: wave}\n",
                5,
                "grup",
            ),
            (
                "rollout:\n  gates:\n    - name: up\n      http: {url: \"https://h.example.com/{env}\", expect: {status: 200}}\n  waves:\n    - name: a\n      environments: [dev]\n      gates:\n        - up\n        - argocd-healthy\n",
                10,
                "wave `a` names the gate `argocd-healthy`, which is not defined: `rollout.gates` defines `up`",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      gates: [up]\n",
                5,
                "`rollout.gates` defines none",
            ),
            (
                "rollout:\n  waves:\n    - name: a\n      environments: [dev]\n      onFailure: revert\n",
                5,
                "rollout.waves.0.onFailure",
            ),
            (
                "rollout:\n  gates:\n    - name: up\n      http: {url: \"https://h.example.com/{env}\", expect: {status: 999}}\n  waves:\n    - name: a\n      environments: [dev]\n",
                3,
                "http.expect.status",
            ),
        ] {
            let err = parse("hydrant.yaml", text, &fleet()).unwrap_err();
            assert_eq!(err.file, "hydrant.yaml");
            assert_eq!(err.line, Some(line), "{text}: {err}");
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }
}
