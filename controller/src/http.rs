//! The HTTP server under the webhook receiver, `/metrics` and the health endpoints, with the
//! limits of `server:` in the configuration:
//!
//! - at most `max_connections` connections open at once; one more is closed as soon as it is
//!   accepted (a WARN says so, at most once a minute, with the count);
//! - `header_timeout` to send a request's headers, counted from when the connection opens or
//!   the previous response was sent, so an idle connection is closed after it too;
//! - `body_timeout` to send the whole body once the headers are in: a slower request is
//!   answered 408 and its connection closed; a body over the limit is answered 413.
//!
//! Each request's body is read whole (at most [`crate::webhook::MAX_BODY_BYTES`]) before a
//! handler runs, so the bodies held at once are bounded by `max_connections` times that limit.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Most bytes read ahead from one connection (hyper's default is about 400 KiB); a request's
/// headers must fit in it.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How often at most a refused connection is logged.
const REFUSED_WARN_EVERY: Duration = Duration::from_secs(60);

/// The limits one server applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time to send a request's headers (and the longest a connection may sit idle).
    pub header_timeout: Duration,
    /// Time to send a request's body once its headers are in.
    pub body_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl HttpLimits {
    /// The limits `server:` configures, with the webhook body limit.
    #[must_use]
    pub fn of(server: &model::config::ServerConfig) -> Self {
        HttpLimits {
            max_connections: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
            header_timeout: server.header_timeout,
            body_timeout: server.body_timeout,
            max_body_bytes: crate::webhook::MAX_BODY_BYTES,
        }
    }
}

/// Serves `app` on `listener` (HTTP/1.1) within `limits` until `shutdown` resolves, then stops
/// accepting, lets each open connection finish its request and returns when all are closed.
///
/// # Errors
/// None today; accept failures (such as too many open files) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(limits, read_body));
    serve_streaming(listener, app, limits, shutdown).await
}

/// The same connection limits and shutdown as [`serve`], but request bodies reach the
/// handlers as they arrive (no whole-body read, no body timeout or size limit here): for the
/// cache service, whose handlers stream chunk bodies to S3 under limits of their own.
/// `limits.max_body_bytes` and `limits.body_timeout` are not used.
///
/// # Errors
/// None today; accept failures are logged and retried.
pub async fn serve_streaming(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER_BYTES)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut refused = Refused::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection; trying again in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused.note(limits.max_connections);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Each open connection holds a slot until it closes.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Connections closed at the cap since the last WARN.
#[derive(Default)]
struct Refused {
    since_warn: u64,
    /// When the last WARN went out: it only spaces out log lines, decides nothing, so it
    /// reads the monotonic clock rather than the controller's [`crate::clock::Clock`].
    warned: Option<Instant>,
}

impl Refused {
    fn note(&mut self, cap: usize) {
        self.since_warn = self.since_warn.saturating_add(1);
        if self
            .warned
            .is_some_and(|at| at.elapsed() < REFUSED_WARN_EVERY)
        {
            return;
        }
        tracing::warn!(
            refused = self.since_warn,
            max_connections = cap,
            "HTTP connections refused: server.max_connections are open (at most one such warning per {})",
            humantime::format_duration(REFUSED_WARN_EVERY)
        );
        self.since_warn = 0;
        self.warned = Some(Instant::now());
    }
}

/// Reads the request's body whole within the body timeout and the size limit, then hands the
/// request on.
async fn read_body(State(limits): State<HttpLimits>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return too_large(limits.max_body_bytes);
    }
    let expected = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(limits.max_body_bytes);
    let read = collect(body, limits.max_body_bytes, expected);
    match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(refusal)) => refusal,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            format!(
                "request body not received within {}\n",
                humantime::format_duration(limits.body_timeout)
            ),
        )
            .into_response(),
    }
}

async fn collect(body: Body, limit: usize, expected: usize) -> Result<Bytes, Response> {
    let mut stream = body.into_data_stream();
    // Memory follows what arrives (a declared length alone reserves at most 64 KiB), and the
    // buffer never grows past the limit.
    let mut buf = Vec::with_capacity(expected.min(64 * 1024));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            (StatusCode::BAD_REQUEST, "cannot read the request body\n").into_response()
        })?;
        let needed = buf.len().saturating_add(chunk.len());
        if needed > limit {
            return Err(too_large(limit));
        }
        if needed > buf.capacity() {
            let grown = needed.max(buf.capacity().saturating_mul(2)).min(limit);
            buf.reserve_exact(grown - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONNECTION, "close")],
        format!("request body over {limit} bytes\n"),
    )
        .into_response()
}
