//! Stories of what real users of Gitea do, played against the simulator as Gitea's source
//! says it behaves: re-runs of the same job row, stale redeliveries, a runner that never takes
//! its job, and many interchangeable runners handing jobs around while being retired.
//!
//! Run under moto: `scripts/with-moto.sh cargo test -p e2e --test gitea_truth` (or
//! `make test`). Each test has its own cluster, table, network and simulator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e::testkit::{ok, our_runners, world};
use e2e::{run_of, run_of_pick, BootFault, ControllerOptions, Settings, World};
use gitea_sim::{Conclusion, JobPhase, JobSpec};
use model::desired::JobState;
use model::Phase;

const SETTLE: Duration = Duration::from_secs(90);

/// Waits until nothing of ours is left: no live instance, no registration.
async fn nothing_left(world: &World) {
    ok(world
        .wait_until(
            "nothing of ours is left running or registered",
            SETTLE,
            || async {
                let live = world.instances().await.ok()?.iter().any(|i| i.is_live());
                (!live && our_runners(world).is_empty()).then_some(())
            },
        )
        .await);
}

/// A job fails; the user presses "Re-run" in Gitea. Up to 1.26 Gitea resets the same job row
/// (same id, waiting for pick 2); from 1.27 it makes new rows with new ids.
async fn rerun_after_failure(name: &str, version: &str) {
    let (world, _g) = world(name, Settings::fast()).await;
    world.sim.set_version(version);
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue_spec(
        JobSpec::new(e2e::world::REPO, "flaky", &["go"])
            .duration(Duration::from_secs(1))
            .result(Conclusion::Failure),
    ));
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Failure));
    let first_run = ok(world
        .wait_until("a machine was launched for the job", SETTLE, || async {
            ctl.fleet.launches().into_iter().next().map(|l| l.run)
        })
        .await);
    let first = ok(world.run_final(&first_run, SETTLE).await);
    assert_eq!(first.status.phase, Phase::Done, "{first:?}");
    assert_eq!(
        first.spec.job_state,
        JobState::Completed {
            conclusion: "failure".into()
        },
        "the job's conclusion is kept, apart from the run's outcome"
    );

    let again = ok(world.rerun(job.id));
    assert_eq!(again.len(), 1, "{again:?}");
    let rerun = again[0].clone();
    if version.starts_with("1.27") {
        assert_ne!(rerun.id, job.id, "1.27 re-runs make new job rows");
    } else {
        assert_eq!(rerun.id, job.id, "up to 1.26 the same row is reset");
    }
    let rerun_done = ok(world
        .wait_until("the re-run completes", SETTLE, || async {
            world
                .sim
                .job(rerun.id)
                .filter(|j| j.status == JobPhase::Completed && j.task_id != done.task_id)
        })
        .await);
    assert_eq!(
        rerun_done.conclusion,
        Some(Conclusion::Failure),
        "as scripted"
    );
    let launches = ctl.fleet.launches();
    assert_eq!(launches.len(), 2, "one machine per pick: {launches:?}");
    assert_ne!(launches[0].run, launches[1].run);
    let second = ok(world.run_final(&launches[1].run, SETTLE).await);
    assert_eq!(second.status.phase, Phase::Done, "{second:?}");
    assert_eq!(second.spec.job.as_ref().map(|j| j.id), Some(rerun.id));
    nothing_left(&world).await;
    assert!(world.booter.busy_kills().is_empty());
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_failed_job_re_run_in_gitea_1_26_gets_a_runner_and_runs() {
    rerun_after_failure("rerun-126", "1.26.4").await;
}

#[tokio::test]
async fn a_failed_job_re_run_in_gitea_1_24_gets_a_runner_and_runs() {
    // 1.24: no jobs API; the webhook alone says which pick waits.
    rerun_after_failure("rerun-124", "1.24.0").await;
}

#[tokio::test]
async fn a_failed_job_re_run_in_gitea_1_27_gets_a_runner_and_runs() {
    rerun_after_failure("rerun-127", "1.27.0").await;
}

#[tokio::test]
async fn a_job_killed_by_a_spot_interruption_and_re_run_gets_a_runner() {
    let (world, _g) = world("rerun-spot", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(60)));
    let running = ok(world
        .wait_until("the job runs on our machine", SETTLE, || async {
            let j = world.sim.job(job.id)?;
            (j.status == JobPhase::InProgress).then_some(())?;
            world
                .booter
                .machines_of(&run_of(&job))
                .into_iter()
                .find(|m| !m.gone)
        })
        .await);
    // EC2 reclaims the machine under the job.
    ok(world
        .interruptions
        .interrupt(&world.ec2, &running.instance)
        .await);
    let first = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(first.status.phase, Phase::Failed, "{first:?}");
    let error = first.status.last_error.clone().unwrap_or_default();
    assert!(error.contains("re-run it in Gitea"), "{error}");
    // Gitea fails the job once its task stops reporting (zombie timeout).
    let failed = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(failed.conclusion, Some(Conclusion::Failure));

    ok(world.rerun(job.id));
    let second = ok(world.run_final(&run_of_pick(&job, 2), SETTLE).await);
    assert_eq!(second.status.phase, Phase::Done, "{second:?}");
    let rerun = ok(world
        .wait_until("the re-run completes", SETTLE, || async {
            world
                .sim
                .job(job.id)
                .filter(|j| j.status == JobPhase::Completed && j.attempt == 2)
        })
        .await);
    assert_eq!(rerun.conclusion, Some(Conclusion::Success));
    nothing_left(&world).await;
    assert!(
        world.booter.busy_kills().is_empty(),
        "only EC2 killed a busy machine"
    );
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_stale_queued_redelivery_after_completion_launches_nothing() {
    let (world, _g) = world("stale-redeliver", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    ok(world.job_completed(job.id, SETTLE).await);
    ok(world.run_final(&run_of(&job), SETTLE).await);
    nothing_left(&world).await;
    let launches = ctl.fleet.launches().len();
    assert_eq!(launches, 1);

    // Someone presses "Redeliver" on the old `queued` delivery.
    let queued = world
        .sim
        .deliveries()
        .into_iter()
        .find(|d| d.action.as_deref() == Some("queued") && d.job_id == Some(job.id))
        .expect("the queued delivery");
    assert_eq!(ok(world.redeliver(&queued, &ctl).await), 200);
    // Let the loop see it a few times over.
    ok(ctl.fleet.wait_passes(5, SETTLE).await);
    assert_eq!(
        ctl.fleet.launches().len(),
        launches,
        "nothing launched for a job that is not queued"
    );
    let run = ok(world.run(&run_of(&job)).await).expect("row");
    assert_eq!(
        run.status.phase,
        Phase::Done,
        "still the finished run: {run:?}"
    );
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_runner_online_that_never_takes_its_job_is_replaced_and_the_job_runs() {
    let (world, _g) = world("stuck", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    world.script(&job, Some(1), BootFault::Stuck);
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    assert_eq!(run.status.attempt, 2, "replaced by attempt 2");
    let machines = world.booter.machines_of(&run_of(&job));
    assert_eq!(
        machines.iter().map(|m| m.attempt).collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
    let reason = world
        .events
        .termination_reason(&machines[0].instance)
        .unwrap_or_default();
    assert!(
        reason.contains("stuck") || reason.contains("disabled"),
        "{reason}"
    );
    assert!(ctl.actions("disable-runner", Some("stuck")) >= 1);
    nothing_left(&world).await;
    assert!(world.booter.busy_kills().is_empty());
    ok(ctl.stop().await);
    world.shutdown().await;
}

/// Many jobs with slow boots: runners take each other's jobs all the time, and the
/// controller retires runners while Gitea hands out jobs.
async fn many_jobs(name: &str, label_sets: &[&[&str]], version: &str) {
    let mut settings = Settings::fast();
    settings.boot.boot_delay = Duration::from_secs(3);
    // Boots are slow here: give registration the margin production has (a 10 min timeout
    // for boots of about a minute), so "never registered" means a machine that hangs.
    settings.timeouts.registration = Duration::from_secs(20);
    let (world, _g) = world(name, settings).await;
    world.sim.set_version(version);
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let mut jobs = Vec::new();
    for n in 0..70 {
        let labels = label_sets[n % label_sets.len()];
        jobs.push(ok(world.enqueue(
            &format!("job-{n}"),
            labels,
            Duration::from_millis(500),
        )));
    }
    for job in &jobs {
        let done = ok(world.job_completed(job.id, Duration::from_secs(300)).await);
        assert_eq!(
            (done.conclusion, done.attempt),
            (Some(Conclusion::Success), 1),
            "job {} ran exactly once",
            job.id
        );
    }
    nothing_left(&world).await;
    let kills = world.booter.busy_kills();
    assert!(
        kills.is_empty(),
        "busy kills: {kills:?}\n{}",
        world.events.dump()
    );

    // Launches: one per run, plus a new attempt for each retry.
    let launches = ctl.fleet.launches();
    let mut per_run: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for l in &launches {
        per_run
            .entry(l.run.to_string())
            .or_default()
            .insert(l.attempt);
    }
    let retries: usize = per_run.values().map(|a| a.len() - 1).sum();
    assert!(
        launches.len() <= jobs.len() + retries,
        "{} launches for {} jobs and {retries} retries",
        launches.len(),
        jobs.len()
    );
    // Every run ended; none failed.
    for job in &jobs {
        let run = ok(world.run_final(&run_of(job), SETTLE).await);
        assert_ne!(run.status.phase, Phase::Failed, "{run:?}");
    }
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn seventy_jobs_of_one_label_each_run_once_and_no_busy_runner_is_killed() {
    many_jobs("many-one", &[&["go"]], "1.26.4").await;
}

#[tokio::test]
async fn seventy_jobs_of_three_label_sets_each_run_once_and_no_busy_runner_is_killed() {
    many_jobs("many-three", &[&["go"], &["docker"], &["linux"]], "1.26.4").await;
}

#[tokio::test]
async fn without_disable_seventy_jobs_still_run_once_with_no_busy_kill() {
    // Gitea 1.25 has no runner disable: registrations are deleted before machines go.
    many_jobs("many-125", &[&["go"], &["linux"]], "1.25.0").await;
}
