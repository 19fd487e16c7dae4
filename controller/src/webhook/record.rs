//! Recording an event once its signature checks out, for the handler and the replayer: the
//! pure translation ([`super::job`], [`super::push`]), then the store's writes (and, in push
//! mode, Gitea's reads of workflow files and changed files). Nothing here answers HTTP.
//! (Carrying out a plan is the reconciler's `apply`; nothing here plans or acts on EC2.)

use model::desired::{AttemptCounting, DesiredRun, JobState};
use model::{RunId, Timestamp};

use super::decode::{Decoded, Invalid};
use super::push::{Level, Note, Push};
use super::{job, push, WebhookState, RUNNER_RECORD_KEPT};
use crate::forge::ForgeError;
use crate::store::{Store, StoreError};

/// What recording an event did.
#[derive(Debug)]
pub(super) enum Recorded {
    /// Runs written (created or updated).
    Stored { runs: Vec<RunId>, created: usize },
    /// Nothing to do, and why.
    Ignored(String),
}

impl Recorded {
    fn stored(run: RunId, created: bool) -> Self {
        Recorded::Stored {
            runs: vec![run],
            created: usize::from(created),
        }
    }
}

/// Why an event was not recorded.
#[derive(Debug, thiserror::Error)]
pub(super) enum EventError {
    /// The payload can never be recorded ([`Invalid`]).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("gitea: {0}")]
    Forge(#[from] ForgeError),
}

impl EventError {
    /// Worth keeping for a later try: the store, or Gitea being down, slow, or refusing our
    /// token (an operator can fix that).
    pub(super) fn retryable(&self) -> bool {
        match self {
            EventError::Invalid(_) => false,
            // A hand-broken row stays broken until someone edits it, and an item the table
            // refuses (too large, invalid) is refused again; everything else is the table
            // being away.
            EventError::Store(e) => {
                !matches!(e, StoreError::InvalidRow { .. } | StoreError::Rejected(_))
            }
            EventError::Forge(e) => {
                e.is_transient()
                    || matches!(e, ForgeError::Unauthorized(_) | ForgeError::Forbidden(_))
            }
        }
    }
}

/// Records one event of kind `event` received at `at`.
pub(super) async fn record(
    state: &WebhookState,
    event: &str,
    body: &[u8],
    at: Timestamp,
) -> Result<Recorded, EventError> {
    let s = &state.inner;
    match event {
        "workflow_job" => {
            let recorded = store_workflow_job(s.store.as_ref(), s.counting, body, at).await?;
            if let (Some(metrics), Some(wait)) = (&s.metrics, job::queued_to_started(body)) {
                metrics.queued_to_started(wait.as_secs_f64());
            }
            Ok(recorded)
        }
        "push" => record_push(state, body, at).await,
        _ => Ok(Recorded::Ignored("event not used".into())),
    }
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
        Ok(Recorded::Stored { .. }) => Ok(true),
        Ok(Recorded::Ignored(_)) => Ok(false),
        Err(e) => Err(RecordError {
            message: e.to_string(),
            retryable: e.retryable(),
        }),
    }
}

/// A `workflow_job` event ([`job::translate`]) written to `store`: a queued job creates its
/// run; a later state is recorded on it (the store never moves it backwards), creating the
/// run with that state if its queued event was missed, so nothing is lost.
async fn store_workflow_job(
    store: &dyn Store,
    counting: AttemptCounting,
    body: &[u8],
    at: Timestamp,
) -> Result<Recorded, EventError> {
    let e = match job::translate(body, counting, at)? {
        Decoded::Use(e) => e,
        Decoded::Ignore(why) => return Ok(Recorded::Ignored(why)),
    };
    let row = || DesiredRun::new(e.run.clone(), e.spec.clone());
    if *e.state() == JobState::Queued {
        return Ok(Recorded::stored(e.run.clone(), store.create(&row()).await?));
    }
    // The cache learns which job a runner of ours runs from here (wiki/Cache.md); written
    // before the job state, which the cache checks second.
    if let Some((runner, record)) = &e.runner_job {
        store
            .set_runner_job(runner, record, at.plus(RUNNER_RECORD_KEPT))
            .await?;
    }
    if store.set_job_state(&e.run, e.state()).await? {
        return Ok(Recorded::stored(e.run.clone(), false));
    }
    if store.create(&row()).await? {
        return Ok(Recorded::stored(e.run.clone(), true));
    }
    // Lost a race with a concurrent create: the row exists now.
    store.set_job_state(&e.run, e.state()).await?;
    Ok(Recorded::stored(e.run.clone(), false))
}

/// A `push` event ([`push::translate`]): the workflow files at its commit read from Gitea
/// (and its changed files when a path filter needs them), the runs it triggers
/// ([`push::runs`]) created, all checked before any is written.
async fn record_push(
    state: &WebhookState,
    body: &[u8],
    at: Timestamp,
) -> Result<Recorded, EventError> {
    let mut push: Push = match push::translate(body)? {
        Decoded::Use(p) => p,
        Decoded::Ignore(why) => return Ok(Recorded::Ignored(why)),
    };
    let Some(forge) = state.inner.forge.as_ref() else {
        // WebhookState::new refuses push mode without a forge.
        return Ok(Recorded::Ignored("no Gitea client for push mode".into()));
    };
    let files = forge.workflow_files(&push.repo, push.after()).await?;
    let (workflows, notes) = push::parse_workflows(files);
    log_notes(&push.repo, &notes);
    if workflows.is_empty() {
        return Ok(Recorded::Ignored(
            "no workflow files at the pushed commit".into(),
        ));
    }
    if push::needs_changed_files(&push, &workflows) {
        push.event.changed_files = match forge
            .changed_files(&push.repo, push.before(), push.after())
            .await
        {
            Ok(files) => files,
            // Gitea cannot diff either: path-filtered workflows do not run.
            Err(ForgeError::NotFound(_) | ForgeError::BadResponse(_)) => None,
            Err(e) => return Err(e.into()),
        };
    }
    let (pending, notes) = push::runs(&push, &workflows, at)?;
    log_notes(&push.repo, &notes);
    let mut runs = Vec::new();
    let mut created = 0;
    for run in pending {
        if state.inner.store.create(&run).await? {
            created += 1;
        }
        runs.push(run.id);
    }
    if runs.is_empty() {
        return Ok(Recorded::Ignored("no workflow triggered".into()));
    }
    Ok(Recorded::Stored { runs, created })
}

/// Logs what the push translation noted about files and jobs that get no run.
fn log_notes(repo: &str, notes: &[Note]) {
    for n in notes {
        let (path, job, reason) = (&n.path, n.job.as_deref(), n.reason.as_deref());
        match n.level {
            Level::Debug => tracing::debug!(repo, path, job, reason, "{}", n.what),
            Level::Info => tracing::info!(repo, path, job, reason, "{}", n.what),
            Level::Warn => tracing::warn!(repo, path, job, reason, "{}", n.what),
        }
    }
}
