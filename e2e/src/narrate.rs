//! The story as it happens: one time-ordered log of what Gitea, EC2 and the controller did.
//!
//! Three sources write to an [`Events`] log: the simulator watcher (job transitions), the
//! booter (machines booting, agents ending, instances powering off) and the controller, whose
//! applied actions and warnings are captured from its `tracing` events by [`CaptureLayer`].
//! With echo on, every entry is also printed the moment it is written.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Who did something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The Gitea simulator (jobs, runners).
    Gitea,
    /// EC2 as the harness plays it (boots, power-offs, interruptions).
    Ec2,
    /// The controller (applied actions, warnings).
    Controller,
    /// The scripted story itself.
    Story,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Gitea => "gitea",
            Source::Ec2 => "ec2",
            Source::Controller => "controller",
            Source::Story => "story",
        })
    }
}

/// One entry of the log.
#[derive(Debug, Clone)]
pub struct Event {
    /// Time since the log was created.
    pub at: Duration,
    /// Who.
    pub source: Source,
    /// A short kind: the controller's action kind (`launch`, `terminate`, `update-status`…),
    /// `warn`, `info`, or the harness's own (`job`, `boot`, `agent`, `power-off`…).
    pub kind: String,
    /// What happened, as one line.
    pub text: String,
    /// For a controller action: whether it failed (its error is in `text`).
    pub failed: bool,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>6.1}s  {:<10} {}",
            self.at.as_secs_f64(),
            self.source,
            self.text
        )
    }
}

struct Inner {
    started: Instant,
    list: Mutex<Vec<Event>>,
    echo: bool,
}

/// The shared, append-only log; cheap to clone.
#[derive(Clone)]
pub struct Events(Arc<Inner>);

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("len", &self.all().len())
            .finish()
    }
}

impl Events {
    /// An empty log; with `echo`, every entry is printed to stdout as it is written.
    #[must_use]
    pub fn new(echo: bool) -> Self {
        Events(Arc::new(Inner {
            started: Instant::now(),
            list: Mutex::new(Vec::new()),
            echo,
        }))
    }

    /// Time since the log was created.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Appends an entry.
    pub fn push(&self, source: Source, kind: &str, text: impl Into<String>) {
        self.push_event(source, kind, text.into(), false);
    }

    fn push_event(&self, source: Source, kind: &str, text: String, failed: bool) {
        let event = Event {
            at: self.elapsed(),
            source,
            kind: kind.to_owned(),
            text,
            failed,
        };
        if self.0.echo && worth_echoing(&event) {
            println!("{event}");
        }
        self.0.list.lock().push(event);
    }

    /// Every entry so far, oldest first.
    #[must_use]
    pub fn all(&self) -> Vec<Event> {
        self.0.list.lock().clone()
    }

    /// The controller's applied actions of `kind` that succeeded, as their plan lines
    /// (`terminate i-0abc (run job-1001-1) in pool go: never registered within 5s`).
    #[must_use]
    pub fn actions(&self, kind: &str) -> Vec<String> {
        self.all()
            .into_iter()
            .filter(|e| e.source == Source::Controller && e.kind == kind && !e.failed)
            .map(|e| e.text)
            .collect()
    }

    /// Why the controller terminated `instance`, from its applied `terminate` action: the
    /// text after the colon (`never registered within 5s`). `None` if it did not.
    #[must_use]
    pub fn termination_reason(&self, instance: &str) -> Option<String> {
        let head = format!("terminate {instance} ");
        let exact = format!("terminate {instance}:");
        self.actions("terminate")
            .into_iter()
            .find(|t| t.starts_with(&head) || t.starts_with(&exact))
            .and_then(|t| t.split_once(": ").map(|(_, why)| why.to_owned()))
    }

    /// The whole log, one entry a line, for a failure message.
    #[must_use]
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for e in self.all() {
            out.push_str(&e.to_string());
            if e.failed {
                out.push_str("  [failed]");
            }
            out.push('\n');
        }
        out
    }
}

/// The story shows actions, warnings and the harness's own entries; routine controller
/// chatter (each stored webhook) stays in the log but is not printed.
fn worth_echoing(e: &Event) -> bool {
    !(e.source == Source::Controller && e.kind == "info")
}

/// A `tracing` layer that writes the controller's events into an [`Events`] log: every
/// applied action (the executor logs each with a `kind` field and the plan line as its
/// message, and an `error` field when it failed), every warning, and the lease changes.
pub struct CaptureLayer {
    events: Events,
}

impl CaptureLayer {
    /// A layer writing into `events`.
    #[must_use]
    pub fn new(events: Events) -> Self {
        CaptureLayer { events }
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for CaptureLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("controller") || *meta.level() > Level::INFO {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut f = fields.0;
        let message = f.remove("message").unwrap_or_default();
        if let Some(kind) = f.remove("kind") {
            match f.remove("error") {
                Some(error) => self.events.push_event(
                    Source::Controller,
                    &kind,
                    format!("{message} ({error})"),
                    true,
                ),
                None => self
                    .events
                    .push_event(Source::Controller, &kind, message, false),
            }
            return;
        }
        let kind = if *meta.level() <= Level::WARN {
            "warn"
        } else if message.contains("lease") {
            "lease"
        } else {
            "info"
        };
        f.remove("run");
        let detail: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let text = if detail.is_empty() {
            message
        } else {
            format!("{message} ({})", detail.join(", "))
        };
        self.events
            .push_event(Source::Controller, kind, text, false);
    }
}

/// Routes the controller's `tracing` events on this thread into `events` until the guard is
/// dropped. For tests on a current-thread runtime, where every task of the test runs on the
/// test's own thread, so parallel tests never see each other's events.
#[must_use]
pub fn capture(events: &Events) -> tracing::subscriber::DefaultGuard {
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(CaptureLayer::new(events.clone()));
    tracing::subscriber::set_default(subscriber)
}
