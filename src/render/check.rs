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

/// How much parsing one template may cost: the number of its `{{` tags times
/// its length in bytes. Handlebars finds the line of each tag by counting from
/// the start of the text, so its parse time grows with this product (20,000
/// expressions in one file took 35 s); partials are parsed on their own.
pub const MAX_PARSE_COST: usize = 200_000_000;

/// Checks a template's text before Handlebars parses it: no reserved
/// character, no nesting deeper than [`MAX_NESTING`], and a bounded parse cost
/// ([`MAX_PARSE_COST`]). The nesting is measured on the text the way the
/// parser will see it (comments, raw blocks and escaped `\{{` hold no tags)
/// so that a deeper template never reaches the parser; the exact check is
/// [`compiled`].
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
    let mut scan = Scan {
        text: text.as_bytes(),
        at: 0,
        line: 1,
    };
    let (mut depth, mut tags) = (0usize, 0usize);
    while let Some(start) = scan.next_tag() {
        tags += 1;
        if tags.saturating_mul(text.len()) > MAX_PARSE_COST {
            return Err(syntax(
                template,
                scan.line,
                format!(
                    "the template is too large to parse in reasonable time ({} bytes with more than {tags} tags; at most {MAX_PARSE_COST} tags × bytes); split it into partials under templates/_partials/",
                    text.len()
                ),
            ));
        }
        let inner = &scan.text[start + 2..];
        let skip = inner
            .iter()
            .take_while(|c| matches!(c, b'~' | b' ' | b'\t' | b'\r' | b'\n'))
            .count();
        let rest = &inner[skip..];
        if rest.starts_with(b"{{") {
            // `{{{{raw}}}} … {{{{/raw}}}}`: its content is text.
            scan.skip_past(b"{{{{/");
            scan.skip_past(b"}}");
            continue;
        }
        if rest.starts_with(b"!--") {
            scan.at = start + 2 + skip + 3;
            loop {
                scan.skip_past(b"--");
                let after = &scan.text[scan.at..];
                if after.is_empty() || after.starts_with(b"}}") || after.starts_with(b"~}}") {
                    break;
                }
            }
            scan.skip_past(b"}}");
            continue;
        }
        if rest.starts_with(b"!") {
            scan.skip_past(b"}}");
            continue;
        }
        let else_tag = rest.starts_with(b"^")
            && rest[1..]
                .iter()
                .find(|c| !matches!(c, b'~' | b' ' | b'\t' | b'\r' | b'\n'))
                == Some(&b'}');
        let mut parens = 0usize;
        match rest.first() {
            Some(b'#') => depth += 1,
            Some(b'^') if !else_tag => depth += 1,
            Some(b'/') => depth = depth.saturating_sub(1),
            _ => {}
        }
        // The tag's own subexpressions, up to its end.
        let mut max_parens = 0usize;
        while let Some(&c) = scan.text.get(scan.at) {
            if scan.text[scan.at..].starts_with(b"}}") {
                scan.at += 2;
                break;
            }
            match c {
                b'(' => {
                    parens += 1;
                    max_parens = max_parens.max(parens);
                }
                b')' => parens = parens.saturating_sub(1),
                b'\n' => scan.line += 1,
                _ => {}
            }
            scan.at += 1;
        }
        if depth + max_parens > MAX_NESTING {
            return Err(too_deep(template, scan.line));
        }
    }
    Ok(())
}

/// A cursor over a template's text that finds its tags.
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl Scan<'_> {
    /// Moves past the next `{{` that opens a tag (one escaped as `\{{` does
    /// not) and returns where it starts.
    fn next_tag(&mut self) -> Option<usize> {
        while self.at + 1 < self.text.len() {
            let c = self.text[self.at];
            if c == b'\n' {
                self.line += 1;
            }
            if c == b'{' && self.text[self.at + 1] == b'{' {
                let slashes = self.text[..self.at]
                    .iter()
                    .rev()
                    .take_while(|c| **c == b'\\')
                    .count();
                let start = self.at;
                self.at += 2;
                if slashes != 1 {
                    return Some(start);
                }
                continue;
            }
            self.at += 1;
        }
        self.at = self.text.len();
        None
    }

    /// Moves past the next `needle`, or to the end.
    fn skip_past(&mut self, needle: &[u8]) {
        while self.at < self.text.len() {
            if self.text[self.at..].starts_with(needle) {
                self.at += needle.len();
                return;
            }
            if self.text[self.at] == b'\n' {
                self.line += 1;
            }
            self.at += 1;
        }
    }
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
