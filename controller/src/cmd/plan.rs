//! `tinqs-ci plan --world FILE`: plan one pass over a recorded world and print the plan.
//!
//! A world file is JSON: the configuration (a path relative to the world file), the time,
//! the table's active runs and what EC2 and Gitea showed. It lets a person replay what the
//! controller saw and read what it would do, with no AWS or Gitea at hand.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use model::config::Config;
use model::observed::{DesiredView, Observed};
use model::{Plan, Policy, Timestamp};
use serde::Deserialize;

use crate::cmd::output::Output;

/// `plan --world FILE`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A JSON world: config path, now, desired runs and observations.
    #[arg(long)]
    pub world: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// A recorded world.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldFile {
    /// Path of the configuration file, relative to the world file.
    pub config: PathBuf,
    /// The time of the pass.
    pub now: Timestamp,
    /// Whether the Gitea server can disable runners (1.26+).
    #[serde(default)]
    pub can_disable_runners: bool,
    /// The table's active runs.
    pub desired: DesiredView,
    /// EC2 and Gitea.
    pub observed: Observed,
}

/// Plans and prints.
///
/// # Errors
/// When the world or config file cannot be read or parsed.
pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.world)
        .with_context(|| format!("cannot read {}", args.world.display()))?;
    let world: WorldFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid world file", args.world.display()))?;
    let base = args.world.parent().unwrap_or(Path::new("."));
    let config_path = base.join(&world.config);
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = Config::parse(&config_text)
        .with_context(|| format!("{} is not a valid configuration", config_path.display()))?;
    let policy = Policy::from_config(&config, world.can_disable_runners);
    let plan = model::plan(&world.desired, &world.observed, &policy, world.now);
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Output::Text => print!("{}", plan_text(&plan)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A plan as a person reviews it: one line per action with its target, pool and reason,
/// then what could not be scheduled, what was held back, and why anything was withheld.
#[must_use]
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.actions.is_empty() {
        out.push_str("No changes: the fleet matches what is wanted.\n");
    }
    for action in &plan.actions {
        let _ = writeln!(out, "  {action}");
    }
    for u in &plan.unschedulable {
        let _ = writeln!(
            out,
            "  ! unschedulable: run {} wants [{}], which no pool serves",
            u.run,
            u.labels.join(", ")
        );
    }
    for d in &plan.deferred {
        let _ = writeln!(out, "  ~ deferred: {} (limit {})", d.what, d.limit);
    }
    if let Some(why) = &plan.withheld {
        let _ = writeln!(out, "  ! withheld: {why}");
    }
    let _ = writeln!(
        out,
        "Plan: {} action{}, {} unschedulable, {} deferred; next pass in {}.",
        plan.actions.len(),
        if plan.actions.len() == 1 { "" } else { "s" },
        plan.unschedulable.len(),
        plan.deferred.len(),
        model::time::human(plan.requeue_after)
    );
    out
}
