//! Table tests for rule "warned": EC2's Spot interruption warnings and rebalance
//! recommendations.

use super::*;
use crate::desired::JobState;
use crate::notice::{Notice, NoticeKind};
use crate::observed::{InstanceState, SPOT_INTERRUPTION};
use crate::testing::*;
use crate::{ForgeRunner, InstanceId, Seen};

fn kinds(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

const MIN: u64 = 60;

fn disabling() -> Policy {
    let mut p = policy();
    p.can_disable_runners = true;
    p
}

fn warning(instance: &str, secs: u64) -> Notice {
    Notice {
        instance: InstanceId::new(instance),
        kind: NoticeKind::InterruptionWarning,
        at: at(secs),
    }
}

/// Run 1 on `i-1`, its runner (#101) online since minute 1 and idle (busy: taking its job);
/// its job queued; a warning about `i-1` at minute 2.
fn warned_world(busy: bool) -> Scene {
    let mut r = running(job_run(1, &["go"]), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    r.status.runner_id = Some(101);
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g: ForgeRunner = runner(101, name_of(&r).as_str(), &["go", "linux"], true, busy);
    let jobs = if busy {
        vec![]
    } else {
        vec![queued(1, &["go"])]
    };
    let r = if busy {
        with_job_state(
            r,
            JobState::InProgress {
                runner: Some(g.name.clone()),
            },
        )
    } else {
        r
    };
    let mut w = Scene::new(vec![r], vec![i], vec![g], jobs, at(2 * MIN));
    w.notices.push(warning("i-1", 2 * MIN));
    w
}

#[test]
fn an_idle_runner_on_a_warned_instance_is_disabled_at_once_then_replaced() {
    let mut w = warned_world(false);
    let plan = w.plan(&disabling());
    assert_eq!(
        kinds(&plan),
        vec!["disable runner tq-test-job-1-1-a1 (#101): EC2 Spot interruption warning for its instance"]
    );
    w.apply(&plan);
    let plan = w.plan(&disabling());
    assert_eq!(
        kinds(&plan),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): EC2 Spot interruption warning for its instance",
            "terminate i-1 (run job-1-1) in pool go: EC2 Spot interruption warning for its instance",
            "mark run job-1-1 pending for attempt 2: EC2 Spot interruption warning for its instance",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: EC2 Spot interruption warning for its instance",
        ]
    );
}

#[test]
fn without_disable_the_guarded_delete_comes_first_in_the_same_pass() {
    let w = warned_world(false);
    let plan = w.plan(&policy());
    let k = kinds(&plan);
    assert_eq!(k.len(), 4, "{k:#?}");
    assert!(
        k[0].starts_with("deregister runner tq-test-job-1-1-a1 (#101)"),
        "{k:#?}"
    );
    assert!(k[1].starts_with("terminate i-1"), "{k:#?}");
    assert!(k[3].starts_with("launch tq-test-job-1-1-a2"), "{k:#?}");
    assert!(
        plan.actions
            .iter()
            .any(|a| matches!(a, Action::Deregister { guard: Some(_), .. })),
        "the delete goes ahead only if the runner is still idle"
    );
}

#[test]
fn a_busy_runner_runs_on_and_its_run_notes_the_warning() {
    let mut w = warned_world(true);
    let plan = w.plan(&disabling());
    assert_eq!(
        kinds(&plan),
        vec!["mark run job-1-1 warned by EC2 at 2026-01-01T00:02:00.000Z: EC2 Spot interruption warning for its instance"]
    );
    w.apply(&plan);
    assert!(w.plan(&disabling()).is_empty(), "noted once");
    // EC2 reclaims it under the job: the run fails, saying it was warned.
    w.instances[0].state = InstanceState::Terminated;
    w.instances[0].state_reason = Some(SPOT_INTERRUPTION.to_owned());
    w.runners.clear();
    w.now = at(5 * MIN);
    let plan = w.plan(&disabling());
    let k = kinds(&plan);
    assert!(
        k.iter()
            .any(|a| a.contains("failed") && a.contains("EC2 warned at 2026-01-01T00:02:00.000Z")),
        "{k:#?}"
    );
}

#[test]
fn a_warning_destroys_nothing_on_a_partial_view() {
    let w = warned_world(false);
    let mut observed = w.observed();
    observed.instances = Seen::Partial {
        items: w.instances.clone(),
        error: "DescribeInstances: throttled".into(),
    };
    let plan = crate::plan(&w.desired, &observed, &disabling(), w.now);
    assert!(plan.is_empty(), "{:?}", kinds(&plan));
}

#[test]
fn a_warned_orphan_is_not_kept_for_queued_work() {
    // An instance of ours whose run is over; its runner online, idle, and a job it could
    // serve waits: normally kept as a spare. Warned, it is retired.
    let (mut w, p) = {
        let mut w = warned_world(false);
        w.desired.runs.clear();
        w.jobs = vec![queued(9, &["go"])];
        (w, disabling())
    };
    w.now = at(10 * MIN);
    w.notices = vec![warning("i-1", 10 * MIN)];
    let k = kinds(&w.plan(&p));
    assert!(
        k.iter()
            .any(|a| a.starts_with("disable runner tq-test-job-1-1-a1")),
        "{k:#?}"
    );
    w.notices.clear();
    let k = kinds(&w.plan(&p));
    assert!(
        !k.iter()
            .any(|a| a.contains("tq-test-job-1-1-a1") || a.contains("i-1 ")),
        "unwarned, it is kept for job 9: {k:#?}"
    );
}

#[test]
fn a_warned_orphan_is_retired_without_waiting_out_its_minimum_age() {
    // An instance of ours that no run wants, launched 2 minutes ago (the minimum age is 5),
    // its runner online and idle with nothing queued: left alone until it is 5 minutes old.
    let mut w = warned_world(false);
    w.desired.runs.clear();
    w.jobs.clear();
    w.notices.clear();
    assert!(
        w.instances[0]
            .launched_at
            .plus(policy().timeouts.orphan_min_age)
            > w.now
    );
    assert!(
        w.plan(&policy()).is_empty(),
        "too young to be an orphan yet"
    );
    // Warned of a reclaim within two minutes: retired now.
    w.notices.push(warning("i-1", 2 * MIN));
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec!["disable runner tq-test-job-1-1-a1 (#101): EC2 Spot interruption warning for its instance"]
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): EC2 Spot interruption warning for its instance",
            "terminate i-1 (run job-1-1) in pool go: EC2 Spot interruption warning for its instance",
        ]
    );
}

#[test]
fn a_notice_about_an_instance_not_ours_changes_nothing() {
    let mut w = warned_world(false);
    w.notices = vec![warning("i-0abc", 2 * MIN)];
    assert!(w.plan(&disabling()).is_empty());
}

#[test]
fn a_rebalance_recommendation_replaces_an_idle_runner_like_a_warning() {
    let mut w = warned_world(false);
    w.notices[0].kind = NoticeKind::RebalanceRecommendation;
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec!["disable runner tq-test-job-1-1-a1 (#101): EC2 rebalance recommendation for its instance"]
    );
    assert_eq!(
        w.plan(&disabling()).actions[0].reason().code(),
        "rebalance-recommendation"
    );
}

#[test]
fn a_run_whose_machine_is_warned_before_its_runner_registers_is_replaced() {
    // Launched a minute ago, no registration yet.
    let r = running(job_run(1, &["go"]), "i-1", at(0));
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let mut w = Scene::new(vec![r], vec![i], vec![], vec![queued(1, &["go"])], at(MIN));
    w.notices.push(warning("i-1", MIN));
    let k = kinds(&w.plan(&disabling()));
    assert_eq!(
        k,
        vec![
            "terminate i-1 (run job-1-1) in pool go: EC2 Spot interruption warning for its instance",
            "mark run job-1-1 pending for attempt 2: EC2 Spot interruption warning for its instance",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: EC2 Spot interruption warning for its instance",
        ]
    );
}

#[test]
fn a_warned_warm_runner_is_disabled_then_retired_and_the_pool_topped_up() {
    let p = with_warm(disabling(), "go", 1, None);
    let launched = at(0);
    let mut r = running(warm_run("go", 0, launched), "i-w0", launched);
    r.status.registered_at = Some(at(MIN));
    let i = instance_for(&r, "i-w0", "go", InstanceState::Running, launched);
    let g = runner(500, name_of(&r).as_str(), &["go", "linux"], true, false);
    let mut w = Scene::new(vec![r], vec![i], vec![g], vec![], at(3 * MIN));
    assert!(w.plan(&p).is_empty(), "a ready warm runner is kept");
    w.notices.push(warning("i-w0", 3 * MIN));
    // At once: the runner is disabled and a fresh warm runner launched in its place.
    let plan = w.plan(&p);
    let k = kinds(&plan);
    assert!(
        matches!(
            plan.actions.first(),
            Some(Action::DisableRunner { runner_id: 500, .. })
        ),
        "{k:#?}"
    );
    assert!(
        plan.actions.iter().any(|a| matches!(
            a,
            Action::CreateRun { spec, .. } if spec.origin == crate::Origin::Warm
        )),
        "{k:#?}"
    );
    assert!(
        k.iter().any(|a| a.starts_with("launch tq-test-warm-go-")),
        "{k:#?}"
    );
    w.apply(&plan);
    // Next pass: still idle, so it took no job meanwhile: retired.
    let k = kinds(&w.plan(&p));
    assert!(k.iter().any(|a| a.starts_with("terminate i-w0")), "{k:#?}");
}
