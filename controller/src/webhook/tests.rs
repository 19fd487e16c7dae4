//! The receiver's answer table, in process: the axum router called directly (tower's
//! `oneshot`), no socket. One test per row of the table in [the module's
//! documentation](super).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use model::config::DemandSource;
use model::secret::Secret;
use tokio::sync::Notify;
use tower::ServiceExt;

use super::*;
use crate::forge::fake::ForgeMethod;
use crate::forge::FakeForge;
use crate::store::fake::FakeStore;

const SECRET: &str = "in-process-secret";

struct Rig {
    store: Arc<FakeStore>,
    forge: Arc<FakeForge>,
    wake: Arc<Notify>,
    state: WebhookState,
    dir: tempfile::TempDir,
}

fn rig(demand: DemandSource) -> Rig {
    let store = Arc::new(FakeStore::new());
    let forge = Arc::new(FakeForge::new());
    let wake = Arc::new(Notify::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(dir.path().join("spool")).expect("spool"));
    let state = WebhookState::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Secret::new(SECRET),
        demand,
        Arc::clone(&wake),
        spool,
        Some(Arc::clone(&forge) as Arc<dyn Forge>),
    )
    .expect("state");
    Rig {
        store,
        forge,
        wake,
        state,
        dir,
    }
}

/// How a request is signed.
enum Signed {
    Right,
    Wrong,
}

impl Rig {
    async fn post(&self, event: Option<&str>, body: &str, signed: Signed) -> (StatusCode, String) {
        let key = match signed {
            Signed::Right => SECRET,
            Signed::Wrong => "not-the-secret",
        };
        let mut req = Request::post(HOOK_PATH)
            .header("content-type", "application/json")
            .header(
                "X-Gitea-Signature",
                sign(&Secret::new(key), body.as_bytes()),
            );
        if let Some(e) = event {
            req = req.header("X-Gitea-Event", e);
        }
        let req = req.body(Body::from(body.to_owned())).expect("request");
        let resp = router(self.state.clone())
            .oneshot(req)
            .await
            .expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn job(&self, action: &str, id: i64) -> (StatusCode, String) {
        self.post(
            Some("workflow_job"),
            &job(action, id, &["go"]),
            Signed::Right,
        )
        .await
    }

    async fn woken(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(5), self.wake.notified())
            .await
            .is_ok()
    }
}

fn job(action: &str, id: i64, labels: &[&str]) -> String {
    serde_json::json!({
        "action": action,
        "workflow_job": {"id": id, "run_id": 1, "run_attempt": 0, "name": "build", "labels": labels},
        "repository": {"full_name": "acme/app"},
    })
    .to_string()
}

#[tokio::test]
async fn a_queued_job_is_stored_answered_200_with_its_run_and_wakes_the_loop() {
    let r = rig(DemandSource::Jobs);
    let (status, body) = r.job("queued", 5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        answer,
        serde_json::json!({"runs": ["job-5-1"], "created": 1})
    );
    assert_eq!(r.store.runs().len(), 1);
    assert!(r.woken().await);
}

#[tokio::test]
async fn a_workflow_job_event_is_recorded_without_asking_gitea_anything() {
    let r = rig(DemandSource::Jobs);
    for action in ["queued", "in_progress", "completed"] {
        let (status, body) = r.job(action, 5).await;
        assert_eq!(status, StatusCode::OK, "{action}: {body}");
    }
    assert_eq!(r.store.runs().len(), 1);
    assert!(r.forge.calls().is_empty(), "{:?}", r.forge.calls());
}

#[tokio::test]
async fn a_redelivery_is_answered_200_and_creates_nothing() {
    let r = rig(DemandSource::Jobs);
    r.job("queued", 5).await;
    let (status, body) = r.job("queued", 5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(answer["created"], 0);
    assert_eq!(r.store.runs().len(), 1);
}

#[tokio::test]
async fn a_bad_signature_is_answered_401_writes_nothing_and_echoes_nothing() {
    let r = rig(DemandSource::Jobs);
    let body = job("queued", 5, &["go"]);
    let (status, answer) = r.post(Some("workflow_job"), &body, Signed::Wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer, "invalid or missing signature\n");
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn malformed_json_and_a_missing_event_header_are_answered_400_with_a_reason() {
    let r = rig(DemandSource::Jobs);
    let secretish = r#"{"action":"queued","workflow_job":{"id":"token-abc"#;
    let (status, answer) = r.post(Some("workflow_job"), secretish, Signed::Right).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.starts_with("malformed JSON: "), "{answer}");
    assert!(
        !answer.contains("token-abc"),
        "the body is never echoed: {answer}"
    );
    let (status, answer) = r
        .post(None, &job("queued", 5, &["go"]), Signed::Right)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer, "missing X-Gitea-Event header\n");
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn unknown_events_unused_actions_and_the_other_modes_events_are_answered_204() {
    let r = rig(DemandSource::Jobs);
    for (event, body) in [
        ("issues", "{}".to_owned()),
        ("push", "{}".to_owned()),
        ("workflow_job", job("waiting", 5, &["go"])),
    ] {
        let (status, answer) = r.post(Some(event), &body, Signed::Right).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{event}: {answer}");
        assert!(answer.is_empty());
    }
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn an_event_that_can_never_be_stored_is_answered_422_naming_the_field() {
    let r = rig(DemandSource::Jobs);
    let long = "l".repeat(300);
    let body = job("queued", 5, &[long.as_str()]);
    let (status, answer) = r.post(Some("workflow_job"), &body, Signed::Right).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.contains("label 1") && !answer.contains(&long),
        "{answer}"
    );
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413() {
    let r = rig(DemandSource::Jobs);
    let body = format!("{{\"pad\":\"{}\"}}", "x".repeat(MAX_BODY_BYTES));
    let (status, _) = r.post(Some("workflow_job"), &body, Signed::Right).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn with_the_store_down_the_event_is_spooled_and_answered_202() {
    let r = rig(DemandSource::Jobs);
    r.store.set_unavailable(true);
    let (status, body) = r.job("queued", 5).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, r#"{"spooled":true}"#);
    let census = crate::spool::census(&r.dir.path().join("spool")).expect("census");
    assert_eq!(census.pending, 1);
}

#[tokio::test]
async fn with_the_store_and_the_spool_down_the_answer_is_503() {
    let r = rig(DemandSource::Jobs);
    r.store.set_unavailable(true);
    std::fs::remove_dir_all(r.dir.path().join("spool")).expect("removes the spool");
    let (status, body) = r.job("queued", 5).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "store and spool unavailable; redeliver later\n");
}

#[tokio::test]
async fn a_push_that_starts_nothing_is_answered_204_before_gitea_is_asked_anything() {
    let r = rig(DemandSource::Push);
    for (after, message) in [
        ("0".repeat(40), "delete the branch"),
        ("a".repeat(40), "docs [skip ci]"),
    ] {
        let body = serde_json::json!({
            "ref": "refs/heads/main",
            "before": "b".repeat(40),
            "after": after,
            "repository": {"full_name": "acme/app"},
            "head_commit": {"message": message},
        })
        .to_string();
        let (status, answer) = r.post(Some("push"), &body, Signed::Right).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    }
    assert_eq!(r.forge.calls_to(ForgeMethod::WorkflowFiles), 0);
    assert!(r.store.runs().is_empty());
}
