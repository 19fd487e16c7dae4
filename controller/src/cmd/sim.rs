//! `tinqs-ci sim`: run a workload through the real controller against a simulated Gitea,
//! EC2 and DynamoDB in virtual time, with faults, and print what happened.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use model::config::Config;

use crate::cmd::output::Output;
use crate::sim::{self, Faults, SimSpec};

/// `sim --config FILE --seed N --jobs N --faults PROFILE`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// The controller's configuration (pools, timeouts, budgets).
    #[arg(long)]
    pub config: PathBuf,
    /// Seed of every random choice: the same seed and inputs give the same result.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Jobs to run (with `--trace`, its first N).
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
    /// Fault profile: none, default, chaos, or one fault kind alone (e.g. spot, never-boot).
    #[arg(long, default_value = "default")]
    pub faults: String,
    /// Replay a history instead of the synthetic workload: CSV `queued_at,labels,duration,outcome`.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Also run the same workload and faults under the old dispatcher, a
    /// terraform-aws-github-runner-like and a GARM-like policy, and print a table.
    #[arg(long)]
    pub compare: bool,
    /// Exit 1 unless tinqs-ci lost no job, launched no run twice, killed no busy runner,
    /// touched nothing foreign, and its p95 wait is within the slowest boot plus two resyncs.
    #[arg(long)]
    pub gate: bool,
    /// Also write one self-contained HTML page with plots for each policy.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Reads the inputs, simulates and prints the report.
///
/// # Errors
/// When a file cannot be read or is invalid, or the profile is unknown.
pub fn run(args: &SimArgs) -> anyhow::Result<ExitCode> {
    let spec = spec(args)?;
    let reports = if args.compare {
        sim::compare(&spec)?
    } else {
        vec![sim::run(&spec)?]
    };
    if let Some(path) = &args.report {
        std::fs::write(path, sim::html(&reports))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match args.output {
        Output::Text => {
            for r in &reports {
                print!("{}", r.to_text());
            }
            if reports.len() > 1 {
                println!();
                print!("{}", sim::comparison_table(&reports));
            }
        }
        Output::Json if reports.len() == 1 => {
            println!("{}", serde_json::to_string_pretty(&reports[0])?);
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
    }
    if args.gate {
        if let Some(ours) = reports.first() {
            let bound = sim::wait_bound(&spec.config);
            let problems = sim::gate(ours, bound);
            if !problems.is_empty() {
                eprintln!("gate failed: {}", problems.join("; "));
                return Ok(ExitCode::FAILURE);
            }
            eprintln!(
                "gate passed: nothing lost, no double launch, no busy kill, nothing foreign touched, p95 {:.1}s within {:.0}s",
                ours.queued_to_started.p95,
                bound.as_secs_f64()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn spec(args: &SimArgs) -> anyhow::Result<SimSpec> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = Config::parse(&text)
        .with_context(|| format!("{} is not a valid configuration", args.config.display()))?;
    let faults = Faults::profile(&args.faults).map_err(anyhow::Error::msg)?;
    let trace = match &args.trace {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                sim::parse_trace(&text)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("{} is not a valid trace", path.display()))?,
            )
        }
        None => None,
    };
    if args.jobs == 0 {
        anyhow::bail!("--jobs must be at least 1");
    }
    Ok(SimSpec {
        config,
        seed: args.seed,
        jobs: args.jobs,
        profile: args.faults.clone(),
        faults,
        trace,
    })
}
