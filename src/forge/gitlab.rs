//! GitLab merge requests (GitLab.com or self-managed, API v4).
//!
//! Answers are read into the typed structs at the bottom of this file: one
//! that lacks a field or holds another type there is an error naming it.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, ApiAuth, ApiOptions};
use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest, encode};
use crate::auth::Token;

pub struct GitLab {
    api: Api,
    /// The project path, URL-encoded (`group%2Fsub%2Fproject`).
    project: String,
}

impl GitLab {
    /// `url` is the GitLab server; `oauth` sends the token as a bearer token
    /// instead of `PRIVATE-TOKEN`.
    pub fn new(
        url: &str,
        project: &str,
        token: Token,
        oauth: bool,
        options: ApiOptions,
    ) -> Result<GitLab, ForgeError> {
        let api_url = format!("{}/api/v4", url.trim_end_matches('/'));
        let auth = if oauth {
            ApiAuth::Bearer(token)
        } else {
            ApiAuth::PrivateToken(token)
        };
        Ok(GitLab {
            api: Api::new("gitlab", &api_url, auth, options)?,
            project: encode(project),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project)
    }

    fn user_ids(&self, names: &[String]) -> Result<Vec<u64>, ForgeError> {
        let mut ids = Vec::new();
        for name in names {
            let found: Vec<UserJson> =
                self.api
                    .call_as(Method::GET, &format!("/users?username={name}"), None)?;
            match found.first() {
                Some(user) => ids.push(user.id),
                None => {
                    tracing::warn!(reviewer = %name, "no such GitLab user; not requested as reviewer")
                }
            }
        }
        Ok(ids)
    }
}

impl Forge for GitLab {
    fn api_stats(&self) -> Option<&crate::forge::api::ApiStats> {
        Some(&self.api.stats)
    }

    fn name(&self) -> &str {
        "gitlab"
    }

    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        let list: Vec<MergeRequestJson> = self.api.list_as(&self.path(&format!(
            "/merge_requests?state=opened&source_branch={}&target_branch={}&per_page=100",
            encode(head),
            encode(base)
        )))?;
        Ok(list
            .into_iter()
            .find(|m| m.source_branch == head && m.target_branch == base)
            .map(MergeRequestJson::into_pull_request))
    }

    fn ensure_pull_request(&self, req: &PrRequest) -> Result<(PullRequest, Ensured), ForgeError> {
        let title = if req.draft {
            format!("Draft: {}", req.title)
        } else {
            req.title.clone()
        };
        let create = || {
            let body = json!({
                "source_branch": req.head,
                "target_branch": req.base,
                "title": title,
                "description": req.body,
                "labels": req.labels.join(","),
                "reviewer_ids": self.user_ids(&req.reviewers)?,
                "remove_source_branch": true,
            });
            let path = self.path("/merge_requests");
            let answer = self.api.send(Method::POST, &path, Some(&body))?;
            let request = format!("POST {path}");
            match answer.status {
                200 | 201 => {
                    let mr: MergeRequestJson = self.api.decode(&request, answer.body, None)?;
                    let mr = mr.into_pull_request();
                    if req.auto_merge {
                        let merge = json!({"merge_when_pipeline_succeeds": true, "squash": true});
                        let path = self.path(&format!("/merge_requests/{}/merge", mr.number));
                        if let Err(e) = self.api.call(Method::PUT, &path, Some(&merge)) {
                            tracing::warn!(mr = mr.number, error = %e, "GitLab refused merge when the pipeline succeeds");
                        }
                    }
                    Ok(Some(PullRequest {
                        auto_merge: req.auto_merge,
                        ..mr
                    }))
                }
                // "Another open merge request already exists for this source branch"
                409 => Ok(None),
                _ => Err(self.api.refusal(&request, &answer)),
            }
        };
        let update = |mr: &PullRequest| {
            let body = json!({"title": title, "description": req.body});
            let mr: MergeRequestJson = self.api.call_as(
                Method::PUT,
                &self.path(&format!("/merge_requests/{}", mr.number)),
                Some(&body),
            )?;
            Ok(mr.into_pull_request())
        };
        super::ensure(
            "gitlab",
            req,
            &title,
            || self.find_open(&req.head, &req.base),
            create,
            // Labels and reviewers travel with the opening call.
            |_| Ok(()),
            update,
        )
    }

    fn recent_pulls(&self, since: jiff::Timestamp) -> Result<Vec<PullRequest>, ForgeError> {
        let open: Vec<MergeRequestJson> = self
            .api
            .list_as(&self.path("/merge_requests?state=opened&per_page=100"))?;
        let since_text = jiff::Timestamp::from_second(since.as_second())
            .unwrap_or(since)
            .to_string();
        let recent: Vec<MergeRequestJson> = self.api.list_as(&self.path(&format!(
            "/merge_requests?state=all&created_after={}&per_page=100",
            encode(&since_text)
        )))?;
        let mut seen = std::collections::BTreeSet::new();
        Ok(open
            .into_iter()
            .chain(recent)
            .filter(|m| seen.insert(m.iid))
            .map(MergeRequestJson::into_pull_request)
            .filter(|p| super::recent(p, since))
            .collect())
    }

    fn close_pull_request(&self, pr: &PullRequest, comment: &str) -> Result<(), ForgeError> {
        self.comment(pr, comment)?;
        self.api.call(
            Method::PUT,
            &self.path(&format!("/merge_requests/{}", pr.number)),
            Some(&json!({"state_event": "close"})),
        )?;
        Ok(())
    }

    fn comment(&self, pr: &PullRequest, body: &str) -> Result<(), ForgeError> {
        self.api.call(
            Method::POST,
            &self.path(&format!("/merge_requests/{}/notes", pr.number)),
            Some(&json!({"body": body})),
        )?;
        Ok(())
    }

    fn comments(&self, pr: &PullRequest) -> Result<Vec<Comment>, ForgeError> {
        let list: Vec<NoteJson> = self
            .api
            .list_as(&self.path(&format!("/merge_requests/{}/notes?per_page=100", pr.number)))?;
        Ok(list.into_iter().map(|n| Comment { body: n.body }).collect())
    }
}

/// A merge request as GitLab sends it; the fields hydrant reads.
#[derive(Debug, Deserialize)]
struct MergeRequestJson {
    iid: u64,
    web_url: String,
    title: String,
    /// `null` when the description is empty.
    description: Option<String>,
    source_branch: String,
    target_branch: String,
    /// `opened`, `closed`, `locked` or `merged`.
    state: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    reviewers: Vec<ReviewerJson>,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merge_when_pipeline_succeeds: bool,
    created_at: Option<String>,
}

impl MergeRequestJson {
    fn into_pull_request(self) -> PullRequest {
        PullRequest {
            number: self.iid,
            url: self.web_url,
            title: self.title,
            body: self.description.unwrap_or_default(),
            head: self.source_branch,
            base: self.target_branch,
            state: match self.state.as_str() {
                "opened" => PrState::Open,
                _ => PrState::Closed,
            },
            comments: Vec::new(),
            id: None,
            labels: self.labels,
            reviewers: self.reviewers.into_iter().map(|r| r.username).collect(),
            draft: self.draft,
            auto_merge: self.merge_when_pipeline_succeeds,
            created_at: self.created_at,
        }
    }
}

/// A reviewer of a merge request.
#[derive(Debug, Deserialize)]
struct ReviewerJson {
    username: String,
}

/// A user found by name, with the id reviewers are asked by.
#[derive(Debug, Deserialize)]
struct UserJson {
    id: u64,
}

#[derive(Debug, Deserialize)]
struct NoteJson {
    body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_url_encoded() {
        assert_eq!(encode("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(encode("hydrant/prod"), "hydrant%2Fprod");
    }
}
