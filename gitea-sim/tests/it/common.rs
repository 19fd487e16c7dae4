//! Helpers shared by the integration tests: a started simulator, REST and runner-protocol
//! calls, and a webhook receiver on 127.0.0.1:0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use gitea_sim::{SimConfig, SimHandle, Simulator};
use serde_json::{json, Value};

pub async fn start(cfg: SimConfig) -> SimHandle {
    Simulator::start(cfg).await.expect("simulator starts")
}

pub async fn start_default() -> SimHandle {
    start(SimConfig::default().repo("acme/app")).await
}

/// One client for all tests (building a TLS-capable client costs ~80 ms). No pooling, so no
/// connection outlives the test runtime that opened it.
pub fn client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client")
        })
        .clone()
}

/// A REST call with the admin token; returns status and JSON body (`Null` when empty).
pub async fn api(sim: &SimHandle, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (status, _, v) = api_full(sim, method, path, body).await;
    (status, v)
}

pub async fn api_full(
    sim: &SimHandle,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client()
        .request(m, format!("{}/api/v1{path}", sim.base_url()))
        .header("Authorization", format!("token {}", sim.admin_token()));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    };
    (status, headers, v)
}

/// A runner's protocol identity.
#[derive(Debug, Clone)]
pub struct Creds {
    pub id: i64,
    pub uuid: String,
    pub token: String,
}

/// A runner-protocol call; returns status and JSON body.
pub async fn rpc(sim: &SimHandle, who: Option<&Creds>, method: &str, body: Value) -> (u16, Value) {
    let mut req = client()
        .post(format!(
            "{}/api/actions/runner.v1.RunnerService/{method}",
            sim.base_url()
        ))
        .header("Content-Type", "application/json")
        .json(&body);
    if let Some(c) = who {
        req = req
            .header("x-runner-uuid", &c.uuid)
            .header("x-runner-token", &c.token);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON body")
        },
    )
}

/// Registers a runner through the protocol with the instance registration token.
pub async fn register(sim: &SimHandle, name: &str, labels: &[&str], ephemeral: bool) -> Creds {
    let token = sim
        .registration_token(&gitea_sim::Scope::Instance)
        .expect("token");
    register_with(sim, &token, name, labels, ephemeral).await
}

pub async fn register_with(
    sim: &SimHandle,
    token: &str,
    name: &str,
    labels: &[&str],
    ephemeral: bool,
) -> Creds {
    let (status, body) = rpc(
        sim,
        None,
        "Register",
        json!({"name": name, "token": token, "version": "test", "labels": labels, "ephemeral": ephemeral}),
    )
    .await;
    assert_eq!(status, 200, "register: {body}");
    let r = &body["runner"];
    Creds {
        id: r["id"]
            .as_str()
            .expect("id is a string")
            .parse()
            .expect("numeric id"),
        uuid: r["uuid"].as_str().expect("uuid").to_owned(),
        token: r["token"].as_str().expect("token").to_owned(),
    }
}

/// `FetchTask`; returns the task id, if one was handed out.
pub async fn fetch(sim: &SimHandle, who: &Creds) -> Option<i64> {
    let (status, body) = rpc(sim, Some(who), "FetchTask", json!({})).await;
    assert_eq!(status, 200, "fetch: {body}");
    body.get("task").map(|t| {
        t["id"]
            .as_str()
            .expect("task id string")
            .parse()
            .expect("numeric task id")
    })
}

/// `FetchTask` returning the job id from the task context.
pub async fn fetch_job(sim: &SimHandle, who: &Creds) -> Option<i64> {
    let (status, body) = rpc(sim, Some(who), "FetchTask", json!({})).await;
    assert_eq!(status, 200, "fetch: {body}");
    body.get("task")
        .map(|t| t["context"]["sim_job_id"].as_i64().expect("job id"))
}

pub async fn finish(sim: &SimHandle, who: &Creds, task: i64, result: &str) -> (u16, Value) {
    rpc(
        sim,
        Some(who),
        "UpdateTask",
        json!({"state": {"id": task.to_string(), "result": result}}),
    )
    .await
}

/// One webhook as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A webhook receiver on 127.0.0.1:0 answering `status` after `delay`.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

pub async fn receiver(status: u16, delay: Duration) -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                tokio::time::sleep(delay).await;
                sink.lock().expect("lock").push(Received { headers, body });
                StatusCode::from_u16(status).expect("status")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        got,
        task,
    }
}

/// Waits until `cond` holds, checking every 20 ms, failing after a generous 20 s.
pub async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `workflow_job` webhooks received so far, as (action, job JSON).
pub fn job_hooks(rx: &Receiver) -> Vec<(String, Value)> {
    rx.received()
        .iter()
        .map(Received::json)
        .filter(|b| b.get("workflow_job").is_some())
        .map(|b| {
            (
                b["action"].as_str().unwrap_or("").to_owned(),
                b["workflow_job"].clone(),
            )
        })
        .collect()
}
