//! The simulator's state and every transition on it.
//!
//! All methods are synchronous and take `now` (ms since the epoch) as an argument; the server
//! calls them under one mutex. A transition that Gitea announces by webhook pushes an
//! [`Outgoing`] into `outbox`, rendered at that moment; the server sends the outbox after the
//! lock is released.

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::config::{Faults, Scope, Version, WebhookTarget};
use crate::git::{RepoRec, ZERO_SHA};
use crate::ids::{object_id, random_hex, SplitMix64};
use crate::types::{
    Conclusion, JobPhase, JobSpec, JobView, PushResult, PushSpec, RunnerSpec, RunnerView,
};

/// Errors of the library and control API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such repository.
    #[error("repository {0:?} does not exist")]
    UnknownRepo(String),
    /// No such job.
    #[error("job {0} does not exist")]
    UnknownJob(i64),
    /// No such runner.
    #[error("runner {0} does not exist")]
    UnknownRunner(i64),
    /// The request is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The job is not in a state that allows this.
    #[error("job {id} is {status}: cannot {what}")]
    WrongState {
        /// Job id.
        id: i64,
        /// Its status.
        status: &'static str,
        /// What was asked.
        what: &'static str,
    },
    /// The simulator has been shut down.
    #[error("the simulator has shut down")]
    Gone,
}

/// A runner-protocol error: a Connect code and a message.
///
/// Gitea's runner service never returns a `connect.Error` of its own: its handlers return
/// plain Go errors (`errors.New`, e.g. in `Register`) or gRPC `status` errors (the
/// interceptor and the other methods). connect-go wraps any error that is not a
/// `connect.Error` as code `unknown` (connectrpc/connect-go v1.19.1 error.go:278-287,
/// `wrapIfUncoded`), which the Connect protocol sends as HTTP 500 (protocol_connect.go:1275,
/// `connectCodeToHTTP`). A gRPC `status` error's text is
/// `rpc error: code = <Code> desc = <message>` (grpc-go internal/status/status.go,
/// `(*Status).String`). So a deleted runner gets
/// `{"code":"unknown","message":"rpc error: code = Unauthenticated desc = unregistered runner"}`
/// with HTTP 500 (go-gitea/gitea v1.26.4 routers/api/actions/runner/interceptor.go:38-44).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// Connect code (`unknown` for everything Gitea itself returns; `invalid_argument` and
    /// `unimplemented` for what connect-go refuses before Gitea's code runs).
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl RpcError {
    /// An error connect-go itself produces, with its own code.
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// A plain Go error returned by a Gitea handler: code `unknown`, the text as is.
    pub(crate) fn plain(message: impl Into<String>) -> Self {
        RpcError::new("unknown", message)
    }

    /// A gRPC `status.Error(codes.<grpc_code>, desc)` returned by a Gitea handler: code
    /// `unknown`, the text as grpc-go formats it.
    pub(crate) fn status(grpc_code: &str, desc: impl std::fmt::Display) -> Self {
        RpcError::new(
            "unknown",
            format!("rpc error: code = {grpc_code} desc = {desc}"),
        )
    }

    /// The interceptor's answer to an unknown UUID or a wrong token
    /// (go-gitea/gitea v1.26.4 routers/api/actions/runner/interceptor.go:38-46).
    pub(crate) fn unregistered() -> Self {
        RpcError::status("Unauthenticated", "unregistered runner")
    }

    /// The HTTP status the Connect protocol uses for this code.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self.code {
            "invalid_argument" | "failed_precondition" | "out_of_range" => 400,
            "unauthenticated" => 401,
            "permission_denied" => 403,
            "not_found" | "unimplemented" => 404,
            "already_exists" | "aborted" => 409,
            "resource_exhausted" => 429,
            "unavailable" => 503,
            "deadline_exceeded" => 504,
            _ => 500,
        }
    }
}

/// Internal job status (Gitea's `actions_model.Status`, go-gitea/gitea v1.26.4
/// models/actions/status.go:16-26, reduced: no `unknown` state, the four results folded
/// into `Done`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum St {
    Blocked,
    Waiting,
    Running,
    Done(Conclusion),
}

impl St {
    /// `ToActionsStatus` (go-gitea/gitea v1.26.4 services/convert/convert.go:293-318):
    /// waiting is `queued`, blocked is `waiting`, running is `in_progress`, the rest
    /// `completed` with a conclusion.
    pub(crate) fn phase(self) -> JobPhase {
        match self {
            St::Blocked => JobPhase::Waiting,
            St::Waiting => JobPhase::Queued,
            St::Running => JobPhase::InProgress,
            St::Done(_) => JobPhase::Completed,
        }
    }

    pub(crate) fn conclusion(self) -> Option<Conclusion> {
        match self {
            St::Done(c) => Some(c),
            _ => None,
        }
    }
}

/// One `status=` value of the jobs list, as Gitea maps it (go-gitea/gitea v1.26.4
/// routers/api/v1/shared/action.go:87, `convertToInternal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFilter {
    Is(St),
    AnyDone,
}

impl StatusFilter {
    pub(crate) fn parse(s: &str) -> Option<StatusFilter> {
        Some(match s {
            "queued" => StatusFilter::Is(St::Waiting),
            "pending" | "waiting" | "requested" | "action_required" => {
                StatusFilter::Is(St::Blocked)
            }
            "in_progress" => StatusFilter::Is(St::Running),
            "completed" => StatusFilter::AnyDone,
            "success" => StatusFilter::Is(St::Done(Conclusion::Success)),
            "failure" => StatusFilter::Is(St::Done(Conclusion::Failure)),
            "skipped" | "neutral" => StatusFilter::Is(St::Done(Conclusion::Skipped)),
            "cancelled" | "timed_out" => StatusFilter::Is(St::Done(Conclusion::Cancelled)),
            _ => return None,
        })
    }

    fn matches(self, st: St) -> bool {
        match self {
            StatusFilter::Is(want) => want == st,
            StatusFilter::AnyDone => matches!(st, St::Done(_)),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RunnerRec {
    pub id: i64,
    pub uuid: String,
    pub token: String,
    pub name: String,
    pub version: String,
    pub labels: Vec<String>,
    pub ephemeral: bool,
    pub disabled: bool,
    pub scope: Scope,
    /// 0 = never.
    pub last_online: i64,
    /// 0 = never.
    pub last_active: i64,
    pub current_task: Option<i64>,
    pub tasks_taken: u32,
}

/// Online state with Gitea's rank: active 0, idle 1, offline 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Liveness {
    Active,
    Idle,
    Offline,
}

#[derive(Debug, Clone)]
pub(crate) struct JobRec {
    pub id: i64,
    pub run_id: i64,
    pub run_index: i64,
    pub job_index: usize,
    pub repo: String,
    pub name: String,
    pub labels: Vec<String>,
    pub status: St,
    /// Gitea's `ActionRunJob.Attempt`, sent as `run_attempt`.
    pub attempt: i64,
    pub created: i64,
    pub started: i64,
    pub stopped: i64,
    /// When it last became ready (Gitea's `updated`); runners take the oldest first.
    pub queued_at: i64,
    pub task_id: Option<i64>,
    pub runner_id: Option<i64>,
    pub head_sha: String,
    pub head_branch: String,
    pub duration_ms: u64,
    pub planned: Conclusion,
    pub cache: Option<crate::types::CacheStep>,
    /// `UpdateLog` rows of its task, in order.
    pub log: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct TaskRec {
    pub job_id: i64,
    pub runner_id: i64,
    pub last_update: i64,
    pub done: bool,
}

#[derive(Debug, Clone)]
struct RunRec {
    repo: String,
    index: i64,
    jobs: usize,
}

#[derive(Debug, Clone)]
struct RegToken {
    token: String,
    active: bool,
}

/// A webhook to send, rendered when the transition happened.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub event: &'static str,
    pub action: Option<String>,
    pub job_id: Option<i64>,
    pub body: Value,
}

/// What `FetchTask` hands out.
#[derive(Debug, Clone)]
pub(crate) struct TaskOut {
    pub task_id: i64,
    pub job: JobRec,
}

/// Thresholds copied from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub offline_after_ms: i64,
    pub idle_after_ms: i64,
    pub zombie_after_ms: i64,
    pub feed_max_commits: usize,
}

pub(crate) struct State {
    pub base_url: String,
    pub version_string: String,
    pub version: Version,
    pub user_login: String,
    pub limits: Limits,
    pub faults: Faults,
    pub fault_seen: u64,
    pub fault_injected: u32,
    pub webhook: Option<WebhookTarget>,
    pub outbox: Vec<Outgoing>,
    pub repos: BTreeMap<String, RepoRec>,
    pub runners: BTreeMap<i64, RunnerRec>,
    pub jobs: BTreeMap<i64, JobRec>,
    pub tasks: BTreeMap<i64, TaskRec>,
    runs: HashMap<i64, RunRec>,
    reg_tokens: HashMap<Scope, Vec<RegToken>>,
    pub tasks_version: i64,
    /// Draws the orders Gitea leaves to the database (see `list_runners`, `list_jobs`).
    order_rng: SplitMix64,
    next_repo_id: i64,
    next_runner_id: i64,
    next_run_id: i64,
    next_job_id: i64,
    next_task_id: i64,
}

/// Id counters start apart so that a runner id, a job id and a task id are never equal by
/// accident and a client mixing them up fails loudly.
const FIRST_RUNNER_ID: i64 = 1;
const FIRST_RUN_ID: i64 = 101;
const FIRST_JOB_ID: i64 = 1001;
const FIRST_TASK_ID: i64 = 5001;

impl State {
    pub(crate) fn new(version_string: &str, user_login: &str, limits: Limits) -> Self {
        State {
            base_url: String::new(),
            version_string: version_string.to_owned(),
            version: Version::parse(version_string).unwrap_or(Version::NEWEST),
            user_login: user_login.to_owned(),
            limits,
            faults: Faults::default(),
            fault_seen: 0,
            fault_injected: 0,
            webhook: None,
            outbox: Vec::new(),
            repos: BTreeMap::new(),
            runners: BTreeMap::new(),
            jobs: BTreeMap::new(),
            tasks: BTreeMap::new(),
            runs: HashMap::new(),
            reg_tokens: HashMap::new(),
            tasks_version: 0,
            order_rng: SplitMix64::random(),
            next_repo_id: 1,
            next_runner_id: FIRST_RUNNER_ID,
            next_run_id: FIRST_RUN_ID,
            next_job_id: FIRST_JOB_ID,
            next_task_id: FIRST_TASK_ID,
        }
    }

    pub(crate) fn set_version(&mut self, v: &str) {
        self.version_string = v.to_owned();
        self.version = Version::parse(v).unwrap_or(Version::NEWEST);
    }

    /// Replaces the fault knobs, restarts their counters, and reseeds the runner-order RNG
    /// when the new set names a seed.
    pub(crate) fn set_faults(&mut self, faults: Faults) {
        if let Some(seed) = faults.order_seed {
            self.order_rng = SplitMix64::new(seed);
        }
        self.faults = faults;
        self.fault_seen = 0;
        self.fault_injected = 0;
    }

    // ---------------------------------------------------------------- repositories and scopes

    /// Returns the repository, creating it if the name is valid.
    pub(crate) fn ensure_repo(
        &mut self,
        full_name: &str,
        now: i64,
    ) -> Result<&mut RepoRec, SimError> {
        let (owner, name) = split_repo(full_name)?;
        if !self.repos.contains_key(full_name) {
            let id = self.next_repo_id;
            self.next_repo_id += 1;
            self.repos
                .insert(full_name.to_owned(), RepoRec::new(id, owner, name, now));
        }
        self.repos
            .get_mut(full_name)
            .ok_or_else(|| SimError::UnknownRepo(full_name.to_owned()))
    }

    /// Whether the scope names something that exists.
    pub(crate) fn scope_exists(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Instance => true,
            Scope::Org(o) => self.repos.values().any(|r| &r.owner == o),
            Scope::Repo(r) => self.repos.contains_key(r),
        }
    }

    /// Which jobs a runner of `scope` may take, and which a list of `scope` shows: a repo
    /// runner its repository's, an owner runner its owner's repositories', an instance runner
    /// all (go-gitea/gitea v1.26.4 models/actions/task.go:242-253, `CreateTaskForRunner`).
    fn job_in_scope(job: &JobRec, scope: &Scope) -> bool {
        match scope {
            Scope::Instance => true,
            Scope::Org(o) => job
                .repo
                .split_once('/')
                .is_some_and(|(owner, _)| owner == o),
            Scope::Repo(r) => &job.repo == r,
        }
    }

    /// Who may see and edit a runner from a scope (Gitea's `EditableInContext`, go-gitea/gitea
    /// v1.26.4 models/actions/runner.go:136, used by routers/api/v1/shared/runners.go:88): the
    /// admin scope sees every runner, the others only runners registered in exactly that scope.
    fn runner_visible(r: &RunnerRec, scope: &Scope) -> bool {
        matches!(scope, Scope::Instance) || &r.scope == scope
    }

    // ---------------------------------------------------------------- registration tokens

    /// The active registration token of `scope`, created if there is none (never rotated):
    /// go-gitea/gitea v1.26.4 routers/api/v1/shared/runners.go:27-37 (`GetLatestRunnerToken`,
    /// then `NewRunnerToken` only when none is active; models/actions/runner_token.go:99-120).
    pub(crate) fn registration_token(&mut self, scope: &Scope) -> String {
        let list = self.reg_tokens.entry(scope.clone()).or_default();
        if let Some(t) = list.last().filter(|t| t.active) {
            return t.token.clone();
        }
        let token = random_hex(40);
        list.push(RegToken {
            token: token.clone(),
            active: true,
        });
        token
    }

    /// A new token for `scope`; every older one stops working (`NewRunnerToken` deactivates
    /// the scope's older tokens, go-gitea/gitea v1.26.4 models/actions/runner_token.go:73-106).
    pub(crate) fn reset_registration_token(&mut self, scope: &Scope) -> String {
        self.set_registration_token(scope, &random_hex(40))
    }

    pub(crate) fn set_registration_token(&mut self, scope: &Scope, token: &str) -> String {
        let list = self.reg_tokens.entry(scope.clone()).or_default();
        for t in list.iter_mut() {
            t.active = false;
        }
        list.push(RegToken {
            token: token.to_owned(),
            active: true,
        });
        token.to_owned()
    }

    fn scope_of_token(&self, token: &str) -> Option<(Scope, bool)> {
        self.reg_tokens.iter().find_map(|(scope, list)| {
            list.iter()
                .find(|t| t.token == token)
                .map(|t| (scope.clone(), t.active))
        })
    }

    // ---------------------------------------------------------------- runners

    fn insert_runner(
        &mut self,
        name: &str,
        labels: Vec<String>,
        version: &str,
        ephemeral: bool,
        scope: Scope,
    ) -> i64 {
        let id = self.next_runner_id;
        self.next_runner_id += 1;
        self.runners.insert(
            id,
            RunnerRec {
                id,
                uuid: uuid::Uuid::new_v4().to_string(),
                token: random_hex(40),
                name: name.to_owned(),
                version: version.to_owned(),
                labels,
                ephemeral,
                disabled: false,
                scope,
                last_online: 0,
                last_active: 0,
                current_task: None,
                tasks_taken: 0,
            },
        );
        id
    }

    /// The runner protocol's `Register`.
    pub(crate) fn register(
        &mut self,
        name: &str,
        token: &str,
        version: &str,
        labels: Vec<String>,
        ephemeral: bool,
    ) -> Result<RunnerRec, RpcError> {
        // Plain Go errors, sent as code `unknown` (go-gitea/gitea v1.26.4
        // routers/api/actions/runner/runner.go:45-56).
        if token.is_empty() || name.is_empty() {
            return Err(RpcError::plain("missing runner token, name"));
        }
        let (scope, active) = self
            .scope_of_token(token)
            .ok_or_else(|| RpcError::plain("runner registration token not found"))?;
        if !active {
            return Err(RpcError::plain(
                "runner registration token has been invalidated, please use the latest one",
            ));
        }
        // Before 1.24 the server has no ephemeral runners and registers a normal one
        // (ephemeral runners: go-gitea/gitea commit 65e2411394, #33570, first in v1.24.0).
        let ephemeral = ephemeral && self.version.at_least(1, 24);
        let id = self.insert_runner(name, labels, version, ephemeral, scope);
        self.runners
            .get(&id)
            .cloned()
            .ok_or_else(|| RpcError::plain("can't create new runner"))
    }

    /// Creates a runner directly (library convenience, same effect as `Register`).
    pub(crate) fn create_runner(&mut self, spec: &RunnerSpec) -> Result<RunnerRec, SimError> {
        if spec.name.is_empty() {
            return Err(SimError::Invalid("runner name is empty".into()));
        }
        if !self.scope_exists(&spec.scope) {
            return Err(SimError::Invalid(format!(
                "scope {} does not exist",
                spec.scope
            )));
        }
        let ephemeral = spec.ephemeral && self.version.at_least(1, 24);
        let id = self.insert_runner(
            &spec.name,
            spec.labels.clone(),
            &spec.version,
            ephemeral,
            spec.scope.clone(),
        );
        self.runners
            .get(&id)
            .cloned()
            .ok_or(SimError::UnknownRunner(id))
    }

    /// Authenticates a runner-protocol call and bumps `last_online`, as Gitea's interceptor does
    /// on every authenticated call, whatever the method (go-gitea/gitea v1.26.4
    /// routers/api/actions/runner/interceptor.go:37-56; the same at v1.24.0 and v1.27.0-rc0).
    pub(crate) fn authenticate(
        &mut self,
        uuid: &str,
        token: &str,
        now: i64,
    ) -> Result<i64, RpcError> {
        let runner = self
            .runners
            .values_mut()
            .find(|r| r.uuid == uuid)
            .filter(|r| !token.is_empty() && r.token == token)
            .ok_or_else(RpcError::unregistered)?;
        runner.last_online = now;
        Ok(runner.id)
    }

    /// `Declare` overwrites labels and version (go-gitea/gitea v1.26.4
    /// routers/api/actions/runner/runner.go:113-134).
    pub(crate) fn declare(
        &mut self,
        id: i64,
        version: &str,
        labels: Vec<String>,
    ) -> Result<RunnerRec, RpcError> {
        let r = self
            .runners
            .get_mut(&id)
            .ok_or_else(RpcError::unregistered)?;
        r.version = version.to_owned();
        r.labels = labels;
        Ok(r.clone())
    }

    /// Gitea's `Status()`: offline when `last_online` is older than `RunnerOfflineTime`
    /// (1 min), else idle when `last_active` is older than `RunnerIdleTime` (10 s), else active
    /// (go-gitea/gitea v1.26.4 models/actions/runner.go:74-75, :105-113). A runner that never
    /// called has `last_online` 0 and is offline.
    pub(crate) fn liveness(&self, r: &RunnerRec, now: i64) -> Liveness {
        if r.last_online == 0 || now - r.last_online > self.limits.offline_after_ms {
            Liveness::Offline
        } else if r.last_active == 0 || now - r.last_active > self.limits.idle_after_ms {
            Liveness::Idle
        } else {
            Liveness::Active
        }
    }

    /// Runners visible from `scope`, in the order Gitea's list query returns them.
    ///
    /// Released Gitea (1.24.0 to 1.27.x) orders the REST list by `last_online DESC` and
    /// nothing else (go-gitea/gitea v1.26.4 models/actions/runner.go:252-268; v1.24.0
    /// runner.go:237-253; v1.27.0-rc0 runner.go:253-269), and `last_online` is a Unix time in
    /// seconds (`timeutil.TimeStamp`, v1.26.4 runner.go:58). Rows that tie come back in
    /// whatever order the database picks, and each page is a separate `LIMIT/OFFSET` query
    /// (routers/api/v1/shared/runners.go:46-71, `db.FindAndCount`). The simulator is
    /// adversarial there: ties are shuffled afresh on every call, so paging can repeat and
    /// skip runners while `total_count` is right. Runners that never connected all tie at 0.
    ///
    /// Only `main` (1.28.0-dev) adds stable keys: status rank (active, idle, offline), then
    /// `is_disabled`, `last_online DESC`, `id` (go-gitea/gitea main@298d73cde6
    /// models/actions/runner.go:285-307).
    pub(crate) fn list_runners(
        &mut self,
        scope: &Scope,
        disabled: Option<bool>,
        now: i64,
    ) -> Vec<RunnerRec> {
        let visible: Vec<RunnerRec> = self
            .runners
            .values()
            .filter(|r| Self::runner_visible(r, scope))
            .filter(|r| disabled.is_none_or(|d| r.disabled == d))
            .cloned()
            .collect();
        if self.version.at_least(1, 28) {
            let mut out = visible;
            out.sort_by(|a, b| {
                self.liveness(a, now)
                    .cmp(&self.liveness(b, now))
                    .then(a.disabled.cmp(&b.disabled))
                    .then(b.last_online.cmp(&a.last_online))
                    .then(a.id.cmp(&b.id))
            });
            return out;
        }
        let mut keyed: Vec<(i64, u64, RunnerRec)> = visible
            .into_iter()
            .map(|r| (r.last_online.div_euclid(1000), self.order_rng.next(), r))
            .collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        keyed.into_iter().map(|(_, _, r)| r).collect()
    }

    pub(crate) fn runner_in_scope(&self, scope: &Scope, id: i64) -> Option<&RunnerRec> {
        self.runners
            .get(&id)
            .filter(|r| Self::runner_visible(r, scope))
    }

    /// Deletes a runner; its token stops working at once (the interceptor no longer finds its
    /// UUID). A task it is running is left to the zombie timeout, as in Gitea
    /// (go-gitea/gitea v1.26.4 routers/api/v1/shared/runners.go:118-130, 204 or 404 through
    /// `getRunnerByID`). Gitea soft-deletes the row; the simulator removes it.
    pub(crate) fn delete_runner(&mut self, scope: &Scope, id: i64) -> bool {
        if self.runner_in_scope(scope, id).is_none() {
            return false;
        }
        self.runners.remove(&id);
        true
    }

    /// `PATCH {"disabled": …}`, 1.26+ (go-gitea/gitea commit b3b2d111da, #36776; v1.26.4
    /// routers/api/v1/shared/runners.go:132).
    pub(crate) fn set_disabled(
        &mut self,
        scope: &Scope,
        id: i64,
        disabled: bool,
    ) -> Option<RunnerRec> {
        self.runner_in_scope(scope, id)?;
        let r = self.runners.get_mut(&id)?;
        r.disabled = disabled;
        Some(r.clone())
    }

    pub(crate) fn runner_view(&self, r: &RunnerRec, now: i64) -> RunnerView {
        let live = self.liveness(r, now);
        RunnerView {
            id: r.id,
            uuid: r.uuid.clone(),
            name: r.name.clone(),
            version: r.version.clone(),
            labels: r.labels.clone(),
            ephemeral: r.ephemeral,
            disabled: r.disabled,
            scope: r.scope.clone(),
            online: live != Liveness::Offline,
            busy: live == Liveness::Active,
            task_id: r.current_task,
            tasks_taken: r.tasks_taken,
        }
    }

    // ---------------------------------------------------------------- jobs

    pub(crate) fn job_view(job: &JobRec) -> JobView {
        JobView {
            id: job.id,
            run_id: job.run_id,
            repo: job.repo.clone(),
            name: job.name.clone(),
            labels: job.labels.clone(),
            status: job.status.phase(),
            conclusion: job.status.conclusion(),
            attempt: job.attempt,
            task_id: job.task_id,
            runner_id: job.runner_id,
            head_branch: job.head_branch.clone(),
            head_sha: job.head_sha.clone(),
            duration_ms: job.duration_ms,
            log: job.log.clone(),
        }
    }

    /// Puts a job into the queue (or blocks it) and announces it.
    pub(crate) fn enqueue(&mut self, spec: &JobSpec, now: i64) -> Result<JobView, SimError> {
        if spec.name.trim().is_empty() {
            return Err(SimError::Invalid("job name is empty".into()));
        }
        if spec.labels.iter().any(|l| l.trim().is_empty()) {
            return Err(SimError::Invalid("a job label is empty".into()));
        }
        let id = self.next_job_id;
        let repo = self.ensure_repo(&spec.repo, now)?;
        let head_sha = match &spec.head_sha {
            Some(s) => s.clone(),
            None => repo
                .branches
                .get(&spec.head_branch)
                .cloned()
                .unwrap_or_else(|| {
                    object_id(&[
                        spec.repo.as_bytes(),
                        spec.head_branch.as_bytes(),
                        &id.to_be_bytes(),
                    ])
                }),
        };
        let (run_id, run_index, job_index) = match spec.run_id {
            Some(run_id) => {
                let run = self
                    .runs
                    .get_mut(&run_id)
                    .ok_or_else(|| SimError::Invalid(format!("run {run_id} does not exist")))?;
                if run.repo != spec.repo {
                    return Err(SimError::Invalid(format!(
                        "run {run_id} belongs to {}",
                        run.repo
                    )));
                }
                run.jobs += 1;
                (run_id, run.index, run.jobs - 1)
            }
            None => {
                let index = repo.next_run_index;
                repo.next_run_index += 1;
                let run_id = self.next_run_id;
                self.next_run_id += 1;
                self.runs.insert(
                    run_id,
                    RunRec {
                        repo: spec.repo.clone(),
                        index,
                        jobs: 1,
                    },
                );
                (run_id, index, 0)
            }
        };
        self.next_job_id += 1;
        let status = if spec.blocked {
            St::Blocked
        } else {
            St::Waiting
        };
        // Up to 1.26 a job row is inserted with attempt 0 (go-gitea/gitea v1.26.4
        // services/actions/run.go:117-128, no `Attempt` set) and a pick raises it. From 1.27
        // the row carries its run attempt's number, 1 for a new run (v1.27.0-rc0
        // services/actions/run.go:90-96 and :162); a job added to a re-run run joins the
        // latest attempt.
        let attempt = if self.version.at_least(1, 27) {
            self.latest_attempt(run_id).max(1)
        } else {
            0
        };
        self.jobs.insert(
            id,
            JobRec {
                id,
                run_id,
                run_index,
                job_index,
                repo: spec.repo.clone(),
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                status,
                attempt,
                created: now,
                started: 0,
                stopped: 0,
                queued_at: now,
                task_id: None,
                runner_id: None,
                head_sha,
                head_branch: spec.head_branch.clone(),
                duration_ms: spec.duration_ms,
                planned: spec.result,
                cache: spec.cache.clone(),
                log: Vec::new(),
            },
        );
        if status == St::Waiting {
            self.tasks_version += 1;
        }
        self.announce_job(id);
        self.jobs
            .get(&id)
            .map(Self::job_view)
            .ok_or(SimError::UnknownJob(id))
    }

    /// Unblocks a `waiting` job: it becomes `queued`.
    pub(crate) fn release_job(&mut self, id: i64, now: i64) -> Result<JobView, SimError> {
        let job = self.jobs.get_mut(&id).ok_or(SimError::UnknownJob(id))?;
        if job.status != St::Blocked {
            return Err(SimError::WrongState {
                id,
                status: job.status.phase().as_str(),
                what: "release",
            });
        }
        job.status = St::Waiting;
        job.queued_at = now;
        self.tasks_version += 1;
        self.announce_job(id);
        self.jobs
            .get(&id)
            .map(Self::job_view)
            .ok_or(SimError::UnknownJob(id))
    }

    /// Cancels a job that is not finished. A running task learns it from its next
    /// `UpdateTask`; its runner is not deleted (Gitea's cleanup cron would do that later).
    pub(crate) fn cancel_job(&mut self, id: i64, now: i64) -> Result<JobView, SimError> {
        let job = self.jobs.get(&id).ok_or(SimError::UnknownJob(id))?;
        if let St::Done(_) = job.status {
            return Err(SimError::WrongState {
                id,
                status: "completed",
                what: "cancel",
            });
        }
        self.finish_job(id, Conclusion::Cancelled, now);
        self.announce_job(id);
        self.jobs
            .get(&id)
            .map(Self::job_view)
            .ok_or(SimError::UnknownJob(id))
    }

    /// The highest attempt among a run's job rows (0 when it has none).
    fn latest_attempt(&self, run_id: i64) -> i64 {
        self.jobs
            .values()
            .filter(|j| j.run_id == run_id)
            .map(|j| j.attempt)
            .max()
            .unwrap_or(0)
    }

    /// Re-runs a completed job; returns the job row(s) now queued.
    ///
    /// Gitea re-runs only when the whole run is done (go-gitea/gitea v1.24.0
    /// routers/web/repo/actions/view.go:209,222 offer it only then; v1.25.0 view.go:475;
    /// v1.26.4 services/actions/rerun.go:76-78; v1.27.0-rc0 services/actions/rerun.go:72-74).
    /// The simulator has no `needs:`, so no dependent job is re-run along with it.
    ///
    /// Up to 1.26 the same row is reset (v1.26.4 services/actions/rerun.go:172-219,
    /// `rerunWorkflowJob`; v1.25.0 routers/web/repo/actions/view.go:473, v1.24.0
    /// view.go:436-459, `rerunJob`): waiting, no
    /// task, no start or stop time, `Attempt` untouched, and `updated` is now, so it is the
    /// newest in the queue; the `queued` webhook carries the previous attempt, and the next
    /// pick raises it.
    ///
    /// From 1.27 a re-run is a new run attempt (commit 899ede1d55, `ActionRunAttempt`;
    /// v1.27.0-rc0 services/actions/rerun.go:188-368, `execRerunPlan`): every job row of the
    /// latest attempt is cloned under a new id with `Attempt` = latest + 1
    /// (rerun.go:194-200, :503-536). The re-run job's clone is waiting with no task
    /// (rerun.go:262-290) and announced as `queued` (rerun.go:358); the others are
    /// pass-through clones that keep their status, times and the original task for display
    /// (rerun.go:291-298; services/convert/convert.go:468, `EffectiveTaskID`) and are not
    /// announced. The old rows stay as they were.
    pub(crate) fn rerun_job(&mut self, id: i64, now: i64) -> Result<Vec<JobView>, SimError> {
        let job = self.jobs.get(&id).ok_or(SimError::UnknownJob(id))?;
        if !matches!(job.status, St::Done(_)) {
            return Err(SimError::WrongState {
                id,
                status: job.status.phase().as_str(),
                what: "rerun",
            });
        }
        let run_id = job.run_id;
        let new_attempts = self.version.at_least(1, 27);
        let latest = self.latest_attempt(run_id);
        if new_attempts && job.attempt != latest {
            return Err(SimError::WrongState {
                id,
                status: "completed",
                what: "rerun a job of an older run attempt",
            });
        }
        let members: Vec<JobRec> = self
            .jobs
            .values()
            .filter(|j| j.run_id == run_id && (!new_attempts || j.attempt == latest))
            .cloned()
            .collect();
        if members.iter().any(|j| !matches!(j.status, St::Done(_))) {
            return Err(SimError::WrongState {
                id,
                status: "completed",
                what: "rerun while its run is not done",
            });
        }
        let rerun_id = if new_attempts {
            let mut rerun_id = id;
            for template in members {
                let mut clone = template.clone();
                clone.id = self.next_job_id;
                self.next_job_id += 1;
                clone.attempt = latest + 1;
                clone.created = now;
                if template.id == id {
                    rerun_id = clone.id;
                    Self::reset_for_rerun(&mut clone, now);
                }
                self.jobs.insert(clone.id, clone);
            }
            rerun_id
        } else {
            if let Some(j) = self.jobs.get_mut(&id) {
                Self::reset_for_rerun(j, now);
            }
            id
        };
        self.tasks_version += 1;
        self.announce_job(rerun_id);
        Ok(self
            .jobs
            .get(&rerun_id)
            .map(Self::job_view)
            .into_iter()
            .collect())
    }

    /// Waiting, no task, no times, newest in the queue (`rerunWorkflowJob` and the re-run
    /// branch of `execRerunPlan`).
    fn reset_for_rerun(job: &mut JobRec, now: i64) {
        job.status = St::Waiting;
        job.task_id = None;
        job.runner_id = None;
        job.started = 0;
        job.stopped = 0;
        job.queued_at = now;
    }

    fn finish_job(&mut self, id: i64, c: Conclusion, now: i64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.status = St::Done(c);
        job.stopped = now;
        if job.started == 0 {
            job.started = now;
        }
        if let Some(task_id) = job.task_id {
            if let Some(task) = self.tasks.get_mut(&task_id) {
                task.done = true;
                if let Some(r) = self.runners.get_mut(&task.runner_id) {
                    if r.current_task == Some(task_id) {
                        r.current_task = None;
                    }
                }
            }
        }
        self.tasks_version += 1;
    }

    /// Jobs visible from `scope` matching any of `filters` (all when empty), in the order one
    /// list query returns them.
    ///
    /// Before 1.27 the query has no `ORDER BY` at all: `db.FindAndCount` orders only when the
    /// options have `ToOrders` (go-gitea/gitea v1.26.4 models/db/list.go:146-149), and
    /// `FindRunJobOptions` has none (v1.26.4 models/actions/run_job_list.go:70-107). The
    /// database may return any order, and a different one for each page's `LIMIT/OFFSET`
    /// query; the simulator draws a fresh order on every call, so paging can repeat and skip
    /// jobs. From 1.27 the default is `id ASC` (v1.27.0-rc0 routers/api/v1/shared/action.go:40).
    pub(crate) fn list_jobs(&mut self, scope: &Scope, filters: &[StatusFilter]) -> Vec<JobRec> {
        let mut out: Vec<JobRec> = self
            .jobs
            .values()
            .filter(|j| Self::job_in_scope(j, scope))
            .filter(|j| filters.is_empty() || filters.iter().any(|f| f.matches(j.status)))
            .cloned()
            .collect();
        if !self.version.at_least(1, 27) {
            self.order_rng.shuffle(&mut out);
        }
        out
    }

    /// The runner protocol's `FetchTask`: the oldest ready job whose labels are all among
    /// the runner's, within the runner's scope.
    pub(crate) fn fetch_task(
        &mut self,
        runner_id: i64,
        now: i64,
    ) -> Result<Option<TaskOut>, RpcError> {
        let runner = self
            .runners
            .get(&runner_id)
            .ok_or_else(RpcError::unregistered)?;
        // A disabled runner gets nothing (go-gitea/gitea v1.26.4 services/actions/task.go:27-29);
        // a used ephemeral runner gets nothing while its task is unfinished (task.go:31-41).
        if runner.disabled {
            return Ok(None);
        }
        if runner.ephemeral && runner.tasks_taken > 0 {
            let busy = runner
                .current_task
                .and_then(|t| self.tasks.get(&t))
                .is_some_and(|t| !t.done);
            if busy {
                return Ok(None);
            }
            // Its one task ended some other way (cancelled, zombie): Gitea removes it now
            // (go-gitea/gitea v1.26.4 services/actions/task.go:31-48), and `FetchTask` wraps
            // the error as `status.Errorf(codes.Internal, "pick task: %v", err)`
            // (routers/api/actions/runner/runner.go:168-170).
            self.runners.remove(&runner_id);
            return Err(RpcError::status(
                "Internal",
                "pick task: runner has been removed",
            ));
        }
        let scope = runner.scope.clone();
        let labels = runner.labels.clone();
        let pick = self
            .jobs
            .values()
            .filter(|j| j.status == St::Waiting)
            .filter(|j| Self::job_in_scope(j, &scope))
            // Every `runs-on` label must be among the runner's (`CanMatchLabels`,
            // go-gitea/gitea v1.26.4 models/actions/runner.go:181).
            .filter(|j| j.labels.iter().all(|l| labels.contains(l)))
            // `Asc("updated", "id")` over second-resolution timestamps (go-gitea/gitea v1.26.4
            // models/actions/task.go:255; v1.27.0-rc0 models/actions/task.go:257).
            .min_by_key(|j| (j.queued_at.div_euclid(1000), j.id))
            .map(|j| j.id);
        let Some(job_id) = pick else { return Ok(None) };
        let task_id = self.next_task_id;
        self.next_task_id += 1;
        self.tasks.insert(
            task_id,
            TaskRec {
                job_id,
                runner_id,
                last_update: now,
                done: false,
            },
        );
        if let Some(r) = self.runners.get_mut(&runner_id) {
            r.current_task = Some(task_id);
            r.tasks_taken += 1;
        }
        let job = self
            .jobs
            .get_mut(&job_id)
            .ok_or_else(|| RpcError::status("Internal", "pick task: job vanished"))?;
        // Up to 1.26 a pick raises the job's attempt (go-gitea/gitea v1.26.4
        // models/actions/task.go:276 `job.Attempt++`; v1.24.0 and v1.25.0 task.go:262). From
        // 1.27 the attempt is fixed when the row is inserted and a pick keeps it (v1.27.0-rc0
        // models/actions/task.go:283-299, `claimJobForRunner`).
        if !self.version.at_least(1, 27) {
            job.attempt += 1;
        }
        job.status = St::Running;
        job.started = now;
        job.task_id = Some(task_id);
        job.runner_id = Some(runner_id);
        let job = job.clone();
        self.tasks_version += 1;
        self.announce_job(job_id);
        Ok(Some(TaskOut { task_id, job }))
    }

    /// The runner protocol's `UpdateTask`. Returns the task's result after the update
    /// (`None` while it runs).
    pub(crate) fn update_task(
        &mut self,
        runner_id: i64,
        task_id: i64,
        result: Option<Conclusion>,
        now: i64,
    ) -> Result<Option<Conclusion>, RpcError> {
        if let Some(r) = self.runners.get_mut(&runner_id) {
            r.last_active = now;
        }
        // `status.Errorf(codes.Internal, "update task: %v", err)` around `UpdateTaskByState`
        // (go-gitea/gitea v1.26.4 routers/api/actions/runner/runner.go:189-192,
        // models/actions/task.go:368-374; `util.ErrNotExist` reads "resource does not exist").
        let task = self
            .tasks
            .get_mut(&task_id)
            .ok_or_else(|| RpcError::status("Internal", "update task: resource does not exist"))?;
        if task.runner_id != runner_id {
            return Err(RpcError::status(
                "Internal",
                "update task: invalid runner for task",
            ));
        }
        let job_id = task.job_id;
        if task.done {
            return Ok(self.jobs.get(&job_id).and_then(|j| j.status.conclusion()));
        }
        task.last_update = now;
        let Some(c) = result else { return Ok(None) };
        self.finish_job(job_id, c, now);
        if self.runners.get(&runner_id).is_some_and(|r| r.ephemeral) {
            // Gitea deletes a used ephemeral runner in the same update, before the webhook is
            // rendered (go-gitea/gitea v1.26.4 models/actions/task.go:349-352,
            // `DeleteEphemeralRunner`); the `completed` payload therefore has no `runner_name`.
            self.runners.remove(&runner_id);
        }
        self.announce_job(job_id);
        Ok(Some(c))
    }

    /// The runner protocol's `UpdateLog`: keeps the runner busy (the interceptor bumps
    /// `last_active` on `UpdateTask` and `UpdateLog`, go-gitea/gitea v1.26.4
    /// routers/api/actions/runner/interceptor.go:50-53) and the task alive
    /// (routers/api/actions/runner/runner.go:251-303).
    pub(crate) fn update_log(
        &mut self,
        runner_id: i64,
        task_id: Option<i64>,
        rows: Vec<String>,
        now: i64,
    ) -> Result<(), RpcError> {
        if let Some(r) = self.runners.get_mut(&runner_id) {
            r.last_active = now;
        }
        let mut job_id = None;
        if let Some(task) = task_id.and_then(|t| self.tasks.get_mut(&t)) {
            if task.runner_id != runner_id {
                // go-gitea/gitea v1.26.4 routers/api/actions/runner/runner.go:262-264.
                return Err(RpcError::status("Internal", "invalid runner for task"));
            }
            if !task.done {
                task.last_update = now;
            }
            job_id = Some(task.job_id);
        }
        // Gitea appends the rows to the task's log (runner.go:251-303, `actions.WriteLogs`).
        if let Some(job) = job_id.and_then(|j| self.jobs.get_mut(&j)) {
            job.log.extend(rows);
        }
        Ok(())
    }

    /// Fails running tasks with no update for the zombie timeout (`ZOMBIE_TASK_TIMEOUT`, default
    /// 10 min: go-gitea/gitea v1.26.4 modules/setting/actions.go:117,
    /// services/actions/clear_tasks.go:25-30). Gitea's cron runs `@every 5m`
    /// (services/cron/tasks_actions.go:26-29); the simulator checks every 250 ms.
    pub(crate) fn sweep_zombies(&mut self, now: i64) {
        let stale: Vec<i64> = self
            .tasks
            .values()
            .filter(|t| !t.done && now - t.last_update > self.limits.zombie_after_ms)
            .map(|t| t.job_id)
            .collect();
        for job_id in stale {
            self.finish_job(job_id, Conclusion::Failure, now);
            self.announce_job(job_id);
        }
    }

    fn announce_job(&mut self, job_id: i64) {
        // `workflow_job` webhooks exist since 1.24 (go-gitea/gitea commit 651ef66966, #33694;
        // v1.26.4 services/webhook/notifier.go:987, `WorkflowJobStatusUpdate`).
        if self.webhook.is_none() || !self.version.at_least(1, 24) {
            return;
        }
        let Some(job) = self.jobs.get(&job_id) else {
            return;
        };
        let action = job.status.phase().as_str().to_owned();
        let repo = self
            .repos
            .get(&job.repo)
            .map_or(Value::Null, |r| self.repo_json(r));
        let body = json!({
            "action": action,
            "workflow_job": self.job_json(job),
            "repository": repo,
            "sender": self.user_json(),
        });
        self.outbox.push(Outgoing {
            event: "workflow_job",
            action: Some(action),
            job_id: Some(job_id),
            body,
        });
    }

    // ---------------------------------------------------------------- pushes

    /// Creates the pushed commits, moves the branch, enqueues the jobs and announces the push.
    pub(crate) fn push(&mut self, spec: &PushSpec, now: i64) -> Result<PushResult, SimError> {
        if spec.commits.is_empty() {
            return Err(SimError::Invalid("a push needs at least one commit".into()));
        }
        if spec.branch.trim().is_empty() || spec.branch.contains(' ') {
            return Err(SimError::Invalid(format!(
                "invalid branch name {:?}",
                spec.branch
            )));
        }
        let feed_max = self.limits.feed_max_commits;
        let repo = self.ensure_repo(&spec.repo, now)?;
        let old_tip = repo.branches.get(&spec.branch).cloned();
        let mut parent = match (&old_tip, &spec.from) {
            (Some(tip), _) => Some(tip.clone()),
            (None, Some(from)) => Some(repo.resolve(from).ok_or_else(|| {
                SimError::Invalid(format!("cannot start a branch from {from:?}"))
            })?),
            (None, None) => None,
        };
        // Validate every commit before changing anything.
        let mut scratch = repo.clone();
        let mut p = parent.clone();
        for c in &spec.commits {
            p = Some(
                scratch
                    .commit(p.as_deref(), &c.message, &c.changes, now)
                    .map_err(SimError::Invalid)?,
            );
        }
        let mut new_commits = Vec::new();
        for c in &spec.commits {
            let sha = repo
                .commit(parent.as_deref(), &c.message, &c.changes, now)
                .map_err(SimError::Invalid)?;
            new_commits.push(sha.clone());
            parent = Some(sha);
        }
        let after = parent.unwrap_or_default();
        repo.branches.insert(spec.branch.clone(), after.clone());
        if repo.branches.len() == 1 {
            repo.default_branch = spec.branch.clone();
        }
        let before = old_tip.unwrap_or_else(|| ZERO_SHA.to_owned());
        let ref_name = format!("refs/heads/{}", spec.branch);

        if spec.webhook && self.webhook.is_some() {
            let body = self.push_payload(
                &spec.repo,
                &ref_name,
                &before,
                &after,
                &new_commits,
                feed_max,
            );
            self.outbox.push(Outgoing {
                event: "push",
                action: None,
                job_id: None,
                body,
            });
        }
        let mut jobs = Vec::new();
        for job in &spec.jobs {
            let mut job = job.clone();
            job.repo = spec.repo.clone();
            job.head_branch = spec.branch.clone();
            job.head_sha = Some(after.clone());
            jobs.push(self.enqueue(&job, now)?);
        }
        Ok(PushResult {
            ref_name,
            before,
            after,
            commits: new_commits,
            jobs,
        })
    }

    /// Creates a tag at `target` and announces it as a push (`before` = zeros, no commits).
    pub(crate) fn push_tag(
        &mut self,
        repo_name: &str,
        tag: &str,
        target: &str,
        now: i64,
    ) -> Result<PushResult, SimError> {
        let repo = self
            .repos
            .get_mut(repo_name)
            .ok_or_else(|| SimError::UnknownRepo(repo_name.to_owned()))?;
        let sha = repo
            .resolve(target)
            .ok_or_else(|| SimError::Invalid(format!("unknown commit {target:?}")))?;
        if tag.trim().is_empty() || repo.tags.contains_key(tag) {
            return Err(SimError::Invalid(format!("tag {tag:?} is empty or exists")));
        }
        repo.tags.insert(tag.to_owned(), sha.clone());
        let ref_name = format!("refs/tags/{tag}");
        let _ = now;
        if self.webhook.is_some() {
            let body = self.push_payload(repo_name, &ref_name, ZERO_SHA, &sha, &[], 0);
            self.outbox.push(Outgoing {
                event: "push",
                action: None,
                job_id: None,
                body,
            });
        }
        Ok(PushResult {
            ref_name,
            before: ZERO_SHA.to_owned(),
            after: sha,
            commits: Vec::new(),
            jobs: Vec::new(),
        })
    }

    fn push_payload(
        &self,
        repo_name: &str,
        ref_name: &str,
        before: &str,
        after: &str,
        new_commits: &[String],
        feed_max: usize,
    ) -> Value {
        let Some(repo) = self.repos.get(repo_name) else {
            return Value::Null;
        };
        // Gitea cuts the payload to `[ui] FEED_MAX_COMMIT_NUM` commits while `total_commits`
        // stays complete (go-gitea/gitea v1.26.4 services/repository/push.go:211-212); the
        // simulator keeps the newest and lists them oldest first.
        let skip = new_commits.len().saturating_sub(feed_max);
        let commits: Vec<Value> = new_commits[skip..]
            .iter()
            .map(|c| self.payload_commit_json(repo, c))
            .collect();
        let html = self.repo_html_url(repo);
        let compare_url = if before == ZERO_SHA || new_commits.is_empty() {
            String::new()
        } else {
            format!("{html}/compare/{before}...{after}")
        };
        json!({
            "ref": ref_name,
            "before": before,
            "after": after,
            "compare_url": compare_url,
            "commits": commits,
            "total_commits": new_commits.len(),
            "head_commit": self.payload_commit_json(repo, after),
            "repository": self.repo_json(repo),
            "pusher": self.user_json(),
            "sender": self.user_json(),
        })
    }
}

/// Splits and checks `owner/name`.
pub(crate) fn split_repo(full_name: &str) -> Result<(&str, &str), SimError> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match full_name.split_once('/') {
        Some((o, n)) if valid(o) && valid(n) => Ok((o, n)),
        _ => Err(SimError::Invalid(format!(
            "repository name {full_name:?} is not owner/name"
        ))),
    }
}
