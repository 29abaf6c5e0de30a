//! Which values the templates read, found on the compiled templates.
//!
//! Every branch is walked, taken or not: a key read inside
//! `{{#if values.ldap.enabled}}` is known even where LDAP is off. A path read
//! directly (`values.a.b`, `@root.values.a`, `lookup values.a "b"`, a
//! relative path inside `#with` and `#each`) is known; a map handed whole to
//! a helper that writes it (`toYaml`, `quote`, …) or iterated as data makes
//! every key below it known. `include` and `{{> partial}}` are followed into
//! the partial with the context they pass. This module does no IO, and the
//! result depends on the templates only: it is computed once per template set.

use std::collections::{HashMap, HashSet};

use handlebars::template::{BlockParam, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};

use crate::spec::{KnownKeys, Seg};

/// Helpers that test a value without writing it: a map given to them is not
/// read whole.
const TESTS: [&str; 13] = [
    "if", "unless", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len", "with",
];

/// How deep partials are followed into partials.
const MAX_DEPTH: usize = 32;

/// A context: a path from the data root (`["values", "app"]`), or `None`
/// when it is not one (a helper's result).
type Ctx = Option<Vec<Seg>>;

/// The keys below `values` that the templates named in `roots` read,
/// following partials in `templates` (by the name they are included by).
pub fn known_keys(templates: &HashMap<String, Template>, roots: &[String]) -> KnownKeys {
    let mut walker = Walker {
        templates,
        known: KnownKeys::default(),
        seen: HashSet::new(),
        depth: 0,
        block_params: Vec::new(),
    };
    for name in roots {
        if let Some(t) = templates.get(name) {
            walker.template(t, &mut vec![Some(Vec::new())]);
        }
    }
    walker.known
}

struct Walker<'a> {
    templates: &'a HashMap<String, Template>,
    known: KnownKeys,
    /// Partials already walked, with their context.
    seen: HashSet<(String, Ctx)>,
    depth: usize,
    /// Block parameters in scope (`{{#each x as |item|}}`), innermost last.
    block_params: Vec<(String, Ctx)>,
}

fn name_of(p: &Parameter) -> Option<String> {
    match p {
        Parameter::Name(n) => Some(n.clone()),
        Parameter::Path(path) => Some(super::path_text(path)),
        _ => None,
    }
}

impl Walker<'_> {
    fn template(&mut self, t: &Template, stack: &mut Vec<Ctx>) {
        for element in &t.elements {
            self.element(element, stack);
        }
    }

    /// Records a read of `ctx`, if it is below `values`.
    fn mark(&mut self, ctx: &Ctx, whole: bool) {
        let Some(path) = ctx else { return };
        match path.split_first() {
            Some((Seg::Key(first), rest)) if first == "values" => self.known.insert(rest, whole),
            // The whole data, `values` included: `toYaml this` at the top.
            None if whole => self.known.insert(&[], true),
            _ => {}
        }
    }

    /// Where a parameter points, walking a subexpression on the way.
    fn resolve(&mut self, p: &Parameter, stack: &[Ctx]) -> Ctx {
        match p {
            Parameter::Path(Path::Relative((segs, _))) => {
                let mut up = 0;
                let mut out: Ctx = stack.last().cloned().flatten();
                let mut segs = segs.as_slice();
                if let Some(PathSeg::Named(first)) = segs.first()
                    && let Some((_, ctx)) = self.block_params.iter().rev().find(|(n, _)| n == first)
                {
                    out = ctx.clone();
                    segs = &segs[1..];
                }
                for seg in segs {
                    match seg {
                        PathSeg::Named(name) => {
                            if let Some(path) = out.as_mut() {
                                path.push(Seg::Key(name.clone()));
                            }
                        }
                        PathSeg::Ruled(rule) => match format!("{rule:?}").as_str() {
                            "path_root" => out = Some(Vec::new()),
                            "path_up" => {
                                up += 1;
                                out = stack
                                    .len()
                                    .checked_sub(1 + up)
                                    .and_then(|i| stack[i].clone());
                            }
                            _ => {}
                        },
                        _ => {}
                    }
                }
                out
            }
            Parameter::Name(name) if !super::is_helper(name) => {
                let mut out = stack.last().cloned().flatten()?;
                out.push(Seg::Key(name.clone()));
                Some(out)
            }
            Parameter::Subexpression(sub) => self.call(&sub.element, stack),
            _ => None,
        }
    }

    /// A helper call or a value read (`{{x}}`, `(helper …)`): records what it
    /// reads and returns where its result points.
    fn call(&mut self, element: &TemplateElement, stack: &[Ctx]) -> Ctx {
        let (TemplateElement::Expression(ht) | TemplateElement::HelperBlock(ht)) = element else {
            return None;
        };
        let name = name_of(&ht.name).unwrap_or_default();
        for p in ht.hash.values() {
            let ctx = self.resolve(p, stack);
            self.mark(&ctx, true);
        }
        if ht.params.is_empty() && ht.hash.is_empty() && !super::is_helper(&name) {
            // A value read: `{{values.a.b}}`.
            return self.resolve(&ht.name, stack);
        }
        match name.as_str() {
            "include" => {
                let ctx = match ht.params.get(1) {
                    Some(p) => self.resolve(p, stack),
                    None => stack.first().cloned().flatten(),
                };
                let partial = match ht.params.first() {
                    Some(Parameter::Literal(serde_json::Value::String(s))) => Some(s.clone()),
                    _ => None,
                };
                self.partial(partial.as_deref(), ctx);
                None
            }
            "lookup" => {
                let on = ht.params.first().and_then(|p| self.resolve(p, stack));
                match ht.params.get(1) {
                    Some(Parameter::Literal(key)) => {
                        let key = match key {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        on.map(|mut p| {
                            p.push(Seg::Key(key));
                            p
                        })
                    }
                    Some(other) => {
                        let key = self.resolve(other, stack);
                        self.mark(&key, true);
                        self.mark(&on, true);
                        None
                    }
                    None => None,
                }
            }
            _ => {
                let whole = !TESTS.contains(&name.as_str());
                for p in &ht.params {
                    let ctx = self.resolve(p, stack);
                    self.mark(&ctx, whole);
                }
                None
            }
        }
    }

    /// Walks the partial `name` with `ctx` as its data; a partial that
    /// cannot be found reads all of `ctx`.
    fn partial(&mut self, name: Option<&str>, ctx: Ctx) {
        let templates = self.templates;
        let Some(t) = name.and_then(|n| templates.get(n)) else {
            self.mark(&ctx, true);
            return;
        };
        let key = (name.unwrap_or_default().to_string(), ctx.clone());
        if self.depth >= MAX_DEPTH || !self.seen.insert(key) {
            return;
        }
        self.depth += 1;
        // A partial does not see the block parameters of its caller.
        let outer = std::mem::take(&mut self.block_params);
        self.template(t, &mut vec![ctx]);
        self.block_params = outer;
        self.depth -= 1;
    }

    fn element(&mut self, element: &TemplateElement, stack: &mut Vec<Ctx>) {
        match element {
            TemplateElement::Expression(_) => {
                // What an expression returns is written: all of it is read.
                let ctx = self.call(element, stack);
                self.mark(&ctx, true);
            }
            TemplateElement::HelperBlock(ht) => {
                let name = name_of(&ht.name).unwrap_or_default();
                let inner: Ctx = match name.as_str() {
                    "each" | "with" => {
                        let on = ht.params.first().and_then(|p| self.resolve(p, stack));
                        self.mark(&on, false);
                        on.map(|mut p| {
                            if name == "each" {
                                p.push(Seg::Any);
                            }
                            p
                        })
                    }
                    _ => {
                        let ctx = self.call(element, stack);
                        self.mark(&ctx, true);
                        stack.last().cloned().flatten()
                    }
                };
                if name == "each" {
                    // Iterating a map or list names every item.
                    self.mark(&inner, false);
                }
                if let Some(t) = &ht.template {
                    let keep = matches!(name.as_str(), "each" | "with");
                    let scope = self.block_params.len();
                    if keep {
                        // `as |item key|`: the item is the block's context;
                        // the key or index is not a value path.
                        let names = match &ht.block_param {
                            Some(BlockParam::Single(p)) => vec![(p, inner.clone())],
                            Some(BlockParam::Pair((p, k))) => {
                                vec![(p, inner.clone()), (k, None)]
                            }
                            _ => Vec::new(),
                        };
                        for (p, ctx) in names {
                            if let Some(n) = name_of(p) {
                                self.block_params.push((n, ctx));
                            }
                        }
                        stack.push(inner);
                    }
                    self.template(t, stack);
                    if keep {
                        stack.pop();
                    }
                    self.block_params.truncate(scope);
                }
                if let Some(t) = &ht.inverse {
                    self.template(t, stack);
                }
            }
            TemplateElement::PartialExpression(dt) | TemplateElement::PartialBlock(dt) => {
                for p in dt.hash.values() {
                    let ctx = self.resolve(p, stack);
                    self.mark(&ctx, true);
                }
                let ctx = match dt.params.first() {
                    Some(p) => self.resolve(p, stack),
                    None => stack.last().cloned().flatten(),
                };
                let name = name_of(&dt.name);
                if name
                    .as_deref()
                    .is_some_and(|n| self.templates.contains_key(n))
                {
                    self.partial(name.as_deref(), ctx);
                } else if let Some(t) = &dt.template {
                    self.template(t, stack);
                } else {
                    self.mark(&ctx, true);
                }
            }
            TemplateElement::DecoratorBlock(dt) => {
                if let Some(t) = &dt.template {
                    self.template(t, stack);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(templates: &[(&str, &str)]) -> KnownKeys {
        let map: HashMap<String, Template> = templates
            .iter()
            .map(|(name, text)| {
                (
                    name.to_string(),
                    Template::compile(text).expect("the template compiles"),
                )
            })
            .collect();
        let roots: Vec<String> = templates
            .iter()
            .filter(|(n, _)| !n.starts_with('_'))
            .map(|(n, _)| n.to_string())
            .collect();
        known_keys(&map, &roots)
    }

    fn path(p: &str) -> Vec<Seg> {
        p.split('.')
            .map(|s| match s {
                "*" => Seg::Any,
                s => Seg::Key(s.to_string()),
            })
            .collect()
    }

    #[test]
    fn a_path_read_directly_is_known() {
        let k = known(&[(
            "a",
            "replicas: {{values.app.replicas}}\n{{@root.values.x.y}}",
        )]);
        assert!(k.knows(&path("app.replicas")));
        assert!(k.knows(&path("x.y")));
        assert!(!k.knows(&path("app.replica")));
    }

    #[test]
    fn relative_paths_resolve_against_with_and_each() {
        let k = known(&[(
            "a",
            "{{#with values.app}}{{image.tag}}{{/with}}\n{{#each values.hosts}}{{name}} {{../values.z}}{{/each}}",
        )]);
        assert!(k.knows(&path("app.image.tag")));
        assert!(!k.knows(&path("app.image.repository")));
        assert!(k.knows(&path("hosts.*.name")));
        assert!(!k.knows(&path("hosts.*.nme")));
    }

    #[test]
    fn a_map_handed_whole_to_to_yaml_makes_its_children_known() {
        let k = known(&[("a", "{{toYaml values.app.resources}}")]);
        assert!(k.knows(&path("app.resources.limits.cpu")));
        assert!(!k.knows(&path("app.other")));
    }

    #[test]
    fn a_branch_not_taken_still_makes_its_keys_known() {
        let k = known(&[(
            "a",
            "{{#if values.ldap.enabled}}{{values.ldap.host}}{{else}}{{#if values.x}}{{values.y}}{{/if}}{{/if}}",
        )]);
        assert!(k.knows(&path("ldap.host")));
        assert!(k.knows(&path("y")));
        // A test of a map does not read it whole.
        assert!(!k.knows(&path("x.anything")));
    }

    #[test]
    fn a_list_items_map_is_known_key_by_key() {
        let k = known(&[(
            "a",
            "{{#each values.tls}}- secretName: {{secretName}}\n{{#each hosts}}{{this}}{{/each}}{{/each}}",
        )]);
        assert!(k.knows(&path("tls.*.secretName")));
        assert!(k.knows(&path("tls.*.hosts.*")));
        assert!(!k.knows(&path("tls.*.secretNme")));
    }

    #[test]
    fn block_parameters_name_the_item() {
        let k = known(&[(
            "a",
            "{{#each values.tls as |t i|}}{{t.secretName}}{{i}}{{#with t.cert as |c|}}{{c.name}}{{/with}}{{/each}}",
        )]);
        assert!(k.knows(&path("tls.*.secretName")));
        assert!(k.knows(&path("tls.*.cert.name")));
        assert!(!k.knows(&path("tls.*.t")));
        assert!(!k.knows(&path("tls.*.i")));
    }

    #[test]
    fn each_over_a_map_written_as_data_knows_every_key() {
        let k = known(&[(
            "a",
            "{{#each values.extraEnv}}{{@key}}: {{quote this}}{{/each}}",
        )]);
        assert!(k.knows(&path("extraEnv.ANYTHING")));
    }

    #[test]
    fn include_follows_the_partial_with_the_context_it_passes() {
        let k = known(&[
            (
                "a",
                "{{include \"env\" this}}{{include \"app\" values.app}}",
            ),
            ("env", "{{values.global.host}}"),
            ("app", "{{image.tag}}"),
        ]);
        assert!(k.knows(&path("global.host")));
        assert!(k.knows(&path("app.image.tag")));
        assert!(!k.knows(&path("global.other")));
    }

    #[test]
    fn lookup_with_a_literal_key_reads_that_key_only() {
        let k = known(&[(
            "a",
            "{{lookup values.x \"k\"}}{{#with (lookup values.y \"z\")}}{{w}}{{/with}}",
        )]);
        assert!(k.knows(&path("x.k.deep")));
        assert!(!k.knows(&path("x.other")));
        assert!(k.knows(&path("y.z.w")));
        assert!(!k.knows(&path("y.z.v")));
    }
}
