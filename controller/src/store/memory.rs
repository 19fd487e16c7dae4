//! [`MemoryStore`]: the desired-state table in memory, with the DynamoDB store's semantics.
//!
//! Same rules as [`super::dynamo::DynamoStore`]: creating is idempotent on the run id; status
//! writes check the version and the writer's lease fence and never touch the spec; spec
//! writes never touch the status; the job state never moves backwards; a final run leaves the
//! active list and gets an expiry. `tests/store_contract.rs` runs one suite against both.
//!
//! Production code: it is the table of `tinqs-ci sim` (behind the simulator's latency and
//! outages, `sim::ports::SimStore`). The tests' [`super::fake::FakeStore`] (feature
//! `testing`) wraps it with injected faults, a call log and operator edits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use model::desired::{DesiredRun, JobState, RunStatus};
use model::observed::{DesiredView, InvalidRow};
use model::{RunId, Timestamp};
use parking_lot::{Mutex, MutexGuard};

use super::{expires_at, Lease, Store, StoreError};
use crate::clock::{Clock, SystemClock};

/// A row as stored: a run that parsed, or what an operator wrote that does not (only the
/// tests' [`super::fake::FakeStore`] writes such rows; every read here handles them).
#[derive(Debug, Clone)]
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
pub(super) enum Row {
    Valid {
        run: Box<DesiredRun>,
        expires_at: Option<i64>,
    },
    Invalid {
        problem: String,
    },
}

#[derive(Debug, Clone)]
struct LeaseRow {
    holder: Option<String>,
    fence: u64,
    until: Timestamp,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) rows: BTreeMap<String, Row>,
    lease: Option<LeaseRow>,
    runners: BTreeMap<String, model::cache::RunnerRecord>,
}

/// An in-memory desired-state table.
pub struct MemoryStore {
    retention: Duration,
    /// Where "now" comes from when a row's expiry is stamped (the simulator's virtual time,
    /// a test's hand-moved clock).
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("retention", &self.retention)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty table keeping finished runs for 7 days, on the system clock.
    #[must_use]
    pub fn new() -> Self {
        Self::with_retention(Duration::from_secs(7 * 24 * 3600))
    }

    /// An empty table keeping finished runs for `retention`, on the system clock.
    #[must_use]
    pub fn with_retention(retention: Duration) -> Self {
        MemoryStore {
            retention,
            clock: Arc::new(SystemClock),
            state: Mutex::new(State::default()),
        }
    }

    /// The same table, reading "now" from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, by the table's clock.
    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// How long finished runs are kept.
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn retention(&self) -> Duration {
        self.retention
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Every valid row, final or not.
    #[must_use]
    pub fn runs(&self) -> Vec<DesiredRun> {
        self.lock()
            .rows
            .values()
            .filter_map(|r| match r {
                Row::Valid { run, .. } => Some(run.as_ref().clone()),
                Row::Invalid { .. } => None,
            })
            .collect()
    }

    /// The row's TTL (epoch seconds), set once its phase is final.
    #[must_use]
    pub fn expires_at(&self, id: &RunId) -> Option<i64> {
        match self.lock().rows.get(id.as_str()) {
            Some(Row::Valid { expires_at, .. }) => *expires_at,
            _ => None,
        }
    }

    /// The current lease holder and fence, if anyone holds it (expired or not).
    #[must_use]
    pub fn lease_holder(&self) -> Option<(String, u64)> {
        let s = self.lock();
        let l = s.lease.as_ref()?;
        l.holder.clone().map(|h| (h, l.fence))
    }

    fn holds(s: &State, lease: &Lease) -> bool {
        s.lease.as_ref().is_some_and(|l| {
            l.holder.as_deref() == Some(lease.holder.as_str()) && l.fence == lease.fence
        })
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        let s = self.lock();
        let mut view = DesiredView {
            runs: Vec::new(),
            invalid: Vec::new(),
            finished: Vec::new(),
            complete: true,
        };
        for (key, row) in &s.rows {
            match row {
                Row::Valid { run, .. } if !run.status.phase.is_final() => {
                    view.runs.push(run.as_ref().clone())
                }
                Row::Valid { .. } => {}
                Row::Invalid { problem } => {
                    view.invalid.push(InvalidRow {
                        key: key.clone(),
                        error: problem.clone(),
                    });
                }
            }
        }
        Ok(view)
    }

    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError> {
        let s = self.lock();
        match s.rows.get(id.as_str()) {
            None => Ok(None),
            Some(Row::Valid { run, .. }) => Ok(Some(run.as_ref().clone())),
            Some(Row::Invalid { problem }) => Err(StoreError::InvalidRow {
                key: id.to_string(),
                problem: problem.clone(),
            }),
        }
    }

    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError> {
        let mut s = self.lock();
        if s.rows.contains_key(run.id.as_str()) {
            return Ok(false);
        }
        let expires = expires_at(&run.status, self.retention, self.now());
        s.rows.insert(
            run.id.to_string(),
            Row::Valid {
                run: Box::new(run.clone()),
                expires_at: expires,
            },
        );
        Ok(true)
    }

    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError> {
        let mut s = self.lock();
        match s.rows.get_mut(id.as_str()) {
            None => Ok(false),
            Some(Row::Valid { run, .. }) => {
                if state.may_overwrite(&run.spec.job_state) {
                    run.spec.job_state = state.clone();
                }
                Ok(true)
            }
            Some(Row::Invalid { problem }) => Err(StoreError::InvalidRow {
                key: id.to_string(),
                problem: problem.clone(),
            }),
        }
    }

    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError> {
        let mut s = self.lock();
        match s.rows.get_mut(id.as_str()) {
            None => Ok(false),
            Some(Row::Valid { run, .. }) => {
                run.spec.cancel = cancel;
                Ok(true)
            }
            Some(Row::Invalid { problem }) => Err(StoreError::InvalidRow {
                key: id.to_string(),
                problem: problem.clone(),
            }),
        }
    }

    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError> {
        let mut s = self.lock();
        if !Self::holds(&s, lease) {
            return Err(StoreError::LeaseLost);
        }
        let (retention, now) = (self.retention, self.now());
        match s.rows.get_mut(id.as_str()) {
            None => Err(StoreError::Conflict(format!(
                "{id} (the row no longer exists)"
            ))),
            Some(Row::Invalid { problem }) => Err(StoreError::InvalidRow {
                key: id.to_string(),
                problem: problem.clone(),
            }),
            Some(Row::Valid {
                run,
                expires_at: exp,
            }) => {
                if run.status.version != expected_version {
                    return Err(StoreError::Conflict(id.to_string()));
                }
                let mut written = status.clone();
                written.version = expected_version + 1;
                *exp = expires_at(&written, retention, now);
                run.status = written.clone();
                Ok(written)
            }
        }
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        let mut s = self.lock();
        let fence = match &s.lease {
            Some(LeaseRow {
                holder: Some(h),
                until,
                ..
            }) if h != holder && *until > now => {
                return Err(StoreError::LeaseHeld {
                    holder: h.clone(),
                    until: *until,
                });
            }
            Some(l) => l.fence + 1,
            None => 1,
        };
        let until = now.plus(ttl);
        s.lease = Some(LeaseRow {
            holder: Some(holder.to_owned()),
            fence,
            until,
        });
        Ok(Lease {
            holder: holder.to_owned(),
            fence,
            expires_at: until,
        })
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        let mut s = self.lock();
        if !Self::holds(&s, lease) {
            return Err(StoreError::LeaseLost);
        }
        let until = now.plus(ttl);
        if let Some(l) = s.lease.as_mut() {
            l.until = until;
        }
        Ok(Lease {
            expires_at: until,
            ..lease.clone()
        })
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut s = self.lock();
        if Self::holds(&s, lease) {
            if let Some(l) = s.lease.as_mut() {
                l.holder = None;
                l.until = Timestamp::EPOCH;
            }
        }
        Ok(())
    }

    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        _expires: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.runners.entry(runner.to_owned()).or_default().credential = Some(hash.to_owned());
        Ok(())
    }

    async fn set_runner_job(
        &self,
        runner: &str,
        job: &model::cache::RunnerJob,
        _expires: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.runners.entry(runner.to_owned()).or_default().job = Some(job.clone());
        Ok(())
    }

    async fn runner_record(
        &self,
        runner: &str,
    ) -> Result<Option<model::cache::RunnerRecord>, StoreError> {
        let s = self.lock();
        Ok(s.runners.get(runner).cloned())
    }
}

#[cfg(test)]
mod tests {
    use model::desired::Phase;
    use model::testing::job_run;

    use super::*;
    use crate::clock::ManualClock;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_final_row_without_a_finish_time_expires_by_the_tables_clock() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let store = MemoryStore::with_retention(HOUR).with_clock(Arc::new(clock.clone()));
        let run = job_run(1, &["go"]);
        store.create(&run).await.expect("create");
        assert_eq!(store.expires_at(&run.id), None, "not final yet");

        clock.advance(Duration::from_secs(500));
        let lease = store
            .acquire_lease("a", Duration::from_secs(60), clock.now())
            .await
            .expect("lease");
        let failed = RunStatus {
            phase: Phase::Failed,
            attempt: 1,
            finished_at: None,
            ..RunStatus::default()
        };
        store
            .write_status(&run.id, 0, &failed, &lease)
            .await
            .expect("write");
        assert_eq!(store.expires_at(&run.id), Some(1_500 + 3_600));
    }
}
