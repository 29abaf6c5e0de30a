use std::process::ExitCode;

// Rendering a fleet allocates many small values on every core; mimalloc keeps
// that from contending on glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tune_git();
    hydrant::cli::main()
}

/// libgit2's object cache keeps only trees under 4 KiB, and every object read
/// is hashed again. In a fleet, `rendered/` is one tree of an entry per
/// environment (tens of KiB), walked once per environment: keep it cached,
/// and trust the work directory's objects, which were verified on fetch.
fn tune_git() {
    git2::opts::strict_hash_verification(false);
    // SAFETY: libgit2's global options are set before any thread starts.
    let _ = unsafe { git2::opts::set_cache_object_limit(git2::ObjectType::Tree, 4 << 20) };
}
