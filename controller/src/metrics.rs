//! Prometheus metrics, served at `/metrics`.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `tinqs_runs` | gauge | `phase`, `pool` |
//! | `tinqs_instances` | gauge | `state`, `lifecycle` |
//! | `tinqs_actions_total` | counter | `kind`, `reason`, `result` |
//! | `tinqs_queued_to_started_seconds` | histogram | — |
//! | `tinqs_pass_duration_seconds` | histogram | — |
//! | `tinqs_observation_errors_total` | counter | `source` |
//! | `tinqs_unschedulable_runs` | gauge | — |
//! | `tinqs_lease_held` | gauge | — |

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The controller's metrics; cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    runs: Family<Labels, Gauge>,
    instances: Family<Labels, Gauge>,
    actions: Family<Labels, Counter>,
    queued_to_started: Histogram,
    pass_duration: Histogram,
    observation_errors: Family<Labels, Counter>,
    unschedulable: Gauge,
    lease_held: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Metrics {
    /// A fresh registry with every metric registered.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tinqs");
        let runs = Family::<Labels, Gauge>::default();
        let instances = Family::<Labels, Gauge>::default();
        let actions = Family::<Labels, Counter>::default();
        let queued_to_started = Histogram::new([
            5.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
        ]);
        let pass_duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let observation_errors = Family::<Labels, Counter>::default();
        let unschedulable = Gauge::default();
        let lease_held = Gauge::default();
        registry.register(
            "runs",
            "Active desired runs by phase and pool",
            runs.clone(),
        );
        registry.register(
            "instances",
            "Our EC2 instances by state and lifecycle",
            instances.clone(),
        );
        registry.register(
            "actions",
            "Actions applied, by kind, reason and result",
            actions.clone(),
        );
        registry.register(
            "queued_to_started_seconds",
            "Seconds from a job being queued to a runner starting it",
            queued_to_started.clone(),
        );
        registry.register(
            "pass_duration_seconds",
            "Duration of one reconcile pass",
            pass_duration.clone(),
        );
        registry.register(
            "observation_errors",
            "Failed observations by source (a pass with any plans nothing destructive)",
            observation_errors.clone(),
        );
        registry.register(
            "unschedulable_runs",
            "Runs whose labels no pool serves",
            unschedulable.clone(),
        );
        registry.register(
            "lease_held",
            "1 while this controller holds the single-writer lease",
            lease_held.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            runs,
            instances,
            actions,
            queued_to_started,
            pass_duration,
            observation_errors,
            unschedulable,
            lease_held,
        }))
    }

    /// Counts an applied action.
    pub fn action(&self, action: &model::Action, ok: bool) {
        let l = labels(&[
            ("kind", action.kind()),
            ("reason", action.reason().code()),
            ("result", if ok { "ok" } else { "error" }),
        ]);
        self.0.actions.get_or_create(&l).inc();
    }

    /// Counts a failed observation.
    pub fn observation_error(&self, source: &str) {
        self.0
            .observation_errors
            .get_or_create(&labels(&[("source", source)]))
            .inc();
    }

    /// Records a pass's duration.
    pub fn pass(&self, seconds: f64) {
        self.0.pass_duration.observe(seconds);
    }

    /// Records the wait from queued to started of one job.
    pub fn queued_to_started(&self, seconds: f64) {
        self.0.queued_to_started.observe(seconds);
    }

    /// Sets whether we hold the lease.
    pub fn lease_held(&self, held: bool) {
        self.0.lease_held.set(i64::from(held));
    }

    /// Replaces the gauges of runs and instances with what one pass observed.
    pub fn observed(
        &self,
        obs: &crate::reconcile::Observation,
        plan: &model::Plan,
        policy: &model::Policy,
    ) {
        self.0.runs.clear();
        for run in &obs.desired.runs {
            let pool = policy.pool_for(&run.spec).map(|p| p.name.clone());
            let pool = pool.unwrap_or_else(|| "none".to_owned());
            self.0
                .runs
                .get_or_create(&labels(&[
                    ("phase", run.status.phase.as_str()),
                    ("pool", &pool),
                ]))
                .inc();
        }
        self.0.instances.clear();
        for i in obs.observed.instances.items() {
            let lifecycle = match i.lifecycle {
                model::Lifecycle::Spot => "spot",
                model::Lifecycle::OnDemand => "on-demand",
            };
            self.0
                .instances
                .get_or_create(&labels(&[
                    ("state", i.state.as_str()),
                    ("lifecycle", lifecycle),
                ]))
                .inc();
        }
        self.0
            .unschedulable
            .set(i64::try_from(plan.unschedulable.len()).unwrap_or(i64::MAX));
    }

    /// The text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.0.registry).is_err() {
            out.clear();
        }
        out
    }
}
