//! Behaviours that differ between Gitea versions: run attempts and re-runs, `steps`, the
//! runner list order, and the runner-protocol answers.

use std::collections::BTreeSet;
use std::time::Duration;

use gitea_sim::{Faults, JobPhase, JobSpec, JobView, RunnerSpec, SimConfig, SimError, SimHandle};
use serde_json::{json, Value};

use crate::common::*;

async fn with_hooks(version: &str) -> (SimHandle, Receiver) {
    let rx = receiver(200, Duration::ZERO).await;
    let sim = start(
        SimConfig::default()
            .version(version)
            .repo("acme/app")
            .webhook(&rx.url, ""),
    )
    .await;
    (sim, rx)
}

/// Runs job `id` to completion with a fresh non-ephemeral runner named `name`.
async fn run_once(sim: &SimHandle, name: &str, id: i64) -> Creds {
    let r = register(sim, name, &["linux"], false).await;
    assert_eq!(fetch_job(sim, &r).await, Some(id));
    let task = sim.job(id).and_then(|j| j.task_id).expect("task");
    let (status, _) = finish(sim, &r, task, "RESULT_SUCCESS").await;
    assert_eq!(status, 200);
    r
}

/// Enqueues a job `name` for `linux` in a new run of acme/app.
fn queue(sim: &SimHandle, name: &str) -> JobView {
    sim.enqueue_job(JobSpec::new("acme/app", name, &["linux"]))
        .expect("enqueue")
}

/// Restarts the runner-order sequence from `seed`.
fn seed(sim: &SimHandle, seed: u64) {
    sim.set_faults(Faults {
        order_seed: Some(seed),
        ..Faults::default()
    });
}

async fn job_api(sim: &SimHandle, id: i64) -> Value {
    let (status, body) = api(
        sim,
        "GET",
        &format!("/repos/acme/app/actions/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn up_to_1_26_a_job_is_queued_with_attempt_0_and_a_pick_makes_it_1() {
    for version in ["1.24.0", "1.25.0", "1.26.4"] {
        let (sim, rx) = with_hooks(version).await;
        let job = queue(&sim, "build");
        assert_eq!(job.attempt, 0, "{version}");
        if version != "1.24.0" {
            assert_eq!(job_api(&sim, job.id).await["run_attempt"], 0, "{version}");
        }
        run_once(&sim, "r", job.id).await;
        assert_eq!(sim.job(job.id).expect("job").attempt, 1);
        sim.flush_webhooks().await;
        let seen: Vec<(String, Value)> = job_hooks(&rx)
            .into_iter()
            .map(|(a, j)| (a, j["run_attempt"].clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("queued".to_owned(), json!(0)),
                ("in_progress".to_owned(), json!(1)),
                ("completed".to_owned(), json!(1)),
            ],
            "{version}"
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn on_1_26_a_rerun_requeues_the_same_row_with_the_previous_attempt() {
    let (sim, rx) = with_hooks("1.26.4").await;
    let job = queue(&sim, "build");
    assert!(matches!(
        sim.rerun_job(job.id),
        Err(SimError::WrongState { what: "rerun", .. })
    ));
    run_once(&sim, "first", job.id).await;
    // A job queued before the re-run is older in the queue than the re-run job.
    let other = queue(&sim, "other");
    sim.advance_clock(Duration::from_secs(1));
    let queued = sim.rerun_job(job.id).expect("rerun");
    assert_eq!(queued.len(), 1);
    let again = &queued[0];
    assert_eq!(
        (
            again.id,
            again.status,
            again.attempt,
            again.task_id,
            again.runner_id,
            again.conclusion
        ),
        (job.id, JobPhase::Queued, 1, None, None, None)
    );
    let body = job_api(&sim, job.id).await;
    assert_eq!(body["status"], "queued");
    assert_eq!(body["run_attempt"], 1);
    assert_eq!(body["started_at"], "1970-01-01T00:00:00Z");
    assert!(body.get("runner_id").is_none() && body.get("conclusion").is_none());

    let r = register(&sim, "second", &["linux"], false).await;
    assert_eq!(
        fetch_job(&sim, &r).await,
        Some(other.id),
        "oldest updated first"
    );
    assert_eq!(fetch_job(&sim, &r).await, Some(job.id));
    assert_eq!(sim.job(job.id).expect("job").attempt, 2);
    sim.flush_webhooks().await;
    let mine: Vec<(String, Value, bool)> = job_hooks(&rx)
        .into_iter()
        .filter(|(_, j)| j["id"] == job.id)
        .map(|(a, j)| (a, j["run_attempt"].clone(), j.get("runner_id").is_some()))
        .collect();
    assert_eq!(
        mine,
        vec![
            ("queued".to_owned(), json!(0), false),
            ("in_progress".to_owned(), json!(1), true),
            ("completed".to_owned(), json!(1), true),
            ("queued".to_owned(), json!(1), false),
            ("in_progress".to_owned(), json!(2), true),
        ]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_job_is_rerun_only_when_its_whole_run_is_done() {
    let sim = start_default().await;
    let a = queue(&sim, "a");
    let b = sim
        .enqueue_job(JobSpec::new("acme/app", "b", &["other"]).in_run(a.run_id))
        .expect("enqueue");
    run_once(&sim, "r", a.id).await;
    assert!(matches!(
        sim.rerun_job(a.id),
        Err(SimError::WrongState { .. })
    ));
    sim.cancel_job(b.id).expect("cancel");
    assert_eq!(sim.rerun_job(a.id).expect("rerun")[0].id, a.id);
    assert!(matches!(
        sim.rerun_job(424_242),
        Err(SimError::UnknownJob(_))
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn from_1_27_a_rerun_clones_the_run_into_new_rows_of_a_new_attempt() {
    let (sim, rx) = with_hooks("1.27.0-rc0").await;
    let a = queue(&sim, "a");
    let b = sim
        .enqueue_job(JobSpec::new("acme/app", "b", &["linux"]).in_run(a.run_id))
        .expect("enqueue");
    assert_eq!((a.attempt, b.attempt), (1, 1), "1.27 inserts attempt 1");
    run_once(&sim, "first", a.id).await;
    run_once(&sim, "other", b.id).await;
    assert_eq!(sim.job(a.id).expect("job").attempt, 1, "a pick keeps it");

    let queued = sim.rerun_job(a.id).expect("rerun");
    assert_eq!(queued.len(), 1);
    let new_a = queued[0].clone();
    assert_ne!(new_a.id, a.id);
    assert_eq!(
        (new_a.status, new_a.attempt, new_a.run_id, new_a.runner_id),
        (JobPhase::Queued, 2, a.run_id, None)
    );
    let old_a = sim.job(a.id).expect("old row");
    assert_eq!((old_a.status, old_a.attempt), (JobPhase::Completed, 1));
    // The other job of the run is cloned as it was, under a new id, and shows its runner.
    let run: Vec<_> = sim
        .jobs()
        .into_iter()
        .filter(|j| j.run_id == a.run_id)
        .collect();
    assert_eq!(run.len(), 4);
    let new_b = run
        .iter()
        .find(|j| j.name == "b" && j.id != b.id)
        .expect("b cloned");
    assert_eq!((new_b.status, new_b.attempt), (JobPhase::Completed, 2));
    let body = job_api(&sim, new_b.id).await;
    assert_eq!(body["conclusion"], "success");
    assert_eq!(body["runner_name"], "other");
    assert!(
        matches!(sim.rerun_job(a.id), Err(SimError::WrongState { .. })),
        "the old attempt's row cannot be re-run"
    );

    let r = register(&sim, "second", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &r).await, Some(new_a.id));
    assert_eq!(sim.job(new_a.id).expect("job").attempt, 2);
    sim.flush_webhooks().await;
    let after: Vec<(String, i64, Value)> = job_hooks(&rx)
        .into_iter()
        .skip(6)
        .map(|(act, j)| (act, j["id"].as_i64().unwrap_or(0), j["run_attempt"].clone()))
        .collect();
    assert_eq!(
        after,
        vec![
            ("queued".to_owned(), new_a.id, json!(2)),
            ("in_progress".to_owned(), new_a.id, json!(2)),
        ],
        "only the re-run clone is announced"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rerun_is_a_control_route_too() {
    let sim = start_default().await;
    let job = queue(&sim, "build");
    let url = format!("{}/_sim/jobs/{}/rerun", sim.base_url(), job.id);
    let resp = client().post(&url).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 409, "a queued job cannot be re-run");
    run_once(&sim, "r", job.id).await;
    let resp = client().post(&url).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body[0]["id"], job.id);
    assert_eq!(body[0]["status"], "queued");
    assert_eq!(body[0]["attempt"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn steps_are_null_before_1_26_and_an_empty_list_from_1_26() {
    for (version, want) in [
        ("1.25.0", Value::Null),
        ("1.26.0", json!([])),
        ("1.27.0-rc0", json!([])),
    ] {
        let sim = start(SimConfig::default().version(version).repo("acme/app")).await;
        let job = queue(&sim, "build");
        assert_eq!(
            job_api(&sim, job.id).await["steps"],
            want,
            "{version} queued"
        );
        let r = register(&sim, "r", &["linux"], false).await;
        fetch(&sim, &r).await.expect("task");
        assert_eq!(
            job_api(&sim, job.id).await["steps"],
            want,
            "{version} running"
        );
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_in_progress_list_names_the_runner_of_each_running_job() {
    let sim = start_default().await;
    let running = queue(&sim, "a");
    let waiting = sim
        .enqueue_job(JobSpec::new("acme/app", "b", &["gpu"]))
        .expect("enqueue");
    let r = register(&sim, "i-0run", &["linux"], false).await;
    fetch(&sim, &r).await.expect("task");
    let (_, body) = api(
        &sim,
        "GET",
        "/repos/acme/app/actions/jobs?status=in_progress",
        None,
    )
    .await;
    assert_eq!(body["total_count"], 1);
    let j = &body["jobs"][0];
    assert_eq!(
        (
            j["id"].clone(),
            j["status"].clone(),
            j["run_attempt"].clone(),
            j["runner_id"].clone(),
            j["runner_name"].clone()
        ),
        (
            json!(running.id),
            json!("in_progress"),
            json!(1),
            json!(r.id),
            json!("i-0run")
        )
    );
    let (_, body) = api(&sim, "GET", "/admin/actions/jobs?status=queued", None).await;
    assert_eq!(body["jobs"][0]["id"], waiting.id);
    assert!(body["jobs"][0].get("runner_id").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn register_reads_only_labels_and_leaves_out_ephemeral_when_false() {
    let sim = start_default().await;
    let token = sim
        .registration_token(&gitea_sim::Scope::Instance)
        .expect("token");
    let (status, body) = rpc(
        &sim,
        None,
        "Register",
        json!({"name": "old", "token": token, "version": "v0.1", "agentLabels": ["linux"], "customLabels": ["spot"], "agent_labels": ["x"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let runner = body["runner"].as_object().expect("runner");
    assert!(
        !runner.contains_key("ephemeral"),
        "protojson omits false: {body}"
    );
    assert!(
        !runner.contains_key("labels"),
        "deprecated label fields are ignored: {body}"
    );
    let id: i64 = body["runner"]["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("number");
    assert!(sim.runner(id).expect("runner").labels.is_empty());

    let (_, body) = rpc(
        &sim,
        None,
        "Register",
        json!({"name": "new", "token": token, "labels": ["linux"], "ephemeral": true}),
    )
    .await;
    assert_eq!(body["runner"]["ephemeral"], true);
    assert_eq!(body["runner"]["labels"], json!(["linux"]));
    sim.shutdown().await;
}

#[tokio::test]
async fn runner_protocol_failures_are_connect_unknown_with_grpc_text() {
    let sim = start_default().await;
    let r = register(&sim, "r", &["linux"], false).await;
    let (status, body) = finish(&sim, &r, 999_999, "RESULT_SUCCESS").await;
    assert_eq!(
        (status, body),
        (
            500,
            json!({"code": "unknown", "message": "rpc error: code = Internal desc = update task: resource does not exist"})
        )
    );
    let (status, body) = rpc(
        &sim,
        None,
        "Register",
        json!({"name": "x", "token": "nope"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            500,
            json!({"code": "unknown", "message": "runner registration token not found"})
        )
    );
    sim.shutdown().await;
}

/// Walks every page (50 rows) of an admin list, `what` being `runners` or `jobs`, with
/// `extra` query parameters; returns the ids seen (with repeats) and every `total_count`.
async fn walk(sim: &SimHandle, what: &str, extra: &str) -> (Vec<i64>, BTreeSet<i64>) {
    let mut ids = Vec::new();
    let mut totals = BTreeSet::new();
    for page in 1.. {
        let (status, body) = api(
            sim,
            "GET",
            &format!("/admin/actions/{what}?page={page}&limit=50{extra}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        totals.insert(body["total_count"].as_i64().expect("total"));
        let rows = body[what].as_array().expect("array");
        if rows.is_empty() {
            break;
        }
        ids.extend(rows.iter().filter_map(|r| r["id"].as_i64()));
    }
    (ids, totals)
}

#[tokio::test]
async fn paging_released_versions_repeats_and_skips_tied_runners() {
    let sim = start(SimConfig::default().version("1.26.4")).await;
    seed(&sim, 42);
    for n in 0..300 {
        sim.create_runner(RunnerSpec::new(format!("r{n:03}"), &["x"]))
            .expect("runner");
    }
    let mut damaged = 0;
    for _ in 0..5 {
        let (ids, totals) = walk(&sim, "runners", "").await;
        assert_eq!(
            totals,
            BTreeSet::from([300]),
            "total_count always looks right"
        );
        assert_eq!(ids.len(), 300, "six full pages");
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        if distinct.len() < 300 {
            damaged += 1;
        }
    }
    assert!(damaged > 0, "tied rows repeat and go missing across pages");

    // The same seed gives the same listings.
    seed(&sim, 42);
    let (once, _) = walk(&sim, "runners", "").await;
    seed(&sim, 42);
    let (twice, _) = walk(&sim, "runners", "").await;
    assert_eq!(once, twice);
    sim.shutdown().await;
}

#[tokio::test]
async fn released_versions_still_put_later_contact_first() {
    let sim = start(SimConfig::default().version("1.26.4")).await;
    let early = register(&sim, "early", &["x"], false).await;
    rpc(&sim, Some(&early), "Declare", json!({"labels": ["x"]})).await;
    sim.advance_clock(Duration::from_secs(1));
    let late = register(&sim, "late", &["x"], false).await;
    rpc(&sim, Some(&late), "Declare", json!({"labels": ["x"]})).await;
    sim.create_runner(RunnerSpec::new("never", &["x"]))
        .expect("runner");
    for _ in 0..20 {
        let (_, body) = api(&sim, "GET", "/admin/actions/runners", None).await;
        let names: Vec<&str> = body["runners"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, vec!["late", "early", "never"]);
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn main_pages_through_tied_runners_without_repeats_or_gaps() {
    let sim = start(SimConfig::default().version("1.28.0-dev")).await;
    for n in 0..300 {
        sim.create_runner(RunnerSpec::new(format!("r{n:03}"), &["x"]))
            .expect("runner");
    }
    let (ids, totals) = walk(&sim, "runners", "").await;
    assert_eq!(totals, BTreeSet::from([300]));
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "id breaks the tie");
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>().len(), 300);
    sim.shutdown().await;
}

#[tokio::test]
async fn before_1_27_the_jobs_list_has_no_order_and_pages_can_repeat_and_skip() {
    let sim = start(SimConfig::default().version("1.26.4").repo("acme/app")).await;
    seed(&sim, 7);
    for n in 0..120 {
        queue(&sim, &format!("j{n}"));
    }
    let mut damaged = 0;
    for _ in 0..3 {
        let (ids, totals) = walk(&sim, "jobs", "").await;
        assert_eq!((ids.len(), totals), (120, BTreeSet::from([120])));
        if ids.iter().copied().collect::<BTreeSet<_>>().len() < 120 {
            damaged += 1;
        }
    }
    assert!(damaged > 0, "pages without ORDER BY overlap");
    sim.shutdown().await;
}

#[tokio::test]
async fn from_1_27_the_jobs_list_is_by_id_and_can_be_sorted() {
    let sim = start(SimConfig::default().version("1.27.0-rc0").repo("acme/app")).await;
    for n in 0..120 {
        queue(&sim, &format!("j{n}"));
    }
    let (asc, _) = walk(&sim, "jobs", "").await;
    let mut sorted = asc.clone();
    sorted.sort_unstable();
    assert_eq!(asc, sorted);
    let (desc, _) = walk(&sim, "jobs", "&sort=id&order=desc").await;
    sorted.reverse();
    assert_eq!(desc, sorted);
    let (status, _) = api(&sim, "GET", "/admin/actions/jobs?sort=name", None).await;
    assert_eq!(status, 422);
    let (status, _) = api(&sim, "GET", "/admin/actions/jobs?sort=id&order=up", None).await;
    assert_eq!(status, 422);
    sim.shutdown().await;
}
