//! One environment from inputs to files: layers → merge → render → validate →
//! layout. Pure: the inputs were read by the caller, the files are returned in
//! memory, and a failure lists every problem found.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::channel::ChannelSpec;
use crate::manifest::layout::{self, ChannelInfo, Inputs, Metadata};
use crate::manifest::{Manifest, validate};
use crate::render::Engine;
use crate::repo::EnvironmentFiles;
use crate::spec::{self, Layer, Merged};

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
    let channel_json = serde_json::to_string(&json!({
        "metadata": channel.metadata,
        "chart": channel.chart,
        "values": channel.values.values,
    }))
    .unwrap_or_default();
    Inputs {
        channel: layout::sha256(channel_json.as_bytes()),
        environment: layout::sha256(env.config_text.as_bytes()),
        values: env
            .user_text
            .as_deref()
            .map(|t| layout::sha256(t.as_bytes())),
        pinned: env
            .custom_text
            .as_deref()
            .map(|t| layout::sha256(t.as_bytes())),
        templates: engine.digest().to_string(),
    }
}

/// Renders one environment.
pub fn build(
    engine: &Engine,
    channel: &ChannelSpec,
    env: &EnvironmentFiles,
) -> Result<Rendered, Vec<Problem>> {
    let merged = spec::merge(&layers(channel, env));
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
            message: e.to_string(),
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
        max_deletions: env.config.max_deletions,
        mass_deletion: env
            .config
            .allow_mass_deletion
            .then_some(crate::config::Allowance::Environment),
    })
}
