//! The controller's figures for `make bench`, one line each (`<name>: <value> <unit>`),
//! appended with `--json <path>` to the JSON list the planning benchmark wrote:
//!
//! - `webhook ingest`: signed `workflow_job` deliveries per second through the real receiver
//!   (router, HTTP limits, signature check) into the in-memory store on 127.0.0.1, with the
//!   latency of each delivery (p50, p99). Fails unless every job is stored exactly once.
//! - `webhook to launch`: from a `queued` webhook answered to RunInstances issued, through
//!   the real loop (`Reconciler::run`, woken by the receiver) over the in-memory store, fleet
//!   and forge, each adding [`DELAY`] per call. The figure is the controller's own time: the
//!   [`ON_PATH`] calls one launch makes one after another are subtracted.
//! - `pass 10000`: one observe-and-plan pass (nothing applied) over 10,000 active runs with the
//!   in-memory ports, and the API calls the real ports would make for it (list pages and calls
//!   per object).
//!
//! Run with `make bench`; under `cargo test --benches` (no `--bench` argument) it runs a
//! small smoke version of each.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use controller::clock::SystemClock;
use controller::fleet::fake::FakeFleet;
use controller::forge::fake::ForgeMethod;
use controller::forge::FakeForge;
use controller::reconcile::Mode;
use controller::spool::Spool;
use controller::store::fake::{FakeStore, StoreOp};
use controller::store::Store;
use controller::webhook::{self, WebhookState};
use model::config::DemandSource;
use model::secret::Secret;
use model::{RunId, Timestamp};
use tokio::sync::Notify;

#[path = "support/ports.rs"]
mod ports;
use ports::{quantile, Figures, Slow};

const SECRET: &str = "bench-webhook-secret-0123456789";

/// The latency each in-memory port adds to every call in `webhook to launch`.
const DELAY: Duration = Duration::from_millis(2);

/// Port calls one launch makes one after another, from the pass that sees its run to
/// RunInstances: renew the lease, observe (the table, EC2 and Gitea read at once: one round
/// trip), claim the run, register its runner, record the runner id.
const ON_PATH: u32 = 5;

struct Sizes {
    ingest: i64,
    ingest_concurrency: usize,
    bursts: i64,
    burst: i64,
    burst_gap: Duration,
    pass_runs: usize,
}

const FULL: Sizes = Sizes {
    ingest: 10_000,
    ingest_concurrency: 32,
    bursts: 20,
    burst: 50,
    burst_gap: Duration::from_millis(250),
    pass_runs: 10_000,
};

const SMOKE: Sizes = Sizes {
    ingest: 200,
    ingest_concurrency: 8,
    bursts: 2,
    burst: 10,
    burst_gap: Duration::from_millis(50),
    pass_runs: 300,
};

/// Sends one signed `queued` delivery of `job`; returns its HTTP status and latency.
async fn deliver(http: &reqwest::Client, url: &str, job: i64) -> (u16, Duration) {
    ports::deliver(http, url, SECRET, job, ports::queued_body(job, "acme/app")).await
}

/// The receiver as `serve` runs it, on 127.0.0.1; returns its URL.
async fn receiver(store: Arc<dyn Store>, wake: Arc<Notify>) -> Result<String, String> {
    let spool_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spool = Arc::new(Spool::open(spool_dir.path()).map_err(|e| e.to_string())?);
    // The spool directory must outlive the server: leak the guard for the process's life.
    std::mem::forget(spool_dir);
    let state = WebhookState::new(
        store,
        Secret::new(SECRET),
        DemandSource::Jobs,
        wake,
        spool,
        None,
    )
    .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let limits = controller::http::HttpLimits::of(&ports::config(10, 10).server);
    tokio::spawn(controller::http::serve(
        listener,
        webhook::router(state),
        limits,
        std::future::pending(),
    ));
    Ok(format!("http://{addr}{}", webhook::HOOK_PATH))
}

fn client(connections: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .map_err(|e| e.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `webhook ingest`: `sizes.ingest` deliveries, `sizes.ingest_concurrency` at a time.
async fn ingest(sizes: &Sizes, figures: &mut Figures) -> Result<(), String> {
    let store = Arc::new(FakeStore::new());
    let url = receiver(store.clone(), Arc::new(Notify::new())).await?;
    let http = client(sizes.ingest_concurrency)?;
    // Connections opened and the code paths warmed before timing.
    for job in 0..i64::try_from(sizes.ingest_concurrency).unwrap_or(1) {
        deliver(&http, &url, 1_000_000 + job).await;
    }
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicI64::new(1));
    let workers = (0..sizes.ingest_concurrency).map(|_| {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        let last = sizes.ingest;
        tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if job > last {
                    return out;
                }
                out.push(deliver(&http, &url, job).await);
            }
        })
    });
    let mut results = Vec::new();
    for w in futures::future::join_all(workers).await {
        results.extend(w.map_err(|e| e.to_string())?);
    }
    let took = started.elapsed();
    let failed = results.iter().filter(|(s, _)| *s != 200).count();
    let stored = store.runs().len();
    let want = usize::try_from(sizes.ingest).unwrap_or(0) + sizes.ingest_concurrency;
    if failed > 0 || stored != want {
        return Err(format!(
            "webhook ingest: {failed} deliveries not answered 200; {stored} runs stored, want {want} (each job once)"
        ));
    }
    let mut latencies: Vec<f64> = results.iter().map(|(_, d)| ms(*d)).collect();
    latencies.sort_by(f64::total_cmp);
    figures.add(
        "webhook ingest",
        results.len() as f64 / took.as_secs_f64().max(1e-9),
        "deliveries/s",
    );
    figures.add("webhook ingest p50", quantile(&latencies, 0.50), "ms");
    figures.add("webhook ingest p99", quantile(&latencies, 0.99), "ms");
    Ok(())
}

/// `webhook to launch`: bursts of `queued` webhooks into a running loop.
async fn to_launch(sizes: &Sizes, figures: &mut Figures) -> Result<(), String> {
    let total = sizes.bursts * sizes.burst;
    let capacity = u32::try_from(total).unwrap_or(u32::MAX).saturating_mul(2);
    let config = ports::config(capacity, capacity);
    let now = Timestamp::from_system(std::time::SystemTime::now());
    let forge = Arc::new(FakeForge::new());
    let store = Arc::new(Slow::new(Arc::new(FakeStore::new()), DELAY));
    let fleet = Arc::new(Slow::new(
        Arc::new(FakeFleet::new(&config.cluster_id, now)),
        DELAY,
    ));
    let launches = fleet.launches();
    let reconciler = ports::reconciler(
        config,
        store.clone(),
        fleet,
        Arc::new(Slow::new(forge.clone(), DELAY)),
        Arc::new(SystemClock),
    );
    let wake = Arc::new(Notify::new());
    let url = receiver(store, wake.clone()).await?;
    let http = client(usize::try_from(sizes.burst).unwrap_or(1))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let looping = tokio::spawn(async move {
        reconciler
            .run(wake, async {
                let _ = stop_rx.await;
            })
            .await;
    });

    let mut accepted: Vec<(RunId, Instant)> = Vec::new();
    for b in 0..sizes.bursts {
        let jobs: Vec<i64> = (0..sizes.burst).map(|k| b * sizes.burst + k + 1).collect();
        for &job in &jobs {
            // Gitea lists the job as queued before it sends the webhook.
            forge.queue_job(model::testing::queued(job, &["go", "linux"]));
        }
        let sends = jobs.iter().map(|&job| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let (status, _) = deliver(&http, &url, job).await;
                (job, status, Instant::now())
            }
        });
        for (job, status, at) in futures::future::join_all(sends).await {
            if status != 200 {
                return Err(format!("webhook to launch: job {job} answered {status}"));
            }
            accepted.push((RunId::for_job(job, 1), at));
        }
        tokio::time::sleep(sizes.burst_gap).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while launches.len() < accepted.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    let _ = looping.await;
    let path = ms(DELAY) * f64::from(ON_PATH);
    let mut own = Vec::with_capacity(accepted.len());
    for (run, at) in &accepted {
        let Some(launched) = launches.at(run) else {
            return Err(format!(
                "webhook to launch: run {run} was never launched ({} of {} were)",
                launches.len(),
                accepted.len()
            ));
        };
        own.push((ms(launched.saturating_duration_since(*at)) - path).max(0.0));
    }
    own.sort_by(f64::total_cmp);
    figures.add("webhook to launch p50", quantile(&own, 0.50), "ms");
    figures.add("webhook to launch p99", quantile(&own, 0.99), "ms");
    Ok(())
}

/// `pass 10000`: observe and plan over a busy world, nothing applied.
async fn pass(sizes: &Sizes, figures: &mut Figures) -> Result<(), String> {
    let n = sizes.pass_runs;
    let (store, fleet, forge, clock) = ports::busy_world(n);
    let config = ports::config(u32::try_from(n * 2).unwrap_or(u32::MAX), 20);
    let r = ports::reconciler(
        config,
        store.clone(),
        fleet.clone(),
        forge.clone(),
        ports::fixed_clock(&clock),
    );
    // One untimed pass, then the median of five.
    let first = r.pass(Mode::DryRun, None).await;
    if !first.observation.is_complete() || first.observation.desired.runs.len() != n {
        return Err(format!(
            "pass {n}: the pass did not see the world whole ({} runs, errors {:?})",
            first.observation.desired.runs.len(),
            first.observation.errors
        ));
    }
    let runs_bytes: usize = first
        .observation
        .desired
        .runs
        .iter()
        .map(|run| serde_json::to_vec(run).map_or(0, |v| v.len()))
        .sum();
    let instances = first.observation.observed.instances.items().len();
    let runners = first.observation.observed.runners.items().len();
    let queued = first.observation.observed.queued_jobs.items().len();
    let (store_gets, runner_reads, job_reads) = (
        store.count(StoreOp::Get),
        forge.calls_to(ForgeMethod::GetRunner),
        forge.calls_to(ForgeMethod::GetJob),
    );
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let out = r.pass(Mode::DryRun, None).await;
        times.push(ms(started.elapsed()));
        drop(out);
    }
    times.sort_by(f64::total_cmp);
    // The real ports read in pages: DynamoDB up to 1 MB of items per Query page (the JSON of
    // a run stands in for its item size), DescribeInstances 1,000 instances, Gitea 50 runners
    // or jobs per page. Reads of single objects are counted as the fakes saw them.
    let pages = |items: usize, per: usize| items.div_ceil(per).max(1);
    let calls = pages(runs_bytes, 1 << 20)
        + pages(instances, 1000)
        + pages(runners, 50)
        + pages(queued, 50)
        + store_gets
        + runner_reads
        + job_reads;
    figures.add(&format!("pass {n}"), quantile(&times, 0.5), "ms");
    figures.add(&format!("pass {n} api calls"), calls as f64, "calls");
    println!(
        "  (pages: DynamoDB {}, EC2 {}, Gitea runners {}, Gitea queued jobs {}; single reads: runs {store_gets}, runners {runner_reads}, jobs {job_reads})",
        pages(runs_bytes, 1 << 20),
        pages(instances, 1000),
        pages(runners, 50),
        pages(queued, 50)
    );
    Ok(())
}

fn main() -> ExitCode {
    let (json, full) = ports::args();
    let sizes = if full { &FULL } else { &SMOKE };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut figures = Figures::default();
    let result = runtime.block_on(async {
        ingest(sizes, &mut figures).await?;
        to_launch(sizes, &mut figures).await?;
        pass(sizes, &mut figures).await
    });
    if let Err(e) = result {
        eprintln!("bench FAILED: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(path) = json {
        if let Err(e) = figures.append_to(&path) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
