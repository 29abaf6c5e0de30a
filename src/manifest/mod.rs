//! Kubernetes manifests: what a rendered document must be, and how it is written.
//!
//! [`Manifest::from_doc`] takes a rendered document and checks it is a
//! Kubernetes object; [`validate`] checks objects against the Kubernetes API
//! types, names, duplicates and secrets; [`layout`] turns a validated set into the
//! files of `rendered/<env>/`. All pure.

pub mod layout;
pub mod schema;
pub mod validate;

use serde_json::Value;

use crate::render::RenderedDoc;

/// One Kubernetes object and the template document it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub value: Value,
    pub template: String,
    pub index: usize,
    /// Paths whose scalars hold text from values, with the keys of those values.
    pub from_values: Vec<(Vec<String>, Vec<Vec<String>>)>,
}

/// A problem with one manifest, named by template, document and path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template `{template}`, document {index} ({object}){}: {message}", path.as_ref().map(|p| format!(", at `{p}`")).unwrap_or_default())]
pub struct ManifestError {
    pub template: String,
    pub index: usize,
    /// `Deployment/wandb-app`, or what is known of it.
    pub object: String,
    pub path: Option<String>,
    pub message: String,
}

/// A Kubernetes kind, as the API machinery requires: an uppercase ASCII
/// letter, then ASCII letters and digits, at most 63 in all. It goes into
/// file names and `kustomization.yaml`, so nothing else may pass.
pub fn is_kind(kind: &str) -> bool {
    let b = kind.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_uppercase()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

/// `VERSION` or `GROUP/VERSION`: a DNS-1123 subdomain for the group, a
/// DNS-1123 label for the version.
pub fn is_api_version(api_version: &str) -> bool {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (Some(g), v),
        None => (None, api_version),
    };
    validate::is_dns_label(version) && group.is_none_or(validate::is_dns_subdomain)
}

impl Manifest {
    /// Reads the identity of a rendered document. A namespaced built-in kind
    /// without a namespace gets `default_namespace`.
    pub fn from_doc(doc: RenderedDoc, default_namespace: &str) -> Result<Manifest, ManifestError> {
        let RenderedDoc {
            template,
            index,
            mut value,
            from_values,
        } = doc;
        let error = |object: &str, path: Option<&str>, message: String| ManifestError {
            template: template.clone(),
            index,
            object: object.to_string(),
            path: path.map(String::from),
            message,
        };
        let Value::Object(map) = &value else {
            return Err(error(
                "not an object",
                None,
                "a manifest must be a map with `apiVersion`, `kind` and `metadata`".to_string(),
            ));
        };
        let text = |key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let kind = text("kind")
            .ok_or_else(|| error("unknown object", Some("kind"), "missing `kind`".to_string()))?;
        let api_version = text("apiVersion").ok_or_else(|| {
            error(
                &kind,
                Some("apiVersion"),
                "missing `apiVersion`".to_string(),
            )
        })?;
        if !is_kind(&kind) {
            return Err(error(
                "unknown object",
                Some("kind"),
                format!(
                    "`{}` is not a Kubernetes kind: it must be an uppercase letter followed by at most 62 letters and digits (`ConfigMap`)",
                    kind.escape_default()
                ),
            ));
        }
        if !is_api_version(&api_version) {
            return Err(error(
                &kind,
                Some("apiVersion"),
                format!(
                    "`{}` is not a Kubernetes apiVersion: write `VERSION` or `GROUP/VERSION` (`v1`, `apps/v1`)",
                    api_version.escape_default()
                ),
            ));
        }
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .ok_or_else(|| {
                error(
                    &kind,
                    Some("metadata.name"),
                    "missing `metadata.name`".to_string(),
                )
            })?;
        let mut namespace = value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(String::from);
        if namespace.is_none() && schema::is_namespaced(&api_version, &kind) == Some(true) {
            if let Some(Value::Object(meta)) = value.get_mut("metadata") {
                meta.insert(
                    "namespace".to_string(),
                    Value::String(default_namespace.to_string()),
                );
            }
            namespace = Some(default_namespace.to_string());
        }
        Ok(Manifest {
            api_version,
            kind,
            name,
            namespace,
            value,
            template,
            index,
            from_values,
        })
    }

    /// `Deployment/wandb-app`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    pub(crate) fn error(&self, path: Option<&str>, message: String) -> ManifestError {
        ManifestError {
            template: self.template.clone(),
            index: self.index,
            object: self.id(),
            path: path.map(String::from),
            message,
        }
    }
}
