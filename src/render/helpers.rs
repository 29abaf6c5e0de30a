//! The template helpers: the ones Helm users expect, made YAML-safe.
//!
//! Every helper computes a JSON value ([`HelperDef::call_inner`], used when it is
//! a subexpression) and, when it is an expression of its own, writes that value
//! as a sentinel (see [`super::safe`]) so its type survives and its text cannot
//! change the manifest's structure. `toYaml`, `include`, `quote`, `indent` and
//! `nindent` produce trusted structure instead, with the values inside still
//! sentinels.
//!
//! The sentinel scheme is closed under every helper: a helper that treats its
//! argument as data (`quote`, `b64enc`, `sha256sum`, `upper`, `lower`, `urlHost`,
//! `toYaml`)
//! first turns trusted text and sentinels back into plain text, computes, and
//! writes its result as a sentinel again that keeps the keys of every value it
//! was computed from. No helper ever writes a reserved character as text.
//!
//! Built-in Handlebars helpers (`if`, `each`, `with`, `eq`, `ne`, `and`, `or`,
//! `not`, …) are used as they are, except `lookup`, replaced by one that reads
//! through the credential guard and keeps the key it read, and `log`, refused
//! (it would write values to hydrant's log).
//!
//! Each environment's render is bounded (see [`Budget`]): at most
//! [`MAX_OUTPUT_BYTES`] of output, [`MAX_CALLS`] helper calls and
//! [`MAX_PARTIALS`] templates and partials entered, so a chain of partials each including the next twice fails with
//! an error instead of running for hours.

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
    UrlHost,
    Include,
    Lookup,
}

/// The helpers by the name templates call them.
pub const HELPERS: [(&str, Kind); 14] = [
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
    ("urlHost", Kind::UrlHost),
    ("include", Kind::Include),
    ("lookup", Kind::Lookup),
];

/// Built-in helpers templates may not call, and why.
pub const REFUSED: [(&str, &str); 1] = [(
    "log",
    "`log` would write values, credentials included, to hydrant's log",
)];

pub struct Hydrant(pub Kind);

/// Called at the start and the end of every template and inline partial (see
/// `guard_depth`): they count how deep partials include one another on this
/// thread, so that a partial including itself is an error, not a stack overflow.
pub const ENTER_HELPER: &str = "__hydrant_enter";
pub const LEAVE_HELPER: &str = "__hydrant_leave";
/// How deep templates may include one another.
pub const MAX_INCLUDE_DEPTH: usize = 32;
/// How many bytes one environment's templates may write, all together.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;
/// How many helper calls one environment's render may make.
pub const MAX_CALLS: usize = 1_000_000;
/// How many templates and partials one environment's render may enter (a
/// partial costs more than a helper: Handlebars sets up a context for it).
pub const MAX_PARTIALS: usize = 100_000;
/// The most spaces `indent` and `nindent` write.
pub const MAX_INDENT: usize = 1024;

/// What one environment's render has used so far, on this thread.
#[derive(Default, Clone, Copy)]
pub struct Budget {
    depth: usize,
    calls: usize,
    partials: usize,
    bytes: usize,
    allow_plaintext: bool,
}

thread_local! {
    static BUDGET: std::cell::Cell<Budget> = const { std::cell::Cell::new(Budget {
        depth: 0, calls: 0, partials: 0, bytes: 0, allow_plaintext: false,
    }) };
}

/// Starts an environment's render afresh: a render that failed midway never
/// left its partials. `allow_plaintext` is the environment's
/// `allowPlaintextSecrets`, which holds inside partials rendered by `include`
/// too (they see only the context they were given).
pub fn start_render(allow_plaintext: bool) {
    BUDGET.set(Budget {
        allow_plaintext,
        ..Budget::default()
    });
}

/// Counts one helper call.
fn spend_call() -> Result<(), RenderError> {
    let mut b = BUDGET.get();
    b.calls += 1;
    BUDGET.set(b);
    if b.calls > MAX_CALLS {
        return Err(fail(format!(
            "the templates make more than {MAX_CALLS} helper calls for one environment; does a partial include another more than once in a chain?"
        )));
    }
    Ok(())
}

/// Counts one template or partial entered.
fn spend_partial() -> Result<(), RenderError> {
    let mut b = BUDGET.get();
    b.partials += 1;
    BUDGET.set(b);
    if b.partials > MAX_PARTIALS {
        return Err(fail(format!(
            "the templates include partials more than {MAX_PARTIALS} times for one environment; does a partial include another more than once in a chain?"
        )));
    }
    Ok(())
}

/// Counts `n` bytes of output; the error when the budget is spent.
pub fn spend_bytes(n: usize) -> Result<(), String> {
    let mut b = BUDGET.get();
    b.bytes = b.bytes.saturating_add(n);
    BUDGET.set(b);
    if b.bytes > MAX_OUTPUT_BYTES {
        return Err(format!(
            "the templates write more than {} MiB for one environment; does a partial include another more than once in a chain?",
            MAX_OUTPUT_BYTES / (1024 * 1024)
        ));
    }
    Ok(())
}

/// Writes into a string and counts what it writes against the budget.
pub struct Counted(pub Vec<u8>);

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        spend_bytes(buf.len()).map_err(std::io::Error::other)?;
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders a registered template within the budget.
pub fn render_counted(
    r: &Handlebars<'_>,
    name: &str,
    ctx: &Context,
) -> Result<String, RenderError> {
    let mut out = Counted(Vec::new());
    r.render_with_context_to_write(name, ctx, &mut out)?;
    String::from_utf8(out.0).map_err(|e| fail(format!("output is not UTF-8: {e}")))
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
        let mut b = BUDGET.get();
        if !self.0 {
            b.depth = b.depth.saturating_sub(1);
        } else if b.depth >= MAX_INCLUDE_DEPTH {
            return Err(fail(format!(
                "partials include one another more than {MAX_INCLUDE_DEPTH} levels deep: does a partial include itself?"
            )));
        } else {
            b.depth += 1;
        }
        BUDGET.set(b);
        if self.0 {
            spend_partial()?;
        }
        Ok(())
    }
}

/// A built-in helper templates may not call (see [`REFUSED`]).
pub struct Refused(pub &'static str);

impl HelperDef for Refused {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        _: &mut dyn Output,
    ) -> HelperResult {
        Err(fail(self.0.to_string()))
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

/// Refuses a credential about to be written literally.
fn guard_secret(p: &PathAndJson<'_>, ctx: &Context) -> Result<(), RenderError> {
    guard_at(&key_path(p).unwrap_or_default(), p.value(), ctx)
}

/// Refuses a credential found at `path` (or within it) about to be written.
fn guard_at(path: &[String], value: &Value, ctx: &Context) -> Result<(), RenderError> {
    if BUDGET.get().allow_plaintext {
        return Ok(());
    }
    let found = guard::secrets_within(path, value, ctx.data());
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

/// A helper's argument as data: trusted text and sentinels made plain (see
/// [`safe::plain_value`]), with the keys of every value it holds.
fn data(p: &PathAndJson<'_>) -> Result<(Value, Vec<Vec<String>>), RenderError> {
    let mut keys: Vec<Vec<String>> = key_path(p).into_iter().collect();
    let value = safe::plain_value(p.value(), &mut keys).map_err(fail)?;
    Ok((value, keys))
}

/// A helper's argument as plain text, with the keys of the values it holds.
fn text(p: &PathAndJson<'_>) -> Result<(String, Vec<Vec<String>>), RenderError> {
    let (value, keys) = data(p)?;
    Ok((safe::scalar_text(&value), keys))
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

fn spaces_param(h: &Helper<'_>, i: usize) -> Result<usize, RenderError> {
    let p = param(h, i)?;
    let n = p
        .value()
        .as_u64()
        .ok_or_else(|| fail(format!("`{}` expects a number of spaces first", h.name())))?;
    usize::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_INDENT)
        .ok_or_else(|| {
            fail(format!(
                "`{}` indents by at most {MAX_INDENT} spaces, not {n}",
                h.name()
            ))
        })
}

/// `indent`/`nindent`: trusted text is indented as structure; a plain value is
/// one sentinel after the indentation.
fn indented(h: &Helper<'_>, ctx: &Context, newline: bool) -> Result<Value, RenderError> {
    let n = spaces_param(h, 0)?;
    let p = param(h, 1)?;
    let pad = " ".repeat(n);
    let mut out = String::new();
    if newline {
        out.push('\n');
    }
    out.push_str(&pad);
    match p.value().as_str().and_then(safe::as_trusted) {
        Some(trusted) => out.push_str(&trusted.replace('\n', &format!("\n{pad}"))),
        None => {
            guard_secret(p, ctx)?;
            let (value, keys) = data(p)?;
            safe::encode_with_keys(&mut out, &value, &keys);
        }
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

/// What a helper computed, and the keys of the values it was computed from.
struct Made {
    value: Value,
    keys: Vec<Vec<String>>,
}

impl Made {
    fn keyed(value: Value, keys: Vec<Vec<String>>) -> Made {
        Made { value, keys }
    }

    /// Trusted text: its values are sentinels inside it, with their keys.
    fn trusted(text: &str) -> Made {
        Made::keyed(Value::String(safe::trusted(text)), Vec::new())
    }

    /// A parameter passed on as it is: trusted text stays trusted structure, a
    /// value keeps its key.
    fn passed(p: &PathAndJson<'_>) -> Made {
        Made::keyed(p.value().clone(), key_path(p).into_iter().collect())
    }
}

/// The value `lookup obj key` reads, with the path it read it from when `obj`
/// came from the context.
fn looked_up<'rc>(h: &Helper<'rc>, ctx: &'rc Context) -> Result<ScopedJson<'rc>, RenderError> {
    let obj = param(h, 0)?;
    let key = param(h, 1)?;
    let key = match key.value() {
        Value::String(s) => safe::plain_text(s).map_err(fail)?.0,
        Value::Number(n) => n.to_string(),
        _ => return Ok(ScopedJson::Missing),
    };
    let step = |v: &Value| -> Option<Value> {
        match v {
            Value::Object(m) => m.get(&key).cloned(),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)).cloned(),
            _ => None,
        }
    };
    let path = match obj.context_path() {
        Some(base) => {
            let mut path = base.clone();
            path.push(key.clone());
            path
        }
        None => {
            let mut path = key_path(obj).unwrap_or_default();
            path.push(key.clone());
            return Ok(match step(obj.value()) {
                Some(v) => {
                    guard_at(&path, &v, ctx)?;
                    ScopedJson::Derived(v)
                }
                None => ScopedJson::Missing,
            });
        }
    };
    let found = path.iter().try_fold(ctx.data(), |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    });
    match found {
        Some(v) => {
            guard_at(&path, v, ctx)?;
            Ok(ScopedJson::Context(v, path))
        }
        None => Ok(ScopedJson::Missing),
    }
}

/// The host of a URL, as an Ingress rule names it: `https://user@a.example.com:8443/x?q`
/// gives `a.example.com`; text without a scheme is read as starting with the host.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    host.split(':').next().unwrap_or_default()
}

impl Hydrant {
    fn eval<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
    ) -> Result<Made, RenderError> {
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
                Ok(Made::passed(p))
            }
            Kind::ToYaml => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                let (value, _) = data(p)?;
                let mut key = key_path(p).unwrap_or_default();
                let text = yaml::to_block(&seal_strings(&value, &mut key));
                Ok(Made::trusted(&text))
            }
            Kind::Quote => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                let (text, keys) = text(p)?;
                let mut out = String::from("\"");
                safe::encode_with_keys(&mut out, &Value::String(text), &keys);
                out.push('"');
                Ok(Made::trusted(&out))
            }
            Kind::Default => {
                let fallback = param(h, 0)?;
                match h.param(1) {
                    Some(p) if !p.is_value_missing() && !is_empty(p.value()) => {
                        guard_secret(p, ctx)?;
                        Ok(Made::passed(p))
                    }
                    _ => {
                        guard_secret(fallback, ctx)?;
                        Ok(Made::passed(fallback))
                    }
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
                        Ok(Made::passed(p))
                    }
                    Some(p) => Err(fail(format!(
                        "required value `{}` is not set: {}",
                        shown(p),
                        safe::plain_text(&message).map_err(fail)?.0
                    ))),
                    None => Err(fail(format!("required value is not set: {message}"))),
                }
            }
            Kind::B64enc | Kind::Sha256sum | Kind::Lower | Kind::Upper | Kind::UrlHost => {
                let p = param(h, 0)?;
                guard_secret(p, ctx)?;
                let (s, keys) = text(p)?;
                let out = match self.0 {
                    Kind::B64enc => base64::engine::general_purpose::STANDARD.encode(s),
                    Kind::Sha256sum => hex::encode(sha2::Sha256::digest(s.as_bytes())),
                    Kind::Lower => s.to_lowercase(),
                    Kind::UrlHost => url_host(&s).to_string(),
                    _ => s.to_uppercase(),
                };
                Ok(Made::keyed(Value::String(out), keys))
            }
            Kind::Indent => Ok(Made::keyed(indented(h, ctx, false)?, Vec::new())),
            Kind::Nindent => Ok(Made::keyed(indented(h, ctx, true)?, Vec::new())),
            Kind::Include => {
                let (name, _) = text(param(h, 0)?)?;
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
                let text = render_counted(r, &name, &Context::from(data))?;
                Ok(Made::trusted(text.trim_end_matches('\n')))
            }
            Kind::Lookup => {
                let found = looked_up(h, ctx)?;
                let keys = found.context_path().cloned().into_iter().collect();
                Ok(Made::keyed(found.as_json().clone(), keys))
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
        spend_call()?;
        if let Kind::Lookup = self.0 {
            // Keeps the path, so whatever helper takes the value knows its key.
            return looked_up(h, ctx);
        }
        Ok(ScopedJson::Derived(self.eval(h, r, ctx)?.value))
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        spend_call()?;
        let made = self.eval(h, r, ctx)?;
        match made.value.as_str().and_then(safe::as_trusted) {
            Some(text) => out.write(text)?,
            None => {
                if let Kind::Lookup = self.0
                    && matches!(made.value, Value::Object(_) | Value::Array(_))
                {
                    return Err(fail(
                        "`lookup` read a map or list, which cannot be written as a single value; use `toYaml (lookup ...)`".to_string(),
                    ));
                }
                let mut text = String::new();
                safe::encode_with_keys(&mut text, &made.value, &made.keys);
                out.write(&text)?;
            }
        }
        Ok(())
    }
}
