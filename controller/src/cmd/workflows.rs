//! `tinqs-ci workflows show|match`: see a workflow file the way Gitea does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::Output;

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
/// When the file cannot be read or parsed.
pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("workflows show is not built yet ({})", args.file.display())
}

/// Prints whether the push triggers the workflow.
///
/// # Errors
/// When the file cannot be read or parsed.
pub fn matches(args: &MatchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("workflows match is not built yet ({})", args.workflow.display())
}
