//! `tinqs-ci runs list|show|add|cancel|retry`: edit the desired-state table.
//!
//! These write only the spec side of a row (or create rows), never the status, so they are
//! safe while a controller runs: the controller sees the change on its next pass. The same
//! edits made directly in DynamoDB are honoured the same way.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use model::desired::{DesiredRun, JobState, Origin, RunSpec};
use model::text::escape_control;
use model::{RunId, Timestamp};

use crate::clock::{Clock, SystemClock};
use crate::cmd::output::Output;
use crate::store::Store;

/// `tinqs-ci runs …`
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Active runs (and rows that could not be read).
    List(Common),
    /// One run, active or not.
    Show(IdArgs),
    /// Add a run by hand: one ephemeral runner for the given labels.
    Add(AddArgs),
    /// Cancel a run: its runner is removed (once idle) and the run ends.
    Cancel(IdArgs),
    /// Retry an ended run: a new run with the same spec (`<id>-r<N>`).
    Retry(IdArgs),
}

/// Options every `runs` command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// A command about one run.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The run id.
    pub id: String,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// `runs add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The runner labels the run needs (the job's `runs-on`), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub labels: Vec<String>,
    /// Launch in this pool regardless of labels.
    #[arg(long)]
    pub pool: Option<String>,
    /// The run's name; its id becomes `op-<name>` (default: from the current time).
    #[arg(long)]
    pub name: Option<String>,
    /// The repository the run is for (`owner/name`), for people.
    #[arg(long)]
    pub repo: Option<String>,
    /// Shared options.
    #[command(flatten)]
    pub common: Common,
}

/// Runs a `runs` subcommand against the configured table.
///
/// # Errors
/// When the configuration is invalid, the table cannot be reached, or the run is unknown.
pub fn run(command: &RunsCommand) -> anyhow::Result<ExitCode> {
    let common = match command {
        RunsCommand::List(c) => c,
        RunsCommand::Show(a) | RunsCommand::Cancel(a) | RunsCommand::Retry(a) => &a.common,
        RunsCommand::Add(a) => &a.common,
    };
    let config = crate::wiring::load_config(&common.config)?;
    if let RunsCommand::Add(a) = command {
        check_pool(a.pool.as_deref(), &config)?;
    }
    let rt = crate::wiring::runtime()?;
    rt.block_on(async {
        let store = crate::wiring::store(&config).await;
        execute(&store, command, &SystemClock).await
    })
}

/// Executes `command` against `store` (the table, or a fake in tests), printing the result.
///
/// # Errors
/// When the store fails or the run is unknown.
pub async fn execute(
    store: &dyn Store,
    command: &RunsCommand,
    clock: &dyn Clock,
) -> anyhow::Result<ExitCode> {
    match command {
        RunsCommand::List(c) => {
            let view = store.list_active().await.context("cannot list runs")?;
            match c.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
                Output::Text => print!("{}", list_text(&view, clock.now())),
            }
        }
        RunsCommand::Show(a) => {
            let id = parse_id(&a.id)?;
            let run = store
                .get(&id)
                .await
                .context("cannot read the run")?
                .with_context(|| format!("no run {id}"))?;
            print_run(&run, a.common.output)?;
        }
        RunsCommand::Add(a) => {
            let name = a
                .name
                .clone()
                .unwrap_or_else(|| format!("{}", clock.now().as_millis()));
            let id = RunId::for_operator(&name).context("invalid --name")?;
            let labels: Vec<String> = a
                .labels
                .iter()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            anyhow::ensure!(!labels.is_empty(), "--labels must name at least one label");
            let spec = RunSpec {
                labels,
                pool: a.pool.clone(),
                repo: a.repo.clone(),
                job: None,
                origin: Origin::Operator,
                job_state: JobState::Queued,
                cancel: false,
                created_at: clock.now(),
            };
            let run = DesiredRun::new(id.clone(), spec);
            let created = store.create(&run).await.context("cannot add the run")?;
            anyhow::ensure!(created, "run {id} exists already");
            print_run(&run, a.common.output)?;
        }
        RunsCommand::Cancel(a) => {
            let id = parse_id(&a.id)?;
            let found = store
                .set_cancel(&id, true)
                .await
                .context("cannot cancel the run")?;
            anyhow::ensure!(found, "no run {id}");
            if a.common.output == Output::Json {
                println!("{}", serde_json::json!({"run": id, "cancel": true}));
            } else {
                println!(
                    "run {id}: cancel requested; its runner is removed once idle and the run ends"
                );
            }
        }
        RunsCommand::Retry(a) => {
            let id = parse_id(&a.id)?;
            let old = store
                .get(&id)
                .await
                .context("cannot read the run")?
                .with_context(|| format!("no run {id}"))?;
            anyhow::ensure!(
                old.status.phase.is_final(),
                "run {id} is still {}: only an ended run can be retried (cancel it first)",
                old.status.phase
            );
            let mut spec = old.spec.clone();
            spec.cancel = false;
            spec.job_state = JobState::Queued;
            spec.origin = Origin::Operator;
            spec.created_at = clock.now();
            let mut created = None;
            for n in 1..=100 {
                let new_id =
                    RunId::parse(&format!("{id}-r{n}")).context("the retried id is too long")?;
                let run = DesiredRun::new(new_id, spec.clone());
                if store.create(&run).await.context("cannot add the retry")? {
                    created = Some(run);
                    break;
                }
            }
            let run = created.with_context(|| format!("run {id} was retried 100 times already"))?;
            print_run(&run, a.common.output)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses a `--pool` the configuration does not define, naming the pools it does.
fn check_pool(pool: Option<&str>, config: &model::config::Config) -> anyhow::Result<()> {
    match pool {
        Some(pool) if !config.pools.contains_key(pool) => {
            let known: Vec<&str> = config.pools.keys().map(String::as_str).collect();
            anyhow::bail!(
                "--pool {}: no such pool; configured pools: {}",
                escape_control(pool),
                known.join(", ")
            )
        }
        _ => Ok(()),
    }
}

fn parse_id(id: &str) -> anyhow::Result<RunId> {
    RunId::parse(id).map_err(|e| anyhow::anyhow!(e))
}

fn print_run(run: &DesiredRun, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(run)?),
        Output::Text => print!("{}", show_text(run)),
    }
    Ok(())
}

/// One run for people: its spec, the Gitea job's state as Gitea reported it, and apart from
/// that what the controller did and what became of the run.
fn show_text(run: &DesiredRun) -> String {
    use std::fmt::Write as _;
    let s = &run.status;
    let mut out = String::new();
    // Labels, the repository and recorded errors came from webhooks and Gitea: each line is
    // printed with its control characters escaped.
    let mut line = |text: String| {
        let _ = writeln!(out, "{}", escape_control(&text));
    };
    line(format!("run {}", run.id));
    line(format!("  labels:   {}", run.spec.labels.join(", ")));
    if let Some(pool) = &run.spec.pool {
        line(format!("  pool:     {pool}"));
    }
    if let Some(repo) = &run.spec.repo {
        line(format!("  repo:     {repo}"));
    }
    if let Some(job) = &run.spec.job {
        line(format!(
            "  job:      {} (pick {}): {}",
            job.id,
            job.attempt,
            run.spec.job_state.describe()
        ));
    }
    line(format!("  origin:   {:?}", run.spec.origin));
    line(format!(
        "  phase:    {} (attempt {}){}",
        s.phase,
        s.attempt,
        if run.spec.cancel {
            ", cancel requested"
        } else {
            ""
        }
    ));
    if let Some(i) = &s.instance_id {
        line(format!("  instance: {i}"));
    }
    if let Some(name) = &s.runner_name {
        line(format!(
            "  runner:   {name}{}",
            s.runner_id
                .map(|id| format!(" (#{id})"))
                .unwrap_or_default()
        ));
    }
    if let Some(outcome) = &s.outcome {
        line(format!("  outcome:  {outcome}"));
    }
    if let Some(e) = &s.last_error {
        line(format!("  error:    {e}"));
    }
    out
}

fn list_text(view: &model::observed::DesiredView, now: Timestamp) -> String {
    let mut out = format!(
        "{:<28} {:<10} {:>3} {:<22} {:<16} {:<20} {:>6}  {}\n",
        "RUN", "PHASE", "ATT", "JOB", "LABELS", "INSTANCE", "AGE", "NOTE"
    );
    for r in &view.runs {
        let age = model::time::human(now.since(r.spec.created_at));
        let note = if r.spec.cancel {
            "cancel requested".to_owned()
        } else {
            r.status
                .outcome
                .clone()
                .or_else(|| r.status.last_error.clone())
                .unwrap_or_default()
        };
        let job = if r.spec.job.is_some() {
            r.spec.job_state.describe()
        } else {
            "-".to_owned()
        };
        let row = format!(
            "{:<28} {:<10} {:>3} {:<22} {:<16} {:<20} {:>6}  {}",
            r.id.as_str(),
            r.status.phase.as_str(),
            r.status.attempt,
            job,
            r.spec.labels.join(","),
            r.status.instance_id.as_ref().map_or("-", |i| i.as_str()),
            age,
            note
        );
        out.push_str(&escape_control(&row));
        out.push('\n');
    }
    for bad in &view.invalid {
        let row = format!("{:<28} INVALID: {}", bad.key, bad.error);
        out.push_str(&escape_control(&row));
        out.push('\n');
    }
    out.push_str(&format!(
        "{} active run(s), {} invalid row(s)\n",
        view.runs.len(),
        view.invalid.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::desired::{JobState, Phase, StatusChange};
    use model::testing::{at, job_run};

    fn finished_failed_job() -> DesiredRun {
        let mut run = job_run(7, &["go"]);
        run.spec.job_state = JobState::Completed {
            conclusion: "failure".into(),
        };
        run.status = run.status.apply(
            &StatusChange::Finish {
                phase: Phase::Done,
                error: None,
                outcome: Some("its runner took the job and ended".into()),
            },
            at(60),
        );
        run
    }

    #[test]
    fn a_run_whose_job_failed_never_reads_as_succeeded() {
        let text = show_text(&finished_failed_job());
        assert!(
            text.contains("job:      7 (pick 1): completed (failure)"),
            "{text}"
        );
        assert!(text.contains("phase:    done (attempt 1)"), "{text}");
        assert!(
            text.contains("outcome:  its runner took the job and ended"),
            "{text}"
        );
        assert!(!text.contains("succeeded"), "{text}");
    }

    /// A run whose labels, repository and error came from a hostile webhook or Gitea.
    fn run_with_escapes() -> DesiredRun {
        let mut run = job_run(5, &["go\u{1b}[2J", "x\ry"]);
        run.spec.repo = Some("acme/app\u{1b}]0;pwned\u{7}\0".into());
        run.status.last_error = Some("bad\nfake line".into());
        run
    }

    fn assert_no_control(text: &str) {
        let bad: Vec<char> = text
            .chars()
            .filter(|c| c.is_control() && *c != '\n')
            .collect();
        assert!(bad.is_empty(), "control characters {bad:?} in {text:?}");
    }

    #[test]
    fn show_escapes_control_characters_from_webhooks() {
        let text = show_text(&run_with_escapes());
        assert_no_control(&text);
        assert!(text.contains("labels:   go\\u{1b}[2J, x\\ry"), "{text}");
        assert!(
            text.contains("repo:     acme/app\\u{1b}]0;pwned\\u{7}\\0"),
            "{text}"
        );
        assert!(text.contains("error:    bad\\nfake line"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("fake line")), "{text}");
    }

    #[test]
    fn list_escapes_control_characters_from_webhooks() {
        let mut run = run_with_escapes();
        run.status.last_error = Some("bad\r\u{1b}[1A".into());
        let view = model::observed::DesiredView {
            runs: vec![run],
            invalid: vec![model::observed::InvalidRow {
                key: "run#x\u{1b}".into(),
                error: "broken\nrow".into(),
            }],
            complete: true,
            ..model::observed::DesiredView::default()
        };
        let text = list_text(&view, at(120));
        assert_no_control(&text);
        assert!(text.contains("go\\u{1b}[2J,x\\ry"), "{text}");
        assert!(text.contains("bad\\r\\u{1b}[1A"), "{text}");
        assert!(text.contains("INVALID: broken\\nrow"), "{text}");
        assert_eq!(
            text.lines().count(),
            4,
            "header, run, invalid row, total: {text}"
        );
    }

    #[test]
    fn add_refuses_a_pool_that_is_not_configured_naming_the_pools() {
        let config = model::config::Config::parse(model::config::EXAMPLE).expect("example");
        let err = check_pool(Some("nosuchpool"), &config)
            .expect_err("unknown pool")
            .to_string();
        assert_eq!(
            err,
            "--pool nosuchpool: no such pool; configured pools: docker, go"
        );
        check_pool(Some("go"), &config).expect("a configured pool");
        check_pool(None, &config).expect("no pool: chosen by labels");
    }

    #[test]
    fn the_list_shows_the_jobs_state_beside_the_runs_phase() {
        let mut cancelled = job_run(8, &["go"]);
        cancelled.spec.job_state = JobState::Completed {
            conclusion: "cancelled".into(),
        };
        let view = model::observed::DesiredView {
            runs: vec![finished_failed_job(), cancelled, job_run(9, &["go"])],
            complete: true,
            ..model::observed::DesiredView::default()
        };
        let text = list_text(&view, at(120));
        let row = |id: &str| {
            text.lines()
                .find(|l| l.starts_with(id))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(row("job-7-1").contains("completed (failure)"), "{text}");
        assert!(
            row("job-7-1").contains("its runner took the job and ended"),
            "{text}"
        );
        assert!(row("job-8-1").contains("cancelled"), "{text}");
        assert!(row("job-9-1").contains("queued"), "{text}");
        assert!(!text.contains("succeeded"), "{text}");
    }
}
