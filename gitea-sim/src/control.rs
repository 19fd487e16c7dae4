//! The control API under `/_sim`: drive and inspect the simulator over HTTP (no auth; the
//! simulator is meant for loopback). Faults never apply here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent::{Agent, AgentConfig, AgentFault, RunnerFile};
use crate::config::{Faults, Scope, WebhookTarget};
use crate::shared::{ControlAgent, Shared};
use crate::state::{SimError, State};
use crate::types::{JobSpec, PushSpec, RunnerSpec};

type Sh = AxState<Arc<Shared>>;

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let status = match self {
            SimError::UnknownRepo(_) | SimError::UnknownJob(_) | SimError::UnknownRunner(_) => {
                StatusCode::NOT_FOUND
            }
            SimError::WrongState { .. } => StatusCode::CONFLICT,
            SimError::Invalid(_) => StatusCode::BAD_REQUEST,
            SimError::Gone => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

pub(crate) fn router(_shared: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/state", get(overview))
        .route("/_sim/jobs", get(jobs).post(enqueue))
        .route("/_sim/jobs/{id}/release", post(release))
        .route("/_sim/jobs/{id}/cancel", post(cancel))
        .route("/_sim/jobs/{id}/rerun", post(rerun))
        .route("/_sim/runners", get(runners).post(create_runner))
        .route("/_sim/registration-token", get(reg_token))
        .route("/_sim/registration-token/reset", post(reset_reg_token))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route(
            "/_sim/webhook",
            get(get_webhook).put(put_webhook).delete(delete_webhook),
        )
        .route("/_sim/deliveries", get(deliveries))
        .route("/_sim/repos", post(add_repo))
        .route("/_sim/push", post(push))
        .route("/_sim/tags", post(push_tag))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/version", axum::routing::put(set_version))
        .route("/_sim/agents", get(list_agents).post(spawn_agent))
        .route("/_sim/agents/{id}/stop", post(stop_agent))
}

async fn overview(AxState(shared): Sh) -> Json<Value> {
    let body = shared.with(|st, now| {
        json!({
            "version": st.version_string,
            "base_url": st.base_url,
            "repos": st.repos.keys().collect::<Vec<_>>(),
            "runners": st.runners.values().map(|r| st.runner_view(r, now)).collect::<Vec<_>>(),
            "jobs": st.jobs.values().map(State::job_view).collect::<Vec<_>>(),
            "clock_ms": now,
        })
    });
    Json(body)
}

async fn jobs(AxState(shared): Sh) -> Json<Value> {
    Json(json!(shared.with(|st, _| st
        .jobs
        .values()
        .map(State::job_view)
        .collect::<Vec<_>>())))
}

async fn enqueue(
    AxState(shared): Sh,
    Json(spec): Json<JobSpec>,
) -> Result<(StatusCode, Json<Value>), SimError> {
    let job = shared.with(|st, now| st.enqueue(&spec, now))?;
    Ok((StatusCode::CREATED, Json(json!(job))))
}

async fn release(AxState(shared): Sh, Path(id): Path<i64>) -> Result<Json<Value>, SimError> {
    Ok(Json(json!(shared.with(|st, now| st.release_job(id, now))?)))
}

async fn cancel(AxState(shared): Sh, Path(id): Path<i64>) -> Result<Json<Value>, SimError> {
    Ok(Json(json!(shared.with(|st, now| st.cancel_job(id, now))?)))
}

/// Answers the queued job rows as an array (one row; see `SimHandle::rerun_job`).
async fn rerun(AxState(shared): Sh, Path(id): Path<i64>) -> Result<Json<Value>, SimError> {
    Ok(Json(json!(shared.with(|st, now| st.rerun_job(id, now))?)))
}

async fn runners(AxState(shared): Sh) -> Json<Value> {
    Json(json!(shared.with(|st, now| st
        .runners
        .values()
        .map(|r| st.runner_view(r, now))
        .collect::<Vec<_>>())))
}

async fn create_runner(
    AxState(shared): Sh,
    Json(spec): Json<RunnerSpec>,
) -> Result<(StatusCode, Json<Value>), SimError> {
    let base = shared.base_url();
    let r = shared.with(|st, _| st.create_runner(&spec))?;
    let file = RunnerFile::new(
        r.id,
        &r.uuid,
        &r.name,
        &r.token,
        &base,
        &r.labels,
        r.ephemeral,
    );
    Ok((StatusCode::CREATED, Json(json!(file))))
}

#[derive(Deserialize)]
struct ScopeQuery {
    #[serde(default)]
    scope: Option<String>,
}

fn parse_scope(shared: &Shared, q: &ScopeQuery) -> Result<Scope, SimError> {
    let scope: Scope = q
        .scope
        .as_deref()
        .unwrap_or("instance")
        .parse()
        .map_err(SimError::Invalid)?;
    if shared.with(|st, _| st.scope_exists(&scope)) {
        Ok(scope)
    } else {
        Err(SimError::Invalid(format!("scope {scope} does not exist")))
    }
}

async fn reg_token(
    AxState(shared): Sh,
    Query(q): Query<ScopeQuery>,
) -> Result<Json<Value>, SimError> {
    let scope = parse_scope(&shared, &q)?;
    Ok(Json(
        json!({"token": shared.with(|st, _| st.registration_token(&scope))}),
    ))
}

async fn reset_reg_token(
    AxState(shared): Sh,
    Query(q): Query<ScopeQuery>,
) -> Result<Json<Value>, SimError> {
    let scope = parse_scope(&shared, &q)?;
    Ok(Json(
        json!({"token": shared.with(|st, _| st.reset_registration_token(&scope))}),
    ))
}

async fn get_faults(AxState(shared): Sh) -> Json<Value> {
    Json(json!(shared.with(|st, _| st.faults.clone())))
}

async fn put_faults(AxState(shared): Sh, Json(faults): Json<Faults>) -> Json<Value> {
    shared.with(|st, _| st.set_faults(faults.clone()));
    Json(json!(faults))
}

async fn get_webhook(AxState(shared): Sh) -> Json<Value> {
    // The secret is never echoed.
    Json(json!(shared.with(|st, _| st.webhook.as_ref().map(
        |w| json!({"url": w.url, "signed": !w.secret.is_empty()})
    ))))
}

async fn put_webhook(AxState(shared): Sh, Json(target): Json<WebhookTarget>) -> StatusCode {
    shared.with(|st, _| st.webhook = Some(target));
    StatusCode::NO_CONTENT
}

async fn delete_webhook(AxState(shared): Sh) -> StatusCode {
    shared.with(|st, _| st.webhook = None);
    StatusCode::NO_CONTENT
}

async fn deliveries(AxState(shared): Sh) -> Json<Value> {
    Json(json!(shared.deliveries.lock().clone()))
}

#[derive(Deserialize)]
struct RepoBody {
    full_name: String,
}

async fn add_repo(AxState(shared): Sh, Json(b): Json<RepoBody>) -> Result<StatusCode, SimError> {
    shared.with(|st, now| st.ensure_repo(&b.full_name, now).map(|_| ()))?;
    Ok(StatusCode::CREATED)
}

async fn push(
    AxState(shared): Sh,
    Json(spec): Json<PushSpec>,
) -> Result<(StatusCode, Json<Value>), SimError> {
    let r = shared.with(|st, now| st.push(&spec, now))?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

#[derive(Deserialize)]
struct TagBody {
    repo: String,
    tag: String,
    target: String,
}

async fn push_tag(
    AxState(shared): Sh,
    Json(b): Json<TagBody>,
) -> Result<(StatusCode, Json<Value>), SimError> {
    let r = shared.with(|st, now| st.push_tag(&b.repo, &b.tag, &b.target, now))?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: f64,
}

async fn advance_clock(
    AxState(shared): Sh,
    Json(b): Json<AdvanceBody>,
) -> Result<Json<Value>, SimError> {
    if !(b.seconds.is_finite() && b.seconds >= 0.0) {
        return Err(SimError::Invalid(
            "seconds must be a non-negative number".into(),
        ));
    }
    shared.clock.advance(Duration::from_secs_f64(b.seconds));
    let now = shared.with(|st, now| {
        st.sweep_zombies(now);
        now
    });
    Ok(Json(json!({"clock_ms": now})))
}

#[derive(Deserialize)]
struct VersionBody {
    version: String,
}

async fn set_version(AxState(shared): Sh, Json(b): Json<VersionBody>) -> Json<Value> {
    shared.with(|st, _| st.set_version(&b.version));
    Json(json!({"version": b.version}))
}

/// Start an agent inside the simulator process.
#[derive(Deserialize)]
struct AgentRequest {
    /// A `.runner` file's JSON (object or string).
    #[serde(default)]
    runner_file: Option<Value>,
    /// Or register with this token…
    #[serde(default)]
    registration_token: Option<String>,
    /// …under this name…
    #[serde(default)]
    name: Option<String>,
    /// …with these labels.
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    boot_delay_ms: u64,
    #[serde(default)]
    fetch_interval_ms: Option<u64>,
    #[serde(default)]
    report_interval_ms: Option<u64>,
    #[serde(default)]
    fault: AgentFault,
}

async fn spawn_agent(
    AxState(shared): Sh,
    Json(req): Json<AgentRequest>,
) -> Result<(StatusCode, Json<Value>), SimError> {
    let base = shared.base_url();
    let (mut cfg, name) = match (&req.runner_file, &req.registration_token) {
        (Some(file), None) => {
            let text = match file {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let file =
                RunnerFile::from_json(&text).map_err(|e| SimError::Invalid(e.to_string()))?;
            let name = file.name.clone();
            (AgentConfig::from_runner_file(file), name)
        }
        (None, Some(token)) => {
            let name = req
                .name
                .clone()
                .ok_or_else(|| SimError::Invalid("name is required to register".into()))?;
            let labels: Vec<&str> = req.labels.iter().map(String::as_str).collect();
            (
                AgentConfig::register(base.clone(), token.clone(), name.clone(), &labels),
                name,
            )
        }
        _ => {
            return Err(SimError::Invalid(
                "give exactly one of runner_file and registration_token".into(),
            ))
        }
    };
    cfg = cfg
        .boot_delay(Duration::from_millis(req.boot_delay_ms))
        .fault(req.fault);
    if let Some(ms) = req.fetch_interval_ms {
        cfg = cfg.fetch_interval(Duration::from_millis(ms));
    }
    if let Some(ms) = req.report_interval_ms {
        cfg = cfg.report_interval(Duration::from_millis(ms));
    }
    let handle = Arc::new(Agent::spawn(cfg));
    let watcher = handle.clone();
    tokio::spawn(async move {
        let outcome = watcher.wait().await;
        tracing::info!(?outcome, "agent ended");
    });
    let id = shared.next_agent.fetch_add(1, Ordering::SeqCst) as u64;
    shared.agents.lock().push(ControlAgent {
        id,
        name: name.clone(),
        handle,
    });
    Ok((StatusCode::CREATED, Json(json!({"id": id, "name": name}))))
}

async fn list_agents(AxState(shared): Sh) -> Json<Value> {
    let agents = shared.agents.lock();
    let list: Vec<Value> = agents
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "name": a.name,
                "runner_id": a.handle.runner_id(),
                "state": a.handle.state(),
                "finished": a.handle.is_finished(),
                "outcome": a.handle.outcome(),
            })
        })
        .collect();
    Json(json!(list))
}

async fn stop_agent(AxState(shared): Sh, Path(id): Path<u64>) -> Result<StatusCode, SimError> {
    let agents = shared.agents.lock();
    let a = agents
        .iter()
        .find(|a| a.id == id)
        .ok_or_else(|| SimError::Invalid(format!("agent {id} does not exist")))?;
    a.handle.stop();
    Ok(StatusCode::NO_CONTENT)
}
