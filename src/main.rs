use std::process::ExitCode;

// Rendering a fleet allocates many small values on every core; mimalloc keeps
// that from contending on glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    no_transparent_huge_pages();
    hydrant::cli::main()
}

/// Turns transparent huge pages off for this process. mimalloc asks the
/// kernel for huge pages over the arenas it reserves, and hydrant's heap is
/// many small values spread over them: each first touch of a 2 MiB region
/// then makes the kernel find (compacting memory if it must) and zero a whole
/// huge page. Measured on a no-op reconcile over 1,000 environments: 61 MiB
/// and 0.05–0.32 s with them (the spread is the kernel's compaction), 36 MiB
/// and 0.05–0.07 s without.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a
    // flag of this process; it touches no memory hydrant holds.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
