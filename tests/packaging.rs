//! The packaging that runs hydrant: the Dockerfile, the kustomize bases in
//! `deploy/` and `deploy/cronjob/`, and the GitHub Actions example.

mod common;

use std::path::Path;
use std::process::Command;

use common::{parse_stream, project_root, tool};
use serde_json::Value;

fn read(rel: &str) -> String {
    std::fs::read_to_string(project_root().join(rel))
        .unwrap_or_else(|e| panic!("cannot read `{rel}`: {e}"))
}

/// The one document of a YAML file, read with hydrant's own reader.
fn document(rel: &str) -> Value {
    let mut docs = parse_stream(&read(rel));
    assert_eq!(docs.len(), 1, "`{rel}` holds one document");
    docs.remove(0)
}

/// `kubectl kustomize DIR`, as a YAML stream.
fn kustomize(dir: &Path) -> String {
    let o = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn strict_schema_check(file: &Path) {
    let o = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "-k", "1.33.0"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "strict schema check of {} failed:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The keys of the example Secret: the files hydrant may be pointed at.
fn secret_keys() -> Vec<String> {
    let secret = document("deploy/secret.example.yaml");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["name"], "hydrant-secrets");
    let data = secret["stringData"].as_object().unwrap();
    for (key, value) in data {
        assert!(
            value.as_str().unwrap().starts_with("PLACEHOLDER"),
            "the example's `{key}` is marked as a placeholder"
        );
    }
    data.keys().cloned().collect()
}

/// Checks what the daemon's and the CronJob's pods have in common: non-root, a
/// read-only root filesystem with a writable work directory, no API token,
/// settings from the ConfigMap and credentials only as files of the Secret.
fn check_pod(what: &str, pod: &Value, args: &[&str]) {
    assert_eq!(pod["serviceAccountName"], "hydrant", "{what}");
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    assert_eq!(pod["enableServiceLinks"], false, "{what}");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_ne!(pod["securityContext"]["runAsUser"], 0, "{what}");
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{what}");
    let c = &containers[0];
    assert_eq!(c["args"], serde_json::json!(args), "{what}");
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"], true,
        "{what}"
    );
    assert_eq!(
        c["securityContext"]["allowPrivilegeEscalation"], false,
        "{what}"
    );

    let env: Vec<(&str, &str)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    let var = |name: &str| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{what} sets `{name}`"))
    };
    assert_eq!(var("HYDRANT_CONFIG"), "/etc/hydrant/hydrant.yaml", "{what}");
    assert_eq!(var("HYDRANT_LOG_FORMAT"), "json", "{what}");
    assert_eq!(var("HYDRANT_WORK_DIR"), "/var/lib/hydrant", "{what}");
    assert!(!var("HYDRANT_REPO").is_empty(), "{what}");

    let keys = secret_keys();
    for (name, value) in &env {
        let secret_like = ["TOKEN", "LICENSE", "SECRET", "KEY"]
            .iter()
            .any(|w| name.contains(w));
        if !secret_like {
            continue;
        }
        assert!(
            name.ends_with("_FILE"),
            "{what}: `{name}` is a credential given as a value, not a file"
        );
        let key = value
            .strip_prefix("/etc/hydrant/secrets/")
            .unwrap_or_else(|| panic!("{what}: `{name}` points outside the Secret: `{value}`"));
        assert!(
            keys.iter().any(|k| k == key),
            "{what}: `{name}` names `{key}`, which the example Secret does not hold"
        );
    }

    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{what}: no volume `{name}`"))
    };
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["name"].as_str().unwrap(),
            )
        })
        .collect();
    let mounted = |path: &str| {
        let (_, name) = mounts
            .iter()
            .find(|(p, _)| *p == path)
            .unwrap_or_else(|| panic!("{what}: nothing is mounted at `{path}`"));
        volume(name)
    };
    let work = mounted("/var/lib/hydrant");
    assert!(
        work.get("emptyDir").is_some() || work.get("persistentVolumeClaim").is_some(),
        "{what}: the work directory is writable"
    );
    assert!(mounted("/tmp").get("emptyDir").is_some(), "{what}");
    assert_eq!(
        mounted("/etc/hydrant/hydrant.yaml")["configMap"]["name"],
        "hydrant-config",
        "{what}"
    );
    assert_eq!(
        mounted("/etc/hydrant/secrets")["secret"]["secretName"],
        "hydrant-secrets",
        "{what}"
    );
}

#[test]
fn the_daemon_runs_once_per_repository_as_a_non_root_user_with_probes() {
    let d = document("deploy/deployment.yaml");
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    check_pod("the Deployment", pod, &["run", "--listen", "0.0.0.0:8080"]);
    let c = &pod["containers"][0];
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    for var in ["HYDRANT_FORGE", "HYDRANT_INTERVAL"] {
        assert!(
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == var),
            "the Deployment sets `{var}`"
        );
    }
    // The shutdown timeout is 2m: the pod must be given longer to stop.
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 120);

    let s = document("deploy/service.yaml");
    assert_eq!(s["spec"]["ports"][0]["port"], 8080);
    assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        s["spec"]["selector"],
        d["spec"]["template"]["metadata"]["labels"]
    );

    let sa = document("deploy/common/serviceaccount.yaml");
    assert_eq!(sa["automountServiceAccountToken"], false);
}

#[test]
fn the_cronjob_reconciles_once_every_15_minutes_and_never_overlaps() {
    let j = document("deploy/cronjob/cronjob.yaml");
    assert_eq!(j["kind"], "CronJob");
    assert_eq!(j["spec"]["schedule"], "*/15 * * * *");
    assert_eq!(j["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &j["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    check_pod(
        "the CronJob",
        pod,
        &["reconcile", "--once", "--output", "json"],
    );
    let c = &pod["containers"][0];
    assert!(c.get("livenessProbe").is_none() && c.get("readinessProbe").is_none());
}

#[test]
fn the_kustomizations_build_and_pass_a_strict_schema_check() {
    if !tool("kubectl") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    for (dir, expected) in [
        (
            "deploy",
            ["ConfigMap", "Deployment", "Service", "ServiceAccount"],
        ),
        (
            "deploy/cronjob",
            [
                "ConfigMap",
                "CronJob",
                "PersistentVolumeClaim",
                "ServiceAccount",
            ],
        ),
    ] {
        let stream = kustomize(&project_root().join(dir));
        let mut kinds: Vec<String> = parse_stream(&stream)
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        assert_eq!(kinds, expected, "the objects of `{dir}`");
        let file = out.path().join(format!("{}.yaml", dir.replace('/', "-")));
        std::fs::write(&file, &stream).unwrap();
        if tool("kubernetes-validate") {
            strict_schema_check(&file);
        }
    }
    if tool("kubernetes-validate") {
        strict_schema_check(&project_root().join("deploy/secret.example.yaml"));
    }
}

#[test]
fn the_secret_example_is_not_applied_by_any_kustomization() {
    for dir in ["deploy", "deploy/common", "deploy/cronjob"] {
        let k = document(&format!("{dir}/kustomization.yaml"));
        for resource in k["resources"].as_array().unwrap() {
            let r = resource.as_str().unwrap();
            assert!(
                !r.contains("secret"),
                "`{dir}/kustomization.yaml` applies `{r}`"
            );
        }
        for key in ["secretGenerator", "generators", "components"] {
            assert!(
                k.get(key).is_none(),
                "`{dir}/kustomization.yaml` has `{key}`"
            );
        }
    }
    assert!(!secret_keys().is_empty());
}

#[test]
fn the_image_runs_hydrant_as_a_non_root_user() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let runtime_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    assert!(
        lines[0].starts_with("FROM rust:1-bookworm"),
        "the build stage: {}",
        lines[0]
    );
    assert!(runtime_from > 0, "a multi-stage build");
    let runtime = &lines[runtime_from..];
    let instruction = |name: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .collect()
    };
    let users = instruction("USER ");
    let user = users.last().expect("the runtime stage sets USER");
    let name = user.split(':').next().unwrap();
    assert!(
        name != "root" && name.parse::<u32>().map(|uid| uid != 0).unwrap_or(true),
        "the runtime stage runs as `{user}`"
    );
    assert_eq!(instruction("ENTRYPOINT "), [r#"["hydrant"]"#]);
    assert_eq!(
        instruction("CMD "),
        [r#"["run", "--listen", "0.0.0.0:8080"]"#]
    );
    assert_eq!(instruction("EXPOSE "), ["8080"]);
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("COPY ") && l.ends_with(" /usr/local/bin/hydrant")),
        "the binary is on the PATH"
    );
    assert!(
        runtime
            .iter()
            .any(|l| l.contains("HYDRANT_WORK_DIR=/var/lib/hydrant")),
        "the work directory is set"
    );

    // The build context holds what `cargo build` reads.
    let ignore = read(".dockerignore");
    let ignore: Vec<&str> = ignore.lines().map(str::trim).collect();
    if ignore.contains(&"*") {
        for needed in ["!Cargo.toml", "!Cargo.lock", "!src/"] {
            assert!(ignore.contains(&needed), ".dockerignore lacks `{needed}`");
        }
    }
}

#[test]
fn the_github_actions_example_reconciles_on_a_schedule_one_run_at_a_time() {
    let rel = "examples/github-actions/.github/workflows/hydrant.yml";
    let w = document(rel);
    assert_eq!(w["on"]["schedule"][0]["cron"], "*/30 * * * *");
    assert!(w["on"].get("workflow_dispatch").is_some());
    assert_eq!(w["permissions"]["contents"], "write");
    assert_eq!(w["permissions"]["pull-requests"], "write");
    assert_eq!(w["concurrency"]["cancel-in-progress"], false);
    assert!(w["concurrency"]["group"].is_string());
    let steps = w["jobs"]["reconcile"]["steps"].as_array().unwrap();
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("a cache step");
    assert_eq!(cache["with"]["path"], "~/.cache/hydrant");
    let reconcile = steps
        .iter()
        .find(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("hydrant reconcile --once --output json"))
        })
        .expect("a reconcile step");
    assert_eq!(
        reconcile["env"]["HYDRANT_GITHUB_TOKEN"],
        "${{ secrets.GITHUB_TOKEN }}"
    );
    // Not a workflow of this repository: nothing here runs it.
    assert!(
        !project_root()
            .join(".github/workflows/hydrant.yml")
            .exists()
    );
}
