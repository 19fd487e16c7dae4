//! The actions cache service: the protocol `actions/cache` speaks to `ACTIONS_CACHE_URL`,
//! with entries in S3, scoped per repository (see `wiki/Cache.md`).
//!
//! Every route sits under `/<runner name>/<credential>/`, the `cache.external_server` URL
//! the boot script writes into that runner's config. [`Access`] turns the pair into the
//! scope of the job that runner is running now, or refuses. Decisions (which entry a lookup
//! restores, whether chunks make an entry, what eviction removes) are `model::cache`'s.
//!
//! - [`blobs`]: the S3 calls, streaming chunk bodies both ways.
//! - [`access`]: credentials and the job a runner runs, from the run table.
//! - [`pattern`]: generated upload bodies for the tests and the benchmark.
//! - [`sweep`]: expiry, abandoned uploads, and least-recently-used eviction per repository.
//!
//! Credentials never reach a log line, an error or a metric label: requests are logged by
//! runner name and repository only.

pub mod access;
pub mod blobs;
pub mod pattern;
pub mod sweep;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use model::cache::{self as rules, Entry, JobScope, Layout, RangeAsk};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::clock::Clock;
use crate::metrics::Metrics;
use blobs::{BlobError, Blobs};

/// Why a request is refused before it is looked at. Never holds the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The runner name is not one of ours, or the credential is not its.
    #[error("unknown runner or credential")]
    Credential,
    /// No job of this runner is known to be running (yet).
    #[error("no job is known to be running on this runner: {0}")]
    NoJob(String),
    /// The runner's job has ended.
    #[error("the job of this runner has ended")]
    Ended,
    /// The run table could not be read.
    #[error("cannot check the credential now: {0}")]
    Unavailable(String),
}

impl Denied {
    fn label(&self) -> &'static str {
        match self {
            Denied::Credential => "credential",
            Denied::NoJob(_) => "no-job",
            Denied::Ended => "job-ended",
            Denied::Unavailable(_) => "unavailable",
        }
    }
}

/// Who may use the cache: the scope of the job a runner is running now.
#[async_trait]
pub trait Access: Send + Sync {
    /// The scope of the job `runner` runs now, if `token` is that runner's credential.
    ///
    /// # Errors
    /// [`Denied`] saying why not.
    async fn resolve(&self, runner: &str, token: &str) -> Result<JobScope, Denied>;
}

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The base URL runners reach the service at (`cache.url`).
    pub url: String,
    /// Key prefix in the bucket.
    pub prefix: String,
    /// Largest entry, and most bytes per repository.
    pub max_repo_size: u64,
    /// How long a request from a runner whose job is not known yet is held, asking the run
    /// table again, before it is answered 503 ([`HOLD_UNKNOWN_JOB`] for a `cache:` section).
    pub hold_unknown_job: Duration,
}

/// How long a request whose runner's job is not known yet waits for its `in_progress` webhook
/// before the 503 that `actions/cache` retries once: a webhook queued behind others in Gitea,
/// or a slow table write, then costs the job no cache.
pub const HOLD_UNKNOWN_JOB: Duration = Duration::from_secs(10);

/// How often a held request asks again.
const ASK_AGAIN_EVERY: Duration = Duration::from_millis(250);

impl Settings {
    /// The settings of a `cache:` section.
    #[must_use]
    pub fn of(config: &model::cache::CacheConfig) -> Self {
        Settings {
            url: config.url.clone(),
            prefix: config.prefix.clone(),
            max_repo_size: config.max_repo_size,
            hold_unknown_job: HOLD_UNKNOWN_JOB,
        }
    }
}

/// The service's state; cheap to clone.
#[derive(Clone)]
pub struct CacheService(Arc<Inner>);

struct Inner {
    blobs: Blobs,
    layout: Layout,
    access: Arc<dyn Access>,
    settings: Settings,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    /// Hits and misses per repository since the last sweep wrote them to the bucket.
    counts: Mutex<BTreeMap<String, (u64, u64)>>,
    uploaded: Arc<AtomicU64>,
}

impl CacheService {
    /// The service over `blobs`.
    #[must_use]
    pub fn new(
        blobs: Blobs,
        access: Arc<dyn Access>,
        settings: Settings,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    ) -> Self {
        CacheService(Arc::new(Inner {
            blobs,
            layout: Layout::new(&settings.prefix),
            access,
            settings,
            metrics,
            clock,
            counts: Mutex::new(BTreeMap::new()),
            uploaded: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// The bucket.
    #[must_use]
    pub fn blobs(&self) -> &Blobs {
        &self.0.blobs
    }

    /// Now, by the service's clock (milliseconds since the epoch).
    #[must_use]
    pub fn clock_now(&self) -> i64 {
        self.0.clock.now().as_millis()
    }

    /// The key layout.
    #[must_use]
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }

    /// Takes the hits and misses counted since the last call, per repository.
    #[must_use]
    pub fn take_counts(&self) -> BTreeMap<String, (u64, u64)> {
        std::mem::take(&mut *self.0.counts.lock())
    }

    /// Puts counts back (the sweep could not write them).
    pub fn restore_counts(&self, counts: BTreeMap<String, (u64, u64)>) {
        let mut mine = self.0.counts.lock();
        for (repo, (h, m)) in counts {
            let slot = mine.entry(repo).or_default();
            slot.0 += h;
            slot.1 += m;
        }
    }

    fn count(&self, repo: &str, hit: bool) {
        self.0.metrics.cache_lookup(hit);
        let mut counts = self.0.counts.lock();
        let slot = counts.entry(repo.to_owned()).or_default();
        if hit {
            slot.0 += 1;
        } else {
            slot.1 += 1;
        }
    }
}

/// The protocol's routes, under `/<runner>/<credential>/_apis/artifactcache/`, and
/// `/healthz`.
pub fn router(service: CacheService) -> Router {
    let base = "/{runner}/{token}/_apis/artifactcache";
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(&format!("{base}/cache"), get(lookup))
        .route(&format!("{base}/caches"), post(reserve))
        .route(&format!("{base}/caches/{{id}}"), post(commit).patch(upload))
        .route(&format!("{base}/artifacts/{{id}}"), get(download))
        .route(&format!("{base}/clean"), post(clean))
        .with_state(service)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn ok_empty() -> Response {
    (StatusCode::OK, Json(serde_json::json!({}))).into_response()
}

fn blob_error(e: &BlobError) -> Response {
    match e {
        BlobError::NotFound => error(StatusCode::NOT_FOUND, "no such cache entry"),
        BlobError::BadBody(m) => error(StatusCode::BAD_REQUEST, m.clone()),
        BlobError::Unavailable(m) => {
            tracing::warn!(error = %m, "cache storage failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cache storage is unavailable",
            )
        }
    }
}

async fn scope_of(service: &CacheService, runner: &str, token: &str) -> Result<JobScope, Response> {
    if !rules::token_well_formed(token) {
        service.0.metrics.cache_refused("credential");
        return Err(error(StatusCode::FORBIDDEN, Denied::Credential.to_string()));
    }
    let held_until = Instant::now() + service.0.settings.hold_unknown_job;
    let resolved = loop {
        match service.0.access.resolve(runner, token).await {
            Err(Denied::NoJob(_)) if Instant::now() + ASK_AGAIN_EVERY <= held_until => {
                tokio::time::sleep(ASK_AGAIN_EVERY).await;
            }
            answer => break answer,
        }
    };
    resolved.map_err(|d| {
        service.0.metrics.cache_refused(d.label());
        tracing::info!(runner = %crate::quiet::cap(runner, 200), reason = %d, "cache request refused");
        match d {
            // Not known yet is not a no: the `in_progress` webhook naming the runner's job
            // may still be on its way after the hold. A 503 is what `actions/cache` retries
            // (once, 5 s later: actions/toolkit packages/cache/src/internal/requestUtils.ts,
            // constants.ts).
            Denied::NoJob(_) => {
                let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, d.to_string());
                resp.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("5"),
                );
                resp
            }
            Denied::Unavailable(_) => error(StatusCode::SERVICE_UNAVAILABLE, d.to_string()),
            Denied::Credential | Denied::Ended => error(StatusCode::FORBIDDEN, d.to_string()),
        }
    })
}

async fn read_entry(service: &CacheService, id: u64) -> Result<Option<Entry>, Response> {
    match service.0.blobs.get_small(&service.0.layout.entry(id)).await {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => match serde_json::from_slice::<Entry>(&bytes) {
            Ok(e) if e.id == id => Ok(Some(e)),
            _ => Ok(None),
        },
        Err(e) => Err(blob_error(&e)),
    }
}

async fn write_entry(service: &CacheService, entry: &Entry) -> Result<(), Response> {
    let bytes = serde_json::to_vec(entry)
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    service
        .0
        .blobs
        .put_small(&service.0.layout.entry(entry.id), bytes)
        .await
        .map_err(|e| blob_error(&e))
}

#[derive(Deserialize)]
struct LookupQuery {
    #[serde(default)]
    keys: String,
    #[serde(default)]
    version: String,
}

/// Most keys one lookup may name (the key and its restore keys).
const MAX_KEYS: usize = 20;

async fn lookup(
    State(service): State<CacheService>,
    Path((runner, token)): Path<(String, String)>,
    Query(q): Query<LookupQuery>,
) -> Response {
    let scope = match scope_of(&service, &runner, &token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let keys: Vec<String> = q
        .keys
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect();
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("name 1 to {MAX_KEYS} keys, separated by commas"),
        );
    }
    for k in &keys {
        if let Err(e) = rules::check_text("key", k) {
            return error(StatusCode::BAD_REQUEST, e);
        }
    }
    if let Err(e) = rules::check_text("version", &q.version) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let layout = &service.0.layout;
    let mut found = Vec::new();
    for s in &scope.read {
        for key in &keys {
            let prefix = layout.index_prefix(&scope.repo, s, key);
            match service.0.blobs.list(&prefix).await {
                Ok(listed) => {
                    found.extend(listed.iter().filter_map(|o| layout.parse_index_key(&o.key)))
                }
                Err(e) => return blob_error(&e),
            }
        }
    }
    let chosen = rules::pick(&keys, &q.version, &scope.read, &found).cloned();
    let entry = match chosen {
        None => None,
        Some(c) => match read_entry(&service, c.id).await {
            Ok(e) => e.filter(|e| e.committed.is_some() && scope.may_read(&e.repo, &e.scope)),
            Err(r) => return r,
        },
    };
    let Some(entry) = entry else {
        service.count(&scope.repo, false);
        tracing::debug!(runner = %runner, repo = %scope.repo, "cache miss");
        return StatusCode::NO_CONTENT.into_response();
    };
    // Written again so its last-modified time says when it was last used (the sweep's LRU).
    if let Err(r) = write_entry(&service, &entry).await {
        return r;
    }
    service.count(&scope.repo, true);
    tracing::debug!(runner = %runner, repo = %scope.repo, entry = entry.id, "cache hit");
    let location = format!(
        "{}/{runner}/{token}/_apis/artifactcache/artifacts/{}",
        service.0.settings.url, entry.id
    );
    (
        StatusCode::OK,
        Json(serde_json::json!({
            "result": "hit",
            "archiveLocation": location,
            "cacheKey": entry.key,
            "cacheVersion": entry.version,
            "scope": entry.scope,
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ReserveRequest {
    key: String,
    version: String,
    #[serde(default, rename = "cacheSize")]
    cache_size: Option<i64>,
}

async fn reserve(
    State(service): State<CacheService>,
    Path((runner, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let scope = match scope_of(&service, &runner, &token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(req) = serde_json::from_slice::<ReserveRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "the body must be JSON with key and version",
        );
    };
    for (what, text) in [("key", &req.key), ("version", &req.version)] {
        if let Err(e) = rules::check_text(what, text) {
            return error(StatusCode::BAD_REQUEST, e);
        }
    }
    let announced = req
        .cache_size
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0);
    let max = service.0.settings.max_repo_size;
    if announced.is_some_and(|s| s > max) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the entry would be over this repository's limit of {max} bytes"),
        );
    }
    let id = rand::random_range(1..=rules::MAX_ENTRY_ID);
    let entry = Entry {
        id,
        repo: scope.repo.clone(),
        scope: scope.write.clone(),
        key: req.key,
        version: req.version,
        created_ms: service.0.clock.now().as_millis(),
        announced,
        committed: None,
    };
    if service.0.layout.index_key(&entry).len() > rules::MAX_OBJECT_KEY {
        return error(StatusCode::BAD_REQUEST, "the key is too long");
    }
    if let Err(r) = write_entry(&service, &entry).await {
        return r;
    }
    tracing::debug!(runner = %runner, repo = %scope.repo, entry = id, "cache entry reserved");
    (StatusCode::OK, Json(serde_json::json!({ "cacheId": id }))).into_response()
}

/// Reads an entry the job may write and that is not committed yet.
async fn writable(service: &CacheService, scope: &JobScope, id: &str) -> Result<Entry, Response> {
    let not_reserved = || error(StatusCode::BAD_REQUEST, format!("cache {id}: not reserved"));
    let id: u64 = id.parse().map_err(|_| not_reserved())?;
    let entry = read_entry(service, id).await?.ok_or_else(not_reserved)?;
    if !scope.may_write(&entry.repo, &entry.scope) {
        service.0.metrics.cache_refused("scope");
        return Err(not_reserved());
    }
    if entry.committed.is_some() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("cache {id}: already complete"),
        ));
    }
    Ok(entry)
}

async fn upload(
    State(service): State<CacheService>,
    Path((runner, token, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let scope = match scope_of(&service, &runner, &token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let entry = match writable(&service, &scope, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (first, last) = match rules::parse_content_range(range) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let len = last - first + 1;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|d| d != len) {
        return error(
            StatusCode::BAD_REQUEST,
            "Content-Length differs from the Content-Range",
        );
    }
    let max = service.0.settings.max_repo_size;
    if last >= max {
        return error(
            StatusCode::BAD_REQUEST,
            format!("the entry would be over this repository's limit of {max} bytes"),
        );
    }
    let key = service.0.layout.chunk(entry.id, first);
    let before = service
        .0
        .uploaded
        .load(std::sync::atomic::Ordering::Relaxed);
    let put = service
        .0
        .blobs
        .put_stream(&key, body, len, Arc::clone(&service.0.uploaded))
        .await;
    let after = service
        .0
        .uploaded
        .load(std::sync::atomic::Ordering::Relaxed);
    service
        .0
        .metrics
        .cache_bytes("up", after.saturating_sub(before));
    match put {
        Ok(()) => ok_empty(),
        Err(e) => blob_error(&e),
    }
}

#[derive(Deserialize)]
struct CommitRequest {
    #[serde(default)]
    size: Option<i64>,
}

async fn commit(
    State(service): State<CacheService>,
    Path((runner, token, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let scope = match scope_of(&service, &runner, &token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut entry = match writable(&service, &scope, &id).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let size = serde_json::from_slice::<CommitRequest>(&body)
        .ok()
        .and_then(|c| c.size)
        .and_then(|s| u64::try_from(s).ok());
    let layout = &service.0.layout;
    let listed = match service.0.blobs.list(&layout.chunks(entry.id)).await {
        Ok(l) => l,
        Err(e) => return blob_error(&e),
    };
    let chunks: Vec<rules::Chunk> = listed
        .iter()
        .filter_map(|o| {
            let (_, offset) = layout.chunk_of(&o.key)?;
            Some(rules::Chunk {
                offset,
                len: o.size,
            })
        })
        .collect();
    let committed = match rules::assemble(&chunks, size, service.0.settings.max_repo_size) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    entry.committed = Some(committed);
    if let Err(r) = write_entry(&service, &entry).await {
        return r;
    }
    if let Err(e) = service
        .0
        .blobs
        .put_small(&layout.index_key(&entry), Vec::new())
        .await
    {
        return blob_error(&e);
    }
    tracing::info!(runner = %runner, repo = %scope.repo, entry = entry.id, "cache entry saved");
    ok_empty()
}

async fn download(
    State(service): State<CacheService>,
    Path((runner, token, id)): Path<(String, String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let scope = match scope_of(&service, &runner, &token).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let missing = || error(StatusCode::NOT_FOUND, "no such cache entry for this job");
    let Ok(id) = id.parse::<u64>() else {
        return missing();
    };
    let entry = match read_entry(&service, id).await {
        Ok(Some(e)) => e,
        Ok(None) => return missing(),
        Err(r) => return r,
    };
    let Some(committed) = entry.committed.clone() else {
        return missing();
    };
    if !scope.may_read(&entry.repo, &entry.scope) {
        service.0.metrics.cache_refused("scope");
        return missing();
    }
    let size = committed.size;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, last) = match rules::parse_range(range, size) {
        RangeAsk::Whole => (StatusCode::OK, 0, size.saturating_sub(1)),
        RangeAsk::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b),
        RangeAsk::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response()
        }
    };
    let length = if size == 0 { 0 } else { last - first + 1 };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, length);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{size}"),
        );
    }
    if method == Method::HEAD || size == 0 {
        return response.body(Body::empty()).unwrap_or_else(|_| missing());
    }
    let parts = rules::slices(&committed.chunks, first, last);
    let blobs = service.0.blobs.clone();
    let layout = service.0.layout.clone();
    let metrics = service.0.metrics.clone();
    let stream = futures::stream::iter(parts)
        .then(move |(chunk, from, to)| {
            let blobs = blobs.clone();
            let key = layout.chunk(id, chunk.offset);
            async move {
                blobs
                    .get_range(&key, from, to)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
        })
        .try_flatten()
        .inspect_ok(move |b| metrics.cache_bytes("down", b.len() as u64));
    response
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| missing())
}

async fn clean(
    State(service): State<CacheService>,
    Path((runner, token)): Path<(String, String)>,
) -> Response {
    match scope_of(&service, &runner, &token).await {
        Ok(_) => ok_empty(),
        Err(r) => r,
    }
}
