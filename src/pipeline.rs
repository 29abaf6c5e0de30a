//! One environment from inputs to files: layers → merge → render → validate →
//! layout. Pure: the inputs were read by the caller, the files are returned in
//! memory, and a failure lists every problem found.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::channel::ChannelSpec;
use crate::manifest::layout::{self, ChannelInfo, Inputs, Metadata, TextDigests};
use crate::manifest::{Manifest, validate};
use crate::render::Engine;
use crate::repo::EnvironmentFiles;
use crate::spec::{self, KnownKeys, Layer, Merged, UnknownKeys};

/// A problem that stops an environment from rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub message: String,
    pub hint: Option<String>,
    /// Whether the problem may pass by itself (a channel that cannot be
    /// reached), rather than wait for the inputs to change.
    pub transient: bool,
}

impl Problem {
    pub fn new(message: impl ToString) -> Problem {
        Problem {
            message: message.to_string(),
            hint: None,
            transient: false,
        }
    }

    /// An environment that renders no resources: delivered, it would have
    /// Argo CD or Flux delete everything the environment runs.
    pub fn no_resources(env: &str) -> Problem {
        Problem {
            message: format!(
                "`{env}` renders no resources: delivered, it would have Argo CD or Flux delete everything the environment runs"
            ),
            hint: Some(format!(
                "check that the channel spec and `environments/{env}/` still install the application; `hydrant explain --env {env} KEY` shows what each layer sets"
            )),
            transient: false,
        }
    }
}

/// An environment, rendered.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub env: String,
    pub manifests: Vec<Manifest>,
    /// The files of `rendered/<env>/`, by name.
    pub files: BTreeMap<String, String>,
    pub merged: Merged,
    pub metadata: Metadata,
    /// How the environment wants its pull requests.
    pub pull_request: crate::config::PullRequestSettings,
    /// What the render let pass but a person should see (keys no template
    /// knows, under `unknownKeys: warn`).
    pub warnings: Vec<String>,
    /// How many of its resources one delivery may delete.
    pub max_deletions: crate::config::MaxDeletions,
    /// Who allowed a delivery to delete more, if anyone.
    pub mass_deletion: Option<crate::config::Allowance>,
}

/// The layers of an environment, lowest first.
pub fn layers<'a>(channel: &'a ChannelSpec, env: &'a EnvironmentFiles) -> [&'a Layer; 3] {
    [&channel.values, &env.user, &env.custom]
}

/// The digest of everything that decides an environment's output.
pub fn inputs(engine: &Engine, channel: &ChannelSpec, env: &EnvironmentFiles) -> Inputs {
    let digests = TextDigests::of(
        &env.config_text,
        env.user_text.as_deref(),
        env.custom_text.as_deref(),
    );
    inputs_of(engine, &channel_digest(channel), &digests)
}

/// The digest of a channel spec as the inputs' digest counts it: the same
/// for every environment that follows it, so computed once per spec.
pub fn channel_digest(channel: &ChannelSpec) -> String {
    let channel_json = serde_json::to_string(&json!({
        "metadata": channel.metadata,
        "chart": channel.chart,
        "values": channel.values.values,
    }))
    .unwrap_or_default();
    layout::sha256(channel_json.as_bytes())
}

/// [`inputs`] from the digests of an environment's files, its channel
/// spec's digest already taken ([`channel_digest`]): no file needs parsing,
/// or even reading.
pub fn inputs_of(engine: &Engine, channel_digest: &str, files: &TextDigests) -> Inputs {
    Inputs {
        channel: channel_digest.to_string(),
        environment: files.environment.clone(),
        values: files.values.clone(),
        pinned: files.pinned.clone(),
        templates: engine.digest().to_string(),
    }
}

/// The plaintext credentials of the value layers, unless the environment
/// allows them.
fn credential_problems(
    channel: &ChannelSpec,
    env: &EnvironmentFiles,
    merged: &Merged,
) -> Vec<Problem> {
    if env.config.allow_plaintext_secrets {
        return Vec::new();
    }
    spec::plaintext_credentials(&layers(channel, env), merged)
        .into_iter()
        .map(|c| Problem {
            message: c.to_string(),
            hint: Some(c.hint),
            transient: false,
        })
        .collect()
}

/// The values that the channel's schema refuses, every one.
fn schema_problems(channel: &ChannelSpec, env: &EnvironmentFiles, merged: &Merged) -> Vec<Problem> {
    let Some(schema) = &channel.schema else {
        return Vec::new();
    };
    match spec::compile_schema(schema) {
        Ok(schema) => schema
            .check(merged)
            .into_iter()
            .map(|v| Problem {
                message: v.to_string(),
                hint: Some(format!(
                    "the values schema comes with channel `{}` {}; `hydrant explain --env {} KEY` shows what each layer sets",
                    channel.channel, channel.version, env.name
                )),
                transient: false,
            })
            .collect(),
        Err(e) => vec![Problem::new(format!(
            "channel `{}` {}: {e}",
            channel.channel, channel.version
        ))],
    }
}

/// Refuses, before anything is rendered: plaintext credentials in the value
/// layers first (with the reference form to use), then keys nothing reads
/// (with the closest known key; `unknownKeys: warn` turns them into
/// `warnings`), then, once those are fixed, what the channel's values schema
/// refuses (a misspelt key would otherwise show twice, the second time as
/// the schema's less helpful "additional property").
fn check_values(
    engine: &Engine,
    channel: &ChannelSpec,
    env: &EnvironmentFiles,
    merged: &Merged,
    warnings: &mut Vec<String>,
) -> Result<(), Vec<Problem>> {
    let mut problems = credential_problems(channel, env, merged);
    let unknown = unknown_keys(engine, channel, env);
    if env.config.unknown_keys == Some(UnknownKeys::Warn) {
        warnings.extend(unknown.iter().map(ToString::to_string));
    } else {
        // A credential a layer should not hold is reported as such, even
        // where no template reads that key.
        let reported: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
        problems.extend(
            unknown
                .iter()
                .filter(|u| !reported.iter().any(|m| m.contains(&format!("`{}", u.key))))
                .map(|u| Problem {
                    message: u.to_string(),
                    hint: Some(format!(
                        "fix or remove the key; if a template is meant to read it, refer to it there; `unknownKeys: warn` in environments/{}/environment.yaml lets it pass with a warning",
                        env.name
                    )),
                    transient: false,
                }),
        );
    }
    if problems.is_empty() {
        problems.extend(schema_problems(channel, env, merged));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A render error that names a value (``value `a.b` ...``) gains the layer,
/// file and line that set it: the template line alone does not say which
/// file to fix.
fn with_value_origin(message: String, merged: &Merged) -> String {
    let Some(start) = message.find("value `").map(|i| i + "value `".len()) else {
        return message;
    };
    let Some(len) = message[start..].find('`') else {
        return message;
    };
    let shown = &message[start..start + len];
    let origin = merged.provenance.iter().find_map(|(path, origin)| {
        let p = crate::yaml::display_path(path);
        (p == shown || p.starts_with(&format!("{shown}.")) || p.starts_with(&format!("{shown}[")))
            .then_some(origin)
    });
    match origin {
        Some(origin) => format!("{message} (the value comes from the {origin})"),
        None => message,
    }
}

/// Renders one environment.
pub fn build(
    engine: &Engine,
    channel: &ChannelSpec,
    env: &EnvironmentFiles,
) -> Result<Rendered, Vec<Problem>> {
    let merged = spec::merge(&layers(channel, env));
    let mut warnings = Vec::new();
    check_values(engine, channel, env, &merged, &mut warnings)?;
    let mut data = json!({
        "env": {
            "name": env.name,
            "namespace": env.config.namespace,
            "allowPlaintextSecrets": env.config.allow_plaintext_secrets,
        },
        "channel": {"name": channel.channel, "version": channel.version},
        "chart": channel.chart.clone().unwrap_or(Value::Null),
    });
    // The value layers and channel specs are checked where they are read;
    // this covers everything else the templates see.
    if let Some((path, c)) = crate::render::safe::find_reserved_in(&data) {
        return Err(vec![Problem::new(format!(
            "`{}` holds the reserved character U+{:04X}, which hydrant keeps for itself",
            crate::yaml::display_path(&path),
            c as u32
        ))]);
    }
    data["values"] = merged.values.clone();
    let docs = engine.render(data).map_err(|e| {
        let hint = match &e {
            crate::render::RenderError::Render { message, .. }
                if message.starts_with("missing value")
                    || message.starts_with("required value") =>
            {
                Some(format!(
                    "`hydrant explain --env {} KEY` shows what each layer sets",
                    env.name
                ))
            }
            _ => None,
        };
        vec![Problem {
            message: with_value_origin(e.to_string(), &merged),
            hint,
            transient: false,
        }]
    })?;
    let mut problems = Vec::new();
    let mut manifests = Vec::with_capacity(docs.len());
    for doc in docs {
        match Manifest::from_doc(doc, &env.config.namespace) {
            Ok(m) => manifests.push(m),
            Err(e) => problems.push(Problem::new(e)),
        }
    }
    if manifests.is_empty() && problems.is_empty() {
        problems.push(Problem::no_resources(&env.name));
    }
    problems.extend(
        validate::validate(&manifests, env.config.allow_plaintext_secrets)
            .into_iter()
            .map(Problem::new),
    );
    problems.extend(
        layout::check_file_names(&manifests)
            .into_iter()
            .map(Problem::new),
    );
    if !problems.is_empty() {
        return Err(problems);
    }
    let inputs = inputs(engine, channel, env);
    let mut metadata = Metadata {
        environment: env.name.clone(),
        namespace: env.config.namespace.clone(),
        channel: ChannelInfo {
            name: channel.channel.clone(),
            version: channel.version.clone(),
            release: env.config.release.clone(),
        },
        digest: inputs.digest(),
        inputs,
        renderer: layout::RENDERER,
        resources: manifests.len(),
        outputs: String::new(),
    };
    let files = layout::files(&manifests, &mut metadata);
    Ok(Rendered {
        env: env.name.clone(),
        manifests,
        files,
        merged,
        metadata,
        pull_request: env.config.pull_request.clone(),
        warnings,
        max_deletions: env.config.max_deletions,
        mass_deletion: env
            .config
            .allow_mass_deletion
            .then_some(crate::config::Allowance::Environment),
    })
}

/// The keys of the environment's `values.yaml` and `pinned.yaml` that no
/// template reads and the channel does not define.
pub fn unknown_keys(
    engine: &Engine,
    channel: &ChannelSpec,
    env: &EnvironmentFiles,
) -> Vec<spec::UnknownKey> {
    let defined = defined_by(channel);
    let known = [engine.known_keys(), &defined];
    [&env.user, &env.custom]
        .into_iter()
        .flat_map(|layer| spec::unknown_keys(&known, layer))
        .collect()
}

/// Whether `path` is a key some template reads or the channel defines; if
/// not, why, with the closest known key.
pub fn unknown_path(
    engine: &Engine,
    channel: &ChannelSpec,
    path: &[String],
) -> Option<spec::UnknownKey> {
    let defined = defined_by(channel);
    spec::unknown_path(&[engine.known_keys(), &defined], path)
}

/// The keys a channel spec defines, and those its values schema declares.
pub(crate) fn defined_by(channel: &ChannelSpec) -> KnownKeys {
    let mut defined = KnownKeys::default();
    defined.define(&channel.values.values);
    if let Some(schema) = &channel.schema {
        defined.declare(spec::declared_keys(schema));
    }
    defined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::LayerKind;

    #[test]
    fn a_render_error_naming_a_value_names_the_layer_file_and_line_that_set_it() {
        let c = Layer::parse(
            LayerKind::Channel,
            "channels/stable.yaml",
            "app:\n  replicas: 1\n",
        )
        .unwrap();
        let u = Layer::parse(
            LayerKind::User,
            "environments/dev/values.yaml",
            "# dev\napp:\n  image:\n    tag: {a: 1}\n",
        )
        .unwrap();
        let merged = spec::merge(&[&c, &u]);
        let message = with_value_origin(
            "value `app.image.tag` is a map or list and cannot be written as a single value; use `toYaml`"
                .to_string(),
            &merged,
        );
        assert!(
            message.ends_with(
                "(the value comes from the user input (environments/dev/values.yaml:4))"
            ),
            "{message}"
        );
        let untouched = "missing value `app.nothing`".to_string();
        assert_eq!(with_value_origin(untouched.clone(), &merged), untouched);
    }
}
