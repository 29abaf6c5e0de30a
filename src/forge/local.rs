//! The `local` forge: pull requests as JSON files in a state directory.
//!
//! It needs no hosting service, so the whole cycle runs offline, and its state
//! is plain files a person or a test can read: `<state-dir>/pulls/<number>.json`.
//! Every write replaces a file atomically.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest};

/// A pull request's file read from the state directory holds everything;
/// memory holds what finding and counting them needs, so that a fleet's
/// thousands of descriptions are not all held at once.
pub struct LocalForge {
    dir: PathBuf,
    pulls: Mutex<Index>,
}

/// What is kept in memory of one pull request.
#[derive(Debug, Clone, serde::Deserialize)]
struct Listed {
    number: u64,
    #[serde(default)]
    title: String,
    head: String,
    base: String,
    state: PrState,
    #[serde(default)]
    created_at: Option<String>,
}

impl Listed {
    fn of(pr: &PullRequest) -> Listed {
        Listed {
            number: pr.number,
            title: pr.title.clone(),
            head: pr.head.clone(),
            base: pr.base.clone(),
            state: pr.state,
            created_at: pr.created_at.clone(),
        }
    }

    /// As a pull request listed without its description or comments.
    fn summary(&self, url: String) -> PullRequest {
        PullRequest {
            number: self.number,
            url,
            title: self.title.clone(),
            body: String::new(),
            head: self.head.clone(),
            base: self.base.clone(),
            state: self.state,
            comments: Vec::new(),
            id: None,
            labels: Vec::new(),
            reviewers: Vec::new(),
            draft: false,
            auto_merge: false,
            created_at: self.created_at.clone(),
        }
    }
}

/// Every pull request by number, and the open one of each head and base.
#[derive(Default)]
struct Index {
    listed: BTreeMap<u64, Listed>,
    open: HashMap<(String, String), u64>,
}

impl Index {
    fn record(&mut self, listed: Listed) {
        let key = (listed.head.clone(), listed.base.clone());
        match listed.state {
            // Should a hand-edited directory hold two open for one head,
            // the older one is found.
            PrState::Open => {
                let number = listed.number;
                self.open
                    .entry(key)
                    .and_modify(|n| *n = (*n).min(number))
                    .or_insert(number);
            }
            PrState::Closed => {
                if self.open.get(&key) == Some(&listed.number) {
                    self.open.remove(&key);
                }
            }
        }
        self.listed.insert(listed.number, listed);
    }
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
    /// Opens the state directory, listing every pull request in it.
    pub fn open(dir: &Path) -> Result<LocalForge, ForgeError> {
        let pulls_dir = dir.join("pulls");
        let mut index = Index::default();
        match std::fs::read_dir(&pulls_dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().and_then(|e| e.to_str()) != Some("json") {
                        continue;
                    }
                    index.record(parse::<Listed>(&path)?);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_fail("read", &pulls_dir, e)),
        }
        Ok(LocalForge {
            dir: dir.to_path_buf(),
            pulls: Mutex::new(index),
        })
    }

    fn path(&self, number: u64) -> PathBuf {
        self.dir.join("pulls").join(format!("{number}.json"))
    }

    fn index(&self) -> Result<MutexGuard<'_, Index>, ForgeError> {
        self.pulls
            .lock()
            .map_err(|_| fail("state lock poisoned".to_string()))
    }

    /// The whole pull request, from its file.
    fn read(&self, number: u64) -> Result<PullRequest, ForgeError> {
        parse(&self.path(number))
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
        let numbers: Vec<u64> = match self.index() {
            Ok(index) => index.listed.keys().copied().collect(),
            Err(_) => return Vec::new(),
        };
        numbers
            .into_iter()
            .filter_map(|n| self.read(n).ok())
            .collect()
    }

    fn update(&self, number: u64, change: impl FnOnce(&mut PullRequest)) -> Result<(), ForgeError> {
        let mut index = self.index()?;
        if !index.listed.contains_key(&number) {
            return Err(ForgeError::NotFound {
                forge: "local".to_string(),
                request: format!("pull request #{number}"),
                message: format!("not in `{}`", self.dir.display()),
            });
        }
        let mut pr = self.read(number)?;
        change(&mut pr);
        self.save(&pr)?;
        index.record(Listed::of(&pr));
        Ok(())
    }
}

/// A pull request's file, or as much of it as `T` reads.
fn parse<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ForgeError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_fail("read", path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| fail(format!("`{}` is not a pull request: {e}", path.display())))
}

impl Forge for LocalForge {
    fn name(&self) -> &str {
        "local"
    }

    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        let number = self
            .index()?
            .open
            .get(&(head.to_string(), base.to_string()))
            .copied();
        number.map(|n| self.read(n)).transpose()
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
        let mut index = self.index()?;
        let number = index.listed.keys().next_back().copied().unwrap_or(0) + 1;
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
        index.record(Listed::of(&pr));
        Ok((pr, Ensured::Created))
    }

    /// As listed: without their descriptions and comments.
    fn recent_pulls(&self, since: jiff::Timestamp) -> Result<Vec<PullRequest>, ForgeError> {
        let index = self.index()?;
        Ok(index
            .listed
            .values()
            .map(|l| l.summary(self.url(l.number)))
            .filter(|p| super::recent(p, since))
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

    #[test]
    fn a_description_is_read_from_its_file_and_the_older_of_two_open_is_found() {
        let d = tempfile::tempdir().unwrap();
        let forge = LocalForge::open(d.path()).unwrap();
        let (pr, _) = forge.ensure_pull_request(&req("a")).unwrap();
        let path = d.path().join("pulls/1.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("\"body\": \"b\"", "\"body\": \"edited\""),
        )
        .unwrap();
        assert_eq!(
            forge.find_open(&pr.head, &pr.base).unwrap().unwrap().body,
            "edited"
        );
        // A second open one for the same head, written by hand.
        let second = PullRequest {
            number: 7,
            ..forge.read(1).unwrap()
        };
        forge.save(&second).unwrap();
        let forge = LocalForge::open(d.path()).unwrap();
        assert_eq!(
            forge
                .find_open("hydrant/dev", "main")
                .unwrap()
                .unwrap()
                .number,
            1
        );
        let listed = forge.recent_pulls(jiff::Timestamp::now()).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|p| p.body.is_empty() && p.title == "a"));
    }
}
