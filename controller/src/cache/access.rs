//! [`StoreAccess`]: the [`Access`] port over the run table.
//!
//! A request names a runner and a credential. The runner must be one of this cluster's
//! (`tq-<cluster>-…`), its item must hold the credential's hash (written at launch), and it
//! must name the job the runner started (written by the `in_progress` webhook). That job's run
//! must still say the job is in progress on this runner: once it completes (or was never
//! reported) the credential is refused. A positive answer is remembered for
//! [`REMEMBER_FOR`], so a job ending is noticed within that long.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use model::cache::{token_hash, JobScope};
use model::desired::JobState;
use model::{RunnerName, Timestamp};
use parking_lot::Mutex;
use subtle::ConstantTimeEq;

use super::{Access, Denied};
use crate::clock::Clock;
use crate::store::Store;

/// How long a resolved credential is remembered.
pub const REMEMBER_FOR: Duration = Duration::from_secs(10);

/// Credentials checked against the run table.
pub struct StoreAccess {
    store: Arc<dyn Store>,
    cluster: String,
    /// Ages the remembered answers.
    clock: Arc<dyn Clock>,
    remembered: Mutex<HashMap<String, (String, JobScope, Timestamp)>>,
}

impl StoreAccess {
    /// Checks runners of `cluster` against `store`, remembering answers by `clock`.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, cluster: &str, clock: Arc<dyn Clock>) -> Self {
        StoreAccess {
            store,
            cluster: cluster.to_owned(),
            clock,
            remembered: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Access for StoreAccess {
    async fn resolve(&self, runner: &str, token: &str) -> Result<JobScope, Denied> {
        if RunnerName::observed(runner)
            .parse_ours(&self.cluster)
            .is_none()
        {
            return Err(Denied::Credential);
        }
        let hash = token_hash(token);
        {
            let now = self.clock.now();
            let mut memo = self.remembered.lock();
            memo.retain(|_, (_, _, at)| now.since(*at) < REMEMBER_FOR);
            if let Some((h, scope, _)) = memo.get(runner) {
                if bool::from(h.as_bytes().ct_eq(hash.as_bytes())) {
                    return Ok(scope.clone());
                }
            }
        }
        let record = self
            .store
            .runner_record(runner)
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .ok_or(Denied::Credential)?;
        let stored = record.credential.ok_or(Denied::Credential)?;
        if !bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
            return Err(Denied::Credential);
        }
        let job = record.job.ok_or_else(|| {
            Denied::NoJob("Gitea has not reported this runner taking a job".into())
        })?;
        let run = self
            .store
            .get(&job.run)
            .await
            .map_err(|e| Denied::Unavailable(e.to_string()))?
            .ok_or_else(|| Denied::NoJob("the job's run is not in the table".into()))?;
        match &run.spec.job_state {
            JobState::InProgress { runner: Some(r) } if r == runner => {}
            JobState::Queued => {
                return Err(Denied::NoJob(
                    "the job is not reported in progress yet".into(),
                ))
            }
            _ => return Err(Denied::Ended),
        }
        let scope = job.scope();
        self.remembered
            .lock()
            .insert(runner.to_owned(), (hash, scope.clone(), self.clock.now()));
        Ok(scope)
    }
}

#[cfg(test)]
mod tests {
    use model::cache::RunnerJob;
    use model::desired::{DesiredRun, JobRef, Origin, RunSpec};
    use model::{RunId, Timestamp};

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::fake::FakeStore;

    const RUNNER: &str = "tq-prod-job-5-1-a1";

    fn token(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    async fn world(state: JobState) -> (Arc<FakeStore>, StoreAccess, ManualClock) {
        let store = Arc::new(FakeStore::new());
        let spec = RunSpec::for_job(
            JobRef {
                id: 9,
                attempt: 1,
                name: None,
                run_id: Some(4),
            },
            vec!["go".into()],
            Some("acme/app".into()),
            Origin::Webhook,
            Timestamp::EPOCH,
        );
        let mut run = DesiredRun::new(RunId::for_job(9, 1), spec);
        run.spec.job_state = state;
        store.create(&run).await.expect("create");
        store
            .set_runner_credential(RUNNER, &token_hash(&token(1)), Timestamp::EPOCH)
            .await
            .expect("credential");
        let clock = ManualClock::new(Timestamp::EPOCH);
        let access = StoreAccess::new(store.clone(), "prod", Arc::new(clock.clone()));
        (store, access, clock)
    }

    fn job() -> RunnerJob {
        RunnerJob {
            run: RunId::for_job(9, 1),
            job_id: 9,
            repo: "acme/app".into(),
            branch: Some("feature".into()),
            default_branch: Some("main".into()),
            workflow_run: Some(4),
        }
    }

    #[tokio::test]
    async fn a_runner_reads_the_scope_of_the_job_it_runs_now() {
        let running = JobState::InProgress {
            runner: Some(RUNNER.into()),
        };
        let (store, access, _) = world(running).await;
        assert_eq!(
            access.resolve(RUNNER, &token(1)).await,
            Err(Denied::NoJob(
                "Gitea has not reported this runner taking a job".into()
            ))
        );
        store
            .set_runner_job(RUNNER, &job(), Timestamp::EPOCH)
            .await
            .expect("job");
        let scope = access.resolve(RUNNER, &token(1)).await.expect("allowed");
        assert_eq!(scope.repo, "acme/app");
        assert_eq!(scope.read, ["branch:feature", "branch:main"]);
        assert_eq!(
            access.resolve(RUNNER, &token(2)).await,
            Err(Denied::Credential)
        );
        assert_eq!(
            access.resolve("tq-other-job-5-1-a1", &token(1)).await,
            Err(Denied::Credential),
            "another cluster's runner"
        );
    }

    #[tokio::test]
    async fn a_finished_or_moved_job_is_refused() {
        for state in [
            JobState::Completed {
                conclusion: "success".into(),
            },
            JobState::InProgress {
                runner: Some("tq-prod-job-6-1-a1".into()),
            },
        ] {
            let (store, access, _) = world(state).await;
            store
                .set_runner_job(RUNNER, &job(), Timestamp::EPOCH)
                .await
                .expect("job");
            assert_eq!(access.resolve(RUNNER, &token(1)).await, Err(Denied::Ended));
        }
        let (store, access, _) = world(JobState::Queued).await;
        store
            .set_runner_job(RUNNER, &job(), Timestamp::EPOCH)
            .await
            .expect("job");
        assert!(matches!(
            access.resolve(RUNNER, &token(1)).await,
            Err(Denied::NoJob(_))
        ));
    }

    #[tokio::test]
    async fn an_answer_is_remembered_for_a_while_by_the_clock_then_asked_again() {
        let running = JobState::InProgress {
            runner: Some(RUNNER.into()),
        };
        let (store, access, clock) = world(running).await;
        store
            .set_runner_job(RUNNER, &job(), Timestamp::EPOCH)
            .await
            .expect("job");
        assert!(access.resolve(RUNNER, &token(1)).await.is_ok());
        let completed = JobState::Completed {
            conclusion: "success".into(),
        };
        store
            .set_job_state(&RunId::for_job(9, 1), &completed)
            .await
            .expect("job state");

        clock.advance(REMEMBER_FOR - Duration::from_millis(1));
        assert!(
            access.resolve(RUNNER, &token(1)).await.is_ok(),
            "still remembered"
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(access.resolve(RUNNER, &token(1)).await, Err(Denied::Ended));
    }
}
