//! [`GiteaForge`]: Gitea's REST API and the runner RPC `Register`, over reqwest with rustls.
//!
//! Every call runs under a timeout ([`GiteaOptions::timeout`]); every answer is classified into
//! a [`ForgeError`] at this edge. The API token travels only in the `Authorization` header and
//! is scrubbed from anything Gitea echoes back, so it never reaches an error or a log line.
//!
//! Paths follow Gitea's routes as `wiki/Gitea-Behaviour.md` lists them (with their upstream
//! sources) and the 1.26.4 OpenAPI description:
//! - `GET /api/v1/version`
//! - `{scope}/runners` (list, `page`/`limit`, read again and merged when it comes back short:
//!   its order is not stable), `{scope}/runners/{id}` (get, delete, patch)
//! - `POST {scope}/runners/registration-token`
//! - `POST /api/actions/runner.v1.RunnerService/Register` (Connect, JSON codec)
//! - `{scope}/jobs?status=queued` and `/api/v1/repos/{o}/{r}/actions/jobs/{id}` (1.25+)
//! - `/api/v1/repos/{o}/{r}/contents|raw|compare|git/commits` for push mode
//!
//! This file holds the client and its [`Forge`] implementation; `wire.rs` the JSON shapes it
//! reads, `helpers.rs` the checks on names, commits and paths and the description of answers
//! it cannot use, `cache.rs` its bounded cache of files per commit.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use model::config::{GiteaConfig, RunnerScope};
use model::observed::{ForgeRunner, JobFound, JobSeen, QueuedJob};
use model::secret::Secret;
use model::RunnerName;
use parking_lot::Mutex;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::{Forge, ForgeError, ForgeFeatures, ForgeVersion, RegisteredRunner, RepoFile};

mod cache;
mod helpers;
mod wire;

use cache::BoundedCache;
pub use helpers::is_zero_sha;
use helpers::{
    check_commit, decode, describe, error_message, is_workflow_name, json_error, path_segments,
    split_repo,
};
pub use wire::repo_from_api_url;
use wire::{
    counting, registered_ephemeral, ApiCommit, ApiCompare, ApiRunner, ApiToken, ApiVersion,
    ConnectError, ContentEntry, JobsPage, Page, RegisterReply, RunnersPage,
};
pub(crate) use wire::{RepoRef, WorkflowJob};

/// The workflow directories Gitea reads, in order; only the first that exists is used.
pub const WORKFLOW_DIRS: [&str; 2] = [".gitea/workflows", ".github/workflows"];

/// Workflow files larger than this are skipped, as newer Gitea reads at most 1 MiB of each.
pub const MAX_WORKFLOW_FILE: usize = 1024 * 1024;

/// Largest JSON answer read (a page of 50 runners is a few KiB; a compare of many commits
/// can be large).
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// Stop paging after this many pages: a server that never ends a list is broken.
const MAX_PAGES: u32 = 10_000;

/// How often a list with an unstable order is read before what is still missing is left to
/// be confirmed one by one.
const LIST_READS: u32 = 3;

/// Entries read from one workflow directory tree before giving up.
const MAX_TREE_ENTRIES: usize = 2_000;

/// Directory depth below a workflow directory that is followed.
const MAX_TREE_DEPTH: usize = 16;

/// Tunables of [`GiteaForge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiteaOptions {
    /// The whole of one HTTP call, connect to last byte (default 10 s).
    pub timeout: Duration,
    /// Establishing the connection (default 5 s).
    pub connect_timeout: Duration,
    /// Page size for lists; Gitea caps it at 50 (default 50).
    pub page_limit: u32,
    /// Entries kept in each of the workflow-file and changed-file caches (default 256).
    pub cache_entries: usize,
    /// The `version` sent with `Register` (default `tinqs-ci/<crate version>`).
    pub runner_version: String,
}

impl Default for GiteaOptions {
    fn default() -> Self {
        GiteaOptions {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            page_limit: 50,
            cache_entries: 256,
            runner_version: format!("tinqs-ci/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

type FilesKey = (String, String);
type ChangesKey = (String, String, String);

/// The Gitea client.
///
/// Construct it with [`GiteaForge::new`] (no network) and check the server with
/// [`GiteaForge::check`] at start-up, or do both with [`GiteaForge::connect`].
pub struct GiteaForge {
    http: reqwest::Client,
    /// Base URL, path ending in `/` (Gitea may live under a sub-path).
    base: Url,
    scope: RunnerScope,
    token: Secret,
    /// `token <api token>`, marked sensitive so it is never printed.
    auth: HeaderValue,
    options: GiteaOptions,
    /// The version seen by the last [`Forge::version`] call; features are gated on it.
    version: Mutex<Option<ForgeVersion>>,
    workflows: Mutex<BoundedCache<FilesKey, Vec<RepoFile>>>,
    changes: Mutex<BoundedCache<ChangesKey, Option<Vec<String>>>>,
}

impl std::fmt::Debug for GiteaForge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiteaForge")
            .field("base", &self.base.as_str())
            .field("scope", &self.scope)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl GiteaForge {
    /// A client for `config.url` and `config.scope` with default [`GiteaOptions`]. `token` is
    /// the API token the caller read from the environment variable `config.token_env`.
    /// Makes no network call.
    ///
    /// # Errors
    /// [`ForgeError::Config`] when the URL is not http(s) or the token is empty.
    pub fn new(config: &GiteaConfig, token: Secret) -> Result<Self, ForgeError> {
        Self::with_options(config, token, GiteaOptions::default())
    }

    /// [`GiteaForge::new`] with explicit options.
    ///
    /// # Errors
    /// [`ForgeError::Config`] when the URL is not http(s), the token is empty or unusable in a
    /// header, or the HTTP client cannot be built.
    pub fn with_options(
        config: &GiteaConfig,
        token: Secret,
        options: GiteaOptions,
    ) -> Result<Self, ForgeError> {
        let mut base = Url::parse(config.url.trim())
            .map_err(|e| ForgeError::Config(format!("gitea.url `{}`: {e}", config.url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ForgeError::Config(format!(
                "gitea.url `{}` is not an http(s) URL",
                config.url
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if token.is_empty() {
            return Err(ForgeError::Config(format!(
                "the Gitea API token is empty (set the environment variable {})",
                config.token_env
            )));
        }
        let mut auth =
            HeaderValue::from_str(&format!("token {}", token.expose())).map_err(|_| {
                ForgeError::Config(
                    "the Gitea API token holds characters not allowed in a header".into(),
                )
            })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(format!("tinqs-ci/{}", env!("CARGO_PKG_VERSION")))
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| ForgeError::Config(format!("cannot build the HTTP client: {e}")))?;
        let cap = options.cache_entries.max(1);
        Ok(GiteaForge {
            http,
            base,
            scope: config.scope.clone(),
            token,
            auth,
            options,
            version: Mutex::new(None),
            workflows: Mutex::new(BoundedCache::new(cap)),
            changes: Mutex::new(BoundedCache::new(cap)),
        })
    }

    /// [`GiteaForge::new`], then [`GiteaForge::check`]: the start-up path of `serve`.
    ///
    /// # Errors
    /// As both; [`ForgeError::Unsupported`] when the server is too old for `config`.
    pub async fn connect(
        config: &GiteaConfig,
        token: Secret,
    ) -> Result<(Self, ForgeVersion, ForgeFeatures), ForgeError> {
        let forge = Self::new(config, token)?;
        let (version, features) = forge.check(config).await?;
        Ok((forge, version, features))
    }

    /// Reads the server version and refuses one too old for `config`
    /// ([`ForgeVersion::check_supported`]). Features of later versions (queued-jobs backfill,
    /// disabling runners) are then switched on by the version seen.
    ///
    /// # Errors
    /// When Gitea cannot be reached, or [`ForgeError::Unsupported`].
    pub async fn check(
        &self,
        config: &GiteaConfig,
    ) -> Result<(ForgeVersion, ForgeFeatures), ForgeError> {
        let version = self.version().await?;
        let features = version.check_supported(config)?;
        Ok((version, features))
    }

    /// The base URL (ending in `/`).
    #[must_use]
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The features of the version seen last, reading the version first if none was seen.
    async fn features(&self) -> Result<(ForgeVersion, ForgeFeatures), ForgeError> {
        let seen = *self.version.lock();
        let version = match seen {
            Some(v) => v,
            None => self.version().await?,
        };
        Ok((version, version.features()))
    }

    // ---- URLs ----------------------------------------------------------------------------

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    fn scope_segments(&self) -> Vec<String> {
        self.scope
            .api_prefix()
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn scope_url(&self, rest: &[&str], query: &[(&str, &str)]) -> Url {
        let prefix = self.scope_segments();
        let mut segments: Vec<&str> = prefix.iter().map(String::as_str).collect();
        segments.extend_from_slice(rest);
        self.url(&segments, query)
    }

    fn repo_url(&self, repo: (&str, &str), rest: &[&str], query: &[(&str, &str)]) -> Url {
        let mut segments = vec!["api", "v1", "repos", repo.0, repo.1];
        segments.extend_from_slice(rest);
        self.url(&segments, query)
    }

    // ---- HTTP ----------------------------------------------------------------------------

    /// Sends one request; returns status and body (at most `limit` bytes) for any status.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
        limit: usize,
        authorized: bool,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ForgeError> {
        let what = describe(&method, &url);
        let mut request = self.http.request(method, url);
        // NOTE: the runner RPC needs no API token; it is kept off that endpoint.
        if authorized {
            request = request.header(AUTHORIZATION, self.auth.clone());
        }
        if let Some(body) = json {
            let bytes = serde_json::to_vec(body).map_err(|e| {
                ForgeError::BadResponse(format!("{what}: cannot encode request: {e}"))
            })?;
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&what, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&what, &e))?
        {
            if body.len() + chunk.len() > limit {
                return Err(ForgeError::BadResponse(format!(
                    "{what}: answer larger than {limit} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body))
    }

    fn transport_error(&self, what: &str, e: &reqwest::Error) -> ForgeError {
        if e.is_timeout() {
            return ForgeError::Unavailable(format!(
                "{what}: no answer within {}",
                humantime::format_duration(self.options.timeout)
            ));
        }
        let mut text = String::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(s) = source {
            text = s.to_string();
            source = s.source();
        }
        if text.is_empty() {
            text = "request failed".into();
        }
        let kind = if e.is_connect() {
            "cannot connect"
        } else {
            "transport error"
        };
        ForgeError::Unavailable(self.scrub(&format!("{what}: {kind}: {text}")))
    }

    /// Removes the token from anything Gitea might echo.
    fn scrub(&self, text: &str) -> String {
        let t = self.token.expose();
        if t.len() >= 4 && text.contains(t) {
            text.replace(t, "[redacted]")
        } else {
            text.to_owned()
        }
    }

    /// Classifies a non-2xx status.
    fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> ForgeError {
        let detail = self.scrub(&error_message(body));
        let msg = if detail.is_empty() {
            format!("{what}: HTTP {}", status.as_u16())
        } else {
            format!("{what}: HTTP {}: {detail}", status.as_u16())
        };
        match status.as_u16() {
            401 => ForgeError::Unauthorized(msg),
            403 => ForgeError::Forbidden(msg),
            404 => ForgeError::NotFound(msg),
            429 => ForgeError::RateLimited(msg),
            500..=599 | 408 => ForgeError::Unavailable(msg),
            _ => ForgeError::BadResponse(msg),
        }
    }

    /// A JSON call that must succeed with 2xx.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
    ) -> Result<T, ForgeError> {
        let what = describe(&method, &url);
        let (status, _, body) = self
            .exchange(method, url, json, MAX_JSON_BODY, true)
            .await?;
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        decode(&what, &body)
    }

    /// A call whose 404 means "absent": `Ok(None)`.
    async fn call_optional<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, ForgeError> {
        let what = describe(&Method::GET, &url);
        let (status, _, body) = self
            .exchange(Method::GET, url, None, MAX_JSON_BODY, true)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        decode(&what, &body).map(Some)
    }

    /// A call answered by an empty 2xx, where 404 means it is already done.
    async fn call_idempotent(
        &self,
        method: Method,
        url: Url,
        json: Option<&serde_json::Value>,
    ) -> Result<(), ForgeError> {
        let what = describe(&method, &url);
        let (status, _, body) = self
            .exchange(method, url, json, MAX_JSON_BODY, true)
            .await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(self.status_error(&what, status, &body))
    }

    /// Reads every page of a list: `page` from 1, `limit` from the options; stops when
    /// `total_count` items are in or a page comes back empty. A failing page fails the list.
    async fn all_pages<P: Page>(
        &self,
        rest: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(Vec<P::Item>, Option<u64>), ForgeError> {
        let limit = self.options.page_limit.clamp(1, 50).to_string();
        let mut seen = BTreeSet::new();
        let mut items = Vec::new();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("page", &page_text));
            q.push(("limit", &limit));
            let url = self.scope_url(rest, &q);
            let body: P = self.call(Method::GET, url, None).await?;
            let (batch, total) = body.into_parts();
            if batch.is_empty() {
                return Ok((items, total));
            }
            for item in batch {
                // NOTE: Gitea orders runners by status and last contact, which moves while we
                // page; an item seen twice is kept once.
                if seen.insert(P::id(&item)) {
                    items.push(item);
                }
            }
            if total.is_some_and(|t| u64::try_from(items.len()).unwrap_or(u64::MAX) >= t) {
                return Ok((items, total));
            }
        }
        Err(ForgeError::BadResponse(format!(
            "{} did not end after {MAX_PAGES} pages",
            rest.join("/")
        )))
    }

    /// Reads a list whose order Gitea does not make stable (runners by `last_online` alone,
    /// jobs in database order before 1.27): rows with equal keys can move between page
    /// requests, so one read can repeat a row and skip another while looking whole. When the
    /// distinct rows fall short of `total_count`, the list is read again (up to
    /// [`LIST_READS`] times) and the reads are merged. What is still missing after that is
    /// the caller's to confirm one by one.
    async fn merged_pages<P: Page>(
        &self,
        rest: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Vec<P::Item>, ForgeError> {
        let mut seen = BTreeSet::new();
        let mut items = Vec::new();
        for read in 1..=LIST_READS {
            let (batch, total) = self.all_pages::<P>(rest, query).await?;
            for item in batch {
                if seen.insert(P::id(&item)) {
                    items.push(item);
                }
            }
            let have = u64::try_from(items.len()).unwrap_or(u64::MAX);
            match total {
                Some(t) if have < t && read < LIST_READS => {
                    tracing::debug!(
                        list = rest.join("/"),
                        have,
                        total = t,
                        "list came back short; reading it again"
                    );
                }
                _ => break,
            }
        }
        Ok(items)
    }

    // ---- push mode -----------------------------------------------------------------------

    /// Lists the `.yml`/`.yaml` files under `dir` at `commit`, recursively. `None` when `dir`
    /// does not exist (or is not a directory).
    async fn list_workflow_dir(
        &self,
        repo: (&str, &str),
        dir: &str,
        commit: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        let mut files = Vec::new();
        let mut pending: VecDeque<(String, usize)> = VecDeque::from([(dir.to_owned(), 0)]);
        let mut entries_read = 0usize;
        let mut first = true;
        while let Some((path, depth)) = pending.pop_front() {
            let mut rest = vec!["contents"];
            let segments = path_segments(&path)?;
            rest.extend(segments.iter().copied());
            let url = self.repo_url(repo, &rest, &[("ref", commit)]);
            let listing: Option<serde_json::Value> = self.call_optional(url).await?;
            let entries: Vec<ContentEntry> = match listing {
                Some(serde_json::Value::Array(items)) => items
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        ForgeError::BadResponse(format!(
                            "contents of {path}: not a directory listing ({})",
                            json_error(&e)
                        ))
                    })?,
                // The top directory missing or a file: Gitea moves on to the next directory.
                Some(_) | None if first => return Ok(None),
                // A subdirectory vanished between two calls: nothing to read there.
                Some(_) | None => Vec::new(),
            };
            first = false;
            for entry in entries {
                entries_read += 1;
                if entries_read > MAX_TREE_ENTRIES {
                    return Err(ForgeError::BadResponse(format!(
                        "{dir} holds more than {MAX_TREE_ENTRIES} entries"
                    )));
                }
                let child = if entry.path.is_empty() {
                    format!("{path}/{}", entry.name)
                } else {
                    entry.path.clone()
                };
                if !child.starts_with(&format!("{dir}/")) {
                    return Err(ForgeError::BadResponse(format!(
                        "contents of {path}: entry `{child}` lies outside {dir}"
                    )));
                }
                match entry.kind.as_str() {
                    "dir" if depth < MAX_TREE_DEPTH => pending.push_back((child, depth + 1)),
                    "file" if is_workflow_name(&child) => files.push(child),
                    _ => {}
                }
            }
        }
        files.sort();
        Ok(Some(files))
    }

    /// A file's bytes at `commit`; `None` when it is missing or over [`MAX_WORKFLOW_FILE`].
    async fn raw_file(
        &self,
        repo: (&str, &str),
        path: &str,
        commit: &str,
    ) -> Result<Option<Vec<u8>>, ForgeError> {
        let mut rest = vec!["raw"];
        let segments = path_segments(path)?;
        rest.extend(segments.iter().copied());
        let url = self.repo_url(repo, &rest, &[("ref", commit)]);
        let what = describe(&Method::GET, &url);
        match self
            .exchange(Method::GET, url, None, MAX_WORKFLOW_FILE, true)
            .await
        {
            Ok((status, _, body)) if status.is_success() => Ok(Some(body)),
            Ok((StatusCode::NOT_FOUND, _, _)) => Ok(None),
            Ok((status, _, body)) => Err(self.status_error(&what, status, &body)),
            Err(ForgeError::BadResponse(m)) if m.contains("answer larger than") => {
                tracing::warn!(
                    path,
                    "workflow file larger than 1 MiB skipped, as Gitea does"
                );
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn commit_exists(&self, repo: (&str, &str), commit: &str) -> Result<bool, ForgeError> {
        let url = self.repo_url(
            repo,
            &["git", "commits", commit],
            &[
                ("stat", "false"),
                ("verification", "false"),
                ("files", "false"),
            ],
        );
        Ok(self
            .call_optional::<serde_json::Value>(url)
            .await?
            .is_some())
    }

    async fn fetch_changed_files(
        &self,
        repo: (&str, &str),
        before: &str,
        after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        let mut names = BTreeSet::new();
        if is_zero_sha(before) {
            // A new branch: Gitea diffs the head commit against its parent (diff-tree --root).
            let url = self.repo_url(
                repo,
                &["git", "commits", after],
                &[
                    ("stat", "false"),
                    ("verification", "false"),
                    ("files", "true"),
                ],
            );
            let Some(commit) = self.call_optional::<ApiCommit>(url).await? else {
                return Ok(None);
            };
            names.extend(
                commit
                    .files
                    .unwrap_or_default()
                    .into_iter()
                    .map(|f| f.filename),
            );
        } else {
            let basehead = format!("{before}...{after}");
            let url = self.repo_url(
                repo,
                &["compare", &basehead],
                &[("verification", "false"), ("files", "true")],
            );
            let Some(compare) = self.call_optional::<ApiCompare>(url).await? else {
                return Ok(None);
            };
            for commit in compare.commits.unwrap_or_default() {
                names.extend(
                    commit
                        .files
                        .unwrap_or_default()
                        .into_iter()
                        .map(|f| f.filename),
                );
            }
        }
        Ok(Some(names.into_iter().filter(|n| !n.is_empty()).collect()))
    }
}

#[async_trait]
impl Forge for GiteaForge {
    async fn version(&self) -> Result<ForgeVersion, ForgeError> {
        let url = self.url(&["api", "v1", "version"], &[]);
        let body: ApiVersion = self.call(Method::GET, url, None).await?;
        let version = ForgeVersion::parse(&body.version)
            .map_err(|e| ForgeError::BadResponse(format!("GET /api/v1/version: {e}")))?;
        *self.version.lock() = Some(version);
        Ok(version)
    }

    async fn list_runners(&self) -> Result<Vec<ForgeRunner>, ForgeError> {
        let runners = self.merged_pages::<RunnersPage>(&["runners"], &[]).await?;
        Ok(runners.into_iter().map(ApiRunner::into_runner).collect())
    }

    async fn get_runner(&self, id: i64) -> Result<Option<ForgeRunner>, ForgeError> {
        let id = id.to_string();
        let url = self.scope_url(&["runners", &id], &[]);
        Ok(self
            .call_optional::<ApiRunner>(url)
            .await?
            .map(ApiRunner::into_runner))
    }

    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError> {
        let id = id.to_string();
        let url = self.scope_url(&["runners", &id], &[]);
        self.call_idempotent(Method::DELETE, url, None).await
    }

    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError> {
        let (version, features) = self.features().await?;
        if !features.disable {
            return Err(ForgeError::Unsupported {
                feature: "disabling runners".into(),
                need: "1.26.0".into(),
                have: version.to_string(),
            });
        }
        let id = id.to_string();
        let url = self.scope_url(&["runners", &id], &[]);
        self.call_idempotent(
            Method::PATCH,
            url,
            Some(&serde_json::json!({ "disabled": true })),
        )
        .await
    }

    async fn registration_token(&self) -> Result<Secret, ForgeError> {
        let url = self.scope_url(&["runners", "registration-token"], &[]);
        let what = describe(&Method::POST, &url);
        let (status, headers, body) = self
            .exchange(Method::POST, url, None, MAX_JSON_BODY, true)
            .await?;
        if !status.is_success() {
            return Err(self.status_error(&what, status, &body));
        }
        let from_body = serde_json::from_slice::<ApiToken>(&body)
            .ok()
            .map(|t| t.token);
        // NOTE: swagger documents the token as a response header; Gitea sends it in the body.
        let from_header = headers
            .get("token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match from_body.or(from_header).filter(|t| !t.is_empty()) {
            Some(token) => Ok(Secret::new(token)),
            None => Err(ForgeError::BadResponse(format!(
                "{what}: no token in the answer"
            ))),
        }
    }

    async fn register_runner(
        &self,
        name: &RunnerName,
        labels: &[String],
    ) -> Result<RegisteredRunner, ForgeError> {
        let token = self.registration_token().await?;
        let url = self.url(
            &["api", "actions", "runner.v1.RunnerService", "Register"],
            &[],
        );
        let what = describe(&Method::POST, &url);
        let body = serde_json::json!({
            "name": name.as_str(),
            "token": token.expose(),
            "version": self.options.runner_version,
            "labels": labels,
            "ephemeral": true,
        });
        let (status, _, answer) = self
            .exchange(Method::POST, url, Some(&body), MAX_JSON_BODY, false)
            .await?;
        if !status.is_success() {
            return Err(self.connect_error(&what, status, &answer, &token));
        }
        let reply: RegisterReply = serde_json::from_slice(&answer).map_err(|e| {
            // NOTE: never echo the answer: it carries the runner's token.
            ForgeError::BadResponse(format!(
                "{what}: answer is not a runner ({:?})",
                e.classify()
            ))
        })?;
        let runner = reply.runner;
        let id = runner.id.as_i64().ok_or_else(|| {
            ForgeError::BadResponse(format!("{what}: runner id is not an integer"))
        })?;
        if id <= 0 || runner.uuid.is_empty() || runner.token.is_empty() {
            return Err(ForgeError::BadResponse(format!(
                "{what}: answer lacks the runner's id, uuid or token"
            )));
        }
        if !registered_ephemeral(runner.ephemeral) {
            // NOTE: Gitea before 1.24 ignores `ephemeral`; check_supported refuses those, so
            // this is a server that dropped the flag for another reason.
            tracing::warn!(
                runner = name.as_str(),
                id,
                "Gitea registered the runner as not ephemeral: it will not be deleted after its job"
            );
        }
        Ok(RegisteredRunner {
            id,
            uuid: runner.uuid,
            token: Secret::new(runner.token),
            name: name.clone(),
        })
    }

    async fn queued_jobs(&self) -> Result<Vec<QueuedJob>, ForgeError> {
        let (version, features) = self.features().await?;
        if !features.queued_jobs {
            return Err(ForgeError::Unsupported {
                feature: "the queued-jobs API".into(),
                need: "1.25.0".into(),
                have: version.to_string(),
            });
        }
        let jobs = self
            .merged_pages::<JobsPage>(&["jobs"], &[("status", "queued")])
            .await?;
        let fallback = match &self.scope {
            RunnerScope::Repo { owner, name } => Some(format!("{owner}/{name}")),
            _ => None,
        };
        Ok(jobs
            .into_iter()
            .map(|j| j.into_queued(fallback.as_deref(), counting(version)))
            .collect())
    }

    async fn get_job(&self, repo: &str, id: i64) -> Result<JobSeen, ForgeError> {
        let (version, features) = self.features().await?;
        if !features.queued_jobs {
            return Err(ForgeError::Unsupported {
                feature: "the jobs API".into(),
                need: "1.25.0".into(),
                have: version.to_string(),
            });
        }
        let (owner, name) = split_repo(repo)?;
        let id_text = id.to_string();
        let url = self.repo_url((owner, name), &["actions", "jobs", &id_text], &[]);
        Ok(match self.call_optional::<WorkflowJob>(url).await? {
            Some(job) => job.into_seen(counting(version)),
            None => JobSeen {
                id,
                found: JobFound::Missing,
            },
        })
    }

    async fn workflow_files(&self, repo: &str, commit: &str) -> Result<Vec<RepoFile>, ForgeError> {
        let parts = split_repo(repo)?;
        check_commit(commit)?;
        let key = (repo.to_owned(), commit.to_owned());
        if let Some(hit) = self.workflows.lock().get(&key) {
            return Ok(hit);
        }
        let mut files = Vec::new();
        let mut found_dir = false;
        for dir in WORKFLOW_DIRS {
            let Some(paths) = self.list_workflow_dir(parts, dir, commit).await? else {
                continue;
            };
            found_dir = true;
            for path in paths {
                let Some(bytes) = self.raw_file(parts, &path, commit).await? else {
                    continue;
                };
                match String::from_utf8(bytes) {
                    Ok(content) => files.push(RepoFile { path, content }),
                    Err(_) => tracing::warn!(path, "workflow file is not UTF-8; skipped"),
                }
            }
            break;
        }
        if !found_dir && !self.commit_exists(parts, commit).await? {
            return Err(ForgeError::NotFound(format!("commit {commit} of {repo}")));
        }
        self.workflows.lock().put(key, files.clone());
        Ok(files)
    }

    async fn changed_files(
        &self,
        repo: &str,
        before: &str,
        after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        let parts = split_repo(repo)?;
        check_commit(after)?;
        if !is_zero_sha(before) {
            check_commit(before)?;
        }
        if is_zero_sha(after) {
            return Ok(Some(Vec::new()));
        }
        let key = (repo.to_owned(), before.to_owned(), after.to_owned());
        if let Some(hit) = self.changes.lock().get(&key) {
            return Ok(hit);
        }
        let changed = self.fetch_changed_files(parts, before, after).await?;
        self.changes.lock().put(key, changed.clone());
        Ok(changed)
    }
}

impl GiteaForge {
    /// Classifies a Connect error from the runner RPC (`{"code":…,"message":…}`).
    fn connect_error(
        &self,
        what: &str,
        status: StatusCode,
        body: &[u8],
        token: &Secret,
    ) -> ForgeError {
        let parsed: Option<ConnectError> = serde_json::from_slice(body).ok();
        let Some(err) = parsed else {
            if status == StatusCode::NOT_FOUND {
                return ForgeError::NotFound(format!(
                    "{what}: the runner RPC is not served here (are Actions enabled?)"
                ));
            }
            return self.status_error(what, status, body);
        };
        let mut message = self.scrub(&err.message);
        if !token.expose().is_empty() {
            message = message.replace(token.expose(), "[redacted]");
        }
        let msg = format!("{what}: {} ({}): {message}", status.as_u16(), err.code);
        let about_token = message.to_ascii_lowercase().contains("token");
        match err.code.as_str() {
            "unauthenticated" => ForgeError::Unauthorized(msg),
            "permission_denied" => ForgeError::Forbidden(msg),
            "not_found" if !about_token => ForgeError::NotFound(msg),
            "resource_exhausted" => ForgeError::RateLimited(msg),
            "unavailable" | "deadline_exceeded" | "aborted" => ForgeError::Unavailable(msg),
            // Gitea answers a bad registration token with a plain error (code `unknown`),
            // Forgejo with `invalid_argument`: both are a refused token.
            _ if about_token => ForgeError::Unauthorized(msg),
            _ => self.status_error(what, status, body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> GiteaConfig {
        GiteaConfig {
            url: url.into(),
            token_env: "GITEA_TOKEN".into(),
            webhook_secret_env: "GITEA_WEBHOOK_SECRET".into(),
            scope: RunnerScope::Org("acme".into()),
            demand: model::config::DemandSource::Jobs,
            registration: model::config::RegistrationMode::Preregister,
        }
    }

    #[test]
    fn urls_keep_a_sub_path_and_encode_segments() {
        let forge = GiteaForge::new(&config("https://h.example/gitea"), Secret::new("tok"))
            .expect("builds");
        assert_eq!(forge.base_url(), "https://h.example/gitea/");
        let u = forge.scope_url(&["runners", "7"], &[("page", "1")]);
        assert_eq!(
            u.as_str(),
            "https://h.example/gitea/api/v1/orgs/acme/actions/runners/7?page=1"
        );
        let raw = forge.repo_url(
            ("o", "r"),
            &["raw", ".gitea", "workflows", "a b#c.yml"],
            &[("ref", "ab")],
        );
        assert_eq!(
            raw.as_str(),
            "https://h.example/gitea/api/v1/repos/o/r/raw/.gitea/workflows/a%20b%23c.yml?ref=ab"
        );
    }

    #[test]
    fn bad_setup_is_refused_without_printing_the_token() {
        let err = GiteaForge::new(&config("ftp://h"), Secret::new("s3cr3t")).expect_err("bad url");
        assert!(matches!(err, ForgeError::Config(_)));
        let err = GiteaForge::new(&config("https://h"), Secret::new("")).expect_err("empty token");
        assert!(err.to_string().contains("GITEA_TOKEN"), "{err}");
        let err = GiteaForge::new(&config("https://h"), Secret::new("bad\ntoken"))
            .expect_err("bad header");
        assert!(!err.to_string().contains("bad\ntoken"));
        let forge = GiteaForge::new(&config("https://h"), Secret::new("s3cr3t")).expect("builds");
        assert!(!format!("{forge:?}").contains("s3cr3t"));
        assert_eq!(forge.scrub("echo s3cr3t back"), "echo [redacted] back");
    }
}
