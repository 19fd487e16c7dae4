//! Released Gitea orders its runner list by last contact alone, so paging through a long list
//! can skip a row while looking whole. No destructive action may rest on such an absence:
//! the reconciler's observation, with the real Gitea client against the simulator on 1.26.4
//! (ties shuffled on every page request), must still see every runner of ours that is alive.

use std::sync::Arc;
use std::time::Duration;

use controller::clock::ManualClock;
use controller::fleet::fake::FakeFleet;
use controller::forge::{GiteaForge, GiteaOptions};
use controller::metrics::Metrics;
use controller::reconcile::{Limits, LoopFeatures, Reconciler};
use controller::store::fake::FakeStore;
use gitea_sim::{Faults, RunnerFile, RunnerSpec, SimConfig, Simulator};
use model::config::{Config, DemandSource, GiteaConfig, RegistrationMode, RunnerScope};
use model::desired::JobState;
use model::secret::Secret;
use model::testing::{at, instance_for, job_run, name_of, running, CLUSTER, T0};
use model::{tags, Action, InstanceState, Policy};

const OURS: usize = 300;
const STRANGERS: usize = 200;

fn config(url: String) -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config.yaml"
    ))
    .expect("example config");
    let mut c = Config::parse(&text).expect("valid");
    c.cluster_id = CLUSTER.into();
    c.gitea = GiteaConfig {
        url,
        token_env: "GITEA_TOKEN".into(),
        webhook_secret_env: "GITEA_WEBHOOK_SECRET".into(),
        scope: RunnerScope::Instance,
        demand: DemandSource::Jobs,
        registration: RegistrationMode::Preregister,
    };
    c
}

/// Contacts Gitea once as the runner of `file` (the runner RPC `Declare`): it is online from
/// then on, for a minute, with a last contact in the same second as its neighbours'.
async fn declare(http: &reqwest::Client, base: &str, file: &RunnerFile) {
    let url = format!("{base}/api/actions/runner.v1.RunnerService/Declare");
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-runner-uuid", &file.uuid)
        .header("x-runner-token", &file.token)
        .body(serde_json::json!({"version": "test", "labels": file.labels}).to_string())
        .send()
        .await
        .expect("declares");
    assert!(answer.status().is_success(), "{}", answer.status());
}

#[tokio::test]
async fn no_live_runner_is_removed_when_a_paged_listing_skips_it() {
    let sim = Simulator::start(SimConfig::default().version("1.26.4"))
        .await
        .expect("simulator starts");
    sim.set_faults(Faults {
        order_seed: Some(7),
        ..Faults::default()
    });
    let config = config(sim.base_url());
    let store = Arc::new(FakeStore::new());
    let fleet = Arc::new(FakeFleet::new(CLUSTER, at(600)));
    let http = reqwest::Client::new();

    // 200 registrations of others that never connected (last contact 0: all tie) ...
    for n in 0..STRANGERS {
        sim.create_runner(RunnerSpec::new(format!("other-{n:03}"), &["go"]))
            .expect("creates");
    }
    // ... and 300 runners of ours, each running its job: online, all in the same second.
    for n in 1..=OURS {
        let job = i64::try_from(n).expect("small");
        let mut run = running(job_run(job, &["go"]), &format!("i-{n:04}"), T0);
        let file = sim
            .create_runner(
                RunnerSpec::new(name_of(&run).as_str(), &["go", "linux"]).ephemeral(true),
            )
            .expect("creates");
        declare(&http, &sim.base_url(), &file).await;
        run.status.runner_id = Some(file.id);
        run.status.registered_at = Some(at(60));
        // Seen offline four minutes ago: if it looked missing now, it would count as a zombie.
        run.status.offline_since = Some(at(360));
        run.spec.job_state = JobState::InProgress {
            runner: Some(name_of(&run).to_string()),
        };
        let mut instance =
            instance_for(&run, &format!("i-{n:04}"), "go", InstanceState::Running, T0);
        if n % 2 == 0 {
            // Half carry their registration's id; the other half are found by name alone.
            instance
                .tags
                .insert(tags::RUNNER_ID.into(), file.id.to_string());
        }
        fleet.insert(instance);
        store.put_row(run);
    }

    let forge = GiteaForge::with_options(
        &config.gitea,
        Secret::new(sim.admin_token()),
        GiteaOptions {
            timeout: Duration::from_secs(5),
            ..GiteaOptions::default()
        },
    )
    .expect("client builds");
    let policy = Policy::from_config(&config, true);
    let r = Reconciler {
        store,
        fleet,
        forge: Arc::new(forge),
        config,
        features: LoopFeatures {
            queued_jobs: true,
            disable_runners: true,
        },
        clock: Arc::new(ManualClock::new(at(600))),
        limits: Limits {
            call_timeout: Duration::from_secs(10),
            ..Limits::default()
        },
        metrics: Metrics::new(),
        holder: "paging-test".into(),
        notices: controller::notices::NoticeBook::default(),
        disabled: controller::reconcile::DisabledBook::default(),
    };

    for round in 0..3 {
        let obs = r.observe().await;
        assert!(obs.is_complete(), "round {round}: {:?}", obs.errors);
        let ours_seen = obs
            .observed
            .runners
            .items()
            .iter()
            .filter(|g| g.name.starts_with(&model::RunnerName::prefix(CLUSTER)) && g.online)
            .count();
        assert_eq!(
            ours_seen, OURS,
            "round {round}: every live runner of ours is seen"
        );
        let plan = model::plan(&obs.desired, &obs.observed, &policy, at(600));
        let destructive: Vec<String> = plan
            .actions
            .iter()
            .filter(|a| a.is_destructive())
            .map(ToString::to_string)
            .collect();
        assert!(destructive.is_empty(), "round {round}: {destructive:#?}");
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, Action::Launch { .. })),
            "round {round}: nothing to launch"
        );
    }
    sim.shutdown().await;
}
