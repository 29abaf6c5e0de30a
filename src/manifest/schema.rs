//! Checking built-in kinds against the Kubernetes API types.
//!
//! Each built-in kind is deserialised into its `k8s-openapi` type. A wrong type
//! (`replicas: "2"`) fails with the path to the field; an unknown field
//! (`protocl`) is caught as the deserialiser skips it. Kinds hydrant does not
//! know (custom resources) are not checked beyond their identity.

use k8s_openapi::api::{apps, autoscaling, batch, core, networking, policy, rbac, scheduling};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde_json::Value;

type Check = fn(&Value) -> Vec<(String, String)>;

/// apiVersion, kind, namespaced, check.
const KINDS: &[(&str, &str, bool, Check)] = &[
    ("v1", "ConfigMap", true, check::<core::v1::ConfigMap>),
    ("v1", "Secret", true, check::<core::v1::Secret>),
    ("v1", "Service", true, check::<core::v1::Service>),
    (
        "v1",
        "ServiceAccount",
        true,
        check::<core::v1::ServiceAccount>,
    ),
    (
        "v1",
        "PersistentVolumeClaim",
        true,
        check::<core::v1::PersistentVolumeClaim>,
    ),
    ("v1", "Pod", true, check::<core::v1::Pod>),
    ("v1", "LimitRange", true, check::<core::v1::LimitRange>),
    (
        "v1",
        "ResourceQuota",
        true,
        check::<core::v1::ResourceQuota>,
    ),
    ("v1", "Namespace", false, check::<core::v1::Namespace>),
    (
        "v1",
        "PersistentVolume",
        false,
        check::<core::v1::PersistentVolume>,
    ),
    ("apps/v1", "Deployment", true, check::<apps::v1::Deployment>),
    (
        "apps/v1",
        "StatefulSet",
        true,
        check::<apps::v1::StatefulSet>,
    ),
    ("apps/v1", "DaemonSet", true, check::<apps::v1::DaemonSet>),
    ("apps/v1", "ReplicaSet", true, check::<apps::v1::ReplicaSet>),
    ("batch/v1", "Job", true, check::<batch::v1::Job>),
    ("batch/v1", "CronJob", true, check::<batch::v1::CronJob>),
    (
        "networking.k8s.io/v1",
        "Ingress",
        true,
        check::<networking::v1::Ingress>,
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        true,
        check::<networking::v1::NetworkPolicy>,
    ),
    (
        "networking.k8s.io/v1",
        "IngressClass",
        false,
        check::<networking::v1::IngressClass>,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "Role",
        true,
        check::<rbac::v1::Role>,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        true,
        check::<rbac::v1::RoleBinding>,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        false,
        check::<rbac::v1::ClusterRole>,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        false,
        check::<rbac::v1::ClusterRoleBinding>,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        true,
        check::<policy::v1::PodDisruptionBudget>,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        true,
        check::<autoscaling::v2::HorizontalPodAutoscaler>,
    ),
    (
        "scheduling.k8s.io/v1",
        "PriorityClass",
        false,
        check::<scheduling::v1::PriorityClass>,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        false,
        check::<CustomResourceDefinition>,
    ),
];

/// Whether a kind is namespaced, when hydrant knows the kind.
pub fn is_namespaced(api_version: &str, kind: &str) -> Option<bool> {
    KINDS
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
        .map(|(_, _, namespaced, _)| *namespaced)
}

/// Problems with an object, as (path, message). Empty when it is sound or its
/// kind is not a built-in one.
pub fn check_object(api_version: &str, kind: &str, value: &Value) -> Vec<(String, String)> {
    if let Some((_, _, _, check)) = KINDS
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
    {
        return check(value);
    }
    // A built-in kind under an apiVersion that does not serve it
    // (`extensions/v1beta1` Ingress): custom resources have dotted groups
    // outside `*.k8s.io`, built-in ones do not.
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let builtin_group = !group.contains('.') || group.ends_with(".k8s.io");
    if builtin_group && let Some((served, ..)) = KINDS.iter().find(|(_, k, _, _)| *k == kind) {
        return vec![(
            "apiVersion".to_string(),
            format!("`{kind}` is not served as `{api_version}`; use `{served}`"),
        )];
    }
    Vec::new()
}

fn check<T: DeserializeOwned>(value: &Value) -> Vec<(String, String)> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result: Result<T, _> = {
        let de = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(de, |path| unknown.push(path.to_string()))
    };
    let mut problems: Vec<(String, String)> = unknown
        .into_iter()
        .filter(|p| p != "apiVersion" && p != "kind")
        .map(|p| {
            // serde_ignored writes `?` for an `Option` on the way.
            let p = p
                .split('.')
                .filter(|s| *s != "?")
                .collect::<Vec<_>>()
                .join(".");
            let field = p.rsplit('.').next().unwrap_or(&p).to_string();
            (p, format!("unknown field `{field}`"))
        })
        .collect();
    if let Err(e) = result {
        problems.push((track.path().to_string(), e.to_string()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(container: Value, replicas: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "app"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [container]}}}
        })
    }

    #[test]
    fn a_sound_deployment_passes() {
        let d = deployment(
            json!({"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}]}),
            json!(2),
        );
        assert_eq!(check_object("apps/v1", "Deployment", &d), vec![]);
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let d = deployment(
            json!({"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocl": "TCP"}]}),
            json!(2),
        );
        let problems = check_object("apps/v1", "Deployment", &d);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].0,
            "spec.template.spec.containers.0.ports.0.protocl"
        );
        assert!(problems[0].1.contains("unknown field `protocl`"));
    }

    #[test]
    fn a_wrong_type_is_named_with_its_path() {
        let d = deployment(json!({"name": "c", "image": "i"}), json!("2"));
        let problems = check_object("apps/v1", "Deployment", &d);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "spec.replicas");
        assert!(problems[0].1.contains("invalid type"), "{problems:?}");
    }

    #[test]
    fn a_built_in_kind_under_a_wrong_api_version_is_named() {
        let problems = check_object("extensions/v1beta1", "Ingress", &json!({}));
        assert!(
            problems[0].1.contains("networking.k8s.io/v1"),
            "{problems:?}"
        );
        assert!(check_object("apps.wandb.com/v1", "WeightsAndBiases", &json!({})).is_empty());
    }
}
