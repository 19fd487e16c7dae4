//! [`FakeStore`]: the desired-state table in memory, with the DynamoDB store's semantics.
//!
//! Same rules as [`super::dynamo::DynamoStore`]: creating is idempotent on the run id; status writes check
//! the version and the writer's lease fence and never touch the spec; spec writes never touch
//! the status; the job state never moves backwards; a final run leaves the active list and
//! gets an expiry. Tests can also do what operators and outages do: edit a spec by hand, put a
//! row that does not parse, make the table unavailable, or fail the next call of one kind.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use model::desired::{DesiredRun, JobState, RunSpec, RunStatus};
use model::observed::{DesiredView, InvalidRow};
use model::{RunId, Timestamp};

use super::{expires_at, Lease, Store, StoreError};

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

#[derive(Debug, Clone)]
enum Row {
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

#[derive(Debug)]
struct State {
    rows: BTreeMap<String, Row>,
    lease: Option<LeaseRow>,
    runners: BTreeMap<String, model::cache::RunnerRecord>,
    unavailable: bool,
    next_faults: BTreeMap<StoreOp, VecDeque<StoreError>>,
    calls: Vec<StoreOp>,
}

/// An in-memory desired-state table.
#[derive(Debug)]
pub struct FakeStore {
    retention: Duration,
    state: Mutex<State>,
}

impl Default for FakeStore {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeStore {
    /// An empty table keeping finished runs for 7 days.
    #[must_use]
    pub fn new() -> Self {
        Self::with_retention(Duration::from_secs(7 * 24 * 3600))
    }

    /// An empty table keeping finished runs for `retention`.
    #[must_use]
    pub fn with_retention(retention: Duration) -> Self {
        FakeStore {
            retention,
            state: Mutex::new(State {
                rows: BTreeMap::new(),
                lease: None,
                runners: BTreeMap::new(),
                unavailable: false,
                next_faults: BTreeMap::new(),
                calls: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation completes under the lock without panicking, so a poisoned lock still
        // holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- faults ----

    /// While `true`, every call fails with [`StoreError::Unavailable`] (DynamoDB is down).
    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
    }

    /// The next call of `op` fails with `err` (queued: several calls fail in order).
    pub fn fail_next(&self, op: StoreOp, err: StoreError) {
        self.lock()
            .next_faults
            .entry(op)
            .or_default()
            .push_back(err);
    }

    /// Drops every injected fault and brings the table back.
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.next_faults.clear();
        s.unavailable = false;
    }

    // ---- what operators do ----

    /// Writes `run` whole, spec and status, bypassing every check (a fixture, or an operator
    /// rewriting a row). The expiry follows the status.
    pub fn put_row(&self, run: DesiredRun) {
        let expires = expires_at(&run.status, self.retention, now());
        self.lock().rows.insert(
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
        self.lock().rows.insert(
            key.to_owned(),
            Row::Invalid {
                problem: problem.to_owned(),
            },
        );
    }

    /// Edits a run's spec the way an operator would, leaving its status alone. Returns
    /// `false` when there is no valid row with that id.
    pub fn edit_spec(&self, id: &RunId, edit: impl FnOnce(&mut RunSpec)) -> bool {
        match self.lock().rows.get_mut(id.as_str()) {
            Some(Row::Valid { run, .. }) => {
                edit(&mut run.spec);
                true
            }
            _ => false,
        }
    }

    /// Deletes a row. Returns whether it existed.
    pub fn delete(&self, key: &str) -> bool {
        self.lock().rows.remove(key).is_some()
    }

    // ---- inspection ----

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

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<StoreOp> {
        self.lock().calls.clone()
    }

    /// How many calls of `op` were made.
    #[must_use]
    pub fn count(&self, op: StoreOp) -> usize {
        self.lock().calls.iter().filter(|c| **c == op).count()
    }

    fn enter(&self, op: StoreOp) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut s = self.lock();
        s.calls.push(op);
        if s.unavailable {
            return Err(StoreError::Unavailable(
                "injected: DynamoDB is unreachable".into(),
            ));
        }
        if let Some(e) = s.next_faults.get_mut(&op).and_then(VecDeque::pop_front) {
            return Err(e);
        }
        Ok(s)
    }

    fn holds(s: &State, lease: &Lease) -> bool {
        s.lease.as_ref().is_some_and(|l| {
            l.holder.as_deref() == Some(lease.holder.as_str()) && l.fence == lease.fence
        })
    }
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

#[async_trait]
impl Store for FakeStore {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        let s = self.enter(StoreOp::ListActive)?;
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
        let s = self.enter(StoreOp::Get)?;
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
        let mut s = self.enter(StoreOp::Create)?;
        if s.rows.contains_key(run.id.as_str()) {
            return Ok(false);
        }
        let expires = expires_at(&run.status, self.retention, now());
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
        let mut s = self.enter(StoreOp::SetJobState)?;
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
        let mut s = self.enter(StoreOp::SetCancel)?;
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
        let mut s = self.enter(StoreOp::WriteStatus)?;
        if !Self::holds(&s, lease) {
            return Err(StoreError::LeaseLost);
        }
        let retention = self.retention;
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
                *exp = expires_at(&written, retention, now());
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
        let mut s = self.enter(StoreOp::AcquireLease)?;
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
        let mut s = self.enter(StoreOp::RenewLease)?;
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
        let mut s = self.enter(StoreOp::ReleaseLease)?;
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
        let mut s = self.enter(StoreOp::SetRunner)?;
        s.runners.entry(runner.to_owned()).or_default().credential = Some(hash.to_owned());
        Ok(())
    }

    async fn set_runner_job(
        &self,
        runner: &str,
        job: &model::cache::RunnerJob,
        _expires: Timestamp,
    ) -> Result<(), StoreError> {
        let mut s = self.enter(StoreOp::SetRunner)?;
        s.runners.entry(runner.to_owned()).or_default().job = Some(job.clone());
        Ok(())
    }

    async fn runner_record(
        &self,
        runner: &str,
    ) -> Result<Option<model::cache::RunnerRecord>, StoreError> {
        let s = self.enter(StoreOp::GetRunner)?;
        Ok(s.runners.get(runner).cloned())
    }
}

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
    async fn create_is_idempotent_on_the_run_id() {
        let store = FakeStore::new();
        assert!(store.create(&run(1)).await.expect("create"));
        assert!(!store.create(&run(1)).await.expect("again"));
        assert_eq!(store.list_active().await.expect("list").runs, vec![run(1)]);
    }

    #[tokio::test]
    async fn a_status_write_with_a_stale_version_is_a_conflict() {
        let store = FakeStore::new();
        store.create(&run(1)).await.expect("create");
        let lease = store.acquire_lease("a", TTL, t(0)).await.expect("lease");
        let id = run(1).id;
        let claimed = RunStatus {
            phase: Phase::Launching,
            attempt: 1,
            ..RunStatus::default()
        };
        let written = store
            .write_status(&id, 0, &claimed, &lease)
            .await
            .expect("first write");
        assert_eq!(written.version, 1);
        let err = store
            .write_status(&id, 0, &claimed, &lease)
            .await
            .expect_err("stale");
        assert_eq!(err, StoreError::Conflict(id.to_string()));
    }

    #[tokio::test]
    async fn status_writes_keep_the_operators_cancel() {
        let store = FakeStore::new();
        store.create(&run(1)).await.expect("create");
        let lease = store.acquire_lease("a", TTL, t(0)).await.expect("lease");
        store.set_cancel(&run(1).id, true).await.expect("cancel");
        let st = RunStatus {
            phase: Phase::Running,
            attempt: 1,
            ..RunStatus::default()
        };
        store
            .write_status(&run(1).id, 0, &st, &lease)
            .await
            .expect("write");
        let got = store.get(&run(1).id).await.expect("get").expect("exists");
        assert!(got.spec.cancel);
        assert_eq!(got.status.phase, Phase::Running);
    }

    #[tokio::test]
    async fn a_lost_lease_cannot_write_and_the_fence_grows() {
        let store = FakeStore::new();
        store.create(&run(1)).await.expect("create");
        let old = store
            .acquire_lease("a", TTL, t(0))
            .await
            .expect("a takes it");
        let err = store
            .acquire_lease("b", TTL, t(10))
            .await
            .expect_err("held");
        assert!(matches!(err, StoreError::LeaseHeld { ref holder, .. } if holder == "a"));
        let new = store
            .acquire_lease("b", TTL, t(31))
            .await
            .expect("b takes it after expiry");
        assert!(new.fence > old.fence);
        let st = RunStatus {
            phase: Phase::Launching,
            attempt: 1,
            ..RunStatus::default()
        };
        assert_eq!(
            store.write_status(&run(1).id, 0, &st, &old).await,
            Err(StoreError::LeaseLost)
        );
        assert_eq!(
            store.renew_lease(&old, TTL, t(32)).await,
            Err(StoreError::LeaseLost)
        );
        store
            .write_status(&run(1).id, 0, &st, &new)
            .await
            .expect("new holder writes");
        store.release_lease(&new).await.expect("release");
        let again = store
            .acquire_lease("a", TTL, t(33))
            .await
            .expect("free after release");
        assert!(again.fence > new.fence);
    }

    #[tokio::test]
    async fn the_job_state_never_moves_backwards() {
        let store = FakeStore::new();
        store.create(&run(1)).await.expect("create");
        let id = run(1).id;
        let done = JobState::Completed {
            conclusion: "success".into(),
        };
        assert!(store
            .set_job_state(&id, &JobState::InProgress { runner: None })
            .await
            .expect("ip"));
        assert!(store.set_job_state(&id, &done).await.expect("done"));
        assert!(store
            .set_job_state(&id, &JobState::Queued)
            .await
            .expect("late queued"));
        assert_eq!(
            store
                .get(&id)
                .await
                .expect("get")
                .expect("row")
                .spec
                .job_state,
            done
        );
        assert!(!store
            .set_job_state(&RunId::for_job(9, 1), &done)
            .await
            .expect("missing"));
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
