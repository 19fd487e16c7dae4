//! The planner: compare what is wanted with what exists, and list what to change.
//!
//! `plan` is pure and level-triggered: its result depends only on its arguments, never on why
//! the loop woke up. Each rule is a small function over one run, one instance or one runner;
//! `plan` wires them together and applies the safety gates (partial views, budgets, caps).
//! See `wiki/Architecture.md` for every rule with its reason and timeout.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Safety, Timeouts};
pub use crate::desired::StatusChange;
use crate::desired::{DesiredRun, RunSpec};
use crate::ids::{InstanceId, RunId, RunnerName};
use crate::observed::{DesiredView, Observed};
use crate::time::{human, Timestamp};

/// The settings the planner works under, derived from the configuration and from what the
/// Gitea server supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Our cluster id (ownership tag value and runner name prefix).
    pub cluster: String,
    /// Pools in configuration order (sorted by label).
    pub pools: Vec<PoolPolicy>,
    /// Labels served by runners that are not ours.
    pub foreign_labels: BTreeSet<String>,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// Budgets and caps.
    pub safety: Safety,
    /// Whether Gitea can disable a runner (1.26+), so idle runners are disabled before removal.
    pub can_disable_runners: bool,
}

/// What the planner needs of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPolicy {
    /// The pool's label (its key in the config).
    pub name: String,
    /// Every label its runners carry, the pool's own first.
    pub labels: Vec<String>,
    /// Most live instances at once.
    pub max_instances: u32,
    /// Hard lifetime of its instances.
    pub max_lifetime: Duration,
    /// Its warm runners, when it keeps any.
    pub warm: Option<WarmPolicy>,
    /// What one of its instances costs per hour, when the configuration says: shown, never
    /// used to plan.
    pub hourly_price: Option<crate::config::HourlyPrice>,
}

/// What the planner needs of a pool's warm runners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPolicy {
    /// Idle runners kept ready inside the schedule.
    pub min_idle: u32,
    /// Windows in which `min_idle` applies; empty: always.
    pub schedule: Vec<crate::schedule::Window>,
    /// Age after which an idle warm runner is replaced.
    pub max_idle_age: Option<Duration>,
}

impl WarmPolicy {
    /// The warm runners wanted at `now`: `min_idle` inside a window (or with no schedule),
    /// else 0.
    #[must_use]
    pub fn min_idle_at(&self, now: Timestamp) -> u32 {
        if self.schedule.is_empty() || self.schedule.iter().any(|w| w.contains(now)) {
            self.min_idle
        } else {
            0
        }
    }
}

impl Policy {
    /// The policy for `config`; `can_disable_runners` comes from the Gitea version.
    #[must_use]
    pub fn from_config(config: &Config, can_disable_runners: bool) -> Self {
        Policy {
            cluster: config.cluster_id.clone(),
            pools: config
                .pools
                .iter()
                .map(|(name, p)| PoolPolicy {
                    name: name.clone(),
                    labels: p.runner_labels(name),
                    max_instances: p.max_instances,
                    max_lifetime: config.max_lifetime(name),
                    warm: p.warm.as_ref().map(|w| WarmPolicy {
                        min_idle: w.min_idle,
                        // Validated with the configuration: an entry that does not parse
                        // was refused there.
                        schedule: w.windows().unwrap_or_default(),
                        max_idle_age: w.max_idle_age,
                    }),
                    hourly_price: p.hourly_price,
                })
                .collect(),
            foreign_labels: config.foreign_labels.iter().cloned().collect(),
            timeouts: config.timeouts,
            safety: config.safety,
            can_disable_runners,
        }
    }
}

impl Policy {
    /// The pool that serves `spec`: the operator's choice when set, else the pools whose
    /// runners carry every label the job asks for (as Gitea matches runners to jobs),
    /// preferring one named by a label, then the first by name. `None`: unschedulable.
    #[must_use]
    pub fn pool_for(&self, spec: &RunSpec) -> Option<&PoolPolicy> {
        if let Some(p) = &spec.pool {
            return self.pool(p);
        }
        if spec.labels.is_empty() {
            return None;
        }
        let fits = |p: &&PoolPolicy| spec.labels.iter().all(|l| p.labels.contains(l));
        self.pools
            .iter()
            .filter(fits)
            .find(|p| spec.labels.contains(&p.name))
            .or_else(|| self.pools.iter().find(fits))
    }

    /// The configured pool whose label is `name`.
    #[must_use]
    pub fn pool(&self, name: &str) -> Option<&PoolPolicy> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// Whether `labels` ask for a label only runners not ours serve (`foreign_labels`).
    #[must_use]
    pub fn asks_foreign(&self, labels: &[String]) -> bool {
        labels.iter().any(|l| self.foreign_labels.contains(l))
    }

    /// Whether a run for `spec` is left to the runners that are not ours: it names no pool
    /// and asks for a foreign label. The planner does nothing for it, and `status` neither
    /// counts it nor calls it a problem.
    #[must_use]
    pub fn is_foreign(&self, spec: &RunSpec) -> bool {
        spec.pool.is_none() && self.asks_foreign(&spec.labels)
    }

    /// The hard lifetime of an instance of `pool` (`pools.<label>.max_lifetime`), or
    /// `timeouts.max_lifetime` for an instance of no configured pool.
    #[must_use]
    pub fn max_lifetime_of(&self, pool: Option<&PoolPolicy>) -> Duration {
        pool.map_or(self.timeouts.max_lifetime, |p| p.max_lifetime)
    }

    /// When a runner whose machine started at `started` and that was never online is given
    /// up on (`timeouts.registration`): from then on it "never registered".
    #[must_use]
    pub fn registration_deadline(&self, started: Timestamp) -> Timestamp {
        started.plus(self.timeouts.registration)
    }
}

/// What to do this pass.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Plan {
    /// Changes to make, in the order they were decided.
    pub actions: Vec<Action>,
    /// Runs no pool can serve, with their labels: reported every pass, never dropped.
    pub unschedulable: Vec<Unschedulable>,
    /// Work held back by a budget or cap; it shows up again next pass.
    pub deferred: Vec<Deferred>,
    /// Why destructive actions were withheld this pass (a source was seen partially).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withheld: Option<String>,
    /// When to look again if nothing wakes the loop sooner.
    #[serde(with = "crate::time::duration_serde")]
    pub requeue_after: Duration,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Write a new desired run (backfill of a job whose webhook never arrived).
    CreateRun {
        /// The new run's id.
        run: RunId,
        /// Its spec.
        spec: RunSpec,
        /// Why.
        reason: Reason,
    },
    /// Claim the run, register its runner, launch its instance, record it.
    Launch {
        /// The run.
        run: RunId,
        /// The attempt being launched.
        attempt: u32,
        /// The runner name of that attempt.
        runner: RunnerName,
        /// The pool to launch in.
        pool: String,
        /// Labels the runner registers with.
        labels: Vec<String>,
        /// Why.
        reason: Reason,
    },
    /// Terminate an instance of ours.
    Terminate {
        /// The instance.
        instance: InstanceId,
        /// The run it served, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunId>,
        /// The name of the runner it was launched for (its tag), when known: a run's steps
        /// stop that runner before this machine goes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runner: Option<String>,
        /// Its pool, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
        /// Why.
        reason: Reason,
    },
    /// Stop a runner from taking new jobs (Gitea 1.26+): the first step of retiring it.
    DisableRunner {
        /// Gitea's runner id.
        runner_id: i64,
        /// The runner's name.
        runner: String,
        /// The run it belongs to, when one does: carried out with that run's other steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunId>,
        /// Why.
        reason: Reason,
    },
    /// Delete a runner registration from Gitea.
    Deregister {
        /// Gitea's runner id.
        runner_id: i64,
        /// The runner's name.
        runner: String,
        /// The run it belongs to, when one does: carried out with that run's other steps,
        /// before its machine is terminated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        run: Option<RunId>,
        /// Where Gitea cannot disable runners: delete only if the runner is still as it was
        /// seen (read again just before the delete), else skip this and the run's later steps.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guard: Option<SeenRunner>,
        /// Why.
        reason: Reason,
    },
    /// Change a run's status.
    UpdateStatus {
        /// The run.
        run: RunId,
        /// The change.
        change: StatusChange,
        /// Why.
        reason: Reason,
    },
}

/// A runner as the plan saw it: the precondition of a guarded deregistration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenRunner {
    /// Whether it was online.
    pub online: bool,
}

impl SeenRunner {
    /// Whether a runner read again now (`online`, `busy`) is still as seen: not busy, and
    /// online or offline as before (a runner that came online since may be taking a job).
    #[must_use]
    pub fn still_holds(self, online: bool, busy: bool) -> bool {
        !busy && online == self.online
    }
}

/// Why an action was planned, in words a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Reason {
    /// A run wants a runner and has none.
    NoRunner,
    /// A queued Gitea job had no desired run (its webhook never arrived).
    Backfill {
        /// Gitea's job id.
        job_id: i64,
    },
    /// A claim is older than the launch timeout and no instance exists.
    StaleClaim {
        /// The launch timeout.
        #[serde(with = "crate::time::duration_serde")]
        timeout: Duration,
    },
    /// A tagged instance of the current attempt exists.
    InstanceFound,
    /// The runner was seen online.
    RunnerOnline,
    /// The registered runner was seen offline or missing.
    RunnerOffline,
    /// The runner did not register within the registration timeout.
    NeverRegistered {
        /// The registration timeout.
        #[serde(with = "crate::time::duration_serde")]
        timeout: Duration,
    },
    /// The runner sat idle past the idle timeout and nothing queued could use it.
    Idle {
        /// The idle timeout.
        #[serde(with = "crate::time::duration_serde")]
        timeout: Duration,
    },
    /// The runner stayed online and idle while a job it could serve waited.
    Stuck {
        /// The stuck timeout.
        #[serde(with = "crate::time::duration_serde")]
        timeout: Duration,
    },
    /// The runner was disabled on an earlier pass and is still not busy.
    Disabled,
    /// The runner was offline or missing past the grace period.
    Zombie {
        /// The grace period.
        #[serde(with = "crate::time::duration_serde")]
        grace: Duration,
    },
    /// A runner of ours has no live instance.
    Ghost,
    /// An instance of ours that no live run wants.
    Orphan {
        /// The minimum age it passed.
        #[serde(with = "crate::time::duration_serde")]
        min_age: Duration,
    },
    /// The instance outlived its max lifetime.
    MaxLifetime {
        /// The lifetime.
        #[serde(with = "crate::time::duration_serde")]
        limit: Duration,
    },
    /// EC2 reclaimed the Spot instance before the run finished.
    SpotInterruption,
    /// The instance is gone and the job still waits.
    InstanceLost,
    /// The job finished (or this pick of it is over: re-run since, or gone).
    JobFinished,
    /// The run's runner took the job and its machine ended by itself.
    RunnerServedJob,
    /// The job was taken by another runner.
    JobTakenElsewhere,
    /// The run's runner is gone and its job no longer waits (it ran, here or elsewhere).
    JobNoLongerWaiting,
    /// An operator cancelled the run.
    Cancelled,
    /// The pool keeps warm runners and has fewer than it wants.
    WarmPool {
        /// The pool.
        pool: String,
        /// The warm runners it wants now.
        min_idle: u32,
    },
    /// The warm runner took a queued job: it no longer counts as warm.
    WarmRunnerTookJob,
    /// The warm runner idled past its maximum idle age and a fresh one is ready.
    WarmAged {
        /// The maximum idle age.
        #[serde(with = "crate::time::duration_serde")]
        max_idle_age: Duration,
    },
    /// The run used every attempt.
    AttemptsExhausted {
        /// The attempt limit.
        attempts: u32,
    },
    /// EC2 sent an advance notice about the instance (a Spot interruption warning or a
    /// rebalance recommendation) while its runner was not busy.
    Notice {
        /// Which notice.
        kind: crate::notice::NoticeKind,
    },
    /// The run's runner took another run's job while this run's job still waits.
    RunnerTookAnotherJob,
    /// A run failed after its attempts rested and its job still waits in Gitea.
    RetryFailed {
        /// The rest (`timeouts.retry_failed`).
        #[serde(with = "crate::time::duration_serde")]
        after: Duration,
    },
}

impl Reason {
    /// A short stable name (`never-registered`, `orphan`…), for metric labels and logs.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NoRunner => "no-runner",
            Reason::Backfill { .. } => "backfill",
            Reason::StaleClaim { .. } => "stale-claim",
            Reason::InstanceFound => "instance-found",
            Reason::RunnerOnline => "runner-online",
            Reason::RunnerOffline => "runner-offline",
            Reason::NeverRegistered { .. } => "never-registered",
            Reason::Idle { .. } => "idle",
            Reason::Stuck { .. } => "stuck",
            Reason::Disabled => "disabled",
            Reason::Zombie { .. } => "zombie",
            Reason::Ghost => "ghost",
            Reason::Orphan { .. } => "orphan",
            Reason::MaxLifetime { .. } => "max-lifetime",
            Reason::SpotInterruption => "spot-interruption",
            Reason::InstanceLost => "instance-lost",
            Reason::JobFinished => "job-finished",
            Reason::RunnerServedJob => "runner-served-job",
            Reason::JobTakenElsewhere => "job-taken-elsewhere",
            Reason::JobNoLongerWaiting => "job-no-longer-waiting",
            Reason::Cancelled => "cancelled",
            Reason::WarmPool { .. } => "warm-pool",
            Reason::WarmRunnerTookJob => "warm-runner-took-job",
            Reason::WarmAged { .. } => "warm-aged",
            Reason::AttemptsExhausted { .. } => "attempts-exhausted",
            Reason::RetryFailed { .. } => "retry-failed",
            Reason::RunnerTookAnotherJob => "runner-took-another-job",
            Reason::Notice {
                kind: crate::notice::NoticeKind::InterruptionWarning,
            } => "interruption-warning",
            Reason::Notice {
                kind: crate::notice::NoticeKind::RebalanceRecommendation,
            } => "rebalance-recommendation",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoRunner => f.write_str("run wants a runner and has none"),
            Reason::Backfill { job_id } => {
                write!(f, "job {job_id} is queued in Gitea but had no desired run")
            }
            Reason::StaleClaim { timeout } => {
                write!(f, "claimed but no instance within {}", human(*timeout))
            }
            Reason::InstanceFound => f.write_str("tagged instance found"),
            Reason::RunnerOnline => f.write_str("runner online"),
            Reason::RunnerOffline => f.write_str("runner offline"),
            Reason::NeverRegistered { timeout } => {
                write!(f, "never registered within {}", human(*timeout))
            }
            Reason::Idle { timeout } => write!(
                f,
                "idle for {} with nothing queued for its labels",
                human(*timeout)
            ),
            Reason::Stuck { timeout } => write!(
                f,
                "stuck: online and idle for {} while a job it could serve waited",
                human(*timeout)
            ),
            Reason::Disabled => f.write_str("disabled on an earlier pass and still not busy"),
            Reason::Zombie { grace } => write!(f, "runner offline for more than {}", human(*grace)),
            Reason::Ghost => f.write_str("runner has no live instance"),
            Reason::Orphan { min_age } => write!(
                f,
                "orphan: no live run wants it (older than {})",
                human(*min_age)
            ),
            Reason::MaxLifetime { limit } => write!(f, "exceeded max lifetime {}", human(*limit)),
            Reason::SpotInterruption => f.write_str("spot interruption before the run finished"),
            Reason::InstanceLost => f.write_str("instance gone while the job still waits"),
            Reason::JobFinished => f.write_str("job finished"),
            Reason::RunnerServedJob => f.write_str("its runner took the job and ended"),
            Reason::JobTakenElsewhere => f.write_str("job was taken by another runner"),
            Reason::JobNoLongerWaiting => f.write_str("the job no longer waits for a runner"),
            Reason::Cancelled => f.write_str("cancelled by an operator"),
            Reason::WarmPool { pool, min_idle } => write!(
                f,
                "pool {pool} keeps {min_idle} warm runner{} ready",
                if *min_idle == 1 { "" } else { "s" }
            ),
            Reason::WarmRunnerTookJob => f.write_str("the warm runner took a queued job"),
            Reason::WarmAged { max_idle_age } => write!(
                f,
                "warm runner idle past its max idle age {}; a fresh one replaces it",
                human(*max_idle_age)
            ),
            Reason::AttemptsExhausted { attempts } => {
                write!(f, "gave up after {attempts} attempts")
            }
            Reason::Notice { kind } => write!(f, "EC2 {kind} for its instance"),
            Reason::RunnerTookAnotherJob => write!(
                f,
                "its runner took another queued job and its own still waits: another runner"
            ),
            Reason::RetryFailed { after } => write!(
                f,
                "failed {} ago and Gitea still queues its job: one more attempt",
                human(*after)
            ),
        }
    }
}

/// A run no pool can serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unschedulable {
    /// The run.
    pub run: RunId,
    /// The labels nothing serves.
    pub labels: Vec<String>,
}

/// Work held back by a budget or cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deferred {
    /// What was held back (`launch job-1-1`, `terminate i-0abc`).
    pub what: String,
    /// Which limit held it back.
    pub limit: String,
}

mod index;
mod order;
mod rules;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_handover;
#[cfg(test)]
mod tests_notice;
#[cfg(test)]
mod tests_order;
#[cfg(test)]
mod tests_retire;
#[cfg(test)]
mod tests_warm;
mod warm_summary;

pub use rules::{DISABLE_SETTLE, EC2_LIST_LAG};
pub use warm_summary::{warm_summary, WarmSummary};

/// Plans one pass: compares `desired` runs with what was `observed` under `policy` at `now`.
///
/// # Guarantees
/// - Pure and deterministic: the same arguments give the same plan.
/// - If any source was seen partially, no `Terminate`, `Deregister` or `DisableRunner` is
///   planned, and no status change that rests on something being absent; `Plan::withheld`
///   says why.
/// - An instance without our cluster tag is never named in an action.
/// - A busy runner's instance is never terminated before its max lifetime.
/// - Launches stay within the per-pass budget, each pool's cap and the global cap; what does
///   not fit is listed in `Plan::deferred` and planned again next pass.
/// - Cost is O(n log n) in the number of runs, instances, runners and jobs.
#[must_use]
pub fn plan(desired: &DesiredView, observed: &Observed, policy: &Policy, now: Timestamp) -> Plan {
    let backfilled = rules::backfill(desired, observed, policy, now);
    rules::Planner::new(desired, &backfilled, observed, policy, now).run()
}

impl Action {
    /// The run this action concerns, if any.
    #[must_use]
    pub fn run(&self) -> Option<&RunId> {
        match self {
            Action::CreateRun { run, .. }
            | Action::Launch { run, .. }
            | Action::UpdateStatus { run, .. } => Some(run),
            Action::Terminate { run, .. }
            | Action::DisableRunner { run, .. }
            | Action::Deregister { run, .. } => run.as_ref(),
        }
    }

    /// Whether the action removes or stops something (and so needs a complete view).
    #[must_use]
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Action::Terminate { .. } | Action::Deregister { .. } | Action::DisableRunner { .. }
        )
    }

    /// A short kind name (`launch`, `terminate`…), for metrics and logs.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateRun { .. } => "create-run",
            Action::Launch { .. } => "launch",
            Action::Terminate { .. } => "terminate",
            Action::DisableRunner { .. } => "disable-runner",
            Action::Deregister { .. } => "deregister",
            Action::UpdateStatus { .. } => "update-status",
        }
    }

    /// The reason given for the action.
    #[must_use]
    pub fn reason(&self) -> &Reason {
        match self {
            Action::CreateRun { reason, .. }
            | Action::Launch { reason, .. }
            | Action::Terminate { reason, .. }
            | Action::DisableRunner { reason, .. }
            | Action::Deregister { reason, .. }
            | Action::UpdateStatus { reason, .. } => reason,
        }
    }
}

impl fmt::Display for Action {
    /// One line for a plan review: what, on which target, in which pool, and why.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateRun { run, spec, reason } => {
                write!(f, "create run {run} [{}]: {reason}", spec.labels.join(","))
            }
            Action::Launch {
                run,
                attempt,
                runner,
                pool,
                reason,
                ..
            } => {
                write!(
                    f,
                    "launch {runner} (run {run}, attempt {attempt}) in pool {pool}: {reason}"
                )
            }
            Action::Terminate {
                instance,
                run,
                pool,
                reason,
                ..
            } => {
                write!(f, "terminate {instance}")?;
                if let Some(run) = run {
                    write!(f, " (run {run})")?;
                }
                if let Some(pool) = pool {
                    write!(f, " in pool {pool}")?;
                }
                write!(f, ": {reason}")
            }
            Action::DisableRunner {
                runner_id,
                runner,
                reason,
                ..
            } => {
                write!(f, "disable runner {runner} (#{runner_id}): {reason}")
            }
            Action::Deregister {
                runner_id,
                runner,
                reason,
                ..
            } => {
                write!(f, "deregister runner {runner} (#{runner_id}): {reason}")
            }
            Action::UpdateStatus {
                run,
                change,
                reason,
            } => write!(f, "mark run {run} {change}: {reason}"),
        }
    }
}

impl fmt::Display for StatusChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusChange::Adopt { instance, .. } => write!(f, "running on {instance}"),
            StatusChange::Registered { runner_id, .. } => {
                write!(f, "registered as runner #{runner_id}")
            }
            StatusChange::Offline { since } => write!(f, "offline since {since}"),
            StatusChange::Online => f.write_str("online again"),
            StatusChange::TookJob { at } => write!(f, "took a job at {at}"),
            StatusChange::Requeue { attempt } => write!(f, "pending for attempt {attempt}"),
            StatusChange::Warned { at } => write!(f, "warned by EC2 at {at}"),
            StatusChange::Finish {
                phase,
                error: Some(e),
                ..
            } => write!(f, "{phase} ({e})"),
            StatusChange::Finish { phase, .. } => write!(f, "{phase}"),
        }
    }
}

impl Plan {
    /// Whether the plan changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Applies `plan` to a desired run as the executor would record it, for previews and tests:
    /// the run's status after every `UpdateStatus` aimed at it.
    #[must_use]
    pub fn status_after(&self, run: &DesiredRun, now: Timestamp) -> crate::desired::RunStatus {
        self.actions
            .iter()
            .fold(run.status.clone(), |s, a| match a {
                Action::UpdateStatus {
                    run: id, change, ..
                } if *id == run.id => s.apply(change, now),
                _ => s,
            })
    }
}
