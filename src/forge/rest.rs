//! Pull requests on GitHub (and GitHub Enterprise) and on Gitea (and Forgejo):
//! one implementation of [`Forge`] over their REST APIs, with the few ways
//! they differ kept in a table, [`Dialect`].
//!
//! Every answer is read into the typed structs at the bottom of this file
//! (through [`Api`], the one HTTP client): an answer that lacks a field or
//! holds another type there is an error naming the field, never an empty
//! title or pull request number 0. This module does no retries, rate
//! limiting or origin checks of its own; [`Api`] does them.

use reqwest::Method;
use serde::{Deserialize, Deserializer};
use serde_json::json;

use super::api::{Api, ApiAuth, ApiOptions};
use super::{Comment, Ensured, Forge, ForgeError, PrRequest, PrState, PullRequest};
use crate::auth::Token;

/// How labels are set on a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Labels {
    /// By name (GitHub).
    ByName,
    /// By the repository's label ids, looked up by name (Gitea).
    ById,
}

/// How auto-merge is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoMerge {
    /// GraphQL `enablePullRequestAutoMerge` with the pull request's node id (GitHub).
    GraphQl,
    /// `POST …/pulls/{n}/merge` with `merge_when_checks_succeed` (Gitea).
    WhenChecksSucceed,
}

/// What a REST forge does its own way. Everything not here is the same on
/// both: the pull request paths, comments on `…/issues/{n}/comments`,
/// reviewers on `…/pulls/{n}/requested_reviewers`, closing by `PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// The forge as shown in messages.
    pub name: &'static str,
    /// Appended to the server URL to reach the API (`""`: the URL given is the API's).
    pub api_path: &'static str,
    /// `Authorization: Bearer …` (true) or `Authorization: token …`.
    pub bearer: bool,
    /// The query parameter of a page of a list, at its largest size.
    pub page_size: &'static str,
    /// The list of open pull requests can be narrowed to one base branch (`base=`).
    pub filters_base: bool,
    /// ... and to one head branch of the repository (`head=owner:branch`):
    /// finding hydrant's pull request for an environment is then one request
    /// however many others are open.
    pub filters_head: bool,
    /// The opening call takes `draft`.
    pub draft: bool,
    /// Statuses of the opening call that say "one is open already", and the
    /// text the answer must hold for it (`None`: any answer with the status).
    pub exists: (&'static [u16], Option<&'static str>),
    pub labels: Labels,
    pub auto_merge: AutoMerge,
    /// The longest description the forge takes, in characters.
    pub max_body: Option<usize>,
    /// The query that lists pull requests newest first.
    pub newest_first: &'static str,
}

impl Dialect {
    pub const GITHUB: Dialect = Dialect {
        name: "github",
        api_path: "",
        bearer: true,
        page_size: "per_page=100",
        filters_base: true,
        filters_head: true,
        draft: true,
        exists: (&[422], Some("already exists")),
        labels: Labels::ByName,
        auto_merge: AutoMerge::GraphQl,
        // GitHub's limit; the review writer keeps its descriptions under it.
        max_body: Some(65_536),
        newest_first: "sort=created&direction=desc",
    };

    pub const GITEA: Dialect = Dialect {
        name: "gitea",
        api_path: "/api/v1",
        bearer: false,
        page_size: "limit=50",
        filters_base: false,
        filters_head: false,
        draft: false,
        exists: (&[409, 422], None),
        labels: Labels::ById,
        auto_merge: AutoMerge::WhenChecksSucceed,
        max_body: None,
        newest_first: "sort=newest",
    };

    /// The API URL of a server (`https://gitea.example.com` → `…/api/v1`).
    fn api_url(&self, server: &str) -> String {
        format!("{}{}", server.trim_end_matches('/'), self.api_path)
    }

    fn auth(&self, token: Token) -> ApiAuth {
        match self.bearer {
            true => ApiAuth::Bearer(token),
            false => ApiAuth::Token(token),
        }
    }

    /// Whether an answer to the opening call says one is open already.
    fn says_exists(&self, status: u16, body: &serde_json::Value) -> bool {
        let (statuses, text) = self.exists;
        statuses.contains(&status) && text.is_none_or(|t| body.to_string().contains(t))
    }
}

/// A repository's pull requests on a GitHub or Gitea server.
pub struct Rest {
    dialect: Dialect,
    api: Api,
    owner: String,
    repo: String,
    /// GitHub's GraphQL endpoint, for auto-merge.
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

impl Rest {
    /// `url` is GitHub's API URL, or the Gitea server's URL: what
    /// [`Dialect::api_path`] is appended to.
    pub fn new(
        dialect: Dialect,
        url: &str,
        owner: &str,
        repo: &str,
        token: Token,
        options: ApiOptions,
    ) -> Result<Rest, ForgeError> {
        let api_url = dialect.api_url(url);
        Ok(Rest {
            dialect,
            api: Api::new(dialect.name, &api_url, dialect.auth(token), options)?,
            owner: owner.to_string(),
            repo: repo.to_string(),
            graphql: graphql_url(&api_url),
        })
    }

    fn path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.repo)
    }

    /// The path of the open pull requests from `head` into `base`, a page
    /// at a time, narrowed as far as the forge can (the answer is still
    /// checked: a forge may narrow less).
    fn open_pulls(&self, head: &str, base: &str) -> String {
        let mut query = String::from("state=open");
        if self.dialect.filters_base {
            query.push_str(&format!("&base={}", super::encode(base)));
        }
        if self.dialect.filters_head {
            let head = format!("{}:{head}", self.owner);
            query.push_str(&format!("&head={}", super::encode(&head)));
        }
        self.path(&format!("/pulls?{query}&{}", self.dialect.page_size))
    }

    /// Refuses a description longer than the forge takes, before sending it.
    fn check_body(&self, body: &str) -> Result<(), ForgeError> {
        let chars = body.chars().count();
        match self.dialect.max_body {
            Some(max) if chars > max => Err(ForgeError::Refused {
                forge: self.dialect.name.to_string(),
                message: format!(
                    "the pull request description has {chars} characters, more than the {max} {} takes",
                    self.dialect.name
                ),
            }),
            _ => Ok(()),
        }
    }

    fn decorate(&self, pr: &PullRequest, req: &PrRequest) -> Result<(), ForgeError> {
        if !req.labels.is_empty() {
            let labels = match self.dialect.labels {
                Labels::ByName => json!(req.labels),
                Labels::ById => json!(self.label_ids(&req.labels)?),
            };
            if labels.as_array().is_some_and(|l| !l.is_empty()) {
                self.api.call(
                    Method::POST,
                    &self.path(&format!("/issues/{}/labels", pr.number)),
                    Some(&json!({"labels": labels})),
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
            match self.dialect.auto_merge {
                AutoMerge::GraphQl => self.enable_auto_merge(pr)?,
                AutoMerge::WhenChecksSucceed => {
                    self.api.call(
                        Method::POST,
                        &self.path(&format!("/pulls/{}/merge", pr.number)),
                        Some(&json!({"Do": "squash", "merge_when_checks_succeed": true})),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The repository's ids of the labels `names`; a name it lacks is left
    /// out with a warning.
    fn label_ids(&self, names: &[String]) -> Result<Vec<u64>, ForgeError> {
        let page = self.dialect.page_size;
        let known: Vec<LabelJson> = self.api.list_as(&self.path(&format!("/labels?{page}")))?;
        Ok(names
            .iter()
            .filter_map(|name| {
                let id = known.iter().find(|l| &l.name == name).map(|l| l.id);
                if id.is_none() {
                    tracing::warn!(forge = self.dialect.name, label = %name, "no such label in the repository; create it to have it set");
                }
                id
            })
            .collect())
    }

    /// GitHub's auto-merge, through GraphQL; a refusal (auto-merge not
    /// allowed in the repository) is a warning, not a failure.
    fn enable_auto_merge(&self, pr: &PullRequest) -> Result<(), ForgeError> {
        let query = "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id, mergeMethod: SQUASH}) { clientMutationId } }";
        let answer: GraphQlAnswer = self.api.call_as(
            Method::POST,
            &self.graphql,
            Some(&json!({"query": query, "variables": {"id": pr.id}})),
        )?;
        if !answer.errors.is_empty() {
            let said: Vec<&str> = answer.errors.iter().map(|e| e.message.as_str()).collect();
            let errors = self.api.server_text(&said.join("; "));
            tracing::warn!(pr = pr.number, errors = %errors, "GitHub refused auto-merge (is it enabled for the repository?)");
        }
        Ok(())
    }
}

impl Forge for Rest {
    fn api_stats(&self) -> Option<&crate::forge::api::ApiStats> {
        Some(&self.api.stats)
    }

    fn name(&self) -> &str {
        self.dialect.name
    }

    fn find_open(&self, head: &str, base: &str) -> Result<Option<PullRequest>, ForgeError> {
        let list: Vec<PullRequestJson> = self.api.list_as(&self.open_pulls(head, base))?;
        let full = format!("{}/{}", self.owner, self.repo);
        Ok(list
            .into_iter()
            .find(|p| {
                p.head.name == head
                    && p.base.name == base
                    // Not a fork's branch of the same name.
                    && p.head.repo.as_ref().is_none_or(|r| r.full_name.eq_ignore_ascii_case(&full))
            })
            .map(PullRequestJson::into_pull_request))
    }

    fn ensure_pull_request(&self, req: &PrRequest) -> Result<(PullRequest, Ensured), ForgeError> {
        self.check_body(&super::opening_body(req))?;
        let create = || {
            let pulls = self.path("/pulls");
            let mut body = json!({"title": req.title, "head": req.head, "base": req.base, "body": super::opening_body(req)});
            if self.dialect.draft {
                body["draft"] = json!(req.draft);
            }
            let answer = self.api.send(Method::POST, &pulls, Some(&body))?;
            let request = format!("POST {pulls}");
            match answer.status {
                200 | 201 => {
                    let pr: PullRequestJson = self.api.decode(&request, answer.body, None)?;
                    Ok(Some(pr.into_pull_request()))
                }
                status if self.dialect.says_exists(status, &answer.body) => Ok(None),
                _ => Err(self.api.refusal(&request, &answer)),
            }
        };
        let update = |pr: &PullRequest| {
            let body = json!({"title": req.title, "body": req.body});
            let pr: PullRequestJson = self.api.call_as(
                Method::PATCH,
                &self.path(&format!("/pulls/{}", pr.number)),
                Some(&body),
            )?;
            Ok(pr.into_pull_request())
        };
        super::ensure(
            self.dialect.name,
            req,
            &req.title,
            || self.find_open(&req.head, &req.base),
            create,
            |pr| self.decorate(pr, req),
            update,
        )
    }

    fn recent_pulls(&self, since: jiff::Timestamp) -> Result<Vec<PullRequest>, ForgeError> {
        let page = self.dialect.page_size;
        let full = format!("{}/{}", self.owner, self.repo);
        let ours = |p: &PullRequestJson| {
            p.head
                .repo
                .as_ref()
                .is_none_or(|r| r.full_name.eq_ignore_ascii_case(&full))
        };
        let open: Vec<PullRequestJson> = self
            .api
            .list_as(&self.path(&format!("/pulls?state=open&{page}")))?;
        // Newest first: no page older than `since` is asked for.
        let closed: Vec<PullRequestJson> = self.api.list_while_as(
            &self.path(&format!(
                "/pulls?state=closed&{}&{page}",
                self.dialect.newest_first
            )),
            |p: &PullRequestJson| {
                p.created_at
                    .as_deref()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|t| t >= since)
            },
        )?;
        let closed = closed.into_iter().filter(|p| p.state == PrState::Closed);
        Ok(open
            .into_iter()
            .chain(closed)
            .filter(ours)
            .map(PullRequestJson::into_pull_request)
            .filter(|p| super::recent(p, since))
            .collect())
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
        let page = self.dialect.page_size;
        let list: Vec<CommentJson> = self
            .api
            .list_as(&self.path(&format!("/issues/{}/comments?{page}", pr.number)))?;
        Ok(list.into_iter().map(|c| Comment { body: c.body }).collect())
    }
}

/// A list that the forge may send as `null` when it is empty (Gitea does).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A pull request as GitHub and Gitea send it; the fields hydrant reads.
#[derive(Debug, Deserialize)]
struct PullRequestJson {
    number: u64,
    html_url: String,
    title: String,
    /// `null` on GitHub when the description is empty.
    body: Option<String>,
    head: BranchJson,
    base: BranchJson,
    state: PrState,
    /// GitHub's GraphQL id (auto-merge needs it); Gitea has none.
    node_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    labels: Vec<NameJson>,
    #[serde(default, deserialize_with = "nullable")]
    requested_reviewers: Vec<UserJson>,
    #[serde(default)]
    draft: bool,
    /// An object while auto-merge is on (GitHub), `null` or absent otherwise.
    #[serde(default)]
    auto_merge: Option<serde::de::IgnoredAny>,
    created_at: Option<String>,
}

impl PullRequestJson {
    fn into_pull_request(self) -> PullRequest {
        PullRequest {
            number: self.number,
            url: self.html_url,
            title: self.title,
            body: self.body.unwrap_or_default(),
            head: self.head.name,
            base: self.base.name,
            state: self.state,
            comments: Vec::new(),
            id: self.node_id,
            labels: self.labels.into_iter().map(|l| l.name).collect(),
            reviewers: self
                .requested_reviewers
                .into_iter()
                .map(|r| r.login)
                .collect(),
            draft: self.draft,
            auto_merge: self.auto_merge.is_some(),
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct BranchJson {
    #[serde(rename = "ref")]
    name: String,
    /// The repository the branch is in; `null` when it was deleted.
    repo: Option<RepoJson>,
}

#[derive(Debug, Deserialize)]
struct RepoJson {
    full_name: String,
}

/// A label of a pull request.
#[derive(Debug, Deserialize)]
struct NameJson {
    name: String,
}

/// A label of the repository, with the id Gitea sets labels by.
#[derive(Debug, Deserialize)]
struct LabelJson {
    id: u64,
    name: String,
}

#[derive(Debug, Deserialize)]
struct UserJson {
    login: String,
}

#[derive(Debug, Deserialize)]
struct CommentJson {
    body: String,
}

#[derive(Debug, Deserialize)]
struct GraphQlAnswer {
    #[serde(default, deserialize_with = "nullable")]
    errors: Vec<GraphQlError>,
}

#[derive(Debug, Deserialize)]
struct GraphQlError {
    message: String,
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

    #[test]
    fn each_dialect_finds_its_api_and_sends_its_token_its_way() {
        let gh = Dialect::GITHUB;
        let tea = Dialect::GITEA;
        assert_eq!(
            gh.api_url("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/v3"
        );
        assert_eq!(
            tea.api_url("https://tea.example.com/"),
            "https://tea.example.com/api/v1"
        );
        let token = crate::auth::fixed("t".to_string());
        assert!(matches!(gh.auth(token.clone()), ApiAuth::Bearer(_)));
        assert!(matches!(tea.auth(token), ApiAuth::Token(_)));
    }

    #[test]
    fn an_existing_pull_request_is_told_by_each_dialect_its_own_way() {
        let gh = Dialect::GITHUB;
        let tea = Dialect::GITEA;
        let exists = json!({"message": "Validation Failed", "errors": [{"message": "A pull request already exists for acme:hydrant/dev."}]});
        let other = json!({"message": "Validation Failed", "errors": [{"message": "No commits between main and hydrant/dev"}]});
        let cases = [
            (gh, 422, &exists, true),
            (gh, 422, &other, false),
            (gh, 409, &exists, false),
            (tea, 409, &other, true),
            (tea, 422, &other, true),
            (tea, 400, &exists, false),
        ];
        for (dialect, status, body, says) in cases {
            assert_eq!(
                dialect.says_exists(status, body),
                says,
                "{} {status} {body}",
                dialect.name
            );
        }
    }

    #[test]
    fn a_pull_request_is_read_with_what_each_forge_leaves_out() {
        let github = json!({
            "number": 7, "html_url": "https://github.com/a/b/pull/7", "title": "t", "body": null,
            "head": {"ref": "hydrant/dev", "repo": {"full_name": "a/b"}}, "base": {"ref": "main"},
            "state": "open", "node_id": "PR_7", "draft": true, "created_at": "2026-01-02T03:04:05Z",
            "labels": [{"id": 1, "name": "hydrant"}], "requested_reviewers": [{"login": "lead"}],
            "auto_merge": {"merge_method": "squash"},
        });
        let pr: PullRequestJson = serde_json::from_value(github).unwrap();
        let pr = pr.into_pull_request();
        assert_eq!(
            (pr.number, pr.body.as_str(), pr.state),
            (7, "", PrState::Open)
        );
        assert_eq!(
            (pr.labels, pr.reviewers),
            (vec!["hydrant".to_string()], vec!["lead".to_string()])
        );
        assert!(pr.draft && pr.auto_merge);
        assert_eq!(pr.id.as_deref(), Some("PR_7"));
        let gitea = json!({
            "number": 3, "html_url": "https://tea/a/b/pulls/3", "title": "t", "body": "b",
            "head": {"ref": "hydrant/dev", "repo": null}, "base": {"ref": "main"},
            "state": "closed", "labels": null, "requested_reviewers": null, "auto_merge": null,
        });
        let pr: PullRequestJson = serde_json::from_value(gitea).unwrap();
        let pr = pr.into_pull_request();
        assert_eq!(
            (pr.number, pr.state, pr.auto_merge, pr.draft),
            (3, PrState::Closed, false, false)
        );
        assert!(pr.labels.is_empty() && pr.reviewers.is_empty() && pr.id.is_none());
    }

    #[test]
    fn a_description_longer_than_github_takes_is_refused_before_it_is_sent() {
        let token = crate::auth::fixed("t".to_string());
        let gh = Rest::new(
            Dialect::GITHUB,
            "http://127.0.0.1:9",
            "a",
            "b",
            token.clone(),
            ApiOptions::default(),
        )
        .unwrap();
        let long = "x".repeat(65_537);
        let refused = gh.check_body(&long).unwrap_err().to_string();
        assert!(
            refused.contains("more than the 65536 github takes"),
            "{refused}"
        );
        assert!(gh.check_body("short").is_ok());
        let tea = Rest::new(
            Dialect::GITEA,
            "http://127.0.0.1:9",
            "a",
            "b",
            token,
            ApiOptions::default(),
        )
        .unwrap();
        assert!(tea.check_body(&long).is_ok());
    }
}
