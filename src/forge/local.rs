//! The `local` forge: pull requests as JSON files in a state directory.
//!
//! It needs no hosting service, so the whole cycle runs offline, and its state
//! is plain files a person or a test can read: `<state-dir>/pulls/<number>.json`.
//! Every write replaces a file atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest};

pub struct LocalForge {
    dir: PathBuf,
    pulls: Mutex<BTreeMap<u64, PullRequest>>,
}

fn fail(message: String) -> ForgeError {
    ForgeError::State {
        forge: "local".to_string(),
        message,
        source: None,
    }
}

/// A file of the state directory that cannot be read or written.
fn io_fail(what: &str, path: &Path, e: std::io::Error) -> ForgeError {
    ForgeError::State {
        forge: "local".to_string(),
        message: format!("cannot {what} `{}`", path.display()),
        source: Some(e),
    }
}

impl LocalForge {
    /// Opens the state directory, reading every pull request in it.
    pub fn open(dir: &Path) -> Result<LocalForge, ForgeError> {
        let pulls_dir = dir.join("pulls");
        let mut pulls = BTreeMap::new();
        match std::fs::read_dir(&pulls_dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().and_then(|e| e.to_str()) != Some("json") {
                        continue;
                    }
                    let text =
                        std::fs::read_to_string(&path).map_err(|e| io_fail("read", &path, e))?;
                    let pr: PullRequest = serde_json::from_str(&text).map_err(|e| {
                        fail(format!("`{}` is not a pull request: {e}", path.display()))
                    })?;
                    pulls.insert(pr.number, pr);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_fail("read", &pulls_dir, e)),
        }
        Ok(LocalForge {
            dir: dir.to_path_buf(),
            pulls: Mutex::new(pulls),
        })
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join("pulls").join(format!("{number}.json"))
    }

    fn save(&self, pr: &PullRequest) -> Result<(), ForgeError> {
        let dir = self.dir.join("pulls");
        std::fs::create_dir_all(&dir).map_err(|e| io_fail("create", &dir, e))?;
        let mut text = serde_json::to_string_pretty(pr).map_err(|e| fail(e.to_string()))?;
        text.push('\n');
        let tmp =
            tempfile::NamedTempFile::new_in(&dir).map_err(|e| io_fail("write in", &dir, e))?;
        std::fs::write(tmp.path(), text).map_err(|e| io_fail("write", tmp.path(), e))?;
        let path = self.path(pr.number);
        tmp.persist(&path)
            .map_err(|e| io_fail("write", &path, e.error))?;
        Ok(())
    }

    fn url(&self, number: u64) -> String {
        format!("file://{}", self.path(number).display())
    }

    /// Every pull request, by number (for status and tests).
    pub fn all(&self) -> Vec<PullRequest> {
        self.pulls
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    fn update(&self, number: u64, change: impl FnOnce(&mut PullRequest)) -> Result<(), ForgeError> {
        let mut pulls = self
            .pulls
            .lock()
            .map_err(|_| fail("state lock poisoned".to_string()))?;
        let pr = pulls.get_mut(&number).ok_or_else(|| ForgeError::NotFound {
            forge: "local".to_string(),
            request: format!("pull request #{number}"),
            message: format!("not in `{}`", self.dir.display()),
        })?;
        change(pr);
        self.save(pr)
    }
}

impl Forge for LocalForge {
    fn name(&self) -> &str {
        "local"
    }

    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        let pulls = self
            .pulls
            .lock()
            .map_err(|_| fail("state lock poisoned".to_string()))?;
        Ok(pulls
            .values()
            .find(|p| p.state == PrState::Open && p.head == head && p.base == base)
            .cloned())
    }

    fn ensure_pull_request(&self, req: &PrRequest) -> Result<(PullRequest, Ensured), ForgeError> {
        if let Some(open) = self.find_open(&req.head, &req.base)? {
            if open.title == req.title && open.body == req.body {
                return Ok((open, Ensured::Unchanged));
            }
            self.update(open.number, |pr| {
                pr.title = req.title.clone();
                pr.body = req.body.clone();
            })?;
            let updated = PullRequest {
                title: req.title.clone(),
                body: req.body.clone(),
                ..open
            };
            return Ok((updated, Ensured::Updated));
        }
        let mut pulls = self
            .pulls
            .lock()
            .map_err(|_| fail("state lock poisoned".to_string()))?;
        let number = pulls.keys().next_back().copied().unwrap_or(0) + 1;
        let pr = PullRequest {
            number,
            url: self.url(number),
            title: req.title.clone(),
            body: req.body.clone(),
            head: req.head.clone(),
            base: req.base.clone(),
            state: PrState::Open,
            comments: Vec::new(),
            id: None,
            labels: req.labels.clone(),
            reviewers: req.reviewers.clone(),
            draft: req.draft,
            auto_merge: req.auto_merge,
            created_at: jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
                .ok()
                .map(|t| t.to_string()),
        };
        self.save(&pr)?;
        pulls.insert(number, pr.clone());
        Ok((pr, Ensured::Created))
    }

    fn recent_pulls(&self, since: jiff::Timestamp) -> Result<Vec<PullRequest>, ForgeError> {
        let pulls = self
            .pulls
            .lock()
            .map_err(|_| fail("state lock poisoned".to_string()))?;
        Ok(pulls
            .values()
            .filter(|p| super::recent(p, since))
            .cloned()
            .collect())
    }

    fn close_pull_request(&self, pr: &PullRequest, comment: &str) -> Result<(), ForgeError> {
        self.update(pr.number, |p| {
            p.comments.push(Comment {
                body: comment.to_string(),
            });
            p.state = PrState::Closed;
        })
    }

    fn comment(&self, pr: &PullRequest, body: &str) -> Result<(), ForgeError> {
        self.update(pr.number, |p| {
            p.comments.push(Comment {
                body: body.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(title: &str) -> PrRequest {
        PrRequest {
            head: "hydrant/dev".into(),
            base: "main".into(),
            title: title.into(),
            body: "b".into(),
            labels: vec![],
            reviewers: vec![],
            draft: false,
            auto_merge: false,
        }
    }

    #[test]
    fn one_pull_request_per_head_updated_in_place_and_kept_across_restarts() {
        let d = tempfile::tempdir().unwrap();
        let forge = LocalForge::open(d.path()).unwrap();
        let (pr, e) = forge.ensure_pull_request(&req("a")).unwrap();
        assert_eq!((pr.number, e), (1, Ensured::Created));
        assert_eq!(
            forge.ensure_pull_request(&req("a")).unwrap().1,
            Ensured::Unchanged
        );
        let forge = LocalForge::open(d.path()).unwrap();
        let (pr, e) = forge.ensure_pull_request(&req("b")).unwrap();
        assert_eq!(
            (pr.number, e, pr.title.as_str()),
            (1, Ensured::Updated, "b")
        );
        forge.close_pull_request(&pr, "done").unwrap();
        let forge = LocalForge::open(d.path()).unwrap();
        assert!(forge.find_open("hydrant/dev", "main").unwrap().is_none());
        assert_eq!(forge.all()[0].comments[0].body, "done");
        assert_eq!(forge.ensure_pull_request(&req("c")).unwrap().0.number, 2);
    }
}
