//! `hydrant config show`: every setting, its value, and where the value came
//! from (flag > `HYDRANT_*` env > settings file > default).

use std::process::ExitCode;

use clap::{Args, CommandFactory, Subcommand};
use serde_json::json;

use super::run::DaemonArgs;
use super::{Cli, OutputFormat};
use crate::settings::{self, Resolved, SettingsFile, Source};

#[derive(Debug, Args)]
pub struct ConfigCommand {
    #[command(subcommand)]
    pub command: ConfigSubcommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigSubcommand {
    /// List the settings of `hydrant run` (and so of `reconcile`) as they
    /// resolve with the flags given here, the environment and the settings file.
    Show(Box<DaemonArgs>),
}

fn shown(r: &Resolved) -> String {
    match r.values.as_slice() {
        [] => "-".to_string(),
        [one] => crate::auth::redact_url(one),
        many => many
            .iter()
            .map(|v| crate::auth::redact_url(v))
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn origin(r: &Resolved, file: Option<&SettingsFile>) -> String {
    let origin = match (&r.source, file, r.line) {
        (Source::Env, _, _) => format!("env {}", r.env.as_deref().unwrap_or("")),
        (Source::File, Some(f), Some(line)) => format!("{}:{line}", f.path.display()),
        (source, _, _) => serde_json::to_value(source)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    };
    match &r.derived {
        Some(derived) => format!("{origin} ({derived})"),
        None => origin,
    }
}

pub fn run(
    args: ConfigCommand,
    matches: &clap::ArgMatches,
    file: Option<&SettingsFile>,
) -> anyhow::Result<ExitCode> {
    let ConfigSubcommand::Show(show) = args.command;
    let cli = Cli::command();
    let show_cmd = cli
        .find_subcommand("config")
        .and_then(|c| c.find_subcommand("show"))
        .ok_or_else(|| anyhow::anyhow!("the `config show` command is missing"))?;
    let show_matches = matches
        .subcommand_matches("config")
        .and_then(|m| m.subcommand_matches("show"))
        .ok_or_else(|| anyhow::anyhow!("`config show` was not parsed"))?;
    let mut all = settings::resolve(&cli, matches, file);
    all.extend(settings::resolve(show_cmd, show_matches, file));
    let forge = show
        .reconcile
        .forge_kind()
        .map(|kind| {
            clap::ValueEnum::to_possible_value(&kind)
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        })
        .map_err(|e| e.to_string());
    settings::fill_derived(&mut all, forge);
    let file_shown = file.map(|f| f.path.display().to_string());
    if show.reconcile.output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "file": file_shown, "settings": all }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("settings file: {}", file_shown.as_deref().unwrap_or("none"));
    let width = all.iter().map(|r| r.key.len()).max().unwrap_or(0);
    let value_width = all
        .iter()
        .map(|r| shown(r).len())
        .max()
        .unwrap_or(0)
        .min(48);
    for r in &all {
        println!(
            "{:width$}  {:value_width$}  {}",
            r.key,
            shown(r),
            origin(r, file)
        );
    }
    Ok(ExitCode::SUCCESS)
}
