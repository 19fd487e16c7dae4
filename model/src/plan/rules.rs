//! The planner's rules. Each rule looks at one run, one instance or one runner and decides;
//! [`Planner::run`] applies them in a fixed order and keeps the budgets.
//!
//! Order within one run matters to the executor: it applies a run's actions in plan order
//! (disable, or deregister then terminate, then the status change, then a launch of the next
//! attempt) and stops at the first that fails.
//!
//! Two rules shape every removal of a runner whose machine is alive, because runners are
//! interchangeable (Gitea gives a queued job to any runner whose labels cover it):
//! - **keep while wanted**: a runner whose own run is over (job finished, taken elsewhere,
//!   cancelled) is kept while a queued job it could serve waits; it counts as a spare that
//!   stands in for a launch;
//! - **two-step retire**: where Gitea can disable runners (1.26+), a runner is disabled on
//!   one pass and removed on a later one, only if it is still not busy; without disable, its
//!   registration is deleted before its machine is terminated. Max lifetime is the only
//!   exception.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::index::{Index, JobView, Ours, Reg};
use super::{Action, Deferred, Plan, Policy, PoolPolicy, Reason, StatusChange, Unschedulable};
use crate::desired::{DesiredRun, JobRef, Origin, Phase, RunSpec};
use crate::notice::NoticeKind;
use crate::observed::{DesiredView, Observed};
use crate::time::Timestamp;
use crate::RunId;

mod warm;

/// How long after recording a launch an instance may still be missing from EC2's list
/// (DescribeInstances is eventually consistent) before the run counts as lost.
pub const EC2_LIST_LAG: Duration = Duration::from_secs(60);

/// How long a runner must have been disabled before it is removed. Gitea shows a runner
/// busy only once it reported on its task (`last_active`, written by UpdateTask and
/// UpdateLog, debounced to 5 s on the 1.27 branch; act_runner reports task state every 5 s
/// from v0.4.0), so a job it picked in the moment before the disable took effect may show
/// seconds later (wiki/Gitea-Behaviour.md, "Runner status"). Three report intervals: one
/// lost or slow report does not make a busy runner look idle.
pub const DISABLE_SETTLE: Duration = Duration::from_secs(15);

/// How soon to look again after planning a step that has a follow-up (a runner disabled
/// before removal) or after a per-pass budget held work back.
pub const FOLLOW_UP: Duration = Duration::from_secs(5);

/// Desired runs for queued Gitea jobs that have none: their `workflow_job` webhook never
/// arrived (Gitea does not retry webhooks), or the controller was down.
///
/// Jobs asking for a foreign label are left to the standing runners that serve them; runs
/// that ended already (`DesiredView::finished`) are not created again. Nothing is backfilled
/// from a partial read of the table: a row missing from it may exist, in any phase, and a
/// launch planned for a fresh row would then be applied to that one (claiming a run that
/// already has a machine, with an older attempt).
#[must_use]
pub fn backfill(
    desired: &DesiredView,
    observed: &Observed,
    policy: &Policy,
    now: Timestamp,
) -> Vec<DesiredRun> {
    let mut jobs: Vec<_> = observed.queued_jobs.items().iter().collect();
    if jobs.is_empty() || !desired.complete {
        return Vec::new();
    }
    jobs.sort_by_key(|j| (j.id, j.attempt));
    let ids: Vec<crate::RunId> = jobs.iter().map(|j| j.run_id()).collect();
    // Which of the queued jobs' runs the table knows: a table the size of the queue, looked
    // up once per row (rather than a table of every row).
    let mut known: hashbrown::HashMap<&str, bool> =
        ids.iter().map(|id| (id.as_str(), false)).collect();
    for key in desired
        .runs
        .iter()
        .map(|r| r.id.as_str())
        .chain(desired.invalid.iter().map(|r| r.key.as_str()))
        .chain(desired.finished.iter().map(|r| r.id.as_str()))
    {
        if let Some(k) = known.get_mut(key) {
            *k = true;
        }
    }
    let mut seen: HashSet<&str> = HashSet::with_capacity(ids.len());
    let mut out = Vec::new();
    for (job, id) in jobs.into_iter().zip(&ids) {
        if known.get(id.as_str()) == Some(&true) || !seen.insert(id.as_str()) {
            continue;
        }
        let id = id.clone();
        if policy.asks_foreign(&job.labels) {
            continue;
        }
        let job_ref = JobRef {
            id: job.id,
            attempt: job.pick(),
            name: (!job.name.is_empty()).then(|| job.name.clone()),
            run_id: job.run_id,
        };
        let spec = RunSpec::for_job(
            job_ref,
            job.labels.clone(),
            Some(job.repo.clone()),
            Origin::Backfill,
            now,
        );
        out.push(DesiredRun::new(id, spec));
    }
    out
}

/// The planner's inputs; [`Planner::run`] builds the lookup tables once and plans one pass.
pub(super) struct Planner<'a> {
    desired: &'a DesiredView,
    backfilled: &'a [DesiredRun],
    observed: &'a Observed,
    policy: &'a Policy,
    now: Timestamp,
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        desired: &'a DesiredView,
        backfilled: &'a [DesiredRun],
        observed: &'a Observed,
        policy: &'a Policy,
        now: Timestamp,
    ) -> Self {
        Planner {
            desired,
            backfilled,
            observed,
            policy,
            now,
        }
    }

    pub(super) fn run(self) -> Plan {
        let idx = Index::new(self.desired, self.backfilled, self.observed, self.policy);
        Pass::new(&idx, &self).run()
    }
}

/// One pass of the rules over the lookup tables.
struct Pass<'a> {
    policy: &'a Policy,
    now: Timestamp,
    idx: &'a Index<'a>,
    backfilled: &'a [DesiredRun],
    /// Ended runs whose job Gitea still lists as queued.
    finished: &'a [DesiredRun],
    /// Every source complete: destructive actions and absence-based conclusions allowed.
    destroy_ok: bool,
    /// The EC2 list is complete: launches allowed (caps can be counted).
    fleet_ok: bool,
    /// The Gitea runner list is complete.
    forge_ok: bool,
    out: Plan,
    terminations: u32,
    launches: u32,
    live_total: u32,
    live_by_pool: BTreeMap<&'a str, u32>,
    /// Instances some rule took care of, by place in `Index::ours`.
    handled_instances: Vec<bool>,
    /// Runners some rule took care of, by [`Reg::slot`] (one per runner id).
    handled_runners: Vec<bool>,
    /// Idle (or booting) runners kept for queued work although their own run is over; each
    /// stands in for one launch.
    spares: Vec<Spare<'a>>,
    /// Runs that want a launch of an attempt, decided after every run was looked at (so the
    /// spares are known).
    wanting: Vec<Wanting<'a>>,
    /// Pending warm runs, launched after every job's run (jobs come first under the caps).
    warm_wanting: Vec<&'a DesiredRun>,
    /// Online, idle warm runners, ranked per pool once every run was looked at.
    warm_ready: Vec<WarmReady<'a>>,
    /// Warm runs whose runner was matched with a waiting job this pass: no longer warm.
    warm_taken: HashSet<&'a str>,
    next_deadline: Option<Timestamp>,
    follow_up: bool,
}

/// An idle runner of ours kept because queued work could use it.
struct Spare<'a> {
    runner: Reg<'a>,
    taken: bool,
    /// The warm run it belongs to, for a warm runner.
    warm: Option<&'a DesiredRun>,
    /// Not online yet: its machine was launched less than `timeouts.boot` ago. Idle runners
    /// stand in first; a booting one only where none is left.
    booting: bool,
}

/// A run that wants a launch of `attempt`, decided once the spares are known.
struct Wanting<'a> {
    run: &'a DesiredRun,
    attempt: u32,
    reason: Reason,
    /// The run is running, but its runner took another run's job: a launch first requeues
    /// it as `attempt`; a spare standing in changes nothing.
    handover: bool,
}

/// A warm runner that is online and idle: kept, used, or retired once its pool's are ranked.
struct WarmReady<'a> {
    run: &'a DesiredRun,
    instance: &'a Ours<'a>,
    runner: Reg<'a>,
    /// When it was first seen online: its idle age counts from here.
    since: Timestamp,
}

impl<'a> Pass<'a> {
    fn new(idx: &'a Index<'a>, inputs: &Planner<'a>) -> Self {
        let Planner {
            desired,
            backfilled,
            observed,
            policy,
            now,
        } = *inputs;
        let fleet_ok = observed.instances.is_complete();
        let forge_ok = observed.runners.is_complete();
        let mut partial = Vec::new();
        if !desired.complete {
            partial.push("desired runs (DynamoDB) incomplete".to_owned());
        }
        for (name, err) in [
            ("EC2 instances", observed.instances.error()),
            ("Gitea runners", observed.runners.error()),
            ("Gitea queued jobs", observed.queued_jobs.error()),
        ] {
            if let Some(err) = err {
                partial.push(format!("{name} incomplete: {err}"));
            } else if name == "EC2 instances" && !fleet_ok || name == "Gitea runners" && !forge_ok {
                partial.push(format!("{name} not observed"));
            }
        }
        let destroy_ok = partial.is_empty();
        // Room for about one action per run from the start: growing a long list of actions
        // copies it again at each doubling.
        let mut out = Plan {
            actions: Vec::with_capacity(idx.runs.len() + backfilled.len()),
            ..Plan::default()
        };
        if !destroy_ok {
            out.withheld = Some(format!(
                "no terminations, deregistrations or loss decisions this pass: {}",
                partial.join("; ")
            ));
        }
        Pass {
            policy,
            now,
            idx,
            backfilled,
            finished: &desired.finished,
            destroy_ok,
            fleet_ok,
            forge_ok,
            out,
            terminations: 0,
            launches: 0,
            live_total: 0,
            live_by_pool: BTreeMap::new(),
            handled_instances: vec![false; idx.ours.len()],
            handled_runners: vec![false; idx.runners.all().len()],
            spares: Vec::new(),
            wanting: Vec::new(),
            warm_wanting: Vec::new(),
            warm_ready: Vec::new(),
            warm_taken: HashSet::new(),
            next_deadline: None,
            follow_up: false,
        }
    }

    fn run(mut self) -> Plan {
        self.count_capacity();
        for run in self.backfilled {
            let job_id = run.spec.job.as_ref().map_or(0, |j| j.id);
            self.out.actions.push(Action::CreateRun {
                run: run.id.clone(),
                spec: run.spec.clone(),
                reason: Reason::Backfill { job_id },
            });
        }
        let idx = self.idx;
        for (k, &run) in idx.runs.iter().enumerate() {
            self.run_rules(k, run);
        }
        self.retry_failed();
        self.orphans();
        self.warm_idle();
        self.launch_wanting();
        self.warm_top_up();
        self.ghosts();
        self.finish()
    }

    // ---- capacity -------------------------------------------------------------------------

    /// Counts live instances per pool, plus launches in flight (fresh claims with no
    /// instance yet), so caps hold across passes.
    fn count_capacity(&mut self) {
        let idx = self.idx;
        for i in &idx.ours {
            if i.state.is_live() {
                self.live_total += 1;
                if let Some(pool) = i.policy_pool {
                    *self.live_by_pool.entry(pool.name.as_str()).or_default() += 1;
                }
            }
        }
        for (k, &run) in idx.runs.iter().enumerate() {
            if run.status.phase != Phase::Launching {
                continue;
            }
            if idx.live(idx.run_named(k).1).is_some() {
                continue;
            }
            self.live_total += 1;
            if let Ok(pool) = self.choose_pool(run) {
                *self.live_by_pool.entry(pool.name.as_str()).or_default() += 1;
            }
        }
    }

    /// The pool that serves `run` ([`Policy::pool_for`]).
    fn choose_pool(&self, run: &DesiredRun) -> Result<&'a PoolPolicy, ()> {
        self.policy.pool_for(&run.spec).ok_or(())
    }

    /// Marks `runners` as taken care of: the ghost rule leaves them alone.
    fn handle(&mut self, runners: &[Reg]) {
        for r in runners {
            self.handled_runners[r.slot as usize] = true;
        }
    }

    fn lifetime_of(&self, instance: &Ours) -> Duration {
        self.policy.max_lifetime_of(instance.policy_pool)
    }

    // ---- per run --------------------------------------------------------------------------

    /// The rules for `run`, the `k`th of the index's runs.
    fn run_rules(&mut self, k: usize, run: &'a DesiredRun) {
        let idx = self.idx;
        let (name, instances, runners) = idx.run_named(k);
        let instance = idx.live(instances);
        if let Some(i) = instance {
            self.handled_instances[i.at as usize] = true;
        }
        self.handle(runners);
        let (foreign, job) = idx.run_facts(k);
        if foreign {
            return;
        }
        let over = if run.spec.cancel {
            Some((Phase::Cancelled, Reason::Cancelled))
        } else {
            match job {
                JobView::Done => Some((Phase::Done, Reason::JobFinished)),
                JobView::Taken { runner: Some(on) } if on != name => {
                    Some((Phase::Done, Reason::JobTakenElsewhere))
                }
                _ => None,
            }
        };
        if let Some((phase, reason)) = over {
            return self.release(run, name, instance, runners, phase, reason);
        }
        match (run.status.phase, instance) {
            (Phase::Pending | Phase::Launching, Some(i)) => {
                // A tagged instance of the current attempt exists (a crash after the launch,
                // before the record): adopt it, then apply the running rules in this pass.
                self.adopt(run, i);
                self.running(run, name, Some(i), runners);
            }
            (Phase::Pending, None) => self.pending(run, job, runners),
            (Phase::Launching, None) => self.launching(run, name, job, runners),
            (Phase::Running, _) => self.running(run, name, instance, runners),
            (Phase::Done | Phase::Failed | Phase::Cancelled, _) => {}
        }
    }

    /// Rules "finished", "taken elsewhere" and "cancelled": the run is over. Its runner is
    /// kept while it is busy (up to its max lifetime) or while queued work could use it;
    /// otherwise it is retired (two steps), and the run ends once nothing of it is left.
    fn release(
        &mut self,
        run: &'a DesiredRun,
        name: &str,
        instance: Option<&'a Ours<'a>>,
        runners: &[Reg<'a>],
        phase: Phase,
        reason: Reason,
    ) {
        if instance.is_none() && runners.is_empty() {
            if run.status.phase == Phase::Pending || self.destroy_ok {
                self.end(run, phase, reason);
            }
            return;
        }
        if !self.destroy_ok {
            return;
        }
        let Some(i) = instance else {
            // A machine launched moments ago may still be missing from EC2's list: its
            // registration may be serving a job already. Wait out the list's lag.
            let recorded = run.status.launched_at.or(run.status.claimed_at);
            if let Some(at) = recorded {
                if self.idx.ended_instance(name).is_none() && !self.listed_since(at) {
                    return;
                }
            }
            if self.idx.ended_instance(name).is_none() && self.runner_talks(runners) {
                // Its machine lives, unlisted yet: retired once EC2 lists it.
                return self.deadline(self.now.plus(FOLLOW_UP));
            }
            // Registrations without a machine of ours run nothing of ours, whatever a webhook
            // said: remove them (unless Gitea itself calls one busy), then end.
            for r in runners.iter().filter(|r| !r.busy) {
                self.deregister(r, Some(run.id.clone()), reason.clone());
            }
            return self.end(run, phase, reason);
        };
        if self.lifetime_expired(i) {
            // Past its lifetime nothing is kept, busy or not.
            if self.terminate_allowed(i) {
                for r in runners {
                    self.deregister(r, Some(run.id.clone()), reason.clone());
                }
                self.terminate(i, Some(run), reason.clone());
                self.end(run, phase, reason);
            }
            return;
        }
        self.deadline(i.launched_at.plus(self.lifetime_of(i)));
        if runners.iter().any(|r| self.idx.is_busy(r)) {
            return; // it took a job: it ends by itself when the job is done
        }
        if self.idx.notice(i).is_some() {
            // Warned by EC2: not kept for queued work it may not finish.
            if self.retire(Some(run), i, runners, &reason) {
                self.end(run, phase, reason);
            }
            return;
        }
        let booting = runners
            .iter()
            .find(|r| !r.online && !r.disabled && r.wanted);
        if let Some(r) = booting.filter(|_| run.status.registered_at.is_none()) {
            // Still booting, and about to come online and take one of those jobs: keep it
            // until the registration timeout says it never will. While its machine is young
            // enough to be booting normally, it stands in for one launch.
            let launched = run.status.launched_at.unwrap_or(i.launched_at);
            let deadline = self.policy.registration_deadline(launched);
            if deadline > self.now {
                let boot = launched.plus(self.policy.timeouts.boot);
                if boot > self.now {
                    self.deadline(boot);
                    self.spares.push(Spare {
                        runner: *r,
                        taken: false,
                        warm: None,
                        booting: true,
                    });
                }
                return self.deadline(deadline);
            }
        }
        if let Some(r) = runners.iter().find(|r| r.online && !r.disabled && r.wanted) {
            if let Some(stuck) = self.stuck(run, r) {
                if self.retire(Some(run), i, runners, &stuck) {
                    self.end(run, phase, reason);
                }
                return;
            }
            // Rule "keep while wanted": Gitea is about to give it one of those jobs.
            self.spares.push(Spare {
                runner: *r,
                taken: false,
                warm: None,
                booting: false,
            });
            return;
        }
        if self.retire(Some(run), i, runners, &reason) {
            self.end(run, phase, reason);
        }
    }

    /// Rule "launch": a pending run with no runner gets one, within budgets and caps, once
    /// Gitea confirms its job waits (where the queued list exists); a run no pool serves is
    /// reported unschedulable, with its labels.
    fn pending(&mut self, run: &'a DesiredRun, job: &JobView, runners: &[Reg<'a>]) {
        match job {
            JobView::Taken { .. } => {
                if self.destroy_ok {
                    // With no instance, a registration under this name is unused whatever the
                    // webhook says; remove it with the run rather than as a ghost later.
                    for r in runners.iter().filter(|r| !r.busy) {
                        self.deregister(r, Some(run.id.clone()), Reason::Ghost);
                    }
                }
                return self.end(run, Phase::Done, Reason::JobTakenElsewhere);
            }
            // Not confirmed this pass (the read of the job failed): launch nothing yet.
            JobView::Unknown => {
                if self.choose_pool(run).is_err() {
                    self.out.unschedulable.push(Unschedulable {
                        run: run.id.clone(),
                        labels: run.spec.labels.clone(),
                    });
                }
                return self.follow_up();
            }
            JobView::Done | JobView::Queued { .. } => {}
        }
        if self.clear_registrations(run, runners, &Reason::Ghost) {
            if run.is_warm() {
                self.warm_wanting.push(run);
            } else {
                self.wanting.push(Wanting {
                    run,
                    attempt: run.status.attempt.max(1),
                    reason: Reason::NoRunner,
                    handover: false,
                });
            }
        }
    }

    /// Rule "stale claim": a claim older than the launch timeout with no instance is launched
    /// again with the same attempt (so the same client token: EC2 returns the instance if it
    /// did start), after removing any registration the failed attempt left.
    fn launching(&mut self, run: &'a DesiredRun, name: &str, job: &JobView, runners: &[Reg<'a>]) {
        if !self.destroy_ok {
            return;
        }
        if let Some(ended) = self.idx.ended_instance(name) {
            // NOTE: relaunching with the same client token would hand back this dead instance.
            return self.lost(run, name, Some(ended), runners);
        }
        let timeout = self.policy.timeouts.launch;
        let deadline = run.status.claimed_at.map_or(self.now, |c| c.plus(timeout));
        if deadline > self.now {
            return self.deadline(deadline);
        }
        if self.runner_talks(runners) {
            // The claimed attempt's machine lives although EC2 does not list it: adopted once
            // it is listed.
            return self.deadline(self.now.plus(FOLLOW_UP));
        }
        match job {
            // The job started meanwhile: nothing to relaunch for.
            JobView::Taken { .. } => return self.lost(run, name, None, runners),
            JobView::Unknown => return self.follow_up(),
            JobView::Done | JobView::Queued { .. } => {}
        }
        let reason = Reason::StaleClaim { timeout };
        if self.clear_registrations(run, runners, &reason) {
            self.launch(run, run.status.attempt.max(1), reason);
        }
    }

    /// Removes registrations left under a runner name about to be launched, so the launch
    /// does not register a second runner of that name. `false` (launch nothing) while one of
    /// them is busy, or when the view is partial.
    fn clear_registrations(
        &mut self,
        run: &DesiredRun,
        runners: &[Reg<'a>],
        reason: &Reason,
    ) -> bool {
        if runners.is_empty() {
            return true;
        }
        if !self.destroy_ok || runners.iter().any(|r| self.idx.is_busy(r)) {
            return false;
        }
        for r in runners {
            self.deregister(r, Some(run.id.clone()), reason.clone());
        }
        true
    }

    fn adopt(&mut self, run: &'a DesiredRun, i: &'a Ours<'a>) {
        let change = StatusChange::Adopt {
            instance: i.id.clone(),
            launched_at: i.launched_at,
        };
        self.status(run, change, Reason::InstanceFound);
    }

    /// The rules for a run whose instance is recorded: max lifetime, registration, stuck,
    /// idle, zombie, and loss of the instance.
    fn running(
        &mut self,
        run: &'a DesiredRun,
        name: &str,
        instance: Option<&'a Ours<'a>>,
        runners: &[Reg<'a>],
    ) {
        let Some(i) = instance else {
            let ended = self.idx.ended_instance(name);
            let recorded = run.status.launched_at.unwrap_or(self.now);
            if ended.is_none() && !self.listed_since(recorded) {
                return;
            }
            if ended.is_none() && self.runner_talks(runners) {
                // Busy, it ends by itself. Online and idle, it is waited for as long as a
                // launch may take to show; past that, a machine EC2 never lists is not one
                // we can see or stop, and a runner on it that takes no job would hold the
                // run forever: the run goes on elsewhere (the delete is guarded).
                let busy = runners.iter().any(|r| self.idx.is_busy(r));
                let patience = self.policy.timeouts.launch.max(EC2_LIST_LAG);
                if busy || recorded.plus(patience) > self.now {
                    return self.deadline(self.now.plus(FOLLOW_UP));
                }
            }
            return self.lost(run, name, ended, runners);
        };
        if self.lifetime_expired(i) {
            return self.max_lifetime(run, i, runners);
        }
        self.deadline(i.launched_at.plus(self.lifetime_of(i)));
        if !self.forge_ok {
            return;
        }
        if let Some(notice) = self.idx.notice(i) {
            // Rule "warned": EC2 will reclaim the machine (or may soon). A runner that is
            // not busy must not take a job it cannot finish: retire it (disabled first) and
            // let the run go on elsewhere. A busy one runs on; its run notes the warning.
            if !runners.iter().any(|r| self.idx.is_busy(r)) {
                let reason = Reason::Notice { kind: notice.kind };
                return self.retire_and_decide(run, name, i, runners, reason);
            }
            if run.status.warned_at.is_none() {
                let change = StatusChange::Warned { at: notice.at };
                self.status(run, change, Reason::Notice { kind: notice.kind });
            }
        }
        match runners.iter().find(|r| r.online) {
            Some(r) => self.online(run, name, i, r, runners),
            None => self.not_online(run, name, i, runners),
        }
    }

    /// Rule "max lifetime": terminate, whatever the runner says, and fail the run. The only
    /// removal that does not wait for a disable to take effect.
    fn max_lifetime(&mut self, run: &'a DesiredRun, i: &'a Ours<'a>, runners: &[Reg<'a>]) {
        if !self.destroy_ok || !self.terminate_allowed(i) {
            return;
        }
        let reason = Reason::MaxLifetime {
            limit: self.lifetime_of(i),
        };
        for r in runners {
            self.deregister(r, Some(run.id.clone()), reason.clone());
        }
        self.terminate(i, Some(run), reason.clone());
        if run.is_warm() && run.status.took_job_at.is_none() {
            return self.end(run, Phase::Done, reason); // an idle warm runner's natural end
        }
        self.fail(run, reason.to_string(), reason);
    }

    /// The runner is online: record it, and apply the stuck and idle rules.
    fn online(
        &mut self,
        run: &'a DesiredRun,
        name: &str,
        i: &'a Ours<'a>,
        r: &Reg<'a>,
        runners: &[Reg<'a>],
    ) {
        let registered_at = match run.status.registered_at {
            None => {
                self.status(
                    run,
                    StatusChange::Registered {
                        runner_id: r.id,
                        at: self.now,
                    },
                    Reason::RunnerOnline,
                );
                self.now
            }
            Some(at) => {
                if run.status.offline_since.is_some() {
                    self.status(run, StatusChange::Online, Reason::RunnerOnline);
                }
                at
            }
        };
        if !run.is_warm() && self.idx.took_a_job(name) {
            if let JobView::Queued { confirmed: true } = self.idx.job_view(run) {
                // Rule "handover": the runner took another run's job (Gitea hands the oldest
                // matching job to whichever runner asks first), and an ephemeral runner takes
                // only one. This run's job still waits: it wants another runner, which a
                // spare (that other run's runner, say, still booting) may be; else a new
                // attempt. The busy machine runs on as an old attempt and ends by itself.
                return self.wanting.push(Wanting {
                    run,
                    attempt: run.status.attempt.max(1) + 1,
                    reason: Reason::RunnerTookAnotherJob,
                    handover: true,
                });
            }
        }
        if self.idx.is_busy(r) {
            if run.is_warm() && run.status.took_job_at.is_none() {
                let change = StatusChange::TookJob { at: self.now };
                self.status(run, change, Reason::WarmRunnerTookJob);
            }
            return;
        }
        if let Some(stuck) = self.stuck(run, r) {
            return self.retire_and_decide(run, name, i, runners, stuck);
        }
        if run.is_warm() && !r.disabled && run.status.took_job_at.is_none() {
            // Kept, used or retired once its pool's warm runners are ranked.
            return self.warm_ready.push(WarmReady {
                run,
                instance: i,
                runner: *r,
                since: registered_at,
            });
        }
        // Rule "idle": online, not busy, past the idle timeout, and nothing queued could use it.
        let timeout = self.policy.timeouts.idle;
        let deadline = registered_at.plus(timeout);
        let wanted = r.wanted;
        if !wanted && deadline <= self.now {
            return self.retire_and_decide(run, name, i, runners, Reason::Idle { timeout });
        }
        if r.disabled {
            // Disabled on an earlier pass (or by a person): it takes no job any more.
            return self.retire_and_decide(run, name, i, runners, Reason::Disabled);
        }
        if !wanted {
            self.deadline(deadline);
        }
    }

    /// Rule "stuck": the runner has been online and idle for the stuck timeout while a job it
    /// could serve has been waiting that long too. act_runner asks for work every 2 s, and
    /// Gitea hands the oldest matching job to whichever runner asks, so a healthy runner
    /// would have taken it.
    ///
    /// A run that was over before its runner came online never records when it did: its
    /// launch stands in (as for an orphan), else the runner would never count as stuck and
    /// would stand in for launches forever.
    fn stuck(&mut self, run: &DesiredRun, r: &Reg) -> Option<Reason> {
        let since = run.status.registered_at.or(run.status.launched_at);
        self.stuck_since(since.unwrap_or(self.now), r)
    }

    /// [`Self::stuck`] for a runner first seen online at `online_since`.
    fn stuck_since(&mut self, online_since: Timestamp, r: &Reg) -> Option<Reason> {
        if !r.online || r.disabled || self.idx.is_busy(r) {
            return None;
        }
        let timeout = self.policy.timeouts.stuck;
        let waiting_since = self.idx.demand_waiting_since(&r.labels)?;
        let deadline = online_since.max(waiting_since).plus(timeout);
        if deadline > self.now {
            self.deadline(deadline);
            return None;
        }
        Some(Reason::Stuck { timeout })
    }

    /// The runner is offline or missing: rules "never registered" and "zombie".
    fn not_online(
        &mut self,
        run: &'a DesiredRun,
        name: &str,
        i: &'a Ours<'a>,
        runners: &[Reg<'a>],
    ) {
        // A runner a webhook saw take the job did register, even if we never saw it online.
        if run.status.registered_at.is_none() && !self.idx.took_a_job(name) {
            let timeout = self.policy.timeouts.registration;
            let launched = run.status.launched_at.unwrap_or(i.launched_at);
            let deadline = self.policy.registration_deadline(launched);
            if deadline > self.now {
                return self.deadline(deadline);
            }
            return self.retire_and_decide(
                run,
                name,
                i,
                runners,
                Reason::NeverRegistered { timeout },
            );
        }
        let grace = self.policy.timeouts.offline_grace;
        match run.status.offline_since {
            None => {
                self.deadline(self.now.plus(grace));
                self.status(
                    run,
                    StatusChange::Offline { since: self.now },
                    Reason::RunnerOffline,
                );
            }
            Some(since) if since.plus(grace) > self.now => self.deadline(since.plus(grace)),
            Some(_) => self.retire_and_decide(run, name, i, runners, Reason::Zombie { grace }),
        }
    }

    /// Whether one of a run's registrations is online or busy in Gitea. Only the machine of
    /// that attempt holds the registration, so the machine lives, whether or not EC2 lists
    /// it yet (DescribeInstances lags launches, and a list read just before the lag ran out
    /// is planned on just after): the run is not lost, and its runner is not deleted.
    fn runner_talks(&self, runners: &[Reg]) -> bool {
        runners.iter().any(|r| r.online || self.idx.is_busy(r))
    }

    /// Retires a run's instance and runners, then decides what becomes of the run.
    fn retire_and_decide(
        &mut self,
        run: &'a DesiredRun,
        name: &str,
        i: &'a Ours<'a>,
        runners: &[Reg<'a>],
        reason: Reason,
    ) {
        if self.retire(Some(run), i, runners, &reason) {
            self.after_loss(run, name, reason);
        }
    }

    /// The two-step retire of a live instance and its registrations. Where Gitea can disable
    /// runners, a registration not yet disabled is disabled this pass and removed on a later
    /// one (if it is still not busy then, it took no job in between); without disable, the
    /// registrations are deleted before the machine is terminated. `true` once the removal
    /// is planned; `false` while it waits for the disable, a budget, or a whole view.
    fn retire(
        &mut self,
        run: Option<&DesiredRun>,
        i: &'a Ours<'a>,
        runners: &[Reg<'a>],
        reason: &Reason,
    ) -> bool {
        if !self.destroy_ok || runners.iter().any(|r| self.idx.is_busy(r)) {
            return false;
        }
        // Every step names the machine's run, so the executor carries them out in order, the
        // runner stopped before its machine goes.
        let owner = owner_of(run, i);
        if self.policy.can_disable_runners && runners.iter().any(|r| !r.disabled) {
            for r in runners.iter().filter(|r| !r.disabled) {
                self.disable(r, owner.clone(), reason.clone());
            }
            return false;
        }
        // A job picked just before the disable took effect shows as busy only from the
        // runner's first report on it: the removal waits until that would show. A runner
        // seen offline now picked nothing before the disable (a pick is a contact, which
        // would show it online), so a zombie is removed without the wait.
        let settled = runners
            .iter()
            .filter(|r| r.disabled && r.online)
            .filter_map(|r| self.idx.disabled_since(r.id))
            .max()
            .map(|t| t.plus(DISABLE_SETTLE));
        if let Some(at) = settled.filter(|at| *at > self.now) {
            self.deadline(at);
            return false;
        }
        if !self.terminate_allowed(i) {
            return false;
        }
        for r in runners {
            // Without disable, the delete itself is what stops the runner taking a job: it
            // goes ahead only if the runner is still as seen.
            self.deregister_guarded(r, owner.clone(), reason.clone());
        }
        self.terminate(i, run, reason.clone());
        true
    }

    /// Rules "spot interruption" and "instance lost": the instance is gone and the run is
    /// not finished.
    fn lost(
        &mut self,
        run: &'a DesiredRun,
        name: &str,
        ended: Option<&'a Ours<'a>>,
        runners: &[Reg<'a>],
    ) {
        if !self.destroy_ok {
            return;
        }
        let reason = if ended.is_some_and(|i| i.was_interrupted()) {
            Reason::SpotInterruption
        } else {
            Reason::InstanceLost
        };
        // Deleted only if still as seen: a registration that came online since has a live
        // machine after all, and may be taking a job.
        for r in runners {
            self.deregister_guarded(r, Some(run.id.clone()), reason.clone());
        }
        self.after_loss(run, name, reason);
    }

    /// What becomes of a run whose runner is gone: a job still waiting gets a new attempt
    /// (or the run fails once attempts are used up); a job that ran or was taken by
    /// another runner ends the run; a job whose state is unknown this pass is looked at
    /// again next pass.
    fn after_loss(&mut self, run: &'a DesiredRun, name: &str, cause: Reason) {
        if run.is_warm() {
            return self.warm_over(run, name, cause);
        }
        let still_waiting = match self.idx.job_view(run) {
            JobView::Done => {
                return self.end(run, Phase::Done, Reason::JobFinished);
            }
            JobView::Taken { runner: Some(on) }
                if on == name
                    && matches!(cause, Reason::SpotInterruption | Reason::Zombie { .. }) =>
            {
                // The machine died under the job. Gitea fails a job whose runner vanished
                // (zombie task cron) and does not queue it again: a re-run in Gitea queues it
                // as a new pick, which gets a run of its own.
                let warned = run
                    .status
                    .warned_at
                    .map(|t| format!(" (EC2 warned at {t})"))
                    .unwrap_or_default();
                let error = format!("{cause} while running the job{warned}; re-run it in Gitea");
                return self.fail(run, error, cause);
            }
            JobView::Taken { runner: Some(on) } if on == name => {
                // Our runner took the job and its machine ended by itself: the normal end of
                // an ephemeral runner, whose `completed` webhook is late or was lost.
                return self.end(run, Phase::Done, Reason::RunnerServedJob);
            }
            JobView::Taken { .. } => {
                return self.end(run, Phase::Done, Reason::JobTakenElsewhere);
            }
            JobView::Unknown => return self.follow_up(),
            JobView::Queued { confirmed: true } => true,
            JobView::Queued { confirmed: false } => {
                // Without a whole queued list, a job can only have been taken if the runner
                // registered; after a Spot reclaim, a new attempt is the safe side.
                matches!(cause, Reason::SpotInterruption | Reason::Notice { .. })
                    || run.status.registered_at.is_none()
            }
        };
        if !still_waiting {
            let reason = if matches!(cause, Reason::Idle { .. } | Reason::Disabled) {
                Reason::JobTakenElsewhere
            } else {
                Reason::JobNoLongerWaiting
            };
            return self.end(run, Phase::Done, reason);
        }
        let attempt = run.status.attempt.max(1);
        let max = self.policy.safety.max_attempts;
        if attempt >= max {
            let error = format!("{cause}; gave up after {attempt} attempts");
            return self.fail(run, error, Reason::AttemptsExhausted { attempts: max });
        }
        self.status(
            run,
            StatusChange::Requeue {
                attempt: attempt + 1,
            },
            cause.clone(),
        );
        self.launch(run, attempt + 1, cause);
    }

    /// Rule "try again": Gitea never gives up on a queued job, so neither does the
    /// controller. A run failed after its attempts whose job Gitea still lists as queued
    /// rests `timeouts.retry_failed`, then gets one more attempt (and fails again if that
    /// one is lost too): a job that cannot start costs one attempt per rest, never waits
    /// forever. Cancelled runs stay cancelled.
    fn retry_failed(&mut self) {
        let after = self.policy.timeouts.retry_failed;
        for run in self.finished {
            if run.status.phase != Phase::Failed || run.spec.cancel || run.is_warm() {
                continue;
            }
            if !matches!(self.idx.job_view(run), JobView::Queued { confirmed: true }) {
                continue;
            }
            let rested = run.status.finished_at.map_or(self.now, |t| t.plus(after));
            if rested > self.now {
                self.deadline(rested);
                continue;
            }
            let attempt = run.status.attempt.max(1) + 1;
            let reason = Reason::RetryFailed { after };
            self.status(run, StatusChange::Requeue { attempt }, reason.clone());
            self.wanting.push(Wanting {
                run,
                attempt,
                reason,
                handover: false,
            });
        }
    }

    // ---- launches that spares stand in for ------------------------------------------------

    /// Launches for pending runs, oldest first, unless a runner kept for queued work can
    /// take the job instead (runners are interchangeable per label set): an idle one first,
    /// else one still booting within `timeouts.boot`.
    fn launch_wanting(&mut self) {
        let wanting = std::mem::take(&mut self.wanting);
        // Per label list asked for and kind of spare, where the search for a spare may start:
        // no spare of that kind before it is both free and fitting (spares are only ever
        // taken here), so each spare is looked at once per label list rather than once per
        // run.
        let mut from: HashMap<(&[String], bool), usize> = HashMap::new();
        for w in wanting {
            let Wanting {
                run,
                attempt,
                reason,
                handover,
            } = w;
            if self.choose_pool(run).is_err() {
                self.launch(run, attempt, reason); // reports it unschedulable
                continue;
            }
            let labels = run.spec.labels.as_slice();
            let found = [false, true].into_iter().find_map(|booting| {
                let start = from.get(&(labels, booting)).copied().unwrap_or(0);
                let found = self.spares[start..]
                    .iter()
                    .position(|s| {
                        !s.taken
                            && s.booting == booting
                            && labels
                                .iter()
                                .all(|l| s.runner.labels.iter().any(|have| have == l))
                    })
                    .map(|k| start + k);
                from.insert(
                    (labels, booting),
                    found.map_or(self.spares.len(), |k| k + 1),
                );
                found
            });
            if let Some(spare) = found.map(|k| &mut self.spares[k]) {
                spare.taken = true;
                if let Some(warm) = spare.warm {
                    self.warm_taken.insert(warm.id.as_str());
                }
                let name = spare.runner.name.clone();
                let state = if spare.booting { "booting" } else { "idle" };
                // An idle one takes a job within seconds: look again soon. A booting one is
                // looked at again when its time to boot runs out (its run set that deadline).
                self.follow_up |= !spare.booting;
                self.out.deferred.push(Deferred {
                    what: format!(
                        "launch {}",
                        crate::RunnerName::new(&self.policy.cluster, &run.id, attempt)
                    ),
                    limit: format!("{state} runner {name} can take a queued job with these labels"),
                });
                continue;
            }
            if handover {
                self.status(run, StatusChange::Requeue { attempt }, reason.clone());
            }
            self.launch(run, attempt, reason);
        }
    }

    // ---- instances and runners no run claims --------------------------------------------

    /// Rule "orphan": an instance of ours that no live run wants, once older than the
    /// minimum age (a busy one only at its max lifetime), retired in two steps.
    fn orphans(&mut self) {
        if !self.destroy_ok {
            return;
        }
        let min_age = self.policy.timeouts.orphan_min_age;
        let idx = self.idx;
        for i in &idx.ours {
            if !i.state.is_live() || self.handled_instances[i.at as usize] {
                continue;
            }
            if i.run_tag.is_some_and(|k| self.idx.is_invalid(k)) {
                continue; // its row is unreadable: we cannot know what it wants
            }
            let name = i.name.unwrap_or_default();
            let runners = self.idx.runners_named(name);
            self.handle(runners);
            let limit = self.lifetime_of(i);
            if self.lifetime_expired(i) {
                if self.terminate_allowed(i) {
                    let reason = Reason::MaxLifetime { limit };
                    for r in runners {
                        self.deregister(r, owner_of(None, i), reason.clone());
                    }
                    self.terminate(i, None, reason);
                }
                continue;
            }
            if self.idx.is_busy_name(name) {
                self.deadline(i.launched_at.plus(limit));
                continue;
            }
            if let Some(notice) = self.idx.notice(i) {
                // Warned by EC2: never kept as a spare. Reclaimed within two minutes
                // anyway, an interrupted one need not wait out the minimum age either.
                if notice.kind == NoticeKind::InterruptionWarning
                    || i.launched_at.plus(min_age) <= self.now
                {
                    self.retire(None, i, runners, &Reason::Notice { kind: notice.kind });
                    continue;
                }
            }
            if i.launched_at.plus(min_age) > self.now {
                self.deadline(i.launched_at.plus(min_age));
                continue;
            }
            if let Some(r) = runners
                .iter()
                .copied()
                .find(|r| r.online && !r.disabled && r.wanted)
            {
                // Kept while wanted, like the runner of a run that is over (its own launch
                // time stands in for when it came online).
                match self.stuck_since(i.launched_at, &r) {
                    Some(stuck) => {
                        self.retire(None, i, runners, &stuck);
                    }
                    None => self.spares.push(Spare {
                        runner: r,
                        taken: false,
                        warm: None,
                        booting: false,
                    }),
                }
                continue;
            }
            self.retire(None, i, runners, &Reason::Orphan { min_age });
        }
    }

    /// Rule "ghost": a runner of ours (by name) with no live instance and no run launching
    /// it is deregistered. Without a machine it can run nothing.
    fn ghosts(&mut self) {
        if !self.destroy_ok {
            return;
        }
        let cluster = self.policy.cluster.clone();
        let mut candidates: Vec<Reg> = self.idx.runners.all().to_vec();
        candidates.sort_by_key(|r| r.id);
        for r in candidates {
            if self.handled_runners[r.slot as usize] || self.idx.is_busy(&r) {
                continue;
            }
            let Some((run, _attempt)) =
                crate::RunnerName::observed(r.name.clone()).parse_ours(&cluster)
            else {
                continue; // not ours: a standing runner or another cluster's
            };
            if self.idx.is_invalid(run.as_str()) || self.idx.live_instance(&r.name).is_some() {
                continue;
            }
            // Deleted only if still as seen: a runner whose machine EC2 does not list yet may
            // have come online since and be taking a job.
            self.deregister_guarded(&r, None, Reason::Ghost);
        }
    }

    // ---- emitting actions -----------------------------------------------------------------

    fn end(&mut self, run: &DesiredRun, phase: Phase, reason: Reason) {
        let change = StatusChange::Finish {
            phase,
            error: None,
            outcome: Some(reason.to_string()),
        };
        self.status(run, change, reason);
    }

    fn fail(&mut self, run: &DesiredRun, error: String, reason: Reason) {
        let change = StatusChange::Finish {
            phase: Phase::Failed,
            outcome: Some(error.clone()),
            error: Some(error),
        };
        self.status(run, change, reason);
    }

    fn status(&mut self, run: &DesiredRun, change: StatusChange, reason: Reason) {
        self.out.actions.push(Action::UpdateStatus {
            run: run.id.clone(),
            change,
            reason,
        });
    }

    fn lifetime_expired(&self, i: &Ours) -> bool {
        i.launched_at.plus(self.lifetime_of(i)) <= self.now
    }

    /// Whether one more termination fits this pass's budget; records the deferral if not.
    fn terminate_allowed(&mut self, i: &'a Ours<'a>) -> bool {
        self.handled_instances[i.at as usize] = true;
        if self.terminations < self.policy.safety.max_terminations_per_pass {
            return true;
        }
        self.follow_up = true;
        self.out.deferred.push(Deferred {
            what: format!("terminate {}", i.id),
            limit: format!(
                "safety.max_terminations_per_pass ({})",
                self.policy.safety.max_terminations_per_pass
            ),
        });
        false
    }

    /// Plans a termination (after [`Self::terminate_allowed`] said yes).
    fn terminate(&mut self, i: &'a Ours<'a>, run: Option<&DesiredRun>, reason: Reason) {
        debug_assert!(self.destroy_ok && i.is_ours(&self.policy.cluster));
        self.terminations += 1;
        self.out.actions.push(Action::Terminate {
            instance: i.id.clone(),
            run: owner_of(run, i),
            runner: i.name.map(str::to_owned),
            pool: i.pool().map(str::to_owned),
            reason,
        });
    }

    fn deregister(&mut self, r: &Reg, run: Option<RunId>, reason: Reason) {
        self.push_deregister(r, run, reason, None);
    }

    /// A deregistration that the executor carries out only if the runner is still as seen
    /// (not busy, online as it was), where nothing else (a disable) already stopped it.
    fn deregister_guarded(&mut self, r: &Reg, run: Option<RunId>, reason: Reason) {
        let guard = (!r.disabled).then_some(super::SeenRunner { online: r.online });
        self.push_deregister(r, run, reason, guard);
    }

    fn push_deregister(
        &mut self,
        r: &Reg,
        run: Option<RunId>,
        reason: Reason,
        guard: Option<super::SeenRunner>,
    ) {
        self.handled_runners[r.slot as usize] = true;
        self.out.actions.push(Action::Deregister {
            runner_id: r.id,
            runner: r.name.clone(),
            run,
            guard,
            reason,
        });
    }

    fn disable(&mut self, r: &Reg, run: Option<RunId>, reason: Reason) {
        self.handled_runners[r.slot as usize] = true;
        self.follow_up = true;
        self.out.actions.push(Action::DisableRunner {
            runner_id: r.id,
            runner: r.name.clone(),
            run,
            reason,
        });
    }

    /// Plans a launch of `attempt` for `run` within the budget and caps.
    fn launch(&mut self, run: &'a DesiredRun, attempt: u32, reason: Reason) {
        self.launch_spec(&run.id, &run.spec, attempt, reason);
    }

    /// Plans a launch of `attempt` for the run `id` with `spec` within the budget and caps.
    fn launch_spec(&mut self, id: &crate::RunId, spec: &RunSpec, attempt: u32, reason: Reason) {
        let Some(pool) = self.policy.pool_for(spec) else {
            self.out.unschedulable.push(Unschedulable {
                run: id.clone(),
                labels: spec.labels.clone(),
            });
            return;
        };
        if !self.fleet_ok {
            return;
        }
        let runner = crate::RunnerName::new(&self.policy.cluster, id, attempt);
        let safety = &self.policy.safety;
        let in_pool = self
            .live_by_pool
            .get(pool.name.as_str())
            .copied()
            .unwrap_or(0);
        let retry_at = self.idx.pools_without_capacity.get(pool.name.as_str());
        let limit = if let Some(&at) = retry_at {
            // The launch would fail without asking EC2; claiming and registering a runner
            // first would only be undone. The pass after `at` tries again.
            self.deadline(at.max(self.now.plus(FOLLOW_UP)));
            Some(format!(
                "every offering of pools.{} is without capacity until {at}",
                pool.name
            ))
        } else if self.launches >= safety.max_launches_per_pass {
            self.follow_up = true;
            Some(format!(
                "safety.max_launches_per_pass ({})",
                safety.max_launches_per_pass
            ))
        } else if self.live_total >= safety.max_instances {
            Some(format!("safety.max_instances ({})", safety.max_instances))
        } else if in_pool >= pool.max_instances {
            Some(format!(
                "pools.{}.max_instances ({})",
                pool.name, pool.max_instances
            ))
        } else {
            None
        };
        if let Some(limit) = limit {
            self.out.deferred.push(Deferred {
                what: format!("launch {runner}"),
                limit,
            });
            return;
        }
        self.launches += 1;
        self.live_total += 1;
        *self.live_by_pool.entry(pool.name.as_str()).or_default() += 1;
        self.out.actions.push(Action::Launch {
            run: id.clone(),
            attempt,
            runner,
            pool: pool.name.clone(),
            labels: pool.labels.clone(),
            reason,
        });
    }

    fn deadline(&mut self, at: Timestamp) {
        if at > self.now {
            self.next_deadline = Some(self.next_deadline.map_or(at, |d| d.min(at)));
        }
    }

    /// Whether EC2's list, as read this pass, would show an instance launched at `launched`:
    /// it was read (started) at least [`EC2_LIST_LAG`] after the launch. Else the pass is
    /// planned again once such a read can be had. The time of the read counts, not the time
    /// of planning: the list may have been read seconds before.
    fn listed_since(&mut self, launched: Timestamp) -> bool {
        let due = launched.plus(EC2_LIST_LAG);
        if self.idx.instances_read_at.unwrap_or(self.now) >= due {
            return true;
        }
        self.deadline(due.max(self.now.plus(FOLLOW_UP)));
        false
    }

    fn follow_up(&mut self) {
        self.follow_up = true;
    }

    fn finish(mut self) -> Plan {
        if !self.destroy_ok {
            // Belt and braces: the rules already hold back; nothing destructive leaves here.
            self.out.actions.retain(|a| !a.is_destructive());
        }
        super::order::cleanup_before_closing(&mut self.out.actions);
        let resync = self.policy.timeouts.resync;
        let mut wait = self
            .next_deadline
            .map_or(resync, |d| d.since(self.now))
            .min(resync);
        if self.follow_up {
            wait = wait.min(FOLLOW_UP);
        }
        self.out.requeue_after = wait.max(Duration::from_secs(1));
        self.out
    }
}

/// The run the steps on machine `i` belong to: the run retiring it, else the one it was
/// launched for (its tag: an orphan, or a live run's old attempt).
fn owner_of(run: Option<&DesiredRun>, i: &Ours) -> Option<RunId> {
    run.map(|r| r.id.clone()).or_else(|| i.run_id())
}
