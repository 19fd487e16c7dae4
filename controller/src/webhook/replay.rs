//! The spool replayer: events the store could not take in time, recorded again, oldest first.

use std::future::Future;
use std::time::Duration;

use super::record::{record, EventError, Recorded};
use super::WebhookState;
use crate::quiet::{cap, FIELD_CHARS};
use crate::spool::SpoolError;

/// What one replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayReport {
    /// Events recorded and deleted from the spool.
    pub replayed: usize,
    /// Events still waiting (the store or Gitea is still unavailable).
    pub remaining: usize,
    /// Events that can never apply, moved into the spool's `dead-letter/` folder.
    pub quarantined: usize,
}

/// Replays the spool once, oldest first: each event is recorded exactly as the handler would,
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
        match record(
            state,
            &event.event,
            event.payload.as_bytes(),
            event.received_at,
        )
        .await
        {
            Ok(recorded) => {
                stored |= matches!(recorded, Recorded::Stored { .. });
                s.spool.remove(path).await?;
                report.replayed += 1;
            }
            Err(e @ EventError::Store(_)) if e.retryable() => {
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
