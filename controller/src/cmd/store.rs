//! `tinqs-ci store …`: the DynamoDB table of desired runs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use model::config::Config;

use crate::store::dynamo::DynamoStore;

/// `tinqs-ci store …`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the table, its active-runs index and its TTL setting where missing, and wait
    /// until they are active. Safe to run again: what exists is left as it is.
    Init(InitArgs),
}

/// `tinqs-ci store init`
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The configuration file (its `store.table` and `aws.region` are used).
    #[arg(long)]
    pub config: PathBuf,
    /// How long to wait for the table and index to become active.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// Runs a `store` subcommand.
///
/// # Errors
/// When the configuration cannot be read, or DynamoDB refuses or does not answer.
pub fn run(command: &StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Init(args) => init(args),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = Config::parse(&text)
        .with_context(|| format!("{} is not a valid configuration", args.config.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
        let store = DynamoStore::from_conf(&conf, &config.store);
        store.init_table(args.wait).await
    });
    let report =
        report.with_context(|| format!("cannot initialise table {}", config.store.table))?;
    let table = &config.store.table;
    if report == Default::default() {
        println!("table {table}: already set up (key pk, index active-runs, TTL on expires_at)");
    } else {
        if report.created_table {
            println!("table {table}: created (key pk, index active-runs, on-demand billing)");
        }
        if report.created_index {
            println!("table {table}: added index active-runs");
        }
        if report.enabled_ttl {
            println!("table {table}: TTL enabled on expires_at");
        }
    }
    Ok(ExitCode::SUCCESS)
}
