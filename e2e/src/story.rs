//! The demo (`make demo`, binary `tinqs-demo`): one scripted story through the whole loop,
//! narrated as it happens, then the final status and a one-line summary.
//!
//! Eleven jobs across the pools `go` and `docker`. Among them: a runner that never registers
//! (retried), a machine that dies mid-job (its runner goes offline), a Spot interruption before
//! a runner starts (requeued), a job whose webhook is lost (backfilled), a job taken by a warm
//! runner without a launch, two jobs sharing a cache entry on two machines, and a machine EC2
//! warns it will reclaim (replaced); besides them, an instance tagged as ours for a run that
//! does not exist (an orphan) and someone else's instance without our tag (never touched).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use controller::metrics::Metrics;
use gitea_sim::{Conclusion, Faults, JobPhase, JobView};

use crate::booter::BootFault;
use crate::narrate::{Events, Source};
use crate::world::{actions_in, run_of, Controller, ControllerOptions, Settings, World};

/// How long one act may take to settle before the story counts as not converging.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(180);

/// How long the whole story may take.
pub const STORY_WITHIN: Duration = Duration::from_secs(300);

/// What the story ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Jobs queued.
    pub jobs: usize,
    /// Jobs Gitea reports completed.
    pub completed: usize,
    /// Of those, successful.
    pub succeeded: usize,
    /// Of those, failed.
    pub failed: usize,
    /// Jobs not completed, or whose run did not end.
    pub lost: usize,
    /// Instances terminated because their runner never registered or went silent.
    pub zombies: u64,
    /// Orphan instances terminated.
    pub orphans: u64,
    /// Spot interruptions requeued.
    pub interruptions: u64,
    /// Runs created from Gitea's queued-jobs list (a webhook was lost, or not there yet).
    pub backfilled: u64,
    /// Jobs taken by a warm runner, with no launch of their own.
    pub warm: u64,
    /// Jobs that restored a cache entry another job saved.
    pub cache_hits: u64,
    /// Runs moved off a machine EC2 warned about.
    pub warnings: u64,
}

/// What the controllers of a story did, added up: the demo restarts its controller to turn
/// warm runners on and off, and each controller counts only its own actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    zombies: u64,
    orphans: u64,
    interruptions: u64,
    backfilled: u64,
    warm: u64,
    warnings: u64,
}

impl Tally {
    /// Adds what a controller with these `metrics` did.
    fn add(&mut self, metrics: &Metrics) {
        let n = |kind: &str, reason: &str| actions_in(metrics, kind, Some(reason));
        self.zombies += n("terminate", "never-registered") + n("terminate", "zombie");
        self.orphans += n("terminate", "orphan");
        self.interruptions += n("update-status", "spot-interruption");
        self.backfilled += n("create-run", "backfill");
        self.warm += n("update-status", "warm-runner-took-job");
        self.warnings += n("launch", "interruption-warning");
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u64, one: &str, many: &str| {
            if n == 1 {
                format!("{n} {one}")
            } else {
                format!("{n} {many}")
            }
        };
        write!(
            f,
            "demo: {} jobs run ({} succeeded, {} failed), {} jobs lost, {} and {} removed, {} requeued, {} backfilled from Gitea's queue, {} by a warm runner without a launch, {} on another machine, {} heeded",
            self.completed,
            self.succeeded,
            self.failed,
            self.lost,
            plural(self.zombies, "zombie", "zombies"),
            plural(self.orphans, "orphan", "orphans"),
            plural(self.interruptions, "Spot interruption", "Spot interruptions"),
            plural(self.backfilled, "run", "runs"),
            plural(self.warm, "job taken", "jobs taken"),
            plural(self.cache_hits, "cache hit", "cache hits"),
            plural(self.warnings, "Spot warning", "Spot warnings"),
        )
    }
}

/// Runs the story in `world` with controller `ctl`, waits for it to settle, prints the final
/// status, and returns the summary. `ctl` is restarted on the way (warm runners on, then
/// off, each time with `base`'s other options): it is the controller running at the end.
///
/// # Errors
/// When the story does not converge within [`CONVERGE_WITHIN`] (saying what is still
/// missing), or something of the harness fails.
pub async fn run(
    world: &World,
    ctl: &mut Controller,
    base: &ControllerOptions,
) -> anyhow::Result<Summary> {
    let ev = &world.events;
    let say = |text: &str| ev.push(Source::Story, "act", text.to_owned());
    let t = world.settings.timeouts;
    let h = |d: Duration| humantime::format_duration(d).to_string();

    say(&format!(
        "Deadlines for this story: registration {}, idle {}, offline grace {}, orphan minimum age {}, resync {}.",
        h(t.registration),
        h(t.idle),
        h(t.offline_grace),
        h(t.orphan_min_age),
        h(t.resync)
    ));
    say("Act 1: two machines nobody asked the controller for.");
    let foreign = world.launch_foreign().await?;
    let orphan = world.launch_orphan("go").await?;

    let d = Duration::from_secs;
    let mut jobs = Vec::new();

    say("Act 2: three jobs in two pools; each gets its own fresh Spot instance, which ends with its job.");
    jobs.push(world.enqueue("build", &["go"], d(4))?);
    jobs.push(world.enqueue("test", &["go"], d(5))?);
    jobs.push(world.enqueue("image", &["docker"], d(4))?);
    scene(world, &jobs).await?;

    say("Act 3: machines that fail. Runners are interchangeable within a pool, so each pool gets one job at a time here.");
    let lint = world.enqueue("lint", &["go"], d(3))?;
    world.script(&lint, Some(1), BootFault::NeverStarts);
    say(&format!(
        "  job {} `lint` (go): its first machine hangs at boot, so its runner never registers",
        lint.id
    ));
    let integration = world.enqueue("integration", &["docker"], d(30))?;
    world.script(
        &integration,
        Some(1),
        BootFault::OfflineMidJob { after: d(3) },
    );
    say(&format!(
        "  job {} `integration` (docker): its machine freezes 3s into the job, so its runner goes offline",
        integration.id
    ));
    let act3 = [lint, integration];
    scene(world, &act3).await?;
    jobs.extend(act3);

    say("Act 4: EC2 takes a machine back, and Gitea loses a webhook.");
    let race = world.enqueue("race", &["go"], d(4))?;
    world.script(&race, Some(1), BootFault::SpotInterruptedBeforeStart);
    say(&format!(
        "  job {} `race` (go): EC2 reclaims its first Spot instance before the runner starts",
        race.id
    ));
    world.sim.flush_webhooks().await;
    world.sim.set_faults(Faults {
        drop_webhooks: 1.0,
        ..Faults::default()
    });
    let deploy = world.enqueue("deploy", &["docker"], d(3))?;
    world.sim.flush_webhooks().await;
    world.sim.set_faults(Faults::default());
    say(&format!(
        "  job {} `deploy` (docker): Gitea's webhook for it is lost (Gitea never retries one)",
        deploy.id
    ));
    let act4 = [race, deploy];
    scene(world, &act4).await?;
    jobs.extend(act4);

    let mut tally = Tally::default();
    jobs.push(warm_act(world, ctl, &mut tally, base).await?);

    // The warm runner left over from act 5 would take the next `go` job (runners are
    // interchangeable): let the idle rule retire it first, so act 6's jobs get fresh machines.
    let prefix = format!("{}warm-", model::RunnerName::prefix(&world.cluster));
    world
        .wait_until(
            "the warm runners of act 5 are retired",
            CONVERGE_WITHIN,
            || async {
                (!world
                    .sim
                    .runners()
                    .iter()
                    .any(|r| r.name.starts_with(&prefix)))
                .then_some(())
            },
        )
        .await?;
    say("Act 6: a cache that outlives the machine. Two jobs use the same cache key, one after the other, each on a fresh machine.");
    let cached = |name: &str| {
        gitea_sim::JobSpec::new(crate::world::REPO, name, &["go"])
            .duration(d(2))
            .cache("go-mod-9c1e", 512 * 1024)
    };
    let first = world.enqueue_spec(cached("deps"))?;
    scene(world, std::slice::from_ref(&first)).await?;
    let second = world.enqueue_spec(cached("vet"))?;
    scene(world, std::slice::from_ref(&second)).await?;
    for job in [&first, &second] {
        let log = world.sim.job(job.id).map(|j| j.log).unwrap_or_default();
        say(&format!(
            "  job {} `{}` on its own machine: {}",
            job.id,
            job.name,
            log.first().map_or("(no cache step ran)", String::as_str)
        ));
    }
    jobs.extend([first, second]);

    if let Some(queue) = base.events_queue_url.as_deref() {
        say("Act 7: EC2 warns that it will take a machine back before its runner has taken the job.");
        let hold = world.enqueue("e2e", &["docker"], d(3))?;
        world.script(&hold, Some(1), BootFault::SlowBoot(d(15)));
        let run = run_of(&hold);
        let machine = world
            .wait_until(
                "the first machine of `e2e` is launched",
                CONVERGE_WITHIN,
                || async {
                    world
                        .run(&run)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|r| r.status.instance_id)
                },
            )
            .await?;
        world
            .send_ec2_notice(queue, model::notice::INTERRUPTION_WARNING, machine.as_str())
            .await?;
        say(&format!(
            "  job {} `e2e` (docker): its machine {machine} is still booting when the two-minute warning arrives",
            hold.id
        ));
        scene(world, std::slice::from_ref(&hold)).await?;
        jobs.push(hold);
    }

    say("Epilogue: everything of ours must be gone, the orphan included.");
    let settled = world
        .wait_until("the story converges", CONVERGE_WITHIN, || async {
            converged(world, &jobs, &orphan).await.is_ok().then_some(())
        })
        .await;
    if settled.is_err() {
        let missing = converged(world, &jobs, &orphan)
            .await
            .err()
            .unwrap_or_else(|| "it converged just after the deadline".to_owned());
        bail!(
            "the story did not converge within {}: {missing}",
            h(CONVERGE_WITHIN)
        );
    }
    let foreign_now = world.instance(&foreign).await?;
    if !foreign_now.is_live() {
        bail!("someone else's instance {foreign} was terminated: the controller must never touch an instance without our tag");
    }
    say(&format!(
        "Converged. Someone else's instance {foreign} is still {}: never touched.",
        foreign_now.state
    ));

    println!();
    println!("{}", status(world, &jobs).await?);

    let views: Vec<JobView> = jobs.iter().filter_map(|j| world.sim.job(j.id)).collect();
    let done = views
        .iter()
        .filter(|j| j.status == JobPhase::Completed)
        .count();
    let succeeded = views
        .iter()
        .filter(|j| j.conclusion == Some(Conclusion::Success))
        .count();
    let failed = views
        .iter()
        .filter(|j| j.conclusion == Some(Conclusion::Failure))
        .count();
    tally.add(&ctl.metrics);
    Ok(Summary {
        jobs: jobs.len(),
        completed: done,
        succeeded,
        failed,
        lost: jobs.len() - done,
        zombies: tally.zombies,
        orphans: tally.orphans,
        interruptions: tally.interruptions,
        backfilled: tally.backfilled,
        warm: tally.warm,
        cache_hits: views
            .iter()
            .filter(|j| j.log.iter().any(|l| l.starts_with("Cache restored")))
            .count() as u64,
        warnings: tally.warnings,
    })
}

/// Act 5: the operator has pool `go` keep one warm runner; a job is taken by it with no
/// launch, and the pool is topped up; then warm runners are turned off again, so the
/// epilogue can find nothing of ours left. Returns the act's job. What the controllers
/// replaced on the way did is added to `tally`.
async fn warm_act(
    world: &World,
    ctl: &mut Controller,
    tally: &mut Tally,
    base: &ControllerOptions,
) -> anyhow::Result<JobView> {
    let say = |text: &str| world.events.push(Source::Story, "act", text.to_owned());
    say("Act 5: a warm runner. The operator has pool go keep one idle runner ready, so a job starts without waiting for a machine to boot.");
    restart(
        world,
        ctl,
        tally,
        ControllerOptions {
            holder: "tinqs-ci-demo-warm".into(),
            ..base.clone()
        }
        .with_warm("go", 1),
    )
    .await?;
    let ready = |except: Option<model::RunId>| {
        let ctl = &*ctl;
        async move {
            world
                .ready_warm_runs(ctl, "go")
                .await
                .ok()?
                .into_iter()
                .find(|r| Some(&r.id) != except.as_ref())
        }
    };
    let warm = world
        .wait_until("a warm runner of pool go is ready", CONVERGE_WITHIN, || {
            ready(None)
        })
        .await?;
    say(&format!(
        "  warm runner of run {} is online and idle, with no job of its own",
        warm.id
    ));
    let hotfix = world.enqueue("hotfix", &["go"], Duration::from_secs(3))?;
    say(&format!(
        "  job {} `hotfix` (go) is queued; the warm runner asks Gitea for work within its poll",
        hotfix.id
    ));
    scene(world, std::slice::from_ref(&hotfix)).await?;
    let ran_on = world.sim.job(hotfix.id).and_then(|j| j.runner_id);
    if ran_on.is_none() || ran_on != warm.status.runner_id {
        bail!(
            "job {} ran on runner {ran_on:?}, not on the warm runner {:?}",
            hotfix.id,
            warm.status.runner_id
        );
    }
    if ctl
        .fleet
        .launches()
        .iter()
        .any(|l| l.run == run_of(&hotfix))
    {
        bail!(
            "a machine was launched for job {}, which the warm runner took",
            hotfix.id
        );
    }
    say(&format!(
        "  job {} ran on the warm runner: no machine was launched for it",
        hotfix.id
    ));
    let fresh = world
        .wait_until(
            "a fresh warm runner of pool go is ready",
            CONVERGE_WITHIN,
            || ready(Some(warm.id.clone())),
        )
        .await?;
    say(&format!(
        "  pool go is topped up: the warm runner of run {} is ready for the next job",
        fresh.id
    ));
    say(
        "  the operator turns warm runners off again; the idle one is retired like any idle runner",
    );
    restart(world, ctl, tally, base.clone()).await?;
    Ok(hotfix)
}

/// Starts a controller with `options` in place of `ctl` (it waits for the lease), then stops
/// `ctl` as SIGTERM would, releasing the lease to it; what `ctl` did is added to `tally`.
async fn restart(
    world: &World,
    ctl: &mut Controller,
    tally: &mut Tally,
    options: ControllerOptions,
) -> anyhow::Result<()> {
    let next = world.start_controller(options).await?;
    let old = std::mem::replace(ctl, next);
    let metrics = old.metrics.clone();
    let stopped = old.stop().await;
    tally.add(&metrics);
    stopped.context("the controller did not stop cleanly")
}

/// Waits until every job of a scene completed in Gitea and its run ended.
async fn scene(world: &World, jobs: &[JobView]) -> anyhow::Result<()> {
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    world
        .wait_until(
            &format!("jobs {} complete and their runs end", ids.join(", ")),
            CONVERGE_WITHIN,
            || async {
                for job in jobs {
                    let done = world
                        .sim
                        .job(job.id)
                        .is_some_and(|j| j.status == JobPhase::Completed);
                    let ended = matches!(world.run(&run_of(job)).await, Ok(Some(r)) if r.status.phase.is_final());
                    if !(done && ended) {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("the story did not converge: {e:#}"))
}

/// `Ok` once every job completed in Gitea, every run ended, the orphan is gone and nothing of
/// ours is left (no live instance, no registered runner); otherwise what is still missing.
async fn converged(world: &World, jobs: &[JobView], orphan: &str) -> Result<(), String> {
    let mut missing = Vec::new();
    for job in jobs {
        match world.sim.job(job.id) {
            Some(j) if j.status == JobPhase::Completed => {}
            Some(j) => missing.push(format!("job {} is {}", j.id, j.status.as_str())),
            None => missing.push(format!("job {} vanished from Gitea", job.id)),
        }
        match world.run(&run_of(job)).await {
            Ok(Some(r)) if r.status.phase.is_final() => {}
            Ok(Some(r)) => missing.push(format!("run {} is {}", r.id, r.status.phase.as_str())),
            Ok(None) => missing.push(format!("run {} does not exist", run_of(job))),
            Err(e) => missing.push(format!("{e:#}")),
        }
    }
    match world.instances().await {
        Ok(all) => {
            for i in all.iter().filter(|i| i.is_live()) {
                let what = if i.id == orphan {
                    "the orphan"
                } else {
                    "an instance"
                };
                missing.push(format!("{what} {} is still {}", i.id, i.state));
            }
        }
        Err(e) => missing.push(format!("{e:#}")),
    }
    let prefix = model::RunnerName::prefix(&world.cluster);
    for r in world.sim.runners() {
        if r.name.starts_with(&prefix) {
            missing.push(format!("runner {} is still registered", r.name));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    }
}

/// The final status, per pool: runs by phase, instances by state, our runners left.
///
/// # Errors
/// When the table or EC2 cannot be read.
pub async fn status(world: &World, jobs: &[JobView]) -> anyhow::Result<String> {
    let config = world.config()?;
    let mut runs: BTreeMap<String, BTreeMap<&'static str, usize>> = BTreeMap::new();
    let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
    for job in jobs {
        let run = world
            .run(&run_of(job))
            .await?
            .with_context(|| format!("run {} is missing", run_of(job)))?;
        let pool = job.labels.first().cloned().unwrap_or_default();
        *runs
            .entry(pool.clone())
            .or_default()
            .entry(run.status.phase.as_str())
            .or_default() += 1;
        *attempts.entry(pool).or_default() += run.status.attempt;
    }
    let mut instances: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for i in world.instances().await? {
        let pool = i
            .tags
            .get(model::tags::POOL)
            .cloned()
            .unwrap_or_else(|| "?".into());
        *instances
            .entry(pool)
            .or_default()
            .entry(i.state.clone())
            .or_default() += 1;
    }
    let prefix = model::RunnerName::prefix(&world.cluster);
    let mut runners: BTreeMap<String, usize> = BTreeMap::new();
    for r in world.sim.runners() {
        if r.name.starts_with(&prefix) {
            *runners
                .entry(r.labels.first().cloned().unwrap_or_default())
                .or_default() += 1;
        }
    }
    let join = |m: Option<&BTreeMap<String, usize>>| match m {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".to_owned(),
    };
    let mut out = String::from("Final status\n");
    for pool in config.pools.keys() {
        let r = runs.get(pool).map(|m| {
            m.iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<String, usize>>()
        });
        out.push_str(&format!(
            "  pool {pool:<7} runs: {:<28} attempts: {:<3} instances: {:<28} runners left: {}\n",
            join(r.as_ref()),
            attempts.get(pool).copied().unwrap_or(0),
            join(instances.get(pool)),
            runners.get(pool).copied().unwrap_or(0),
        ));
    }
    if let Some(other) = instances.get("?") {
        out.push_str(&format!(
            "  not ours (no pool tag) instances: {}\n",
            join(Some(other))
        ));
    }
    Ok(out)
}

/// Everything `tinqs-demo` does: starts the world and the controller, runs the story, stops
/// everything it started, and returns the summary.
///
/// # Errors
/// As [`run`]; also when the world or the controller cannot start.
pub async fn demo(events: Events) -> anyhow::Result<Summary> {
    let settings = Settings::demo();
    let world = World::start_with_events("demo", settings, events).await?;
    let queue = match world.events_queue().await {
        Ok(q) => q,
        Err(e) => {
            world.shutdown().await;
            return Err(e);
        }
    };
    let mut base = ControllerOptions::named("tinqs-ci-demo");
    base.cache = true;
    base.events_queue_url = Some(queue);
    let mut ctl = match world.start_controller(base.clone()).await {
        Ok(c) => c,
        Err(e) => {
            world.shutdown().await;
            return Err(e);
        }
    };
    let result = match tokio::time::timeout(STORY_WITHIN, run(&world, &mut ctl, &base)).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "the story did not converge within {}\n--- what happened ---\n{}",
            humantime::format_duration(STORY_WITHIN),
            world.events.dump()
        )),
    };
    let stopped = ctl.stop().await;
    world.shutdown().await;
    let summary = result?;
    stopped.context("the controller did not stop cleanly")?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_reads_as_one_line_with_plurals() {
        let s = Summary {
            jobs: 8,
            completed: 8,
            succeeded: 7,
            failed: 1,
            lost: 0,
            zombies: 2,
            orphans: 1,
            interruptions: 1,
            backfilled: 1,
            warm: 1,
            cache_hits: 1,
            warnings: 2,
        };
        assert_eq!(
            s.to_string(),
            "demo: 8 jobs run (7 succeeded, 1 failed), 0 jobs lost, 2 zombies and 1 orphan removed, 1 Spot interruption requeued, 1 run backfilled from Gitea's queue, 1 job taken by a warm runner without a launch, 1 cache hit on another machine, 2 Spot warnings heeded"
        );
    }
}
