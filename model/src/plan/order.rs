//! The order of a run's steps in a plan: the contract between the planner and the executor.
//!
//! The executor carries out each run's actions one after another in plan order and never
//! reorders them (`controller/src/reconcile/apply.rs`), so the planner must emit them in an
//! order that is safe to carry out as written: a runner is stopped before its machine goes,
//! the run is ended or started again only once its cleanup is planned, and the launch of the
//! next attempt comes last.

use std::collections::{BTreeMap, HashMap};

use super::{Action, Plan, StatusChange};
use crate::ids::RunId;

/// What has happened so far in one run's sequence of steps.
#[derive(Default)]
struct Seen<'a> {
    any: bool,
    /// Runner names whose machines were terminated; `None` in it for a machine whose
    /// runner is not known (then every later stop of a runner counts as too late).
    terminated: Vec<Option<&'a str>>,
    ended: bool,
    requeued: Option<u32>,
    launched: bool,
}

impl Plan {
    /// Every place where a run's actions are not in an order the executor may carry out as
    /// written; empty when the plan is well ordered. For each run (the actions that name it,
    /// in plan order):
    ///
    /// - its `CreateRun` comes before anything else of it;
    /// - a runner is disabled or deregistered before its machine is terminated (a run may hold
    ///   machines of several attempts: a termination names the runner of its machine);
    /// - the status change that ends the run (`Finish`) or starts its next attempt
    ///   (`Requeue`) comes after every disable, deregistration and termination, and at most
    ///   once;
    /// - the launch comes last, at most once, never after the run ended, and after a requeue
    ///   it launches the attempt that requeue started.
    #[must_use]
    pub fn misordered_steps(&self) -> Vec<String> {
        let mut runs: BTreeMap<&RunId, Seen> = BTreeMap::new();
        let mut problems = Vec::new();
        for (n, action) in self.actions.iter().enumerate() {
            let Some(run) = action.run() else { continue };
            let seen = runs.entry(run).or_default();
            let mut wrong = |why: &str| problems.push(format!("action {n} ({action}): {why}"));
            if seen.launched {
                wrong("comes after the run's launch, which must be its last step");
            }
            match action {
                Action::CreateRun { .. } if seen.any => {
                    wrong("the run's row is created after other steps of it");
                }
                Action::CreateRun { .. } => {}
                Action::DisableRunner { runner, .. } | Action::Deregister { runner, .. } => {
                    if seen
                        .terminated
                        .iter()
                        .any(|t| t.is_none_or(|t| t == runner))
                    {
                        wrong("the runner is stopped after its machine was terminated");
                    }
                    if seen.ended || seen.requeued.is_some() {
                        wrong("cleanup after the run was ended or requeued");
                    }
                }
                Action::Terminate { runner, .. } => {
                    if seen.ended || seen.requeued.is_some() {
                        wrong("cleanup after the run was ended or requeued");
                    }
                    seen.terminated.push(runner.as_deref());
                }
                Action::UpdateStatus { change, .. } => match change {
                    StatusChange::Finish { .. } | StatusChange::Requeue { .. }
                        if seen.ended || seen.requeued.is_some() =>
                    {
                        wrong("the run is ended or requeued twice");
                    }
                    StatusChange::Finish { .. } => seen.ended = true,
                    StatusChange::Requeue { attempt } => seen.requeued = Some(*attempt),
                    _ => {}
                },
                Action::Launch { attempt, .. } => {
                    if seen.ended {
                        wrong("launches for a run that was ended");
                    }
                    if seen.requeued.is_some_and(|a| a != *attempt) {
                        wrong("launches another attempt than the requeue started");
                    }
                    seen.launched = true;
                }
            }
            seen.any = true;
        }
        problems
    }
}

/// Moves each run's cleanup steps (disable, deregister, terminate) that come after the step
/// closing the run (the `Finish` that ends it, the `Requeue` that starts its next attempt, or
/// its launch) to just before that step, keeping their order. The rules that retire what a
/// run's earlier attempt left behind (its machine is an orphan now) run after the run's own
/// rules, yet the executor must stop that machine's runner and the machine before the run is
/// closed. Everything else keeps its place.
pub(super) fn cleanup_before_closing(actions: &mut Vec<Action>) {
    // (late cleanup, the closing step it must precede), in plan order.
    let mut late: Vec<(usize, usize)> = Vec::new();
    {
        let mut closing: HashMap<&RunId, usize> = HashMap::new();
        for (n, action) in actions.iter().enumerate() {
            let Some(run) = action.run() else { continue };
            match action {
                Action::Launch { .. }
                | Action::UpdateStatus {
                    change: StatusChange::Finish { .. } | StatusChange::Requeue { .. },
                    ..
                } => {
                    closing.entry(run).or_insert(n);
                }
                Action::DisableRunner { .. }
                | Action::Deregister { .. }
                | Action::Terminate { .. } => {
                    if let Some(&at) = closing.get(run) {
                        late.push((n, at));
                    }
                }
                Action::CreateRun { .. } | Action::UpdateStatus { .. } => {}
            }
        }
    }
    if late.is_empty() {
        return; // the usual case
    }
    let mut before: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(n, at) in &late {
        before.entry(at).or_default().push(n);
    }
    let moved: std::collections::BTreeSet<usize> = late.iter().map(|&(n, _)| n).collect();
    let mut slots: Vec<Option<Action>> = std::mem::take(actions).into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    for n in 0..slots.len() {
        if moved.contains(&n) {
            continue;
        }
        for &m in before.get(&n).map_or(&[][..], Vec::as_slice) {
            out.extend(slots[m].take());
        }
        out.extend(slots[n].take());
    }
    *actions = out;
}
