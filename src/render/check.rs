//! What a template may contain, decided before it is registered.
//!
//! Raw (unescaped) output is refused on the compiled template, whatever its
//! spelling: `{{{x}}}`, `{{& x}}`, `{{ {x} }}`, `{{~&x}}` all parse to the same
//! `HtmlExpression`, in a block, an inline partial, a partial block or a
//! decorator alike. A template may not hold hydrant's reserved characters
//! (U+E000..U+E00F), so it cannot forge a sentinel. Nesting is bounded, so
//! neither Handlebars' recursive parser nor hydrant's walks of the template
//! overflow the stack: the text is measured before it is parsed, and the
//! parsed template is walked with an explicit stack. This module does no IO.

use handlebars::template::{Parameter, Template, TemplateElement};

use super::RenderError;
use super::safe;

/// How deeply blocks (`{{#if}}`, `{{#each}}`, partial blocks, inline partials)
/// and subexpressions may nest in one template.
pub const MAX_NESTING: usize = 64;

fn syntax(template: &str, line: usize, message: String) -> RenderError {
    RenderError::Syntax {
        template: template.to_string(),
        line,
        message,
    }
}

/// Checks a template's text before Handlebars parses it: no reserved
/// character, and no nesting deeper than [`MAX_NESTING`]. The nesting is
/// measured generously on the text (every `{{#`, `{{^`… opens, every `{{/`
/// closes, and parentheses inside `{{ }}` nest), so that a deeper template
/// never reaches the parser; the exact check is [`compiled`].
pub fn before_compile(template: &str, text: &str) -> Result<(), RenderError> {
    for (i, line) in text.lines().enumerate() {
        if let Some(c) = safe::find_reserved(line) {
            return Err(syntax(
                template,
                i + 1,
                format!(
                    "the template holds U+{:04X}, a character hydrant reserves for its own markers; remove it",
                    c as u32
                ),
            ));
        }
    }
    let bytes = text.as_bytes();
    let (mut depth, mut line, mut parens, mut inside) = (0usize, 1usize, 0usize, false);
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest[0] == b'\n' {
            line += 1;
        }
        if rest.starts_with(b"{{") {
            inside = true;
            parens = 0;
            let mut j = 2;
            while rest
                .get(j)
                .is_some_and(|c| matches!(c, b'{' | b'~' | b' ' | b'\t' | b'\r' | b'\n'))
            {
                j += 1;
            }
            match rest.get(j) {
                Some(b'#' | b'^') => depth += 1,
                Some(b'/') => depth = depth.saturating_sub(1),
                _ => {}
            }
            i += 2;
        } else if rest.starts_with(b"}}") {
            inside = false;
            i += 2;
            continue;
        } else {
            if inside && rest[0] == b'(' {
                parens += 1;
            } else if inside && rest[0] == b')' {
                parens = parens.saturating_sub(1);
            }
            i += 1;
        }
        if depth + parens > MAX_NESTING {
            return Err(too_deep(template, line));
        }
    }
    Ok(())
}

fn too_deep(template: &str, line: usize) -> RenderError {
    syntax(
        template,
        line,
        format!(
            "blocks and subexpressions nest more than {MAX_NESTING} levels deep; split the template into partials"
        ),
    )
}

/// Checks a compiled template: no raw output anywhere in it, and no nesting
/// deeper than [`MAX_NESTING`]. Walks the template with its own stack.
pub fn compiled(template: &str, t: &Template) -> Result<(), RenderError> {
    // (a template, the line of the block it is in, its depth)
    let mut stack: Vec<(&Template, usize, usize)> = vec![(t, 1, 0)];
    while let Some((t, outer_line, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(too_deep(template, outer_line));
        }
        for (i, element) in t.elements.iter().enumerate() {
            let line = t.mapping.get(i).map(|m| m.0).unwrap_or(outer_line);
            let (params, inner): (Vec<&Parameter>, Vec<&Template>) = match element {
                TemplateElement::HtmlExpression(_) => return Err(raw_output(template, line)),
                TemplateElement::Expression(ht) | TemplateElement::HelperBlock(ht) => (
                    std::iter::once(&ht.name)
                        .chain(&ht.params)
                        .chain(ht.hash.values())
                        .collect(),
                    ht.template.iter().chain(ht.inverse.iter()).collect(),
                ),
                TemplateElement::DecoratorExpression(dt)
                | TemplateElement::DecoratorBlock(dt)
                | TemplateElement::PartialExpression(dt)
                | TemplateElement::PartialBlock(dt) => (
                    std::iter::once(&dt.name)
                        .chain(&dt.params)
                        .chain(dt.hash.values())
                        .collect(),
                    dt.template.iter().collect(),
                ),
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => continue,
                // A kind of element this version does not know could write raw.
                _ => return Err(raw_output(template, line)),
            };
            for t in inner {
                stack.push((t, line, depth + 1));
            }
            check_params(template, line, depth, params)?;
        }
    }
    Ok(())
}

/// Subexpressions nest too; raw output cannot be spelled inside one, but the
/// walk does not rely on that.
fn check_params(
    template: &str,
    line: usize,
    depth: usize,
    params: Vec<&Parameter>,
) -> Result<(), RenderError> {
    let mut stack: Vec<(&Parameter, usize)> = params.into_iter().map(|p| (p, depth)).collect();
    while let Some((p, depth)) = stack.pop() {
        let Parameter::Subexpression(sub) = p else {
            continue;
        };
        if depth + 1 > MAX_NESTING {
            return Err(too_deep(template, line));
        }
        match &*sub.element {
            TemplateElement::Expression(ht) | TemplateElement::HelperBlock(ht) => {
                for p in std::iter::once(&ht.name)
                    .chain(&ht.params)
                    .chain(ht.hash.values())
                {
                    stack.push((p, depth + 1));
                }
            }
            _ => return Err(raw_output(template, line)),
        }
    }
    Ok(())
}

fn raw_output(template: &str, line: usize) -> RenderError {
    syntax(
        template,
        line,
        "raw output (`{{{ }}}`, `{{& }}` or any spelling of them) would let a value change the manifest's structure; write `{{value}}`, or `toYaml` for maps and lists".to_string(),
    )
}
