//! Shared by the benchmark binaries: the in-memory ports with a fixed latency added to every
//! call, a record of when each RunInstances was issued, and a busy world of active runs.

#![allow(dead_code)] // each benchmark binary uses part of this

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use controller::clock::{Clock, ManualClock};
use controller::fleet::fake::FakeFleet;
use controller::fleet::{Fleet, FleetError, LaunchRequest, Offering};
use controller::forge::{FakeForge, Forge, ForgeError, ForgeVersion, RegisteredRunner, RepoFile};
use controller::metrics::Metrics;
use controller::reconcile::{Limits, LoopFeatures, Reconciler};
use controller::store::fake::FakeStore;
use controller::store::{Lease, Store, StoreError};
use model::cache::{RunnerJob, RunnerRecord};
use model::config::Config;
use model::desired::{DesiredRun, JobState, RunStatus};
use model::observed::{DesiredView, ForgeRunner, Instance, InstanceState, JobSeen, QueuedJob};
use model::secret::Secret;
use model::{InstanceId, RunId, RunnerName, Timestamp};
use parking_lot::Mutex;

/// The example configuration with the test cluster id, the caps raised to `capacity` and
/// launches per pass raised to `launches` (an operator sizes these for the load).
#[must_use]
pub fn config(capacity: u32, launches: u32) -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config.yaml"
    ))
    .expect("the example configuration is readable");
    let mut c = Config::parse(&text).expect("the example configuration is valid");
    c.cluster_id = model::testing::CLUSTER.into();
    c.safety.max_instances = capacity;
    c.safety.max_launches_per_pass = launches;
    for pool in c.pools.values_mut() {
        pool.max_instances = capacity;
    }
    c
}

/// A reconciler over `store`, `fleet` and `forge` (Gitea 1.26: queued-jobs list, disable).
#[must_use]
pub fn reconciler(
    config: Config,
    store: Arc<dyn Store>,
    fleet: Arc<dyn Fleet>,
    forge: Arc<dyn Forge>,
    clock: Arc<dyn Clock>,
) -> Reconciler {
    Reconciler {
        store,
        fleet,
        forge,
        config,
        features: LoopFeatures {
            queued_jobs: true,
            disable_runners: true,
        },
        clock,
        limits: Limits::default(),
        metrics: Metrics::new(),
        holder: "bench".into(),
        notices: controller::notices::NoticeBook::default(),
        disabled: controller::reconcile::DisabledBook::default(),
    }
}

/// A table, EC2 and Gitea holding `n` active runs: a sixth pending with their job queued, the
/// rest running their job on their own instance with a registered runner; and a clock.
pub fn busy_world(n: usize) -> (Arc<FakeStore>, Arc<FakeFleet>, Arc<FakeForge>, ManualClock) {
    let now = model::testing::at(600);
    let store = Arc::new(FakeStore::new());
    let fleet = Arc::new(FakeFleet::new(model::testing::CLUSTER, now));
    let forge = Arc::new(FakeForge::new());
    for k in 0..n {
        let job = i64::try_from(k).unwrap_or(i64::MAX) + 1;
        let labels: &[&str] = if k % 2 == 0 { &["go"] } else { &["docker"] };
        let mut run = model::testing::job_run(job, labels);
        if k % 6 == 0 {
            forge.queue_job(model::testing::queued(job, labels));
            store.put_row(run);
            continue;
        }
        let id = format!("i-{job:017x}");
        let launched = model::testing::at(60 + (k as u64 % 300));
        run = model::testing::running(run, &id, launched);
        let name = model::testing::name_of(&run);
        let runner = forge.add_runner(name.as_str(), &[labels[0], "linux"], true);
        // Its runner took the job (the `in_progress` webhook said so); Gitea's busy flag
        // shows it for most.
        forge.set_busy(runner, k % 6 != 5);
        run.spec.job_state = JobState::InProgress {
            runner: Some(name.to_string()),
        };
        run.status.runner_id = Some(runner);
        run.status.registered_at = Some(launched.plus(Duration::from_secs(30)));
        fleet.insert(model::testing::instance_for(
            &run,
            &id,
            labels[0],
            InstanceState::Running,
            launched,
        ));
        store.put_row(run);
    }
    (store, fleet, forge, ManualClock::new(now))
}

/// When each launch (RunInstances) was issued, by run.
#[derive(Debug, Default, Clone)]
pub struct Launches(Arc<Mutex<HashMap<RunId, Instant>>>);

impl Launches {
    fn record(&self, run: &RunId) {
        self.0
            .lock()
            .entry(run.clone())
            .or_insert_with(Instant::now);
    }

    /// When `run`'s first launch was issued.
    #[must_use]
    pub fn at(&self, run: &RunId) -> Option<Instant> {
        self.0.lock().get(run).copied()
    }

    /// How many runs had a launch issued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }
}

/// A port that waits `delay` before each call, as a network round trip would.
pub struct Slow<T: ?Sized> {
    inner: Arc<T>,
    delay: Duration,
    launches: Launches,
}

impl<T: ?Sized> Slow<T> {
    /// `inner` with `delay` before every call.
    pub fn new(inner: Arc<T>, delay: Duration) -> Self {
        Slow {
            inner,
            delay,
            launches: Launches::default(),
        }
    }

    /// The record of launches (for a fleet).
    #[must_use]
    pub fn launches(&self) -> Launches {
        self.launches.clone()
    }

    async fn wait(&self) {
        tokio::time::sleep(self.delay).await;
    }
}

#[async_trait]
impl<T: Store + ?Sized> Store for Slow<T> {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        self.wait().await;
        self.inner.list_active().await
    }
    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError> {
        self.wait().await;
        self.inner.get(id).await
    }
    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError> {
        self.wait().await;
        self.inner.create(run).await
    }
    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError> {
        self.wait().await;
        self.inner.set_job_state(id, state).await
    }
    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError> {
        self.wait().await;
        self.inner.set_cancel(id, cancel).await
    }
    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError> {
        self.wait().await;
        self.inner
            .write_status(id, expected_version, status, lease)
            .await
    }
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.wait().await;
        self.inner.acquire_lease(holder, ttl, now).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.wait().await;
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.wait().await;
        self.inner.release_lease(lease).await
    }
    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.wait().await;
        self.inner
            .set_runner_credential(runner, hash, expires)
            .await
    }
    async fn set_runner_job(
        &self,
        runner: &str,
        job: &RunnerJob,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.wait().await;
        self.inner.set_runner_job(runner, job, expires).await
    }
    async fn runner_record(&self, runner: &str) -> Result<Option<RunnerRecord>, StoreError> {
        self.wait().await;
        self.inner.runner_record(runner).await
    }
}

#[async_trait]
impl<T: Fleet + ?Sized> Fleet for Slow<T> {
    async fn list(&self) -> Result<Vec<Instance>, FleetError> {
        self.wait().await;
        self.inner.list().await
    }
    async fn launch(&self, req: &LaunchRequest) -> Result<(Instance, Offering), FleetError> {
        // Issued now: the round trip follows.
        self.launches.record(&req.run);
        self.wait().await;
        self.inner.launch(req).await
    }
    async fn terminate(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        self.wait().await;
        self.inner.terminate(ids).await
    }
}

#[async_trait]
impl<T: Forge + ?Sized> Forge for Slow<T> {
    async fn version(&self) -> Result<ForgeVersion, ForgeError> {
        self.wait().await;
        self.inner.version().await
    }
    async fn list_runners(&self) -> Result<Vec<ForgeRunner>, ForgeError> {
        self.wait().await;
        self.inner.list_runners().await
    }
    async fn get_runner(&self, id: i64) -> Result<Option<ForgeRunner>, ForgeError> {
        self.wait().await;
        self.inner.get_runner(id).await
    }
    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.wait().await;
        self.inner.delete_runner(id).await
    }
    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.wait().await;
        self.inner.disable_runner(id).await
    }
    async fn registration_token(&self) -> Result<Secret, ForgeError> {
        self.wait().await;
        self.inner.registration_token().await
    }
    async fn register_runner(
        &self,
        name: &RunnerName,
        labels: &[String],
    ) -> Result<RegisteredRunner, ForgeError> {
        self.wait().await;
        self.inner.register_runner(name, labels).await
    }
    async fn get_job(&self, repo: &str, id: i64) -> Result<JobSeen, ForgeError> {
        self.wait().await;
        self.inner.get_job(repo, id).await
    }
    async fn queued_jobs(&self) -> Result<Vec<QueuedJob>, ForgeError> {
        self.wait().await;
        self.inner.queued_jobs().await
    }
    async fn workflow_files(&self, repo: &str, commit: &str) -> Result<Vec<RepoFile>, ForgeError> {
        self.wait().await;
        self.inner.workflow_files(repo, commit).await
    }
    async fn changed_files(
        &self,
        repo: &str,
        before: &str,
        after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        self.wait().await;
        self.inner.changed_files(repo, before, after).await
    }
}

/// A `workflow_job` `queued` delivery for a new Gitea job `job` of `repo` asking for go and
/// linux, as Gitea 1.24 – 1.26 send it (`run_attempt` 0 until a runner picks the job: the
/// run is `job-<job>-1`).
#[must_use]
pub fn queued_body(job: i64, repo: &str) -> String {
    serde_json::json!({
        "action": "queued",
        "workflow_job": {
            "id": job, "run_id": job / 4 + 1, "run_attempt": 0, "name": format!("job {job}"),
            "labels": ["go", "linux"], "status": "queued",
            "url": format!("http://gitea.test/api/v1/repos/{repo}/actions/jobs/{job}"),
        },
        "repository": { "full_name": repo },
    })
    .to_string()
}

/// Posts `payload` for `job` to the receiver at `url`, signed with `secret` as Gitea signs;
/// returns the HTTP status (0 when no answer came) and the time to the answer.
pub async fn deliver(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    job: i64,
    payload: String,
) -> (u16, Duration) {
    let signature = controller::webhook::sign(&Secret::new(secret), payload.as_bytes());
    let started = Instant::now();
    let status = http
        .post(url)
        .header("content-type", "application/json")
        .header("X-Gitea-Event", "workflow_job")
        .header("X-Gitea-Delivery", format!("bench-{job}"))
        .header("X-Gitea-Signature", signature)
        .body(payload)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    (status, started.elapsed())
}

/// The command line of a figures benchmark: `--json <path>` and whether `cargo bench` ran it
/// (`--bench`: full sizes) rather than `cargo test` (a smoke run).
#[must_use]
pub fn args() -> (Option<String>, bool) {
    let mut args = std::env::args().skip(1);
    let (mut json, mut full) = (None, false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => json = args.next(),
            "--bench" => full = true,
            _ => {}
        }
    }
    (json, full)
}

/// The resident memory of this process (VmRSS), in bytes.
///
/// # Errors
/// When `/proc/self/status` cannot be read or has no VmRSS line.
pub fn resident_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("/proc/self/status has no VmRSS line")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .map_err(|e| format!("VmRSS is not a number ({line}): {e}"))?;
    Ok(kib * 1024)
}

/// One figure line, `<name>: <value> <unit>`, printed and kept for the JSON file.
#[derive(Debug, Default)]
pub struct Figures(Vec<serde_json::Value>);

impl Figures {
    /// Prints and records a figure, rounded to one decimal.
    pub fn add(&mut self, name: &str, value: f64, unit: &str) {
        let value = (value * 10.0).round() / 10.0;
        println!("{name}: {value:.1} {unit}");
        self.0
            .push(serde_json::json!({"name": name, "value": value, "unit": unit}));
    }

    /// Appends the figures to the JSON list at `path` (made by the planning benchmark), or
    /// starts one.
    ///
    /// # Errors
    /// When the file cannot be read, parsed or written.
    pub fn append_to(&self, path: &str) -> Result<(), String> {
        let mut all: Vec<serde_json::Value> = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{path} is not a JSON list of figures: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {path}: {e}")),
        };
        let names: Vec<&str> = self.0.iter().filter_map(|f| f["name"].as_str()).collect();
        all.retain(|f| !f["name"].as_str().is_some_and(|n| names.contains(&n)));
        all.extend(self.0.iter().cloned());
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {path}: {e}"))
    }
}

/// The `q`-th quantile (0 to 1) of sorted `values`.
#[must_use]
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

/// `t`, as a `Clock`.
#[must_use]
pub fn fixed_clock(t: &ManualClock) -> Arc<dyn Clock> {
    Arc::new(t.clone())
}
