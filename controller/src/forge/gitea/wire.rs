//! Gitea's JSON as the client reads it: the shapes of the REST answers and of the runner
//! RPC's `Register` reply, with the fields tinqs-ci uses, and how they become model values.

use model::desired::{AttemptCounting, JobAction};
use model::observed::{ForgeRunner, JobFound, JobSeen, QueuedJob};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::forge::ForgeVersion;

#[derive(Debug, Deserialize)]
pub(super) struct ApiVersion {
    pub(super) version: String,
}

#[derive(Deserialize)]
pub(super) struct ApiToken {
    pub(super) token: String,
}

pub(super) trait Page: DeserializeOwned {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<u64>);
    fn id(item: &Self::Item) -> i64;
}

#[derive(Deserialize)]
pub(super) struct RunnersPage {
    #[serde(default)]
    pub(super) runners: Option<Vec<ApiRunner>>,
    #[serde(default)]
    pub(super) total_count: Option<u64>,
}

impl Page for RunnersPage {
    type Item = ApiRunner;
    fn into_parts(self) -> (Vec<ApiRunner>, Option<u64>) {
        (self.runners.unwrap_or_default(), self.total_count)
    }
    fn id(item: &ApiRunner) -> i64 {
        item.id
    }
}

#[derive(Deserialize)]
pub(super) struct ApiRunner {
    pub(super) id: i64,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) busy: bool,
    #[serde(default)]
    pub(super) disabled: bool,
    #[serde(default)]
    pub(super) ephemeral: bool,
    #[serde(default)]
    pub(super) labels: Option<Vec<ApiLabel>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ApiLabel {
    Object { name: String },
    Name(String),
}

impl ApiRunner {
    pub(super) fn into_runner(self) -> ForgeRunner {
        // Gitea maps idle and active to "online"; Forgejo-style "idle"/"active" count too.
        let online = matches!(
            self.status.to_ascii_lowercase().as_str(),
            "online" | "idle" | "active"
        );
        ForgeRunner {
            id: self.id,
            name: self.name,
            online,
            busy: self.busy,
            labels: self
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|l| match l {
                    ApiLabel::Object { name } | ApiLabel::Name(name) => name,
                })
                .collect(),
            ephemeral: self.ephemeral,
            disabled: self.disabled,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct JobsPage {
    #[serde(default)]
    pub(super) jobs: Option<Vec<WorkflowJob>>,
    #[serde(default)]
    pub(super) total_count: Option<u64>,
}

impl Page for JobsPage {
    type Item = WorkflowJob;
    fn into_parts(self) -> (Vec<WorkflowJob>, Option<u64>) {
        (self.jobs.unwrap_or_default(), self.total_count)
    }
    fn id(item: &WorkflowJob) -> i64 {
        item.id
    }
}

/// Gitea's `ActionWorkflowJob` as the jobs API lists it and the `workflow_job` webhook sends
/// it: the fields tinqs-ci reads, all optional but the id.
#[derive(Debug, Deserialize)]
pub(crate) struct WorkflowJob {
    pub(crate) id: i64,
    #[serde(default)]
    pub(crate) run_id: Option<i64>,
    #[serde(default)]
    pub(crate) run_attempt: Option<i64>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) labels: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) url: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) conclusion: Option<String>,
    #[serde(default)]
    pub(crate) runner_name: Option<String>,
    /// The branch the job runs for; empty for a tag or pull request ref.
    #[serde(default)]
    pub(crate) head_branch: Option<String>,
    #[serde(default)]
    pub(crate) repository: Option<RepoRef>,
}

/// A repository as payloads name it.
#[derive(Debug, Deserialize)]
pub(crate) struct RepoRef {
    #[serde(default)]
    pub(crate) full_name: Option<String>,
    #[serde(default)]
    pub(crate) default_branch: Option<String>,
}

impl WorkflowJob {
    /// Gitea's `run_attempt`: 0 while a new job waits (a missing or odd value reads as 0).
    pub(crate) fn attempt(&self) -> u32 {
        self.run_attempt
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0)
    }

    /// The job as read by id from a Gitea that counts attempts as `counting` does.
    pub(super) fn into_seen(self, counting: AttemptCounting) -> JobSeen {
        let action = self
            .status
            .as_deref()
            .and_then(JobAction::parse)
            .unwrap_or(JobAction::Completed);
        JobSeen {
            id: self.id,
            found: JobFound::Job {
                attempt: self.attempt(),
                action,
                runner: self.runner_name.filter(|r| !r.is_empty()),
                conclusion: self.conclusion.filter(|c| !c.is_empty()),
                labels: self.labels.unwrap_or_default(),
                counting,
            },
        }
    }

    pub(super) fn into_queued(
        self,
        fallback_repo: Option<&str>,
        counting: AttemptCounting,
    ) -> QueuedJob {
        let attempt = self.attempt();
        let repo = self
            .repository
            .and_then(|r| r.full_name)
            .filter(|r| !r.is_empty())
            .or_else(|| self.url.as_deref().and_then(repo_from_api_url))
            .or_else(|| fallback_repo.map(str::to_owned))
            .unwrap_or_default();
        QueuedJob {
            id: self.id,
            attempt,
            labels: self.labels.unwrap_or_default(),
            repo,
            name: self.name.unwrap_or_default(),
            run_id: self.run_id,
            counting,
        }
    }
}

/// How a Gitea of `version` counts a job's `run_attempt`.
pub(super) fn counting(version: ForgeVersion) -> AttemptCounting {
    AttemptCounting::of_gitea(version.major, version.minor)
}

/// `owner/name` from `…/api/v1/repos/{owner}/{name}/actions/jobs/{id}`.
#[must_use]
pub fn repo_from_api_url(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("/api/v1/repos/")?;
    let mut parts = rest.split('/');
    let owner = parts.next().filter(|s| !s.is_empty())?;
    let name = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{owner}/{name}"))
}

#[derive(Deserialize)]
pub(super) struct ContentEntry {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) path: String,
    #[serde(rename = "type", default)]
    pub(super) kind: String,
}

#[derive(Deserialize)]
pub(super) struct ApiCompare {
    #[serde(default)]
    pub(super) commits: Option<Vec<ApiCommit>>,
}

#[derive(Deserialize)]
pub(super) struct ApiCommit {
    #[serde(default)]
    pub(super) files: Option<Vec<ApiAffectedFile>>,
}

#[derive(Deserialize)]
pub(super) struct ApiAffectedFile {
    #[serde(default)]
    pub(super) filename: String,
}

#[derive(Deserialize)]
pub(super) struct RegisterReply {
    pub(super) runner: RegisteredRunner,
}

#[derive(Deserialize)]
pub(super) struct RegisteredRunner {
    /// int64 travels as a JSON string in protojson; accept a number too.
    pub(super) id: IntOrString,
    #[serde(default)]
    pub(super) uuid: String,
    #[serde(default)]
    pub(super) token: String,
    #[serde(default)]
    pub(super) ephemeral: Option<bool>,
}

/// Whether a `Register` answer's `ephemeral` says the runner is ephemeral. The runner RPC
/// answers in protojson, which leaves out fields at their zero value: a missing key is
/// `false` (see wiki/Gitea-Behaviour.md, the runner RPC).
pub(super) fn registered_ephemeral(field: Option<bool>) -> bool {
    field.unwrap_or(false)
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum IntOrString {
    Int(i64),
    Text(String),
}

impl IntOrString {
    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::Text(s) => s.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
pub(super) struct ConnectError {
    #[serde(default)]
    pub(super) code: String,
    #[serde(default)]
    pub(super) message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_pages_parse_with_label_objects_and_missing_newer_fields() {
        let page: RunnersPage = serde_json::from_str(
            r#"{"runners":[{"id":42,"name":"tq-a","status":"online","busy":true,
                "labels":[{"id":0,"name":"ubuntu-latest","type":"custom"},{"id":1,"name":"go","type":"custom"}]},
               {"id":43,"name":"old","status":"offline","busy":false,"disabled":true,"ephemeral":true,"labels":null}],
               "total_count":2}"#,
        )
        .expect("parses");
        let (items, total) = page.into_parts();
        assert_eq!(total, Some(2));
        let runners: Vec<ForgeRunner> = items.into_iter().map(ApiRunner::into_runner).collect();
        assert_eq!(
            runners,
            vec![
                ForgeRunner {
                    id: 42,
                    name: "tq-a".into(),
                    online: true,
                    busy: true,
                    labels: vec!["ubuntu-latest".into(), "go".into()],
                    ephemeral: false,
                    disabled: false,
                },
                ForgeRunner {
                    id: 43,
                    name: "old".into(),
                    online: false,
                    busy: false,
                    labels: vec![],
                    ephemeral: true,
                    disabled: true,
                },
            ]
        );
    }

    #[test]
    fn queued_jobs_take_the_repo_from_the_job_url() {
        let page: JobsPage = serde_json::from_str(
            r#"{"jobs":[{"id":9,"url":"https://git.example.com/api/v1/repos/acme/web/actions/jobs/9",
                "run_id":3,"name":"build","labels":["go"],"run_attempt":2,"status":"queued"}],"total_count":1}"#,
        )
        .expect("parses");
        let (items, _) = page.into_parts();
        let jobs: Vec<QueuedJob> = items
            .into_iter()
            .map(|j| j.into_queued(None, AttemptCounting::RaisedOnPick))
            .collect();
        assert_eq!(
            jobs,
            vec![QueuedJob {
                id: 9,
                attempt: 2,
                labels: vec!["go".into()],
                repo: "acme/web".into(),
                name: "build".into(),
                run_id: Some(3),
                counting: AttemptCounting::RaisedOnPick,
            }]
        );
    }

    #[test]
    fn queued_jobs_prefer_the_repository_field_and_keep_gitea_s_run_attempt() {
        let job: WorkflowJob = serde_json::from_str(
            r#"{"id":5,"repository":{"full_name":"o/r"},"labels":["x"],"run_attempt":0}"#,
        )
        .expect("parses");
        let q = job.into_queued(Some("scope/repo"), AttemptCounting::RaisedOnPick);
        // A new job waits with run_attempt 0: it is pick 1.
        assert_eq!((q.repo.as_str(), q.attempt, q.pick()), ("o/r", 0, 1));
        let bare: WorkflowJob = serde_json::from_str(r#"{"id":6}"#).expect("parses");
        let bare = bare.into_queued(Some("scope/repo"), AttemptCounting::PerRow);
        assert_eq!((bare.repo.as_str(), bare.attempt), ("scope/repo", 0));
    }

    #[test]
    fn a_register_answer_without_ephemeral_means_not_ephemeral() {
        // protojson leaves out fields at their zero value.
        let reply: RegisterReply =
            serde_json::from_str(r#"{"runner":{"id":"57","uuid":"u","token":"t"}}"#)
                .expect("parses");
        assert!(!registered_ephemeral(reply.runner.ephemeral));
        assert!(registered_ephemeral(Some(true)));
    }

    #[test]
    fn a_job_read_by_id_keeps_its_status_attempt_and_runner() {
        let job: WorkflowJob = serde_json::from_str(
            r#"{"id":9,"run_attempt":2,"status":"in_progress","runner_name":"r1","labels":["go"],"steps":[]}"#,
        )
        .expect("parses");
        let seen = job.into_seen(AttemptCounting::RaisedOnPick);
        assert_eq!(
            seen.state_for_pick(2),
            Some(model::JobState::InProgress {
                runner: Some("r1".into())
            })
        );
        assert_eq!(seen.state_for_pick(3), None);
    }

    #[test]
    fn register_replies_accept_the_id_as_string_or_number() {
        let a: RegisterReply = serde_json::from_str(
            r#"{"runner":{"id":"57","uuid":"u","token":"t","ephemeral":true}}"#,
        )
        .expect("parses");
        let b: RegisterReply =
            serde_json::from_str(r#"{"runner":{"id":58,"uuid":"u","token":"t"}}"#).expect("parses");
        assert_eq!(a.runner.id.as_i64(), Some(57));
        assert_eq!(b.runner.id.as_i64(), Some(58));
        let c: RegisterReply =
            serde_json::from_str(r#"{"runner":{"id":"x","uuid":"u","token":"t"}}"#)
                .expect("parses");
        assert_eq!(c.runner.id.as_i64(), None);
    }

    #[test]
    fn api_urls_give_the_repository() {
        assert_eq!(
            repo_from_api_url("http://h:3000/sub/api/v1/repos/o/r/actions/jobs/1").as_deref(),
            Some("o/r")
        );
        assert_eq!(repo_from_api_url("http://h/api/v1/admin/x"), None);
    }
}
