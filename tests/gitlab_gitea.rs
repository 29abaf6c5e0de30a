//! Reconcile against stateful fakes of GitLab and Gitea on 127.0.0.1, with the
//! git remote over smart HTTP using the same token.

mod common;

use common::Run;
use common::fake_forges::{Dialect, FakeForge};
use common::git::{HttpGit, Remote};

const TOKEN: &str = "glpat-or-gitea-token-0123456789";

struct Setup {
    remote: Remote,
    git: HttpGit,
    forge: FakeForge,
    dialect: Dialect,
    dirs: tempfile::TempDir,
}

impl Setup {
    fn new(dialect: Dialect) -> Setup {
        let remote = Remote::new();
        let git = HttpGit::start(remote.root.path(), TOKEN);
        let forge = FakeForge::start(dialect, TOKEN, "acme/wandb-config", 60);
        Setup {
            remote,
            git,
            forge,
            dialect,
            dirs: tempfile::tempdir().unwrap(),
        }
    }

    fn reconcile(&self) -> Run {
        let (name, var, url_flag) = match self.dialect {
            Dialect::GitLab => ("gitlab", "HYDRANT_GITLAB_TOKEN", "--gitlab-url"),
            Dialect::Gitea => ("gitea", "HYDRANT_GITEA_TOKEN", "--gitea-url"),
        };
        let url = self.git.url("remote.git");
        let server = self.forge.url();
        let work = self.dirs.path().join("work");
        let out = common::hydrant()
            .args([
                "reconcile",
                "--once",
                "--repo",
                &url,
                "--work-dir",
                work.to_str().unwrap(),
                "--forge",
                name,
                url_flag,
                &server,
                "--forge-repository",
                "acme/wandb-config",
                "--output",
                "json",
            ])
            .env(var, TOKEN)
            .env("HYDRANT_FORGE_BACKOFF_MS", "20")
            .current_dir(self.dirs.path())
            .output()
            .unwrap();
        let run = Run::from(out);
        assert!(
            !run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN),
            "the token leaked"
        );
        run
    }
}

fn cycle(dialect: Dialect) {
    let s = Setup::new(dialect);
    let staging = s.remote.read_main("environments/staging/environment.yaml");
    s.remote.commit_to_main(
        "environments/staging/environment.yaml",
        &format!("{staging}\npullRequest:\n  autoMerge: true\n  labels: [hydrant, staging]\n  reviewers: [platform-lead]\n"),
        "staging settings",
    );
    s.forge.too_many(1);
    let run = s.reconcile();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let a = run.actions();
    assert!(
        a.contains(&("staging".into(), "opened".into()))
            && a.contains(&("prod".into(), "opened".into())),
        "{a:?}"
    );
    let changes = s.forge.hydrant_changes();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let staging = changes
        .iter()
        .find(|c| c.head == "hydrant/staging")
        .unwrap();
    let prod = changes.iter().find(|c| c.head == "hydrant/prod").unwrap();
    assert!(
        staging.auto_merge && !prod.auto_merge,
        "auto-merge only where configured: {changes:?}"
    );
    assert!(
        staging.labels.contains(&"staging".to_string()),
        "{staging:?}"
    );
    assert_eq!(staging.reviewers.len(), 1);
    assert_eq!(prod.title, "hydrant(prod): stable 0.62.1 → 0.63.0");
    // Same inputs: nothing written; after a restart: no duplicate.
    let writes = s.forge.writes();
    let a = s.reconcile().actions();
    assert!(a.iter().all(|(_, x)| x == "unchanged"), "{a:?}");
    assert_eq!(s.forge.writes(), writes);
    std::fs::remove_dir_all(s.dirs.path().join("work")).unwrap();
    assert_eq!(s.reconcile().code, 0);
    assert_eq!(s.forge.hydrant_changes().len(), 2);
    // A new version updates in place.
    let spec = s
        .remote
        .read_main("channels/stable.yaml")
        .replace("0.63.0", "0.63.1");
    s.remote
        .commit_to_main("channels/stable.yaml", &spec, "stable 0.63.1");
    let a = s.reconcile().actions();
    assert!(a.contains(&("prod".into(), "updated".into())), "{a:?}");
    let prod = s
        .forge
        .hydrant_changes()
        .into_iter()
        .find(|c| c.head == "hydrant/prod")
        .unwrap();
    assert_eq!(prod.title, "hydrant(prod): stable 0.62.1 → 0.63.1");
    assert_eq!(s.forge.hydrant_changes().len(), 2);
    // prod's change lands on main by other means: the change is closed with a note.
    s.remote.land_by_hand("prod");
    let a = s.reconcile().actions();
    assert!(a.contains(&("prod".into(), "closed".into())), "{a:?}");
    let prod = s
        .forge
        .hydrant_changes()
        .into_iter()
        .find(|c| c.head == "hydrant/prod")
        .unwrap();
    assert!(
        !prod.open
            && prod
                .comments
                .iter()
                .any(|c| c.contains("already up to date")),
        "{prod:?}"
    );
    assert!(s.remote.branch("hydrant/prod").is_none());
}

#[test]
fn gitlab_merge_requests_are_opened_updated_and_never_duplicated() {
    cycle(Dialect::GitLab);
}

#[test]
fn gitea_pull_requests_are_opened_updated_and_never_duplicated() {
    cycle(Dialect::Gitea);
}
