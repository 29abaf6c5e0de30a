use std::process::ExitCode;

// Rendering a fleet allocates many small values on every core; mimalloc keeps
// that from contending on glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hydrant::cli::main()
}
