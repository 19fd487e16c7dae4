//! The `workflows show` and `workflows match` commands, run as a person would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn tinqs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinqs-ci"))
}

/// The shared corpus; `$TINQS_SHARED_DIR` overrides `../../shared` from this crate.
fn corpus(file: &str) -> PathBuf {
    let shared = std::env::var_os("TINQS_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    );
    let path = shared.join("corpus/workflows").join(file);
    assert!(
        path.is_file(),
        "{} is missing; set TINQS_SHARED_DIR to the directory holding corpus/",
        path.display()
    );
    path
}

fn run(args: &[&str], file: &Path, rest: &[&str]) -> Output {
    tinqs()
        .args(args)
        .arg(file)
        .args(rest)
        .output()
        .expect("the binary runs")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const WORKFLOW: &str = "\
on:
  push:
    branches: [main, 'release/**']
    paths-ignore: ['docs/**']
jobs:
  build:
    runs-on: ['${{ matrix.os }}', big]
    strategy:
      matrix:
        os: [linux, mac]
        go: ['1.22', '1.23']
        include:
          - os: windows
  deploy:
    needs: build
    runs-on: {group: prod, labels: [deploy]}
  release:
    needs: [build, deploy]
    uses: ./.gitea/workflows/release.yml
";

fn temp_workflow(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ci.yml");
    std::fs::write(&path, text).expect("write workflow");
    (dir, path)
}

#[test]
fn show_prints_events_and_jobs_as_json() {
    let (_dir, file) = temp_workflow(WORKFLOW);
    let got = json_of(&run(&["workflows", "show", "--output", "json"], &file, &[]));
    assert_eq!(
        got,
        json!({
            "events": ["push"],
            "jobs": {
                "build": {"runs_on": ["${{ matrix.os }}", "big"], "needs": [], "uses": null, "matrix_size": 5},
                "deploy": {"runs_on": {"group": "prod", "labels": ["deploy"]}, "needs": ["build"], "uses": null, "matrix_size": 1},
                "release": {"runs_on": null, "needs": ["build", "deploy"], "uses": "./.gitea/workflows/release.yml", "matrix_size": 1},
            }
        })
    );
}

#[test]
fn show_reads_a_corpus_file_with_gitea_matrix_counting() {
    let got = json_of(&run(
        &["workflows", "show", "--output", "json"],
        &corpus("096.yml"),
        &[],
    ));
    assert_eq!(
        got["events"],
        json!(["pull_request", "push", "workflow_dispatch"])
    );
    // Gitea makes a job of the include entry with no matrix key; GitHub would not.
    assert_eq!(got["jobs"]["test"]["matrix_size"], json!(30));
    assert_eq!(got["jobs"]["test"]["runs_on"], json!("${{ matrix.os }}"));
    assert_eq!(got["jobs"]["coverage"]["needs"], json!(["test"]));

    let dynamic = json_of(&run(
        &["workflows", "show", "--output", "json"],
        &corpus("098.yml"),
        &[],
    ));
    assert_eq!(
        dynamic["jobs"]["build"]["matrix_size"],
        Value::Null,
        "an expression matrix is unknown"
    );
}

#[test]
fn show_prints_a_readable_summary_by_default() {
    let (_dir, file) = temp_workflow(WORKFLOW);
    let out = run(&["workflows", "show"], &file, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "events: push",
        "push filters: branches [main, release/**]; paths-ignore [docs/**]",
        "- build",
        "matrix: 5 job instances",
        "needs: build, deploy",
        "uses: ./.gitea/workflows/release.yml",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }
}

#[test]
fn match_says_triggered_and_why() {
    let (_dir, file) = temp_workflow(WORKFLOW);
    let out = tinqs()
        .args(["workflows", "match", "--workflow"])
        .arg(&file)
        .args([
            "--ref",
            "refs/heads/release/1.2",
            "--changed-file",
            "docs/a.md",
            "--changed-file",
            "src/main.go",
        ])
        .args(["--output", "json"])
        .output()
        .expect("runs");
    let got = json_of(&out);
    assert_eq!(got["triggered"], json!(true), "{got}");
    let reason = got["reason"].as_str().expect("a reason string");
    assert!(
        reason.contains("branch `release/1.2` is included by `release/**`"),
        "{reason}"
    );
    assert!(reason.contains("`src/main.go` is not ignored"), "{reason}");
}

#[test]
fn match_says_not_triggered_and_why() {
    let (_dir, file) = temp_workflow(WORKFLOW);
    let cases: [(&[&str], &str); 4] = [
        (
            &["--ref", "refs/heads/main", "--changed-file", "docs/a.md"],
            "is ignored by `docs/**`",
        ),
        (
            &["--ref", "refs/heads/dev", "--changed-file", "src/a.go"],
            "matches none of [main, release/**]",
        ),
        (
            &["--ref", "refs/heads/main", "--changed-files-unknown"],
            "the changed files are unknown",
        ),
        (
            &[
                "--ref",
                "refs/heads/main",
                "--changed-file",
                "a.go",
                "--head-commit-message",
                "wip [skip ci]",
            ],
            "[skip ci]",
        ),
    ];
    for (args, want) in cases {
        let out = tinqs()
            .args(["workflows", "match", "--workflow"])
            .arg(&file)
            .args(args)
            .args(["--output", "json"])
            .output()
            .expect("runs");
        let got = json_of(&out);
        assert_eq!(got["triggered"], json!(false), "{args:?}: {got}");
        let reason = got["reason"].as_str().expect("a reason string");
        assert!(reason.contains(want), "{args:?}: {reason}");
    }
}

#[test]
fn match_with_no_changed_file_means_an_empty_change_list() {
    let (_dir, file) = temp_workflow(WORKFLOW);
    let out = run(
        &["workflows", "match", "--workflow"],
        &file,
        &["--ref", "refs/heads/main"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("not triggered\n"), "{text}");
    assert!(text.contains("the push changes no files"), "{text}");
}

#[test]
fn invalid_files_exit_non_zero_naming_the_file_and_line() {
    let (_dir, file) =
        temp_workflow("on: push\njobs:\n  build:\n    runs-on: [linux\n    steps: []\n");
    for args in [
        vec!["workflows", "show"],
        vec![
            "workflows",
            "match",
            "--ref",
            "refs/heads/main",
            "--workflow",
        ],
    ] {
        let out = run(&args, &file, &[]);
        assert!(!out.status.success(), "{args:?} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{}: line ", file.display())),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = run(&["workflows", "show"], &corpus("002.yml"), &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("002.yml: line 62, column 9"), "{err}");
}

#[test]
fn a_file_gitea_ignores_is_shown_with_a_warning_and_never_matches() {
    let (_dir, file) = temp_workflow("on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo\n        continue-on-error: ${{ matrix.flaky }}\n");
    let out = run(&["workflows", "show"], &file, &[]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Gitea ignores this workflow file"), "{err}");
    assert!(err.contains("jobs.a.steps[0].continue-on-error"), "{err}");
    let got = json_of(&run(
        &[
            "workflows",
            "match",
            "--output",
            "json",
            "--ref",
            "refs/heads/main",
            "--workflow",
        ],
        &file,
        &[],
    ));
    assert_eq!(got["triggered"], json!(false));
}

#[test]
fn match_rejects_a_short_ref() {
    let (_dir, file) = temp_workflow(WORKFLOW);
    let out = run(
        &["workflows", "match", "--ref", "main", "--workflow"],
        &file,
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refs/heads/<branch>"), "{err}");
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly() {
    use std::io::BufRead as _;
    use std::process::Stdio;
    // Far more than a pipe holds, so the writer is still writing when the reader leaves.
    let mut text = String::from("on: push\njobs:\n");
    for i in 0..4000 {
        text.push_str(&format!("  job-{i}:\n    runs-on: [go, linux-{i}]\n"));
    }
    let (_dir, file) = temp_workflow(&text);
    let mut child = tinqs()
        .args(["workflows", "show"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a first line");
    assert!(!first.is_empty());
    // The reader is gone (like `| head -1`): the next write meets a closed pipe.
    let out = child.wait_with_output().expect("the binary ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert!(out.status.success(), "{:?} {stderr}", out.status);
}
