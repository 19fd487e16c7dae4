//! The job instances a run of a workflow creates: one per job and matrix combination, with
//! `runs-on` labels filled in from the combination where that is possible.
//!
//! This is what a push-mode webhook needs to know which runners a triggered workflow will ask
//! for. It follows Gitea's job parser: combinations in Gitea's order, `runs-on` labels as
//! [`Job::labels`](super::Job::labels), and each `${{ matrix.<key> }}` replaced by the
//! combination's value (strings as they are, numbers in Go's shortest form, booleans as
//! `true`/`false`, null as empty, lists as `Array`, mappings as `Object`). Any other
//! expression, or a key the combination lacks, leaves the labels unknown: Gitea would need
//! the run's context (or would put an empty label there) to decide.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::matrix::{display_name, Combination, Matrix};
use super::parse::{Job, Workflow};
use super::yaml::to_json;

/// All job instances of one run, and the jobs that could not be expanded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expansion {
    /// One entry per job and matrix combination, jobs in file order, combinations in Gitea's
    /// order.
    pub instances: Vec<JobInstance>,
    /// Jobs with no instances listed here, and why.
    pub not_expanded: Vec<NotExpanded>,
}

/// One job instance: what a single runner will be asked to run.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInstance {
    /// The job's key under `jobs`.
    pub job_id: String,
    /// 0-based position among this job's instances.
    pub index: usize,
    /// How many instances this job has.
    pub count: usize,
    /// The job name Gitea shows (and sends in `workflow_job` webhooks) for this instance,
    /// when it can be worked out without the run's context.
    pub name: Option<String>,
    /// The matrix combination (empty for a job without a matrix).
    pub matrix: BTreeMap<String, serde_json::Value>,
    /// The runner labels this instance asks for.
    pub runs_on: Labels,
}

/// The runner labels of one job instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Labels {
    /// Known labels; a runner must carry all of them. Empty when the job has no `runs-on`.
    Known(Vec<String>),
    /// At least one label depends on something other than the matrix.
    Unknown {
        /// The labels as written, after the matrix values that could be filled in.
        partial: Vec<String>,
        /// Why they are not known.
        reason: String,
    },
}

/// A job that yields no instances here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotExpanded {
    /// The job's key under `jobs`.
    pub job_id: String,
    /// Why.
    pub reason: String,
}

/// Expands every job of `workflow` into its instances.
///
/// Jobs that call a reusable workflow (`uses`) run no steps on a runner of their own and are
/// listed in [`Expansion::not_expanded`], as are jobs whose matrix is decided at run time or
/// cannot be expanded.
#[must_use]
pub fn expand_jobs(workflow: &Workflow) -> Expansion {
    let mut out = Expansion::default();
    for job in &workflow.jobs {
        if let Some(uses) = &job.uses {
            out.not_expanded.push(NotExpanded {
                job_id: job.id.clone(),
                reason: format!(
                    "calls the reusable workflow `{uses}`; its jobs come from that file"
                ),
            });
            continue;
        }
        let combinations = match &job.matrix {
            Matrix::Static(c) => c,
            other => {
                out.not_expanded.push(NotExpanded {
                    job_id: job.id.clone(),
                    reason: other.unknown_reason().unwrap_or_default(),
                });
                continue;
            }
        };
        for (index, combination) in combinations.iter().enumerate() {
            out.instances
                .push(instance(job, index, combinations.len(), combination));
        }
    }
    out
}

fn instance(job: &Job, index: usize, count: usize, combination: &Combination) -> JobInstance {
    let mut partial = Vec::with_capacity(job.labels.len());
    let mut unknown = None;
    for label in &job.labels {
        match interpolate(label, combination) {
            Ok(text) => partial.push(text),
            Err(why) => {
                unknown.get_or_insert(why);
                partial.push(label.clone());
            }
        }
    }
    let runs_on = match unknown {
        None => Labels::Known(partial),
        Some(reason) => Labels::Unknown { partial, reason },
    };
    JobInstance {
        job_id: job.id.clone(),
        index,
        count,
        name: instance_name(job, combination),
        matrix: combination
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect(),
        runs_on,
    }
}

/// Gitea's job name: the `name` (or the id); with a matrix, the name with `${{ }}` filled in,
/// or the name followed by the combination's display name when it has no expression.
fn instance_name(job: &Job, combination: &Combination) -> Option<String> {
    let name = job.name.clone().unwrap_or_else(|| job.id.clone());
    let has_expression = name.contains("${{") && name.contains("}}");
    if combination.is_empty() {
        return (!has_expression).then_some(name);
    }
    if has_expression {
        interpolate(&name, combination).ok()
    } else {
        Some(format!("{name} {}", display_name(combination)))
    }
}

/// Fills in `${{ matrix.<key> }}` expressions; any other expression is an error naming it.
fn interpolate(text: &str, combination: &Combination) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else {
            // An unfinished expression stays literal.
            break;
        };
        out.push_str(&rest[..start]);
        let expression = after[..end].trim();
        let key = matrix_key(expression).ok_or_else(|| {
            format!("`${{{{ {expression} }}}}` needs the run's context, not only the matrix")
        })?;
        let value = lookup(combination, key).ok_or_else(|| {
            format!("the matrix combination has no `{key}` for `${{{{ {expression} }}}}`")
        })?;
        out.push_str(&expression_text(value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `matrix.key` or `matrix['key']` → `key`.
fn matrix_key(expression: &str) -> Option<&str> {
    if let Some(key) = expression.strip_prefix("matrix.") {
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        return valid.then_some(key);
    }
    let inner = expression
        .strip_prefix("matrix[")?
        .strip_suffix(']')?
        .trim();
    let key = inner.strip_prefix('\'')?.strip_suffix('\'')?;
    (!key.contains('\'')).then_some(key)
}

/// Expression property lookup: exact first, then ignoring ASCII case (as Actions does).
fn lookup<'c>(combination: &'c Combination, key: &str) -> Option<&'c Value> {
    combination.get(key).or_else(|| {
        combination
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// How an expression result is written into a string.
fn expression_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Sequence(_) => "Array".into(),
        Value::Mapping(_) => "Object".into(),
        Value::Tagged(t) => expression_text(&t.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(text: &str) -> Expansion {
        expand_jobs(&Workflow::parse(text).expect("test workflow parses"))
    }

    #[test]
    fn one_instance_per_combination_with_labels_filled_in() {
        let e = expand(
            "on: push\njobs:\n  build:\n    runs-on: ['${{ matrix.os }}', 'py${{ matrix.py }}']\n    strategy:\n      matrix:\n        os: [linux, mac]\n        py: [3.10, 3]\n",
        );
        assert!(e.not_expanded.is_empty());
        let got: Vec<(usize, Labels)> = e
            .instances
            .iter()
            .map(|i| (i.index, i.runs_on.clone()))
            .collect();
        let known = |a: &str, b: &str| Labels::Known(vec![a.to_string(), b.to_string()]);
        assert_eq!(
            got,
            vec![
                (0, known("linux", "py3")),
                (1, known("linux", "py3.1")),
                (2, known("mac", "py3")),
                (3, known("mac", "py3.1")),
            ]
        );
        assert!(e
            .instances
            .iter()
            .all(|i| i.count == 4 && i.job_id == "build"));
        assert_eq!(e.instances[1].name.as_deref(), Some("build (linux, 3.1)"));
        assert_eq!(
            e.instances[1].matrix.get("os"),
            Some(&serde_json::json!("linux"))
        );
    }

    #[test]
    fn a_job_without_matrix_is_one_instance() {
        let e = expand("on: push\njobs:\n  a:\n    name: Build\n    runs-on: docker\n");
        assert_eq!(e.instances.len(), 1);
        let i = &e.instances[0];
        assert_eq!((i.index, i.count), (0, 1));
        assert_eq!(i.runs_on, Labels::Known(vec!["docker".into()]));
        assert_eq!(i.name.as_deref(), Some("Build"));
        assert!(i.matrix.is_empty());
    }

    #[test]
    fn other_expressions_and_missing_keys_leave_labels_unknown() {
        let e = expand(
            "on: push\njobs:\n  a:\n    runs-on: '${{ vars.RUNNER }}'\n  b:\n    runs-on: '${{ matrix.nope }}'\n    strategy: {matrix: {os: [x]}}\n",
        );
        for i in &e.instances {
            assert!(matches!(i.runs_on, Labels::Unknown { .. }), "{i:?}");
        }
        let Labels::Unknown { reason, partial } = &e.instances[0].runs_on else {
            panic!("unknown")
        };
        assert!(reason.contains("vars.RUNNER"), "{reason}");
        assert_eq!(partial, &["${{ vars.RUNNER }}"]);
    }

    #[test]
    fn reusable_and_dynamic_jobs_are_not_expanded() {
        let e = expand(
            "on: push\njobs:\n  call:\n    uses: ./.gitea/workflows/x.yml\n  dyn:\n    runs-on: x\n    strategy: {matrix: '${{ fromJSON(needs.a.outputs.m) }}'}\n  ok:\n    runs-on: x\n",
        );
        let ids: Vec<&str> = e.not_expanded.iter().map(|n| n.job_id.as_str()).collect();
        assert_eq!(ids, ["call", "dyn"]);
        assert_eq!(e.instances.len(), 1);
        assert_eq!(e.instances[0].job_id, "ok");
    }

    #[test]
    fn group_runs_on_puts_the_group_last() {
        let e = expand("on: push\njobs:\n  a:\n    runs-on: {group: big, labels: [linux, '${{ matrix.arch }}']}\n    strategy: {matrix: {arch: [arm64]}}\n");
        assert_eq!(
            e.instances[0].runs_on,
            Labels::Known(vec!["linux".into(), "arm64".into(), "big".into()])
        );
    }

    #[test]
    fn matrix_key_forms() {
        assert_eq!(matrix_key("matrix.os"), Some("os"));
        assert_eq!(matrix_key("matrix['os']"), Some("os"));
        assert_eq!(matrix_key("matrix.os || 'x'"), None);
        assert_eq!(matrix_key("github.ref"), None);
    }
}
