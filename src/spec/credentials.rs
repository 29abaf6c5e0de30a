//! Plaintext credentials in a value layer, wherever they sit.
//!
//! A key that names a credential (the secret guard's rules, see
//! [`crate::render::guard`]) holding a plaintext value in `values.yaml` or
//! `pinned.yaml` is refused even when no template writes it: the value is in
//! git either way. A channel spec's credential is refused only while it
//! survives the merge (an environment may delete it with `null`): the
//! environment cannot edit the channel. A finding names the key, the file
//! and the line, never the value. This module does no IO.

use std::sync::Arc;

use serde_json::Value;

use super::layer::{Layer, LayerKind};
use super::merge::Merged;
use crate::render::guard;
use crate::yaml::{self, KeyPath};

/// A plaintext credential found in a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaintextCredential {
    pub path: KeyPath,
    pub layer: LayerKind,
    pub file: Arc<str>,
    pub line: Option<usize>,
    /// The reference form to use instead.
    pub hint: String,
}

impl std::fmt::Display for PlaintextCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        write!(
            f,
            " ({} layer): key `{}` holds a plaintext credential, which would stay in git",
            self.layer,
            yaml::display_path(&self.path)
        )
    }
}

/// Every plaintext credential of `layers` (lowest first), merged as `merged`.
pub fn plaintext_credentials(layers: &[&Layer], merged: &Merged) -> Vec<PlaintextCredential> {
    let mut found = Vec::new();
    for layer in layers {
        let values = Value::Object(layer.values.clone());
        for path in guard::secrets_within(&[], &values, &merged.values) {
            if layer.kind == LayerKind::Channel
                && merged.provenance.origin(&path).map(|o| o.layer) != Some(LayerKind::Channel)
            {
                continue;
            }
            let value = guard::lookup(&values, &path).unwrap_or(&Value::Null);
            found.push(PlaintextCredential {
                hint: guard::reference_form(&path, value),
                line: layer.line_of(&path),
                layer: layer.kind,
                file: layer.file.clone(),
                path,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::merge;

    fn find(channel: &str, user: &str, pinned: &str) -> Vec<PlaintextCredential> {
        let c = Layer::parse(LayerKind::Channel, "channels/stable.yaml", channel).unwrap();
        let u = Layer::parse(LayerKind::User, "environments/dev/values.yaml", user).unwrap();
        let p = Layer::parse(LayerKind::Custom, "environments/dev/pinned.yaml", pinned).unwrap();
        let m = merge(&[&c, &u, &p]);
        plaintext_credentials(&[&c, &u, &p], &m)
    }

    #[test]
    fn a_credential_in_any_user_layer_is_found_with_file_line_and_hint_but_not_the_value() {
        let found = find(
            "global: {mysql: {port: 3306}}\n",
            "global:\n  mysql:\n    password: hunter2secret\n",
            "global:\n  ldap:\n    bindPW: ld4pbind\n",
        );
        let shown: Vec<String> = found
            .iter()
            .map(|c| format!("{c}; hint: {}", c.hint))
            .collect();
        assert_eq!(found.len(), 2, "{shown:?}");
        assert!(
            shown[0].contains("`environments/dev/values.yaml`, line 3 (user input layer)")
                && shown[0].contains("`global.mysql.password`")
                && shown[0].contains("passwordSecret: {name, key}"),
            "{shown:?}"
        );
        assert!(
            shown[1].contains("pinned.yaml`, line 3") && shown[1].contains("bindPWSecret"),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .all(|s| !s.contains("hunter2") && !s.contains("ld4p")),
            "{shown:?}"
        );
    }

    #[test]
    fn reference_forms_and_empty_values_are_not_credentials() {
        let found = find(
            "global: {license: \"\"}\n",
            "global:\n  licenseSecret: {name: l, key: license}\n  redis:\n    auth: {enabled: true, secret: redis, key: password}\n",
            "",
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_channel_credential_counts_only_while_it_survives_the_merge() {
        assert_eq!(find("global: {license: abc}\n", "", "").len(), 1);
        assert!(find("global: {license: abc}\n", "global: {license: null}\n", "").is_empty());
    }

    #[test]
    fn the_hint_names_the_form_the_templates_accept() {
        let found = find(
            "",
            "global:\n  license: eyJhbG\n  redis: {password: r3d1s}\n  auth: {oidc: {secret: o1dc}}\n  bucket: {secretKey: azk3y}\n  extraEnv: {BUCKET: \"s3://wandb:changeme@mydb.com/wandb?tls=true\"}\n",
            "",
        );
        let hints: Vec<(String, String)> = found
            .iter()
            .map(|c| (yaml::display_path(&c.path), c.hint.clone()))
            .collect();
        let hint = |k: &str| {
            hints
                .iter()
                .find(|(p, _)| p == k)
                .map(|(_, h)| h.clone())
                .unwrap_or_default()
        };
        assert!(
            hint("global.license").contains("licenseSecret"),
            "{hints:?}"
        );
        assert!(
            hint("global.redis.password").contains("redis.auth"),
            "{hints:?}"
        );
        assert!(
            hint("global.auth.oidc.secret").contains("clientSecretRef"),
            "{hints:?}"
        );
        assert!(
            hint("global.bucket.secretKey").contains("secretKeySecret"),
            "{hints:?}"
        );
        assert!(
            hint("global.extraEnv.BUCKET").contains("global.bucket.urlSecret: {name, key}"),
            "{hints:?}"
        );
        assert!(
            hints
                .iter()
                .all(|(_, h)| h.contains("allowPlaintextSecrets"))
        );
    }
}
