//! The fleet page as HTML: pure functions from the status model (and a
//! query) to text. No script or style is inline (the page's CSP forbids
//! them): the look is `app.css`, the live filtering, refresh and holds are
//! `app.js`. Every printed string goes through [`html::escape`].

use std::collections::HashMap;
use std::fmt::Write;

use super::detail::Detail;
use super::html::{age, encode, escape, href};
use crate::delivery::status::{EnvState, EnvStatus, Status, WaveStatus};

/// Rows per page of the environments' table.
pub const PAGE_ROWS: usize = 100;

/// The longest error shown in the table, in characters.
const ERROR_CHARS: usize = 160;

/// What the table shows: a text to find, a state, a page (from 1).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct Query {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub page: Option<usize>,
}

impl Query {
    fn state(&self) -> Option<EnvState> {
        EnvState::parse(self.state.trim())
    }

    /// Whether `e` matches the text (in its name, wave, channel, versions,
    /// pull request or error; any case) and the state.
    fn matches(&self, e: &EnvStatus) -> bool {
        if self.state().is_some_and(|s| s != e.state) {
            return false;
        }
        let q = self.q.trim().to_lowercase();
        if q.is_empty() {
            return true;
        }
        let fields = [
            Some(e.env.as_str()),
            e.rollout.wave.as_deref(),
            e.channel.as_deref(),
            e.rendered.as_deref(),
            e.available.as_deref(),
            e.rollout.target.as_deref(),
            e.pull_request.as_ref().map(|p| p.title.as_str()),
            e.error.as_deref(),
            Some(e.state.name()),
        ];
        fields
            .into_iter()
            .flatten()
            .any(|f| f.to_lowercase().contains(&q))
    }

    /// The query string of this query at another page.
    fn at(&self, page: usize) -> String {
        format!(
            "?q={}&state={}&page={page}",
            encode(&self.q),
            encode(&self.state)
        )
    }
}

/// One page of the table: the environments shown (sorted by wave, then
/// name), how many match, the page and how many pages there are.
pub struct Rows<'a> {
    pub shown: Vec<&'a EnvStatus>,
    pub matched: usize,
    pub page: usize,
    pub pages: usize,
}

/// The environments matching `query`, sorted by wave (in rollout order,
/// those without a wave last), then by name, cut to one page.
pub fn rows<'a>(status: &'a Status, query: &Query) -> Rows<'a> {
    let mut order: HashMap<&str, usize> = HashMap::new();
    for w in &status.waves {
        let next = order.len();
        order.entry(w.summary.wave.as_str()).or_insert(next);
    }
    let mut matched: Vec<&EnvStatus> = status
        .environments
        .iter()
        .filter(|e| query.matches(e))
        .collect();
    let rank = |e: &EnvStatus| {
        e.rollout
            .wave
            .as_deref()
            .and_then(|w| order.get(w).copied())
            .unwrap_or(usize::MAX)
    };
    matched.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.env.cmp(&b.env)));
    let pages = matched.len().div_ceil(PAGE_ROWS).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let count = matched.len();
    let shown = matched
        .into_iter()
        .skip((page - 1) * PAGE_ROWS)
        .take(PAGE_ROWS)
        .collect();
    Rows {
        shown,
        matched: count,
        page,
        pages,
    }
}

/// What the page can offer besides looking.
#[derive(Debug, Clone, Copy, Default)]
pub struct Abilities {
    /// Holds can be set and released (a UI token is configured and the
    /// daemon's holds API is there).
    pub holds: bool,
}

fn head(out: &mut String, title: &str, holds: bool) {
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/ui/app.css\">\n\
         <script src=\"/ui/app.js\" defer></script>\n</head>\n<body data-holds=\"{}\">\n",
        escape(title),
        if holds { "on" } else { "off" }
    );
}

fn foot(out: &mut String) {
    out.push_str("</body>\n</html>\n");
}

/// The one-line form of an error, cut short, with anything that looks like
/// a credential hidden (the guard of server text in logs and errors).
pub fn one_line(error: &str) -> String {
    let line = crate::outbound::server_text(error, &[]);
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(ERROR_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

fn summary(out: &mut String, status: &Status) {
    out.push_str("<div id=\"summary\">\n<dl class=\"facts\">\n");
    let _ = writeln!(
        out,
        "<div><dt>repository</dt><dd id=\"repository\">{}</dd></div>\n\
         <div><dt>base</dt><dd id=\"base\">{} @ {}</dd></div>",
        escape(&status.repository),
        escape(&status.base),
        escape(&status.commit)
    );
    match &status.cycle {
        Some(c) => {
            let _ = writeln!(
                out,
                "<div><dt>last cycle</dt><dd id=\"cycle\" class=\"cycle-{}\">{} at {}{}</dd></div>\n\
                 <div><dt>next cycle</dt><dd id=\"next-cycle\">by {}</dd></div>",
                escape(c.outcome),
                escape(c.outcome),
                escape(&c.finished_at),
                c.error
                    .as_deref()
                    .map(|e| format!(": {}", escape(&one_line(e))))
                    .unwrap_or_default(),
                escape(&c.next_at)
            );
        }
        None => out.push_str(
            "<div><dt>last cycle</dt><dd id=\"cycle\">none: observed without the daemon</dd></div>\n",
        ),
    }
    out.push_str("</dl>\n<ul class=\"channels\">\n");
    for c in &status.channels {
        let name = match &c.release {
            Some(r) => format!("{}@{r}", c.name),
            None => c.name.clone(),
        };
        let source = match (c.source, c.stale_secs) {
            ("stale", Some(secs)) => format!("stale cache, {} old", age(secs)),
            ("not-modified", _) => "304, cache current".to_string(),
            (other, _) => other.to_string(),
        };
        let _ = writeln!(
            out,
            "<li class=\"channel source-{}\" data-channel=\"{}\"><b>{}</b> <span class=\"version\">{}</span> <small>{}; {} environment(s)</small></li>",
            escape(c.source),
            escape(&name),
            escape(&name),
            escape(c.version.as_deref().unwrap_or("unknown")),
            escape(&source),
            c.environments
        );
    }
    out.push_str("</ul>\n</div>\n");
}

/// The progress bar of a wave: one SVG rectangle per state (no inline
/// style: sizes are SVG attributes, colours come from `app.css`).
fn bar(out: &mut String, w: &WaveStatus) {
    let total = w.progress.total().max(1);
    out.push_str("<svg class=\"bar\" viewBox=\"0 0 1000 14\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"progress\">");
    let mut x = 0;
    for state in EnvState::ALL {
        let n = w.progress.get(state);
        if n == 0 {
            continue;
        }
        let width = n * 1000 / total;
        let _ = write!(
            out,
            "<rect class=\"s-{}\" x=\"{x}\" y=\"0\" width=\"{width}\" height=\"14\"></rect>",
            state.name()
        );
        x += width;
    }
    out.push_str("</svg>\n");
}

fn rollout(out: &mut String, status: &Status, abilities: Abilities) {
    out.push_str("<section id=\"rollout\">\n<h2>Rollout</h2>\n");
    if let Some(f) = &status.freeze {
        let _ = writeln!(
            out,
            "<p class=\"freeze\" id=\"freeze\">{}</p>",
            escape(&f.message)
        );
    }
    if status.waves.is_empty() {
        out.push_str("<p class=\"muted\">No <code>rollout:</code> block: every environment takes its channel's latest release.</p>\n");
    }
    for w in &status.waves {
        let s = &w.summary;
        let _ = writeln!(
            out,
            "<div class=\"wave\" data-wave=\"{}\" data-channel=\"{}\">\n<h3>{} <small>{} → {}</small></h3>",
            escape(&s.wave),
            escape(&s.channel),
            escape(&s.wave),
            escape(&s.channel),
            escape(s.target.as_deref().unwrap_or("-"))
        );
        bar(out, w);
        out.push_str("<p class=\"counts\">");
        for state in EnvState::ALL {
            let _ = write!(
                out,
                "<span class=\"count s-{0}\" data-state=\"{0}\">{0} <b>{1}</b></span> ",
                state.name(),
                w.progress.get(state)
            );
        }
        let _ = write!(
            out,
            "<span class=\"count\">of <b class=\"total\">{}</b></span>",
            s.environments
        );
        if let Some(secs) = s.soak_remaining_secs {
            let _ = write!(
                out,
                " <span class=\"soak\">soaking {} more</span>",
                age(secs.unsigned_abs())
            );
        }
        out.push_str("</p>\n");
        if !w.gates.is_empty() {
            out.push_str("<ul class=\"gates\">");
            for g in &w.gates {
                let state = match (g.checked, g.failures, g.halted.is_empty()) {
                    (false, _, _) => "not checked here".to_string(),
                    (true, 0, true) => "passing".to_string(),
                    (true, n, true) => format!("{n} failure(s)"),
                    (true, n, false) => format!("{n} failure(s); halted {}", g.halted.join(", ")),
                };
                let _ = write!(
                    out,
                    "<li class=\"gate\">gate <b>{}</b>: {}</li>",
                    escape(&g.name),
                    escape(&state)
                );
            }
            out.push_str("</ul>\n");
        }
        for h in &s.holds {
            let _ = write!(
                out,
                "<p class=\"hold\">held by <b>{}</b>: {}{}</p>",
                escape(&h.by),
                escape(&h.reason),
                h.since
                    .as_deref()
                    .map(|t| format!(" <small>since {}</small>", escape(t)))
                    .unwrap_or_default()
            );
        }
        if abilities.holds {
            hold_form(
                out,
                "wave",
                &s.wave,
                s.holds.iter().any(
                    |h| matches!(&h.scope, crate::rollout::holds::Scope::Wave(n) if *n == s.wave),
                ),
            );
        }
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

/// A form that holds (or releases) a wave or an environment through the
/// holds API; `app.js` sends it with the page's header.
fn hold_form(out: &mut String, scope: &str, name: &str, held: bool) {
    let target = format!("/api/v1/holds/{scope}/{}", encode(name));
    if held {
        let _ = writeln!(
            out,
            "<form class=\"hold-form\" data-method=\"DELETE\" data-url=\"{}\" data-scope=\"{scope}\" data-name=\"{}\">\
             <button type=\"submit\" class=\"release\">Release the hold on {}</button> <output></output></form>",
            escape(&target),
            escape(name),
            escape(name)
        );
    } else {
        let _ = writeln!(
            out,
            "<form class=\"hold-form\" data-method=\"POST\" data-url=\"/api/v1/holds\" data-scope=\"{scope}\" data-name=\"{}\">\
             <input name=\"reason\" required placeholder=\"why\" aria-label=\"reason\"> \
             <button type=\"submit\" class=\"hold\">Hold {}</button> <output></output></form>",
            escape(name),
            escape(name)
        );
    }
}

fn filter(out: &mut String, query: &Query) {
    let _ = write!(
        out,
        "<form id=\"filter\" method=\"get\" action=\"/\">\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\" placeholder=\"filter: name, wave, version, error…\" aria-label=\"filter\"> \
         <select id=\"state\" name=\"state\" aria-label=\"state\"><option value=\"\">any state</option>",
        escape(&query.q)
    );
    for s in EnvState::ALL {
        let _ = write!(
            out,
            "<option value=\"{0}\"{1}>{0}</option>",
            s.name(),
            if query.state() == Some(s) {
                " selected"
            } else {
                ""
            }
        );
    }
    out.push_str("</select> <button type=\"submit\">Filter</button></form>\n");
}

fn pull_request(e: &EnvStatus) -> String {
    let Some(pr) = &e.pull_request else {
        return String::new();
    };
    let label = format!("#{} {}", pr.number, pr.title);
    let link = match href(&pr.url) {
        Some(url) => format!(
            "<a href=\"{url}\" rel=\"noreferrer\">{}</a>",
            escape(&label)
        ),
        None => escape(&label),
    };
    let opened = pr
        .age_secs
        .map(|a| format!(" <small>{} old</small>", age(a)))
        .unwrap_or_default();
    format!("{link}{opened}")
}

fn table(out: &mut String, status: &Status, query: &Query) {
    let rows = rows(status, query);
    let _ = writeln!(
        out,
        "<div id=\"rows\" data-matched=\"{}\" data-total=\"{}\">\n<p class=\"muted\" id=\"matched\">{} of {} environments</p>",
        rows.matched,
        status.environments.len(),
        rows.matched,
        status.environments.len()
    );
    out.push_str(
        "<table id=\"environments\">\n<thead><tr><th>environment</th><th>wave</th><th>channel</th>\
         <th>current → target</th><th>state</th><th>pull request</th><th>last error</th></tr></thead>\n<tbody>\n",
    );
    for e in &rows.shown {
        let target = e
            .rollout
            .target
            .as_deref()
            .or(e.available.as_deref())
            .unwrap_or("-");
        let current = e.rendered.as_deref().unwrap_or("-");
        let versions = if current == target {
            escape(current)
        } else {
            format!("{} → {}", escape(current), escape(target))
        };
        let waiting = e
            .rollout
            .waiting
            .as_deref()
            .map(|w| format!(" <small>{}</small>", escape(w)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "<tr data-env=\"{0}\" data-state=\"{1}\"><td><a href=\"/environments/{2}\">{0}</a></td><td>{3}</td><td>{4}</td>\
             <td>{5}</td><td><span class=\"state s-{1}\">{1}</span>{6}</td><td>{7}</td><td class=\"error\">{8}</td></tr>",
            escape(&e.env),
            e.state.name(),
            encode(&e.env),
            escape(e.rollout.wave.as_deref().unwrap_or("-")),
            escape(e.channel.as_deref().unwrap_or("-")),
            versions,
            waiting,
            pull_request(e),
            escape(&e.error.as_deref().map(one_line).unwrap_or_default()),
        );
    }
    out.push_str("</tbody>\n</table>\n<nav class=\"pager\">");
    if rows.page > 1 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}\">← previous</a> ",
            escape(&query.at(rows.page - 1))
        );
    }
    let _ = write!(
        out,
        "<span id=\"page\">page {} of {}</span>",
        rows.page, rows.pages
    );
    if rows.page < rows.pages {
        let _ = write!(
            out,
            " <a rel=\"next\" href=\"{}\">next →</a>",
            escape(&query.at(rows.page + 1))
        );
    }
    out.push_str("</nav>\n</div>\n");
}

/// The fleet page: the header, the rollout and one page of environments.
pub fn fleet(status: &Status, query: &Query, abilities: Abilities) -> String {
    let mut out = String::with_capacity(64 * 1024);
    head(
        &mut out,
        &format!("hydrant · {}", status.repository),
        abilities.holds,
    );
    out.push_str("<header>\n<h1><a href=\"/\">hydrant</a> <small>fleet</small></h1>\n");
    summary(&mut out, status);
    out.push_str("</header>\n<main>\n");
    rollout(&mut out, status, abilities);
    out.push_str("<section id=\"fleet\">\n<h2>Environments</h2>\n");
    filter(&mut out, query);
    table(&mut out, status, query);
    out.push_str("</section>\n</main>\n");
    foot(&mut out);
    out
}

/// The page of one environment, `None` when the fleet has none of that name.
pub fn environment(
    status: &Status,
    detail: Option<&Detail>,
    env: &str,
    abilities: Abilities,
) -> Option<String> {
    let e = status.environment(env)?;
    let mut out = String::with_capacity(16 * 1024);
    head(&mut out, &format!("hydrant · {}", e.env), abilities.holds);
    let _ = writeln!(
        out,
        "<header>\n<h1><a href=\"/\">hydrant</a> <small>environment</small> <span id=\"env-name\">{}</span></h1>\n</header>\n<main id=\"environment\" data-env=\"{}\">",
        escape(&e.env),
        escape(&e.env)
    );
    out.push_str("<section>\n<dl class=\"facts\">\n");
    let mut fact = |name: &str, id: &str, value: String| {
        let _ = writeln!(
            out,
            "<div><dt>{}</dt><dd id=\"{id}\">{value}</dd></div>",
            escape(name)
        );
    };
    fact(
        "state",
        "state",
        format!("<span class=\"state s-{0}\">{0}</span>", e.state.name()),
    );
    fact(
        "wave",
        "wave",
        escape(e.rollout.wave.as_deref().unwrap_or("-")),
    );
    let channel = match (&e.channel, &e.release) {
        (Some(c), Some(r)) => format!("{c}@{r} (pinned)"),
        (Some(c), None) => c.clone(),
        _ => "-".to_string(),
    };
    fact("channel", "channel", escape(&channel));
    fact(
        "rendered on the base branch",
        "rendered",
        escape(e.rendered.as_deref().unwrap_or("-")),
    );
    fact(
        "channel offers",
        "available",
        escape(e.available.as_deref().unwrap_or("-")),
    );
    if let Some(t) = &e.rollout.target {
        fact("rollout target", "target", escape(t));
    }
    if let Some(w) = &e.rollout.waiting {
        fact("waits because", "waiting", escape(w));
    }
    if let Some(r) = &e.rollback {
        fact("rolls back because", "rollback", escape(r));
    }
    if let Some(h) = &e.hold {
        fact(
            "held",
            "hold",
            format!("by <b>{}</b>: {}", escape(&h.by), escape(&h.reason)),
        );
    }
    fact("pull request", "pull-request", {
        let pr = pull_request(e);
        if pr.is_empty() {
            "none".to_string()
        } else {
            pr
        }
    });
    if let Some(err) = &e.error {
        fact("last error", "error", escape(&one_line(err)));
    }
    out.push_str("</dl>\n");
    if abilities.holds {
        hold_form(&mut out, "environment", &e.env, e.hold.is_some());
    }
    out.push_str("</section>\n");
    match detail {
        None => out.push_str(
            "<section id=\"plan\"><h2>Plan</h2><p class=\"muted\">No cycle has gone through it yet.</p></section>\n",
        ),
        Some(d) => {
            let _ = writeln!(
                out,
                "<section id=\"plan\">\n<h2>Plan</h2>\n<p><b class=\"decision\">{}</b> ({}) — {}</p>",
                escape(&d.decision),
                escape(&d.action),
                escape(&d.reason)
            );
            if d.files.is_empty() {
                out.push_str("<p class=\"muted\">The last render changed no file.</p>\n");
            } else {
                out.push_str("<h3>Files the last render changed</h3>\n<ul id=\"files\">\n");
                for (mark, path) in &d.files {
                    let _ = writeln!(
                        out,
                        "<li><code>{} {}</code></li>",
                        escape(&mark.to_string()),
                        escape(path)
                    );
                }
                out.push_str("</ul>\n");
            }
            out.push_str("</section>\n<section id=\"provenance\">\n<h2>Where its values come from</h2>\n");
            if let Some(err) = &d.provenance_error {
                let _ = writeln!(out, "<p class=\"error\">{}</p>", escape(&one_line(err)));
            }
            if d.provenance.is_empty() {
                out.push_str("<p class=\"muted\">It sets no value of its own.</p>\n");
            } else {
                out.push_str("<table>\n<thead><tr><th>key</th><th>value</th><th>set by</th><th>other layers</th></tr></thead>\n<tbody>\n");
                for p in &d.provenance {
                    let _ = writeln!(
                        out,
                        "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        escape(&p.key),
                        escape(p.value.as_deref().unwrap_or("(not set)")),
                        escape(p.origin.as_deref().unwrap_or("-")),
                        p.others
                            .iter()
                            .map(|o| escape(o))
                            .collect::<Vec<_>>()
                            .join("<br>")
                    );
                }
                out.push_str("</tbody>\n</table>\n");
            }
            out.push_str("</section>\n");
        }
    }
    out.push_str("</main>\n");
    foot(&mut out);
    Some(out)
}

/// A page that says one thing (not found, not ready, log in).
pub fn message(title: &str, text: &str, login: bool) -> String {
    let mut out = String::new();
    head(&mut out, &format!("hydrant · {title}"), false);
    let _ = writeln!(
        out,
        "<header>\n<h1><a href=\"/\">hydrant</a> <small>{}</small></h1>\n</header>\n<main>\n<p id=\"message\">{}</p>",
        escape(title),
        escape(text)
    );
    if login {
        out.push_str(
            "<form id=\"login\" method=\"get\" action=\"/login\"><input name=\"token\" type=\"password\" \
             autocomplete=\"current-password\" aria-label=\"token\" placeholder=\"UI token\"> \
             <button type=\"submit\">Log in</button></form>\n",
        );
    }
    out.push_str("</main>\n");
    foot(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::status::{EnvStatus, PrStatus};

    fn env(name: &str, wave: &str, state: EnvState) -> EnvStatus {
        EnvStatus {
            env: name.to_string(),
            channel: Some("stable".into()),
            release: None,
            available: Some("0.63.0".into()),
            rendered: Some("0.62.1".into()),
            pull_request: None,
            error: None,
            rollout: crate::rollout::Position {
                wave: Some(wave.to_string()),
                ..Default::default()
            },
            rollback: None,
            hold: None,
            state,
        }
    }

    fn status(environments: Vec<EnvStatus>) -> Status {
        Status {
            repository: "file:///r\"<x>".into(),
            base: "main".into(),
            commit: "abc".into(),
            channels: Vec::new(),
            cycle: None,
            waves: Vec::new(),
            environments,
            freeze: None,
        }
    }

    #[test]
    fn the_table_filters_by_text_and_state_and_pages_on_the_server() {
        let envs = (0..250)
            .map(|i| {
                let state = if i % 2 == 0 {
                    EnvState::Waiting
                } else {
                    EnvState::Merged
                };
                env(&format!("e{i:03}"), "w", state)
            })
            .collect();
        let s = status(envs);
        let all = rows(&s, &Query::default());
        assert_eq!((all.matched, all.pages, all.shown.len()), (250, 3, 100));
        assert_eq!(all.shown[0].env, "e000");
        let last = rows(
            &s,
            &Query {
                page: Some(9),
                ..Query::default()
            },
        );
        assert_eq!(
            (last.page, last.shown.len()),
            (3, 50),
            "a page past the end is the last"
        );
        let waiting = rows(
            &s,
            &Query {
                q: "E01".into(),
                state: "waiting".into(),
                page: None,
            },
        );
        assert_eq!(waiting.matched, 5, "e010, e012 … e018");
        assert!(waiting.shown.iter().all(|e| e.state == EnvState::Waiting));
    }

    #[test]
    fn everything_printed_is_escaped_and_nothing_is_inline() {
        let mut e = env("x-script-img", "w\"<b>", EnvState::Open);
        e.pull_request = Some(PrStatus {
            number: 1,
            url: "javascript:alert(1)".into(),
            title: "<script>alert(1)</script>".into(),
            opened_at: None,
            age_secs: None,
            draft: false,
            waits_for_review: true,
        });
        e.error = Some("failed: <img src=x onerror=alert(1)>".into());
        let s = status(vec![e]);
        let html = fleet(
            &s,
            &Query {
                q: "\"><script>".into(),
                ..Query::default()
            },
            Abilities::default(),
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("value=\"&quot;&gt;&lt;script&gt;\""),
            "{html}"
        );
        assert!(html.contains("file:///r&quot;&lt;x&gt;"), "{html}");
        assert!(!html.contains("style=") && !html.contains(" on"), "{html}");
        let page = environment(&s, None, "x-script-img", Abilities::default()).expect("a page");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(environment(&s, None, "nope", Abilities::default()).is_none());
    }
}
