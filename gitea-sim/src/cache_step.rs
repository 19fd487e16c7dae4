//! The agent's part in a job's cache step: what `actions/cache` does against
//! `ACTIONS_CACHE_URL`, which act_runner sets to its config's `cache.external_server` ("act_runner
//! will use this URL as the ACTIONS_CACHE_URL rather than start a server by itself":
//! gitea.com/gitea/act_runner commit 8920c4a, `internal/pkg/config/config.example.yaml`, the
//! `cache` section). The calls are the ones nektos/act v0.2.87 serves in
//! `pkg/artifactcache/handler.go`: routes at lines 98-102; `find` 178-216 (`GET cache?keys=&version=`,
//! 200 with `archiveLocation` or 204), `reserve` 219-246 (`POST caches`), `upload` 249-287
//! (`PATCH caches/:id` with a `Content-Range`), `commit` 290-342 (`POST caches/:id`); the
//! table in wiki/Cache.md lists them.
//!
//! Restore by key; on a miss, reserve, upload and commit an entry of the step's size. A
//! failing cache never fails the job (`actions/cache` warns and goes on): the outcome is a log
//! line either way.
//!
//! Adversarial where the sources leave timing open: the step runs the moment the task is
//! fetched, before any job set-up a real runner would do first, so it reaches the cache
//! service as early as a job ever could (before the `in_progress` webhook may have arrived).

use std::time::Duration;

use serde_json::{json, Value};

use crate::types::CacheStep;

/// The version the step sends: `actions/cache` hashes its paths and compression into it; any
/// fixed string plays the part.
const VERSION: &str = "0f0e0d0c0b0a09080706050403020100sim";

/// How long `actions/cache` waits before its one retry.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// Runs the step against `base` (`ACTIONS_CACHE_URL`, ending in `/`); the log line that says
/// what happened.
pub(crate) async fn run(http: &reqwest::Client, base: &str, step: &CacheStep) -> String {
    match restore_or_save(http, base, step).await {
        Ok(line) => line,
        Err(e) => format!("Warning: the cache service failed: {e}"),
    }
}

async fn restore_or_save(
    http: &reqwest::Client,
    base: &str,
    step: &CacheStep,
) -> Result<String, String> {
    let api = format!("{base}_apis/artifactcache");
    let url = format!(
        "{api}/cache?keys={}&version={VERSION}",
        percent_encode(&step.key)
    );
    let mut lookup = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("lookup: {e}"))?;
    // actions/cache retries 502, 503 and 504 once, 5 s later (actions/toolkit
    // packages/cache/src/internal/requestUtils.ts `isRetryableStatusCode`, constants.ts
    // `DefaultRetryAttempts` 2, `DefaultRetryDelay` 5000).
    if matches!(lookup.status().as_u16(), 502..=504) {
        tokio::time::sleep(RETRY_DELAY).await;
        lookup = http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("lookup: {e}"))?;
    }
    match lookup.status().as_u16() {
        200 => {
            let hit: Value = lookup
                .json()
                .await
                .map_err(|e| format!("lookup answer: {e}"))?;
            let location = hit
                .get("archiveLocation")
                .and_then(Value::as_str)
                .ok_or("lookup answer without archiveLocation")?;
            let body = http
                .get(location)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| format!("download: {e}"))?
                .bytes()
                .await
                .map_err(|e| format!("download: {e}"))?;
            let key = hit.get("cacheKey").and_then(Value::as_str).unwrap_or("");
            Ok(format!(
                "Cache restored from key: {key} ({} bytes)",
                body.len()
            ))
        }
        204 => save(http, &api, step).await,
        other => Err(format!("lookup: HTTP {other}")),
    }
}

/// A query value, percent-encoded (all but RFC 3986's unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn save(http: &reqwest::Client, api: &str, step: &CacheStep) -> Result<String, String> {
    let reserved: Value = http
        .post(format!("{api}/caches"))
        .json(&json!({"key": step.key, "version": VERSION, "cacheSize": step.size}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("reserve: {e}"))?
        .json()
        .await
        .map_err(|e| format!("reserve answer: {e}"))?;
    let id = reserved
        .get("cacheId")
        .and_then(Value::as_i64)
        .ok_or("reserve answer without cacheId")?;
    let size = usize::try_from(step.size).map_err(|_| "entry too large")?;
    let body: Vec<u8> = (0..size).map(|k| (k % 251) as u8).collect();
    if size > 0 {
        http.patch(format!("{api}/caches/{id}"))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("bytes 0-{}/*", size - 1))
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("upload: {e}"))?;
    }
    http.post(format!("{api}/caches/{id}"))
        .json(&json!({"size": step.size}))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("commit: {e}"))?;
    Ok(format!(
        "Cache saved with key: {} ({} bytes)",
        step.key, step.size
    ))
}
