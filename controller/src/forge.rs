//! The Gitea side: runners, registrations, queued jobs and workflow files.

use async_trait::async_trait;
use model::observed::{ForgeRunner, QueuedJob};
use model::secret::Secret;
use model::RunnerName;

/// A Gitea version, as `GET /api/v1/version` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForgeVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl ForgeVersion {
    /// Runner REST API, ephemeral runners, `workflow_job` webhooks.
    #[must_use]
    pub fn has_runner_api(self) -> bool {
        (self.major, self.minor) >= (1, 24)
    }

    /// `GET …/actions/jobs?status=queued`.
    #[must_use]
    pub fn has_queued_jobs_api(self) -> bool {
        (self.major, self.minor) >= (1, 25)
    }

    /// `PATCH …/actions/runners/{id}` with `disabled`.
    #[must_use]
    pub fn can_disable_runners(self) -> bool {
        (self.major, self.minor) >= (1, 26)
    }
}

/// What `Register` returned: the runner's identity for its `.runner` file.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Gitea's runner id.
    pub id: i64,
    /// The runner's UUID.
    pub uuid: String,
    /// The runner's own token (not a registration token).
    pub token: Secret,
    /// The registered name.
    pub name: RunnerName,
}

/// A file in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path from the repository root.
    pub path: String,
    /// Content.
    pub content: String,
}

/// The Gitea side of the controller.
///
/// Contract: deleting or disabling something already gone is `Ok`; every list reads all
/// pages or fails.
#[async_trait]
pub trait Forge: Send + Sync {
    /// The server's version.
    ///
    /// # Errors
    /// When Gitea cannot be reached or answers nonsense.
    async fn version(&self) -> Result<ForgeVersion, ForgeError>;

    /// Every runner in the configured scope.
    ///
    /// # Errors
    /// Any error means the list is incomplete.
    async fn list_runners(&self) -> Result<Vec<ForgeRunner>, ForgeError>;

    /// Deletes a runner; a runner already gone (404) is `Ok`.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError>;

    /// Disables a runner so it takes no new job (Gitea 1.26+).
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError>;

    /// A registration token for the scope (reusable: never give it to an instance in
    /// pre-registration mode).
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn registration_token(&self) -> Result<Secret, ForgeError>;

    /// Registers an ephemeral runner on the instance's behalf.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn register_runner(&self, name: &RunnerName, labels: &[String]) -> Result<Registration, ForgeError>;

    /// Every queued job in the scope (Gitea 1.25+).
    ///
    /// # Errors
    /// Any error means the list is incomplete.
    async fn queued_jobs(&self) -> Result<Vec<QueuedJob>, ForgeError>;

    /// The workflow files of `repo` at `commit`: the first existing of `.gitea/workflows` and
    /// `.github/workflows`, recursively, `.yml`/`.yaml` only.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn workflow_files(&self, repo: &str, commit: &str) -> Result<Vec<RepoFile>, ForgeError>;

    /// The files changed between `before` and `after`, as Gitea computes them; `None` when
    /// Gitea cannot compute them.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn changed_files(&self, repo: &str, before: &str, after: &str) -> Result<Option<Vec<String>>, ForgeError>;
}

/// A Gitea failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForgeError {
    /// 401: the token is missing or wrong.
    #[error("Gitea refused the token (401): {0}")]
    Unauthorized(String),
    /// 403: the token lacks a scope.
    #[error("Gitea forbids this (403): {0}")]
    Forbidden(String),
    /// 404.
    #[error("not found in Gitea: {0}")]
    NotFound(String),
    /// 429.
    #[error("rate limited by Gitea: {0}")]
    RateLimited(String),
    /// 5xx, connection failure or timeout.
    #[error("Gitea unavailable: {0}")]
    Unavailable(String),
    /// An answer we could not read.
    #[error("unexpected answer from Gitea: {0}")]
    BadResponse(String),
    /// The server is too old for what was asked.
    #[error("Gitea {have} is too old: {feature} needs {need}")]
    Unsupported {
        /// The feature.
        feature: String,
        /// Version needed.
        need: String,
        /// Version found.
        have: String,
    },
}
