//! The HTTP limits of `serve` (issue 14, part 1) on 127.0.0.1: idle and slow connections are
//! closed, connections over the cap are refused, and the reconcile loop keeps passing while
//! slow connections are held open. Every wait is on a condition with a generous deadline.

use std::sync::Arc;
use std::time::Duration;

use controller::clock::SystemClock;
use controller::fleet::fake::{FakeFleet, FleetOp};
use controller::forge::FakeForge;
use controller::metrics::Metrics;
use controller::reconcile::{Limits, LoopFeatures, Reconciler};
use controller::store::fake::FakeStore;
use controller::webhook::{self, sign};
use model::config::{Config, ConfigError};
use model::secret::Secret;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const SECRET: &str = "webhook-secret-for-tests";
/// How long any condition may take to come true before a test fails.
const DEADLINE: Duration = Duration::from_secs(30);

struct Server {
    addr: std::net::SocketAddr,
    fleet: Arc<FakeFleet>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    _spool: tempfile::TempDir,
}

struct Settings {
    max_connections: u32,
    header_timeout: Duration,
    body_timeout: Duration,
}

/// `serve` with the fakes behind it and a 100 ms resync, so passes come often.
async fn start(s: Settings) -> Server {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config.yaml"
    ))
    .expect("example config");
    let mut config = Config::parse(&text).expect("valid");
    config.cluster_id = "test".into();
    config.timeouts.resync = Duration::from_millis(100);
    config.server.max_connections = s.max_connections;
    config.server.header_timeout = s.header_timeout;
    config.server.body_timeout = s.body_timeout;
    let fleet = Arc::new(FakeFleet::new(&config.cluster_id, model::testing::T0));
    let reconciler = Reconciler {
        store: Arc::new(FakeStore::new()),
        fleet: fleet.clone(),
        forge: Arc::new(FakeForge::new()),
        config,
        features: LoopFeatures {
            queued_jobs: true,
            disable_runners: true,
        },
        clock: Arc::new(SystemClock),
        limits: Limits {
            call_timeout: Duration::from_secs(5),
            ..Limits::default()
        },
        metrics: Metrics::new(),
        holder: "http-limits-test".into(),
        notices: controller::notices::NoticeBook::default(),
        disabled: controller::reconcile::DisabledBook::default(),
    };
    let spool = tempfile::tempdir().expect("tempdir");
    let spool_dir = spool.path().join("spool").display().to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        controller::cmd::serve::serve(
            reconciler,
            None,
            Secret::new(SECRET),
            &spool_dir,
            listener,
            shutdown,
        )
        .await
    });
    Server {
        addr,
        fleet,
        stop: Some(stop),
        task,
        _spool: spool,
    }
}

impl Server {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.expect("connects")
    }

    fn passes(&self) -> usize {
        self.fleet.count(FleetOp::List)
    }

    /// Sends a signed `workflow_job` event on a new connection until one is answered 2xx.
    async fn responds_to_a_signed_webhook(&self) -> bool {
        let body = serde_json::json!({
            "action": "queued",
            "workflow_job": {
                "id": 41, "run_id": 300, "run_attempt": 1, "name": "build",
                "labels": ["go", "linux"], "status": "queued",
            },
            "repository": { "full_name": "acme/web" },
        })
        .to_string();
        let url = format!("http://{}{}", self.addr, webhook::HOOK_PATH);
        let until = tokio::time::Instant::now() + DEADLINE;
        while tokio::time::Instant::now() < until {
            let sent = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .header("X-Gitea-Event", "workflow_job")
                .header("X-Gitea-Delivery", "d-1")
                .header(
                    "X-Gitea-Signature",
                    sign(&Secret::new(SECRET), body.as_bytes()),
                )
                .body(body.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Stops `serve` and checks it returns.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let done = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task");
        done.expect("serve ends cleanly");
    }
}

/// Reads until the server closes the connection (EOF or reset); what was read, or `None` if
/// it was still open at the deadline.
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `bytes` one at a time, `every` apart, until they are all sent or a write fails.
fn trickle(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        for b in bytes {
            if w.write_all(&[b]).await.is_err() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    })
}

fn short() -> Settings {
    Settings {
        max_connections: 64,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(2),
    }
}

fn headers_for_body(length: usize) -> String {
    format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-Gitea-Event: workflow_job\r\nX-Gitea-Signature: {}\r\nContent-Length: {length}\r\n\r\n",
        webhook::HOOK_PATH,
        "0".repeat(64)
    )
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let server = start(short()).await;
    let mut idle = server.connect().await;
    let read = read_until_closed(&mut idle).await;
    assert!(
        read.is_some(),
        "an idle connection is still open after {DEADLINE:?}"
    );
    // A kept-alive connection that goes idle after a request is closed too.
    let mut kept = server.connect().await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let read = read_until_closed(&mut kept)
        .await
        .expect("closed when idle after a response");
    assert!(
        String::from_utf8_lossy(&read).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&read)
    );
    server.stop().await;
}

#[tokio::test]
async fn headers_sent_slower_than_the_header_timeout_close_the_connection() {
    let server = start(short()).await;
    let (mut r, w) = server.connect().await.into_split();
    // 1 byte every 200 ms: the 1 s header timeout passes long before the headers end.
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: {}\r\n\r\n",
        webhook::HOOK_PATH,
        "a".repeat(400)
    );
    let writer = trickle(w, head.into_bytes(), Duration::from_millis(200));
    let closed = read_until_closed(&mut r).await;
    assert!(
        closed.is_some(),
        "slow headers still open after {DEADLINE:?}"
    );
    assert!(
        !writer.is_finished(),
        "closed only after the whole header was sent"
    );
    writer.abort();
    server.stop().await;
}

#[tokio::test]
async fn a_body_sent_slower_than_the_body_timeout_is_refused_and_closed() {
    let server = start(short()).await;
    let mut conn = server.connect().await;
    conn.write_all(headers_for_body(1000).as_bytes())
        .await
        .expect("writes headers");
    let (mut r, w) = conn.into_split();
    // 1 byte every 100 ms of a 1000-byte body: 100 s, against a 2 s body timeout.
    let writer = trickle(w, vec![b'x'; 1000], Duration::from_millis(100));
    let got = read_until_closed(&mut r)
        .await
        .expect("a slow body is still being read after the deadline");
    let answer = String::from_utf8_lossy(&got);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        !writer.is_finished(),
        "closed only after the whole body was sent"
    );
    writer.abort();
    server.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_the_server_answers_afterwards() {
    let cap = 4;
    let server = start(Settings {
        max_connections: cap,
        header_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..cap {
        held.push(server.connect().await);
    }
    let mut extra = Vec::new();
    for _ in 0..3 {
        let mut c = server.connect().await;
        assert!(
            read_until_closed(&mut c).await.is_some(),
            "a connection over the cap of {cap} is still open"
        );
        extra.push(c);
    }
    // The held connections were not the ones closed: each still answers a request.
    for c in &mut held[..1] {
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(DEADLINE, c.read(&mut buf))
            .await
            .expect("answers")
            .expect("reads");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    drop(held);
    assert!(
        server.responds_to_a_signed_webhook().await,
        "no 2xx for a signed webhook after the held connections closed"
    );
    server.stop().await;
}

#[tokio::test]
async fn passes_continue_while_a_hundred_slow_connections_are_held_and_then_closed() {
    let server = start(Settings {
        max_connections: 256,
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(5),
    })
    .await;
    // 100 connections, each with 64 KiB of a declared 1,000,000-byte body, then 1 byte/500 ms.
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..100 {
        let mut c = server.connect().await;
        c.write_all(headers_for_body(1_000_000).as_bytes())
            .await
            .expect("writes headers");
        c.write_all(&vec![b'x'; 64 * 1024])
            .await
            .expect("writes body");
        let (r, w) = c.into_split();
        readers.push(r);
        writers.push(trickle(w, vec![b'x'; 1000], Duration::from_millis(500)));
    }
    let before = server.passes();
    let until = tokio::time::Instant::now() + DEADLINE;
    while server.passes() < before + 5 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.passes() >= before + 5,
        "passes stalled under load: {} before, {} after {DEADLINE:?}",
        before,
        server.passes()
    );
    // And the server lets go of every slow connection.
    for r in &mut readers {
        let closed = read_until_closed(r).await;
        assert!(closed.is_some(), "a slow connection is still open");
    }
    for w in writers {
        w.abort();
    }
    assert!(server.responds_to_a_signed_webhook().await);
    server.stop().await;
}

#[test]
fn server_limits_have_defaults_and_are_validated() {
    let c = Config::parse(model::config::EXAMPLE).expect("valid");
    let d = model::config::ServerConfig::default();
    assert_eq!(d.max_connections, 256);
    assert_eq!(d.header_timeout, Duration::from_secs(10));
    assert_eq!(d.body_timeout, Duration::from_secs(30));
    assert_eq!(
        (
            c.server.max_connections,
            c.server.header_timeout,
            c.server.body_timeout
        ),
        (d.max_connections, d.header_timeout, d.body_timeout),
        "the example shows the defaults"
    );
    let text = model::config::EXAMPLE
        .replace("max_connections: 256", "max_connections: 0")
        .replace("header_timeout: 10s", "header_timeout: 0s")
        .replace("body_timeout: 30s", "body_timeout: 2h");
    let ConfigError::Invalid(problems) = Config::parse(&text).expect_err("invalid") else {
        panic!("not a value error")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    for f in [
        "server.max_connections",
        "server.header_timeout",
        "server.body_timeout",
    ] {
        assert!(fields.contains(&f), "{f} not named in {fields:?}");
    }
}

/// The process's resident memory (Linux `VmRSS`), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn memory_under_many_large_uploads_stays_within_the_cap_and_comes_back() {
    // 200 unauthenticated connections each declare a 1,000,000-byte body and send 900,000
    // bytes of it, then hold on. With 16 connections allowed, request memory is bounded by
    // 16 x 1 MiB, not 200 x 1 MiB, and it is freed once they go.
    let server = start(Settings {
        max_connections: 16,
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(20),
    })
    .await;
    assert!(server.responds_to_a_signed_webhook().await);
    let base = resident_bytes();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(base));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(resident_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // One body for every upload, so the client's own memory stays out of the figure.
    let body: Arc<Vec<u8>> = Arc::new(vec![b'x'; 900_000]);
    let mut uploads = Vec::new();
    for _ in 0..200 {
        let mut stream = server.connect().await;
        let body = body.clone();
        uploads.push(tokio::spawn(async move {
            let head = headers_for_body(1_000_000);
            let sent = stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(&body).await.is_ok();
            sent.then_some(stream)
        }));
    }
    let mut held = Vec::new();
    for upload in uploads {
        if let Some(stream) = upload.await.expect("upload task") {
            held.push(stream);
        }
    }
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    sampler.await.expect("sampler");
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(base);
    assert!(
        grew <= 16 * MIB + 64 * MIB,
        "resident memory grew by {} MiB under 200 uploads with 16 allowed",
        grew / MIB
    );

    drop(held);
    let until = tokio::time::Instant::now() + DEADLINE;
    let mut now = resident_bytes();
    while now > base + 32 * MIB && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = resident_bytes();
    }
    assert!(
        now <= base + 32 * MIB,
        "resident memory stayed {} MiB above where it started",
        now.saturating_sub(base) / MIB
    );
    assert!(server.responds_to_a_signed_webhook().await);
    server.stop().await;
}
