//! Starting, driving and stopping a simulator.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State as AxState};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::agent::RunnerFile;
use crate::clock::SimClock;
use crate::config::{Faults, Scope, SimConfig, WebhookTarget};
use crate::shared::Shared;
use crate::state::{Limits, SimError, State};
use crate::types::{
    Delivery, JobPhase, JobSpec, JobView, PushResult, PushSpec, RunnerSpec, RunnerView,
};

/// The simulator.
pub struct Simulator;

impl Simulator {
    /// Binds `config.listen` and starts serving the API, the runner protocol and `/_sim`.
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// When the address cannot be bound or a configured repository name is invalid.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimStartError> {
        let SimConfig {
            listen,
            version,
            admin_token,
            user_login,
            webhook,
            repos,
            global_registration_token,
            runner_offline_after,
            runner_idle_after,
            zombie_task_timeout,
            webhook_timeout,
            feed_max_commits,
            faults,
        } = config;
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let limits = Limits {
            offline_after_ms: ms(runner_offline_after),
            idle_after_ms: ms(runner_idle_after),
            zombie_after_ms: ms(zombie_task_timeout),
            feed_max_commits,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SimStartError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimStartError::Bind {
                addr: listen,
                source,
            })?;
        let clock = SimClock::new();
        let mut state = State::new(&version, &user_login, limits);
        state.base_url = format!("http://{addr}");
        state.webhook = webhook;
        state.set_faults(faults);
        let now = clock.now_ms();
        for r in &repos {
            state.ensure_repo(r, now).map_err(SimStartError::Config)?;
        }
        if let Some(t) = global_registration_token {
            state.set_registration_token(&Scope::Instance, &t);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(state, clock, admin_token, webhook_timeout, tx));

        let (stop_tx, stop_rx) = watch::channel(false);
        let router = router(shared.clone());
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = server_stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "gitea-sim server stopped with an error");
            }
        });
        let hooks = tokio::spawn(crate::webhook::deliver_loop(
            shared.clone(),
            rx,
            stop_rx.clone(),
        ));
        let sweeper = tokio::spawn(sweep_loop(shared.clone(), stop_rx));
        tracing::info!(%addr, version = %version, "gitea-sim listening");
        Ok(SimHandle {
            inner: Arc::new(Inner {
                shared,
                addr,
                stop: stop_tx,
                tasks: Mutex::new(vec![server, hooks, sweeper]),
            }),
        })
    }
}

async fn sweep_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(Duration::from_millis(250)) => {
                shared.with(|st, now| st.sweep_zombies(now));
            }
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(crate::api::router(shared.clone()))
        .merge(crate::rpc::router(shared.clone()))
        .merge(crate::control::router(shared.clone()))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            fault_layer,
        ))
        .with_state(shared)
}

/// Applies the delay and error faults to matching requests.
async fn fault_layer(AxState(shared): AxState<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_sim") {
        return next.run(req).await;
    }
    let method = req.method().as_str().to_owned();
    let (delay, error) = {
        let mut st = shared.state.lock();
        let applies = |m: &crate::config::FaultMatch| {
            let path_ok = match &m.path_contains {
                Some(s) => path.contains(s.as_str()),
                None => path.starts_with("/api/v1/"),
            };
            path_ok
                && m.method
                    .as_deref()
                    .is_none_or(|want| want.eq_ignore_ascii_case(&method))
        };
        let delay = st
            .faults
            .api_delay
            .as_ref()
            .filter(|d| applies(&d.matches))
            .map(|d| d.delay_ms);
        let mut error = None;
        if let Some(f) = st.faults.api_error.clone().filter(|f| applies(&f.matches)) {
            let exhausted = f.count.is_some_and(|c| st.fault_injected >= c);
            if !exhausted {
                st.fault_seen += 1;
                let n = st.fault_seen as f64;
                let frac = f.fraction.clamp(0.0, 1.0);
                if (n * frac).floor() > ((n - 1.0) * frac).floor() {
                    st.fault_injected += 1;
                    error = Some(f.status);
                }
            }
        }
        (delay, error)
    };
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(status) = error {
        let code = axum::http::StatusCode::from_u16(status)
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = if path.starts_with("/api/actions/") {
            let connect = match status {
                401 => "unauthenticated",
                403 => "permission_denied",
                404 => "not_found",
                429 => "resource_exhausted",
                503 => "unavailable",
                504 => "deadline_exceeded",
                _ => "internal",
            };
            json!({"code": connect, "message": "simulated fault"})
        } else {
            json!({"message": "simulated fault", "url": format!("{}/api/swagger", shared.base_url())})
        };
        return (code, axum::Json(body)).into_response();
    }
    next.run(req).await
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimStartError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("invalid simulator configuration")]
    Config(#[source] SimError),
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running simulator. Cheap to clone; every clone drives the same simulator.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash. The REST API is under `/api/v1`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The site-admin API token (`Authorization: token <it>`).
    #[must_use]
    pub fn admin_token(&self) -> String {
        self.shared().admin_token.clone()
    }

    /// The server clock (advance it to age runners and tasks).
    #[must_use]
    pub fn clock(&self) -> SimClock {
        self.shared().clock.clone()
    }

    /// Moves the server clock forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared().clock.advance(by);
        self.shared().with(|st, now| st.sweep_zombies(now));
    }

    /// Changes the version the server pretends to be.
    pub fn set_version(&self, version: &str) {
        self.shared().with(|st, _| st.set_version(version));
    }

    /// Puts a job into the queue and announces it (`queued`, or `waiting` when blocked).
    ///
    /// # Errors
    /// Invalid repository name, empty name or label, unknown run.
    pub fn enqueue_job(&self, spec: JobSpec) -> Result<JobView, SimError> {
        self.shared().with(|st, now| st.enqueue(&spec, now))
    }

    /// Makes a blocked (`waiting`) job `queued`.
    ///
    /// # Errors
    /// Unknown job, or not blocked.
    pub fn release_job(&self, id: i64) -> Result<JobView, SimError> {
        self.shared().with(|st, now| st.release_job(id, now))
    }

    /// Cancels an unfinished job.
    ///
    /// # Errors
    /// Unknown job, or already completed.
    pub fn cancel_job(&self, id: i64) -> Result<JobView, SimError> {
        self.shared().with(|st, now| st.cancel_job(id, now))
    }

    /// Re-runs a completed job of a finished run, as Gitea's "Re-run" does, and returns the
    /// job row(s) now queued: up to 1.26 the same row (same id, attempt unchanged until a
    /// runner picks it); from 1.27 a new row with a new id in a new run attempt (the other
    /// jobs of the run are cloned too, unchanged and not returned).
    ///
    /// # Errors
    /// `UnknownJob`; `WrongState` when the job is not completed, its run still has unfinished
    /// jobs, or (1.27+) it is not in the run's latest attempt.
    pub fn rerun_job(&self, id: i64) -> Result<Vec<JobView>, SimError> {
        self.shared().with(|st, now| st.rerun_job(id, now))
    }

    /// Every job, by id.
    #[must_use]
    pub fn jobs(&self) -> Vec<JobView> {
        self.shared()
            .with(|st, _| st.jobs.values().map(State::job_view).collect())
    }

    /// One job.
    #[must_use]
    pub fn job(&self, id: i64) -> Option<JobView> {
        self.shared()
            .with(|st, _| st.jobs.get(&id).map(State::job_view))
    }

    /// Waits until job `id` reaches `phase`, polling every 20 ms.
    ///
    /// # Errors
    /// `UnknownJob` if it does not exist; `Invalid` when `timeout` passes first.
    pub async fn wait_for_job(
        &self,
        id: i64,
        phase: JobPhase,
        timeout: Duration,
    ) -> Result<JobView, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.job(id).ok_or(SimError::UnknownJob(id))?;
            if job.status == phase {
                return Ok(job);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Invalid(format!(
                    "job {id} is still {} after {timeout:?}, wanted {}",
                    job.status.as_str(),
                    phase.as_str()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every runner, by id.
    #[must_use]
    pub fn runners(&self) -> Vec<RunnerView> {
        self.shared().with(|st, now| {
            st.runners
                .values()
                .map(|r| st.runner_view(r, now))
                .collect()
        })
    }

    /// One runner.
    #[must_use]
    pub fn runner(&self, id: i64) -> Option<RunnerView> {
        self.shared()
            .with(|st, now| st.runners.get(&id).map(|r| st.runner_view(r, now)))
    }

    /// Creates a runner as if `Register` had been called with a valid token, and returns the
    /// `.runner` file an agent would start from. It has never connected, so it is offline.
    ///
    /// # Errors
    /// Empty name or unknown scope.
    pub fn create_runner(&self, spec: RunnerSpec) -> Result<RunnerFile, SimError> {
        let base = self.base_url();
        let r = self.shared().with(|st, _| st.create_runner(&spec))?;
        Ok(RunnerFile::new(
            r.id,
            &r.uuid,
            &r.name,
            &r.token,
            &base,
            &r.labels,
            r.ephemeral,
        ))
    }

    /// The registration token of `scope` (same one until reset), as
    /// `POST …/actions/runners/registration-token` returns it.
    ///
    /// # Errors
    /// When the organisation or repository does not exist.
    pub fn registration_token(&self, scope: &Scope) -> Result<String, SimError> {
        self.shared().with(|st, _| {
            if st.scope_exists(scope) {
                Ok(st.registration_token(scope))
            } else {
                Err(SimError::Invalid(format!("scope {scope} does not exist")))
            }
        })
    }

    /// Replaces the registration token of `scope`; older ones stop working.
    ///
    /// # Errors
    /// When the organisation or repository does not exist.
    pub fn reset_registration_token(&self, scope: &Scope) -> Result<String, SimError> {
        self.shared().with(|st, _| {
            if st.scope_exists(scope) {
                Ok(st.reset_registration_token(scope))
            } else {
                Err(SimError::Invalid(format!("scope {scope} does not exist")))
            }
        })
    }

    /// Replaces the fault knobs (and restarts their counters; an `order_seed` reseeds the
    /// orders Gitea leaves to the database).
    pub fn set_faults(&self, faults: Faults) {
        self.shared().with(|st, _| st.set_faults(faults));
    }

    /// The current fault knobs.
    #[must_use]
    pub fn faults(&self) -> Faults {
        self.shared().with(|st, _| st.faults.clone())
    }

    /// Sets or removes the webhook target.
    pub fn set_webhook(&self, target: Option<WebhookTarget>) {
        self.shared().with(|st, _| st.webhook = target);
    }

    /// Every webhook attempted so far, oldest first.
    #[must_use]
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared().deliveries.lock().clone()
    }

    /// Waits until every queued webhook has been sent, dropped or has failed.
    pub async fn flush_webhooks(&self) {
        loop {
            let idle = self.shared().hooks_idle.notified();
            if self.shared().pending_hooks.load(Ordering::SeqCst) == 0 {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), idle).await;
        }
    }

    /// Creates an empty repository (and so its owner as an organisation).
    ///
    /// # Errors
    /// When the name is not `owner/name`.
    pub fn add_repo(&self, full_name: &str) -> Result<(), SimError> {
        self.shared()
            .with(|st, now| st.ensure_repo(full_name, now).map(|_| ()))
    }

    /// Pushes commits to a branch, sends the `push` webhook and enqueues the spec's jobs.
    ///
    /// # Errors
    /// Invalid repository or branch, no commits, a change that cannot apply.
    pub fn push(&self, spec: PushSpec) -> Result<PushResult, SimError> {
        self.shared().with(|st, now| st.push(&spec, now))
    }

    /// Creates tag `tag` at `target` (branch or commit) and sends its `push` webhook.
    ///
    /// # Errors
    /// Unknown repository or target, existing tag.
    pub fn push_tag(&self, repo: &str, tag: &str, target: &str) -> Result<PushResult, SimError> {
        self.shared()
            .with(|st, now| st.push_tag(repo, tag, target, now))
    }

    /// Stops serving, stops agents started through the control API, and waits (at most 3 s)
    /// for the server to finish. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        for a in self.shared().agents.lock().iter() {
            a.handle.stop();
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.tasks.lock());
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(3), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}
