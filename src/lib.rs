//! hydrant renders a vendor's release channel, layered with per-environment
//! overrides kept in git, into Kubernetes manifests delivered as pull requests.
//!
//! The pure parts ([`spec`], [`render`], [`manifest`], [`pipeline`], [`yaml`])
//! do no IO; [`channel`], [`repo`] and [`output`] are the edges; [`project`]
//! composes them, [`watch`] and [`mirror`] are engines built on it, and
//! [`cli`] drives them: it declares arguments, calls the library and prints.

pub mod auth;
pub mod backoff;
pub mod channel;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod duration;
pub mod forge;
#[doc(hidden)]
pub mod fuzzing;
pub mod gates;
pub mod git;
pub mod import;
pub mod manifest;
pub mod memo;
pub mod mirror;
pub mod names;
pub(crate) mod outbound;
pub mod output;
pub mod pipeline;
pub mod project;
pub mod reconcile;
pub mod render;
pub mod repo;
pub mod report;
pub mod rollout;
pub mod settings;
pub mod spec;
pub mod tree;
pub mod ui;
pub mod watch;
pub mod yaml;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file below `dir`, with its text.
    fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).expect("reads the directory") {
            let path = entry.expect("reads an entry").path();
            if path.is_dir() {
                found.extend(sources(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("reads the file");
                found.push((path, text));
            }
        }
        found
    }

    /// The modules of git and forges that `text` names: as a path
    /// (`crate::git::…`, `hydrant::forge::…`) or in a group (`crate::{git, …}`).
    fn names_git_or_forge(text: &str) -> Vec<String> {
        let mut named = Vec::new();
        for root in ["crate::", "hydrant::"] {
            for (at, _) in text.match_indices(root) {
                let rest = &text[at + root.len()..];
                let list = match rest.strip_prefix('{') {
                    Some(group) => &group[..group.find('}').unwrap_or(group.len())],
                    None => rest,
                };
                let idents = list.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'));
                for ident in idents.filter(|i| !i.is_empty()) {
                    let first = ident.split("::").next().unwrap_or("");
                    if first == "git" || first == "forge" {
                        named.push(format!("{root}{first}"));
                    }
                    if !rest.starts_with('{') {
                        break;
                    }
                }
            }
        }
        named
    }

    /// The command line only declares arguments, calls the library and
    /// prints: it names neither git nor a forge, and stays small.
    #[test]
    fn cli_is_thin() {
        const MAX_LINES: usize = 1_500;
        let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
        let files = sources(&cli);
        assert!(!files.is_empty(), "no sources in `{}`", cli.display());
        let mut lines = 0;
        for (path, text) in &files {
            lines += text.lines().count();
            let named = names_git_or_forge(text);
            assert!(
                named.is_empty(),
                "`{}` uses {named:?}: the command line reaches git and forges only through library entry points",
                path.display()
            );
        }
        assert!(
            lines <= MAX_LINES,
            "`src/cli/` has {lines} lines, more than {MAX_LINES}: move logic into the library"
        );
    }

    #[test]
    fn git_and_forge_are_found_as_paths_and_in_groups() {
        assert_eq!(
            names_git_or_forge("use crate::git::Workspace;"),
            ["crate::git"]
        );
        assert_eq!(
            names_git_or_forge("x: hydrant::forge::Kind"),
            ["hydrant::forge"]
        );
        assert_eq!(
            names_git_or_forge("use crate::{auth, forge::api, git};"),
            ["crate::forge", "crate::git"]
        );
        assert!(names_git_or_forge("use crate::delivery::connect::ForgeKind;").is_empty());
        assert!(names_git_or_forge("use crate::{gitops, forges};").is_empty());
    }
}
