//! A `workflow_job` payload translated into what the table records: the run it is about
//! (`job-<id>-<pick>`), that run's spec, the job's state, and for a job a runner of ours took,
//! the record the cache reads. Pure: no store, no clock, no log.

use std::time::Duration;

use model::cache::RunnerJob;
use model::desired::{AttemptCounting, JobAction, JobRef, JobState, Origin, RunSpec};
use model::{RunId, Timestamp};
use serde::Deserialize;

use super::decode::{parse, Decoded, Invalid};
use crate::forge::gitea::{repo_from_api_url, RepoRef, WorkflowJob};

/// What one `workflow_job` event says, ready for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct JobEvent {
    /// The run: the job and its pick, so a redelivery is the same run and a re-run a new one.
    pub run: RunId,
    /// The run's spec, its job state the reported one: what is created when the table has no
    /// such run yet (its `queued` delivery was lost).
    pub spec: RunSpec,
    /// For an `in_progress` event naming a runner of ours (`tq-…`) of a known repository: the
    /// runner's name and which job it runs, for the cache (`wiki/Cache.md`).
    pub runner_job: Option<(String, RunnerJob)>,
}

impl JobEvent {
    /// The job's state as the event reports it.
    pub(super) fn state(&self) -> &JobState {
        &self.spec.job_state
    }
}

#[derive(Deserialize)]
struct WorkflowJobHook {
    action: String,
    workflow_job: WorkflowJob,
    #[serde(default)]
    repository: Option<RepoRef>,
}

/// Translates a `workflow_job` payload received at `at` from a Gitea that counts attempts as
/// `counting` does. `waiting` (blocked on `needs` or concurrency; Gitea sends `queued` when
/// the job can run) and unknown actions are ignored.
///
/// # Errors
/// [`Invalid::Malformed`] for a body that is not a `workflow_job` payload, a job id that is
/// not positive or a `run_attempt` out of range; [`Invalid::Refused`] for a field over its
/// [limit](super::limits).
pub(super) fn translate(
    body: &[u8],
    counting: AttemptCounting,
    at: Timestamp,
) -> Result<Decoded<JobEvent>, Invalid> {
    let hook: WorkflowJobHook = parse(body)?;
    let job = hook.workflow_job;
    if job.id <= 0 {
        return Err(Invalid::Malformed(
            "workflow_job.id must be a positive job id".into(),
        ));
    }
    let run_attempt = match job.run_attempt {
        None => 0,
        Some(a) => u32::try_from(a)
            .map_err(|_| Invalid::Malformed("workflow_job.run_attempt is out of range".into()))?,
    };
    let action = JobAction::parse(&hook.action);
    let state = match action {
        Some(JobAction::Queued) => JobState::Queued,
        Some(JobAction::InProgress) => JobState::InProgress {
            runner: job.runner_name.clone().filter(|r| !r.is_empty()),
        },
        Some(JobAction::Completed) => JobState::Completed {
            conclusion: job.conclusion.clone().unwrap_or_default(),
        },
        Some(JobAction::Waiting) | None => {
            return Ok(Decoded::Ignore("workflow_job action not used".into()))
        }
    };
    // One Gitea job id can be run several times (a re-run resets the same row on Gitea
    // 1.24 – 1.26): the run is keyed on the job and its pick, so a re-run is a new run and a
    // redelivery the same one.
    let attempt = counting.pick(action.unwrap_or(JobAction::Queued), run_attempt);
    let run = RunId::for_job(job.id, attempt);
    let default_branch = hook
        .repository
        .as_ref()
        .and_then(|r| r.default_branch.clone())
        .filter(|b| !b.is_empty());
    let repo = hook
        .repository
        .and_then(|r| r.full_name)
        .filter(|r| !r.is_empty())
        .or_else(|| job.url.as_deref().and_then(repo_from_api_url));
    let job_ref = JobRef {
        id: job.id,
        attempt,
        name: job.name.filter(|n| !n.is_empty()),
        run_id: job.run_id,
    };
    let mut spec = RunSpec::for_job(
        job_ref,
        job.labels.unwrap_or_default(),
        repo,
        Origin::Webhook,
        at,
    );
    spec.job_state = state;
    super::limits::check_spec(&spec).map_err(Invalid::Refused)?;
    let runner_job = match (&spec.job_state, &spec.repo) {
        (
            JobState::InProgress {
                runner: Some(runner),
            },
            Some(repo),
        ) if runner.starts_with("tq-") => Some((
            runner.clone(),
            RunnerJob {
                run: run.clone(),
                job_id: job.id,
                repo: repo.clone(),
                branch: job.head_branch.filter(|b| !b.is_empty()),
                default_branch,
                workflow_run: job.run_id,
            },
        )),
        _ => None,
    };
    Ok(Decoded::Use(JobEvent {
        run,
        spec,
        runner_job,
    }))
}

/// The times of a `workflow_job` event, read apart from the rest so a missing or odd time
/// never fails the event.
#[derive(Deserialize)]
struct JobTimes {
    action: String,
    workflow_job: JobTimesInner,
}

#[derive(Deserialize)]
struct JobTimesInner {
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
}

/// For an `in_progress` event: how long the job waited, from `created_at` to `started_at`.
/// `None` for other actions, a missing, zero or unreadable time, or a start before creation.
/// Gitea's `created_at` is when the job was created, so a job that waited on `needs` counts
/// that wait too.
pub(super) fn queued_to_started(body: &[u8]) -> Option<Duration> {
    let times: JobTimes = serde_json::from_slice(body).ok()?;
    if times.action != "in_progress" {
        return None;
    }
    let created = parse_time(times.workflow_job.created_at.as_deref()?)?;
    let started = parse_time(times.workflow_job.started_at.as_deref()?)?;
    (started >= created).then(|| started.since(created))
}

/// An RFC 3339 time as Gitea writes it: `Z` or a numeric offset (`+02:00`), which Gitea uses
/// when its server runs in another time zone. Go's zero time (year 1) counts as absent.
fn parse_time(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    let (base, offset_ms) = match t
        .len()
        .checked_sub(6)
        .and_then(|i| t.get(i..).map(|o| (i, o)))
    {
        Some((i, o))
            if (o.starts_with('+') || o.starts_with('-')) && o.as_bytes().get(3) == Some(&b':') =>
        {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hours: i64 = o.get(1..3)?.parse().ok()?;
            let minutes: i64 = o.get(4..6)?.parse().ok()?;
            (
                format!("{}Z", t.get(..i)?),
                sign * (hours * 60 + minutes) * 60_000,
            )
        }
        _ => (t.to_owned(), 0),
    };
    let local = Timestamp::parse(&base).ok()?;
    let utc = Timestamp::from_millis(local.as_millis() - offset_ms);
    (utc > Timestamp::EPOCH).then_some(utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::testing::T0;

    fn body(action: &str, job: &str) -> Vec<u8> {
        format!(
            r#"{{"action":"{action}","workflow_job":{job},"repository":{{"full_name":"acme/app","default_branch":"main"}}}}"#
        )
        .into_bytes()
    }

    fn used(body: &[u8]) -> JobEvent {
        match translate(body, AttemptCounting::RaisedOnPick, T0) {
            Ok(Decoded::Use(e)) => e,
            other => panic!("not used: {other:?}"),
        }
    }

    fn invalid(body: &[u8]) -> Invalid {
        translate(body, AttemptCounting::RaisedOnPick, T0).expect_err("invalid")
    }

    #[test]
    fn a_queued_job_is_its_run_id_spec_and_state() {
        let e = used(&body(
            "queued",
            r#"{"id":7,"run_id":3,"run_attempt":0,"name":"build","labels":["go","linux"]}"#,
        ));
        assert_eq!(
            e.run,
            RunId::for_job(7, 1),
            "a waiting job's pick is run_attempt + 1"
        );
        assert_eq!(e.state(), &JobState::Queued);
        assert_eq!(e.spec.labels, ["go", "linux"]);
        assert_eq!(e.spec.repo.as_deref(), Some("acme/app"));
        assert_eq!(e.spec.origin, Origin::Webhook);
        assert_eq!(e.spec.created_at, T0);
        let job = e.spec.job.as_ref().expect("job ref");
        assert_eq!(
            (job.id, job.attempt, job.name.as_deref()),
            (7, 1, Some("build"))
        );
        assert_eq!(e.runner_job, None);
    }

    #[test]
    fn a_job_taken_by_a_runner_of_ours_tells_the_cache_which_job_it_runs() {
        let e = used(&body(
            "in_progress",
            r#"{"id":7,"run_id":3,"run_attempt":1,"runner_name":"tq-prod-job-7-1-a1","head_branch":"feature"}"#,
        ));
        assert_eq!(
            e.run,
            RunId::for_job(7, 1),
            "a taken job's pick is its run_attempt"
        );
        assert_eq!(
            e.state(),
            &JobState::InProgress {
                runner: Some("tq-prod-job-7-1-a1".into())
            }
        );
        let (runner, record) = e.runner_job.expect("record");
        assert_eq!(runner, "tq-prod-job-7-1-a1");
        assert_eq!(
            (record.branch.as_deref(), record.default_branch.as_deref()),
            (Some("feature"), Some("main"))
        );
        let standing = used(&body(
            "in_progress",
            r#"{"id":7,"run_attempt":1,"runner_name":"host-runner"}"#,
        ));
        assert_eq!(standing.runner_job, None, "not a runner of ours");
    }

    #[test]
    fn a_completed_job_keeps_its_conclusion_and_waiting_is_ignored() {
        let e = used(&body(
            "completed",
            r#"{"id":7,"run_attempt":1,"conclusion":"failure"}"#,
        ));
        assert_eq!(
            e.state(),
            &JobState::Completed {
                conclusion: "failure".into()
            }
        );
        for action in ["waiting", "someday"] {
            assert!(matches!(
                translate(
                    &body(action, r#"{"id":7}"#),
                    AttemptCounting::RaisedOnPick,
                    T0
                ),
                Ok(Decoded::Ignore(_))
            ));
        }
    }

    #[test]
    fn bad_input_is_an_error_naming_the_field_never_its_value() {
        assert_eq!(
            invalid(&body("queued", r#"{"id":0}"#)),
            Invalid::Malformed("workflow_job.id must be a positive job id".into())
        );
        assert_eq!(
            invalid(&body("queued", r#"{"id":1,"run_attempt":-1}"#)),
            Invalid::Malformed("workflow_job.run_attempt is out of range".into())
        );
        let Invalid::Malformed(missing) = invalid(br#"{"action":"queued"}"#) else {
            panic!("malformed");
        };
        assert!(
            missing.contains("missing field `workflow_job`"),
            "{missing}"
        );
        let Invalid::Malformed(cut) = invalid(br#"{"action":"queued","workflow_job":{"id":"#)
        else {
            panic!("malformed");
        };
        assert!(cut.starts_with("malformed JSON: truncated JSON"), "{cut}");
        let long = "x".repeat(300);
        let Invalid::Refused(why) = invalid(&body(
            "queued",
            &format!(r#"{{"id":1,"labels":["{long}"]}}"#),
        )) else {
            panic!("refused");
        };
        assert!(why.contains("label 1") && !why.contains(&long), "{why}");
        let Invalid::Refused(why) = invalid(&body(
            "in_progress",
            &format!(r#"{{"id":1,"runner_name":"{long}"}}"#),
        )) else {
            panic!("refused");
        };
        assert!(why.contains("runner name") && !why.contains(&long), "{why}");
    }

    #[test]
    fn the_wait_is_read_from_an_in_progress_events_times_in_any_offset() {
        let b = body(
            "in_progress",
            r#"{"id":1,"created_at":"2026-01-01T10:00:00+02:00","started_at":"2026-01-01T08:00:30Z"}"#,
        );
        assert_eq!(queued_to_started(&b), Some(Duration::from_secs(30)));
        let zero = body(
            "in_progress",
            r#"{"id":1,"created_at":"0001-01-01T00:00:00Z","started_at":"2026-01-01T08:00:30Z"}"#,
        );
        assert_eq!(queued_to_started(&zero), None);
        assert_eq!(queued_to_started(&body("queued", r#"{"id":1}"#)), None);
    }
}
