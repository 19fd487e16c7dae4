//! `tinqs-ci status` and `tinqs-ci doctor` over the stateful fakes and an in-memory EC2.
//!
//! The AWS half of `doctor` against moto is in `doctor_aws.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::operation::describe_images::builders::DescribeImagesInputBuilder;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesInputBuilder;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesInputBuilder;
use aws_sdk_ec2::operation::run_instances::RunInstancesOutput;
use aws_sdk_ec2::operation::terminate_instances::builders::TerminateInstancesInputBuilder;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::{
    Image, Instance as SdkInstance, InstanceState as SdkState, InstanceStateName, Reservation,
    ResourceType, Tag,
};
use controller::aws::ApiError;
use controller::clock::ManualClock;
use controller::cmd::doctor::{self, Check, Verdict};
use controller::cmd::status::{self, Problem};
use controller::fleet::ec2::Ec2Api;
use controller::fleet::fake::{FakeFleet, FleetOp};
use controller::forge::fake::ForgeMethod;
use controller::forge::{FakeForge, ForgeError, ForgeVersion};
use controller::metrics::Metrics;
use controller::reconcile::{Limits, LoopFeatures, Reconciler};
use controller::store::fake::{FakeStore, StoreOp};
use model::config::{Config, DemandSource, RunnerScope};
use model::testing::{at, instance_for, job_run, name_of, running, T0};
use model::{InstanceState, RunId};

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

// ---- status ------------------------------------------------------------------------------

struct Rig {
    store: Arc<FakeStore>,
    fleet: Arc<FakeFleet>,
    forge: Arc<FakeForge>,
    r: Reconciler,
}

fn rig(now: model::Timestamp) -> Rig {
    let config = config();
    let store = Arc::new(FakeStore::new());
    let fleet = Arc::new(FakeFleet::new(&config.cluster_id, now));
    let forge = Arc::new(FakeForge::new());
    let r = Reconciler {
        store: store.clone(),
        fleet: fleet.clone(),
        forge: forge.clone(),
        config,
        features: LoopFeatures {
            queued_jobs: true,
            disable_runners: true,
        },
        clock: Arc::new(ManualClock::new(now)),
        limits: Limits {
            call_timeout: Duration::from_secs(5),
            ..Limits::default()
        },
        metrics: Metrics::new(),
        holder: "status-test".into(),
        notices: controller::notices::NoticeBook::default(),
        disabled: controller::reconcile::DisabledBook::default(),
    };
    Rig {
        store,
        fleet,
        forge,
        r,
    }
}

fn pool<'s>(s: &'s status::Status, name: &str) -> &'s status::PoolStatus {
    s.pools.iter().find(|p| p.pool == name).expect("pool row")
}

#[tokio::test]
async fn status_counts_each_pool_and_changes_nothing_anywhere() {
    let rig = rig(at(120));
    let busy = running(job_run(1, &["go"]), "i-busy", T0);
    rig.store.put_row(busy.clone());
    rig.store.put_row(job_run(2, &["go"]));
    rig.store.put_row(job_run(3, &["gpu"]));
    rig.fleet.insert(instance_for(
        &busy,
        "i-busy",
        "go",
        InstanceState::Running,
        T0,
    ));
    let id = rig
        .forge
        .add_runner(name_of(&busy).as_str(), &["go", "linux"], true);
    rig.forge.set_busy(id, true);
    rig.forge.queue_job(model::testing::queued(2, &["go"]));
    rig.forge.queue_job(model::testing::queued(3, &["gpu"]));

    let s = status::observe(&rig.r).await;

    let go = pool(&s, "go");
    assert_eq!(
        (
            go.runs,
            go.pending,
            go.instances,
            go.busy_runners,
            go.idle_runners
        ),
        (2, 1, 1, 1, 0)
    );
    assert_eq!(pool(&s, "docker").runs, 0);
    assert_eq!(pool(&s, status::NO_POOL).runs, 1, "the gpu run");
    assert_eq!(
        s.problems,
        vec![Problem::Unschedulable {
            run: RunId::for_job(3, 1),
            labels: vec!["gpu".into()],
        }]
    );
    assert_eq!(s.planned.get("launch"), Some(&1));

    // Nothing was written, launched, terminated, registered or deleted; no lease was taken.
    for op in [
        StoreOp::Create,
        StoreOp::SetJobState,
        StoreOp::SetCancel,
        StoreOp::WriteStatus,
        StoreOp::AcquireLease,
    ] {
        assert_eq!(rig.store.count(op), 0, "{op:?}");
    }
    assert_eq!(rig.fleet.count(FleetOp::Launch), 0);
    assert_eq!(rig.fleet.count(FleetOp::Terminate), 0);
    for m in [
        ForgeMethod::RegisterRunner,
        ForgeMethod::DeleteRunner,
        ForgeMethod::DisableRunner,
        ForgeMethod::RegistrationToken,
    ] {
        assert_eq!(rig.forge.calls_to(m), 0, "{m:?}");
    }
    assert_eq!(rig.store.runs().len(), 3);
    assert_eq!(rig.fleet.live().len(), 1);
}

#[tokio::test]
async fn status_names_the_source_it_could_not_read_and_the_withheld_actions() {
    let rig = rig(at(60));
    rig.store.put_row(job_run(1, &["go"]));
    rig.forge.fail_next(
        ForgeMethod::ListRunners,
        ForgeError::Unavailable("connection refused".into()),
    );
    let s = status::observe(&rig.r).await;
    assert!(!s.healthy);
    assert!(
        matches!(
            &s.problems[0],
            Problem::ObservationError { source, error }
                if source == "gitea runners" && error.contains("connection refused")
        ),
        "{:?}",
        s.problems
    );
    assert!(s
        .problems
        .iter()
        .any(|p| matches!(p, Problem::Withheld { .. })));
    let t = status::text(&s);
    assert!(t.contains("! could not observe gitea runners"), "{t}");
}

#[tokio::test]
async fn status_lists_invalid_rows_and_aging_instances() {
    let rig = rig(at(4 * 3600));
    let old = running(job_run(1, &["docker"]), "i-old", T0);
    rig.store.put_row(old.clone());
    rig.store
        .insert_invalid("job-77-1", "attribute `attempt`: not a number");
    rig.fleet.insert(instance_for(
        &old,
        "i-old",
        "docker",
        InstanceState::Running,
        T0,
    ));
    let id = rig
        .forge
        .add_runner(name_of(&old).as_str(), &["docker"], true);
    rig.forge.set_busy(id, true);
    let s = status::observe(&rig.r).await;
    let text = status::text(&s);
    assert!(
        text.contains("! invalid row job-77-1: attribute `attempt`: not a number"),
        "{text}"
    );
    assert!(
        text.contains("! instance i-old in pool docker is 4h old (max lifetime 3h)"),
        "{text}"
    );
}

// ---- doctor: configuration and secrets -------------------------------------------------

#[tokio::test]
async fn doctor_stops_at_an_invalid_configuration_and_names_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "cluster_id: Bad_Id\ngitea: {url: http://127.0.0.1:1}\nstore: {table: t}\npools: {}\n",
    )
    .expect("write");
    let checks = doctor::diagnose(&path, &|_| None, &controller::clock::SystemClock).await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert!(checks[0].is_problem());
    assert!(checks[0].detail.contains("cluster_id"), "{:?}", checks[0]);
    assert_eq!(checks[1].verdict, Verdict::Skipped);
    assert!(!doctor::all_passed(&checks));
}

#[test]
fn doctor_reports_missing_secrets_and_never_prints_their_values() {
    let config = config();
    let env: BTreeMap<&str, &str> = BTreeMap::from([("GITEA_TOKEN", "tok-0123456789-secret")]);
    let lookup = |var: &str| env.get(var).map(|v| (*v).to_owned());
    let checks = doctor::check_secrets(&config, &lookup);
    assert_eq!(checks[0].verdict, Verdict::Ok, "{checks:?}");
    assert!(checks[1].is_problem());
    assert!(checks[1]
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("GITEA_WEBHOOK_SECRET")));
    let printed = doctor::text(&checks);
    assert!(!printed.contains("tok-0123456789-secret"), "{printed}");

    let short = |var: &str| Some(if var == "GITEA_TOKEN" { "t" } else { "short" }.to_owned());
    let checks = doctor::check_secrets(&config, &short);
    assert!(
        checks[1].is_problem() && checks[1].detail.contains("5 characters"),
        "{checks:?}"
    );
    assert!(!doctor::text(&checks).contains("short\n"));
}

// ---- doctor: Gitea -------------------------------------------------------------------------

fn names(checks: &[Check]) -> Vec<(&str, Verdict)> {
    checks
        .iter()
        .map(|c| (c.name.as_str(), c.verdict))
        .collect()
}

#[tokio::test]
async fn doctor_passes_a_current_gitea_whose_token_can_do_everything() {
    let forge = FakeForge::new();
    forge.add_runner("tq-test-job-1-1-a1", &["go"], true);
    forge.add_runner("standing", &["host"], false);
    let checks = doctor::check_gitea(&forge, &config()).await;
    assert_eq!(
        names(&checks),
        [
            ("gitea version", Verdict::Ok),
            ("gitea features", Verdict::Ok),
            ("gitea token: list runners", Verdict::Ok),
            ("gitea token: registration token", Verdict::Ok),
            ("gitea token: queued jobs", Verdict::Ok),
        ]
    );
    assert!(checks[0].detail.contains("Gitea 1.26.4"));
    assert!(
        checks[2].detail.contains("2 runners, 1 of this cluster"),
        "{:?}",
        checks[2]
    );
    assert!(!doctor::text(&checks).contains(&forge.registration_token_value()));
}

#[tokio::test]
async fn doctor_refuses_a_gitea_older_than_the_runner_api() {
    let forge = FakeForge::with_version(ForgeVersion {
        major: 1,
        minor: 23,
        patch: 5,
    });
    let checks = doctor::check_gitea(&forge, &config()).await;
    let problem = checks.iter().find(|c| c.is_problem()).expect("a problem");
    assert_eq!(problem.name, "gitea features");
    assert_eq!(
        problem.fix.as_deref(),
        Some("upgrade Gitea to 1.24.0 or later")
    );
    assert_eq!(forge.calls_to(ForgeMethod::ListRunners), 0);
}

#[tokio::test]
async fn doctor_explains_what_jobs_mode_lacks_on_gitea_1_24() {
    let forge = FakeForge::with_version(ForgeVersion {
        major: 1,
        minor: 24,
        patch: 0,
    });
    let checks = doctor::check_gitea(&forge, &config()).await;
    assert!(doctor::all_passed(&checks), "{checks:?}");
    let features = &checks[1];
    assert!(
        features.detail.contains("without backfill") && features.detail.contains("1.25"),
        "{features:?}"
    );
    assert!(!checks.iter().any(|c| c.name == "gitea token: queued jobs"));
    assert_eq!(forge.calls_to(ForgeMethod::QueuedJobs), 0);

    let mut push = config();
    push.gitea.demand = DemandSource::Push;
    let checks = doctor::check_gitea(&forge, &push).await;
    assert!(checks[1].detail.contains("Demand `push` is supported"));
}

#[tokio::test]
async fn doctor_explains_a_token_without_the_scope_it_needs() {
    let forge = FakeForge::new();
    forge.fail_always(
        ForgeMethod::ListRunners,
        ForgeError::Forbidden("token does not have at least one of required scope(s)".into()),
    );
    let mut c = config();
    c.gitea.scope = RunnerScope::Org("acme".into());
    let checks = doctor::check_gitea(&forge, &c).await;
    let problem = checks
        .iter()
        .find(|c| c.name == "gitea token: list runners")
        .expect("check");
    assert!(problem.is_problem());
    let fix = problem.fix.as_deref().expect("fix");
    assert!(
        fix.contains("owner of organization acme") && fix.contains("write:organization"),
        "{fix}"
    );
}

#[tokio::test]
async fn doctor_says_a_repo_scope_needs_the_repository_owner_on_a_403() {
    let forge = FakeForge::new();
    forge.fail_always(
        ForgeMethod::RegistrationToken,
        ForgeError::Forbidden(
            "POST /api/v1/repos/acme/app/actions/runners/registration-token: HTTP 403: \
             user should be the owner of the repo"
                .into(),
        ),
    );
    forge.fail_always(
        ForgeMethod::QueuedJobs,
        ForgeError::Forbidden("GET /api/v1/repos/acme/app/actions/jobs: HTTP 403".into()),
    );
    let mut c = config();
    c.gitea.scope = RunnerScope::Repo {
        owner: "acme".into(),
        name: "app".into(),
    };
    let checks = doctor::check_gitea(&forge, &c).await;
    assert_eq!(
        names(&checks),
        [
            ("gitea version", Verdict::Ok),
            ("gitea features", Verdict::Ok),
            ("gitea token: list runners", Verdict::Ok),
            ("gitea token: registration token", Verdict::Problem),
            ("gitea token: queued jobs", Verdict::Problem),
        ]
    );
    let token = checks[3].fix.as_deref().expect("fix");
    assert!(
        token.starts_with("the token's user lacks the role"),
        "{token}"
    );
    assert!(
        token.contains("the owner of acme/app")
            && token.contains("an owner of organization acme")
            && token.contains("site administrator")
            && token.contains("a repository administrator (collaborator) is not enough")
            && token.contains("write:repository"),
        "{token}"
    );
    // Gitea 1.26 lets any reader of the repository's Actions list its jobs.
    let jobs = checks[4].fix.as_deref().expect("fix");
    assert!(
        jobs.contains("may read the Actions of acme/app") && jobs.contains("read:repository"),
        "{jobs}"
    );
    let printed = doctor::text(&checks);
    assert!(!printed.contains(&forge.registration_token_value()));
}

#[tokio::test]
async fn doctor_explains_a_refused_token_by_its_variable() {
    let forge = FakeForge::new();
    forge.fail_always(
        ForgeMethod::RegistrationToken,
        ForgeError::Unauthorized("invalid token".into()),
    );
    let checks = doctor::check_gitea(&forge, &config()).await;
    let problem = checks.iter().find(|c| c.is_problem()).expect("a problem");
    assert_eq!(problem.name, "gitea token: registration token");
    let fix = problem.fix.as_deref().expect("fix");
    assert!(
        fix.contains("GITEA_TOKEN") && fix.contains("write:admin"),
        "{fix}"
    );
}

#[tokio::test]
async fn doctor_reports_an_unreachable_gitea_and_skips_the_rest() {
    let forge = FakeForge::new();
    forge.fail_always(
        ForgeMethod::Version,
        ForgeError::Unavailable("connection refused".into()),
    );
    let checks = doctor::check_gitea(&forge, &config()).await;
    assert_eq!(
        names(&checks),
        [
            ("gitea version", Verdict::Problem),
            ("gitea features and token", Verdict::Skipped)
        ]
    );
    assert!(checks[0]
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("http://127.0.0.1:3000")));
}

// ---- doctor: EC2 -----------------------------------------------------------------------------

/// An EC2 that answers from a script and records what it was asked.
#[derive(Default)]
struct ScriptedEc2 {
    /// Instances DescribeInstances lists: (id, cluster tag).
    instances: Vec<(String, String)>,
    /// AMIs that exist.
    images: Vec<String>,
    /// The error code RunInstances answers with (`None`: it launches, ignoring DryRun).
    run_answer: Option<String>,
    /// The error code DescribeInstances answers with.
    describe_error: Option<String>,
    runs: Mutex<Vec<RunInstancesInputBuilder>>,
    terminates: Mutex<Vec<(Vec<String>, bool)>>,
}

#[async_trait]
impl Ec2Api for ScriptedEc2 {
    async fn describe_instances(
        &self,
        _input: DescribeInstancesInputBuilder,
    ) -> Result<DescribeInstancesOutput, ApiError> {
        if let Some(code) = &self.describe_error {
            return Err(ApiError::service(
                code,
                "You are not authorized to perform this operation.",
            ));
        }
        let instances = self
            .instances
            .iter()
            .map(|(id, cluster)| {
                SdkInstance::builder()
                    .instance_id(id)
                    .state(SdkState::builder().name(InstanceStateName::Running).build())
                    .launch_time(aws_smithy_types::DateTime::from_millis(T0.as_millis()))
                    .tags(
                        Tag::builder()
                            .key("tinqs-ci:cluster")
                            .value(cluster)
                            .build(),
                    )
                    .build()
            })
            .collect();
        Ok(DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .set_instances(Some(instances))
                    .build(),
            )
            .build())
    }

    async fn run_instances(
        &self,
        input: RunInstancesInputBuilder,
    ) -> Result<RunInstancesOutput, ApiError> {
        self.runs.lock().expect("lock").push(input);
        match &self.run_answer {
            Some(code) => Err(ApiError::service(code, "scripted answer")),
            None => Ok(RunInstancesOutput::builder()
                .instances(SdkInstance::builder().instance_id("i-started").build())
                .build()),
        }
    }

    async fn terminate_instances(
        &self,
        input: TerminateInstancesInputBuilder,
    ) -> Result<TerminateInstancesOutput, ApiError> {
        let dry = input.get_dry_run().unwrap_or(false);
        self.terminates
            .lock()
            .expect("lock")
            .push((input.get_instance_ids().clone().unwrap_or_default(), dry));
        if dry {
            return Err(ApiError::service(
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            ));
        }
        Ok(TerminateInstancesOutput::builder().build())
    }

    async fn describe_images(
        &self,
        input: DescribeImagesInputBuilder,
    ) -> Result<DescribeImagesOutput, ApiError> {
        let wanted = input.get_image_ids().clone().unwrap_or_default();
        let images = wanted
            .iter()
            .filter(|id| self.images.contains(id))
            .map(|id| {
                Image::builder()
                    .image_id(id)
                    .root_device_name("/dev/xvda")
                    .build()
            })
            .collect();
        Ok(DescribeImagesOutput::builder()
            .set_images(Some(images))
            .build())
    }
}

fn scripted() -> ScriptedEc2 {
    ScriptedEc2 {
        instances: vec![
            ("i-theirs".into(), "someone-else".into()),
            ("i-ours".into(), "test".into()),
        ],
        images: vec!["ami-0123456789abcdef0".into()],
        run_answer: Some("DryRunOperation".into()),
        ..ScriptedEc2::default()
    }
}

#[tokio::test]
async fn doctor_dry_runs_a_tagged_launch_per_pool_and_a_terminate_on_our_instance_only() {
    let ec2 = scripted();
    let checks = doctor::check_ec2(&ec2, &config()).await;
    assert_eq!(
        names(&checks),
        [
            ("ec2 DescribeInstances", Verdict::Ok),
            ("ec2 AMI (pool docker)", Verdict::Ok),
            ("ec2 RunInstances (pool docker)", Verdict::Ok),
            ("ec2 AMI (pool go)", Verdict::Ok),
            ("ec2 RunInstances (pool go)", Verdict::Ok),
            ("ec2 TerminateInstances", Verdict::Ok),
        ]
    );
    let runs = ec2.runs.lock().expect("lock");
    assert_eq!(runs.len(), 2);
    for run in runs.iter() {
        assert_eq!(run.get_dry_run(), &Some(true), "every launch is a dry run");
        let specs = run.get_tag_specifications().clone().unwrap_or_default();
        for kind in [ResourceType::Instance, ResourceType::Volume] {
            let spec = specs
                .iter()
                .find(|s| s.resource_type() == Some(&kind))
                .expect("tag spec");
            assert!(spec
                .tags()
                .iter()
                .any(|t| t.key() == Some("tinqs-ci:cluster") && t.value() == Some("test")));
        }
    }
    assert_eq!(
        runs[1].get_instance_type().as_ref().map(|t| t.as_str()),
        Some("c7a.large")
    );
    assert_eq!(runs[1].get_subnet_id().as_deref(), Some("subnet-0a1b2c3d"));
    assert_eq!(
        *ec2.terminates.lock().expect("lock"),
        vec![(vec!["i-ours".to_owned()], true)],
        "only our instance, only a dry run"
    );
}

#[tokio::test]
async fn doctor_names_the_missing_permission_when_ec2_refuses_a_launch() {
    let ec2 = ScriptedEc2 {
        run_answer: Some("UnauthorizedOperation".into()),
        ..scripted()
    };
    let checks = doctor::check_ec2(&ec2, &config()).await;
    let docker = checks
        .iter()
        .find(|c| c.name == "ec2 RunInstances (pool docker)")
        .expect("check");
    assert!(docker.is_problem());
    let fix = docker.fix.as_deref().expect("fix");
    assert!(
        fix.contains("ec2:RunInstances")
            && fix.contains("tinqs-ci:cluster = test")
            && fix.contains("iam:PassRole")
            && fix.contains("DevOps-Reference"),
        "{fix}"
    );
    let go = checks
        .iter()
        .find(|c| c.name == "ec2 RunInstances (pool go)")
        .expect("check");
    assert!(
        !go.fix.as_deref().unwrap_or_default().contains("PassRole"),
        "go has no instance profile"
    );
}

#[tokio::test]
async fn doctor_reports_an_ami_that_does_not_exist_and_launches_nothing_for_it() {
    let ec2 = ScriptedEc2 {
        images: vec![],
        ..scripted()
    };
    let checks = doctor::check_ec2(&ec2, &config()).await;
    let ami = checks
        .iter()
        .find(|c| c.name == "ec2 AMI (pool go)")
        .expect("check");
    assert!(ami.is_problem());
    assert!(ami
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("pools.go.ami")));
    assert!(ec2.runs.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn doctor_stops_at_refused_credentials_and_skips_launch_checks() {
    let ec2 = ScriptedEc2 {
        describe_error: Some("AuthFailure".into()),
        ..scripted()
    };
    let checks = doctor::check_ec2(&ec2, &config()).await;
    assert_eq!(
        names(&checks),
        [
            ("ec2 DescribeInstances", Verdict::Problem),
            ("ec2 launch and terminate", Verdict::Skipped)
        ]
    );
    assert!(checks[0]
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("invalid or expired")));
}

#[tokio::test]
async fn doctor_terminates_at_once_what_an_endpoint_launched_despite_dry_run() {
    let ec2 = ScriptedEc2 {
        run_answer: None,
        instances: vec![],
        ..scripted()
    };
    let mut c = config();
    c.pools.retain(|name, _| name == "go");
    let checks = doctor::check_ec2(&ec2, &c).await;
    let launch = checks
        .iter()
        .find(|c| c.name == "ec2 RunInstances (pool go)")
        .expect("check");
    assert!(
        launch.is_problem() && launch.detail.contains("i-started"),
        "{launch:?}"
    );
    assert_eq!(
        *ec2.terminates.lock().expect("lock"),
        vec![(vec!["i-started".to_owned()], false)]
    );
    assert_eq!(
        checks.last().map(|c| (c.name.as_str(), c.verdict)),
        Some(("ec2 TerminateInstances", Verdict::Skipped))
    );
}

// ---- the queued-to-started histogram, fed by the webhook receiver ---------------------------

async fn post_job_event(url: &str, secret: &model::secret::Secret, body: &str) -> u16 {
    let signature = controller::webhook::sign(secret, body.as_bytes());
    reqwest::Client::new()
        .post(url)
        .header("X-Gitea-Event", "workflow_job")
        .header("X-Gitea-Signature", signature)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post")
        .status()
        .as_u16()
}

fn job_event(id: i64, action: &str, created: &str, started: &str) -> String {
    serde_json::json!({
        "action": action,
        "workflow_job": {
            "id": id, "run_id": 1, "run_attempt": 1, "name": "build", "labels": ["go"],
            "runner_name": "tq-test-job-1-1-a1",
            "created_at": created, "started_at": started
        },
        "repository": {"full_name": "acme/app"}
    })
    .to_string()
}

#[tokio::test]
async fn an_in_progress_webhook_records_the_wait_from_created_to_started() {
    let store = Arc::new(FakeStore::new());
    let spool_dir = tempfile::tempdir().expect("tempdir");
    let spool =
        Arc::new(controller::spool::Spool::open(spool_dir.path().join("spool")).expect("spool"));
    let secret = model::secret::Secret::new("metrics-test-secret");
    let metrics = Metrics::new();
    let state = controller::webhook::WebhookState::new(
        store.clone(),
        secret.clone(),
        DemandSource::Jobs,
        Arc::new(tokio::sync::Notify::new()),
        spool,
        None,
    )
    .expect("state")
    .with_metrics(metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}{}",
        listener.local_addr().expect("addr"),
        controller::webhook::HOOK_PATH
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, controller::webhook::router(state)).await;
    });

    // Queued: no observation. In progress: 42 s, once with UTC, once with Gitea's local offset
    // (+02:00: 10:00:30 local is 08:00:30 UTC, 12 s after 08:00:18Z).
    let queued = job_event(1, "queued", "2026-01-01T08:00:00Z", "0001-01-01T00:00:00Z");
    assert_eq!(post_job_event(&url, &secret, &queued).await, 200);
    let started = job_event(
        1,
        "in_progress",
        "2026-01-01T08:00:00Z",
        "2026-01-01T08:00:42Z",
    );
    assert_eq!(post_job_event(&url, &secret, &started).await, 200);
    let offset = job_event(
        2,
        "in_progress",
        "2026-01-01T08:00:18Z",
        "2026-01-01T10:00:30+02:00",
    );
    assert_eq!(post_job_event(&url, &secret, &offset).await, 200);
    // A job that never started (Go's zero time) is not observed.
    let zero = job_event(
        3,
        "in_progress",
        "2026-01-01T08:00:00Z",
        "0001-01-01T00:00:00Z",
    );
    assert_eq!(post_job_event(&url, &secret, &zero).await, 200);

    let text = metrics.render();
    assert!(
        text.contains("tinqs_queued_to_started_seconds_count 2"),
        "{text}"
    );
    assert!(
        text.contains("tinqs_queued_to_started_seconds_sum 54.0"),
        "{text}"
    );
    assert!(
        text.contains("tinqs_queued_to_started_seconds_bucket{le=\"15.0\"} 1"),
        "{text}"
    );
}
