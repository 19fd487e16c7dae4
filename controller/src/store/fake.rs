//! [`FakeStore`]: the tests' desired-state table (feature `testing`, never in the binary).
//!
//! The table itself is [`MemoryStore`] (DynamoDB's semantics, checked against DynamoDB by
//! `tests/store_contract.rs`); this adds what tests need on top: do what operators and
//! outages do (edit a spec by hand, put a row that does not parse, make the table
//! unavailable, fail the next call of one kind) and log every call.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use model::cache::{RunnerJob, RunnerRecord};
use model::desired::{DesiredRun, JobState, RunSpec, RunStatus};
use model::observed::DesiredView;
use model::{RunId, Timestamp};
use parking_lot::{Mutex, MutexGuard};

use super::memory::{MemoryStore, Row};
use super::{expires_at, Lease, Store, StoreError};
use crate::clock::Clock;

/// Which call an injected fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoreOp {
    /// [`Store::list_active`].
    ListActive,
    /// [`Store::get`].
    Get,
    /// [`Store::create`].
    Create,
    /// [`Store::set_job_state`].
    SetJobState,
    /// [`Store::set_cancel`].
    SetCancel,
    /// [`Store::write_status`].
    WriteStatus,
    /// [`Store::acquire_lease`].
    AcquireLease,
    /// [`Store::renew_lease`].
    RenewLease,
    /// [`Store::release_lease`].
    ReleaseLease,
    /// [`Store::set_runner_credential`], [`Store::set_runner_job`].
    SetRunner,
    /// [`Store::runner_record`].
    GetRunner,
}

#[derive(Debug, Default)]
struct Faults {
    unavailable: bool,
    next: BTreeMap<StoreOp, VecDeque<StoreError>>,
    calls: Vec<StoreOp>,
}

/// An in-memory desired-state table with injectable faults and a call log.
#[derive(Debug, Default)]
pub struct FakeStore {
    table: MemoryStore,
    faults: Mutex<Faults>,
}

impl FakeStore {
    /// An empty table keeping finished runs for 7 days.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table keeping finished runs for `retention`.
    #[must_use]
    pub fn with_retention(retention: Duration) -> Self {
        FakeStore {
            table: MemoryStore::with_retention(retention),
            faults: Mutex::default(),
        }
    }

    /// The same table, reading "now" from `clock` (see [`MemoryStore::with_clock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.table = self.table.with_clock(clock);
        self
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock()
    }

    // ---- faults ----

    /// While `true`, every call fails with [`StoreError::Unavailable`] (DynamoDB is down).
    pub fn set_unavailable(&self, down: bool) {
        self.faults().unavailable = down;
    }

    /// The next call of `op` fails with `err` (queued: several calls fail in order).
    pub fn fail_next(&self, op: StoreOp, err: StoreError) {
        self.faults().next.entry(op).or_default().push_back(err);
    }

    /// Drops every injected fault and brings the table back.
    pub fn clear_faults(&self) {
        let mut f = self.faults();
        f.next.clear();
        f.unavailable = false;
    }

    // ---- what operators do ----

    /// Writes `run` whole, spec and status, bypassing every check (a fixture, or an operator
    /// rewriting a row). The expiry follows the status.
    pub fn put_row(&self, run: DesiredRun) {
        let expires = expires_at(&run.status, self.table.retention(), self.table.now());
        self.table.lock().rows.insert(
            run.id.to_string(),
            Row::Valid {
                run: Box::new(run),
                expires_at: expires,
            },
        );
    }

    /// Puts a row that does not parse under `key` (an operator's bad hand edit). It shows up
    /// in [`DesiredView::invalid`] with `problem`, and [`Store::get`] refuses it.
    pub fn insert_invalid(&self, key: &str, problem: &str) {
        self.table.lock().rows.insert(
            key.to_owned(),
            Row::Invalid {
                problem: problem.to_owned(),
            },
        );
    }

    /// Edits a run's spec the way an operator would, leaving its status alone. Returns
    /// `false` when there is no valid row with that id.
    pub fn edit_spec(&self, id: &RunId, edit: impl FnOnce(&mut RunSpec)) -> bool {
        match self.table.lock().rows.get_mut(id.as_str()) {
            Some(Row::Valid { run, .. }) => {
                edit(&mut run.spec);
                true
            }
            _ => false,
        }
    }

    /// Deletes a row. Returns whether it existed.
    pub fn delete(&self, key: &str) -> bool {
        self.table.lock().rows.remove(key).is_some()
    }

    // ---- inspection ----

    /// Every valid row, final or not.
    #[must_use]
    pub fn runs(&self) -> Vec<DesiredRun> {
        self.table.runs()
    }

    /// The row's TTL (epoch seconds), set once its phase is final.
    #[must_use]
    pub fn expires_at(&self, id: &RunId) -> Option<i64> {
        self.table.expires_at(id)
    }

    /// The current lease holder and fence, if anyone holds it (expired or not).
    #[must_use]
    pub fn lease_holder(&self) -> Option<(String, u64)> {
        self.table.lease_holder()
    }

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<StoreOp> {
        self.faults().calls.clone()
    }

    /// How many calls of `op` were made.
    #[must_use]
    pub fn count(&self, op: StoreOp) -> usize {
        self.faults().calls.iter().filter(|c| **c == op).count()
    }

    /// Logs a call of `op` and fails it if a fault says so.
    fn enter(&self, op: StoreOp) -> Result<(), StoreError> {
        let mut f = self.faults();
        f.calls.push(op);
        if f.unavailable {
            return Err(StoreError::Unavailable(
                "injected: DynamoDB is unreachable".into(),
            ));
        }
        match f.next.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Store for FakeStore {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        self.enter(StoreOp::ListActive)?;
        self.table.list_active().await
    }

    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError> {
        self.enter(StoreOp::Get)?;
        self.table.get(id).await
    }

    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError> {
        self.enter(StoreOp::Create)?;
        self.table.create(run).await
    }

    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError> {
        self.enter(StoreOp::SetJobState)?;
        self.table.set_job_state(id, state).await
    }

    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError> {
        self.enter(StoreOp::SetCancel)?;
        self.table.set_cancel(id, cancel).await
    }

    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError> {
        self.enter(StoreOp::WriteStatus)?;
        self.table
            .write_status(id, expected_version, status, lease)
            .await
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.enter(StoreOp::AcquireLease)?;
        self.table.acquire_lease(holder, ttl, now).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        self.enter(StoreOp::RenewLease)?;
        self.table.renew_lease(lease, ttl, now).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.enter(StoreOp::ReleaseLease)?;
        self.table.release_lease(lease).await
    }

    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.enter(StoreOp::SetRunner)?;
        self.table
            .set_runner_credential(runner, hash, expires)
            .await
    }

    async fn set_runner_job(
        &self,
        runner: &str,
        job: &RunnerJob,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.enter(StoreOp::SetRunner)?;
        self.table.set_runner_job(runner, job, expires).await
    }

    async fn runner_record(&self, runner: &str) -> Result<Option<RunnerRecord>, StoreError> {
        self.enter(StoreOp::GetRunner)?;
        self.table.runner_record(runner).await
    }
}

/// The port's contract itself is `tests/contract/store.rs`, run on this fake, the memory
/// table and DynamoDB; these are the fake's own additions.
#[cfg(test)]
mod tests {
    use super::*;
    use model::desired::{JobRef, Origin, Phase};

    const TTL: Duration = Duration::from_secs(30);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    fn run(job: i64) -> DesiredRun {
        let spec = RunSpec::for_job(
            JobRef {
                id: job,
                attempt: 1,
                name: None,
                run_id: None,
            },
            vec!["go".into()],
            Some("acme/app".into()),
            Origin::Webhook,
            t(100),
        );
        DesiredRun::new(RunId::for_job(job, 1), spec)
    }

    #[tokio::test]
    async fn final_runs_leave_the_active_list_and_expire_after_retention() {
        let store = FakeStore::with_retention(Duration::from_secs(3600));
        store.create(&run(1)).await.expect("create");
        let lease = store.acquire_lease("a", TTL, t(0)).await.expect("lease");
        let done = RunStatus {
            phase: Phase::Done,
            attempt: 1,
            finished_at: Some(t(500)),
            ..RunStatus::default()
        };
        store
            .write_status(&run(1).id, 0, &done, &lease)
            .await
            .expect("write");
        assert!(store.list_active().await.expect("list").runs.is_empty());
        assert_eq!(store.expires_at(&run(1).id), Some(500 + 3600));
    }

    #[tokio::test]
    async fn an_invalid_row_is_reported_alone() {
        let store = FakeStore::new();
        store.create(&run(1)).await.expect("create");
        store.insert_invalid("job-2-1", "phase: `runing` is not a phase");
        let view = store.list_active().await.expect("list");
        assert_eq!(view.runs.len(), 1);
        assert_eq!(view.invalid[0].key, "job-2-1");
        let err = store.get(&RunId::for_job(2, 1)).await.expect_err("invalid");
        assert!(matches!(err, StoreError::InvalidRow { .. }));
    }

    #[tokio::test]
    async fn an_unavailable_table_fails_every_call_until_it_returns() {
        let store = FakeStore::new();
        store.set_unavailable(true);
        assert!(matches!(
            store.create(&run(1)).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.list_active().await,
            Err(StoreError::Unavailable(_))
        ));
        store.set_unavailable(false);
        store.fail_next(StoreOp::Create, StoreError::Throttled("slow down".into()));
        assert!(matches!(
            store.create(&run(1)).await,
            Err(StoreError::Throttled(_))
        ));
        assert!(store.create(&run(1)).await.expect("back"));
        assert_eq!(store.count(StoreOp::Create), 3);
    }
}
