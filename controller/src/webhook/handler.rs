//! The HTTP shell around [`super::record`]: signature, event header, demand mode, the deadline
//! and the spool. Every path ends in one [`Outcome`], which is the answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use model::config::DemandSource;

use super::decode::Invalid;
use super::outcome::Outcome;
use super::record::{record, EventError, Recorded};
use super::{header, signature_ok, WebhookState, BAD_SIGNATURE_WARN_EVERY};
use crate::quiet::{cap, FIELD_CHARS};
use crate::spool::{SpooledEvent, FORMAT};

/// `POST /hooks/gitea`.
pub(super) async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> Outcome {
    let s = &state.inner;
    let delivery = header(&headers, "x-gitea-delivery").map(|d| cap(d, FIELD_CHARS));
    if !signature_ok(&s.secret, &headers, &body) {
        let admitted = s.bad_signatures.lock().admit(s.clock.now());
        if let Some(held_back) = admitted {
            tracing::warn!(
                delivery,
                held_back,
                "webhook refused: bad or missing signature (at most one such warning per {})",
                humantime::format_duration(BAD_SIGNATURE_WARN_EVERY)
            );
        }
        return Outcome::BadSignature;
    }
    let Some(event) = event_name(&headers) else {
        return Outcome::Malformed("missing X-Gitea-Event header".into());
    };
    if !wanted(s.demand, &event) {
        tracing::debug!(event, "webhook event not used in this demand mode");
        return Outcome::Ignored("event not used in this demand mode".into());
    }
    let received_at = s.clock.now();
    let outcome =
        tokio::time::timeout(s.deadline, record(&state, &event, &body, received_at)).await;
    let failure = match outcome {
        Ok(Ok(Recorded::Stored { runs, created })) => {
            if !runs.is_empty() {
                s.wake.notify_one();
            }
            tracing::info!(event, delivery, created, runs = ?runs, "webhook stored");
            return Outcome::Stored { runs, created };
        }
        Ok(Ok(Recorded::Ignored(why))) => {
            tracing::debug!(event, delivery, why, "webhook ignored");
            return Outcome::Ignored(why);
        }
        Ok(Err(EventError::Invalid(Invalid::Malformed(reason)))) => {
            tracing::warn!(event, delivery, reason, "webhook refused: malformed");
            return Outcome::Malformed(reason);
        }
        Ok(Err(e)) if !e.retryable() => {
            tracing::warn!(event, delivery, error = %e, "webhook refused: cannot be applied");
            return Outcome::Refused(e.to_string());
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("not done within {}", humantime::format_duration(s.deadline)),
    };
    let Ok(payload) = String::from_utf8(body.to_vec()) else {
        return Outcome::Malformed("body is not UTF-8".into());
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
            Outcome::Spooled
        }
        Err(e) => {
            tracing::error!(event, delivery, reason = failure, error = %e, "webhook lost: store and spool both failed");
            Outcome::Lost
        }
    }
}

/// The event's name, from Gitea's header or the ones Forgejo, Gogs and GitHub senders use.
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

/// Whether demand mode `demand` uses `event` (the other kind is answered 204).
fn wanted(demand: DemandSource, event: &str) -> bool {
    matches!(
        (demand, event),
        (DemandSource::Jobs, "workflow_job") | (DemandSource::Push, "push")
    )
}
