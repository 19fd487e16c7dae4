//! The store port's contract (`controller/src/store.rs`), written once and run against every
//! implementation: the in-memory table and the tests' fake (`tests/store_contract.rs`) and
//! DynamoDB through moto (`tests/aws.rs`). Where they disagree DynamoDB's behaviour wins and
//! the in-memory table is fixed, so the tests that rely on the fake test what production does.
//!
//! `store_contract!(fresh)` expands to one test per clause, each on a fresh, empty store from
//! the async expression `fresh`.

#![allow(dead_code)] // each including test binary uses the macro, not every helper directly

use std::time::Duration;

use controller::store::{Lease, Store, StoreError};
use model::cache::RunnerJob;
use model::desired::{DesiredRun, JobRef, JobState, Origin, RunSpec, RunStatus};
use model::{InstanceId, Phase, RunId, Timestamp};

/// The lease's time to live in every clause.
pub const TTL: Duration = Duration::from_secs(30);

/// `secs` after a fixed instant.
#[must_use]
pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_millis(1_764_000_000_000 + secs * 1000)
}

/// A pending run of Gitea job `job`, attempt 1.
#[must_use]
pub fn run(job: i64) -> DesiredRun {
    let spec = RunSpec::for_job(
        JobRef {
            id: job,
            attempt: 1,
            name: Some("build".into()),
            run_id: Some(9),
        },
        vec!["go".into(), "linux".into()],
        Some("acme/app".into()),
        Origin::Webhook,
        t(0),
    );
    DesiredRun::new(RunId::for_job(job, 1), spec)
}

fn status(phase: Phase) -> RunStatus {
    RunStatus {
        phase,
        attempt: 1,
        ..RunStatus::default()
    }
}

async fn lease(store: &dyn Store, holder: &str) -> Lease {
    store
        .acquire_lease(holder, TTL, t(0))
        .await
        .expect("the lease is free")
}

async fn stored(store: &dyn Store, id: &RunId) -> DesiredRun {
    store.get(id).await.expect("get").expect("the row exists")
}

/// Creating is idempotent on the run id: the second create reports `false` and changes nothing.
pub async fn create_is_idempotent_on_the_run_id(store: &dyn Store) {
    assert!(store.create(&run(1)).await.expect("create"));
    let mut other = run(1);
    other.spec.labels = vec!["other".into()];
    assert!(!store.create(&other).await.expect("create again"));
    assert_eq!(store.get(&run(1).id).await.expect("get"), Some(run(1)));
    let view = store.list_active().await.expect("list");
    assert!(view.complete && view.invalid.is_empty(), "{view:?}");
    assert_eq!(view.runs, vec![run(1)]);
}

/// A run that does not exist reads as `None`; spec writes to it report `false` and create
/// nothing; a status write to it is a conflict (re-read, then see it is gone).
pub async fn a_missing_run_is_none_and_writes_to_it_create_nothing(store: &dyn Store) {
    let id = RunId::for_job(999, 1);
    let lease = lease(store, "ctl-a").await;
    assert_eq!(store.get(&id).await.expect("get"), None);
    let done = JobState::Completed {
        conclusion: "success".into(),
    };
    assert!(!store.set_job_state(&id, &done).await.expect("job state"));
    assert!(!store.set_cancel(&id, true).await.expect("cancel"));
    let err = store
        .write_status(&id, 0, &status(Phase::Launching), &lease)
        .await
        .expect_err("no row to write");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get(&id).await.expect("get"), None);
    assert!(store.list_active().await.expect("list").runs.is_empty());
}

/// Status writes are conditional on the version read: each write returns the status with the
/// next version, and a write with a stale version is a conflict that changes nothing.
pub async fn status_writes_are_versioned_and_a_stale_one_is_a_conflict(store: &dyn Store) {
    let id = run(1).id;
    store.create(&run(1)).await.expect("create");
    let lease = lease(store, "ctl-a").await;
    let claimed = RunStatus {
        claimed_at: Some(t(1)),
        ..status(Phase::Launching)
    };
    let v1 = store
        .write_status(&id, 0, &claimed, &lease)
        .await
        .expect("first write");
    assert_eq!(v1.version, 1);
    assert_eq!(v1.claimed_at, Some(t(1)));
    let err = store
        .write_status(&id, 0, &status(Phase::Running), &lease)
        .await
        .expect_err("stale");
    assert_eq!(err, StoreError::Conflict(id.to_string()));
    assert_eq!(stored(store, &id).await.status, v1);
    let v2 = store
        .write_status(&id, 1, &status(Phase::Running), &lease)
        .await
        .expect("second write");
    assert_eq!(v2.version, 2);
    assert_eq!(stored(store, &id).await.status, v2);
}

/// Status writes never touch the spec (an operator's cancel survives) and spec writes never
/// touch the status; a status is replaced whole (fields it lacks are cleared).
pub async fn status_and_spec_writes_leave_each_other_alone(store: &dyn Store) {
    let id = run(1).id;
    store.create(&run(1)).await.expect("create");
    let lease = lease(store, "ctl-a").await;
    assert!(store.set_cancel(&id, true).await.expect("cancel"));
    let running = RunStatus {
        instance_id: Some(InstanceId::new("i-0123")),
        launched_at: Some(t(5)),
        ..status(Phase::Running)
    };
    let written = store
        .write_status(&id, 0, &running, &lease)
        .await
        .expect("status");
    let in_progress = JobState::InProgress {
        runner: Some("tq-x".into()),
    };
    assert!(store.set_job_state(&id, &in_progress).await.expect("state"));
    let row = stored(store, &id).await;
    assert!(
        row.spec.cancel,
        "the operator's cancel survived the status write"
    );
    assert_eq!(row.spec.job_state, in_progress);
    assert_eq!(row.status, written, "spec writes left the status alone");
    let requeued = RunStatus {
        attempt: 2,
        ..status(Phase::Pending)
    };
    store
        .write_status(&id, 1, &requeued, &lease)
        .await
        .expect("requeue");
    let row = stored(store, &id).await;
    assert_eq!(row.status.instance_id, None, "replaced whole");
    assert_eq!(row.status.attempt, 2);
    assert!(row.spec.cancel);
    assert!(store.set_cancel(&id, false).await.expect("uncancel"));
    let row = stored(store, &id).await;
    assert!(!row.spec.cancel);
    assert_eq!(row.status.version, 2);
}

/// The job state only moves forward (`JobState::may_overwrite`): a later state, or the same
/// state gaining a detail it lacked; late and repeated webhooks change nothing but still
/// report that the run exists.
pub async fn the_job_state_never_moves_backwards(store: &dyn Store) {
    let id = run(1).id;
    store.create(&run(1)).await.expect("create");
    let ip = |r: Option<&str>| JobState::InProgress {
        runner: r.map(str::to_owned),
    };
    assert!(store.set_job_state(&id, &ip(None)).await.expect("ip"));
    assert_eq!(stored(store, &id).await.spec.job_state, ip(None));
    assert!(store
        .set_job_state(&id, &ip(Some("tq-a")))
        .await
        .expect("runner"));
    assert_eq!(
        stored(store, &id).await.spec.job_state,
        ip(Some("tq-a")),
        "gains its runner"
    );
    assert!(store
        .set_job_state(&id, &ip(Some("tq-b")))
        .await
        .expect("other"));
    assert!(store.set_job_state(&id, &ip(None)).await.expect("bare"));
    assert_eq!(
        stored(store, &id).await.spec.job_state,
        ip(Some("tq-a")),
        "a detail is never replaced"
    );
    let done = JobState::Completed {
        conclusion: "success".into(),
    };
    assert!(store.set_job_state(&id, &done).await.expect("completed"));
    for late in [
        ip(Some("late")),
        JobState::Queued,
        JobState::Completed {
            conclusion: "failure".into(),
        },
    ] {
        assert!(store.set_job_state(&id, &late).await.expect("late"));
        assert_eq!(
            stored(store, &id).await.spec.job_state,
            done,
            "{late:?} came too late"
        );
    }
}

/// One lease: exclusive until it lapses, renewed only by its holder, taken over after expiry
/// with a larger fence, after which the old holder can neither write, renew nor release it.
/// The holder itself may take it again at any time (a new fence).
pub async fn the_lease_is_exclusive_until_it_lapses_and_the_fence_grows(store: &dyn Store) {
    store.create(&run(1)).await.expect("create");
    let a = lease(store, "ctl-a").await;
    assert_eq!(a.expires_at, t(30));
    let err = store
        .acquire_lease("ctl-b", TTL, t(10))
        .await
        .expect_err("held");
    assert_eq!(
        err,
        StoreError::LeaseHeld {
            holder: "ctl-a".into(),
            until: t(30)
        }
    );
    let a = store.renew_lease(&a, TTL, t(20)).await.expect("a renews");
    assert_eq!(a.expires_at, t(50));
    assert!(matches!(
        store.acquire_lease("ctl-b", TTL, t(40)).await,
        Err(StoreError::LeaseHeld { ref holder, .. }) if holder == "ctl-a"
    ));
    let again = store
        .acquire_lease("ctl-a", TTL, t(41))
        .await
        .expect("the holder takes it again");
    assert!(again.fence > a.fence);
    assert_eq!(
        store.renew_lease(&a, TTL, t(42)).await,
        Err(StoreError::LeaseLost),
        "the older fence is void"
    );
    let a = again;
    let b = store
        .acquire_lease("ctl-b", TTL, t(72))
        .await
        .expect("b takes over after expiry");
    assert!(
        b.fence > a.fence,
        "the fence grows when the lease changes hands"
    );
    let st = status(Phase::Launching);
    assert_eq!(
        store.write_status(&run(1).id, 0, &st, &a).await,
        Err(StoreError::LeaseLost)
    );
    assert_eq!(
        store.renew_lease(&a, TTL, t(73)).await,
        Err(StoreError::LeaseLost)
    );
    store
        .release_lease(&a)
        .await
        .expect("releasing a lost lease is a no-op");
    assert!(
        matches!(
            store.acquire_lease("ctl-c", TTL, t(74)).await,
            Err(StoreError::LeaseHeld { ref holder, .. }) if holder == "ctl-b"
        ),
        "the old holder's release left b's lease alone"
    );
    store
        .write_status(&run(1).id, 0, &st, &b)
        .await
        .expect("b writes");
    store.release_lease(&b).await.expect("b releases");
    let c = store
        .acquire_lease("ctl-c", TTL, t(75))
        .await
        .expect("free after release, before b's expiry");
    assert!(c.fence > b.fence);
}

/// A final run leaves the active list and can still be read.
pub async fn final_runs_leave_the_active_list(store: &dyn Store) {
    store.create(&run(1)).await.expect("create");
    store.create(&run(2)).await.expect("create");
    let lease = lease(store, "ctl-a").await;
    let done = RunStatus {
        finished_at: Some(t(100)),
        ..status(Phase::Done)
    };
    store
        .write_status(&run(1).id, 0, &done, &lease)
        .await
        .expect("finish");
    let view = store.list_active().await.expect("list");
    let ids: Vec<RunId> = view.runs.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec![run(2).id]);
    assert_eq!(stored(store, &run(1).id).await.status.phase, Phase::Done);
}

/// A runner record holds the credential hash and the job, each written alone, and is no run.
pub async fn a_runner_record_holds_the_credential_hash_and_the_job_and_is_no_run(
    store: &dyn Store,
) {
    let runner = "tq-x-job-1-1-a1";
    assert_eq!(store.runner_record(runner).await.expect("read"), None);
    store
        .set_runner_credential(runner, "ab12cd", t(10))
        .await
        .expect("credential");
    let job = RunnerJob {
        run: RunId::for_job(1, 1),
        job_id: 1,
        repo: "acme/app".into(),
        branch: Some("main".into()),
        default_branch: Some("main".into()),
        workflow_run: Some(3),
    };
    store
        .set_runner_job(runner, &job, t(20))
        .await
        .expect("job");
    let record = store
        .runner_record(runner)
        .await
        .expect("read")
        .expect("some");
    assert_eq!(record.credential.as_deref(), Some("ab12cd"));
    assert_eq!(record.job, Some(job));
    assert_eq!(store.runner_record("tq-other").await.expect("read"), None);
    let view = store.list_active().await.expect("list");
    assert!(view.runs.is_empty() && view.invalid.is_empty(), "not a run");
}

/// One test per clause of the contract, each on a fresh store from the async expression
/// `$fresh`.
macro_rules! store_contract {
    ($fresh:expr) => {
        store_contract!(@each $fresh;
            create_is_idempotent_on_the_run_id,
            a_missing_run_is_none_and_writes_to_it_create_nothing,
            status_writes_are_versioned_and_a_stale_one_is_a_conflict,
            status_and_spec_writes_leave_each_other_alone,
            the_job_state_never_moves_backwards,
            the_lease_is_exclusive_until_it_lapses_and_the_fence_grows,
            final_runs_leave_the_active_list,
            a_runner_record_holds_the_credential_hash_and_the_job_and_is_no_run,
        );
    };
    (@each $fresh:expr; $($clause:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $clause() {
                let store = $fresh;
                $crate::store_contract::$clause(&store).await;
            }
        )*
    };
}
