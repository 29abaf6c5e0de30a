//! Every key of `values.yaml` and `pinned.yaml` is accounted for: a key no
//! template reads and the channel does not define is refused, with the file,
//! line and the closest known key; `unknownKeys: warn` lets it pass with a
//! warning (issue 17).

mod common;

use std::path::PathBuf;

use common::git::Remote;
use common::{Example, Run};
use serde_json::Value;

/// `validate --env ENV` fails with exit 1 and every needle in its errors.
fn refused(ex: &Example, env: &str, needles: &[&str]) -> Run {
    let run = ex.run(&["validate", "--env", env]);
    assert_eq!(run.code, 1, "expected exit 1:\n{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    run
}

#[test]
fn a_typo_at_the_top_level_is_refused_with_the_suggestion() {
    let ex = Example::new();
    ex.append(
        "environments/staging/values.yaml",
        "\ningres:\n  class: nginx\n",
    );
    let line = ex
        .read("environments/staging/values.yaml")
        .lines()
        .position(|l| l == "ingres:")
        .unwrap()
        + 1;
    refused(
        &ex,
        "staging",
        &[
            &format!(
                "`environments/staging/values.yaml`, line {line}: `ingres` is not a key any template or the channel knows; did you mean `ingress`?"
            ),
            "unknownKeys: warn",
        ],
    );
}

#[test]
fn a_nested_typo_is_refused_in_values_and_in_pinned() {
    let ex = Example::new();
    let values = ex
        .read("environments/staging/values.yaml")
        .replace("app:\n  replicas: 2", "app:\n  replica: 5");
    ex.write("environments/staging/values.yaml", &values);
    let line = values.lines().position(|l| l == "  replica: 5").unwrap() + 1;
    refused(
        &ex,
        "staging",
        &[&format!(
            "`environments/staging/values.yaml`, line {line}: `app.replica` is not a key any template or the channel knows; did you mean `app.replicas`?"
        )],
    );
    // The same in layer 3.
    let ex = Example::new();
    ex.write(
        "environments/staging/pinned.yaml",
        "global:\n  mysql:\n    hots: db.example.com\n",
    );
    refused(
        &ex,
        "staging",
        &[
            "`environments/staging/pinned.yaml`, line 3: `global.mysql.hots` is not a key any template or the channel knows; did you mean `global.mysql.host`?",
        ],
    );
}

#[test]
fn a_typo_in_a_list_items_map_is_refused() {
    let ex = Example::new();
    // A template that reads each item of a list key by key.
    ex.write(
        "templates/extra-configmaps.yaml.hbs",
        "{{#each values.extraConfigMaps}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{name}}\ndata:\n  {{#each data}}\n  {{@key}}: {{quote this}}\n  {{/each}}\n{{/each}}\n",
    );
    ex.append(
        "environments/staging/values.yaml",
        "\nextraConfigMaps:\n  - name: one\n    data: {a: b}\n  - nmae: two\n    data: {c: d}\n",
    );
    let line = ex
        .read("environments/staging/values.yaml")
        .lines()
        .position(|l| l == "  - nmae: two")
        .unwrap()
        + 1;
    refused(
        &ex,
        "staging",
        &[&format!(
            "line {line}: `extraConfigMaps.1.nmae` is not a key any template or the channel knows; did you mean `extraConfigMaps.1.name`?"
        )],
    );
    // Spelled right, it renders.
    let values = ex
        .read("environments/staging/values.yaml")
        .replace("nmae: two", "name: two");
    ex.write("environments/staging/values.yaml", &values);
    ex.run(&["validate", "--env", "staging"]).ok();
}

#[test]
fn ldap_settings_are_known_where_ldap_is_off() {
    let ex = Example::new();
    let values = ex.read("environments/dev/values.yaml").replace(
        "  ldap:\n    enabled: false\n",
        "  ldap:\n    enabled: false\n    host: ldaps://ldap.corp.example.com:636\n    baseDN: dc=corp,dc=example,dc=com\n    bindDN: cn=wandb,dc=corp,dc=example,dc=com\n    bindPWSecret:\n      name: wandb-ldap\n      key: bind-password\n    attributes: email=mail\n    groupAllowList: cn=wandb\n    tls: true\n    tlsCert:\n      configMap:\n        name: ldap-tls-cert\n        key: certificate.crt\n",
    );
    assert!(values.contains("bindPWSecret"), "the example changed");
    ex.write("environments/dev/values.yaml", &values);
    let run = ex.run(&["validate", "--env", "dev"]).ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // The rendered app has no LDAP settings: the branch is not taken.
    let render = ex.run(&["render", "--env", "dev"]).ok();
    assert!(!render.stdout.contains("LOCAL_LDAP"), "{}", render.stdout);
}

#[test]
fn unknown_keys_warn_in_environment_yaml_lets_the_key_pass_with_a_warning() {
    let ex = Example::new();
    ex.append(
        "environments/staging/values.yaml",
        "\napp2:\n  replicas: 1\n",
    );
    refused(&ex, "staging", &["`app2` is not a key"]);
    ex.append(
        "environments/staging/environment.yaml",
        "unknownKeys: warn\n",
    );
    for args in [
        &["validate", "--env", "staging"][..],
        &["render", "--env", "staging"][..],
    ] {
        let run = ex.run(args).ok();
        assert!(
            run.stderr.contains(
                "warning: environment `staging`: `environments/staging/values.yaml`, line"
            ) && run.stderr.contains(
                "`app2` is not a key any template or the channel knows; did you mean `app`?"
            ),
            "{}",
            run.stderr
        );
    }
    // Other environments still refuse theirs.
    ex.append("environments/dev/values.yaml", "\napp2: {}\n");
    refused(&ex, "dev", &["`app2` is not a key"]);
}

#[test]
fn unknown_keys_warn_in_hydrant_yaml_applies_to_every_environment() {
    let ex = Example::new();
    ex.append("environments/dev/values.yaml", "\nconsle:\n  replicas: 1\n");
    ex.write("hydrant.yaml", "unknownKeys: warn\n");
    let run = ex.run(&["validate", "--all"]).ok();
    assert!(
        run.stderr.contains("warning: environment `dev`")
            && run.stderr.contains("did you mean `console`?"),
        "{}",
        run.stderr
    );
    // An environment may be stricter than its repository.
    ex.append("environments/dev/environment.yaml", "unknownKeys: error\n");
    refused(&ex, "dev", &["did you mean `console`?"]);
    // Anything else is a settings error naming the file.
    ex.write("hydrant.yaml", "unknownKeys: maybe\n");
    let run = ex.run(&["validate", "--all"]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("hydrant.yaml") && run.stderr.contains("unknownKeys"),
        "{}",
        run.stderr
    );
}

#[test]
fn explain_of_an_unknown_key_says_so_and_exits_1() {
    let ex = Example::new();
    let run = ex.run(&["explain", "--env", "staging", "app.replica"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(
            "`app.replica` is not a key any template or the channel knows; did you mean `app.replicas`?"
        ),
        "{}",
        run.stderr
    );
    // A known key that is not set is still explained.
    let run = ex
        .run(&["explain", "--env", "staging", "global.ldap.bindDN"])
        .ok();
    assert!(run.stdout.contains("is not set"), "{}", run.stdout);
}

struct Setup {
    remote: Remote,
    dirs: tempfile::TempDir,
}

impl Setup {
    fn run(&self, command: &[&str]) -> Run {
        let args = [command, &["--output", "json"]].concat();
        self.remote.run_hydrant(self.dirs.path(), &args)
    }

    fn state(&self) -> PathBuf {
        self.dirs.path().join("state")
    }
}

fn environment(run: &Run, env: &str) -> Value {
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    v["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing: {v}"))
        .clone()
}

#[test]
fn plan_and_reconcile_fail_the_environment_and_warn_in_the_pull_request() {
    let s = Setup {
        remote: Remote::new(),
        dirs: tempfile::tempdir().unwrap(),
    };
    let values = s.remote.read_main("environments/staging/values.yaml");
    s.remote.commit_to_main(
        "environments/staging/values.yaml",
        &values.replace("app:\n  replicas: 2", "app:\n  replica: 5"),
        "Scale staging",
    );
    let plan = s.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.stderr);
    let staging = environment(&plan, "staging").to_string();
    assert!(
        staging.contains("did you mean `app.replicas`?"),
        "{staging}"
    );
    let run = s.run(&["reconcile", "--once"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let staging = environment(&run, "staging");
    assert_eq!(staging["action"], "failed", "{staging}");
    assert!(s.remote.branch("hydrant/staging").is_none());

    // Allowed to warn, it opens its pull request with the warning.
    let config = s.remote.read_main("environments/staging/environment.yaml");
    s.remote.commit_to_main(
        "environments/staging/environment.yaml",
        &format!("{}\nunknownKeys: warn\n", config.trim_end()),
        "Let staging warn",
    );
    let run = s.run(&["reconcile", "--once"]);
    assert_eq!(
        environment(&run, "staging")["action"],
        "opened",
        "{}",
        run.stdout
    );
    let pull = std::fs::read_dir(s.state().join("pulls"))
        .unwrap()
        .flatten()
        .map(|e| {
            serde_json::from_str::<Value>(&std::fs::read_to_string(e.path()).unwrap()).unwrap()
        })
        .find(|p| p["head"] == "hydrant/staging")
        .expect("a pull request for staging");
    let body = pull["body"].as_str().unwrap();
    assert!(
        body.contains("Warnings") && body.contains("app.replica") && body.contains("app.replicas"),
        "{body}"
    );
}
