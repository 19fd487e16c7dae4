//! `GiteaForge` against the Gitea simulator on 127.0.0.1: every call, paging, scopes, push-mode
//! reads and error classification. The forge port's contract clauses are the shared suite in
//! `tests/contract/forge.rs` (`forge_port::*` here), which the tests' fake passes too
//! (`tests/forge_contract.rs`).

use std::time::Duration;

use controller::forge::{Forge, ForgeError, ForgeVersion, GiteaForge, GiteaOptions};
use gitea_sim::{
    Agent, AgentConfig, AgentOutcome, ApiDelayFault, ApiErrorFault, CommitSpec, FaultMatch, Faults,
    FileChange, JobPhase, JobSpec, PushSpec, RunnerFile, RunnerSpec, Scope, SimConfig, SimHandle,
    Simulator,
};
use model::config::{DemandSource, GiteaConfig, RegistrationMode, RunnerScope};
use model::secret::Secret;
use model::RunnerName;

fn config(sim: &SimHandle, scope: RunnerScope, demand: DemandSource) -> GiteaConfig {
    GiteaConfig {
        url: sim.base_url(),
        token_env: "GITEA_TOKEN".into(),
        webhook_secret_env: "GITEA_WEBHOOK_SECRET".into(),
        scope,
        demand,
        registration: RegistrationMode::Preregister,
    }
}

fn options() -> GiteaOptions {
    GiteaOptions {
        timeout: Duration::from_millis(800),
        ..GiteaOptions::default()
    }
}

fn forge_at(sim: &SimHandle, scope: RunnerScope) -> GiteaForge {
    GiteaForge::with_options(
        &config(sim, scope, DemandSource::Jobs),
        Secret::new(sim.admin_token()),
        options(),
    )
    .expect("client builds")
}

async fn sim(version: &str) -> SimHandle {
    Simulator::start(
        SimConfig::default()
            .version(version)
            .repo("acme/web")
            .repo("other/tool"),
    )
    .await
    .expect("simulator starts")
}

#[path = "contract/forge.rs"]
#[macro_use]
mod forge_contract;

/// The Gitea client on the simulator, as Gitea 1.26.4 with `acme/web` and `other/tool`.
struct SimRig {
    sim: SimHandle,
    forge: GiteaForge,
}

impl forge_contract::ForgeRig for SimRig {
    fn forge(&self) -> &dyn Forge {
        &self.forge
    }

    fn queue_job(&self, repo: &str, name: &str, labels: &[&str]) -> i64 {
        self.sim
            .enqueue_job(JobSpec::new(repo, name, labels))
            .expect("queued")
            .id
    }
}

async fn sim_rig() -> SimRig {
    let sim = sim("1.26.4").await;
    let forge = forge_at(&sim, RunnerScope::Instance);
    SimRig { sim, forge }
}

/// The forge port's contract (`tests/contract/forge.rs`) on Gitea (the simulator); the tests'
/// fake passes the same clauses (`tests/forge_contract.rs`).
mod forge_port {
    forge_contract!(super::sim_rig().await);
}

#[tokio::test]
async fn the_version_decides_which_features_are_on() {
    let sim = sim("1.26.4").await;
    let cfg = config(&sim, RunnerScope::Instance, DemandSource::Jobs);
    let (_, version, features) = GiteaForge::connect(&cfg, Secret::new(sim.admin_token()))
        .await
        .expect("connects");
    assert_eq!(
        version,
        ForgeVersion {
            major: 1,
            minor: 26,
            patch: 4
        }
    );
    assert!(features.runner_api && features.queued_jobs && features.disable);

    sim.set_version("1.25.0+dev-120-gabcdef0");
    let (_, version, features) = GiteaForge::connect(&cfg, Secret::new(sim.admin_token()))
        .await
        .expect("connects");
    assert_eq!(
        version,
        ForgeVersion {
            major: 1,
            minor: 25,
            patch: 0
        }
    );
    assert!(features.queued_jobs && !features.disable);

    sim.set_version("1.23.4");
    let err = GiteaForge::connect(&cfg, Secret::new(sim.admin_token()))
        .await
        .expect_err("too old");
    assert!(matches!(err, ForgeError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("1.24.0"), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn listing_reads_every_page_of_more_than_fifty_runners() {
    // Gitea main orders the runner list with a tie-breaker: paging is stable there.
    let sim = sim("1.28.0").await;
    for i in 0..123 {
        sim.create_runner(RunnerSpec::new(format!("r-{i:03}"), &["go", "linux"]))
            .expect("creates");
    }
    let forge = forge_at(&sim, RunnerScope::Instance);
    let runners = forge.list_runners().await.expect("lists");
    assert_eq!(runners.len(), 123);
    let mut names: Vec<&str> = runners.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 123);
    let one = runners.iter().find(|r| r.name == "r-007").expect("listed");
    assert_eq!(one.labels, ["go", "linux"]);
    assert!(one.ephemeral && !one.online && !one.busy && !one.disabled);
    sim.shutdown().await;
}

#[tokio::test]
async fn on_released_gitea_a_long_listing_never_repeats_and_what_it_skips_is_found_by_id() {
    // 1.24 – 1.27 order runners by last contact alone; never-connected runners all tie, so
    // pages can skip and repeat rows (the simulator shuffles ties on every page request).
    let sim = sim("1.26.4").await;
    for i in 0..300 {
        sim.create_runner(RunnerSpec::new(format!("r-{i:03}"), &["go"]))
            .expect("creates");
    }
    let forge = forge_at(&sim, RunnerScope::Instance);
    let listed = forge.list_runners().await.expect("lists");
    let mut ids: Vec<i64> = listed.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "no runner listed twice");
    assert!(listed.len() <= 300);
    for r in sim.runners() {
        if !ids.contains(&r.id) {
            let found = forge
                .get_runner(r.id)
                .await
                .expect("reads")
                .expect("exists");
            assert_eq!(found.name, r.name, "a skipped runner is found by id");
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_long_queued_jobs_listing_never_repeats_a_job_and_is_whole_where_gitea_orders_it() {
    // Before 1.27 the jobs query has no order, so pages can skip and repeat jobs (the
    // simulator draws a fresh order per page); from 1.27 it is ordered by id.
    for version in ["1.26.4", "1.27.0"] {
        let sim = sim(version).await;
        for i in 0..300 {
            sim.enqueue_job(JobSpec::new("acme/web", format!("job-{i}"), &["go"]))
                .expect("queued");
        }
        let forge = forge_at(&sim, RunnerScope::Instance);
        let listed = forge.queued_jobs().await.expect("lists");
        let mut ids: Vec<i64> = listed.iter().map(|j| j.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), listed.len(), "{version}: no job listed twice");
        if version == "1.27.0" {
            assert_eq!(ids.len(), 300, "{version}: an ordered listing is whole");
        } else {
            assert!(ids.len() <= 300, "{version}");
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn up_to_1_26_a_new_job_is_listed_with_run_attempt_0_as_pick_1() {
    let sim = sim("1.26.4").await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/web", "build", &["go"]))
        .expect("queued");
    let forge = forge_at(&sim, RunnerScope::Instance);
    let listed = forge.queued_jobs().await.expect("lists");
    assert_eq!(
        listed
            .iter()
            .map(|j| (j.id, j.attempt, j.pick()))
            .collect::<Vec<_>>(),
        [(job.id, 0, 1)]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_page_fails_the_whole_list() {
    // A stable order (Gitea main), so a whole read is whole: the subject here is the failure.
    let sim = sim("1.28.0").await;
    for i in 0..60 {
        sim.create_runner(RunnerSpec::new(format!("r-{i}"), &["go"]))
            .expect("creates");
    }
    let forge = forge_at(&sim, RunnerScope::Instance);
    assert_eq!(forge.list_runners().await.expect("lists").len(), 60);
    sim.set_faults(Faults {
        api_error: Some(ApiErrorFault {
            status: 502,
            fraction: 0.5,
            count: None,
            matches: FaultMatch {
                path_contains: Some("/actions/runners".into()),
                method: None,
            },
        }),
        ..Faults::default()
    });
    // Every second request fails: page 1 passes, page 2 fails.
    let err = forge
        .list_runners()
        .await
        .expect_err("a failed page fails the list");
    assert!(matches!(err, ForgeError::Unavailable(_)), "{err}");
    sim.shutdown().await;
}

#[tokio::test]
async fn scopes_list_only_their_own_runners() {
    let sim = sim("1.26.4").await;
    sim.create_runner(RunnerSpec::new("site", &["go"]))
        .expect("creates");
    sim.create_runner(RunnerSpec::new("org", &["go"]).scope(Scope::Org("acme".into())))
        .expect("creates");
    sim.create_runner(RunnerSpec::new("repo", &["go"]).scope(Scope::Repo("acme/web".into())))
        .expect("creates");
    let org = forge_at(&sim, RunnerScope::Org("acme".into()))
        .list_runners()
        .await
        .expect("lists");
    assert_eq!(
        org.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["org"]
    );
    let repo = forge_at(
        &sim,
        RunnerScope::Repo {
            owner: "acme".into(),
            name: "web".into(),
        },
    )
    .list_runners()
    .await
    .expect("lists");
    assert_eq!(
        repo.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["repo"]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn disabling_on_gitea_1_25_is_unsupported() {
    let sim = sim("1.25.2").await;
    let file = sim
        .create_runner(RunnerSpec::new("one", &["go"]))
        .expect("creates");
    let forge = forge_at(&sim, RunnerScope::Instance);
    let err = forge.disable_runner(file.id).await.expect_err("too old");
    assert!(matches!(err, ForgeError::Unsupported { .. }), "{err}");
    assert!(!sim.runner(file.id).expect("there").disabled);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_registration_token_is_the_scopes_token() {
    let sim = sim("1.26.4").await;
    let forge = forge_at(&sim, RunnerScope::Org("acme".into()));
    let token = forge.registration_token().await.expect("fetches");
    assert_eq!(
        token.expose(),
        sim.registration_token(&Scope::Org("acme".into()))
            .expect("sim token")
    );
    assert_eq!(format!("{token}"), "[redacted]");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_preregistered_runner_can_run_a_job_from_its_runner_file() {
    let sim = sim("1.26.4").await;
    let forge = forge_at(&sim, RunnerScope::Instance);
    let name = RunnerName::observed("tq-demo-job-1-1-a1");
    let reg = forge
        .register_runner(&name, &["go".into(), "linux".into()])
        .await
        .expect("registers");
    assert!(reg.id > 0 && !reg.uuid.is_empty() && !reg.token.expose().is_empty());
    let seen = sim.runner(reg.id).expect("registered in Gitea");
    assert_eq!((seen.name.as_str(), seen.ephemeral), (name.as_str(), true));
    assert_eq!(seen.labels, ["go", "linux"]);
    assert!(seen.version.starts_with("tinqs-ci/"), "{}", seen.version);

    // The credentials are real: an agent started from them takes a job and the runner goes.
    let job = sim
        .enqueue_job(JobSpec::new("acme/web", "build", &["go"]))
        .expect("queued");
    let runner_file = serde_json::json!({
        "id": reg.id, "uuid": reg.uuid, "name": name.as_str(), "token": reg.token.expose(),
        "address": sim.base_url(), "labels": ["go:host", "linux:host"], "ephemeral": true,
    });
    let file = RunnerFile::from_json(&runner_file.to_string()).expect("runner file");
    let agent =
        Agent::spawn(AgentConfig::from_runner_file(file).fetch_interval(Duration::from_millis(50)));
    let outcome = tokio::time::timeout(Duration::from_secs(20), agent.wait())
        .await
        .expect("agent ends");
    assert!(
        matches!(outcome, AgentOutcome::Finished { job_id, .. } if job_id == job.id),
        "{outcome:?}"
    );
    sim.wait_for_job(job.id, JobPhase::Completed, Duration::from_secs(5))
        .await
        .expect("completed");
    assert!(
        forge.get_runner(reg.id).await.expect("answers").is_none(),
        "ephemeral runner removed"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn queued_jobs_are_read_across_pages_with_their_repository() {
    // Job lists are ordered by id from 1.27 (unordered before: a read can skip a job, which
    // the reconciler then reads by id); 1.27+ counts attempts per job row.
    let sim = sim("1.28.0").await;
    let mut wanted = Vec::new();
    for i in 0..57 {
        let repo = if i % 2 == 0 { "acme/web" } else { "other/tool" };
        let job = sim
            .enqueue_job(JobSpec::new(repo, format!("job-{i}"), &["go"]))
            .expect("queued");
        wanted.push((job.id, repo.to_owned()));
    }
    let blocked = sim
        .enqueue_job(JobSpec::new("acme/web", "later", &["go"]).blocked())
        .expect("waiting");
    let forge = forge_at(&sim, RunnerScope::Instance);
    let mut got: Vec<(i64, String)> = forge
        .queued_jobs()
        .await
        .expect("lists")
        .into_iter()
        .map(|j| (j.id, j.repo))
        .collect();
    got.sort();
    wanted.sort();
    assert_eq!(got, wanted);
    assert!(!got.iter().any(|(id, _)| *id == blocked.id));
    let first = forge
        .queued_jobs()
        .await
        .expect("lists")
        .into_iter()
        .find(|j| j.id == wanted[0].0)
        .expect("job");
    // From 1.27 a new job row carries its run attempt's number (1) and is pick 1.
    assert_eq!(
        (first.labels.clone(), first.attempt, first.pick()),
        (vec!["go".to_owned()], 1, 1)
    );
    assert!(first.run_id.is_some());

    let org = forge_at(&sim, RunnerScope::Org("other".into()))
        .queued_jobs()
        .await
        .expect("lists");
    assert!(org.len() == 28 && org.iter().all(|j| j.repo == "other/tool"));
    sim.shutdown().await;
}

#[tokio::test]
async fn queued_jobs_on_gitea_1_24_are_unsupported_not_empty() {
    let sim = sim("1.24.3").await;
    sim.enqueue_job(JobSpec::new("acme/web", "build", &["go"]))
        .expect("queued");
    let forge = forge_at(&sim, RunnerScope::Instance);
    let err = forge.queued_jobs().await.expect_err("too old");
    assert!(matches!(err, ForgeError::Unsupported { .. }), "{err}");
    sim.shutdown().await;
}

const CI: &str = "on: push\njobs:\n  build:\n    runs-on: go\n    steps:\n      - run: make\n";

#[tokio::test]
async fn workflow_files_come_from_the_first_existing_directory_recursively() {
    let sim = sim("1.26.4").await;
    let pushed = sim
        .push(PushSpec::new(
            "acme/web",
            "main",
            vec![CommitSpec::new(
                "add ci",
                vec![
                    FileChange::put(".gitea/workflows/ci.yml", CI),
                    FileChange::put(".gitea/workflows/nested/deploy.yaml", CI),
                    FileChange::put(".gitea/workflows/README.md", "not a workflow"),
                    FileChange::put(".github/workflows/ignored.yml", CI),
                    FileChange::put("src/main.rs", "fn main() {}"),
                ],
            )],
        ))
        .expect("pushes");
    let forge = forge_at(&sim, RunnerScope::Instance);
    let files = forge
        .workflow_files("acme/web", &pushed.after)
        .await
        .expect("reads");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".gitea/workflows/ci.yml",
            ".gitea/workflows/nested/deploy.yaml"
        ]
    );
    assert_eq!(files[0].content, CI);

    let github_only = sim
        .push(PushSpec::new(
            "other/tool",
            "main",
            vec![CommitSpec::new(
                "ci",
                vec![FileChange::put(".github/workflows/test.yml", CI)],
            )],
        ))
        .expect("pushes");
    let files = forge
        .workflow_files("other/tool", &github_only.after)
        .await
        .expect("reads");
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        [".github/workflows/test.yml"]
    );

    let plain = sim
        .push(PushSpec::new(
            "other/tool",
            "docs",
            vec![CommitSpec::new(
                "docs",
                vec![FileChange::put("README.md", "hi")],
            )],
        ))
        .expect("pushes");
    assert_eq!(
        forge
            .workflow_files("other/tool", &plain.after)
            .await
            .expect("reads"),
        vec![]
    );

    let missing = forge
        .workflow_files("acme/web", "0123456789abcdef0123456789abcdef01234567")
        .await;
    assert!(
        matches!(missing, Err(ForgeError::NotFound(_))),
        "{missing:?}"
    );
    let nonsense = forge.workflow_files("../etc", &pushed.after).await;
    assert!(
        matches!(nonsense, Err(ForgeError::NotFound(_))),
        "{nonsense:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn changed_files_are_the_union_of_the_pushed_commits_or_the_new_branch_head() {
    let sim = sim("1.26.4").await;
    let base = sim
        .push(PushSpec::new(
            "acme/web",
            "main",
            vec![CommitSpec::new(
                "base",
                vec![FileChange::put("a.txt", "a"), FileChange::put("b.txt", "b")],
            )],
        ))
        .expect("pushes");
    let two = sim
        .push(PushSpec::new(
            "acme/web",
            "main",
            vec![
                CommitSpec::new("one", vec![FileChange::put("src/x.rs", "x")]),
                CommitSpec::new(
                    "two",
                    vec![
                        FileChange::delete("a.txt"),
                        FileChange::put("docs/y.md", "y"),
                    ],
                ),
            ],
        ))
        .expect("pushes");
    assert_eq!(two.before, base.after);
    let forge = forge_at(&sim, RunnerScope::Instance);
    let changed = forge
        .changed_files("acme/web", &two.before, &two.after)
        .await
        .expect("compares");
    assert_eq!(
        changed,
        Some(vec!["a.txt".into(), "docs/y.md".into(), "src/x.rs".into()])
    );

    let branch = sim
        .push(
            PushSpec::new(
                "acme/web",
                "feature",
                vec![
                    CommitSpec::new("f1", vec![FileChange::put("f1.txt", "1")]),
                    CommitSpec::new("f2", vec![FileChange::put("f2.txt", "2")]),
                ],
            )
            .from("main"),
        )
        .expect("pushes");
    assert!(branch.before.bytes().all(|b| b == b'0'));
    let head_only = forge
        .changed_files("acme/web", &branch.before, &branch.after)
        .await
        .expect("reads");
    assert_eq!(head_only, Some(vec!["f2.txt".into()]));

    let unknown = forge
        .changed_files(
            "acme/web",
            "0123456789abcdef0123456789abcdef01234567",
            &two.after,
        )
        .await;
    assert_eq!(unknown, Ok(None));
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_are_classified_and_never_carry_the_token() {
    let sim = sim("1.26.4").await;
    let token = sim.admin_token();
    let cfg = config(&sim, RunnerScope::Instance, DemandSource::Jobs);

    let wrong =
        GiteaForge::with_options(&cfg, Secret::new("not-the-token"), options()).expect("builds");
    let err = wrong.list_runners().await.expect_err("refused");
    assert!(matches!(err, ForgeError::Unauthorized(_)), "{err}");

    let forge = forge_at(&sim, RunnerScope::Instance);
    for (status, check) in [
        (
            503_u16,
            (|e: &ForgeError| matches!(e, ForgeError::Unavailable(_))) as fn(&ForgeError) -> bool,
        ),
        (500, |e| matches!(e, ForgeError::Unavailable(_))),
        (429, |e| matches!(e, ForgeError::RateLimited(_))),
        (403, |e| matches!(e, ForgeError::Forbidden(_))),
        (422, |e| matches!(e, ForgeError::BadResponse(_))),
    ] {
        sim.set_faults(Faults {
            api_error: Some(ApiErrorFault::always(status)),
            ..Faults::default()
        });
        let err = forge.list_runners().await.expect_err("fails");
        assert!(check(&err), "{status}: {err}");
        assert!(!err.to_string().contains(&token));
    }

    sim.set_faults(Faults {
        api_delay: Some(ApiDelayFault {
            delay_ms: 30_000,
            matches: FaultMatch::default(),
        }),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let err = forge.list_runners().await.expect_err("times out");
    assert!(
        matches!(err, ForgeError::Unavailable(ref m) if m.contains("no answer within")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    sim.set_faults(Faults {
        api_error: Some(ApiErrorFault {
            status: 500,
            fraction: 1.0,
            count: None,
            matches: FaultMatch {
                path_contains: Some("RunnerService".into()),
                method: None,
            },
        }),
        ..Faults::default()
    });
    let err = forge
        .register_runner(&RunnerName::observed("x"), &["go".into()])
        .await
        .expect_err("Register fails");
    assert!(!err.to_string().contains(&token));
    sim.shutdown().await;

    // Nothing listening: a connect error.
    let gone =
        GiteaForge::with_options(&cfg, Secret::new(token.clone()), options()).expect("builds");
    let err = gone.list_runners().await.expect_err("nobody there");
    assert!(matches!(err, ForgeError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains(&token));
}
