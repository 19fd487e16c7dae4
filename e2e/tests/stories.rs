//! The whole loop, one story per test: the real controller (`serve`, with the real EC2 fleet,
//! DynamoDB store and Gitea client) against moto and the Gitea simulator, with simulated
//! machines booting from the user-data the controller gave them.
//!
//! Run under moto: `scripts/with-moto.sh cargo test -p e2e` (or `make test`). Every test has
//! its own cluster id, table, network and simulator, so they run in parallel against one
//! moto. Each runs on a current-thread runtime, so the controller's log events of a test are
//! captured into that test's story only; a failing test prints its story.

use std::time::Duration;

use e2e::testkit::{end_cleanly, ok, our_runners, world};
use e2e::{run_of, BootFault, ControllerOptions, Settings};
use gitea_sim::{Conclusion, JobPhase};
use model::Phase;

const SETTLE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn happy_path_each_job_runs_on_its_own_instance_which_is_gone_afterwards() {
    let (world, _g) = world("happy", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let go = ok(world.enqueue("build", &["go"], Duration::from_secs(2)));
    let docker = ok(world.enqueue("image", &["docker"], Duration::from_secs(2)));

    for job in [&go, &docker] {
        let done = ok(world.job_completed(job.id, SETTLE).await);
        assert_eq!(done.conclusion, Some(Conclusion::Success));
        let run = ok(world.run_final(&run_of(job), SETTLE).await);
        assert_eq!(run.status.phase, Phase::Done, "{run:?}");
        assert_eq!(run.status.attempt, 1);
        let machines = world.booter.machines_of(&run_of(job));
        assert_eq!(machines.len(), 1, "one instance per job: {machines:?}");
        assert!(machines[0].has_runner_file, "booted from its .runner file");
        ok(world.terminated(&machines[0].instance, SETTLE).await);
    }
    let launches = ctl.fleet.launches();
    assert_eq!(launches.len(), 2, "{launches:?}");
    let pool_of = |job: &gitea_sim::JobView| {
        launches
            .iter()
            .find(|l| l.run == run_of(job))
            .map(|l| l.pool.clone())
    };
    assert_eq!(pool_of(&go).as_deref(), Some("go"));
    assert_eq!(pool_of(&docker).as_deref(), Some("docker"));
    ok(world
        .wait_until("no runner of ours is left in Gitea", SETTLE, || async {
            our_runners(&world).is_empty().then_some(())
        })
        .await);
    assert!(ok(world.instances().await).iter().all(|i| !i.is_live()));
    assert_eq!(ctl.actions("launch", Some("no-runner")), 2);
    assert_eq!(ctl.actions("terminate", Some("zombie")), 0);
    end_cleanly(world, ctl).await;
}

#[tokio::test]
async fn a_missed_webhook_is_recovered_by_backfill() {
    let (world, _g) = world("backfill", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    world.sim.set_faults(gitea_sim::Faults {
        drop_webhooks: 1.0,
        ..gitea_sim::Faults::default()
    });
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(
        run.spec.origin,
        model::Origin::Backfill,
        "created from the queued-jobs list"
    );
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    assert!(
        world.sim.deliveries().iter().all(|d| d.dropped),
        "every webhook was dropped"
    );
    assert_eq!(ctl.actions("create-run", Some("backfill")), 1);
    assert_eq!(ctl.fleet.launches().len(), 1);
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_runner_that_never_registers_is_retried_the_run_fails_then_tries_again_while_the_job_waits(
) {
    let mut settings = Settings::fast();
    settings.max_attempts = 2;
    let (world, _g) = world("neverreg", settings).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    // The first two machines never start; a third would.
    world.script(&job, Some(1), BootFault::NeverStarts);
    world.script(&job, Some(2), BootFault::NeverStarts);
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Failed, "{run:?}");
    assert_eq!(run.status.attempt, 2);
    let error = run.status.last_error.clone().unwrap_or_default();
    assert!(error.contains("never registered"), "{error}");

    // The retry may already have launched a third machine: look at the first two.
    let machines = world.booter.machines_of(&run_of(&job));
    let machines: Vec<_> = machines.iter().filter(|m| m.attempt <= Some(2)).collect();
    assert_eq!(
        machines.iter().map(|m| m.attempt).collect::<Vec<_>>(),
        vec![Some(1), Some(2)],
        "one instance per attempt"
    );
    for m in machines {
        ok(world.terminated(&m.instance, SETTLE).await);
        let why = world
            .events
            .termination_reason(&m.instance)
            .unwrap_or_default();
        assert!(
            why.starts_with("never registered within 5s"),
            "{}: {why}",
            m.instance
        );
    }
    assert_eq!(ctl.actions("terminate", Some("never-registered")), 2);
    ok(world
        .wait_until("both registrations are deleted", SETTLE, || async {
            our_runners(&world).is_empty().then_some(())
        })
        .await);
    // The job still waits in Gitea, which never gives up on a queued job: after
    // `timeouts.retry_failed` the run gets one more attempt, and the job runs.
    ok(world.job_completed(job.id, SETTLE).await);
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    assert_eq!(run.status.attempt, 3);
    assert_eq!(ctl.actions("update-status", Some("retry-failed")), 1);
    assert_eq!(
        world
            .booter
            .machines_of(&run_of(&job))
            .iter()
            .map(|m| m.attempt)
            .collect::<Vec<_>>(),
        vec![Some(1), Some(2), Some(3)],
        "one instance per attempt, one more after the rest"
    );
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn an_idle_runner_whose_job_went_elsewhere_is_removed() {
    let (world, _g) = world("idle", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    // A standing runner (not ours) with the same labels takes the job first; ours boots late.
    let token = world
        .sim
        .registration_token(&gitea_sim::Scope::Instance)
        .expect("registration token");
    let standing = gitea_sim::Agent::spawn(
        gitea_sim::AgentConfig::register(
            world.sim.base_url(),
            token,
            "standing-1",
            &["go", "linux"],
        )
        .fetch_interval(Duration::from_millis(100)),
    );
    // The job runs long on the standing runner: it is in progress there while ours idles.
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(30)));
    world.script(&job, Some(1), BootFault::SlowBoot(Duration::from_secs(3)));
    let standing_id = ok(world
        .wait_until("the standing runner takes the job", SETTLE, || async {
            world
                .sim
                .job(job.id)
                .filter(|j| j.status == JobPhase::InProgress)
                .and_then(|j| j.runner_id)
        })
        .await);
    assert_eq!(
        world.sim.runner(standing_id).map(|r| r.name).as_deref(),
        Some("standing-1")
    );
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    assert_eq!(ctl.actions("update-status", Some("job-taken-elsewhere")), 1);
    // The in_progress webhook names the standing runner: ours is released at once (nothing
    // else is queued for its labels), without waiting for the idle timeout. When the standing
    // runner was quicker than the first pass, nothing of ours was launched at all.
    let machines = world.booter.machines_of(&run_of(&job));
    assert!(machines.len() <= 1, "{machines:?}");
    if let Some(machine) = machines.first() {
        ok(world.terminated(&machine.instance, SETTLE).await);
        let why = world
            .events
            .termination_reason(&machine.instance)
            .unwrap_or_default();
        assert!(why.starts_with("job was taken by another runner"), "{why}");
        assert_eq!(
            ctl.actions("disable-runner", Some("job-taken-elsewhere")),
            1,
            "disabled first (Gitea 1.26)"
        );
        assert_eq!(ctl.actions("terminate", Some("job-taken-elsewhere")), 1);
    } else {
        assert!(ctl.fleet.launches().is_empty());
    }
    ok(world
        .wait_until("no runner of ours is left in Gitea", SETTLE, || async {
            our_runners(&world).is_empty().then_some(())
        })
        .await);
    assert_eq!(
        world.sim.job(job.id).map(|j| j.status),
        Some(JobPhase::InProgress),
        "the job is still running on the standing runner, untouched"
    );
    standing.stop();
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_runner_that_goes_offline_mid_job_is_removed_and_its_run_fails_with_the_reason() {
    let (world, _g) = world("offline", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(30)));
    world.script(
        &job,
        Some(1),
        BootFault::OfflineMidJob {
            after: Duration::from_secs(2),
        },
    );
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Failed, "{run:?}");
    let error = run.status.last_error.clone().unwrap_or_default();
    assert!(error.contains("re-run it in Gitea"), "{error}");
    let machines = world.booter.machines_of(&run_of(&job));
    assert_eq!(
        machines.len(),
        1,
        "no second attempt: Gitea does not queue the job again"
    );
    ok(world.terminated(&machines[0].instance, SETTLE).await);
    let why = world
        .events
        .termination_reason(&machines[0].instance)
        .unwrap_or_default();
    assert!(why.starts_with("runner offline for more than 2s"), "{why}");
    assert_eq!(ctl.actions("terminate", Some("zombie")), 1);
    assert!(
        !machines[0].powered_off,
        "the frozen machine did not end itself"
    );
    // Gitea fails the silent task after its zombie timeout.
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Failure));
    assert!(our_runners(&world).is_empty(), "{:?}", our_runners(&world));
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn an_orphan_is_terminated_once_past_its_minimum_age_and_not_before() {
    let (world, _g) = world("orphan", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let orphan = ok(world.launch_orphan("go").await);
    let launched = ok(world.instance(&orphan).await).launched_at;
    // Passes run while it is young; it stays until the minimum age (checked below from the
    // moment the controller's termination returned).
    ok(ctl.fleet.wait_passes(2, SETTLE).await);
    ok(world.terminated(&orphan, SETTLE).await);
    let at = ctl
        .fleet
        .terminated(&orphan)
        .expect("the controller terminated it");
    assert!(
        at.since(launched) >= world.settings.timeouts.orphan_min_age,
        "terminated {:?} after launch, minimum age {:?}",
        at.since(launched),
        world.settings.timeouts.orphan_min_age
    );
    let why = world.events.termination_reason(&orphan).unwrap_or_default();
    assert!(why.starts_with("orphan: no live run wants it"), "{why}");
    assert_eq!(ctl.actions("terminate", Some("orphan")), 1);
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_foreign_instance_without_our_tag_is_never_touched() {
    let (world, _g) = world("foreign", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let foreign = ok(world.launch_foreign().await);
    let orphan = ok(world.launch_orphan("docker").await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    ok(world.job_completed(job.id, SETTLE).await);
    // The orphan going proves passes with destructive power ran while the foreign one stood.
    ok(world.terminated(&orphan, SETTLE).await);
    ok(ctl.fleet.wait_passes(3, SETTLE).await);
    assert!(
        ok(world.instance(&foreign).await).is_live(),
        "the foreign instance was touched"
    );
    assert!(
        ctl.fleet
            .terminations()
            .iter()
            .all(|t| t.ids.iter().all(|i| i.as_str() != foreign)),
        "the controller named the foreign instance in a termination"
    );
    assert!(
        world
            .events
            .all()
            .iter()
            .all(|e| !e.text.contains(&foreign) || e.source != e2e::Source::Controller),
        "the controller mentioned the foreign instance"
    );
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_spot_interruption_before_the_job_is_requeued_and_the_job_completes() {
    let (world, _g) = world("spot", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    world.script(&job, Some(1), BootFault::SpotInterruptedBeforeStart);
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    assert_eq!(run.status.attempt, 2, "requeued as attempt 2");
    let machines = world.booter.machines_of(&run_of(&job));
    assert_eq!(
        machines.iter().map(|m| m.attempt).collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
    assert!(world.interruptions.contains(&machines[0].instance));
    assert_eq!(ctl.actions("update-status", Some("spot-interruption")), 1);
    assert_eq!(ctl.actions("launch", Some("spot-interruption")), 1);
    assert!(
        world
            .events
            .termination_reason(&machines[0].instance)
            .is_none(),
        "EC2 ended it, not the controller"
    );
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn an_idle_runner_on_a_machine_ec2_warns_about_is_retired_at_once_and_the_job_runs_elsewhere()
{
    let mut settings = Settings::fast();
    // Only the warning can explain a replacement: the stuck rule waits far longer.
    settings.timeouts.stuck = Duration::from_secs(600);
    let (world, _g) = world("warned", settings).await;
    let queue = ok(world.events_queue().await);
    let mut options = ControllerOptions::named("ctl-a");
    options.events_queue_url = Some(queue.clone());
    let ctl = ok(world.start_controller(options).await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    // The first runner comes online but does not take the job (yet).
    world.script(&job, Some(1), BootFault::Stuck);
    let run = run_of(&job);
    let first = ok(world
        .wait_until("the first runner is online", SETTLE, || async {
            world
                .run(&run)
                .await
                .ok()
                .flatten()
                .filter(|r| r.status.registered_at.is_some())
                .and_then(|r| r.status.instance_id)
        })
        .await);
    ok(world
        .send_ec2_notice(&queue, model::notice::INTERRUPTION_WARNING, first.as_str())
        .await);
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    let finished = ok(world.run_final(&run, SETTLE).await);
    assert_eq!(finished.status.phase, Phase::Done, "{finished:?}");
    assert_eq!(
        finished.status.attempt, 2,
        "the job ran on a second machine"
    );
    ok(world.terminated(first.as_str(), SETTLE).await);
    let why = world
        .events
        .termination_reason(first.as_str())
        .unwrap_or_default();
    assert!(why.contains("Spot interruption warning"), "{why}");
    assert_eq!(ctl.actions("launch", Some("interruption-warning")), 1);
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn job_two_restores_on_another_machine_what_job_one_saved_in_the_cache() {
    let (world, _g) = world("cache", Settings::fast()).await;
    let mut options = ControllerOptions::named("ctl-a");
    options.cache = true;
    let ctl = ok(world.start_controller(options).await);
    let spec = |name: &str| {
        gitea_sim::JobSpec::new(e2e::REPO, name, &["go"])
            .duration(Duration::from_secs(1))
            .cache("go-mod-4f2a", 256 * 1024)
    };
    let first = ok(world.enqueue_spec(spec("build")));
    let done = ok(world.job_completed(first.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    assert_eq!(
        done.log,
        vec!["Cache saved with key: go-mod-4f2a (262144 bytes)".to_owned()],
        "a miss, then the entry saved"
    );
    let second = ok(world.enqueue_spec(spec("test")));
    let done = ok(world.job_completed(second.id, SETTLE).await);
    assert_eq!(
        done.log,
        vec!["Cache restored from key: go-mod-4f2a (262144 bytes)".to_owned()],
        "a hit"
    );
    let machine = |job: &gitea_sim::JobView| {
        world
            .booter
            .machines_of(&run_of(job))
            .into_iter()
            .map(|m| m.instance)
            .collect::<Vec<_>>()
    };
    let (a, b) = (machine(&first), machine(&second));
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    assert_ne!(a, b, "the second job ran on another machine");
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn an_operator_cancel_removes_the_instance_and_runner_and_cancels_the_run() {
    let (world, _g) = world("cancel", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    let job = ok(world.enqueue("deploy", &["docker"], Duration::from_secs(1)));
    world.script(&job, None, BootFault::SlowBoot(Duration::from_secs(600)));
    let run = run_of(&job);
    let instance = ok(world
        .wait_until("the run is running on an instance", SETTLE, || async {
            world
                .run(&run)
                .await
                .ok()
                .flatten()
                .filter(|r| r.status.phase == Phase::Running)
                .and_then(|r| r.status.instance_id)
        })
        .await);
    // `tinqs-ci runs cancel`: set the operator's flag on the spec.
    use controller::store::Store as _;
    assert!(world.store.set_cancel(&run, true).await.expect("cancel"));
    let done = ok(world.run_final(&run, SETTLE).await);
    assert_eq!(done.status.phase, Phase::Cancelled, "{done:?}");
    ok(world.terminated(instance.as_str(), SETTLE).await);
    let why = world
        .events
        .termination_reason(instance.as_str())
        .unwrap_or_default();
    assert_eq!(why, "cancelled by an operator");
    ok(world
        .wait_until("its registration is deleted", SETTLE, || async {
            our_runners(&world).is_empty().then_some(())
        })
        .await);
    ok(ctl.fleet.wait_passes(3, SETTLE).await);
    assert_eq!(
        ctl.fleet.launches().len(),
        1,
        "a cancelled run is not launched again"
    );
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_controller_killed_between_launch_and_record_is_replaced_without_a_second_launch() {
    let mut settings = Settings::fast();
    settings.lease_ttl = Duration::from_secs(3);
    let (world, _g) = world("crash", settings).await;
    let first = ok(world
        .start_controller(ControllerOptions::named("ctl-first"))
        .await);
    first.store.crash_before_next_record();
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(12)));
    let run = run_of(&job);
    tokio::time::timeout(SETTLE, first.store.crashed())
        .await
        .expect("the first controller reached the record step");
    let launched = first.fleet.launches();
    assert_eq!(launched.len(), 1, "{launched:?}");
    first.kill();
    let before = ok(world.run(&run).await).expect("run exists");
    assert_eq!(
        before.status.phase,
        Phase::Launching,
        "claimed, not recorded: {before:?}"
    );
    assert_eq!(before.status.instance_id, None);

    let second = ok(world
        .start_controller(ControllerOptions::named("ctl-second"))
        .await);
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    let after = ok(world.run_final(&run, SETTLE).await);
    assert_eq!(after.status.phase, Phase::Done, "{after:?}");
    assert_eq!(
        after
            .status
            .instance_id
            .as_ref()
            .map(model::InstanceId::as_str),
        Some(launched[0].instance.as_str()),
        "the instance was adopted"
    );
    assert!(second.fleet.launches().is_empty(), "no second launch");
    assert_eq!(second.actions("update-status", Some("instance-found")), 1);
    let ours = ok(world.instances().await);
    assert_eq!(ours.len(), 1, "one instance ever: {ours:?}");
    ok(second.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn while_gitea_is_unreachable_nothing_is_terminated_and_afterwards_everything_converges() {
    let (world, _g) = world("giteadown", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    world.sim.set_faults(gitea_sim::Faults {
        api_error: Some(gitea_sim::ApiErrorFault::always(503)),
        ..gitea_sim::Faults::default()
    });
    let orphan = ok(world.launch_orphan("go").await);
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    let launched = ok(world.instance(&orphan).await).launched_at;
    // Wait until the orphan is well past its minimum age, passes still running.
    let min_age = world.settings.timeouts.orphan_min_age;
    ok(world
        .wait_until("the orphan is past its minimum age", SETTLE, || async {
            let now = world.clock.now();
            (now.since(launched) > min_age + Duration::from_secs(2)).then_some(())
        })
        .await);
    ok(ctl.fleet.wait_passes(2, SETTLE).await);
    assert!(
        ctl.fleet.terminations().is_empty(),
        "terminated during the outage"
    );
    assert!(ok(world.instance(&orphan).await).is_live());
    assert!(
        world
            .events
            .all()
            .iter()
            .any(|e| e.kind == "warn" && e.text.contains("observation incomplete")),
        "the controller said why it held back"
    );

    world.sim.set_faults(gitea_sim::Faults::default());
    ok(world.terminated(&orphan, SETTLE).await);
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn while_dynamodb_is_unreachable_webhooks_are_spooled_and_nothing_is_lost() {
    let (world, _g) = world("dynamodown", Settings::fast()).await;
    // No backfill: only the webhooks (through the spool) can bring these jobs in.
    let ctl = ok(world
        .start_controller(ControllerOptions {
            backfill: false,
            ..ControllerOptions::named("ctl-a")
        })
        .await);
    ctl.store.set_down(true);
    let jobs = [
        ok(world.enqueue("build", &["go"], Duration::from_secs(1))),
        ok(world.enqueue("image", &["docker"], Duration::from_secs(1))),
    ];
    ok(world
        .wait_until(
            "both queued webhooks were answered 202 (spooled)",
            SETTLE,
            || async {
                let spooled = world
                    .sim
                    .deliveries()
                    .iter()
                    .filter(|d| d.action.as_deref() == Some("queued") && d.status == Some(202))
                    .count();
                (spooled == 2).then_some(())
            },
        )
        .await);
    assert!(
        ctl.fleet.launches().is_empty(),
        "nothing launched while the table was down"
    );
    for job in &jobs {
        assert!(
            ok(world.run(&run_of(job)).await).is_none(),
            "not in the table yet"
        );
    }
    ctl.store.set_down(false);
    for job in &jobs {
        let done = ok(world.job_completed(job.id, SETTLE).await);
        assert_eq!(done.conclusion, Some(Conclusion::Success));
        let run = ok(world.run_final(&run_of(job), SETTLE).await);
        assert_eq!(run.status.phase, Phase::Done, "{run:?}");
        assert_eq!(
            run.spec.origin,
            model::Origin::Webhook,
            "created from the spooled webhook"
        );
    }
    assert!(ctl.store.refused() > 0);
    ok(ctl.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn two_controllers_at_once_have_one_writer_and_never_launch_twice() {
    let (world, _g) = world("twoctl", Settings::fast()).await;
    let a = ok(world
        .start_controller(ControllerOptions::named("ctl-a"))
        .await);
    ok(world
        .wait_until("ctl-a takes the lease", SETTLE, || async {
            a.holds_lease().then_some(())
        })
        .await);
    // The second replica receives the webhooks: it writes runs, the lease holder launches.
    let b = ok(world
        .start_controller(ControllerOptions::named("ctl-b"))
        .await);
    let jobs = [
        ok(world.enqueue("build", &["go"], Duration::from_secs(1))),
        ok(world.enqueue("test", &["go"], Duration::from_secs(1))),
        ok(world.enqueue("image", &["docker"], Duration::from_secs(1))),
    ];
    for job in &jobs {
        let done = ok(world.job_completed(job.id, SETTLE).await);
        assert_eq!(done.conclusion, Some(Conclusion::Success));
        let run = ok(world.run_final(&run_of(job), SETTLE).await);
        assert_eq!(run.status.phase, Phase::Done, "{run:?}");
        assert_eq!(world.booter.machines_of(&run_of(job)).len(), 1);
    }
    assert_eq!(a.fleet.launches().len(), 3);
    assert!(b.fleet.launches().is_empty(), "the standby launched");
    assert!(b.fleet.terminations().is_empty(), "the standby terminated");
    assert_eq!(
        b.actions("launch", None) + b.actions("update-status", None),
        0
    );
    assert!(a.holds_lease() && !b.holds_lease());
    assert!(
        world
            .sim
            .deliveries()
            .iter()
            .any(|d| d.url == b.hook_url() && d.succeeded()),
        "ctl-b took the webhooks"
    );
    ok(b.stop().await);
    ok(a.stop().await);
    world.shutdown().await;
}

#[tokio::test]
async fn a_warm_runner_takes_a_job_without_a_launch_and_the_pool_is_topped_up_again() {
    let (world, _g) = world("warm", Settings::fast()).await;
    let ctl = ok(world
        .start_controller(ControllerOptions::named("ctl-a").with_warm("go", 1))
        .await);
    // Before any job, the pool is filled: one warm runner, online and idle.
    let warm = ok(world
        .wait_until("a warm runner of pool go is ready", SETTLE, || async {
            world
                .ready_warm_runs(&ctl, "go")
                .await
                .ok()
                .and_then(|r| r.into_iter().next())
        })
        .await);
    assert_eq!(warm.spec.origin, model::Origin::Warm);
    assert!(warm.spec.job.is_none(), "a warm run has no job of its own");
    // Every launch so far and from here on is a warm runner's.
    let warm_only = |launches: &[e2e::faults::LaunchRecord]| {
        launches
            .iter()
            .all(|l| l.run.as_str().starts_with("warm-go-"))
    };
    let before = ctl.fleet.launches();
    assert!(warm_only(&before), "{before:?}");

    // A job for its labels: the warm runner asks Gitea for work and takes it.
    let job = ok(world.enqueue("build", &["go"], Duration::from_secs(1)));
    let done = ok(world.job_completed(job.id, SETTLE).await);
    assert_eq!(done.conclusion, Some(Conclusion::Success));
    assert!(
        done.runner_id.is_some() && done.runner_id == warm.status.runner_id,
        "the warm runner (#{:?}) ran it, not #{:?}",
        warm.status.runner_id,
        done.runner_id
    );
    let run = ok(world.run_final(&run_of(&job), SETTLE).await);
    assert_eq!(run.status.phase, Phase::Done, "{run:?}");
    assert!(
        run.status.claimed_at.is_none()
            && run.status.launched_at.is_none()
            && run.status.instance_id.is_none(),
        "the job's run never launched: {run:?}"
    );
    assert!(world.booter.machines_of(&run_of(&job)).is_empty());

    // The warm run ends with its job, its machine powered off, and a fresh warm runner
    // takes its place.
    let over = ok(world.run_final(&warm.id, SETTLE).await);
    assert_eq!(over.status.phase, Phase::Done, "{over:?}");
    // Whether a pass saw the runner busy (`took_job_at`) depends on timing: a one-second job
    // can start and end between two passes. The run's outcome says it served a job either way.
    assert_eq!(
        over.status.outcome.as_deref(),
        Some("its runner took the job and ended"),
        "{over:?}"
    );
    let fresh = ok(world
        .wait_until(
            "a fresh warm runner of pool go is ready",
            SETTLE,
            || async {
                world
                    .ready_warm_runs(&ctl, "go")
                    .await
                    .ok()
                    .and_then(|r| r.into_iter().find(|r| r.id != warm.id))
            },
        )
        .await);
    assert_ne!(fresh.id, warm.id);
    let launches = ctl.fleet.launches();
    assert!(warm_only(&launches), "{launches:?}");
    assert!(
        launches.len() > before.len(),
        "the top-up launched: {launches:?}"
    );
    assert!(
        !launches.iter().any(|l| l.run == run_of(&job)),
        "no launch for the job's run: {launches:?}"
    );
    for m in world.booter.machines_of(&warm.id) {
        ok(world.terminated(&m.instance, SETTLE).await);
    }
    assert_eq!(ctl.actions("launch", Some("no-runner")), 0);
    end_cleanly(world, ctl).await;
}
