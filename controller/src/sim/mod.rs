//! `tinqs-ci sim`: the whole world in virtual time, driving the real controller.
//!
//! The simulator runs the real reconcile loop ([`Reconciler::run_with`]: the real observe,
//! the real planner `model::plan` and the real executor) and the real webhook decoder
//! ([`crate::webhook::record_workflow_job`]) against in-memory models of Gitea, EC2, the
//! runner processes and DynamoDB ([`world`], [`ports`]). Everything runs on one thread with
//! tokio's clock paused: when every task waits, time jumps to the next timer, so hours of
//! jobs take seconds, and the controller's own timeouts, backoffs and resyncs happen in the
//! same virtual time. All randomness comes from one seeded generator and every collection is
//! ordered, so a seed always gives byte-identical output.
//!
//! Two controllers share the table and the lease, as two replicas would; the fault profile
//! can kill the one applying at a step boundary of a launch, and the supervisor restarts it.

mod baseline;
mod faults;
mod ports;
mod report;
mod workload;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use model::config::{Config, DemandSource};
use model::desired::AttemptCounting;
use model::Timestamp;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use baseline::Policy;
pub use faults::{Faults, FAULT_KINDS};
pub use report::{comparison_table, html, InstanceSeconds, Percentiles, Report};
pub use workload::{parse_trace, synthetic, WorkJob};
pub use world::{Incident, KillPoint, Sample};

use self::ports::{Ctx, SimFleet, SimForge, SimStore};
use self::world::{Effect, Event, SimWorld};
use crate::clock::Clock;
use crate::fleet::offerings::UnavailableOfferings;
use crate::metrics::Metrics;
use crate::reconcile::{Limits, LoopFeatures, LoopHooks, PassOutcome, Reconciler};
use crate::store::memory::MemoryStore;

/// One simulated run.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// The controller's configuration (pools, timeouts, budgets).
    pub config: Config,
    /// The seed of every random choice.
    pub seed: u64,
    /// How many jobs (the first N of a trace).
    pub jobs: usize,
    /// The fault profile's name, for the report.
    pub profile: String,
    /// The faults.
    pub faults: Faults,
    /// A replayed history instead of the synthetic workload.
    pub trace: Option<Vec<WorkJob>>,
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The configuration asks for something the simulator does not model.
    #[error("{0}")]
    Unsupported(String),
    /// No jobs to run.
    #[error("the workload is empty: ask for at least one job")]
    NoJobs,
    /// The runtime could not start.
    #[error("cannot start the simulation runtime: {0}")]
    Runtime(String),
}

/// Midnight UTC, Monday 5 January 2026: where virtual time starts.
const EPOCH_MS: i64 = 1_767_571_200_000;

/// How long the controller gets after the last job ends to clean up.
const SETTLE_MS: i64 = 20 * 60_000;

/// How long after the last arrival a run is given up (jobs still waiting count as lost).
const GIVE_UP_MS: i64 = 6 * 3_600_000;

/// Runs `spec` under tinqs-ci and returns its report.
///
/// # Errors
/// [`SimError`] when the configuration cannot be simulated or the workload is empty.
pub fn run(spec: &SimSpec) -> Result<Report, SimError> {
    run_policy(spec, Policy::TinqsCi)
}

/// Runs `spec` under `policy` (the same workload and faults for every policy of one seed).
///
/// # Errors
/// [`SimError`] when the configuration cannot be simulated or the workload is empty.
pub fn run_policy(spec: &SimSpec, policy: Policy) -> Result<Report, SimError> {
    check(&spec.config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| SimError::Runtime(e.to_string()))?;
    rt.block_on(simulate(spec, policy))
}

/// The longest a job should wait: the slowest boot of any pool's instance types plus two
/// resync intervals.
#[must_use]
pub fn wait_bound(config: &Config) -> Duration {
    let boot = config
        .pools
        .values()
        .flat_map(|p| p.instance_types.iter())
        .map(|t| world::boot_delay_ms(t).1)
        .max()
        .unwrap_or(60_000);
    Duration::from_millis(u64::try_from(boot).unwrap_or(0)) + 2 * config.timeouts.resync
}

/// What a report breaks of the gates: nothing lost, no double launch, no busy kill, nothing
/// foreign touched, every wanted job started, p95 wait within `bound`. Empty when it passes.
#[must_use]
pub fn gate(report: &Report, bound: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut zero = |name: &str, n: u64| {
        if n > 0 {
            out.push(format!("{n} {name}"));
        }
    };
    zero("lost", report.lost);
    zero("double-launched", report.double_launched);
    zero("busy kills", report.busy_kills);
    zero("foreign touched", report.foreign_touched);
    if report.started < report.picks_wanted {
        out.push(format!(
            "{} of {} wanted jobs started",
            report.started, report.picks_wanted
        ));
    }
    if report.queued_to_started.p95 > bound.as_secs_f64() {
        out.push(format!(
            "p95 wait {:.1}s over {:.0}s",
            report.queued_to_started.p95,
            bound.as_secs_f64()
        ));
    }
    out
}

/// Runs `spec` under every [`Policy`], tinqs-ci first.
///
/// Each policy is a world of its own, so they run side by side: tinqs-ci (the longest) on
/// this thread, the baselines in turn on another. Each world is as deterministic as alone,
/// and the reports keep the order of [`Policy::ALL`] whichever finishes first.
///
/// # Errors
/// As [`run`].
pub fn compare(spec: &SimSpec) -> Result<Vec<Report>, SimError> {
    let [first, rest @ ..] = Policy::ALL;
    std::thread::scope(|scope| {
        let baselines = scope.spawn(|| {
            rest.iter()
                .map(|p| run_policy(spec, *p))
                .collect::<Result<Vec<_>, _>>()
        });
        let ours = run_policy(spec, first);
        let baselines = baselines
            .join()
            .map_err(|_| SimError::Runtime("a baseline policy's simulation panicked".into()))?;
        let mut reports = vec![ours?];
        reports.extend(baselines?);
        Ok(reports)
    })
}

fn check(config: &Config) -> Result<(), SimError> {
    if config.gitea.demand != DemandSource::Jobs {
        return Err(SimError::Unsupported(
            "the simulator models demand mode `jobs` (workflow_job webhooks and the queued-jobs API); set gitea.demand: jobs".into(),
        ));
    }
    if config.pools.is_empty() {
        return Err(SimError::Unsupported(
            "the configuration has no pools".into(),
        ));
    }
    Ok(())
}

/// The workload of `spec`: the trace's first `jobs` jobs, or a synthetic one.
fn workload(spec: &SimSpec, rng: &mut StdRng) -> Vec<WorkJob> {
    match &spec.trace {
        Some(t) => t.iter().take(spec.jobs).cloned().collect(),
        None => synthetic(&spec.config, spec.jobs, rng),
    }
}

/// The loop hooks of a simulated controller: seeded jitter, and passes counted in the world.
struct SimHooks {
    ctx: Arc<Ctx>,
    ctl: usize,
    rng: StdRng,
}

impl LoopHooks for SimHooks {
    fn jitter(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            low
        } else {
            self.rng.random_range(low..=high)
        }
    }

    fn passed(&mut self, outcome: &PassOutcome) {
        let mut w = self.ctx.lock();
        w.stats.passes += 1;
        w.stats.largest_plan = w.stats.largest_plan.max(outcome.plan.actions.len());
        for incident in &mut w.stats.incidents {
            if !incident.explained && incident.controller == Some(self.ctl) {
                explain(incident, outcome);
            }
        }
    }
}

/// Fills in what the pass that caused `incident` saw of its run, runner and instance, and
/// the actions it planned about them.
fn explain(incident: &mut Incident, outcome: &PassOutcome) {
    incident.explained = true;
    let observed = &outcome.observation.observed;
    let runs: Vec<&str> = incident
        .run
        .iter()
        .chain(&incident.job_run)
        .map(String::as_str)
        .collect();
    for r in observed.runners.items() {
        if Some(r.id) == incident.runner_id || incident.runner.as_deref() == Some(&r.name) {
            incident.seen.push(format!(
                "runner {} (id {}): online {}, busy {}, disabled {}",
                r.name, r.id, r.online, r.busy, r.disabled
            ));
        }
    }
    for i in observed.instances.items() {
        let run = i.tags.get(model::tags::RUN_ID).map(String::as_str);
        if incident.instance.as_deref() == Some(i.id.as_str())
            || run.is_some_and(|r| runs.contains(&r))
        {
            incident.seen.push(format!(
                "instance {} ({:?}) of run {}",
                i.id.as_str(),
                i.state,
                run.unwrap_or("?")
            ));
        }
    }
    for d in &outcome.observation.desired.runs {
        if runs.contains(&d.id.as_str()) {
            incident.seen.push(format!(
                "desired {}: {}",
                d.id.as_str(),
                serde_json::to_string(&d.status).unwrap_or_default()
            ));
        }
    }
    if !outcome.observation.is_complete() {
        incident
            .seen
            .push(format!("partial view: {:?}", outcome.observation.errors));
    }
    for a in &outcome.plan.actions {
        let about = match a {
            model::plan::Action::Terminate { instance, run, .. } => {
                incident.instance.as_deref() == Some(instance.as_str())
                    || run.as_ref().is_some_and(|r| runs.contains(&r.as_str()))
            }
            model::plan::Action::Deregister { runner_id, run, .. }
            | model::plan::Action::DisableRunner { runner_id, run, .. } => {
                incident.runner_id == Some(*runner_id)
                    || run.as_ref().is_some_and(|r| runs.contains(&r.as_str()))
            }
            model::plan::Action::Launch { run, .. }
            | model::plan::Action::UpdateStatus { run, .. }
            | model::plan::Action::CreateRun { run, .. } => runs.contains(&run.as_str()),
        };
        if about {
            incident
                .planned
                .push(serde_json::to_string(a).unwrap_or_default());
        }
    }
}

/// Everything needed to start (and restart) a controller.
struct Plant {
    ctx: Arc<Ctx>,
    table: Arc<MemoryStore>,
    config: Config,
    features: LoopFeatures,
    seed: u64,
    stop: watch::Receiver<bool>,
    handles: Mutex<[Option<JoinHandle<()>>; 2]>,
}

impl Plant {
    fn start(self: &Arc<Self>, ctl: usize, generation: u64) {
        let ctx = Arc::clone(&self.ctx);
        let r = Reconciler {
            store: Arc::new(SimStore {
                ctx: Arc::clone(&ctx),
                table: Arc::clone(&self.table),
                ctl: Some(ctl),
            }),
            fleet: Arc::new(SimFleet {
                ctx: Arc::clone(&ctx),
                ctl: Some(ctl),
                unavailable: UnavailableOfferings::default(),
            }),
            forge: Arc::new(SimForge {
                ctx: Arc::clone(&ctx),
                ctl: Some(ctl),
            }),
            config: self.config.clone(),
            features: self.features,
            clock: virtual_clock(&ctx),
            limits: Limits::default(),
            metrics: Metrics::new(),
            holder: format!("sim-controller-{ctl}/{generation}"),
            notices: crate::notices::NoticeBook::default(),
            disabled: crate::reconcile::DisabledBook::default(),
        };
        let wake = Arc::clone(&ctx.wakes[ctl]);
        let mut hooks = SimHooks {
            ctx: Arc::clone(&ctx),
            ctl,
            rng: StdRng::seed_from_u64(self.seed ^ ((ctl as u64) << 32) ^ generation),
        };
        let mut stop = self.stop.clone();
        let handle = tokio::spawn(async move {
            let stopped = async move {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            };
            r.run_with(wake, stopped, &mut hooks).await;
        });
        self.handles.lock()[ctl] = Some(handle);
    }

    /// Kills controllers when a port asks, and restarts them 5 to 30 s later.
    async fn supervise(self: Arc<Self>) {
        let mut generation = 1u64;
        loop {
            self.ctx.kill.notified().await;
            let (ctl, delay) = {
                let mut w = self.ctx.lock();
                let Some(ctl) = w.kill_request.take() else {
                    continue;
                };
                w.stats.kills += 1;
                (ctl, w.between(5_000, 30_000))
            };
            let old = self.handles.lock()[ctl].take();
            if let Some(h) = old {
                h.abort();
            }
            generation += 1;
            let plant = Arc::clone(&self);
            let g = generation;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(u64::try_from(delay).unwrap_or(0))).await;
                if !*plant.stop.borrow() {
                    plant.start(ctl, g);
                }
            });
        }
    }
}

/// Moves the world: each due event in order; webhook deliveries go through the real
/// receiver code (and its spool, modelled as a replay 10 s later when the table is away).
async fn world_loop(ctx: Arc<Ctx>, table: Arc<MemoryStore>, policy: Policy) {
    let receiver = Arc::new(SimStore {
        ctx: Arc::clone(&ctx),
        table,
        ctl: None,
    });
    loop {
        let next = ctx.lock().next_event_at();
        let wait = next.map_or(60_000, |at| at - ctx.now());
        if wait > 0 {
            let sleep = tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
            tokio::select! {
                biased;
                () = ctx.poke.notified() => {}
                () = sleep => {}
            }
        }
        loop {
            let effect = {
                let mut w = ctx.lock();
                let now = ctx.now();
                match w.pop_due(now) {
                    Some(event) => w.handle(event, now),
                    None => break,
                }
            };
            if let Some(Effect::Deliver { body, tries }) = effect {
                if policy != Policy::TinqsCi {
                    if let Some(hook) = baseline::queued_hook(&body) {
                        ctx.lock().inbox.push(hook);
                        ctx.hooks.notify_one();
                    }
                    continue;
                }
                let ctx = Arc::clone(&ctx);
                let receiver = Arc::clone(&receiver);
                tokio::spawn(async move { deliver(ctx, receiver, body, tries).await });
            }
        }
    }
}

/// The simulator's clock: virtual time, counted from [`EPOCH_MS`]. The controllers and the
/// table read it, so nothing in a run depends on the wall clock.
fn virtual_clock(ctx: &Arc<Ctx>) -> Arc<dyn Clock> {
    let ctx = Arc::clone(ctx);
    Arc::new(move || Timestamp::from_millis(EPOCH_MS + ctx.now()))
}

async fn deliver(ctx: Arc<Ctx>, receiver: Arc<SimStore>, body: String, tries: u32) {
    let at = Timestamp::from_millis(EPOCH_MS + ctx.now());
    let result = crate::webhook::record_workflow_job(
        receiver.as_ref(),
        AttemptCounting::RaisedOnPick,
        body.as_bytes(),
        at,
    )
    .await;
    match result {
        Ok(_) => {
            for wake in &ctx.wakes {
                wake.notify_one();
            }
        }
        Err(e) if e.retryable => {
            let mut w = ctx.lock();
            w.fault("webhook-spooled");
            let now = ctx.now();
            w.schedule(
                now + 10_000,
                Event::Deliver {
                    body,
                    tries: tries + 1,
                },
            );
            drop(w);
            ctx.poke.notify_one();
        }
        Err(_) => ctx.lock().stats.webhooks_refused += 1,
    }
}

async fn simulate(spec: &SimSpec, policy: Policy) -> Result<Report, SimError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let jobs = workload(spec, &mut rng);
    if jobs.is_empty() {
        return Err(SimError::NoJobs);
    }
    let span = jobs.last().map_or(0, |j| j.at_ms);
    let pool_labels: BTreeMap<String, Vec<String>> = spec
        .config
        .pools
        .iter()
        .map(|(name, p)| (name.clone(), p.runner_labels(name)))
        .collect();
    let world_rng = StdRng::seed_from_u64(rng.random());
    let mut world = SimWorld::new(
        world_rng,
        spec.faults.clone(),
        &spec.config.cluster_id,
        Timestamp::from_millis(EPOCH_MS),
        jobs.clone(),
        pool_labels,
    );
    for (i, j) in jobs.iter().enumerate() {
        world.schedule(j.at_ms, Event::Arrive(i));
    }
    world.schedule(world::ZOMBIE_CRON_MS, Event::ZombieCron);
    world.schedule(0, Event::Sample);
    // Someone else's standing runners (for the foreign labels) and an untagged instance.
    for (k, label) in spec.config.foreign_labels.iter().enumerate() {
        for n in 0..2 {
            world.add_foreign_runner(
                &format!("build-{label}-{k}{n}"),
                std::slice::from_ref(label),
                0,
            );
        }
    }
    world.add_untagged_instance(0);
    let windows = |w: &mut SimWorld, count: u32, lo: i64, hi: i64| -> Vec<(i64, i64)> {
        (0..count)
            .map(|k| {
                let slot = span.max(1) / i64::from(count + 1);
                let start = slot * i64::from(k + 1) + w.between(-slot / 4, slot / 4);
                let len = w.between(lo, hi);
                (start.max(60_000), start.max(60_000) + len)
            })
            .collect()
    };
    world.gitea_down = windows(&mut world, spec.faults.gitea_outages, 180_000, 480_000);
    world.dynamo_down = windows(&mut world, spec.faults.dynamo_outages, 300_000, 300_000);
    for k in 0..spec.faults.controller_kills {
        let at = span.max(1) * i64::from(k + 1) / i64::from(spec.faults.controller_kills + 1);
        world.schedule(at, Event::ArmKill(KillPoint::ALL[k as usize % 4]));
    }

    let ctx = Arc::new(Ctx {
        world: Mutex::new(world),
        kill: Notify::new(),
        wakes: [Arc::new(Notify::new()), Arc::new(Notify::new())],
        start: tokio::time::Instant::now(),
        poke: Notify::new(),
        hooks: Notify::new(),
    });
    let table = Arc::new(
        MemoryStore::with_retention(Duration::from_secs(3600)).with_clock(virtual_clock(&ctx)),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let features = LoopFeatures::from_forge(&spec.config, ports::VERSION.features());
    let plant = Arc::new(Plant {
        ctx: Arc::clone(&ctx),
        table: Arc::clone(&table),
        config: spec.config.clone(),
        features,
        seed: spec.seed,
        stop: stop_rx,
        handles: Mutex::new([None, None]),
    });
    let world_task = tokio::spawn(world_loop(Arc::clone(&ctx), Arc::clone(&table), policy));
    let supervisor = if policy == Policy::TinqsCi {
        plant.start(0, 0);
        plant.start(1, 0);
        tokio::spawn(Arc::clone(&plant).supervise())
    } else {
        tokio::spawn(baseline::drive(
            policy,
            Arc::clone(&ctx),
            spec.config.clone(),
        ))
    };

    // Wait for the last job to end, give the controller time to clean up, then stop.
    let mut settle_until: Option<i64> = None;
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let now = ctx.now();
        let settled = ctx.lock().settled();
        match settle_until {
            Some(t) if now >= t => break,
            Some(_) => {}
            None if settled => settle_until = Some(now + SETTLE_MS),
            None if now > span + GIVE_UP_MS => break,
            None => {}
        }
    }
    let _ = stop_tx.send(true);
    supervisor.abort();
    let handles: Vec<JoinHandle<()>> = plant
        .handles
        .lock()
        .iter_mut()
        .filter_map(Option::take)
        .collect();
    for h in handles {
        let _ = tokio::time::timeout(Duration::from_secs(300), h).await;
    }
    world_task.abort();
    let end = ctx.now();
    let mut w = ctx.lock();
    w.close_books(end);
    let lost = w.waiting();
    let failed: std::collections::BTreeSet<String> = table
        .runs()
        .into_iter()
        .filter(|r| r.status.phase == model::Phase::Failed)
        .map(|r| r.id.to_string())
        .collect();
    let gave_up = w
        .waiting_runs()
        .iter()
        .filter(|id| failed.contains(id.as_str()))
        .count() as u64;
    Ok(Report::from_stats(
        policy.name(),
        spec.seed,
        &spec.profile,
        jobs.len() as u64,
        end,
        lost,
        gave_up,
        &w.stats,
    ))
}
