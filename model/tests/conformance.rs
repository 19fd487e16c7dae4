//! Every case of the shared conformance data (`shared/conformance/*.json`) gives the value
//! Gitea 1.27 gives.
//!
//! The shared directory is `$TINQS_SHARED_DIR`, or `../../shared` from this crate. A missing
//! directory fails the test: the data is the point of it.

use std::path::PathBuf;

use model::workflow::{pattern, PushEvent, Workflow};
use serde_json::Value as Json;

fn shared_dir() -> PathBuf {
    std::env::var_os("TINQS_SHARED_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    )
}

fn load(name: &str) -> Vec<Json> {
    let path = shared_dir().join("conformance").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); set TINQS_SHARED_DIR to the directory holding conformance/",
            path.display()
        )
    });
    let cases: Vec<Json> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a JSON list: {e}", path.display()));
    assert!(!cases.is_empty(), "{} holds no cases", path.display());
    cases
}

fn field<'a>(case: &'a Json, key: &str) -> &'a Json {
    case.get(key)
        .unwrap_or_else(|| panic!("case {} has no `{key}`", case["id"]))
}

fn strings(value: &Json) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn opt_string(case: &Json, key: &str) -> Option<String> {
    case.get(key).and_then(Json::as_str).map(str::to_string)
}

/// Builds the workflow Gitea would read for a case's `on:` value; `None` when Gitea would
/// ignore the file.
fn workflow_for(on: &Json) -> Result<Workflow, String> {
    let on = serde_yaml_ng::to_value(on).map_err(|e| e.to_string())?;
    let mut top = serde_yaml_ng::Mapping::new();
    top.insert("on".into(), on);
    top.insert(
        "jobs".into(),
        serde_yaml_ng::Value::Mapping(serde_yaml_ng::Mapping::new()),
    );
    Workflow::from_value(serde_yaml_ng::Value::Mapping(top)).map_err(|e| e.to_string())
}

#[test]
fn every_trigger_vector_gives_the_gitea_1_27_result() {
    let cases = load("trigger-vectors.json");
    let mut failures = Vec::new();
    for case in &cases {
        let id = field(case, "id").as_str().unwrap_or("?").to_string();
        assert_eq!(
            field(case, "event").as_str(),
            Some("push"),
            "{id}: only push cases are expected"
        );
        let expected = field(case, "expected")
            .as_bool()
            .unwrap_or_else(|| panic!("{id}: `expected` is not a boolean"));
        let push = PushEvent {
            git_ref: field(case, "ref").as_str().unwrap_or_default().to_string(),
            before: opt_string(case, "before"),
            after: opt_string(case, "after"),
            changed_files: match field(case, "changed_files") {
                Json::Null => None,
                files => Some(strings(files)),
            },
            head_commit_message: opt_string(case, "head_commit_message"),
        };
        let (got, reason) = match workflow_for(field(case, "workflow_on")) {
            Ok(workflow) => {
                let decision = workflow.match_push(&push);
                (decision.triggered, decision.reason)
            }
            Err(e) => (false, format!("Gitea ignores the workflow: {e}")),
        };
        if got != expected {
            failures.push(format!("{id}: expected {expected}, got {got} ({reason})"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} trigger vectors fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_glob_vector_gives_the_gitea_1_27_result() {
    let cases = load("glob-vectors.json");
    let mut failures = Vec::new();
    for case in &cases {
        let id = field(case, "id").as_str().unwrap_or("?").to_string();
        let expected = field(case, "expected")
            .as_bool()
            .unwrap_or_else(|| panic!("{id}: `expected` is not a boolean"));
        let patterns = strings(field(case, "patterns"));
        let inputs = strings(field(case, "inputs"));
        let must_fail = case
            .get("compile_error")
            .and_then(|c| c.get("gitea_main"))
            .and_then(Json::as_bool);
        let filter = field(case, "filter").as_str().unwrap_or_default();
        let (got, note) = match pattern::compile_all(&patterns) {
            // A list that does not compile never holds.
            Err(e) => {
                if must_fail == Some(false) {
                    failures.push(format!("{id}: must compile, but {e}"));
                }
                (false, e.to_string())
            }
            Ok(compiled) => {
                if must_fail == Some(true) {
                    failures.push(format!("{id}: {patterns:?} must not compile"));
                }
                let holds = match filter {
                    "include" => !pattern::skip(&compiled, &inputs),
                    "ignore" => !pattern::filter(&compiled, &inputs),
                    other => panic!("{id}: unknown filter kind `{other}`"),
                };
                (holds, String::new())
            }
        };
        if got != expected {
            failures.push(format!(
                "{id}: {filter} {patterns:?} on {inputs:?}: expected {expected}, got {got} {note}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} glob vectors fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
