//! Checks of the parsers that read outside input, shared by the fuzz targets in
//! `fuzz/` and by `tests/fuzz_seeds.rs`, which runs them over the committed seeds
//! and past crashes on stable Rust. Not part of hydrant's API.
//!
//! Each check takes the bytes of one input and panics when hydrant breaks a
//! promise on it: a parser panics or overflows its stack, an error fails to name
//! its file or points at a line the input does not have, a render differs
//! between two runs or writes a file outside its directory, or a value written
//! back with the canonical YAML writer reads back as something else. Refusing
//! bad input with an error is what hydrant should do, and passes.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::{CommandFactory, FromArgMatches};
use serde_json::{Value, json};

use crate::channel::{self, ChannelSpec};
use crate::cli;
use crate::config::{self, EnvironmentConfig};
use crate::manifest::layout;
use crate::pipeline;
use crate::render::{Engine, TemplateFile, safe};
use crate::repo::EnvironmentFiles;
use crate::settings;
use crate::spec::{Layer, LayerKind};
use crate::yaml;

/// hydrant reads files as UTF-8 and refuses anything else before parsing.
fn utf8(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// How many lines `text` has, counting every line break YAML knows.
fn line_count(text: &str) -> usize {
    1 + text.replace("\r\n", "\n").matches(['\n', '\r']).count()
}

fn assert_line(line: usize, text: &str, error: &dyn Display) {
    let lines = line_count(text);
    assert!(
        (1..=lines).contains(&line),
        "line {line} is not a line of the input ({lines} lines): {error}"
    );
}

/// A single YAML document as a value, or `None` where hydrant refuses it.
fn read_value(text: &str) -> Option<Value> {
    let node = yaml::parse_single(text).ok()??;
    yaml::to_value(&node, &mut |_, _| {}).ok()
}

/// Writes `value` with the canonical writer and checks that it reads back the same.
fn assert_round_trip(value: &Value) {
    let written = yaml::to_document(value);
    let node = yaml::parse_single(&written).unwrap_or_else(|e| {
        panic!("the canonical writer wrote YAML that hydrant refuses ({e}):\n{written}")
    });
    let back = match node {
        Some(node) => yaml::to_value(&node, &mut |_, _| {}).unwrap_or_else(|e| {
            panic!("the canonical writer wrote YAML that hydrant refuses ({e}):\n{written}")
        }),
        None => Value::Null,
    };
    assert_eq!(&back, value, "read back differently:\n{written}");
}

/// The YAML loader and a values layer (`values.yaml`, `pinned.yaml`): every
/// document's values survive the canonical writer, and every line reported is
/// a line of the input.
pub fn yaml_values(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    match yaml::parse_documents(text) {
        Err(e) => assert_line(e.line, text, &e),
        Ok(docs) => {
            for doc in &docs {
                let mut lines = Vec::new();
                match yaml::to_value(doc, &mut |_, line| lines.push(line)) {
                    Ok(value) => {
                        for line in lines {
                            assert_line(line, text, &"a leaf's line");
                        }
                        assert_round_trip(&value);
                    }
                    Err(e) => assert_line(e.line, text, &e),
                }
            }
        }
    }
    const FILE: &str = "environments/dev/values.yaml";
    match Layer::parse(LayerKind::User, FILE, text) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(FILE),
                "the error does not name the file: {message}"
            );
            let line = match &e {
                crate::spec::SpecError::Yaml { source, .. } => source.line,
                crate::spec::SpecError::NotAMap { line, .. }
                | crate::spec::SpecError::Reserved { line, .. } => *line,
            };
            assert_line(line, text, &message);
        }
        Ok(layer) => {
            for line in layer.lines.values() {
                assert_line(*line, text, &"a layer's line");
            }
            let values = Value::Object(layer.values.clone());
            assert_eq!(safe::find_reserved_in(&values), None);
            let again = Layer::parse(LayerKind::User, FILE, &yaml::to_document(&values))
                .unwrap_or_else(|e| panic!("a layer written back is refused: {e}"));
            assert_eq!(again.values, layer.values);
        }
    }
}

/// A release channel's spec, as a deploy server serves it (JSON) or a mirror
/// holds it (YAML): a spec written back reads as the same spec, and a JSON spec
/// means what a JSON reader says it means.
pub fn channel_spec(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    const ORIGIN: &str = "channels/stable.yaml";
    match channel::parse_spec("stable", ORIGIN, text) {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(ORIGIN),
                "the error does not name the spec: {message}"
            );
        }
        Ok(spec) => {
            assert!(!spec.version.is_empty());
            for line in spec.values.lines.values() {
                assert_line(*line, text, &"a value's line");
            }
            let mut doc = json!({"metadata": spec.metadata, "values": spec.values.values});
            if let Some(chart) = &spec.chart {
                doc["chart"] = chart.clone();
            }
            assert_eq!(safe::find_reserved_in(&doc), None);
            let written = yaml::to_document(&doc);
            let again = channel::parse_spec("stable", ORIGIN, &written)
                .unwrap_or_else(|e| panic!("a spec written back is refused ({e}):\n{written}"));
            assert_eq!(again.version, spec.version);
            assert_eq!(again.metadata, spec.metadata);
            assert_eq!(again.chart, spec.chart);
            assert_eq!(again.values.values, spec.values.values);
        }
    }
    if let Ok(json) = serde_json::from_str::<Value>(text) {
        let read = yaml::parse_single(text).and_then(|node| match node {
            Some(node) => yaml::to_value(&node, &mut |_, _| {}),
            None => Ok(Value::Null),
        });
        match read {
            Ok(value) => assert!(
                same_json(&value, &json),
                "hydrant reads this JSON as {value}, a JSON reader as {json}"
            ),
            // What hydrant refuses on purpose, JSON or not.
            Err(e) => assert!(
                e.message.contains("duplicate key") || e.message.contains("nesting deeper"),
                "hydrant refuses JSON that a JSON reader accepts: {e}"
            ),
        }
    }
}

/// Equal values, where numbers are equal when they are the same number (JSON
/// reads `-0` as the float -0.0, YAML's core schema as the integer 0).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || ((x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn assert_config_error(e: &config::ConfigError, file: &str, text: &str) {
    assert_eq!(e.file, file, "{e}");
    if let Some(line) = e.line {
        assert_line(line, text, e);
    }
}

/// `environment.yaml` and `hydrant.yaml`, the latter all the way through the
/// command line it sets the defaults of.
pub fn settings_file(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    const ENV_FILE: &str = "environments/dev/environment.yaml";
    if let Err(e) = config::parse_required::<EnvironmentConfig>(ENV_FILE, text) {
        assert_config_error(&e, ENV_FILE, text);
    }
    if let Err(e) = settings::SettingsFile::parse(Path::new(config::SETTINGS_FILE), text, false)
        .and_then(|f| f.channel_source())
    {
        assert_config_error(&e, config::SETTINGS_FILE, text);
    }
    let flat = match config::parse_flat(config::SETTINGS_FILE, text) {
        Ok(flat) => flat,
        Err(e) => return assert_config_error(&e, config::SETTINGS_FILE, text),
    };
    for s in &flat {
        assert_line(s.line, text, &s.key);
    }
    let file = settings::SettingsFile {
        path: PathBuf::from("/etc/hydrant/hydrant.yaml"),
        settings: flat,
        operator: true,
        credentials: Default::default(),
    };
    static COMMAND: OnceLock<clap::Command> = OnceLock::new();
    let command = COMMAND.get_or_init(cli::Cli::command).clone();
    if let Err(e) = settings::check(&command, &file) {
        return assert_config_error(&e, "/etc/hydrant/hydrant.yaml", text);
    }
    let command = settings::apply(command, &file);
    for args in [
        &["hydrant", "config", "show"][..],
        &["hydrant", "reconcile", "--once"],
    ] {
        let matches = command.clone().try_get_matches_from(args);
        if let Ok(m) = matches {
            let _ = cli::Cli::from_arg_matches(&m);
        }
    }
}

/// The bundled example's production environment and stable channel, and its partials.
fn example() -> &'static (ChannelSpec, EnvironmentFiles, Vec<TemplateFile>) {
    static EXAMPLE: OnceLock<(ChannelSpec, EnvironmentFiles, Vec<TemplateFile>)> = OnceLock::new();
    EXAMPLE.get_or_init(|| {
        let channel = channel::parse_spec(
            "stable",
            "channels/stable.yaml",
            include_str!("../channels/stable.yaml"),
        )
        .expect("the example's channel spec");
        let config_text = include_str!("../environments/prod/environment.yaml");
        let user_text = include_str!("../environments/prod/values.yaml");
        let custom_text = include_str!("../environments/prod/pinned.yaml");
        let env = EnvironmentFiles {
            name: "prod".to_string(),
            config: config::parse_required("environment.yaml", config_text)
                .expect("the example's environment.yaml"),
            config_text: config_text.to_string(),
            user: Layer::parse(LayerKind::User, "values.yaml", user_text)
                .expect("the example's values.yaml"),
            user_text: Some(user_text.to_string()),
            custom: Layer::parse(LayerKind::Custom, "pinned.yaml", custom_text)
                .expect("the example's pinned.yaml"),
            custom_text: Some(custom_text.to_string()),
        };
        let partial = |name: &str, text: &str| TemplateFile {
            name: format!("_partials/{name}.hbs"),
            text: text.to_string(),
        };
        let partials = vec![
            partial(
                "commonEnv",
                include_str!("../templates/_partials/commonEnv.hbs"),
            ),
            partial(
                "extraEnv",
                include_str!("../templates/_partials/extraEnv.hbs"),
            ),
            partial("labels", include_str!("../templates/_partials/labels.hbs")),
            partial(
                "bucketKeys",
                include_str!("../templates/_partials/bucketKeys.hbs"),
            ),
        ];
        (channel, env, partials)
    })
}

/// A user's template (before a NUL byte) and, after it, a partial `fuzz`,
/// rendered with the bundled example's prod values and partials: the render
/// is the same twice, writes only plain file names and none of hydrant's
/// markers, loses no object, and each file reads back as the object rendered.
pub fn template(data: &[u8]) {
    let Some(text) = utf8(data) else { return };
    let (manifest, partial) = match text.split_once('\0') {
        Some((manifest, partial)) => (manifest, Some(partial)),
        None => (text, None),
    };
    let (channel, env, partials) = example();
    let mut files = partials.clone();
    files.push(TemplateFile {
        name: "fuzz.yaml.hbs".to_string(),
        text: manifest.to_string(),
    });
    if let Some(partial) = partial {
        files.push(TemplateFile {
            name: "_partials/fuzz.hbs".to_string(),
            text: partial.to_string(),
        });
    }
    let engine = match Engine::new(&files) {
        Ok(engine) => engine,
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(e.to_string().starts_with("template `"), "{e}");
            }
            return;
        }
    };
    let first = pipeline::build(&engine, channel, env);
    let second = pipeline::build(&engine, channel, env);
    let rendered = match (first, second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.files, b.files, "two renders differ");
            a
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "two renders fail differently");
            assert!(a.iter().all(|p| !p.message.is_empty()));
            return;
        }
        (a, b) => panic!(
            "one render succeeds, the other fails: {:?}",
            a.err().or(b.err())
        ),
    };
    for (name, text) in &rendered.files {
        assert!(
            !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']),
            "file name `{name}` is not a plain name inside rendered/<env>/"
        );
        assert!(
            crate::render::safe::find_reserved(text).is_none(),
            "hydrant's markers (U+E000..U+E00F) reached `{name}`:\n{text}"
        );
    }
    let names = layout::file_names(&rendered.manifests);
    assert_eq!(
        rendered.files.len(),
        rendered.manifests.len() + 2,
        "two objects share a file: {names:?}"
    );
    for (manifest, name) in rendered.manifests.iter().zip(&names) {
        let text = &rendered.files[name];
        assert_eq!(
            read_value(text).as_ref(),
            Some(&manifest.value),
            "{name}:\n{text}"
        );
    }
}
