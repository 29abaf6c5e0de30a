//! Handlebars templates to Kubernetes objects, safely.
//!
//! An [`Engine`] compiles a config repository's templates once and renders them
//! for any number of environments, from any number of threads. Rendering is pure:
//! values in, parsed YAML documents out. A value can never change the structure
//! of what a template writes (see [`safe`]), a credential is never written in
//! plain text (see [`guard`]), and a missing value is an error naming the
//! template, line and key. This module knows nothing of files, git or forges.

mod check;
pub(crate) mod guard;
mod helpers;
mod keys;
pub mod safe;

pub use guard::{has_credential, has_url_password, is_secret_key};

use handlebars::Handlebars;
use handlebars::template::{Parameter, Template, TemplateElement};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::yaml::{self, Node, NodeKind};

/// A template file: its path below `templates/` and its text.
#[derive(Debug, Clone)]
pub struct TemplateFile {
    pub name: String,
    pub text: String,
}

/// One YAML document rendered by a template.
#[derive(Debug, Clone)]
pub struct RenderedDoc {
    /// The template's path below `templates/`.
    pub template: String,
    /// The document's position in the template's output, from 1.
    pub index: usize,
    pub value: Value,
    /// Paths in `value` whose scalars hold text from values, each with the
    /// keys of the values it holds (`["values", "app", "replicas"]`).
    pub from_values: Vec<(Vec<String>, Vec<Vec<String>>)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("template `{template}`, line {line}: {message}")]
    Syntax {
        template: String,
        line: usize,
        message: String,
    },
    #[error("template `{template}`{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Render {
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error(
        "template `{template}`, document {index}: the rendered output is not valid YAML: {message} (rendered line {line}: `{excerpt}`)"
    )]
    Parse {
        template: String,
        index: usize,
        line: usize,
        message: String,
        excerpt: String,
    },
}

/// The compiled templates of one config repository.
pub struct Engine {
    registry: Handlebars<'static>,
    /// Manifest templates (not partials), in path order.
    templates: Vec<String>,
    digest: String,
    /// The keys below `values` the templates read (see [`keys`]).
    known: crate::spec::KnownKeys,
}

/// Is this file a partial? Partials live in `templates/_partials/`.
fn partial_name(path: &str) -> Option<String> {
    let rest = path.strip_prefix("_partials/")?;
    let rest = rest.strip_suffix(".hbs").unwrap_or(rest);
    Some(rest.strip_suffix(".yaml").unwrap_or(rest).to_string())
}

impl Engine {
    /// Compiles every template; reports every broken one, not only the first.
    pub fn new(files: &[TemplateFile]) -> Result<Engine, Vec<RenderError>> {
        let mut registry = Handlebars::new();
        registry.register_escape_fn(|text| match safe::as_trusted(text) {
            Some(trusted) => trusted.to_string(),
            None => safe::encode(&Value::String(text.to_string())),
        });
        for (name, kind) in helpers::HELPERS {
            registry.register_helper(name, Box::new(helpers::Hydrant(kind)));
        }
        for (name, why) in helpers::REFUSED {
            registry.register_helper(name, Box::new(helpers::Refused(why)));
        }
        // Debug builds only (the tests'): a helper that panics, so tests can
        // show that a bug in one environment's render fails that environment
        // only. Release builds have no such helper.
        #[cfg(debug_assertions)]
        registry.register_helper(
            "hydrantDebugPanic",
            Box::new(
                |_: &handlebars::Helper<'_>,
                 _: &Handlebars<'_>,
                 _: &handlebars::Context,
                 _: &mut handlebars::RenderContext<'_, '_>,
                 _: &mut dyn handlebars::Output|
                 -> handlebars::HelperResult {
                    panic!("hydrantDebugPanic was called")
                },
            ),
        );
        registry.register_helper(helpers::ENTER_HELPER, Box::new(helpers::IncludeDepth(true)));
        registry.register_helper(
            helpers::LEAVE_HELPER,
            Box::new(helpers::IncludeDepth(false)),
        );
        let mut files: Vec<&TemplateFile> = files.iter().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut errors = Vec::new();
        let mut templates = Vec::new();
        let mut hasher = Sha256::new();
        let mut compiled = std::collections::HashMap::new();
        for file in files {
            hasher.update(file.name.as_bytes());
            hasher.update([0]);
            hasher.update(file.text.as_bytes());
            hasher.update([0]);
            if let Err(e) = check::before_compile(&file.name, &file.text) {
                errors.push(e);
                continue;
            }
            let (register_as, is_manifest) = match partial_name(&file.name) {
                Some(p) => (p, false),
                None => (file.name.clone(), true),
            };
            match Template::compile_with_name(&file.text, file.name.clone()) {
                Ok(mut template) => {
                    if let Err(e) = check::compiled(&file.name, &template) {
                        errors.push(e);
                        continue;
                    }
                    compiled.insert(register_as.clone(), template.clone());
                    rewrite_values(&mut template.elements);
                    guard_depth(&mut template);
                    registry.register_template(&register_as, template);
                    if is_manifest {
                        templates.push(file.name.clone());
                    }
                }
                Err(e) => errors.push(RenderError::Syntax {
                    template: file.name.clone(),
                    line: e.pos().map(|(l, _)| l).unwrap_or(0),
                    message: e.reason().to_string(),
                }),
            }
        }
        if errors.is_empty() {
            let known = keys::known_keys(&compiled, &templates);
            Ok(Engine {
                registry,
                templates,
                known,
                digest: hex::encode(hasher.finalize()),
            })
        } else {
            Err(errors)
        }
    }

    /// The keys below `values` that some template reads, in any branch.
    pub fn known_keys(&self) -> &crate::spec::KnownKeys {
        &self.known
    }

    /// A digest of every template's path and text.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Renders every manifest template with `data` as the root context.
    ///
    /// The render of one environment is bounded: see [`helpers::MAX_OUTPUT_BYTES`],
    /// [`helpers::MAX_CALLS`] and [`helpers::MAX_PARTIALS`].
    pub fn render(&self, data: Value) -> Result<Vec<RenderedDoc>, RenderError> {
        let mut docs = Vec::new();
        if let Some((path, _)) = safe::find_reserved_in(&data) {
            return Err(RenderError::Render {
                template: self.templates.first().cloned().unwrap_or_default(),
                line: None,
                message: format!(
                    "value `{}` holds a character hydrant reserves (U+E000..U+E00F)",
                    yaml::display_path(&path)
                ),
            });
        }
        let allow_plaintext = data
            .pointer("/env/allowPlaintextSecrets")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        helpers::start_render(allow_plaintext);
        // One context for every template: Handlebars would otherwise copy the
        // values once per template.
        let context = handlebars::Context::from(data);
        for name in &self.templates {
            let text = helpers::render_counted(&self.registry, name, &context).map_err(|e| {
                let mut message = render_message(&e);
                let template = e.template_name.clone().unwrap_or_else(|| name.clone());
                if &template != name {
                    message.push_str(&format!(" (while rendering `{name}`)"));
                }
                RenderError::Render {
                    template,
                    line: e.line_no,
                    message,
                }
            })?;
            docs.extend(parse_rendered(name, &text)?);
        }
        Ok(docs)
    }
}

fn render_message(e: &handlebars::RenderError) -> String {
    match e.reason() {
        handlebars::RenderErrorReason::Other(m) => m.clone(),
        handlebars::RenderErrorReason::IOError(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// Rewrites every plain `{{path}}` expression into a call of the value helper,
/// so values are written typed and inert, and a missing one is an error.
fn rewrite_values(elements: &mut [TemplateElement]) {
    for element in elements {
        match element {
            TemplateElement::Expression(ht) => {
                let is_value = ht.params.is_empty()
                    && ht.hash.is_empty()
                    && match &ht.name {
                        Parameter::Path(path) => !is_helper(&path_text(path)),
                        _ => false,
                    };
                if is_value {
                    let name = std::mem::replace(
                        &mut ht.name,
                        Parameter::Name(helpers::VALUE_HELPER.to_string()),
                    );
                    ht.params = vec![name];
                }
            }
            TemplateElement::HelperBlock(ht) => {
                if let Some(t) = ht.template.as_mut() {
                    rewrite_values(&mut t.elements);
                }
                if let Some(t) = ht.inverse.as_mut() {
                    rewrite_values(&mut t.elements);
                }
            }
            TemplateElement::PartialBlock(dt) | TemplateElement::DecoratorBlock(dt) => {
                if let Some(t) = dt.template.as_mut() {
                    rewrite_values(&mut t.elements);
                }
            }
            _ => {}
        }
    }
}

/// Makes `template`, and every inline partial in it, count how deep templates
/// include one another while it renders (see [`helpers::IncludeDepth`]). Every
/// cycle of inclusions passes through a template or an inline partial, so the
/// count bounds the recursion whatever names the partials are called by.
fn guard_depth(template: &mut Template) {
    let call = |name: &str| {
        Template::compile(&format!("{{{{{name}}}}}"))
            .ok()
            .and_then(|t| t.elements.into_iter().next())
    };
    if let (Some(enter), Some(leave)) = (call(helpers::ENTER_HELPER), call(helpers::LEAVE_HELPER)) {
        // Each element has its position in `mapping`, for errors' lines.
        let first = template.mapping.first().cloned();
        let last = template.mapping.last().cloned();
        if let (Some(first), Some(last)) = (first, last) {
            template.elements.insert(0, enter);
            template.mapping.insert(0, first);
            template.elements.push(leave);
            template.mapping.push(last);
        }
    }
    guard_inline_partials(&mut template.elements);
}

fn guard_inline_partials(elements: &mut [TemplateElement]) {
    for element in elements {
        match element {
            TemplateElement::HelperBlock(ht) => {
                for t in ht.template.iter_mut().chain(ht.inverse.iter_mut()) {
                    guard_inline_partials(&mut t.elements);
                }
            }
            TemplateElement::DecoratorBlock(dt) => {
                if let Some(t) = dt.template.as_mut() {
                    guard_depth(t);
                }
            }
            TemplateElement::PartialBlock(dt) => {
                if let Some(t) = dt.template.as_mut() {
                    guard_inline_partials(&mut t.elements);
                }
            }
            _ => {}
        }
    }
}

/// Handlebars' built-in helpers and hydrant's: `{{name}}` alone calls these.
fn is_helper(name: &str) -> bool {
    const BUILT_IN: [&str; 17] = [
        "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt",
        "lte", "and", "or", "not", "len",
    ];
    BUILT_IN.contains(&name) || helpers::HELPERS.iter().any(|(n, _)| *n == name)
}

fn path_text(path: &handlebars::Path) -> String {
    match path {
        handlebars::Path::Relative((_, raw)) => raw.clone(),
        handlebars::Path::Local((_, _, raw)) => raw.clone(),
    }
}

/// Parses one template's output and puts the values back into its scalars.
fn parse_rendered(template: &str, text: &str) -> Result<Vec<RenderedDoc>, RenderError> {
    let nodes = yaml::parse_documents(text).map_err(|e| {
        let excerpt = text.lines().nth(e.line.saturating_sub(1)).unwrap_or("");
        RenderError::Parse {
            template: template.to_string(),
            index: document_index(text, e.line),
            line: e.line,
            message: e.message.clone(),
            excerpt: readable(excerpt),
        }
    })?;
    let mut docs = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        let mut from_values = Vec::new();
        let mut path = Vec::new();
        let value = restore(node, &mut path, &mut from_values).map_err(|(line, message)| {
            RenderError::Parse {
                template: template.to_string(),
                index: i + 1,
                line,
                message,
                excerpt: readable(text.lines().nth(line.saturating_sub(1)).unwrap_or("")),
            }
        })?;
        docs.push(RenderedDoc {
            template: template.to_string(),
            index: i + 1,
            value,
            from_values,
        });
    }
    Ok(docs)
}

/// Which document (from 1) a line of a rendered stream falls in.
fn document_index(text: &str, line: usize) -> usize {
    let separators = text
        .lines()
        .take(line.saturating_sub(1))
        .enumerate()
        .filter(|(i, l)| l.starts_with("---") && *i > 0)
        .count();
    separators + 1
}

/// A rendered line for an error message, with values shown as `<value>`.
fn readable(line: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in line.chars() {
        match c {
            safe::OPEN => {
                inside = true;
                out.push_str("<value>");
            }
            safe::CLOSE => inside = false,
            safe::TRUSTED => {}
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

fn restore(
    node: &Node,
    path: &mut Vec<String>,
    from_values: &mut Vec<(Vec<String>, Vec<Vec<String>>)>,
) -> Result<Value, (usize, String)> {
    let at = |message: String| (node.line, message);
    match &node.kind {
        NodeKind::Scalar { text, style, tag } => {
            let whole_allowed = *style == saphyr_parser::ScalarStyle::Plain && tag.is_none();
            match safe::decode_scalar(text, whole_allowed).map_err(at)? {
                safe::Decoded::Literal => {
                    yaml::scalar_value(text, *style, tag.as_deref()).map_err(at)
                }
                safe::Decoded::Whole(v, key) => {
                    from_values.push((path.clone(), key.into_iter().collect()));
                    Ok(v)
                }
                safe::Decoded::Spliced(s, keys) => {
                    from_values.push((path.clone(), keys));
                    match tag {
                        Some(_) => yaml::scalar_value(&s, *style, tag.as_deref()).map_err(at),
                        None => Ok(Value::String(s)),
                    }
                }
            }
        }
        NodeKind::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                let v = restore(item, path, from_values);
                path.pop();
                out.push(v?);
            }
            Ok(Value::Array(out))
        }
        NodeKind::Map(entries) => {
            let mut out = Map::new();
            for (key, value) in entries {
                let (key, keys) = match safe::decode_scalar(key, false).map_err(at)? {
                    safe::Decoded::Literal => (key.clone(), None),
                    safe::Decoded::Whole(v, keys) => (safe::scalar_text(&v), Some(keys)),
                    safe::Decoded::Spliced(s, keys) => (s, Some(keys)),
                };
                if out.contains_key(&key) {
                    return Err((value.line, format!("duplicate key `{key}`")));
                }
                path.push(key.clone());
                // A key written from values is from values too: a Secret's
                // `data` key, say, is as much the user's as its value.
                if let Some(keys) = keys {
                    from_values.push((path.clone(), keys));
                }
                let v = restore(value, path, from_values);
                path.pop();
                out.insert(key, v?);
            }
            Ok(Value::Object(out))
        }
    }
}

#[cfg(test)]
mod tests;
