//! Every file of the shared workflow corpus (`shared/corpus/workflows`) parses to the values
//! in its `expected.json`: events, push filters, and each job's runs-on, needs, uses and
//! Gitea's matrix size. The files that are not valid YAML fail with the line.
//!
//! The shared directory is `$TINQS_SHARED_DIR`, or `../../shared` from this crate. A missing
//! directory fails the test.

use std::path::PathBuf;

use model::workflow::{PushFilters, Workflow};
use serde_json::{json, Value as Json};

fn corpus_dir() -> PathBuf {
    std::env::var_os("TINQS_SHARED_DIR")
        .map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
            PathBuf::from,
        )
        .join("corpus/workflows")
}

fn expected() -> serde_json::Map<String, Json> {
    let path = corpus_dir().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set TINQS_SHARED_DIR to the directory holding corpus/",
            path.display()
        )
    });
    match serde_json::from_str(&text) {
        Ok(Json::Object(map)) => map,
        other => panic!("{} is not a JSON object: {other:?}", path.display()),
    }
}

fn read(file: &str) -> String {
    let path = corpus_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn filters_json(push: &PushFilters) -> Json {
    json!({
        "branches": push.branches,
        "branches-ignore": push.branches_ignore,
        "tags": push.tags,
        "tags-ignore": push.tags_ignore,
        "paths": push.paths,
        "paths-ignore": push.paths_ignore,
    })
}

/// The parts of `expected.json` this parser promises, for one file.
fn actual(workflow: &Workflow) -> Json {
    let jobs: serde_json::Map<String, Json> = workflow
        .jobs
        .iter()
        .map(|j| {
            (
                j.id.clone(),
                json!({
                    "runs_on": j.runs_on,
                    "needs": j.needs,
                    "uses": j.uses,
                    "matrix_static_size_gitea": j.matrix_size(),
                }),
            )
        })
        .collect();
    json!({
        "events": workflow.events,
        "push": workflow.push.as_ref().map(filters_json),
        "jobs": jobs,
    })
}

fn wanted(entry: &Json) -> Json {
    let jobs: serde_json::Map<String, Json> = entry["jobs"]
        .as_object()
        .map(|jobs| {
            jobs.iter()
                .map(|(id, j)| {
                    (
                        id.clone(),
                        json!({
                            "runs_on": j["runs_on"],
                            "needs": j["needs"],
                            "uses": j["uses"],
                            "matrix_static_size_gitea": j["matrix_static_size_gitea"],
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"events": entry["events"], "push": entry["push"], "jobs": jobs})
}

#[test]
fn every_corpus_file_parses_to_its_expected_values() {
    let expected = expected();
    assert!(
        expected.len() >= 100,
        "the corpus should hold its 120 files, found {}",
        expected.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, entry) in &expected {
        if entry["parses"] != Json::Bool(true) {
            continue;
        }
        checked += 1;
        match Workflow::parse(&read(file)) {
            Err(e) => failures.push(format!("{file}: does not parse: {e}")),
            Ok(workflow) => {
                let (got, want) = (actual(&workflow), wanted(entry));
                if got != want {
                    failures.push(format!("{file}:\n  expected {want}\n  got      {got}"));
                }
            }
        }
    }
    assert!(checked >= 100, "only {checked} parsable files checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} corpus files differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_invalid_corpus_files_fail_naming_the_file_and_the_line() {
    let expected = expected();
    let invalid: Vec<&String> = expected
        .iter()
        .filter(|(_, e)| e["parses"] == Json::Bool(false))
        .map(|(f, _)| f)
        .collect();
    assert_eq!(
        invalid,
        ["002.yml", "004.yml"],
        "the corpus names two invalid files"
    );
    for file in invalid {
        let text = read(file);
        let err = Workflow::parse(&text).expect_err("invalid YAML must not parse");
        let line = err
            .line()
            .unwrap_or_else(|| panic!("{file}: the error has no line: {err}"));
        assert!(
            line >= 1 && line <= text.lines().count() + 1,
            "{file}: line {line} is outside the file"
        );
        // Callers add the file name in front, as the CLI does.
        let message = format!("{file}: {err}");
        assert!(
            message.starts_with(&format!("{file}: line {line}, column ")),
            "{message}"
        );
    }
}

#[test]
fn every_file_in_the_corpus_directory_is_listed() {
    let expected = expected();
    let dir = corpus_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    files.sort();
    let listed: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(files, listed);
}
