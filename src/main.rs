use std::process::ExitCode;

use clap::Parser;

// Rendering a fleet allocates many small values on every core; mimalloc keeps
// that from contending on glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = hydrant::cli::Cli::parse();
    hydrant::cli::init_logging(&cli.global);
    hydrant::cli::run(cli)
}
