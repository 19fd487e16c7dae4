//! Table tests, one or more per rule. Each asserts the whole plan, so nothing else sneaks in.

use std::time::Duration;

use super::*;
use crate::desired::{JobState, Phase};
use crate::observed::{ForgeRunner, InstanceState, InvalidRow, SPOT_INTERRUPTION};
use crate::testing::*;
use crate::{InstanceId, RunId, Seen};

fn kinds(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

fn go_run(job: i64) -> crate::DesiredRun {
    job_run(job, &["go"])
}

const MIN: u64 = 60;

#[test]
fn launches_a_runner_for_a_pending_run() {
    let w = Scene::new(
        vec![go_run(1)],
        vec![],
        vec![],
        vec![queued(1, &["go"])],
        at(0),
    );
    let plan = w.plan(&policy());
    assert_eq!(
        plan.actions,
        vec![Action::Launch {
            run: RunId::for_job(1, 1),
            attempt: 1,
            runner: name_of(&go_run(1)),
            pool: "go".into(),
            labels: vec!["go".into(), "linux".into()],
            reason: Reason::NoRunner,
        }]
    );
    assert!(plan.unschedulable.is_empty() && plan.deferred.is_empty());
}

#[test]
fn picks_the_pool_whose_labels_cover_every_runs_on_label() {
    let w = Scene::new(
        vec![job_run(1, &["linux", "docker"])],
        vec![],
        vec![],
        vec![queued(1, &["linux", "docker"])],
        at(0),
    );
    let plan = w.plan(&policy());
    assert!(
        matches!(&plan.actions[..], [Action::Launch { pool, .. }] if pool == "docker"),
        "{plan:?}"
    );
}

#[test]
fn of_two_pools_that_cover_the_labels_the_one_a_label_names_is_preferred() {
    // `docker` runners carry `go` too, so both pools cover [linux, go]; `docker` comes first
    // in order, but `go` is named by a label.
    let mut p = policy();
    p.pools[0].labels.push("go".into());
    assert_eq!(p.pools[0].name, "docker");
    let w = Scene::new(
        vec![job_run(1, &["linux", "go"])],
        vec![],
        vec![],
        vec![queued(1, &["linux", "go"])],
        at(0),
    );
    let plan = w.plan(&p);
    assert!(
        matches!(&plan.actions[..], [Action::Launch { pool, .. }] if pool == "go"),
        "{plan:?}"
    );
    // Named by no label ([linux]), the first pool that covers it serves.
    let w = Scene::new(
        vec![job_run(2, &["linux"])],
        vec![],
        vec![],
        vec![queued(2, &["linux"])],
        at(0),
    );
    let plan = w.plan(&p);
    assert!(
        matches!(&plan.actions[..], [Action::Launch { pool, .. }] if pool == "docker"),
        "{plan:?}"
    );
}

#[test]
fn reports_unschedulable_labels_instead_of_dropping_them() {
    let w = Scene::new(
        vec![job_run(1, &["godot"]), job_run(2, &["go", "gpu"])],
        vec![],
        vec![],
        vec![],
        at(0),
    );
    let plan = w.plan(&policy());
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.unschedulable,
        vec![
            Unschedulable {
                run: RunId::for_job(1, 1),
                labels: vec!["godot".into()]
            },
            Unschedulable {
                run: RunId::for_job(2, 1),
                labels: vec!["go".into(), "gpu".into()]
            },
        ]
    );
}

#[test]
fn ignores_runs_for_foreign_labels() {
    let w = Scene::new(
        vec![job_run(1, &["host"])],
        vec![],
        vec![],
        vec![queued(2, &["host"])],
        at(0),
    );
    let plan = w.plan(&policy());
    assert!(
        plan.actions.is_empty() && plan.unschedulable.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn backfills_a_queued_job_that_has_no_run_and_launches_for_it() {
    let w = Scene::new(vec![], vec![], vec![], vec![queued(7, &["go"])], at(0));
    let plan = w.plan(&policy());
    assert_eq!(
        kinds(&plan),
        vec![
            "create run job-7-1 [go]: job 7 is queued in Gitea but had no desired run".to_owned(),
            "launch tq-test-job-7-1-a1 (run job-7-1, attempt 1) in pool go: run wants a runner and has none".to_owned(),
        ]
    );
}

#[test]
fn does_not_backfill_a_run_that_already_ended() {
    let mut w = Scene::new(vec![], vec![], vec![], vec![queued(7, &["go"])], at(0));
    w.desired
        .finished
        .push(ended(job_run(7, &["go"]), Phase::Done, at(0)));
    assert!(w.plan(&policy()).is_empty());
}

#[test]
fn launches_respect_the_per_pass_budget_and_the_caps() {
    let mut p = policy();
    p.safety.max_launches_per_pass = 2;
    let jobs = (1..=3).map(|j| queued(j, &["go"])).collect();
    let w = Scene::new((1..=3).map(go_run).collect(), vec![], vec![], jobs, at(0));
    let plan = w.plan(&p);
    assert_eq!(plan.actions.len(), 2);
    assert_eq!(plan.deferred.len(), 1);
    assert!(plan.deferred[0].limit.contains("max_launches_per_pass"));
    assert_eq!(plan.requeue_after, FOLLOW_UP_FOR_TESTS);

    let mut p = policy();
    p.pools[1].max_instances = 1; // go
    let busy = running(go_run(9), "i-busy", at(0));
    let inst = instance_for(&busy, "i-busy", "go", InstanceState::Running, at(0));
    let w = Scene::new(
        vec![busy, go_run(1)],
        vec![inst],
        vec![],
        vec![queued(1, &["go"])],
        at(10),
    );
    let plan = w.plan(&p);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Launch { .. })),
        "{plan:?}"
    );
    assert_eq!(plan.deferred[0].limit, "pools.go.max_instances (1)");

    let mut p = policy();
    p.safety.max_instances = 1;
    let w = Scene::new(
        vec![go_run(1), job_run(2, &["docker"])],
        vec![],
        vec![],
        vec![queued(1, &["go"]), queued(2, &["docker"])],
        at(0),
    );
    let plan = w.plan(&p);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(plan.deferred[0].limit, "safety.max_instances (1)");
}

const FOLLOW_UP_FOR_TESTS: Duration = rules::FOLLOW_UP;

#[test]
fn adopts_a_tagged_instance_of_a_claimed_run() {
    let mut r = go_run(1);
    r.status = r.status.claimed(1, name_of(&r), at(0));
    let i = instance_for(&r, "i-1", "go", InstanceState::Pending, at(5));
    let w = Scene::new(vec![r], vec![i], vec![], vec![], at(10));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 running on i-1: tagged instance found"]
    );
}

#[test]
fn relaunches_a_stale_claim_with_the_same_attempt_and_removes_its_unused_registration() {
    let mut r = go_run(1);
    r.status = r.status.claimed(1, name_of(&r), at(0));
    let reg = runner(5, name_of(&r).as_str(), &["go"], false, false);
    let w = Scene::new(
        vec![r.clone()],
        vec![],
        vec![reg.clone()],
        vec![queued(1, &["go"])],
        at(4 * MIN),
    );
    assert!(w.plan(&policy()).is_empty(), "claim still fresh");
    let w = Scene::new(
        vec![r],
        vec![],
        vec![reg],
        vec![queued(1, &["go"])],
        at(5 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): claimed but no instance within 5m",
            "launch tq-test-job-1-1-a1 (run job-1-1, attempt 1) in pool go: claimed but no instance within 5m",
        ]
    );
}

#[test]
fn records_a_runner_the_first_time_it_is_online() {
    let r = running(go_run(1), "i-1", at(0));
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g = runner(5, name_of(&r).as_str(), &["go", "linux"], true, false);
    let w = Scene::new(vec![r], vec![i], vec![g], vec![queued(1, &["go"])], at(MIN));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 registered as runner #5: runner online"]
    );
}

#[test]
fn terminates_and_retries_an_instance_that_never_registered() {
    let r = running(go_run(1), "i-1", at(0));
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let pre = runner(5, name_of(&r).as_str(), &["go"], false, false);
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![pre.clone()],
        vec![queued(1, &["go"])],
        at(9 * MIN),
    );
    let plan = w.plan(&policy());
    assert!(plan.is_empty(), "within the registration timeout: {plan:?}");
    assert_eq!(
        plan.requeue_after,
        Duration::from_secs(60),
        "resync caps the wait"
    );

    let w = Scene::new(
        vec![r],
        vec![i],
        vec![pre],
        vec![queued(1, &["go"])],
        at(10 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): never registered within 10m",
            "terminate i-1 (run job-1-1) in pool go: never registered within 10m",
            "mark run job-1-1 pending for attempt 2: never registered within 10m",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: never registered within 10m",
        ]
    );
}

#[test]
fn fails_a_run_after_its_last_attempt() {
    let mut r = go_run(1);
    r.status.attempt = 3;
    let r = running(r, "i-3", at(0));
    let i = instance_for(&r, "i-3", "go", InstanceState::Running, at(0));
    let w = Scene::new(
        vec![r],
        vec![i],
        vec![],
        vec![queued(1, &["go"])],
        at(11 * MIN),
    );
    let plan = w.plan(&policy());
    assert_eq!(
        kinds(&plan),
        vec![
            "terminate i-3 (run job-1-1) in pool go: never registered within 10m",
            "mark run job-1-1 failed (never registered within 10m; gave up after 3 attempts): gave up after 3 attempts",
        ]
    );
}

/// A run failed after its three attempts at `failed_at`, its job still queued in Gitea.
fn given_up(failed_at: Timestamp) -> Scene {
    let mut r = ended(go_run(1), Phase::Failed, failed_at);
    r.status.attempt = 3;
    let mut w = Scene::new(vec![], vec![], vec![], vec![queued(1, &["go"])], failed_at);
    w.desired.finished.push(r);
    w
}

#[test]
fn a_run_failed_after_its_attempts_rests_then_tries_once_more_while_its_job_waits() {
    let mut w = given_up(at(0));
    let plan = w.plan(&policy());
    assert!(plan.is_empty(), "{plan:?}");
    w.now = at(10 * MIN - 20);
    assert_eq!(
        w.plan(&policy()).requeue_after,
        Duration::from_secs(20),
        "the loop wakes when the rest is over"
    );
    w.now = at(10 * MIN);
    let plan = w.plan(&policy());
    assert_eq!(
        kinds(&plan),
        vec![
            "mark run job-1-1 pending for attempt 4: failed 10m ago and Gitea still queues its job: one more attempt",
            "launch tq-test-job-1-1-a4 (run job-1-1, attempt 4) in pool go: failed 10m ago and Gitea still queues its job: one more attempt",
        ]
    );
    w.apply(&plan);
    assert_eq!(w.desired.runs.len(), 1, "the run is active again");
    assert!(w.desired.finished.is_empty());
}

#[test]
fn a_retried_run_that_is_lost_again_fails_at_once_and_rests_again() {
    let mut w = given_up(at(0));
    w.now = at(10 * MIN);
    let plan = w.plan(&policy());
    w.apply(&plan);
    // Its machine never registers: the attempt is lost, and there are no attempts left.
    w.now = at(21 * MIN);
    let plan = w.plan(&policy());
    assert!(
        kinds(&plan)
            .iter()
            .any(|k| k.starts_with("mark run job-1-1 failed")),
        "{plan:?}"
    );
    w.apply(&plan);
    assert_eq!(w.desired.finished.len(), 1);
    w.now = at(22 * MIN);
    let plan = w.plan(&policy());
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("launch")),
        "one attempt per rest: {plan:?}"
    );
}

#[test]
fn only_failed_runs_whose_job_gitea_still_queues_are_tried_again() {
    // Cancelled by an operator: stays cancelled.
    let mut w = given_up(at(0));
    w.desired.finished[0].spec.cancel = true;
    w.now = at(60 * MIN);
    assert!(w.plan(&policy()).is_empty());
    // Done: nothing to do.
    let mut w = given_up(at(0));
    w.desired.finished[0].status.phase = Phase::Done;
    w.now = at(60 * MIN);
    assert!(w.plan(&policy()).is_empty());
    // The queued list is partial: whether the job waits is not known.
    let mut w = given_up(at(0));
    w.now = at(60 * MIN);
    let mut observed = w.observed();
    observed.queued_jobs = Seen::Unavailable;
    assert!(crate::plan(&w.desired, &observed, &policy(), w.now).is_empty());
    // Gitea queues a later pick (the job was re-run): that pick has a run of its own.
    let mut w = given_up(at(0));
    w.jobs[0].attempt = 1;
    w.now = at(60 * MIN);
    assert!(!kinds(&w.plan(&policy()))
        .iter()
        .any(|k| k.contains("job-1-1")));
}

fn idle_world(
    can_disable: bool,
    disabled: bool,
    jobs: Vec<crate::QueuedJob>,
    now: Timestamp,
) -> (Scene, Policy) {
    let mut r = running(go_run(1), "i-1", at(0));
    // A run with no Gitea job to ask about (an operator's): the idle rule decides.
    r.spec.job = None;
    r.status.registered_at = Some(at(MIN));
    r.status.runner_id = Some(5);
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let mut g = runner(5, name_of(&r).as_str(), &["go", "linux"], true, false);
    g.disabled = disabled;
    let mut p = policy();
    p.can_disable_runners = can_disable;
    (Scene::new(vec![r], vec![i], vec![g], jobs, now), p)
}

#[test]
fn removes_an_idle_runner_whose_job_went_elsewhere() {
    let (w, p) = idle_world(false, false, vec![], at(10 * MIN));
    assert!(w.plan(&p).is_empty(), "not idle long enough");
    let (w, p) = idle_world(false, false, vec![], at(11 * MIN));
    assert_eq!(
        kinds(&w.plan(&p)),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): idle for 10m with nothing queued for its labels",
            "terminate i-1 (run job-1-1) in pool go: idle for 10m with nothing queued for its labels",
            "mark run job-1-1 done: job was taken by another runner",
        ]
    );
}

#[test]
fn keeps_an_idle_runner_while_a_queued_job_could_use_it() {
    let (w, p) = idle_world(false, false, vec![queued(99, &["linux"])], at(30 * MIN));
    let plan = w.plan(&p);
    // Job 99 gets its own run (backfill); the idle runner is kept for it meanwhile.
    assert_eq!(
        kinds(&plan),
        vec![
            "create run job-99-1 [linux]: job 99 is queued in Gitea but had no desired run",
            "launch tq-test-job-99-1-a1 (run job-99-1, attempt 1) in pool docker: run wants a runner and has none",
        ]
    );
}

#[test]
fn disables_an_idle_runner_first_where_gitea_supports_it() {
    let (w, p) = idle_world(true, false, vec![], at(11 * MIN));
    let plan = w.plan(&p);
    assert_eq!(kinds(&plan), vec!["disable runner tq-test-job-1-1-a1 (#5): idle for 10m with nothing queued for its labels"]);
    assert_eq!(plan.requeue_after, FOLLOW_UP_FOR_TESTS);
    let (w, p) = idle_world(true, true, vec![], at(11 * MIN));
    assert_eq!(
        kinds(&w.plan(&p)),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): idle for 10m with nothing queued for its labels",
            "terminate i-1 (run job-1-1) in pool go: idle for 10m with nothing queued for its labels",
            "mark run job-1-1 done: job was taken by another runner",
        ]
    );
}

#[test]
fn never_terminates_a_busy_runner_before_max_lifetime() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    r.spec.cancel = true;
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g = runner(5, name_of(&r).as_str(), &["go"], true, true);
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![g.clone()],
        vec![],
        at(5 * 3600),
    );
    assert!(
        w.plan(&policy()).is_empty(),
        "busy runner of a cancelled run is left to finish"
    );
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(6 * 3600));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): cancelled by an operator",
            "terminate i-1 (run job-1-1) in pool go: cancelled by an operator",
            "mark run job-1-1 cancelled: cancelled by an operator",
        ]
    );
}

#[test]
fn a_webhook_saying_in_progress_counts_as_busy_even_when_gitea_lags() {
    let (mut w, p) = idle_world(false, false, vec![], at(30 * MIN));
    let name = w.desired.runs[0].runner_name(CLUSTER).to_string();
    w.desired.runs[0].spec.job_state = JobState::InProgress { runner: Some(name) };
    assert!(w.plan(&p).is_empty());
}

#[test]
fn terminates_at_max_lifetime_whatever_the_runner_says() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g = runner(5, name_of(&r).as_str(), &["go"], true, true);
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(6 * 3600));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): exceeded max lifetime 6h",
            "terminate i-1 (run job-1-1) in pool go: exceeded max lifetime 6h",
            "mark run job-1-1 failed (exceeded max lifetime 6h): exceeded max lifetime 6h",
        ]
    );
}

#[test]
fn marks_an_offline_runner_then_removes_it_as_a_zombie_after_the_grace() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    // A runner took the job, but which one is not known.
    r.spec.job_state = JobState::InProgress { runner: None };
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g = runner(5, name_of(&r).as_str(), &["go"], false, false);
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![g.clone()],
        vec![],
        at(20 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![format!(
            "mark run job-1-1 offline since {}: runner offline",
            at(20 * MIN)
        )]
    );

    r.status.offline_since = Some(at(20 * MIN));
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![g.clone()],
        vec![],
        at(22 * MIN),
    );
    assert!(w.plan(&policy()).is_empty(), "within the grace");
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(23 * MIN));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): runner offline for more than 3m",
            "terminate i-1 (run job-1-1) in pool go: runner offline for more than 3m",
            "mark run job-1-1 done: job was taken by another runner",
        ]
    );
}

#[test]
fn a_zombie_that_was_running_the_job_fails_the_run() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    r.status.offline_since = Some(at(10 * MIN));
    r.spec.job_state = JobState::InProgress {
        runner: Some(name_of(&r).to_string()),
    };
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g = runner(5, name_of(&r).as_str(), &["go"], false, false);
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(20 * MIN));
    let plan = w.plan(&policy());
    assert!(
        matches!(
            plan.actions.last(),
            Some(Action::UpdateStatus { change: StatusChange::Finish { phase: Phase::Failed, error: Some(e), .. }, .. })
                if e.contains("re-run it in Gitea")
        ),
        "{plan:?}"
    );
}

#[test]
fn deregisters_a_ghost_runner_with_no_live_instance() {
    let old = name_of(&go_run(1)); // attempt 1 of a run that is gone
    let g = runner(5, old.as_str(), &["go"], false, false);
    let standing = runner(6, "host-runner", &["host"], false, false);
    let w = Scene::new(vec![], vec![], vec![g, standing], vec![], at(0));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["deregister runner tq-test-job-1-1-a1 (#5): runner has no live instance"]
    );
}

#[test]
fn terminates_an_orphan_only_after_its_minimum_age() {
    let gone = go_run(1);
    let i = instance_for(&gone, "i-1", "go", InstanceState::Running, at(0));
    let w = Scene::new(vec![], vec![i.clone()], vec![], vec![], at(4 * MIN));
    let plan = w.plan(&policy());
    assert!(plan.is_empty());
    assert_eq!(plan.requeue_after, Duration::from_secs(60));
    let w = Scene::new(vec![], vec![i], vec![], vec![], at(5 * MIN));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "terminate i-1 (run job-1-1) in pool go: orphan: no live run wants it (older than 5m)"
        ]
    );
}

#[test]
fn never_touches_an_instance_without_our_cluster_tag() {
    let mut other = bare_instance("i-other", InstanceState::Running, at(0));
    other
        .tags
        .insert(crate::tags::CLUSTER.into(), "prod".into());
    let bare = bare_instance("i-bare", InstanceState::Running, at(0));
    let w = Scene::new(vec![], vec![other, bare], vec![], vec![], at(24 * 3600));
    assert!(w.plan(&policy()).is_empty());
}

#[test]
fn leaves_instances_of_an_unreadable_row_alone() {
    let r = go_run(1);
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let mut w = Scene::new(vec![], vec![i], vec![], vec![], at(3600));
    w.desired.invalid.push(InvalidRow {
        key: r.id.to_string(),
        error: "phase: bogus".into(),
    });
    assert!(w.plan(&policy()).is_empty());
}

#[test]
fn requeues_a_run_whose_spot_instance_was_interrupted() {
    let r = running(go_run(1), "i-1", at(0));
    let mut i = instance_for(&r, "i-1", "go", InstanceState::Terminated, at(0));
    i.state_reason = Some(SPOT_INTERRUPTION.into());
    let w = Scene::new(
        vec![r],
        vec![i],
        vec![],
        vec![queued(1, &["go"])],
        at(2 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "mark run job-1-1 pending for attempt 2: spot interruption before the run finished",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: spot interruption before the run finished",
        ]
    );
}

#[test]
fn a_run_whose_instance_ended_after_its_job_is_done() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    let i = instance_for(&r, "i-1", "go", InstanceState::Terminated, at(0));
    let mut w = Scene::new(vec![r], vec![i], vec![], vec![], at(10 * MIN));
    let plan = w.plan(&policy());
    assert!(
        plan.is_empty() && plan.requeue_after == FOLLOW_UP_FOR_TESTS,
        "the job is neither queued nor read: nothing is concluded yet: {plan:?}"
    );
    // Read by id: another runner took it.
    w.reads = vec![read(
        1,
        &["go"],
        "in_progress",
        1,
        Some("tq-test-job-7-1-a1"),
    )];
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 done: job was taken by another runner"]
    );
    // Read by id: it finished.
    w.reads = vec![read(1, &["go"], "completed", 1, Some("tq-test-job-7-1-a1"))];
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 done: job finished"]
    );
}

#[test]
fn waits_for_ec2_list_lag_before_calling_a_fresh_instance_lost() {
    let r = running(go_run(1), "i-1", at(0));
    let w = Scene::new(
        vec![r.clone()],
        vec![],
        vec![],
        vec![queued(1, &["go"])],
        at(30),
    );
    assert!(w.plan(&policy()).is_empty());
    let w = Scene::new(
        vec![r],
        vec![],
        vec![],
        vec![queued(1, &["go"])],
        at(2 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy()))[0],
        "mark run job-1-1 pending for attempt 2: instance gone while the job still waits"
    );
}

/// A world where EC2 lists no machine for `run`, whose registration is `r`; `waiting`: its
/// job is still queued.
fn unlisted(run: &crate::DesiredRun, r: ForgeRunner, waiting: bool, secs: u64) -> Scene {
    let job = run.spec.job.as_ref().map_or(0, |j| j.id);
    let jobs = if waiting {
        vec![queued(job, &["go"])]
    } else {
        vec![]
    };
    Scene::new(vec![run.clone()], vec![], vec![r], jobs, at(secs))
}

/// Its registration, `online` and `busy` as Gitea shows them.
fn registration(run: &crate::DesiredRun, online: bool, busy: bool) -> ForgeRunner {
    runner(5, name_of(run).as_str(), &["go", "linux"], online, busy)
}

/// `tinqs-ci sim --faults chaos --seed 1 --jobs 10000`: a run's machine was launched 60 s
/// ago and EC2 did not list it yet (the list was read a moment before the lag ran out), while
/// its runner had come online and just taken another queued job (Gitea shows busy only from
/// the first task report). Calling the machine lost deleted that runner under its job and
/// launched a second machine for the run.
#[test]
fn a_runner_online_proves_its_machine_lives_however_late_ec2_lists_it() {
    let r = running(go_run(1), "i-1", at(0));
    let plan = unlisted(&r, registration(&r, true, false), true, 61).plan(&policy());
    assert!(plan.is_empty(), "{:?}", kinds(&plan));
    assert_eq!(plan.requeue_after, FOLLOW_UP_FOR_TESTS);
    // Gitea already shows it busy on its own job: still nothing to do.
    let r = with_job_state(
        r,
        JobState::InProgress {
            runner: Some(name_of(&go_run(1)).to_string()),
        },
    );
    let w = unlisted(&r, registration(&r, true, true), false, 61);
    assert!(w.plan(&policy()).is_empty());
    // Once the runner is silent, the machine is lost; its registration is deleted only if
    // still as seen then.
    let plan = unlisted(&r, registration(&r, false, false), false, 3 * MIN).plan(&policy());
    assert!(
        matches!(
            plan.actions.first(),
            Some(Action::Deregister {
                runner_id: 5,
                guard: Some(SeenRunner { online: false }),
                ..
            })
        ),
        "{plan:?}"
    );
}

/// An online runner whose machine EC2 has not listed for the whole launch timeout, and which
/// takes no job: waiting on it would hold the run forever. The run goes on elsewhere; the
/// runner is deleted only if it is still online and idle.
#[test]
fn an_idle_runner_whose_machine_is_never_listed_does_not_hold_its_run_forever() {
    let r = running(go_run(1), "i-1", at(0));
    assert!(unlisted(&r, registration(&r, true, false), true, 4 * MIN)
        .plan(&policy())
        .is_empty());
    let plan = unlisted(&r, registration(&r, true, false), true, 6 * MIN).plan(&policy());
    assert!(
        matches!(
            plan.actions.first(),
            Some(Action::Deregister {
                runner_id: 5,
                guard: Some(SeenRunner { online: true }),
                ..
            })
        ),
        "{plan:?}"
    );
    assert!(
        kinds(&plan)
            .iter()
            .any(|k| k.starts_with("launch tq-test-job-1-1-a2")),
        "{:?}",
        kinds(&plan)
    );
    // Busy, it is left to finish its job, however long EC2 takes.
    let busy = unlisted(&r, registration(&r, true, true), true, 60 * MIN);
    assert!(busy.plan(&policy()).is_empty());
}

/// The same for a claim whose machine EC2 does not list past the launch timeout, and for a
/// run that is over: an online runner is never deleted for want of a listed machine.
#[test]
fn a_claimed_or_finished_run_keeps_a_runner_that_talks_to_gitea() {
    let mut r = go_run(1);
    r.status = r.status.claimed(1, name_of(&r), at(0));
    let w = unlisted(&r, registration(&r, true, false), true, 6 * MIN);
    assert!(w.plan(&policy()).is_empty());
    let mut done = running(go_run(2), "i-2", at(0));
    done.spec.job_state = JobState::Completed {
        conclusion: "success".into(),
    };
    let w = unlisted(&done, registration(&done, true, false), false, 6 * MIN);
    assert!(w.plan(&policy()).is_empty());
}

/// A ghost is a runner with no machine listed; one that came online between the list and
/// the delete has a machine after all, so its deletion is guarded.
#[test]
fn a_ghost_is_deleted_only_if_still_as_seen() {
    let old = name_of(&go_run(1));
    let g = runner(5, old.as_str(), &["go"], false, false);
    let w = Scene::new(vec![], vec![], vec![g], vec![], at(0));
    assert!(matches!(
        &w.plan(&policy()).actions[..],
        [Action::Deregister {
            runner_id: 5,
            guard: Some(SeenRunner { online: false }),
            reason: Reason::Ghost,
            ..
        }]
    ));
}

#[test]
fn finishes_a_completed_run_after_cleaning_up() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.spec.job_state = JobState::Completed {
        conclusion: "success".into(),
    };
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let g = runner(5, name_of(&r).as_str(), &["go"], true, false);
    let w = Scene::new(vec![r.clone()], vec![i], vec![g], vec![], at(5 * MIN));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#5): job finished",
            "terminate i-1 (run job-1-1) in pool go: job finished",
            "mark run job-1-1 done: job finished",
        ]
    );
    let w = Scene::new(vec![r], vec![], vec![], vec![], at(5 * MIN));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 done: job finished"]
    );
}

#[test]
fn cancels_a_pending_run_without_launching() {
    let mut r = go_run(1);
    r.spec.cancel = true;
    let w = Scene::new(vec![r], vec![], vec![], vec![queued(1, &["go"])], at(0));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 cancelled: cancelled by an operator"]
    );
}

#[test]
fn a_launch_in_a_pool_without_capacity_waits_until_an_offering_may_be_tried_again() {
    // Every offering of `go` failed for capacity a moment ago: its launch would fail without
    // asking EC2. It is deferred, with the reason, until the first offering may be tried
    // again; the `docker` pool is not held back with it.
    let mut w = Scene::new(
        vec![go_run(1), job_run(2, &["docker"])],
        vec![],
        vec![],
        vec![queued(1, &["go"]), queued(2, &["docker"])],
        at(0),
    );
    w.pools_without_capacity.insert("go".into(), at(30));
    let plan = w.plan(&policy());
    let launched: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { pool, .. } => Some(pool.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(launched, vec!["docker"], "{plan:?}");
    assert_eq!(plan.deferred.len(), 1, "{plan:?}");
    assert_eq!(
        plan.deferred[0].limit,
        format!(
            "every offering of pools.go is without capacity until {}",
            at(30)
        )
    );
    assert_eq!(plan.requeue_after, std::time::Duration::from_secs(30));
    w.pools_without_capacity.clear();
    w.now = at(30);
    assert!(w
        .plan(&policy())
        .actions
        .iter()
        .any(|a| matches!(a, Action::Launch { pool, .. } if pool == "go")));
}

#[test]
fn a_pending_run_whose_job_started_elsewhere_needs_no_runner() {
    let r = with_job_state(
        go_run(1),
        JobState::InProgress {
            runner: Some("tq-test-job-2-1-a1".into()),
        },
    );
    let w = Scene::new(vec![r], vec![], vec![], vec![], at(0));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 done: job was taken by another runner"]
    );
}

#[test]
fn a_partial_view_plans_no_destruction_but_still_launches() {
    let gone = go_run(1);
    let orphan = instance_for(&gone, "i-1", "go", InstanceState::Running, at(0));
    let ghost = runner(5, "tq-test-job-9-1-a1", &["go"], false, false);
    let w = Scene::new(
        vec![go_run(2)],
        vec![orphan],
        vec![ghost],
        vec![queued(2, &["go"])],
        at(3600),
    );
    let mut observed = w.observed();
    observed.runners = Seen::Partial {
        items: vec![],
        error: "page 2: 502".into(),
    };
    let plan = super::plan(&w.desired, &observed, &policy(), w.now);
    assert_eq!(kinds(&plan), vec!["launch tq-test-job-2-1-a1 (run job-2-1, attempt 1) in pool go: run wants a runner and has none"]);
    assert!(plan
        .withheld
        .as_deref()
        .is_some_and(|w| w.contains("Gitea runners incomplete: page 2: 502")));

    let mut observed = w.observed();
    observed.instances = Seen::Partial {
        items: vec![],
        error: "timeout".into(),
    };
    let plan = super::plan(&w.desired, &observed, &policy(), w.now);
    assert!(
        plan.actions.is_empty(),
        "no launches without knowing the fleet: {plan:?}"
    );
}

/// `tinqs-ci sim --faults chaos --seed 1 --jobs 10000`: the table's list was throttled, so
/// the pass saw no rows at all, and backfilled every queued job. The row of one existed (its
/// run at attempt 2 with a machine booting); the executor read it back and applied the
/// backfill's launch of attempt 1 to it, and the attempt-2 runner, now nobody's, was deleted
/// as a ghost while it ran a job.
#[test]
fn nothing_is_backfilled_from_a_partial_read_of_the_table() {
    let mut w = Scene::new(vec![], vec![], vec![], vec![queued(7, &["go"])], at(0));
    w.desired.complete = false;
    let plan = w.plan(&policy());
    assert!(plan.actions.is_empty(), "{:?}", kinds(&plan));
    w.desired.complete = true;
    assert_eq!(w.plan(&policy()).actions.len(), 2, "create and launch");
}

#[test]
fn terminations_respect_the_per_pass_budget() {
    let mut p = policy();
    p.safety.max_terminations_per_pass = 1;
    let a = instance_for(&go_run(1), "i-1", "go", InstanceState::Running, at(0));
    let b = instance_for(&go_run(2), "i-2", "go", InstanceState::Running, at(0));
    let w = Scene::new(vec![], vec![a, b], vec![], vec![], at(3600));
    let plan = w.plan(&p);
    assert_eq!(plan.actions.len(), 1);
    assert_eq!(
        plan.deferred,
        vec![Deferred {
            what: "terminate i-2".into(),
            limit: "safety.max_terminations_per_pass (1)".into()
        }]
    );
}

#[test]
fn a_duplicate_instance_for_one_runner_is_an_orphan() {
    let r = running(go_run(1), "i-1", at(0));
    let first = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let second = instance_for(&r, "i-2", "go", InstanceState::Running, at(1));
    let w = Scene::new(
        vec![r],
        vec![first, second],
        vec![],
        vec![queued(1, &["go"])],
        at(6 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "terminate i-2 (run job-1-1) in pool go: orphan: no live run wants it (older than 5m)"
        ]
    );
}

#[test]
fn requeue_after_is_the_nearest_deadline() {
    let r = running(go_run(1), "i-1", at(0));
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let mut p = policy();
    p.timeouts.resync = Duration::from_secs(3600);
    let w = Scene::new(
        vec![r],
        vec![i],
        vec![],
        vec![queued(1, &["go"])],
        at(9 * MIN + 30),
    );
    assert_eq!(
        w.plan(&p).requeue_after,
        Duration::from_secs(30),
        "registration deadline in 30 s"
    );
}

#[test]
fn actions_print_as_one_readable_line() {
    let a = Action::Terminate {
        instance: InstanceId::new("i-0abc"),
        run: None,
        runner: None,
        pool: Some("go".into()),
        reason: Reason::NeverRegistered {
            timeout: Duration::from_secs(600),
        },
    };
    assert_eq!(
        a.to_string(),
        "terminate i-0abc in pool go: never registered within 10m"
    );
}

#[test]
fn a_runner_that_ended_after_taking_its_job_is_a_success_even_without_the_completed_webhook() {
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    r.spec.job_state = JobState::InProgress {
        runner: Some(name_of(&r).to_string()),
    };
    let mut i = instance_for(&r, "i-1", "go", InstanceState::Terminated, at(0));
    i.state_reason = Some("Client.InstanceInitiatedShutdown".into());
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![],
        vec![],
        at(10 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 done: its runner took the job and ended"]
    );
    // The same end by a Spot reclaim fails the run: Gitea will fail that job.
    i.state_reason = Some(SPOT_INTERRUPTION.into());
    let w = Scene::new(vec![r], vec![i], vec![], vec![], at(10 * MIN));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 failed (spot interruption before the run finished while running the job; re-run it in Gitea): spot interruption before the run finished"]
    );
}
