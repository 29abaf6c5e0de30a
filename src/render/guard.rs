//! What counts as a plaintext credential.
//!
//! A value set under a credential-like key (`license`, `password`, `token`, …)
//! must never be written literally into a manifest that lands in git: templates
//! take the *reference* form instead (`licenseSecret: {name, key}`), which names a
//! Kubernetes Secret created outside git. A connection string with a password in
//! it (`s3://user:pass@host`, `Server=db;Password=pw`, `host=db password=pw`)
//! counts as a credential too, whichever key it was set under.

use serde_json::Value;

/// Keys whose values are credentials, compared lowercase without `_` and `-`.
const SECRET_KEYS: [&str; 27] = [
    "license",
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "secret",
    "secretkey",
    "token",
    "accesskey",
    "bindpw",
    "apikey",
    "clientsecret",
    "privatekey",
    "accesstoken",
    "authtoken",
    "auth",
    "dsn",
    "credential",
    "credentials",
    "connectionstring",
    "connstring",
    "connstr",
    "databaseurl",
    "sessionsecret",
    "webhooksecret",
    "accountkey",
];

/// Endings that mark a credential (`rootPassword`, `githubToken`, `dbPwd`,
/// `sentryDsn`, `gcsCredentials`, `mysqlConnectionString`).
const SECRET_SUFFIXES: [&str; 14] = [
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "token",
    "secretkey",
    "apikey",
    "accesskey",
    "privatekey",
    "dsn",
    "credential",
    "credentials",
    "connectionstring",
    "accountkey",
];

/// Keys inside a connection string (`Password=…;`, `password=…`) whose value
/// is a credential, compared like [`SECRET_KEYS`].
const CONNECTION_KEYS: [&str; 7] = [
    "password",
    "pwd",
    "passwd",
    "pass",
    "accountkey",
    "sharedaccesskey",
    "secret",
];

fn normalise(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether a key names a credential. Reference forms (`licenseSecret`,
/// `passwordSecret`, `secretName`, `clientSecretRef`) do not.
pub fn is_secret_key(key: &str) -> bool {
    let k = normalise(key);
    if SECRET_KEYS.contains(&k.as_str()) {
        return true;
    }
    if k.ends_with("secret") || k.ends_with("ref") || k.ends_with("name") {
        return false;
    }
    SECRET_SUFFIXES.iter().any(|s| k.ends_with(s))
}

/// Whether the value at `path` under `root` is a credential that must not be
/// written literally. `{secret: NAME, key: KEY}` is a reference, not a secret.
pub fn is_plaintext_secret(path: &[String], value: &Value, root: &Value) -> bool {
    let filled = match value {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
        _ => false,
    };
    if !filled {
        return false;
    }
    if let Value::String(s) = value
        && has_credential(s)
    {
        return true;
    }
    let Some(key) = path.last() else {
        return false;
    };
    if !is_secret_key(key) {
        return false;
    }
    if normalise(key) == "secret" {
        let parent = lookup(root, &path[..path.len() - 1]);
        if let Some(Value::Object(m)) = parent
            && m.get("key").is_some_and(Value::is_string)
        {
            return false;
        }
    }
    true
}

/// Whether a string carries a credential whatever key it was set under: a URL
/// or DSN with `user:password@`, or a connection string with a password field
/// (`Server=db;Password=pw`, `host=db password=pw`).
pub fn has_credential(s: &str) -> bool {
    has_url_password(s) || has_dsn_password(s) || has_password_field(s)
}

/// `user:password@tcp(host)/db`: a Go-style DSN, without a scheme. (An image
/// `name:tag@sha256:…` is not one.)
fn has_dsn_password(s: &str) -> bool {
    if s.contains("://") {
        return false;
    }
    let Some((userinfo, address)) = s.split_once('@') else {
        return false;
    };
    address
        .split('/')
        .next()
        .is_some_and(|a| a.contains('(') && a.ends_with(')'))
        && !userinfo.contains(['/', ' ', '\t', '\n'])
        && userinfo
            .split_once(':')
            .is_some_and(|(user, pass)| !user.is_empty() && !pass.is_empty())
}

/// `Server=db;Password=pw`, `host=db password=pw`.
fn has_password_field(s: &str) -> bool {
    s.split([';', ' ', '\t', '\n', '&', '?'])
        .filter_map(|part| part.split_once('='))
        .any(|(k, v)| {
            let v = v.trim().trim_matches(['\'', '"']);
            CONNECTION_KEYS.contains(&normalise(k.trim()).as_str()) && !v.is_empty()
        })
}

/// `scheme://user:password@host…`: a connection string carrying a password.
pub fn has_url_password(s: &str) -> bool {
    let Some(i) = s.find("://") else {
        return false;
    };
    let rest = &s[i + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo
            .split_once(':')
            .is_some_and(|(_, pass)| !pass.is_empty()),
        None => false,
    }
}

/// The reference form a template should use instead of `key`.
pub fn reference_hint(key: &str) -> String {
    format!(
        "keep the credential in a Kubernetes Secret and reference it (`{key}Secret: {{name: ..., key: ...}}`), or set `allowPlaintextSecrets: true` in the environment's environment.yaml"
    )
}

/// The reference form the bundled templates accept in place of the credential
/// at `path` of the values, with the opt-out: the hint of a refusal. The
/// credentials of the operator's reference take the form of
/// [`crate::spec::references`], the table `hydrant import` writes by.
pub fn reference_form(path: &[String], value: &Value) -> String {
    let key = path.last().map(String::as_str).unwrap_or_default();
    let parent = path.len().checked_sub(1).map_or(&path[..0], |n| &path[..n]);
    let under = |k: &str| parent.iter().any(|p| normalise(p) == k);
    let is_url = matches!(value, Value::String(s) if has_credential(s)) && !is_secret_key(key);
    let form = match crate::spec::references::reference_for(path) {
        Some(r) if r.is_url() => format!(
            "keep the whole connection string (keys, host, bucket, `?tls=true`) in a Kubernetes \
             Secret and set `{}` instead",
            r.form()
        ),
        Some(r) if !is_url => format!("use `{}` instead", r.form()),
        _ => match normalise(key).as_str() {
            "bucket" if is_url => {
                "keep the whole connection string in a Kubernetes Secret and set \
                 `global.bucket.urlSecret: {name, key}` instead"
                    .to_string()
            }
            _ if is_url => format!(
                "take the password out of `{key}`: keep it in a Kubernetes Secret and pass it \
                 in by reference (`*Secret: {{name, key}}`)"
            ),
            "license" => "use `licenseSecret: {name, key}` instead".to_string(),
            "password" if under("redis") => {
                "use `redis.auth: {enabled: true, secret, key}` instead".to_string()
            }
            "secret" | "clientsecret" if under("oidc") => {
                "use `clientSecretRef: {name, key}` instead".to_string()
            }
            _ => format!("use `{key}Secret: {{name, key}}` instead"),
        },
    };
    format!(
        "{form}, naming a Kubernetes Secret created outside git; or set `allowPlaintextSecrets: true` in the environment's environment.yaml"
    )
}

/// The value at `path` under `root`, through maps and list indexes.
pub(crate) fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Every credential among the leaves of `value` (found at `base`), by path.
pub fn secrets_within(base: &[String], value: &Value, root: &Value) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut path = base.to_vec();
    walk(&mut path, value, root, &mut found);
    found
}

fn walk(path: &mut Vec<String>, value: &Value, root: &Value, found: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                path.push(k.clone());
                walk(path, v, root, found);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(i.to_string());
                walk(path, v, root, found);
                path.pop();
            }
        }
        leaf => {
            if is_plaintext_secret(path, leaf, root) {
                found.push(path.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn credential_keys_are_recognised() {
        for k in [
            "license",
            "password",
            "secretKey",
            "token",
            "accessKey",
            "bindPW",
            "rootPassword",
            "github_token",
            "clientSecret",
            "apiKey",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn reference_forms_are_not_secrets() {
        for k in [
            "licenseSecret",
            "passwordSecret",
            "secretName",
            "clientSecretRef",
            "bindPWSecret",
            "host",
            "tokenSecret",
            "key",
        ] {
            assert!(!is_secret_key(k), "{k}");
        }
    }

    #[test]
    fn a_secret_name_with_a_key_is_a_reference() {
        let root = json!({"redis": {"auth": {"secret": "redis-secret", "key": "password"}}, "oidc": {"secret": "s3cr3t"}});
        assert!(!is_plaintext_secret(
            &p("redis.auth.secret"),
            &json!("redis-secret"),
            &root
        ));
        assert!(is_plaintext_secret(
            &p("oidc.secret"),
            &json!("s3cr3t"),
            &root
        ));
    }

    #[test]
    fn empty_values_are_not_secrets() {
        assert!(!is_plaintext_secret(
            &p("global.license"),
            &json!(""),
            &json!({})
        ));
    }

    #[test]
    fn connection_strings_with_passwords_are_secrets() {
        assert!(has_url_password(
            "s3://wandb:changeme@mydb.com/wandb?tls=true"
        ));
        assert!(!has_url_password("s3://mydb.com/wandb"));
        assert!(!has_url_password("https://user@host/x"));
        assert!(!has_url_password("https://host/x?u=a:b@c"));
        assert!(is_plaintext_secret(
            &p("global.extraEnv.BUCKET"),
            &json!("s3://a:b@h/x"),
            &json!({})
        ));
    }

    #[test]
    fn widened_credential_names_and_connection_strings_are_secrets() {
        for k in [
            "pwd",
            "dbPwd",
            "pass",
            "passwd",
            "auth",
            "dsn",
            "sentryDsn",
            "credentials",
            "gcsCredentials",
            "connectionString",
            "mysql_connection_string",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["authSecret", "dsnSecret", "bypass", "compass", "authority"] {
            assert!(!is_secret_key(k), "{k}");
        }
        for s in [
            "postgres://app:hunter2@db:5432/app",
            "Server=db;Database=app;User Id=app;Password=hunter2;",
            "host=db user=app password=hunter2",
            "app:hunter2@tcp(db:3306)/app",
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==",
        ] {
            assert!(has_credential(s), "{s}");
        }
        for s in [
            "postgres://app@db/app",
            "Server=db;Database=app;",
            "user@example.com",
            "a: b",
            "Password=",
            "registry:5000/app:1.2@sha256:abcd",
            "nginx:1.25@sha256:abcd",
        ] {
            assert!(!has_credential(s), "{s}");
        }
    }

    #[test]
    fn secrets_within_a_map_are_listed_by_path() {
        let v = json!({"host": "h", "password": "pw", "nested": {"token": "t"}});
        let found = secrets_within(&p("global.mysql"), &v, &json!({}));
        assert_eq!(
            found,
            vec![p("global.mysql.nested.token"), p("global.mysql.password")]
        );
    }

    #[test]
    fn a_bucket_url_with_keys_is_hinted_to_the_url_secret_the_templates_read() {
        let url = json!("s3://wandb:changeme@mydb.com/wandb?tls=true");
        for path in [
            "global.extraEnv.BUCKET",
            "global.bucket.name",
            "app.extraEnv.BUCKET",
        ] {
            let hint = reference_form(&p(path), &url);
            assert!(
                hint.contains("`global.bucket.urlSecret: {name, key}`"),
                "{path}: {hint}"
            );
        }
        let hint = reference_form(&p("global.bucket.accessKey"), &json!("AKIA"));
        assert!(
            hint.contains("`global.bucket.accessKeySecret: {name, key}`"),
            "{hint}"
        );
    }
}
