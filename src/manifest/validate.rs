//! Validation of an environment's set of manifests. Every problem is reported,
//! not only the first.

use std::collections::HashMap;

use serde_json::Value;

use super::{Manifest, ManifestError, schema};

/// Kinds whose names must be DNS-1123 labels rather than subdomains.
const LABEL_NAMED: [&str; 2] = ["Service", "Namespace"];

/// A DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, at most 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && !s.is_empty() && s.split('.').all(is_dns_label_part)
}

/// A DNS-1123 label: lowercase alphanumerics and `-`, at most 63.
pub fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && is_dns_label_part(s)
}

fn is_dns_label_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Checks each manifest and the set.
pub fn validate(manifests: &[Manifest], allow_plaintext_secrets: bool) -> Vec<ManifestError> {
    let mut problems = Vec::new();
    let mut seen: HashMap<(String, String, String), &Manifest> = HashMap::new();
    for m in manifests {
        let label = LABEL_NAMED.contains(&m.kind.as_str());
        let name_ok = if label {
            is_dns_label(&m.name)
        } else {
            is_dns_subdomain(&m.name)
        };
        if !name_ok {
            let rule = if label {
                "a DNS-1123 label: lowercase letters, digits and `-`, at most 63 characters"
            } else {
                "a DNS-1123 subdomain: lowercase letters, digits, `-` and `.`, at most 253 characters"
            };
            problems.push(m.error(
                Some("metadata.name"),
                format!("`{}` is not a valid name; it must be {rule}", m.name),
            ));
        }
        if let Some(ns) = &m.namespace
            && !is_dns_label(ns)
        {
            problems.push(m.error(
                Some("metadata.namespace"),
                format!("`{ns}` is not a valid namespace (a DNS-1123 label)"),
            ));
        }
        for (path, message) in schema::check_object(&m.api_version, &m.kind, &m.value) {
            problems.push(m.error(Some(&path), message));
        }
        if !allow_plaintext_secrets {
            problems.extend(plaintext_secrets(m));
        }
        let group = m
            .api_version
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_string();
        let key = (
            format!("{}.{group}", m.kind),
            m.namespace.clone().unwrap_or_default(),
            m.name.clone(),
        );
        if let Some(first) = seen.get(&key) {
            problems.push(m.error(
                None,
                format!(
                    "duplicate object: `{}` in namespace `{}` is also rendered by template `{}`, document {}",
                    m.id(),
                    key.1,
                    first.template,
                    first.index
                ),
            ));
        } else {
            seen.insert(key, m);
        }
    }
    problems
}

/// Where a manifest holds a Secret: the object itself, or an item of a list
/// kind (`kind: List`, `SecretList`, …) at `items.N`.
fn secret_roots(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    if value.get("kind").and_then(Value::as_str) == Some("Secret") {
        out.push(at.clone());
    }
    if let Some(Value::Array(items)) = value.get("items") {
        for (i, item) in items.iter().enumerate() {
            at.push(i.to_string());
            at.insert(at.len() - 1, "items".to_string());
            secret_roots(item, at, out);
            at.truncate(at.len() - 2);
        }
    }
}

/// A Secret whose data (keys or values) comes from values, and any field
/// whose text from values carries a credential (a password spliced into a
/// connection string by the template).
fn plaintext_secrets(m: &Manifest) -> Vec<ManifestError> {
    let mut problems = Vec::new();
    let mut roots = Vec::new();
    secret_roots(&m.value, &mut Vec::new(), &mut roots);
    let secret_data = m.from_values.iter().map(|(p, _)| p).find(|p| {
        roots.iter().any(|root| {
            p.starts_with(root)
                && matches!(
                    p.get(root.len()).map(String::as_str),
                    Some("data" | "stringData")
                )
        })
    });
    if let Some(path) = secret_data {
        problems.push(m.error(
            Some(&path.join(".")),
            "a Secret's data comes from values and would be committed in plain text; create the Secret outside git and reference it, or set `allowPlaintextSecrets: true` in environment.yaml".to_string(),
        ));
    }
    let spliced = m.from_values.iter().map(|(p, _)| p).find(|p| {
        let pointer: String = p
            .iter()
            .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
            .collect();
        m.value
            .pointer(&pointer)
            .and_then(Value::as_str)
            .is_some_and(crate::render::has_credential)
    });
    if let Some(path) = spliced {
        problems.push(m.error(
            Some(&path.join(".")),
            "this field, written from values, carries a credential (a password in a URL or connection string) and would be committed in plain text; reference a Kubernetes Secret instead, or set `allowPlaintextSecrets: true` in environment.yaml".to_string(),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RenderedDoc;
    use serde_json::json;

    fn manifest(value: Value, from_values: Vec<(Vec<String>, Vec<Vec<String>>)>) -> Manifest {
        Manifest::from_doc(
            RenderedDoc {
                template: "t.yaml.hbs".into(),
                index: 1,
                value,
                from_values,
            },
            "ns",
        )
        .unwrap()
    }

    fn cm(name: &str) -> Manifest {
        manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}),
            vec![],
        )
    }

    #[test]
    fn dns_names_are_checked() {
        assert!(is_dns_subdomain("wandb-app.v1"));
        assert!(!is_dns_subdomain("Wandb"));
        assert!(!is_dns_subdomain("-x"));
        assert!(!is_dns_label("a.b"));
        let problems = validate(&[cm("Bad_Name")], false);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .contains("`Bad_Name` is not a valid name"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn duplicates_are_reported_with_both_sources() {
        let problems = validate(&[cm("a"), cm("a")], false);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .contains("duplicate object: `ConfigMap/a`"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn namespaced_kinds_get_the_environment_namespace() {
        assert_eq!(cm("a").namespace.as_deref(), Some("ns"));
        assert_eq!(cm("a").value["metadata"]["namespace"], "ns");
    }

    #[test]
    fn a_secret_built_from_values_is_refused_unless_allowed() {
        let s = manifest(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"p": "x"}}),
            vec![(vec!["stringData".into(), "p".into()], vec![])],
        );
        let problems = validate(std::slice::from_ref(&s), false);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0]
                .to_string()
                .contains("Secret's data comes from values")
        );
        assert!(validate(&[s], true).is_empty());
    }

    /// Issue 13, item 7: a Secret inside a list kind is a Secret.
    #[test]
    fn a_secret_inside_a_list_built_from_values_is_refused() {
        let list = manifest(
            json!({"apiVersion": "v1", "kind": "List", "metadata": {"name": "l"}, "items": [
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"p": "eA=="}},
            ]}),
            vec![(
                vec!["items".into(), "1".into(), "data".into(), "p".into()],
                vec![],
            )],
        );
        let problems = validate(std::slice::from_ref(&list), false);
        assert!(
            problems.iter().any(
                |p| p.to_string().contains("Secret's data comes from values")
                    && p.to_string().contains("items.1.data.p")
            ),
            "{problems:?}"
        );
        assert!(validate(&[list], true).is_empty());
    }

    /// Issue 13, item 7: a password spliced into a connection string from
    /// values whose keys look harmless is still a credential.
    #[test]
    fn a_credential_spliced_into_a_connection_string_from_values_is_refused() {
        for text in [
            "postgres://app:hunter2@db:5432/app",
            "Server=db;User Id=app;Password=hunter2",
        ] {
            let cm = manifest(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"url": text}}),
                vec![(vec!["data".into(), "url".into()], vec![])],
            );
            let problems = validate(std::slice::from_ref(&cm), false);
            assert_eq!(problems.len(), 1, "{problems:?}");
            let message = problems[0].to_string();
            assert!(
                message.contains("credential") && message.contains("data.url"),
                "{message}"
            );
            assert!(!message.contains("hunter2"), "{message}");
            assert!(validate(&[cm], true).is_empty());
        }
        // The template's own text, with no value in it, is not the guard's business.
        let literal = manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"url": "postgres://a:b@db/x"}}),
            vec![],
        );
        assert!(validate(&[literal], false).is_empty());
    }

    #[test]
    fn a_missing_identity_is_an_error() {
        let err = Manifest::from_doc(
            RenderedDoc {
                template: "t".into(),
                index: 2,
                value: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
                from_values: vec![],
            },
            "ns",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("metadata.name") && err.to_string().contains("document 2"),
            "{err}"
        );
    }
}
