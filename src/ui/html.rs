//! The one escaping function of the fleet page, and the small pieces of
//! markup built from it. Every string the page prints goes through
//! [`escape`], in text and in (always double-quoted) attributes alike; an
//! address goes through [`href`], which also refuses any scheme but
//! `http(s)` so that a forge cannot plant a `javascript:` link.

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by entities: safe as
/// element text and as the value of a double- or single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link's target, escaped: an absolute `http(s)` address, or nothing.
pub fn href(url: &str) -> Option<String> {
    let lower = url.trim_start().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then(|| escape(url))
}

/// `text` percent-encoded for a path segment or a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) use crate::delivery::text::age;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_become_entities() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn only_web_addresses_become_links() {
        assert_eq!(
            href("https://forge/pr/1?a=1&b=\"2\"").as_deref(),
            Some("https://forge/pr/1?a=1&amp;b=&quot;2&quot;")
        );
        assert_eq!(href("javascript:alert(1)"), None);
        assert_eq!(href(" JavaScript:alert(1)"), None);
        assert_eq!(href("data:text/html,x"), None);
    }

    #[test]
    fn names_are_percent_encoded_for_addresses() {
        assert_eq!(encode("a b/\"c\"&"), "a%20b%2F%22c%22%26");
        assert_eq!(encode("tenant-01.eu_west"), "tenant-01.eu_west");
    }
}
