//! Warm pools: idle runners launched ahead of demand, so a job starts without a boot.
//!
//! A warm runner is an ordinary ephemeral runner with a desired run of its own (origin
//! `warm`, no job), so every other rule (registration, zombie, stuck, lifetime, orphan,
//! ownership, caps, budgets) applies to it unchanged. Three things are particular to it:
//! - **ranking**: a pool's online, idle warm runners are ranked (fresh before past their
//!   max idle age, then youngest first); the first `min_idle` are kept whatever the idle
//!   timeout says, the rest fall under the idle rule, and one past its max idle age is
//!   retired only once enough fresh ones are ready (its replacement comes up first);
//! - **hand-over**: a kept warm runner that a waiting job could use is a spare, and stands
//!   in for that job's launch like any idle runner kept for queued work; once matched, or
//!   once Gitea gives it a job, it no longer counts as warm;
//! - **top-up**: after the jobs' launches, each pool gets new warm runs until launching,
//!   booting and idle warm runners reach `min_idle` (0 outside the schedule's windows);
//!   pending warm runs beyond that end unlaunched.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashSet};

use super::{Pass, Spare};
use crate::desired::{DesiredRun, Phase, RunSpec, StatusChange};
use crate::plan::warm_summary::{past_max_idle_age, warm_policy, warmth};
use crate::plan::{Action, Reason, WarmPolicy};
use crate::time::Timestamp;

impl<'a> Pass<'a> {
    /// The warm runners `pool` wants now (0 for a pool without warm runners).
    fn warm_target(&self, pool: &str) -> u32 {
        self.warm_policy(pool)
            .map_or(0, |w| w.min_idle_at(self.now))
    }

    fn warm_policy(&self, pool: &str) -> Option<&'a WarmPolicy> {
        warm_policy(self.policy, pool)
    }

    /// Whether an idle warm runner online since `since` is past its pool's max idle age.
    fn warm_aged(&self, run: &DesiredRun, since: Timestamp) -> bool {
        past_max_idle_age(self.policy, run, since, self.now)
    }

    /// Ranks each pool's online, idle warm runners and keeps, lends or retires them.
    pub(super) fn warm_idle(&mut self) {
        let mut ready = std::mem::take(&mut self.warm_ready);
        ready.sort_by_cached_key(|w| {
            (
                w.run.spec.pool.clone().unwrap_or_default(),
                self.warm_aged(w.run, w.since),
                Reverse(w.since),
                w.run.id.clone(),
            )
        });
        let mut kept: BTreeMap<String, u32> = BTreeMap::new();
        for w in ready {
            let pool = w.run.spec.pool.clone().unwrap_or_default();
            let target = self.warm_target(&pool);
            let aged = self.warm_aged(w.run, w.since);
            let wanted = w.runner.wanted;
            let n = kept.entry(pool.clone()).or_default();
            let name = w.run.runner_name(&self.policy.cluster);
            let idx = self.idx;
            let runners = idx.runners_named(name.as_str());
            if *n < target {
                *n += 1;
                if let Some(age) = self.warm_policy(&pool).and_then(|p| p.max_idle_age) {
                    self.deadline(w.since.plus(age));
                }
            } else if !wanted {
                // Surplus: past its max idle age it goes now (a fresh one is ready); else
                // the idle rule decides.
                if aged {
                    let age = self
                        .warm_policy(&pool)
                        .and_then(|p| p.max_idle_age)
                        .unwrap_or_default();
                    let reason = Reason::WarmAged { max_idle_age: age };
                    self.retire_and_decide(w.run, name.as_str(), w.instance, runners, reason);
                    continue;
                }
                let timeout = self.policy.timeouts.idle;
                let deadline = w.since.plus(timeout);
                if deadline <= self.now {
                    let reason = Reason::Idle { timeout };
                    self.retire_and_decide(w.run, name.as_str(), w.instance, runners, reason);
                } else {
                    self.deadline(deadline);
                }
                continue;
            }
            if wanted {
                // Rule "keep while wanted": a job it could serve waits; it stands in for that
                // job's launch.
                self.spares.push(Spare {
                    runner: w.runner,
                    taken: false,
                    warm: Some(w.run),
                    booting: false,
                });
            }
        }
    }

    /// What becomes of a warm run whose runner is gone or retired. One machine per warm
    /// run: it ends (the top-up launches a fresh one), done when its runner served a job or
    /// was retired by a rule, failed when its machine failed.
    ///
    /// A short job can start and finish between two passes, with its webhooks folded into
    /// one: no pass saw the runner busy (or even online). Gitea itself tells: it deletes an
    /// ephemeral runner once its task reaches a final status, and never one that took no job,
    /// so a runner known registered (seen online, or registered by us before the launch) and
    /// gone from a whole runner list served its job to the end.
    pub(super) fn warm_over(&mut self, run: &'a DesiredRun, name: &str, cause: Reason) {
        let served = (run.status.registered_at.is_some() || run.status.runner_id.is_some())
            && self.forge_ok
            && self.idx.runners_named(name).is_empty();
        let took = served || run.status.took_job_at.is_some() || self.idx.took_a_job(name);
        let died = !served
            && matches!(
                cause,
                Reason::SpotInterruption
                    | Reason::Zombie { .. }
                    | Reason::InstanceLost
                    | Reason::NeverRegistered { .. }
            );
        match (took, died) {
            (true, true) if cause != Reason::InstanceLost => {
                let error = format!("{cause} while running a job; re-run it in Gitea");
                self.fail(run, error, cause);
            }
            (true, _) => self.end(run, Phase::Done, Reason::RunnerServedJob),
            (false, true) => self.fail(run, cause.to_string(), cause),
            (false, false) => self.end(run, Phase::Done, cause),
        }
    }

    /// Launches pending warm runs and creates new ones until each pool has the warm runners
    /// it wants; pending ones beyond that end unlaunched.
    pub(super) fn warm_top_up(&mut self) {
        let idx = self.idx;
        // Runs this pass already retires, ends, or saw take a job: not warm any more (only
        // asked of warm runs, so not gathered where there are none).
        let mut leaving: HashSet<&str> = HashSet::new();
        let actions = if idx.warm.is_empty() {
            &[][..]
        } else {
            &self.out.actions[..]
        };
        for a in actions {
            let gone = match a {
                Action::UpdateStatus { change, .. } => matches!(
                    change,
                    StatusChange::Finish { .. }
                        | StatusChange::TookJob { .. }
                        | StatusChange::Requeue { .. }
                ),
                Action::DisableRunner { .. }
                | Action::Deregister { .. }
                | Action::Terminate { .. } => true,
                Action::CreateRun { .. } | Action::Launch { .. } => false,
            };
            if let Some(run) = a.run().filter(|_| gone) {
                leaving.insert(run.as_str());
            }
        }
        // Per pool: warm runs past pending that still count, and the pending ones.
        let mut counted: BTreeMap<&str, u32> = BTreeMap::new();
        for run in idx.warm.iter().map(|&k| idx.runs[k]) {
            let Some(pool) = run.spec.pool.as_deref() else {
                continue;
            };
            // Where it stands (as `status` shows it), and whether this pass retires it or
            // lends it to a waiting job.
            let counts = warmth(run, idx, self.policy, self.now).counts()
                && !leaving.contains(run.id.as_str())
                && !self.warm_taken.contains(run.id.as_str());
            if counts {
                *counted.entry(pool).or_default() += 1;
            }
        }
        let mut pending: BTreeMap<&str, Vec<&'a DesiredRun>> = BTreeMap::new();
        for run in std::mem::take(&mut self.warm_wanting) {
            let pool = run.spec.pool.as_deref().unwrap_or_default();
            pending.entry(pool).or_default().push(run);
        }
        let pools: Vec<&'a str> = self
            .policy
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .chain(pending.keys().copied())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for pool in pools {
            let target = self.warm_target(pool);
            let have = counted.get(pool).copied().unwrap_or(0);
            let mut want = target.saturating_sub(have);
            let reason = Reason::WarmPool {
                pool: pool.to_owned(),
                min_idle: target,
            };
            for run in pending.remove(pool).unwrap_or_default() {
                if want > 0 {
                    want -= 1;
                    self.launch(run, run.status.attempt.max(1), reason.clone());
                } else if self.destroy_ok {
                    self.end(run, Phase::Done, reason.clone());
                }
            }
            // New rows only on a whole view: counting on a partial one could overshoot.
            if !self.destroy_ok {
                continue;
            }
            let Some(labels) = self
                .policy
                .pools
                .iter()
                .find(|p| p.name == pool)
                .map(|p| p.labels.clone())
            else {
                continue;
            };
            for n in 0..want {
                let id = crate::RunId::for_warm(pool, self.now, n);
                let spec = RunSpec::for_warm(pool, labels.clone(), self.now);
                self.out.actions.push(Action::CreateRun {
                    run: id.clone(),
                    spec: spec.clone(),
                    reason: reason.clone(),
                });
                self.launch_spec(&id, &spec, 1, reason.clone());
            }
        }
    }
}
