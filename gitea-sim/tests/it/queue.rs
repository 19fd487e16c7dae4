//! Which runner gets which job, and what happens to ephemeral runners.

use gitea_sim::{JobPhase, JobSpec, Scope, SimConfig};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn a_runner_gets_the_oldest_queued_job_first() {
    let sim = start_default().await;
    let first = sim
        .enqueue_job(JobSpec::new("acme/app", "first", &["linux"]))
        .expect("enqueue");
    let second = sim
        .enqueue_job(JobSpec::new("acme/app", "second", &["linux"]))
        .expect("enqueue");
    let r1 = register(&sim, "r1", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &r1).await, Some(first.id));
    let r2 = register(&sim, "r2", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &r2).await, Some(second.id));
    let r3 = register(&sim, "r3", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &r3).await, None);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_job_goes_only_to_a_runner_having_all_its_labels() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "build", &["linux", "gpu"]))
        .expect("enqueue");
    let partial = register(&sim, "partial", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &partial).await, None);
    let superset = register(&sim, "superset", &["gpu", "linux", "spot"], false).await;
    assert_eq!(fetch_job(&sim, &superset).await, Some(job.id));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_disabled_runner_gets_nothing_until_enabled_again() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "build", &["linux"]))
        .expect("enqueue");
    let r = register(&sim, "r", &["linux"], false).await;
    let (status, body) = api(
        &sim,
        "PATCH",
        &format!("/admin/actions/runners/{}", r.id),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["disabled"], true);
    assert_eq!(fetch_job(&sim, &r).await, None);
    assert_eq!(sim.job(job.id).expect("job").status, JobPhase::Queued);
    api(
        &sim,
        "PATCH",
        &format!("/admin/actions/runners/{}", r.id),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(fetch_job(&sim, &r).await, Some(job.id));
    sim.shutdown().await;
}

#[tokio::test]
async fn an_ephemeral_runner_is_deleted_after_its_one_job_and_refused_afterwards() {
    let sim = start_default().await;
    sim.enqueue_job(JobSpec::new("acme/app", "a", &["linux"]))
        .expect("enqueue");
    sim.enqueue_job(JobSpec::new("acme/app", "b", &["linux"]))
        .expect("enqueue");
    let r = register(&sim, "eph", &["linux"], true).await;
    let task = fetch(&sim, &r).await.expect("first task");
    // While its task runs it gets no second one.
    assert_eq!(fetch(&sim, &r).await, None);
    let (status, body) = finish(&sim, &r, task, "RESULT_SUCCESS").await;
    assert_eq!(status, 200);
    assert_eq!(body["state"]["result"], "RESULT_SUCCESS");
    assert!(sim.runner(r.id).is_none(), "the ephemeral runner is gone");
    let (status, body) = rpc(&sim, Some(&r), "FetchTask", json!({})).await;
    assert_eq!(status, 500, "a gRPC status error is Connect `unknown`");
    assert_eq!(
        body,
        json!({"code": "unknown", "message": "rpc error: code = Unauthenticated desc = unregistered runner"})
    );
    let (status, _) = api(
        &sim,
        "GET",
        &format!("/admin/actions/runners/{}", r.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_ephemeral_runner_whose_job_was_cancelled_is_removed_on_its_next_fetch() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "a", &["linux"]))
        .expect("enqueue");
    let r = register(&sim, "eph", &["linux"], true).await;
    let task = fetch(&sim, &r).await.expect("task");
    sim.cancel_job(job.id).expect("cancel");
    // The runner learns of the cancellation from its next update; it is not deleted by it.
    let (_, body) = rpc(
        &sim,
        Some(&r),
        "UpdateTask",
        json!({"state": {"id": task.to_string()}}),
    )
    .await;
    assert_eq!(body["state"]["result"], "RESULT_CANCELLED");
    assert!(sim.runner(r.id).is_some());
    let (status, body) = rpc(&sim, Some(&r), "FetchTask", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("unknown")));
    assert_eq!(
        body["message"],
        "rpc error: code = Internal desc = pick task: runner has been removed"
    );
    assert!(sim.runner(r.id).is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_non_ephemeral_runner_takes_job_after_job() {
    let sim = start_default().await;
    sim.enqueue_job(JobSpec::new("acme/app", "a", &["linux"]))
        .expect("enqueue");
    sim.enqueue_job(JobSpec::new("acme/app", "b", &["linux"]))
        .expect("enqueue");
    let r = register(&sim, "long-lived", &["linux"], false).await;
    let t1 = fetch(&sim, &r).await.expect("first");
    finish(&sim, &r, t1, "RESULT_FAILURE").await;
    let t2 = fetch(&sim, &r).await.expect("second");
    assert_ne!(t1, t2);
    assert!(sim.runner(r.id).is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_blocked_job_is_not_handed_out_until_released() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "deploy", &["linux"]).blocked())
        .expect("enqueue");
    assert_eq!(job.status, JobPhase::Waiting);
    let r = register(&sim, "r", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &r).await, None);
    sim.release_job(job.id).expect("release");
    assert_eq!(fetch_job(&sim, &r).await, Some(job.id));
    sim.shutdown().await;
}

#[tokio::test]
async fn repo_and_org_runners_take_only_jobs_of_their_scope() {
    let sim = start(
        SimConfig::default()
            .repo("acme/app")
            .repo("acme/lib")
            .repo("other/x"),
    )
    .await;
    let other = sim
        .enqueue_job(JobSpec::new("other/x", "o", &["linux"]))
        .expect("enqueue");
    let lib = sim
        .enqueue_job(JobSpec::new("acme/lib", "l", &["linux"]))
        .expect("enqueue");
    let app = sim
        .enqueue_job(JobSpec::new("acme/app", "a", &["linux"]))
        .expect("enqueue");
    let repo_token = sim
        .registration_token(&Scope::Repo("acme/app".into()))
        .expect("token");
    let org_token = sim
        .registration_token(&Scope::Org("acme".into()))
        .expect("token");
    let repo_runner = register_with(&sim, &repo_token, "repo", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &repo_runner).await, Some(app.id));
    let org_runner = register_with(&sim, &org_token, "org", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &org_runner).await, Some(lib.id));
    let org_runner2 = register_with(&sim, &org_token, "org2", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &org_runner2).await, None);
    let global = register(&sim, "global", &["linux"], false).await;
    assert_eq!(fetch_job(&sim, &global).await, Some(other.id));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_running_task_with_no_update_for_the_zombie_timeout_fails() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "a", &["linux"]))
        .expect("enqueue");
    let r = register(&sim, "r", &["linux"], true).await;
    fetch(&sim, &r).await.expect("task");
    sim.advance_clock(std::time::Duration::from_secs(9 * 60));
    assert_eq!(sim.job(job.id).expect("job").status, JobPhase::InProgress);
    sim.advance_clock(std::time::Duration::from_secs(2 * 60));
    let done = sim.job(job.id).expect("job");
    assert_eq!(done.status, JobPhase::Completed);
    assert_eq!(done.conclusion, Some(gitea_sim::Conclusion::Failure));
    sim.shutdown().await;
}
