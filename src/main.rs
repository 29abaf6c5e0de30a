use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hydrant::cli::Cli::parse();
    hydrant::cli::init_logging(&cli.global);
    hydrant::cli::run(cli)
}
