//! Issue 17, item 2: a channel publishes a JSON Schema for its values
//! (`schema:` beside `values:` in its spec); hydrant checks the merged values
//! against it before rendering, and names the layer, file and line of every
//! offending value.

mod common;

use common::Example;

#[test]
fn the_bundled_environments_pass_the_bundled_schema() {
    let ex = Example::new();
    let run = ex.run(&["validate", "--all"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(ex.read("channels/stable.yaml").contains("\nschema:\n"));
}

#[test]
fn a_schema_violation_names_the_file_and_line_of_the_value_and_every_violation_is_listed() {
    let ex = Example::new();
    ex.write(
        "environments/staging/pinned.yaml",
        "# staging overrides\napp:\n  replicas: \"lots-of-replicas\"\nglobal:\n  mysql:\n    port: 99999\n",
    );
    for cmd in ["validate", "render"] {
        let run = ex.run(&[cmd, "--env", "staging"]);
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(
                "`environments/staging/pinned.yaml`, line 3 (custom resource layer): `app.replicas` does not match the channel's values schema"
            ) && run.stderr.contains("integer"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("`environments/staging/pinned.yaml`, line 6 (custom resource layer): `global.mysql.port`"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("lots-of-replicas"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[test]
fn a_channel_without_a_schema_checks_nothing() {
    let ex = Example::new();
    let spec = ex.read("channels/stable.yaml");
    // The schema is the spec's last key.
    let start = spec.find("\nschema:\n").unwrap();
    ex.write("channels/stable.yaml", &spec[..start + 1]);
    ex.write(
        "environments/staging/pinned.yaml",
        "app:\n  image:\n    tag: \"\"\n",
    );
    ex.run(&["validate", "--env", "staging"]).ok();
}

#[test]
fn a_schema_that_refers_to_another_document_is_refused_without_fetching_it() {
    let ex = Example::new();
    let spec = ex.read("channels/stable.yaml").replacen(
        "\nschema:\n",
        "\nschema:\n  allOf: [{$ref: \"http://127.0.0.1:9/values.schema.json\"}]\n",
        1,
    );
    ex.write("channels/stable.yaml", &spec);
    let run = ex.run(&["validate", "--env", "staging"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("channels/stable.yaml") && run.stderr.contains("`schema`"),
        "{}",
        run.stderr
    );
}
