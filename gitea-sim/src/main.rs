//! `gitea-sim`: run the Gitea simulator on its own, for manual use and other processes.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use gitea_sim::{SimConfig, Simulator, WebhookTarget};

/// A Gitea simulator (REST API, runner protocol, webhooks) with a control API under /_sim.
#[derive(Debug, Parser)]
#[command(name = "gitea-sim", disable_version_flag = true)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "GITEA_SIM_LISTEN")]
    listen: SocketAddr,
    /// The admin API token clients must send (`Authorization: token …`).
    #[arg(long, env = "GITEA_SIM_TOKEN", hide_env_values = true)]
    token: String,
    /// Where to POST webhooks.
    #[arg(long, env = "GITEA_SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// Webhook secret (HMAC-SHA256 key).
    #[arg(
        long,
        env = "GITEA_SIM_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    webhook_secret: String,
    /// The Gitea version to pretend to be (routes and fields follow it).
    #[arg(long, default_value = "1.26.4")]
    version: String,
    /// Repositories (`owner/name`) that exist from the start; repeatable.
    #[arg(long = "repo")]
    repos: Vec<String>,
    /// A pre-seeded instance-wide runner registration token.
    #[arg(long, env = "GITEA_SIM_REGISTRATION_TOKEN", hide_env_values = true)]
    registration_token: Option<String>,
    /// Seed for the orders Gitea leaves to the database (tied runners, jobs lists); random
    /// when not given.
    #[arg(long, env = "GITEA_SIM_ORDER_SEED")]
    order_seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let Args {
        listen,
        token,
        webhook_url,
        webhook_secret,
        version,
        repos,
        registration_token,
        order_seed,
    } = Args::parse();
    if token.trim().is_empty() {
        anyhow::bail!("--token must not be empty");
    }
    let mut config = SimConfig::default()
        .listen(listen)
        .admin_token(token)
        .version(version);
    config.repos = repos;
    config.global_registration_token = registration_token;
    config.faults.order_seed = order_seed;
    config.webhook = webhook_url.map(|url| WebhookTarget {
        url,
        secret: webhook_secret,
    });
    let sim = Simulator::start(config)
        .await
        .context("starting the simulator")?;
    println!("gitea-sim listening on {}", sim.base_url());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
