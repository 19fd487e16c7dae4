//! Table tests for rule "handover": a run whose runner took another run's job. Gitea hands
//! the oldest waiting job to whichever runner whose labels cover it asks first, so the runner
//! launched for job 2 often runs job 1; an ephemeral runner takes one job only, so job 2 then
//! needs another runner: job 1's own (still booting), an idle spare, or a new machine.

use super::*;
use crate::desired::{JobState, Phase};
use crate::observed::InstanceState;
use crate::testing::*;

fn kinds(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

const MIN: u64 = 60;

fn go_run(job: i64) -> crate::DesiredRun {
    job_run(job, &["go"])
}

/// Job 1's run on i-1 (launched at 0, its pre-registered runner never online yet) and job 2's
/// run on i-2 (launched at 0, its runner online since 40 s): job 2's runner took job 1 (the
/// `in_progress` webhook of job 1 names it), and job 2 still waits.
fn swapped(
    busy_flag: bool,
) -> (
    Vec<crate::DesiredRun>,
    Vec<crate::Instance>,
    Vec<crate::ForgeRunner>,
) {
    let two = {
        let mut r = running(go_run(2), "i-2", at(0));
        r.status.registered_at = Some(at(40));
        r.status.runner_id = Some(102);
        r
    };
    let one = running(
        with_job_state(
            go_run(1),
            JobState::InProgress {
                runner: Some(name_of(&two).as_str().to_owned()),
            },
        ),
        "i-1",
        at(0),
    );
    let instances = vec![
        instance_for(&one, "i-1", "go", InstanceState::Running, at(0)),
        instance_for(&two, "i-2", "go", InstanceState::Running, at(0)),
    ];
    let runners = vec![
        runner(101, name_of(&one).as_str(), &["go", "linux"], false, false),
        runner(
            102,
            name_of(&two).as_str(),
            &["go", "linux"],
            true,
            busy_flag,
        ),
    ];
    (vec![one, two], instances, runners)
}

#[test]
fn a_booting_runner_whose_job_went_elsewhere_stands_in_for_the_job_its_runner_left() {
    let (runs, instances, runners) = swapped(true);
    let w = Scene::new(runs, instances, runners, vec![queued(2, &["go"])], at(MIN));
    let plan = w.plan(&policy());
    assert!(
        plan.actions.is_empty(),
        "no launch, nothing removed: {plan:?}"
    );
    assert_eq!(
        plan.deferred,
        vec![Deferred {
            what: "launch tq-test-job-2-1-a2".into(),
            limit: "booting runner tq-test-job-1-1-a1 can take a queued job with these labels"
                .into(),
        }]
    );
    // Looked at again when job 1's machine has had its time to boot.
    assert_eq!(plan.requeue_after, std::time::Duration::from_secs(MIN));
}

#[test]
fn past_its_time_to_boot_the_job_its_runner_left_gets_a_new_attempt() {
    let (runs, instances, runners) = swapped(true);
    let w = Scene::new(
        runs,
        instances,
        runners,
        vec![queued(2, &["go"])],
        at(2 * MIN),
    );
    let plan = w.plan(&policy());
    assert_eq!(
        kinds(&plan),
        vec![
            "mark run job-2-1 pending for attempt 2: its runner took another queued job and its own still waits: another runner",
            "launch tq-test-job-2-1-a2 (run job-2-1, attempt 2) in pool go: its runner took another queued job and its own still waits: another runner",
        ]
    );
    // Job 1's slow machine is still given until the registration timeout.
    assert!(!plan.actions.iter().any(Action::is_destructive), "{plan:?}");
}

#[test]
fn gitea_s_busy_flag_may_lag_the_webhook_that_says_the_runner_took_a_job() {
    let (runs, instances, runners) = swapped(false);
    let w = Scene::new(
        runs,
        instances,
        runners,
        vec![queued(2, &["go"])],
        at(3 * MIN),
    );
    let plan = w.plan(&policy());
    assert_eq!(
        kinds(&plan)[1],
        "launch tq-test-job-2-1-a2 (run job-2-1, attempt 2) in pool go: its runner took another queued job and its own still waits: another runner"
    );
    assert!(!plan.actions.iter().any(Action::is_destructive), "{plan:?}");
}

#[test]
fn an_idle_spare_stands_in_before_a_booting_one() {
    let (mut runs, mut instances, mut runners) = swapped(true);
    // Job 3's run is over (done elsewhere); its runner is online and idle.
    let mut three = running(
        with_job_state(
            go_run(3),
            JobState::Completed {
                conclusion: "success".into(),
            },
        ),
        "i-3",
        at(0),
    );
    three.status.registered_at = Some(at(30));
    instances.push(instance_for(
        &three,
        "i-3",
        "go",
        InstanceState::Running,
        at(0),
    ));
    runners.push(runner(
        103,
        name_of(&three).as_str(),
        &["go", "linux"],
        true,
        false,
    ));
    runs.push(three);
    let w = Scene::new(runs, instances, runners, vec![queued(2, &["go"])], at(MIN));
    let plan = w.plan(&policy());
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(
        plan.deferred,
        vec![Deferred {
            what: "launch tq-test-job-2-1-a2".into(),
            limit: "idle runner tq-test-job-3-1-a1 can take a queued job with these labels".into(),
        }]
    );
}

#[test]
fn without_word_of_which_job_the_runner_took_nothing_changes() {
    // Busy in Gitea, but no webhook or read says on which job: it may be its own (the
    // queued list and the runner list are not read at one instant).
    let (mut runs, instances, runners) = swapped(true);
    runs[0].spec.job_state = JobState::Queued;
    let w = Scene::new(
        runs,
        instances,
        runners,
        vec![queued(1, &["go"]), queued(2, &["go"])],
        at(3 * MIN),
    );
    let plan = w.plan(&policy());
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| a.run().is_some_and(|r| r.as_str() == "job-2-1")),
        "{plan:?}"
    );
}

#[test]
fn while_its_own_job_is_not_confirmed_waiting_nothing_changes() {
    // Job 2 is not in the queued list (taken, or the list moved on) and nothing says more.
    let (runs, instances, runners) = swapped(true);
    let w = Scene::new(runs, instances, runners, vec![], at(3 * MIN));
    let plan = w.plan(&policy());
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| a.run().is_some_and(|r| r.as_str() == "job-2-1")),
        "{plan:?}"
    );
}

#[test]
fn the_busy_machine_of_the_old_attempt_runs_on_and_max_attempts_does_not_bar_a_handover() {
    let (runs, instances, runners) = swapped(true);
    let mut w = Scene::new(
        runs,
        instances,
        runners,
        vec![queued(2, &["go"])],
        at(2 * MIN),
    );
    let mut p = policy();
    p.safety.max_attempts = 1;
    let plan = w.plan(&p);
    assert_eq!(plan.actions.len(), 2, "requeued and launched: {plan:?}");
    w.apply(&plan);
    w.now = at(2 * MIN + 5);
    let plan = w.plan(&p);
    assert!(!plan.actions.iter().any(Action::is_destructive), "{plan:?}");
    let two = w
        .desired
        .runs
        .iter()
        .find(|r| r.id.as_str() == "job-2-1")
        .expect("run 2 is live");
    assert_eq!((two.status.phase, two.status.attempt), (Phase::Running, 2));
}

#[test]
fn a_runner_that_came_online_after_its_run_was_over_and_takes_nothing_is_stuck() {
    // Job 1 was taken by job 2's runner while job 1's machine booted; job 1's runner came
    // online afterwards (its run never recorded that) and takes nothing while job 2 waits.
    let (runs, instances, mut runners) = swapped(true);
    runners[0].online = true;
    let before = Scene::new(
        runs.clone(),
        instances.clone(),
        runners.clone(),
        vec![queued(2, &["go"])],
        at(2 * MIN),
    );
    let plan = before.plan(&policy());
    assert!(
        plan.deferred
            .iter()
            .any(|d| d.limit.starts_with("idle runner tq-test-job-1-1-a1")),
        "it stands in while it may still take the job: {plan:?}"
    );
    let w = Scene::new(
        runs,
        instances,
        runners,
        vec![queued(2, &["go"])],
        at(4 * MIN),
    );
    let plan = w.plan(&policy());
    let kinds = kinds(&plan);
    assert!(
        kinds.contains(
            &"deregister runner tq-test-job-1-1-a1 (#101): stuck: online and idle for 3m while a job it could serve waited"
                .to_owned()
        ),
        "{kinds:#?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| k.starts_with("launch tq-test-job-2-1-a2")),
        "{kinds:#?}"
    );
}
