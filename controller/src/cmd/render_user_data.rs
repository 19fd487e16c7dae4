//! `tinqs-ci render-user-data --config FILE --pool LABEL [--self-register]`: print the boot
//! script a runner of that pool would get, with placeholder credentials, for review.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use model::config::{Config, RegistrationMode};
use model::secret::Secret;
use model::userdata::{render, Registration, UserDataInput, USER_DATA_LIMIT};
use model::{RunId, RunnerName};

/// Placeholder runner id in printed scripts.
pub const PLACEHOLDER_RUNNER_ID: i64 = 1;
/// Placeholder runner UUID in printed scripts.
pub const PLACEHOLDER_UUID: &str = "00000000-0000-4000-8000-000000000000";
/// Placeholder runner token in printed scripts.
pub const PLACEHOLDER_RUNNER_TOKEN: &str = "PLACEHOLDER-RUNNER-TOKEN";
/// Placeholder registration token in printed scripts.
pub const PLACEHOLDER_REGISTRATION_TOKEN: &str = "PLACEHOLDER-REGISTRATION-TOKEN";

/// `render-user-data` arguments.
#[derive(Debug, Args)]
pub struct RenderUserDataArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// The pool (its runner label).
    #[arg(long)]
    pub pool: String,
    /// Render the fallback mode, where the instance registers itself with a registration
    /// token (also chosen by `gitea.registration: self-register`).
    #[arg(long)]
    pub self_register: bool,
}

/// Renders and prints the script for `args.pool`; a one-line summary goes to stderr.
///
/// # Errors
/// When the file cannot be read or is invalid, the pool is unknown (the message lists the
/// configured pools), or the script cannot be rendered.
pub fn run(args: &RenderUserDataArgs) -> anyhow::Result<ExitCode> {
    let script = render_for_review(&args.config, &args.pool, args.self_register)?;
    print!("{script}");
    eprintln!(
        "render-user-data: pool {}, {} of {USER_DATA_LIMIT} bytes, placeholder credentials",
        args.pool,
        script.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// The boot script of a runner of `pool`, with placeholder credentials.
///
/// # Errors
/// As [`run`].
pub fn render_for_review(file: &Path, pool: &str, self_register: bool) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let config = Config::parse(&text)
        .with_context(|| format!("{} is not a valid configuration", file.display()))?;
    let registration =
        if self_register || config.gitea.registration == RegistrationMode::SelfRegister {
            Registration::SelfRegister {
                registration_token: Secret::new(PLACEHOLDER_REGISTRATION_TOKEN),
            }
        } else {
            Registration::Preregistered {
                id: PLACEHOLDER_RUNNER_ID,
                uuid: PLACEHOLDER_UUID.to_owned(),
                token: Secret::new(PLACEHOLDER_RUNNER_TOKEN),
            }
        };
    let run = RunId::for_operator("preview").context("placeholder run id")?;
    let runner = RunnerName::new(&config.cluster_id, &run, 1);
    let input = UserDataInput::for_pool(&config, pool, runner, registration)?;
    // NOTE: exposing is fine here: the only credentials in this script are placeholders.
    Ok(render(&input)?.expose().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/config.yaml")
    }

    #[test]
    fn every_example_pool_renders_with_placeholders_only() {
        for pool in ["go", "docker"] {
            let script = render_for_review(&example(), pool, false).expect("renders");
            assert!(script.contains(PLACEHOLDER_RUNNER_TOKEN));
            assert!(
                !script.contains(PLACEHOLDER_REGISTRATION_TOKEN),
                "no registration token when pre-registered"
            );
            assert!(script.contains(&format!("TQ_POOL='{pool}'")));
            assert!(script.contains("TQ_RUNNER_NAME='tq-demo-op-preview-a1'"));
        }
    }

    #[test]
    fn self_register_flag_renders_the_fallback() {
        let script = render_for_review(&example(), "go", true).expect("renders");
        assert!(script.contains("TQ_MODE='self-register'"));
        assert!(script.contains(PLACEHOLDER_REGISTRATION_TOKEN));
        assert!(!script.contains(PLACEHOLDER_RUNNER_TOKEN));
    }

    #[test]
    fn unknown_pool_names_the_configured_pools() {
        let err = render_for_review(&example(), "gpu", false).expect_err("unknown pool");
        assert_eq!(
            format!("{err:#}"),
            "pool `gpu` is not in the configuration; configured pools: docker, go"
        );
    }
}
