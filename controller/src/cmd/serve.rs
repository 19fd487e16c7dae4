//! `tinqs-ci serve --config FILE`: the webhook receiver, the reconcile loop, `/metrics`,
//! `/healthz` and `/readyz`, in one process. SIGTERM (or Ctrl-C) finishes the current pass,
//! releases the lease and stops.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::forge::Forge;
use crate::metrics::Metrics;
use crate::reconcile::Reconciler;
use crate::spool::Spool;
use crate::webhook::{self, WebhookState};

/// `serve --config FILE`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Write logs as JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// Listen here instead of `server.listen`.
    #[arg(long)]
    pub listen: Option<String>,
}

/// Starts everything and runs until SIGTERM or Ctrl-C.
///
/// # Errors
/// When the configuration is invalid, a secret is missing, Gitea is unreachable or too old,
/// or the listener cannot bind.
pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = crate::wiring::load_config(&args.config)?;
    crate::telemetry::init(args.log_json);
    let rt = crate::wiring::runtime()?;
    rt.block_on(async {
        let secret = crate::wiring::secret_from_env(&config.gitea.webhook_secret_env, "the webhook secret")?;
        let listen = args.listen.clone().unwrap_or_else(|| config.server.listen.clone());
        let spool_dir = config.server.spool_dir.clone();
        let connected = crate::wiring::connect(config).await?;
        tracing::info!(version = %format!("{}.{}.{}", connected.version.major, connected.version.minor, connected.version.patch), "connected to Gitea");
        let listener = TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        tracing::info!(address = %listen, "serving webhooks at /hooks/gitea, metrics at /metrics");
        let forge: Arc<dyn Forge> = connected.forge;
        serve(connected.reconciler, Some(forge), secret, &spool_dir, listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Everything `serve` runs, on an already bound listener, until `shutdown` resolves: the
/// webhook receiver, the spool replayer, the loop and the health and metrics endpoints.
///
/// # Errors
/// When the spool cannot be opened or the webhook state is invalid.
pub async fn serve(
    reconciler: Reconciler,
    forge: Option<Arc<dyn Forge>>,
    secret: model::secret::Secret,
    spool_dir: &str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let wake = Arc::new(Notify::new());
    let spool = Arc::new(
        Spool::open(spool_dir).with_context(|| format!("cannot open the spool in {spool_dir}"))?,
    );
    // How Gitea counts run_attempt decides which run a `workflow_job` event belongs to.
    let counting = match &forge {
        Some(f) => match f.version().await {
            Ok(v) => model::desired::AttemptCounting::of_gitea(v.major, v.minor),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read Gitea's version; counting job attempts as 1.24 – 1.26 do");
                model::desired::AttemptCounting::default()
            }
        },
        None => model::desired::AttemptCounting::default(),
    };
    let state = WebhookState::new(
        reconciler.store.clone(),
        secret,
        reconciler.config.gitea.demand,
        wake.clone(),
        spool,
        forge,
    )
    .context("cannot set up the webhook receiver")?
    .with_metrics(reconciler.metrics.clone())
    .with_attempt_counting(counting);
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(true));
    let app = webhook::router(state.clone())
        .merge(health_router(reconciler.metrics.clone(), ready.clone()));

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let limits = crate::http::HttpLimits::of(&reconciler.config.server);
    let server = crate::http::serve(listener, app, limits, stopped(stop_rx.clone()));
    let replayer =
        webhook::run_spool_replayer(state, Duration::from_secs(10), stopped(stop_rx.clone()));
    let reconciler = Arc::new(reconciler);
    let looping = {
        let r = reconciler.clone();
        let rx = stop_rx.clone();
        async move { r.run(wake, stopped(rx)).await }
    };
    let signal = async move {
        shutdown.await;
        tracing::info!("stopping: finishing the current pass and releasing the lease");
        ready.store(false, Ordering::SeqCst);
        let _ = stop_tx.send(true);
    };
    let (served, (), (), ()) = tokio::join!(server, replayer, looping, signal);
    served.context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

fn health_router(metrics: Metrics, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|State(ready): State<Arc<AtomicBool>>| async move {
                if ready.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ready\n").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response()
                }
            }),
        )
        .with_state(ready)
        .merge(Router::new().route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        m.render(),
                    )
                }
            }),
        ))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
