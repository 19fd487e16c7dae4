//! `tinqs-ci workflows show|match`: see a workflow file the way Gitea does.
//!
//! `show` prints the events and, per job, `runs-on` as written, `needs`, `uses` and the number
//! of job instances Gitea creates for its matrix. `match` decides whether one push triggers
//! the workflow, as Gitea 1.27 would, and says why. Both exit non-zero when the file is not
//! valid YAML, naming the file and the line; a valid file that Gitea would still ignore is
//! reported (a warning for `show`, "not triggered" with the reason for `match`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use model::workflow::{Job, PushEvent, PushFilters, Workflow};
use serde_json::json;

use crate::cmd::output::Output;

/// `workflows show FILE`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `workflows match --workflow FILE --ref REF …`.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// The workflow file.
    #[arg(long)]
    pub workflow: PathBuf,
    /// The full ref pushed (`refs/heads/main`, `refs/tags/v1`).
    #[arg(long = "ref")]
    pub git_ref: String,
    /// The commit before the push (all zeros for a new ref).
    #[arg(long)]
    pub before: Option<String>,
    /// The commit after the push (all zeros for a deleted ref).
    #[arg(long)]
    pub after: Option<String>,
    /// A file the push changed; repeat for each. None means an empty change list.
    #[arg(long = "changed-file")]
    pub changed_files: Vec<String>,
    /// Gitea could not compute the changed files.
    #[arg(long, conflicts_with = "changed_files")]
    pub changed_files_unknown: bool,
    /// The head commit's message (skip markers such as `[skip ci]`).
    #[arg(long)]
    pub head_commit_message: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Prints the parsed workflow.
///
/// # Errors
/// When the file cannot be read or is not valid YAML.
pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let workflow = load(&args.file)?;
    match args.output {
        Output::Json => {
            let text =
                serde_json::to_string_pretty(&show_json(&workflow)).context("cannot write JSON")?;
            println!("{text}");
        }
        Output::Text => print!("{}", show_text(&args.file, &workflow)),
    }
    if let Some(why) = &workflow.ignored_by_gitea {
        eprintln!(
            "warning: {}: Gitea ignores this workflow file, so nothing triggers it: {why}",
            args.file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints whether the push triggers the workflow.
///
/// # Errors
/// When the file cannot be read or is not valid YAML, or the ref is not a full ref.
pub fn matches(args: &MatchArgs) -> anyhow::Result<ExitCode> {
    if !args.git_ref.starts_with("refs/") {
        anyhow::bail!(
            "--ref `{}` is not a full ref; give refs/heads/<branch> or refs/tags/<tag>",
            args.git_ref
        );
    }
    let workflow = load(&args.workflow).map_err(|e| {
        anyhow::anyhow!(
            "{e:#}; Gitea skips a workflow file it cannot parse, so no push triggers it"
        )
    })?;
    let push = PushEvent {
        git_ref: args.git_ref.clone(),
        before: args.before.clone(),
        after: args.after.clone(),
        changed_files: if args.changed_files_unknown {
            None
        } else {
            Some(args.changed_files.clone())
        },
        head_commit_message: args.head_commit_message.clone(),
    };
    let decision = workflow.match_push(&push);
    match args.output {
        Output::Json => {
            let value = json!({"triggered": decision.triggered, "reason": decision.reason});
            let text = serde_json::to_string_pretty(&value).context("cannot write JSON")?;
            println!("{text}");
        }
        Output::Text => {
            let verdict = if decision.triggered {
                "triggered"
            } else {
                "not triggered"
            };
            println!("{verdict}\n{}", decision.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads and parses a workflow file; errors name the file (and the line, for YAML errors).
fn load(path: &Path) -> anyhow::Result<Workflow> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Workflow::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn show_json(workflow: &Workflow) -> serde_json::Value {
    let jobs: serde_json::Map<String, serde_json::Value> = workflow
        .jobs
        .iter()
        .map(|j| {
            (
                j.id.clone(),
                json!({
                    "runs_on": j.runs_on,
                    "needs": j.needs,
                    "uses": j.uses,
                    "matrix_size": j.matrix_size(),
                }),
            )
        })
        .collect();
    json!({"events": workflow.events, "jobs": jobs})
}

fn show_text(path: &Path, workflow: &Workflow) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", path.display());
    let events = if workflow.events.is_empty() {
        "(none)".to_string()
    } else {
        workflow.events.join(", ")
    };
    let _ = writeln!(out, "  events: {events}");
    if let Some(push) = &workflow.push {
        let _ = writeln!(out, "  push filters: {}", filters_text(push));
    }
    let _ = writeln!(out, "  jobs: {}", workflow.jobs.len());
    for job in &workflow.jobs {
        let _ = write!(out, "{}", job_text(job));
    }
    out
}

fn filters_text(push: &PushFilters) -> String {
    let named = [
        ("branches", &push.branches),
        ("branches-ignore", &push.branches_ignore),
        ("tags", &push.tags),
        ("tags-ignore", &push.tags_ignore),
        ("paths", &push.paths),
        ("paths-ignore", &push.paths_ignore),
    ];
    let mut parts: Vec<String> = named
        .iter()
        .filter_map(|(name, patterns)| {
            patterns
                .as_ref()
                .map(|p| format!("{name} [{}]", p.join(", ")))
        })
        .collect();
    parts.extend(
        push.unknown
            .iter()
            .map(|k| format!("{k} (not a push filter: never holds)")),
    );
    if parts.is_empty() {
        "none (every push triggers)".to_string()
    } else {
        parts.join("; ")
    }
}

fn job_text(job: &Job) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  - {}", job.id);
    if let Some(uses) = &job.uses {
        let _ = writeln!(out, "      uses: {uses}");
    }
    match &job.runs_on {
        serde_json::Value::Null => {}
        serde_json::Value::String(label) => {
            let _ = writeln!(out, "      runs-on: {label}");
        }
        other => {
            let _ = writeln!(out, "      runs-on: {other}");
        }
    }
    if !job.needs.is_empty() {
        let _ = writeln!(out, "      needs: {}", job.needs.join(", "));
    }
    let matrix = match job.matrix_size() {
        Some(1) => "1 job instance".to_string(),
        Some(n) => format!("{n} job instances"),
        None => format!(
            "unknown ({})",
            job.matrix
                .unknown_reason()
                .unwrap_or_else(|| "not static".into())
        ),
    };
    let _ = writeln!(out, "      matrix: {matrix}");
    out
}
