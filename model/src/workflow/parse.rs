//! Reading a workflow file into the parts tinqs-ci needs, with Gitea's rules.

use serde_yaml_ng::{Mapping, Value};

use super::matrix::{self, Matrix};
use super::yaml::{self, is_scalar, join, key_text, kind, scalar_text};
use crate::text::{cut_quoted, shown};

/// Why a workflow file cannot be used. Gitea skips such a file: no push triggers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not valid YAML, or breaks a rule Gitea's YAML reader enforces (a repeated
    /// key, an unknown anchor). The caller adds the file name.
    #[error("{}{}", location(*line, *column), cut_quoted(message, MAX_QUOTED))]
    Yaml {
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the parser knows it.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The file holds no YAML document (empty, or only comments).
    #[error("the file holds no YAML document")]
    Empty,
    /// Valid YAML of a shape Gitea rejects (`jobs` as a list, `on.push.branches` as a mapping…).
    #[error("`{}`: {}", shown(path, MAX_QUOTED), cut_quoted(message, MAX_QUOTED))]
    Invalid {
        /// Where, as a dotted path (`jobs.build.steps[2].with`).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Keys, names and paths from the file longer than this many characters are cut when an
/// error quotes them (a path of a thousand-character key helps no one). The path is shown
/// apart from its message: a key holding a quote must not pair with a quote of the message
/// and hide where a value starts.
const MAX_QUOTED: usize = 64;

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        (Some(l), None) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl ParseError {
    /// The 1-based line of a YAML error, when known.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::Yaml { line, .. } => *line,
            ParseError::Empty | ParseError::Invalid { .. } => None,
        }
    }
}

/// A workflow file as Gitea sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    /// The `on:` event names as written, sorted (`push`, `pull_request`, `schedule`…).
    pub events: Vec<String>,
    /// The filters of the `push` event; `None` when `push` is not an event.
    pub push: Option<PushFilters>,
    /// The jobs, in file order.
    pub jobs: Vec<Job>,
    /// Why Gitea 1.27 ignores this file altogether (no push, or any other event, triggers it),
    /// or `None` when it uses it. Gitea decodes the file into typed structures and runs its job
    /// parser before matching; a value of the wrong type (a list where a string belongs, an
    /// expression for a step's `continue-on-error`), an `on:` it cannot read, a job with no
    /// body, or a matrix it cannot expand makes it skip the file with a warning in its log.
    pub ignored_by_gitea: Option<String>,
    /// Gitea's event list, used for matching.
    pub(crate) triggers: Vec<Trigger>,
}

/// The filters under `on.push`. A filter given as one string is a one-item list; an absent
/// filter is `None`; a filter written with no value (`branches:`) is one empty pattern, as in
/// Gitea.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushFilters {
    /// `branches`.
    pub branches: Option<Vec<String>>,
    /// `branches-ignore`.
    pub branches_ignore: Option<Vec<String>>,
    /// `tags`.
    pub tags: Option<Vec<String>>,
    /// `tags-ignore`.
    pub tags_ignore: Option<Vec<String>>,
    /// `paths`.
    pub paths: Option<Vec<String>>,
    /// `paths-ignore`.
    pub paths_ignore: Option<Vec<String>>,
    /// Other keys under `push` (`types`…): Gitea never counts them as holding, so a push never
    /// triggers the workflow.
    pub unknown: Vec<String>,
}

/// One job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The key under `jobs`.
    pub id: String,
    /// `name`, when set.
    pub name: Option<String>,
    /// `runs-on` as written: a string, a list, a `{group, labels}` mapping, or null when absent.
    pub runs_on: serde_json::Value,
    /// The labels Gitea derives from `runs-on` before expressions are filled in: a string is
    /// one label, a list its items, a mapping its `labels` then its `group`.
    pub labels: Vec<String>,
    /// `needs`: one string becomes a one-item list; absent is empty.
    pub needs: Vec<String>,
    /// `uses`: the reusable workflow this job calls, if any.
    pub uses: Option<String>,
    /// What Gitea makes of `strategy.matrix`.
    pub matrix: Matrix,
}

impl Job {
    /// The number of job instances Gitea creates for this job, when known statically.
    #[must_use]
    pub fn matrix_size(&self) -> Option<usize> {
        self.matrix.size()
    }
}

/// One `on:` event as Gitea's `ParseRawOn` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trigger {
    pub(crate) name: String,
    pub(crate) kind: TriggerKind,
}

/// How an event is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TriggerKind {
    /// No filters (`push`, `push:`, `push: {}` or `push: []`).
    Plain,
    /// Filter keys with their pattern lists, in file order.
    Filters(Vec<(String, Vec<String>)>),
    /// A non-empty list under the event key: Gitea stores it as a schedule and never matches
    /// it against a push.
    Schedule,
}

/// `workflow_call` is only fired by another workflow's `uses:`; Gitea 1.27 leaves it out of
/// trigger detection.
const WORKFLOW_CALL: &str = "workflow_call";

/// Gitea's typed fields of a workflow file that are not covered job by job.
const TOP_LEVEL: yaml::Ty = yaml::Ty::Struct(&[("run-name", yaml::Ty::Str)]);

impl Workflow {
    /// Parses a workflow file.
    ///
    /// Only text that is not a YAML mapping fails; a file Gitea would ignore for other
    /// reasons parses, with the reason in [`Workflow::ignored_by_gitea`].
    ///
    /// # Errors
    /// [`ParseError::Yaml`] (with the line) for invalid YAML, [`ParseError::Empty`] for a file
    /// with no document, [`ParseError::Invalid`] when the top level is not a mapping or merge
    /// keys are malformed.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::from_value(yaml::load(text)?)
    }

    /// Builds a workflow from an already-parsed YAML value (the whole file).
    ///
    /// # Errors
    /// As [`Workflow::parse`], for a value that is not a mapping.
    pub fn from_value(value: Value) -> Result<Self, ParseError> {
        let value = yaml::untag(value);
        let top = match &value {
            Value::Mapping(top) => top,
            Value::Null => return Err(ParseError::Empty),
            other => {
                return Err(ParseError::Invalid {
                    path: "(top level)".into(),
                    message: format!("expected a mapping of workflow keys, found {}", kind(other)),
                })
            }
        };
        // Gitea reads `on:` node by node, so merge keys inside it are not applied.
        let on = raw_on(top);
        let mut rest = top.clone();
        rest.remove("on");
        let mut rest = Value::Mapping(rest);
        yaml::apply_merges(&mut rest, "")?;
        let Value::Mapping(rest) = rest else {
            return Err(invalid(
                "(top level)",
                "expected a mapping of workflow keys",
            ));
        };

        // Gitea's order: decode the file, read `on:`, then run the job parser.
        let mut problems: Vec<ParseError> = Vec::new();
        let rest_value = Value::Mapping(rest.clone());
        if let Err(e) = yaml::check(&rest_value, &yaml::WORKFLOW, "") {
            problems.push(e);
        }
        let triggers = parse_on(on.as_ref()).unwrap_or_else(|e| {
            problems.push(e);
            Vec::new()
        });
        if let Err(e) = yaml::check(&rest_value, &TOP_LEVEL, "") {
            problems.push(e);
        }
        let jobs = parse_jobs(rest.get("jobs"), &mut problems);

        let mut events = event_names(on.as_ref());
        events.sort();
        let push = on
            .as_ref()
            .filter(|_| events.iter().any(|e| e == "push"))
            .map(push_filters);
        Ok(Self {
            events,
            push,
            jobs,
            ignored_by_gitea: problems.first().map(ToString::to_string),
            triggers,
        })
    }

    /// The job with this id.
    #[must_use]
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// The `on` value as written, also when it comes in through a top-level merge key.
fn raw_on(top: &Mapping) -> Option<Value> {
    if let Some(on) = top.get("on") {
        return Some(on.clone());
    }
    let sources: Vec<&Value> = match top.get("<<")? {
        Value::Sequence(items) => items.iter().collect(),
        single => vec![single],
    };
    sources.into_iter().find_map(|s| match s {
        Value::Mapping(m) => m.get("on").cloned(),
        _ => None,
    })
}

fn invalid(path: &str, message: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        path: path.to_string(),
        message: message.into(),
    }
}

/// The event names as written: a string, the items of a list, or the keys of a mapping.
fn event_names(on: Option<&Value>) -> Vec<String> {
    let names: Vec<String> = match on {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(Value::Mapping(events)) => events.keys().filter_map(scalar_text).collect(),
        Some(scalar) => scalar_text(scalar).into_iter().collect(),
    };
    names.into_iter().filter(|n| !n.is_empty()).collect()
}

/// Gitea's `ParseRawOn`.
fn parse_on(on: Option<&Value>) -> Result<Vec<Trigger>, ParseError> {
    let plain = |name: String| Trigger {
        name,
        kind: TriggerKind::Plain,
    };
    match on {
        None => Err(invalid(
            "on",
            "missing: Gitea ignores a workflow without `on`",
        )),
        Some(Value::Sequence(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(name) if name == WORKFLOW_CALL => {}
                    Value::String(name) => out.push(plain(name.clone())),
                    other => {
                        return Err(invalid(
                            &format!("on[{i}]"),
                            format!("expected an event name, found {}", kind(other)),
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(Value::Mapping(events)) => {
            let mut out = Vec::with_capacity(events.len());
            for (k, v) in events {
                let name = scalar_text(k)
                    .ok_or_else(|| invalid("on", format!("an event key is {}", kind(k))))?;
                if name == WORKFLOW_CALL {
                    continue;
                }
                let path = join("on", &name);
                if name == "<<" {
                    return Err(invalid(
                        &path,
                        "Gitea does not apply merge keys inside `on`",
                    ));
                }
                let kind = match v {
                    Value::Sequence(items) => parse_event_list(&name, items, &path)?,
                    Value::Mapping(acts) => parse_acts(&name, acts, &path)?,
                    _ => TriggerKind::Plain,
                };
                out.push(Trigger { name, kind });
            }
            Ok(out)
        }
        Some(scalar) => {
            let name = scalar_text(scalar).unwrap_or_default();
            Ok(if name == WORKFLOW_CALL {
                Vec::new()
            } else {
                vec![plain(name)]
            })
        }
    }
}

/// A list under an event key: schedules for `schedule`, and Gitea stores any non-empty list
/// the same way.
fn parse_event_list(name: &str, items: &[Value], path: &str) -> Result<TriggerKind, ParseError> {
    if name == "schedule" {
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Value::Mapping(entry) = item else {
                return Err(invalid(
                    &item_path,
                    format!("expected a mapping such as `cron: …`, found {}", kind(item)),
                ));
            };
            for (k, v) in entry {
                if !matches!(v, Value::String(_)) {
                    return Err(invalid(
                        &join(&item_path, &key_text(k)),
                        format!("expected a string, found {}", kind(v)),
                    ));
                }
            }
        }
    }
    Ok(if items.is_empty() {
        TriggerKind::Plain
    } else {
        TriggerKind::Schedule
    })
}

/// The filter keys of one event.
fn parse_acts(event: &str, acts: &Mapping, path: &str) -> Result<TriggerKind, ParseError> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in acts {
        let act = scalar_text(k)
            .ok_or_else(|| invalid(path, format!("a key is {}, expected a string", kind(k))))?;
        let act_path = join(path, &act);
        if act == "<<" {
            return Err(invalid(
                &act_path,
                "Gitea does not apply merge keys inside `on`",
            ));
        }
        match v {
            Value::Sequence(items) => {
                let mut patterns = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let text = scalar_text(item).ok_or_else(|| {
                        invalid(
                            &format!("{act_path}[{i}]"),
                            format!("expected a string, found {}", kind(item)),
                        )
                    })?;
                    patterns.push(text);
                }
                out.push((act, patterns));
            }
            Value::Mapping(inputs) => {
                if event != "workflow_dispatch" || act != "inputs" {
                    return Err(invalid(
                        &act_path,
                        "a mapping is only allowed for `workflow_dispatch.inputs`",
                    ));
                }
                check_dispatch_inputs(inputs, &act_path)?;
            }
            scalar => out.push((act, vec![scalar_text(scalar).unwrap_or_default()])),
        }
    }
    Ok(if out.is_empty() {
        TriggerKind::Plain
    } else {
        TriggerKind::Filters(out)
    })
}

/// `workflow_dispatch.inputs`: each input is a mapping Gitea decodes into typed fields.
fn check_dispatch_inputs(inputs: &Mapping, path: &str) -> Result<(), ParseError> {
    const INPUT: yaml::Ty = yaml::Ty::Struct(&[
        ("name", yaml::Ty::Str),
        ("description", yaml::Ty::Str),
        ("required", yaml::Ty::Bool),
        ("default", yaml::Ty::Str),
        ("type", yaml::Ty::Str),
        ("options", yaml::Ty::Seq(&yaml::Ty::Str)),
    ]);
    for (k, v) in inputs {
        if !is_scalar(k) {
            return Err(invalid(path, format!("an input name is {}", kind(k))));
        }
        let input_path = join(path, &key_text(k));
        if !matches!(v, Value::Mapping(_)) {
            return Err(invalid(
                &input_path,
                format!("expected a mapping, found {}", kind(v)),
            ));
        }
        yaml::check(v, &INPUT, &input_path)?;
    }
    Ok(())
}

/// The push filters as written (for display; matching uses Gitea's reading).
fn push_filters(on: &Value) -> PushFilters {
    let mut filters = PushFilters::default();
    let Value::Mapping(events) = on else {
        return filters;
    };
    let Some(Value::Mapping(acts)) = events.get("push") else {
        return filters;
    };
    for (k, v) in acts {
        let key = key_text(k);
        let patterns = match v {
            Value::Sequence(items) => items.iter().filter_map(scalar_text).collect(),
            Value::Mapping(_) => Vec::new(),
            scalar => scalar_text(scalar).into_iter().collect(),
        };
        let slot = match key.as_str() {
            "branches" => &mut filters.branches,
            "branches-ignore" => &mut filters.branches_ignore,
            "tags" => &mut filters.tags,
            "tags-ignore" => &mut filters.tags_ignore,
            "paths" => &mut filters.paths,
            "paths-ignore" => &mut filters.paths_ignore,
            _ => {
                filters.unknown.push(key);
                continue;
            }
        };
        *slot = Some(patterns);
    }
    filters
}

/// The jobs, as far as they can be read; what Gitea rejects goes to `problems`.
fn parse_jobs(jobs: Option<&Value>, problems: &mut Vec<ParseError>) -> Vec<Job> {
    let map = match jobs {
        Some(Value::Mapping(map)) => map,
        None | Some(Value::Null) => {
            problems.push(invalid(
                "jobs",
                "missing: Gitea's job parser needs a mapping of jobs",
            ));
            return Vec::new();
        }
        Some(other) => {
            problems.push(invalid(
                "jobs",
                format!("expected a mapping of jobs, found {}", kind(other)),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let Some(id) = scalar_text(k) else {
            problems.push(invalid("jobs", format!("a job id is {}", kind(k))));
            continue;
        };
        let path = join("jobs", &id);
        let empty = Mapping::new();
        let job = match v {
            Value::Mapping(job) => job,
            Value::Null => {
                problems.push(invalid(
                    &path,
                    "the job has no body; Gitea's job parser rejects the file",
                ));
                &empty
            }
            other => {
                problems.push(invalid(
                    &path,
                    format!("expected a mapping, found {}", kind(other)),
                ));
                continue;
            }
        };
        if let Err(e) = yaml::check(v, &yaml::JOB, &path) {
            problems.push(e);
        }
        let matrix = matrix::expand(job.get("strategy"));
        if let Matrix::Invalid(why) = &matrix {
            problems.push(invalid(&join(&path, "strategy.matrix"), why.clone()));
        }
        out.push(Job {
            name: job
                .get("name")
                .and_then(scalar_text)
                .filter(|n| !n.is_empty()),
            runs_on: job
                .get("runs-on")
                .map_or(serde_json::Value::Null, yaml::to_json),
            labels: runs_on_labels(job.get("runs-on")),
            needs: string_slice(job.get("needs")),
            uses: job
                .get("uses")
                .and_then(scalar_text)
                .filter(|u| !u.is_empty()),
            matrix,
            id,
        });
    }
    out
}

/// Gitea's `RunsOn()`.
fn runs_on_labels(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Mapping(m)) => {
            let group = match m.get("group") {
                None => String::new(),
                Some(g) => match scalar_text(g) {
                    Some(text) => text,
                    // Gitea cannot decode the mapping at all.
                    None => return Vec::new(),
                },
            };
            let mut labels = string_slice(m.get("labels"));
            if !group.is_empty() {
                labels.push(group);
            }
            labels
        }
        other => string_slice(other),
    }
}

/// Gitea's `nodeAsStringSlice` (also its `Needs()`): a scalar is one item, a list of scalars
/// its items, anything else nothing.
fn string_slice(value: Option<&Value>) -> Vec<String> {
    match value {
        None | Some(Value::Mapping(_)) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(scalar_text)
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        Some(scalar) => scalar_text(scalar).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Workflow {
        Workflow::parse(text).expect("test workflow parses")
    }

    #[test]
    fn on_as_string_list_or_map() {
        assert_eq!(parse("on: push\njobs: {}\n").events, ["push"]);
        assert_eq!(
            parse("on: [push, pull_request]\njobs: {}\n").events,
            ["pull_request", "push"]
        );
        let w = parse("on:\n  workflow_dispatch:\n  push:\n    branches: main\njobs: {}\n");
        assert_eq!(w.ignored_by_gitea, None);
        assert_eq!(w.events, ["push", "workflow_dispatch"]);
        let push = w.push.expect("push filters");
        assert_eq!(push.branches, Some(vec!["main".to_string()]));
        assert_eq!(push.paths, None);
    }

    #[test]
    fn yaml_1_2_keeps_on_a_string_and_yes_a_string() {
        let w = parse("on:\n  push:\n    branches: [yes, off, 1.0]\n");
        assert_eq!(w.events, ["push"]);
        let branches = w.push.and_then(|p| p.branches).expect("branches");
        assert_eq!(branches, ["yes", "off", "1.0"]);
    }

    #[test]
    fn repeated_keys_are_an_error_with_a_line() {
        let e = Workflow::parse("on: push\njobs:\n  a:\n    runs-on: x\n  a:\n    runs-on: y\n")
            .expect_err("duplicate");
        assert!(e.line().is_some(), "{e}");
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    /// Found by fuzzing (`TINQS_FUZZ_SEED=2` in model/tests/fuzz_inputs.rs): an error's path
    /// repeated an 8,124-character job key whole, an 8 KiB error. Keys, anchors and names
    /// from the file are cut when an error quotes them, whichever error it is.
    #[test]
    fn a_long_key_is_cut_in_the_error_that_names_it() {
        let key = "x".repeat(8124);
        let merge = format!("on: push\njobs:\n  release:\n    ? {key}\n    : <<: 1\n");
        // A plain key is at most 1,024 characters in YAML; a longer one is written `? key`.
        let duplicate = format!("on: push\njobs:\n  ? {key}\n  : {{}}\n  ? {key}\n  : {{}}\n");
        // A quote in a key before the long one must not pair with a quote after it.
        let quoted = format!("on: push\njobs:\n  '`':\n    ? {key}\n    : <<: 1\n");
        for text in [merge, duplicate, quoted] {
            let e = Workflow::parse(&text).expect_err("refused").to_string();
            assert!(e.len() < 400, "{} bytes: {}", e.len(), &e[..400]);
            assert!(
                e.contains("xxxxxxxx… (81"),
                "the key's head and length: {e}"
            );
        }
        let w = parse(&format!("on: push\njobs:\n  ? {key}\n  : {{name: [1]}}\n"));
        let why = w.ignored_by_gitea.expect("a list is not a name");
        assert!(why.len() < 400, "{why}");
        // The error value itself keeps the whole path, for code that looks at it.
        let Err(ParseError::Invalid { path, .. }) = Workflow::parse(&format!(
            "on: push\njobs:\n  release:\n    ? {key}\n    : <<: 1\n"
        )) else {
            panic!("a bad merge key is invalid");
        };
        assert_eq!(path, format!("jobs.release.{key}.<<"));
    }

    #[test]
    fn invalid_yaml_names_the_line() {
        let e = Workflow::parse("on: push\njobs:\n  a: [1, 2\n").expect_err("unclosed list");
        assert_eq!(e.line(), Some(4), "{e}");
        assert!(e.to_string().starts_with("line 4, column"), "{e}");
    }

    #[test]
    fn empty_and_non_mapping_files_are_errors() {
        assert_eq!(Workflow::parse(""), Err(ParseError::Empty));
        assert_eq!(Workflow::parse("# nothing\n"), Err(ParseError::Empty));
        assert!(matches!(
            Workflow::parse("- a\n- b\n"),
            Err(ParseError::Invalid { .. })
        ));
    }

    #[test]
    fn merge_keys_apply_to_jobs_like_go_yaml() {
        let w = parse(
            "on: push\n\
             x-base: &base\n  runs-on: [self-hosted, big]\n  needs: a\n\
             jobs:\n  a: {runs-on: small}\n  b:\n    <<: *base\n    needs: [a]\n",
        );
        let b = w.job("b").expect("job b");
        assert_eq!(b.labels, ["self-hosted", "big"]);
        assert_eq!(b.needs, ["a"], "the key written in the mapping wins");
        assert_eq!(w.ignored_by_gitea, None);
    }

    #[test]
    fn merge_keys_inside_on_make_gitea_ignore_the_workflow() {
        let w = parse("x: &f {branches: [main]}\non:\n  push:\n    <<: *f\njobs: {}\n");
        let why = w.ignored_by_gitea.expect("ignored");
        assert!(why.contains("on.push.<<"), "{why}");
    }

    #[test]
    fn shapes_gitea_rejects_are_recorded_naming_the_path() {
        let cases = [
            ("on: push\njobs: [a]\n", "`jobs`"),
            ("on: push\n", "`jobs`: missing"),
            (
                "on: push\njobs:\n  a:\n    steps:\n      - with: {x: [1]}\n",
                "`jobs.a.steps[0].with.x`",
            ),
            (
                "on: push\njobs:\n  a:\n    steps:\n      - continue-on-error: ${{ matrix.x }}\n",
                "`jobs.a.steps[0].continue-on-error`",
            ),
            ("on: push\nenv:\n  A: [1]\njobs: {}\n", "`env.A`"),
            ("on: push\njobs:\n  a:\n", "`jobs.a`: the job has no body"),
            (
                "on:\n  push:\n    branches: {main: true}\njobs: {}\n",
                "`on.push.branches`",
            ),
            (
                "on:\n  schedule: ['0 0 * * *']\njobs: {}\n",
                "`on.schedule[0]`",
            ),
            ("on: [push, 1]\njobs: {}\n", "`on[1]`"),
            ("jobs: {}\n", "`on`: missing"),
            (
                "on: push\njobs:\n  a:\n    strategy: '${{ fromJSON(x) }}'\n",
                "`jobs.a.strategy`",
            ),
            (
                "on: push\njobs:\n  a:\n    strategy: {matrix: {os: [x], exclude: [{arch: y}]}}\n",
                "`jobs.a.strategy.matrix`",
            ),
        ];
        for (text, want) in cases {
            let w = Workflow::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let why = w
                .ignored_by_gitea
                .unwrap_or_else(|| panic!("{text}: Gitea should ignore it"));
            assert!(why.starts_with(want), "{text}: {why}");
        }
    }

    #[test]
    fn workflow_call_is_not_a_trigger_but_is_an_event() {
        let w = parse("on:\n  workflow_call:\n    inputs: {x: {type: string}}\n    secrets: {t: {required: true}}\n  push:\njobs: {}\n");
        assert_eq!(w.events, ["push", "workflow_call"]);
        assert_eq!(w.ignored_by_gitea, None);
        assert_eq!(w.triggers.len(), 1);
    }

    #[test]
    fn jobs_keep_runs_on_needs_uses_as_written() {
        let w = parse(
            "on: push\njobs:\n  a:\n    runs-on: {group: g, labels: [x, y]}\n  b:\n    needs: a\n    uses: ./.gitea/workflows/x.yml\n  c:\n    runs-on: [self-hosted, '${{ matrix.os }}']\n    needs: [a, b]\n",
        );
        let a = w.job("a").expect("a");
        assert_eq!(
            a.runs_on,
            serde_json::json!({"group": "g", "labels": ["x", "y"]})
        );
        assert_eq!(a.labels, ["x", "y", "g"]);
        assert!(a.needs.is_empty());
        let b = w.job("b").expect("b");
        assert_eq!(b.runs_on, serde_json::Value::Null);
        assert_eq!(b.needs, ["a"]);
        assert_eq!(b.uses.as_deref(), Some("./.gitea/workflows/x.yml"));
        let c = w.job("c").expect("c");
        assert_eq!(
            c.runs_on,
            serde_json::json!(["self-hosted", "${{ matrix.os }}"])
        );
        assert_eq!(c.matrix_size(), Some(1));
        assert_eq!(
            w.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn only_the_first_document_counts() {
        let w = parse("on: push\njobs: {a: {runs-on: x}}\n---\non: [: broken\n");
        assert_eq!(w.jobs.len(), 1);
    }
}
