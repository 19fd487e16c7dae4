//! The Gitea webhook receiver: `POST /hooks/gitea`.
//!
//! It verifies the signature, turns the event into desired runs in the store and wakes the
//! reconcile loop. It never calls EC2, and it answers well inside Gitea's 5 s delivery timeout.
//!
//! # Layout
//! - `handler.rs`: the HTTP shell: signature, event header, deadline, spool, and the one
//!   `Outcome` each delivery ends in.
//! - `outcome.rs`: that outcome and the one `match` mapping it to the table below.
//! - `signature.rs`: the HMAC check ([`signature_ok`], [`sign`]).
//! - `job.rs`, `push.rs`: the pure translation of a payload into runs (no I/O): a
//!   `workflow_job` to (run id, spec, job state), a push and its workflow files to runs.
//! - `record.rs`: what the handler and the replayer do with a translated event: the store's
//!   writes, and Gitea's reads in push mode ([`record_workflow_job`]).
//! - `replay.rs`: the spool replayer ([`replay_spool_once`], [`run_spool_replayer`]).
//! - [`limits`]: what one event may put in a run.
//!
//! | Answer | Meaning |
//! |---|---|
//! | 200 | The runs are in the store (`{"runs":[…],"created":n}`); a redelivery answers the same with `created` 0. |
//! | 202 | The store could not take them in time; the event is in the local spool and will be replayed. |
//! | 204 | Nothing to do: an event or action we do not use, a push by the Actions bot, a push that starts no workflow (a deleted ref, a skip marker: [`model::workflow::PushEvent::starts_nothing`]). |
//! | 400 | A malformed body or a missing event header (short reason, nothing of the body echoed). |
//! | 401 | Missing or wrong signature. Nothing is written. A WARN is logged at most once per [`BAD_SIGNATURE_WARN_EVERY`], with the count of the ones held back. |
//! | 413 | Body over [`MAX_BODY_BYTES`] (axum's body limit answers it before the handler runs). |
//! | 422 | An event that can never be stored: a field over its limit (too many or too long labels, a job, runner or repository name too long: [`limits`]), or a run the table refuses as invalid; or a push that can never be expanded (repository or commit unknown to Gitea). Nothing is written or spooled. |
//! | 503 | Neither the store nor the spool could take the event: Gitea shows the delivery failed. |
//!
//! A 2xx therefore always means the event is durable. Redelivery and replays are idempotent:
//! run ids are derived from the job and its pick (`job-<id>-<pick>`, the `run_attempt` the
//! job has once a runner takes it: a re-run is a new run) or from the push (repository,
//! commit, workflow, job, instance). Whether a `queued` event still holds (a manual
//! redelivery can be old) is checked against Gitea before anything is launched.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use model::config::DemandSource;
use model::desired::AttemptCounting;
use model::secret::Secret;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::{Clock, SystemClock};
use crate::forge::Forge;
use crate::metrics::Metrics;
use crate::quiet::RateLimit;
use crate::spool::Spool;
use crate::store::Store;

mod decode;
mod handler;
mod job;
pub mod limits;
mod outcome;
mod push;
mod record;
mod replay;
mod signature;
#[cfg(test)]
mod tests;

pub use record::{record_workflow_job, RecordError};
pub use replay::{replay_spool_once, run_spool_replayer, ReplayReport};
pub use signature::{sign, signature_ok};

/// Where Gitea posts.
pub const HOOK_PATH: &str = "/hooks/gitea";

/// Largest body accepted (Gitea's push payloads are far smaller).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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
                deadline: DEFAULT_DEADLINE,
                metrics: None,
                counting: AttemptCounting::default(),
                clock: Arc::new(SystemClock),
                bad_signatures: Arc::new(Mutex::new(RateLimit::new(BAD_SIGNATURE_WARN_EVERY))),
            }),
        })
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
        .route(HOOK_PATH, post(handler::receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// How long a runner's record (its cache credential hash and job) is kept: longer than any
/// runner lives.
pub const RUNNER_RECORD_KEPT: Duration = Duration::from_secs(2 * 24 * 3600);

/// A header's value, trimmed; `None` when absent or not text.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}
