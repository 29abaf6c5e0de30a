//! The Secret reference that takes the place of each plaintext credential.
//!
//! One table, read by the secret guard (the hint of a refusal names the
//! reference form) and by `hydrant import` (which writes that form and moves
//! the credential into a Secret manifest), so that the two always agree. A
//! reference names a Kubernetes Secret and a key in it: `{name, key}`, or
//! Redis's `auth: {enabled: true, secret, key}`. This module does no IO.

use serde_json::{Map, Value, json};

/// How a reference is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{name: <secret>, key: <key>}`.
    NameKey,
    /// `{enabled: true, secret: <secret>, key: <key>}` (Redis's `auth`).
    RedisAuth,
}

/// A credential the templates read from a Secret instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// Where the plaintext credential sits in the values.
    pub credential: &'static [&'static str],
    /// Where its reference goes instead.
    pub reference: &'static [&'static str],
    /// The credential's key in the Secret `hydrant import` writes.
    pub secret_key: &'static str,
    pub shape: Shape,
}

const fn name_key(
    credential: &'static [&'static str],
    reference: &'static [&'static str],
    secret_key: &'static str,
) -> Reference {
    Reference {
        credential,
        reference,
        secret_key,
        shape: Shape::NameKey,
    }
}

/// Every credential of the operator's configuration reference, with the
/// reference form the bundled templates accept in its place.
pub const REFERENCES: [Reference; 11] = [
    name_key(
        &["global", "license"],
        &["global", "licenseSecret"],
        "license",
    ),
    name_key(
        &["global", "mysql", "password"],
        &["global", "mysql", "passwordSecret"],
        "mysql-password",
    ),
    name_key(
        &["global", "bucket", "accessKey"],
        &["global", "bucket", "accessKeySecret"],
        "bucket-access-key",
    ),
    name_key(
        &["global", "bucket", "secretKey"],
        &["global", "bucket", "secretKeySecret"],
        "bucket-secret-key",
    ),
    // A connection string with the keys in it (MinIO, Ceph):
    // `s3://$ACCESS_KEY:$SECRET_KEY@$HOST/$BUCKET?tls=true`, whole.
    name_key(
        &["global", "extraEnv", "BUCKET"],
        &["global", "bucket", "urlSecret"],
        "bucket-url",
    ),
    name_key(
        &["global", "bucket", "name"],
        &["global", "bucket", "urlSecret"],
        "bucket-url",
    ),
    name_key(
        &["global", "ldap", "bindPW"],
        &["global", "ldap", "bindPWSecret"],
        "ldap-bind-password",
    ),
    name_key(
        &["global", "auth", "oidc", "secret"],
        &["global", "auth", "oidc", "clientSecretRef"],
        "oidc-client-secret",
    ),
    name_key(
        &["global", "auth", "oidc", "clientSecret"],
        &["global", "auth", "oidc", "clientSecretRef"],
        "oidc-client-secret",
    ),
    name_key(
        &["global", "email", "smtp", "password"],
        &["global", "email", "smtp", "passwordSecret"],
        "smtp-password",
    ),
    Reference {
        credential: &["global", "redis", "password"],
        reference: &["global", "redis", "auth"],
        secret_key: "redis-password",
        shape: Shape::RedisAuth,
    },
];

impl Reference {
    /// The reference's value, naming `secret`.
    pub fn value(&self, secret: &str) -> Value {
        match self.shape {
            Shape::NameKey => json!({"name": secret, "key": self.secret_key}),
            Shape::RedisAuth => json!({"enabled": true, "secret": secret, "key": self.secret_key}),
        }
    }

    /// The form to write, as a hint shows it: `global.licenseSecret: {name, key}`.
    pub fn form(&self) -> String {
        let fields = match self.shape {
            Shape::NameKey => "{name, key}",
            Shape::RedisAuth => "{enabled: true, secret, key}",
        };
        format!("{}: {fields}", self.reference.join("."))
    }

    /// Whether the credential is a connection string kept whole.
    pub fn is_url(&self) -> bool {
        self.reference.last() == Some(&"urlSecret")
    }
}

/// The reference that replaces the credential at `path`, if the templates
/// have one.
pub fn reference_for(path: &[String]) -> Option<&'static Reference> {
    REFERENCES.iter().find(|r| {
        r.credential.len() == path.len() && r.credential.iter().zip(path).all(|(a, b)| a == b)
    })
}

/// Sets `value` at `path` of `values`, creating the maps on the way (a
/// scalar on the way is replaced by a map).
pub fn set_path(values: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut map = values;
    for p in parents {
        let entry = map
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(m) = entry else { return };
        map = m;
    }
    map.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn every_credential_of_the_reference_has_a_reference_form() {
        let forms: Vec<(&str, String)> = [
            "global.license",
            "global.mysql.password",
            "global.bucket.accessKey",
            "global.bucket.secretKey",
            "global.extraEnv.BUCKET",
            "global.ldap.bindPW",
            "global.auth.oidc.secret",
            "global.email.smtp.password",
            "global.redis.password",
        ]
        .into_iter()
        .map(|k| (k, reference_for(&p(k)).expect(k).form()))
        .collect();
        let form = |k: &str| forms.iter().find(|(p, _)| *p == k).unwrap().1.clone();
        assert_eq!(form("global.license"), "global.licenseSecret: {name, key}");
        assert_eq!(
            form("global.extraEnv.BUCKET"),
            "global.bucket.urlSecret: {name, key}"
        );
        assert_eq!(
            form("global.redis.password"),
            "global.redis.auth: {enabled: true, secret, key}"
        );
        assert_eq!(
            form("global.auth.oidc.secret"),
            "global.auth.oidc.clientSecretRef: {name, key}"
        );
        assert!(reference_for(&p("app.password")).is_none());
    }

    #[test]
    fn a_reference_names_the_secret_and_its_key() {
        let license = reference_for(&p("global.license")).unwrap();
        assert_eq!(
            license.value("prod-wandb-credentials"),
            json!({"name": "prod-wandb-credentials", "key": "license"})
        );
        let redis = reference_for(&p("global.redis.password")).unwrap();
        assert_eq!(
            redis.value("s"),
            json!({"enabled": true, "secret": "s", "key": "redis-password"})
        );
    }

    #[test]
    fn setting_a_path_creates_the_maps_on_the_way() {
        let mut m = Map::new();
        set_path(&mut m, &["global", "bucket", "urlSecret"], json!(1));
        set_path(&mut m, &["global", "host"], json!("h"));
        assert_eq!(
            Value::Object(m),
            json!({"global": {"bucket": {"urlSecret": 1}, "host": "h"}})
        );
    }
}
