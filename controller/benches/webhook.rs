//! Load on the webhook receiver: 1,000 signed `workflow_job` deliveries sent at once to the
//! receiver on 127.0.0.1, then the same 1,000 again (redelivery), then 1,000 more while the
//! store is down (all spooled, then replayed). Prints the time of each round and the latency
//! spread, and fails unless every job is stored exactly once.
//!
//! Run: `make bench-webhook` (or `cargo bench -p tinqs-ci --bench webhook --profile dev`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use controller::spool::Spool;
use controller::store::fake::FakeStore;
use controller::store::Store;
use controller::webhook::{self, replay_spool_once, WebhookState};
use model::config::DemandSource;
use model::secret::Secret;
use tokio::sync::Notify;

#[path = "support/ports.rs"]
mod ports;

const DELIVERIES: i64 = 1_000;
const SECRET: &str = "bench-webhook-secret";

/// Sends jobs `first..first + DELIVERIES` at once; returns the statuses and latencies.
async fn round(
    http: &reqwest::Client,
    url: &str,
    first: i64,
) -> (Duration, Vec<u16>, Vec<Duration>) {
    let started = Instant::now();
    let sends = (first..first + DELIVERIES).map(|job| {
        let http = http.clone();
        let url = url.to_owned();
        async move {
            ports::deliver(
                &http,
                &url,
                SECRET,
                job,
                ports::queued_body(job, "acme/web"),
            )
            .await
        }
    });
    let results = futures::future::join_all(sends).await;
    let took = started.elapsed();
    let (statuses, mut latencies): (Vec<u16>, Vec<Duration>) = results.into_iter().unzip();
    latencies.sort();
    (took, statuses, latencies)
}

fn report(name: &str, took: Duration, statuses: &[u16], latencies: &[Duration]) {
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    let mut counts = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_insert(0usize) += 1;
    }
    println!(
        "webhook {name}: {} deliveries in {} ms ({:.0}/s); latency p50 {} ms, p99 {} ms, max {} ms; statuses {counts:?}",
        statuses.len(),
        took.as_millis(),
        statuses.len() as f64 / took.as_secs_f64().max(1e-9),
        pct(50).as_millis(),
        pct(99).as_millis(),
        latencies.last().copied().unwrap_or_default().as_millis(),
    );
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
            eprintln!("webhook bench FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let store = Arc::new(FakeStore::new());
    let spool_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spool = Arc::new(Spool::open(spool_dir.path()).map_err(|e| e.to_string())?);
    let state = WebhookState::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Secret::new(SECRET),
        DemandSource::Jobs,
        Arc::new(Notify::new()),
        spool,
        None,
    )
    .map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = webhook::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let url = format!("http://{addr}{}", webhook::HOOK_PATH);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(DELIVERIES).unwrap_or(1000))
        .build()
        .map_err(|e| e.to_string())?;
    let expect = usize::try_from(DELIVERIES).unwrap_or(0);

    let (took, statuses, latencies) = round(&http, &url, 1).await;
    report("fresh", took, &statuses, &latencies);
    let stored = store.runs().len();
    if statuses.iter().any(|s| *s != 200) || stored != expect {
        return Err(format!(
            "fresh round: {stored} runs stored, want {expect}; statuses must all be 200"
        ));
    }

    let (took, statuses, latencies) = round(&http, &url, 1).await;
    report("redelivered", took, &statuses, &latencies);
    let stored = store.runs().len();
    if statuses.iter().any(|s| *s != 200) || stored != expect {
        return Err(format!(
            "redelivery round: {stored} runs stored, want still {expect}"
        ));
    }

    store.set_unavailable(true);
    let (took, statuses, latencies) = round(&http, &url, DELIVERIES + 1).await;
    report("store down (spooled)", took, &statuses, &latencies);
    if statuses.iter().any(|s| *s != 202) {
        return Err("store-down round: every delivery must be answered 202 (spooled)".into());
    }
    store.set_unavailable(false);
    let started = Instant::now();
    let replay = replay_spool_once(&state).await.map_err(|e| e.to_string())?;
    println!(
        "webhook spool replay: {} events in {} ms ({} left, {} set aside)",
        replay.replayed,
        started.elapsed().as_millis(),
        replay.remaining,
        replay.quarantined
    );
    let stored = store.runs().len();
    if stored != 2 * expect || replay.replayed != expect {
        return Err(format!(
            "after replay: {stored} runs stored, want {}",
            2 * expect
        ));
    }
    println!("webhook bench ok: {stored} runs, each stored once");
    Ok(())
}
