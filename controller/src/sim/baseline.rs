//! The policies `--compare` runs next to tinqs-ci on the same workload and faults: simple
//! models of the system tinqs-ci replaced and of two well-known runner managers, acting on
//! the same simulated EC2 and Gitea through the same ports (so they meet the same capacity
//! errors, throttling, outages and lost webhooks). Their sources and simplifications are in
//! `wiki/Simulation.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use model::config::Config;
use model::observed::JobFound;
use model::secret::Secret;
use model::{RunId, RunnerName};
use serde::Serialize;

use super::ports::{Ctx, SimFleet, SimForge};
use super::world::Hook;
use crate::fleet::offerings::UnavailableOfferings;
use crate::fleet::{Fleet, LaunchRequest};
use crate::forge::Forge;

/// A policy that drives the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// tinqs-ci: the real controller.
    TinqsCi,
    /// The system tinqs-ci replaces: one instance per job event, no reconcile.
    OldDispatcher,
    /// terraform-aws-github-runner-like: delayed scale-up, periodic scale-down.
    TerraformLike,
    /// GARM-like: a periodic job consumer and idle-runner reaping.
    GarmLike,
}

impl Policy {
    /// Every policy, tinqs-ci first.
    pub const ALL: [Policy; 4] = [
        Policy::TinqsCi,
        Policy::OldDispatcher,
        Policy::TerraformLike,
        Policy::GarmLike,
    ];

    /// The policy's name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Policy::TinqsCi => "tinqs-ci",
            Policy::OldDispatcher => "old-dispatcher",
            Policy::TerraformLike => "tf-github-runner",
            Policy::GarmLike => "garm",
        }
    }
}

/// Reads what a baseline needs from a webhook body; `None` for other actions.
pub(crate) fn queued_hook(body: &str) -> Option<Hook> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    if v.get("action")?.as_str()? != "queued" {
        return None;
    }
    let wj = v.get("workflow_job")?;
    Some(Hook {
        job: wj.get("id")?.as_i64()?,
        pick: u32::try_from(wj.get("run_attempt")?.as_u64()?).ok()? + 1,
        labels: wj
            .get("labels")?
            .as_array()?
            .iter()
            .filter_map(|l| l.as_str().map(str::to_owned))
            .collect(),
    })
}

struct Driver {
    ctx: Arc<Ctx>,
    config: Config,
    fleet: SimFleet,
    forge: SimForge,
    launched: u64,
}

impl Driver {
    fn pool_for(&self, labels: &[String]) -> Option<String> {
        if labels
            .iter()
            .any(|l| self.config.foreign_labels.contains(l))
        {
            return None;
        }
        self.config
            .pools
            .iter()
            .find(|(name, p)| {
                let have = p.runner_labels(name);
                labels.iter().all(|l| have.contains(l))
            })
            .map(|(name, _)| name.clone())
    }

    /// Our live instances per pool, from the world (the baselines keep their own counts in
    /// reality; the world's truth is kinder to them than a lagging list).
    fn live_per_pool(&self) -> BTreeMap<String, u32> {
        let w = self.ctx.lock();
        let mut out = BTreeMap::new();
        for i in w.instances.values().filter(|i| i.ours && i.live()) {
            if let Some(p) = i.tags.get(model::tags::POOL) {
                *out.entry(p.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    fn has_room(&self, pool: &str) -> bool {
        let live = self.live_per_pool();
        let total: u32 = live.values().sum();
        let in_pool = live.get(pool).copied().unwrap_or(0);
        let max = self.config.pools.get(pool).map_or(0, |p| p.max_instances);
        in_pool < max && total < self.config.safety.max_instances
    }

    /// One RunInstances for `job` in `pool`; the runner registers itself at boot.
    async fn launch(&mut self, hook: &Hook, pool: &str, name: String) -> bool {
        let Some(pool_config) = self.config.pools.get(pool).cloned() else {
            return false;
        };
        self.launched += 1;
        let run = RunId::for_job(hook.job, hook.pick);
        let req = LaunchRequest {
            run,
            attempt: 1,
            runner: RunnerName::observed(name),
            pool: pool.to_owned(),
            pool_config,
            user_data: Secret::new(""),
            client_token: format!("baseline-{}", self.launched),
            runner_id: None,
        };
        self.fleet.launch(&req).await.is_ok()
    }

    fn take_inbox(&self) -> Vec<Hook> {
        std::mem::take(&mut self.ctx.lock().inbox)
    }
}

/// Runs `policy` until the task is aborted.
pub(crate) async fn drive(policy: Policy, ctx: Arc<Ctx>, config: Config) {
    let mut d = Driver {
        fleet: SimFleet {
            ctx: Arc::clone(&ctx),
            ctl: None,
            unavailable: UnavailableOfferings::default(),
        },
        forge: SimForge {
            ctx: Arc::clone(&ctx),
            ctl: None,
        },
        ctx,
        config,
        launched: 0,
    };
    match policy {
        Policy::TinqsCi => {}
        Policy::OldDispatcher => old_dispatcher(&mut d).await,
        Policy::TerraformLike => terraform_like(&mut d).await,
        Policy::GarmLike => garm_like(&mut d).await,
    }
}

/// One instance per job event as it arrives, one try, nothing ever cleaned up (the
/// instance powers itself off after its job), names cut to 12 characters.
async fn old_dispatcher(d: &mut Driver) {
    loop {
        d.ctx.hooks.notified().await;
        for hook in d.take_inbox() {
            let Some(pool) = d.pool_for(&hook.labels) else {
                continue;
            };
            let name: String = format!("runner-job-{}", hook.job)
                .chars()
                .take(12)
                .collect();
            d.launch(&hook, &pool, name).await;
        }
    }
}

/// Scale-up from a queue 30 s after each event if the job still waits and the pool has
/// room; every 5 minutes a scale-down removes runners that are idle (deregister, then
/// terminate) and instances with no runner after 5 minutes. No backfill.
async fn terraform_like(d: &mut Driver) {
    let mut delayed: BTreeMap<i64, Vec<Hook>> = BTreeMap::new();
    let mut next_sweep = d.ctx.now() + 300_000;
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = d.ctx.now();
        for hook in d.take_inbox() {
            delayed.entry(now + 30_000).or_default().push(hook);
        }
        let due: Vec<i64> = delayed.range(..=now).map(|(k, _)| *k).collect();
        for k in due {
            for hook in delayed.remove(&k).unwrap_or_default() {
                let Some(pool) = d.pool_for(&hook.labels) else {
                    continue;
                };
                let waiting = matches!(
                    d.forge.get_job("", hook.job).await,
                    Ok(model::observed::JobSeen {
                        found: JobFound::Job {
                            action: model::desired::JobAction::Queued,
                            ..
                        },
                        ..
                    })
                );
                if waiting && d.has_room(&pool) {
                    let name = format!("tf-{}-{}", pool, d.launched + 1);
                    d.launch(&hook, &pool, name).await;
                }
            }
        }
        if now >= next_sweep {
            next_sweep = now + 300_000;
            scale_down(d, now, 300_000, 300_000).await;
        }
    }
}

/// A job consumer every 30 s: one runner per queued job event not yet served, while the
/// pool has room; each round reaps runners idle for over 5 minutes and instances whose
/// runner did not come up within 20 minutes. No backfill.
async fn garm_like(d: &mut Driver) {
    let mut served: BTreeSet<(i64, u32)> = BTreeSet::new();
    let mut pending: Vec<Hook> = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let now = d.ctx.now();
        pending.extend(d.take_inbox());
        let mut keep = Vec::new();
        for hook in std::mem::take(&mut pending) {
            if served.contains(&(hook.job, hook.pick)) {
                continue;
            }
            let Some(pool) = d.pool_for(&hook.labels) else {
                continue;
            };
            if !d.has_room(&pool) {
                keep.push(hook);
                continue;
            }
            let name = format!("garm-{}-{}", pool, d.launched + 1);
            if d.launch(&hook, &pool, name).await {
                served.insert((hook.job, hook.pick));
            } else {
                keep.push(hook);
            }
        }
        pending = keep;
        scale_down(d, now, 300_000, 1_200_000).await;
    }
}

/// Removes our instances whose runner is online and not busy once they are older than
/// `idle_after`, and those with no runner seen after `boot_timeout`: deregister (when
/// known), then terminate, trusting the listed busy flag.
async fn scale_down(d: &mut Driver, now: i64, idle_after: i64, boot_timeout: i64) {
    let (Ok(instances), Ok(runners)) = (d.fleet.list().await, d.forge.list_runners().await) else {
        return;
    };
    let epoch = d.ctx.lock().epoch.as_millis();
    for i in instances.iter().filter(|i| i.state.is_live()) {
        let age = now - (i.launched_at.as_millis() - epoch);
        let name = i.runner_name().map(|n| n.to_string()).unwrap_or_default();
        match runners.iter().find(|r| r.name == name) {
            Some(r) if r.online && !r.busy && age > idle_after => {
                let deleted = d.forge.delete_runner(r.id).await.is_ok();
                if deleted {
                    let _ = d.fleet.terminate(std::slice::from_ref(&i.id)).await;
                }
            }
            None if age > boot_timeout => {
                let _ = d.fleet.terminate(std::slice::from_ref(&i.id)).await;
            }
            _ => {}
        }
    }
}
