//! Where a pool's warm runners stand: what the planner's top-up counts toward `min_idle`,
//! and what `tinqs-ci status` shows. One classification of a warm run ([`warmth`]) serves
//! both, so the two cannot disagree.

use serde::Serialize;

use super::index::Index;
use super::{Policy, WarmPolicy};
use crate::config::HourlyPrice;
use crate::desired::{DesiredRun, Phase};
use crate::observed::{DesiredView, Observed};
use crate::time::Timestamp;

/// Where one active warm run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Warmth {
    /// Not launched yet: a launch is planned, or held back by a cap.
    Pending,
    /// Launching or launched, its runner never seen online yet.
    Booting,
    /// Its runner is online and idle: it takes a job within act_runner's poll.
    Ready,
    /// Its runner was online and is not now (the zombie rule decides what follows).
    Offline,
    /// Online and idle past its pool's max idle age: kept until a fresh one is ready.
    Aged,
    /// Its runner is disabled: it takes no job, and is being retired.
    Retiring,
    /// It took a job, is busy, or was cancelled: not warm any more.
    Spent,
}

impl Warmth {
    /// Whether the top-up counts it toward its pool's `min_idle` (besides what the pass
    /// itself decides: a runner it retires or lends to a waiting job no longer counts).
    pub(super) fn counts(self) -> bool {
        matches!(self, Warmth::Booting | Warmth::Ready | Warmth::Offline)
    }
}

/// The warm runners of `pool` under `policy`, when it keeps any.
pub(super) fn warm_policy<'p>(policy: &'p Policy, pool: &str) -> Option<&'p WarmPolicy> {
    policy.pool(pool).and_then(|p| p.warm.as_ref())
}

/// Whether the warm runner of `run`, idle since `since`, is past its pool's max idle age.
pub(super) fn past_max_idle_age(
    policy: &Policy,
    run: &DesiredRun,
    since: Timestamp,
    now: Timestamp,
) -> bool {
    let pool = run.spec.pool.as_deref().unwrap_or_default();
    warm_policy(policy, pool)
        .and_then(|w| w.max_idle_age)
        .is_some_and(|age| since.plus(age) <= now)
}

/// Where the active warm run `run` stands in the observation `idx`.
pub(super) fn warmth(run: &DesiredRun, idx: &Index, policy: &Policy, now: Timestamp) -> Warmth {
    let name = run.runner_name(&policy.cluster);
    if run.status.took_job_at.is_some() || run.spec.cancel || idx.is_busy_name(name.as_str()) {
        return Warmth::Spent;
    }
    if run.status.phase == Phase::Pending {
        return Warmth::Pending;
    }
    if run
        .status
        .registered_at
        .is_some_and(|since| past_max_idle_age(policy, run, since, now))
    {
        return Warmth::Aged;
    }
    match idx.runners_named(name.as_str()).iter().find(|r| r.online) {
        Some(r) if r.disabled => Warmth::Retiring,
        Some(_) => Warmth::Ready,
        None if run.status.registered_at.is_some() => Warmth::Offline,
        None => Warmth::Booting,
    }
}

/// One pool's warm runners at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarmSummary {
    /// The pool's label.
    pub pool: String,
    /// Warm runners the pool wants now: `min_idle` inside a window of its schedule (or
    /// always, without one), 0 outside.
    pub wanted: u32,
    /// The pool's `min_idle`.
    pub min_idle: u32,
    /// The schedule's windows as written; empty: always.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<String>,
    /// Online and idle: each takes a job without a boot.
    pub ready: u32,
    /// Launching or launched, not online yet.
    pub booting: u32,
    /// Not launched yet (a launch is planned, or held back by a cap).
    pub pending: u32,
    /// Were online and are not now.
    pub offline: u32,
    /// Past the max idle age, kept until a fresh one is ready.
    pub aged: u32,
    /// Disabled, being retired.
    pub retiring: u32,
    /// `pools.<label>.hourly_price`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hourly_price: Option<HourlyPrice>,
    /// What the warm machines that serve no job cost per hour (booting, ready, offline, aged
    /// and retiring ones); known only with an hourly price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_cost_per_hour: Option<HourlyPrice>,
}

impl WarmSummary {
    /// Warm runners that count toward `wanted`, as the planner's top-up counts them (ready,
    /// booting and offline ones): with fewer than `wanted`, the next pass launches more.
    #[must_use]
    pub fn counted(&self) -> u32 {
        self.ready + self.booting + self.offline
    }

    /// Warm machines up (or being launched) that serve no job.
    #[must_use]
    pub fn idle_machines(&self) -> u32 {
        self.booting + self.ready + self.offline + self.aged + self.retiring
    }
}

/// The warm runners of every pool that keeps any (configuration order), at `now`. Pure;
/// classifies each warm run as the planner does when it tops a pool up.
#[must_use]
pub fn warm_summary(
    desired: &DesiredView,
    observed: &Observed,
    policy: &Policy,
    now: Timestamp,
) -> Vec<WarmSummary> {
    let mut out: Vec<WarmSummary> = policy
        .pools
        .iter()
        .filter_map(|p| {
            let w = p.warm.as_ref()?;
            Some(WarmSummary {
                pool: p.name.clone(),
                wanted: w.min_idle_at(now),
                min_idle: w.min_idle,
                schedule: w.schedule.iter().map(|s| s.as_str().to_owned()).collect(),
                ready: 0,
                booting: 0,
                pending: 0,
                offline: 0,
                aged: 0,
                retiring: 0,
                hourly_price: p.hourly_price,
                idle_cost_per_hour: None,
            })
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    let idx = Index::new(desired, &[], observed, policy);
    for &run in idx.runs.iter().filter(|r| r.is_warm()) {
        let pool = run.spec.pool.as_deref().unwrap_or_default();
        let Some(row) = out.iter_mut().find(|s| s.pool == pool) else {
            continue; // a pool that no longer keeps warm runners: the idle rule retires them
        };
        let n = match warmth(run, &idx, policy, now) {
            Warmth::Pending => &mut row.pending,
            Warmth::Booting => &mut row.booting,
            Warmth::Ready => &mut row.ready,
            Warmth::Offline => &mut row.offline,
            Warmth::Aged => &mut row.aged,
            Warmth::Retiring => &mut row.retiring,
            Warmth::Spent => continue,
        };
        *n += 1;
    }
    for row in &mut out {
        row.idle_cost_per_hour = row.hourly_price.map(|p| p.times(row.idle_machines()));
    }
    out
}
