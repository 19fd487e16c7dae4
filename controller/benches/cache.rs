//! Throughput of the actions cache service on 127.0.0.1 against moto's S3, and the service's
//! memory while moving one large entry: reserve, upload in 32 MiB chunks four at a time (as
//! the toolkit does), commit, look up, download whole. Prints one line per direction and the
//! peak growth of resident memory, and fails if a byte comes back wrong.
//!
//! Run: `make bench-cache` (1 GiB; `TINQS_CACHE_BENCH_MIB` sets the size). moto keeps what it
//! stores, so this measures the service and moto together, on one machine.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use controller::cache::blobs::Blobs;
use controller::cache::pattern::{byte_at, Pattern};
use controller::cache::{router, Access, CacheService, Denied, Settings};
use controller::clock::SystemClock;
use controller::http::HttpLimits;
use controller::metrics::Metrics;
use model::cache::JobScope;
use tokio::net::TcpListener;

const CHUNK: u64 = 32 << 20;
const PARALLEL: usize = 4;

/// Every request is the one bench job's.
struct OneJob;

#[async_trait]
impl Access for OneJob {
    async fn resolve(&self, _runner: &str, _token: &str) -> Result<JobScope, Denied> {
        Ok(JobScope::of_job(
            "bench/repo",
            Some("main"),
            Some("main"),
            None,
            1,
        ))
    }
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

fn mib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / took.as_secs_f64().max(1e-9)
}

async fn run() -> Result<(), String> {
    let size: u64 = std::env::var("TINQS_CACHE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
        << 20;
    let conf = controller::aws::moto::config()
        .await
        .map_err(|e| format!("{e} (`make bench-cache` starts moto)"))?;
    let bucket = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let blobs = Blobs::from_conf(&conf, &bucket);
    blobs.ensure_bucket().await.map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let service = CacheService::new(
        blobs,
        Arc::new(OneJob),
        Settings {
            url: base.clone(),
            prefix: String::new(),
            max_repo_size: 16 << 30,
            hold_unknown_job: controller::cache::HOLD_UNKNOWN_JOB,
        },
        Metrics::new(),
        Arc::new(SystemClock),
    );
    let limits = HttpLimits {
        max_connections: 64,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(900),
        max_body_bytes: 0,
    };
    let app = router(service);
    tokio::spawn(async move {
        let _ =
            controller::http::serve_streaming(listener, app, limits, std::future::pending()).await;
    });
    let url = model::cache::runner_url(&base, "tq-bench-job-1-1-a1", &"ab".repeat(32));
    let api = |r: &str| format!("{url}_apis/artifactcache/{r}");
    let http = reqwest::Client::new();

    let before = resident_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(resident_bytes());
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };

    let reserved: serde_json::Value = http
        .post(api("caches"))
        .json(&serde_json::json!({"key": "bench-1", "version": "v"}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let id = reserved["cacheId"].as_u64().ok_or("no cacheId")?;
    let started = Instant::now();
    let offsets: Vec<u64> = (0..size)
        .step_by(usize::try_from(CHUNK).unwrap_or(1))
        .collect();
    for group in offsets.chunks(PARALLEL) {
        let sends = group.iter().map(|&offset| {
            let end = (offset + CHUNK).min(size);
            let req = http
                .patch(api(&format!("caches/{id}")))
                .header("Content-Range", format!("bytes {offset}-{}/*", end - 1))
                .header("Content-Length", end - offset)
                .body(reqwest::Body::wrap(Pattern {
                    at: offset,
                    end,
                    seed: 0,
                }));
            async move { req.send().await.map(|r| r.status().as_u16()) }
        });
        for status in futures::future::join_all(sends).await {
            let status = status.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("a chunk upload answered {status}"));
            }
        }
    }
    let commit = http
        .post(api(&format!("caches/{id}")))
        .json(&serde_json::json!({"size": size}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if commit.status() != 200 {
        return Err(format!("commit answered {}", commit.status()));
    }
    let up = started.elapsed();

    let found: serde_json::Value = http
        .get(format!("{}?keys=bench-1&version=v", api("cache")))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let location = found["archiveLocation"]
        .as_str()
        .ok_or("no hit")?
        .to_owned();
    let started = Instant::now();
    let mut resp = http.get(location).send().await.map_err(|e| e.to_string())?;
    let (mut total, mut wrong) = (0u64, 0u64);
    while let Some(piece) = resp.chunk().await.map_err(|e| e.to_string())? {
        for (i, b) in piece.iter().enumerate() {
            if *b != byte_at(total + i as u64, 0) {
                wrong += 1;
            }
        }
        total += piece.len() as u64;
    }
    let down = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = watcher.join().map_err(|_| "memory watcher failed")?;

    println!(
        "cache upload: {} MiB in {:.1} s ({:.0} MiB/s), {} chunks of {} MiB, {PARALLEL} at a time",
        size >> 20,
        up.as_secs_f64(),
        mib_per_s(size, up),
        offsets.len(),
        CHUNK >> 20
    );
    println!(
        "cache download: {} MiB in {:.1} s ({:.0} MiB/s)",
        total >> 20,
        down.as_secs_f64(),
        mib_per_s(total, down)
    );
    println!(
        "cache memory: resident {} MiB before, peak {} MiB (+{} MiB) while moving {} MiB",
        before >> 20,
        peak >> 20,
        peak.saturating_sub(before) >> 20,
        size >> 20
    );
    if total != size || wrong != 0 {
        return Err(format!("{total} bytes came back, {wrong} of them wrong"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cache bench FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
