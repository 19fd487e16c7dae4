//! Values exchanged with the simulator through its library API and its `/_sim` control API.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Scope;

/// How a finished job ended (Gitea's `conclusion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// `success`.
    #[default]
    Success,
    /// `failure`.
    Failure,
    /// `cancelled`.
    Cancelled,
    /// `skipped`.
    Skipped,
}

impl Conclusion {
    /// The string Gitea uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
            Conclusion::Skipped => "skipped",
        }
    }

    /// The runner protocol's result enum name (`RESULT_SUCCESS`, …).
    #[must_use]
    pub fn as_result(self) -> &'static str {
        match self {
            Conclusion::Success => "RESULT_SUCCESS",
            Conclusion::Failure => "RESULT_FAILURE",
            Conclusion::Cancelled => "RESULT_CANCELLED",
            Conclusion::Skipped => "RESULT_SKIPPED",
        }
    }

    /// Parses a runner-protocol result: the enum name or its number. `Ok(None)` is
    /// `RESULT_UNSPECIFIED` (the task is still running).
    ///
    /// # Errors
    /// When the value is neither a known name nor a known number.
    pub fn from_result(v: &serde_json::Value) -> Result<Option<Conclusion>, String> {
        match v {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(0) => Ok(None),
                Some(1) => Ok(Some(Conclusion::Success)),
                Some(2) => Ok(Some(Conclusion::Failure)),
                Some(3) => Ok(Some(Conclusion::Cancelled)),
                Some(4) => Ok(Some(Conclusion::Skipped)),
                _ => Err(format!("unknown result number {n}")),
            },
            serde_json::Value::String(s) => match s.as_str() {
                "" | "RESULT_UNSPECIFIED" => Ok(None),
                "RESULT_SUCCESS" => Ok(Some(Conclusion::Success)),
                "RESULT_FAILURE" => Ok(Some(Conclusion::Failure)),
                "RESULT_CANCELLED" => Ok(Some(Conclusion::Cancelled)),
                "RESULT_SKIPPED" => Ok(Some(Conclusion::Skipped)),
                other => Err(format!("unknown result {other:?}")),
            },
            other => Err(format!("result must be a string or a number, not {other}")),
        }
    }
}

/// A job's status as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Blocked on `needs:` or concurrency (Gitea `waiting`; a runner cannot take it).
    Waiting,
    /// Ready for a runner (Gitea `queued`).
    Queued,
    /// A runner has it.
    InProgress,
    /// Done; see the conclusion.
    Completed,
}

impl JobPhase {
    /// The string Gitea uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Waiting => "waiting",
            JobPhase::Queued => "queued",
            JobPhase::InProgress => "in_progress",
            JobPhase::Completed => "completed",
        }
    }
}

/// A job to put into the queue, as a workflow run would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Repository, `owner/name`; created if it does not exist yet.
    pub repo: String,
    /// The job name.
    pub name: String,
    /// `runs-on` labels; a runner needs all of them.
    pub labels: Vec<String>,
    /// How long an agent "runs" it, in milliseconds. Default 1000.
    #[serde(default = "default_duration_ms")]
    pub duration_ms: u64,
    /// The result the agent reports. Default success.
    #[serde(default)]
    pub result: Conclusion,
    /// Branch the run is for. Default `main`.
    #[serde(default = "default_branch")]
    pub head_branch: String,
    /// Commit; default the branch tip if the repository has one, else a made-up SHA.
    #[serde(default)]
    pub head_sha: Option<String>,
    /// Start blocked (`waiting`); release it with `release_job`.
    #[serde(default)]
    pub blocked: bool,
    /// Add the job to an existing run of the same repository instead of a new run.
    #[serde(default)]
    pub run_id: Option<i64>,
    /// A step using the actions cache (as `actions/cache` does): restore `key`, or on a miss
    /// save an entry of `size` bytes under it. Played by the agent against the runner's
    /// `cache.external_server`; what happened is written to the job's log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStep>,
}

/// A job step that restores or saves one cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStep {
    /// The entry's key.
    pub key: String,
    /// The bytes to save on a miss.
    pub size: u64,
}

fn default_duration_ms() -> u64 {
    1000
}

fn default_branch() -> String {
    "main".to_owned()
}

impl JobSpec {
    /// A job of `name` in `repo` for `labels`, running 1 s and succeeding.
    #[must_use]
    pub fn new(repo: impl Into<String>, name: impl Into<String>, labels: &[&str]) -> Self {
        JobSpec {
            repo: repo.into(),
            name: name.into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            duration_ms: default_duration_ms(),
            result: Conclusion::Success,
            head_branch: default_branch(),
            head_sha: None,
            blocked: false,
            run_id: None,
            cache: None,
        }
    }

    /// Adds a cache step: restore `key`, or save `size` bytes under it on a miss.
    #[must_use]
    pub fn cache(mut self, key: impl Into<String>, size: u64) -> Self {
        self.cache = Some(CacheStep {
            key: key.into(),
            size,
        });
        self
    }

    /// Sets how long the job runs.
    #[must_use]
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the result the agent reports.
    #[must_use]
    pub fn result(mut self, c: Conclusion) -> Self {
        self.result = c;
        self
    }

    /// Starts the job blocked (`waiting`).
    #[must_use]
    pub fn blocked(mut self) -> Self {
        self.blocked = true;
        self
    }

    /// Sets branch and commit.
    #[must_use]
    pub fn head(mut self, branch: impl Into<String>, sha: impl Into<String>) -> Self {
        self.head_branch = branch.into();
        self.head_sha = Some(sha.into());
        self
    }

    /// Adds the job to an existing run.
    #[must_use]
    pub fn in_run(mut self, run_id: i64) -> Self {
        self.run_id = Some(run_id);
        self
    }
}

/// A job as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// Job id (the `{job_id}` of the API).
    pub id: i64,
    /// Run id.
    pub run_id: i64,
    /// Repository, `owner/name`.
    pub repo: String,
    /// Job name.
    pub name: String,
    /// `runs-on` labels.
    pub labels: Vec<String>,
    /// API status.
    pub status: JobPhase,
    /// Set once completed.
    pub conclusion: Option<Conclusion>,
    /// Gitea's `run_attempt` for this row: up to 1.26, 0 until a runner first picks it and
    /// raised by each pick; from 1.27, the number of the run attempt the row belongs to.
    #[serde(default)]
    pub attempt: i64,
    /// The task (attempt) running or that ran it.
    pub task_id: Option<i64>,
    /// The runner that took it.
    pub runner_id: Option<i64>,
    /// Head branch.
    pub head_branch: String,
    /// Head commit.
    pub head_sha: String,
    /// Planned duration in milliseconds.
    pub duration_ms: u64,
    /// The log lines its runner wrote (`UpdateLog` rows), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
}

/// A runner as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerView {
    /// Runner id.
    pub id: i64,
    /// UUID (not in Gitea's REST JSON; used by the runner protocol).
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Version the runner declared.
    pub version: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Ephemeral: deleted after its one job.
    pub ephemeral: bool,
    /// Disabled: takes no new job.
    pub disabled: bool,
    /// Where it was registered.
    pub scope: Scope,
    /// Contact within the offline threshold.
    pub online: bool,
    /// Online and an `UpdateTask`/`UpdateLog` within the idle threshold.
    pub busy: bool,
    /// The task it is running, if any.
    pub task_id: Option<i64>,
    /// How many tasks it has taken.
    pub tasks_taken: u32,
}

/// A runner to create directly, as if `Register` had been called with a valid token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerSpec {
    /// Name.
    pub name: String,
    /// Label names.
    pub labels: Vec<String>,
    /// Ephemeral (default true).
    #[serde(default = "yes")]
    pub ephemeral: bool,
    /// Scope (default instance).
    #[serde(default = "instance")]
    pub scope: Scope,
    /// Version string (default `sim-agent`).
    #[serde(default = "sim_agent")]
    pub version: String,
}

fn yes() -> bool {
    true
}

fn instance() -> Scope {
    Scope::Instance
}

fn sim_agent() -> String {
    "sim-agent".to_owned()
}

impl RunnerSpec {
    /// An ephemeral, instance-wide runner.
    #[must_use]
    pub fn new(name: impl Into<String>, labels: &[&str]) -> Self {
        RunnerSpec {
            name: name.into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            ephemeral: true,
            scope: Scope::Instance,
            version: sim_agent(),
        }
    }

    /// Sets ephemeral.
    #[must_use]
    pub fn ephemeral(mut self, e: bool) -> Self {
        self.ephemeral = e;
        self
    }

    /// Sets the scope.
    #[must_use]
    pub fn scope(mut self, s: Scope) -> Self {
        self.scope = s;
        self
    }
}

/// One file change in a simulated commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FileChange {
    /// Create or overwrite a file.
    Put {
        /// Path from the repository root.
        path: String,
        /// Content (text).
        content: String,
    },
    /// Delete a file.
    Delete {
        /// Path from the repository root.
        path: String,
    },
}

impl FileChange {
    /// A put.
    #[must_use]
    pub fn put(path: impl Into<String>, content: impl Into<String>) -> Self {
        FileChange::Put {
            path: path.into(),
            content: content.into(),
        }
    }

    /// A delete.
    #[must_use]
    pub fn delete(path: impl Into<String>) -> Self {
        FileChange::Delete { path: path.into() }
    }
}

/// One commit of a simulated push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSpec {
    /// Commit message.
    pub message: String,
    /// Changes relative to the parent.
    #[serde(default)]
    pub changes: Vec<FileChange>,
}

impl CommitSpec {
    /// A commit with `message` and `changes`.
    #[must_use]
    pub fn new(message: impl Into<String>, changes: Vec<FileChange>) -> Self {
        CommitSpec {
            message: message.into(),
            changes,
        }
    }
}

/// A simulated `git push` of new commits onto a branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSpec {
    /// Repository, `owner/name`; created if needed (its default branch is `main`).
    pub repo: String,
    /// Branch pushed to. Default `main`.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// For a new branch: the branch or commit it starts from. Default: the new branch gets a
    /// root commit.
    #[serde(default)]
    pub from: Option<String>,
    /// Commits, oldest first. At least one.
    pub commits: Vec<CommitSpec>,
    /// Jobs to enqueue for the pushed head (their `head_sha`/`head_branch` are set for you).
    #[serde(default)]
    pub jobs: Vec<JobSpec>,
    /// Send the `push` webhook (default true).
    #[serde(default = "yes")]
    pub webhook: bool,
}

impl PushSpec {
    /// A push of `commits` to `branch` of `repo`.
    #[must_use]
    pub fn new(
        repo: impl Into<String>,
        branch: impl Into<String>,
        commits: Vec<CommitSpec>,
    ) -> Self {
        PushSpec {
            repo: repo.into(),
            branch: branch.into(),
            from: None,
            commits,
            jobs: Vec::new(),
            webhook: true,
        }
    }

    /// Starts a new branch from `base`.
    #[must_use]
    pub fn from(mut self, base: impl Into<String>) -> Self {
        self.from = Some(base.into());
        self
    }

    /// Enqueues `job` for the pushed head.
    #[must_use]
    pub fn job(mut self, job: JobSpec) -> Self {
        self.jobs.push(job);
        self
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResult {
    /// Full ref, `refs/heads/<branch>`.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Old tip, or 40 zeros for a new branch.
    pub before: String,
    /// New tip.
    pub after: String,
    /// The new commits, oldest first.
    pub commits: Vec<String>,
    /// Jobs enqueued with the push.
    pub jobs: Vec<JobView>,
}

/// One webhook the simulator sent (or dropped, or failed to send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `X-Gitea-Delivery`.
    pub id: String,
    /// `X-Gitea-Event`: `workflow_job` or `push`.
    pub event: String,
    /// The payload's `action`, for `workflow_job`.
    pub action: Option<String>,
    /// The job, for `workflow_job`.
    pub job_id: Option<i64>,
    /// The target URL.
    pub url: String,
    /// Response status, when one came back.
    pub status: Option<u16>,
    /// Transport error or timeout, when there was one.
    pub error: Option<String>,
    /// Dropped by the `drop_webhooks` fault: never sent.
    pub dropped: bool,
    /// The exact body.
    pub body: String,
}

impl Delivery {
    /// Sent and answered 2xx.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}
