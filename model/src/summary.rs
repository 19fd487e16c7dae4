//! The fleet at one moment, as `tinqs-ci status` shows it: per-pool counts and everything that
//! needs a person's attention.
//!
//! [`fleet_summary`] plans over the same observation and reads the same [`Policy`] predicates
//! as the planner ([`Policy::is_foreign`], [`Policy::pool_for`], [`Policy::max_lifetime_of`],
//! [`Policy::registration_deadline`]), so what `status` says and what the next pass does
//! cannot disagree. Pure: time is an argument.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::desired::{DesiredRun, Phase};
use crate::ids::{RunId, RunnerName};
use crate::observed::{DesiredView, ForgeRunner, Instance, Observed};
use crate::plan::{warm_summary, Plan, Policy, WarmSummary};
use crate::time::{human, Timestamp};

/// The row name for runs, instances and runners that belong to no configured pool.
pub const NO_POOL: &str = "(none)";

/// The folder of a webhook spool where events that can never apply are set aside.
pub const DEAD_LETTER: &str = "dead-letter";

/// One pool's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PoolStatus {
    /// The pool's label.
    pub pool: String,
    /// Active runs this pool serves.
    pub runs: usize,
    /// Of those, waiting for a launch (phase `pending`).
    pub pending: usize,
    /// Of those, claimed and launching (phase `launching`).
    pub launching: usize,
    /// Live instances of the pool (any state but shutting-down and terminated).
    pub instances: usize,
    /// The pool's `max_instances` (0 for the [`NO_POOL`] row).
    pub max_instances: u32,
    /// Our runners online and not busy.
    pub idle_runners: usize,
    /// Our runners running a job.
    pub busy_runners: usize,
    /// Our runners registered for an instance that is still booting (never online yet).
    pub starting_runners: usize,
    /// Our runners that were online and are not any more, or never came online in time, or
    /// belong to no live run.
    pub offline_runners: usize,
}

/// Something that needs attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Problem {
    /// A source could not be read whole: nothing destructive happens until it can.
    ObservationError {
        /// `dynamodb`, `ec2`, `gitea runners` or `gitea queued jobs`.
        source: String,
        /// What went wrong.
        error: String,
    },
    /// The plan holds back terminations, deregistrations and requeues.
    Withheld {
        /// Why.
        why: String,
    },
    /// No pool serves these labels.
    Unschedulable {
        /// The run.
        run: RunId,
        /// Its labels.
        labels: Vec<String>,
    },
    /// Work held back by a per-pass budget or a cap.
    Deferred {
        /// What.
        what: String,
        /// Which limit.
        limit: String,
    },
    /// A table row that does not parse; its instances and runners are left alone.
    InvalidRow {
        /// The row's key.
        key: String,
        /// What is wrong with it.
        error: String,
    },
    /// A run whose last step went wrong.
    RunError {
        /// The run.
        run: RunId,
        /// Its phase.
        phase: Phase,
        /// Its attempt.
        attempt: u32,
        /// Its Gitea job's state as last reported (`queued`, `completed (failure)`…), apart
        /// from the run's own phase.
        #[serde(skip_serializing_if = "Option::is_none")]
        job: Option<String>,
        /// The recorded error.
        error: String,
    },
    /// One of our runners that is offline when it should not be.
    OfflineRunner {
        /// Gitea's runner id.
        id: i64,
        /// The runner's name.
        runner: String,
        /// The run it serves, when one does.
        #[serde(skip_serializing_if = "Option::is_none")]
        run: Option<RunId>,
        /// Why it counts as a problem.
        note: String,
    },
    /// An instance past half of its max lifetime.
    AgingInstance {
        /// The instance.
        instance: String,
        /// Its pool.
        pool: String,
        /// Its age.
        #[serde(with = "crate::time::duration_serde")]
        age: Duration,
        /// Its pool's max lifetime.
        #[serde(with = "crate::time::duration_serde")]
        max_lifetime: Duration,
    },
    /// Spooled events that can never apply, set aside in the spool's [`DEAD_LETTER`] folder.
    SpoolSetAside {
        /// The spool directory.
        dir: String,
        /// How many.
        count: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ObservationError { source, error } => {
                write!(f, "could not observe {source}: {error}")
            }
            Problem::Withheld { why } => write!(f, "destructive actions withheld: {why}"),
            Problem::Unschedulable { run, labels } => write!(
                f,
                "unschedulable: run {run} wants [{}], which no pool serves",
                labels.join(", ")
            ),
            Problem::Deferred { what, limit } => write!(f, "deferred: {what} (limit {limit})"),
            Problem::InvalidRow { key, error } => {
                write!(
                    f,
                    "invalid row {key}: {error} (its instances and runners are left alone)"
                )
            }
            Problem::RunError {
                run,
                phase,
                attempt,
                job,
                error,
            } => {
                write!(f, "run {run} ({phase}, attempt {attempt}")?;
                if let Some(job) = job {
                    write!(f, "; job {job}")?;
                }
                write!(f, "): {error}")
            }
            Problem::OfflineRunner {
                id,
                runner,
                run,
                note,
            } => {
                write!(f, "runner {runner} (#{id}) {note}")?;
                if let Some(run) = run {
                    write!(f, " (run {run})")?;
                }
                Ok(())
            }
            Problem::AgingInstance {
                instance,
                pool,
                age,
                max_lifetime,
            } => write!(
                f,
                "instance {instance} in pool {pool} is {} old (max lifetime {})",
                human(*age),
                human(*max_lifetime)
            ),
            Problem::SpoolSetAside { dir, count } => write!(
                f,
                "{count} spooled event(s) set aside in {dir}/{DEAD_LETTER}: they can never apply \
                 (see wiki/Operations.md to replay or drop them)"
            ),
        }
    }
}

/// The fleet at one moment ([`fleet_summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSummary {
    /// One row per configured pool (in configuration order), then a [`NO_POOL`] row when
    /// anything belongs to no pool.
    pub pools: Vec<PoolStatus>,
    /// Everything that needs attention, most fundamental first: sources seen partially, then
    /// what the plan withholds, cannot schedule or defers, invalid rows, runs with an error,
    /// aging instances and offline runners.
    pub problems: Vec<Problem>,
    /// What the next pass would do: number of planned actions by kind (`launch`,
    /// `terminate`…).
    pub planned: BTreeMap<String, usize>,
    /// The warm runners of each pool that keeps any ([`warm_summary`]).
    pub warm: Vec<WarmSummary>,
}

/// Summarizes the fleet at `now`: plans over `desired` and `observed` under `policy` (the
/// plan the next pass would make) and counts, per pool, active runs (and how many are pending
/// or launching), live instances of ours, and our runners by state.
///
/// Problems: every source seen partially, withheld destructive actions, unschedulable runs
/// with their labels, deferred work, invalid rows, runs with a last error, live instances
/// older than half their pool's max lifetime, and our runners offline (after having been
/// online, never online by the registration deadline, of another attempt, or serving no
/// active run). Runs the planner leaves to foreign runners ([`Policy::is_foreign`]) are
/// neither counted nor problems.
#[must_use]
pub fn fleet_summary(
    desired: &DesiredView,
    observed: &Observed,
    policy: &Policy,
    now: Timestamp,
) -> FleetSummary {
    let plan = crate::plan::plan(desired, observed, policy, now);
    let mut rows = Rows::new(policy);
    let mut problems = partial_sources(desired, observed);
    problems.extend(plan_problems(&plan));
    for bad in &desired.invalid {
        problems.push(Problem::InvalidRow {
            key: bad.key.clone(),
            error: bad.error.clone(),
        });
    }

    // Runs.
    let runs: BTreeMap<&RunId, &DesiredRun> = desired.runs.iter().map(|r| (&r.id, r)).collect();
    for run in desired.runs.iter().filter(|r| !policy.is_foreign(&r.spec)) {
        let r = rows.row(pool_of(run, policy));
        r.runs += 1;
        match run.status.phase {
            Phase::Pending => r.pending += 1,
            Phase::Launching => r.launching += 1,
            _ => {}
        }
        if let Some(error) = &run.status.last_error {
            problems.push(Problem::RunError {
                run: run.id.clone(),
                phase: run.status.phase,
                attempt: run.status.attempt,
                job: run.spec.job.as_ref().map(|_| run.spec.job_state.describe()),
                error: error.clone(),
            });
        }
    }

    // Instances.
    let mut pool_by_runner: BTreeMap<String, Option<&str>> = BTreeMap::new();
    let live = observed
        .instances
        .items()
        .iter()
        .filter(|i| i.is_ours(&policy.cluster) && i.state.is_live());
    for i in live {
        let r = rows.row(i.pool());
        r.instances += 1;
        let name = r.pool.clone();
        if let Some(runner) = i.runner_name() {
            pool_by_runner.insert(runner.to_string(), i.pool());
        }
        if let Some(p) = aging(i, name, policy, now) {
            problems.push(p);
        }
    }

    // Our runners.
    for runner in observed.runners.items() {
        let Some((run_id, attempt)) =
            RunnerName::observed(runner.name.clone()).parse_ours(&policy.cluster)
        else {
            continue;
        };
        let run = runs.get(&run_id).copied();
        let pool = pool_by_runner
            .get(&runner.name)
            .copied()
            .flatten()
            .or_else(|| run.and_then(|r| pool_of(r, policy)))
            .or_else(|| pool_by_labels(runner, policy));
        let r = rows.row(pool);
        if runner.online {
            if runner.busy {
                r.busy_runners += 1;
            } else {
                r.idle_runners += 1;
            }
            continue;
        }
        match offline_note(runner, run, attempt, policy, now) {
            None => r.starting_runners += 1,
            Some(note) => {
                r.offline_runners += 1;
                problems.push(Problem::OfflineRunner {
                    id: runner.id,
                    runner: runner.name.clone(),
                    run: run.map(|r| r.id.clone()),
                    note,
                });
            }
        }
    }

    let mut planned = BTreeMap::new();
    for action in &plan.actions {
        *planned.entry(action.kind().to_owned()).or_insert(0) += 1;
    }
    FleetSummary {
        pools: rows.finish(),
        problems,
        planned,
        warm: warm_summary(desired, observed, policy, now),
    }
}

/// The pool rows, keyed by pool label (anything of no configured pool under [`NO_POOL`]).
struct Rows<'p> {
    policy: &'p Policy,
    rows: BTreeMap<String, PoolStatus>,
}

impl<'p> Rows<'p> {
    fn new(policy: &'p Policy) -> Self {
        let rows = policy
            .pools
            .iter()
            .map(|p| {
                let row = PoolStatus {
                    pool: p.name.clone(),
                    max_instances: p.max_instances,
                    ..PoolStatus::default()
                };
                (p.name.clone(), row)
            })
            .collect();
        Rows { policy, rows }
    }

    /// The row of `pool`: a configured pool's own, else [`NO_POOL`]'s.
    fn row(&mut self, pool: Option<&str>) -> &mut PoolStatus {
        let name = pool
            .and_then(|p| self.policy.pool(p))
            .map_or(NO_POOL, |p| p.name.as_str())
            .to_owned();
        self.rows.entry(name.clone()).or_insert_with(|| PoolStatus {
            pool: name,
            ..PoolStatus::default()
        })
    }

    /// Configured pools in configuration order, then [`NO_POOL`] when anything fell there.
    fn finish(mut self) -> Vec<PoolStatus> {
        let mut out: Vec<PoolStatus> = self
            .policy
            .pools
            .iter()
            .filter_map(|p| self.rows.remove(&p.name))
            .collect();
        out.extend(self.rows.remove(NO_POOL));
        out
    }
}

/// The pool a run belongs to, as the planner chooses it ([`Policy::pool_for`]).
#[must_use]
pub fn pool_of<'p>(run: &DesiredRun, policy: &'p Policy) -> Option<&'p str> {
    policy.pool_for(&run.spec).map(|p| p.name.as_str())
}

/// Every source the planner sees partially, with its error (the table by its completeness,
/// EC2 and Gitea by their [`crate::observed::Seen`]).
fn partial_sources(desired: &DesiredView, observed: &Observed) -> Vec<Problem> {
    let mut out = Vec::new();
    if !desired.complete {
        out.push(Problem::ObservationError {
            source: "dynamodb".into(),
            error: "the active runs were read incompletely".into(),
        });
    }
    for (source, error) in [
        ("ec2", observed.instances.error()),
        ("gitea runners", observed.runners.error()),
        ("gitea queued jobs", observed.queued_jobs.error()),
    ] {
        if let Some(error) = error {
            out.push(Problem::ObservationError {
                source: source.into(),
                error: error.to_owned(),
            });
        }
    }
    out
}

/// What the plan holds back, cannot schedule or defers.
fn plan_problems(plan: &Plan) -> Vec<Problem> {
    let withheld = plan
        .withheld
        .iter()
        .map(|why| Problem::Withheld { why: why.clone() });
    let unschedulable = plan.unschedulable.iter().map(|u| Problem::Unschedulable {
        run: u.run.clone(),
        labels: u.labels.clone(),
    });
    let deferred = plan.deferred.iter().map(|d| Problem::Deferred {
        what: d.what.clone(),
        limit: d.limit.clone(),
    });
    withheld.chain(unschedulable).chain(deferred).collect()
}

/// A live instance of ours past half its max lifetime (the planner terminates it at the
/// whole), shown in the row `pool`.
fn aging(i: &Instance, pool: String, policy: &Policy, now: Timestamp) -> Option<Problem> {
    let limit = policy.max_lifetime_of(i.pool().and_then(|p| policy.pool(p)));
    let age = now.since(i.launched_at);
    (age > limit / 2).then(|| Problem::AgingInstance {
        instance: i.id.to_string(),
        pool,
        age,
        max_lifetime: limit,
    })
}

/// A runner's pool from its labels: the first label that names a pool.
fn pool_by_labels<'p>(runner: &ForgeRunner, policy: &'p Policy) -> Option<&'p str> {
    runner
        .labels
        .iter()
        .find_map(|l| policy.pool(l))
        .map(|p| p.name.as_str())
}

/// Why an offline runner of ours is a problem, or `None` when it is simply starting: it is
/// the current attempt of an active run that has not been online yet, and the registration
/// deadline ([`Policy::registration_deadline`]) has not come.
fn offline_note(
    runner: &ForgeRunner,
    run: Option<&DesiredRun>,
    attempt: u32,
    policy: &Policy,
    now: Timestamp,
) -> Option<String> {
    let Some(run) = run else {
        return Some("is offline and serves no active run".into());
    };
    if run.status.attempt != attempt {
        return Some(format!(
            "is offline and belongs to attempt {attempt}, not the current attempt {}",
            run.status.attempt
        ));
    }
    if run.status.registered_at.is_some() || run.status.runner_id.is_some_and(|id| id != runner.id)
    {
        return Some(match run.status.offline_since {
            Some(since) => format!("offline for {}", human(now.since(since))),
            None => "went offline after it had been online".into(),
        });
    }
    let started = run.status.launched_at.or(run.status.claimed_at)?;
    (policy.registration_deadline(started) <= now).then(|| {
        format!(
            "never came online in {} (registration timeout {})",
            human(now.since(started)),
            human(policy.timeouts.registration)
        )
    })
}

#[cfg(test)]
mod tests;
