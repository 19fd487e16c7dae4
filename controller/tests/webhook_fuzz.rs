//! Structured fuzzing of the webhook decoder, through the real receiver on 127.0.0.1:
//! signed `workflow_job` and `push` bodies broken by [`model::fuzz`] (wrong types, missing
//! and unknown keys, deep nesting, huge numbers, odd Unicode, spliced and truncated text).
//! Every delivery must get an answer from the documented set, a refusal must carry a short
//! reason (at most 512 bytes, no control characters), and an accepted `queued` job must be
//! stored with exactly the labels it was sent with. A panic in the handler would drop the
//! connection, which fails the case.
//!
//! `TINQS_FUZZ_CASES` sets the cases per property (default 256, a few seconds); `make fuzz`
//! runs 100,000 each and prints the counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use controller::forge::{FakeForge, Forge, RepoFile};
use controller::spool::Spool;
use controller::store::fake::FakeStore;
use controller::store::Store;
use controller::webhook::{self, sign, WebhookState};
use model::config::DemandSource;
use model::fuzz::{mutate_json, mutate_text, run_seed, seed_bytes, Choices};
use model::secret::Secret;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

const SECRET: &str = "webhook-secret-for-fuzzing";
const AFTER: &str = "2222222222222222222222222222222222222222";
const CI: &str =
    "on:\n  push:\n    branches: [main]\njobs:\n  build:\n    runs-on: go\n    steps:\n      - run: make\n";

/// Keys the decoder reads, so a mutation can put a wrong type under a right name.
const KEYS: &[&str] = &[
    "action",
    "workflow_job",
    "id",
    "run_id",
    "run_attempt",
    "name",
    "labels",
    "status",
    "url",
    "conclusion",
    "runner_name",
    "created_at",
    "started_at",
    "repository",
    "full_name",
    "ref",
    "before",
    "after",
    "pusher",
    "login",
    "head_commit",
    "message",
    "commits",
    "deleted",
];

fn cases() -> u32 {
    std::env::var("TINQS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn seeds() -> Vec<(&'static str, Value)> {
    let job = |action: &str| {
        json!({
            "action": action,
            "workflow_job": {
                "id": 4242, "run_id": 300, "run_attempt": 1, "name": "build",
                "labels": ["go", "linux"], "status": action,
                "url": "http://gitea.test/api/v1/repos/acme/web/actions/jobs/4242",
                "conclusion": if action == "completed" { "success" } else { "" },
                "runner_name": if action == "queued" { "" } else { "tq-demo-job-4242-1-a1" },
                "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:09+02:00",
            },
            "repository": { "full_name": "acme/web" },
        })
    };
    vec![
        ("workflow_job", job("queued")),
        ("workflow_job", job("in_progress")),
        ("workflow_job", job("completed")),
        (
            "push",
            json!({
                "ref": "refs/heads/main", "before": "1111111111111111111111111111111111111111",
                "after": AFTER, "repository": {"full_name": "acme/web"},
                "pusher": {"login": "alice"}, "head_commit": {"message": "change"},
                "commits": [{"id": AFTER, "message": "change"}],
            }),
        ),
    ]
}

struct Receiver {
    url: String,
    store: Arc<FakeStore>,
    _spool: tempfile::TempDir,
}

async fn start(demand: DemandSource) -> Receiver {
    let store = Arc::new(FakeStore::new());
    let forge = Arc::new(FakeForge::new());
    forge.set_workflow_files(
        "acme/web",
        AFTER,
        vec![RepoFile {
            path: ".gitea/workflows/ci.yml".into(),
            content: CI.into(),
        }],
    );
    let spool_dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(spool_dir.path().join("spool")).expect("spool opens"));
    let state = WebhookState::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Secret::new(SECRET),
        demand,
        Arc::new(tokio::sync::Notify::new()),
        spool,
        Some(forge as Arc<dyn Forge>),
    )
    .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let app = webhook::router(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}{}", webhook::HOOK_PATH),
        store,
        _spool: spool_dir,
    }
}

/// Posts `body` signed as Gitea signs it; status 0 when no answer came (a handler panic
/// drops the connection).
async fn post(http: &reqwest::Client, url: &str, event: &str, body: &str) -> (u16, String) {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("X-Gitea-Event", event)
        .header(
            "X-Gitea-Signature",
            sign(&Secret::new(SECRET), body.as_bytes()),
        )
        .body(body.to_owned())
        .send()
        .await;
    match resp {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, format!("no answer (did the handler panic?): {e}")),
    }
}

/// The labels of a `queued` body that must be stored as they are: a list of strings under
/// `workflow_job.labels`, for an action of exactly `queued`.
fn queued_labels(body: &str) -> Option<(i64, Vec<String>)> {
    let v: Value = serde_json::from_str(body).ok()?;
    if v.get("action")?.as_str()? != "queued" {
        return None;
    }
    let job = v.get("workflow_job")?;
    let id = job.get("id")?.as_i64()?;
    let labels = job
        .get("labels")?
        .as_array()?
        .iter()
        .map(|l| l.as_str().map(str::to_owned))
        .collect::<Option<Vec<_>>>()?;
    Some((id, labels))
}

fn fuzz(demand: DemandSource, name: &str, kinds: &[&str]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let receiver = rt.block_on(start(demand));
    let http = reqwest::Client::new();
    let seeds: Vec<_> = seeds()
        .into_iter()
        .filter(|(event, _)| kinds.contains(event))
        .collect();
    let statuses: Mutex<BTreeMap<u16, u64>> = Mutex::new(BTreeMap::new());
    // The seed, printed on every run, is what replays a failure (`TINQS_FUZZ_SEED`).
    let fuzz_seed = run_seed(std::env::var("TINQS_FUZZ_SEED").ok().as_deref())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases: cases(),
            max_shrink_iters: 1024,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(fuzz_seed)),
    );
    let strategy = (
        0..seeds.len(),
        0u8..3,
        prop::collection::vec(any::<u64>(), 0..48),
    );
    let result = runner.run(&strategy, |(seed, level, numbers)| {
        let (event, doc) = &seeds[seed];
        let mut c = Choices::new(&numbers);
        let body = match level {
            // The tree broken, then printed.
            0 | 1 => {
                let mut doc = doc.clone();
                mutate_json(&mut doc, KEYS, &mut c);
                doc.to_string()
            }
            // The text broken: truncated, spliced, huge numbers, odd characters.
            _ => mutate_text(&doc.to_string(), &mut c),
        };
        let (status, reason) = rt.block_on(post(&http, &receiver.url, event, &body));
        *statuses.lock().expect("tally").entry(status).or_default() += 1;
        prop_assert!(
            [200, 202, 204, 400, 413, 422].contains(&status),
            "HTTP {status} for {body:.300}: {reason}"
        );
        if status == 400 || status == 422 {
            prop_assert!(!reason.trim().is_empty(), "a refusal without a reason");
            prop_assert!(
                reason.len() <= 512,
                "a reason of {} bytes: {reason:.300}",
                reason.len()
            );
            // What comes back from the body is capped (200 characters a field) and cannot
            // drive a terminal.
            prop_assert!(
                !reason.trim_end().chars().any(char::is_control),
                "control characters in the reason: {reason:?}"
            );
        }
        if status == 200 && *event == "workflow_job" {
            // A queued job created by this delivery is stored with exactly its labels.
            let answer: Value = serde_json::from_str(&reason).unwrap_or(Value::Null);
            if let (Some((id, labels)), Some(1)) =
                (queued_labels(&body), answer["created"].as_u64())
            {
                let run_id = answer["runs"][0].as_str().unwrap_or_default().to_owned();
                let run = receiver
                    .store
                    .runs()
                    .into_iter()
                    .find(|r| r.id.as_str() == run_id);
                prop_assert!(run.is_some(), "run {run_id} of job {id} was not stored");
                let run = run.expect("checked");
                prop_assert_eq!(run.spec.job.map(|j| j.id), Some(id));
                prop_assert_eq!(run.spec.labels, labels);
            }
        }
        Ok(())
    });
    let statuses = statuses.into_inner().expect("tally");
    eprintln!(
        "fuzz webhook decoder ({name}): {} cases, answers {:?}, seed {fuzz_seed}",
        statuses.values().sum::<u64>(),
        statuses
    );
    if let Err(e) = result {
        panic!(
            "{e}\nreplay with TINQS_FUZZ_SEED={fuzz_seed} TINQS_FUZZ_CASES={}",
            cases()
        );
    }
}

#[test]
fn workflow_job_bodies_in_jobs_mode() {
    fuzz(
        DemandSource::Jobs,
        "workflow_job, jobs mode",
        &["workflow_job"],
    );
}

#[test]
fn push_bodies_in_push_mode() {
    fuzz(DemandSource::Push, "push, push mode", &["push"]);
}

/// Found by fuzzing: a push's `after` was passed to Gitea as it came and repeated in the
/// answer. Now anything but a 40- or 64-digit hexadecimal id is refused first.
#[test]
fn a_push_naming_no_commit_id_is_refused_before_gitea_is_asked() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let receiver = start(DemandSource::Push).await;
        let http = reqwest::Client::new();
        let bad = "9".repeat(74);
        for (after, before, field) in [
            (
                bad.as_str(),
                "1111111111111111111111111111111111111111",
                "after",
            ),
            ("main", "1111111111111111111111111111111111111111", "after"),
            (AFTER, "not-a-commit", "before"),
        ] {
            let body = json!({
                "ref": "refs/heads/main", "before": before, "after": after,
                "repository": {"full_name": "acme/web"}, "pusher": {"login": "alice"},
            })
            .to_string();
            let (status, reason) = post(&http, &receiver.url, "push", &body).await;
            assert_eq!(status, 400, "{reason}");
            assert!(
                reason.contains(&format!("`{field}` is not a commit id")),
                "{reason}"
            );
            assert!(
                !reason.contains(after) && !reason.contains(before),
                "{reason}"
            );
        }
        assert!(receiver.store.runs().is_empty());
        // A SHA-256 repository's 64-digit id is a commit id: it goes on to Gitea.
        let body = json!({
            "ref": "refs/heads/main", "before": "0".repeat(64), "after": "a".repeat(64),
            "repository": {"full_name": "acme/web"},
        })
        .to_string();
        let (status, reason) = post(&http, &receiver.url, "push", &body).await;
        assert!(!reason.contains("is not a commit id"), "{status} {reason}");
    });
}
