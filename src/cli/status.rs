//! `hydrant status`: per environment, the version its channel offers, the
//! version rendered on the base branch, and its open pull request.

use std::process::ExitCode;

use serde_json::json;

use super::OutputFormat;
use super::reconcile::{ReconcileArgs, prepare};
use crate::delivery::status::{self, EnvStatus};

/// `3d`, `5h`, `12m`, `40s`.
fn age(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One line per rollout wave and channel: its target, how many run it, how
/// many are offered it, wait or are held, the soak left and the holds.
pub(crate) fn wave_lines(waves: &[crate::rollout::WaveSummary]) -> Vec<String> {
    let mut out = Vec::new();
    for w in waves {
        let mut line = format!(
            "wave {}  {} {}: {} of {} run it, {} offered, {} waiting, {} held",
            w.wave,
            w.channel,
            w.target.as_deref().unwrap_or("-"),
            w.running,
            w.environments,
            w.offered,
            w.waiting,
            w.held
        );
        if w.pinned > 0 {
            line.push_str(&format!(", {} pinned", w.pinned));
        }
        if let Some(secs) = w.soak_remaining_secs {
            line.push_str(&format!(", soaking {} more", age(secs.unsigned_abs())));
        }
        for h in &w.holds {
            line.push_str(&format!("; held by {}: {}", h.by, h.reason));
        }
        out.push(line);
    }
    out
}

fn line(s: &EnvStatus) -> [String; 5] {
    let channel = match (&s.channel, &s.release) {
        (Some(c), Some(r)) => format!("{c}@{r}"),
        (Some(c), None) => c.clone(),
        _ => "-".to_string(),
    };
    let available = s.available.clone().unwrap_or_else(|| "-".to_string());
    let rendered = s.rendered.clone().unwrap_or_else(|| "-".to_string());
    let pr = match &s.pull_request {
        None if s.available.is_some() && s.available == s.rendered => "up to date".to_string(),
        None => "-".to_string(),
        Some(pr) => {
            let mut text = format!("#{}", pr.number);
            if let Some(a) = pr.age_secs {
                text.push_str(&format!(" opened {} ago", age(a)));
            }
            text.push_str(if pr.draft {
                ", draft"
            } else if pr.waits_for_review {
                ", waits for review"
            } else {
                ", merges when checks pass"
            });
            format!("{text}  {}", pr.url)
        }
    };
    [s.env.clone(), channel, available, rendered, pr]
}

pub fn run(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let (
        crate::delivery::connect::Session {
            workspace: ws,
            forge,
        },
        opts,
    ) = prepare(&args)?;
    let status::Status {
        waves,
        environments: statuses,
    } = status::status(&ws, forge.as_ref(), &opts)?;
    if args.output == OutputFormat::Json {
        let shown = if waves.is_empty() {
            json!({ "environments": statuses })
        } else {
            json!({ "waves": waves, "environments": statuses })
        };
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        for line in wave_lines(&waves) {
            println!("{line}");
        }
        let mut rows = vec![
            [
                "ENVIRONMENT",
                "CHANNEL",
                "AVAILABLE",
                "RENDERED",
                "PULL REQUEST",
            ]
            .map(String::from),
        ];
        rows.extend(statuses.iter().map(line));
        let widths: Vec<usize> = (0..4)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let mut text = String::new();
            for (cell, w) in r.iter().zip(&widths) {
                text.push_str(&format!("{cell:w$}  "));
            }
            text.push_str(&r[4]);
            println!("{}", text.trim_end());
        }
        for s in &statuses {
            if let Some(waiting) = &s.waiting {
                println!(
                    "{}: wave {}, stays until it may take {}: {waiting}",
                    s.env,
                    s.wave.as_deref().unwrap_or("-"),
                    s.target.as_deref().unwrap_or("-")
                );
            }
        }
        for s in statuses.iter().filter(|s| s.error.is_some()) {
            eprintln!("error: {}: {}", s.env, s.error.as_deref().unwrap_or(""));
        }
    }
    Ok(if statuses.iter().any(|s| s.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::status::PrStatus;

    #[test]
    fn a_row_says_what_waits() {
        let mut s = EnvStatus {
            env: "prod".into(),
            channel: Some("stable".into()),
            release: None,
            available: Some("0.63.0".into()),
            rendered: Some("0.62.1".into()),
            pull_request: Some(PrStatus {
                number: 7,
                url: "https://example.test/7".into(),
                opened_at: None,
                age_secs: Some(7_300),
                draft: false,
                waits_for_review: true,
            }),
            error: None,
            wave: None,
            target: None,
            waiting: None,
        };
        assert_eq!(
            line(&s),
            [
                "prod",
                "stable",
                "0.63.0",
                "0.62.1",
                "#7 opened 2h ago, waits for review  https://example.test/7"
            ]
            .map(String::from)
        );
        s.pull_request = None;
        s.rendered = Some("0.63.0".into());
        assert_eq!(line(&s)[4], "up to date");
    }
}
