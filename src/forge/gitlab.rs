//! GitLab merge requests (GitLab.com or self-managed, API v4).

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Api, ApiAuth, ApiOptions};
use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest};
use crate::auth::Token;

pub struct GitLab {
    api: Api,
    /// The project path, URL-encoded (`group%2Fsub%2Fproject`).
    project: String,
}

/// Percent-encodes a project path for `/projects/:id`.
fn encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
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
            project: encode_path(project),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/projects/{}{rest}", self.project)
    }

    fn parse(v: &Value) -> PullRequest {
        PullRequest {
            number: v["iid"].as_u64().unwrap_or(0),
            url: v["web_url"].as_str().unwrap_or("").to_string(),
            title: v["title"].as_str().unwrap_or("").to_string(),
            body: v["description"].as_str().unwrap_or("").to_string(),
            head: v["source_branch"].as_str().unwrap_or("").to_string(),
            base: v["target_branch"].as_str().unwrap_or("").to_string(),
            state: if v["state"] == "opened" {
                PrState::Open
            } else {
                PrState::Closed
            },
            comments: Vec::new(),
            id: None,
            labels: v["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(String::from))
                .collect(),
            reviewers: v["reviewers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["username"].as_str().map(String::from))
                .collect(),
            draft: v["draft"].as_bool().unwrap_or(false),
            auto_merge: v["merge_when_pipeline_succeeds"].as_bool().unwrap_or(false),
            created_at: v["created_at"].as_str().map(String::from),
        }
    }

    fn user_ids(&self, names: &[String]) -> Result<Vec<u64>, ForgeError> {
        let mut ids = Vec::new();
        for name in names {
            let found = self
                .api
                .call(Method::GET, &format!("/users?username={name}"), None)?;
            match found
                .as_array()
                .and_then(|a| a.first())
                .and_then(|u| u["id"].as_u64())
            {
                Some(id) => ids.push(id),
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
        let list = self.api.list(&self.path(&format!(
            "/merge_requests?state=opened&source_branch={}&target_branch={}&per_page=100",
            encode_path(head),
            encode_path(base)
        )))?;
        Ok(list
            .iter()
            .find(|m| m["source_branch"] == head && m["target_branch"] == base)
            .map(Self::parse))
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
            let answer = self
                .api
                .send(Method::POST, &self.path("/merge_requests"), Some(&body))?;
            match answer.status {
                200 | 201 => {
                    let mr = Self::parse(&answer.body);
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
                _ => Err(self
                    .api
                    .refusal(&format!("POST {}", self.path("/merge_requests")), &answer)),
            }
        };
        let update = |mr: &PullRequest| {
            let body = json!({"title": title, "description": req.body});
            let v = self.api.call(
                Method::PUT,
                &self.path(&format!("/merge_requests/{}", mr.number)),
                Some(&body),
            )?;
            Ok(Self::parse(&v))
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
        let list = self
            .api
            .list(&self.path(&format!("/merge_requests/{}/notes?per_page=100", pr.number)))?;
        Ok(list
            .iter()
            .map(|c| Comment {
                body: c["body"].as_str().unwrap_or("").to_string(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_url_encoded() {
        assert_eq!(encode_path("group/sub/project"), "group%2Fsub%2Fproject");
        assert_eq!(encode_path("hydrant/prod"), "hydrant%2Fprod");
    }
}
