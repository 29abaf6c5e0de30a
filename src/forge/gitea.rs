//! Gitea and Forgejo pull requests (`/api/v1/repos/{owner}/{repo}/pulls`, token auth).

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Api, ApiAuth, ApiOptions};
use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest};
use crate::auth::Token;

pub struct Gitea {
    api: Api,
    owner: String,
    repo: String,
}

impl Gitea {
    /// `url` is the Gitea server (`https://gitea.example.com`).
    pub fn new(
        url: &str,
        owner: &str,
        repo: &str,
        token: Token,
        options: ApiOptions,
    ) -> Result<Gitea, ForgeError> {
        let api_url = format!("{}/api/v1", url.trim_end_matches('/'));
        Ok(Gitea {
            api: Api::new("gitea", &api_url, ApiAuth::Token(token), options)?,
            owner: owner.to_string(),
            repo: repo.to_string(),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    fn parse(v: &Value) -> PullRequest {
        PullRequest {
            number: v["number"].as_u64().unwrap_or(0),
            url: v["html_url"].as_str().unwrap_or("").to_string(),
            title: v["title"].as_str().unwrap_or("").to_string(),
            body: v["body"].as_str().unwrap_or("").to_string(),
            head: v["head"]["ref"].as_str().unwrap_or("").to_string(),
            base: v["base"]["ref"].as_str().unwrap_or("").to_string(),
            state: if v["state"] == "open" {
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
                .filter_map(|l| l["name"].as_str().map(String::from))
                .collect(),
            reviewers: Vec::new(),
            draft: false,
            auto_merge: false,
            created_at: v["created_at"].as_str().map(String::from),
        }
    }

    fn decorate(&self, pr: &PullRequest, req: &PrRequest) -> Result<(), ForgeError> {
        if !req.labels.is_empty() {
            // Gitea takes label ids: look the names up.
            let known = self.api.list(&self.path("/labels?limit=50"))?;
            let ids: Vec<u64> = req
                .labels
                .iter()
                .filter_map(|name| {
                    let id = known.iter().find(|l| l["name"] == name.as_str()).and_then(|l| l["id"].as_u64());
                    if id.is_none() {
                        tracing::warn!(label = %name, "no such label in the Gitea repository; create it to have it set");
                    }
                    id
                })
                .collect();
            if !ids.is_empty() {
                self.api.call(
                    Method::POST,
                    &self.path(&format!("/issues/{}/labels", pr.number)),
                    Some(&json!({"labels": ids})),
                )?;
            }
        }
        if !req.reviewers.is_empty() {
            self.api.call(
                Method::POST,
                &self.path(&format!("/pulls/{}/requested_reviewers", pr.number)),
                Some(&json!({"reviewers": req.reviewers})),
            )?;
        }
        if req.auto_merge {
            self.api.call(
                Method::POST,
                &self.path(&format!("/pulls/{}/merge", pr.number)),
                Some(&json!({"Do": "squash", "merge_when_checks_succeed": true})),
            )?;
        }
        Ok(())
    }
}

impl Forge for Gitea {
    fn api_stats(&self) -> Option<&crate::forge::api::ApiStats> {
        Some(&self.api.stats)
    }

    fn name(&self) -> &str {
        "gitea"
    }

    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        let list = self.api.list(&self.path("/pulls?state=open&limit=50"))?;
        Ok(list
            .iter()
            .find(|p| p["head"]["ref"] == head && p["base"]["ref"] == base)
            .map(Self::parse))
    }

    fn ensure_pull_request(&self, req: &PrRequest) -> Result<(PullRequest, Ensured), ForgeError> {
        let create = || {
            let body = json!({"title": req.title, "head": req.head, "base": req.base, "body": super::opening_body(req)});
            let answer = self
                .api
                .send(Method::POST, &self.path("/pulls"), Some(&body))?;
            match answer.status {
                200 | 201 => Ok(Some(Self::parse(&answer.body))),
                409 | 422 => Ok(None),
                _ => Err(self
                    .api
                    .refusal(&format!("POST {}", self.path("/pulls")), &answer)),
            }
        };
        let update = |pr: &PullRequest| {
            let body = json!({"title": req.title, "body": req.body});
            let v = self.api.call(
                Method::PATCH,
                &self.path(&format!("/pulls/{}", pr.number)),
                Some(&body),
            )?;
            Ok(Self::parse(&v))
        };
        super::ensure(
            "gitea",
            req,
            &req.title,
            || self.find_open(&req.head, &req.base),
            create,
            |pr| self.decorate(pr, req),
            update,
        )
    }

    fn close_pull_request(&self, pr: &PullRequest, comment: &str) -> Result<(), ForgeError> {
        self.comment(pr, comment)?;
        self.api.call(
            Method::PATCH,
            &self.path(&format!("/pulls/{}", pr.number)),
            Some(&json!({"state": "closed"})),
        )?;
        Ok(())
    }

    fn comment(&self, pr: &PullRequest, body: &str) -> Result<(), ForgeError> {
        self.api.call(
            Method::POST,
            &self.path(&format!("/issues/{}/comments", pr.number)),
            Some(&json!({"body": body})),
        )?;
        Ok(())
    }

    fn comments(&self, pr: &PullRequest) -> Result<Vec<Comment>, ForgeError> {
        let list = self
            .api
            .list(&self.path(&format!("/issues/{}/comments", pr.number)))?;
        Ok(list
            .iter()
            .map(|c| Comment {
                body: c["body"].as_str().unwrap_or("").to_string(),
            })
            .collect())
    }
}
