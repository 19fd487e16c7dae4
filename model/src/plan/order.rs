//! The order of a run's steps in a plan: the contract between the planner and the executor.
//!
//! The executor carries out each run's actions one after another in plan order and never
//! reorders them (`controller/src/reconcile/apply.rs`), so the planner must emit them in an
//! order that is safe to carry out as written: a runner is stopped before its machine goes,
//! the run is ended or started again only once its cleanup is planned, and the launch of the
//! next attempt comes last.

use std::collections::BTreeMap;

use super::{Action, Plan, StatusChange};
use crate::ids::RunId;

/// What has happened so far in one run's sequence of steps.
#[derive(Default)]
struct Seen {
    any: bool,
    terminated: bool,
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
    /// - a runner is disabled or deregistered before its machine is terminated;
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
                Action::DisableRunner { .. } | Action::Deregister { .. } => {
                    if seen.terminated {
                        wrong("the runner is stopped after its machine was terminated");
                    }
                    if seen.ended || seen.requeued.is_some() {
                        wrong("cleanup after the run was ended or requeued");
                    }
                }
                Action::Terminate { .. } => {
                    if seen.ended || seen.requeued.is_some() {
                        wrong("cleanup after the run was ended or requeued");
                    }
                    seen.terminated = true;
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
