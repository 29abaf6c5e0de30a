//! The pull request a reviewer reads: what changes and why, in seconds.
//!
//! Built once for every forge, from the environment's rendered files before and
//! after and the provenance of the new values. Deterministic (the same change
//! gives the same text) and free of secrets: a value under a credential-like key
//! or inside a `Secret` is shown as `(redacted)`. The body stays under GitHub's
//! 65,536-character limit by cutting the diff at file boundaries.
//!
//! Everything taken from values, templates or the channel (images, names,
//! keys, values, versions, file names) is untrusted text: it goes through one
//! escaping function per Markdown context it lands in ([`code`],
//! [`code_cell`], [`cell_text`], [`heading_text`], [`code_block`]), so it can
//! neither break out of a table, a code span or a code block, nor open an
//! HTML comment or tag that hides or forges the rest of the description.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use crate::manifest::Manifest;
use crate::manifest::layout::{self, KUSTOMIZATION, METADATA};
use crate::render::is_secret_key;
use crate::spec::Provenance;
use crate::yaml;

/// The largest body a forge accepts (GitHub's limit).
pub const MAX_BODY: usize = 65_536;

/// Room the diff leaves under [`MAX_BODY`] for what is added to a body after
/// it is written: a rollback's section, a freeze or a hold note (each bounded
/// by [`NOTE_TEXT`]).
pub const NOTES_RESERVE: usize = 2_000;

/// The longest free text (a reason, a gate's answer) a note quotes.
pub const NOTE_TEXT: usize = 300;

/// `text` cut to [`NOTE_TEXT`] characters, with `…` when it was longer.
pub(crate) fn note_text(text: &str) -> String {
    match text.char_indices().nth(NOTE_TEXT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
/// Rows of the changed-values table before the rest is summarised.
const MAX_VALUE_ROWS: usize = 60;

/// One environment's change, as reconcile sees it.
pub struct Change<'a> {
    pub env: &'a str,
    pub namespace: &'a str,
    pub channel: &'a str,
    pub from_version: Option<&'a str>,
    pub to_version: &'a str,
    pub base: &'a str,
    pub source_commit: &'a str,
    pub old_files: &'a BTreeMap<String, String>,
    pub new_files: &'a BTreeMap<String, String>,
    pub manifests: &'a [Manifest],
    pub provenance: &'a Provenance,
    /// The environment's rollout wave, when `hydrant.yaml` has a `rollout:` block.
    pub wave: Option<WaveText<'a>>,
    /// What the render let pass but a reviewer should see (keys of the
    /// values that nothing reads, under `unknownKeys: warn`).
    pub warnings: &'a [String],
}

/// An environment's rollout wave and the waves before it.
#[derive(Debug, Clone, Copy)]
pub struct WaveText<'a> {
    pub name: &'a str,
    pub earlier: &'a [String],
}

/// `hydrant(prod): stable 0.62.1 → 0.63.0`, or `hydrant(prod): re-render`.
/// Always one line.
pub fn title(c: &Change<'_>) -> String {
    let title = match c.from_version {
        Some(from) if from != c.to_version => format!(
            "hydrant({}): {} {from} → {}",
            c.env, c.channel, c.to_version
        ),
        Some(_) => format!("hydrant({}): re-render", c.env),
        None => format!("hydrant({}): {} {}", c.env, c.channel, c.to_version),
    };
    one_line(&title)
}

/// A rollback's title and the section that opens its body:
/// `hydrant(canary-1): roll back stable 1.1.0 → 1.0.0`, and why.
pub fn rollback(c: &Change<'_>, why: &str) -> (String, String) {
    let from = c.from_version.unwrap_or("?");
    let title = one_line(&format!(
        "hydrant({}): roll back {} {from} → {}",
        c.env, c.channel, c.to_version
    ));
    let section = format!(
        "## Rollback\n\nThis pull request takes `{}` back from {} to {}, the release it ran before: {}.\n\nThe rollout of {} is halted and {} is skipped (see `holds.yaml`).\n\n",
        cell_text(c.env),
        code(from),
        code(c.to_version),
        cell_text(&note_text(why)),
        code(from),
        code(from),
    );
    (title, section)
}

/// Untrusted text made one line: line breaks become `⏎`, other control
/// characters `�`.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' => '⏎',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// The longest run of `c` in `s`.
fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        run = if ch == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Untrusted text as a Markdown code span, outside a table: one line, fenced
/// by more backticks than any run inside it. Nothing in a code span is read
/// as Markdown or HTML.
pub(crate) fn code(s: &str) -> String {
    let s = one_line(s);
    if s.is_empty() {
        return "*(empty)*".to_string();
    }
    let fence = "`".repeat(longest_run(&s, '`') + 1);
    // A space keeps a backtick at either end apart from the fence; CommonMark
    // strips one space from each end when both ends have one.
    let pad = if s.starts_with('`') || s.ends_with('`') || (s.starts_with(' ') && s.ends_with(' '))
    {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

/// Untrusted text as a code span inside a table cell: a `|` would end the
/// cell even inside a code span, so it is escaped (the table reads `\|` as `|`).
pub(crate) fn code_cell(s: &str) -> String {
    code(s).replace('|', "\\|")
}

/// Untrusted text as plain Markdown text in a table cell or a list: one line,
/// with every character that could start an inline construct, a link, an
/// HTML tag or comment, or end the cell escaped.
pub(crate) fn cell_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' | '|' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// The title as a Markdown heading.
fn heading_text(s: &str) -> String {
    cell_text(s)
}

/// Untrusted text as a fenced code block: the fence is longer than any run
/// of backticks inside, so no line of the text can close it.
fn code_block(info: &str, text: &str) -> String {
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    let newline = if text.is_empty() || text.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{fence}{info}\n{text}{newline}{fence}\n")
}

/// The resources of `rendered/<env>/`: one object per file, aside from
/// `kustomization.yaml` and `hydrant.metadata`.
pub(crate) fn resource_files(files: &BTreeMap<String, String>) -> BTreeSet<&str> {
    files
        .keys()
        .map(String::as_str)
        .filter(|n| *n != KUSTOMIZATION && *n != METADATA)
        .collect()
}

/// Resources added, removed and changed, by file name.
pub struct Resources<'a> {
    pub added: Vec<&'a str>,
    pub removed: Vec<&'a str>,
    pub changed: Vec<&'a str>,
}

pub fn resources<'a>(
    old: &'a BTreeMap<String, String>,
    new: &'a BTreeMap<String, String>,
) -> Resources<'a> {
    let (o, n) = (resource_files(old), resource_files(new));
    Resources {
        added: n.difference(&o).copied().collect(),
        removed: o.difference(&n).copied().collect(),
        changed: n
            .intersection(&o)
            .copied()
            .filter(|f| old[*f] != new[*f])
            .collect(),
    }
}

/// The warning at the very top of the body of a pull request that deletes
/// more resources than `maxDeletions`, or all of them, because `allowance`
/// allowed it.
pub fn mass_deletion_warning(
    env: &str,
    removed: usize,
    total: usize,
    allowance: crate::config::Allowance,
) -> String {
    format!(
        "> [!WARNING]\n> **Mass deletion: this pull request deletes {removed} of {total} resources** of {}; once merged, Argo CD or Flux deletes them from the cluster. Allowed by {allowance}.\n\n",
        code(&format!("rendered/{env}/"))
    )
}

/// The warning a body opens with, if it opens with one (from
/// [`mass_deletion_warning`]).
pub(crate) fn opening_warning(body: &str) -> Option<&str> {
    if !body.starts_with("> [!WARNING]\n") {
        return None;
    }
    body.find("\n\n").map(|end| &body[..end + 2])
}

/// The commit message: title, changed resources, and hydrant's trailers.
pub fn commit_message(c: &Change<'_>) -> String {
    let r = resources(c.old_files, c.new_files);
    let mut m = title(c);
    m.push_str("\n\n");
    for (label, list) in [
        ("Added", &r.added),
        ("Changed", &r.changed),
        ("Removed", &r.removed),
    ] {
        if !list.is_empty() {
            let _ = writeln!(m, "{label}: {}", one_line(&list.join(", ")));
        }
    }
    if r.added.is_empty() && r.changed.is_empty() && r.removed.is_empty() {
        m.push_str("Changed: kustomization.yaml, hydrant.metadata\n");
    }
    let _ = write!(
        m,
        "\n{}: {}\nHydrant-Channel-Version: {}\nHydrant-Source-Commit: {}\n",
        crate::git::ENV_TRAILER,
        one_line(c.env),
        one_line(c.to_version),
        one_line(c.source_commit)
    );
    m
}

fn parse(text: &str) -> Value {
    yaml::parse_single(text)
        .ok()
        .flatten()
        .and_then(|n| yaml::to_value(&n, &mut |_, _| {}).ok())
        .unwrap_or(Value::Null)
}

fn object_id(v: &Value, file: &str) -> String {
    match (v["kind"].as_str(), v["metadata"]["name"].as_str()) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        _ => file.to_string(),
    }
}

/// `(container name) → image` of every pod template in an object.
fn images(v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, item) in m {
                if k == "containers" || k == "initContainers" {
                    for c in item.as_array().into_iter().flatten() {
                        if let (Some(name), Some(image)) = (c["name"].as_str(), c["image"].as_str())
                        {
                            out.insert(name.to_string(), image.to_string());
                        }
                    }
                } else {
                    images(item, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|item| images(item, out)),
        _ => {}
    }
}

/// A changed field of one object.
struct FieldChange {
    shown: String,
    index: Vec<String>,
    old: Option<Value>,
    new: Option<Value>,
}

fn named(items: &[Value]) -> Option<Vec<&str>> {
    items
        .iter()
        .map(|i| i.get("name").and_then(Value::as_str))
        .collect()
}

fn diff_fields(
    old: Option<&Value>,
    new: Option<&Value>,
    shown: &str,
    index: &mut Vec<String>,
    out: &mut Vec<FieldChange>,
) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                index.push(k.clone());
                let key = yaml::display_path(std::slice::from_ref(k));
                let s = if shown.is_empty() || key.starts_with('[') {
                    format!("{shown}{key}")
                } else {
                    format!("{shown}.{key}")
                };
                diff_fields(a.get(k), b.get(k), &s, index, out);
                index.pop();
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            if let (Some(na), Some(nb)) = (named(a), named(b)) {
                // Lists of named items (containers, env, ports) are matched by name.
                for (i, name) in nb.iter().enumerate() {
                    index.push(i.to_string());
                    let before = na.iter().position(|n| n == name).map(|j| &a[j]);
                    diff_fields(before, Some(&b[i]), &format!("{shown}[{name}]"), index, out);
                    index.pop();
                }
                for (j, name) in na.iter().enumerate() {
                    if !nb.contains(name) {
                        index.push(j.to_string());
                        diff_fields(Some(&a[j]), None, &format!("{shown}[{name}]"), index, out);
                        index.pop();
                    }
                }
            } else {
                for i in 0..a.len().max(b.len()) {
                    index.push(i.to_string());
                    diff_fields(a.get(i), b.get(i), &format!("{shown}[{i}]"), index, out);
                    index.pop();
                }
            }
        }
        (a, b) if a != b => out.push(FieldChange {
            shown: shown.to_string(),
            index: index.clone(),
            old: a.cloned(),
            new: b.cloned(),
        }),
        _ => {}
    }
}

fn show_value(v: &Option<Value>, redact: bool) -> String {
    let mut s = match v {
        None => return "—".to_string(),
        Some(_) if redact => return "(redacted)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if s.chars().count() > 60 {
        s = s.chars().take(57).collect::<String>() + "…";
    }
    code_cell(&s)
}

/// Which layer set a rendered field, by the value keys it was rendered from.
fn set_by(c: &Change<'_>, m: &Manifest, index: &[String]) -> (String, bool) {
    let keys = m
        .from_values
        .iter()
        .find(|(field, _)| field.as_slice() == index)
        .map(|(_, keys)| keys.as_slice())
        .unwrap_or(&[]);
    if keys.is_empty() {
        return (
            format!(
                "template {}",
                code_cell(&format!("templates/{}", m.template))
            ),
            false,
        );
    }
    let secret = keys
        .iter()
        .any(|k| k.last().is_some_and(|last| is_secret_key(last)));
    let shown: Vec<String> = keys
        .iter()
        .map(|key| match key.first().map(String::as_str) {
            Some("values") => {
                let path = &key[1..];
                let shown = code_cell(&yaml::display_path(path));
                match c.provenance.origin(path) {
                    Some(origin) => format!("{shown}: {}", cell_text(&origin.to_string())),
                    None => shown,
                }
            }
            Some("channel") => "release channel version".to_string(),
            Some("env") => code_cell(&format!("environments/{}/environment.yaml", c.env)),
            _ => code_cell(&key.join(".")),
        })
        .collect();
    (shown.join("; "), secret)
}

/// Whether an environment's name says it is production.
pub(crate) fn is_production(env: &str) -> bool {
    matches!(env, "prod" | "production") || env.starts_with("prod-") || env.starts_with("prod_")
}

/// How the collapsed diff of a body opens: everything from its last
/// occurrence on is the diff (no line of the text before it, all one-line
/// cells and code spans, and no line of a diff, which starts with a
/// prefix, can hold it).
pub(crate) const DIFF_OPENING: &str = "\n<details>\n<summary>Diff (";

/// The pull request body.
pub fn body(c: &Change<'_>) -> String {
    let r = resources(c.old_files, c.new_files);
    let by_file: BTreeMap<&str, &Manifest> = layout::file_names(c.manifests)
        .into_iter()
        .zip(c.manifests)
        .map(|(name, m)| {
            (
                c.new_files
                    .get_key_value(&name)
                    .map(|(k, _)| k.as_str())
                    .unwrap_or(""),
                m,
            )
        })
        .collect();
    let old_values: BTreeMap<&str, Value> = resource_files(c.old_files)
        .into_iter()
        .map(|f| (f, parse(&c.old_files[f])))
        .collect();

    let mut b = String::new();
    let to = code_cell(c.to_version);
    let version = match c.from_version {
        Some(from) if from != c.to_version => format!("{} → {to}", code_cell(from)),
        Some(_) => format!("{to} (unchanged)"),
        None => format!("{to} (first render)"),
    };
    let _ = writeln!(b, "## {}\n", heading_text(&title(c)));
    let _ = writeln!(b, "| | |\n|---|---|");
    let _ = writeln!(
        b,
        "| Environment | {} (namespace {}) |",
        code_cell(c.env),
        code_cell(c.namespace)
    );
    let _ = writeln!(b, "| Channel | {} {version} |", code_cell(c.channel));
    if let Some(w) = &c.wave {
        let after = match w.earlier {
            [] => "the first wave".to_string(),
            earlier => format!(
                "after {}",
                earlier
                    .iter()
                    .map(|e| code_cell(e))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let _ = writeln!(b, "| Wave | {} ({after}) |", code_cell(w.name));
    }
    let _ = writeln!(b, "| Base | {} |", code_cell(c.base));
    let _ = writeln!(
        b,
        "| Resources | {} added, {} removed, {} changed |",
        r.added.len(),
        r.removed.len(),
        r.changed.len()
    );

    let mut warnings = Vec::new();
    if !r.removed.is_empty() {
        warnings.push(format!(
            "{} resource(s) will be **deleted** from the cluster: {}",
            r.removed.len(),
            r.removed
                .iter()
                .map(|f| code(
                    &old_values
                        .get(f)
                        .map(|v| object_id(v, f))
                        .unwrap_or_else(|| f.to_string())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if is_production(c.env) {
        warnings.push(format!(
            "This changes the production environment {}.",
            code(c.env)
        ));
    }
    if let Some(from) = c.from_version
        && crate::channel::is_downgrade(from, c.to_version)
    {
        warnings.push(format!(
            "This is a **downgrade** from {} to {}.",
            code(from),
            code(c.to_version)
        ));
    }
    warnings.extend(c.warnings.iter().map(|w| cell_text(w)));
    if !warnings.is_empty() {
        b.push_str("\n### ⚠️ Warnings\n\n");
        for w in warnings {
            let _ = writeln!(b, "- {w}");
        }
    }

    // Images, per object and container.
    let mut image_rows = Vec::new();
    let files: BTreeSet<&str> = resource_files(c.old_files)
        .union(&resource_files(c.new_files))
        .copied()
        .collect();
    for f in &files {
        let (mut before, mut after) = (BTreeMap::new(), BTreeMap::new());
        if let Some(v) = old_values.get(f) {
            images(v, &mut before);
        }
        if let Some(m) = by_file.get(f) {
            images(&m.value, &mut after);
        }
        let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for name in names {
            let (o, n) = (before.get(name), after.get(name));
            if o != n {
                let id = by_file
                    .get(f)
                    .map(|m| m.id())
                    .or_else(|| old_values.get(f).map(|v| object_id(v, f)))
                    .unwrap_or_default();
                image_rows.push(format!(
                    "| {} | {} | {} | {} |",
                    code_cell(&id),
                    code_cell(name),
                    o.map(|i| code_cell(i)).unwrap_or("—".into()),
                    n.map(|i| code_cell(i)).unwrap_or("—".into())
                ));
            }
        }
    }
    if !image_rows.is_empty() {
        b.push_str("\n### Images\n\n| Object | Container | Before | After |\n|---|---|---|---|\n");
        for row in image_rows {
            b.push_str(&row);
            b.push('\n');
        }
    }

    b.push_str("\n### Resources\n\n");
    for (label, list) in [
        ("Added", &r.added),
        ("Removed", &r.removed),
        ("Changed", &r.changed),
    ] {
        if list.is_empty() {
            continue;
        }
        let shown: Vec<String> = list
            .iter()
            .map(|f| {
                let id = by_file
                    .get(f)
                    .map(|m| m.id())
                    .or_else(|| old_values.get(f).map(|v| object_id(v, f)))
                    .unwrap_or_else(|| f.to_string());
                code(&id)
            })
            .collect();
        let _ = writeln!(b, "- **{label}** ({}): {}", list.len(), shown.join(", "));
    }
    if r.added.is_empty() && r.removed.is_empty() && r.changed.is_empty() {
        b.push_str("- Only `kustomization.yaml` or `hydrant.metadata` change.\n");
    }

    // Changed values and the layer that set each.
    let mut rows = Vec::new();
    for f in &r.changed {
        let (Some(old), Some(m)) = (old_values.get(f), by_file.get(f)) else {
            continue;
        };
        let mut changes = Vec::new();
        diff_fields(Some(old), Some(&m.value), "", &mut Vec::new(), &mut changes);
        for ch in changes {
            // The version label follows the channel version, shown above.
            if ch.shown.ends_with("labels[\"app.kubernetes.io/version\"]") {
                continue;
            }
            let (who, secret_key) = set_by(c, m, &ch.index);
            let redact = secret_key
                || (m.kind == "Secret"
                    && (ch.shown.starts_with("data") || ch.shown.starts_with("stringData")))
                || ch.index.last().is_some_and(|k| is_secret_key(k));
            rows.push(format!(
                "| {} | {} | {} | {} | {who} |",
                code_cell(&m.id()),
                code_cell(&ch.shown),
                show_value(&ch.old, redact),
                show_value(&ch.new, redact)
            ));
        }
    }
    if !rows.is_empty() {
        b.push_str("\n### Changed values\n\n| Object | Field | Before | After | Set by |\n|---|---|---|---|---|\n");
        let total = rows.len();
        for row in rows.into_iter().take(MAX_VALUE_ROWS) {
            b.push_str(&row);
            b.push('\n');
        }
        if total > MAX_VALUE_ROWS {
            let _ = writeln!(
                b,
                "\n…and {} more changed fields (see the diff).",
                total - MAX_VALUE_ROWS
            );
        }
    }

    let env = one_line(c.env);
    let _ = write!(
        b,
        "\n### Reproduce locally\n\n{}",
        code_block(
            "sh",
            &format!(
                "hydrant render --env {env}\nhydrant diff --env {env}\nhydrant explain --env {env} KEY.PATH\n"
            )
        )
    );
    append_diff(&mut b, c);
    b
}

/// Appends the collapsed unified diff, cut at file boundaries to fit [`MAX_BODY`].
fn append_diff(b: &mut String, c: &Change<'_>) {
    let dir = format!("rendered/{}", c.env);
    let mut diffs = Vec::new();
    for (name, text) in crate::manifest::layout::diff(&dir, c.old_files, c.new_files) {
        diffs.push((format!("{dir}/{name}"), redact_diff(&text, &name, c)));
    }
    // One fence for the whole block, longer than any run of backticks in it.
    let fence = "`".repeat(
        diffs
            .iter()
            .map(|(_, text)| longest_run(text, '`'))
            .max()
            .unwrap_or(0)
            .max(2)
            + 1,
    );
    let closing = format!("{fence}\n\n</details>\n");
    let opening = format!(
        "{DIFF_OPENING}{} files)</summary>\n\n{fence}diff\n",
        diffs.len()
    );
    let reserve = NOTES_RESERVE;
    let mut shown = String::new();
    let mut cut = Vec::new();
    for (path, text) in diffs {
        if b.len() + opening.len() + shown.len() + text.len() + closing.len() + reserve < MAX_BODY
            && cut.is_empty()
        {
            shown.push_str(&text);
        } else {
            cut.push(path);
        }
    }
    b.push_str(&opening);
    b.push_str(&shown);
    if !shown.is_empty() && !shown.ends_with('\n') {
        b.push('\n');
    }
    b.push_str(&closing);
    if !cut.is_empty() {
        let _ = writeln!(
            b,
            "\nThe diff of {} more file(s) is not shown to keep this description within {MAX_BODY} characters; {} shows all of it.",
            cut.len(),
            code(&format!("hydrant diff --env {}", c.env))
        );
    }
}

/// Secrets never reach a pull request: the diff of a `Secret`'s data is withheld.
fn redact_diff(text: &str, file: &str, c: &Change<'_>) -> String {
    let is_secret = file.starts_with("secret-")
        || c.manifests.iter().any(|m| {
            m.kind == "Secret" && format!("secret-{}.yaml", m.name.to_lowercase()) == file
        });
    if is_secret {
        let header: Vec<&str> = text.lines().take(2).collect();
        format!(
            "{}\n@@ the diff of a Secret is not shown @@\n",
            header.join("\n")
        )
    } else {
        text.to_string()
    }
}

/// Opens the note at the top of a held environment's pull request.
const HELD_START: &str = "<!-- hydrant:held -->\n";
/// Closes it. Nothing inside the note can close it early: the hold's text goes
/// through [`cell_text`], which escapes `<`.
const HELD_END: &str = "<!-- /hydrant:held -->\n\n";

/// A pull request's description with the note that `hold` keeps hydrant from
/// updating it (who held it, when and why) at its top, or, with no hold,
/// without such a note; the rest of the description is kept as it is. Only a
/// note at the very start is hydrant's: the same text further down (say, in
/// a diff) is left alone.
pub fn with_held_note(body: &str, env: &str, hold: Option<&crate::rollout::holds::Hold>) -> String {
    let rest = body
        .strip_prefix(HELD_START)
        .and_then(|b| b.split_once(HELD_END).map(|(_, rest)| rest))
        .unwrap_or(body);
    let Some(hold) = hold else {
        return rest.to_string();
    };
    let since = hold
        .since
        .as_deref()
        .map(|s| format!(" since {}", cell_text(s)))
        .unwrap_or_default();
    let note = format!(
        "{HELD_START}> **Held** ({}) by {}{since}: {}\n>\n> hydrant leaves this pull request open and does not update it until the hold is released (`hydrant release-hold`).\n{HELD_END}",
        cell_text(&hold.scope.describe()),
        cell_text(&hold.by),
        cell_text(&hold.reason),
    );
    if note.len() + rest.len() < MAX_BODY {
        return format!("{note}{rest}");
    }
    format!(
        "{note}The rest of this description is left out while the environment is held, to keep it within {MAX_BODY} characters; {} shows the change.\n",
        code(&format!("hydrant diff --env {env}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RenderedDoc;
    use serde_json::json;

    fn manifest(value: Value, from_values: Vec<(Vec<String>, Vec<Vec<String>>)>) -> Manifest {
        Manifest::from_doc(
            RenderedDoc {
                template: "app.yaml.hbs".into(),
                index: 1,
                value,
                from_values,
            },
            "ns",
        )
        .unwrap()
    }

    fn deployment(image: &str, replicas: u64) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}})
    }

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn the_body_names_versions_images_resources_and_the_layer_of_each_change() {
        let old_m = manifest(deployment("wandb/local:0.62.1", 3), vec![]);
        let new_m = manifest(
            deployment("wandb/local:0.63.0", 4),
            vec![(p("spec.replicas"), vec![p("values.app.replicas")])],
        );
        let mut old_files = BTreeMap::new();
        old_files.insert(
            "deployment-app.yaml".to_string(),
            yaml::to_document(&old_m.value),
        );
        old_files.insert(
            "configmap-gone.yaml".to_string(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\n".to_string(),
        );
        let mut new_files = BTreeMap::new();
        new_files.insert(
            "deployment-app.yaml".to_string(),
            yaml::to_document(&new_m.value),
        );
        let layer = crate::spec::Layer::parse(
            crate::spec::LayerKind::Custom,
            "environments/prod/pinned.yaml",
            "app:\n  replicas: 4\n",
        )
        .unwrap();
        let merged = crate::spec::merge(&[&layer]);
        let manifests = [new_m];
        let c = Change {
            env: "prod",
            namespace: "ns",
            channel: "stable",
            from_version: Some("0.63.0"),
            to_version: "0.62.1",
            base: "main",
            source_commit: "0123456789abcdef",
            old_files: &old_files,
            new_files: &new_files,
            manifests: &manifests,
            wave: None,
            warnings: &[],
            provenance: &merged.provenance,
        };
        let body = body(&c);
        assert!(
            body.starts_with("## hydrant(prod): stable 0.63.0 → 0.62.1\n"),
            "{body}"
        );
        assert!(
            body.contains(
                "| `Deployment/app` | `app` | `wandb/local:0.62.1` | `wandb/local:0.63.0` |"
            ),
            "{body}"
        );
        assert!(body.contains("**Removed** (1): `ConfigMap/gone`"), "{body}");
        assert!(body.contains("| `Deployment/app` | `spec.replicas` | `3` | `4` | `app.replicas`: custom resource (environments/prod/pinned.yaml:2) |"), "{body}");
        assert!(
            body.contains("`spec.template.spec.containers[app].image`"),
            "{body}"
        );
        assert!(
            body.contains("**deleted**")
                && body.contains("production")
                && body.contains("**downgrade**"),
            "{body}"
        );
        assert!(
            body.contains("```diff\n--- a/rendered/prod/configmap-gone.yaml"),
            "{body}"
        );
        assert_eq!(body, super::body(&c), "deterministic");
    }

    #[test]
    fn a_huge_diff_is_cut_at_file_boundaries_under_the_limit() {
        let mut old_files = BTreeMap::new();
        let mut new_files = BTreeMap::new();
        for i in 0..40 {
            old_files.insert(
                format!("configmap-{i:02}.yaml"),
                format!("data:\n{}", "  k: old\n".repeat(300)),
            );
            new_files.insert(
                format!("configmap-{i:02}.yaml"),
                format!("data:\n{}", "  k: new\n".repeat(300)),
            );
        }
        let prov = Provenance::default();
        let c = Change {
            env: "dev",
            namespace: "ns",
            channel: "stable",
            from_version: Some("1"),
            to_version: "1",
            base: "main",
            source_commit: "abc",
            old_files: &old_files,
            new_files: &new_files,
            manifests: &[],
            wave: None,
            warnings: &[],
            provenance: &prov,
        };
        let body = body(&c);
        assert!(body.len() < MAX_BODY, "{}", body.len());
        assert!(
            body.contains("`hydrant diff --env dev` shows all of it"),
            "{}",
            &body[body.len() - 300..]
        );
        assert!(body.ends_with("shows all of it.\n"));
        assert_eq!(title(&c), "hydrant(dev): re-render");
        let shown = body.matches("--- a/rendered/dev/").count();
        assert!(shown > 3 && shown < 40, "{shown}");
        // What is added after the body is written (a rollback, a freeze) still fits,
        // however long the reasons it quotes.
        let (_, rollback) = rollback(&c, &"`why` ".repeat(10_000));
        let freeze = crate::rollout::Frozen {
            reason: "`weekend` ".repeat(10_000),
            ends: "2026-12-07T08:00:00Z".into(),
            ends_local: "Mon 2026-12-07 09:00 CET".into(),
            message: String::new(),
            overrides: None,
        };
        let note = crate::delivery::pace::freeze_note(&freeze);
        let total = rollback.len() + body.len() + note.len();
        assert!(total < MAX_BODY, "{total}");
    }

    #[test]
    fn secret_data_never_reaches_the_body() {
        let old_files: BTreeMap<String, String> = [(
            "secret-x.yaml".to_string(),
            "stringData:\n  password: hunter2\n".to_string(),
        )]
        .into();
        let new_files: BTreeMap<String, String> = [(
            "secret-x.yaml".to_string(),
            "stringData:\n  password: hunter3\n".to_string(),
        )]
        .into();
        let prov = Provenance::default();
        let c = Change {
            env: "dev",
            namespace: "ns",
            channel: "stable",
            from_version: None,
            to_version: "1",
            base: "main",
            source_commit: "abc",
            old_files: &old_files,
            new_files: &new_files,
            manifests: &[],
            wave: None,
            warnings: &[],
            provenance: &prov,
        };
        let body = body(&c);
        assert!(!body.contains("hunter"), "{body}");
    }

    /// Strings a pull request author or a hostile channel can put into values,
    /// names, images or versions.
    const HOSTILE: &[&str] = &[
        "a|b",
        "x`y",
        "```",
        "`lead",
        "trail`",
        "a\n| injected | row |",
        "a\r\n## Approved by security",
        "<!-- hide the rest",
        "</details><script>alert(1)</script>",
        "[click here](https://evil.example)",
        "** bold ** _it_ ~~s~~ &amp; \\|",
        " spaced ",
        "",
    ];

    /// The `|` of a line that are not escaped by a backslash.
    fn unescaped_pipes(line: &str) -> usize {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] == b'|' && (i == 0 || b[i - 1] != b'\\'))
            .count()
    }

    #[test]
    fn untrusted_text_cannot_leave_its_markdown_context() {
        for h in HOSTILE {
            for (name, out) in [
                ("code", code(h)),
                ("code_cell", code_cell(h)),
                ("cell_text", cell_text(h)),
            ] {
                assert!(!out.contains(['\n', '\r']), "{name}({h:?}) = {out:?}");
            }
            let span = code(h);
            if !h.is_empty() {
                let fence = span.len() - span.trim_start_matches('`').len();
                let inner = &span[fence..span.len() - fence];
                assert!(
                    span.ends_with(&"`".repeat(fence)) && longest_run(inner, '`') < fence,
                    "{h:?} -> {span}"
                );
            }
            assert_eq!(unescaped_pipes(&code_cell(h)), 0, "{h:?}");
            let text = cell_text(h);
            assert_eq!(unescaped_pipes(&text), 0, "{h:?}");
            assert!(!text.contains(['<', '>']), "{h:?} -> {text}");
            let block = code_block("diff", &format!("{h}\n```\n````\n"));
            let fence: String = block.chars().take_while(|c| *c == '`').collect();
            assert!(fence.len() > 4, "{block}");
            assert!(block.ends_with(&format!("\n{fence}\n")), "{block}");
            assert_eq!(block.matches(&fence).count(), 2, "{block}");
        }
    }

    #[test]
    fn hostile_values_names_and_versions_cannot_forge_the_description() {
        let evil = "wandb/local:1`\n| forged | row | x | y |\n<!-- hidden";
        let old_m = manifest(deployment("wandb/local:0.62.1", 3), vec![]);
        let mut new_v = deployment(evil, 3);
        new_v["spec"]["template"]["spec"]["containers"][0]["name"] = json!("app|x`");
        let new_m = manifest(new_v, vec![]);
        let old_files: BTreeMap<String, String> = [(
            "deployment-app.yaml".to_string(),
            format!(
                "{}```\n</details>{}",
                yaml::to_document(&old_m.value),
                crate::forge::SETTINGS_PENDING
            ),
        )]
        .into();
        let new_files: BTreeMap<String, String> = [(
            "deployment-app.yaml".to_string(),
            yaml::to_document(&new_m.value),
        )]
        .into();
        let prov = Provenance::default();
        let manifests = [new_m];
        let c = Change {
            env: "dev",
            namespace: "ns|<!--",
            channel: "stable`\n## forged",
            from_version: Some("1.0.0"),
            to_version: "1.0.1",
            base: "main",
            source_commit: "abc",
            old_files: &old_files,
            new_files: &new_files,
            manifests: &manifests,
            wave: None,
            warnings: &[],
            provenance: &prov,
        };
        let body = body(&c);
        let lines: Vec<&str> = body.lines().collect();
        // Only hydrant's own headings, and every table row keeps its columns.
        let headings: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with('#'))
            .collect();
        assert_eq!(
            headings,
            [
                headings[0],
                "### Images",
                "### Resources",
                "### Changed values",
                "### Reproduce locally"
            ],
            "{body}"
        );
        // Every row of a table has as many cells as its header.
        let mut header = None;
        for line in &lines {
            match (line.starts_with('|'), header) {
                (true, None) => header = Some(unescaped_pipes(line)),
                (true, Some(n)) => assert_eq!(unescaped_pipes(line), n, "{line}\n{body}"),
                (false, _) => header = None,
            }
        }
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("| `Deployment/app`"))
                .count(),
            2,
            "{body}"
        );
        assert!(!body.contains("\n| forged"), "{body}");
        assert!(
            !lines.iter().any(|l| l.starts_with('<')
                && *l != "<details>"
                && !l.starts_with("<summary>")
                && *l != "</details>"),
            "{body}"
        );
        // The diff's fence is longer than the backticks inside it.
        assert!(body.contains("````diff\n"), "{body}");
        assert!(body.trim_end().ends_with("</details>"), "{body}");
        // hydrant's own marker, which it looks for at the end, cannot come from content.
        assert!(!body.ends_with(crate::forge::SETTINGS_PENDING), "{body}");
        assert!(!title(&c).contains('\n'));
        assert!(!commit_message(&c).contains("\n## forged"));
    }
}
