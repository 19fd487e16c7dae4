//! The order of each run's steps: what the executor relies on when it carries a plan out as
//! written ([`Plan::misordered_steps`]).

use super::*;
use crate::desired::{JobState, Phase};
use crate::observed::{InstanceState, SPOT_INTERRUPTION};
use crate::testing::*;
use crate::InstanceId;

const MIN: u64 = 60;

/// The kinds of the actions that name `run`, in plan order.
fn steps_of(plan: &Plan, run: &crate::RunId) -> Vec<&'static str> {
    plan.actions
        .iter()
        .filter(|a| a.run() == Some(run))
        .map(|a| match a {
            Action::UpdateStatus {
                change: StatusChange::Requeue { .. },
                ..
            } => "requeue",
            Action::UpdateStatus {
                change: StatusChange::Finish { .. },
                ..
            } => "finish",
            other => other.kind(),
        })
        .collect()
}

/// A running run of job `job` on `i-<job>` with runner `100 + job` registered a minute after
/// launch; its runner online or not, busy or not.
fn on_machine(
    job: i64,
    online: bool,
    busy: bool,
) -> (crate::DesiredRun, crate::Instance, crate::ForgeRunner) {
    let mut r = running(job_run(job, &["go"]), &format!("i-{job}"), at(0));
    r.status.registered_at = Some(at(MIN));
    r.status.runner_id = Some(100 + job);
    let i = instance_for(&r, &format!("i-{job}"), "go", InstanceState::Running, at(0));
    let g = runner(
        100 + job,
        name_of(&r).as_str(),
        &["go", "linux"],
        online,
        busy,
    );
    (r, i, g)
}

/// Worlds in which runs take every path with more than one step: a stuck runner replaced,
/// a lost machine, a Spot reclaim, a cancel, max lifetime, a finished job's leftovers, a
/// registration without a machine, a failed run tried again, a backfill.
fn worlds() -> Vec<(&'static str, Scene)> {
    let mut out = Vec::new();

    let (r, i, g) = on_machine(1, true, false);
    out.push((
        "stuck",
        Scene::new(
            vec![r],
            vec![i],
            vec![g],
            vec![queued(1, &["go"])],
            at(5 * MIN),
        ),
    ));

    let (r, mut i, g) = on_machine(2, false, false);
    i.state = InstanceState::Terminated;
    out.push((
        "lost machine, registration left",
        Scene::new(
            vec![r],
            vec![i],
            vec![g],
            vec![queued(2, &["go"])],
            at(10 * MIN),
        ),
    ));

    let (r, mut i, _) = on_machine(3, false, false);
    i.state = InstanceState::Terminated;
    i.state_reason = Some(SPOT_INTERRUPTION.into());
    out.push((
        "spot reclaim",
        Scene::new(
            vec![r],
            vec![i],
            vec![],
            vec![queued(3, &["go"])],
            at(2 * MIN),
        ),
    ));

    let (mut r, i, g) = on_machine(4, true, false);
    r.spec.cancel = true;
    out.push((
        "cancelled",
        Scene::new(vec![r], vec![i], vec![g], vec![], at(10 * MIN)),
    ));

    let (r, i, g) = on_machine(5, true, true);
    out.push((
        "max lifetime",
        Scene::new(vec![r], vec![i], vec![g], vec![], at(6 * 3600)),
    ));

    let (r, i, g) = on_machine(6, true, false);
    let r = with_job_state(
        r,
        JobState::Completed {
            conclusion: "success".into(),
        },
    );
    out.push((
        "finished job, idle runner",
        Scene::new(vec![r], vec![i], vec![g], vec![], at(10 * MIN)),
    ));

    let (r, _, g) = on_machine(7, false, false);
    let r = with_job_state(
        r,
        JobState::Completed {
            conclusion: "failure".into(),
        },
    );
    out.push((
        "registration without a machine",
        Scene::new(vec![r], vec![], vec![g], vec![], at(10 * MIN)),
    ));

    let failed = ended(job_run(8, &["go"]), Phase::Failed, at(0));
    let mut w = Scene::new(
        vec![],
        vec![],
        vec![],
        vec![queued(8, &["go"])],
        at(3 * 3600),
    );
    w.desired.finished.push(failed);
    out.push(("failed run tried again", w));

    out.push((
        "backfill",
        Scene::new(vec![], vec![], vec![], vec![queued(9, &["go"])], at(0)),
    ));

    // All of them at once, so their steps interleave in one plan.
    let mut all = Scene::new(vec![], vec![], vec![], vec![], at(6 * 3600));
    for (_, w) in &out {
        all.desired.runs.extend(w.desired.runs.iter().cloned());
        all.desired
            .finished
            .extend(w.desired.finished.iter().cloned());
        all.instances.extend(w.instances.iter().cloned());
        all.runners.extend(w.runners.iter().cloned());
        all.jobs.extend(w.jobs.iter().cloned());
    }
    out.push(("all together", all));
    out
}

fn policies() -> Vec<Policy> {
    let mut disabling = policy();
    disabling.can_disable_runners = true;
    vec![policy(), disabling]
}

#[test]
fn every_runs_steps_come_in_an_order_the_executor_carries_out_as_written() {
    for (name, world) in worlds() {
        for p in policies() {
            let mut w = world.clone();
            // Over several passes, so the second step of a two-step retire is planned too.
            for pass in 0..4 {
                let plan = w.plan(&p);
                assert!(pass > 0 || !plan.is_empty(), "{name}: plans nothing");
                assert_eq!(
                    plan.misordered_steps(),
                    Vec::<String>::new(),
                    "{name}, pass {pass}, disable {}: {:#?}",
                    p.can_disable_runners,
                    plan.actions
                );
                w.apply(&plan);
                w.now = w.now.plus(std::time::Duration::from_secs(5 * MIN));
            }
        }
    }
}

#[test]
fn a_replaced_runner_is_removed_then_its_machine_then_the_next_attempt_starts() {
    let (r, i, g) = on_machine(1, true, false);
    let id = r.id.clone();
    let w = Scene::new(
        vec![r],
        vec![i],
        vec![g],
        vec![queued(1, &["go"])],
        at(5 * MIN),
    );
    let plan = w.plan(&policy());
    assert_eq!(
        steps_of(&plan, &id),
        ["deregister", "terminate", "requeue", "launch"]
    );
    // Every one of them names the run, so the executor keeps them together and in order.
    assert!(plan.actions.iter().all(|a| a.run() == Some(&id)));
}

#[test]
fn a_cancelled_run_ends_only_after_its_runner_and_machine_are_removed() {
    let (mut r, i, g) = on_machine(4, true, false);
    r.spec.cancel = true;
    let id = r.id.clone();
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(10 * MIN));
    assert_eq!(
        steps_of(&w.plan(&policy()), &id),
        ["deregister", "terminate", "finish"]
    );
    let mut disabling = policy();
    disabling.can_disable_runners = true;
    assert_eq!(steps_of(&w.plan(&disabling), &id), ["disable-runner"]);
}

fn reason() -> Reason {
    Reason::InstanceLost
}

fn deregister(job: i64) -> Action {
    Action::Deregister {
        runner_id: 5,
        runner: "r".into(),
        run: Some(crate::RunId::for_job(job, 1)),
        guard: None,
        reason: reason(),
    }
}

fn terminate(job: i64) -> Action {
    Action::Terminate {
        instance: InstanceId::new("i-1"),
        run: Some(crate::RunId::for_job(job, 1)),
        runner: Some("r".into()),
        pool: None,
        reason: reason(),
    }
}

fn change(job: i64, change: StatusChange) -> Action {
    Action::UpdateStatus {
        run: crate::RunId::for_job(job, 1),
        change,
        reason: reason(),
    }
}

fn launch(job: i64, attempt: u32) -> Action {
    let id = crate::RunId::for_job(job, 1);
    Action::Launch {
        runner: crate::RunnerName::new(CLUSTER, &id, attempt),
        run: id,
        attempt,
        pool: "go".into(),
        labels: vec!["go".into()],
        reason: reason(),
    }
}

fn problems(actions: Vec<Action>) -> Vec<String> {
    Plan {
        actions,
        ..Plan::default()
    }
    .misordered_steps()
}

#[test]
fn misordered_steps_are_named_with_the_action_and_why() {
    let requeue = StatusChange::Requeue { attempt: 2 };
    let finish = StatusChange::Finish {
        phase: Phase::Done,
        error: None,
        outcome: None,
    };
    // In order, and another run's steps in between change nothing.
    assert!(problems(vec![
        deregister(1),
        terminate(1),
        change(2, finish.clone()),
        change(1, requeue.clone()),
        launch(1, 2),
    ])
    .is_empty());

    let cases: Vec<(Vec<Action>, &str)> = vec![
        (
            vec![terminate(1), deregister(1)],
            "stopped after its machine was terminated",
        ),
        (
            vec![change(1, requeue.clone()), terminate(1)],
            "cleanup after the run was ended or requeued",
        ),
        (
            vec![change(1, finish.clone()), deregister(1)],
            "cleanup after the run was ended or requeued",
        ),
        (
            vec![launch(1, 2), change(1, requeue.clone())],
            "after the run's launch",
        ),
        (
            vec![change(1, requeue), launch(1, 3)],
            "another attempt than the requeue started",
        ),
        (
            vec![change(1, finish.clone()), launch(1, 1)],
            "a run that was ended",
        ),
        (
            vec![change(1, finish.clone()), change(1, finish)],
            "ended or requeued twice",
        ),
        (
            vec![
                terminate(1),
                Action::CreateRun {
                    run: crate::RunId::for_job(1, 1),
                    spec: job_run(1, &["go"]).spec,
                    reason: reason(),
                },
            ],
            "created after other steps",
        ),
    ];
    for (actions, why) in cases {
        let found = problems(actions.clone());
        assert_eq!(found.len(), 1, "{actions:#?}: {found:?}");
        assert!(found[0].contains(why), "{found:?} should say {why}");
        assert!(found[0].starts_with("action 1 ("), "{found:?}");
    }
}

#[test]
fn a_runs_machines_of_two_attempts_are_each_stopped_runner_first() {
    let of = |action: Action, runner: &str| match action {
        Action::Deregister {
            runner_id,
            run,
            guard,
            reason,
            ..
        } => Action::Deregister {
            runner_id,
            runner: runner.into(),
            run,
            guard,
            reason,
        },
        Action::Terminate {
            instance,
            run,
            pool,
            reason,
            ..
        } => Action::Terminate {
            instance,
            run,
            runner: Some(runner.into()),
            pool,
            reason,
        },
        other => other,
    };
    // Attempt 2's runner and machine, then attempt 1's: each runner before its machine.
    assert!(problems(vec![
        of(deregister(1), "a2"),
        of(terminate(1), "a2"),
        of(deregister(1), "a1"),
        of(terminate(1), "a1"),
    ])
    .is_empty());
    // Attempt 1's runner after its own machine.
    assert_eq!(
        problems(vec![of(terminate(1), "a1"), of(deregister(1), "a1")]).len(),
        1
    );
}

#[test]
fn an_old_attempts_cleanup_planned_after_the_run_closed_is_moved_before_it() {
    let finish = StatusChange::Finish {
        phase: Phase::Done,
        error: None,
        outcome: None,
    };
    let mut actions = vec![
        deregister(1),
        change(2, finish.clone()),
        terminate(1),
        change(1, finish.clone()),
        deregister(1),
        terminate(1),
        deregister(2),
    ];
    super::order::cleanup_before_closing(&mut actions);
    let kinds: Vec<(String, &str)> = actions
        .iter()
        .map(|a| {
            (
                a.run().map(ToString::to_string).unwrap_or_default(),
                a.kind(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("job-1-1".into(), "deregister"),
            ("job-2-1".into(), "deregister"),
            ("job-2-1".into(), "update-status"),
            ("job-1-1".into(), "terminate"),
            ("job-1-1".into(), "deregister"),
            ("job-1-1".into(), "terminate"),
            ("job-1-1".into(), "update-status"),
        ]
    );
}
