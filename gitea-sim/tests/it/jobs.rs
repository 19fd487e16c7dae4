//! The jobs REST API: status filters, paging, scopes and the job JSON through its life.

use gitea_sim::{JobSpec, SimConfig};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn the_status_filter_maps_like_gitea_and_may_repeat() {
    let sim = start_default().await;
    let queued = sim
        .enqueue_job(JobSpec::new("acme/app", "q", &["x"]))
        .expect("enqueue");
    let blocked = sim
        .enqueue_job(JobSpec::new("acme/app", "b", &["x"]).blocked())
        .expect("enqueue");
    let running = sim
        .enqueue_job(JobSpec::new("acme/app", "r", &["y"]))
        .expect("enqueue");
    let r = register(&sim, "r", &["y"], false).await;
    fetch(&sim, &r).await.expect("task");
    // Before 1.27 the jobs list has no order (and the simulator shuffles it): compare as sets.
    let ids = |body: &serde_json::Value| -> Vec<i64> {
        let mut ids: Vec<i64> = body["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .filter_map(|j| j["id"].as_i64())
            .collect();
        ids.sort_unstable();
        ids
    };
    let (_, body) = api(&sim, "GET", "/admin/actions/jobs?status=queued", None).await;
    assert_eq!(ids(&body), vec![queued.id]);
    let (_, body) = api(&sim, "GET", "/admin/actions/jobs?status=waiting", None).await;
    assert_eq!(ids(&body), vec![blocked.id]);
    let (_, body) = api(
        &sim,
        "GET",
        "/admin/actions/jobs?status=queued&status=in_progress",
        None,
    )
    .await;
    assert_eq!(ids(&body), vec![queued.id, running.id]);
    assert_eq!(body["total_count"], 2);
    let (_, body) = api(&sim, "GET", "/admin/actions/jobs", None).await;
    assert_eq!(body["total_count"], 3);
    let (status, body) = api(&sim, "GET", "/admin/actions/jobs?status=bogus", None).await;
    assert_eq!(status, 400);
    assert!(body["message"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn job_lists_page_and_send_total_count_headers_from_1_26() {
    let sim = start_default().await;
    for n in 0..7 {
        sim.enqueue_job(JobSpec::new("acme/app", format!("j{n}"), &["x"]))
            .expect("enqueue");
    }
    let (status, headers, body) = api_full(
        &sim,
        "GET",
        "/repos/acme/app/actions/jobs?status=queued&limit=3&page=3",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total_count"], 7);
    assert_eq!(body["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        headers.get("x-total-count").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let link = headers
        .get("link")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        link.contains("rel=\"first\"") && link.contains("page=2"),
        "{link}"
    );
    sim.set_version("1.25.0");
    let (_, headers, _) = api_full(&sim, "GET", "/repos/acme/app/actions/jobs", None).await;
    assert!(headers.get("x-total-count").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn org_and_repo_job_lists_see_only_their_repositories() {
    let sim = start(
        SimConfig::default()
            .repo("acme/app")
            .repo("acme/lib")
            .repo("other/x"),
    )
    .await;
    for repo in ["acme/app", "acme/lib", "other/x"] {
        sim.enqueue_job(JobSpec::new(repo, "build", &["x"]))
            .expect("enqueue");
    }
    let (_, org) = api(&sim, "GET", "/orgs/acme/actions/jobs?status=queued", None).await;
    assert_eq!(org["total_count"], 2);
    let (_, repo) = api(
        &sim,
        "GET",
        "/repos/other/x/actions/jobs?status=queued",
        None,
    )
    .await;
    assert_eq!(repo["total_count"], 1);
    let (status, _) = api(&sim, "GET", "/orgs/ghost/actions/jobs", None).await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_job_json_follows_the_job_from_queued_to_completed() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(
            JobSpec::new("acme/app", "build", &["linux", "spot"]).head("main", "a".repeat(40)),
        )
        .expect("enqueue");
    let base = sim.base_url();
    let path = format!("/repos/acme/app/actions/jobs/{}", job.id);
    let (_, queued) = api(&sim, "GET", &path, None).await;
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["labels"], json!(["linux", "spot"]));
    assert_eq!(queued["head_sha"], "a".repeat(40));
    assert_eq!(queued["head_branch"], "main");
    assert_eq!(queued["run_id"], job.run_id);
    assert_eq!(
        queued["run_attempt"], 0,
        "1.26 inserts a job with attempt 0"
    );
    assert_eq!(
        queued["url"],
        format!("{base}/api/v1/repos/acme/app/actions/jobs/{}", job.id)
    );
    assert_eq!(
        queued["html_url"],
        format!(
            "{base}/acme/app/actions/runs/{}/jobs/{}",
            job.run_id, job.id
        ),
        "1.26 links by run id and job id"
    );
    assert_eq!(queued["steps"], json!([]), "1.26 sends no steps as []");
    assert_eq!(
        queued["started_at"], "1970-01-01T00:00:00Z",
        "an unset Gitea timestamp is the epoch"
    );
    assert!(queued.get("conclusion").is_none() && queued.get("runner_id").is_none());

    let r = register(&sim, "i-0abc", &["linux", "spot"], false).await;
    let task = fetch(&sim, &r).await.expect("task");
    let (_, running) = api(&sim, "GET", &path, None).await;
    assert_eq!(running["status"], "in_progress");
    assert_eq!(running["run_attempt"], 1, "the pick raised the attempt");
    assert_eq!(running["runner_id"], r.id);
    assert_eq!(running["runner_name"], "i-0abc");
    assert_ne!(running["started_at"], "1970-01-01T00:00:00Z");

    finish(&sim, &r, task, "RESULT_FAILURE").await;
    let (_, done) = api(&sim, "GET", &path, None).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["conclusion"], "failure");
    assert_eq!(done["run_attempt"], 1);
    assert_eq!(
        (done["runner_id"].clone(), done["runner_name"].clone()),
        (json!(r.id), json!("i-0abc"))
    );
    assert_ne!(done["completed_at"], "1970-01-01T00:00:00Z");
    let (status, _) = api(&sim, "GET", "/repos/acme/app/actions/jobs/999999", None).await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn jobs_of_one_run_share_the_run_id_and_count_their_index() {
    // Up to 1.25 the web link uses the run index and the job's index in the run.
    let sim = start(SimConfig::default().version("1.25.0").repo("acme/app")).await;
    let a = sim
        .enqueue_job(JobSpec::new("acme/app", "a", &["x"]))
        .expect("enqueue");
    let b = sim
        .enqueue_job(JobSpec::new("acme/app", "b", &["x"]).in_run(a.run_id))
        .expect("enqueue");
    assert_eq!(a.run_id, b.run_id);
    let (_, body) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/actions/jobs/{}", b.id),
        None,
    )
    .await;
    assert!(
        body["html_url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/actions/runs/1/jobs/1")),
        "{body}"
    );
    assert!(sim
        .enqueue_job(JobSpec::new("acme/app", "c", &["x"]).in_run(424242))
        .is_err());
    sim.shutdown().await;
}
