//! `hydrant plan`: what a reconcile would do to each environment and why,
//! touching nothing; `reconcile --dry-run` prints the same plan.

mod common;

use std::path::PathBuf;

use common::Run;
use common::git::Remote;
use serde_json::Value;

struct Setup {
    remote: Remote,
    dirs: tempfile::TempDir,
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

    fn run(&self, command: &[&str], extra: &[&str]) -> Run {
        let args = [command, extra].concat();
        self.remote.run_hydrant(self.dirs.path(), &args)
    }

    fn pulls(&self) -> usize {
        std::fs::read_dir(self.state().join("pulls"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

fn environments(run: &Run) -> Vec<Value> {
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    v["environments"].as_array().unwrap().clone()
}

fn find<'a>(envs: &'a [Value], env: &str) -> &'a Value {
    envs.iter()
        .find(|e| e["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing: {envs:?}"))
}

#[test]
fn plan_and_a_dry_run_print_the_same_plan_and_change_nothing() {
    let s = Setup::new();
    let before = s.remote.branches();
    for output in ["text", "json"] {
        let plan = s.run(&["plan"], &["--output", output]).ok();
        let dry = s
            .run(&["reconcile", "--once", "--dry-run"], &["--output", output])
            .ok();
        assert_eq!(
            plan.stdout, dry.stdout,
            "plan and --dry-run differ ({output})"
        );
        assert!(!plan.stdout.is_empty());
    }
    assert_eq!(s.remote.branches(), before, "the plan pushed a branch");
    assert_eq!(s.pulls(), 0, "the plan opened a pull request");

    let plan = s.run(&["plan"], &["--output", "json"]).ok();
    let envs = environments(&plan);
    let prod = find(&envs, "prod");
    assert_eq!(prod["decision"], "open");
    assert_eq!(prod["version"]["from"], "0.62.1");
    assert_eq!(prod["version"]["to"], "0.63.0");
    assert!(
        prod["reason"]
            .as_str()
            .unwrap()
            .contains("open a pull request"),
        "{prod}"
    );
    let files: Vec<&str> = prod["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"rendered/prod/hydrant.metadata")
            && files
                .iter()
                .any(|f| f.starts_with("rendered/prod/deployment-")),
        "{files:?}"
    );
    assert_eq!(find(&envs, "dev")["decision"], "nothing");

    let text = s.run(&["plan"], &["--env", "prod"]).ok();
    assert!(text.stdout.starts_with("prod  open"), "{}", text.stdout);
    assert!(text.stdout.contains("0.62.1 → 0.63.0"), "{}", text.stdout);
    assert!(
        text.stdout.contains("~ rendered/prod/hydrant.metadata"),
        "{}",
        text.stdout
    );
}

#[test]
fn after_a_reconcile_the_plan_is_nothing_to_do() {
    let s = Setup::new();
    s.run(&["reconcile", "--once"], &["--output", "json"]).ok();
    let plan = s.run(&["plan"], &["--output", "json"]).ok();
    for env in environments(&plan) {
        assert_eq!(env["decision"], "nothing", "{env}");
    }
}

#[test]
fn a_change_that_alters_no_manifest_opens_no_pull_request() {
    let s = Setup::new();
    // Bring every environment up to date first.
    s.run(&["reconcile", "--once"], &["--output", "json"]).ok();
    s.remote.land_by_hand("prod");
    s.remote.land_by_hand("staging");
    s.run(&["reconcile", "--once"], &["--output", "json"]).ok();
    let pulls = s.pulls();

    // A YAML comment in values.yaml, an empty pinned.yaml and a template
    // comment change the inputs' digests but not one manifest.
    let values = s.remote.read_main("environments/prod/values.yaml");
    s.remote.commit_to_main(
        "environments/prod/values.yaml",
        &format!("# tuned for the spring peak\n{values}"),
        "Comment prod's values",
    );
    s.remote.commit_to_main(
        "environments/staging/pinned.yaml",
        "",
        "An empty pinned.yaml",
    );
    let template = "templates/_partials/labels.hbs";
    let labels = s.remote.read_main(template);
    s.remote.commit_to_main(
        template,
        &format!("{{{{!-- the labels every object carries --}}}}\n{labels}"),
        "Comment a partial",
    );
    let run = s.run(&["reconcile", "--once"], &["--output", "json"]).ok();
    for env in environments(&run) {
        assert_eq!(env["action"], "unchanged", "{env}");
        assert_eq!(env["decision"], "nothing", "{env}");
    }
    assert_eq!(
        s.pulls(),
        pulls,
        "a metadata-only change opened a pull request"
    );
    assert_eq!(
        s.remote.branches(),
        vec!["main"],
        "a metadata-only change pushed a branch"
    );
}
