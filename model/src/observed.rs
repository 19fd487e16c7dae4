//! What the controller saw: our EC2 instances, Gitea's runners and queued jobs, and whether
//! each source was seen completely.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::desired::DesiredRun;
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
    /// such jobs only), so backfill does not create them again.
    #[serde(default)]
    pub finished: Vec<RunId>,
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
    pub tags: BTreeMap<String, String>,
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
        self.tags.get(tags::CLUSTER).is_some_and(|c| c == cluster)
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
    /// The job's run attempt.
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
}

impl QueuedJob {
    /// The desired run that serves this job.
    #[must_use]
    pub fn run_id(&self) -> RunId {
        RunId::for_job(self.id, self.attempt.max(1))
    }
}
