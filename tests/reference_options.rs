//! Every option of the operator's configuration reference
//! (`operator-configuration-reference.txt`), rendered by the real binary in
//! its Secret-reference form, one environment per option, and held to what
//! the vendor's `operator-wandb` chart 0.31.4 (the chart the bundled stable
//! channel names) produces for the same values: environment variable names,
//! connection string shapes and mounts. Each expectation names the chart file
//! it was read from. The reference's own plaintext forms are refused.

mod common;

use std::collections::BTreeSet;

use common::{Example, parse_stream};
use serde_json::{Value, json};

/// What every environment needs besides the option under test (layer 2); the
/// option itself is the environment's pinned.yaml (layer 3), merged over it.
const BASE: &str = "\
global:
  host: https://abc-wandb.sandbox-gcp.wandb.ml
  licenseSecret: {name: wandb-license, key: license}
  mysql:
    host: 10.218.0.2
    database: wandb_local
    user: wandb
    passwordSecret: {name: wandb-mysql, key: password}
  bucket:
    provider: gcs
    name: abc-wandb-moving-pipefish
";

/// The reference's options: (environment, pinned.yaml).
const OPTIONS: &[(&str, &str)] = &[
    (
        "s3-url-secret",
        "global:\n  bucket:\n    provider: s3\n    name: null\n    urlSecret: {name: wandb-bucket, key: url}\n",
    ),
    (
        "s3-url-secret-keys",
        "global:\n  bucket:\n    provider: s3\n    name: null\n    urlSecret: {name: wandb-bucket, key: url}\n    accessKeySecret: {name: wandb-bucket-keys, key: access}\n    secretKeySecret: {name: wandb-bucket-keys, key: secret}\n",
    ),
    ("gcs", "{}\n"),
    (
        "aws-s3",
        "global:\n  bucket:\n    provider: s3\n    name: wandb-bucket\n    kmsKey: arn:aws:kms:us-east-1:1:key/k\n    region: us-east-1\n",
    ),
    (
        "aws-s3-keys",
        "global:\n  bucket:\n    provider: s3\n    name: wandb-bucket\n    accessKeySecret: {name: wandb-bucket-keys, key: access}\n    secretKeySecret: {name: wandb-bucket-keys, key: secret}\n",
    ),
    (
        "azure",
        "global:\n  bucket:\n    provider: az\n    name: wandb-container\n    secretKeySecret: {name: wandb-bucket, key: storage-key}\n",
    ),
    ("ingress-plain", "ingress:\n  class: \"\"\n"),
    (
        "ingress-host-path",
        "global:\n  host: https://a.example.com/x\n",
    ),
    (
        "ingress-host-override",
        "ingress:\n  host: wandb.internal\n",
    ),
    (
        "ingress-tls",
        "ingress:\n  class: \"\"\n  tls:\n    - secretName: wandb-ingress-tls\n      hosts:\n        - abc-wandb.sandbox-gcp.wandb.ml\n",
    ),
    (
        "ingress-nginx",
        "ingress:\n  annotations:\n    nginx.ingress.kubernetes.io/proxy-body-size: 64m\n",
    ),
    (
        "sa-app-parquet",
        "app:\n  serviceAccount: {name: custom-service-account, create: true}\nparquet:\n  serviceAccount: {name: custom-service-account, create: true}\n",
    ),
    (
        "sa-existing",
        "app:\n  serviceAccount: {name: custom-service-account, create: false}\nparquet:\n  serviceAccount: {name: custom-service-account, create: false}\n",
    ),
    (
        "sa-app-console",
        "app:\n  serviceAccount: {name: custom-service-account, create: true}\nconsole:\n  serviceAccount: {name: custom-service-account, create: true}\n",
    ),
    (
        "sa-different",
        "app:\n  serviceAccount: {name: custom-service-account, create: false}\nconsole:\n  serviceAccount: {name: another-custom-service-account, create: true}\n",
    ),
    (
        "sa-two-created",
        "app:\n  serviceAccount: {name: custom-service-account, create: true}\nconsole:\n  serviceAccount: {name: another-custom-service-account, create: true}\n",
    ),
    (
        "redis-password-secret",
        "redis:\n  install: false\nglobal:\n  redis:\n    host: redis.example\n    port: 9001\n    auth: {enabled: true, secret: redis-secret, key: redis-password}\n",
    ),
    (
        "redis-params-ca",
        "redis:\n  install: false\nglobal:\n  redis:\n    host: redis.example\n    port: 6379\n    parameters: {maxRetries: 5, caCertPath: /somewhere/else.pem}\n    caCert: |\n      -----BEGIN CERTIFICATE-----\n      MIIBnDCCAUKgAwIBAgRedisCA\n      -----END CERTIFICATE-----\n",
    ),
    (
        "ldap",
        "global:\n  ldap:\n    enabled: true\n    host: ldap://ldap.example.com\n    baseDN: dc=example,dc=com\n    bindDN: cn=wandb,dc=example,dc=com\n    bindPWSecret: {name: wandb-ldap, key: bind-password}\n    attributes: email=mail,group=memberOf\n    groupAllowList: cn=wandb\n    tls: false\n",
    ),
    (
        "ldap-tls",
        "global:\n  ldap:\n    enabled: true\n    host: ldaps://ldap.example.com\n    tls: true\n    tlsCert:\n      configMap: {name: ldap-tls-cert, key: certificate.crt}\n",
    ),
    (
        "oidc",
        "global:\n  auth:\n    sessionLengthHours: 720\n    oidc:\n      clientId: wandb-client\n      authMethod: pkce\n      issuer: https://idp.example.com\n      clientSecretRef: {name: wandb-oidc, key: client-secret}\n",
    ),
    (
        "smtp",
        "global:\n  email:\n    smtp:\n      host: smtp.example.com\n      port: 587\n      user: wandb\n      passwordSecret: {name: wandb-smtp, key: password}\n",
    ),
    (
        "extra-env",
        "global:\n  extraEnv:\n    GLOBAL_ENV: example\n",
    ),
    (
        "custom-ca-certs",
        "global:\n  customCACerts:\n    - |\n      -----BEGIN CERTIFICATE-----\n      MIIBnDCCAUKgAwIBAg\n      -----END CERTIFICATE-----\n    - |\n      -----BEGIN CERTIFICATE-----\n      MIIBxTCCAWugAwIB\n      -----END CERTIFICATE-----\n",
    ),
];

/// The rendered objects of every option's environment, by environment and
/// file name.
struct Rendered {
    _ex: Example,
    out: std::path::PathBuf,
}

impl Rendered {
    fn all() -> Rendered {
        let ex = Example::new();
        for (env, pinned) in OPTIONS {
            ex.write(
                &format!("environments/{env}/environment.yaml"),
                &format!("channel: stable\nnamespace: {env}\n"),
            );
            ex.write(&format!("environments/{env}/values.yaml"), BASE);
            ex.write(&format!("environments/{env}/pinned.yaml"), pinned);
        }
        let names: Vec<&str> = OPTIONS.iter().map(|(e, _)| *e).collect();
        let out = ex.path().join("out");
        ex.run(&[
            "render",
            "--env",
            &names.join(","),
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        Rendered { out, _ex: ex }
    }

    fn files(&self, env: &str) -> BTreeSet<String> {
        std::fs::read_dir(self.out.join(env))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect()
    }

    fn object(&self, env: &str, file: &str) -> Value {
        let path = self.out.join(env).join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; files: {:?}", path.display(), self.files(env)));
        parse_stream(&text).remove(0)
    }

    fn deployment(&self, env: &str, component: &str) -> Value {
        self.object(env, &format!("deployment-wandb-{component}.yaml"))
    }
}

fn pod(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]
}

fn env_list(deploy: &Value) -> &Vec<Value> {
    pod(deploy)["containers"][0]["env"].as_array().unwrap()
}

/// The container's variable `name`: its entry without the name.
fn var(deploy: &Value, name: &str) -> Option<Value> {
    env_list(deploy)
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().unwrap().remove("name");
            e
        })
}

fn names(deploy: &Value) -> Vec<String> {
    env_list(deploy)
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn value(deploy: &Value, name: &str) -> String {
    var(deploy, name)
        .and_then(|v| v["value"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no value for `{name}` in {:?}", names(deploy)))
}

fn secret_ref(name: &str, key: &str) -> Value {
    json!({"valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
}

/// The container's variable `name` comes from key `key` of Secret `secret`.
fn assert_secret(deploy: &Value, name: &str, secret: &str, key: &str) {
    assert_eq!(
        var(deploy, name),
        Some(secret_ref(secret, key)),
        "`{name}` of {:?}",
        deploy["metadata"]["name"]
    );
}

/// The variable's value with Kubernetes' `$(VAR)` expansion of the variables
/// defined before it with a value; variables from Secrets stay `$(VAR)`.
fn expanded(deploy: &Value, name: &str) -> String {
    let mut known: Vec<(String, String)> = Vec::new();
    for e in env_list(deploy) {
        let Some(v) = e["value"].as_str() else {
            continue;
        };
        let mut text = v.to_string();
        for (k, val) in &known {
            text = text.replace(&format!("$({k})"), val);
        }
        if e["name"] == name {
            return text;
        }
        known.push((e["name"].as_str().unwrap().to_string(), text));
    }
    panic!("no value for `{name}` in {:?}", names(deploy))
}

fn mounts(deploy: &Value) -> Vec<Value> {
    pod(deploy)["containers"][0]["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn every_option_of_the_reference_renders_as_chart_0_31_4_renders_it() {
    let r = Rendered::all();

    // --- Object storage -------------------------------------------------
    // S3-compatible (MinIO, Ceph): the whole `s3://KEY:SECRET@HOST/BUCKET?tls=true`
    // is the Secret's value, read into BUCKET as the chart reads its bucket
    // Secret (charts/app/templates/deployment.yaml: BUCKET_ACCESS_KEY /
    // BUCKET_SECRET_KEY from `secretKeyRef`); nothing of it is in git.
    for component in ["app", "parquet", "weave"] {
        let d = r.deployment("s3-url-secret", component);
        assert_secret(&d, "BUCKET", "wandb-bucket", "url");
        for absent in ["BUCKET_NAME", "BUCKET_ACCESS_KEY", "BUCKET_SECRET_KEY"] {
            assert!(var(&d, absent).is_none(), "{component}: {absent}");
        }
    }
    // With urlSecret the access keys are still there, each from its own
    // Secret reference, under the chart's names.
    let d = r.deployment("s3-url-secret-keys", "app");
    assert_secret(&d, "BUCKET", "wandb-bucket", "url");
    assert_secret(&d, "BUCKET_ACCESS_KEY", "wandb-bucket-keys", "access");
    assert_secret(&d, "BUCKET_SECRET_KEY", "wandb-bucket-keys", "secret");

    // GCS: templates/_bucket.tpl, provider gcs: url `gs://$(BUCKET_NAME)`;
    // templates/bucket.yaml: BUCKET_NAME is the bucket's name.
    let d = r.deployment("gcs", "app");
    assert_eq!(value(&d, "BUCKET_NAME"), "abc-wandb-moving-pipefish");
    assert_eq!(value(&d, "BUCKET"), "gs://$(BUCKET_NAME)");
    assert_eq!(expanded(&d, "BUCKET"), "gs://abc-wandb-moving-pipefish");

    // AWS S3: templates/_bucket.tpl, provider s3 without keys: `s3://$(BUCKET_NAME)`;
    // templates/bucket.yaml: AWS_REGION and AWS_S3_KMS_ID.
    let d = r.deployment("aws-s3", "app");
    assert_eq!(value(&d, "BUCKET"), "s3://$(BUCKET_NAME)");
    assert_eq!(value(&d, "AWS_REGION"), "us-east-1");
    assert_eq!(value(&d, "AWS_S3_KMS_ID"), "arn:aws:kms:us-east-1:1:key/k");
    // With keys: `s3://$(BUCKET_ACCESS_KEY):$(BUCKET_SECRET_KEY)@$(BUCKET_NAME)`.
    let d = r.deployment("aws-s3-keys", "parquet");
    assert_eq!(
        value(&d, "BUCKET"),
        "s3://$(BUCKET_ACCESS_KEY):$(BUCKET_SECRET_KEY)@$(BUCKET_NAME)"
    );
    assert_secret(&d, "BUCKET_ACCESS_KEY", "wandb-bucket-keys", "access");
    assert_secret(&d, "BUCKET_SECRET_KEY", "wandb-bucket-keys", "secret");

    // Azure: templates/_bucket.tpl, provider az: `az://$(BUCKET_NAME)`;
    // charts/app/templates/deployment.yaml: the key in AZURE_STORAGE_KEY.
    let d = r.deployment("azure", "app");
    assert_eq!(value(&d, "BUCKET"), "az://$(BUCKET_NAME)");
    assert_eq!(expanded(&d, "BUCKET"), "az://wandb-container");
    assert_secret(&d, "AZURE_STORAGE_KEY", "wandb-bucket", "storage-key");

    // --- MySQL and license ------------------------------------------------
    // charts/app/templates/deployment.yaml: MYSQL_* and the MYSQL URL.
    let d = r.deployment("gcs", "app");
    assert_eq!(value(&d, "MYSQL_HOST"), "10.218.0.2");
    assert_eq!(value(&d, "MYSQL_PORT"), "3306");
    assert_eq!(value(&d, "MYSQL_DATABASE"), "wandb_local");
    assert_eq!(value(&d, "MYSQL_USER"), "wandb");
    assert_secret(&d, "MYSQL_PASSWORD", "wandb-mysql", "password");
    assert_eq!(
        value(&d, "MYSQL"),
        "mysql://$(MYSQL_USER):$(MYSQL_PASSWORD)@$(MYSQL_HOST):$(MYSQL_PORT)/$(MYSQL_DATABASE)"
    );
    // Same file: LICENSE and GORILLA_LICENSE from global.licenseSecret.
    for name in ["LICENSE", "GORILLA_LICENSE"] {
        assert_secret(&d, name, "wandb-license", "license");
    }
    assert_eq!(value(&d, "HOST"), "https://abc-wandb.sandbox-gcp.wandb.ml");

    // --- Ingress ----------------------------------------------------------
    // templates/_ingress.tpl `defaultHost`: global.host without its scheme
    // is the rule's host.
    let ing = r.object("ingress-plain", "ingress-wandb.yaml");
    let rule = &ing["spec"]["rules"][0];
    assert_eq!(rule["host"], "abc-wandb.sandbox-gcp.wandb.ml");
    assert_eq!(rule["http"]["paths"][0]["path"], "/");
    assert!(ing["spec"].get("tls").is_none(), "{ing}");
    let ing = r.object("ingress-host-path", "ingress-wandb.yaml");
    assert_eq!(ing["spec"]["rules"][0]["host"], "a.example.com");
    let ing = r.object("ingress-host-override", "ingress-wandb.yaml");
    assert_eq!(ing["spec"]["rules"][0]["host"], "wandb.internal");
    // templates/ingress.yaml: `tls: {{ toYaml .Values.ingress.tls }}`.
    let ing = r.object("ingress-tls", "ingress-wandb.yaml");
    assert_eq!(
        ing["spec"]["tls"],
        json!([{"secretName": "wandb-ingress-tls", "hosts": ["abc-wandb.sandbox-gcp.wandb.ml"]}])
    );
    // templates/ingress.yaml: `toYaml .Values.ingress.annotations`.
    let ing = r.object("ingress-nginx", "ingress-wandb.yaml");
    assert_eq!(
        ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
        "64m"
    );

    // --- Service accounts -------------------------------------------------
    // charts/app/templates/_helpers.tpl `app.serviceAccountName` (the same in
    // charts/parquet and charts/console): the name given, created when
    // `create: true`. One account of that name, shared, instead of two.
    let sa = |env: &str| -> BTreeSet<String> {
        r.files(env)
            .into_iter()
            .filter(|f| f.starts_with("serviceaccount-"))
            .collect()
    };
    let account = |env: &str, c: &str| pod(&r.deployment(env, c))["serviceAccountName"].clone();
    let one = BTreeSet::from(["serviceaccount-custom-service-account.yaml".to_string()]);
    assert_eq!(sa("sa-app-parquet"), one);
    assert_eq!(account("sa-app-parquet", "app"), "custom-service-account");
    assert_eq!(
        account("sa-app-parquet", "parquet"),
        "custom-service-account"
    );
    assert_eq!(sa("sa-app-console"), one);
    assert_eq!(
        account("sa-app-console", "console"),
        "custom-service-account"
    );
    assert_eq!(sa("sa-existing"), BTreeSet::new());
    assert_eq!(account("sa-existing", "app"), "custom-service-account");
    assert_eq!(account("sa-existing", "parquet"), "custom-service-account");
    assert_eq!(
        sa("sa-different"),
        BTreeSet::from(["serviceaccount-another-custom-service-account.yaml".to_string()])
    );
    assert_eq!(account("sa-different", "app"), "custom-service-account");
    assert_eq!(
        account("sa-different", "console"),
        "another-custom-service-account"
    );
    assert_eq!(
        sa("sa-two-created"),
        BTreeSet::from([
            "serviceaccount-another-custom-service-account.yaml".to_string(),
            "serviceaccount-custom-service-account.yaml".to_string()
        ])
    );

    // --- Redis ------------------------------------------------------------
    // templates/_redis.tpl `wandb.redis.connectionString` with a password
    // Secret: `redis://:$(A_REDIS_PASSWORD)@$(REDIS_HOST):$(REDIS_PORT)$(REDIS_PARAMS)`;
    // `wandb.redis.parametersQuery` defaults: ttlInSeconds=604800.
    for component in ["app", "parquet", "weave"] {
        let d = r.deployment("redis-password-secret", component);
        assert_secret(&d, "A_REDIS_PASSWORD", "redis-secret", "redis-password");
        assert_eq!(
            value(&d, "REDIS"),
            "redis://:$(A_REDIS_PASSWORD)@$(REDIS_HOST):$(REDIS_PORT)$(REDIS_PARAMS)"
        );
        assert_eq!(
            expanded(&d, "REDIS"),
            "redis://:$(A_REDIS_PASSWORD)@redis.example:9001?ttlInSeconds=604800",
            "{component}"
        );
        let n = names(&d);
        let at = |v: &str| n.iter().position(|x| x == v).unwrap();
        assert!(at("A_REDIS_PASSWORD") < at("REDIS"), "{n:?}");
    }
    // parameters and caCert: `_caParams` (caCertPath, where the CA is
    // mounted), the parameters, `_defaultParams` (tls=true with a CA,
    // ttlInSeconds), in that precedence: a caCertPath among the parameters
    // gives way to the mounted CA's. The chart writes the keys sorted; the set
    // is what counts.
    let d = r.deployment("redis-params-ca", "app");
    let url = expanded(&d, "REDIS");
    let (base, query) = url.split_once('?').unwrap();
    assert_eq!(base, "redis://redis.example:6379");
    let got: BTreeSet<&str> = query.split('&').collect();
    assert_eq!(
        got,
        BTreeSet::from([
            "caCertPath=/etc/ssl/certs/redis_ca.pem",
            "maxRetries=5",
            "tls=true",
            "ttlInSeconds=604800"
        ])
    );
    // charts/app/templates/deployment.yaml: the CA mounted at that path.
    for component in ["app", "parquet", "weave"] {
        let d = r.deployment("redis-params-ca", component);
        assert!(
            mounts(&d).contains(&json!({"name": "redis-ca", "mountPath": "/etc/ssl/certs/redis_ca.pem", "subPath": "redis_ca.pem", "readOnly": true})),
            "{component}: {:?}",
            mounts(&d)
        );
    }
    let ca = r.object("redis-params-ca", "configmap-wandb-redis-ca.yaml");
    assert!(
        ca["data"]["redis_ca.pem"]
            .as_str()
            .unwrap()
            .contains("RedisCA")
    );

    // --- LDAP -------------------------------------------------------------
    // Chart 0.31.4 has no LDAP template: the names are wandb/local's
    // LOCAL_LDAP_* variables the reference's keys stand for.
    let d = r.deployment("ldap", "app");
    assert_eq!(value(&d, "LOCAL_LDAP_LOGIN"), "true");
    assert_eq!(value(&d, "LOCAL_LDAP_ADDRESS"), "ldap://ldap.example.com");
    assert_eq!(value(&d, "LOCAL_LDAP_BASE_DN"), "dc=example,dc=com");
    assert_eq!(
        value(&d, "LOCAL_LDAP_BIND_DN"),
        "cn=wandb,dc=example,dc=com"
    );
    assert_secret(&d, "LOCAL_LDAP_BIND_PW", "wandb-ldap", "bind-password");
    assert_eq!(value(&d, "LOCAL_LDAP_TLS_ENABLE"), "false");
    let d = r.deployment("ldap-tls", "app");
    assert_eq!(value(&d, "LOCAL_LDAP_TLS_ENABLE"), "true");
    let path = value(&d, "LOCAL_LDAP_TLS_CERT_PATH");
    assert!(
        mounts(&d).iter().any(|m| m["mountPath"] == path.as_str()),
        "{path}: {:?}",
        mounts(&d)
    );
    let volumes = pod(&d)["volumes"].as_array().unwrap();
    assert!(
        volumes.contains(&json!({"name": "ldap-tls-cert", "configMap": {"name": "ldap-tls-cert", "items": [{"key": "certificate.crt", "path": "ldap_ca.crt"}]}})),
        "{volumes:?}"
    );

    // --- OIDC, SMTP -------------------------------------------------------
    // charts/app/templates/deployment.yaml: OIDC_CLIENT_ID, OIDC_AUTH_METHOD,
    // OIDC_ISSUER, OIDC_CLIENT_SECRET; GORILLA_SESSION_LENGTH `<hours>h`.
    let d = r.deployment("oidc", "app");
    assert_eq!(value(&d, "OIDC_CLIENT_ID"), "wandb-client");
    assert_eq!(value(&d, "OIDC_AUTH_METHOD"), "pkce");
    assert_eq!(value(&d, "OIDC_ISSUER"), "https://idp.example.com");
    assert_secret(&d, "OIDC_CLIENT_SECRET", "wandb-oidc", "client-secret");
    assert_eq!(expanded(&d, "GORILLA_SESSION_LENGTH"), "720h");
    // Same file: GORILLA_EMAIL_SINK `smtp://USER:PASSWORD@HOST:PORT`.
    let d = r.deployment("smtp", "app");
    assert_secret(&d, "SMTP_PASSWORD", "wandb-smtp", "password");
    assert_eq!(
        expanded(&d, "GORILLA_EMAIL_SINK"),
        "smtp://wandb:$(SMTP_PASSWORD)@smtp.example.com:587"
    );

    // --- extraEnv, customCACerts ------------------------------------------
    // charts/*/templates/_helpers.tpl `*.extraEnv`: global.extraEnv on every
    // subsystem.
    for component in ["app", "console", "parquet", "weave"] {
        let d = r.deployment("extra-env", component);
        assert_eq!(value(&d, "GLOBAL_ENV"), "example", "{component}");
    }
    // templates/certs.yaml: customCA<i>.crt in one ConfigMap;
    // charts/app and charts/parquet deployment.yaml: each mounted with
    // subPath at /usr/local/share/ca-certificates/customCA<i>.crt.
    let cm = r.object("custom-ca-certs", "configmap-wandb-ca-certs.yaml");
    let keys: Vec<&String> = cm["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["customCA0.crt", "customCA1.crt"]);
    for component in ["app", "parquet"] {
        let d = r.deployment("custom-ca-certs", component);
        for i in 0..2 {
            assert!(
                mounts(&d).contains(&json!({"name": "ca-certs", "mountPath": format!("/usr/local/share/ca-certificates/customCA{i}.crt"), "subPath": format!("customCA{i}.crt"), "readOnly": true})),
                "{component}: {:?}",
                mounts(&d)
            );
        }
    }
}

#[test]
fn the_plaintext_form_of_each_reference_example_is_refused_naming_it() {
    // (the reference's form, its YAML in pinned.yaml, the key named)
    let forms = [
        (
            "extraEnv.BUCKET: s3://wandb:changeme@…",
            "global:\n  extraEnv:\n    BUCKET: \"s3://wandb:changeme@mydb.com/wandb?tls=true\"\n",
            "global.extraEnv.BUCKET",
        ),
        (
            "mysql.password",
            "global:\n  mysql:\n    password: 8wtX6cJHizAZvYScjDzZcUarK4zZGjpV\n",
            "global.mysql.password",
        ),
        (
            "license",
            "global:\n  license: eyJhbGnUzaHgyQjQy-VFnPS_KETXg1hi\n",
            "global.license",
        ),
        (
            "bucket.secretKey",
            "global:\n  bucket:\n    provider: az\n    name: b\n    secretKey: azure-key-abc==\n",
            "global.bucket.secretKey",
        ),
        (
            "redis.password",
            "global:\n  redis:\n    password: supersecret\n",
            "global.redis.password",
        ),
        (
            "ldap.bindPW",
            "global:\n  ldap:\n    bindPW: ldap-pw-1\n",
            "global.ldap.bindPW",
        ),
        (
            "auth.oidc.secret",
            "global:\n  auth:\n    oidc:\n      secret: oidc-pw-1\n",
            "global.auth.oidc.secret",
        ),
        (
            "email.smtp.password",
            "global:\n  email:\n    smtp:\n      password: smtp-pw-1\n",
            "global.email.smtp.password",
        ),
    ];
    for (form, yaml, key) in forms {
        let ex = Example::new();
        ex.write("environments/dev/pinned.yaml", yaml);
        let run = ex.run(&["render", "--env", "dev"]);
        assert_eq!(run.code, 1, "{form}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("key `{key}` holds a plaintext credential")),
            "{form}: {}",
            run.stderr
        );
    }
}
