//! The actions cache service against moto's S3, spoken to the way `actions/cache` speaks:
//! lookup, reserve, chunked upload, commit, download (whole, ranged, HEAD). Run with
//! `scripts/with-moto.sh cargo test -p tinqs-ci --test cache` (`make test` does).
//!
//! Who may use the cache is decided by the [`Access`] port; here a table of runners stands in
//! for the run table (the real one is tested in `controller/src/cache/access.rs` and the e2e
//! story). Every test has a bucket of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use controller::cache::blobs::Blobs;
use controller::cache::pattern::{byte_at, Pattern};
use controller::cache::sweep::{self, SweepReport};
use controller::cache::{router, Access, CacheService, Denied, Settings};
use controller::clock::ManualClock;
use controller::http::HttpLimits;
use controller::metrics::Metrics;
use model::cache::{Eviction, JobScope, Retention};
use model::Timestamp;
use tokio::net::TcpListener;

async fn conf() -> aws_config::SdkConfig {
    controller::aws::moto::config()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// Runners and the scope of the job each runs; a runner can be marked as finished.
#[derive(Default)]
struct Runners {
    jobs: Mutex<HashMap<String, (String, JobScope)>>,
    ended: Mutex<Vec<String>>,
    /// Runners whose job is not known yet (their `in_progress` webhook is late).
    waiting: Mutex<Vec<String>>,
}

impl Runners {
    /// `runner`'s `in_progress` webhook has not been recorded yet.
    fn not_known_yet(&self, runner: &str) {
        self.waiting.lock().expect("lock").push(runner.into());
    }

    fn add(&self, runner: &str, token: &str, scope: JobScope) {
        self.jobs
            .lock()
            .expect("lock")
            .insert(runner.into(), (token.into(), scope));
    }
}

#[async_trait]
impl Access for Runners {
    async fn resolve(&self, runner: &str, token: &str) -> Result<JobScope, Denied> {
        if self.ended.lock().expect("lock").iter().any(|r| r == runner) {
            return Err(Denied::Ended);
        }
        if self
            .waiting
            .lock()
            .expect("lock")
            .iter()
            .any(|r| r == runner)
        {
            return Err(Denied::NoJob("no in_progress webhook yet".into()));
        }
        match self.jobs.lock().expect("lock").get(runner) {
            Some((t, scope)) if t == token => Ok(scope.clone()),
            _ => Err(Denied::Credential),
        }
    }
}

struct Cache {
    base: String,
    service: CacheService,
    runners: Arc<Runners>,
    clock: ManualClock,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Cache {
    /// `runner` (with `token`) looks up key `deps-1`, as `actions/cache` does on restore.
    async fn lookup_deps(&self, runner: &str, token: &str) -> reqwest::Response {
        let url = model::cache::runner_url(&self.base, runner, token);
        self.http
            .get(format!(
                "{url}_apis/artifactcache/cache?keys=deps-1&version=v"
            ))
            .send()
            .await
            .expect("sent")
    }
}

const START_MS: i64 = 1_764_000_000_000;

async fn start(max_repo_size: u64) -> Cache {
    let conf = conf().await;
    let bucket = format!("cache-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let blobs = Blobs::from_conf(&conf, &bucket);
    blobs.ensure_bucket().await.expect("bucket");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let runners = Arc::new(Runners::default());
    let clock = ManualClock::new(Timestamp::from_millis(START_MS));
    let service = CacheService::new(
        blobs,
        runners.clone(),
        Settings {
            url: base.clone(),
            prefix: "ci/".into(),
            max_repo_size,
            hold_unknown_job: Duration::from_secs(1),
        },
        Metrics::new(),
        Arc::new(clock.clone()),
    );
    let app = router(service.clone());
    let limits = HttpLimits {
        max_connections: 64,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(300),
        max_body_bytes: 0,
    };
    let server = tokio::spawn(async move {
        let _ =
            controller::http::serve_streaming(listener, app, limits, std::future::pending()).await;
    });
    Cache {
        base,
        service,
        runners,
        clock,
        http: reqwest::Client::new(),
        server,
    }
}

/// One job's view of the cache: its `ACTIONS_CACHE_URL` and the calls the toolkit makes.
struct Job<'a> {
    cache: &'a Cache,
    url: String,
}

impl Cache {
    fn job(&self, runner: &str, token: &str, scope: JobScope) -> Job<'_> {
        self.runners.add(runner, token, scope);
        Job {
            cache: self,
            url: model::cache::runner_url(&self.base, runner, token),
        }
    }
}

fn scope(repo: &str, branch: &str) -> JobScope {
    JobScope::of_job(repo, Some(branch), Some("main"), Some(1), 1)
}

impl Job<'_> {
    fn api(&self, resource: &str) -> String {
        format!("{}_apis/artifactcache/{resource}", self.url)
    }

    /// `GET cache`: `Some((archiveLocation, cacheKey))` on a hit, `None` on 204.
    async fn lookup(&self, keys: &[&str], version: &str) -> Option<(String, String)> {
        let resp = self
            .cache
            .http
            .get(format!(
                "{}?keys={}&version={}",
                self.api("cache"),
                model::cache::encode(&keys.join(",")),
                model::cache::encode(version)
            ))
            .send()
            .await
            .expect("lookup sent");
        match resp.status().as_u16() {
            204 => None,
            200 => {
                let v: serde_json::Value = resp.json().await.expect("JSON");
                assert_eq!(v["result"], "hit");
                Some((
                    v["archiveLocation"].as_str().expect("location").to_owned(),
                    v["cacheKey"].as_str().expect("key").to_owned(),
                ))
            }
            other => panic!(
                "lookup answered {other}: {}",
                resp.text().await.unwrap_or_default()
            ),
        }
    }

    async fn reserve(&self, key: &str, version: &str, size: Option<u64>) -> reqwest::Response {
        let mut body = serde_json::json!({ "key": key, "version": version });
        if let Some(s) = size {
            body["cacheSize"] = s.into();
        }
        self.cache
            .http
            .post(self.api("caches"))
            .json(&body)
            .send()
            .await
            .expect("reserve sent")
    }

    async fn reserve_id(&self, key: &str, version: &str) -> u64 {
        let resp = self.reserve(key, version, None).await;
        assert_eq!(resp.status(), 200);
        let v: serde_json::Value = resp.json().await.expect("JSON");
        v["cacheId"].as_u64().expect("a numeric cacheId")
    }

    async fn patch(&self, id: u64, offset: u64, body: reqwest::Body, len: u64) -> u16 {
        self.cache
            .http
            .patch(self.api(&format!("caches/{id}")))
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Range",
                format!("bytes {offset}-{}/*", offset + len - 1),
            )
            .header("Content-Length", len)
            .body(body)
            .send()
            .await
            .expect("upload sent")
            .status()
            .as_u16()
    }

    async fn commit(&self, id: u64, size: u64) -> reqwest::Response {
        self.cache
            .http
            .post(self.api(&format!("caches/{id}")))
            .json(&serde_json::json!({ "size": size }))
            .send()
            .await
            .expect("commit sent")
    }

    /// Reserve, upload in chunks of `chunk` bytes (in parallel, last first), commit.
    async fn save(&self, key: &str, version: &str, data: &[u8], chunk: usize) -> u64 {
        let id = self.reserve_id(key, version).await;
        let uploads = data
            .chunks(chunk.max(1))
            .enumerate()
            .rev()
            .map(|(i, part)| {
                let offset = (i * chunk) as u64;
                let body = reqwest::Body::from(part.to_vec());
                async move { self.patch(id, offset, body, part.len() as u64).await }
            });
        for status in futures::future::join_all(uploads).await {
            assert_eq!(status, 200, "chunk upload");
        }
        let resp = self.commit(id, data.len() as u64).await;
        assert_eq!(
            resp.status(),
            200,
            "{}",
            resp.text().await.unwrap_or_default()
        );
        id
    }

    async fn download(&self, location: &str) -> Vec<u8> {
        let resp = self
            .cache
            .http
            .get(location)
            .send()
            .await
            .expect("download");
        assert_eq!(resp.status(), 200);
        resp.bytes().await.expect("body").to_vec()
    }
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn an_entry_saved_in_chunks_is_restored_by_exact_key_and_by_prefix() {
    let cache = start(1 << 30).await;
    let job = cache.job("tq-t-job-1-1-a1", &token(1), scope("acme/app", "main"));
    assert_eq!(
        job.lookup(&["linux-go-abc"], "v1").await,
        None,
        "empty cache: a miss"
    );

    let content = data(250_000, 7);
    let id = job.save("Linux-Go-abc", "v1", &content, 64 * 1024).await;

    let (location, key) = job
        .lookup(&["linux-go-abc"], "v1")
        .await
        .expect("exact hit");
    assert_eq!(key, "Linux-Go-abc", "the key as it was saved");
    assert!(
        location.ends_with(&format!("/artifacts/{id}")),
        "{location}"
    );
    assert!(
        job.download(&location).await == content,
        "the bytes saved come back"
    );

    let (prefix_location, _) = job
        .lookup(&["linux-go-zzz", "linux-go-"], "v1")
        .await
        .expect("prefix hit");
    assert_eq!(prefix_location, location);
    assert_eq!(
        job.lookup(&["linux-go-abc"], "v2").await,
        None,
        "version mismatch"
    );
    assert_eq!(job.lookup(&["windows-"], "v1").await, None, "miss");

    // The concurrent downloader: HEAD for the length, then ranges.
    let head = cache.http.head(&location).send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "250000");
    let part = cache
        .http
        .get(&location)
        .header("Range", "bytes=65530-65545")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 65530-65545/250000");
    assert_eq!(part.bytes().await.expect("part"), &content[65530..=65545]);
    let outside = cache
        .http
        .get(&location)
        .header("Range", "bytes=250000-250001")
        .send()
        .await
        .expect("range");
    assert_eq!(outside.status(), 416);

    // A committed entry takes no more chunks; a newer save of the same key wins.
    let late = job.patch(id, 0, reqwest::Body::from(vec![1u8; 4]), 4).await;
    assert_eq!(late, 400);
    let newer = data(1000, 9);
    cache.clock.advance(Duration::from_secs(1));
    job.save("linux-go-abc", "v1", &newer, 300).await;
    let (location, _) = job.lookup(&["linux-go-abc"], "v1").await.expect("hit");
    assert!(
        job.download(&location).await == newer,
        "the newer entry comes back"
    );
}

#[tokio::test]
async fn uploads_that_do_not_add_up_are_refused() {
    let cache = start(10_000).await;
    let job = cache.job("tq-t-job-2-1-a1", &token(2), scope("acme/app", "main"));
    let id = job.reserve_id("k", "v").await;
    assert_eq!(
        job.patch(id, 0, reqwest::Body::from(vec![0u8; 10]), 10)
            .await,
        200
    );
    assert_eq!(
        job.patch(id, 20, reqwest::Body::from(vec![0u8; 10]), 10)
            .await,
        200
    );
    let gap = job.commit(id, 30).await;
    assert_eq!(gap.status(), 400);
    assert!(gap
        .text()
        .await
        .expect("text")
        .contains("no data was uploaded for bytes 10..20"));
    assert_eq!(
        job.patch(id, 10, reqwest::Body::from(vec![0u8; 10]), 10)
            .await,
        200
    );
    let size = job.commit(id, 31).await;
    assert_eq!(size.status(), 400);
    assert_eq!(job.commit(id, 30).await.status(), 200);

    let big = job.reserve("big", "v", Some(20_000)).await;
    assert_eq!(big.status(), 400, "announced over the repository limit");
    let id = job.reserve_id("big", "v").await;
    assert_eq!(
        job.patch(id, 9_995, reqwest::Body::from(vec![0u8; 10]), 10)
            .await,
        400
    );
    let bad_range = cache
        .http
        .patch(job.api(&format!("caches/{id}")))
        .header("Content-Range", "bytes=0-9")
        .body(vec![0u8; 10])
        .send()
        .await
        .expect("sent");
    assert_eq!(bad_range.status(), 400);
    let short = cache
        .http
        .patch(job.api(&format!("caches/{id}")))
        .header("Content-Range", "bytes 0-9/*")
        .body(vec![0u8; 5])
        .send()
        .await
        .expect("sent");
    assert_eq!(short.status(), 400, "5 bytes sent for a 10-byte range");
}

#[tokio::test]
async fn a_job_of_one_repository_can_neither_read_nor_write_another_s_entries() {
    let cache = start(1 << 30).await;
    let a = cache.job("tq-t-job-3-1-a1", &token(3), scope("acme/a", "main"));
    let b = cache.job("tq-t-job-4-1-a1", &token(4), scope("acme/b", "main"));
    let content = data(5000, 1);
    a.save("deps-1", "v", &content, 1000).await;
    let (location, _) = a.lookup(&["deps-1"], "v").await.expect("A's own hit");

    assert_eq!(
        b.lookup(&["deps-1"], "v").await,
        None,
        "B does not see A's entry"
    );
    let stolen = location.replace(&a.url, &b.url);
    let resp = cache.http.get(&stolen).send().await.expect("sent");
    assert_eq!(resp.status(), 404, "B cannot download A's entry by id");

    let id = a.reserve_id("deps-2", "v").await;
    assert_eq!(
        b.patch(id, 0, reqwest::Body::from(vec![0u8; 4]), 4).await,
        400
    );
    assert_eq!(
        b.commit(id, 0).await.status(),
        400,
        "B cannot commit A's reservation"
    );

    // A wrong credential, a credential of another runner, or a finished job: refused.
    let wrong = Job {
        cache: &cache,
        url: model::cache::runner_url(&cache.base, "tq-t-job-3-1-a1", &token(4)),
    };
    let resp = cache
        .http
        .get(format!("{}?keys=deps-1&version=v", wrong.api("cache")))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 403);
    assert!(
        !resp.text().await.expect("text").contains(&token(4)),
        "the credential is not echoed"
    );
    let garbage = cache
        .http
        .get(format!(
            "{}/tq-t-job-3-1-a1/not-a-token/_apis/artifactcache/cache?keys=a&version=v",
            cache.base
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(garbage.status(), 403);
    cache
        .runners
        .ended
        .lock()
        .expect("lock")
        .push("tq-t-job-3-1-a1".into());
    let resp = cache.http.get(&location).send().await.expect("sent");
    assert_eq!(
        resp.status(),
        403,
        "the job ended: its credential no longer works"
    );
}

#[tokio::test]
async fn a_branch_reads_the_default_branch_but_not_the_other_way_round() {
    let cache = start(1 << 30).await;
    let main = cache.job("tq-t-job-5-1-a1", &token(5), scope("acme/app", "main"));
    let feature = cache.job("tq-t-job-6-1-a1", &token(6), scope("acme/app", "feature"));
    main.save("go-mod-1", "v", &data(100, 1), 100).await;
    feature.save("go-build-1", "v", &data(100, 2), 100).await;
    assert!(
        feature.lookup(&["go-mod-"], "v").await.is_some(),
        "a branch restores main's"
    );
    assert!(
        main.lookup(&["go-build-"], "v").await.is_none(),
        "main never sees a branch's"
    );
    let other = cache.job("tq-t-job-7-1-a1", &token(7), scope("acme/app", "other"));
    assert!(
        other.lookup(&["go-build-"], "v").await.is_none(),
        "nor does another branch"
    );
    // The feature branch's own entry wins over main's for the same key.
    main.save("shared", "v", &data(10, 3), 10).await;
    cache.clock.advance(Duration::from_secs(1));
    feature.save("shared", "v", &data(10, 4), 10).await;
    let (location, _) = feature.lookup(&["shared"], "v").await.expect("hit");
    assert!(
        feature.download(&location).await == data(10, 4),
        "the branch's own entry"
    );
}

fn policy(max: u64) -> Retention {
    Retention {
        max_repo_size: max,
        expiry: Duration::from_secs(7 * 24 * 3600),
        abandon_after: Duration::from_secs(3600),
        superseded_after: Duration::from_secs(600),
    }
}

async fn sweep_at(cache: &Cache, max: u64, ms: i64) -> SweepReport {
    sweep::sweep(&cache.service, &policy(max), ms)
        .await
        .expect("sweep")
}

fn now_ms() -> i64 {
    Timestamp::from_system(std::time::SystemTime::now()).as_millis()
}

#[tokio::test]
async fn eviction_removes_the_least_recently_used_entries_of_a_repository_over_its_limit() {
    let cache = start(1 << 30).await;
    let a = cache.job("tq-t-job-8-1-a1", &token(8), scope("acme/a", "main"));
    let b = cache.job("tq-t-job-9-1-a1", &token(9), scope("acme/b", "main"));
    for (i, key) in ["one", "two", "three"].iter().enumerate() {
        cache.clock.advance(Duration::from_secs(1));
        a.save(key, "v", &data(1000, i as u8), 1000).await;
        // Object times come from S3 in whole seconds: keep the writes apart.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    b.save("big", "v", &data(2500, 1), 1000).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        a.lookup(&["one"], "v").await.is_some(),
        "`one` is used again"
    );
    assert!(a.lookup(&["nothing"], "v").await.is_none());

    let report = sweep_at(&cache, 2500, now_ms()).await;
    assert_eq!(report.removed.len(), 1, "{:?}", report.removed);
    assert_eq!(report.removed[0].1, Eviction::OverLimit);
    assert!(
        a.lookup(&["two"], "v").await.is_none(),
        "the least recently used went"
    );
    assert!(a.lookup(&["one"], "v").await.is_some());
    assert!(a.lookup(&["three"], "v").await.is_some());
    assert!(
        b.lookup(&["big"], "v").await.is_some(),
        "B's entries count apart"
    );
    let usage = &report.stats.repos["acme/a"];
    assert_eq!((usage.entries, usage.bytes), (2, 2000));
    assert_eq!((usage.hits, usage.misses), (1, 1));

    // Unused for longer than the expiry, everything goes; an abandoned upload too.
    let pending = a.reserve_id("never", "v").await;
    assert_eq!(
        a.patch(pending, 0, reqwest::Body::from(vec![0u8; 8]), 8)
            .await,
        200
    );
    let later = now_ms() + 8 * 24 * 3600 * 1000;
    let report = sweep_at(&cache, 2500, later).await;
    let mut why: Vec<Eviction> = report.removed.iter().map(|(_, w)| *w).collect();
    why.sort();
    assert_eq!(
        why,
        [
            Eviction::Expired,
            Eviction::Expired,
            Eviction::Expired,
            Eviction::Abandoned
        ]
    );
    let left = cache.service.blobs().list("ci/").await.expect("list");
    assert_eq!(
        left.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["ci/stats.json"],
        "nothing of the removed entries is left"
    );
    let stats = sweep::read_stats(cache.service.blobs(), cache.service.layout())
        .await
        .expect("read")
        .expect("written");
    let a_usage = &stats.repos["acme/a"];
    assert_eq!(
        (a_usage.hits, a_usage.misses, a_usage.entries),
        (3, 2, 0),
        "counts survive the entries"
    );
}

/// The process's resident memory in bytes (Linux `VmRSS`).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Samples resident memory every few milliseconds until stopped; returns the peak.
fn watch_peak() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(resident_bytes());
            std::thread::sleep(Duration::from_millis(5));
        }
        peak.max(resident_bytes())
    });
    (stop, handle)
}

fn generated(len: u64, seed: u64) -> reqwest::Body {
    reqwest::Body::wrap(Pattern {
        at: 0,
        end: len,
        seed,
    })
}

#[tokio::test]
async fn a_large_entry_streams_through_with_memory_bounded() {
    const SIZE: u64 = 128 << 20;
    const CHUNK: u64 = 32 << 20;
    let cache = start(1 << 30).await;
    let job = cache.job("tq-t-job-10-1-a1", &token(10), scope("acme/big", "main"));
    // Warm up the clients and the service with a small entry first.
    job.save("warm", "v", &data(1000, 1), 1000).await;

    let before = resident_bytes();
    let (stop, peak) = watch_peak();
    let id = job.reserve_id("large", "v").await;
    for (i, offset) in (0..SIZE).step_by(CHUNK as usize).enumerate() {
        let status = job
            .patch(id, offset, generated(CHUNK, i as u64), CHUNK)
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(job.commit(id, SIZE).await.status(), 200);
    let (location, _) = job.lookup(&["large"], "v").await.expect("hit");
    let resp = cache.http.get(&location).send().await.expect("download");
    assert_eq!(resp.headers()["content-length"], SIZE.to_string().as_str());
    let mut resp = resp;
    let mut total = 0u64;
    let mut wrong = 0u64;
    while let Some(piece) = resp.chunk().await.expect("piece") {
        for (i, b) in piece.iter().enumerate() {
            let at = total + i as u64;
            if *b != byte_at(at % CHUNK, at / CHUNK) {
                wrong += 1;
            }
        }
        total += piece.len() as u64;
    }
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().expect("watcher");
    assert_eq!(total, SIZE);
    assert_eq!(wrong, 0, "every byte comes back where it was uploaded");
    let grown = peak.saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "resident memory grew by {} MiB moving a {} MiB entry in {} MiB chunks",
        grown >> 20,
        SIZE >> 20,
        CHUNK >> 20
    );
}

/// The `in_progress` webhook lands while the request is held: the request is answered as
/// any other, not with the 503 that would cost the job its one retry, 5 s later.
#[tokio::test]
async fn a_request_held_while_the_job_is_not_known_is_answered_once_it_is() {
    let cache = start(model::cache::DEFAULT_MAX_REPO_SIZE).await;
    let runner = "tq-t-job-8-1-a1";
    cache.runners.not_known_yet(runner);
    let runners = cache.runners.clone();
    let webhook = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        runners.add(runner, &token(8), scope("org/app", "main"));
        runners.waiting.lock().expect("lock").clear();
    });
    let resp = cache.lookup_deps(runner, &token(8)).await;
    webhook.await.expect("webhook");
    assert_eq!(resp.status(), 204, "a miss for a known job, not a 503");
}

#[tokio::test]
async fn a_runner_whose_job_is_not_known_yet_is_asked_to_retry_not_refused() {
    let cache = start(model::cache::DEFAULT_MAX_REPO_SIZE).await;
    let runner = "tq-t-job-9-1-a1";
    cache.runners.not_known_yet(runner);
    let resp = cache.lookup_deps(runner, &token(9)).await;
    assert_eq!(resp.status(), 503, "actions/cache retries a 503");
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    assert!(!resp.text().await.expect("text").contains(&token(9)));
}
