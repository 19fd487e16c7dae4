//! The `/_sim` control API, driven with plain HTTP as another process would.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

async fn call(
    sim: &gitea_sim::SimHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client().request(m, format!("{}/_sim{path}", sim.base_url()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        },
    )
}

#[tokio::test]
async fn jobs_runners_and_agents_can_be_driven_over_http() {
    let sim = start(gitea_sim::SimConfig::default()).await;
    let (status, job) = call(
        &sim,
        "POST",
        "/jobs",
        Some(json!({"repo": "acme/app", "name": "build", "labels": ["linux"], "duration_ms": 100})),
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "queued");
    let (status, token) = call(&sim, "GET", "/registration-token?scope=acme/app", None).await;
    assert_eq!(status, 200);
    let (status, agent) = call(
        &sim,
        "POST",
        "/agents",
        Some(json!({"registration_token": token["token"], "name": "r1", "labels": ["linux"], "fetch_interval_ms": 50, "report_interval_ms": 50})),
    )
    .await;
    assert_eq!(status, 201, "{agent}");
    let id = job["id"].as_i64().expect("id");
    let done = sim
        .wait_for_job(id, gitea_sim::JobPhase::Completed, Duration::from_secs(10))
        .await
        .expect("done");
    assert_eq!(done.conclusion, Some(gitea_sim::Conclusion::Success));
    let mut finished = false;
    for _ in 0..100 {
        let (_, agents) = call(&sim, "GET", "/agents", None).await;
        if agents[0]["outcome"]["outcome"] == "finished" {
            assert_eq!(agents[0]["outcome"]["result"], "success");
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(finished);

    let (status, file) = call(
        &sim,
        "POST",
        "/runners",
        Some(json!({"name": "pre", "labels": ["gpu"]})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(file["labels"], json!(["gpu:host"]));
    assert_eq!(file["ephemeral"], true);
    let (_, runners) = call(&sim, "GET", "/runners", None).await;
    assert_eq!(
        runners.as_array().map(Vec::len),
        Some(1),
        "the used ephemeral runner is gone: {runners}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_webhook_clock_version_and_errors_over_http() {
    let sim = start_default().await;
    let (status, _) = call(
        &sim,
        "PUT",
        "/faults",
        Some(json!({"api_error": {"status": 502}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        api(&sim, "GET", "/admin/actions/runners", None).await.0,
        502
    );
    call(&sim, "PUT", "/faults", Some(json!({}))).await;
    assert_eq!(
        api(&sim, "GET", "/admin/actions/runners", None).await.0,
        200
    );

    let (status, _) = call(
        &sim,
        "PUT",
        "/webhook",
        Some(json!({"url": "http://127.0.0.1:9/x", "secret": "hidden"})),
    )
    .await;
    assert_eq!(status, 204);
    let (_, hook) = call(&sim, "GET", "/webhook", None).await;
    assert_eq!(hook, json!({"url": "http://127.0.0.1:9/x", "signed": true}));

    let (_, before) = call(&sim, "GET", "/state", None).await;
    let (_, after) = call(
        &sim,
        "POST",
        "/clock/advance",
        Some(json!({"seconds": 120})),
    )
    .await;
    assert!(
        after["clock_ms"].as_i64().unwrap_or(0) - before["clock_ms"].as_i64().unwrap_or(0)
            >= 120_000
    );

    call(&sim, "PUT", "/version", Some(json!({"version": "1.25.0"}))).await;
    assert_eq!(
        api(&sim, "GET", "/version", None).await.1,
        json!({"version": "1.25.0"})
    );

    let (status, body) = call(&sim, "POST", "/jobs/424242/cancel", None).await;
    assert_eq!(status, 404);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("424242")));
    let (status, _) = call(
        &sim,
        "POST",
        "/jobs",
        Some(json!({"repo": "not-a-repo", "name": "x", "labels": []})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, pushed) = call(
        &sim,
        "POST",
        "/push",
        Some(json!({"repo": "acme/app", "commits": [{"message": "m", "changes": [{"op": "put", "path": "a", "content": "b"}]}]})),
    )
    .await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["ref"], "refs/heads/main");
    sim.shutdown().await;
}
