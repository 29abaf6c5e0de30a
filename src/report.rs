//! How an error, an environment's problems and its warnings read on a
//! terminal: pure text, printed by the commands and the daemon's callers.

use crate::pipeline::Problem;

/// `error:` and the causes worth printing under it, a line each.
pub fn error(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}\n");
    for cause in causes(e) {
        out.push_str(&format!("  caused by: {cause}\n"));
    }
    out
}

/// The causes of an error worth printing under it: one that an error above
/// it already quotes (`cannot read `x`: No such file or directory (os error
/// 2)`), at any level, is not repeated, nor the details libgit2 appends
/// (`; class=…; code=…`).
fn causes(e: &anyhow::Error) -> Vec<String> {
    let mut said = e.to_string();
    let mut out = Vec::new();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        let head = cause.split("; ").next().unwrap_or(&cause);
        if !said.contains(head) {
            out.push(cause.clone());
        }
        said.push('\n');
        said.push_str(&cause);
    }
    out
}

/// What an environment's render let pass but a person should see.
pub fn warnings(env: &str, warnings: &[String]) -> String {
    warnings
        .iter()
        .map(|w| {
            format!(
                "warning: environment `{env}`: {}\n",
                w.replace('\n', "\n    ")
            )
        })
        .collect()
}

/// An environment's problems, each on its line, then their hints once each.
pub fn problems(env: &str, problems: &[Problem]) -> String {
    let count = problems.len();
    let mut out = format!(
        "error: environment `{env}`: {count} problem{}\n",
        if count == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str(&format!("  - {}\n", p.message.replace('\n', "\n    ")));
    }
    let mut hints: Vec<&str> = problems.iter().filter_map(|p| p.hint.as_deref()).collect();
    hints.dedup();
    for hint in hints {
        out.push_str(&format!("hint: {hint}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_an_outer_error_quotes_is_not_repeated_as_its_own_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot load the project")]
        struct Middle(#[source] std::io::Error);
        let os = || std::io::Error::from_raw_os_error(2);
        let e =
            anyhow::Error::new(Middle(os())).context(format!("cannot read `channels`: {}", os()));
        assert_eq!(causes(&e), vec!["cannot load the project".to_string()]);
        // A cause no error above it quotes is kept.
        let e = anyhow::Error::new(Middle(os())).context("cannot open `repo`");
        assert_eq!(
            causes(&e),
            vec!["cannot load the project".to_string(), os().to_string()]
        );
    }

    #[test]
    fn problems_read_one_a_line_with_each_hint_once() {
        let p = |m: &str| Problem {
            message: m.to_string(),
            hint: Some("fix it".to_string()),
            transient: false,
        };
        assert_eq!(
            problems("dev", &[p("a\nb"), p("c")]),
            "error: environment `dev`: 2 problems\n  - a\n    b\n  - c\nhint: fix it\n"
        );
    }
}
