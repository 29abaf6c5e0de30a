//! Issue 18, item 3: `hydrant import` makes an environment of the operator's
//! `WeightsAndBiases` resource (layer 3) or of `helm get values` output
//! (layer 2). Its credentials go to a Secret manifest outside the
//! repository, and nowhere else: not into the repository, not into any
//! output or log.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Example, Run, project_root, tree};

/// The credentials of the reference's GCP example.
const LICENSE: &str = "eyJhbGnUzaHgyQjQyQWhEU3...ZieKQ2x5GGfw";
const MYSQL_PASSWORD: &str = "8wtX6cJHizAZvYScjDzZcUarK4zZGjpV";

fn gcp_fixture() -> PathBuf {
    project_root().join("tests/cases/import/gcp-operator.yaml")
}

fn assert_shown_nowhere(runs: &[&Run], secrets: &[&str]) {
    for run in runs {
        for secret in secrets {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "a credential was shown:\n{}\n{}",
                run.stdout,
                run.stderr
            );
        }
    }
}

fn assert_in_no_file(dir: &Path, secrets: &[&str]) {
    for (path, bytes) in tree(dir) {
        let text = String::from_utf8_lossy(&bytes);
        for secret in secrets {
            assert!(!text.contains(secret), "a credential was written to {path}");
        }
    }
}

#[test]
fn the_references_gcp_example_imports_then_validates_and_renders_with_its_credentials_only_in_the_secret()
 {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    let secrets = out.path().join("secrets");
    let from = gcp_fixture();
    let import = ex
        .run(&[
            "--log-format",
            "json",
            "--log-level",
            "trace",
            "import",
            "--env",
            "gcp",
            "--from",
            from.to_str().unwrap(),
            "--secrets-out",
            secrets.to_str().unwrap(),
        ])
        .ok();
    assert!(
        import.stderr.contains("wrote environments/gcp/pinned.yaml")
            && import
                .stderr
                .contains("wrote environments/gcp/environment.yaml")
            && import
                .stderr
                .contains("moved `global.license` (line 25) → `global.licenseSecret`")
            && import.stderr.contains("follows `stable`")
            && import.stderr.contains("pinned.yaml is layer 3")
            && import.stderr.contains("lists replace instead of appending")
            && import.stderr.contains("comes from channel `stable`"),
        "{}",
        import.stderr
    );
    let pinned = ex.read("environments/gcp/pinned.yaml");
    assert!(
        pinned.contains("licenseSecret:\n    name: gcp-wandb-credentials\n    key: license")
            && pinned.contains(
                "passwordSecret:\n      name: gcp-wandb-credentials\n      key: mysql-password"
            ),
        "{pinned}"
    );
    let config = ex.read("environments/gcp/environment.yaml");
    assert!(
        config.contains("channel: stable") && config.contains("namespace: default"),
        "{config}"
    );

    let file = secrets.join("gcp-wandb-credentials.yaml");
    let manifest = std::fs::read_to_string(&file).unwrap();
    let secret = &common::parse_stream(&manifest)[0];
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["namespace"], "default");
    assert_eq!(secret["stringData"]["license"], LICENSE);
    assert_eq!(secret["stringData"]["mysql-password"], MYSQL_PASSWORD);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let validate = ex
        .run(&["--log-format", "json", "validate", "--env", "gcp"])
        .ok();
    let render = ex
        .run(&[
            "--log-format",
            "json",
            "render",
            "--env",
            "gcp",
            "--out",
            "rendered",
        ])
        .ok();
    let rendered = ex.read("rendered/gcp/deployment-wandb-app.yaml");
    assert!(
        rendered.contains("name: gcp-wandb-credentials\n                  key: license"),
        "{rendered}"
    );
    assert_shown_nowhere(&[&import, &validate, &render], &[LICENSE, MYSQL_PASSWORD]);
    assert_in_no_file(ex.path(), &[LICENSE, MYSQL_PASSWORD]);
}

#[test]
fn secrets_out_inside_the_repository_is_refused_also_through_a_link_or_dotdot() {
    let ex = Example::new();
    let outside = tempfile::tempdir().unwrap();
    let link = outside.path().join("link");
    std::os::unix::fs::symlink(ex.path().join("templates"), &link).unwrap();
    let through = outside.path().join("missing/../link/new");
    let from = gcp_fixture();
    for dir in [
        "secrets".to_string(),
        "environments/missing/../../secrets".to_string(),
        link.join("new").display().to_string(),
        through.display().to_string(),
        ex.path().join("secrets").display().to_string(),
    ] {
        let run = ex.run(&[
            "import",
            "--env",
            "gcp",
            "--from",
            from.to_str().unwrap(),
            "--secrets-out",
            &dir,
        ]);
        assert_eq!(run.code, 1, "{dir}: {}", run.stderr);
        assert!(
            run.stderr.contains("lies inside the repository") && run.stderr.contains("hint:"),
            "{dir}: {}",
            run.stderr
        );
        assert!(!ex.path().join("environments/gcp").exists(), "{dir}");
        assert_shown_nowhere(&[&run], &[LICENSE, MYSQL_PASSWORD]);
    }
    assert_in_no_file(ex.path(), &[LICENSE, MYSQL_PASSWORD]);
}

#[test]
fn credentials_without_secrets_out_are_refused_naming_the_keys_not_the_values() {
    let ex = Example::new();
    let from = gcp_fixture();
    let run = ex.run(&["import", "--env", "gcp", "--from", from.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("`global.license`")
            && run.stderr.contains("`global.mysql.password`")
            && run.stderr.contains("--secrets-out"),
        "{}",
        run.stderr
    );
    assert_shown_nowhere(&[&run], &[LICENSE, MYSQL_PASSWORD]);
    assert!(!ex.path().join("environments/gcp").exists());
}

#[test]
fn helm_values_become_layer_2_beside_the_imported_resource() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    let from = gcp_fixture();
    let secrets = out.path().to_str().unwrap();
    ex.run(&[
        "import",
        "--env",
        "gcp",
        "--from",
        from.to_str().unwrap(),
        "--secrets-out",
        secrets,
    ])
    .ok();
    let helm = out.path().join("helm-values.yaml");
    std::fs::write(
        &helm,
        "USER-SUPPLIED VALUES:\napp:\n  replicas: 3\nglobal:\n  ldap:\n    enabled: false\n    bindPW: ldap-bind-pw-0815\n",
    )
    .unwrap();
    let run = ex
        .run(&[
            "import",
            "--env",
            "gcp",
            "--layer",
            "values",
            "--from",
            helm.to_str().unwrap(),
            "--secrets-out",
            secrets,
        ])
        .ok();
    assert!(
        run.stderr.contains("wrote environments/gcp/values.yaml")
            && !run.stderr.contains("environment.yaml"),
        "{}",
        run.stderr
    );
    let values = ex.read("environments/gcp/values.yaml");
    assert!(
        values.contains("replicas: 3")
            && values.contains(
                "bindPWSecret:\n      name: gcp-wandb-values-credentials\n      key: ldap-bind-password"
            ),
        "{values}"
    );
    let manifest =
        std::fs::read_to_string(out.path().join("gcp-wandb-values-credentials.yaml")).unwrap();
    assert!(manifest.contains("ldap-bind-pw-0815"), "{manifest}");
    // The first import's Secret is still whole.
    assert!(out.path().join("gcp-wandb-credentials.yaml").exists());
    let validate = ex.run(&["validate", "--env", "gcp"]).ok();
    assert_shown_nowhere(&[&run, &validate], &["ldap-bind-pw-0815"]);
    assert_in_no_file(ex.path(), &["ldap-bind-pw-0815", LICENSE]);
}

#[test]
fn a_kind_that_is_not_weights_and_biases_is_refused_naming_file_and_line() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    let from = out.path().join("deployment.yaml");
    std::fs::write(
        &from,
        "# a Deployment\napiVersion: apps/v1\nkind: Deployment\nspec:\n  values: {}\n",
    )
    .unwrap();
    let run = ex.run(&["import", "--env", "x", "--from", from.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "`{}`, line 2: `apiVersion` is `apps/v1`, not `apps.wandb.com/v1`",
            from.display()
        )) && run.stderr.contains("--layer values"),
        "{}",
        run.stderr
    );
    assert!(!ex.path().join("environments/x").exists());
}

#[test]
fn a_key_no_template_reads_is_listed_with_its_line() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    let from = out.path().join("operator.yaml");
    let text = std::fs::read_to_string(gcp_fixture()).unwrap().replace(
        "    ingress:\n",
        "    wheave:\n      replicas: 2\n    ingress:\n",
    );
    let line = text.lines().position(|l| l == "    wheave:").unwrap() + 1;
    std::fs::write(&from, text).unwrap();
    let run = ex
        .run(&[
            "import",
            "--env",
            "gcp",
            "--from",
            from.to_str().unwrap(),
            "--secrets-out",
            out.path().join("s").to_str().unwrap(),
        ])
        .ok();
    assert!(
        run.stderr.contains("keys hydrant cannot place")
            && run.stderr.contains(&format!(
                "`{}`, line {line}: `wheave` is not a key",
                from.display()
            )),
        "{}",
        run.stderr
    );
}

#[test]
fn an_existing_environment_is_kept_unless_forced() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    let from = gcp_fixture();
    let before = ex.read("environments/dev/pinned.yaml");
    let args = [
        "import",
        "--env",
        "dev",
        "--from",
        from.to_str().unwrap(),
        "--secrets-out",
        out.path().to_str().unwrap(),
    ];
    let run = ex.run(&args);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("`environments/dev/pinned.yaml` exists")
            && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    assert_eq!(ex.read("environments/dev/pinned.yaml"), before);
    let mut forced = args.to_vec();
    forced.push("--force");
    ex.run(&forced).ok();
    assert!(
        ex.read("environments/dev/pinned.yaml")
            .contains("licenseSecret")
    );
}
