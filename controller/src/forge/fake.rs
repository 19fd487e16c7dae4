//! [`FakeForge`]: a stateful in-memory Gitea for tests of everything above the [`Forge`] port.
//!
//! It keeps runners, queued jobs and repository files, records every call, and fails on
//! request: once ([`FakeForge::fail_next`]) or until healed ([`FakeForge::fail_always`]). It
//! follows the port's contract (deleting something gone is `Ok`, features are gated by the
//! version) so a test of the reconciler or the webhook sees what it would see from Gitea.
//! Compiled for tests and under the `testing` feature (integration tests and benchmarks).

use std::collections::{BTreeMap, HashMap, VecDeque};

use async_trait::async_trait;
use model::desired::JobAction;
use model::observed::{ForgeRunner, JobFound, JobSeen, QueuedJob};
use model::secret::Secret;
use model::RunnerName;
use parking_lot::{Mutex, MutexGuard};

use super::gitea::is_zero_sha;
use super::{Forge, ForgeError, ForgeVersion, RegisteredRunner, RepoFile};

/// The methods of [`Forge`], to aim injected errors and count calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForgeMethod {
    /// [`Forge::version`].
    Version,
    /// [`Forge::list_runners`].
    ListRunners,
    /// [`Forge::get_runner`].
    GetRunner,
    /// [`Forge::delete_runner`].
    DeleteRunner,
    /// [`Forge::disable_runner`].
    DisableRunner,
    /// [`Forge::registration_token`].
    RegistrationToken,
    /// [`Forge::register_runner`].
    RegisterRunner,
    /// [`Forge::queued_jobs`].
    QueuedJobs,
    /// [`Forge::get_job`].
    GetJob,
    /// [`Forge::workflow_files`].
    WorkflowFiles,
    /// [`Forge::changed_files`].
    ChangedFiles,
}

/// One recorded call with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeCall {
    /// `version()`.
    Version,
    /// `list_runners()`.
    ListRunners,
    /// `get_runner(id)`.
    GetRunner(i64),
    /// `delete_runner(id)`.
    DeleteRunner(i64),
    /// `disable_runner(id)`.
    DisableRunner(i64),
    /// `registration_token()`.
    RegistrationToken,
    /// `register_runner(name, labels)`.
    RegisterRunner {
        /// The runner name.
        name: String,
        /// The labels.
        labels: Vec<String>,
    },
    /// `queued_jobs()`.
    QueuedJobs,
    /// `get_job(repo, id)`.
    GetJob(i64),
    /// `workflow_files(repo, commit)`.
    WorkflowFiles {
        /// `owner/name`.
        repo: String,
        /// The commit.
        commit: String,
    },
    /// `changed_files(repo, before, after)`.
    ChangedFiles {
        /// `owner/name`.
        repo: String,
        /// Old commit.
        before: String,
        /// New commit.
        after: String,
    },
}

impl ForgeCall {
    /// The method called.
    #[must_use]
    pub fn method(&self) -> ForgeMethod {
        match self {
            ForgeCall::Version => ForgeMethod::Version,
            ForgeCall::ListRunners => ForgeMethod::ListRunners,
            ForgeCall::GetRunner(_) => ForgeMethod::GetRunner,
            ForgeCall::DeleteRunner(_) => ForgeMethod::DeleteRunner,
            ForgeCall::DisableRunner(_) => ForgeMethod::DisableRunner,
            ForgeCall::RegistrationToken => ForgeMethod::RegistrationToken,
            ForgeCall::RegisterRunner { .. } => ForgeMethod::RegisterRunner,
            ForgeCall::QueuedJobs => ForgeMethod::QueuedJobs,
            ForgeCall::GetJob(_) => ForgeMethod::GetJob,
            ForgeCall::WorkflowFiles { .. } => ForgeMethod::WorkflowFiles,
            ForgeCall::ChangedFiles { .. } => ForgeMethod::ChangedFiles,
        }
    }
}

/// Credentials handed out by [`Forge::register_runner`], kept for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRegistration {
    /// Runner id.
    pub id: i64,
    /// Runner UUID.
    pub uuid: String,
    /// Runner token (plain: this is a test double).
    pub token: String,
}

struct State {
    version: ForgeVersion,
    runners: BTreeMap<i64, ForgeRunner>,
    issued: BTreeMap<i64, IssuedRegistration>,
    next_id: i64,
    registration_token: String,
    queued: Vec<QueuedJob>,
    jobs: BTreeMap<i64, JobSeen>,
    files: BTreeMap<(String, String), Vec<RepoFile>>,
    changes: BTreeMap<(String, String, String), Option<Vec<String>>>,
    calls: Vec<ForgeCall>,
    next_errors: HashMap<ForgeMethod, VecDeque<ForgeError>>,
    always: HashMap<ForgeMethod, ForgeError>,
}

/// A stateful in-memory Gitea (see the module docs).
pub struct FakeForge {
    state: Mutex<State>,
}

impl Default for FakeForge {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeForge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeForge").finish_non_exhaustive()
    }
}

impl FakeForge {
    /// An empty Gitea 1.26.4: no runners, no jobs, no repositories.
    #[must_use]
    pub fn new() -> Self {
        FakeForge {
            state: Mutex::new(State {
                version: ForgeVersion {
                    major: 1,
                    minor: 26,
                    patch: 4,
                },
                runners: BTreeMap::new(),
                issued: BTreeMap::new(),
                next_id: 1,
                registration_token: "fake-registration-token".into(),
                queued: Vec::new(),
                jobs: BTreeMap::new(),
                files: BTreeMap::new(),
                changes: BTreeMap::new(),
                calls: Vec::new(),
                next_errors: HashMap::new(),
                always: HashMap::new(),
            }),
        }
    }

    /// An empty Gitea of `version`.
    #[must_use]
    pub fn with_version(version: ForgeVersion) -> Self {
        let f = Self::new();
        f.lock().version = version;
        f
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Records `call` and returns the error injected for its method, if any.
    fn enter(&self, call: ForgeCall) -> Result<MutexGuard<'_, State>, ForgeError> {
        let mut s = self.lock();
        let method = call.method();
        s.calls.push(call);
        if let Some(err) = s.next_errors.get_mut(&method).and_then(VecDeque::pop_front) {
            return Err(err);
        }
        if let Some(err) = s.always.get(&method) {
            return Err(err.clone());
        }
        Ok(s)
    }

    // ---- knobs -----------------------------------------------------------------------------

    /// Changes the version the fake reports (and gates features by).
    pub fn set_version(&self, version: ForgeVersion) {
        self.lock().version = version;
    }

    /// The next call of `method` fails with `err` (queued: several calls fail in order).
    pub fn fail_next(&self, method: ForgeMethod, err: ForgeError) {
        self.lock()
            .next_errors
            .entry(method)
            .or_default()
            .push_back(err);
    }

    /// Every call of `method` fails with `err` until [`FakeForge::heal`].
    pub fn fail_always(&self, method: ForgeMethod, err: ForgeError) {
        self.lock().always.insert(method, err);
    }

    /// Removes injected errors of `method`.
    pub fn heal(&self, method: ForgeMethod) {
        let mut s = self.lock();
        s.always.remove(&method);
        s.next_errors.remove(&method);
    }

    /// Adds a runner as Gitea would list it and returns its id. It starts online and idle.
    pub fn add_runner(&self, name: &str, labels: &[&str], ephemeral: bool) -> i64 {
        let mut s = self.lock();
        let id = s.next_id;
        s.next_id += 1;
        s.runners.insert(
            id,
            ForgeRunner {
                id,
                name: name.to_owned(),
                online: true,
                busy: false,
                labels: labels.iter().map(|l| (*l).to_owned()).collect(),
                ephemeral,
                disabled: false,
            },
        );
        id
    }

    /// Marks a runner online or offline (as if it contacted Gitea, or stopped).
    pub fn set_online(&self, id: i64, online: bool) {
        if let Some(r) = self.lock().runners.get_mut(&id) {
            r.online = online;
        }
    }

    /// Marks a runner busy or idle.
    pub fn set_busy(&self, id: i64, busy: bool) {
        if let Some(r) = self.lock().runners.get_mut(&id) {
            r.busy = busy;
        }
    }

    /// Removes a runner as Gitea does when an ephemeral runner finishes its job.
    pub fn remove_runner(&self, id: i64) {
        self.lock().runners.remove(&id);
    }

    /// One runner.
    #[must_use]
    pub fn runner(&self, id: i64) -> Option<ForgeRunner> {
        self.lock().runners.get(&id).cloned()
    }

    /// Every runner, by id.
    #[must_use]
    pub fn runners(&self) -> Vec<ForgeRunner> {
        self.lock().runners.values().cloned().collect()
    }

    /// What `register_runner` issued for runner `id`.
    #[must_use]
    pub fn issued(&self, id: i64) -> Option<IssuedRegistration> {
        self.lock().issued.get(&id).cloned()
    }

    /// The scope's registration token.
    #[must_use]
    pub fn registration_token_value(&self) -> String {
        self.lock().registration_token.clone()
    }

    /// Queues a job (replacing one with the same id).
    pub fn queue_job(&self, job: QueuedJob) {
        let mut s = self.lock();
        s.queued.retain(|j| j.id != job.id);
        s.queued.push(job);
    }

    /// Takes a job off the queue (picked by a runner, or cancelled).
    pub fn remove_job(&self, id: i64) {
        self.lock().queued.retain(|j| j.id != id);
    }

    /// Sets what reading job `job.id` by id answers when it is not queued (a job that is
    /// queued reads as queued; an unknown one as missing).
    pub fn set_job(&self, job: JobSeen) {
        self.lock().jobs.insert(job.id, job);
    }

    /// The queued jobs.
    #[must_use]
    pub fn queued(&self) -> Vec<QueuedJob> {
        self.lock().queued.clone()
    }

    /// Sets the workflow files of `repo` at `commit` (empty: the commit exists, no workflows).
    pub fn set_workflow_files(&self, repo: &str, commit: &str, files: Vec<RepoFile>) {
        self.lock()
            .files
            .insert((repo.to_owned(), commit.to_owned()), files);
    }

    /// Sets what `changed_files(repo, before, after)` answers. Unset pairs answer `None`.
    pub fn set_changed_files(
        &self,
        repo: &str,
        before: &str,
        after: &str,
        files: Option<Vec<String>>,
    ) {
        self.lock().changes.insert(
            (repo.to_owned(), before.to_owned(), after.to_owned()),
            files,
        );
    }

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<ForgeCall> {
        self.lock().calls.clone()
    }

    /// How many calls `method` received.
    #[must_use]
    pub fn calls_to(&self, method: ForgeMethod) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method() == method)
            .count()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }
}

#[async_trait]
impl Forge for FakeForge {
    async fn version(&self) -> Result<ForgeVersion, ForgeError> {
        Ok(self.enter(ForgeCall::Version)?.version)
    }

    async fn list_runners(&self) -> Result<Vec<ForgeRunner>, ForgeError> {
        Ok(self
            .enter(ForgeCall::ListRunners)?
            .runners
            .values()
            .cloned()
            .collect())
    }

    async fn get_runner(&self, id: i64) -> Result<Option<ForgeRunner>, ForgeError> {
        Ok(self
            .enter(ForgeCall::GetRunner(id))?
            .runners
            .get(&id)
            .cloned())
    }

    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError> {
        self.enter(ForgeCall::DeleteRunner(id))?.runners.remove(&id);
        Ok(())
    }

    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError> {
        let mut s = self.enter(ForgeCall::DisableRunner(id))?;
        if !s.version.can_disable_runners() {
            return Err(ForgeError::Unsupported {
                feature: "disabling runners".into(),
                need: "1.26.0".into(),
                have: s.version.to_string(),
            });
        }
        if let Some(r) = s.runners.get_mut(&id) {
            r.disabled = true;
        }
        Ok(())
    }

    async fn registration_token(&self) -> Result<Secret, ForgeError> {
        Ok(Secret::new(
            self.enter(ForgeCall::RegistrationToken)?
                .registration_token
                .clone(),
        ))
    }

    async fn register_runner(
        &self,
        name: &RunnerName,
        labels: &[String],
    ) -> Result<RegisteredRunner, ForgeError> {
        let mut s = self.enter(ForgeCall::RegisterRunner {
            name: name.as_str().to_owned(),
            labels: labels.to_vec(),
        })?;
        let id = s.next_id;
        s.next_id += 1;
        let issued = IssuedRegistration {
            id,
            uuid: format!("00000000-0000-4000-8000-{id:012}"),
            token: format!("fake-runner-token-{id}"),
        };
        // A pre-registered runner has never contacted Gitea: it lists as offline.
        s.runners.insert(
            id,
            ForgeRunner {
                id,
                name: name.as_str().to_owned(),
                online: false,
                busy: false,
                labels: labels.to_vec(),
                ephemeral: true,
                disabled: false,
            },
        );
        s.issued.insert(id, issued.clone());
        Ok(RegisteredRunner {
            id,
            uuid: issued.uuid,
            token: Secret::new(issued.token),
            name: name.clone(),
        })
    }

    async fn queued_jobs(&self) -> Result<Vec<QueuedJob>, ForgeError> {
        let s = self.enter(ForgeCall::QueuedJobs)?;
        if !s.version.has_queued_jobs_api() {
            return Err(ForgeError::Unsupported {
                feature: "the queued-jobs API".into(),
                need: "1.25.0".into(),
                have: s.version.to_string(),
            });
        }
        Ok(s.queued.clone())
    }

    async fn get_job(&self, _repo: &str, id: i64) -> Result<JobSeen, ForgeError> {
        let s = self.enter(ForgeCall::GetJob(id))?;
        if !s.version.has_queued_jobs_api() {
            return Err(ForgeError::Unsupported {
                feature: "the jobs API".into(),
                need: "1.25.0".into(),
                have: s.version.to_string(),
            });
        }
        if let Some(q) = s.queued.iter().find(|j| j.id == id) {
            return Ok(JobSeen {
                id,
                found: JobFound::Job {
                    attempt: q.attempt,
                    action: JobAction::Queued,
                    runner: None,
                    conclusion: None,
                    labels: q.labels.clone(),
                    counting: q.counting,
                },
            });
        }
        Ok(s.jobs.get(&id).cloned().unwrap_or(JobSeen {
            id,
            found: JobFound::Missing,
        }))
    }

    async fn workflow_files(&self, repo: &str, commit: &str) -> Result<Vec<RepoFile>, ForgeError> {
        let s = self.enter(ForgeCall::WorkflowFiles {
            repo: repo.to_owned(),
            commit: commit.to_owned(),
        })?;
        s.files
            .get(&(repo.to_owned(), commit.to_owned()))
            .cloned()
            .ok_or_else(|| ForgeError::NotFound(format!("commit {commit} of {repo}")))
    }

    async fn changed_files(
        &self,
        repo: &str,
        before: &str,
        after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError> {
        let s = self.enter(ForgeCall::ChangedFiles {
            repo: repo.to_owned(),
            before: before.to_owned(),
            after: after.to_owned(),
        })?;
        if is_zero_sha(after) {
            return Ok(Some(Vec::new()));
        }
        Ok(s.changes
            .get(&(repo.to_owned(), before.to_owned(), after.to_owned()))
            .cloned()
            .flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registering_adds_an_offline_ephemeral_runner_and_delete_is_idempotent() {
        let forge = FakeForge::new();
        let reg = forge
            .register_runner(&RunnerName::observed("tq-x-job-1-1-a1"), &["go".into()])
            .await
            .expect("registers");
        let runner = forge.runner(reg.id).expect("listed");
        assert!(!runner.online && runner.ephemeral && runner.labels == vec!["go".to_owned()]);
        assert_eq!(
            forge.issued(reg.id).map(|i| i.token),
            Some(reg.token.expose().to_owned())
        );
        forge.delete_runner(reg.id).await.expect("deleted");
        forge
            .delete_runner(reg.id)
            .await
            .expect("already gone is fine");
        assert!(forge.runners().is_empty());
        assert_eq!(forge.calls_to(ForgeMethod::DeleteRunner), 2);
    }

    #[tokio::test]
    async fn injected_errors_fire_once_or_until_healed() {
        let forge = FakeForge::new();
        forge.fail_next(
            ForgeMethod::ListRunners,
            ForgeError::Unavailable("down".into()),
        );
        assert!(forge.list_runners().await.is_err());
        assert!(forge.list_runners().await.is_ok());
        forge.fail_always(
            ForgeMethod::QueuedJobs,
            ForgeError::RateLimited("slow".into()),
        );
        assert!(forge.queued_jobs().await.is_err());
        assert!(forge.queued_jobs().await.is_err());
        forge.heal(ForgeMethod::QueuedJobs);
        assert_eq!(forge.queued_jobs().await, Ok(vec![]));
    }

    #[tokio::test]
    async fn old_versions_refuse_disable_and_queued_jobs() {
        let forge = FakeForge::with_version(ForgeVersion {
            major: 1,
            minor: 24,
            patch: 2,
        });
        let id = forge.add_runner("r", &["go"], true);
        assert!(matches!(
            forge.disable_runner(id).await,
            Err(ForgeError::Unsupported { .. })
        ));
        assert!(matches!(
            forge.queued_jobs().await,
            Err(ForgeError::Unsupported { .. })
        ));
        forge.set_version(ForgeVersion {
            major: 1,
            minor: 26,
            patch: 0,
        });
        forge.disable_runner(id).await.expect("disables");
        assert!(forge.runner(id).is_some_and(|r| r.disabled));
    }
}
