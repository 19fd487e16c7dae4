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

use crate::cache::CacheService;
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
        if let Some(receiver) = connected.notices {
            tracing::info!("receiving EC2's Spot interruption warnings and rebalance recommendations");
            // Only records into the loop's book; stops with the process.
            tokio::spawn(receiver.run(std::future::pending()));
        }
        let forge: Arc<dyn Forge> = connected.forge;
        serve(connected.reconciler, Some(forge), secret, &spool_dir, listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The shortest webhook secret `serve` accepts, in characters.
pub const MIN_WEBHOOK_SECRET_LEN: usize = 16;

/// Refuses a webhook secret shorter than [`MIN_WEBHOOK_SECRET_LEN`]: a short one can be
/// guessed, and with it anyone can create runs. The error never shows the secret.
///
/// # Errors
/// When the secret is too short.
pub fn check_webhook_secret(secret: &model::secret::Secret) -> anyhow::Result<()> {
    anyhow::ensure!(
        secret.expose().chars().count() >= MIN_WEBHOOK_SECRET_LEN,
        "the webhook secret is too short: use a random secret of at least \
         {MIN_WEBHOOK_SECRET_LEN} characters, in Gitea's webhook and in the variable \
         gitea.webhook_secret_env names"
    );
    Ok(())
}

/// Everything `serve` runs, on an already bound listener, until `shutdown` resolves: the
/// webhook receiver, the spool replayer, the loop and the health and metrics endpoints.
/// `/metrics` is served on `listener`, or only on `server.metrics_listen` when that is set.
///
/// # Errors
/// When the webhook secret is too short, the spool cannot be opened, the webhook state is
/// invalid or `server.metrics_listen` cannot be bound.
pub async fn serve(
    reconciler: Reconciler,
    forge: Option<Arc<dyn Forge>>,
    secret: model::secret::Secret,
    spool_dir: &str,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_webhook_secret(&secret)?;
    let metrics_listener = match &reconciler.config.server.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} (server.metrics_listen)"))?,
        ),
        None => None,
    };
    let cache = cache_service(&reconciler).await?;
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
    .with_attempt_counting(counting)
    .with_clock(reconciler.clock.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(true));
    let (public, private) = http_routers(
        reconciler.metrics.clone(),
        ready.clone(),
        metrics_listener.is_some(),
    );
    let app = webhook::router(state.clone()).merge(public);

    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let limits = crate::http::HttpLimits::of(&reconciler.config.server);
    let server = crate::http::serve(listener, app, limits, stopped(stop_rx.clone()));
    let metrics_server = {
        let rx = stop_rx.clone();
        async move {
            match (metrics_listener, private) {
                (Some(l), Some(router)) => {
                    if let Ok(address) = l.local_addr() {
                        tracing::info!(%address, "serving metrics at /metrics");
                    }
                    crate::http::serve(l, router, limits, stopped(rx)).await
                }
                _ => Ok(()),
            }
        }
    };
    let cache_served = {
        let rx = stop_rx.clone();
        async move {
            match cache {
                Some((listener, service, retention)) => {
                    if let Ok(address) = listener.local_addr() {
                        tracing::info!(%address, "serving the actions cache");
                    }
                    let sweeping = sweep_loop(service.clone(), retention, stopped(rx.clone()));
                    let app = crate::cache::router(service);
                    let (served, ()) = tokio::join!(
                        crate::http::serve_streaming(listener, app, limits, stopped(rx)),
                        sweeping
                    );
                    served
                }
                None => Ok(()),
            }
        }
    };
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
    let (served, metrics_served, cache_result, (), (), ()) = tokio::join!(
        server,
        metrics_server,
        cache_served,
        replayer,
        looping,
        signal
    );
    served.context("the HTTP server failed")?;
    cache_result.context("the cache server failed")?;
    metrics_served.context("the metrics server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The cache service when `server.cache_listen` and `cache:` are set: its bound listener,
/// the service over S3 and the run table, and its retention.
///
/// # Errors
/// When the listener cannot be bound.
async fn cache_service(
    reconciler: &Reconciler,
) -> anyhow::Result<Option<(TcpListener, CacheService, model::cache::Retention)>> {
    let config = &reconciler.config;
    let (Some(address), Some(cache)) = (&config.server.cache_listen, &config.cache) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (server.cache_listen)"))?;
    let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
    let access = crate::cache::access::StoreAccess::new(
        reconciler.store.clone(),
        &config.cluster_id,
        reconciler.clock.clone(),
    );
    let service = CacheService::new(
        crate::cache::blobs::Blobs::from_conf(&conf, &cache.bucket),
        Arc::new(access),
        crate::cache::Settings::of(cache),
        reconciler.metrics.clone(),
        reconciler.clock.clone(),
    );
    Ok(Some((
        listener,
        service,
        crate::cache::sweep::retention(cache),
    )))
}

/// Sweeps the cache every [`crate::cache::sweep::SWEEP_EVERY`] until `stop` resolves.
async fn sweep_loop(
    service: CacheService,
    retention: model::cache::Retention,
    stop: impl Future<Output = ()>,
) {
    let sweeping = async {
        loop {
            tokio::time::sleep(crate::cache::sweep::SWEEP_EVERY).await;
            let now = service.clock_now();
            match crate::cache::sweep::sweep(&service, &retention, now).await {
                Ok(report) => tracing::info!(
                    removed = report.removed.len(),
                    repositories = report.stats.repos.len(),
                    "cache swept"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cache sweep failed; nothing removed this time")
                }
            }
        }
    };
    tokio::select! {
        () = sweeping => {}
        () = stop => {}
    }
}

/// The health endpoints with `/metrics` beside them, or, when `metrics_apart`, the health
/// endpoints alone and a second router holding only `/metrics` (for `server.metrics_listen`).
fn http_routers(
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    metrics_apart: bool,
) -> (Router, Option<Router>) {
    let health = health_router(ready);
    if metrics_apart {
        (health, Some(metrics_router(metrics)))
    } else {
        (health.merge(metrics_router(metrics)), None)
    }
}

fn health_router(ready: Arc<AtomicBool>) -> Router {
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
}

fn metrics_router(metrics: Metrics) -> Router {
    Router::new().route(
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
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use model::secret::Secret;

    #[test]
    fn a_webhook_secret_under_16_characters_is_refused_without_showing_it() {
        for short in ["Q9", "Q9zK7wV2mB4nLpX"] {
            let err = check_webhook_secret(&Secret::new(short))
                .expect_err(short)
                .to_string();
            assert!(err.contains("at least 16 characters"), "{err}");
            assert!(!err.contains(short), "the secret is shown: {err}");
        }
        check_webhook_secret(&Secret::new("sixteen-chars-xy")).expect("16 is enough");
    }

    async fn status_of(router: Router, path: &str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let status = reqwest::get(format!("http://{address}{path}"))
            .await
            .expect("answered")
            .status()
            .as_u16();
        server.abort();
        status
    }

    #[tokio::test]
    async fn metrics_leave_the_public_port_when_a_metrics_address_is_set() {
        let ready = Arc::new(AtomicBool::new(true));
        let (public, private) = http_routers(Metrics::new(), ready.clone(), false);
        assert!(private.is_none());
        assert_eq!(status_of(public, "/metrics").await, 200);

        let (public, private) = http_routers(Metrics::new(), ready, true);
        let private = private.expect("a metrics router");
        assert_eq!(status_of(public.clone(), "/metrics").await, 404);
        assert_eq!(status_of(public, "/healthz").await, 200);
        assert_eq!(status_of(private.clone(), "/metrics").await, 200);
        assert_eq!(status_of(private, "/hooks/gitea").await, 404);
    }
}
