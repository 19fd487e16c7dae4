//! Decorators around the controller's real ports, for what moto and the simulator cannot do
//! themselves, and to record what the controller asked for.
//!
//! - [`FaultyFleet`] wraps the real [`Ec2Fleet`](controller::fleet::ec2::Ec2Fleet): it records
//!   every launch, termination and list, and makes instances marked in [`Interruptions`] look
//!   Spot-interrupted (`state_reason = Server.SpotInstanceTermination`), which moto cannot
//!   produce.
//! - [`FaultyStore`] wraps the real [`DynamoStore`](controller::store::dynamo::DynamoStore): it
//!   can be switched "down" (every call fails as if DynamoDB were unreachable), and it can
//!   play a controller killed between launching an instance and recording it.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use controller::clock::Clock;
use controller::fleet::{Fleet, FleetError, LaunchRequest, Offering};
use controller::store::{Lease, Store, StoreError};
use model::desired::{DesiredRun, JobState, RunStatus};
use model::observed::{DesiredView, Instance, SPOT_INTERRUPTION};
use model::{InstanceId, Phase, RunId, RunnerName, Timestamp};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::narrate::{Events, Source};

/// The instances EC2 "reclaimed": shared by the booter (which decides to interrupt a machine)
/// and every [`FaultyFleet`] (which reports the reclaim).
#[derive(Debug, Default)]
pub struct Interruptions {
    ids: Mutex<BTreeSet<String>>,
}

impl Interruptions {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Plays a Spot reclaim of `instance`: marks it first (so no list ever shows it ended
    /// without the reason), then terminates it in EC2 (moto).
    ///
    /// # Errors
    /// When EC2 refuses the termination.
    pub async fn interrupt(&self, ec2: &aws_sdk_ec2::Client, instance: &str) -> Result<(), String> {
        self.ids.lock().insert(instance.to_owned());
        ec2.terminate_instances()
            .instance_ids(instance)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "cannot terminate {instance}: {}",
                    aws_sdk_ec2::error::DisplayErrorContext(&e)
                )
            })
    }

    /// Whether `instance` was reclaimed.
    #[must_use]
    pub fn contains(&self, instance: &str) -> bool {
        self.ids.lock().contains(instance)
    }

    /// How many instances were reclaimed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.lock().len()
    }

    /// Whether none was.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A launch the controller made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRecord {
    /// When it returned.
    pub at: Timestamp,
    /// The new instance.
    pub instance: InstanceId,
    /// Its run.
    pub run: RunId,
    /// Its attempt.
    pub attempt: u32,
    /// Its pool.
    pub pool: String,
    /// Its runner name.
    pub runner: RunnerName,
}

/// A termination the controller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminateRecord {
    /// When it returned.
    pub at: Timestamp,
    /// The instances named.
    pub ids: Vec<InstanceId>,
    /// Whether EC2 accepted it.
    pub ok: bool,
}

/// The real fleet, recording every call and reporting Spot interruptions.
pub struct FaultyFleet {
    inner: Arc<dyn Fleet>,
    interruptions: Arc<Interruptions>,
    events: Events,
    /// Stamps the records: the world's clock, the one its controllers read.
    clock: Arc<dyn Clock>,
    launches: Mutex<Vec<LaunchRecord>>,
    terminations: Mutex<Vec<TerminateRecord>>,
    lists: AtomicU64,
    passes: watch::Sender<u64>,
}

impl std::fmt::Debug for FaultyFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyFleet")
            .field("lists", &self.lists.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl FaultyFleet {
    /// Wraps `inner`, stamping what it records by `clock`.
    #[must_use]
    pub fn new(
        inner: Arc<dyn Fleet>,
        interruptions: Arc<Interruptions>,
        events: Events,
        clock: Arc<dyn Clock>,
    ) -> Self {
        FaultyFleet {
            inner,
            interruptions,
            events,
            clock,
            launches: Mutex::new(Vec::new()),
            terminations: Mutex::new(Vec::new()),
            lists: AtomicU64::new(0),
            passes: watch::channel(0).0,
        }
    }

    /// Every launch so far.
    #[must_use]
    pub fn launches(&self) -> Vec<LaunchRecord> {
        self.launches.lock().clone()
    }

    /// Every termination so far.
    #[must_use]
    pub fn terminations(&self) -> Vec<TerminateRecord> {
        self.terminations.lock().clone()
    }

    /// Whether the controller asked EC2 to terminate `instance` (successfully).
    #[must_use]
    pub fn terminated(&self, instance: &str) -> Option<Timestamp> {
        self.terminations
            .lock()
            .iter()
            .find(|t| t.ok && t.ids.iter().any(|i| i.as_str() == instance))
            .map(|t| t.at)
    }

    /// How many times the controller listed the fleet: one per pass that observed.
    #[must_use]
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::SeqCst)
    }

    /// Waits until the controller has observed `n` more times than now (so at least `n - 1`
    /// whole passes ran in between), or `timeout` passes.
    ///
    /// # Errors
    /// When `timeout` passes first, saying how many passes were seen.
    pub async fn wait_passes(&self, n: u64, timeout: Duration) -> Result<(), String> {
        let mut rx = self.passes.subscribe();
        let start = *rx.borrow_and_update();
        let target = start + n;
        let waited = tokio::time::timeout(timeout, rx.wait_for(|v| *v >= target)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "the controller observed {} times in {timeout:?}, wanted {n}",
                self.lists() - start
            )),
        }
    }
}

#[async_trait]
impl Fleet for FaultyFleet {
    async fn list(&self) -> Result<Vec<Instance>, FleetError> {
        let mut listed = self.inner.list().await?;
        for i in &mut listed {
            if !i.state.is_live() && self.interruptions.contains(i.id.as_str()) {
                i.state_reason = Some(SPOT_INTERRUPTION.to_owned());
            }
        }
        let n = self.lists.fetch_add(1, Ordering::SeqCst) + 1;
        self.passes.send_replace(n);
        Ok(listed)
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<(Instance, Offering), FleetError> {
        let (instance, offering) = self.inner.launch(req).await?;
        self.launches.lock().push(LaunchRecord {
            at: self.clock.now(),
            instance: instance.id.clone(),
            run: req.run.clone(),
            attempt: req.attempt,
            pool: req.pool.clone(),
            runner: req.runner.clone(),
        });
        Ok((instance, offering))
    }

    async fn terminate(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        let result = self.inner.terminate(ids).await;
        self.terminations.lock().push(TerminateRecord {
            at: self.clock.now(),
            ids: ids.to_vec(),
            ok: result.is_ok(),
        });
        if let Err(e) = &result {
            self.events.push(
                Source::Ec2,
                "terminate-error",
                format!("TerminateInstances failed: {e}"),
            );
        }
        result
    }
}

/// The real store, with a switch that makes it unreachable and a one-shot crash.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    crash_before_record: AtomicBool,
    dead: AtomicBool,
    crashed: watch::Sender<bool>,
    refused: AtomicU64,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("down", &self.down.load(Ordering::SeqCst))
            .field("dead", &self.dead.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wraps `inner`; no fault is active.
    #[must_use]
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            down: AtomicBool::new(false),
            crash_before_record: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            crashed: watch::channel(false).0,
            refused: AtomicU64::new(0),
        }
    }

    /// Makes DynamoDB unreachable (`true`) or reachable again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Calls refused while down.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Arms the crash: the next status write that records an instance on a run (the last
    /// step of a launch) never completes, and from then on no store call does, as if the
    /// process had died right after EC2 started the instance. [`FaultyStore::crashed`]
    /// resolves at that moment.
    pub fn crash_before_next_record(&self) {
        self.crash_before_record.store(true, Ordering::SeqCst);
    }

    /// Resolves once the armed crash happened.
    pub async fn crashed(&self) {
        let mut rx = self.crashed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    async fn gate(&self) -> Result<(), StoreError> {
        if self.dead.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(
                "cannot reach DynamoDB (connection refused; injected by the harness)".into(),
            ));
        }
        Ok(())
    }

    async fn gated<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.gate().await?;
        call.await
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        self.gated(self.inner.list_active()).await
    }

    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError> {
        self.gated(self.inner.get(id)).await
    }

    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError> {
        self.gated(self.inner.create(run)).await
    }

    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError> {
        self.gated(self.inner.set_job_state(id, state)).await
    }

    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError> {
        self.gated(self.inner.set_cancel(id, cancel)).await
    }

    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError> {
        self.gate().await?;
        let records_instance = status.phase == Phase::Running && status.instance_id.is_some();
        if records_instance && self.crash_before_record.swap(false, Ordering::SeqCst) {
            self.dead.store(true, Ordering::SeqCst);
            self.crashed.send_replace(true);
            std::future::pending::<()>().await;
        }
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
        self.gated(self.inner.acquire_lease(holder, ttl, now)).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.gated(self.inner.renew_lease(lease, ttl, now)).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.gated(self.inner.release_lease(lease)).await
    }

    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: model::Timestamp,
    ) -> Result<(), controller::store::StoreError> {
        self.gated(self.inner.set_runner_credential(runner, hash, expires))
            .await
    }
    async fn set_runner_job(
        &self,
        runner: &str,
        job: &model::cache::RunnerJob,
        expires: model::Timestamp,
    ) -> Result<(), controller::store::StoreError> {
        self.gated(self.inner.set_runner_job(runner, job, expires))
            .await
    }
    async fn runner_record(
        &self,
        runner: &str,
    ) -> Result<Option<model::cache::RunnerRecord>, controller::store::StoreError> {
        self.gated(self.inner.runner_record(runner)).await
    }
}
