//! Agents: the happy path, and the ways machines misbehave.

use std::time::Duration;

use gitea_sim::{
    Agent, AgentConfig, AgentFault, AgentOutcome, AgentState, Conclusion, JobPhase, JobSpec,
    RunnerFile, RunnerSpec, Scope,
};

use crate::common::*;

fn quick(cfg: AgentConfig) -> AgentConfig {
    cfg.fetch_interval(Duration::from_millis(50))
        .report_interval(Duration::from_millis(50))
}

async fn wait(agent: &gitea_sim::AgentHandle) -> AgentOutcome {
    tokio::time::timeout(Duration::from_secs(10), agent.wait())
        .await
        .expect("agent ends in time")
}

#[tokio::test]
async fn an_agent_registers_takes_one_job_reports_it_and_its_runner_is_gone() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(
            JobSpec::new("acme/app", "build", &["linux"]).duration(Duration::from_millis(1500)),
        )
        .expect("enqueue");
    let token = sim.registration_token(&Scope::Instance).expect("token");
    let agent = Agent::spawn(quick(AgentConfig::register(
        sim.base_url(),
        token,
        "i-0abc",
        &["linux", "spot"],
    )));
    let running = sim
        .wait_for_job(job.id, JobPhase::InProgress, Duration::from_secs(5))
        .await
        .expect("picked");
    let runner_id = running.runner_id.expect("runner");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let view = sim.runner(runner_id).expect("runner exists while running");
    assert!(view.ephemeral && view.online && view.busy, "{view:?}");
    assert!(matches!(agent.state(), AgentState::Running { job_id, .. } if job_id == job.id));

    let outcome = wait(&agent).await;
    assert_eq!(
        outcome,
        AgentOutcome::Finished {
            runner_id,
            task_id: running.task_id.expect("task"),
            job_id: job.id,
            result: Conclusion::Success,
            reported: true
        }
    );
    let done = sim.job(job.id).expect("job");
    assert_eq!(
        (done.status, done.conclusion),
        (JobPhase::Completed, Some(Conclusion::Success))
    );
    assert!(sim.runner(runner_id).is_none(), "ephemeral runner deleted");
    assert_eq!(agent.state(), AgentState::Exited);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_from_a_runner_file_waits_for_a_matching_job_and_reports_its_failure() {
    let sim = start_default().await;
    let file = sim
        .create_runner(RunnerSpec::new("i-0def", &["linux"]))
        .expect("runner");
    let parsed = RunnerFile::from_json(&file.to_json()).expect("file round-trips");
    let agent = Agent::spawn(quick(AgentConfig::from_runner_file(parsed)));
    for _ in 0..250 {
        if matches!(agent.state(), AgentState::Polling { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        matches!(agent.state(), AgentState::Polling { last_error: None }),
        "{:?}",
        agent.state()
    );
    assert!(
        sim.runner(file.id).expect("runner").online,
        "polling keeps it online"
    );
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "test", &["linux"]).result(Conclusion::Failure))
        .expect("enqueue");
    let outcome = wait(&agent).await;
    assert!(
        matches!(outcome, AgentOutcome::Finished { result: Conclusion::Failure, reported: true, job_id, .. } if job_id == job.id)
    );
    assert_eq!(
        sim.job(job.id).expect("job").conclusion,
        Some(Conclusion::Failure)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_goes_offline_mid_job_leaves_a_running_job_and_an_offline_runner() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "long", &["linux"]).duration(Duration::from_secs(30)))
        .expect("enqueue");
    let token = sim.registration_token(&Scope::Instance).expect("token");
    let agent = Agent::spawn(quick(
        AgentConfig::register(sim.base_url(), token, "doomed", &["linux"])
            .fault(AgentFault::OfflineMidJob { after_ms: 200 }),
    ));
    let outcome = wait(&agent).await;
    let AgentOutcome::WentOffline {
        runner_id, job_id, ..
    } = outcome
    else {
        panic!("unexpected {outcome:?}")
    };
    assert_eq!(job_id, job.id);
    assert_eq!(sim.job(job.id).expect("job").status, JobPhase::InProgress);
    let view = sim.runner(runner_id).expect("runner stays registered");
    assert!(view.online && view.busy);
    sim.advance_clock(Duration::from_secs(61));
    let view = sim.runner(runner_id).expect("runner");
    assert!(!view.online && !view.busy, "{view:?}");
    assert_eq!(
        sim.job(job.id).expect("job").status,
        JobPhase::InProgress,
        "until the zombie timeout"
    );
    sim.advance_clock(Duration::from_secs(600));
    assert_eq!(
        sim.job(job.id).expect("job").conclusion,
        Some(Conclusion::Failure)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_never_starts_never_contacts_gitea() {
    let sim = start_default().await;
    let file = sim
        .create_runner(RunnerSpec::new("never", &["linux"]))
        .expect("runner");
    let agent =
        Agent::spawn(AgentConfig::from_runner_file(file.clone()).fault(AgentFault::NeverStarts));
    assert_eq!(wait(&agent).await, AgentOutcome::NeverStarted);
    let view = sim.runner(file.id).expect("runner");
    assert!(!view.online);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_with_a_bad_registration_token_fails_and_says_why() {
    let sim = start_default().await;
    let agent = Agent::spawn(AgentConfig::register(
        sim.base_url(),
        "wrong",
        "r",
        &["linux"],
    ));
    let outcome = wait(&agent).await;
    let AgentOutcome::Failed { reason } = outcome else {
        panic!("unexpected {outcome:?}")
    };
    assert!(reason.contains("registration token not found"), "{reason}");
    assert!(sim.runners().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stopped_agent_ends_as_stopped_and_a_cancelled_job_ends_its_agent() {
    let sim = start_default().await;
    let token = sim.registration_token(&Scope::Instance).expect("token");
    let idle = Agent::spawn(quick(AgentConfig::register(
        sim.base_url(),
        token.clone(),
        "idle",
        &["none"],
    )));
    tokio::time::sleep(Duration::from_millis(100)).await;
    idle.stop();
    assert_eq!(wait(&idle).await, AgentOutcome::Stopped);
    assert!(idle.is_finished());

    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "slow", &["linux"]).duration(Duration::from_secs(30)))
        .expect("enqueue");
    let agent = Agent::spawn(quick(AgentConfig::register(
        sim.base_url(),
        token,
        "worker",
        &["linux"],
    )));
    sim.wait_for_job(job.id, JobPhase::InProgress, Duration::from_secs(5))
        .await
        .expect("picked");
    sim.cancel_job(job.id).expect("cancel");
    let outcome = wait(&agent).await;
    assert!(
        matches!(
            outcome,
            AgentOutcome::Finished {
                result: Conclusion::Cancelled,
                ..
            }
        ),
        "{outcome:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_agent_keeps_polling_through_api_faults_and_honours_the_boot_delay() {
    let sim = start_default().await;
    let file = sim
        .create_runner(RunnerSpec::new("late", &["linux"]))
        .expect("runner");
    let agent = Agent::spawn(
        quick(AgentConfig::from_runner_file(file.clone())).boot_delay(Duration::from_millis(1000)),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(agent.state(), AgentState::Booting);
    assert!(!sim.runner(file.id).expect("runner").online);
    sim.set_faults(gitea_sim::Faults {
        api_error: Some(gitea_sim::ApiErrorFault {
            status: 503,
            fraction: 1.0,
            count: Some(3),
            matches: gitea_sim::FaultMatch {
                path_contains: Some("FetchTask".into()),
                method: None,
            },
        }),
        ..gitea_sim::Faults::default()
    });
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "j", &["linux"]).duration(Duration::ZERO))
        .expect("enqueue");
    let outcome = wait(&agent).await;
    assert!(
        matches!(outcome, AgentOutcome::Finished { job_id, .. } if job_id == job.id),
        "{outcome:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_stuck_agent_stays_online_and_idle_but_never_takes_a_job() {
    let sim = start_default().await;
    let job = sim
        .enqueue_job(JobSpec::new("acme/app", "build", &["linux"]))
        .expect("enqueue");
    let token = sim.registration_token(&Scope::Instance).expect("token");
    let agent = Agent::spawn(quick(
        AgentConfig::register(sim.base_url(), token, "hung", &["linux"]).fault(AgentFault::Stuck),
    ));
    until("the stuck runner shows online", || {
        agent
            .runner_id()
            .and_then(|id| sim.runner(id))
            .is_some_and(|r| r.online)
    })
    .await;
    let id = agent.runner_id().expect("registered");
    // Past the offline threshold, then back online: it keeps calling Gitea.
    sim.advance_clock(Duration::from_secs(61));
    assert!(!sim.runner(id).expect("runner").online);
    until("the stuck runner comes back online", || {
        sim.runner(id).is_some_and(|r| r.online)
    })
    .await;
    let view = sim.runner(id).expect("runner");
    assert!(view.online && !view.busy, "{view:?}");
    assert_eq!((view.tasks_taken, view.task_id), (0, None));
    let (_, body) = api(&sim, "GET", &format!("/admin/actions/runners/{id}"), None).await;
    assert_eq!(
        (body["status"].clone(), body["busy"].clone()),
        (serde_json::json!("online"), serde_json::json!(false))
    );
    let still = sim.job(job.id).expect("job");
    assert_eq!((still.status, still.runner_id), (JobPhase::Queued, None));
    assert!(!agent.is_finished());

    // Deleting its registration ends it: it recognises the answer.
    api(
        &sim,
        "DELETE",
        &format!("/admin/actions/runners/{id}"),
        None,
    )
    .await;
    let outcome = wait(&agent).await;
    assert!(
        matches!(&outcome, AgentOutcome::Failed { reason } if reason.contains("unregistered runner")),
        "{outcome:?}"
    );
    sim.shutdown().await;
}
