//! Bad input gets a clear error, exit code 1, and loses nothing: the failing
//! environment writes nothing to `--out`, the others still render.

mod common;

use common::Example;

/// Renders every environment to a fresh directory and checks that `env`
/// failed with an error mentioning every `needle`, while the others rendered.
fn assert_fails(ex: &Example, env: &str, needles: &[&str]) -> String {
    let out = tempfile::tempdir().unwrap();
    let run = ex.run(&["render", "--all", "--out", out.path().to_str().unwrap()]);
    assert_eq!(run.code, 1, "expected exit 1:\n{}", run.stderr);
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains(&format!("error: environment `{env}`")),
        "{}",
        run.stderr
    );
    assert!(
        !out.path().join(env).exists(),
        "nothing is written for the failing environment"
    );
    for other in ["dev", "staging", "prod"].iter().filter(|e| **e != env) {
        assert!(
            out.path().join(other).join("kustomization.yaml").exists(),
            "{other} still renders:\n{}",
            run.stderr
        );
    }
    run.stderr
}

#[test]
fn invalid_yaml_in_a_layer_names_file_line_and_column() {
    let ex = Example::new();
    ex.write(
        "environments/staging/values.yaml",
        "global:\n  host: ok\n  bad: [unclosed\n",
    );
    let err = assert_fails(
        &ex,
        "staging",
        &["environments/staging/values.yaml", "line 4"],
    );
    assert!(err.contains("column"), "{err}");
}

#[test]
fn invalid_yaml_in_environment_yaml_names_the_file() {
    let ex = Example::new();
    ex.write(
        "environments/prod/environment.yaml",
        "channel: stable\nnamespace: [\n",
    );
    assert_fails(&ex, "prod", &["environments/prod/environment.yaml", "line"]);
}

#[test]
fn a_typo_in_environment_yaml_names_the_key() {
    let ex = Example::new();
    ex.append("environments/dev/environment.yaml", "chanel: stable\n");
    assert_fails(&ex, "dev", &["environments/dev/environment.yaml", "chanel"]);
}

#[test]
fn an_unknown_environment_lists_the_known_ones() {
    let ex = Example::new();
    let run = ex.run(&["render", "--env", "qa"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("unknown environment `qa`")
            && run.stderr.contains("dev, prod, staging"),
        "{}",
        run.stderr
    );
    let run = ex.run(&["render", "--env", "../etc"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("not a valid environment name"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_template_syntax_error_names_template_and_line() {
    let ex = Example::new();
    ex.write(
        "templates/broken.yaml.hbs",
        "a: 1\n{{#if values.x}}\nb: 2\n",
    );
    let run = ex.run(&["render", "--all", "--out", "out"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("broken.yaml.hbs") && run.stderr.contains("line"),
        "{}",
        run.stderr
    );
    assert!(!ex.path().join("out").exists(), "nothing written");
}

#[test]
fn a_missing_required_value_names_the_key_and_template() {
    let ex = Example::new();
    ex.write("environments/dev/pinned.yaml", "global:\n  host: null\n");
    let err = assert_fails(&ex, "dev", &["global.host", "template `"]);
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn unparseable_output_names_template_and_document() {
    let ex = Example::new();
    ex.write("templates/zz-extra.yaml.hbs", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: [b\n");
    let run = ex.run(&["render", "--env", "dev"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("zz-extra.yaml.hbs")
            && run.stderr.contains("document 2")
            && run.stderr.contains("not valid YAML"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_and_duplicate_names_are_reported_together() {
    let ex = Example::new();
    ex.write(
        "templates/zz-extra.yaml.hbs",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: wandb-app}\nspec: {ports: [{port: 80}]}\n",
    );
    let run = ex.run(&["validate", "--env", "dev"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`Not_Valid` is not a valid name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("duplicate object: `Service/wandb-app`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 problems"), "{}", run.stderr);
}

#[test]
fn a_field_typo_or_wrong_type_names_file_and_path() {
    let ex = Example::new();
    ex.write(
        "templates/zz-extra.yaml.hbs",
        "apiVersion: v1\nkind: Service\nmetadata: {name: extra}\nspec:\n  ports:\n    - port: 80\n      protocl: TCP\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: extra}\nspec:\n  replicas: \"2\"\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
    );
    let run = ex.run(&["validate", "--env", "dev"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("zz-extra.yaml.hbs")
            && run.stderr.contains("spec.ports.0.protocl")
            && run.stderr.contains("unknown field `protocl`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("spec.replicas") && run.stderr.contains("invalid type"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_yaml_in_a_channel_spec_names_file_and_line() {
    let ex = Example::new();
    ex.write(
        "channels/canary.yaml",
        "metadata:\n  version: 1.0.0\nvalues:\n  a: {unclosed\n",
    );
    assert_fails(&ex, "dev", &["channels/canary.yaml", "line 5"]);
}

#[test]
fn a_channel_spec_without_values_names_the_file() {
    let ex = Example::new();
    ex.write("channels/canary.yaml", "metadata:\n  version: 1.0.0\n");
    assert_fails(&ex, "dev", &["channels/canary.yaml", "no `values`"]);
}

#[test]
fn a_plaintext_license_is_refused_with_the_reference_form_as_hint() {
    let ex = Example::new();
    ex.append("environments/staging/values.yaml", "\n");
    ex.write("templates/zz-license.yaml.hbs", "{{#if values.global.license}}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: lic}\ndata:\n  license: {{values.global.license}}\n{{/if}}\n");
    ex.write(
        "environments/staging/pinned.yaml",
        "global:\n  license: eyJhbGciOiJSUzI1NiJ9.c2VjcmV0\n",
    );
    assert!(
        ex.read("environments/staging/values.yaml")
            .contains("host:"),
        "staging's host comes from values.yaml"
    );
    let err = assert_fails(
        &ex,
        "staging",
        &["global.license", "licenseSecret", "allowPlaintextSecrets"],
    );
    assert!(
        !err.contains("eyJhbGciOiJSUzI1NiJ9"),
        "the license leaked into the error: {err}"
    );
}

#[test]
fn a_secret_resource_built_from_values_is_refused_unless_allowed() {
    let ex = Example::new();
    ex.write("templates/zz-secret.yaml.hbs", "{{#if values.extraSecret}}\napiVersion: v1\nkind: Secret\nmetadata: {name: extra}\nstringData:\n  value: {{values.extraSecret.value}}\n{{/if}}\n");
    ex.append(
        "environments/prod/pinned.yaml",
        "\nextraSecret:\n  value: not-so-secret\n",
    );
    assert_fails(&ex, "prod", &["Secret's data comes from values"]);
    ex.append(
        "environments/prod/environment.yaml",
        "allowPlaintextSecrets: true\n",
    );
    ex.run(&["render", "--env", "prod"]).ok();
}

#[test]
fn validate_lists_every_problem_of_every_environment() {
    let ex = Example::new();
    ex.write("environments/dev/pinned.yaml", "global:\n  host: null\n");
    ex.write("environments/prod/values.yaml", "a: [\n");
    let run = ex.run(&["validate", "--all"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("environment `dev`") && run.stderr.contains("environment `prod`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ok: staging"), "{}", run.stderr);
    assert!(
        run.stderr.contains("2 of 3 environments have problems"),
        "{}",
        run.stderr
    );
    let ex = Example::new();
    let run = ex.run(&["validate", "--all"]).ok();
    assert_eq!(run.stderr.matches("ok: ").count(), 3, "{}", run.stderr);
}

#[test]
fn explain_shows_the_winning_layer_and_what_it_overrode() {
    let ex = Example::new();
    let run = ex.run(&["explain", "--env", "prod", "app.replicas"]).ok();
    assert!(
        run.stdout.starts_with("app.replicas = 4\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("set by: custom resource (environments/prod/pinned.yaml:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("user input (environments/prod/values.yaml:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("release channel (channels/stable.yaml:"),
        "{}",
        run.stdout
    );
    let run = ex
        .run(&[
            "explain",
            "--env",
            "prod",
            "weave.resources.limits",
            "--output",
            "json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["value"], serde_json::Value::Null);
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap()["value"],
        serde_json::Value::Null,
        "the deletion is shown: {v}"
    );
    assert_eq!(layers.last().unwrap()["origin"]["layer"], "custom");
    let run = ex
        .run(&[
            "explain",
            "--env",
            "dev",
            "ingress.annotations[\"nginx.ingress.kubernetes.io/proxy-body-size\"]",
        ])
        .ok();
    assert!(run.stdout.contains("= \"64m\""), "{}", run.stdout);
}

#[test]
fn the_channel_flag_overrides_the_configured_source() {
    let ex = Example::new();
    let spec = ex.read("channels/stable.yaml").replace(
        "version: \"0.63.0\"\n  channel",
        "version: \"0.70.0\"\n  channel",
    );
    assert!(spec.contains("0.70.0"));
    let alt = tempfile::tempdir().unwrap();
    std::fs::write(alt.path().join("stable.yaml"), &spec).unwrap();
    std::fs::write(
        alt.path().join("canary.yaml"),
        ex.read("channels/canary.yaml"),
    )
    .unwrap();
    let run = ex
        .run(&[
            "render",
            "--env",
            "staging",
            "--channel",
            alt.path().to_str().unwrap(),
        ])
        .ok();
    assert!(
        run.stdout.contains("app.kubernetes.io/version: \"0.70.0\""),
        "{}",
        &run.stdout[..400.min(run.stdout.len())]
    );
    let run = common::hydrant()
        .args(["render", "--env", "staging"])
        .env("HYDRANT_CHANNEL", alt.path())
        .current_dir(ex.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("0.70.0"),
        "HYDRANT_CHANNEL is the flag's twin"
    );
}

#[test]
fn a_symlink_out_of_the_repository_is_refused() {
    let ex = Example::new();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("values.yaml"), "global: {}\n").unwrap();
    std::fs::remove_file(ex.path().join("environments/dev/values.yaml")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("values.yaml"),
        ex.path().join("environments/dev/values.yaml"),
    )
    .unwrap();
    assert_fails(&ex, "dev", &["outside the config repository"]);
}

#[test]
fn diff_shows_how_a_fresh_render_differs_from_rendered() {
    let ex = Example::new();
    ex.run(&["render", "--all", "--out", "rendered"]).ok();
    let run = ex.run(&["diff", "--env", "prod", "--exit-code"]).ok();
    assert!(
        run.stdout.is_empty() && run.stderr.contains("rendered/prod/ is up to date"),
        "{}",
        run.stderr
    );
    ex.write(
        "environments/prod/pinned.yaml",
        &ex.read("environments/prod/pinned.yaml")
            .replace("replicas: 4", "replicas: 6"),
    );
    let run = ex.run(&["diff", "--env", "prod", "--exit-code"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout
            .contains("--- a/rendered/prod/deployment-wandb-app.yaml")
            && run.stdout.contains("-  replicas: 4\n+  replicas: 6"),
        "{}",
        run.stdout
    );
    assert_eq!(
        ex.run(&["diff", "--env", "prod"]).code,
        0,
        "without --exit-code a difference is not an error"
    );
}

#[test]
fn a_billion_laughs_or_a_bottomless_nesting_in_a_layer_is_refused() {
    let ex = Example::new();
    let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        laughs.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    ex.append(
        "environments/dev/values.yaml",
        &format!("\nbomb:\n  {}", laughs.replace('\n', "\n  ")),
    );
    assert_fails(&ex, "dev", &["environments/dev/values.yaml", "nodes"]);

    let ex = Example::new();
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    ex.append(
        "environments/staging/values.yaml",
        &format!("\ndeep: {deep}\n"),
    );
    assert_fails(&ex, "staging", &["environments/staging/values.yaml"]);
}

#[test]
fn names_that_try_to_leave_their_directory_are_refused_and_nothing_is_written_outside() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    for bad in ["../escape", "/etc", "dev/../../x", ".."] {
        let run = ex.run(&[
            "render",
            "--env",
            bad,
            "--out",
            out.path().to_str().unwrap(),
        ]);
        assert_ne!(run.code, 0, "{bad:?} was accepted");
        assert!(
            run.stderr.contains("environment"),
            "{bad:?}: {}",
            run.stderr
        );
    }
    // A resource name built from a value that tries a path.
    ex.write(
        "environments/dev/pinned.yaml",
        "app:\n  serviceAccount:\n    create: true\n    name: ../../../tmp/x\n",
    );
    assert_fails(&ex, "dev", &["../../../tmp/x", "DNS"]);
    let mut written: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert!(
        written.is_empty(),
        "nothing outside rendered/<env>/: {written:?}"
    );
}

// Issue 17, item 5: error messages that finish the job.

#[test]
fn a_yaml_error_shows_the_offending_line_with_a_caret() {
    let ex = Example::new();
    ex.write(
        "environments/staging/values.yaml",
        "global:\n  host: ok\n  extraEnv: {A: 1\n  other: x\n",
    );
    let err = assert_fails(
        &ex,
        "staging",
        &["environments/staging/values.yaml", "line 4, column 8"],
    );
    assert!(
        err.contains("\n     4 |   other: x\n       |        ^\n"),
        "{err}"
    );

    let ex = Example::new();
    ex.write(
        "environments/prod/environment.yaml",
        "channel: stable\nnamespace: [wandb\n",
    );
    let err = assert_fails(
        &ex,
        "prod",
        &["environments/prod/environment.yaml", "invalid YAML"],
    );
    assert!(
        err.contains("\n     2 | namespace: [wandb\n       |                  ^\n"),
        "{err}"
    );
}

#[test]
fn a_yaml_error_on_a_credential_line_does_not_show_the_value() {
    let ex = Example::new();
    ex.write(
        "environments/staging/values.yaml",
        "global:\n  mysql:\n    password: \"hunter2-secret\n",
    );
    let err = assert_fails(&ex, "staging", &["environments/staging/values.yaml"]);
    assert!(err.contains("password: …"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_misspelt_field_in_environment_yaml_suggests_the_closest_one() {
    let ex = Example::new();
    let config = ex.read("environments/dev/environment.yaml");
    ex.write(
        "environments/dev/environment.yaml",
        &config.replace("namespace:", "namespce:"),
    );
    assert_fails(
        &ex,
        "dev",
        &[
            "environments/dev/environment.yaml",
            "unknown field `namespce`",
            "did you mean `namespace`?",
        ],
    );
}

#[test]
fn a_channel_source_that_cannot_be_read_names_hydrant_yaml_its_line_and_the_setting() {
    let ex = Example::new();
    ex.write(
        "hydrant.yaml",
        "# where the specs are\nchannelSource: specs\n",
    );
    let run = ex.run(&["validate", "--all"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("`hydrant.yaml`, line 2: `channelSource: specs`: cannot read `specs`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: set `channelSource` in `hydrant.yaml`"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_os_error_is_not_repeated_as_its_own_cause() {
    let ex = Example::new();
    let run = ex.run(&[
        "render",
        "--env",
        "prod",
        "--channel",
        "/nonexistent/stable.yaml",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        run.stderr
    );
}
