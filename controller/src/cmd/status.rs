//! `tinqs-ci status --config FILE [--output text|json]`: what the fleet looks like right now.
//!
//! One observation (the same as a pass's: the table, EC2, Gitea's runners and queued jobs) and
//! one plan over it, summarized per pool, followed by everything that needs a person's
//! attention. It takes no lease and changes nothing, so it is safe next to a running
//! controller. The fleet's numbers and problems are [`model::summary::fleet_summary`], which
//! plans over the same observation with the planner's own predicates; [`summarize`] adds what
//! only this side knows (each source's error as the observation reported it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use model::plan::WarmSummary;
use model::text::escape_control;
use model::{Policy, Timestamp};
use serde::Serialize;

use crate::cmd::output::Output;
use crate::reconcile::{Observation, Reconciler};

pub use model::summary::{PoolStatus, Problem, NO_POOL};

/// `status --config FILE`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The fleet at one moment: per-pool counts and the problems found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// The cluster id.
    pub cluster: String,
    /// When it was observed.
    pub at: Timestamp,
    /// One row per configured pool (in configuration order), then a [`NO_POOL`] row when
    /// anything belongs to no pool.
    pub pools: Vec<PoolStatus>,
    /// Everything that needs attention, most fundamental first (observation errors first).
    pub problems: Vec<Problem>,
    /// What the next pass would do: number of planned actions by kind (`launch`,
    /// `terminate`…).
    pub planned: BTreeMap<String, usize>,
    /// Whether there is no problem at all.
    pub healthy: bool,
    /// The local webhook spool on this host ([`Status::with_spool`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool: Option<SpoolState>,
    /// The actions cache per repository, as the last sweep counted it ([`Status::with_cache`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<model::cache::Stats>,
    /// The warm runners of each pool that keeps any (configuration order), as the planner's
    /// top-up counts them ([`model::plan::warm_summary`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warm: Vec<WarmSummary>,
}

/// The local webhook spool: events waiting for the table and events set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolState {
    /// `server.spool_dir`.
    pub dir: String,
    /// Events waiting to be replayed.
    pub pending: usize,
    /// Events set aside in its `dead-letter/` folder (they never replay by themselves).
    pub dead_letter: usize,
}

impl Status {
    /// Adds the cache statistics the last sweep wrote (`None` before the first sweep).
    #[must_use]
    pub fn with_cache(mut self, stats: Option<model::cache::Stats>) -> Status {
        self.cache = stats;
        self
    }

    /// Adds the spool in `dir` (as seen from this host); events set aside are a problem.
    #[must_use]
    pub fn with_spool(mut self, dir: &std::path::Path) -> Status {
        let shown = dir.display().to_string();
        match crate::spool::census(dir) {
            Ok(c) => {
                if c.dead_letter > 0 {
                    self.problems.push(Problem::SpoolSetAside {
                        dir: shown.clone(),
                        count: c.dead_letter,
                    });
                }
                self.spool = Some(SpoolState {
                    dir: shown,
                    pending: c.pending,
                    dead_letter: c.dead_letter,
                });
            }
            Err(e) => self.problems.push(Problem::ObservationError {
                source: "spool".into(),
                error: e.to_string(),
            }),
        }
        self.healthy = self.problems.is_empty();
        self
    }
}

/// Observes once through `r` (no lease, no writes), plans over it and summarizes.
pub async fn observe(r: &Reconciler) -> Status {
    let observation = r.observe().await;
    summarize(&observation, &r.policy(), r.clock.now())
}

/// The cache statistics in the bucket, when the cache is configured and they can be read
/// (a failure to read them is logged, never fatal to `status`).
async fn cache_stats(config: &model::config::Config) -> Option<model::cache::Stats> {
    let cache = config.cache.as_ref()?;
    let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
    let blobs = crate::cache::blobs::Blobs::from_conf(&conf, &cache.bucket);
    let layout = model::cache::Layout::new(&cache.prefix);
    match crate::cache::sweep::read_stats(&blobs, &layout).await {
        Ok(stats) => stats,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cache statistics");
            None
        }
    }
}

/// Runs `status`.
///
/// # Errors
/// When the configuration is invalid, or a port cannot be set up (a missing token, Gitea
/// unreachable at start-up).
pub fn run(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let config = crate::wiring::load_config(&args.config)?;
    let spool_dir = config.server.spool_dir.clone();
    crate::telemetry::init(false);
    let rt = crate::wiring::runtime()?;
    rt.block_on(async {
        let connected = crate::wiring::connect(config).await?;
        let cache = cache_stats(&connected.reconciler.config).await;
        let status = observe(&connected.reconciler)
            .await
            .with_spool(std::path::Path::new(&spool_dir))
            .with_cache(cache);
        match args.output {
            Output::Text => print!("{}", text(&status)),
            Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Summarizes one observation at `now`. Pure.
///
/// The pools, the problems, the planned actions and the warm runners are
/// [`model::summary::fleet_summary`] of the observation (the plan the next pass would make,
/// from the planner's own predicates); each source the observation names an error for is
/// listed first with that error, in place of the summary's note about it.
#[must_use]
pub fn summarize(obs: &Observation, policy: &Policy, now: Timestamp) -> Status {
    let fleet = model::summary::fleet_summary(&obs.desired, &obs.observed, policy, now);
    let mut problems: Vec<Problem> = obs
        .errors
        .iter()
        .map(|(source, error)| Problem::ObservationError {
            source: (*source).to_owned(),
            error: error.clone(),
        })
        .collect();
    let named = |source: &str| obs.errors.iter().any(|(s, _)| *s == source);
    problems.extend(
        fleet
            .problems
            .into_iter()
            .filter(|p| !matches!(p, Problem::ObservationError { source, .. } if named(source))),
    );
    Status {
        cluster: policy.cluster.clone(),
        at: now,
        pools: fleet.pools,
        healthy: problems.is_empty(),
        problems,
        planned: fleet.planned,
        spool: None,
        cache: None,
        warm: fleet.warm,
    }
}

/// What a warm row says besides its columns: warm runners in other states, and the schedule
/// that sets how many are wanted.
fn warm_notes(w: &WarmSummary) -> Vec<String> {
    let mut notes: Vec<String> = [
        (w.pending, "not launched yet"),
        (w.offline, "offline"),
        (w.aged, "past max idle age, kept until replaced"),
        (w.retiring, "being retired"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if !w.schedule.is_empty() {
        let now = if w.wanted > 0 { "inside" } else { "outside" };
        notes.push(format!(
            "min_idle {} in {}; now {now}",
            w.min_idle,
            w.schedule.join(", ")
        ));
    }
    notes
}

/// The status as a person reads it: a table of pools, the warm runners of pools that keep
/// any, the spool and the cache, then the problems, then what the next pass would do.
#[must_use]
pub fn text(status: &Status) -> String {
    let mut out = String::new();
    // Labels, runner names and errors came from webhooks and Gitea: every line is printed
    // with its control characters escaped.
    let mut line = |text: String| {
        let _ = writeln!(out, "{}", escape_control(&text));
    };
    line(format!("cluster {} at {}", status.cluster, status.at));
    line(format!(
        "{:<16} {:>5} {:>8} {:>10} {:>10} {:>5} {:>5} {:>5} {:>9} {:>8}",
        "POOL",
        "RUNS",
        "PENDING",
        "LAUNCHING",
        "INSTANCES",
        "MAX",
        "IDLE",
        "BUSY",
        "STARTING",
        "OFFLINE"
    ));
    for p in &status.pools {
        let max = if p.pool == NO_POOL {
            "-".to_owned()
        } else {
            p.max_instances.to_string()
        };
        line(format!(
            "{:<16} {:>5} {:>8} {:>10} {:>10} {:>5} {:>5} {:>5} {:>9} {:>8}",
            p.pool,
            p.runs,
            p.pending,
            p.launching,
            p.instances,
            max,
            p.idle_runners,
            p.busy_runners,
            p.starting_runners,
            p.offline_runners
        ));
    }
    if !status.warm.is_empty() {
        line(format!(
            "{:<16} {:>6} {:>5} {:>7} {:>12}",
            "WARM", "WANTED", "READY", "BOOTING", "IDLE COST"
        ));
        for w in &status.warm {
            let cost = w
                .idle_cost_per_hour
                .map_or_else(|| "-".to_owned(), |c| c.to_string());
            let notes = warm_notes(w);
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join("; "))
            };
            line(format!(
                "{:<16} {:>6} {:>5} {:>7} {:>12}{notes}",
                w.pool, w.wanted, w.ready, w.booting, cost
            ));
        }
    }
    if let Some(sp) = &status.spool {
        line(format!(
            "Spool {}: {} waiting, {} set aside in {}/.",
            sp.dir,
            sp.pending,
            sp.dead_letter,
            crate::spool::DEAD_LETTER
        ));
    }
    if let Some(cache) = &status.cache {
        line(format!(
            "Cache (as of {}): {:<40} {:>8} {:>10} {:>9}",
            model::Timestamp::from_millis(cache.updated_ms),
            "REPOSITORY",
            "ENTRIES",
            "SIZE",
            "HIT RATE"
        ));
        for (repo, u) in &cache.repos {
            let rate = u
                .hit_rate()
                .map_or_else(|| "-".to_owned(), |r| format!("{r}%"));
            line(format!(
                "  {repo:<55} {:>8} {:>10} {:>9}",
                u.entries,
                model::cache::human_bytes(u.bytes),
                format!("{rate} of {}", u.hits + u.misses)
            ));
        }
    }
    if status.problems.is_empty() {
        line("No problems.".into());
    } else {
        line(format!("Problems ({}):", status.problems.len()));
        for p in &status.problems {
            line(format!("  ! {p}"));
        }
    }
    if status.planned.is_empty() {
        line("Next pass: nothing to do.".into());
    } else {
        let parts: Vec<String> = status
            .planned
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        line(format!("Next pass would: {}.", parts.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::desired::{DesiredRun, Phase};
    use model::observed::{DesiredView, ForgeRunner, Instance, InstanceState, Observed, Seen};
    use model::testing::{at, instance_for, job_run, name_of, policy, queued, runner, running, T0};
    use model::RunId;

    fn observation(
        runs: Vec<DesiredRun>,
        instances: Vec<Instance>,
        runners: Vec<ForgeRunner>,
    ) -> Observation {
        // Gitea lists the jobs of pending runs as queued.
        let queued_jobs: Vec<model::QueuedJob> = runs
            .iter()
            .filter(|r| r.status.phase == Phase::Pending)
            .filter_map(|r| {
                let labels: Vec<&str> = r.spec.labels.iter().map(String::as_str).collect();
                r.spec.job.as_ref().map(|j| queued(j.id, &labels))
            })
            .collect();
        Observation {
            desired: DesiredView {
                runs,
                complete: true,
                ..DesiredView::default()
            },
            observed: Observed {
                instances: Seen::Complete { items: instances },
                runners: Seen::Complete { items: runners },
                queued_jobs: Seen::Complete { items: queued_jobs },
                jobs_read: vec![],
                notices: vec![],
                disabled_since: std::collections::BTreeMap::new(),
                instances_read_at: None,
                pools_without_capacity: std::collections::BTreeMap::new(),
            },
            errors: vec![],
        }
    }

    fn status_of(obs: &Observation, now: Timestamp) -> Status {
        summarize(obs, &policy(), now)
    }

    fn pool<'s>(s: &'s Status, name: &str) -> &'s PoolStatus {
        s.pools.iter().find(|p| p.pool == name).expect("pool row")
    }

    #[test]
    fn counts_runs_instances_and_runners_per_pool() {
        let pending = job_run(1, &["go"]);
        let busy_run = running(job_run(2, &["go"]), "i-2", T0);
        let idle_run = running(job_run(3, &["docker"]), "i-3", T0);
        let instances = vec![
            instance_for(&busy_run, "i-2", "go", InstanceState::Running, T0),
            instance_for(&idle_run, "i-3", "docker", InstanceState::Running, T0),
        ];
        let runners = vec![
            runner(
                20,
                name_of(&busy_run).as_str(),
                &["go", "linux"],
                true,
                true,
            ),
            runner(
                30,
                name_of(&idle_run).as_str(),
                &["docker", "linux"],
                true,
                false,
            ),
            runner(99, "standing-host-runner", &["host"], true, false),
        ];
        let obs = observation(vec![pending, busy_run, idle_run], instances, runners);
        let s = status_of(&obs, at(60));

        assert_eq!(
            s.pools.iter().map(|p| p.pool.as_str()).collect::<Vec<_>>(),
            ["docker", "go"]
        );
        let go = pool(&s, "go");
        assert_eq!(
            (
                go.runs,
                go.pending,
                go.launching,
                go.instances,
                go.busy_runners,
                go.idle_runners
            ),
            (2, 1, 0, 1, 1, 0)
        );
        assert_eq!(go.max_instances, 10);
        let docker = pool(&s, "docker");
        assert_eq!(
            (
                docker.runs,
                docker.instances,
                docker.idle_runners,
                docker.busy_runners
            ),
            (1, 1, 1, 0)
        );
        assert!(s.healthy, "{:?}", s.problems);
        assert_eq!(
            s.planned.get("launch"),
            Some(&1),
            "the pending run would launch"
        );
    }

    #[test]
    fn reports_unschedulable_runs_with_their_labels_and_puts_them_in_no_pool() {
        let obs = observation(vec![job_run(1, &["gpu"])], vec![], vec![]);
        let s = status_of(&obs, at(10));
        assert!(!s.healthy);
        assert!(s.problems.contains(&Problem::Unschedulable {
            run: RunId::for_job(1, 1),
            labels: vec!["gpu".into()],
        }));
        assert_eq!(pool(&s, NO_POOL).runs, 1);
        assert!(text(&s).contains("unschedulable: run job-1-1 wants [gpu], which no pool serves"));
    }

    #[test]
    fn runs_with_foreign_labels_are_neither_counted_nor_problems() {
        let obs = observation(vec![job_run(1, &["host"])], vec![], vec![]);
        let s = status_of(&obs, at(10));
        assert!(s.healthy, "{:?}", s.problems);
        assert!(s.pools.iter().all(|p| p.runs == 0));
    }

    #[test]
    fn observation_errors_are_listed_by_source_with_the_withheld_note() {
        let mut obs = observation(vec![], vec![], vec![]);
        obs.observed.instances = Seen::Partial {
            items: vec![],
            error: "throttled by EC2".into(),
        };
        obs.errors.push(("ec2", "throttled by EC2".into()));
        obs.desired.complete = false;
        let s = status_of(&obs, at(10));
        let sources: Vec<&str> = s
            .problems
            .iter()
            .filter_map(|p| match p {
                Problem::ObservationError { source, .. } => Some(source.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            sources,
            ["ec2", "dynamodb"],
            "each source once, none invented"
        );
        assert!(s
            .problems
            .iter()
            .any(|p| matches!(p, Problem::Withheld { .. })));
    }

    #[test]
    fn invalid_rows_and_run_errors_are_problems() {
        let mut failing = job_run(2, &["go"]);
        failing.status.last_error = Some("launch: no capacity in any offering".into());
        let mut obs = observation(vec![failing], vec![], vec![]);
        obs.desired.invalid.push(model::observed::InvalidRow {
            key: "job-9-1".into(),
            error: "attribute `phase`: `bogus` is not a phase".into(),
        });
        let s = status_of(&obs, at(10));
        assert!(s.problems.contains(&Problem::InvalidRow {
            key: "job-9-1".into(),
            error: "attribute `phase`: `bogus` is not a phase".into(),
        }));
        assert!(s.problems.contains(&Problem::RunError {
            run: RunId::for_job(2, 1),
            phase: Phase::Pending,
            attempt: 1,
            job: Some("queued".into()),
            error: "launch: no capacity in any offering".into(),
        }));
    }

    #[test]
    fn a_booting_runner_is_starting_until_the_registration_timeout_then_a_problem() {
        let run = running(job_run(1, &["go"]), "i-1", T0);
        let instances = vec![instance_for(&run, "i-1", "go", InstanceState::Running, T0)];
        let runners = vec![runner(
            5,
            name_of(&run).as_str(),
            &["go", "linux"],
            false,
            false,
        )];
        let obs = observation(vec![run], instances, runners);

        let early = status_of(&obs, at(60));
        assert_eq!(pool(&early, "go").starting_runners, 1);
        assert_eq!(pool(&early, "go").offline_runners, 0);
        assert!(early.healthy, "{:?}", early.problems);

        let late = status_of(&obs, at(11 * 60));
        assert_eq!(pool(&late, "go").offline_runners, 1);
        assert!(late.problems.iter().any(|p| matches!(
            p,
            Problem::OfflineRunner { id: 5, note, .. } if note.starts_with("never came online")
        )));
    }

    #[test]
    fn a_runner_that_went_offline_is_a_problem_naming_how_long() {
        let mut run = running(job_run(1, &["go"]), "i-1", T0);
        run.status.registered_at = Some(at(30));
        run.status.runner_id = Some(5);
        run.status.offline_since = Some(at(60));
        let instances = vec![instance_for(&run, "i-1", "go", InstanceState::Running, T0)];
        let runners = vec![runner(
            5,
            name_of(&run).as_str(),
            &["go", "linux"],
            false,
            false,
        )];
        let obs = observation(vec![run], instances, runners);
        let s = status_of(&obs, at(120));
        assert_eq!(
            s.problems
                .iter()
                .filter(|p| matches!(p, Problem::OfflineRunner { .. }))
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["runner tq-test-job-1-1-a1 (#5) offline for 1m (run job-1-1)"]
        );
    }

    #[test]
    fn an_offline_runner_of_no_active_run_is_a_problem() {
        let obs = observation(
            vec![],
            vec![],
            vec![runner(7, "tq-test-job-4-1-a1", &["go"], false, false)],
        );
        let s = status_of(&obs, at(10));
        assert_eq!(pool(&s, "go").offline_runners, 1);
        assert!(s.problems.iter().any(|p| matches!(
            p,
            Problem::OfflineRunner {
                id: 7,
                run: None,
                ..
            }
        )));
    }

    #[test]
    fn instances_past_half_their_max_lifetime_are_listed() {
        let young = running(job_run(1, &["go"]), "i-young", at(2 * 3600));
        let old = running(job_run(2, &["go"]), "i-old", T0);
        let instances = vec![
            instance_for(
                &young,
                "i-young",
                "go",
                InstanceState::Running,
                at(2 * 3600),
            ),
            instance_for(&old, "i-old", "go", InstanceState::Running, T0),
        ];
        let obs = observation(vec![young, old], instances, vec![]);
        let s = status_of(&obs, at(3 * 3600 + 60));
        let aging: Vec<String> = s
            .problems
            .iter()
            .filter(|p| matches!(p, Problem::AgingInstance { .. }))
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            aging,
            ["instance i-old in pool go is 3h 1m old (max lifetime 6h)"]
        );
    }

    #[test]
    fn terminated_instances_and_other_clusters_instances_are_not_counted() {
        let run = running(job_run(1, &["go"]), "i-1", T0);
        let mut foreign = instance_for(&run, "i-other", "go", InstanceState::Running, T0);
        foreign
            .tags
            .insert(model::tags::CLUSTER.into(), "someone-else".into());
        let gone = instance_for(&run, "i-gone", "go", InstanceState::Terminated, T0);
        let obs = observation(vec![run], vec![foreign, gone], vec![]);
        let s = status_of(&obs, at(10));
        assert_eq!(pool(&s, "go").instances, 0);
    }

    #[test]
    fn the_text_escapes_control_characters_from_webhooks_and_gitea() {
        let mut run = job_run(1, &["gpu\u{1b}[2J\r"]);
        run.status.last_error = Some("boom\n  ! fake problem\0".into());
        let obs = observation(vec![run], vec![], vec![]);
        let t = text(&status_of(&obs, at(10)));
        let bad: Vec<char> = t.chars().filter(|c| c.is_control() && *c != '\n').collect();
        assert!(bad.is_empty(), "control characters {bad:?} in {t:?}");
        assert!(t.contains("wants [gpu\\u{1b}[2J\\r]"), "{t}");
        assert!(t.contains("boom\\n  ! fake problem\\0"), "{t}");
        assert!(!t.lines().any(|l| l.starts_with("  ! fake problem")), "{t}");
    }

    #[test]
    fn the_text_has_a_row_per_pool_and_says_when_all_is_well() {
        let obs = observation(vec![], vec![], vec![]);
        let s = status_of(&obs, at(10));
        let t = text(&s);
        assert!(t.contains("No problems."), "{t}");
        assert!(t.contains("Next pass: nothing to do."), "{t}");
        assert_eq!(
            t.lines()
                .filter(|l| l.starts_with("go ") || l.starts_with("docker "))
                .count(),
            2,
            "{t}"
        );
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["healthy"], true);
        assert_eq!(json["pools"][0]["pool"], "docker");
    }

    #[test]
    fn warm_runners_are_shown_per_pool_with_their_idle_cost_when_the_price_is_known() {
        use model::testing::{warm_run, with_warm};
        let ready = {
            let mut r = running(warm_run("go", 0, T0), "i-w0", T0);
            r.status.registered_at = Some(at(60));
            r
        };
        let booting = running(warm_run("go", 1, at(100)), "i-w1", at(100));
        let instances = vec![
            instance_for(&ready, "i-w0", "go", InstanceState::Running, T0),
            instance_for(&booting, "i-w1", "go", InstanceState::Running, at(100)),
        ];
        let runners = vec![
            runner(50, name_of(&ready).as_str(), &["go", "linux"], true, false),
            runner(
                51,
                name_of(&booting).as_str(),
                &["go", "linux"],
                false,
                false,
            ),
        ];
        let obs = observation(vec![ready, booting], instances, runners);
        let mut policy = with_warm(policy(), "go", 3, None);
        let now = at(120);
        let status = |policy: &Policy| summarize(&obs, policy, now);

        let s = status(&policy);
        assert_eq!(s.warm.len(), 1, "only go keeps warm runners");
        let w = &s.warm[0];
        assert_eq!((w.wanted, w.ready, w.booting), (3, 1, 1));
        assert_eq!(w.idle_cost_per_hour, None);
        let t = text(&s);
        let row = t.lines().find(|l| l.starts_with("go ") && l.contains('-'));
        assert!(t.contains("WARM"), "{t}");
        assert!(
            row.is_some_and(
                |r| r.split_whitespace().collect::<Vec<_>>() == ["go", "3", "1", "1", "-"]
            ),
            "no price, no cost: {t}"
        );
        assert_eq!(
            s.planned.get("launch"),
            Some(&1),
            "the top-up launches the third"
        );

        policy.pools[1].hourly_price = Some(model::config::HourlyPrice::from_micros(31_200));
        let s = status(&policy);
        let t = text(&s);
        assert!(
            t.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == ["go", "3", "1", "1", "$0.0624/h"]),
            "two machines serve no job: {t}"
        );
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["warm"][0]["pool"], "go");
        assert_eq!(json["warm"][0]["wanted"], 3);
        assert_eq!(json["warm"][0]["ready"], 1);
        assert_eq!(json["warm"][0]["booting"], 1);
        assert_eq!(json["warm"][0]["idle_cost_per_hour"], 0.0624);

        let without = status_of(&obs, now);
        assert!(without.warm.is_empty());
        assert!(!text(&without).contains("WARM"));
        assert!(serde_json::to_value(&without)
            .expect("json")
            .get("warm")
            .is_none());
    }

    #[test]
    fn the_cache_shows_size_and_hit_rate_per_repository() {
        let obs = observation(vec![], vec![], vec![]);
        let mut stats = model::cache::Stats {
            updated_ms: 1_764_000_000_000,
            ..model::cache::Stats::default()
        };
        stats.repos.insert(
            "acme/app".into(),
            model::cache::RepoUsage {
                entries: 3,
                bytes: 1_500_000_000,
                hits: 9,
                misses: 3,
            },
        );
        let s = status_of(&obs, at(10)).with_cache(Some(stats));
        let t = text(&s);
        assert!(t.contains("acme/app"), "{t}");
        assert!(t.contains("1.5 GB") && t.contains("75% of 12"), "{t}");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["cache"]["repos"]["acme/app"]["hits"], 9);
        assert!(text(&status_of(&obs, at(10))).find("Cache").is_none());
    }

    #[test]
    fn the_spools_depth_and_set_aside_events_are_shown_and_set_aside_ones_are_a_problem() {
        let obs = observation(vec![], vec![], vec![]);
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("spool");
        let empty = status_of(&obs, at(10)).with_spool(&dir);
        assert!(empty.healthy);
        assert!(text(&empty).contains(": 0 waiting, 0 set aside in dead-letter/."));

        std::fs::create_dir_all(dir.join(crate::spool::DEAD_LETTER)).expect("creates");
        std::fs::write(dir.join("0001-a.json"), b"{}").expect("writes");
        std::fs::write(dir.join("0002-b.json"), b"{}").expect("writes");
        std::fs::write(
            dir.join(crate::spool::DEAD_LETTER).join("0000-x.json"),
            b"{}",
        )
        .expect("writes");
        let s = status_of(&obs, at(10)).with_spool(&dir);
        assert!(!s.healthy);
        let t = text(&s);
        assert!(
            t.contains(": 2 waiting, 1 set aside in dead-letter/."),
            "{t}"
        );
        assert!(t.contains("1 spooled event(s) set aside in"), "{t}");
        let json = serde_json::to_value(&s).expect("serializes");
        assert_eq!(json["spool"]["pending"], 2);
        assert_eq!(json["spool"]["dead_letter"], 1);
    }
}
