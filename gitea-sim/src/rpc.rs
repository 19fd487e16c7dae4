//! The runner protocol: Connect RPCs with the JSON codec under `/api/actions`.
//!
//! `Register` needs no authentication; every other `RunnerService` call needs the
//! `x-runner-uuid` and `x-runner-token` headers and bumps the runner's `last_online`
//! (go-gitea/gitea v1.26.4 routers/api/actions/runner/interceptor.go:28-61). Responses are
//! protojson: lowerCamelCase names, int64 as strings, fields with default values left out
//! (so a non-ephemeral runner's answer has no `ephemeral` key). Errors are Connect errors;
//! everything Gitea itself returns is code `unknown`, HTTP 500 (see [`RpcError`]).
//!
//! `Register`, `Declare` and `UpdateLog` follow Gitea's messages. `FetchTask`'s task and
//! `UpdateTask`'s state use act_runner's field names (`id`, `result` as `RESULT_*`,
//! `tasksVersion`) with simulator-specific entries in the task `context`:
//! `sim_job_id`, `sim_duration_ms`, `sim_result`, `sim_cache`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::shared::Shared;
use crate::state::{RpcError, RunnerRec, TaskOut};
use crate::types::Conclusion;

pub(crate) fn router(_shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new().route("/api/actions/{service}/{method}", post(dispatch))
}

impl IntoResponse for RpcError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            Json(json!({"code": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// A string field under its protojson name or its proto name.
fn s<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a str {
    v.get(camel)
        .or_else(|| v.get(snake))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// An int64 field (protojson sends strings, accepts numbers too).
fn i(v: &Value, camel: &str, snake: &str) -> Result<Option<i64>, RpcError> {
    match v.get(camel).or_else(|| v.get(snake)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| RpcError::new("invalid_argument", format!("{camel}: not an int64"))),
        Some(Value::String(t)) => t.parse::<i64>().map(Some).map_err(|_| {
            RpcError::new(
                "invalid_argument",
                format!("{camel}: {t:?} is not an int64"),
            )
        }),
        Some(other) => Err(RpcError::new(
            "invalid_argument",
            format!("{camel}: {other} is not an int64"),
        )),
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// A protojson `Runner` message: defaults omitted (`ephemeral: false` is no key at all), id as
/// a string (go-gitea/gitea v1.26.4 routers/api/actions/runner/runner.go:98-108; protojson
/// leaves out fields holding their zero value unless `EmitUnpopulated` is set).
fn runner_msg(r: &RunnerRec, with_token: bool) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(r.id.to_string()));
    m.insert("uuid".into(), json!(r.uuid));
    if with_token {
        m.insert("token".into(), json!(r.token));
    }
    m.insert("name".into(), json!(r.name));
    if !r.version.is_empty() {
        m.insert("version".into(), json!(r.version));
    }
    if !r.labels.is_empty() {
        m.insert("labels".into(), json!(r.labels));
    }
    if r.ephemeral {
        m.insert("ephemeral".into(), json!(true));
    }
    Value::Object(m)
}

async fn dispatch(
    AxState(shared): AxState<Arc<Shared>>,
    Path((service, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_type {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return RpcError::new("invalid_argument", "request body must be a JSON object")
                    .into_response()
            }
            Err(e) => {
                return RpcError::new("invalid_argument", format!("unmarshal request: {e}"))
                    .into_response()
            }
        }
    };
    let result = match (service.as_str(), method.as_str()) {
        ("ping.v1.PingService", "Ping") => {
            Ok(json!({"data": format!("Hello, {}!", s(&req, "data", "data"))}))
        }
        ("runner.v1.RunnerService", "Register") => register(&shared, &req),
        ("runner.v1.RunnerService", m @ ("Declare" | "FetchTask" | "UpdateTask" | "UpdateLog")) => {
            let uuid = headers
                .get("x-runner-uuid")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let token = headers
                .get("x-runner-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match shared.with(|st, now| st.authenticate(uuid, token, now)) {
                Err(e) => Err(e),
                Ok(id) => match m {
                    "Declare" => declare(&shared, id, &req),
                    "FetchTask" => fetch_task(&shared, id),
                    "UpdateTask" => update_task(&shared, id, &req),
                    _ => update_log(&shared, id, &req),
                },
            }
        }
        _ => Err(RpcError::new(
            "unimplemented",
            format!("{service}.{method} is not implemented"),
        )),
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

fn register(shared: &Shared, req: &Value) -> Result<Value, RpcError> {
    // Only `labels` is read; the deprecated `agent_labels`/`custom_labels` are ignored
    // (go-gitea/gitea v1.26.4 routers/api/actions/runner/runner.go:70; the same at v1.24.0).
    let labels = strings(req, "labels");
    let ephemeral = req
        .get("ephemeral")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let r = shared.with(|st, _| {
        st.register(
            s(req, "name", "name"),
            s(req, "token", "token"),
            s(req, "version", "version"),
            labels,
            ephemeral,
        )
    })?;
    tracing::debug!(id = r.id, name = %r.name, "runner registered");
    Ok(json!({"runner": runner_msg(&r, true)}))
}

fn declare(shared: &Shared, id: i64, req: &Value) -> Result<Value, RpcError> {
    let labels = strings(req, "labels");
    let r = shared.with(|st, _| st.declare(id, s(req, "version", "version"), labels))?;
    Ok(json!({"runner": runner_msg(&r, false)}))
}

fn fetch_task(shared: &Shared, id: i64) -> Result<Value, RpcError> {
    let (task, version, base) = shared.with(|st, now| {
        let t = st.fetch_task(id, now);
        (t, st.tasks_version, st.base_url.clone())
    });
    let mut out = Map::new();
    if let Some(t) = task? {
        out.insert("task".into(), task_msg(&t, &base));
    }
    if version != 0 {
        out.insert("tasksVersion".into(), json!(version.to_string()));
    }
    Ok(Value::Object(out))
}

fn task_msg(t: &TaskOut, base: &str) -> Value {
    let job = &t.job;
    let mut workflow = format!(
        "name: {}\non: push\njobs:\n  {}:\n    runs-on: [",
        job.name, job.name
    );
    workflow.push_str(&job.labels.join(", "));
    workflow.push_str("]\n    steps:\n      - run: \"true\"\n");
    json!({
        "id": t.task_id.to_string(),
        "workflowPayload": base64::engine::general_purpose::STANDARD.encode(workflow),
        "context": {
            "server_url": base,
            "repository": job.repo,
            "repository_owner": job.repo.split('/').next().unwrap_or(""),
            "ref": format!("refs/heads/{}", job.head_branch),
            "ref_name": job.head_branch,
            "sha": job.head_sha,
            "run_id": job.run_id.to_string(),
            "run_number": job.run_index.to_string(),
            "run_attempt": job.attempt.to_string(),
            "job": job.name,
            "event_name": "push",
            "sim_job_id": job.id,
            "sim_duration_ms": job.duration_ms,
            "sim_result": job.planned.as_str(),
            "sim_cache": job.cache,
        },
    })
}

fn update_task(shared: &Shared, id: i64, req: &Value) -> Result<Value, RpcError> {
    let state = req
        .get("state")
        .ok_or_else(|| RpcError::new("invalid_argument", "state is required"))?;
    let task_id = i(state, "id", "id")?
        .ok_or_else(|| RpcError::new("invalid_argument", "state.id is required"))?;
    let result = Conclusion::from_result(state.get("result").unwrap_or(&Value::Null))
        .map_err(|e| RpcError::new("invalid_argument", e))?;
    let now_result = shared.with(|st, now| st.update_task(id, task_id, result, now))?;
    let mut st = Map::new();
    st.insert("id".into(), json!(task_id.to_string()));
    if let Some(c) = now_result {
        st.insert("result".into(), json!(c.as_result()));
    }
    Ok(json!({"state": st}))
}

fn update_log(shared: &Shared, id: i64, req: &Value) -> Result<Value, RpcError> {
    let task_id = i(req, "taskId", "task_id")?;
    let index = i(req, "index", "index")?.unwrap_or(0);
    let rows: Vec<String> = req
        .get("rows")
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.get("content")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    let count = rows.len();
    shared.with(|st, now| st.update_log(id, task_id, rows, now))?;
    let ack = index + i64::try_from(count).unwrap_or(0);
    Ok(if ack == 0 {
        json!({})
    } else {
        json!({"ackIndex": ack.to_string()})
    })
}
