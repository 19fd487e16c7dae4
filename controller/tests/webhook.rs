//! The webhook receiver on a real socket (127.0.0.1:0): signatures, limits, event handling,
//! idempotent redelivery, the durable spool and push mode.

use std::sync::Arc;
use std::time::Duration;

use controller::forge::Forge;
use controller::spool::Spool;
use controller::store::fake::{FakeStore, StoreOp};
use controller::store::{Store, StoreError};
use controller::webhook::{self, replay_spool_once, sign, ReplayReport, WebhookState};
use model::config::DemandSource;
use model::desired::{AttemptCounting, JobState, Origin};
use model::secret::Secret;
use model::RunId;
use tokio::sync::Notify;

#[path = "support/logs.rs"]
mod logs;
use logs::Logs;

const SECRET: &str = "webhook-secret-for-tests";

struct Receiver {
    url: String,
    store: Arc<FakeStore>,
    wake: Arc<Notify>,
    state: WebhookState,
    spool_dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start(demand: DemandSource, forge: Option<Arc<dyn Forge>>) -> Receiver {
    start_counting(demand, forge, AttemptCounting::RaisedOnPick).await
}

async fn start_counting(
    demand: DemandSource,
    forge: Option<Arc<dyn Forge>>,
    counting: AttemptCounting,
) -> Receiver {
    let store = Arc::new(FakeStore::new());
    let wake = Arc::new(Notify::new());
    let spool_dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(spool_dir.path().join("spool")).expect("spool opens"));
    let state = WebhookState::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Secret::new(SECRET),
        demand,
        Arc::clone(&wake),
        spool,
        forge,
    )
    .expect("state")
    .with_attempt_counting(counting);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let app = webhook::router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}{}", webhook::HOOK_PATH),
        store,
        wake,
        state,
        spool_dir,
        http: reqwest::Client::new(),
    }
}

enum Sig {
    Gitea,
    Hub,
    Wrong,
    None,
}

impl Receiver {
    async fn send(&self, event: Option<&str>, body: &str, sig: Sig) -> (u16, String) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json");
        if let Some(e) = event {
            req = req
                .header("X-Gitea-Event", e)
                .header("X-Gitea-Delivery", "3f2a");
        }
        let good = sign(&Secret::new(SECRET), body.as_bytes());
        req = match sig {
            Sig::Gitea => req.header("X-Gitea-Signature", good),
            Sig::Hub => req.header("X-Hub-Signature-256", format!("sha256={good}")),
            Sig::Wrong => req.header(
                "X-Gitea-Signature",
                sign(&Secret::new("other"), body.as_bytes()),
            ),
            Sig::None => req,
        };
        let resp = req.body(body.to_owned()).send().await.expect("answers");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn job(&self, action: &str, id: i64, attempt: u32) -> (u16, String) {
        self.send(
            Some("workflow_job"),
            &job_body(action, id, attempt),
            Sig::Gitea,
        )
        .await
    }

    async fn woken(&self) -> bool {
        tokio::time::timeout(Duration::from_millis(500), self.wake.notified())
            .await
            .is_ok()
    }

    fn spooled(&self) -> usize {
        std::fs::read_dir(self.spool_dir.path().join("spool"))
            .expect("spool dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .count()
    }
}

fn job_body(action: &str, id: i64, attempt: u32) -> String {
    serde_json::json!({
        "action": action,
        "workflow_job": {
            "id": id, "run_id": 300, "run_attempt": attempt, "name": "build",
            "labels": ["go", "linux"], "status": action,
            "url": format!("http://gitea.test/api/v1/repos/acme/web/actions/jobs/{id}"),
            "conclusion": if action == "completed" { "success" } else { "" },
            "runner_name": if action == "queued" { "" } else { "tq-demo-job-1-1-a1" },
        },
        "repository": { "full_name": "acme/web" },
        "sender": { "login": "alice" },
    })
    .to_string()
}

#[tokio::test]
async fn a_signed_queued_job_creates_one_run_and_wakes_the_loop() {
    let r = start(DemandSource::Jobs, None).await;
    let (status, body) = r.job("queued", 41, 0).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("job-41-1"), "{body}");
    let runs = r.store.runs();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.id, RunId::for_job(41, 1));
    assert_eq!(run.spec.labels, ["go", "linux"]);
    assert_eq!(run.spec.repo.as_deref(), Some("acme/web"));
    assert_eq!(run.spec.origin, Origin::Webhook);
    assert_eq!(run.spec.job_state, JobState::Queued);
    assert_eq!(
        run.spec.job.as_ref().map(|j| (j.id, j.attempt, j.run_id)),
        Some((41, 1, Some(300)))
    );
    assert!(r.woken().await);
}

#[tokio::test]
async fn an_in_progress_job_tells_the_cache_which_job_its_runner_runs() {
    let r = start(DemandSource::Jobs, None).await;
    let body = serde_json::json!({
        "action": "in_progress",
        "workflow_job": {
            "id": 77, "run_id": 300, "run_attempt": 1, "name": "build",
            "labels": ["go"], "status": "in_progress", "head_branch": "feature/x",
            "runner_name": "tq-demo-job-5-1-a1",
        },
        "repository": {"full_name": "acme/web", "default_branch": "main"},
    })
    .to_string();
    assert_eq!(r.send(Some("workflow_job"), &body, Sig::Gitea).await.0, 200);
    let record = r
        .store
        .runner_record("tq-demo-job-5-1-a1")
        .await
        .expect("read")
        .expect("recorded");
    let job = record.job.expect("the job");
    assert_eq!(job.run, RunId::for_job(77, 1));
    assert_eq!(job.repo, "acme/web");
    assert_eq!(job.branch.as_deref(), Some("feature/x"));
    assert_eq!(job.default_branch.as_deref(), Some("main"));
    assert_eq!(job.workflow_run, Some(300));
    assert_eq!(
        record.credential, None,
        "the credential is the launch's to write"
    );
}

#[tokio::test]
async fn the_hub_sha256_signature_header_is_accepted_too() {
    let r = start(DemandSource::Jobs, None).await;
    let (status, _) = r
        .send(Some("workflow_job"), &job_body("queued", 7, 2), Sig::Hub)
        .await;
    assert_eq!(status, 200);
    assert_eq!(r.store.runs().len(), 1);
    // Queued with run_attempt 2: a re-run of a job picked twice, waiting for pick 3.
    assert_eq!(r.store.runs()[0].id.as_str(), "job-7-3");
}

#[tokio::test]
async fn from_gitea_1_27_every_event_of_a_job_row_is_the_same_run() {
    // 1.27 inserts a job row with its run attempt's number and never raises it; a re-run
    // makes new rows with new ids.
    let r = start_counting(DemandSource::Jobs, None, AttemptCounting::PerRow).await;
    for (action, attempt) in [("queued", 1), ("in_progress", 1), ("completed", 1)] {
        assert_eq!(r.job(action, 70, attempt).await.0, 200);
    }
    // The re-run's new row (attempt 2).
    assert_eq!(r.job("queued", 71, 2).await.0, 200);
    let mut ids: Vec<String> = r.store.runs().iter().map(|x| x.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["job-70-1", "job-71-2"]);
}

#[tokio::test]
async fn a_re_run_of_the_same_job_row_is_a_run_of_its_own_and_redeliveries_are_not() {
    // Gitea 1.24 – 1.26: a new job is queued with run_attempt 0, picked (1), completed (1);
    // a re-run resets the same row: queued again with run_attempt 1, picked as 2.
    let r = start(DemandSource::Jobs, None).await;
    for (action, attempt) in [("queued", 0), ("in_progress", 1), ("completed", 1)] {
        assert_eq!(r.job(action, 60, attempt).await.0, 200);
    }
    let (status, body) = r.job("queued", 60, 1).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"created\":1") && body.contains("job-60-2"),
        "{body}"
    );
    let mut ids: Vec<String> = r.store.runs().iter().map(|x| x.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["job-60-1", "job-60-2"]);
    let rerun = r
        .store
        .runs()
        .into_iter()
        .find(|x| x.id.as_str() == "job-60-2")
        .expect("re-run");
    assert_eq!(rerun.spec.job_state, JobState::Queued);
    assert_eq!(rerun.spec.job.as_ref().map(|j| j.attempt), Some(2));
    // The re-run's own events land on it; the first pick's row keeps its conclusion.
    assert_eq!(r.job("in_progress", 60, 2).await.0, 200);
    let rerun = r
        .store
        .runs()
        .into_iter()
        .find(|x| x.id.as_str() == "job-60-2")
        .expect("re-run");
    assert!(matches!(rerun.spec.job_state, JobState::InProgress { .. }));
    // Redelivering the first queued event (or the re-run's) creates nothing new.
    assert!(r.job("queued", 60, 0).await.1.contains("\"created\":0"));
    assert!(r.job("queued", 60, 1).await.1.contains("\"created\":0"));
    assert_eq!(r.store.runs().len(), 2);
}

#[tokio::test]
async fn a_wrong_or_missing_signature_is_refused_without_writing_or_echoing() {
    let r = start(DemandSource::Jobs, None).await;
    let body = job_body("queued", 8, 0);
    for sig in [Sig::Wrong, Sig::None] {
        let (status, text) = r.send(Some("workflow_job"), &body, sig).await;
        assert_eq!(status, 401);
        assert!(!text.contains("acme") && !text.contains("build"), "{text}");
    }
    // A Hub header without the sha256= prefix, and one that is not hex.
    for value in [
        sign(&Secret::new(SECRET), body.as_bytes()),
        "sha256=zz".to_owned(),
    ] {
        let resp = r
            .http
            .post(&r.url)
            .header("X-Gitea-Event", "workflow_job")
            .header("X-Hub-Signature-256", value)
            .body(body.clone())
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status().as_u16(), 401);
    }
    assert!(r.store.runs().is_empty());
    assert!(!r.woken().await);
}

#[tokio::test]
async fn bad_signatures_are_all_refused_but_warned_about_once_per_interval_with_a_count() {
    let (logs, _guard) = Logs::capture();
    let clock =
        controller::clock::ManualClock::new(model::Timestamp::from_millis(1_700_000_000_000));
    let r = start(DemandSource::Jobs, None).await;
    let state = r
        .state
        .clone()
        .with_clock(Arc::new(clock.clone()) as Arc<dyn controller::clock::Clock>);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!(
        "http://{}{}",
        listener.local_addr().expect("addr"),
        webhook::HOOK_PATH
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, webhook::router(state)).await;
    });
    let send_bad = || async {
        r.http
            .post(&url)
            .header("X-Gitea-Event", "workflow_job")
            .header("X-Gitea-Delivery", "d".repeat(5_000))
            .header("X-Gitea-Signature", "00")
            .body("{}")
            .send()
            .await
            .expect("answers")
            .status()
            .as_u16()
    };
    for _ in 0..20 {
        assert_eq!(send_bad().await, 401);
    }
    let warned = logs.lines_with("bad or missing signature");
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("held_back=0"), "{}", warned[0]);
    // The delivery id (any header) is capped in the line.
    assert!(warned[0].len() < 600, "{}", warned[0].len());

    clock.advance(webhook::BAD_SIGNATURE_WARN_EVERY);
    assert_eq!(send_bad().await, 401);
    let warned = logs.lines_with("bad or missing signature");
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[1].contains("held_back=19"), "{}", warned[1]);
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn a_signed_body_without_an_event_header_is_a_bad_request() {
    let r = start(DemandSource::Jobs, None).await;
    let (status, text) = r.send(None, &job_body("queued", 9, 0), Sig::Gitea).await;
    assert_eq!(status, 400);
    assert!(text.contains("X-Gitea-Event"), "{text}");
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let r = start(DemandSource::Jobs, None).await;
    let big = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(webhook::MAX_BODY_BYTES + 10)
    );
    let (status, _) = r.send(Some("workflow_job"), &big, Sig::Gitea).await;
    assert_eq!(status, 413);
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn malformed_json_gets_a_short_reason_and_writes_nothing() {
    let r = start(DemandSource::Jobs, None).await;
    for body in [
        "{\"action\":\"queued\",",
        "[1,2]",
        "{\"action\":\"queued\",\"workflow_job\":{\"id\":\"secret-ish\"}}",
    ] {
        let (status, text) = r.send(Some("workflow_job"), body, Sig::Gitea).await;
        assert_eq!(status, 400, "{body}");
        assert!(text.starts_with("malformed JSON"), "{text}");
        assert!(text.len() < 120 && !text.contains("secret-ish"), "{text}");
    }
    let (status, text) = r
        .send(
            Some("workflow_job"),
            r#"{"action":"queued","workflow_job":{"id":0}}"#,
            Sig::Gitea,
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn events_and_actions_we_do_not_use_get_204() {
    let r = start(DemandSource::Jobs, None).await;
    let (status, _) = r
        .send(Some("issues"), r#"{"action":"opened"}"#, Sig::Gitea)
        .await;
    assert_eq!(status, 204);
    // A push in jobs mode is not used either.
    let (status, _) = r
        .send(Some("push"), r#"{"ref":"refs/heads/main"}"#, Sig::Gitea)
        .await;
    assert_eq!(status, 204);
    // A blocked job waits for its `queued` event.
    let (status, _) = r.job("waiting", 10, 1).await;
    assert_eq!(status, 204);
    assert!(r.store.runs().is_empty());
}

#[tokio::test]
async fn redelivery_and_replays_leave_exactly_one_row() {
    let r = start(DemandSource::Jobs, None).await;
    for _ in 0..3 {
        let (status, _) = r.job("queued", 11, 0).await;
        assert_eq!(status, 200);
    }
    let (_, body) = r.job("queued", 11, 0).await;
    assert!(body.contains("\"created\":0"), "{body}");
    assert_eq!(r.store.runs().len(), 1);
    // A rerun is a new attempt, hence a new run.
    r.job("queued", 11, 2).await;
    assert_eq!(r.store.runs().len(), 2);
}

#[tokio::test]
async fn later_job_states_update_the_run_or_create_it_when_queued_was_missed() {
    let r = start(DemandSource::Jobs, None).await;
    r.job("queued", 12, 0).await;
    assert_eq!(r.job("in_progress", 12, 1).await.0, 200);
    let run = r
        .store
        .runs()
        .into_iter()
        .find(|x| x.id.as_str() == "job-12-1")
        .expect("run");
    assert_eq!(
        run.spec.job_state,
        JobState::InProgress {
            runner: Some("tq-demo-job-1-1-a1".into())
        }
    );

    // The queued event of job 13 never came.
    assert_eq!(r.job("completed", 13, 1).await.0, 200);
    let run = r
        .store
        .runs()
        .into_iter()
        .find(|x| x.id.as_str() == "job-13-1")
        .expect("created");
    assert_eq!(
        run.spec.job_state,
        JobState::Completed {
            conclusion: "success".into()
        }
    );
    // A late queued redelivery does not move it backwards.
    r.job("queued", 13, 0).await;
    let run = r
        .store
        .runs()
        .into_iter()
        .find(|x| x.id.as_str() == "job-13-1")
        .expect("still there");
    assert_eq!(
        run.spec.job_state,
        JobState::Completed {
            conclusion: "success".into()
        }
    );
    assert_eq!(r.store.runs().len(), 2);
}

#[tokio::test]
async fn with_the_store_down_events_are_spooled_then_replayed_without_loss() {
    let r = start(DemandSource::Jobs, None).await;
    r.store.set_unavailable(true);
    for id in 20..25 {
        let (status, body) = r.job("queued", id, 0).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, _) = r.job("completed", 20, 1).await;
    assert_eq!(status, 202);
    assert_eq!(r.spooled(), 6);
    assert!(r.store.runs().is_empty());
    assert!(!r.woken().await);

    // Still down: nothing replayed, nothing deleted.
    let report = replay_spool_once(&r.state).await.expect("replays");
    assert_eq!(
        report,
        ReplayReport {
            replayed: 0,
            remaining: 6,
            quarantined: 0
        }
    );
    assert_eq!(r.spooled(), 6);

    r.store.set_unavailable(false);
    let report = replay_spool_once(&r.state).await.expect("replays");
    assert_eq!(
        report,
        ReplayReport {
            replayed: 6,
            remaining: 0,
            quarantined: 0
        }
    );
    assert_eq!(r.spooled(), 0);
    let mut ids: Vec<String> = r
        .store
        .runs()
        .into_iter()
        .map(|x| x.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["job-20-1", "job-21-1", "job-22-1", "job-23-1", "job-24-1"]
    );
    let done = r
        .store
        .runs()
        .into_iter()
        .find(|x| x.id.as_str() == "job-20-1")
        .expect("run");
    assert_eq!(
        done.spec.job_state,
        JobState::Completed {
            conclusion: "success".into()
        }
    );
    assert!(r.woken().await);

    // Replaying again changes nothing.
    assert_eq!(
        replay_spool_once(&r.state).await.expect("replays"),
        ReplayReport::default()
    );
}

fn job_body_with(id: i64, labels: &[String], name: &str) -> String {
    serde_json::json!({
        "action": "queued",
        "workflow_job": {
            "id": id, "run_id": 300, "run_attempt": 0, "name": name,
            "labels": labels, "status": "queued",
        },
        "repository": { "full_name": "acme/web" },
    })
    .to_string()
}

#[tokio::test]
async fn an_event_that_could_never_be_stored_is_refused_at_the_door_even_with_the_store_down() {
    let r = start(DemandSource::Jobs, None).await;
    // 450 KB: under the 1 MiB body limit, over DynamoDB's 400 KB item limit.
    let huge = "x".repeat(450_000);
    let body = job_body_with(50, &["linux".into(), huge.clone()], "build");
    let (status, reason) = r.send(Some("workflow_job"), &body, Sig::Gitea).await;
    assert_eq!(status, 422, "{reason}");
    assert_eq!(
        reason.trim(),
        "label 2 is 450000 characters long; at most 255 are accepted"
    );

    let many: Vec<String> = (0..10_000).map(|i| format!("l{i}")).collect();
    let (status, reason) = r
        .send(
            Some("workflow_job"),
            &job_body_with(51, &many, "build"),
            Sig::Gitea,
        )
        .await;
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("10000 labels; at most 64"), "{reason}");

    let long_name = "n".repeat(256);
    let (status, reason) = r
        .send(
            Some("workflow_job"),
            &job_body_with(52, &["linux".into()], &long_name),
            Sig::Gitea,
        )
        .await;
    assert_eq!(status, 422, "{reason}");
    assert!(reason.contains("job name is 256 characters"), "{reason}");

    // With the table away it is still refused, not spooled to fail for ever.
    r.store.set_unavailable(true);
    let (status, _) = r.send(Some("workflow_job"), &body, Sig::Gitea).await;
    assert_eq!(status, 422);
    assert_eq!(r.spooled(), 0);
    r.store.set_unavailable(false);
    assert!(r.store.runs().is_empty());

    // At the limits it is stored.
    let most: Vec<String> = (0..64).map(|i| format!("{i:0>255}")).collect();
    let (status, reason) = r
        .send(
            Some("workflow_job"),
            &job_body_with(53, &most, "build"),
            Sig::Gitea,
        )
        .await;
    assert_eq!(status, 200, "{reason}");
}

#[tokio::test]
async fn a_spooled_event_that_can_never_apply_is_set_aside_and_the_rest_replays() {
    let r = start(DemandSource::Jobs, None).await;
    let metrics = controller::metrics::Metrics::new();
    let state = r.state.clone().with_metrics(metrics.clone());
    let spool = state.spool();
    let spooled = |n: i64, payload: String| controller::spool::SpooledEvent {
        format: controller::spool::FORMAT,
        event: "workflow_job".into(),
        delivery: Some(format!("d-{n}")),
        received_at: model::Timestamp::from_millis(1_700_000_000_000 + n),
        payload,
    };
    // Oldest first: one the table refuses as invalid (as DynamoDB refuses an item over
    // 400 KB), one over the limits (spooled before they existed), then a good one.
    spool
        .append(&spooled(1, job_body("queued", 40, 0)))
        .await
        .expect("spools");
    let huge = vec!["x".repeat(450_000)];
    spool
        .append(&spooled(2, job_body_with(41, &huge, "build")))
        .await
        .expect("spools");
    spool
        .append(&spooled(3, job_body("queued", 42, 0)))
        .await
        .expect("spools");
    r.store.fail_next(
        StoreOp::Create,
        StoreError::Rejected(
            "ValidationException: Item size has exceeded the maximum allowed size".into(),
        ),
    );

    let report = replay_spool_once(&state).await.expect("replays");
    assert_eq!(
        report,
        ReplayReport {
            replayed: 1,
            remaining: 0,
            quarantined: 2
        }
    );
    let ids: Vec<String> = r.store.runs().iter().map(|x| x.id.to_string()).collect();
    assert_eq!(ids, ["job-42-1"]);
    assert_eq!(r.spooled(), 0);
    let dead = r
        .spool_dir
        .path()
        .join("spool")
        .join(controller::spool::DEAD_LETTER);
    assert_eq!(
        std::fs::read_dir(&dead)
            .expect("dead-letter folder")
            .count(),
        2
    );
    let text = metrics.render();
    assert!(text.contains("tinqs_spool_set_aside_total 2"), "{text}");
    assert!(text.contains("tinqs_spool_dead_letter 2"), "{text}");
    assert!(text.contains("tinqs_spool_pending 0"), "{text}");

    // Set aside for good: the next round has nothing to do.
    assert_eq!(
        replay_spool_once(&state).await.expect("replays"),
        ReplayReport::default()
    );
}

#[tokio::test]
async fn the_background_replayer_drains_the_spool_when_the_store_returns() {
    let r = start(DemandSource::Jobs, None).await;
    r.store.set_unavailable(true);
    assert_eq!(r.job("queued", 30, 0).await.0, 202);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(webhook::run_spool_replayer(
        r.state.clone(),
        Duration::from_millis(20),
        async {
            let _ = stop_rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(r.spooled(), 1);
    r.store.set_unavailable(false);
    for _ in 0..100 {
        if r.spooled() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.spooled(), 0);
    assert_eq!(r.store.runs().len(), 1);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops")
        .expect("no panic");
}

#[tokio::test]
async fn when_store_and_spool_both_fail_the_answer_is_503() {
    let r = start(DemandSource::Jobs, None).await;
    r.store.set_unavailable(true);
    std::fs::remove_dir_all(r.spool_dir.path().join("spool")).expect("removes spool dir");
    let (status, _) = r.job("queued", 40, 0).await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_store_slower_than_the_deadline_is_answered_from_the_spool() {
    let store = Arc::new(SlowStore(FakeStore::new()));
    let wake = Arc::new(Notify::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(dir.path()).expect("opens"));
    let state = WebhookState::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Secret::new(SECRET),
        DemandSource::Jobs,
        wake,
        spool,
        None,
    )
    .expect("state")
    .with_deadline(Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, webhook::router(state)).await;
    });
    let body = job_body("queued", 50, 0);
    let started = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{}", webhook::HOOK_PATH))
        .header("X-Gitea-Event", "workflow_job")
        .header(
            "X-Gitea-Signature",
            sign(&Secret::new(SECRET), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 202);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        controller::spool::census(dir.path())
            .expect("counts")
            .pending,
        1
    );
}

#[test]
fn the_receiver_refuses_an_empty_secret_and_push_mode_without_gitea() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(dir.path()).expect("opens"));
    let store: Arc<dyn Store> = Arc::new(FakeStore::new());
    let wake = Arc::new(Notify::new());
    let empty = WebhookState::new(
        Arc::clone(&store),
        Secret::new(""),
        DemandSource::Jobs,
        Arc::clone(&wake),
        Arc::clone(&spool),
        None,
    );
    assert_eq!(empty.map(|_| ()), Err(webhook::WebhookError::EmptySecret));
    let push = WebhookState::new(
        store,
        Secret::new("s"),
        DemandSource::Push,
        wake,
        spool,
        None,
    );
    assert_eq!(push.map(|_| ()), Err(webhook::WebhookError::PushNeedsForge));
}

/// A store whose writes take far longer than Gitea waits.
struct SlowStore(FakeStore);

#[async_trait::async_trait]
impl Store for SlowStore {
    async fn list_active(
        &self,
    ) -> Result<model::observed::DesiredView, controller::store::StoreError> {
        self.0.list_active().await
    }
    async fn get(
        &self,
        id: &RunId,
    ) -> Result<Option<model::DesiredRun>, controller::store::StoreError> {
        self.0.get(id).await
    }
    async fn create(&self, run: &model::DesiredRun) -> Result<bool, controller::store::StoreError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        self.0.create(run).await
    }
    async fn set_job_state(
        &self,
        id: &RunId,
        s: &JobState,
    ) -> Result<bool, controller::store::StoreError> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        self.0.set_job_state(id, s).await
    }
    async fn set_cancel(&self, id: &RunId, c: bool) -> Result<bool, controller::store::StoreError> {
        self.0.set_cancel(id, c).await
    }
    async fn write_status(
        &self,
        id: &RunId,
        v: u64,
        s: &model::RunStatus,
        l: &controller::store::Lease,
    ) -> Result<model::RunStatus, controller::store::StoreError> {
        self.0.write_status(id, v, s, l).await
    }
    async fn acquire_lease(
        &self,
        h: &str,
        t: Duration,
        n: model::Timestamp,
    ) -> Result<controller::store::Lease, controller::store::StoreError> {
        self.0.acquire_lease(h, t, n).await
    }
    async fn renew_lease(
        &self,
        l: &controller::store::Lease,
        t: Duration,
        n: model::Timestamp,
    ) -> Result<controller::store::Lease, controller::store::StoreError> {
        self.0.renew_lease(l, t, n).await
    }
    async fn release_lease(
        &self,
        l: &controller::store::Lease,
    ) -> Result<(), controller::store::StoreError> {
        self.0.release_lease(l).await
    }

    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: model::Timestamp,
    ) -> Result<(), controller::store::StoreError> {
        self.0.set_runner_credential(runner, hash, expires).await
    }
    async fn set_runner_job(
        &self,
        runner: &str,
        job: &model::cache::RunnerJob,
        expires: model::Timestamp,
    ) -> Result<(), controller::store::StoreError> {
        self.0.set_runner_job(runner, job, expires).await
    }
    async fn runner_record(
        &self,
        runner: &str,
    ) -> Result<Option<model::cache::RunnerRecord>, controller::store::StoreError> {
        self.0.runner_record(runner).await
    }
}

// ---- push mode, end to end with the Gitea simulator ------------------------------------------

mod push_mode {
    use super::*;
    use controller::forge::fake::ForgeMethod;
    use controller::forge::{FakeForge, ForgeError, GiteaForge, RepoFile};
    use gitea_sim::{
        CommitSpec, FileChange, PushSpec, SimConfig, SimHandle, Simulator, WebhookTarget,
    };
    use model::config::{GiteaConfig, RegistrationMode, RunnerScope};

    const CI: &str = "on:\n  push:\n    branches: [main]\njobs:\n  build:\n    runs-on: go\n    steps:\n      - run: make\n";
    const MATRIX: &str = "on:\n  push:\n    paths: ['src/**']\njobs:\n  test:\n    strategy:\n      matrix:\n        os: [arm, amd, big]\n    runs-on: ${{ matrix.os }}\n    steps:\n      - run: make test\n  call:\n    uses: ./.gitea/workflows/reusable.yml\n";
    const DOCS: &str = "on:\n  push:\n    paths: ['docs/**']\njobs:\n  site:\n    runs-on: [docs, linux]\n    steps:\n      - run: make site\n";
    const RELEASE: &str = "on:\n  push:\n    tags: ['v*']\njobs:\n  publish:\n    runs-on: go\n    steps:\n      - run: make release\n";
    const PR: &str =
        "on: pull_request\njobs:\n  lint:\n    runs-on: go\n    steps:\n      - run: make lint\n";
    const BROKEN: &str = "on: push\njobs: [this is: not, a: mapping\n";

    async fn setup() -> (SimHandle, Receiver) {
        let sim = Simulator::start(SimConfig::default().repo("acme/web"))
            .await
            .expect("sim starts");
        let gitea = GiteaConfig {
            url: sim.base_url(),
            token_env: "GITEA_TOKEN".into(),
            webhook_secret_env: "GITEA_WEBHOOK_SECRET".into(),
            scope: RunnerScope::Instance,
            demand: DemandSource::Push,
            registration: RegistrationMode::Preregister,
        };
        let forge = GiteaForge::new(&gitea, Secret::new(sim.admin_token())).expect("client");
        let r = start(DemandSource::Push, Some(Arc::new(forge) as Arc<dyn Forge>)).await;
        sim.set_webhook(Some(WebhookTarget {
            url: r.url.clone(),
            secret: SECRET.into(),
        }));
        (sim, r)
    }

    fn labels_of(r: &Receiver) -> Vec<Vec<String>> {
        let mut all: Vec<Vec<String>> = r.store.runs().into_iter().map(|x| x.spec.labels).collect();
        all.sort();
        all
    }

    #[tokio::test]
    async fn a_push_creates_one_run_per_triggered_job_instance() {
        let (sim, r) = setup().await;
        let first = sim
            .push(PushSpec::new(
                "acme/web",
                "main",
                vec![CommitSpec::new(
                    "add ci",
                    vec![
                        FileChange::put(".gitea/workflows/ci.yml", CI),
                        FileChange::put(".gitea/workflows/matrix.yaml", MATRIX),
                        FileChange::put(".gitea/workflows/site/docs.yml", DOCS),
                        FileChange::put(".gitea/workflows/release.yml", RELEASE),
                        FileChange::put(".gitea/workflows/pr.yml", PR),
                        FileChange::put(".gitea/workflows/broken.yml", BROKEN),
                        FileChange::put("src/lib.rs", "pub fn f() {}"),
                    ],
                )],
            ))
            .expect("pushes");
        sim.flush_webhooks().await;
        let deliveries = sim.deliveries();
        assert!(
            deliveries.iter().all(gitea_sim::Delivery::succeeded),
            "{deliveries:?}"
        );
        // ci: build; matrix: test × 3 (src changed; the reusable call gets none); not docs,
        // release (tags only), pr (no push event) or the broken file.
        assert_eq!(
            labels_of(&r),
            [
                vec!["amd".to_owned()],
                vec!["arm".to_owned()],
                vec!["big".to_owned()],
                vec!["go".to_owned()]
            ]
        );
        let runs = r.store.runs();
        assert!(runs
            .iter()
            .all(|x| x.spec.origin == Origin::Push && x.spec.repo.as_deref() == Some("acme/web")));
        let build = RunId::for_push(
            "acme/web",
            &first.after,
            ".gitea/workflows/ci.yml",
            "build",
            0,
        );
        assert!(runs.iter().any(|x| x.id == build));
        assert!(r.woken().await);

        // Only docs change: ci and docs run, the path-filtered matrix does not.
        let second = sim
            .push(PushSpec::new(
                "acme/web",
                "main",
                vec![CommitSpec::new(
                    "docs",
                    vec![FileChange::put("docs/index.md", "# hi")],
                )],
            ))
            .expect("pushes");
        sim.flush_webhooks().await;
        let new: Vec<Vec<String>> = r
            .store
            .runs()
            .into_iter()
            .filter(|x| runs.iter().all(|old| old.id != x.id))
            .map(|x| x.spec.labels)
            .collect();
        let mut new = new;
        new.sort();
        assert_eq!(
            new,
            [
                vec!["docs".to_owned(), "linux".to_owned()],
                vec!["go".to_owned()]
            ]
        );
        assert_eq!(r.store.runs().len(), 6);

        // Redelivering the same push body changes nothing.
        let body = sim.deliveries().last().expect("delivered").body.clone();
        assert!(body.contains(&second.after));
        let (status, text) = r.send(Some("push"), &body, Sig::Gitea).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"created\":0"), "{text}");
        assert_eq!(r.store.runs().len(), 6);
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn skip_ci_bot_pushes_and_deleted_refs_create_nothing() {
        let (sim, r) = setup().await;
        sim.push(PushSpec::new(
            "acme/web",
            "main",
            vec![CommitSpec::new(
                "add ci [skip ci]",
                vec![FileChange::put(".gitea/workflows/ci.yml", CI)],
            )],
        ))
        .expect("pushes");
        sim.flush_webhooks().await;
        assert_eq!(sim.deliveries().last().and_then(|d| d.status), Some(204));
        assert!(r.store.runs().is_empty());

        let body = sim.deliveries().last().expect("delivered").body.clone();
        let mut doc: serde_json::Value = serde_json::from_str(&body).expect("json");
        doc["head_commit"]["message"] = "plain".into();
        doc["pusher"]["login"] = "gitea-actions".into();
        doc["pusher"]["username"] = "gitea-actions".into();
        assert_eq!(
            r.send(Some("push"), &doc.to_string(), Sig::Gitea).await.0,
            204
        );
        doc["pusher"]["login"] = "alice".into();
        doc["pusher"]["username"] = "alice".into();
        doc["after"] = "0000000000000000000000000000000000000000".into();
        assert_eq!(
            r.send(Some("push"), &doc.to_string(), Sig::Gitea).await.0,
            204
        );
        assert!(r.store.runs().is_empty());
        // A workflow_job event in push mode is not used.
        assert_eq!(r.job("queued", 1, 0).await.0, 204);
        assert!(r.store.runs().is_empty());
        sim.shutdown().await;
    }

    fn push_body(after: &str) -> String {
        serde_json::json!({
            "ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111",
            "after": after, "repository": {"full_name": "acme/web"},
            "pusher": {"login": "alice"}, "head_commit": {"message": "change"},
        })
        .to_string()
    }

    #[tokio::test]
    async fn a_push_while_gitea_is_down_is_spooled_and_expanded_on_replay() {
        let forge = Arc::new(FakeForge::new());
        let after = "2222222222222222222222222222222222222222";
        forge.set_workflow_files(
            "acme/web",
            after,
            vec![RepoFile {
                path: ".gitea/workflows/ci.yml".into(),
                content: CI.into(),
            }],
        );
        forge.fail_next(
            ForgeMethod::WorkflowFiles,
            ForgeError::Unavailable("connection refused".into()),
        );
        let r = start(
            DemandSource::Push,
            Some(Arc::clone(&forge) as Arc<dyn Forge>),
        )
        .await;
        let (status, _) = r.send(Some("push"), &push_body(after), Sig::Gitea).await;
        assert_eq!(status, 202);
        assert_eq!(r.spooled(), 1);
        assert!(r.store.runs().is_empty());
        let report = replay_spool_once(&r.state).await.expect("replays");
        assert_eq!(
            report,
            ReplayReport {
                replayed: 1,
                remaining: 0,
                quarantined: 0
            }
        );
        assert_eq!(labels_of(&r), [vec!["go".to_owned()]]);
        assert_eq!(forge.calls_to(ForgeMethod::WorkflowFiles), 2);
        // No workflow had a paths filter: changed files were never asked for.
        assert_eq!(forge.calls_to(ForgeMethod::ChangedFiles), 0);
    }

    #[tokio::test]
    async fn a_push_of_an_unknown_commit_is_refused_and_a_spooled_one_set_aside() {
        let forge = Arc::new(FakeForge::new());
        let r = start(
            DemandSource::Push,
            Some(Arc::clone(&forge) as Arc<dyn Forge>),
        )
        .await;
        let after = "3333333333333333333333333333333333333333";
        let (status, _) = r.send(Some("push"), &push_body(after), Sig::Gitea).await;
        assert_eq!(status, 422);
        assert_eq!(r.spooled(), 0);

        // Spooled while the store was down, then found to be unknown: set aside, not retried.
        r.store.set_unavailable(true);
        forge.set_workflow_files(
            "acme/web",
            after,
            vec![RepoFile {
                path: ".gitea/workflows/ci.yml".into(),
                content: CI.into(),
            }],
        );
        assert_eq!(
            r.send(Some("push"), &push_body(after), Sig::Gitea).await.0,
            202
        );
        r.store.set_unavailable(false);
        forge.fail_always(
            ForgeMethod::WorkflowFiles,
            ForgeError::NotFound("gone".into()),
        );
        let report = replay_spool_once(&r.state).await.expect("replays");
        assert_eq!(
            report,
            ReplayReport {
                replayed: 0,
                remaining: 0,
                quarantined: 1
            }
        );
        assert_eq!(r.spooled(), 0);
        assert!(r.store.runs().is_empty());
    }
}
