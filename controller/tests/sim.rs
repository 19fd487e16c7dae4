//! The whole-world simulation's gates: the real planner and executor, driven through
//! simulated Gitea, EC2, runners and DynamoDB in virtual time, lose no job, never launch a
//! run twice, never kill a busy runner and never touch what is not theirs, under each fault
//! alone and under a mix of all; and a seed always gives the same bytes.

use controller::sim::{self, Faults, Report, SimSpec, FAULT_KINDS};
use model::config::Config;

fn config() -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config.yaml"
    ))
    .expect("example config");
    Config::parse(&text).expect("valid")
}

fn run(jobs: usize, profile: &str, seed: u64) -> Report {
    let spec = SimSpec {
        config: config(),
        seed,
        jobs,
        profile: profile.to_owned(),
        faults: Faults::profile(profile).expect("profile"),
        trace: None,
    };
    sim::run(&spec).expect("simulation runs")
}

/// Every promise, with the report in the message when one is broken.
fn assert_clean(r: &Report) {
    assert!(r.is_clean(), "a promise broken:\n{}", r.to_text());
    assert_eq!(
        r.started,
        r.picks_wanted,
        "every job Gitea wants must be started:\n{}",
        r.to_text()
    );
}

#[test]
fn the_same_seed_gives_byte_identical_json() {
    let a = serde_json::to_string(&run(150, "default", 42)).expect("json");
    let b = serde_json::to_string(&run(150, "default", 42)).expect("json");
    assert_eq!(a, b, "same seed, different runs");
    let c = serde_json::to_string(&run(150, "default", 43)).expect("json");
    assert_ne!(a, c, "the seed changes nothing");
}

#[test]
fn compare_runs_the_policies_side_by_side_with_the_reports_each_would_give_alone() {
    let spec = SimSpec {
        config: config(),
        seed: 5,
        jobs: 120,
        profile: "default".to_owned(),
        faults: Faults::profile("default").expect("profile"),
        trace: None,
    };
    let together = sim::compare(&spec).expect("simulation runs");
    let policies: Vec<_> = together.iter().map(|r| r.policy.clone()).collect();
    let names: Vec<_> = sim::Policy::ALL
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(
        policies, names,
        "tinqs-ci first, then the baselines in order"
    );
    for (report, policy) in together.iter().zip(sim::Policy::ALL) {
        let alone = sim::run_policy(&spec, policy).expect("simulation runs");
        assert_eq!(
            serde_json::to_string(report).expect("json"),
            serde_json::to_string(&alone).expect("json"),
            "{} differs when run beside the others",
            report.policy
        );
    }
}

#[test]
fn a_thousand_jobs_under_the_default_faults_keep_every_promise() {
    let r = run(1000, "default", 7);
    assert_clean(&r);
    assert_eq!(r.jobs, 1000);
    assert!(r.completed >= 900, "{}", r.to_text());
    assert!(
        r.passes > 0 && r.instances_launched >= 900,
        "{}",
        r.to_text()
    );
    assert!(!r.faults_injected.is_empty(), "{}", r.to_text());
}

/// What each fault kind alone leaves in the report, to show it happened.
fn evidence(kind: &str) -> &'static str {
    match kind {
        "ice" => "ec2-insufficient-capacity",
        "spot" => "spot-interruption",
        "ec2-throttle" => "ec2-throttled",
        "list-lag" => "ec2-list-lag",
        "never-boot" => "never-boot",
        "webhook-delay" => "webhook-delayed",
        "webhook-duplicate" => "webhook-duplicated",
        "webhook-drop" => "webhook-dropped",
        "gitea-outage" => "gitea-outage-call",
        "gitea-5xx" => "gitea-5xx",
        "runner-paging" => "runner-list-skipped-row",
        "runner-hang" => "runner-hang",
        "runner-offline" => "runner-offline",
        "runner-stuck" => "runner-stuck",
        "dynamo-outage" => "dynamodb-outage-call",
        "dynamo-throttle" => "dynamodb-throttled",
        "controller-kill" => "controller-kill",
        other => panic!("no evidence named for fault kind {other}"),
    }
}

#[test]
fn each_fault_kind_alone_keeps_every_promise() {
    for (k, kind) in FAULT_KINDS.iter().enumerate() {
        let r = run(150, kind, 100 + k as u64);
        assert_clean(&r);
        let happened = if *kind == "controller-kill" {
            r.controller_kills > 0
        } else {
            r.faults_injected.contains_key(evidence(kind))
        };
        assert!(happened, "fault {kind} never happened:\n{}", r.to_text());
    }
}
