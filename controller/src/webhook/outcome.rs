//! How a delivery ends, and the one `match` that turns it into the answer Gitea gets (the
//! table in [the module's documentation](super)).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use model::RunId;

/// How one delivery ended. Every path of the handler ends in one of these; nothing else
/// writes an answer (413 excepted: axum's body limit answers it before the handler runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The runs are in the store: 200 `{"runs":[…],"created":n}` (`created` 0 for a
    /// redelivery).
    Stored {
        /// Every run the event named.
        runs: Vec<RunId>,
        /// How many of them were new.
        created: usize,
    },
    /// Durable in the local spool, replayed later: 202 `{"spooled":true}`.
    Spooled,
    /// Nothing to do, and why (logged, not answered): 204.
    Ignored(String),
    /// Not a delivery Gitea would send (bad JSON, a missing event header): 400 with the
    /// reason, which never holds the body.
    Malformed(String),
    /// Missing or wrong signature: 401, saying nothing else.
    BadSignature,
    /// An event that can never be stored or expanded: 422 with the reason, naming the field,
    /// never its value.
    Refused(String),
    /// Neither the store nor the spool could take it: 503, for Gitea to show as failed.
    Lost,
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        match self {
            Outcome::Stored { runs, created } => {
                let ids: Vec<&str> = runs.iter().map(RunId::as_str).collect();
                let body = serde_json::json!({ "runs": ids, "created": created });
                (StatusCode::OK, Json(body)).into_response()
            }
            Outcome::Spooled => (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "spooled": true })),
            )
                .into_response(),
            Outcome::Ignored(_) => StatusCode::NO_CONTENT.into_response(),
            Outcome::Malformed(reason) => {
                (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
            }
            Outcome::BadSignature => {
                (StatusCode::UNAUTHORIZED, "invalid or missing signature\n").into_response()
            }
            Outcome::Refused(reason) => {
                (StatusCode::UNPROCESSABLE_ENTITY, format!("{reason}\n")).into_response()
            }
            Outcome::Lost => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store and spool unavailable; redeliver later\n",
            )
                .into_response(),
        }
    }
}
