//! The runner REST API: status, paging, deletion, registration tokens, auth and versions.

use std::time::Duration;

use gitea_sim::{JobSpec, RunnerSpec, Scope, SimConfig};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn register_returns_the_int64_id_as_a_string_and_omits_false_fields() {
    let sim = start_default().await;
    let token = sim.registration_token(&Scope::Instance).expect("token");
    let (status, body) = rpc(
        &sim,
        None,
        "Register",
        json!({"name": "i-0abc", "token": token, "version": "v1", "labels": ["linux", "spot"]}),
    )
    .await;
    assert_eq!(status, 200);
    let r = &body["runner"];
    assert!(r["id"].is_string(), "{body}");
    assert_eq!(r["name"], "i-0abc");
    assert_eq!(r["labels"], json!(["linux", "spot"]));
    assert_eq!(r["token"].as_str().map(str::len), Some(40));
    assert!(
        r.get("ephemeral").is_none(),
        "protojson leaves false out: {body}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn register_with_a_wrong_or_reset_token_fails_with_a_connect_error() {
    let sim = start_default().await;
    let old = sim.registration_token(&Scope::Instance).expect("token");
    let (status, body) = rpc(
        &sim,
        None,
        "Register",
        json!({"name": "x", "token": "nope"}),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"code": "unknown", "message": "runner registration token not found"})
    );
    let new = sim
        .reset_registration_token(&Scope::Instance)
        .expect("reset");
    assert_ne!(old, new);
    let (status, body) = rpc(&sim, None, "Register", json!({"name": "x", "token": old})).await;
    assert_eq!(status, 500);
    assert_eq!(body["code"], "unknown");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalidated")),
        "{body}"
    );
    register_with(&sim, &new, "x", &["linux"], true).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn the_registration_token_stays_the_same_until_reset() {
    let sim = start_default().await;
    for prefix in ["/admin", "/orgs/acme", "/repos/acme/app"] {
        let path = format!("{prefix}/actions/runners/registration-token");
        let (s1, a) = api(&sim, "POST", &path, None).await;
        let (s2, b) = api(&sim, "POST", &path, None).await;
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(a, b, "{prefix}");
        assert_eq!(a["token"].as_str().map(str::len), Some(40));
    }
    let (_, admin) = api(
        &sim,
        "POST",
        "/admin/actions/runners/registration-token",
        None,
    )
    .await;
    let (_, org) = api(
        &sim,
        "POST",
        "/orgs/acme/actions/runners/registration-token",
        None,
    )
    .await;
    assert_ne!(admin, org, "each scope has its own token");
    let (status, _) = api(
        &sim,
        "POST",
        "/orgs/nobody/actions/runners/registration-token",
        None,
    )
    .await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_preseeded_global_token_registers_runners() {
    let cfg = SimConfig {
        global_registration_token: Some("0123456789abcdef0123456789abcdef".into()),
        ..SimConfig::default()
    };
    let sim = start(cfg).await;
    let (_, body) = api(
        &sim,
        "POST",
        "/admin/actions/runners/registration-token",
        None,
    )
    .await;
    assert_eq!(body["token"], "0123456789abcdef0123456789abcdef");
    register_with(&sim, "0123456789abcdef0123456789abcdef", "r", &["x"], true).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_registered_runner_is_offline_until_it_calls_then_online_busy_idle_offline() {
    let sim = start_default().await;
    let r = register(&sim, "r", &["linux"], false).await;
    let path = format!("/admin/actions/runners/{}", r.id);
    let get = || api(&sim, "GET", &path, None);
    let (_, body) = get().await;
    assert_eq!(
        (body["status"].clone(), body["busy"].clone()),
        (json!("offline"), json!(false))
    );

    rpc(
        &sim,
        Some(&r),
        "Declare",
        json!({"version": "v2", "labels": ["linux"]}),
    )
    .await;
    let (_, body) = get().await;
    assert_eq!(
        (body["status"].clone(), body["busy"].clone()),
        (json!("online"), json!(false))
    );

    sim.enqueue_job(JobSpec::new("acme/app", "a", &["linux"]))
        .expect("enqueue");
    let task = fetch(&sim, &r).await.expect("task");
    rpc(
        &sim,
        Some(&r),
        "UpdateTask",
        json!({"state": {"id": task.to_string()}}),
    )
    .await;
    let (_, body) = get().await;
    assert_eq!(
        (body["status"].clone(), body["busy"].clone()),
        (json!("online"), json!(true))
    );

    // No UpdateTask for more than 10 s: idle; no contact for more than a minute: offline.
    sim.advance_clock(Duration::from_secs(11));
    let (_, body) = get().await;
    assert_eq!(
        (body["status"].clone(), body["busy"].clone()),
        (json!("online"), json!(false))
    );
    sim.advance_clock(Duration::from_secs(50));
    let (_, body) = get().await;
    assert_eq!(
        (body["status"].clone(), body["busy"].clone()),
        (json!("offline"), json!(false))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn runner_json_has_gitea_fields_and_labels_with_index_ids() {
    let sim = start_default().await;
    let file = sim
        .create_runner(RunnerSpec::new("i-1", &["linux", "spot"]))
        .expect("runner");
    let (_, body) = api(
        &sim,
        "GET",
        &format!("/admin/actions/runners/{}", file.id),
        None,
    )
    .await;
    assert_eq!(
        body,
        json!({
            "id": file.id, "name": "i-1", "status": "offline", "busy": false, "disabled": false,
            "ephemeral": true,
            "labels": [{"id": 0, "name": "linux", "type": "custom"}, {"id": 1, "name": "spot", "type": "custom"}],
        })
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn runner_lists_page_with_limit_default_30_cap_50_and_count_everything() {
    // `main` (1.28.0-dev) orders with an id tie-breaker, so pages neither repeat nor skip;
    // released versions do not (see `paging_released_versions_repeats_and_skips_tied_runners`).
    let sim = start(SimConfig::default().version("1.28.0-dev").repo("acme/app")).await;
    for n in 0..55 {
        sim.create_runner(RunnerSpec::new(format!("r{n:02}"), &["x"]))
            .expect("runner");
    }
    let (_, body) = api(&sim, "GET", "/admin/actions/runners", None).await;
    assert_eq!(body["total_count"], 55);
    assert_eq!(body["runners"].as_array().map(Vec::len), Some(30));
    let (_, body) = api(&sim, "GET", "/admin/actions/runners?limit=500", None).await;
    assert_eq!(body["runners"].as_array().map(Vec::len), Some(50));
    let (_, body) = api(&sim, "GET", "/admin/actions/runners?page=2&limit=50", None).await;
    assert_eq!(body["runners"].as_array().map(Vec::len), Some(5));
    let (_, body) = api(&sim, "GET", "/admin/actions/runners?page=3&limit=50", None).await;
    assert_eq!(body["runners"], json!([]));
    assert_eq!(body["total_count"], 55);

    let mut seen = std::collections::BTreeSet::new();
    for page in 1..=6 {
        let (_, body) = api(
            &sim,
            "GET",
            &format!("/admin/actions/runners?page={page}&limit=10"),
            None,
        )
        .await;
        for r in body["runners"].as_array().expect("array") {
            assert!(
                seen.insert(r["id"].as_i64().expect("id")),
                "no runner twice"
            );
        }
    }
    assert_eq!(seen.len(), 55);
    sim.shutdown().await;
}

#[tokio::test]
async fn runner_list_on_main_puts_busy_then_idle_then_offline_and_disabled_last_in_each() {
    // The status-rank order exists on `main` only (go-gitea/gitea main@298d73cde6
    // models/actions/runner.go:285-307).
    let sim = start(SimConfig::default().version("1.28.0-dev").repo("acme/app")).await;
    let offline = sim
        .create_runner(RunnerSpec::new("offline", &["x"]))
        .expect("runner");
    let idle = register(&sim, "idle", &["x"], false).await;
    rpc(&sim, Some(&idle), "Declare", json!({"labels": ["x"]})).await;
    let idle_disabled = register(&sim, "idle-disabled", &["x"], false).await;
    rpc(
        &sim,
        Some(&idle_disabled),
        "Declare",
        json!({"labels": ["x"]}),
    )
    .await;
    api(
        &sim,
        "PATCH",
        &format!("/admin/actions/runners/{}", idle_disabled.id),
        Some(json!({"disabled": true})),
    )
    .await;
    let busy = register(&sim, "busy", &["x"], false).await;
    sim.enqueue_job(JobSpec::new("acme/app", "a", &["x"]))
        .expect("enqueue");
    let t = fetch(&sim, &busy).await.expect("task");
    rpc(
        &sim,
        Some(&busy),
        "UpdateTask",
        json!({"state": {"id": t.to_string()}}),
    )
    .await;

    let (_, body) = api(&sim, "GET", "/admin/actions/runners", None).await;
    let names: Vec<&str> = body["runners"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["busy", "idle", "idle-disabled", "offline"]);
    let (_, body) = api(&sim, "GET", "/admin/actions/runners?disabled=true", None).await;
    assert_eq!(body["total_count"], 1);
    let _ = offline;
    sim.shutdown().await;
}

#[tokio::test]
async fn scoped_lists_show_only_runners_registered_in_that_scope() {
    let sim = start(SimConfig::default().repo("acme/app")).await;
    sim.create_runner(RunnerSpec::new("global", &["x"]))
        .expect("runner");
    sim.create_runner(RunnerSpec::new("org", &["x"]).scope(Scope::Org("acme".into())))
        .expect("runner");
    let repo = sim
        .create_runner(RunnerSpec::new("repo", &["x"]).scope(Scope::Repo("acme/app".into())))
        .expect("runner");
    let names = |body: serde_json::Value| -> Vec<String> {
        body["runners"]
            .as_array()
            .expect("array")
            .iter()
            .map(|r| r["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let (_, all) = api(&sim, "GET", "/admin/actions/runners", None).await;
    assert_eq!(all["total_count"], 3);
    let (_, org) = api(&sim, "GET", "/orgs/acme/actions/runners", None).await;
    assert_eq!(names(org), vec!["org"]);
    let (_, r) = api(&sim, "GET", "/repos/acme/app/actions/runners", None).await;
    assert_eq!(names(r), vec!["repo"]);
    // A runner of another scope is "not found" from the org endpoints.
    let (status, _) = api(
        &sim,
        "DELETE",
        &format!("/orgs/acme/actions/runners/{}", repo.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = api(&sim, "GET", "/repos/acme/nope/actions/runners", None).await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn delete_answers_204_then_404_and_the_token_stops_working_at_once() {
    let sim = start_default().await;
    let r = register(&sim, "r", &["x"], false).await;
    let (status, body) = api(
        &sim,
        "DELETE",
        &format!("/admin/actions/runners/{}", r.id),
        None,
    )
    .await;
    assert_eq!((status, body), (204, serde_json::Value::Null));
    let (status, body) = api(
        &sim,
        "DELETE",
        &format!("/admin/actions/runners/{}", r.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body["message"], "The target couldn't be found.");
    let (status, body) = rpc(&sim, Some(&r), "FetchTask", json!({})).await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "rpc error: code = Unauthenticated desc = unregistered runner"
    );
    let (status, _) = api(&sim, "GET", "/admin/actions/runners/not-a-number", None).await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}

#[tokio::test]
async fn deleting_a_busy_runner_leaves_its_job_running_without_a_runner_name() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "a", &["x"]))
        .expect("enqueue");
    let r = register(&sim, "r", &["x"], false).await;
    fetch(&sim, &r).await.expect("task");
    api(
        &sim,
        "DELETE",
        &format!("/admin/actions/runners/{}", r.id),
        None,
    )
    .await;
    let (_, body) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/actions/jobs/{}", job.id),
        None,
    )
    .await;
    assert_eq!(body["status"], "in_progress");
    assert_eq!(body["runner_id"], r.id);
    assert!(body.get("runner_name").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn patch_returns_the_runner_and_rejects_a_body_without_disabled() {
    let sim = start_default().await;
    let f = sim
        .create_runner(RunnerSpec::new("r", &["x"]))
        .expect("runner");
    let path = format!("/repos/acme/app/actions/runners/{}", f.id);
    let (status, _) = api(&sim, "PATCH", &path, Some(json!({"disabled": true}))).await;
    assert_eq!(
        status, 404,
        "an instance runner is not editable from a repo"
    );
    let path = format!("/admin/actions/runners/{}", f.id);
    let (status, body) = api(&sim, "PATCH", &path, Some(json!({"disabled": true}))).await;
    assert_eq!(
        (status, body["disabled"].clone(), body["name"].clone()),
        (200, json!(true), json!("r"))
    );
    let (status, _) = api(&sim, "PATCH", &path, Some(json!({"paused": true}))).await;
    assert_eq!(status, 422);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_api_needs_a_token_and_answers_401_in_gitea_error_shape() {
    let sim = start_default().await;
    let url = format!("{}/api/v1/admin/actions/runners", sim.base_url());
    let resp = client().get(&url).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["message"], "token is required");
    assert!(body["url"].is_string());
    let resp = client()
        .get(&url)
        .header("Authorization", "token wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client()
        .get(&url)
        .header("Authorization", format!("Bearer {}", sim.admin_token()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    // The version endpoint is public.
    let resp = client()
        .get(format!("{}/api/v1/version", sim.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(
        resp.json::<serde_json::Value>().await.expect("json"),
        json!({"version": "1.26.4"})
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn older_versions_lack_the_routes_and_fields_they_lacked() {
    let sim = start(SimConfig::default().repo("acme/app").version("1.25.3")).await;
    let f = sim
        .create_runner(RunnerSpec::new("r", &["x"]))
        .expect("runner");
    let (_, body) = api(
        &sim,
        "GET",
        &format!("/admin/actions/runners/{}", f.id),
        None,
    )
    .await;
    assert!(
        body.get("disabled").is_none(),
        "no disabled field before 1.26"
    );
    let (status, _) = api(
        &sim,
        "PATCH",
        &format!("/admin/actions/runners/{}", f.id),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(status, 405);
    let (status, body) = api(&sim, "GET", "/admin/runners/registration-token", None).await;
    assert_eq!(status, 200);
    assert!(body["token"].is_string());
    let (status, _) = api(&sim, "GET", "/admin/actions/jobs?status=queued", None).await;
    assert_eq!(status, 200);

    sim.set_version("1.24.0");
    let (status, _) = api(&sim, "GET", "/admin/actions/jobs?status=queued", None).await;
    assert_eq!(status, 404, "no jobs API before 1.25");

    sim.set_version("1.23.8");
    let (status, _) = api(&sim, "GET", "/admin/actions/runners", None).await;
    assert_eq!(status, 404, "no runner API before 1.24");
    let token = sim.registration_token(&Scope::Instance).expect("token");
    let (_, body) = rpc(
        &sim,
        None,
        "Register",
        json!({"name": "e", "token": token, "labels": ["x"], "ephemeral": true}),
    )
    .await;
    assert!(
        body["runner"].get("ephemeral").is_none(),
        "no ephemeral runners before 1.24: {body}"
    );

    sim.set_version("1.26.4");
    let (status, _) = api(&sim, "GET", "/admin/runners/registration-token", None).await;
    assert_eq!(status, 405, "the GET token route is gone in 1.26");
    sim.shutdown().await;
}

#[tokio::test]
async fn declare_overwrites_labels_and_version() {
    let sim = start_default().await;
    let r = register(&sim, "r", &["old"], false).await;
    let (status, body) = rpc(
        &sim,
        Some(&r),
        "Declare",
        json!({"version": "v9", "labels": ["new", "spot"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["runner"]["labels"], json!(["new", "spot"]));
    assert!(body["runner"].get("token").is_none());
    let view = sim.runner(r.id).expect("runner");
    assert_eq!(
        (view.version.as_str(), view.labels.clone()),
        ("v9", vec!["new".to_owned(), "spot".to_owned()])
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_runner_protocol_wants_json_and_valid_credentials() {
    let sim = start_default().await;
    let resp = client()
        .post(format!(
            "{}/api/actions/runner.v1.RunnerService/FetchTask",
            sim.base_url()
        ))
        .header("Content-Type", "application/proto")
        .body(vec![])
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 415);
    let (status, body) = rpc(&sim, None, "FetchTask", json!({})).await;
    assert_eq!(
        (status, body),
        (
            500,
            json!({"code": "unknown", "message": "rpc error: code = Unauthenticated desc = unregistered runner"})
        )
    );
    let r = register(&sim, "r", &["x"], false).await;
    let wrong = Creds {
        token: "0".repeat(40),
        ..r.clone()
    };
    let (status, body) = rpc(&sim, Some(&wrong), "FetchTask", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (500, Some("unknown")));
    let (status, _) = rpc(&sim, Some(&r), "NoSuchMethod", json!({})).await;
    assert_eq!(status, 404);
    sim.shutdown().await;
}
