//! The config repository as a git remote: fetch, read, commit, push.
//!
//! hydrant keeps a bare clone of the config repository in a work directory it
//! owns (`--work-dir`), fetches into it incrementally, reads the base branch's
//! commit straight from the object database and builds commits in memory. It
//! never checks anything out, so a user's own checkout (even when `--repo` is
//! that checkout) and its checked-out branch are never touched. Only
//! `hydrant/<env>` branches are pushed, but for an emergency edit (a hold)
//! that goes straight to the base branch as a fast-forward.
//!
//! A lock file in the work directory keeps two runs from using it at once.
//! Credentials (an HTTPS token or an SSH key) are handed to git on demand and
//! never written into a remote URL, a log line or an error.

mod pack;
mod receive_pack;
mod snapshot;
mod workspace;

pub use snapshot::{RenderedDirs, Snapshot};

pub use git2::{Oid, Signature};
pub use workspace::{
    Batch, BranchCommit, Credentials, Fetched, RefUpdate, Subdir, Tip, Workspace, default_work_dir,
};

/// How long a remote may stay silent (connecting, or between two reads or
/// writes of a fetch or push) before the operation fails. libgit2 waits
/// forever by default, so a remote that accepts a connection and never
/// answers would stall every cycle that follows.
///
/// Call it before any git operation: libgit2's global options are not
/// guarded against a concurrent fetch or push.
pub fn set_timeout(timeout: std::time::Duration) {
    tune();
    TIMEOUT_MS.store(
        u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: called once while setting up a command, before any thread
    // fetches or pushes; a failure leaves libgit2's default.
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
    }
}

/// The timeout [`set_timeout`] was given, in milliseconds, for the pushes
/// hydrant speaks itself (smart HTTP).
static TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long a remote may stay silent: what [`set_timeout`] was given, or
/// a minute.
pub(crate) fn timeout() -> std::time::Duration {
    match TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => std::time::Duration::from_secs(60),
        ms => std::time::Duration::from_millis(ms),
    }
}

/// The most libgit2 keeps in its object cache, in bytes.
const CACHE_BYTES: isize = 48 << 20;

/// The largest tree libgit2 caches (a fleet's `rendered/` tree is about
/// 40 bytes per environment).
const TREE_CACHE_BYTES: usize = 4 << 20;

/// libgit2's object cache keeps only trees under 4 KiB, and every object read
/// is hashed again. In a fleet, `rendered/` is one tree of an entry per
/// environment (tens of KiB), walked once per environment: keep it cached,
/// and trust the work directory's objects, which were verified on fetch.
///
/// Done once, by the first command that opens a work directory
/// ([`set_timeout`] comes first there): setting any libgit2 option starts
/// libgit2, which loads the system's CA certificates (about 8 ms), so a
/// command that never touches git (`render` of a directory, `--version`)
/// must not pay for it.
fn tune() {
    static TUNED: std::sync::Once = std::sync::Once::new();
    TUNED.call_once(|| {
        git2::opts::strict_hash_verification(false);
        // A branch is only ever set to a commit hydrant has just written
        // and made durable (or read from the remote): checking that it
        // exists would read the header of every commit of a cycle's pack,
        // mapping the whole pack into memory.
        git2::opts::strict_object_creation(false);
        // SAFETY: called before the first repository is opened, before any
        // thread fetches, pushes or reads objects.
        let _ =
            unsafe { git2::opts::set_cache_object_limit(git2::ObjectType::Tree, TREE_CACHE_BYTES) };
        // The cache's whole size (libgit2's default is 256 MiB): a fleet's
        // `rendered/` trees are tens of KiB each, one per branch, and a bump
        // reads every branch's; what is cached beyond the base's trees is not
        // read again in a cycle.
        // SAFETY: as above.
        let _ = unsafe { git2::opts::set_cache_max_size(CACHE_BYTES) };
    });
}

/// The largest tree libgit2 caches while it builds the pack of a push.
const PUSH_TREE_CACHE_BYTES: usize = 16 << 10;

/// Runs `push` with libgit2's object cache set for building the pack of a
/// push of many branches: the pack builder looks up every subtree of every
/// pushed commit, so every environment's small `rendered/<env>` tree is
/// looked up once per pushed branch and must stay cached, while each
/// commit's large `rendered/` tree, read once, is not cached (storing
/// thousands of them made every store evict, and libgit2's eviction scans
/// its cache: a push of a fleet took quadratic time).
pub(crate) fn with_push_cache<T>(push: impl FnOnce() -> T) -> T {
    tune();
    // SAFETY: a limit is one machine word libgit2 reads when it stores an
    // object; a lookup on another thread meanwhile caches an object or not.
    let _ = unsafe {
        git2::opts::set_cache_object_limit(git2::ObjectType::Tree, PUSH_TREE_CACHE_BYTES)
    };
    let out = push();
    // SAFETY: as above.
    let _ = unsafe { git2::opts::set_cache_object_limit(git2::ObjectType::Tree, TREE_CACHE_BYTES) };
    out
}

/// The branch hydrant owns for an environment.
pub fn branch_name(env: &str) -> String {
    format!("hydrant/{env}")
}

/// The key of a grouped rollout wave's branch: its branch is
/// `hydrant/wave-<wave>` ([`branch_name`] of this key).
pub fn group_key(wave: &str) -> String {
    format!("wave-{wave}")
}

/// The trailer marking a commit as hydrant's own.
pub const ENV_TRAILER: &str = "Hydrant-Environment";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot reach `{url}`: {message}")]
    Unreachable {
        url: String,
        message: String,
        #[source]
        source: Option<git2::Error>,
    },
    #[error("authentication to `{url}` failed: {message}")]
    Auth {
        url: String,
        message: String,
        #[source]
        source: Option<git2::Error>,
    },
    #[error("base branch `{branch}` does not exist on `{url}`{}", if known.is_empty() { String::new() } else { format!("; branches there: {}", known.join(", ")) })]
    MissingBase {
        branch: String,
        url: String,
        known: Vec<String>,
    },
    #[error("failed to push branch `{branch}` to `{url}`: {message}")]
    PushRejected {
        branch: String,
        url: String,
        message: String,
    },
    #[error(
        "base branch `{branch}` of `{url}` is a `hydrant/*` branch, which hydrant rewrites and deletes; hint: use the branch Argo CD or Flux applies (`main`), set with `--base`"
    )]
    HydrantBase { branch: String, url: String },
    #[error("another hydrant run holds `{path}`; waited {waited_secs}s")]
    Locked { path: String, waited_secs: u64 },
    #[error("work directory `{path}`: {message}")]
    WorkDir { path: String, message: String },
    /// Any other failure of libgit2, kept whole so that its code and class
    /// tell a lock or a network failure from a missing object.
    #[error("git: {}", .0.message())]
    Git(#[source] git2::Error),
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> GitError {
        GitError::Git(e)
    }
}

impl GitError {
    /// Whether the failure may pass by itself, so that trying again later can
    /// succeed: a remote out of reach, a push that lost a race, a lock held,
    /// and a libgit2 failure whose cause passes ([`cause_passes`]). Refused
    /// credentials, a missing or forbidden base branch and an unusable work
    /// directory wait for a person.
    pub fn transient(&self) -> bool {
        match self {
            GitError::Unreachable { .. }
            | GitError::PushRejected { .. }
            | GitError::Locked { .. } => true,
            GitError::Git(e) => cause_passes(e),
            GitError::Auth { .. }
            | GitError::MissingBase { .. }
            | GitError::HydrantBase { .. }
            | GitError::WorkDir { .. } => false,
        }
    }
}

/// Whether a libgit2 failure may pass by itself: a lock another process holds,
/// the network, the operating system, a timeout, a lost race. A missing or
/// ambiguous object, an invalid name or spec, a refused credential or
/// certificate, and a corrupt object database, object or index do not.
/// Anything else counts as passing, so that it is retried with backoff rather
/// than left until a person looks.
pub fn cause_passes(e: &git2::Error) -> bool {
    use git2::ErrorClass as Class;
    use git2::ErrorCode as Code;
    match (e.code(), e.class()) {
        (Code::Locked | Code::Timeout | Code::NotFastForward | Code::Exists, _) => true,
        (
            Code::NotFound
            | Code::Invalid
            | Code::InvalidSpec
            | Code::Ambiguous
            | Code::BareRepo
            | Code::UnbornBranch
            | Code::Auth
            | Code::Certificate
            | Code::HashsumMismatch
            | Code::Owner,
            _,
        ) => false,
        (_, Class::Net | Class::Http | Class::Ssh | Class::Ssl | Class::Os | Class::Thread) => true,
        (_, Class::Odb | Class::Object | Class::Zlib | Class::Repository | Class::Index) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_failure_keeps_its_cause_and_is_classified_by_it() {
        use git2::ErrorClass as Class;
        use git2::ErrorCode as Code;
        let cases = [
            (Code::Locked, Class::Reference, true),
            (Code::GenericError, Class::Net, true),
            (Code::GenericError, Class::Http, true),
            (Code::GenericError, Class::Os, true),
            (Code::NotFastForward, Class::Reference, true),
            (Code::Timeout, Class::Net, true),
            (Code::NotFound, Class::Odb, false),
            (Code::NotFound, Class::Reference, false),
            (Code::GenericError, Class::Odb, false),
            (Code::GenericError, Class::Zlib, false),
            (Code::GenericError, Class::Object, false),
            (Code::InvalidSpec, Class::Reference, false),
            (Code::Ambiguous, Class::Object, false),
            (Code::Certificate, Class::Ssl, false),
        ];
        for (code, class, passes) in cases {
            let cause = git2::Error::new(code, class, "what libgit2 said");
            let error = GitError::from(cause);
            assert_eq!(error.transient(), passes, "{code:?} {class:?}");
            assert_eq!(error.to_string(), "git: what libgit2 said");
            let source = std::error::Error::source(&error).map(|s| s.to_string());
            assert!(source.is_some_and(|s| s.contains("what libgit2 said")));
        }
    }

    #[test]
    fn branches_are_named_after_environments() {
        assert_eq!(branch_name("prod"), "hydrant/prod");
    }
}
