//! The DynamoDB side: the desired-state table and the single-writer lease.
//!
//! - [`dynamo`]: the real port over `aws-sdk-dynamodb` (layout and codec in [`schema`]).
//! - [`memory`]: [`memory::MemoryStore`], an in-memory table with the same semantics: the
//!   simulator's table (`tinqs-ci sim`).
//! - [`fake`] (feature `testing`, never in the binary): [`fake::FakeStore`], the memory table
//!   with injected faults, a call log and operator edits, for tests and benchmarks.

pub mod dynamo;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod memory;
pub mod schema;

use std::time::Duration;

use async_trait::async_trait;
use model::cache::{RunnerJob, RunnerRecord};
use model::desired::{DesiredRun, JobState, RunStatus};
use model::observed::DesiredView;
use model::{RunId, Timestamp};

/// A held lease: only its holder may write run status, and every status write carries `fence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (host and process).
    pub holder: String,
    /// Grows by one each time the lease changes hands; a write with an older fence is refused.
    pub fence: u64,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

/// The desired-state table.
///
/// Contract: creating a run is idempotent on its id; status writes are conditional on the
/// version read and on the writer's lease, and never touch the spec; spec writes never touch
/// the status.
#[async_trait]
pub trait Store: Send + Sync {
    /// Every active (non-final) run, through the sparse active index, all pages. Rows that do
    /// not parse are returned in `invalid`, not as an error.
    ///
    /// # Errors
    /// When a page cannot be read (the view is then incomplete).
    async fn list_active(&self) -> Result<DesiredView, StoreError>;

    /// One run, active or not.
    ///
    /// # Errors
    /// When the row cannot be read or does not parse.
    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError>;

    /// Creates `run` unless a row with its id exists. Returns whether it was created.
    ///
    /// # Errors
    /// When the write fails.
    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError>;

    /// Records Gitea's job state on the spec where it may overwrite the recorded one
    /// ([`JobState::may_overwrite`]: never backwards). Returns `false` when the run does not
    /// exist.
    ///
    /// # Errors
    /// When the write fails.
    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError>;

    /// Sets or clears the operator's cancel flag. Returns `false` when the run does not exist.
    ///
    /// # Errors
    /// When the write fails.
    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError>;

    /// Replaces the status if its stored version is `expected_version` and `lease` is still
    /// the current lease. The written status has version `expected_version + 1`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the version moved, [`StoreError::LeaseLost`] when the
    /// lease is no longer ours.
    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError>;

    /// Takes the lease if it is free or expired.
    ///
    /// # Errors
    /// [`StoreError::LeaseHeld`] when someone else holds it.
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError>;

    /// Extends a lease we hold.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when it is no longer ours.
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError>;

    /// Gives the lease up (only if still ours).
    ///
    /// # Errors
    /// When the write fails.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Records the hash of `runner`'s cache credential (at launch), kept until `expires`.
    /// The credential itself is never stored.
    ///
    /// # Errors
    /// When the write fails.
    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError>;

    /// Records the job `runner` started (an `in_progress` webhook), kept until `expires`.
    ///
    /// # Errors
    /// When the write fails.
    async fn set_runner_job(
        &self,
        runner: &str,
        job: &RunnerJob,
        expires: Timestamp,
    ) -> Result<(), StoreError>;

    /// What is recorded about `runner`; `None` when nothing is.
    ///
    /// # Errors
    /// When the row cannot be read or does not parse.
    async fn runner_record(&self, runner: &str) -> Result<Option<RunnerRecord>, StoreError>;
}

/// When a row whose status is `status` expires (DynamoDB TTL, epoch seconds): `retention`
/// after it finished, only once its phase is final. A final status without `finished_at`
/// counts from `now`.
#[must_use]
pub fn expires_at(status: &RunStatus, retention: Duration, now: Timestamp) -> Option<i64> {
    status
        .phase
        .is_final()
        .then(|| status.finished_at.unwrap_or(now).plus(retention).as_secs())
}

/// A table failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The row's version moved since it was read.
    #[error("run {0} was changed by someone else; re-read it")]
    Conflict(String),
    /// The lease is no longer ours: stop writing.
    #[error("the lease is no longer held by this controller")]
    LeaseLost,
    /// Another controller holds the lease.
    #[error("another controller ({holder}) holds the lease until {until}")]
    LeaseHeld {
        /// The holder.
        holder: String,
        /// When it lapses.
        until: Timestamp,
    },
    /// A row is malformed.
    #[error("row {key} is invalid: {problem}")]
    InvalidRow {
        /// The row key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// DynamoDB refused the request itself as invalid (`ValidationException`: an item over
    /// 400 KB, an attribute it cannot take). Sending it again fails the same way.
    #[error("DynamoDB refused the item: {0}")]
    Rejected(String),
    /// DynamoDB throttled us.
    #[error("throttled by DynamoDB: {0}")]
    Throttled(String),
    /// The table or index is missing.
    #[error("table missing: {0}")]
    NoTable(String),
    /// The call did not finish in time, or DynamoDB is unreachable.
    #[error("DynamoDB unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("DynamoDB error: {0}")]
    Other(String),
}
