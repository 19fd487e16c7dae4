//! The command line: `tinqs-ci <command>`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;

/// tinqs-ci: every Gitea Actions job on its own fresh EC2 Spot instance.
#[derive(Debug, Parser)]
#[command(name = "tinqs-ci", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect workflow files the way Gitea reads them.
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// Plan one pass over a recorded world (desired runs + observations) and print the plan.
    Plan(cmd::plan::PlanArgs),
    /// Print the boot script (EC2 user-data) of a pool's runners, with placeholder credentials.
    RenderUserData(cmd::render_user_data::RenderUserDataArgs),
    /// Work with the DynamoDB table of desired runs.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
    /// Serve webhooks, run the reconcile loop, and expose /metrics, /healthz and /readyz.
    Serve(cmd::serve::ServeArgs),
    /// Run one reconcile pass (`--once`), or only plan it (`--dry-run`).
    Reconcile(cmd::reconcile::ReconcileArgs),
    /// List, inspect, add, cancel or retry desired runs.
    #[command(subcommand)]
    Runs(cmd::runs::RunsCommand),
    /// Show the fleet per pool and everything unhealthy (one observation; changes nothing).
    Status(cmd::status::StatusArgs),
    /// Check configuration, secrets, AWS permissions, the table and Gitea; say how to fix each.
    Doctor(cmd::doctor::DoctorArgs),
    /// Simulate a workload under faults in virtual time, through the real planner and executor.
    Sim(cmd::sim::SimArgs),
}

/// `tinqs-ci config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file and print every problem, naming the field.
    Validate {
        /// The file.
        file: PathBuf,
    },
}

/// `tinqs-ci workflows …`
#[derive(Debug, Subcommand)]
pub enum WorkflowsCommand {
    /// Print the events, and each job's runs-on, needs, uses and matrix size.
    Show(cmd::workflows::ShowArgs),
    /// Decide whether a push triggers a workflow, as Gitea would.
    Match(cmd::workflows::MatchArgs),
}

/// Runs the parsed command line.
#[must_use]
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Config(ConfigCommand::Validate { file }) => cmd::config::validate(&file),
        Command::Workflows(WorkflowsCommand::Show(args)) => cmd::workflows::show(&args),
        Command::Workflows(WorkflowsCommand::Match(args)) => cmd::workflows::matches(&args),
        Command::Plan(args) => cmd::plan::run(&args),
        Command::RenderUserData(args) => cmd::render_user_data::run(&args),
        Command::Store(command) => cmd::store::run(&command),
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Reconcile(args) => cmd::reconcile::run(&args),
        Command::Runs(command) => cmd::runs::run(&command),
        Command::Status(args) => cmd::status::run(&args),
        Command::Doctor(args) => cmd::doctor::run(&args),
        Command::Sim(args) => cmd::sim::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
