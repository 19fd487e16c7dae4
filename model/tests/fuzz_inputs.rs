//! Structured fuzzing of the configuration parser and the workflow parser: valid documents
//! broken by [`model::fuzz`] (wrong types, missing and unknown keys, deep nesting, huge
//! numbers, odd Unicode, spliced and truncated text). Every case must end in a parse or an
//! error that names what is wrong; never a panic.
//!
//! `TINQS_FUZZ_CASES` sets the cases per property (default 256, a few seconds); `make fuzz`
//! runs 100,000 each and prints the counts.

use std::sync::atomic::{AtomicU64, Ordering};

use model::config::Config;
use model::fuzz::{mutate_text, mutate_yaml, run_seed, seed_bytes, Choices};
use model::workflow::{expand_jobs, PushEvent, Workflow};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

const CONFIG: &str = include_str!("../../examples/config.yaml");

/// Keys the configuration knows, so a mutation can put a wrong type under a right name.
const CONFIG_KEYS: &[&str] = &[
    "cluster_id",
    "gitea",
    "aws",
    "store",
    "server",
    "pools",
    "foreign_labels",
    "timeouts",
    "safety",
    "url",
    "token_env",
    "webhook_secret_env",
    "scope",
    "demand",
    "registration",
    "region",
    "events_queue_url",
    "table",
    "retention",
    "listen",
    "spool_dir",
    "metrics_listen",
    "max_connections",
    "header_timeout",
    "body_timeout",
    "instance_types",
    "subnets",
    "security_groups",
    "ami",
    "instance_profile",
    "market",
    "max_instances",
    "volume_size_gb",
    "extra_labels",
    "max_lifetime",
    "launch",
    "idle",
    "resync",
    "max_attempts",
    "cache",
    "cache_listen",
    "bucket",
];

const WORKFLOWS: &[&str] = &[
    "name: CI\non:\n  push:\n    branches: [main, 'release/**']\n    paths-ignore: ['**/*.md']\n  pull_request:\njobs:\n  build:\n    runs-on: [go, linux]\n    strategy:\n      matrix:\n        go: ['1.22', '1.23']\n        os: [a, b]\n        include:\n          - go: '1.24'\n            os: c\n        exclude:\n          - go: '1.22'\n            os: b\n    steps:\n      - uses: actions/checkout@v4\n      - run: go test ./...\n  deploy:\n    needs: build\n    if: github.ref == 'refs/heads/main'\n    runs-on: docker\n    steps:\n      - run: ./deploy.sh\n",
    "on: [push, workflow_dispatch]\nenv: &env\n  A: 1\njobs:\n  lint:\n    runs-on: ${{ matrix.runner }}\n    env:\n      <<: *env\n    strategy:\n      matrix:\n        runner: [go, docker]\n    steps: [{run: make lint}]\n  reuse:\n    uses: ./.gitea/workflows/other.yml\n",
    "on:\n  push:\n    tags: ['v*']\n    branches-ignore: [wip/*]\n    paths: ['src/**', '!src/docs/**']\njobs:\n  release:\n    name: Release ${{ github.ref_name }}\n    runs-on: ubuntu-latest\n    container: node:20\n    services:\n      db: {image: postgres}\n    steps:\n      - run: echo hi\n",
];

const WORKFLOW_KEYS: &[&str] = &[
    "on",
    "jobs",
    "name",
    "env",
    "push",
    "pull_request",
    "branches",
    "branches-ignore",
    "tags",
    "tags-ignore",
    "paths",
    "paths-ignore",
    "runs-on",
    "needs",
    "if",
    "strategy",
    "matrix",
    "include",
    "exclude",
    "steps",
    "uses",
    "run",
    "with",
    "container",
    "services",
];

fn cases() -> u32 {
    std::env::var("TINQS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// A runner for one property and the seed it draws from (`TINQS_FUZZ_SEED` replays a run).
fn runner() -> (TestRunner, u64) {
    let seed = run_seed(std::env::var("TINQS_FUZZ_SEED").ok().as_deref())
        .unwrap_or_else(|e| panic!("{e}"));
    let config = RunnerConfig {
        cases: cases(),
        // Shrinking a failure is worth more than a bound on it; local rejects do not occur.
        max_shrink_iters: 4096,
        // The seed, printed on every run, is what replays a failure.
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
    (TestRunner::new_with_rng(config, rng), seed)
}

/// Counts of what the cases ended in, printed at the end (`--nocapture` shows them).
struct Tally {
    name: &'static str,
    parsed: AtomicU64,
    refused: AtomicU64,
}

impl Tally {
    const fn new(name: &'static str) -> Self {
        Tally {
            name,
            parsed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn report(&self, seed: u64) {
        let parsed = self.parsed.load(Ordering::Relaxed);
        let refused = self.refused.load(Ordering::Relaxed);
        eprintln!(
            "fuzz {}: {} cases ({parsed} parsed, {refused} refused with an error), seed {seed}",
            self.name,
            parsed + refused
        );
    }
}

/// An error a person can act on: not empty, and not a wall of text. A message may quote a
/// short value but never a whole document or a huge one.
fn assert_clear(message: &str, input: &str) -> Result<(), TestCaseError> {
    prop_assert!(!message.trim().is_empty(), "empty error for {input:?}");
    prop_assert!(
        message.len() <= 8 * 1024,
        "an error of {} bytes for an input of {} bytes: {}",
        message.len(),
        input.len(),
        &message[..message
            .char_indices()
            .nth(300)
            .map_or(message.len(), |(i, _)| i)]
    );
    Ok(())
}

/// The document under test: the YAML tree mutated then printed, or the text mutated.
fn broken(seed: &str, keys: &[&str], text_level: bool, numbers: &[u64]) -> String {
    let mut c = Choices::new(numbers);
    if text_level {
        return mutate_text(seed, &mut c);
    }
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(seed).expect("seed parses");
    mutate_yaml(&mut doc, keys, &mut c);
    // A tree serde_yaml_ng cannot print (a non-string key in some spots) is not an input.
    serde_yaml_ng::to_string(&doc).unwrap_or_else(|_| seed.to_owned())
}

static CONFIG_TALLY: Tally = Tally::new("config parser");
static WORKFLOW_TALLY: Tally = Tally::new("workflow parser");

#[test]
fn config_parser_takes_broken_files() {
    let (mut runner, run) = runner();
    let strategy = (any::<bool>(), prop::collection::vec(any::<u64>(), 0..48));
    let result = runner.run(&strategy, |(text_level, numbers)| {
        let text = broken(CONFIG, CONFIG_KEYS, text_level, &numbers);
        match Config::parse(&text) {
            Ok(config) => {
                CONFIG_TALLY.parsed.fetch_add(1, Ordering::Relaxed);
                // A parsed file is a valid one, and says the same when written back.
                prop_assert!(config.validate().is_ok());
                let again = serde_yaml_ng::to_string(&config).expect("a config prints");
                let reparsed = Config::parse(&again);
                prop_assert!(reparsed.is_ok(), "{again}\n{reparsed:?}");
                prop_assert_eq!(reparsed.ok(), Some(config));
            }
            Err(e) => {
                CONFIG_TALLY.refused.fetch_add(1, Ordering::Relaxed);
                assert_clear(&e.to_string(), &text)?;
            }
        }
        Ok(())
    });
    CONFIG_TALLY.report(run);
    if let Err(e) = result {
        panic!(
            "{e}\nreplay with TINQS_FUZZ_SEED={run} TINQS_FUZZ_CASES={}",
            cases()
        );
    }
}

#[test]
fn workflow_parser_takes_broken_files() {
    let (mut runner, run) = runner();
    let strategy = (
        0..WORKFLOWS.len(),
        any::<bool>(),
        prop::collection::vec(any::<u64>(), 0..48),
    );
    let push = PushEvent {
        git_ref: "refs/heads/main".into(),
        before: Some("a".repeat(40)),
        after: Some("b".repeat(40)),
        changed_files: Some(vec!["src/main.go".into(), "README.md".into()]),
        head_commit_message: Some("change".into()),
    };
    let result = runner.run(&strategy, |(seed, text_level, numbers)| {
        let text = broken(WORKFLOWS[seed], WORKFLOW_KEYS, text_level, &numbers);
        match Workflow::parse(&text) {
            Ok(workflow) => {
                WORKFLOW_TALLY.parsed.fetch_add(1, Ordering::Relaxed);
                // Why Gitea would skip the file is an error too, shown to whoever pushed it.
                if let Some(why) = &workflow.ignored_by_gitea {
                    assert_clear(why, &text)?;
                }
                // What the controller does with a parsed workflow must not panic either.
                let _expansion = expand_jobs(&workflow);
                for job in &workflow.jobs {
                    let _ = job.matrix_size();
                    prop_assert!(workflow.job(&job.id).is_some());
                }
                let decision = workflow.match_push(&push);
                prop_assert!(!decision.reason.is_empty());
            }
            Err(e) => {
                WORKFLOW_TALLY.refused.fetch_add(1, Ordering::Relaxed);
                assert_clear(&e.to_string(), &text)?;
            }
        }
        Ok(())
    });
    WORKFLOW_TALLY.report(run);
    if let Err(e) = result {
        panic!(
            "{e}\nreplay with TINQS_FUZZ_SEED={run} TINQS_FUZZ_CASES={}",
            cases()
        );
    }
}
