//! The reconciler over the three stateful fakes: passes, crash safety, partial views, lease.

use std::sync::Arc;
use std::time::Duration;

use controller::clock::{Clock, ManualClock};
use controller::fleet::fake::{FakeFleet, FleetOp};
use controller::fleet::FleetError;
use controller::forge::fake::ForgeMethod;
use controller::forge::{FakeForge, ForgeError};
use controller::metrics::Metrics;
use controller::reconcile::{Limits, LoopFeatures, Mode, Reconciler, Skip, StepError};
use controller::store::fake::{FakeStore, StoreOp};
use controller::store::{Store, StoreError};
use model::config::Config;
use model::testing::{at, job_run, T0};
use model::{Action, InstanceState, Phase, RunId};

#[path = "support/logs.rs"]
mod logs;
use logs::Logs;

struct Rig {
    store: Arc<FakeStore>,
    fleet: Arc<FakeFleet>,
    forge: Arc<FakeForge>,
    clock: ManualClock,
    r: Reconciler,
}

fn config() -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config.yaml"
    ))
    .expect("example config");
    let mut c = Config::parse(&text).expect("valid");
    c.cluster_id = "test".into();
    c
}

fn rig() -> Rig {
    rig_with(|_| {})
}

fn rig_with(edit: impl FnOnce(&mut Config)) -> Rig {
    let mut config = config();
    edit(&mut config);
    let clock = ManualClock::new(T0);
    let store = Arc::new(FakeStore::new().with_clock(Arc::new(clock.clone())));
    let fleet = Arc::new(FakeFleet::new(&config.cluster_id, T0));
    let forge = Arc::new(FakeForge::new());
    let r = Reconciler {
        store: store.clone(),
        fleet: fleet.clone(),
        forge: forge.clone(),
        config,
        features: LoopFeatures {
            queued_jobs: true,
            disable_runners: false,
        },
        clock: Arc::new(clock.clone()),
        limits: Limits {
            call_timeout: Duration::from_secs(5),
            ..Limits::default()
        },
        metrics: Metrics::new(),
        holder: "test-controller".into(),
        notices: controller::notices::NoticeBook::default(),
        disabled: controller::reconcile::DisabledBook::default(),
    };
    Rig {
        store,
        fleet,
        forge,
        clock,
        r,
    }
}

impl Rig {
    fn advance(&self, d: Duration) {
        self.clock.advance(d);
        self.fleet.advance(d);
    }

    async fn pass(&self) -> controller::reconcile::PassOutcome {
        let lease = self.r.acquire().await.expect("lease");
        let out = self.r.pass(Mode::Apply, Some(&lease)).await;
        self.r.release(&lease).await;
        out
    }

    /// Puts `run` in the table and a running instance of ours, `instance`, tagged for it.
    fn put_running(&self, run: &model::DesiredRun, instance: &str) {
        self.store.put_row(run.clone());
        self.fleet.insert(model::testing::instance_for(
            run,
            instance,
            "go",
            InstanceState::Running,
            T0,
        ));
    }

    /// The state EC2 gives instance `id`, if it knows it.
    fn state_of(&self, id: &str) -> Option<InstanceState> {
        self.fleet
            .instance(&model::InstanceId::new(id))
            .map(|i| i.state)
    }

    fn run(&self, id: &RunId) -> model::DesiredRun {
        self.store
            .runs()
            .into_iter()
            .find(|r| &r.id == id)
            .expect("run exists")
    }
}

fn go_job(id: i64) -> model::QueuedJob {
    model::testing::queued(id, &["go"])
}

#[tokio::test]
async fn a_pending_run_gets_a_registered_runner_and_a_tagged_instance() {
    let rig = rig();
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    let out = rig.pass().await;
    let report = out.report.expect("applied");
    assert_eq!(report.failures(), 0, "{:?}", report.outcomes);

    let run = rig.run(&RunId::for_job(1, 1));
    assert_eq!(run.status.phase, Phase::Running);
    let instance = run.status.instance_id.clone().expect("instance recorded");
    let live = rig.fleet.live();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, instance);
    assert_eq!(live[0].tags["tinqs-ci:runner-name"], "tq-test-job-1-1-a1");
    assert_eq!(live[0].tags["tinqs-ci:cluster"], "test");
    let runner_id = run.status.runner_id.expect("runner id recorded");
    let registered = rig.forge.runner(runner_id).expect("pre-registered");
    assert_eq!(registered.name, "tq-test-job-1-1-a1");
    assert!(registered.ephemeral);

    // A second pass right after changes nothing.
    let again = rig.pass().await;
    assert!(again.plan.is_empty(), "{:?}", again.plan.actions);
    assert_eq!(rig.fleet.count(FleetOp::Launch), 1);
}

#[tokio::test]
async fn with_the_cache_configured_a_launch_records_the_runner_s_credential_hash_only() {
    let rig = rig();
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    rig.pass().await;
    let runner = "tq-test-job-1-1-a1";
    assert_eq!(
        rig.store.runner_record(runner).await.expect("read"),
        None,
        "no cache configured: no credential"
    );

    let rig = rig_with(|c| {
        c.server.cache_listen = Some("0.0.0.0:8081".into());
        c.cache = Some(
            serde_json::from_value(serde_json::json!({
                "bucket": "ci-cache",
                "url": "http://10.0.0.5:8081",
            }))
            .expect("cache section"),
        );
    });
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    let report = rig.pass().await.report.expect("applied");
    assert_eq!(report.failures(), 0, "{:?}", report.outcomes);
    let record = rig
        .store
        .runner_record(runner)
        .await
        .expect("read")
        .expect("recorded at launch");
    let hash = record.credential.expect("a credential hash");
    assert_eq!(hash.len(), 64, "a SHA-256, never the credential itself");
    assert_eq!(record.job, None, "the job is the webhook's to record");
}

#[tokio::test]
async fn a_missed_webhook_is_recovered_by_backfill() {
    let rig = rig();
    rig.forge.queue_job(go_job(42));
    rig.pass().await;
    let run = rig.run(&RunId::for_job(42, 1));
    assert_eq!(run.spec.origin, model::Origin::Backfill);
    assert_eq!(run.status.phase, Phase::Running);
    assert_eq!(rig.fleet.live().len(), 1);
}

#[tokio::test]
async fn a_throttled_read_of_the_table_backfills_nothing() {
    let rig = rig();
    rig.forge.queue_job(go_job(42));
    rig.pass().await;
    let id = RunId::for_job(42, 1);
    let before = rig.run(&id);
    assert_eq!(before.status.phase, Phase::Running);
    // The job still waits (its runner is booting); the table's list is throttled this pass.
    rig.advance(Duration::from_secs(20));
    rig.store.fail_next(
        StoreOp::ListActive,
        StoreError::Throttled("slow down".into()),
    );
    let out = rig.pass().await;
    assert!(
        out.plan.actions.is_empty(),
        "nothing concluded from a row missing from a partial read: {:?}",
        out.plan.actions
    );
    assert_eq!(rig.run(&id).status, before.status);
    assert_eq!(rig.fleet.count(FleetOp::Launch), 1);
    assert_eq!(rig.forge.calls_to(ForgeMethod::RegisterRunner), 1);
}

#[tokio::test]
async fn a_backfilled_runs_steps_leave_a_row_that_existed_already_alone() {
    let rig = rig();
    // The row exists at attempt 2 with its machine, unknown to the plan being applied: the
    // plan creates it and launches attempt 1, as a pass that did not see it would.
    let mut existing = model::testing::running(job_run(42, &["go"]), "i-2", T0);
    existing.status.attempt = 2;
    rig.store.put_row(existing.clone());
    let fresh = job_run(42, &["go"]);
    let plan = model::Plan {
        actions: vec![
            Action::CreateRun {
                run: fresh.id.clone(),
                spec: fresh.spec.clone(),
                reason: model::Reason::Backfill { job_id: 42 },
            },
            Action::Launch {
                run: fresh.id.clone(),
                attempt: 1,
                runner: fresh.runner_name("test"),
                pool: "go".into(),
                labels: vec!["go".into(), "linux".into()],
                reason: model::Reason::NoRunner,
            },
        ],
        ..model::Plan::default()
    };
    let lease = rig.r.acquire().await.expect("lease");
    let report = rig
        .r
        .apply(&plan, &model::DesiredView::default(), &lease)
        .await;
    assert_eq!(
        report.failures(),
        1,
        "the launch waits: {:?}",
        report.outcomes
    );
    let row = rig.run(&existing.id);
    assert_eq!(
        (row.status.attempt, row.status.instance_id),
        (2, existing.status.instance_id)
    );
    assert_eq!(rig.fleet.count(FleetOp::Launch), 0);
    assert_eq!(rig.forge.calls_to(ForgeMethod::RegisterRunner), 0);
}

#[tokio::test]
async fn a_crash_between_launch_and_record_adopts_the_instance_instead_of_launching_again() {
    let rig = rig();
    rig.forge.queue_job(go_job(1));
    // The crash: the run was claimed and its instance launched, but the record never written.
    let mut claimed = job_run(1, &["go"]);
    claimed.status = claimed.status.claimed(1, claimed.runner_name("test"), T0);
    rig.store.put_row(claimed.clone());
    let instance =
        model::testing::instance_for(&claimed, "i-crash", "go", InstanceState::Running, T0);
    rig.fleet.insert(instance);
    rig.advance(Duration::from_secs(30));
    let out = rig.pass().await;
    assert!(
        out.plan.actions.iter().any(|a| matches!(
            a,
            Action::UpdateStatus {
                change: model::StatusChange::Adopt { .. },
                ..
            }
        )),
        "{:?}",
        out.plan.actions
    );
    assert_eq!(
        rig.fleet.count(FleetOp::Launch),
        0,
        "never two instances for one run"
    );
    assert_eq!(
        rig.run(&claimed.id)
            .status
            .instance_id
            .map(|i| i.to_string())
            .as_deref(),
        Some("i-crash")
    );
}

#[tokio::test]
async fn gitea_unreachable_means_no_terminations() {
    let rig = rig();
    let orphan = model::testing::instance_for(
        &job_run(9, &["go"]),
        "i-orphan",
        "go",
        InstanceState::Running,
        T0,
    );
    rig.fleet.insert(orphan);
    rig.advance(Duration::from_secs(3600));
    rig.forge.fail_always(
        ForgeMethod::ListRunners,
        ForgeError::Unavailable("connection refused".into()),
    );
    let out = rig.pass().await;
    assert!(!out.observation.is_complete());
    assert!(out.plan.actions.iter().all(|a| !a.is_destructive()));
    assert_eq!(rig.fleet.count(FleetOp::Terminate), 0);
    assert_eq!(rig.fleet.live().len(), 1);

    rig.forge.heal(ForgeMethod::ListRunners);
    let out = rig.pass().await;
    assert!(out
        .plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::Terminate { .. })));
    assert!(
        rig.fleet.live().is_empty(),
        "orphan removed once the view is whole"
    );
}

#[tokio::test]
async fn a_capacity_error_releases_the_claim_and_drops_the_registration() {
    let rig = rig();
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    rig.fleet.fail_next(
        FleetOp::Launch,
        FleetError::Capacity {
            code: "InsufficientInstanceCapacity".into(),
            message: "none".into(),
        },
    );
    let out = rig.pass().await;
    let report = out.report.expect("applied");
    assert_eq!(report.failures(), 1);
    let error = report.outcomes[0].result.clone().expect_err("failed");
    assert_eq!(error.kind(), "fleet", "{error:?}");
    assert_eq!(
        error.to_string(),
        "launch failed: no capacity: InsufficientInstanceCapacity: none"
    );
    assert!(rig.r.metrics.render().contains(
        r#"tinqs_actions_total{kind="launch",reason="no-runner",result="error",error="fleet"} 1"#
    ));
    // The runner was pre-registered, its token put in the boot script: neither it nor the
    // registration token is in the error (which is also what is logged) or on the row.
    let runner_id = rig
        .forge
        .calls()
        .iter()
        .find_map(|c| match c {
            controller::forge::fake::ForgeCall::DeleteRunner(id) => Some(*id),
            _ => None,
        })
        .expect("the registration was deleted");
    let token = rig.forge.issued(runner_id).expect("issued").token;
    let last_error = rig.run(&RunId::for_job(1, 1)).status.last_error;
    for secret in [token, rig.forge.registration_token_value()] {
        assert!(!error.to_string().contains(&secret));
        assert!(!format!("{error:?}").contains(&secret));
        assert!(!last_error.clone().unwrap_or_default().contains(&secret));
    }
    let run = rig.run(&RunId::for_job(1, 1));
    assert_eq!(
        run.status.phase,
        Phase::Pending,
        "claim released for the next pass"
    );
    assert!(run
        .status
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("InsufficientInstanceCapacity")));
    assert!(
        rig.forge.runners().is_empty(),
        "unused registration deleted"
    );
    rig.pass().await;
    assert_eq!(rig.run(&RunId::for_job(1, 1)).status.phase, Phase::Running);
}

/// Every offering of a pool answered "no capacity": until the first of them may be tried
/// again, the pool's launches wait in the plan (no registration, no RunInstances call), then
/// go ahead.
#[tokio::test]
async fn a_pool_whose_every_offering_lacks_capacity_defers_its_launches_until_one_may_be_tried() {
    let rig = rig();
    let go = rig.r.config.pools["go"].clone();
    let all = controller::fleet::offerings(&go);
    for o in &all {
        rig.fleet.set_no_capacity(o.clone());
    }
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    let launches = || {
        rig.fleet
            .calls()
            .iter()
            .filter(|c| matches!(c, controller::fleet::fake::FleetCall::Launch { .. }))
            .count()
    };
    let out = rig.pass().await;
    assert_eq!(
        out.report.expect("applied").failures(),
        1,
        "every offering tried"
    );
    assert_eq!(rig.fleet.unavailable_offerings().len(), all.len());
    assert_eq!(launches(), 1);

    rig.advance(Duration::from_secs(60));
    let out = rig.pass().await;
    assert!(
        !out.plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Launch { .. })),
        "{:#?}",
        out.plan.actions
    );
    assert!(
        out.plan
            .deferred
            .iter()
            .any(|d| d.what == "launch tq-test-job-1-1-a1" && d.limit.contains("go")),
        "{:#?}",
        out.plan.deferred
    );
    assert_eq!(
        launches(),
        1,
        "no RunInstances call while nothing may be tried"
    );
    assert!(rig.forge.runners().is_empty(), "no registration either");
    assert_eq!(rig.run(&RunId::for_job(1, 1)).status.phase, Phase::Pending);

    for o in &all {
        rig.fleet.restore_capacity(o);
    }
    rig.advance(controller::fleet::offerings::DEFAULT_TTL);
    rig.pass().await;
    assert_eq!(launches(), 2);
    assert_eq!(rig.run(&RunId::for_job(1, 1)).status.phase, Phase::Running);
}

#[tokio::test]
async fn only_one_controller_holds_the_lease() {
    let rig = rig();
    let first = rig.r.acquire().await.expect("first takes it");
    let second = rig
        .store
        .acquire_lease("other-controller", Duration::from_secs(60), at(1))
        .await;
    assert!(
        matches!(second, Err(StoreError::LeaseHeld { ref holder, .. }) if holder == "test-controller"),
        "{second:?}"
    );
    rig.r.release(&first).await;
    assert!(rig
        .store
        .acquire_lease("other-controller", Duration::from_secs(60), at(2))
        .await
        .is_ok());
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let rig = rig();
    rig.store.put_row(job_run(1, &["go"]));
    let out = rig.r.pass(Mode::DryRun, None).await;
    assert_eq!(out.plan.actions.len(), 1);
    assert!(out.report.is_none());
    assert_eq!(rig.fleet.count(FleetOp::Launch), 0);
    assert_eq!(rig.run(&RunId::for_job(1, 1)).status.phase, Phase::Pending);
}

#[tokio::test]
async fn a_runner_that_never_registers_is_retried_then_the_run_fails() {
    let rig = rig();
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    for attempt in 1..=3u32 {
        rig.pass().await;
        let run = rig.run(&RunId::for_job(1, 1));
        assert_eq!(run.status.attempt, attempt);
        assert_eq!(run.status.phase, Phase::Running);
        rig.advance(Duration::from_secs(11 * 60));
    }
    rig.pass().await;
    let run = rig.run(&RunId::for_job(1, 1));
    assert_eq!(run.status.phase, Phase::Failed);
    assert!(
        run.status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("gave up after 3 attempts")),
        "{:?}",
        run.status.last_error
    );
    assert!(rig.fleet.live().is_empty());
    assert!(rig.forge.runners().is_empty());
}

#[test]
fn features_follow_the_gitea_version_and_the_demand_mode() {
    let mut c = config();
    let v = |minor| controller::forge::ForgeVersion {
        major: 1,
        minor,
        patch: 0,
    };
    assert!(v(23).check_supported(&c.gitea).is_err());
    let f = |c: &Config, minor| LoopFeatures::from_forge(c, v(minor).features());
    assert_eq!(
        f(&c, 24),
        LoopFeatures {
            queued_jobs: false,
            disable_runners: false
        }
    );
    assert_eq!(
        f(&c, 25),
        LoopFeatures {
            queued_jobs: true,
            disable_runners: false
        }
    );
    assert_eq!(
        f(&c, 26),
        LoopFeatures {
            queued_jobs: true,
            disable_runners: true
        }
    );
    c.gitea.demand = model::config::DemandSource::Push;
    assert_eq!(
        f(&c, 26),
        LoopFeatures {
            queued_jobs: false,
            disable_runners: true
        }
    );
}

#[tokio::test]
async fn without_disable_a_runner_that_took_a_job_since_the_plan_is_neither_deregistered_nor_terminated(
) {
    // Gitea 1.24/1.25: the plan deletes the registration first, guarded by what it saw (online,
    // not busy). The runner took a job between the observation and the delete: the executor
    // reads it again, leaves it, and skips the run's terminate.
    let rig = rig();
    let run = model::testing::running(job_run(1, &["go"]), "i-1", T0);
    rig.put_running(&run, "i-1");
    let id = rig.forge.add_runner(
        model::testing::name_of(&run).as_str(),
        &["go", "linux"],
        true,
    );
    let reason = model::Reason::Stuck {
        timeout: Duration::from_secs(180),
    };
    let plan = model::Plan {
        actions: vec![
            Action::Deregister {
                runner_id: id,
                runner: model::testing::name_of(&run).to_string(),
                run: Some(run.id.clone()),
                guard: Some(model::SeenRunner { online: true }),
                reason: reason.clone(),
            },
            Action::Terminate {
                instance: model::InstanceId::new("i-1"),
                run: Some(run.id.clone()),
                runner: Some(model::testing::name_of(&run).to_string()),
                pool: Some("go".into()),
                reason,
            },
        ],
        ..model::Plan::default()
    };
    rig.forge.set_busy(id, true);
    let lease = rig.r.acquire().await.expect("lease");
    let view = model::DesiredView {
        runs: vec![run.clone()],
        complete: true,
        ..model::DesiredView::default()
    };
    let report = rig.r.apply(&plan, &view, &lease).await;
    rig.r.release(&lease).await;
    assert_eq!(report.failures(), 2, "{:?}", report.outcomes);
    let errors: Vec<StepError> = report
        .outcomes
        .iter()
        .filter_map(|o| o.result.clone().err())
        .collect();
    assert_eq!(
        errors[0],
        StepError::RunnerChanged {
            runner_id: id,
            online: true,
            busy: true
        }
    );
    assert_eq!(
        errors[1],
        StepError::Skipped(Skip::EarlierStep(Box::new(errors[0].clone())))
    );
    assert_eq!(
        (errors[0].kind(), errors[1].kind()),
        ("runner-changed", "skipped")
    );
    assert!(rig.forge.runner(id).is_some(), "still registered");
    assert_eq!(
        rig.state_of("i-1"),
        Some(InstanceState::Running),
        "its machine runs on"
    );

    // Still as seen: both go ahead.
    rig.forge.set_busy(id, false);
    let lease = rig.r.acquire().await.expect("lease");
    let report = rig.r.apply(&plan, &view, &lease).await;
    rig.r.release(&lease).await;
    assert_eq!(report.failures(), 0, "{:?}", report.outcomes);
    assert!(rig.forge.runner(id).is_none());
}

#[tokio::test]
async fn an_unschedulable_run_is_logged_when_it_starts_and_changes_not_every_pass_and_capped() {
    let (logs, _guard) = Logs::capture();
    let rig = rig();
    // One delivery with 10,000 labels no pool serves.
    let labels: Vec<String> = (0..10_000).map(|i| format!("nosuchlabel-{i}")).collect();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let run = job_run(7, &refs);
    let id = run.id.clone();
    rig.store.put_row(run);
    rig.forge.queue_job(model::testing::queued(7, &refs));
    for _ in 0..10 {
        let out = rig.pass().await;
        assert_eq!(out.plan.unschedulable.len(), 1);
        rig.advance(Duration::from_secs(30));
    }
    let warned = logs.lines_with("unschedulable: no pool serves");
    assert_eq!(warned.len(), 1, "once, not every pass");
    assert!(warned[0].len() < 2_000, "capped: {} bytes", warned[0].len());
    assert!(warned[0].contains("(+9984 more)"), "{}", warned[0]);

    assert!(rig.store.edit_spec(&id, |s| s.labels = vec!["gpu".into()]));
    rig.pass().await;
    rig.pass().await;
    assert_eq!(logs.lines_with("unschedulable: no pool serves").len(), 2);

    // The job no longer waits (cancelled in Gitea): the run ends.
    rig.forge.remove_job(7);
    for _ in 0..5 {
        rig.pass().await;
        rig.advance(Duration::from_secs(30));
    }
    assert_eq!(logs.lines_with("no longer unschedulable").len(), 1);
    assert_eq!(logs.lines_with("unschedulable: no pool serves").len(), 2);
}

/// The rig with one step carried out at a time, so which step sees what is fixed.
fn one_at_a_time() -> Rig {
    let mut rig = rig();
    rig.r.limits.concurrency = 1;
    rig
}

/// Our lease lapsed and another controller took it: `lease` is the one we still think we hold.
async fn lease_taken_over(rig: &Rig) -> controller::store::Lease {
    let ours = rig.r.acquire().await.expect("lease");
    rig.advance(rig.r.limits.lease_ttl + Duration::from_secs(1));
    rig.store
        .acquire_lease("other-controller", Duration::from_secs(60), rig.clock.now())
        .await
        .expect("the lapsed lease is free");
    ours
}

#[tokio::test]
async fn a_lost_lease_stops_every_remaining_write_and_launch_of_the_pass() {
    let rig = one_at_a_time();
    for job in 1..=3 {
        rig.store.put_row(job_run(job, &["go"]));
        rig.forge.queue_job(go_job(job));
    }
    let lease = lease_taken_over(&rig).await;
    let writes_before = rig.store.count(StoreOp::WriteStatus);

    let out = rig.r.pass(Mode::Apply, Some(&lease)).await;
    let report = out.report.expect("applied");
    assert_eq!(out.plan.actions.len(), 3, "{:?}", out.plan.actions);
    assert!(report.lease_lost());
    assert_eq!(
        rig.store.count(StoreOp::WriteStatus) - writes_before,
        1,
        "only the first claim was tried"
    );
    assert_eq!(rig.forge.calls_to(ForgeMethod::RegisterRunner), 0);
    assert_eq!(rig.fleet.count(FleetOp::Launch), 0);
    let errors: Vec<StepError> = report
        .outcomes
        .iter()
        .map(|o| o.result.clone().expect_err("nothing done"))
        .collect();
    assert_eq!(errors[0].kind(), "lease-lost", "{errors:?}");
    assert!(errors[0].to_string().starts_with("claim failed: "));
    for e in &errors[1..] {
        assert_eq!(e, &StepError::Skipped(Skip::LeaseLost));
    }
    let metrics = rig.r.metrics.render();
    assert!(metrics.contains(
        r#"tinqs_actions_total{kind="launch",reason="no-runner",result="error",error="lease-lost"} 1"#
    ));
    assert!(metrics.contains(
        r#"tinqs_actions_total{kind="launch",reason="no-runner",result="error",error="skipped"} 2"#
    ));
    for job in 1..=3 {
        assert_eq!(
            rig.run(&RunId::for_job(job, 1)).status.phase,
            Phase::Pending
        );
    }
}

#[tokio::test]
async fn after_a_lost_lease_no_other_runs_step_is_carried_out_not_even_a_termination() {
    let rig = one_at_a_time();
    let launching = job_run(1, &["go"]);
    let ending = model::testing::running(job_run(2, &["go"]), "i-2", T0);
    rig.store.put_row(launching.clone());
    rig.put_running(&ending, "i-2");
    let lease = lease_taken_over(&rig).await;
    let reason = model::Reason::Cancelled;
    let plan = model::Plan {
        actions: vec![
            Action::Launch {
                run: launching.id.clone(),
                attempt: 1,
                runner: model::testing::name_of(&launching),
                pool: "go".into(),
                labels: vec!["go".into()],
                reason: model::Reason::NoRunner,
            },
            Action::Terminate {
                instance: model::InstanceId::new("i-2"),
                run: Some(ending.id.clone()),
                runner: None,
                pool: Some("go".into()),
                reason: reason.clone(),
            },
            Action::UpdateStatus {
                run: ending.id.clone(),
                change: model::StatusChange::Finish {
                    phase: Phase::Cancelled,
                    error: None,
                    outcome: None,
                },
                reason,
            },
        ],
        ..model::Plan::default()
    };
    let view = model::DesiredView {
        runs: vec![launching, ending.clone()],
        complete: true,
        ..model::DesiredView::default()
    };
    let report = rig.r.apply(&plan, &view, &lease).await;
    assert!(report.lease_lost());
    assert_eq!(report.failures(), 3, "{:?}", report.outcomes);
    assert_eq!(rig.fleet.count(FleetOp::Terminate), 0);
    assert_eq!(rig.state_of("i-2"), Some(InstanceState::Running));
    assert_eq!(rig.run(&ending.id).status, ending.status);
}

#[tokio::test]
async fn the_loop_stands_by_as_soon_as_a_pass_finds_the_lease_lost() {
    let rig = one_at_a_time();
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    // Every status write is refused for the lease (another controller fenced us out), while
    // renewing it still works: only the pass can tell.
    for _ in 0..8 {
        rig.store
            .fail_next(StoreOp::WriteStatus, StoreError::LeaseLost);
    }
    let wake = Arc::new(tokio::sync::Notify::new());
    let shutdown = tokio::sync::Notify::new();
    let passes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    struct Count(
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<tokio::sync::Notify>,
    );
    impl controller::reconcile::LoopHooks for Count {
        fn jitter(&mut self, low: u64, _high: u64) -> u64 {
            low
        }
        fn passed(&mut self, _outcome: &controller::reconcile::PassOutcome) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.1.notify_one();
        }
    }
    let passed = Arc::new(tokio::sync::Notify::new());
    let mut hooks = Count(passes.clone(), passed.clone());
    let looped = rig.r.run_with(wake, shutdown.notified(), &mut hooks);
    tokio::pin!(looped);
    tokio::select! {
        () = &mut looped => panic!("the loop ended by itself"),
        () = passed.notified() => {}
    }
    assert!(
        rig.r.metrics.render().contains("tinqs_lease_held 0"),
        "{}",
        rig.r.metrics.render()
    );
    assert_eq!(passes.load(std::sync::atomic::Ordering::SeqCst), 1);
    shutdown.notify_one();
    looped.await;
}

#[tokio::test]
async fn a_disabled_runner_is_removed_only_once_the_disable_has_stood_long_enough_to_show_a_job() {
    // Gitea 1.26+: a stuck runner is disabled, and removed on a later pass if still not busy.
    // Gitea shows a job the runner picked just before the disable as busy only from the
    // runner's first report on it, so a pass moments after the disable removes nothing.
    let mut rig = rig();
    rig.r.features.disable_runners = true;
    let run = model::testing::running(job_run(1, &["go"]), "i-1", T0);
    rig.put_running(&run, "i-1");
    rig.forge.queue_job(go_job(1));
    let id = rig.forge.add_runner(
        model::testing::name_of(&run).as_str(),
        &["go", "linux"],
        true,
    );
    rig.pass().await; // records it online
    rig.advance(Duration::from_secs(4 * 60));
    rig.pass().await;
    assert!(
        rig.forge.runner(id).is_some_and(|r| r.disabled),
        "stuck: disabled first"
    );
    rig.advance(Duration::from_secs(5));
    rig.pass().await;
    assert!(
        rig.forge.runner(id).is_some(),
        "5 s after the disable it stays"
    );
    assert_eq!(rig.state_of("i-1"), Some(InstanceState::Running));
    rig.advance(model::plan::DISABLE_SETTLE);
    rig.pass().await;
    assert!(rig.forge.runner(id).is_none(), "then it is removed");
    assert_ne!(rig.state_of("i-1"), Some(InstanceState::Running));
}

#[tokio::test]
async fn one_runs_failed_launch_does_not_stop_another_runs_launch() {
    let rig = one_at_a_time();
    for job in 1..=2 {
        rig.store.put_row(job_run(job, &["go"]));
        rig.forge.queue_job(go_job(job));
    }
    rig.fleet.fail_next(
        FleetOp::Launch,
        FleetError::Throttled("Request limit exceeded.".into()),
    );
    let out = rig.pass().await;
    let report = out.report.expect("applied");
    assert_eq!(report.failures(), 1, "{:?}", report.outcomes);
    assert_eq!(rig.fleet.count(FleetOp::Launch), 2, "both were tried");
    let phases: Vec<Phase> = (1..=2)
        .map(|job| rig.run(&RunId::for_job(job, 1)).status.phase)
        .collect();
    assert_eq!(phases, [Phase::Pending, Phase::Running]);
}

/// A forge on which registering a runner takes long enough for our lease to lapse and
/// another controller to take it: the launch learns it on its next write.
struct LeaseLapsesWhileRegistering {
    inner: Arc<FakeForge>,
    store: Arc<FakeStore>,
    clock: ManualClock,
    ttl: Duration,
}

#[async_trait::async_trait]
impl controller::forge::Forge for LeaseLapsesWhileRegistering {
    async fn version(&self) -> Result<controller::forge::ForgeVersion, ForgeError> {
        self.inner.version().await
    }
    async fn list_runners(&self) -> Result<Vec<model::ForgeRunner>, ForgeError> {
        self.inner.list_runners().await
    }
    async fn get_runner(&self, id: i64) -> Result<Option<model::ForgeRunner>, ForgeError> {
        self.inner.get_runner(id).await
    }
    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.inner.delete_runner(id).await
    }
    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.inner.disable_runner(id).await
    }
    async fn registration_token(&self) -> Result<model::secret::Secret, ForgeError> {
        self.inner.registration_token().await
    }
    async fn register_runner(
        &self,
        name: &model::RunnerName,
        labels: &[String],
    ) -> Result<controller::forge::RegisteredRunner, ForgeError> {
        let registered = self.inner.register_runner(name, labels).await;
        self.clock.advance(self.ttl + Duration::from_secs(1));
        self.store
            .acquire_lease(
                "other-controller",
                Duration::from_secs(60),
                self.clock.now(),
            )
            .await
            .expect("the lapsed lease is free");
        registered
    }
    async fn get_job(&self, repo: &str, id: i64) -> Result<model::observed::JobSeen, ForgeError> {
        self.inner.get_job(repo, id).await
    }
    async fn queued_jobs(&self) -> Result<Vec<model::QueuedJob>, ForgeError> {
        self.inner.queued_jobs().await
    }
    async fn workflow_files(
        &self,
        repo: &str,
        commit: &str,
    ) -> Result<Vec<controller::forge::RepoFile>, ForgeError> {
        self.inner.workflow_files(repo, commit).await
    }
    async fn changed_files(
        &self,
        repo: &str,
        before: &str,
        after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        self.inner.changed_files(repo, before, after).await
    }
}

#[tokio::test]
async fn a_lease_lost_in_the_middle_of_a_launch_stops_it_before_ec2_is_called() {
    let mut rig = one_at_a_time();
    rig.r.forge = Arc::new(LeaseLapsesWhileRegistering {
        inner: rig.forge.clone(),
        store: rig.store.clone(),
        clock: rig.clock.clone(),
        ttl: rig.r.limits.lease_ttl,
    });
    for job in 1..=2 {
        rig.store.put_row(job_run(job, &["go"]));
        rig.forge.queue_job(go_job(job));
    }
    let lease = rig.r.acquire().await.expect("lease");
    let out = rig.r.pass(Mode::Apply, Some(&lease)).await;
    let report = out.report.expect("applied");
    assert!(report.lease_lost());
    assert_eq!(rig.forge.calls_to(ForgeMethod::RegisterRunner), 1);
    assert_eq!(rig.fleet.count(FleetOp::Launch), 0, "no RunInstances call");
    let first = report.outcomes[0].result.clone().expect_err("stopped");
    assert_eq!(first.kind(), "lease-lost", "{first:?}");
    let second = report.outcomes[1].result.clone().expect_err("skipped");
    assert_eq!(second, StepError::Skipped(Skip::LeaseLost));
    // The claim stands for whoever holds the lease to find stale; nothing else was written.
    let run = rig.run(&RunId::for_job(1, 1));
    assert_eq!(run.status.phase, Phase::Launching);
    assert_eq!(run.status.instance_id, None);
    assert_eq!(rig.run(&RunId::for_job(2, 1)).status.phase, Phase::Pending);
}

/// A fleet whose launch starts the instance but whose answer never arrives.
struct LaunchAnswerLost(Arc<FakeFleet>);

#[async_trait::async_trait]
impl controller::fleet::Fleet for LaunchAnswerLost {
    async fn list(&self) -> Result<Vec<model::Instance>, FleetError> {
        self.0.list().await
    }
    async fn launch(
        &self,
        req: &controller::fleet::LaunchRequest,
    ) -> Result<(model::Instance, controller::fleet::Offering), FleetError> {
        self.0.launch(req).await?;
        std::future::pending().await
    }
    async fn terminate(&self, ids: &[model::InstanceId]) -> Result<(), FleetError> {
        self.0.terminate(ids).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_launch_whose_outcome_is_unknown_keeps_its_claim_and_the_next_pass_adopts_the_instance() {
    let mut rig = rig();
    rig.r.fleet = Arc::new(LaunchAnswerLost(rig.fleet.clone()));
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.queue_job(go_job(1));
    let out = rig.pass().await;
    let error = out.report.expect("applied").outcomes[0]
        .result
        .clone()
        .expect_err("timed out");
    assert_eq!(error.kind(), "timed-out", "{error:?}");
    let run = rig.run(&RunId::for_job(1, 1));
    assert_eq!(run.status.phase, Phase::Launching, "the claim is kept");
    assert!(run.status.runner_id.is_some(), "and its registration");
    assert_eq!(rig.forge.calls_to(ForgeMethod::DeleteRunner), 0);
    assert_eq!(rig.forge.runners().len(), 1);

    rig.advance(Duration::from_secs(70));
    rig.pass().await;
    let instances = rig.fleet.all_instances();
    assert_eq!(instances.len(), 1, "one instance, never a second");
    let run = rig.run(&RunId::for_job(1, 1));
    assert_eq!(run.status.phase, Phase::Running);
    assert_eq!(run.status.instance_id.as_ref(), Some(&instances[0].id));
}

#[tokio::test]
async fn a_runner_read_by_id_that_fails_leaves_the_view_partial_and_destroys_nothing() {
    // A zombie: registered, offline past the grace, and its registration missing from the
    // listing. Read by id, Gitea's 404 would confirm it gone; a failed read confirms nothing.
    let rig = rig();
    let mut run = model::testing::running(job_run(1, &["go"]), "i-1", T0);
    run.status.registered_at = Some(T0);
    run.status.runner_id = Some(41);
    run.status.offline_since = Some(T0);
    rig.put_running(&run, "i-1");
    rig.advance(Duration::from_secs(30 * 60));
    rig.forge.fail_next(
        ForgeMethod::GetRunner,
        ForgeError::Unavailable("connection reset".into()),
    );
    let out = rig.pass().await;
    assert_eq!(rig.forge.calls_to(ForgeMethod::GetRunner), 1);
    assert!(
        !out.observation.is_complete(),
        "{:?}",
        out.observation.errors
    );
    assert!(
        !out.plan.actions.iter().any(Action::is_destructive),
        "{:#?}",
        out.plan.actions
    );
    assert_eq!(rig.fleet.count(FleetOp::Terminate), 0);

    // Read again, Gitea answers 404: the zombie goes.
    let out = rig.pass().await;
    assert!(
        out.observation.is_complete(),
        "{:?}",
        out.observation.errors
    );
    assert_eq!(
        rig.fleet.count(FleetOp::Terminate),
        1,
        "{:#?}",
        out.plan.actions
    );
}

#[tokio::test]
async fn jobs_missing_from_the_queued_list_are_read_at_most_256_a_pass_and_the_rest_wait() {
    let rig = rig();
    let n = controller::reconcile::MAX_JOB_READS + 1;
    for job in 1..=i64::try_from(n).expect("small") {
        rig.store.put_row(job_run(job, &["go"]));
    }
    let out = rig.r.pass(Mode::DryRun, None).await;
    assert_eq!(
        rig.forge.calls_to(ForgeMethod::GetJob),
        controller::reconcile::MAX_JOB_READS
    );
    let read = out.observation.observed.jobs_read.len();
    assert_eq!(read, controller::reconcile::MAX_JOB_READS);
    let decided: std::collections::BTreeSet<_> =
        out.plan.actions.iter().filter_map(Action::run).collect();
    assert_eq!(
        decided.len(),
        read,
        "only runs whose job was read: {decided:?}"
    );
}

#[tokio::test]
async fn an_orphans_runner_that_took_a_job_since_the_plan_keeps_its_machine() {
    // Gitea 1.24/1.25. An operator deleted the run's row; its machine and idle runner are
    // an orphan. The plan deletes the registration (guarded) and then terminates the machine;
    // the runner takes a job in between. The delete finds it busy and the terminate, carried
    // out after it as a step of the same run, is skipped: the job runs on.
    let rig = rig();
    let run = model::testing::running(job_run(1, &["go"]), "i-1", T0);
    rig.fleet.insert(model::testing::instance_for(
        &run,
        "i-1",
        "go",
        InstanceState::Running,
        T0,
    ));
    let name = model::testing::name_of(&run);
    let id = rig.forge.add_runner(name.as_str(), &["go", "linux"], true);
    rig.advance(Duration::from_secs(20 * 60));
    let out = rig.r.pass(Mode::DryRun, None).await;
    let steps: Vec<String> = out.plan.actions.iter().map(ToString::to_string).collect();
    assert!(
        matches!(
            &out.plan.actions[..],
            [Action::Deregister { run: Some(a), .. }, Action::Terminate { run: Some(b), .. }]
                if *a == run.id && *b == run.id
        ),
        "{steps:#?}"
    );
    rig.forge.set_busy(id, true);
    let lease = rig.r.acquire().await.expect("lease");
    let report = rig
        .r
        .apply(&out.plan, &out.observation.desired, &lease)
        .await;
    rig.r.release(&lease).await;
    assert_eq!(report.failures(), 2, "{:?}", report.outcomes);
    assert!(rig.forge.runner(id).is_some(), "still registered");
    assert_eq!(rig.fleet.count(FleetOp::Terminate), 0);
    assert_eq!(
        rig.state_of("i-1"),
        Some(InstanceState::Running),
        "its machine runs on"
    );
}

#[tokio::test]
async fn reconcile_once_reads_the_waiting_notices_before_its_pass() {
    use controller::cmd::reconcile::{drain_then_once, ReconcileArgs};
    use controller::notices::fake::{ec2_event, FakeQueue};
    use controller::notices::NoticeReceiver;
    // A run whose runner is online and idle while its own job waits: nothing to do, until
    // EC2 warns that the machine will be reclaimed.
    let rig = rig();
    let mut run = model::testing::running(job_run(1, &["go"]), "i-1", T0);
    run.status.registered_at = Some(T0);
    rig.put_running(&run, "i-1");
    rig.forge.add_runner(
        model::testing::name_of(&run).as_str(),
        &["go", "linux"],
        true,
    );
    rig.forge.queue_job(go_job(1));
    rig.advance(Duration::from_secs(60));
    let args = ReconcileArgs {
        config: "unused.yaml".into(),
        once: true,
        dry_run: true,
        output: controller::cmd::output::Output::Json,
        detailed_exitcode: true,
    };
    let quiet = drain_then_once(None, &rig.r, &args).await.expect("once");
    assert_eq!(quiet, std::process::ExitCode::SUCCESS, "nothing planned");

    let queue = FakeQueue::holding(&[ec2_event(model::notice::INTERRUPTION_WARNING, "i-1")]);
    let receiver = NoticeReceiver::new(queue.clone(), rig.r.notices.clone());
    let warned = drain_then_once(Some(&receiver), &rig.r, &args)
        .await
        .expect("once");
    assert_eq!(
        warned,
        std::process::ExitCode::from(2),
        "the warning was planned on"
    );
    assert!(queue.is_empty(), "the message was deleted");
    let out = rig.r.pass(Mode::DryRun, None).await;
    assert!(
        out.plan.actions.iter().any(|a| matches!(
            a,
            Action::Deregister {
                reason: model::Reason::Notice { .. },
                ..
            }
        )),
        "{:#?}",
        out.plan.actions
    );
}
