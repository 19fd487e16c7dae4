//! `tinqs-ci doctor --config FILE`: checks that everything the controller needs is in place,
//! and says how to fix what is not.
//!
//! Each check is printed as `ok`, `PROBLEM` (with a fix) or `skipped` (with why). The exit code
//! is 0 when no check found a problem, 1 otherwise. Secrets are checked for presence only;
//! their values are never printed.
//!
//! Nothing is changed: EC2 permissions are probed with `DryRun` requests (EC2 answers
//! `DryRunOperation` when the call would have been allowed, `UnauthorizedOperation` when it
//! would not), DynamoDB write permissions with conditional writes whose condition cannot hold
//! (refused on the condition means the write was allowed). The one Gitea call that is not a
//! read is the registration-token request (a `POST`): Gitea returns the scope's existing token
//! and creates one only when none exists; it never rotates it.
//!
//! The checks are separate functions over the ports ([`check_gitea`] over any
//! [`Forge`](crate::forge::Forge), [`check_ec2`] over any
//! [`Ec2Api`](crate::fleet::ec2::Ec2Api)) so they are tested against the fakes and moto.
//!
//! One group of checks per file: `check.rs` the result type and the report, `local.rs` the
//! configuration, secrets and spool directory, `gitea.rs` Gitea and its token, `aws.rs`
//! credentials, the events queue and AWS refusals, `ec2.rs` and `dynamodb.rs` those services.
//! This file runs them in order.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use model::config::Config;
use model::secret::Secret;

use crate::clock::{Clock, SystemClock};
use crate::fleet::ec2::SdkEc2;
use crate::notices::SqsQueue;

mod aws;
mod check;
mod dynamodb;
mod ec2;
mod gitea;
mod local;

pub use aws::{check_credentials, check_events_queue};
pub use check::{all_passed, text, Check, Verdict, PROBE_TIMEOUT};
pub use dynamodb::{check_table, judge_table};
pub use ec2::check_ec2;
pub use gitea::{check_gitea, forbidden_fix, role_needed, token_need, TokenCall};
pub use local::{check_config, check_secrets, check_spool_dir};

/// `doctor --config FILE`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Runs every check and prints them; exit 0 when all passed, 1 otherwise.
///
/// # Errors
/// When the async runtime cannot start (every other failure is a check's result).
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let rt = crate::wiring::runtime()?;
    let env = |var: &str| std::env::var(var).ok();
    let checks = rt.block_on(diagnose(&args.config, &env, &SystemClock));
    print!("{}", text(&checks));
    Ok(if all_passed(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every check against the real ports: configuration, secrets in the environment (read
/// through `env`), AWS credentials (their expiry read by `clock`), EC2, DynamoDB and Gitea.
pub async fn diagnose(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    clock: &dyn Clock,
) -> Vec<Check> {
    let (check, config) = check_config(path);
    let mut checks = vec![check];
    let Some(config) = config else {
        checks.push(Check::skipped(
            "everything else",
            "needs a valid configuration",
        ));
        return checks;
    };
    checks.extend(check_secrets(&config, env));
    checks.push(check_spool_dir(Path::new(&config.server.spool_dir)));
    let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
    checks.extend(check_aws(&conf, &config, clock).await);
    match env(&config.gitea.token_env).filter(|t| !t.trim().is_empty()) {
        None => checks.push(Check::skipped(
            "gitea",
            format!("needs the API token in {}", config.gitea.token_env),
        )),
        Some(token) => {
            match crate::forge::GiteaForge::new(&config.gitea, Secret::new(token.trim())) {
                Ok(forge) => checks.extend(check_gitea(&forge, &config).await),
                Err(e) => checks.push(Check::problem(
                    "gitea client",
                    e.to_string(),
                    "fix gitea.url (an http or https URL) or the token",
                )),
            }
        }
    }
    checks
}

/// AWS: credentials resolve, EC2 permissions (see [`check_ec2`]) and the DynamoDB table (see
/// [`check_table`]), with clients built from `conf`.
pub async fn check_aws(
    conf: &aws_config::SdkConfig,
    config: &Config,
    clock: &dyn Clock,
) -> Vec<Check> {
    let credentials = check_credentials(conf, clock).await;
    let resolved = !credentials.is_problem();
    let mut out = vec![credentials];
    if !resolved {
        out.push(Check::skipped("ec2 and dynamodb", "needs AWS credentials"));
        return out;
    }
    out.extend(check_ec2(&SdkEc2::from_conf(conf), config).await);
    out.extend(check_table(&aws_sdk_dynamodb::Client::new(conf), &config.store.table).await);
    if let Some(url) = &config.aws.events_queue_url {
        out.push(check_events_queue(&SqsQueue::new(aws_sdk_sqs::Client::new(conf), url)).await);
    }
    out
}
