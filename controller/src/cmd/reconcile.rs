//! `tinqs-ci reconcile --once [--dry-run]`: one pass, for CI pipelines and for people.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::cmd::output::Output;
use crate::notices::NoticeReceiver;
use crate::reconcile::{Mode, PassOutcome, Reconciler};
use crate::store::StoreError;

/// `reconcile --once …`
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Run exactly one pass, then exit (the only mode; `serve` runs the loop).
    #[arg(long, required = true)]
    pub once: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Exit 0 when nothing is to be done, 2 when changes were planned or applied, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Runs one pass.
///
/// # Errors
/// When the configuration is invalid, a port cannot be reached at start-up, or another
/// controller holds the lease.
pub fn run(args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    let config = crate::wiring::load_config(&args.config)?;
    crate::telemetry::init(false);
    let rt = crate::wiring::runtime()?;
    rt.block_on(async {
        let connected = crate::wiring::connect(config).await?;
        drain_then_once(connected.notices.as_ref(), &connected.reconciler, args).await
    })
}

/// Receives the notices waiting on the events queue (when one is configured), then runs
/// [`once`]: the notices waiting now are this pass's. A queue that cannot be read makes none
/// (the rules reading EC2's own state still hold).
///
/// # Errors
/// As [`once`].
pub async fn drain_then_once(
    notices: Option<&NoticeReceiver>,
    r: &Reconciler,
    args: &ReconcileArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(receiver) = notices {
        if let Err(e) = receiver.drain().await {
            tracing::warn!(error = %e, "cannot read the events queue; planning without EC2 notices");
        }
    }
    once(r, args).await
}

/// One pass over `r` as the command line asks, printed; the exit code follows
/// `--detailed-exitcode`.
///
/// # Errors
/// When another controller holds the lease, or the lease cannot be taken.
pub async fn once(r: &Reconciler, args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    let outcome = if args.dry_run {
        r.pass(Mode::DryRun, None).await
    } else {
        let lease = match r.acquire().await {
            Ok(lease) => lease,
            Err(StoreError::LeaseHeld { holder, until }) => anyhow::bail!(
                "another controller ({holder}) holds the lease until {until}: only one may apply plans; \
                 use --dry-run to look, or stop the other controller"
            ),
            Err(e) => return Err(anyhow::anyhow!(e).context("cannot take the lease")),
        };
        let outcome = r.pass(Mode::Apply, Some(&lease)).await;
        r.release(&lease).await;
        outcome
    };
    match args.output {
        Output::Text => print!("{}", text(&outcome, args.dry_run)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&as_json(&outcome))?),
    }
    let failed = outcome.report.as_ref().is_some_and(|r| r.failures() > 0)
        || !outcome.observation.is_complete();
    let changes = !outcome.plan.is_empty();
    Ok(match (args.detailed_exitcode, failed, changes) {
        (_, true, _) => ExitCode::FAILURE,
        (true, false, true) => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}

fn text(outcome: &PassOutcome, dry_run: bool) -> String {
    let mut out = String::new();
    for (source, error) in &outcome.observation.errors {
        out.push_str(&format!("! could not observe {source}: {error}\n"));
    }
    out.push_str(&super::plan::plan_text(&outcome.plan));
    match &outcome.report {
        None if dry_run => out.push_str("Dry run: nothing was changed.\n"),
        None => {}
        Some(report) => {
            for o in &report.outcomes {
                match &o.result {
                    Ok(()) => out.push_str(&format!("  done: {}\n", o.action)),
                    Err(e) => out.push_str(&format!("  FAILED: {}: {e}\n", o.action)),
                }
            }
            out.push_str(&format!(
                "Applied: {} succeeded, {} failed.\n",
                report.outcomes.len() - report.failures(),
                report.failures()
            ));
        }
    }
    out
}

fn as_json(outcome: &PassOutcome) -> serde_json::Value {
    let errors: Vec<_> = outcome
        .observation
        .errors
        .iter()
        .map(|(source, error)| json!({"source": source, "error": error}))
        .collect();
    let applied = outcome.report.as_ref().map(|r| {
        r.outcomes
            .iter()
            .map(|o| {
                let error = o.result.as_ref().err();
                json!({
                    "action": o.action,
                    "ok": o.result.is_ok(),
                    "error": error.map(ToString::to_string),
                    "error_kind": error.map(crate::reconcile::StepError::kind),
                })
            })
            .collect::<Vec<_>>()
    });
    json!({"observation_errors": errors, "plan": outcome.plan, "applied": applied})
}

#[cfg(test)]
mod tests {
    use model::testing::{at, Scene};

    use super::*;
    use crate::fleet::FleetError;
    use crate::reconcile::{ApplyReport, Observation, Outcome, StepError};

    #[test]
    fn the_json_report_gives_each_failed_steps_kind_next_to_its_text() {
        let scene = Scene::new(vec![], vec![], vec![], vec![], at(0));
        let action = model::Action::Terminate {
            instance: model::InstanceId::new("i-1"),
            run: None,
            runner: None,
            pool: None,
            reason: model::Reason::Cancelled,
        };
        let outcome = PassOutcome {
            observation: Observation {
                desired: scene.desired.clone(),
                observed: scene.observed(),
                errors: vec![("Gitea runners", "timed out".into())],
            },
            plan: model::Plan::default(),
            report: Some(ApplyReport {
                outcomes: vec![
                    Outcome {
                        action: action.clone(),
                        result: Err(StepError::Fleet(FleetError::Throttled("slow down".into()))),
                    },
                    Outcome {
                        action,
                        result: Ok(()),
                    },
                ],
            }),
        };
        let json = as_json(&outcome);
        assert_eq!(json["applied"][0]["ok"], false);
        assert_eq!(json["applied"][0]["error_kind"], "fleet");
        assert!(json["applied"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("slow down")));
        assert_eq!(json["applied"][1]["ok"], true);
        assert!(json["applied"][1]["error_kind"].is_null());
        assert_eq!(json["observation_errors"][0]["source"], "Gitea runners");
    }
}
