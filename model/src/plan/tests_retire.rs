//! Table tests for what Gitea's own behaviour asks of the planner: re-runs of one job id,
//! stale redeliveries, stuck runners, interchangeable runners and the two-step retire.

use super::*;
use crate::desired::{JobState, Phase};
use crate::observed::InstanceState;
use crate::testing::*;
use crate::{ForgeRunner, RunId, Seen, SeenRunner};

fn kinds(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

const MIN: u64 = 60;

/// Run `job` (pick 1) on instance `i-<job>` with runner id `100 + job`, online since 1 min,
/// its runner online, idle and not disabled.
fn online_run(job: i64, labels: &[&str]) -> (crate::DesiredRun, crate::Instance, ForgeRunner) {
    let mut r = running(job_run(job, labels), &format!("i-{job}"), at(0));
    r.status.registered_at = Some(at(MIN));
    r.status.runner_id = Some(100 + job);
    let pool = labels[0];
    let i = instance_for(&r, &format!("i-{job}"), pool, InstanceState::Running, at(0));
    let g = runner(
        100 + job,
        name_of(&r).as_str(),
        &[pool, "linux"],
        true,
        false,
    );
    (r, i, g)
}

/// Run 1's runner online and idle for 4 minutes while its job waits; its runner disabled
/// (on an earlier pass) or not.
fn waiting_world(disabled: bool) -> Scene {
    let (r, i, mut g) = online_run(1, &["go"]);
    g.disabled = disabled;
    Scene::new(
        vec![r],
        vec![i],
        vec![g],
        vec![queued(1, &["go"])],
        at(5 * MIN),
    )
}

fn disabling() -> Policy {
    let mut p = policy();
    p.can_disable_runners = true;
    p
}

// ---- re-runs and stale redeliveries ------------------------------------------------------

#[test]
fn a_re_run_of_a_finished_job_gets_a_run_of_its_own() {
    // Job 1 ran once (pick 1, its run ended) and was re-run: Gitea lists it queued again with
    // run_attempt 1, the pick it waits for is 2.
    let mut job = queued(1, &["go"]);
    job.attempt = 1;
    let mut w = Scene::new(vec![], vec![], vec![], vec![job], at(0));
    w.desired
        .finished
        .push(ended(job_run(1, &["go"]), Phase::Done, at(0)));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "create run job-1-2 [go]: job 1 is queued in Gitea but had no desired run",
            "launch tq-test-job-1-2-a1 (run job-1-2, attempt 1) in pool go: run wants a runner and has none",
        ]
    );
}

#[test]
fn the_first_queue_of_a_job_is_pick_one() {
    let job = queued(7, &["go"]);
    assert_eq!(job.attempt, 0, "Gitea lists a new job with run_attempt 0");
    assert_eq!(job.run_id(), RunId::for_job(7, 1));
    let w = Scene::new(vec![go_run(7)], vec![], vec![], vec![job], at(0));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["launch tq-test-job-7-1-a1 (run job-7-1, attempt 1) in pool go: run wants a runner and has none"]
    );
}

fn go_run(job: i64) -> crate::DesiredRun {
    job_run(job, &["go"])
}

#[test]
fn a_stale_queued_redelivery_launches_nothing() {
    // A `queued` event for pick 1 of job 1 arrives after that pick completed: the queued list
    // does not show the job, and reading it says completed at run_attempt 1.
    let mut w = Scene::new(vec![go_run(1)], vec![], vec![], vec![], at(0));
    w.reads = vec![read(1, &["go"], "completed", 1, Some("tq-test-job-1-1-a1"))];
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["mark run job-1-1 done: job finished"]
    );
    // Read while a re-run waits (run_attempt 1, pick 2): pick 1 is over, and pick 2 gets its
    // own run from the queued list.
    let mut job = queued(1, &["go"]);
    job.attempt = 1;
    let w = Scene::new(vec![go_run(1)], vec![], vec![], vec![job], at(0));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "create run job-1-2 [go]: job 1 is queued in Gitea but had no desired run",
            "mark run job-1-1 done: job finished",
            "launch tq-test-job-1-2-a1 (run job-1-2, attempt 1) in pool go: run wants a runner and has none",
        ]
    );
}

#[test]
fn a_run_whose_job_gitea_cannot_confirm_waits_without_launching() {
    let w = Scene::new(vec![go_run(1)], vec![], vec![], vec![], at(0));
    let plan = w.plan(&policy());
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(plan.requeue_after, rules::FOLLOW_UP);
    // The list skipped it but reading it by id says it waits: launch.
    let mut w = w;
    w.reads = vec![read(1, &["go"], "queued", 0, None)];
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec!["launch tq-test-job-1-1-a1 (run job-1-1, attempt 1) in pool go: run wants a runner and has none"]
    );
}

#[test]
fn without_a_queued_list_a_webhook_run_launches_as_told() {
    // Gitea 1.24 has no jobs API: the webhook is all there is.
    let w = Scene::new(vec![go_run(1)], vec![], vec![], vec![], at(0));
    let mut observed = w.observed();
    observed.queued_jobs = Seen::Unavailable;
    let plan = super::plan(&w.desired, &observed, &policy(), w.now);
    assert_eq!(
        kinds(&plan),
        vec!["launch tq-test-job-1-1-a1 (run job-1-1, attempt 1) in pool go: run wants a runner and has none"]
    );
}

#[test]
fn without_a_queued_list_a_lost_runs_job_counts_as_taken_only_if_its_runner_registered() {
    // Gitea 1.24: no jobs API, so the table's `queued` is all there is. The machine ended by
    // itself (not a Spot reclaim) and its registration is gone.
    let lost = |registered: bool| {
        let mut r = running(go_run(1), "i-1", at(0));
        if registered {
            r.status.registered_at = Some(at(MIN));
            r.status.runner_id = Some(101);
        }
        let mut i = instance_for(&r, "i-1", "go", InstanceState::Terminated, at(0));
        i.state_reason = Some("Client.InstanceInitiatedShutdown".into());
        let w = Scene::new(vec![r], vec![i], vec![], vec![], at(10 * MIN));
        let mut observed = w.observed();
        observed.queued_jobs = Seen::Unavailable;
        kinds(&super::plan(&w.desired, &observed, &policy(), w.now))
    };
    // Never registered: it cannot have taken the job, which still waits.
    assert_eq!(
        lost(false),
        vec![
            "mark run job-1-1 pending for attempt 2: instance gone while the job still waits",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: instance gone while the job still waits",
        ]
    );
    // Registered: it may have taken the job and ended with it.
    assert_eq!(
        lost(true),
        vec!["mark run job-1-1 done: the job no longer waits for a runner"]
    );
}

// ---- stuck runners -----------------------------------------------------------------------

#[test]
fn a_runner_online_and_idle_while_its_job_waits_is_stuck_and_replaced() {
    let (r, i, g) = online_run(1, &["go"]);
    let jobs = vec![queued(1, &["go"])];
    let mut w = Scene::new(vec![r], vec![i], vec![g], jobs, at(3 * MIN));
    let plan = w.plan(&disabling());
    assert!(plan.actions.is_empty(), "not stuck yet: {plan:?}");
    assert_eq!(plan.requeue_after, Duration::from_secs(60));

    w.now = at(4 * MIN);
    let plan = w.plan(&disabling());
    assert_eq!(
        kinds(&plan),
        vec!["disable runner tq-test-job-1-1-a1 (#101): stuck: online and idle for 3m while a job it could serve waited"]
    );
    assert_eq!(plan.requeue_after, rules::FOLLOW_UP);

    w.runners[0].disabled = true;
    w.now = at(4 * MIN + 5);
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): disabled on an earlier pass and still not busy",
            "terminate i-1 (run job-1-1) in pool go: disabled on an earlier pass and still not busy",
            "mark run job-1-1 pending for attempt 2: disabled on an earlier pass and still not busy",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: disabled on an earlier pass and still not busy",
        ]
    );
}

#[test]
fn a_runner_is_not_stuck_while_the_job_it_could_serve_is_new() {
    // Online for 20 minutes, but the only matching job was queued a minute ago.
    let (r, i, g) = online_run(1, &["go"]);
    let mut other = go_run(2);
    other.spec.created_at = at(19 * MIN);
    let mut r = r;
    r.spec.job_state = JobState::Completed {
        conclusion: "success".into(),
    };
    let w = Scene::new(
        vec![r, other],
        vec![i],
        vec![g],
        vec![queued(2, &["go"])],
        at(20 * MIN),
    );
    let plan = w.plan(&disabling());
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| a.is_destructive() || matches!(a, Action::Launch { .. })),
        "kept for job 2, which it stands in for: {plan:?}"
    );
    assert_eq!(plan.deferred.len(), 1, "{plan:?}");
    assert!(plan.deferred[0]
        .limit
        .contains("idle runner tq-test-job-1-1-a1"));
}

#[test]
fn without_disable_a_stuck_runner_is_deregistered_before_its_machine_goes() {
    let w = waiting_world(false);
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): stuck: online and idle for 3m while a job it could serve waited",
            "terminate i-1 (run job-1-1) in pool go: stuck: online and idle for 3m while a job it could serve waited",
            "mark run job-1-1 pending for attempt 2: stuck: online and idle for 3m while a job it could serve waited",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: stuck: online and idle for 3m while a job it could serve waited",
        ]
    );
}

// ---- interchangeable runners: keep while wanted ------------------------------------------

#[test]
fn a_finished_runs_idle_runner_is_kept_while_a_job_it_could_serve_waits() {
    // Run 41's job was done by another runner; its own runner came online afterwards. Job 63
    // (same labels) waits, and its run has no runner yet: the idle runner stands in.
    let (mut r, i, g) = online_run(41, &["go"]);
    r.spec.job_state = JobState::Completed {
        conclusion: "success".into(),
    };
    let waiting = go_run(63);
    let w = Scene::new(
        vec![r.clone(), waiting.clone()],
        vec![i.clone()],
        vec![g.clone()],
        vec![queued(63, &["go"])],
        at(2 * MIN),
    );
    let plan = w.plan(&disabling());
    assert!(
        plan.actions.is_empty(),
        "nothing removed, nothing launched: {plan:?}"
    );
    assert_eq!(
        plan.deferred,
        vec![Deferred {
            what: "launch tq-test-job-63-1-a1".into(),
            limit: "idle runner tq-test-job-41-1-a1 can take a queued job with these labels".into(),
        }]
    );
    // Once nothing queued could use it, it is retired in two steps.
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![g.clone()],
        vec![],
        at(3 * MIN),
    );
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec!["disable runner tq-test-job-41-1-a1 (#141): job finished"]
    );
    let mut g = g;
    g.disabled = true;
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(3 * MIN + 5));
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec![
            "deregister runner tq-test-job-41-1-a1 (#141): job finished",
            "terminate i-41 (run job-41-1) in pool go: job finished",
            "mark run job-41-1 done: job finished",
        ]
    );
}

#[test]
fn a_disabled_runner_that_took_a_job_meanwhile_is_left_to_finish() {
    let (mut r, i, mut g) = online_run(41, &["go"]);
    r.spec.job_state = JobState::Completed {
        conclusion: "success".into(),
    };
    g.disabled = true;
    g.busy = true;
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![g.clone()],
        vec![],
        at(3 * MIN),
    );
    assert!(w.plan(&disabling()).is_empty());
    // Gitea's busy flag lags; a job read naming it is enough.
    g.busy = false;
    let mut other = go_run(63);
    other.status = other.status.claimed(1, name_of(&other), at(0));
    let mut w = Scene::new(vec![r, other], vec![i], vec![g], vec![], at(3 * MIN));
    w.reads = vec![read(
        63,
        &["go"],
        "in_progress",
        1,
        Some("tq-test-job-41-1-a1"),
    )];
    let plan = w.plan(&disabling());
    assert!(
        !plan.actions.iter().any(|a| matches!(
            a,
            Action::Terminate { run: Some(run), .. } | Action::Deregister { run: Some(run), .. }
                if run.as_str() == "job-41-1"
        )),
        "{plan:?}"
    );
}

#[test]
fn a_run_whose_job_another_runner_took_releases_its_runner_at_once() {
    let (mut r, i, g) = online_run(1, &["go"]);
    r.spec.job_state = JobState::InProgress {
        runner: Some("tq-test-job-2-1-a1".into()),
    };
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(2 * MIN));
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec!["disable runner tq-test-job-1-1-a1 (#101): job was taken by another runner"]
    );
}

#[test]
fn a_cancelled_run_keeps_its_idle_runner_for_queued_work_too() {
    let (mut r, i, g) = online_run(1, &["go"]);
    r.spec.cancel = true;
    let w = Scene::new(
        vec![r],
        vec![i],
        vec![g],
        vec![queued(9, &["linux"])],
        at(2 * MIN),
    );
    let plan = w.plan(&disabling());
    assert!(!plan.actions.iter().any(Action::is_destructive), "{plan:?}");
}

#[test]
fn max_lifetime_does_not_wait_for_a_disable() {
    let (r, i, g) = online_run(1, &["go"]);
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(6 * 3600));
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): exceeded max lifetime 6h",
            "terminate i-1 (run job-1-1) in pool go: exceeded max lifetime 6h",
            "mark run job-1-1 failed (exceeded max lifetime 6h): exceeded max lifetime 6h",
        ]
    );
}

#[test]
fn an_orphan_with_a_runner_is_disabled_before_it_is_terminated() {
    let (mut r, i, g) = online_run(1, &["go"]);
    r.status.phase = Phase::Done;
    let mut w = Scene::new(vec![], vec![i], vec![g.clone()], vec![], at(10 * MIN));
    w.desired.finished.push(r.clone());
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec!["disable runner tq-test-job-1-1-a1 (#101): orphan: no live run wants it (older than 5m)"]
    );
    let mut g = g;
    g.disabled = true;
    w.runners = vec![g];
    assert_eq!(
        kinds(&w.plan(&disabling())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): orphan: no live run wants it (older than 5m)",
            "terminate i-1 (run job-1-1) in pool go: orphan: no live run wants it (older than 5m)",
        ]
    );
}

#[test]
fn a_runs_steps_carry_the_run_so_they_are_carried_out_in_order() {
    let (mut r, i, g) = online_run(1, &["go"]);
    r.spec.cancel = true;
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(2 * MIN));
    let plan = w.plan(&policy());
    let runs: Vec<Option<&str>> = plan
        .actions
        .iter()
        .map(|a| a.run().map(RunId::as_str))
        .collect();
    assert_eq!(runs, vec![Some("job-1-1"); 3], "{plan:?}");
}

#[test]
fn a_booting_runner_of_a_run_that_is_over_is_kept_while_queued_work_could_use_it() {
    // Run 1's job was taken elsewhere while its machine booted; job 2 still waits. The
    // runner is about to come online and take it: removing it now (Gitea 1.25, no disable)
    // could delete it in the moment it takes job 2.
    let r = running(
        with_job_state(
            go_run(1),
            JobState::InProgress {
                runner: Some("tq-test-job-9-1-a1".into()),
            },
        ),
        "i-1",
        at(0),
    );
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let booting = runner(101, name_of(&r).as_str(), &["go", "linux"], false, false);
    let w = Scene::new(
        vec![r.clone()],
        vec![i.clone()],
        vec![booting.clone()],
        vec![queued(2, &["go"])],
        at(MIN),
    );
    let plan = w.plan(&policy());
    assert!(!plan.actions.iter().any(Action::is_destructive), "{plan:?}");
    // Past the registration timeout it never will: retired, deregistration first.
    let w = Scene::new(
        vec![r],
        vec![i],
        vec![booting],
        vec![queued(2, &["go"])],
        at(11 * MIN),
    );
    let plan = w.plan(&policy());
    let of_run_1: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.run().is_some_and(|r| r.as_str() == "job-1-1"))
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        of_run_1,
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): job was taken by another runner",
            "terminate i-1 (run job-1-1) in pool go: job was taken by another runner",
            "mark run job-1-1 done: job was taken by another runner",
        ]
    );
}

#[test]
fn without_disable_a_deregistration_holds_only_if_the_runner_is_still_as_seen() {
    let w = waiting_world(false);
    let guards: Vec<Option<SeenRunner>> = w
        .plan(&policy())
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Deregister { guard, .. } => Some(*guard),
            _ => None,
        })
        .collect();
    assert_eq!(guards, vec![Some(SeenRunner { online: true })]);
    let guard = SeenRunner { online: true };
    assert!(guard.still_holds(true, false));
    assert!(!guard.still_holds(true, true), "took a job since");
    assert!(
        !SeenRunner { online: false }.still_holds(true, false),
        "came online since"
    );
}

#[test]
fn a_disabled_runner_is_deregistered_without_a_guard() {
    let w = waiting_world(true);
    assert!(w
        .plan(&disabling())
        .actions
        .iter()
        .any(|a| matches!(a, Action::Deregister { guard: None, .. })));
}

#[test]
fn a_runner_disabled_moments_ago_is_removed_only_once_a_job_it_took_would_show() {
    // Disabled 5 s ago: a job it picked just before would not show as busy yet (Gitea's busy
    // flag follows the runner's first report on the task). Nothing is removed until the
    // disable has stood for DISABLE_SETTLE; then the second step goes ahead.
    let mut w = waiting_world(true);
    let disabled_at = at(5 * MIN - 5);
    w.disabled_since.insert(101, disabled_at);
    let plan = w.plan(&disabling());
    assert!(!plan.actions.iter().any(Action::is_destructive), "{plan:?}");
    assert_eq!(plan.requeue_after, std::time::Duration::from_secs(10));
    w.now = disabled_at.plus(rules::DISABLE_SETTLE);
    let plan = w.plan(&disabling());
    assert_eq!(
        kinds(&plan)[..2],
        [
            "deregister runner tq-test-job-1-1-a1 (#101): disabled on an earlier pass and still not busy",
            "terminate i-1 (run job-1-1) in pool go: disabled on an earlier pass and still not busy",
        ],
        "{plan:?}"
    );
}

#[test]
fn an_offline_runner_disabled_moments_ago_is_removed_without_waiting() {
    // A zombie: offline past the grace, disabled 5 s ago. It has not been in contact since
    // before the disable, so it picked no job: the removal goes ahead now, before Gitea's
    // own zombie cron fails the job and the run's reason is lost.
    let mut r = running(go_run(1), "i-1", at(0));
    r.status.registered_at = Some(at(MIN));
    r.status.offline_since = Some(at(10 * MIN));
    let i = instance_for(&r, "i-1", "go", InstanceState::Running, at(0));
    let mut g = runner(5, name_of(&r).as_str(), &["go"], false, false);
    g.disabled = true;
    let mut w = Scene::new(vec![r], vec![i], vec![g], vec![], at(20 * MIN));
    w.disabled_since.insert(5, at(20 * MIN - 5));
    assert_eq!(
        kinds(&w.plan(&disabling()))[..2],
        [
            "deregister runner tq-test-job-1-1-a1 (#5): runner offline for more than 3m",
            "terminate i-1 (run job-1-1) in pool go: runner offline for more than 3m",
        ]
    );
}

#[test]
fn a_finished_runs_registration_waits_out_ec2s_list_lag_before_it_is_removed() {
    // Launched 10 s ago, its machine not listed by EC2 yet: its registration may be serving a
    // job already. After the list's lag, with still no machine, it is removed once silent:
    // while it talks to Gitea its machine lives, only unlisted.
    let mut r = running(go_run(1), "i-1", at(0));
    r.spec.job_state = JobState::Completed {
        conclusion: "success".into(),
    };
    let mut g = runner(101, name_of(&r).as_str(), &["go", "linux"], true, false);
    let w = Scene::new(vec![r.clone()], vec![], vec![g.clone()], vec![], at(10));
    let plan = w.plan(&policy());
    assert!(plan.actions.is_empty(), "{plan:?}");
    let w = Scene::new(vec![r.clone()], vec![], vec![g.clone()], vec![], at(61));
    assert!(w.plan(&policy()).actions.is_empty());
    g.online = false;
    let w = Scene::new(vec![r], vec![], vec![g], vec![], at(61));
    assert_eq!(
        kinds(&w.plan(&policy())),
        vec![
            "deregister runner tq-test-job-1-1-a1 (#101): job finished",
            "mark run job-1-1 done: job finished",
        ]
    );
}

#[test]
fn a_machine_missing_from_a_list_read_before_the_lag_ran_out_is_not_lost() {
    // Launched at 0 and not listed: EC2's list may lag 60 s. This pass plans at 61 s, but its
    // list was read at 59 s: nothing is concluded yet, and it looks again soon.
    let r = running(go_run(1), "i-1", at(0));
    let w = Scene::new(vec![r], vec![], vec![], vec![queued(1, &["go"])], at(61));
    let mut seen = w.observed();
    seen.instances_read_at = Some(at(59));
    let plan = crate::plan(&w.desired, &seen, &policy(), w.now);
    assert!(plan.actions.is_empty(), "{plan:?}");
    assert_eq!(plan.requeue_after, std::time::Duration::from_secs(5));
    // Read at 60 s or later, the machine is gone: the run goes on as its next attempt.
    seen.instances_read_at = Some(at(60));
    let plan = crate::plan(&w.desired, &seen, &policy(), w.now);
    assert_eq!(
        kinds(&plan),
        [
            "mark run job-1-1 pending for attempt 2: instance gone while the job still waits",
            "launch tq-test-job-1-1-a2 (run job-1-1, attempt 2) in pool go: instance gone while the job still waits",
        ]
    );
}
