//! The planner's rules. Each rule looks at one run, one instance or one runner and decides;
//! [`Planner::run`] applies them in a fixed order and keeps the budgets.
//!
//! Order within one run matters to the executor: it applies a run's actions in plan order
//! (terminate, deregister, then the status change, then a launch of the next attempt).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::index::Index;
use super::{Action, Deferred, Plan, Policy, PoolPolicy, Reason, StatusChange, Unschedulable};
use crate::desired::{DesiredRun, JobRef, JobState, Origin, Phase, RunSpec};
use crate::observed::{DesiredView, ForgeRunner, Instance, Observed};
use crate::time::Timestamp;

/// How long after recording a launch an instance may still be missing from EC2's list
/// (DescribeInstances is eventually consistent) before the run counts as lost.
pub const EC2_LIST_LAG: Duration = Duration::from_secs(60);

/// How soon to look again after planning a step that has a follow-up (a runner disabled
/// before removal) or after a per-pass budget held work back.
pub const FOLLOW_UP: Duration = Duration::from_secs(5);

/// Desired runs for queued Gitea jobs that have none: their `workflow_job` webhook never
/// arrived (Gitea does not retry webhooks), or the controller was down.
///
/// Jobs asking for a foreign label are left to the standing runners that serve them; runs
/// that ended already (`DesiredView::finished`) are not created again.
#[must_use]
pub fn backfill(
    desired: &DesiredView,
    observed: &Observed,
    policy: &Policy,
    now: Timestamp,
) -> Vec<DesiredRun> {
    let known: HashSet<&str> = desired
        .runs
        .iter()
        .map(|r| r.id.as_str())
        .chain(desired.invalid.iter().map(|r| r.key.as_str()))
        .chain(desired.finished.iter().map(crate::RunId::as_str))
        .collect();
    let mut jobs: Vec<_> = observed.queued_jobs.items().iter().collect();
    jobs.sort_by_key(|j| (j.id, j.attempt));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for job in jobs {
        let id = job.run_id();
        if known.contains(id.as_str()) || !seen.insert(id.clone()) {
            continue;
        }
        if job.labels.iter().any(|l| policy.foreign_labels.contains(l)) {
            continue;
        }
        let job_ref = JobRef {
            id: job.id,
            attempt: job.attempt.max(1),
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

pub(super) struct Planner<'a> {
    policy: &'a Policy,
    now: Timestamp,
    idx: Index<'a>,
    backfilled: &'a [DesiredRun],
    queued_view: QueueView,
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
    handled_instances: HashSet<&'a str>,
    handled_runners: HashSet<i64>,
    next_deadline: Option<Timestamp>,
    follow_up: bool,
}

/// What the queued-jobs observation can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
enum QueueView {
    Complete,
    Partial,
    Unavailable,
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        desired: &'a DesiredView,
        backfilled: &'a [DesiredRun],
        observed: &'a Observed,
        policy: &'a Policy,
        now: Timestamp,
    ) -> Self {
        let idx = Index::new(desired, backfilled, observed, &policy.cluster);
        let queued_view = match &observed.queued_jobs {
            crate::Seen::Complete { .. } => QueueView::Complete,
            crate::Seen::Partial { .. } => QueueView::Partial,
            crate::Seen::Unavailable => QueueView::Unavailable,
        };
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
        let mut out = Plan::default();
        if !destroy_ok {
            out.withheld = Some(format!(
                "no terminations, deregistrations or loss decisions this pass: {}",
                partial.join("; ")
            ));
        }
        Planner {
            policy,
            now,
            idx,
            backfilled,
            queued_view,
            destroy_ok,
            fleet_ok,
            forge_ok,
            out,
            terminations: 0,
            launches: 0,
            live_total: 0,
            live_by_pool: BTreeMap::new(),
            handled_instances: HashSet::new(),
            handled_runners: HashSet::new(),
            next_deadline: None,
            follow_up: false,
        }
    }

    pub(super) fn run(mut self) -> Plan {
        self.count_capacity();
        for run in self.backfilled {
            let job_id = run.spec.job.as_ref().map_or(0, |j| j.id);
            self.out.actions.push(Action::CreateRun {
                run: run.id.clone(),
                spec: run.spec.clone(),
                reason: Reason::Backfill { job_id },
            });
        }
        let runs = self.idx.runs.clone();
        for run in runs {
            self.run_rules(run);
        }
        self.orphans();
        self.ghosts();
        self.finish()
    }

    // ---- capacity -------------------------------------------------------------------------

    /// Counts live instances per pool, plus launches in flight (fresh claims with no
    /// instance yet), so caps hold across passes.
    fn count_capacity(&mut self) {
        for i in self.idx.ours.clone() {
            if i.state.is_live() {
                self.live_total += 1;
                if let Some(pool) = self.pool_named(i.pool()) {
                    *self.live_by_pool.entry(pool).or_default() += 1;
                }
            }
        }
        for run in self.idx.runs.clone() {
            if run.status.phase != Phase::Launching {
                continue;
            }
            let name = run.runner_name(&self.policy.cluster);
            if self.idx.live_instance(name.as_str()).is_some() {
                continue;
            }
            self.live_total += 1;
            if let Ok(pool) = self.choose_pool(run) {
                *self.live_by_pool.entry(pool.name.as_str()).or_default() += 1;
            }
        }
    }

    fn pool_named(&self, name: Option<&str>) -> Option<&'a str> {
        let name = name?;
        self.policy
            .pools
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.name.as_str())
    }

    /// The pool that serves `run` ([`Policy::pool_for`]).
    fn choose_pool(&self, run: &DesiredRun) -> Result<&'a PoolPolicy, ()> {
        self.policy.pool_for(&run.spec).ok_or(())
    }

    fn is_foreign(&self, run: &DesiredRun) -> bool {
        run.spec.pool.is_none()
            && run
                .spec
                .labels
                .iter()
                .any(|l| self.policy.foreign_labels.contains(l))
    }

    fn lifetime_of(&self, instance: &Instance) -> Duration {
        self.policy
            .pools
            .iter()
            .find(|p| Some(p.name.as_str()) == instance.pool())
            .map_or(self.policy.timeouts.max_lifetime, |p| p.max_lifetime)
    }

    // ---- per run --------------------------------------------------------------------------

    fn run_rules(&mut self, run: &'a DesiredRun) {
        let name = run.runner_name(&self.policy.cluster);
        let instance = self.idx.live_instance(name.as_str());
        if let Some(i) = instance {
            self.handled_instances.insert(i.id.as_str());
        }
        let runners = self.idx.runners_named(name.as_str());
        self.handled_runners.extend(runners.iter().map(|r| r.id));
        if self.is_foreign(run) {
            return;
        }
        if run.spec.cancel || matches!(run.spec.job_state, JobState::Completed { .. }) {
            return self.end_run(run, instance, &runners);
        }
        match (run.status.phase, instance) {
            (Phase::Pending | Phase::Launching, Some(i)) => {
                // A tagged instance of the current attempt exists (a crash after the launch,
                // before the record): adopt it, then apply the running rules in this pass.
                self.adopt(run, i);
                self.running(run, Some(i), &runners);
            }
            (Phase::Pending, None) => self.pending(run, &runners),
            (Phase::Launching, None) => self.launching(run, &runners),
            (Phase::Running, _) => self.running(run, instance, &runners),
            (Phase::Succeeded | Phase::Failed | Phase::Cancelled, _) => {}
        }
    }

    /// Rule "cancelled or finished run": remove its instance and runner (a busy runner is
    /// left to finish, up to its max lifetime), then mark the run done.
    fn end_run(
        &mut self,
        run: &'a DesiredRun,
        instance: Option<&'a Instance>,
        runners: &[&'a ForgeRunner],
    ) {
        let (phase, reason) = if run.spec.cancel {
            (Phase::Cancelled, Reason::Cancelled)
        } else {
            (Phase::Succeeded, Reason::JobFinished)
        };
        let nothing_of_ours = instance.is_none() && runners.is_empty();
        if run.status.phase == Phase::Pending && nothing_of_ours {
            return self.end(run, phase, reason);
        }
        if !self.destroy_ok {
            return;
        }
        let busy = self
            .idx
            .is_busy_name(run.runner_name(&self.policy.cluster).as_str());
        let mut all_removed = true;
        if let Some(i) = instance {
            // A busy runner is left to finish its job, up to the instance's max lifetime.
            let keep = busy && !self.lifetime_expired(i);
            all_removed = !keep && self.terminate(i, Some(run), reason.clone());
        }
        for r in runners {
            if self.idx.is_busy(r) && instance.is_some() && !all_removed {
                continue;
            }
            self.deregister(r, reason.clone());
        }
        if all_removed {
            self.end(run, phase, reason);
        }
    }

    /// Rule "launch": a pending run with no runner gets one, within budgets and caps; a run
    /// no pool serves is reported unschedulable, with its labels.
    fn pending(&mut self, run: &'a DesiredRun, runners: &[&'a ForgeRunner]) {
        if let JobState::InProgress { .. } = run.spec.job_state {
            if self.destroy_ok {
                // With no instance, a registration under this name is unused whatever the
                // webhook says; remove it with the run rather than as a ghost later.
                for r in runners.iter().filter(|r| !r.busy) {
                    self.deregister(r, Reason::Ghost);
                }
            }
            return self.end(run, Phase::Succeeded, Reason::JobTakenElsewhere);
        }
        if self.clear_registrations(runners, &Reason::Ghost) {
            self.launch(run, run.status.attempt.max(1), Reason::NoRunner);
        }
    }

    /// Rule "stale claim": a claim older than the launch timeout with no instance is launched again with the same
    /// attempt (so the same client token: EC2 returns the instance if it did start), after
    /// removing any registration the failed attempt left.
    fn launching(&mut self, run: &'a DesiredRun, runners: &[&'a ForgeRunner]) {
        if !self.destroy_ok {
            return;
        }
        let name = run.runner_name(&self.policy.cluster);
        if let Some(ended) = self.idx.ended_instance(name.as_str()) {
            // NOTE: relaunching with the same client token would hand back this dead instance.
            return self.lost(run, Some(ended), runners);
        }
        let timeout = self.policy.timeouts.launch;
        let deadline = run.status.claimed_at.map_or(self.now, |c| c.plus(timeout));
        if deadline > self.now {
            return self.deadline(deadline);
        }
        if let JobState::InProgress { .. } = run.spec.job_state {
            // The job started meanwhile: nothing to relaunch for.
            return self.lost(run, None, runners);
        }
        let reason = Reason::StaleClaim { timeout };
        if self.clear_registrations(runners, &reason) {
            self.launch(run, run.status.attempt.max(1), reason);
        }
    }

    /// Removes registrations left under a runner name about to be launched, so the launch
    /// does not register a second runner of that name. `false` (launch nothing) while one of
    /// them is busy, or when the view is partial.
    fn clear_registrations(&mut self, runners: &[&'a ForgeRunner], reason: &Reason) -> bool {
        if runners.is_empty() {
            return true;
        }
        if !self.destroy_ok || runners.iter().any(|r| r.busy) {
            return false;
        }
        for r in runners {
            self.deregister(r, reason.clone());
        }
        true
    }

    fn adopt(&mut self, run: &'a DesiredRun, i: &'a Instance) {
        let change = StatusChange::Adopt {
            instance: i.id.clone(),
            launched_at: i.launched_at,
        };
        self.status(run, change, Reason::InstanceFound);
    }

    /// The rules for a run whose instance is recorded: max lifetime, registration, idle,
    /// zombie, and loss of the instance.
    fn running(
        &mut self,
        run: &'a DesiredRun,
        instance: Option<&'a Instance>,
        runners: &[&'a ForgeRunner],
    ) {
        let name = run.runner_name(&self.policy.cluster);
        let Some(i) = instance else {
            let ended = self.idx.ended_instance(name.as_str());
            let recorded = run.status.launched_at.unwrap_or(self.now);
            if ended.is_none() && recorded.plus(EC2_LIST_LAG) > self.now {
                return self.deadline(recorded.plus(EC2_LIST_LAG));
            }
            return self.lost(run, ended, runners);
        };
        let limit = self.lifetime_of(i);
        if self.lifetime_expired(i) {
            return self.max_lifetime(run, i, runners, limit);
        }
        self.deadline(i.launched_at.plus(limit));
        if !self.forge_ok {
            return;
        }
        match runners.iter().find(|r| r.online) {
            Some(r) => self.online(run, i, r, runners),
            None => self.not_online(run, i, runners),
        }
    }

    /// Rule "max lifetime": terminate, whatever the runner says, and fail the run.
    fn max_lifetime(
        &mut self,
        run: &'a DesiredRun,
        i: &'a Instance,
        runners: &[&'a ForgeRunner],
        limit: Duration,
    ) {
        if !self.destroy_ok {
            return;
        }
        let reason = Reason::MaxLifetime { limit };
        if !self.terminate(i, Some(run), reason.clone()) {
            return;
        }
        for r in runners {
            self.deregister(r, reason.clone());
        }
        let change = StatusChange::Finish {
            phase: Phase::Failed,
            error: Some(reason.to_string()),
        };
        self.status(run, change, reason);
    }

    /// The runner is online: record it, and apply the idle rule.
    fn online(
        &mut self,
        run: &'a DesiredRun,
        i: &'a Instance,
        r: &'a ForgeRunner,
        runners: &[&'a ForgeRunner],
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
        if self.idx.is_busy(r) {
            return;
        }
        if r.disabled {
            // Rule "retire", second step: a disabled runner takes no job; remove it.
            let reason = Reason::Idle {
                timeout: self.policy.timeouts.idle,
            };
            return self.retire(run, i, runners, reason);
        }
        // Rule "idle": online, not busy, past the idle timeout, and nothing queued could use it.
        let timeout = self.policy.timeouts.idle;
        let deadline = registered_at.plus(timeout);
        if deadline > self.now {
            return self.deadline(deadline);
        }
        if !self.destroy_ok || self.idx.has_demand_for(&r.labels) {
            return;
        }
        let reason = Reason::Idle { timeout };
        if self.policy.can_disable_runners {
            // First step: stop it taking a job, then remove it on the next pass if still idle.
            self.follow_up = true;
            self.out.actions.push(Action::DisableRunner {
                runner_id: r.id,
                runner: r.name.clone(),
                reason,
            });
        } else {
            self.retire(run, i, runners, reason);
        }
    }

    /// The runner is offline or missing: rules "never registered" and "zombie".
    fn not_online(&mut self, run: &'a DesiredRun, i: &'a Instance, runners: &[&'a ForgeRunner]) {
        let name = run.runner_name(&self.policy.cluster);
        // A runner a webhook saw take the job did register, even if we never saw it online.
        if run.status.registered_at.is_none() && !self.idx.took_a_job(name.as_str()) {
            let timeout = self.policy.timeouts.registration;
            let launched = run.status.launched_at.unwrap_or(i.launched_at);
            let deadline = launched.plus(timeout);
            if deadline > self.now {
                return self.deadline(deadline);
            }
            return self.retire(run, i, runners, Reason::NeverRegistered { timeout });
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
            Some(_) => self.retire(run, i, runners, Reason::Zombie { grace }),
        }
    }

    /// Removes a run's instance and runners and decides what becomes of the run.
    fn retire(
        &mut self,
        run: &'a DesiredRun,
        i: &'a Instance,
        runners: &[&'a ForgeRunner],
        reason: Reason,
    ) {
        if !self.destroy_ok {
            return;
        }
        if !self.terminate(i, Some(run), reason.clone()) {
            return;
        }
        for r in runners {
            self.deregister(r, reason.clone());
        }
        self.after_loss(run, reason);
    }

    /// Rules "spot interruption" and "instance lost": the instance is gone and the run is
    /// not finished.
    fn lost(
        &mut self,
        run: &'a DesiredRun,
        ended: Option<&'a Instance>,
        runners: &[&'a ForgeRunner],
    ) {
        if !self.destroy_ok {
            return;
        }
        let reason = if ended.is_some_and(Instance::was_interrupted) {
            Reason::SpotInterruption
        } else {
            Reason::InstanceLost
        };
        for r in runners {
            self.deregister(r, reason.clone());
        }
        self.after_loss(run, reason);
    }

    /// What becomes of a run whose runner is gone: a job still waiting gets a new attempt
    /// (or the run fails once attempts are used up); a job that ran or was taken by
    /// another runner ends the run.
    fn after_loss(&mut self, run: &'a DesiredRun, cause: Reason) {
        let name = run.runner_name(&self.policy.cluster);
        match &run.spec.job_state {
            JobState::Completed { .. } => {
                return self.end(run, Phase::Succeeded, Reason::JobFinished);
            }
            JobState::InProgress { runner: Some(on) }
                if on == name.as_str()
                    && matches!(cause, Reason::SpotInterruption | Reason::Zombie { .. }) =>
            {
                // The machine died under the job. Gitea fails a job whose runner vanished
                // (zombie task cron) and does not queue it again, so a new runner would wait
                // for nothing.
                let error = format!("{cause} while running the job; re-run it in Gitea");
                let change = StatusChange::Finish {
                    phase: Phase::Failed,
                    error: Some(error),
                };
                return self.status(run, change, cause);
            }
            JobState::InProgress { runner: Some(on) } if on == name.as_str() => {
                // Our runner took the job and its machine ended by itself: the normal end of
                // an ephemeral runner, whose `completed` webhook is late or was lost.
                return self.end(run, Phase::Succeeded, Reason::JobNoLongerWaiting);
            }
            JobState::InProgress { .. } => {
                return self.end(run, Phase::Succeeded, Reason::JobTakenElsewhere);
            }
            JobState::Queued => {}
        }
        let spot_unknown =
            cause == Reason::SpotInterruption && self.queued_view != QueueView::Complete;
        if !self.job_still_waiting(run) && !spot_unknown {
            let change = StatusChange::Finish {
                phase: Phase::Succeeded,
                error: None,
            };
            let reason = if matches!(cause, Reason::Idle { .. }) {
                Reason::JobTakenElsewhere
            } else {
                Reason::JobNoLongerWaiting
            };
            return self.status(run, change, reason);
        }
        let attempt = run.status.attempt.max(1);
        let max = self.policy.safety.max_attempts;
        if attempt >= max {
            let error = format!("{cause}; gave up after {attempt} attempts");
            let change = StatusChange::Finish {
                phase: Phase::Failed,
                error: Some(error),
            };
            return self.status(run, change, Reason::AttemptsExhausted { attempts: max });
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

    /// Whether the run's job still waits for a runner. With a complete queued-jobs list that
    /// list decides; without one, a job can only have been taken if the runner registered.
    fn job_still_waiting(&self, run: &DesiredRun) -> bool {
        match (&run.spec.job, self.queued_view) {
            (Some(job), QueueView::Complete) => self.idx.queued.contains(&job.id),
            _ => run.status.registered_at.is_none(),
        }
    }

    // ---- instances and runners no run claims --------------------------------------------

    /// Rule "orphan": an instance of ours that no live run wants, once older than the
    /// minimum age (a busy one only at its max lifetime).
    fn orphans(&mut self) {
        if !self.destroy_ok {
            return;
        }
        let min_age = self.policy.timeouts.orphan_min_age;
        for i in self.idx.ours.clone() {
            if !i.state.is_live() || self.handled_instances.contains(i.id.as_str()) {
                continue;
            }
            if i.tags
                .get(crate::tags::RUN_ID)
                .is_some_and(|k| self.idx.is_invalid(k))
            {
                continue; // its row is unreadable: we cannot know what it wants
            }
            let name = i
                .tags
                .get(crate::tags::RUNNER_NAME)
                .map_or("", String::as_str);
            let runners = self.idx.runners_named(name);
            self.handled_runners.extend(runners.iter().map(|r| r.id));
            let limit = self.lifetime_of(i);
            let reason = if self.lifetime_expired(i) {
                Reason::MaxLifetime { limit }
            } else if self.idx.is_busy_name(name) {
                self.deadline(i.launched_at.plus(limit));
                continue;
            } else if i.launched_at.plus(min_age) > self.now {
                self.deadline(i.launched_at.plus(min_age));
                continue;
            } else {
                Reason::Orphan { min_age }
            };
            if self.terminate(i, None, reason.clone()) {
                for r in &runners {
                    self.deregister(r, reason.clone());
                }
            }
        }
    }

    /// Rule "ghost": a runner of ours (by name) with no live instance and no run launching
    /// it is deregistered.
    fn ghosts(&mut self) {
        if !self.destroy_ok {
            return;
        }
        let cluster = self.policy.cluster.clone();
        let mut candidates: Vec<&ForgeRunner> =
            self.idx.runners.values().flatten().copied().collect();
        candidates.sort_by_key(|r| r.id);
        for r in candidates {
            if self.handled_runners.contains(&r.id) || self.idx.is_busy(r) {
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
            self.deregister(r, Reason::Ghost);
        }
    }

    // ---- emitting actions -----------------------------------------------------------------

    fn end(&mut self, run: &DesiredRun, phase: Phase, reason: Reason) {
        self.status(run, StatusChange::Finish { phase, error: None }, reason);
    }

    fn status(&mut self, run: &DesiredRun, change: StatusChange, reason: Reason) {
        self.out.actions.push(Action::UpdateStatus {
            run: run.id.clone(),
            change,
            reason,
        });
    }

    fn lifetime_expired(&self, i: &Instance) -> bool {
        i.launched_at.plus(self.lifetime_of(i)) <= self.now
    }

    /// Plans a termination within the per-pass budget; `false` if it was deferred.
    fn terminate(&mut self, i: &'a Instance, run: Option<&DesiredRun>, reason: Reason) -> bool {
        debug_assert!(self.destroy_ok && i.is_ours(&self.policy.cluster));
        self.handled_instances.insert(i.id.as_str());
        if self.terminations >= self.policy.safety.max_terminations_per_pass {
            self.follow_up = true;
            self.out.deferred.push(Deferred {
                what: format!("terminate {}", i.id),
                limit: format!(
                    "safety.max_terminations_per_pass ({})",
                    self.policy.safety.max_terminations_per_pass
                ),
            });
            return false;
        }
        self.terminations += 1;
        self.out.actions.push(Action::Terminate {
            instance: i.id.clone(),
            run: run.map(|r| r.id.clone()).or_else(|| i.run_id()),
            pool: i.pool().map(str::to_owned),
            reason,
        });
        true
    }

    fn deregister(&mut self, r: &ForgeRunner, reason: Reason) {
        self.handled_runners.insert(r.id);
        self.out.actions.push(Action::Deregister {
            runner_id: r.id,
            runner: r.name.clone(),
            reason,
        });
    }

    /// Plans a launch of `attempt` for `run` within the budget and caps.
    fn launch(&mut self, run: &'a DesiredRun, attempt: u32, reason: Reason) {
        let Ok(pool) = self.choose_pool(run) else {
            self.out.unschedulable.push(Unschedulable {
                run: run.id.clone(),
                labels: run.spec.labels.clone(),
            });
            return;
        };
        if !self.fleet_ok {
            return;
        }
        let runner = crate::RunnerName::new(&self.policy.cluster, &run.id, attempt);
        let safety = &self.policy.safety;
        let in_pool = self
            .live_by_pool
            .get(pool.name.as_str())
            .copied()
            .unwrap_or(0);
        let limit = if self.launches >= safety.max_launches_per_pass {
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
            run: run.id.clone(),
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

    fn finish(mut self) -> Plan {
        if !self.destroy_ok {
            // Belt and braces: the rules already hold back; nothing destructive leaves here.
            self.out.actions.retain(|a| !a.is_destructive());
        }
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
