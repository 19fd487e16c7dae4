//! Prometheus metrics, served at `/metrics`.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `tinqs_runs` | gauge | `phase`, `pool` |
//! | `tinqs_instances` | gauge | `state`, `lifecycle` |
//! | `tinqs_actions_total` | counter | `kind`, `reason`, `result`, `error` (failures only) |
//! | `tinqs_queued_to_started_seconds` | histogram | — |
//! | `tinqs_pass_duration_seconds` | histogram | — |
//! | `tinqs_observation_errors_total` | counter | `source` |
//! | `tinqs_unschedulable_runs` | gauge | — |
//! | `tinqs_lease_held` | gauge | — |
//! | `tinqs_spool_pending` | gauge | — |
//! | `tinqs_spool_dead_letter` | gauge | — |
//! | `tinqs_spool_set_aside_total` | counter | — |
//! | `tinqs_cache_lookups_total` | counter | `result` (`hit`, `miss`) |
//! | `tinqs_cache_bytes_total` | counter | `direction` (`up`, `down`) |
//! | `tinqs_cache_refused_total` | counter | `reason` |

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::quiet::{ChangeTracker, Changes};

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
    spool_pending: Gauge,
    spool_dead_letter: Gauge,
    spool_set_aside: Counter,
    cache_lookups: Family<Labels, Counter>,
    cache_bytes: Family<Labels, Counter>,
    cache_refused: Family<Labels, Counter>,
    /// The unschedulable runs as last logged (run id, labels): logged on change only.
    unschedulable_logged: Mutex<ChangeTracker<String, Vec<String>>>,
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
        let spool_pending = Gauge::default();
        let spool_dead_letter = Gauge::default();
        let spool_set_aside = Counter::default();
        let cache_lookups = Family::<Labels, Counter>::default();
        let cache_bytes = Family::<Labels, Counter>::default();
        let cache_refused = Family::<Labels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Actions cache lookups by result (hit, miss)",
            cache_lookups.clone(),
        );
        registry.register(
            "cache_bytes",
            "Actions cache bytes moved, by direction (up: uploaded, down: downloaded)",
            cache_bytes.clone(),
        );
        registry.register(
            "cache_refused",
            "Actions cache requests refused, by reason",
            cache_refused.clone(),
        );
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
        registry.register(
            "spool_pending",
            "Webhook events in the local spool waiting to be replayed",
            spool_pending.clone(),
        );
        registry.register(
            "spool_dead_letter",
            "Spooled events set aside in the spool's dead-letter folder",
            spool_dead_letter.clone(),
        );
        registry.register(
            "spool_set_aside",
            "Spooled events set aside because they can never be applied",
            spool_set_aside.clone(),
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
            spool_pending,
            spool_dead_letter,
            spool_set_aside,
            cache_lookups,
            cache_bytes,
            cache_refused,
            unschedulable_logged: Mutex::new(ChangeTracker::default()),
        }))
    }

    /// Counts an applied action; a failed one (`failure` is its error's kind,
    /// `reconcile::StepError::kind`) carries that kind in an `error` label.
    pub fn action(&self, action: &model::Action, failure: Option<&str>) {
        let mut pairs = vec![
            ("kind", action.kind()),
            ("reason", action.reason().code()),
            ("result", if failure.is_none() { "ok" } else { "error" }),
        ];
        if let Some(kind) = failure {
            pairs.push(("error", kind));
        }
        self.0.actions.get_or_create(&labels(&pairs)).inc();
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
        // Counted first, then one series set per label pair: a pass of 10,000 runs builds a
        // handful of label sets, not one per run.
        let mut runs: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for run in &obs.desired.runs {
            let pool = policy
                .pool_for(&run.spec)
                .map_or("none", |p| p.name.as_str());
            *runs.entry((run.status.phase.as_str(), pool)).or_default() += 1;
        }
        self.0.runs.clear();
        for ((phase, pool), n) in runs {
            self.0
                .runs
                .get_or_create(&labels(&[("phase", phase), ("pool", pool)]))
                .set(n);
        }
        let mut instances: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for i in obs.observed.instances.items() {
            let lifecycle = match i.lifecycle {
                model::Lifecycle::Spot => "spot",
                model::Lifecycle::OnDemand => "on-demand",
            };
            *instances.entry((i.state.as_str(), lifecycle)).or_default() += 1;
        }
        self.0.instances.clear();
        for ((state, lifecycle), n) in instances {
            self.0
                .instances
                .get_or_create(&labels(&[("state", state), ("lifecycle", lifecycle)]))
                .set(n);
        }
        self.0
            .unschedulable
            .set(i64::try_from(plan.unschedulable.len()).unwrap_or(i64::MAX));
    }

    /// Sets the spool's depth: events waiting and events in the dead-letter folder.
    pub fn spool(&self, pending: usize, dead_letter: usize) {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.0.spool_pending.set(n(pending));
        self.0.spool_dead_letter.set(n(dead_letter));
    }

    /// Counts a spooled event set aside.
    pub fn spool_set_aside(&self) {
        self.0.spool_set_aside.inc();
    }

    /// One cache lookup: a hit or a miss.
    pub fn cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.0
            .cache_lookups
            .get_or_create(&labels(&[("result", result)]))
            .inc();
    }

    /// Cache bytes moved: `up` (uploaded) or `down` (downloaded).
    pub fn cache_bytes(&self, direction: &str, n: u64) {
        self.0
            .cache_bytes
            .get_or_create(&labels(&[("direction", direction)]))
            .inc_by(n);
    }

    /// A cache request refused, with a short reason (`credential`, `no-job`, `scope`…).
    pub fn cache_refused(&self, reason: &str) {
        self.0
            .cache_refused
            .get_or_create(&labels(&[("reason", reason)]))
            .inc();
    }

    /// How the unschedulable runs differ from the last pass's (run id, labels), so the loop
    /// logs a run when it becomes unschedulable or its labels change, not every pass.
    pub fn unschedulable_changes(&self, plan: &model::Plan) -> Changes<String, Vec<String>> {
        let now = plan
            .unschedulable
            .iter()
            .map(|u| (u.run.to_string(), u.labels.clone()));
        self.0.unschedulable_logged.lock().update(now)
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

#[cfg(test)]
mod tests {
    use super::*;
    use model::plan::Unschedulable;
    use model::RunId;

    fn plan(runs: &[(i64, &[&str])]) -> model::Plan {
        model::Plan {
            unschedulable: runs
                .iter()
                .map(|(id, labels)| Unschedulable {
                    run: RunId::for_job(*id, 1),
                    labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                })
                .collect(),
            ..model::Plan::default()
        }
    }

    #[test]
    fn an_unschedulable_run_is_reported_once_until_its_labels_change_or_it_ends() {
        let m = Metrics::new();
        let first = m.unschedulable_changes(&plan(&[(1, &["gpu"])]));
        assert_eq!(first.started.len(), 1);
        for _ in 0..10 {
            let again = m.unschedulable_changes(&plan(&[(1, &["gpu"])]));
            assert!(again.started.is_empty() && again.changed.is_empty());
        }
        let changed = m.unschedulable_changes(&plan(&[(1, &["gpu", "arm"])]));
        assert_eq!(changed.changed.len(), 1);
        let ended = m.unschedulable_changes(&plan(&[]));
        assert_eq!(ended.ended, ["job-1-1"]);
    }

    #[test]
    fn the_spool_metrics_are_exposed() {
        let m = Metrics::new();
        m.spool(3, 1);
        m.spool_set_aside();
        let text = m.render();
        assert!(text.contains("tinqs_spool_pending 3"), "{text}");
        assert!(text.contains("tinqs_spool_dead_letter 1"), "{text}");
        assert!(text.contains("tinqs_spool_set_aside_total 1"), "{text}");
    }
}
