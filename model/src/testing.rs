//! Builders and a planner test scene ([`Scene`]), for tests and benchmarks of the planner (here
//! and in the controller). Pure like the rest of the crate.

use std::time::Duration;

use crate::config::{Safety, Timeouts};
use crate::desired::{DesiredRun, JobRef, JobState, Origin, Phase, RunSpec, RunStatus};
use crate::ids::{InstanceId, RunId, RunnerName};
use crate::observed::{
    DesiredView, ForgeRunner, Instance, InstanceState, JobSeen, Lifecycle, Observed, QueuedJob,
    Seen,
};
use crate::plan::{Action, Plan, Policy, PoolPolicy};
use crate::tags;
use crate::time::Timestamp;

/// The cluster id the builders use.
pub const CLUSTER: &str = "test";

/// A fixed "now" for tests: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_millis(1_767_225_600_000);

/// `T0` plus `secs` seconds.
#[must_use]
pub fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

/// A policy with pools `go` (labels go, linux) and `docker` (labels docker, linux), foreign
/// label `host`, default timeouts and generous budgets.
#[must_use]
pub fn policy() -> Policy {
    let pool = |name: &str, extra: &[&str]| PoolPolicy {
        name: name.to_owned(),
        labels: std::iter::once(name)
            .chain(extra.iter().copied())
            .map(str::to_owned)
            .collect(),
        max_instances: 10,
        max_lifetime: Duration::from_secs(6 * 3600),
        warm: None,
        hourly_price: None,
    };
    Policy {
        cluster: CLUSTER.to_owned(),
        pools: vec![pool("docker", &["linux"]), pool("go", &["linux"])],
        foreign_labels: std::iter::once("host".to_owned()).collect(),
        timeouts: Timeouts::default(),
        safety: Safety {
            max_launches_per_pass: 100,
            max_terminations_per_pass: 100,
            max_instances: 100,
            max_attempts: 3,
        },
        can_disable_runners: false,
    }
}

/// A webhook-made run for Gitea job `job` asking for `labels`, created at `T0`.
#[must_use]
pub fn job_run(job: i64, labels: &[&str]) -> DesiredRun {
    let spec = RunSpec::for_job(
        JobRef {
            id: job,
            attempt: 1,
            name: Some(format!("job {job}")),
            run_id: Some(1),
        },
        labels.iter().map(|l| (*l).to_owned()).collect(),
        Some("acme/app".to_owned()),
        Origin::Webhook,
        T0,
    );
    DesiredRun::new(RunId::for_job(job, 1), spec)
}

/// `run` ended in `phase` at `at`, as the table keeps it.
#[must_use]
pub fn ended(mut run: DesiredRun, phase: Phase, at: Timestamp) -> DesiredRun {
    run.status.phase = phase;
    run.status.finished_at = Some(at);
    run
}

/// `policy` with warm runners in pool `pool`: `min_idle` kept always (no schedule), with an
/// optional max idle age.
#[must_use]
pub fn with_warm(
    mut policy: Policy,
    pool: &str,
    min_idle: u32,
    max_idle_age: Option<Duration>,
) -> Policy {
    for p in policy.pools.iter_mut().filter(|p| p.name == pool) {
        p.warm = Some(crate::plan::WarmPolicy {
            min_idle,
            schedule: Vec::new(),
            max_idle_age,
        });
    }
    policy
}

/// A warm run of pool `pool` (labels as [`policy`] gives them), number `n`, created at
/// `created`.
#[must_use]
pub fn warm_run(pool: &str, n: u32, created: Timestamp) -> DesiredRun {
    let spec = RunSpec::for_warm(pool, vec![pool.to_owned(), "linux".to_owned()], created);
    DesiredRun::new(RunId::for_warm(pool, created, n), spec)
}

/// The runner name of `run`'s current attempt.
#[must_use]
pub fn name_of(run: &DesiredRun) -> RunnerName {
    run.runner_name(CLUSTER)
}

/// `run` moved to `Running` on instance `instance`, launched at `launched`.
#[must_use]
pub fn running(mut run: DesiredRun, instance: &str, launched: Timestamp) -> DesiredRun {
    let name = name_of(&run);
    run.status = run
        .status
        .claimed(run.status.attempt.max(1), name, launched)
        .launched(InstanceId::new(instance), launched);
    run
}

/// An instance of ours tagged for `run`'s current attempt, in pool `pool`.
#[must_use]
pub fn instance_for(
    run: &DesiredRun,
    id: &str,
    pool: &str,
    state: InstanceState,
    launched: Timestamp,
) -> Instance {
    let mut i = bare_instance(id, state, launched);
    i.tags.insert(tags::CLUSTER.into(), CLUSTER.into());
    i.tags.insert(tags::POOL.into(), pool.into());
    i.tags.insert(tags::RUN_ID.into(), run.id.to_string());
    i.tags
        .insert(tags::RUNNER_NAME.into(), name_of(run).to_string());
    i.tags
        .insert(tags::ATTEMPT.into(), run.status.attempt.max(1).to_string());
    i
}

/// An instance with no tags at all (someone else's).
#[must_use]
pub fn bare_instance(id: &str, state: InstanceState, launched: Timestamp) -> Instance {
    Instance {
        id: InstanceId::new(id),
        state,
        state_reason: None,
        launched_at: launched,
        lifecycle: Lifecycle::Spot,
        instance_type: "c7a.large".into(),
        zone: "eu-west-1a".into(),
        tags: tags::Tags::default(),
    }
}

/// A Gitea runner named `name`.
#[must_use]
pub fn runner(id: i64, name: &str, labels: &[&str], online: bool, busy: bool) -> ForgeRunner {
    ForgeRunner {
        id,
        name: name.to_owned(),
        online,
        busy,
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        ephemeral: true,
        disabled: false,
    }
}

/// A queued Gitea job.
#[must_use]
pub fn queued(job: i64, labels: &[&str]) -> QueuedJob {
    QueuedJob {
        id: job,
        attempt: 0,
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        repo: "acme/app".into(),
        name: format!("job {job}"),
        run_id: Some(1),
        counting: crate::desired::AttemptCounting::RaisedOnPick,
    }
}

/// A planner test scene: the table, what EC2 and Gitea show, and the time. Every source is seen
/// completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scene {
    /// The table.
    pub desired: DesiredView,
    /// EC2 instances (ours and others).
    pub instances: Vec<Instance>,
    /// Gitea runners.
    pub runners: Vec<ForgeRunner>,
    /// Queued Gitea jobs.
    pub jobs: Vec<QueuedJob>,
    /// Jobs read one by one.
    pub reads: Vec<JobSeen>,
    /// EC2's advance notices.
    pub notices: Vec<crate::notice::Notice>,
    /// Since when runners are known disabled, by id.
    pub disabled_since: std::collections::BTreeMap<i64, Timestamp>,
    /// Pools without capacity, until when.
    pub pools_without_capacity: std::collections::BTreeMap<String, Timestamp>,
    /// Now.
    pub now: Timestamp,
    next_id: u64,
}

impl Scene {
    /// A scene.
    #[must_use]
    pub fn new(
        runs: Vec<DesiredRun>,
        instances: Vec<Instance>,
        runners: Vec<ForgeRunner>,
        jobs: Vec<QueuedJob>,
        now: Timestamp,
    ) -> Self {
        Scene {
            desired: DesiredView {
                runs,
                invalid: Vec::new(),
                finished: Vec::new(),
                complete: true,
            },
            instances,
            runners,
            jobs,
            reads: Vec::new(),
            notices: Vec::new(),
            disabled_since: std::collections::BTreeMap::new(),
            pools_without_capacity: std::collections::BTreeMap::new(),
            now,
            next_id: 0,
        }
    }

    /// The observation of this scene.
    #[must_use]
    pub fn observed(&self) -> Observed {
        Observed {
            instances: Seen::Complete {
                items: self.instances.clone(),
            },
            runners: Seen::Complete {
                items: self.runners.clone(),
            },
            queued_jobs: Seen::Complete {
                items: self.jobs.clone(),
            },
            jobs_read: self.reads.clone(),
            notices: self.notices.clone(),
            disabled_since: self.disabled_since.clone(),
            instances_read_at: None,
            pools_without_capacity: self.pools_without_capacity.clone(),
        }
    }

    /// Plans under `policy`.
    #[must_use]
    pub fn plan(&self, policy: &Policy) -> Plan {
        crate::plan(&self.desired, &self.observed(), policy, self.now)
    }

    /// Carries out `plan` the way a faultless executor would, instantly: rows created and
    /// updated, instances launched (pending) or terminated, runners pre-registered (offline,
    /// never connected), disabled or deleted. Final runs leave the active view.
    pub fn apply(&mut self, plan: &Plan) {
        let now = self.now;
        for action in &plan.actions {
            match action {
                Action::CreateRun { run, spec, .. } => {
                    if !self.desired.runs.iter().any(|r| &r.id == run) {
                        self.desired
                            .runs
                            .push(DesiredRun::new(run.clone(), spec.clone()));
                    }
                }
                Action::Launch {
                    run,
                    attempt,
                    runner: name,
                    pool,
                    labels,
                    ..
                } => {
                    self.next_id += 1;
                    let id = format!("i-sim{:08}", self.next_id);
                    let Some(row) = self.desired.runs.iter_mut().find(|r| &r.id == run) else {
                        continue;
                    };
                    row.status = row
                        .status
                        .claimed(*attempt, name.clone(), now)
                        .launched(InstanceId::new(&id), now);
                    self.instances
                        .push(instance_for(row, &id, pool, InstanceState::Pending, now));
                    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
                    let rid =
                        i64::try_from(self.next_id).unwrap_or(i64::MAX - 1_000_000) + 1_000_000;
                    self.runners
                        .push(runner(rid, name.as_str(), &labels, false, false));
                }
                Action::Terminate { instance, .. } => {
                    for i in self.instances.iter_mut().filter(|i| &i.id == instance) {
                        i.state = InstanceState::ShuttingDown;
                    }
                }
                Action::DisableRunner { runner_id, .. } => {
                    for r in self.runners.iter_mut().filter(|r| r.id == *runner_id) {
                        r.disabled = true;
                    }
                }
                Action::Deregister { runner_id, .. } => self.runners.retain(|r| r.id != *runner_id),
                Action::UpdateStatus { run, change, .. } => {
                    if let Some(row) = self.desired.runs.iter_mut().find(|r| &r.id == run) {
                        row.status = row.status.apply(change, now);
                    } else if let Some(k) = self.desired.finished.iter().position(|r| &r.id == run)
                    {
                        // A run tried once more: it is active again.
                        let mut row = self.desired.finished.remove(k);
                        row.status = row.status.apply(change, now);
                        self.desired.runs.push(row);
                    }
                }
            }
        }
        // Final runs leave the active index; the controller's observe step still reports
        // those whose job Gitea lists as queued, so backfill does not bring them back.
        let ended: Vec<DesiredRun> = self
            .desired
            .runs
            .iter()
            .filter(|r| r.status.phase.is_final())
            .cloned()
            .collect();
        self.desired.finished.extend(ended);
        self.desired.runs.retain(|r| !r.status.phase.is_final());
    }
}

/// A status with the given phase and attempt, for hand-made rows.
#[must_use]
pub fn status(phase: Phase, attempt: u32) -> RunStatus {
    RunStatus {
        phase,
        attempt,
        ..RunStatus::default()
    }
}

/// Sets a run's job state.
#[must_use]
pub fn with_job_state(mut run: DesiredRun, state: JobState) -> DesiredRun {
    run.spec.job_state = state;
    run
}

/// Gitea's answer to reading job `job` (asking for `labels`) by id: its `run_attempt`,
/// action (`queued`, `in_progress`, …) and runner.
#[must_use]
pub fn read(
    job: i64,
    labels: &[&str],
    action: &str,
    attempt: u32,
    runner: Option<&str>,
) -> JobSeen {
    let action =
        crate::desired::JobAction::parse(action).unwrap_or(crate::desired::JobAction::Queued);
    JobSeen {
        id: job,
        found: crate::observed::JobFound::Job {
            attempt,
            action,
            runner: runner.map(str::to_owned),
            conclusion: (action == crate::desired::JobAction::Completed)
                .then(|| "success".to_owned()),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            counting: crate::desired::AttemptCounting::RaisedOnPick,
        },
    }
}
