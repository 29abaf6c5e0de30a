//! GitHub and GitHub Enterprise pull requests (REST v3, GraphQL for auto-merge).

use reqwest::Method;
use serde_json::{Value, json};

use super::api::{Api, ApiAuth, ApiOptions};
use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest};

pub struct GitHub {
    api: Api,
    owner: String,
    repo: String,
    graphql: String,
}

/// GitHub's GraphQL endpoint for a REST API URL (`…/api/v3` on Enterprise).
fn graphql_url(api_url: &str) -> String {
    let base = api_url.trim_end_matches('/');
    match base.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{base}/graphql"),
    }
}

impl GitHub {
    pub fn new(
        api_url: &str,
        owner: &str,
        repo: &str,
        token: crate::auth::Token,
        options: ApiOptions,
    ) -> Result<GitHub, ForgeError> {
        Ok(GitHub {
            api: Api::new("github", api_url, ApiAuth::Bearer(token), options)?,
            owner: owner.to_string(),
            repo: repo.to_string(),
            graphql: graphql_url(api_url),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    fn parse(&self, v: &Value) -> PullRequest {
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
            id: v["node_id"].as_str().map(String::from),
            labels: v["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["name"].as_str().map(String::from))
                .collect(),
            reviewers: v["requested_reviewers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["login"].as_str().map(String::from))
                .collect(),
            draft: v["draft"].as_bool().unwrap_or(false),
            auto_merge: !v["auto_merge"].is_null(),
            created_at: v["created_at"].as_str().map(String::from),
        }
    }

    fn decorate(&self, pr: &PullRequest, req: &PrRequest) -> Result<(), ForgeError> {
        if !req.labels.is_empty() {
            self.api.call(
                Method::POST,
                &self.path(&format!("/issues/{}/labels", pr.number)),
                Some(&json!({"labels": req.labels})),
            )?;
        }
        if !req.reviewers.is_empty() {
            self.api.call(
                Method::POST,
                &self.path(&format!("/pulls/{}/requested_reviewers", pr.number)),
                Some(&json!({"reviewers": req.reviewers})),
            )?;
        }
        if req.auto_merge {
            let query = "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: SQUASH}) { clientMutationId } }";
            let answer = self.api.call(
                Method::POST,
                &self.graphql,
                Some(&json!({"query": query, "variables": {"id": pr.id}})),
            )?;
            if let Some(errors) = answer
                .get("errors")
                .and_then(Value::as_array)
                .filter(|e| !e.is_empty())
            {
                let errors = self
                    .api
                    .server_text(&serde_json::Value::Array(errors.clone()).to_string());
                tracing::warn!(pr = pr.number, errors = %errors, "GitHub refused auto-merge (is it enabled for the repository?)");
            }
        }
        Ok(())
    }
}

impl Forge for GitHub {
    fn api_stats(&self) -> Option<&crate::forge::api::ApiStats> {
        Some(&self.api.stats)
    }

    fn name(&self) -> &str {
        "github"
    }

    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        let list = self
            .api
            .list(&self.path(&format!("/pulls?state=open&base={base}&per_page=100")))?;
        let full = format!("{}/{}", self.owner, self.repo);
        Ok(list
            .iter()
            .find(|p| {
                p["head"]["ref"] == head
                    && p["head"]["repo"]["full_name"]
                        .as_str()
                        .is_none_or(|f| f.eq_ignore_ascii_case(&full))
            })
            .map(|p| self.parse(p)))
    }

    fn ensure_pull_request(&self, req: &PrRequest) -> Result<(PullRequest, Ensured), ForgeError> {
        let create = || {
            let body = json!({"title": req.title, "head": req.head, "base": req.base, "body": super::opening_body(req), "draft": req.draft});
            let answer = self
                .api
                .send(Method::POST, &self.path("/pulls"), Some(&body))?;
            match answer.status {
                200 | 201 => Ok(Some(self.parse(&answer.body))),
                422 if answer.body.to_string().contains("already exists") => Ok(None),
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
            Ok(self.parse(&v))
        };
        super::ensure(
            "github",
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
            .list(&self.path(&format!("/issues/{}/comments?per_page=100", pr.number)))?;
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
    fn graphql_lives_beside_the_rest_api() {
        assert_eq!(
            graphql_url("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            graphql_url("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
    }
}
