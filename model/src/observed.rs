//! What the controller saw: our EC2 instances, Gitea's runners and queued jobs, and whether
//! each source was seen completely.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::{AttemptCounting, DesiredRun, JobAction, JobState};
use crate::ids::{InstanceId, RunId, RunnerName};
use crate::tags;
use crate::time::Timestamp;

/// One source's observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Seen<T> {
    /// Every item was listed.
    Complete {
        /// The items.
        items: Vec<T>,
    },
    /// Listing failed part-way; `items` are what arrived. Nothing may be concluded from the
    /// absence of an item.
    Partial {
        /// The items that arrived.
        items: Vec<T>,
        /// Why the list is incomplete.
        error: String,
    },
    /// The source does not exist in this configuration (the queued-jobs API in push mode, or
    /// on a Gitea older than 1.25).
    Unavailable,
}

impl<T> Seen<T> {
    /// The items seen, complete or not.
    #[must_use]
    pub fn items(&self) -> &[T] {
        match self {
            Seen::Complete { items } | Seen::Partial { items, .. } => items,
            Seen::Unavailable => &[],
        }
    }

    /// Whether the list is known complete.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self, Seen::Complete { .. })
    }

    /// The error that made the list partial.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        match self {
            Seen::Partial { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The desired-state table as read this pass.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DesiredView {
    /// Valid active rows.
    pub runs: Vec<DesiredRun>,
    /// Rows that could not be read (edited by hand into something invalid). Their instances
    /// and runners are left alone: we cannot know what they want.
    pub invalid: Vec<InvalidRow>,
    /// Runs that ended although Gitea still lists their job as queued (read one by one for
    /// such jobs only): backfill does not create them again, and one failed after its
    /// attempts tries once more after `timeouts.retry_failed`.
    #[serde(default)]
    pub finished: Vec<DesiredRun>,
    /// Whether every page of the active index was read.
    pub complete: bool,
}

/// A table row that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidRow {
    /// The row's key as written (it may itself be malformed).
    pub key: String,
    /// What is wrong with it.
    pub error: String,
}

/// Everything observed in one pass besides the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// EC2 instances carrying our cluster's ownership tag.
    pub instances: Seen<Instance>,
    /// Gitea runners in our scope (all of them; the planner picks ours by name).
    pub runners: Seen<ForgeRunner>,
    /// Gitea jobs waiting for a runner.
    pub queued_jobs: Seen<QueuedJob>,
    /// Jobs read one by one (Gitea 1.25+): those of active runs that still think their job
    /// waits but do not find it in the queued list. A run whose job is in neither is not
    /// concluded about this pass.
    #[serde(default)]
    pub jobs_read: Vec<JobSeen>,
    /// EC2's advance notices (Spot interruption warnings, rebalance recommendations) about
    /// instances, as received; empty where no events queue is configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<crate::notice::Notice>,
    /// Since when each disabled runner (by Gitea id) is known disabled: when this controller
    /// disabled it, or first saw it disabled. A runner missing here has no such bound.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disabled_since: BTreeMap<i64, Timestamp>,
    /// When the read of EC2's instance list started. An instance missing from the list counts
    /// as gone only if the read started [`crate::plan::EC2_LIST_LAG`] after its launch
    /// (DescribeInstances is eventually consistent). `None`: the time of planning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances_read_at: Option<Timestamp>,
    /// Pools whose every offering (instance type, subnet, market) is remembered as recently
    /// without capacity, each with the time the first of them may be tried again. A launch
    /// there would fail without asking EC2, so the planner defers it until then.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools_without_capacity: BTreeMap<String, Timestamp>,
}

/// An EC2 instance as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Instance id.
    pub id: InstanceId,
    /// Lifecycle state.
    pub state: InstanceState,
    /// EC2's state-transition reason code (e.g. `Server.SpotInstanceTermination`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    /// When EC2 launched it.
    pub launched_at: Timestamp,
    /// Spot or on-demand.
    pub lifecycle: Lifecycle,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub zone: String,
    /// All tags.
    pub tags: tags::Tags,
}

/// EC2 instance states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Starting.
    Pending,
    /// Running.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone.
    Terminated,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
}

impl InstanceState {
    /// Whether the instance is (or may again be) costing money and holding a runner.
    #[must_use]
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }

    /// EC2's name for the state.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Parses EC2's state name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => return None,
        })
    }
}

/// Spot or on-demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    /// A Spot instance.
    Spot,
    /// An on-demand instance.
    OnDemand,
}

/// EC2's state reason code for a Spot reclaim.
pub const SPOT_INTERRUPTION: &str = "Server.SpotInstanceTermination";

impl Instance {
    /// Whether the instance carries `cluster`'s ownership tag. Nothing else is ever touched.
    #[must_use]
    pub fn is_ours(&self, cluster: &str) -> bool {
        self.tags.owned_by(cluster)
    }

    /// The runner name tag.
    #[must_use]
    pub fn runner_name(&self) -> Option<RunnerName> {
        self.tags
            .get(tags::RUNNER_NAME)
            .map(|n| RunnerName::observed(n.clone()))
    }

    /// The run id tag, if it is a valid id.
    #[must_use]
    pub fn run_id(&self) -> Option<RunId> {
        self.tags
            .get(tags::RUN_ID)
            .and_then(|r| RunId::parse(r).ok())
    }

    /// The Gitea runner id tag (the registration made for this instance before launch).
    #[must_use]
    pub fn runner_id(&self) -> Option<i64> {
        self.tags.get(tags::RUNNER_ID).and_then(|a| a.parse().ok())
    }

    /// The attempt tag.
    #[must_use]
    pub fn attempt(&self) -> Option<u32> {
        self.tags.get(tags::ATTEMPT).and_then(|a| a.parse().ok())
    }

    /// The pool tag.
    #[must_use]
    pub fn pool(&self) -> Option<&str> {
        self.tags.get(tags::POOL).map(String::as_str)
    }

    /// Whether EC2 reclaimed it (Spot interruption).
    #[must_use]
    pub fn was_interrupted(&self) -> bool {
        self.state_reason.as_deref() == Some(SPOT_INTERRUPTION)
    }
}

/// A Gitea runner registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeRunner {
    /// Gitea's runner id.
    pub id: i64,
    /// Runner name.
    pub name: String,
    /// Contacted Gitea within the last minute.
    pub online: bool,
    /// Running a task (Gitea: active within the last 10 s).
    pub busy: bool,
    /// Label names.
    pub labels: Vec<String>,
    /// Registered as ephemeral.
    pub ephemeral: bool,
    /// Disabled (Gitea 1.26+): picks no new jobs.
    pub disabled: bool,
}

/// A Gitea job waiting for a runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    /// Gitea's job id.
    pub id: i64,
    /// The job's `run_attempt` as Gitea lists it (on 1.24 – 1.26 how often runners have
    /// picked it so far: 0 for a new job, N for a job re-run after N picks). See
    /// [`AttemptCounting`].
    pub attempt: u32,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    /// `owner/name`.
    pub repo: String,
    /// The job's name.
    #[serde(default)]
    pub name: String,
    /// The workflow run id.
    #[serde(default)]
    pub run_id: Option<i64>,
    /// How the Gitea that listed it counts `run_attempt`.
    #[serde(default)]
    pub counting: AttemptCounting,
}

impl QueuedJob {
    /// The pick this job waits for ([`AttemptCounting::pick`]).
    #[must_use]
    pub fn pick(&self) -> u32 {
        self.counting.pick(JobAction::Queued, self.attempt)
    }

    /// The desired run that serves this job's next pick.
    #[must_use]
    pub fn run_id(&self) -> RunId {
        RunId::for_job(self.id, self.pick())
    }
}

/// A Gitea job read on its own (`GET …/actions/jobs/{id}`), for a run whose job the queued
/// list does not show: confirms whether it still waits, was taken, finished, or was re-run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSeen {
    /// Gitea's job id.
    pub id: i64,
    /// What the read found.
    pub found: JobFound,
}

/// What reading one job found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "found", rename_all = "kebab-case")]
pub enum JobFound {
    /// The job exists.
    Job {
        /// Its `run_attempt`.
        attempt: u32,
        /// Its action as Gitea maps it (`queued`, `waiting`, `in_progress`, `completed`).
        action: JobAction,
        /// The runner of its current task, once one took it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        runner: Option<String>,
        /// Its conclusion, once completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conclusion: Option<String>,
        /// Its `runs-on` labels.
        #[serde(default)]
        labels: Vec<String>,
        /// How the Gitea that answered counts `run_attempt`.
        #[serde(default)]
        counting: AttemptCounting,
    },
    /// Gitea answered 404: the job (or its repository) is gone.
    Missing,
}

impl JobSeen {
    /// The state of pick `pick` of this job, as far as this read tells:
    /// - waiting (queued or blocked) for pick `pick` → [`JobState::Queued`];
    /// - taken or finished at pick `pick` → in progress / completed as read;
    /// - a later pick exists (the job ran and was re-run since) → completed, conclusion
    ///   unknown;
    /// - the job is gone → completed, conclusion `gone`.
    ///
    /// `None` when the read is older than the pick (it cannot say anything about it).
    #[must_use]
    pub fn state_for_pick(&self, pick: u32) -> Option<JobState> {
        let JobFound::Job {
            attempt,
            action,
            runner,
            conclusion,
            counting,
            ..
        } = &self.found
        else {
            return Some(JobState::Completed {
                conclusion: "gone".into(),
            });
        };
        let read_pick = counting.pick(*action, *attempt);
        if read_pick < pick {
            return None;
        }
        if read_pick > pick {
            return Some(JobState::Completed {
                conclusion: String::new(),
            });
        }
        Some(match action {
            JobAction::Queued | JobAction::Waiting => JobState::Queued,
            JobAction::InProgress => JobState::InProgress {
                runner: runner.clone().filter(|r| !r.is_empty()),
            },
            JobAction::Completed => JobState::Completed {
                conclusion: conclusion.clone().unwrap_or_default(),
            },
        })
    }

    /// Whether the read shows the job waiting for a runner right now (its `queued` state).
    #[must_use]
    pub fn is_queued(&self) -> bool {
        matches!(
            self.found,
            JobFound::Job {
                action: JobAction::Queued,
                ..
            }
        )
    }
}

/// What a pass must look up one by one before it may trust a runner listing: Gitea orders
/// the runner list by last contact alone on released versions, so a long list read page by
/// page can skip a row while looking whole (see `wiki/Gitea-Behaviour.md`). Every runner a
/// live run or a live instance of ours expects, and that the listing does not show, is read
/// by id; its absence counts only once Gitea answers 404.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerChecks {
    /// Runner ids to read (`GET …/runners/{id}`).
    pub ids: Vec<i64>,
    /// Expected runner names with no known id that the listing does not show: the listing
    /// is read once more and merged before they count as absent.
    pub names: Vec<String>,
}

/// The runner checks for a pass (see [`RunnerChecks`]).
#[must_use]
pub fn runner_checks(
    runs: &[DesiredRun],
    instances: &[Instance],
    cluster: &str,
    listed: &[ForgeRunner],
) -> RunnerChecks {
    use std::collections::BTreeSet;
    let ids: BTreeSet<i64> = listed.iter().map(|r| r.id).collect();
    let names: BTreeSet<&str> = listed.iter().map(|r| r.name.as_str()).collect();
    let mut want_ids = BTreeSet::new();
    let mut want_names = BTreeSet::new();
    for run in runs.iter().filter(|r| !r.status.phase.is_final()) {
        let Some(name) = &run.status.runner_name else {
            continue;
        };
        match run.status.runner_id {
            Some(id) if !ids.contains(&id) => {
                want_ids.insert(id);
            }
            None if !names.contains(name.as_str()) => {
                want_names.insert(name.as_str().to_owned());
            }
            _ => {}
        }
    }
    for i in instances
        .iter()
        .filter(|i| i.is_ours(cluster) && i.state.is_live())
    {
        let Some(name) = i.tags.get(tags::RUNNER_NAME) else {
            continue;
        };
        match i.runner_id() {
            Some(id) if !ids.contains(&id) => {
                want_ids.insert(id);
            }
            None if !names.contains(name.as_str()) => {
                want_names.insert(name.clone());
            }
            _ => {}
        }
    }
    RunnerChecks {
        ids: want_ids.into_iter().collect(),
        names: want_names.into_iter().collect(),
    }
}

/// The jobs to read one by one this pass: those of active runs whose last webhook said
/// queued while the queued list does not show them waiting for the run's pick (the webhook
/// may be stale, a redelivery, or the list may have skipped the job). Returns
/// `(repository, job id)` pairs; runs without a repository cannot be read.
#[must_use]
pub fn jobs_to_read(runs: &[DesiredRun], queued: &[QueuedJob]) -> Vec<(String, i64)> {
    use std::collections::{BTreeSet, HashMap};
    let listed: HashMap<i64, u32> = queued.iter().map(|j| (j.id, j.pick())).collect();
    let mut out = BTreeSet::new();
    for run in runs.iter().filter(|r| !r.status.phase.is_final()) {
        let (Some(job), Some(repo), JobState::Queued) =
            (&run.spec.job, &run.spec.repo, &run.spec.job_state)
        else {
            continue;
        };
        if listed.get(&job.id) == Some(&job.attempt) || run.spec.cancel {
            continue;
        }
        out.insert((repo.clone(), job.id));
    }
    out.into_iter().collect()
}
