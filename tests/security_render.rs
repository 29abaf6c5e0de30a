//! Issue 13, the render engine, run as the binary on a copy of the bundled
//! example: a pull request to the config repository that adds a template or a
//! value cannot change a manifest's structure, leak hydrant's markers, write a
//! credential in plain text, or wedge the process.

mod common;

use common::{Example, parse_stream};
use serde_json::json;

const SECRET: &str = "hunter2-do-not-leak";

fn config_map(data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hostile\ndata:\n{data}")
}

/// Sets `values` in dev's pinned.yaml (layer 3), as JSON.
fn pin(ex: &Example, values: serde_json::Value) {
    ex.write(
        "environments/dev/pinned.yaml",
        &serde_json::to_string_pretty(&values).unwrap(),
    );
}

fn reserved(text: &str) -> bool {
    text.chars().any(|c| ('\u{E000}'..='\u{E00F}').contains(&c))
}

#[test]
fn raw_output_in_any_spelling_is_refused_by_the_binary() {
    let payload = "x\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: pwned\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: cluster-admin\nsubjects:\n- kind: ServiceAccount\n  name: default\n  namespace: default\n";
    for spelling in [
        "{{{values.x}}}",
        "{{& values.x}}",
        "{{ &values.x }}",
        "{{ {values.x} }}",
        "{{~&values.x}}",
        "{{~{values.x}~}}",
        "{{\t&values.x}}",
        "{{\n&values.x}}",
    ] {
        let ex = Example::new();
        pin(&ex, json!({"x": payload}));
        ex.write(
            "templates/hostile.yaml.hbs",
            &config_map(&format!(
                "  a: 1\n{{{{#if values.x}}}}\n  b: {spelling}\n{{{{/if}}}}\n"
            )),
        );
        let run = ex.run(&["render", "--env", "dev"]);
        assert_eq!(run.code, 1, "{spelling:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("hostile.yaml.hbs")
                && run.stderr.contains("line 8")
                && run.stderr.contains("raw output"),
            "{spelling:?}: {}",
            run.stderr
        );
        assert!(!run.stdout.contains("ClusterRoleBinding"), "{}", run.stdout);
    }
}

#[test]
fn helpers_over_include_and_to_yaml_write_no_reserved_character_into_files() {
    let ex = Example::new();
    pin(
        &ex,
        json!({"hostile": {"s": "a: b\n---\nkind: Secret", "m": {"k": "v: w"}}}),
    );
    ex.write("templates/_partials/hostilePart.hbs", "k: {{s}}");
    let mut data = String::new();
    for helper in ["quote", "b64enc", "upper", "lower", "sha256sum"] {
        for (name, input) in [
            ("value", "values.hostile.s"),
            ("include", "(include \"hostilePart\" values.hostile)"),
            ("toyaml", "(toYaml values.hostile.m)"),
            ("lookup", "(lookup values.hostile \"s\")"),
        ] {
            data.push_str(&format!("  {helper}-{name}: {{{{{helper} {input}}}}}\n"));
        }
    }
    ex.write("templates/hostile.yaml.hbs", &config_map(&data));
    let out = tempfile::tempdir().unwrap();
    let run = ex
        .run(&[
            "render",
            "--env",
            "dev",
            "--out",
            out.path().to_str().unwrap(),
        ])
        .ok();
    assert!(!reserved(&run.stdout) && !reserved(&run.stderr));
    let text = std::fs::read_to_string(out.path().join("dev/configmap-hostile.yaml")).unwrap();
    assert!(!reserved(&text), "{text}");
    let cm = &parse_stream(&text)[0];
    assert_eq!(cm["data"]["quote-include"], "k: a: b\n---\nkind: Secret");
    assert_eq!(cm["data"]["upper-include"], "K: A: B\n---\nKIND: SECRET");
    assert_eq!(cm["data"]["lower-toyaml"], "k: \"v: w\"");
    assert_eq!(cm["data"]["quote-lookup"], "a: b\n---\nkind: Secret");
    assert_eq!(cm["data"].as_object().unwrap().len(), 20);
    for file in std::fs::read_dir(out.path().join("dev")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(!reserved(&text), "{text}");
    }
}

/// Issue 13, item 7: the guard sees values read by `lookup`, Secrets inside a
/// `kind: List`, Secret keys taken from values, and passwords spliced into a
/// connection string from keys that do not look secret.
#[test]
fn the_secret_guard_has_no_bypass_through_lookup_lists_keys_or_connection_strings() {
    let cases = [
        (
            json!({"db": {"password": SECRET}}),
            config_map("  p: {{lookup values.db \"password\"}}\n"),
            // Since issue 17 a credential in a layer is refused before any
            // template reads it; the render guard stays behind it.
            "key `db.password` holds a plaintext credential",
        ),
        (
            json!({"db": {"user": "app", "p": SECRET}}),
            config_map("  url: postgres://{{values.db.user}}:{{values.db.p}}@db:5432/app\n"),
            "carries a credential",
        ),
        (
            json!({"db": {"user": "app", "p": SECRET}}),
            config_map("  conn: Server=db;User Id={{values.db.user}};Password={{values.db.p}}\n"),
            "carries a credential",
        ),
        (
            json!({"db": {"dbPwd": SECRET}}),
            config_map("  p: {{values.db.dbPwd}}\n"),
            "key `db.dbPwd` holds a plaintext credential",
        ),
        (
            json!({"keys": {"injected": "x"}}),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hostile\nstringData:\n{{#each values.keys}}\n  {{@key}}: fixed\n{{/each}}\n".to_string(),
            "Secret's data comes from values",
        ),
        (
            json!({"v": "x"}),
            "apiVersion: v1\nkind: List\nmetadata:\n  name: hostile\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: hostile\n  stringData:\n    a: {{values.v}}\n".to_string(),
            "Secret's data comes from values",
        ),
    ];
    for (values, template, expected) in cases {
        let ex = Example::new();
        pin(&ex, values);
        ex.write("templates/hostile.yaml.hbs", &template);
        let run = ex.run(&["validate", "--env", "dev"]);
        assert_eq!(run.code, 1, "{template}\n{}", run.stderr);
        assert!(
            run.stderr.contains(expected)
                && (run.stderr.contains("hostile") || run.stderr.contains("pinned.yaml`, line")),
            "{template}\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains(SECRET) && !run.stdout.contains(SECRET),
            "the credential is shown: {}",
            run.stderr
        );
    }
}

/// Issue 13, items 9 and 11: a template whose render blows up, or whose
/// nesting would overflow the stack, fails with a clear error naming it; the
/// process exits normally with 1 instead of aborting or running for hours.
#[test]
fn a_template_that_would_blow_up_fails_its_environment_with_a_clear_error() {
    let ex = Example::new();
    // Each level renders the next twice: 2^25 partials, far past the budget
    // of calls, within the 32 levels partials may nest.
    for i in 0..25 {
        ex.write(
            &format!("templates/_partials/boom{i}.hbs"),
            &format!("{{{{> boom{n}}}}}{{{{> boom{n}}}}}", n = i + 1),
        );
    }
    ex.write("templates/_partials/boom25.hbs", "x");
    ex.write(
        "templates/hostile.yaml.hbs",
        &config_map("  a: {{> boom0}}\n"),
    );
    let run = ex.run(&["validate", "--env", "dev"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("hostile.yaml.hbs")
            && run
                .stderr
                .contains("include partials more than 100000 times"),
        "{}",
        run.stderr
    );

    let ex = Example::new();
    let deep = format!(
        "{}a: 1\n{}",
        "{{#if values}}".repeat(5000),
        "{{/if}}".repeat(5000)
    );
    ex.write("templates/hostile.yaml.hbs", &deep);
    let run = ex.run(&["validate", "--env", "dev"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("hostile.yaml.hbs") && run.stderr.contains("nest more than 64"),
        "{}",
        run.stderr
    );
}
