use std::process::ExitCode;

use anyhow::anyhow;
use clap::Args;

use super::{OutputFormat, RepoArgs, report_problems};
use crate::yaml;

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// The environment.
    #[arg(long, env = "HYDRANT_ENV")]
    pub env: String,
    /// The key, as a dotted path: `global.host`, `app.image.tag`,
    /// `ingress.annotations["nginx.ingress.kubernetes.io/proxy-body-size"]`.
    #[arg(value_name = "KEY.PATH")]
    pub key: String,
    /// Output format.
    #[arg(long, env = "HYDRANT_OUTPUT", value_enum, default_value_t)]
    pub output: OutputFormat,
}

fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
            let block = yaml::to_block(v);
            format!("\n      {}", block.replace('\n', "\n      "))
        }
        other => other.to_string(),
    }
}

pub fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let path = yaml::parse_path(&args.key).map_err(|e| anyhow!(e))?;
    let project = args.repo.open()?;
    let explanation = match project.explain(&args.env, &path) {
        Ok(e) => e,
        Err(problems) => {
            report_problems(&args.env, &problems);
            return Ok(ExitCode::from(1));
        }
    };
    if args.output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
        return Ok(ExitCode::SUCCESS);
    }
    match (&explanation.value, &explanation.origin) {
        (Some(v), Some(origin)) => {
            println!("{} = {}", explanation.key, show(v));
            println!("  set by: {origin}");
        }
        (Some(v), None) => println!("{} = {}", explanation.key, show(v)),
        (None, _) => println!("{} is not set", explanation.key),
    }
    let winner = explanation.origin.as_ref();
    let others: Vec<_> = explanation
        .layers
        .iter()
        .filter(|say| Some(&say.origin) != winner)
        .collect();
    if !others.is_empty() {
        println!("  other layers:");
        for say in others {
            let what = if say.value.is_null() {
                "null (deletes the key)".to_string()
            } else {
                show(&say.value)
            };
            match &say.via {
                Some(via) => println!("    {}: {what} (set whole at `{via}`)", say.origin),
                None => println!("    {}: {what}", say.origin),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
