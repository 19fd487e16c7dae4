//! The Gitea webhook receiver: `POST /hooks/gitea`.
//!
//! It verifies the signature, turns the event into desired runs in the store and wakes the
//! reconcile loop. It never calls EC2, and it answers well inside Gitea's 5 s delivery timeout.
//!
//! | Answer | Meaning |
//! |---|---|
//! | 200 | The runs are in the store (`{"runs":[…],"created":n}`). |
//! | 202 | The store could not take them in time; the event is in the local spool and will be replayed. |
//! | 204 | Nothing to do: an event or action we do not use, a push by the Actions bot, a deleted ref, `[skip ci]`. |
//! | 400 | A malformed body or a missing event header (short reason, nothing of the body echoed). |
//! | 401 | Missing or wrong signature. Nothing is written. A WARN is logged at most once per [`BAD_SIGNATURE_WARN_EVERY`], with the count of the ones held back. |
//! | 413 | Body over [`MAX_BODY_BYTES`]. |
//! | 422 | An event that can never be stored: a field over its limit (too many or too long labels, a job, runner or repository name too long: [`limits`]), or a run the table refuses as invalid; or a push that can never be expanded (repository or commit unknown to Gitea). Nothing is written or spooled. |
//! | 503 | Neither the store nor the spool could take the event: Gitea shows the delivery failed. |
//!
//! A 2xx therefore always means the event is durable. Redelivery and replays are idempotent:
//! run ids are derived from the job and its pick (`job-<id>-<pick>`, the `run_attempt` the
//! job has once a runner takes it: a re-run is a new run) or from the push (repository,
//! commit, workflow, job, instance). Whether a `queued` event still holds (a manual
//! redelivery can be old) is checked against Gitea before anything is launched.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use model::config::DemandSource;
use model::desired::{AttemptCounting, DesiredRun, JobAction, JobRef, JobState, Origin, RunSpec};
use model::secret::Secret;
use model::{RunId, Timestamp};
use serde::Deserialize;
use sha2::Sha256;
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::forge::gitea::{repo_from_api_url, RepoRef, WorkflowJob};
use crate::forge::{Forge, ForgeError};
use crate::metrics::Metrics;
use crate::quiet::{cap, RateLimit, FIELD_CHARS};
use crate::spool::{Spool, SpoolError, SpooledEvent, FORMAT};
use crate::store::{Store, StoreError};

pub mod limits;
mod push;

/// Where Gitea posts.
pub const HOOK_PATH: &str = "/hooks/gitea";

/// Largest body accepted (Gitea's push payloads are far smaller).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Gitea's default `[actions] SKIP_WORKFLOW_STRINGS`.
pub const DEFAULT_SKIP_STRINGS: [&str; 5] = [
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip actions]",
    "[actions skip]",
];

/// The login of Gitea's Actions bot; its pushes trigger no workflow.
pub const ACTIONS_BOT: &str = "gitea-actions";

/// How long the handler works on an event before spooling it instead (Gitea gives up at 5 s).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3);

/// At most one WARN per this long for requests with a bad signature (anyone can send them);
/// the next one says how many were held back.
pub const BAD_SIGNATURE_WARN_EVERY: Duration = Duration::from_secs(60);

/// The receiver cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No webhook secret: every delivery would be unauthenticated.
    #[error("the webhook secret is empty: set the environment variable named by gitea.webhook_secret_env")]
    EmptySecret,
    /// Demand mode `push` reads workflow files from Gitea and needs the forge client.
    #[error("demand mode `push` needs a Gitea client to read workflow files")]
    PushNeedsForge,
}

struct Inner {
    store: Arc<dyn Store>,
    secret: Secret,
    demand: DemandSource,
    wake: Arc<Notify>,
    spool: Arc<Spool>,
    forge: Option<Arc<dyn Forge>>,
    skip_strings: Vec<String>,
    deadline: Duration,
    metrics: Option<Metrics>,
    counting: AttemptCounting,
    clock: Arc<dyn Clock>,
    bad_signatures: Arc<Mutex<RateLimit>>,
}

/// What the receiver needs; cheap to clone.
#[derive(Clone)]
pub struct WebhookState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("demand", &self.inner.demand)
            .field("spool", &self.inner.spool.dir())
            .field("secret", &self.inner.secret)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// The receiver's state.
    ///
    /// - `store`: where runs are written.
    /// - `secret`: the webhook secret (from the variable named by `gitea.webhook_secret_env`).
    /// - `demand`: `jobs` uses `workflow_job` events, `push` uses `push` events; the other
    ///   kind is answered 204.
    /// - `wake`: notified after every stored change, to start a reconcile pass.
    /// - `spool`: the durable spool (`server.spool_dir`).
    /// - `forge`: needed in push mode to read workflow files and changed files.
    ///
    /// # Errors
    /// [`WebhookError::EmptySecret`], or [`WebhookError::PushNeedsForge`] in push mode
    /// without a forge.
    pub fn new(
        store: Arc<dyn Store>,
        secret: Secret,
        demand: DemandSource,
        wake: Arc<Notify>,
        spool: Arc<Spool>,
        forge: Option<Arc<dyn Forge>>,
    ) -> Result<Self, WebhookError> {
        if secret.is_empty() {
            return Err(WebhookError::EmptySecret);
        }
        if demand == DemandSource::Push && forge.is_none() {
            return Err(WebhookError::PushNeedsForge);
        }
        Ok(WebhookState {
            inner: Arc::new(Inner {
                store,
                secret,
                demand,
                wake,
                spool,
                forge,
                skip_strings: DEFAULT_SKIP_STRINGS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                deadline: DEFAULT_DEADLINE,
                metrics: None,
                counting: AttemptCounting::default(),
                clock: Arc::new(SystemClock),
                bad_signatures: Arc::new(Mutex::new(RateLimit::new(BAD_SIGNATURE_WARN_EVERY))),
            }),
        })
    }

    /// Replaces the skip strings (Gitea's `[actions] SKIP_WORKFLOW_STRINGS`).
    #[must_use]
    pub fn with_skip_strings(self, strings: Vec<String>) -> Self {
        self.rebuild(|i| i.skip_strings = strings)
    }

    /// Replaces how long the handler works before spooling ([`DEFAULT_DEADLINE`]).
    #[must_use]
    pub fn with_deadline(self, deadline: Duration) -> Self {
        self.rebuild(|i| i.deadline = deadline)
    }

    /// Records each job's wait from created to started (`tinqs_queued_to_started_seconds`)
    /// when an `in_progress` event carries both times.
    #[must_use]
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        self.rebuild(|i| i.metrics = Some(metrics))
    }

    /// How the Gitea sending the events counts a job's `run_attempt` (by its version):
    /// decides which run (which pick of the job) an event is about.
    #[must_use]
    pub fn with_attempt_counting(self, counting: AttemptCounting) -> Self {
        self.rebuild(|i| i.counting = counting)
    }

    /// Where "now" comes from (event times, the bad-signature warning limit).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.rebuild(|i| i.clock = clock)
    }

    fn rebuild(self, edit: impl FnOnce(&mut Inner)) -> Self {
        let i = &self.inner;
        let mut inner = Inner {
            store: Arc::clone(&i.store),
            secret: i.secret.clone(),
            demand: i.demand,
            wake: Arc::clone(&i.wake),
            spool: Arc::clone(&i.spool),
            forge: i.forge.clone(),
            skip_strings: i.skip_strings.clone(),
            deadline: i.deadline,
            metrics: i.metrics.clone(),
            counting: i.counting,
            clock: Arc::clone(&i.clock),
            bad_signatures: Arc::clone(&i.bad_signatures),
        };
        edit(&mut inner);
        WebhookState {
            inner: Arc::new(inner),
        }
    }

    /// The spool.
    #[must_use]
    pub fn spool(&self) -> &Arc<Spool> {
        &self.inner.spool
    }
}

/// The receiver as an axum router serving `POST /hooks/gitea`; mount or merge it into the
/// server's router.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(HOOK_PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

// ---- the handler ---------------------------------------------------------------------------

async fn receive(State(state): State<WebhookState>, headers: HeaderMap, body: Bytes) -> Response {
    let s = &state.inner;
    let delivery = header(&headers, "x-gitea-delivery").map(|d| cap(d, FIELD_CHARS));
    if !signature_ok(&s.secret, &headers, &body) {
        let admitted = match s.bad_signatures.lock() {
            Ok(mut limit) => limit.admit(s.clock.now()),
            Err(poisoned) => poisoned.into_inner().admit(s.clock.now()),
        };
        if let Some(held_back) = admitted {
            tracing::warn!(
                delivery,
                held_back,
                "webhook refused: bad or missing signature (at most one such warning per {})",
                humantime::format_duration(BAD_SIGNATURE_WARN_EVERY)
            );
        }
        return (StatusCode::UNAUTHORIZED, "invalid or missing signature\n").into_response();
    }
    let Some(event) = event_name(&headers) else {
        return (StatusCode::BAD_REQUEST, "missing X-Gitea-Event header\n").into_response();
    };
    if !wanted(s.demand, &event) {
        tracing::debug!(event, "webhook event not used in this demand mode");
        return StatusCode::NO_CONTENT.into_response();
    }
    let received_at = s.clock.now();
    let outcome = tokio::time::timeout(s.deadline, apply(&state, &event, &body, received_at)).await;
    let failure = match outcome {
        Ok(Ok(Applied::Stored { runs, created })) => {
            if !runs.is_empty() {
                s.wake.notify_one();
            }
            tracing::info!(event, delivery, created, runs = ?runs, "webhook stored");
            let ids: Vec<&str> = runs.iter().map(RunId::as_str).collect();
            return (
                StatusCode::OK,
                Json(serde_json::json!({ "runs": ids, "created": created })),
            )
                .into_response();
        }
        Ok(Ok(Applied::Ignored(why))) => {
            tracing::debug!(event, delivery, why, "webhook ignored");
            return StatusCode::NO_CONTENT.into_response();
        }
        Ok(Err(ApplyError::Malformed(reason))) => {
            tracing::warn!(event, delivery, reason, "webhook refused: malformed");
            return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response();
        }
        Ok(Err(e)) if !e.retryable() => {
            tracing::warn!(event, delivery, error = %e, "webhook refused: cannot be applied");
            return (StatusCode::UNPROCESSABLE_ENTITY, format!("{e}\n")).into_response();
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not done within {}", humantime::format_duration(s.deadline)),
    };
    let payload = match String::from_utf8(body.to_vec()) {
        Ok(p) => p,
        Err(_) => return (StatusCode::BAD_REQUEST, "body is not UTF-8\n").into_response(),
    };
    let spooled = SpooledEvent {
        format: FORMAT,
        event: event.clone(),
        delivery: delivery.clone(),
        received_at,
        payload,
    };
    match s.spool.append(&spooled).await {
        Ok(path) => {
            tracing::warn!(event, delivery, reason = failure, file = %path.display(), "webhook spooled");
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "spooled": true })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(event, delivery, reason = failure, error = %e, "webhook lost: store and spool both failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "store and spool unavailable; redeliver later\n",
            )
                .into_response()
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn event_name(headers: &HeaderMap) -> Option<String> {
    [
        "x-gitea-event",
        "x-forgejo-event",
        "x-gogs-event",
        "x-github-event",
    ]
    .iter()
    .find_map(|h| header(headers, h).filter(|v| !v.is_empty()))
    .map(str::to_owned)
}

fn wanted(demand: DemandSource, event: &str) -> bool {
    matches!(
        (demand, event),
        (DemandSource::Jobs, "workflow_job") | (DemandSource::Push, "push")
    )
}

/// HMAC-SHA256 of `body` with the secret, from `X-Gitea-Signature` (hex) or
/// `X-Hub-Signature-256` (`sha256=<hex>`), compared in constant time.
#[must_use]
pub fn signature_ok(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> bool {
    let given = header(headers, "x-gitea-signature")
        .filter(|v| !v.is_empty())
        .or_else(|| header(headers, "x-hub-signature-256").and_then(|v| v.strip_prefix("sha256=")));
    let Some(Ok(given)) = given.map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The `X-Gitea-Signature` value for `body`: lowercase hex HMAC-SHA256 (for senders and tests).
#[must_use]
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    // NOTE: HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

// ---- applying an event (the handler and the replayer) -------------------------------------

/// What an event did.
#[derive(Debug)]
enum Applied {
    /// Runs written (created or updated).
    Stored { runs: Vec<RunId>, created: usize },
    /// Nothing to do, and why.
    Ignored(&'static str),
}

/// Why an event was not applied.
#[derive(Debug, thiserror::Error)]
enum ApplyError {
    #[error("{0}")]
    Malformed(String),
    /// A field over its limit ([`limits`]): the run could never be stored.
    #[error("{0}")]
    Refused(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("gitea: {0}")]
    Forge(#[from] ForgeError),
}

impl ApplyError {
    /// Worth keeping for a later try: the store, or Gitea being down, slow, or refusing our
    /// token (an operator can fix that).
    fn retryable(&self) -> bool {
        match self {
            ApplyError::Malformed(_) | ApplyError::Refused(_) => false,
            // A hand-broken row stays broken until someone edits it, and an item the table
            // refuses (too large, invalid) is refused again; everything else is the table
            // being away.
            ApplyError::Store(e) => {
                !matches!(e, StoreError::InvalidRow { .. } | StoreError::Rejected(_))
            }
            ApplyError::Forge(e) => {
                e.is_transient()
                    || matches!(e, ForgeError::Unauthorized(_) | ForgeError::Forbidden(_))
            }
        }
    }
}

async fn apply(
    state: &WebhookState,
    event: &str,
    body: &[u8],
    at: Timestamp,
) -> Result<Applied, ApplyError> {
    match event {
        "workflow_job" => {
            let applied = apply_workflow_job(state, body, at).await?;
            if let Some(metrics) = &state.inner.metrics {
                if let Some(wait) = queued_to_started(body) {
                    metrics.queued_to_started(wait.as_secs_f64());
                }
            }
            Ok(applied)
        }
        "push" => push::apply_push(state, body, at).await,
        _ => Ok(Applied::Ignored("event not used")),
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApplyError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let what = if text.starts_with("missing field") {
            text.split(" at line")
                .next()
                .unwrap_or("missing field")
                .to_owned()
        } else {
            match e.classify() {
                serde_json::error::Category::Data => "unexpected field type".to_owned(),
                serde_json::error::Category::Eof => "truncated JSON".to_owned(),
                _ => "not JSON".to_owned(),
            }
        };
        ApplyError::Malformed(format!(
            "malformed JSON: {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

#[derive(Deserialize)]
struct WorkflowJobHook {
    action: String,
    workflow_job: WorkflowJob,
    #[serde(default)]
    repository: Option<RepoRef>,
}

/// How long a runner's record (its cache credential hash and job) is kept: longer than any
/// runner lives.
pub const RUNNER_RECORD_KEPT: Duration = Duration::from_secs(2 * 24 * 3600);

async fn apply_workflow_job(
    state: &WebhookState,
    body: &[u8],
    at: Timestamp,
) -> Result<Applied, ApplyError> {
    store_workflow_job(state.inner.store.as_ref(), state.inner.counting, body, at).await
}

/// Why [`record_workflow_job`] did not store an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RecordError {
    /// What went wrong (never holding a secret).
    pub message: String,
    /// Whether the receiver would keep the event in its spool and replay it (the table was
    /// away), as opposed to refusing it for good (malformed, over a limit).
    pub retryable: bool,
}

/// Records one `workflow_job` event in `store` exactly as the receiver does once the
/// signature checks out: the same decoding, limits, run id and writes. For the simulator
/// (`tinqs-ci sim`), which delivers Gitea's events without HTTP. Returns whether the event
/// was used (`false` for an action tinqs-ci ignores, such as `waiting`).
///
/// # Errors
/// [`RecordError`], saying whether the receiver would spool the event for a later replay.
pub async fn record_workflow_job(
    store: &dyn Store,
    counting: AttemptCounting,
    body: &[u8],
    at: Timestamp,
) -> Result<bool, RecordError> {
    match store_workflow_job(store, counting, body, at).await {
        Ok(Applied::Stored { .. }) => Ok(true),
        Ok(Applied::Ignored(_)) => Ok(false),
        Err(e) => Err(RecordError {
            message: e.to_string(),
            retryable: e.retryable(),
        }),
    }
}

async fn store_workflow_job(
    store: &dyn Store,
    counting: AttemptCounting,
    body: &[u8],
    at: Timestamp,
) -> Result<Applied, ApplyError> {
    let hook: WorkflowJobHook = parse(body)?;
    let job = hook.workflow_job;
    if job.id <= 0 {
        return Err(ApplyError::Malformed(
            "workflow_job.id must be a positive job id".into(),
        ));
    }
    let run_attempt = match job.run_attempt {
        None => 0,
        Some(a) => u32::try_from(a).map_err(|_| {
            ApplyError::Malformed("workflow_job.run_attempt is out of range".into())
        })?,
    };
    let action = JobAction::parse(&hook.action);
    let state_reported = match action {
        Some(JobAction::Queued) => JobState::Queued,
        Some(JobAction::InProgress) => JobState::InProgress {
            runner: job.runner_name.clone().filter(|r| !r.is_empty()),
        },
        Some(JobAction::Completed) => JobState::Completed {
            conclusion: job.conclusion.clone().unwrap_or_default(),
        },
        // `waiting` (blocked on needs or concurrency) becomes `queued` when it can run.
        Some(JobAction::Waiting) | None => {
            return Ok(Applied::Ignored("workflow_job action not used"))
        }
    };
    // One Gitea job id can be run several times (a re-run resets the same row on Gitea
    // 1.24 – 1.26): the run is keyed on the job and its pick, so a re-run is a new run and a
    // redelivery the same one.
    let attempt = counting.pick(action.unwrap_or(JobAction::Queued), run_attempt);
    let id = RunId::for_job(job.id, attempt);
    let default_branch = hook
        .repository
        .as_ref()
        .and_then(|r| r.default_branch.clone())
        .filter(|b| !b.is_empty());
    let repo = hook
        .repository
        .and_then(|r| r.full_name)
        .filter(|r| !r.is_empty())
        .or_else(|| job.url.as_deref().and_then(repo_from_api_url));
    let job_ref = JobRef {
        id: job.id,
        attempt,
        name: job.name.filter(|n| !n.is_empty()),
        run_id: job.run_id,
    };
    let mut spec = RunSpec::for_job(
        job_ref,
        job.labels.unwrap_or_default(),
        repo,
        Origin::Webhook,
        at,
    );
    limits::check_spec(&spec).map_err(ApplyError::Refused)?;
    limits::check_state(&state_reported).map_err(ApplyError::Refused)?;
    if state_reported == JobState::Queued {
        let created = store.create(&DesiredRun::new(id.clone(), spec)).await?;
        return Ok(Applied::Stored {
            runs: vec![id],
            created: usize::from(created),
        });
    }
    // The cache learns which job a runner of ours runs from here (wiki/Cache.md); written
    // before the job state, which the cache checks second.
    if let (
        JobState::InProgress {
            runner: Some(runner),
        },
        Some(repo),
    ) = (&state_reported, &spec.repo)
    {
        if runner.starts_with("tq-") {
            let record = model::cache::RunnerJob {
                run: id.clone(),
                job_id: job.id,
                repo: repo.clone(),
                branch: job.head_branch.clone().filter(|b| !b.is_empty()),
                default_branch,
                workflow_run: job.run_id,
            };
            store
                .set_runner_job(runner, &record, at.plus(RUNNER_RECORD_KEPT))
                .await?;
        }
    }
    // A later state: record it, creating the run (with that state) if its queued event was
    // missed, so nothing is lost. The store never moves the state backwards.
    if store.set_job_state(&id, &state_reported).await? {
        return Ok(Applied::Stored {
            runs: vec![id],
            created: 0,
        });
    }
    spec.job_state = state_reported.clone();
    if store.create(&DesiredRun::new(id.clone(), spec)).await? {
        return Ok(Applied::Stored {
            runs: vec![id],
            created: 1,
        });
    }
    // Lost a race with a concurrent create: the row exists now.
    store.set_job_state(&id, &state_reported).await?;
    Ok(Applied::Stored {
        runs: vec![id],
        created: 0,
    })
}

/// The times of a `workflow_job` event, read apart from the rest so a missing or odd time
/// never fails the event.
#[derive(Deserialize)]
struct JobTimes {
    action: String,
    workflow_job: JobTimesInner,
}

#[derive(Deserialize)]
struct JobTimesInner {
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
}

/// For an `in_progress` event: how long the job waited, from `created_at` to `started_at`.
/// `None` for other actions, a missing, zero or unreadable time, or a start before creation.
/// Gitea's `created_at` is when the job was created, so a job that waited on `needs` counts
/// that wait too.
fn queued_to_started(body: &[u8]) -> Option<Duration> {
    let times: JobTimes = serde_json::from_slice(body).ok()?;
    if times.action != "in_progress" {
        return None;
    }
    let created = parse_time(times.workflow_job.created_at.as_deref()?)?;
    let started = parse_time(times.workflow_job.started_at.as_deref()?)?;
    (started >= created).then(|| started.since(created))
}

/// An RFC 3339 time as Gitea writes it: `Z` or a numeric offset (`+02:00`), which Gitea uses
/// when its server runs in another time zone. Go's zero time (year 1) counts as absent.
fn parse_time(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    let (base, offset_ms) = match t
        .len()
        .checked_sub(6)
        .and_then(|i| t.get(i..).map(|o| (i, o)))
    {
        Some((i, o))
            if (o.starts_with('+') || o.starts_with('-')) && o.as_bytes().get(3) == Some(&b':') =>
        {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hours: i64 = o.get(1..3)?.parse().ok()?;
            let minutes: i64 = o.get(4..6)?.parse().ok()?;
            (
                format!("{}Z", t.get(..i)?),
                sign * (hours * 60 + minutes) * 60_000,
            )
        }
        _ => (t.to_owned(), 0),
    };
    let local = Timestamp::parse(&base).ok()?;
    let utc = Timestamp::from_millis(local.as_millis() - offset_ms);
    (utc > Timestamp::EPOCH).then_some(utc)
}

// ---- the spool replayer ------------------------------------------------------------------

/// What one replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Events applied and deleted from the spool.
    pub replayed: usize,
    /// Events still waiting (the store or Gitea is still unavailable).
    pub remaining: usize,
    /// Events that can never apply, moved into the spool's `dead-letter/` folder.
    pub quarantined: usize,
}

/// Replays the spool once, oldest first: each event is applied exactly as the handler would,
/// then deleted. An event that fails for a reason that may pass (Gitea down) stays; the first
/// store failure that may pass ends the round (the table is away); events that can never
/// apply (unreadable, over a limit, refused by the table as invalid) are set aside into the
/// spool's `dead-letter/` folder with a WARN and `tinqs_spool_set_aside_total`, so the events
/// after them replay. Wakes the loop if anything was stored.
///
/// # Errors
/// When the spool directory itself cannot be read or changed.
pub async fn replay_spool_once(state: &WebhookState) -> Result<ReplayReport, SpoolError> {
    let s = &state.inner;
    let _guard = s.spool.replay_guard().await;
    let files = s.spool.pending().await?;
    let mut report = ReplayReport::default();
    let mut stored = false;
    for (i, path) in files.iter().enumerate() {
        let event = match s.spool.read(path).await {
            Ok(e) => e,
            Err(SpoolError::Corrupt { path, problem }) => {
                set_aside(state, &path, &cap(&problem, FIELD_CHARS)).await?;
                report.quarantined += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        match apply(
            state,
            &event.event,
            event.payload.as_bytes(),
            event.received_at,
        )
        .await
        {
            Ok(applied) => {
                stored |= matches!(applied, Applied::Stored { .. });
                s.spool.remove(path).await?;
                report.replayed += 1;
            }
            Err(e @ ApplyError::Store(_)) if e.retryable() => {
                // The table is away: the rest would fail the same way.
                tracing::info!(error = %e, waiting = files.len() - i, "spool replay paused");
                report.remaining += files.len() - i;
                break;
            }
            Err(e) if e.retryable() => {
                tracing::info!(file = %path.display(), error = %e, "spooled event kept for a later try");
                report.remaining += 1;
            }
            Err(e) => {
                set_aside(state, path, &cap(&e.to_string(), FIELD_CHARS)).await?;
                report.quarantined += 1;
            }
        }
    }
    if stored {
        s.wake.notify_one();
    }
    if let Some(metrics) = &s.metrics {
        let census = s.spool.census().await?;
        metrics.spool(census.pending, census.dead_letter);
    }
    Ok(report)
}

/// Moves a spooled event that can never apply into the dead-letter folder, with a WARN and
/// the metric.
async fn set_aside(
    state: &WebhookState,
    path: &std::path::Path,
    why: &str,
) -> Result<(), SpoolError> {
    let s = &state.inner;
    let moved = s.spool.quarantine(path).await?;
    if let Some(metrics) = &s.metrics {
        metrics.spool_set_aside();
    }
    tracing::warn!(
        file = %moved.display(),
        error = why,
        "spooled event can never apply: set aside in the dead-letter folder; the rest replays"
    );
    Ok(())
}

/// Replays the spool every `every` until `shutdown` resolves (spawn it next to the server).
pub async fn run_spool_replayer(
    state: WebhookState,
    every: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        match replay_spool_once(&state).await {
            Ok(r) if r.replayed + r.quarantined > 0 => tracing::info!(
                replayed = r.replayed,
                remaining = r.remaining,
                quarantined = r.quarantined,
                "spool replayed"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "spool replay failed"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
