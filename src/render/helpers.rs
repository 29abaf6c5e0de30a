//! The template helpers: the ones Helm users expect, made YAML-safe.
//!
//! Every helper computes a JSON value ([`HelperDef::call_inner`], used when it is
//! a subexpression) and, when it is an expression of its own, writes that value
//! as a sentinel (see [`super::safe`]) so its type survives and its text cannot
//! change the manifest's structure. `toYaml`, `include`, `quote`, `indent` and
//! `nindent` produce trusted structure instead, with the values inside still
//! sentinels. Built-in Handlebars helpers (`if`, `each`, `with`, `eq`, `ne`,
//! `and`, `or`, `not`, …) are used as they are.

use base64::Engine as _;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, PathAndJson, RenderContext,
    RenderError, RenderErrorReason, ScopedJson,
};
use serde_json::Value;
use sha2::Digest;

use super::guard;
use super::safe;
use crate::yaml;

/// The hidden helper every plain `{{path}}` expression is rewritten to call.
pub const VALUE_HELPER: &str = "__hydrant_value";

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Value,
    ToYaml,
    Quote,
    Default,
    Required,
    B64enc,
    Sha256sum,
    Indent,
    Nindent,
    Lower,
    Upper,
    Include,
}

/// The helpers by the name templates call them.
pub const HELPERS: [(&str, Kind); 12] = [
    (VALUE_HELPER, Kind::Value),
    ("toYaml", Kind::ToYaml),
    ("quote", Kind::Quote),
    ("default", Kind::Default),
    ("required", Kind::Required),
    ("b64enc", Kind::B64enc),
    ("sha256sum", Kind::Sha256sum),
    ("indent", Kind::Indent),
    ("nindent", Kind::Nindent),
    ("lower", Kind::Lower),
    ("upper", Kind::Upper),
    ("include", Kind::Include),
];

pub struct Hydrant(pub Kind);

/// Called at the start and the end of every template and inline partial (see
/// `guard_depth`): they count how deep partials include one another on this
/// thread, so that a partial including itself is an error, not a stack overflow.
pub const ENTER_HELPER: &str = "__hydrant_enter";
pub const LEAVE_HELPER: &str = "__hydrant_leave";
/// How deep templates may include one another.
pub const MAX_INCLUDE_DEPTH: usize = 32;

thread_local! {
    static INCLUDE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Starts counting afresh: a render that failed midway never left its partials.
pub fn reset_include_depth() {
    INCLUDE_DEPTH.set(0);
}

/// [`ENTER_HELPER`] (`true`) or [`LEAVE_HELPER`]; writes nothing.
pub struct IncludeDepth(pub bool);

impl HelperDef for IncludeDepth {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        _: &mut dyn Output,
    ) -> HelperResult {
        let depth = INCLUDE_DEPTH.get();
        if !self.0 {
            INCLUDE_DEPTH.set(depth.saturating_sub(1));
        } else if depth >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "partials include one another more than {MAX_INCLUDE_DEPTH} levels deep: does a partial include itself?"
            )));
        } else {
            INCLUDE_DEPTH.set(depth + 1);
        }
        Ok(())
    }
}

fn fail(message: String) -> RenderError {
    RenderErrorReason::Other(message).into()
}

/// The key path a parameter was read from, as the user wrote it in values.
fn key_path(p: &PathAndJson<'_>) -> Option<Vec<String>> {
    p.context_path().cloned().or_else(|| {
        p.relative_path()
            .map(|r| r.split(['.', '/']).map(String::from).collect())
    })
}

/// How a parameter is named in an error: `global.host` for `values.global.host`.
fn shown(p: &PathAndJson<'_>) -> String {
    match key_path(p) {
        Some(path) => {
            let path = match path.first().map(String::as_str) {
                Some("values") if path.len() > 1 => &path[1..],
                _ => &path[..],
            };
            yaml::display_path(path)
        }
        None => "a literal".to_string(),
    }
}

fn param<'a, 'rc>(h: &'a Helper<'rc>, i: usize) -> Result<&'a PathAndJson<'rc>, RenderError> {
    h.param(i).ok_or_else(|| {
        fail(format!(
            "`{}` expects at least {} argument{}",
            display_name(h.name()),
            i + 1,
            if i == 0 { "" } else { "s" }
        ))
    })
}

fn display_name(name: &str) -> &str {
    if name == VALUE_HELPER { "value" } else { name }
}

fn allow_plaintext(ctx: &Context) -> bool {
    ctx.data()
        .pointer("/env/allowPlaintextSecrets")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Refuses a credential about to be written literally.
fn guard_secret(p: &PathAndJson<'_>, ctx: &Context) -> Result<(), RenderError> {
    if allow_plaintext(ctx) {
        return Ok(());
    }
    let path = key_path(p).unwrap_or_default();
    let found = guard::secrets_within(&path, p.value(), ctx.data());
    if let Some(first) = found.first() {
        let key = first.last().cloned().unwrap_or_default();
        let shown_path = match first.first().map(String::as_str) {
            Some("values") if first.len() > 1 => &first[1..],
            _ => &first[..],
        };
        return Err(fail(format!(
            "value `{}` looks like a credential and would be written in plain text into a manifest; {}",
            yaml::display_path(shown_path),
            guard::reference_hint(&key)
        )));
    }
    Ok(())
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::Number(_) => false,
    }
}

fn usize_param(h: &Helper<'_>, i: usize) -> Result<usize, RenderError> {
    let p = param(h, i)?;
    p.value()
        .as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| fail(format!("`{}` expects a number of spaces first", h.name())))
}

/// `indent`/`nindent`: trusted text is indented as structure; a plain value is
/// one sentinel after the indentation.
fn indented(h: &Helper<'_>, newline: bool) -> Result<Value, RenderError> {
    let n = usize_param(h, 0)?;
    let text = param(h, 1)?.value();
    let pad = " ".repeat(n);
    let mut out = String::new();
    if newline {
        out.push('\n');
    }
    out.push_str(&pad);
    match text.as_str().and_then(safe::as_trusted) {
        Some(trusted) => out.push_str(&trusted.replace('\n', &format!("\n{pad}"))),
        None => safe::encode_into(&mut out, text, key_path(param(h, 1)?).as_deref()),
    }
    Ok(Value::String(safe::trusted(&out)))
}

/// A value with every string leaf turned into a sentinel, for `toYaml`: its
/// strings come back exactly, and a `Secret` built from them is recognised.
fn seal_strings(v: &Value, key: &mut Vec<String>) -> Value {
    let mut at = |k: String, item: &Value| {
        key.push(k);
        let sealed = seal_strings(item, key);
        key.pop();
        sealed
    };
    match v {
        Value::String(_) => {
            let mut out = String::new();
            safe::encode_into(&mut out, v, Some(key));
            Value::String(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, item)| at(i.to_string(), item))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, item)| (k.clone(), at(k.clone(), item)))
                .collect(),
        ),
        other => other.clone(),
    }
}

impl Hydrant {
    fn eval<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
    ) -> Result<Value, RenderError> {
        match self.0 {
            Kind::Value => {
                let p = param(h, 0)?;
                if p.is_value_missing() {
                    return Err(fail(format!(
                        "missing value `{}`; set it in a value layer, guard it with `{{{{#if}}}}`, or give a `default`",
                        shown(p)
                    )));
                }
                if matches!(p.value(), Value::Object(_) | Value::Array(_)) {
                    return Err(fail(format!(
                        "value `{}` is a map or list and cannot be written as a single value; use `toYaml`",
                        shown(p)
                    )));
                }
                guard_secret(p, ctx)?;
                Ok(p.value().clone())
            }
            Kind::ToYaml => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                let mut key = key_path(p).unwrap_or_default();
                let text = yaml::to_block(&seal_strings(p.value(), &mut key));
                Ok(Value::String(safe::trusted(&text)))
            }
            Kind::Quote => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                let text = match p.value().as_str().and_then(safe::as_trusted) {
                    Some(t) => t.to_string(),
                    None => as_text(p.value()),
                };
                let mut out = String::from("\"");
                safe::encode_into(&mut out, &Value::String(text), key_path(p).as_deref());
                out.push('"');
                Ok(Value::String(safe::trusted(&out)))
            }
            Kind::Default => {
                let fallback = param(h, 0)?;
                match h.param(1) {
                    Some(p) if !p.is_value_missing() && !is_empty(p.value()) => {
                        guard_secret(p, ctx)?;
                        Ok(p.value().clone())
                    }
                    _ => Ok(fallback.value().clone()),
                }
            }
            Kind::Required => {
                let message = param(h, 0)?
                    .value()
                    .as_str()
                    .unwrap_or("a required value is missing")
                    .to_string();
                match h.param(1) {
                    Some(p) if !p.is_value_missing() && !is_empty(p.value()) => {
                        guard_secret(p, ctx)?;
                        Ok(p.value().clone())
                    }
                    Some(p) => Err(fail(format!(
                        "required value `{}` is not set: {message}",
                        shown(p)
                    ))),
                    None => Err(fail(format!("required value is not set: {message}"))),
                }
            }
            Kind::B64enc => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                Ok(Value::String(
                    base64::engine::general_purpose::STANDARD.encode(as_text(p.value())),
                ))
            }
            Kind::Sha256sum => {
                let p = param(h, 0)?;
                let digest = sha2::Sha256::digest(as_text(p.value()).as_bytes());
                Ok(Value::String(hex::encode(digest)))
            }
            Kind::Indent => indented(h, false),
            Kind::Nindent => indented(h, true),
            Kind::Lower | Kind::Upper => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                let s = as_text(p.value());
                Ok(Value::String(if matches!(self.0, Kind::Lower) {
                    s.to_lowercase()
                } else {
                    s.to_uppercase()
                }))
            }
            Kind::Include => {
                let name = param(h, 0)?
                    .value()
                    .as_str()
                    .ok_or_else(|| fail("`include` expects a partial name first".to_string()))?
                    .to_string();
                // `@root` as an argument does not resolve in Handlebars: a missing
                // context means the root.
                let data = match h.param(1) {
                    Some(p) if !p.is_value_missing() => p.value().clone(),
                    _ => ctx.data().clone(),
                };
                if r.get_template(&name).is_none() {
                    return Err(fail(format!(
                        "`include`: no partial named `{name}` in templates/_partials/"
                    )));
                }
                let text = r.render_with_context(&name, &Context::from(data))?;
                Ok(Value::String(safe::trusted(text.trim_end_matches('\n'))))
            }
        }
    }
}

impl HelperDef for Hydrant {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        Ok(ScopedJson::Derived(self.eval(h, r, ctx)?))
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = self.eval(h, r, ctx)?;
        match value.as_str().and_then(safe::as_trusted) {
            Some(text) => out.write(text)?,
            None => {
                // A value read straight from a key carries the key along.
                let key = match self.0 {
                    Kind::Value | Kind::Default | Kind::Required => {
                        h.params().last().and_then(key_path)
                    }
                    _ => None,
                };
                let mut text = String::new();
                safe::encode_into(&mut text, &value, key.as_deref());
                out.write(&text)?;
            }
        }
        Ok(())
    }
}
