//! Desired runs: one ephemeral runner wanted for one job.
//!
//! A row has two halves with two writers. The [`RunSpec`] is written by webhooks and operators
//! (what is wanted); the [`RunStatus`] only by the controller (what it has done), guarded by a
//! version for optimistic concurrency. A status write never touches the spec, so an operator's
//! cancel can never be lost to a controller update.

use serde::{Deserialize, Serialize};

use crate::ids::{InstanceId, RunId, RunnerName};
use crate::time::Timestamp;

/// One row of the desired-state table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRun {
    /// Deterministic id (see [`RunId`]).
    pub id: RunId,
    /// What webhooks and operators want.
    pub spec: RunSpec,
    /// What the controller has done about it.
    pub status: RunStatus,
}

/// The wanted half of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The job's `runs-on` labels; a pool serves the run when they are all among its labels.
    pub labels: Vec<String>,
    /// An explicit pool, set by an operator; otherwise chosen from the labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// `owner/name` of the repository, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The Gitea job this run serves, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
    /// Who asked for the run.
    pub origin: Origin,
    /// The job's state as Gitea last reported it.
    #[serde(default)]
    pub job_state: JobState,
    /// Set by an operator to stop the run: its runner is removed (once idle) and it ends.
    #[serde(default)]
    pub cancel: bool,
    /// When the row was created.
    pub created_at: Timestamp,
}

/// A reference to a Gitea Actions job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    /// Gitea's job id.
    pub id: i64,
    /// The pick of the job this run serves: the job's `run_attempt` once a runner takes it
    /// for this run ([`AttemptCounting::pick`]).
    pub attempt: u32,
    /// The job's name, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The workflow run the job belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
}

/// Who created a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// A `workflow_job` webhook.
    Webhook,
    /// The queued-jobs API, for a job whose webhook never arrived.
    Backfill,
    /// A push webhook matched against workflow files.
    Push,
    /// An operator (`tinqs-ci runs add`, or a hand-written row).
    Operator,
    /// The planner, keeping a pool's warm runners: a run with no job of its own whose
    /// runner waits, registered and idle, for whichever job Gitea gives it.
    Warm,
}

/// The job's state as Gitea reported it (webhooks; absent in push mode).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum JobState {
    /// Waiting for a runner (or not known to be anything else).
    #[default]
    Queued,
    /// A runner took it.
    InProgress {
        /// The runner that took it, when reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runner: Option<String>,
    },
    /// Finished, with Gitea's conclusion (`success`, `failure`, `cancelled`, …).
    Completed {
        /// Gitea's conclusion.
        #[serde(default)]
        conclusion: String,
    },
}

/// A Gitea job's status as a `workflow_job` webhook's `action` or a jobs-API entry's
/// `status` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// Ready for a runner.
    Queued,
    /// Blocked on `needs:` or concurrency.
    Waiting,
    /// A runner took it.
    InProgress,
    /// Finished.
    Completed,
}

impl JobAction {
    /// Reads Gitea's name for it; `None` for anything else.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobAction::Queued,
            "waiting" => JobAction::Waiting,
            "in_progress" => JobAction::InProgress,
            "completed" => JobAction::Completed,
            _ => return None,
        })
    }
}

/// How a Gitea version counts a job's `run_attempt` (see `wiki/Gitea-Behaviour.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptCounting {
    /// Gitea 1.24 – 1.26: a new job row waits with 0, a runner's pick raises it by one, and a
    /// re-run resets the same row to waiting without touching it.
    #[default]
    RaisedOnPick,
    /// Gitea 1.27+: every attempt of a run has job rows of its own, inserted with that
    /// attempt's number and never raised; a re-run makes new rows (new job ids).
    PerRow,
}

impl AttemptCounting {
    /// The counting of Gitea `major.minor`.
    #[must_use]
    pub fn of_gitea(major: u32, minor: u32) -> Self {
        if (major, minor) >= (1, 27) {
            AttemptCounting::PerRow
        } else {
            AttemptCounting::RaisedOnPick
        }
    }

    /// Which pick of a Gitea job a report with `run_attempt` is about. One Gitea job id can
    /// be run several times (a re-run on Gitea 1.24 – 1.26 resets the same job row), so a
    /// desired run is keyed on the job id *and* its pick ([`RunId::for_job`]): the number
    /// of the runner's pick of that row this report belongs to, from 1.
    ///
    /// - Raised on pick: a waiting job (`queued`, `waiting`) with `run_attempt` N waits for
    ///   pick N+1; a taken or finished one (`in_progress`, `completed`) is pick N (at
    ///   least 1).
    /// - Per row: a row is picked once; its `run_attempt` names it whatever its state.
    #[must_use]
    pub fn pick(self, action: JobAction, run_attempt: u32) -> u32 {
        match (self, action) {
            (AttemptCounting::RaisedOnPick, JobAction::Queued | JobAction::Waiting) => {
                run_attempt.saturating_add(1)
            }
            _ => run_attempt.max(1),
        }
    }
}

impl JobState {
    /// The name of each state, in the order a job goes through them: a recorded state only
    /// ever moves forward.
    pub const ORDER: [&'static str; 3] = ["queued", "in-progress", "completed"];

    /// The state's name (as the table stores it): one of [`JobState::ORDER`].
    #[must_use]
    pub fn name(&self) -> &'static str {
        Self::ORDER[usize::from(self.rank())]
    }

    /// Where the state stands in a job's life: queued 0 < in progress 1 < completed 2.
    #[must_use]
    pub fn rank(&self) -> u8 {
        match self {
            JobState::Queued => 0,
            JobState::InProgress { .. } => 1,
            JobState::Completed { .. } => 2,
        }
    }

    /// The detail the state carries (the runner of an in-progress job, the conclusion of a
    /// completed one), if any.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        match self {
            JobState::Queued => None,
            JobState::InProgress { runner } => runner.as_deref().filter(|r| !r.is_empty()),
            JobState::Completed { conclusion } => {
                Some(conclusion.as_str()).filter(|c| !c.is_empty())
            }
        }
    }

    /// Whether recording `self` over the recorded `old` moves the job forward: a later
    /// state, or the same state gaining a detail it lacked (an in-progress job learning its
    /// runner). Never backwards, and never a detail replaced: webhooks arrive in any order
    /// and more than once, and a late `queued` must not undo `completed`.
    #[must_use]
    pub fn may_overwrite(&self, old: &JobState) -> bool {
        let (o, n) = (old.rank(), self.rank());
        n > o || (n == o && old.detail().is_none() && self.detail().is_some())
    }

    /// The names of the states `self` may overwrite whatever their detail: the earlier ones.
    /// With "the same state without a detail" this is [`JobState::may_overwrite`] in the
    /// form of a conditional write.
    #[must_use]
    pub fn overwrites(&self) -> &'static [&'static str] {
        &Self::ORDER[..usize::from(self.rank())]
    }

    /// The job's state in words, apart from what became of the run: `queued`,
    /// `in progress on <runner>`, `completed (success)`, `completed (failure)`, `cancelled`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            JobState::Queued => "queued".to_owned(),
            JobState::InProgress { runner: Some(r) } => format!("in progress on {r}"),
            JobState::InProgress { runner: None } => "in progress".to_owned(),
            JobState::Completed { conclusion } if conclusion == "cancelled" => {
                "cancelled".to_owned()
            }
            JobState::Completed { conclusion } if conclusion.is_empty() => "completed".to_owned(),
            JobState::Completed { conclusion } => format!("completed ({conclusion})"),
        }
    }
}

/// The controller's half of a run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunStatus {
    /// Where the run is in its life.
    pub phase: Phase,
    /// The current launch attempt, from 1.
    pub attempt: u32,
    /// The instance of the current attempt, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<InstanceId>,
    /// The Gitea runner id of the current attempt, once registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_id: Option<i64>,
    /// The runner name of the current attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_name: Option<RunnerName>,
    /// When the current attempt was claimed for launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<Timestamp>,
    /// When the current attempt's instance was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_at: Option<Timestamp>,
    /// When the current attempt's runner was first seen online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_at: Option<Timestamp>,
    /// When the runner was first seen taking a job: for a warm run, the moment it stopped
    /// being warm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_job_at: Option<Timestamp>,
    /// When EC2 warned that the current attempt's instance is at risk (a Spot interruption
    /// warning or a rebalance recommendation) while its runner was busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_at: Option<Timestamp>,
    /// Since when the registered runner has been seen offline or missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since: Option<Timestamp>,
    /// When the run reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The last thing that went wrong, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Once final: what became of the run, for people (its runner served the job, another
    /// runner took it, attempts used up…). The job's own conclusion is in the spec's
    /// [`JobState`], apart from this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Bumped by every status write; a write that expects another version is refused.
    #[serde(default)]
    pub version: u64,
}

/// The life of a run.
///
/// ```text
///  Pending ──claim──▶ Launching ──instance recorded──▶ Running ──job done, cleaned up──▶ Succeeded
///     ▲                  │ stale claim: relaunch          │
///     └──── requeue ─────┴──────── lost / never registered┘──attempts used up──▶ Failed
///  (any) ──cancel, cleaned up──▶ Cancelled
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Wants a runner; none launched for the current attempt.
    #[default]
    Pending,
    /// Claimed for launch; the instance is not recorded yet.
    Launching,
    /// The current attempt's instance is recorded.
    Running,
    /// Done: the run served its purpose (its runner ran the job, or the job ran elsewhere or
    /// no longer waits) and everything of ours is gone. Says nothing of the job's own
    /// conclusion, which is [`JobState::Completed`]'s.
    #[serde(alias = "succeeded")]
    Done,
    /// Given up: attempts used up, or lifetime exceeded.
    Failed,
    /// Cancelled by an operator, and everything of ours is gone.
    Cancelled,
}

impl Phase {
    /// Whether the run has ended (rows in a final phase leave the active index and expire).
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Cancelled)
    }

    /// The phase's name as written in the table.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Launching => "launching",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }

    /// Parses a phase name as written in the table.
    ///
    /// # Errors
    /// When the name is not a phase.
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => Phase::Pending,
            "launching" => Phase::Launching,
            "running" => Phase::Running,
            // `succeeded` is how rows written before the job's conclusion was kept apart say it.
            "done" | "succeeded" => Phase::Done,
            "failed" => Phase::Failed,
            "cancelled" => Phase::Cancelled,
            other => {
                return Err(format!(
                "`{other}` is not a phase (pending, launching, running, done, failed, cancelled)"
            ))
            }
        })
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl DesiredRun {
    /// A fresh run in phase `Pending`, attempt 1.
    #[must_use]
    pub fn new(id: RunId, spec: RunSpec) -> Self {
        DesiredRun {
            id,
            spec,
            status: RunStatus {
                attempt: 1,
                ..RunStatus::default()
            },
        }
    }

    /// The runner name of the current attempt in `cluster`.
    #[must_use]
    pub fn runner_name(&self, cluster: &str) -> RunnerName {
        RunnerName::new(cluster, &self.id, self.status.attempt.max(1))
    }
}

impl DesiredRun {
    /// Whether the planner made this run to keep a pool's warm runners.
    #[must_use]
    pub fn is_warm(&self) -> bool {
        self.spec.origin == Origin::Warm
    }
}

impl RunSpec {
    /// A spec for a warm runner of `pool`, whose runners carry `labels`.
    #[must_use]
    pub fn for_warm(pool: &str, labels: Vec<String>, now: Timestamp) -> Self {
        RunSpec {
            labels,
            pool: Some(pool.to_owned()),
            repo: None,
            job: None,
            origin: Origin::Warm,
            job_state: JobState::Queued,
            cancel: false,
            created_at: now,
        }
    }

    /// A spec for Gitea job `job` wanting `labels`, as a webhook or backfill creates it.
    #[must_use]
    pub fn for_job(
        job: JobRef,
        labels: Vec<String>,
        repo: Option<String>,
        origin: Origin,
        now: Timestamp,
    ) -> Self {
        RunSpec {
            labels,
            pool: None,
            repo,
            job: Some(job),
            origin,
            job_state: JobState::Queued,
            cancel: false,
            created_at: now,
        }
    }
}

/// A status transition the controller records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
pub enum StatusChange {
    /// A tagged instance of the current attempt was found: record it (`Launching` → `Running`).
    Adopt {
        /// The instance.
        instance: InstanceId,
        /// When EC2 launched it.
        launched_at: Timestamp,
    },
    /// The runner showed online for the first time.
    Registered {
        /// Gitea's runner id.
        runner_id: i64,
        /// When it was seen.
        at: Timestamp,
    },
    /// The registered runner is offline or missing, since `since`.
    Offline {
        /// First seen offline.
        since: Timestamp,
    },
    /// The runner is back online.
    Online,
    /// The runner was seen taking a job (recorded for warm runs).
    TookJob {
        /// When it was seen.
        at: Timestamp,
    },
    /// EC2 warned about the instance while its runner was busy.
    Warned {
        /// When EC2 emitted the notice.
        at: Timestamp,
    },
    /// Start a new attempt (`Pending`, attempt number `attempt`).
    Requeue {
        /// The new attempt number.
        attempt: u32,
    },
    /// End the run.
    Finish {
        /// `Done`, `Failed` or `Cancelled`.
        phase: Phase,
        /// What went wrong, for a failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// What became of the run, for people.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
}

impl RunStatus {
    /// The status after `change`, recorded at `now`. The version is left as it is: the store
    /// bumps it on write.
    #[must_use]
    pub fn apply(&self, change: &StatusChange, now: Timestamp) -> RunStatus {
        let mut s = self.clone();
        match change {
            StatusChange::Adopt {
                instance,
                launched_at,
            } => {
                s.phase = Phase::Running;
                s.instance_id = Some(instance.clone());
                s.launched_at = Some(*launched_at);
            }
            StatusChange::Registered { runner_id, at } => {
                s.runner_id = Some(*runner_id);
                s.registered_at = Some(*at);
                s.offline_since = None;
            }
            StatusChange::Offline { since } => s.offline_since = Some(*since),
            StatusChange::Online => s.offline_since = None,
            StatusChange::TookJob { at } => s.took_job_at = Some(*at),
            StatusChange::Warned { at } => s.warned_at = Some(*at),
            StatusChange::Requeue { attempt } => {
                s = RunStatus {
                    phase: Phase::Pending,
                    attempt: *attempt,
                    last_error: self.last_error.clone(),
                    version: self.version,
                    ..RunStatus::default()
                };
            }
            StatusChange::Finish {
                phase,
                error,
                outcome,
            } => {
                s.phase = *phase;
                s.finished_at = Some(now);
                if error.is_some() {
                    s.last_error.clone_from(error);
                }
                s.outcome.clone_from(outcome);
            }
        }
        s
    }

    /// The status once the executor has claimed `attempt` for launch under `runner`.
    #[must_use]
    pub fn claimed(&self, attempt: u32, runner: RunnerName, now: Timestamp) -> RunStatus {
        RunStatus {
            phase: Phase::Launching,
            attempt,
            runner_name: Some(runner),
            claimed_at: Some(now),
            instance_id: None,
            runner_id: None,
            launched_at: None,
            registered_at: None,
            took_job_at: None,
            warned_at: None,
            offline_since: None,
            finished_at: None,
            ..self.clone()
        }
    }

    /// The status once the runner of the claimed attempt is registered with Gitea on the
    /// instance's behalf (pre-registration), before the instance is launched: its id is
    /// recorded so that a launch abandoned or crashed after this point leaves a registration
    /// the next pass can find and delete.
    #[must_use]
    pub fn preregistered(&self, runner_id: i64) -> RunStatus {
        RunStatus {
            runner_id: Some(runner_id),
            ..self.clone()
        }
    }

    /// The status once a claimed launch that cannot go on (EC2 refused it, the boot script
    /// could not be made) is given up: back to `Pending` for the same attempt, the claim and
    /// the registration dropped, `error` kept for people. The next pass launches again.
    #[must_use]
    pub fn released(&self, error: String) -> RunStatus {
        RunStatus {
            phase: Phase::Pending,
            claimed_at: None,
            runner_id: None,
            last_error: Some(error),
            ..self.clone()
        }
    }

    /// The status once the claimed attempt's instance is recorded.
    #[must_use]
    pub fn launched(&self, instance: InstanceId, at: Timestamp) -> RunStatus {
        RunStatus {
            phase: Phase::Running,
            instance_id: Some(instance),
            launched_at: Some(at),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_job_is_about_the_next_pick_and_a_taken_one_about_its_own() {
        let pick_of = |action, attempt| AttemptCounting::RaisedOnPick.pick(action, attempt);
        assert_eq!(pick_of(JobAction::Queued, 0), 1, "a new job");
        assert_eq!(pick_of(JobAction::Waiting, 0), 1, "blocked on needs");
        assert_eq!(pick_of(JobAction::InProgress, 1), 1);
        assert_eq!(pick_of(JobAction::Completed, 1), 1);
        // A re-run on Gitea 1.24 – 1.26: queued again with the previous run_attempt.
        assert_eq!(pick_of(JobAction::Queued, 1), 2);
        assert_eq!(pick_of(JobAction::InProgress, 2), 2);
        assert_eq!(pick_of(JobAction::InProgress, 0), 1, "never below 1");
    }

    #[test]
    fn from_gitea_1_27_a_job_row_is_one_pick_named_by_its_attempt() {
        let c = AttemptCounting::of_gitea(1, 27);
        assert_eq!(c, AttemptCounting::PerRow);
        assert_eq!(c.pick(JobAction::Queued, 1), 1);
        assert_eq!(c.pick(JobAction::InProgress, 1), 1);
        assert_eq!(c.pick(JobAction::Completed, 1), 1);
        assert_eq!(
            AttemptCounting::of_gitea(1, 26),
            AttemptCounting::RaisedOnPick
        );
        assert_eq!(
            AttemptCounting::of_gitea(1, 26).pick(JobAction::Queued, 1),
            2
        );
    }

    #[test]
    fn a_job_state_reads_as_gitea_reports_it_never_as_the_runs_outcome() {
        let done = |c: &str| JobState::Completed {
            conclusion: c.into(),
        };
        assert_eq!(done("failure").describe(), "completed (failure)");
        assert_eq!(done("success").describe(), "completed (success)");
        assert_eq!(done("cancelled").describe(), "cancelled");
        assert_eq!(JobState::Queued.describe(), "queued");
        assert_eq!(
            JobState::InProgress {
                runner: Some("r1".into())
            }
            .describe(),
            "in progress on r1"
        );
    }

    fn states() -> Vec<JobState> {
        vec![
            JobState::Queued,
            JobState::InProgress { runner: None },
            JobState::InProgress {
                runner: Some(String::new()),
            },
            JobState::InProgress {
                runner: Some("r1".into()),
            },
            JobState::InProgress {
                runner: Some("r2".into()),
            },
            JobState::Completed {
                conclusion: String::new(),
            },
            JobState::Completed {
                conclusion: "success".into(),
            },
            JobState::Completed {
                conclusion: "failure".into(),
            },
        ]
    }

    #[test]
    fn a_job_state_only_moves_forward_or_gains_a_detail() {
        let queued = JobState::Queued;
        let started = JobState::InProgress { runner: None };
        let on_r1 = JobState::InProgress {
            runner: Some("r1".into()),
        };
        let on_r2 = JobState::InProgress {
            runner: Some("r2".into()),
        };
        let done = JobState::Completed {
            conclusion: "success".into(),
        };
        assert!(started.may_overwrite(&queued));
        assert!(done.may_overwrite(&queued));
        assert!(done.may_overwrite(&on_r1));
        assert!(on_r1.may_overwrite(&started), "learns its runner");
        assert!(!on_r2.may_overwrite(&on_r1), "a detail is never replaced");
        assert!(!started.may_overwrite(&on_r1), "nor dropped");
        assert!(
            !queued.may_overwrite(&started),
            "a late queued undoes nothing"
        );
        assert!(!on_r1.may_overwrite(&done));
        assert!(!queued.may_overwrite(&queued));
        assert!(!done.may_overwrite(&done));
        assert_eq!(
            JobState::InProgress {
                runner: Some(String::new())
            }
            .detail(),
            None,
            "an empty runner is no detail"
        );
    }

    #[test]
    fn the_conditional_write_form_of_the_order_agrees_with_may_overwrite() {
        // A store that cannot run `may_overwrite` writes `new` when the recorded state is
        // one of `new.overwrites()`, or the same state without a detail while `new` has one.
        for old in states() {
            for new in states() {
                let conditional = new.overwrites().contains(&old.name())
                    || (old.name() == new.name()
                        && old.detail().is_none()
                        && new.detail().is_some());
                assert_eq!(conditional, new.may_overwrite(&old), "{old:?} -> {new:?}");
            }
        }
        assert_eq!(JobState::Queued.name(), "queued");
        assert_eq!(JobState::InProgress { runner: None }.name(), "in-progress");
        assert!(JobState::Queued.overwrites().is_empty());
    }

    #[test]
    fn the_state_names_are_the_serialized_tags() {
        for s in states() {
            let v = serde_json::to_value(&s).expect("serializes");
            assert_eq!(v["state"], s.name(), "{s:?}");
        }
    }

    #[test]
    fn a_preregistered_runner_is_recorded_on_the_claim_and_nothing_else_changes() {
        let claimed = RunStatus {
            attempt: 2,
            version: 7,
            ..RunStatus::default()
        }
        .claimed(
            2,
            RunnerName::new("c", &RunId::for_job(1, 1), 2),
            Timestamp::from_millis(5_000),
        );
        let registered = claimed.preregistered(42);
        assert_eq!(registered.runner_id, Some(42));
        assert_eq!(
            RunStatus {
                runner_id: None,
                ..registered
            },
            claimed
        );
    }

    #[test]
    fn a_released_claim_is_pending_again_for_the_same_attempt_with_the_error() {
        let claimed = RunStatus {
            attempt: 3,
            version: 9,
            last_error: Some("earlier".into()),
            ..RunStatus::default()
        }
        .claimed(
            3,
            RunnerName::new("c", &RunId::for_job(1, 1), 3),
            Timestamp::from_millis(5_000),
        )
        .preregistered(42);
        let released = claimed.released("no capacity".into());
        assert_eq!(released.phase, Phase::Pending);
        assert_eq!(released.attempt, 3, "the same attempt, launched again");
        assert_eq!(
            released.claimed_at, None,
            "no claim: the next pass may claim it"
        );
        assert_eq!(
            released.runner_id, None,
            "the registration was dropped with it"
        );
        assert_eq!(released.last_error.as_deref(), Some("no capacity"));
        assert_eq!(released.version, 9, "the store bumps it on write");
        assert_eq!(released.runner_name, claimed.runner_name);
    }

    #[test]
    fn rows_written_as_succeeded_read_as_done() {
        assert_eq!(Phase::parse("succeeded"), Ok(Phase::Done));
        assert_eq!(Phase::parse("done"), Ok(Phase::Done));
        let p: Phase = serde_json::from_str("\"succeeded\"").expect("alias");
        assert_eq!(p, Phase::Done);
        assert_eq!(Phase::Done.as_str(), "done");
    }
}
