//! Issue 17, item 3: a plaintext credential is refused wherever it sits in a
//! value layer, not only when a template writes it. Every plaintext example
//! of the operator's configuration reference is refused with a hint naming
//! the reference form, and the value appears in no output and no written file.

mod common;

use common::{Example, Run, tree};

/// The reference's plaintext examples: (name, YAML for a layer, the secret
/// that must never be shown, the key named, the reference form hinted).
const EXAMPLES: [(&str, &str, &str, &str, &str); 8] = [
    (
        "license",
        "global:\n  license: eyJhbGnUzaHgyQjQyQWhEU3-ZieKQ2x5GGfw\n",
        "eyJhbGnUzaHgyQjQyQWhEU3",
        "global.license",
        "licenseSecret: {name, key}",
    ),
    (
        "mysql password",
        "global:\n  mysql:\n    password: 8wtX6cJHizAZvYScjDzZcUarK4zZGjpV\n",
        "8wtX6cJHizAZvYScjDzZcUarK4zZGjpV",
        "global.mysql.password",
        "passwordSecret: {name, key}",
    ),
    (
        "redis password",
        "global:\n  redis:\n    password: supersecret-redis-pw\n",
        "supersecret-redis-pw",
        "global.redis.password",
        "redis.auth: {enabled: true, secret, key}",
    ),
    (
        "ldap bind password",
        "global:\n  ldap:\n    enabled: false\n    bindPW: ldap-bind-pw-0815\n",
        "ldap-bind-pw-0815",
        "global.ldap.bindPW",
        "bindPWSecret: {name, key}",
    ),
    (
        "oidc secret",
        "global:\n  auth:\n    oidc:\n      clientId: wandb\n      secret: oidc-client-secret-4711\n",
        "oidc-client-secret-4711",
        "global.auth.oidc.secret",
        "clientSecretRef: {name, key}",
    ),
    (
        "azure secret key",
        "global:\n  bucket:\n    provider: az\n    name: b\n    secretKey: azure-storage-key-abc123==\n",
        "azure-storage-key-abc123",
        "global.bucket.secretKey",
        "secretKeySecret: {name, key}",
    ),
    (
        "smtp password",
        "global:\n  email:\n    smtp:\n      host: smtp.example.com\n      password: smtp-pw-92ab\n",
        "smtp-pw-92ab",
        "global.email.smtp.password",
        "passwordSecret: {name, key}",
    ),
    (
        "s3 connection string with keys",
        "global:\n  extraEnv:\n    BUCKET: \"s3://wandb:changeme-s3-key@mydb.com/wandb?tls=true\"\n",
        "changeme-s3-key",
        "global.extraEnv.BUCKET",
        "global.bucket.urlSecret: {name, key}",
    ),
];

fn assert_nowhere(ex: &Example, runs: &[&Run], secret: &str, name: &str) {
    for run in runs {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{name}: the credential was shown:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    // Every file in the repository but the layer that holds the credential:
    // nothing was written from it (`out/`, a cache, a report).
    for (path, bytes) in tree(ex.path()) {
        if path.ends_with("dev/pinned.yaml") || path.ends_with("dev/values.yaml") {
            continue;
        }
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "{name}: the credential was written to {path}"
        );
    }
}

#[test]
fn every_plaintext_credential_of_the_reference_is_refused_in_pinned_yaml_with_a_hint() {
    for (name, yaml, secret, key, form) in EXAMPLES {
        let ex = Example::new();
        ex.write("environments/dev/pinned.yaml", yaml);
        let validate = ex.run(&["validate", "--env", "dev"]);
        let render = ex.run(&["render", "--env", "dev", "--out", "out"]);
        for run in [&validate, &render] {
            assert_eq!(run.code, 1, "{name}: {}\n{}", run.stdout, run.stderr);
            assert!(
                run.stderr.contains("`environments/dev/pinned.yaml`, line ")
                    && run
                        .stderr
                        .contains(&format!("key `{key}` holds a plaintext credential"))
                    && run.stderr.contains("hint:")
                    && run.stderr.contains(form),
                "{name}: {}",
                run.stderr
            );
        }
        assert_nowhere(&ex, &[&validate, &render], secret, name);
    }
}

#[test]
fn a_credential_in_values_yaml_is_refused_naming_its_line() {
    let ex = Example::new();
    let values = ex.read("environments/dev/values.yaml").replace(
        "    passwordSecret:\n      name: wandb-mysql\n      key: password\n",
        "    password: 8wtX6cJHizAZvYScjDzZcUarK4zZGjpV\n",
    );
    let line = values
        .lines()
        .position(|l| l.contains("password: 8wtX"))
        .unwrap()
        + 1;
    ex.write("environments/dev/values.yaml", &values);
    let run = ex.run(&["render", "--env", "dev", "--out", "out"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "`environments/dev/values.yaml`, line {line} (user input layer): key `global.mysql.password`"
        )),
        "{}",
        run.stderr
    );
    assert_nowhere(
        &ex,
        &[&run],
        "8wtX6cJHizAZvYScjDzZcUarK4zZGjpV",
        "values.yaml",
    );
}

#[test]
fn allow_plaintext_secrets_still_opts_out() {
    let ex = Example::new();
    ex.write("environments/dev/pinned.yaml", EXAMPLES[0].1);
    ex.append(
        "environments/dev/environment.yaml",
        // `global.license` is read by no template (they read the
        // reference form), so it is also an unknown key: let that warn.
        "allowPlaintextSecrets: true\nunknownKeys: warn\n",
    );
    let run = ex.run(&["validate", "--env", "dev"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
}
