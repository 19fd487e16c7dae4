//! Webhooks: signed like Gitea, one per job transition, and the drop knob.

use std::time::Duration;

use gitea_sim::{CommitSpec, Faults, FileChange, JobSpec, PushSpec, SimConfig, WebhookTarget};

use crate::common::*;

fn verify(secret: &str, r: &Received) {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&r.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    assert_eq!(r.header("x-gitea-signature"), expected);
    assert_eq!(
        r.header("x-hub-signature-256"),
        format!("sha256={expected}")
    );
}

#[tokio::test]
async fn every_job_transition_sends_a_signed_workflow_job_webhook() {
    let rx = receiver(200, Duration::ZERO).await;
    let sim = start(
        SimConfig::default()
            .repo("acme/app")
            .webhook(&rx.url, "s3cret"),
    )
    .await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "build", &["linux"]))
        .expect("enqueue");
    let r = register(&sim, "i-0abc", &["linux"], true).await;
    let task = fetch(&sim, &r).await.expect("task");
    finish(&sim, &r, task, "RESULT_SUCCESS").await;
    sim.flush_webhooks().await;

    let got = rx.received();
    let actions: Vec<String> = got
        .iter()
        .map(|g| g.json()["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(actions, vec!["queued", "in_progress", "completed"]);
    let mut ids = std::collections::BTreeSet::new();
    for g in &got {
        verify("s3cret", g);
        assert_eq!(g.header("x-gitea-event"), "workflow_job");
        assert_eq!(g.header("x-github-event"), "workflow_job");
        assert_eq!(g.header("content-type"), "application/json");
        assert!(
            ids.insert(g.header("x-gitea-delivery")),
            "fresh delivery id each time"
        );
        let body = g.json();
        assert_eq!(body["workflow_job"]["id"], job.id);
        assert_eq!(body["repository"]["full_name"], "acme/app");
        assert!(body["sender"]["login"].is_string());
    }
    let in_progress = got[1].json();
    assert_eq!(in_progress["workflow_job"]["runner_id"], r.id);
    assert_eq!(in_progress["workflow_job"]["runner_name"], "i-0abc");
    let completed = got[2].json();
    assert_eq!(completed["workflow_job"]["conclusion"], "success");
    assert_eq!(completed["workflow_job"]["runner_id"], r.id);
    assert!(
        completed["workflow_job"].get("runner_name").is_none(),
        "the used ephemeral runner is already deleted when the payload is built"
    );
    let log = sim.deliveries();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(gitea_sim::Delivery::succeeded));
    sim.shutdown().await;
}

#[tokio::test]
async fn blocked_released_and_cancelled_jobs_announce_waiting_queued_completed() {
    let rx = receiver(200, Duration::ZERO).await;
    let sim = start(SimConfig::default().repo("acme/app").webhook(&rx.url, "")).await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "deploy", &["x"]).blocked())
        .expect("enqueue");
    sim.release_job(job.id).expect("release");
    sim.cancel_job(job.id).expect("cancel");
    sim.flush_webhooks().await;
    let got = rx.received();
    let actions: Vec<String> = got
        .iter()
        .map(|g| g.json()["action"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(actions, vec!["waiting", "queued", "completed"]);
    assert_eq!(got[2].json()["workflow_job"]["conclusion"], "cancelled");
    assert_eq!(
        got[0].header("x-gitea-signature"),
        "",
        "no secret, empty signature"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_drop_knob_loses_webhooks_without_sending_them() {
    let rx = receiver(200, Duration::ZERO).await;
    let sim = start(SimConfig::default().repo("acme/app").webhook(&rx.url, "k")).await;
    sim.set_faults(Faults {
        drop_webhooks: 1.0,
        ..Faults::default()
    });
    sim.enqueue_job(JobSpec::new("acme/app", "a", &["x"]))
        .expect("enqueue");
    sim.flush_webhooks().await;
    assert!(rx.received().is_empty());
    assert!(sim.deliveries().iter().all(|d| d.dropped));

    sim.set_faults(Faults {
        drop_webhooks: 0.5,
        ..Faults::default()
    });
    for n in 0..4 {
        sim.enqueue_job(JobSpec::new("acme/app", format!("b{n}"), &["x"]))
            .expect("enqueue");
    }
    sim.flush_webhooks().await;
    assert_eq!(rx.received().len(), 2, "half of them arrive");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_slow_receiver_times_out_after_the_delivery_timeout_without_retry() {
    let rx = receiver(200, Duration::from_millis(800)).await;
    let cfg = SimConfig {
        webhook_timeout: Duration::from_millis(200),
        ..SimConfig::default().repo("acme/app").webhook(&rx.url, "k")
    };
    let sim = start(cfg).await;
    sim.enqueue_job(JobSpec::new("acme/app", "a", &["x"]))
        .expect("enqueue");
    sim.flush_webhooks().await;
    let log = sim.deliveries();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].error.as_deref(), Some("timeout"));
    assert!(!log[0].succeeded());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_receiver_is_recorded_and_not_retried() {
    let rx = receiver(500, Duration::ZERO).await;
    let sim = start(SimConfig::default().repo("acme/app")).await;
    sim.set_webhook(Some(WebhookTarget {
        url: rx.url.clone(),
        secret: "k".into(),
    }));
    sim.enqueue_job(JobSpec::new("acme/app", "a", &["x"]))
        .expect("enqueue");
    sim.flush_webhooks().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(sim.deliveries()[0].status, Some(500));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_push_sends_a_signed_push_payload_with_the_newest_five_commits() {
    let rx = receiver(200, Duration::ZERO).await;
    let sim = start(SimConfig::default().webhook(&rx.url, "k")).await;
    let first = sim
        .push(PushSpec::new(
            "acme/app",
            "main",
            vec![CommitSpec::new("init", vec![FileChange::put("a.txt", "1")])],
        ))
        .expect("push");
    assert_eq!(first.before, gitea_sim::ZERO_SHA);
    let commits: Vec<CommitSpec> = (0..7)
        .map(|n| {
            CommitSpec::new(
                format!("c{n}"),
                vec![FileChange::put(format!("f{n}.txt"), "x")],
            )
        })
        .collect();
    let second = sim
        .push(PushSpec::new("acme/app", "main", commits))
        .expect("push");
    sim.flush_webhooks().await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    for g in &got {
        verify("k", g);
        assert_eq!(g.header("x-gitea-event"), "push");
    }
    let p = got[1].json();
    assert_eq!(p["ref"], "refs/heads/main");
    assert_eq!(p["before"], first.after);
    assert_eq!(p["after"], second.after);
    assert_eq!(p["total_commits"], 7);
    let listed: Vec<&str> = p["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    let newest: Vec<&str> = second.commits[2..].iter().map(String::as_str).collect();
    assert_eq!(listed, newest, "the newest five, oldest first");
    assert_eq!(p["head_commit"]["id"], second.after);
    assert_eq!(p["head_commit"]["added"], serde_json::json!(["f6.txt"]));
    assert_eq!(p["repository"]["full_name"], "acme/app");
    assert!(p["pusher"]["login"].is_string());
    let first_payload = got[0].json();
    assert_eq!(first_payload["compare_url"], "");
    sim.shutdown().await;
}
