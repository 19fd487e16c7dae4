//! `tinqs-ci plan --world FILE`: plan one pass over a recorded world and print the plan.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::cli::Output;

/// `plan --world FILE`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A JSON world: config path, desired runs, observations and `now`.
    #[arg(long)]
    pub world: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Plans and prints.
///
/// # Errors
/// When the world file cannot be read or parsed.
pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("plan is not built yet ({:?}, {:?})", args.world, args.output)
}
