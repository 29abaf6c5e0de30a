//! The pure half of `hydrant watch`: which environments a changed path can
//! affect ([`affected`]), what to watch ([`watch_targets`]), which events are
//! changes ([`is_change`]), and what a re-render changed per file
//! ([`summary`]). Nothing here reads the disk or a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};

use crate::config;
use crate::repo::valid_environment_name;

/// The environments a change can alter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// Every environment: templates, settings, or a change that cannot be placed.
    pub all: bool,
    pub envs: BTreeSet<String>,
}

impl Affected {
    pub fn all() -> Affected {
        Affected {
            all: true,
            envs: BTreeSet::new(),
        }
    }

    fn env(name: &str) -> Affected {
        Affected {
            all: false,
            envs: BTreeSet::from([name.to_string()]),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.envs.is_empty()
    }

    pub fn add(&mut self, other: Affected) {
        self.all |= other.all;
        self.envs.extend(other.envs);
    }

    /// The environments of `known` (in its order) that are affected.
    pub fn pick(&self, known: &[String]) -> Vec<String> {
        known
            .iter()
            .filter(|e| self.all || self.envs.contains(*e))
            .cloned()
            .collect()
    }
}

/// Where the channel specs are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelPath {
    /// `<channel>.yaml` and `<channel>/releases/<id>.yaml` below it.
    Dir(PathBuf),
    /// One spec, served for every channel.
    File(PathBuf),
}

/// What a change is classified against, learnt from the repository before it.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The repository, canonical (event paths start with it).
    pub root: PathBuf,
    /// The channel source, when it is on disk.
    pub channel: Option<ChannelPath>,
    /// The channel each environment follows (`None` when its
    /// `environment.yaml` does not say); `None` as a whole before the
    /// repository first opened.
    pub env_channels: Option<BTreeMap<String, Option<String>>>,
}

/// The environments a change of `path` can affect. Pure: it looks at the
/// path only, never at the disk.
pub fn affected(layout: &Layout, path: &Path) -> Affected {
    if let Some(rel) = relative(&layout.root, path) {
        if ignored(&rel) {
            return Affected::default();
        }
        match rel
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
        {
            // The repository itself moved or changed: unsure.
            [] | ["templates", ..] => return Affected::all(),
            [name] if *name == config::SETTINGS_FILE => return Affected::all(),
            ["rendered", ..] => return Affected::default(),
            ["environments", rest @ ..] => return environment_change(rest),
            _ => {}
        }
    }
    match &layout.channel {
        Some(ChannelPath::File(file)) if path == file => Affected::all(),
        Some(ChannelPath::Dir(dir)) => match relative(dir, path) {
            Some(rel) if !ignored(&rel) => channel_change(layout, &rel),
            _ => Affected::default(),
        },
        _ => Affected::default(),
    }
}

/// `environments/<rest>`: one environment's directory affects that
/// environment; anything else there (the directory itself, shared files) all.
fn environment_change(rest: &[&str]) -> Affected {
    match rest {
        [name, ..] if valid_environment_name(name) => Affected::env(name),
        _ => Affected::all(),
    }
}

/// `<channel>.yaml` (`.yml`, `.json`, `.sig`) or `<channel>/releases/…` below
/// the channel directory: the environments on that channel, and any whose
/// channel is not known.
fn channel_change(layout: &Layout, rel: &[String]) -> Affected {
    let (Some(first), Some(envs)) = (rel.first(), &layout.env_channels) else {
        return Affected::all();
    };
    let name = first.strip_suffix(".sig").unwrap_or(first);
    let name = ["yaml", "yml", "json"]
        .iter()
        .find_map(|ext| name.strip_suffix(&format!(".{ext}")))
        .unwrap_or(name);
    let mut hit = Affected::default();
    for (env, channel) in envs {
        if channel.as_deref().is_none_or(|c| c == name) {
            hit.envs.insert(env.clone());
        }
    }
    hit
}

/// The components of `path` below `base`, if it is below (or is) `base`.
fn relative(base: &Path, path: &Path) -> Option<Vec<String>> {
    let rel = path.strip_prefix(base).ok()?;
    Some(
        rel.components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect(),
    )
}

/// Hidden files and directories, and editors' backup and swap files.
fn ignored(rel: &[String]) -> bool {
    rel.iter().any(|c| c.starts_with('.'))
        || rel.last().is_some_and(|name| {
            name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".tmp")
        })
}

/// Where the channel source is, when it is not a URL: `--channel` is
/// relative to the working directory, `channelSource` of hydrant.yaml (and
/// the default, `channels`) to the repository.
pub fn channel_location(source: &str, from_flag: bool, root: &Path, cwd: &Path) -> Option<PathBuf> {
    if source.contains("://") {
        return None;
    }
    Some(if from_flag { cwd } else { root }.join(source))
}

/// What to watch: the repository's top level (for `hydrant.yaml`, and
/// `templates/` or `environments/` appearing), `templates/` and
/// `environments/` throughout, and the channel source. Never `rendered/`.
pub fn watch_targets(root: &Path, channel: Option<&ChannelPath>) -> Vec<(PathBuf, RecursiveMode)> {
    let mut targets = vec![
        (root.to_path_buf(), RecursiveMode::NonRecursive),
        (root.join("templates"), RecursiveMode::Recursive),
        (root.join("environments"), RecursiveMode::Recursive),
    ];
    let covered = |p: &Path| {
        targets
            .iter()
            .any(|(t, mode)| p == t || (*mode == RecursiveMode::Recursive && p.starts_with(t)))
    };
    let extra = match channel {
        // A directory holding the repository would take `rendered/` in.
        Some(ChannelPath::Dir(dir)) if !root.starts_with(dir) && !covered(dir) => {
            Some((dir.clone(), RecursiveMode::Recursive))
        }
        // Editors replace a file by renaming another over it: watch its directory.
        Some(ChannelPath::File(file)) => file
            .parent()
            .filter(|dir| !covered(dir))
            .map(|dir| (dir.to_path_buf(), RecursiveMode::NonRecursive)),
        _ => None,
    };
    targets.extend(extra);
    targets
}

/// Whether an event is a change: opening and reading a file (hydrant reads
/// its inputs on every render) is not, closing it after a write is.
pub fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other => false,
        _ => true,
    }
}

/// What changed between `old` and `new`, the files of `dir`
/// (`rendered/<env>`): a line per file, or one saying nothing did.
pub fn summary(
    dir: &str,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut lines = Vec::new();
    for name in names {
        match (old.get(name), new.get(name)) {
            (None, Some(_)) => lines.push(format!("+ {dir}/{name}")),
            (Some(_), None) => lines.push(format!("− {dir}/{name}")),
            (Some(a), Some(b)) if a != b => {
                let (added, removed) = line_counts(a, b);
                lines.push(format!("~ {dir}/{name} (+{added} −{removed} lines)"));
            }
            _ => {}
        }
    }
    if lines.is_empty() {
        lines.push(format!("{dir}/ unchanged"));
    }
    lines
}

/// Lines added and removed from `old` to `new`.
fn line_counts(old: &str, new: &str) -> (usize, usize) {
    use similar::ChangeTag;
    let diff = similar::TextDiff::from_lines(old, new);
    diff.iter_all_changes()
        .fold((0, 0), |(added, removed), change| match change.tag() {
            ChangeTag::Insert => (added + 1, removed),
            ChangeTag::Delete => (added, removed + 1),
            ChangeTag::Equal => (added, removed),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let root = PathBuf::from("/repo");
        Layout {
            channel: Some(ChannelPath::Dir(root.join("channels"))),
            env_channels: Some(BTreeMap::from([
                ("dev".to_string(), Some("canary".to_string())),
                ("staging".to_string(), Some("stable".to_string())),
                ("prod".to_string(), Some("stable".to_string())),
            ])),
            root,
        }
    }

    fn envs(a: &Affected) -> Vec<&str> {
        assert!(!a.all, "{a:?} is every environment");
        a.envs.iter().map(String::as_str).collect()
    }

    fn of(path: &str) -> Affected {
        affected(&layout(), Path::new(path))
    }

    #[test]
    fn a_change_in_one_environment_affects_only_that_environment() {
        assert_eq!(envs(&of("/repo/environments/dev/values.yaml")), ["dev"]);
        assert_eq!(envs(&of("/repo/environments/prod/pinned.yaml")), ["prod"]);
        assert_eq!(envs(&of("/repo/environments/staging")), ["staging"]);
    }

    #[test]
    fn templates_settings_and_the_environments_layout_affect_every_environment() {
        for path in [
            "/repo/templates/app.yaml.hbs",
            "/repo/templates/_partials/labels.hbs",
            "/repo/templates",
            "/repo/hydrant.yaml",
            "/repo/environments",
            "/repo/environments/common.yaml",
            "/repo",
        ] {
            assert!(of(path).all, "{path}");
        }
    }

    #[test]
    fn a_channel_spec_affects_the_environments_on_that_channel() {
        assert_eq!(envs(&of("/repo/channels/stable.yaml")), ["prod", "staging"]);
        assert_eq!(envs(&of("/repo/channels/canary.json")), ["dev"]);
        assert_eq!(envs(&of("/repo/channels/canary.yaml.sig")), ["dev"]);
        assert_eq!(
            envs(&of("/repo/channels/stable/releases/0.62.1.yaml")),
            ["prod", "staging"]
        );
        assert!(of("/repo/channels/beta.yaml").is_empty());
        assert!(of("/repo/channels").all, "the directory itself");
    }

    #[test]
    fn an_environment_whose_channel_is_unknown_is_affected_by_any_channel() {
        let mut l = layout();
        l.env_channels
            .as_mut()
            .unwrap()
            .insert("qa".to_string(), None);
        let a = affected(&l, Path::new("/repo/channels/stable.yaml"));
        assert_eq!(envs(&a), ["prod", "qa", "staging"]);
        l.env_channels = None;
        assert!(affected(&l, Path::new("/repo/channels/stable.yaml")).all);
    }

    #[test]
    fn a_channel_source_outside_the_repository_is_classified_too() {
        let mut l = layout();
        l.channel = Some(ChannelPath::Dir(PathBuf::from("/mirror")));
        assert_eq!(
            envs(&affected(&l, Path::new("/mirror/canary.yaml"))),
            ["dev"]
        );
        l.channel = Some(ChannelPath::File(PathBuf::from("/specs/one.yaml")));
        assert!(affected(&l, Path::new("/specs/one.yaml")).all);
        assert!(affected(&l, Path::new("/specs/other.yaml")).is_empty());
    }

    #[test]
    fn hydrants_own_output_editor_files_and_other_files_affect_nothing() {
        for path in [
            "/repo/rendered/dev/deployment-wandb-app.yaml",
            "/repo/rendered",
            "/repo/environments/dev/.values.yaml.swp",
            "/repo/environments/dev/values.yaml~",
            "/repo/environments/dev/values.yaml.swp",
            "/repo/templates/app.yaml.hbs.tmp",
            "/repo/templates/.#app.yaml.hbs",
            "/repo/.git/index",
            "/repo/README.md",
            "/elsewhere/values.yaml",
        ] {
            assert!(of(path).is_empty(), "{path}: {:?}", of(path));
        }
    }

    #[test]
    fn reading_a_file_is_not_a_change_but_writing_one_is() {
        use notify_debouncer_full::notify::event::{CreateKind, ModifyKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
    }

    #[test]
    fn affected_environments_are_picked_in_the_order_given() {
        let known = ["dev", "prod", "staging"].map(String::from);
        let mut a = Affected::env("staging");
        a.add(Affected::env("dev"));
        assert_eq!(a.pick(&known), ["dev", "staging"]);
        a.add(Affected::all());
        assert_eq!(a.pick(&known), known);
        assert!(Affected::default().pick(&known).is_empty());
    }

    #[test]
    fn the_channel_source_is_found_relative_to_where_it_was_named() {
        let (root, cwd) = (Path::new("/repo"), Path::new("/home/me"));
        assert_eq!(
            channel_location("channels", false, root, cwd),
            Some(PathBuf::from("/repo/channels"))
        );
        assert_eq!(
            channel_location("mirror", true, root, cwd),
            Some(PathBuf::from("/home/me/mirror"))
        );
        assert_eq!(
            channel_location("/srv/specs", true, root, cwd),
            Some(PathBuf::from("/srv/specs"))
        );
        assert_eq!(
            channel_location("https://deploy.example.com", true, root, cwd),
            None
        );
    }

    #[test]
    fn rendered_is_never_watched() {
        let root = Path::new("/repo");
        let targets = watch_targets(root, Some(&ChannelPath::Dir(root.join("channels"))));
        let paths: Vec<&Path> = targets.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(
            paths,
            [
                "/repo",
                "/repo/templates",
                "/repo/environments",
                "/repo/channels"
            ]
            .map(Path::new)
        );
        assert_eq!(
            targets[0].1,
            RecursiveMode::NonRecursive,
            "the top level only"
        );
        // A channel directory holding the repository would take rendered/ in.
        let around = watch_targets(root, Some(&ChannelPath::Dir(PathBuf::from("/"))));
        assert_eq!(around.len(), 3);
        // A single spec file is watched through its directory, once.
        let file = watch_targets(root, Some(&ChannelPath::File(root.join("spec.yaml"))));
        assert_eq!(file.len(), 3);
        let file = watch_targets(root, Some(&ChannelPath::File("/srv/spec.yaml".into())));
        assert_eq!(
            file.last().unwrap(),
            &(PathBuf::from("/srv"), RecursiveMode::NonRecursive)
        );
    }

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_summary_counts_lines_per_changed_file_and_marks_added_and_removed_files() {
        let old = files(&[
            ("a.yaml", "x: 1\ny: 2\nz: 3\n"),
            ("gone.yaml", "g: 1\n"),
            ("same.yaml", "s: 1\n"),
        ]);
        let new = files(&[
            ("a.yaml", "x: 1\ny: 20\nz: 3\nw: 4\n"),
            ("new.yaml", "n: 1\n"),
            ("same.yaml", "s: 1\n"),
        ]);
        assert_eq!(
            summary("rendered/dev", &old, &new),
            [
                "~ rendered/dev/a.yaml (+2 −1 lines)",
                "− rendered/dev/gone.yaml",
                "+ rendered/dev/new.yaml",
            ]
        );
    }

    #[test]
    fn the_summary_says_when_nothing_changed() {
        let same = files(&[("a.yaml", "x: 1\n")]);
        assert_eq!(
            summary("rendered/dev", &same, &same),
            ["rendered/dev/ unchanged"]
        );
    }
}
