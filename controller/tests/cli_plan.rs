//! The `config validate` and `plan --world` commands, run as a person would.

use std::process::Command;

fn tinqs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinqs-ci"))
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn config_validate_accepts_the_example_and_names_bad_fields() {
    let ok = tinqs()
        .args(["config", "validate"])
        .arg(examples().join("config.yaml"))
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains("valid (cluster demo, 2 pools: docker, go)")
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(examples().join("config.yaml")).expect("example");
    std::fs::write(
        &bad,
        text.replace("ami: ami-0123456789abcdef0", "ami: my-image")
            .replace("max_attempts: 3", "max_attempts: 0"),
    )
    .expect("write");
    let out = tinqs()
        .args(["config", "validate"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pools.go.ami: `my-image` is not an AMI id"),
        "{err}"
    );
    assert!(
        err.contains("safety.max_attempts: must be at least 1"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn config_validate_reports_a_missing_file_clearly() {
    let out = tinqs()
        .args(["config", "validate", "/nonexistent/tinqs.yaml"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/tinqs.yaml"));
}

#[test]
fn plan_over_the_example_world_reads_like_a_review() {
    let out = tinqs()
        .args(["plan", "--world"])
        .arg(examples().join("world.json"))
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "  create run job-107-1 [go]: job 107 is queued in Gitea but had no desired run",
        "  deregister runner tq-demo-job-103-1-a1 (#501): never registered within 10m\n  terminate i-0103 (run job-103-1) in pool go: never registered within 10m",
        "  launch tq-demo-job-103-1-a2 (run job-103-1, attempt 2) in pool go: never registered within 10m",
        "  terminate i-0104 (run job-104-1) in pool docker: job was taken by another runner",
        "  terminate i-0105 (run job-105-1) in pool go: runner offline for more than 3m",
        "  mark run job-105-1 failed (runner offline for more than 3m while running the job; re-run it in Gitea)",
        "  mark run job-109-1 pending for attempt 2: spot interruption before the run finished",
        "  terminate i-0999 (run job-90-1) in pool go: orphan: no live run wants it (older than 5m)",
        "  deregister runner tq-demo-job-80-1-a1 (#580): runner has no live instance",
        "  ! unschedulable: run job-102-1 wants [godot], which no pool serves",
        "Plan: 17 actions, 1 unschedulable, 0 deferred; next pass in 1m.",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(
        !text.contains("i-0abcforeign"),
        "a foreign instance must never appear"
    );
    assert!(
        !text.contains("i-0106"),
        "a busy runner's instance must be left alone"
    );
}

#[test]
fn plan_json_is_the_plan_itself() {
    let out = tinqs()
        .args(["plan", "--output", "json", "--world"])
        .arg(examples().join("world.json"))
        .output()
        .expect("runs");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let actions = v["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 17);
    assert_eq!(actions[1]["action"], "deregister");
    assert_eq!(actions[1]["run"], "job-103-1", "a run's steps name it");
    assert_eq!(actions[4]["action"], "launch");
    assert_eq!(actions[4]["pool"], "go");
    assert_eq!(v["unschedulable"][0]["labels"][0], "godot");
}

#[test]
fn plan_rejects_a_broken_world_file_with_its_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("world.json");
    std::fs::write(&bad, "{\"config\": \"config.yaml\", \"now\": 5}").expect("write");
    let out = tinqs()
        .args(["plan", "--world"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not a valid world file") && err.contains("missing field"),
        "{err}"
    );
}
