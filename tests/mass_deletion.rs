//! No mass deletion by accident: a delivery that would delete more of an
//! environment's resources than `maxDeletions` (more than half by default,
//! never all) is refused with the counts, unless `allowMassDeletion: true` or
//! `--allow-mass-deletion` allows it, and then its pull request opens with a
//! warning. Issue 17, item 4. Real binary, bare remote, local forge, the
//! channel spec on disk in the config repository.

mod common;

use std::path::PathBuf;

use common::git::Remote;
use common::{Example, Run, run_in};
use serde_json::Value;

struct Setup {
    remote: Remote,
    dirs: tempfile::TempDir,
}

/// The components of the bundled `stable` channel that stop rendering when
/// their `install` turns false: prod renders 12 resources, of which these
/// make 8 (67%).
const MOST: &[&str] = &["console", "parquet", "weave", "ingress"];

/// Every component: prod renders nothing.
const ALL: &[&str] = &["app", "console", "parquet", "weave"];

/// The bundled `stable` channel spec with `install: false` for `components`.
fn without(stable: &str, components: &[&str]) -> String {
    let mut spec = stable.to_string();
    for c in components {
        let on = format!("\n  {c}:\n    install: true\n");
        assert!(spec.contains(&on), "the channel spec installs `{c}`");
        spec = spec.replace(&on, &format!("\n  {c}:\n    install: false\n"));
    }
    spec
}

impl Setup {
    fn new() -> Setup {
        Setup {
            remote: Remote::new(),
            dirs: tempfile::tempdir().unwrap(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }

    /// `reconcile --once --env prod --output json`, with `extra` flags.
    fn reconcile(&self, extra: &[&str]) -> Run {
        let mut args = vec!["--env", "prod"];
        args.extend_from_slice(extra);
        self.reconcile_all(&args)
    }

    /// `reconcile --once --output json` of every environment, with `extra` flags.
    fn reconcile_all(&self, extra: &[&str]) -> Run {
        let work = self.dirs.path().join("work");
        let state = self.state();
        let url = self.remote.url();
        let mut args = vec![
            "reconcile",
            "--once",
            "--output",
            "json",
            "--repo",
            &url,
            "--work-dir",
            work.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_in(self.dirs.path(), &args)
    }

    /// Publishes a `stable` spec without `components` on the base branch.
    fn drop_components(&self, components: &[&str]) {
        let stable = self.remote.read_main("channels/stable.yaml");
        self.remote.commit_to_main(
            "channels/stable.yaml",
            &without(&stable, components),
            "Stop installing some components",
        );
    }

    fn pulls(&self) -> Vec<Value> {
        let mut pulls: Vec<Value> = std::fs::read_dir(self.state().join("pulls"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap()
                    })
                    .collect()
            })
            .unwrap_or_default();
        pulls.sort_by_key(|p| p["number"].as_u64());
        pulls
    }
}

fn prod(run: &Run) -> Value {
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["env"] == "prod")
        .unwrap_or_else(|| panic!("no prod: {}", run.stdout))
        .clone()
}

#[test]
fn a_channel_spec_that_removes_sixty_percent_of_the_resources_is_refused_with_the_counts() {
    let s = Setup::new();
    s.drop_components(MOST);
    let run = s.reconcile(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let prod = prod(&run);
    assert_eq!(prod["decision"], "failed", "{prod}");
    assert_eq!(prod["class"], "permanent", "{prod}");
    let error = prod["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "refused: would delete 8 of 12 resources of `rendered/prod/` (at most `maxDeletions` (50%))"
        ) && error.contains("`allowMassDeletion: true`")
            && error.contains("`--allow-mass-deletion`"),
        "{error}"
    );
    assert!(
        prod["reason"]
            .as_str()
            .unwrap()
            .contains("nothing is pushed and no pull request is opened"),
        "{prod}"
    );
    assert!(s.pulls().is_empty(), "{:?}", s.pulls());
    assert_eq!(s.remote.branch("hydrant/prod"), None);
}

#[test]
fn an_open_pull_request_is_left_alone_when_its_next_render_is_refused() {
    let s = Setup::new();
    s.reconcile(&[]).ok();
    let before = s.pulls();
    assert_eq!(before.len(), 1, "{before:?}");
    let tip = s.remote.branch("hydrant/prod");
    assert!(tip.is_some());

    s.drop_components(MOST);
    let run = s.reconcile(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let prod = prod(&run);
    assert_eq!(prod["decision"], "failed", "{prod}");
    assert!(
        prod["reason"]
            .as_str()
            .unwrap()
            .contains("would delete 8 of 12 resources of `rendered/prod/`; nothing is pushed, and pull request #1 is left as it is"),
        "{prod}"
    );
    assert_eq!(s.pulls(), before, "the pull request was changed");
    assert_eq!(s.remote.branch("hydrant/prod"), tip, "the branch moved");
}

#[test]
fn a_channel_spec_that_removes_every_resource_is_refused_with_the_counts() {
    let s = Setup::new();
    s.drop_components(ALL);
    for allow in [&[][..], &["--allow-mass-deletion"][..]] {
        let run = s.reconcile(allow);
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        let prod = prod(&run);
        assert_eq!(prod["decision"], "failed", "{prod}");
        assert_eq!(prod["class"], "permanent", "{prod}");
        let error = prod["error"].as_str().unwrap();
        assert!(
            error.starts_with(
                "refused: would delete 12 of 12 resources of `rendered/prod/`: `prod` renders no resources"
            ),
            "{allow:?}: {error}"
        );
        assert!(s.pulls().is_empty(), "{:?}", s.pulls());
        assert_eq!(s.remote.branch("hydrant/prod"), None);
    }
}

#[test]
fn an_environment_that_renders_no_resources_fails_render_and_validate() {
    let example = Example::new();
    let stable = example.read("channels/stable.yaml");
    example.write("channels/stable.yaml", &without(&stable, ALL));
    for args in [
        &["render", "--env", "prod"][..],
        &["validate", "--env", "prod"],
    ] {
        let run = example.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("`prod` renders no resources"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

/// The pull request of an allowed mass deletion, whose body opens with the
/// warning.
fn assert_warned(s: &Setup, run: &Run, allowed_by: &str) {
    let prod = prod(run);
    assert_eq!(prod["action"], "opened", "{prod}");
    let pulls = s.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let body = pulls[0]["body"].as_str().unwrap();
    assert!(
        body.starts_with(
            "> [!WARNING]\n> **Mass deletion: this pull request deletes 8 of 12 resources** of `rendered/prod/`"
        ),
        "{body}"
    );
    let first = body.split("\n\n").next().unwrap();
    assert!(
        first.ends_with(&format!("Allowed by {allowed_by}.")),
        "{first}"
    );
    assert!(s.remote.branch("hydrant/prod").is_some());
}

#[test]
fn allow_mass_deletion_for_one_run_opens_the_pull_request_with_a_warning_on_top() {
    let s = Setup::new();
    s.drop_components(MOST);
    let run = s.reconcile(&["--allow-mass-deletion"]).ok();
    assert_warned(&s, &run, "`--allow-mass-deletion`");
    // The allowance was for one run: the next run without it leaves the
    // pull request as it is.
    let before = s.pulls();
    let again = s.reconcile(&[]);
    assert_eq!(again.code, 1, "{}", again.stdout);
    assert_eq!(s.pulls(), before);
}

#[test]
fn allow_mass_deletion_in_environment_yaml_opens_the_pull_request_with_a_warning_on_top() {
    let s = Setup::new();
    let config = s.remote.read_main("environments/prod/environment.yaml");
    s.remote.commit_to_main(
        "environments/prod/environment.yaml",
        &format!("{config}\nallowMassDeletion: true\n"),
        "Let prod delete many resources at once",
    );
    s.drop_components(MOST);
    let run = s.reconcile(&[]).ok();
    assert_warned(&s, &run, "`allowMassDeletion: true` in `environment.yaml`");
}

#[test]
fn max_deletions_in_environment_yaml_raises_the_limit_without_a_warning() {
    let s = Setup::new();
    let config = s.remote.read_main("environments/prod/environment.yaml");
    s.remote.commit_to_main(
        "environments/prod/environment.yaml",
        &format!("{config}\nmaxDeletions: \"70%\"\n"),
        "Let prod delete up to 70% of its resources at once",
    );
    s.drop_components(MOST);
    let run = s.reconcile(&[]).ok();
    assert_eq!(prod(&run)["action"], "opened");
    let body = s.pulls()[0]["body"].as_str().unwrap().to_string();
    assert!(!body.contains("[!WARNING]"), "{body}");

    let s = Setup::new();
    s.remote.commit_to_main(
        "environments/prod/environment.yaml",
        &format!("{config}\nmaxDeletions: 7\n"),
        "Let prod delete up to 7 resources at once",
    );
    s.drop_components(MOST);
    let run = s.reconcile(&[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let prod = prod(&run);
    assert!(
        prod["error"].as_str().unwrap().contains(
            "would delete 8 of 12 resources of `rendered/prod/` (at most `maxDeletions` (7))"
        ),
        "{prod}"
    );
}

#[test]
fn a_grouped_wave_does_not_deliver_a_member_that_would_delete_most_of_its_resources() {
    let s = Setup::new();
    s.remote.commit_to_main(
        "hydrant.yaml",
        "rollout:\n  waves:\n    - name: production\n      environments: [prod]\n      pullRequest: {group: wave}\n",
        "Deliver prod in a grouped wave",
    );
    s.drop_components(MOST);
    let run = s.reconcile_all(&[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let prod = prod(&run);
    assert_eq!(prod["action"], "failed", "{prod}");
    assert!(
        prod["error"]
            .as_str()
            .unwrap()
            .starts_with("refused: would delete 8 of 12 resources of `rendered/prod/`"),
        "{prod}"
    );
    // Staging, in the same wave, deletes 7 of its 10 resources: refused too.
    assert!(s.pulls().is_empty(), "{:?}", s.pulls());
    assert_eq!(s.remote.branch("hydrant/wave-production"), None);

    let run = s.reconcile_all(&["--allow-mass-deletion"]).ok();
    assert_eq!(s.pulls().len(), 1, "{}", run.stdout);
    assert!(s.remote.branch("hydrant/wave-production").is_some());
    let body = s.pulls()[0]["body"].as_str().unwrap().to_string();
    let staging = "> [!WARNING]\n> **Mass deletion: this pull request deletes 7 of 10 resources** of `rendered/staging/`";
    let prod = "> [!WARNING]\n> **Mass deletion: this pull request deletes 8 of 12 resources** of `rendered/prod/`";
    assert!(
        body.starts_with(prod) || body.starts_with(staging),
        "{body}"
    );
    assert!(
        body.find(prod).unwrap() < body.find("## ").unwrap(),
        "{body}"
    );
    assert!(
        body.find(staging).unwrap() < body.find("## ").unwrap(),
        "{body}"
    );
}
