//! The fleet summary, and that it agrees with the plan made from the same observation.

use std::time::Duration;

use super::*;
use crate::observed::{InstanceState, InvalidRow, Seen};
use crate::plan::{Action, Reason};
use crate::testing::*;

const MIN: u64 = 60;

fn summary(w: &Scene, policy: &Policy) -> FleetSummary {
    fleet_summary(&w.desired, &w.observed(), policy, w.now)
}

fn row<'s>(s: &'s FleetSummary, pool: &str) -> &'s PoolStatus {
    s.pools.iter().find(|p| p.pool == pool).expect("pool row")
}

/// Run job-1-1 of pool go on instance i-1 since `T0`, its runner #5 online and busy or
/// offline (never online yet).
fn one_go_run(online: bool) -> Scene {
    let run = running(job_run(1, &["go"]), "i-1", T0);
    let name = name_of(&run);
    Scene::new(
        vec![run.clone()],
        vec![instance_for(&run, "i-1", "go", InstanceState::Running, T0)],
        vec![runner(5, name.as_str(), &["go", "linux"], online, online)],
        vec![],
        T0,
    )
}

fn offline_notes(s: &FleetSummary) -> Vec<String> {
    s.problems
        .iter()
        .filter(|p| matches!(p, Problem::OfflineRunner { .. }))
        .map(ToString::to_string)
        .collect()
}

#[test]
fn policy_predicates_say_what_the_planner_and_the_summary_read() {
    let mut p = policy();
    assert_eq!(p.pool("go").map(|p| p.name.as_str()), Some("go"));
    assert!(p.pool("gpu").is_none());
    assert!(p.asks_foreign(&["linux".into(), "host".into()]));
    assert!(!p.asks_foreign(&["linux".into()]));
    let host = job_run(1, &["host"]);
    assert!(p.is_foreign(&host.spec));
    let mut pinned = host.clone();
    pinned.spec.pool = Some("go".into());
    assert!(!p.is_foreign(&pinned.spec), "an operator's pool wins");
    p.pools[1].max_lifetime = Duration::from_secs(3600);
    assert_eq!(p.max_lifetime_of(p.pool("go")), Duration::from_secs(3600));
    assert_eq!(p.max_lifetime_of(None), p.timeouts.max_lifetime);
    assert_eq!(
        p.registration_deadline(at(30)),
        at(30).plus(p.timeouts.registration)
    );
}

#[test]
fn counts_runs_instances_and_runners_per_pool_in_configuration_order() {
    let pending = job_run(1, &["go"]);
    let busy = running(job_run(2, &["go"]), "i-2", T0);
    let idle = running(job_run(3, &["docker"]), "i-3", T0);
    let w = Scene::new(
        vec![pending, busy.clone(), idle.clone()],
        vec![
            instance_for(&busy, "i-2", "go", InstanceState::Running, T0),
            instance_for(&idle, "i-3", "docker", InstanceState::Running, T0),
        ],
        vec![
            runner(20, name_of(&busy).as_str(), &["go", "linux"], true, true),
            runner(
                30,
                name_of(&idle).as_str(),
                &["docker", "linux"],
                true,
                false,
            ),
            runner(99, "standing-host-runner", &["host"], true, false),
        ],
        vec![queued(1, &["go"])],
        at(60),
    );
    let s = summary(&w, &policy());
    let names: Vec<&str> = s.pools.iter().map(|p| p.pool.as_str()).collect();
    assert_eq!(names, ["docker", "go"], "no row for the standing runner");
    let go = row(&s, "go");
    assert_eq!(
        (
            go.runs,
            go.pending,
            go.instances,
            go.busy_runners,
            go.max_instances
        ),
        (2, 1, 1, 1, 10)
    );
    let docker = row(&s, "docker");
    assert_eq!(
        (docker.runs, docker.instances, docker.idle_runners),
        (1, 1, 1)
    );
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.planned.get("launch"),
        Some(&1),
        "the pending run launches"
    );
}

#[test]
fn a_foreign_run_is_left_alone_by_both_the_plan_and_the_summary() {
    let host = job_run(1, &["host"]);
    let mut pinned = job_run(2, &["host"]);
    pinned.spec.pool = Some("go".into());
    let w = Scene::new(
        vec![host, pinned],
        vec![],
        vec![],
        vec![queued(1, &["host"]), queued(2, &["host"])],
        at(10),
    );
    let plan = w.plan(&policy());
    assert!(
        plan.actions
            .iter()
            .all(|a| a.run() != Some(&RunId::for_job(1, 1))),
        "{plan:?}"
    );
    assert!(plan.unschedulable.is_empty());
    let s = summary(&w, &policy());
    assert_eq!(row(&s, "go").runs, 1, "only the run pinned to go");
    assert!(s.pools.iter().all(|p| p.pool != NO_POOL));
    assert!(s.problems.is_empty(), "{:?}", s.problems);
}

#[test]
fn a_runner_is_starting_until_the_registration_deadline_when_the_plan_gives_up_on_it() {
    let mut w = one_go_run(false);
    let p = policy();
    let deadline = p.registration_deadline(T0);
    let gives_up = |plan: &crate::Plan| {
        plan.actions
            .iter()
            .any(|a| matches!(a.reason(), Reason::NeverRegistered { .. }))
    };

    w.now = T0.plus(p.timeouts.registration - Duration::from_secs(1));
    let s = summary(&w, &p);
    assert_eq!(
        (
            row(&s, "go").starting_runners,
            row(&s, "go").offline_runners
        ),
        (1, 0)
    );
    assert!(offline_notes(&s).is_empty());
    assert!(!gives_up(&w.plan(&p)));

    w.now = deadline;
    let s = summary(&w, &p);
    assert_eq!(
        (
            row(&s, "go").starting_runners,
            row(&s, "go").offline_runners
        ),
        (0, 1)
    );
    assert_eq!(
        offline_notes(&s),
        ["runner tq-test-job-1-1-a1 (#5) never came online in 10m (registration timeout 10m) (run job-1-1)"]
    );
    assert!(gives_up(&w.plan(&p)), "the same instant in the plan");
}

#[test]
fn offline_runners_say_why_they_are_a_problem() {
    let mut went = running(job_run(1, &["go"]), "i-1", T0);
    went.status.registered_at = Some(at(30));
    went.status.runner_id = Some(5);
    went.status.offline_since = Some(at(60));
    let w = Scene::new(
        vec![went.clone()],
        vec![instance_for(&went, "i-1", "go", InstanceState::Running, T0)],
        vec![
            runner(5, name_of(&went).as_str(), &["go", "linux"], false, false),
            runner(6, "tq-test-job-1-1-a7", &["go"], false, false),
            runner(7, "tq-test-job-4-1-a1", &["docker"], false, false),
        ],
        vec![],
        at(2 * MIN),
    );
    let s = summary(&w, &policy());
    assert_eq!(
        offline_notes(&s),
        [
            "runner tq-test-job-1-1-a1 (#5) offline for 1m (run job-1-1)",
            "runner tq-test-job-1-1-a7 (#6) is offline and belongs to attempt 7, not the current attempt 1 (run job-1-1)",
            "runner tq-test-job-4-1-a1 (#7) is offline and serves no active run",
        ]
    );
    assert_eq!(row(&s, "go").offline_runners, 2);
    assert_eq!(row(&s, "docker").offline_runners, 1, "by its labels");
}

#[test]
fn aging_uses_the_pools_own_lifetime_the_one_the_plan_terminates_at() {
    let mut w = one_go_run(true);
    w.now = at(31 * MIN);
    let mut p = policy();
    p.pools[1].max_lifetime = Duration::from_secs(3600);
    let s = summary(&w, &p);
    assert_eq!(
        s.problems,
        [Problem::AgingInstance {
            instance: "i-1".into(),
            pool: "go".into(),
            age: Duration::from_secs(31 * 60),
            max_lifetime: Duration::from_secs(3600),
        }]
    );
    w.now = at(60 * MIN);
    let plan = w.plan(&p);
    assert!(
        plan.actions.iter().any(|a| matches!(
            a,
            Action::Terminate { reason: Reason::MaxLifetime { limit }, .. }
                if *limit == Duration::from_secs(3600)
        )),
        "{plan:?}"
    );
}

#[test]
fn partial_sources_invalid_rows_run_errors_and_the_plans_problems_come_in_order() {
    let mut failing = job_run(2, &["go"]);
    failing.status.last_error = Some("launch: no capacity".into());
    let mut w = Scene::new(
        vec![failing, job_run(3, &["gpu"])],
        vec![],
        vec![],
        vec![queued(2, &["go"]), queued(3, &["gpu"])],
        at(10),
    );
    w.desired.invalid.push(InvalidRow {
        key: "job-9-1".into(),
        error: "attribute `phase`: `bogus` is not a phase".into(),
    });
    let mut observed = w.observed();
    observed.runners = Seen::Partial {
        items: vec![],
        error: "page 3: timed out".into(),
    };
    let s = fleet_summary(&w.desired, &observed, &policy(), w.now);
    let kinds: Vec<String> = s
        .problems
        .iter()
        .map(|p| serde_json::to_value(p).expect("json")["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "\"observation-error\"",
            "\"withheld\"",
            "\"unschedulable\"",
            "\"invalid-row\"",
            "\"run-error\"",
        ]
    );
    assert_eq!(
        s.problems[0].to_string(),
        "could not observe gitea runners: page 3: timed out"
    );
    assert_eq!(row(&s, NO_POOL).runs, 1, "the gpu run");
}

#[test]
fn the_summary_has_the_warm_rows_of_the_same_observation() {
    let w = Scene::new(vec![], vec![], vec![], vec![], at(10));
    let p = with_warm(policy(), "go", 2, None);
    let s = summary(&w, &p);
    assert_eq!(s.warm, warm_summary(&w.desired, &w.observed(), &p, w.now));
    assert_eq!(s.warm.len(), 1);
    assert_eq!(s.planned.get("launch"), Some(&2), "the top-up");
}
