//! API fault knobs: error statuses and hangs.

use std::time::Duration;

use gitea_sim::{ApiDelayFault, ApiErrorFault, FaultMatch, Faults};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn the_error_knob_answers_5xx_on_every_rest_call_but_not_on_the_runner_protocol() {
    let sim = start_default().await;
    sim.set_faults(Faults {
        api_error: Some(ApiErrorFault::always(503)),
        ..Faults::default()
    });
    let (status, body) = api(&sim, "GET", "/admin/actions/runners", None).await;
    assert_eq!(status, 503);
    assert_eq!(body["message"], "simulated fault");
    let (status, _) = api(&sim, "GET", "/version", None).await;
    assert_eq!(status, 503);
    register(&sim, "still-works", &["x"], true).await;
    sim.set_faults(Faults::default());
    let (status, _) = api(&sim, "GET", "/admin/actions/runners", None).await;
    assert_eq!(status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_error_knob_can_hit_a_fraction_of_one_path_a_limited_number_of_times() {
    let sim = start_default().await;
    sim.set_faults(Faults {
        api_error: Some(ApiErrorFault {
            status: 500,
            fraction: 0.5,
            count: Some(2),
            matches: FaultMatch {
                path_contains: Some("/actions/jobs".into()),
                method: Some("GET".into()),
            },
        }),
        ..Faults::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(api(&sim, "GET", "/admin/actions/jobs", None).await.0);
    }
    assert_eq!(statuses, vec![200, 500, 200, 500, 200, 200, 200, 200]);
    let (status, _) = api(&sim, "GET", "/admin/actions/runners", None).await;
    assert_eq!(status, 200, "other paths are untouched");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_path_fault_can_break_the_runner_protocol_with_a_connect_error() {
    let sim = start_default().await;
    let r = register(&sim, "r", &["x"], false).await;
    sim.set_faults(Faults {
        api_error: Some(ApiErrorFault {
            status: 503,
            fraction: 1.0,
            count: None,
            matches: FaultMatch {
                path_contains: Some("FetchTask".into()),
                method: None,
            },
        }),
        ..Faults::default()
    });
    let (status, body) = rpc(&sim, Some(&r), "FetchTask", json!({})).await;
    assert_eq!(status, 503);
    assert_eq!(body["code"], "unavailable");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_delay_knob_makes_a_client_with_a_shorter_timeout_give_up() {
    let sim = start_default().await;
    sim.set_faults(Faults {
        api_delay: Some(ApiDelayFault {
            delay_ms: 1500,
            matches: FaultMatch::default(),
        }),
        ..Faults::default()
    });
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let err = quick
        .get(format!("{}/api/v1/admin/actions/runners", sim.base_url()))
        .header("Authorization", format!("token {}", sim.admin_token()))
        .send()
        .await
        .expect_err("must time out");
    assert!(err.is_timeout());
    sim.set_faults(Faults::default());
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_never_touch_the_control_api() {
    let sim = start_default().await;
    sim.set_faults(Faults {
        api_error: Some(ApiErrorFault {
            status: 500,
            fraction: 1.0,
            count: None,
            matches: FaultMatch {
                path_contains: Some("/".into()),
                method: None,
            },
        }),
        ..Faults::default()
    });
    let resp = client()
        .get(format!("{}/_sim/faults", sim.base_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["api_error"]["status"], 500);
    sim.shutdown().await;
}
