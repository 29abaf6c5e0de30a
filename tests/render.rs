//! `hydrant render`, run as a binary against a copy of the bundled example.

mod common;

use std::process::Command;

use common::{Example, parse_stream, tool, tree};
use serde_json::{Value, json};

#[test]
fn the_bundled_example_renders_all_three_environments() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    let run = ex
        .run(&["render", "--all", "--out", out.path().to_str().unwrap()])
        .ok();
    for env in ["dev", "staging", "prod"] {
        assert!(
            run.stderr.contains(&format!("rendered {env}:")),
            "{}",
            run.stderr
        );
        let dir = out.path().join(env);
        let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
        let listed: Vec<&str> = kustomization
            .lines()
            .filter_map(|l| l.strip_prefix("  - "))
            .collect();
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "kustomization.yaml" && n != "hydrant.metadata")
            .collect();
        on_disk.sort();
        assert_eq!(
            listed, on_disk,
            "{env}: kustomization lists exactly the resource files"
        );
        assert!(
            listed.contains(&"deployment-wandb-app.yaml") && listed.contains(&"ingress-wandb.yaml"),
            "{listed:?}"
        );
        for file in &on_disk {
            let docs = parse_stream(&std::fs::read_to_string(dir.join(file)).unwrap());
            assert_eq!(docs.len(), 1, "{env}/{file} holds one resource");
            let kind = docs[0]["kind"].as_str().unwrap().to_lowercase();
            assert!(
                file.starts_with(&format!("{kind}-")),
                "{file} is named after its kind"
            );
        }
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("hydrant.metadata")).unwrap())
                .unwrap();
        assert_eq!(meta["environment"], env);
        assert_eq!(meta["resources"].as_u64().unwrap() as usize, on_disk.len());
    }
    let prod = parse_stream(
        &std::fs::read_to_string(out.path().join("prod/deployment-wandb-app.yaml")).unwrap(),
    );
    assert_eq!(
        prod[0]["spec"]["replicas"], 4,
        "pinned.yaml (layer 3) wins over values.yaml"
    );
    let weave = parse_stream(
        &std::fs::read_to_string(out.path().join("prod/deployment-wandb-weave.yaml")).unwrap(),
    );
    let resources = &weave[0]["spec"]["template"]["spec"]["containers"][0]["resources"];
    assert!(
        resources.get("limits").is_none() && resources.get("requests").is_some(),
        "null in pinned.yaml deletes the channel's limits: {resources}"
    );
}

#[test]
fn rendering_is_byte_identical_across_runs_and_thread_counts() {
    let ex = Example::new();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ex.run(&["render", "--all", "--out", a.path().to_str().unwrap()])
        .ok();
    let status = common::hydrant()
        .args(["render", "--all", "--out", b.path().to_str().unwrap()])
        .env("RAYON_NUM_THREADS", "1")
        .current_dir(ex.path())
        .status()
        .unwrap();
    assert!(status.success());
    let (ta, tb) = (tree(a.path()), tree(b.path()));
    assert!(ta.len() > 30, "{} files", ta.len());
    assert_eq!(ta, tb);
}

const RERENDER: &str = "re-render with: mkdir /tmp/c && cp channels/stable/releases/0.62.1.yaml /tmp/c/stable.yaml && cp channels/canary.yaml /tmp/c/ && cargo run -- render --all --channel /tmp/c --out rendered";

#[test]
fn the_committed_rendered_directory_matches_a_fresh_render() {
    // `rendered/` of this repository holds what its main branch last merged:
    // the example at stable 0.62.1 (the channel has since published 0.63.0, so
    // the README's first command opens pull requests). A change to templates,
    // values or hydrant that alters it must re-render it.
    let root = common::project_root();
    let channels = tempfile::tempdir().unwrap();
    std::fs::copy(
        root.join("channels/stable/releases/0.62.1.yaml"),
        channels.path().join("stable.yaml"),
    )
    .unwrap();
    std::fs::copy(
        root.join("channels/canary.yaml"),
        channels.path().join("canary.yaml"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (c, o) = (
        channels.path().to_str().unwrap(),
        out.path().to_str().unwrap(),
    );
    common::run_in(&root, &["render", "--all", "--channel", c, "--out", o]).ok();
    let fresh = tree(out.path());
    let committed = tree(&common::project_root().join("rendered"));
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&committed), names(&fresh), "{RERENDER}");
    for ((name, a), (_, b)) in committed.iter().zip(fresh.iter()) {
        assert!(a == b, "rendered/{name} is stale; {RERENDER}");
    }
}

#[test]
fn kustomize_accepts_the_output_and_every_manifest_passes_a_strict_schema_check() {
    let ex = Example::new();
    let out = tempfile::tempdir().unwrap();
    ex.run(&["render", "--all", "--out", out.path().to_str().unwrap()])
        .ok();
    if tool("kubectl") {
        for env in ["dev", "staging", "prod"] {
            let o = Command::new("kubectl")
                .arg("kustomize")
                .arg(out.path().join(env))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "kubectl kustomize {env}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let docs = parse_stream(&String::from_utf8(o.stdout).unwrap());
            let files = std::fs::read_dir(out.path().join(env)).unwrap().count() - 2;
            assert_eq!(docs.len(), files, "kustomize emits every resource of {env}");
        }
    }
    if tool("kubernetes-validate") {
        let mut files: Vec<String> = Vec::new();
        for (name, _) in tree(out.path()) {
            if name.ends_with(".yaml") && !name.ends_with("kustomization.yaml") {
                files.push(out.path().join(name).to_string_lossy().to_string());
            }
        }
        let o = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", "1.33.0"])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "strict schema check failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // The checker must be able to fail: a typo'd field is rejected.
        let bad = out.path().join("bad.yaml");
        std::fs::write(&bad, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n    - port: 80\n      protocl: TCP\n").unwrap();
        let o = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "-k", "1.33.0"])
            .arg(&bad)
            .output()
            .unwrap();
        assert!(!o.status.success(), "the strict check accepted a typo");
    }
}

#[test]
fn render_without_out_prints_one_environment_as_a_yaml_stream() {
    let ex = Example::new();
    let run = ex.run(&["render", "--env", "staging"]).ok();
    let docs = parse_stream(&run.stdout);
    assert!(docs.len() >= 10, "{} documents", docs.len());
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"] == "wandb-staging")
    );
    let run = ex.run(&["render", "--all"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--out"), "{}", run.stderr);
}

/// Strings that would change a manifest's structure if written raw.
const INJECTIONS: &[&str] = &[
    "line1\nline2",
    "key: value",
    "value # comment",
    "{a: b}",
    "[a, b]",
    "*alias",
    "&anchor",
    "!!map",
    "| literal",
    "> folded",
    "\"double\"",
    "'single'",
    "---",
    "x\n---\nkind: Secret\nmetadata: {name: evil}",
    "on",
    "yes",
    "no",
    "off",
    "true",
    "1.20",
    "0x1F",
    "~",
    "  spaced  ",
    "tab\there",
    "@at `tick` %pct",
    "ünïcødé ✓",
];

#[test]
fn a_value_never_changes_the_structure_of_a_manifest() {
    let ex = Example::new();
    let baseline = parse_stream(&ex.run(&["render", "--env", "dev"]).ok().stdout);
    let mut env = serde_json::Map::new();
    let mut annotations = serde_json::Map::new();
    for (i, s) in INJECTIONS.iter().enumerate() {
        env.insert(format!("INJECT_{i}"), json!(s));
        annotations.insert(format!("test.hydrant.dev/inject-{i}"), json!(s));
    }
    // JSON is YAML: the corpus goes into pinned.yaml (layer 3) as JSON.
    let overlay = json!({"global": {"extraEnv": env}, "ingress": {"annotations": annotations}});
    ex.write(
        "environments/dev/pinned.yaml",
        &serde_json::to_string_pretty(&overlay).unwrap(),
    );
    let run = ex.run(&["render", "--env", "dev"]).ok();
    let docs = parse_stream(&run.stdout);
    assert_eq!(docs.len(), baseline.len(), "no document added or lost");
    for (a, b) in docs.iter().zip(baseline.iter()) {
        assert_eq!(
            (&a["kind"], &a["metadata"]["name"]),
            (&b["kind"], &b["metadata"]["name"])
        );
    }
    let ingress = docs.iter().find(|d| d["kind"] == "Ingress").unwrap();
    for (i, s) in INJECTIONS.iter().enumerate() {
        assert_eq!(
            ingress["metadata"]["annotations"][format!("test.hydrant.dev/inject-{i}")],
            json!(s),
            "annotation {s:?}"
        );
    }
    let mut containers = 0;
    for d in docs.iter().filter(|d| d["kind"] == "Deployment") {
        for c in d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            containers += 1;
            let env = c["env"].as_array().unwrap();
            for (i, s) in INJECTIONS.iter().enumerate() {
                let name = format!("INJECT_{i}");
                let found: Vec<&Value> =
                    env.iter().filter(|e| e["name"] == name.as_str()).collect();
                assert_eq!(found.len(), 1, "{name} once in {}", d["metadata"]["name"]);
                assert_eq!(
                    found[0]["value"],
                    json!(s),
                    "env {s:?} in {}",
                    d["metadata"]["name"]
                );
            }
        }
    }
    assert!(
        containers >= 4,
        "extraEnv reaches every container ({containers})"
    );
}
