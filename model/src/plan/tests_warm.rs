//! Table tests of warm pools: top-up, the hand-over of a waiting job to a warm runner, the
//! idle rule's ranking, max idle age, and the rules warm runners share with every runner.

use std::time::Duration;

use super::*;
use crate::desired::{JobState, Origin, Phase};
use crate::observed::{ForgeRunner, Instance, InstanceState};
use crate::testing::*;
use crate::{DesiredRun, RunId, Seen};

const MIN: u64 = 60;

fn kinds(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(ToString::to_string).collect()
}

/// A warm run of pool `go` whose runner has been online and idle since `online` (its machine
/// started a minute before), with its instance and runner.
fn ready_warm(n: u32, online: u64) -> (DesiredRun, Instance, ForgeRunner) {
    let launched = at(online.saturating_sub(MIN));
    let mut r = running(warm_run("go", n, launched), &format!("i-w{n}"), launched);
    r.status.registered_at = Some(at(online));
    let i = instance_for(
        &r,
        &format!("i-w{n}"),
        "go",
        InstanceState::Running,
        launched,
    );
    let g = runner(
        500 + i64::from(n),
        name_of(&r).as_str(),
        &["go", "linux"],
        true,
        false,
    );
    (r, i, g)
}

fn launches(plan: &Plan) -> Vec<&RunId> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch { run, .. } => Some(run),
            _ => None,
        })
        .collect()
}

fn created(plan: &Plan) -> Vec<&RunSpec> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateRun { spec, .. } => Some(spec),
            _ => None,
        })
        .collect()
}

#[test]
fn a_warm_pool_is_filled_with_runs_of_its_own_then_left_alone_while_they_boot() {
    let p = with_warm(policy(), "go", 2, None);
    let mut w = Scene::new(vec![], vec![], vec![], vec![], at(0));
    let plan = w.plan(&p);
    let reason = Reason::WarmPool {
        pool: "go".into(),
        min_idle: 2,
    };
    let ids = [
        RunId::for_warm("go", at(0), 0),
        RunId::for_warm("go", at(0), 1),
    ];
    assert_eq!(plan.actions.len(), 4, "{:#?}", plan.actions);
    for (k, id) in ids.iter().enumerate() {
        let Action::CreateRun {
            run,
            spec,
            reason: why,
        } = &plan.actions[2 * k]
        else {
            panic!("{:#?}", plan.actions);
        };
        assert_eq!((run, why), (id, &reason));
        assert_eq!(spec.origin, Origin::Warm);
        assert_eq!(spec.pool.as_deref(), Some("go"));
        assert!(spec.job.is_none());
        assert!(matches!(
            &plan.actions[2 * k + 1],
            Action::Launch { run, attempt: 1, pool, reason: why, .. }
                if run == id && pool == "go" && why == &reason
        ));
    }
    // Booting, registering, then idle: nothing more, for as long as they stay warm.
    w.apply(&plan);
    w.now = at(30);
    assert!(w.plan(&p).is_empty(), "{:#?}", w.plan(&p).actions);
    for g in &mut w.runners {
        g.online = true;
    }
    let plan = w.plan(&p);
    assert!(
        plan.actions.iter().all(|a| matches!(
            a,
            Action::UpdateStatus {
                change: StatusChange::Registered { .. },
                ..
            }
        )),
        "{:#?}",
        plan.actions
    );
    w.apply(&plan);
    w.now = at(5 * 3600);
    assert!(
        w.plan(&p).is_empty(),
        "warm runners outlive the idle timeout"
    );
}

#[test]
fn outside_its_windows_a_pool_keeps_no_warm_runner_and_retires_idle_ones() {
    let mut p = with_warm(policy(), "go", 1, None);
    let window = crate::schedule::Window::parse("Mon-Fri 07:00-19:00 UTC").expect("window");
    p.pools[1].warm.as_mut().expect("warm").schedule = vec![window];
    // T0 is Thursday 2026-01-01 00:00 UTC: outside.
    let w = Scene::new(vec![], vec![], vec![], vec![], at(0));
    assert!(w.plan(&p).is_empty());
    // 08:00: inside.
    let w = Scene::new(vec![], vec![], vec![], vec![], at(8 * 3600));
    assert_eq!(created(&w.plan(&p)).len(), 1);
    // 19:30, a warm runner idle since 18:00: retired by the idle rule.
    let (r, i, g) = ready_warm(0, 18 * 3600);
    let (id, name) = (r.id.clone(), name_of(&r));
    let w = Scene::new(vec![r], vec![i], vec![g], vec![], at(19 * 3600 + 1800));
    let why = "idle for 10m with nothing queued for its labels";
    assert_eq!(
        kinds(&w.plan(&p)),
        [
            format!("deregister runner {name} (#500): {why}"),
            format!("terminate i-w0 (run {id}) in pool go: {why}"),
            format!("mark run {id} done: {why}"),
        ]
    );
}

#[test]
fn a_job_taken_by_a_warm_runner_launches_no_machine_and_the_pool_is_topped_up() {
    let p = with_warm(policy(), "go", 1, None);
    let (wr, wi, wg) = ready_warm(0, 0);
    let mut job = job_run(7, &["go"]);
    job.spec.created_at = at(10 * MIN);
    let mut w = Scene::new(
        vec![wr.clone(), job.clone()],
        vec![wi],
        vec![wg],
        vec![queued(7, &["go"])],
        at(10 * MIN),
    );
    // The job waits and the warm runner is ready: it stands in for the job's launch, and
    // it no longer counts as warm, so a fresh warm runner is launched at once.
    let plan = w.plan(&p);
    assert_eq!(launches(&plan).len(), 1, "{:#?}", plan.actions);
    assert!(launches(&plan)[0].as_str().starts_with("warm-go-"));
    assert_eq!(created(&plan).len(), 1);
    assert_eq!(
        plan.deferred,
        vec![Deferred {
            what: format!("launch {}", name_of(&job)),
            limit: format!(
                "idle runner {} can take a queued job with these labels",
                name_of(&wr)
            ),
        }]
    );
    w.apply(&plan);
    // Gitea gives the job to the warm runner.
    w.now = at(10 * MIN + 5);
    w.jobs.clear();
    for g in w
        .runners
        .iter_mut()
        .filter(|g| g.name == name_of(&wr).as_str())
    {
        g.busy = true;
    }
    for r in w.desired.runs.iter_mut().filter(|r| r.id == job.id) {
        r.spec.job_state = JobState::InProgress {
            runner: Some(name_of(&wr).to_string()),
        };
    }
    let plan = w.plan(&p);
    assert_eq!(
        kinds(&plan),
        [
            format!(
                "mark run {} took a job at {}: the warm runner took a queued job",
                wr.id,
                at(10 * MIN + 5)
            ),
            format!("mark run {} done: job was taken by another runner", job.id),
        ]
    );
    w.apply(&plan);
    // The job ends, the ephemeral runner is deleted and its machine powers off.
    w.now = at(15 * MIN);
    w.runners.retain(|g| g.name != name_of(&wr).as_str());
    for i in w.instances.iter_mut().filter(|i| i.id.as_str() == "i-w0") {
        i.state = InstanceState::Terminated;
    }
    let plan = w.plan(&p);
    assert_eq!(
        kinds(&plan),
        [format!(
            "mark run {} done: its runner took the job and ended",
            wr.id
        )]
    );
}

/// A short job started and finished between two passes: no pass saw the warm runner busy,
/// and the job's `in_progress` and `completed` webhooks folded into its final state. Gitea
/// deleted the ephemeral runner when the job ended, which it does only for a runner that
/// took a job, and the machine then powered off (or EC2 reclaimed it afterwards).
#[test]
fn a_warm_runner_gitea_removed_after_a_job_no_pass_saw_served_it_whatever_ended_its_machine() {
    let p = with_warm(policy(), "go", 1, None);
    for reason in [None, Some("Server.SpotInstanceTermination")] {
        let (wr, mut wi, _deleted) = ready_warm(0, 0);
        wi.state = InstanceState::Terminated;
        wi.state_reason = reason.map(str::to_owned);
        let mut job = job_run(7, &["go"]);
        job.spec.job_state = JobState::Completed {
            conclusion: "success".into(),
        };
        let w = Scene::new(
            vec![wr.clone(), job],
            vec![wi],
            vec![],
            vec![],
            at(10 * MIN),
        );
        let plan = w.plan(&p);
        let done = format!("mark run {} done: its runner took the job and ended", wr.id);
        assert!(
            kinds(&plan).contains(&done),
            "{reason:?}: {:#?}",
            plan.actions
        );
        assert_eq!(launches(&plan).len(), 1, "{reason:?}: topped up");
    }
    // Registered by us before the launch, it took the job the moment it came online: no
    // pass ever saw it online.
    let (mut wr, mut wi, _deleted) = ready_warm(0, 0);
    wr.status.registered_at = None;
    wr.status.runner_id = Some(500);
    wi.state = InstanceState::Terminated;
    let w = Scene::new(vec![wr.clone()], vec![wi], vec![], vec![], at(10 * MIN));
    let plan = w.plan(&p);
    let done = format!("mark run {} done: its runner took the job and ended", wr.id);
    assert!(kinds(&plan).contains(&done), "{:#?}", plan.actions);
    // The same machine gone while its runner is still registered (offline): the machine
    // failed, not the job's end.
    let (wr, mut wi, mut wg) = ready_warm(0, 0);
    wi.state = InstanceState::Terminated;
    wg.online = false;
    let w = Scene::new(vec![wr.clone()], vec![wi], vec![wg], vec![], at(10 * MIN));
    let plan = w.plan(&p);
    assert!(
        kinds(&plan).contains(&format!(
            "mark run {} failed (instance gone while the job still waits): instance gone while the job still waits",
            wr.id
        )),
        "{:#?}",
        plan.actions
    );
}

#[test]
fn a_job_taken_by_its_own_runner_leaves_the_warm_runner_warm() {
    let p = with_warm(policy(), "go", 1, None);
    let (wr, wi, wg) = ready_warm(0, 0);
    let mut job = running(job_run(7, &["go"]), "i-7", at(0));
    job.status.registered_at = Some(at(MIN));
    job.spec.job_state = JobState::InProgress {
        runner: Some(name_of(&job).to_string()),
    };
    let ji = instance_for(&job, "i-7", "go", InstanceState::Running, at(0));
    let jg = runner(7, name_of(&job).as_str(), &["go", "linux"], true, true);
    let w = Scene::new(
        vec![wr, job],
        vec![wi, ji],
        vec![wg, jg],
        vec![],
        at(10 * MIN),
    );
    let plan = w.plan(&p);
    assert!(plan.is_empty(), "{:#?}", plan.actions);
}

#[test]
fn a_job_whose_runner_took_another_is_served_by_the_warm_runner_and_the_pool_tops_up() {
    let p = with_warm(policy(), "go", 1, None);
    let (wr, wi, wg) = ready_warm(0, 0);
    let warm_name = wg.name.clone();
    // Job 8's runner took job 7 (an ephemeral runner takes one job); job 8 still waits, and
    // Gitea hands it to the idle warm runner when that asks: it stands in for job 8's
    // launch, is no longer warm, and the pool launches a warm runner in its place.
    let mut eight = running(job_run(8, &["go"]), "i-8", at(0));
    eight.status.registered_at = Some(at(MIN));
    let ei = instance_for(&eight, "i-8", "go", InstanceState::Running, at(0));
    let eg = runner(8, name_of(&eight).as_str(), &["go", "linux"], true, true);
    let seven = with_job_state(
        job_run(7, &["go"]),
        JobState::InProgress {
            runner: Some(name_of(&eight).to_string()),
        },
    );
    let w = Scene::new(
        vec![wr, seven.clone(), eight],
        vec![wi, ei],
        vec![wg, eg],
        vec![queued(8, &["go"])],
        at(2 * MIN),
    );
    let plan = w.plan(&p);
    let kinds = kinds(&plan);
    assert_eq!(
        kinds[0],
        format!(
            "mark run {} done: job was taken by another runner",
            seven.id
        )
    );
    assert_eq!(kinds.len(), 3, "{kinds:#?}");
    assert!(kinds[1].starts_with("create run warm-go-"), "{kinds:#?}");
    assert!(
        kinds[2].starts_with("launch tq-test-warm-go-"),
        "{kinds:#?}"
    );
    assert_eq!(
        plan.deferred,
        vec![Deferred {
            what: "launch tq-test-job-8-1-a2".into(),
            limit: format!("idle runner {warm_name} can take a queued job with these labels"),
        }]
    );
}

#[test]
fn the_idle_rule_keeps_min_idle_warm_runners_youngest_first_and_retires_the_rest() {
    let p = with_warm(policy(), "go", 2, None);
    let runs: Vec<_> = [(0, 0), (1, 2 * MIN), (2, 4 * MIN)]
        .into_iter()
        .map(|(n, online)| ready_warm(n, online))
        .collect();
    let w = Scene::new(
        runs.iter().map(|r| r.0.clone()).collect(),
        runs.iter().map(|r| r.1.clone()).collect(),
        runs.iter().map(|r| r.2.clone()).collect(),
        vec![],
        at(60 * MIN),
    );
    let plan = w.plan(&p);
    let oldest = &runs[0].0;
    assert_eq!(plan.actions.len(), 3, "{:#?}", plan.actions);
    assert!(plan.actions.iter().all(|a| a.run() == Some(&oldest.id)));
    assert!(matches!(
        plan.actions.last(),
        Some(Action::UpdateStatus {
            change: StatusChange::Finish {
                phase: Phase::Done,
                ..
            },
            reason: Reason::Idle { .. },
            ..
        })
    ));
}

#[test]
fn a_warm_runner_past_its_max_idle_age_is_replaced_before_it_is_retired() {
    let p = with_warm(policy(), "go", 1, Some(Duration::from_secs(3600)));
    let (old, oi, og) = ready_warm(0, 0);
    let mut w = Scene::new(vec![old.clone()], vec![oi], vec![og], vec![], at(61 * MIN));
    // Aged: a replacement is launched, the old one stays until it is ready.
    let plan = w.plan(&p);
    assert_eq!(created(&plan).len(), 1, "{:#?}", plan.actions);
    assert_eq!(launches(&plan).len(), 1);
    assert!(plan.actions.iter().all(|a| a.run() != Some(&old.id)));
    w.apply(&plan);
    w.now = at(62 * MIN);
    assert!(w.plan(&p).is_empty(), "{:#?}", w.plan(&p).actions);
    // The replacement comes online: now the old one goes.
    for g in &mut w.runners {
        g.online = true;
    }
    let plan = w.plan(&p);
    assert_eq!(plan.actions.len(), 4, "{:#?}", plan.actions);
    assert!(matches!(
        plan.actions[0],
        Action::UpdateStatus {
            change: StatusChange::Registered { .. },
            ..
        }
    ));
    assert!(plan.actions[1..].iter().all(|a| a.run() == Some(&old.id)));
    assert_eq!(
        plan.actions[3].reason(),
        &Reason::WarmAged {
            max_idle_age: Duration::from_secs(3600)
        }
    );
}

#[test]
fn a_warm_runner_that_never_registers_fails_its_run_and_is_replaced() {
    let p = with_warm(policy(), "go", 1, None);
    let r = running(warm_run("go", 0, at(0)), "i-w0", at(0));
    let i = instance_for(&r, "i-w0", "go", InstanceState::Running, at(0));
    let w = Scene::new(vec![r.clone()], vec![i], vec![], vec![], at(11 * MIN));
    let plan = w.plan(&p);
    assert_eq!(
        kinds(&plan)[..2],
        [
            format!(
                "terminate i-w0 (run {}) in pool go: never registered within 10m",
                r.id
            ),
            format!(
                "mark run {} failed (never registered within 10m): never registered within 10m",
                r.id
            ),
        ]
    );
    assert_eq!(created(&plan).len(), 1, "{:#?}", plan.actions);
    assert_eq!(launches(&plan).len(), 1);
}

#[test]
fn a_stuck_warm_runner_is_retired_and_the_job_launches_its_own() {
    let p = with_warm(policy(), "go", 1, None);
    let (wr, wi, wg) = ready_warm(0, 0);
    let job = job_run(7, &["go"]); // created at T0, waiting since
    let w = Scene::new(
        vec![wr.clone(), job.clone()],
        vec![wi],
        vec![wg],
        vec![queued(7, &["go"])],
        at(4 * MIN),
    );
    let plan = w.plan(&p);
    let launched = launches(&plan);
    assert!(launched.contains(&&job.id), "{:#?}", plan.actions);
    assert!(plan
        .actions
        .iter()
        .any(|a| a.run() == Some(&wr.id) && matches!(a.reason(), Reason::Stuck { .. })));
}

#[test]
fn jobs_launch_before_warm_runners_when_a_cap_allows_only_one() {
    let mut p = with_warm(policy(), "go", 1, None);
    p.pools[1].max_instances = 1;
    let job = job_run(7, &["go"]);
    let w = Scene::new(
        vec![job.clone()],
        vec![],
        vec![],
        vec![queued(7, &["go"])],
        at(0),
    );
    let plan = w.plan(&p);
    assert_eq!(launches(&plan), [&job.id]);
    assert_eq!(created(&plan).len(), 1, "the warm run waits, pending");
    assert_eq!(plan.deferred.len(), 1);
    assert!(plan.deferred[0].limit.starts_with("pools.go.max_instances"));
}

#[test]
fn pending_warm_runs_beyond_what_the_pool_wants_end_unlaunched() {
    let p = with_warm(policy(), "go", 1, None);
    let a = warm_run("go", 0, at(0));
    let b = warm_run("go", 1, at(0));
    let w = Scene::new(vec![a.clone(), b.clone()], vec![], vec![], vec![], at(MIN));
    let plan = w.plan(&p);
    assert_eq!(launches(&plan), [&a.id]);
    assert_eq!(
        kinds(&plan)[1],
        format!("mark run {} done: pool go keeps 1 warm runner ready", b.id)
    );
}

#[test]
fn new_warm_rows_are_created_only_on_a_whole_view() {
    // A pool two short of `min_idle`, one warm run of it pending. On a partial view of any
    // source, a row missing from the table or an instance missing from EC2's list may be a
    // warm runner already: counting on it could overshoot.
    let p = with_warm(policy(), "go", 3, None);
    let pending = warm_run("go", 0, at(0));
    let w = Scene::new(vec![pending.clone()], vec![], vec![], vec![], at(MIN));
    assert_eq!(created(&w.plan(&p)).len(), 2, "whole: topped up to 3");
    for which in ["table", "instances", "runners", "queued jobs"] {
        let mut desired = w.desired.clone();
        let mut observed = w.observed();
        match which {
            "table" => desired.complete = false,
            "instances" => {
                observed.instances = Seen::Partial {
                    items: vec![],
                    error: "page 2 failed".into(),
                }
            }
            "runners" => {
                observed.runners = Seen::Partial {
                    items: vec![],
                    error: "503".into(),
                }
            }
            _ => {
                observed.queued_jobs = Seen::Partial {
                    items: vec![],
                    error: "timeout".into(),
                }
            }
        }
        let plan = crate::plan(&desired, &observed, &p, w.now);
        assert!(plan.withheld.is_some(), "{which}");
        assert_eq!(
            created(&plan).len(),
            0,
            "{which} partial: {:#?}",
            plan.actions
        );
    }
}

#[test]
fn warm_ids_stay_valid_for_any_pool_label() {
    for pool in ["go", "Linux_X64", "___", "gpu.large"] {
        let id = RunId::for_warm(pool, at(0), 3);
        RunId::parse(id.as_str()).expect(pool);
        assert!(id.as_str().starts_with("warm-"));
    }
    assert_ne!(
        RunId::for_warm("a_b", at(0), 0),
        RunId::for_warm("a-b", at(0), 0)
    );
}

// ---- the summary `status` shows -------------------------------------------------------------

/// One warm run of pool `go` in each state the summary tells apart, by the field it counts in.
fn warm_in_each_state() -> Vec<(&'static str, DesiredRun, Vec<Instance>, Vec<ForgeRunner>)> {
    let mut cases = Vec::new();
    let pending = warm_run("go", 0, at(0));
    cases.push(("pending", pending, vec![], vec![]));

    // Launched a minute ago: well within the registration timeout.
    let booting = running(warm_run("go", 1, at(15 * MIN)), "i-w1", at(15 * MIN));
    let i = instance_for(&booting, "i-w1", "go", InstanceState::Running, at(15 * MIN));
    let g = runner(
        501,
        name_of(&booting).as_str(),
        &["go", "linux"],
        false,
        false,
    );
    cases.push(("booting", booting, vec![i], vec![g]));

    let (ready, i, g) = ready_warm(2, 10 * MIN);
    cases.push(("ready", ready, vec![i], vec![g]));

    let (mut offline, i, mut g) = ready_warm(3, 10 * MIN);
    g.online = false;
    // Seen offline just now: within the offline grace.
    offline.status.offline_since = Some(at(16 * MIN));
    cases.push(("offline", offline, vec![i], vec![g]));

    // Online since 0, and the pool's max idle age is 15m.
    let (aged, i, g) = ready_warm(4, 0);
    cases.push(("aged", aged, vec![i], vec![g]));

    let (retiring, i, mut g) = ready_warm(5, 10 * MIN);
    g.disabled = true;
    cases.push(("retiring", retiring, vec![i], vec![g]));

    let (busy, i, mut g) = ready_warm(6, 10 * MIN);
    g.busy = true;
    cases.push(("spent", busy, vec![i], vec![g]));

    let (mut took, i, g) = ready_warm(7, 10 * MIN);
    took.status.took_job_at = Some(at(12 * MIN));
    cases.push(("spent", took, vec![i], vec![g]));
    cases
}

fn counts_of(s: &WarmSummary) -> [(&'static str, u32); 6] {
    [
        ("pending", s.pending),
        ("booting", s.booting),
        ("ready", s.ready),
        ("offline", s.offline),
        ("aged", s.aged),
        ("retiring", s.retiring),
    ]
}

#[test]
fn the_summary_counts_each_warm_runner_where_it_stands() {
    let p = with_warm(policy(), "go", 1, Some(Duration::from_secs(15 * MIN)));
    for (state, run, instances, runners) in warm_in_each_state() {
        let w = Scene::new(vec![run], instances, runners, vec![], at(16 * MIN));
        let s = warm_summary(&w.desired, &w.observed(), &p, w.now);
        assert_eq!(s.len(), 1, "one row, for the only pool with warm runners");
        let row = &s[0];
        assert_eq!((row.pool.as_str(), row.wanted, row.min_idle), ("go", 1, 1));
        let expected: Vec<(&str, u32)> = counts_of(row)
            .iter()
            .map(|&(field, _)| (field, u32::from(field == state)))
            .collect();
        assert_eq!(counts_of(row).to_vec(), expected, "warm runner {state}");
    }
}

#[test]
fn the_summary_and_the_top_up_agree_on_what_counts() {
    let p = with_warm(policy(), "go", 1, Some(Duration::from_secs(15 * MIN)));
    for (state, run, instances, runners) in warm_in_each_state() {
        let w = Scene::new(vec![run], instances, runners, vec![], at(16 * MIN));
        let s = &warm_summary(&w.desired, &w.observed(), &p, w.now)[0];
        let plan = w.plan(&p);
        let tops_up = plan.actions.iter().any(|a| {
            matches!(
                a,
                Action::Launch {
                    reason: Reason::WarmPool { .. },
                    ..
                }
            )
        });
        assert_eq!(
            tops_up,
            s.counted() < s.wanted,
            "warm runner {state}: counted {} of {} wanted, plan {:#?}",
            s.counted(),
            s.wanted,
            plan.actions
        );
    }
}

#[test]
fn the_summary_wants_min_idle_inside_the_schedule_and_none_outside() {
    let mut p = with_warm(policy(), "go", 2, None);
    let window = crate::schedule::Window::parse("Mon-Fri 07:00-19:00 UTC").expect("window");
    p.pools[1].warm.as_mut().expect("warm").schedule = vec![window];
    for (now, wanted) in [(at(0), 0), (at(8 * 3600), 2), (at(19 * 3600), 0)] {
        let w = Scene::new(vec![], vec![], vec![], vec![], now);
        let s = warm_summary(&w.desired, &w.observed(), &p, now);
        assert_eq!((s[0].wanted, s[0].min_idle), (wanted, 2), "at {now}");
        assert_eq!(s[0].schedule, ["Mon-Fri 07:00-19:00 UTC"]);
    }
}

#[test]
fn the_idle_cost_is_the_price_of_every_warm_machine_that_serves_no_job() {
    let mut p = with_warm(policy(), "go", 3, Some(Duration::from_secs(15 * MIN)));
    let (mut runs, mut instances, mut runners) = (vec![], vec![], vec![]);
    for (_, r, i, g) in warm_in_each_state() {
        runs.push(r);
        instances.extend(i);
        runners.extend(g);
    }
    let w = Scene::new(runs, instances, runners, vec![], at(16 * MIN));
    let s = &warm_summary(&w.desired, &w.observed(), &p, w.now)[0];
    assert_eq!(
        s.idle_cost_per_hour, None,
        "no price configured, no cost shown"
    );

    let price = crate::config::HourlyPrice::from_dollars(0.0312).expect("price");
    p.pools[1].hourly_price = Some(price);
    let s = &warm_summary(&w.desired, &w.observed(), &p, w.now)[0];
    // Booting, ready, offline, aged and retiring: five machines up without a job.
    assert_eq!(s.idle_machines(), 5);
    assert_eq!(s.hourly_price, Some(price));
    assert_eq!(
        s.idle_cost_per_hour.map(|c| c.to_string()),
        Some("$0.156/h".into())
    );
    let json = serde_json::to_value(s).expect("serializes");
    assert_eq!(json["idle_cost_per_hour"], 0.156);
    assert_eq!(json["hourly_price"], 0.0312);
    assert_eq!(json["ready"], 1);
}

#[test]
fn the_planner_never_reads_a_pools_hourly_price() {
    // Warm runners in every state, a job that waits for one, and room for more: planned over
    // a few passes with and without prices, the plans are the same.
    let mut p = with_warm(policy(), "go", 3, Some(Duration::from_secs(15 * MIN)));
    p.pools[0].warm = p.pools[1].warm.clone();
    let mut priced = p.clone();
    for (q, dollars) in priced.pools.iter_mut().zip([0.0312, 9.5]) {
        q.hourly_price = Some(crate::config::HourlyPrice::from_dollars(dollars).expect("price"));
    }
    let (mut runs, mut instances, mut runners) = (vec![], vec![], vec![]);
    for (_, r, i, g) in warm_in_each_state() {
        runs.push(r);
        instances.extend(i);
        runners.extend(g);
    }
    let mut job = job_run(7, &["go"]);
    job.spec.created_at = at(15 * MIN);
    runs.push(job);
    let worlds = [
        Scene::new(vec![], vec![], vec![], vec![], at(0)),
        Scene::new(
            runs,
            instances,
            runners,
            vec![queued(7, &["go"])],
            at(16 * MIN),
        ),
    ];
    for mut w in worlds {
        let mut planned = 0;
        for pass in 0..4 {
            let plan = w.plan(&p);
            assert_eq!(w.plan(&priced), plan, "pass {pass}");
            planned += plan.actions.len() + plan.deferred.len();
            w.apply(&plan);
            w.now = w.now.plus(Duration::from_secs(5 * MIN));
            for g in &mut w.runners {
                g.online = true;
            }
        }
        assert!(planned > 0, "the world gives the planner something to do");
    }
}

#[test]
fn pools_without_warm_runners_have_no_summary() {
    let w = Scene::new(vec![], vec![], vec![], vec![], at(0));
    assert!(warm_summary(&w.desired, &w.observed(), &policy(), w.now).is_empty());
}
