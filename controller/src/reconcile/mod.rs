//! The reconciler: observe, plan, apply, and the loop that repeats it.
//!
//! One pass observes every source together, hands the snapshot to the pure planner
//! (`model::plan`) and applies the plan. Only the holder of the DynamoDB lease applies; the
//! lease's fencing number rides on every status write, so a controller that lost it cannot
//! write. The loop wakes on a webhook, on the plan's nearest deadline, and at least every
//! `resync`; after a pass that could not observe everything it backs off with jitter.

mod apply;
mod disabled;
mod error;
mod observe;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use apply::{ApplyReport, Outcome};
pub use disabled::DisabledBook;
pub use error::{Skip, StepError};
use model::config::{Config, DemandSource};
use model::{Plan, Policy};
pub use observe::{Observation, MAX_JOB_READS};
use rand::Rng;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::fleet::Fleet;
use crate::forge::Forge;
use crate::metrics::Metrics;
use crate::store::{Lease, Store, StoreError};

/// What the loop uses of the Gitea server's features ([`crate::forge::ForgeFeatures`]) under
/// this configuration, decided once at start-up from its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopFeatures {
    /// Read the queued-jobs API for backfill (jobs mode, Gitea 1.25+).
    pub queued_jobs: bool,
    /// Disable idle runners before removing them (Gitea 1.26+).
    pub disable_runners: bool,
}

impl LoopFeatures {
    /// What a pass uses of what the Gitea server offers: backfill from the queued-jobs list
    /// only in jobs mode.
    #[must_use]
    pub fn from_forge(config: &Config, offered: crate::forge::ForgeFeatures) -> Self {
        LoopFeatures {
            queued_jobs: offered.queued_jobs && config.gitea.demand == DemandSource::Jobs,
            disable_runners: offered.disable,
        }
    }
}

/// Bounds on one pass's work.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls (a run's actions, reads of single runners, jobs or rows) made at once. Enough for
    /// a burst of launches to go out together (each launch is four calls in turn), so a job
    /// does not wait for the launches ahead of it; the per-pass budgets still bound how many.
    pub concurrency: usize,
    /// Timeout of every store, fleet and forge call.
    pub call_timeout: Duration,
    /// Timeout of one launch (which tries several offerings).
    pub launch_timeout: Duration,
    /// How long the lease lasts unless renewed.
    pub lease_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrency: 32,
            call_timeout: Duration::from_secs(20),
            launch_timeout: Duration::from_secs(90),
            lease_ttl: Duration::from_secs(60),
        }
    }
}

/// Plan only, or plan and apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Observe and plan; change nothing.
    DryRun,
    /// Observe, plan and apply.
    Apply,
}

/// What one pass did.
#[derive(Debug, Clone)]
pub struct PassOutcome {
    /// What was seen.
    pub observation: Observation,
    /// What was planned.
    pub plan: Plan,
    /// What happened when it was applied (`None` in a dry run).
    pub report: Option<ApplyReport>,
}

/// The controller: its ports, configuration and limits.
pub struct Reconciler {
    /// The desired-state table.
    pub store: Arc<dyn Store>,
    /// EC2.
    pub fleet: Arc<dyn Fleet>,
    /// Gitea.
    pub forge: Arc<dyn Forge>,
    /// The configuration.
    pub config: Config,
    /// What the loop uses of what Gitea supports.
    pub features: LoopFeatures,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Bounds on a pass.
    pub limits: Limits,
    /// Metrics.
    pub metrics: Metrics,
    /// This controller's name in the lease (host and process id).
    pub holder: String,
    /// EC2's advance notices received so far (empty without `aws.events_queue_url`).
    pub notices: crate::notices::NoticeBook,
    /// Since when runners are known disabled.
    pub disabled: DisabledBook,
}

impl Reconciler {
    /// The planner's policy for this configuration and server.
    #[must_use]
    pub fn policy(&self) -> Policy {
        Policy::from_config(&self.config, self.features.disable_runners)
    }

    /// One pass: observe, plan and, in `Mode::Apply`, apply under `lease`.
    pub async fn pass(&self, mode: Mode, lease: Option<&Lease>) -> PassOutcome {
        // The pass's duration, for its metric only: measured, not decided on, so not by `clock`.
        let started = Instant::now();
        let observation = self.observe().await;
        for (source, error) in &observation.errors {
            self.metrics.observation_error(source);
            tracing::warn!(source, %error, "observation incomplete: nothing destructive this pass");
        }
        let policy = self.policy();
        let plan = model::plan(
            &observation.desired,
            &observation.observed,
            &policy,
            self.clock.now(),
        );
        self.metrics.observed(&observation, &plan, &policy);
        // Logged when a run becomes unschedulable or its labels change, not every pass, and
        // with its labels capped: one event's labels cannot flood the log.
        let changes = self.metrics.unschedulable_changes(&plan);
        for (run, labels) in changes.started.iter().chain(&changes.changed) {
            tracing::warn!(
                run = %crate::quiet::cap(run, crate::quiet::FIELD_CHARS),
                labels = %crate::quiet::cap_list(labels),
                count = labels.len(),
                "unschedulable: no pool serves these labels"
            );
        }
        for run in &changes.ended {
            tracing::info!(run = %crate::quiet::cap(run, crate::quiet::FIELD_CHARS), "no longer unschedulable");
        }
        let report = match (mode, lease) {
            (Mode::Apply, Some(lease)) if !plan.is_empty() => {
                Some(self.apply(&plan, &observation.desired, lease).await)
            }
            (Mode::Apply, _) => Some(ApplyReport::default()),
            (Mode::DryRun, _) => None,
        };
        self.metrics.pass(started.elapsed().as_secs_f64());
        PassOutcome {
            observation,
            plan,
            report,
        }
    }

    /// Takes the lease (or fails when another controller holds it).
    ///
    /// # Errors
    /// [`StoreError::LeaseHeld`] naming the holder, or a store error.
    pub async fn acquire(&self) -> Result<Lease, StoreError> {
        let lease = self
            .store
            .acquire_lease(&self.holder, self.limits.lease_ttl, self.clock.now())
            .await?;
        self.metrics.lease_held(true);
        Ok(lease)
    }

    /// Gives the lease back.
    pub async fn release(&self, lease: &Lease) {
        if let Err(e) = self.store.release_lease(lease).await {
            tracing::warn!(error = %e, "could not release the lease; it lapses by itself");
        }
        self.metrics.lease_held(false);
    }

    /// Runs passes until `shutdown` resolves: as the lease holder, plan and apply; otherwise
    /// try to take the lease each round (other replicas only serve webhooks meanwhile). Wakes
    /// on `wake` (webhooks), the plan's nearest deadline, or `resync`; backs off with jitter
    /// after a pass that could not observe everything. On shutdown the current pass finishes
    /// and the lease is released.
    pub async fn run(&self, wake: Arc<Notify>, shutdown: impl Future<Output = ()>) {
        self.run_with(wake, shutdown, &mut SystemJitter).await;
    }

    /// [`Reconciler::run`], with the backoff jitter drawn from `hooks` and each pass shown to
    /// it: the simulator (`tinqs-ci sim`) runs the real loop with a seeded jitter so a seed
    /// always gives the same run, and counts passes and plan sizes.
    pub async fn run_with(
        &self,
        wake: Arc<Notify>,
        shutdown: impl Future<Output = ()>,
        hooks: &mut dyn LoopHooks,
    ) {
        tokio::pin!(shutdown);
        let mut lease: Option<Lease> = None;
        let mut failures: u32 = 0;
        // How often a controller without the lease tries to take it.
        let standby = self.config.timeouts.resync.min(self.limits.lease_ttl / 2);
        loop {
            lease = self.keep_lease(lease).await;
            let wait = match &lease {
                Some(l) => {
                    let outcome = self.pass(Mode::Apply, Some(l)).await;
                    hooks.passed(&outcome);
                    if outcome.report.as_ref().is_some_and(ApplyReport::lease_lost) {
                        // Another controller may hold it now: stand by from this moment
                        // rather than at the next renewal.
                        tracing::warn!("a write found the lease lost; standing by");
                        self.metrics.lease_held(false);
                        lease = None;
                        standby
                    } else if outcome.observation.is_complete() {
                        failures = 0;
                        outcome.plan.requeue_after
                    } else {
                        failures = failures.saturating_add(1);
                        backoff(failures, self.config.timeouts.resync, hooks)
                    }
                }
                None => standby,
            };
            // Biased: when a wake-up and the timer are both ready, the same branch wins every
            // time, so a run is reproducible (the simulator relies on it).
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = wake.notified() => {}
                () = self.notices.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(l) = &lease {
            self.release(l).await;
        }
    }

    /// Renews the lease we hold, or tries to take it.
    async fn keep_lease(&self, lease: Option<Lease>) -> Option<Lease> {
        let now = self.clock.now();
        match lease {
            Some(l) => match self.store.renew_lease(&l, self.limits.lease_ttl, now).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the lease; standing by");
                    self.metrics.lease_held(false);
                    None
                }
            },
            None => match self.acquire().await {
                Ok(l) => {
                    tracing::info!(holder = %l.holder, fence = l.fence, "took the lease: this controller applies plans");
                    Some(l)
                }
                Err(StoreError::LeaseHeld { holder, until }) => {
                    tracing::debug!(%holder, %until, "another controller holds the lease");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not take the lease");
                    None
                }
            },
        }
    }

    /// Runs `fut` under the call timeout, with the error as text.
    pub(crate) async fn timed<T, E: std::fmt::Display>(
        &self,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.limits.call_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("timed out after {:?}", self.limits.call_timeout)),
        }
    }
}

/// What the loop takes from its surroundings besides the ports: the jitter of its backoff,
/// and a look at each pass it applied.
pub trait LoopHooks: Send {
    /// A number drawn uniformly from `low..=high` (milliseconds of backoff).
    fn jitter(&mut self, low: u64, high: u64) -> u64;

    /// Called after each pass the loop applied.
    fn passed(&mut self, _outcome: &PassOutcome) {}
}

/// The production hooks: jitter from the thread's random generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemJitter;

impl LoopHooks for SystemJitter {
    fn jitter(&mut self, low: u64, high: u64) -> u64 {
        rand::rng().random_range(low..=high)
    }
}

/// Exponential backoff with full jitter, from 1 s up to `cap`.
fn backoff(failures: u32, cap: Duration, hooks: &mut dyn LoopHooks) -> Duration {
    let exp = Duration::from_secs(1u64 << failures.min(6));
    let ceiling = exp.min(cap).max(Duration::from_millis(500));
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(hooks.jitter(ms / 2, ms))
}

/// This process's name for the lease: host name and process id.
#[must_use]
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!("{host}/{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let cap = Duration::from_secs(60);
        for failures in 1..20 {
            let d = backoff(failures, cap, &mut SystemJitter);
            assert!(d <= cap, "{d:?}");
            assert!(d >= Duration::from_millis(250), "{d:?}");
        }
        assert!(backoff(1, cap, &mut SystemJitter) <= Duration::from_secs(2));
    }
}
