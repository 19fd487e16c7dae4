//! The Gitea side: runners, registrations, queued jobs and workflow files.
//!
//! - [`gitea`]: [`GiteaForge`], the REST and runner-RPC client.
//! - [`fake`] (feature `testing`, never in the binary): [`FakeForge`], a stateful in-memory
//!   forge for tests of everything above it.

use std::fmt;

use async_trait::async_trait;
use model::config::{DemandSource, GiteaConfig};
use model::observed::{ForgeRunner, JobSeen, QueuedJob};
use model::secret::Secret;
use model::RunnerName;

#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod gitea;

#[cfg(any(test, feature = "testing"))]
pub use fake::FakeForge;
pub use gitea::{GiteaForge, GiteaOptions};

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
    /// The oldest Gitea tinqs-ci works with: runner list/get/delete, POST registration token,
    /// ephemeral runners and `workflow_job` webhooks all arrived in 1.24.0.
    pub const MINIMUM: ForgeVersion = ForgeVersion {
        major: 1,
        minor: 24,
        patch: 0,
    };

    /// Reads what `GET /api/v1/version` reports: `1.26.4`, `v1.26.4`, `1.25.0+dev-123-gabcdef`,
    /// `1.24.0-rc1`. Pre-release and build suffixes are dropped: a release candidate or a dev
    /// build of 1.25 counts as 1.25.0, since features land on the dev branch first.
    ///
    /// # Errors
    /// When the text is not a version, or is a Forgejo version (`11.0.1+gitea-1.22.0`): Forgejo
    /// speaks a different runner API (see `wiki/Gitea.md`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.contains("+gitea-") || t.to_ascii_lowercase().contains("forgejo") {
            return Err(format!(
                "`{t}` is a Forgejo version; tinqs-ci speaks Gitea's runner API only"
            ));
        }
        let core = t.strip_prefix('v').unwrap_or(t);
        let core = core.split(['+', '-', ' ']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let mut next = |what: &str, required: bool| -> Result<u32, String> {
            match parts.next() {
                Some(p) => p.parse::<u32>().map_err(|_| {
                    format!("`{t}` is not a Gitea version: {what} `{p}` is not a number")
                }),
                None if required => Err(format!("`{t}` is not a Gitea version: no {what} number")),
                None => Ok(0),
            }
        };
        let major = next("major", true)?;
        let minor = next("minor", true)?;
        let patch = next("patch", false)?;
        Ok(ForgeVersion {
            major,
            minor,
            patch,
        })
    }

    /// Refuses a server too old for what `config` asks for.
    ///
    /// Everything needs 1.24 (the runner REST API and ephemeral runners). Demand mode `jobs`
    /// needs 1.24 for `workflow_job` webhooks; its queued-jobs backfill (1.25) and runner
    /// disabling (1.26) are switched on by version and skipped on older servers, see
    /// [`ForgeFeatures`].
    ///
    /// # Errors
    /// [`ForgeError::Unsupported`] naming the feature and the version it needs.
    pub fn check_supported(self, config: &GiteaConfig) -> Result<ForgeFeatures, ForgeError> {
        let too_old = |feature: &str| ForgeError::Unsupported {
            feature: feature.to_owned(),
            need: Self::MINIMUM.to_string(),
            have: self.to_string(),
        };
        if !self.has_runner_api() {
            let feature = match config.demand {
                DemandSource::Jobs => {
                    "the runner API, ephemeral runners and demand `jobs` (workflow_job webhooks)"
                }
                DemandSource::Push => {
                    "the runner API (list, delete, registration token) and ephemeral runners"
                }
            };
            return Err(too_old(feature));
        }
        Ok(self.features())
    }

    /// What this version offers.
    #[must_use]
    pub fn features(self) -> ForgeFeatures {
        ForgeFeatures {
            runner_api: self.has_runner_api(),
            queued_jobs: self.has_queued_jobs_api(),
            disable: self.can_disable_runners(),
        }
    }

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

impl fmt::Display for ForgeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The optional Gitea features a server version switches on (what the loop uses of them:
/// [`crate::reconcile::LoopFeatures`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForgeFeatures {
    /// Runner REST API, ephemeral runners, `workflow_job` webhooks (1.24).
    pub runner_api: bool,
    /// Queued-jobs backfill via `GET …/actions/jobs?status=queued` (1.25).
    pub queued_jobs: bool,
    /// `PATCH …/actions/runners/{id}` `{"disabled":true}` (1.26).
    pub disable: bool,
}

/// A runner registered on an instance's behalf: what `Register` returned, the identity for
/// its `.runner` file (put into user-data as [`model::userdata::Registration::Preregistered`]).
#[derive(Debug, Clone)]
pub struct RegisteredRunner {
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

    /// One runner by id; `None` when Gitea does not know it (404).
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn get_runner(&self, id: i64) -> Result<Option<ForgeRunner>, ForgeError>;

    /// Deletes a runner; a runner already gone (404) is `Ok`.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn delete_runner(&self, id: i64) -> Result<(), ForgeError>;

    /// Disables a runner so it takes no new job (Gitea 1.26+). A runner already gone is `Ok`.
    ///
    /// # Errors
    /// [`ForgeError::Unsupported`] on Gitea older than 1.26 (callers then delete only idle
    /// runners); otherwise when Gitea refuses or cannot be reached.
    async fn disable_runner(&self, id: i64) -> Result<(), ForgeError>;

    /// A registration token for the scope (reusable: never give it to an instance in
    /// pre-registration mode).
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn registration_token(&self) -> Result<Secret, ForgeError>;

    /// Registers an ephemeral runner on the instance's behalf (the runner RPC `Register`,
    /// with a registration token fetched for the scope). Not idempotent: each call creates a
    /// new runner row, so callers record the returned id before retrying.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn register_runner(
        &self,
        name: &RunnerName,
        labels: &[String],
    ) -> Result<RegisteredRunner, ForgeError>;

    /// One job of `repo` (`owner/name`) by id (Gitea 1.25+), as a [`JobSeen`]: `Missing`
    /// when Gitea answers 404.
    ///
    /// # Errors
    /// [`ForgeError::Unsupported`] on Gitea older than 1.25; otherwise when Gitea refuses or
    /// cannot be reached.
    async fn get_job(&self, repo: &str, id: i64) -> Result<JobSeen, ForgeError>;

    /// Every queued job in the scope (Gitea 1.25+).
    ///
    /// # Errors
    /// [`ForgeError::Unsupported`] on Gitea older than 1.25 (the source is then unavailable,
    /// not empty); any other error means the list is incomplete.
    async fn queued_jobs(&self) -> Result<Vec<QueuedJob>, ForgeError>;

    /// The workflow files of `repo` at `commit`: the first existing of `.gitea/workflows` and
    /// `.github/workflows`, recursively, `.yml`/`.yaml` only. Empty when neither exists.
    ///
    /// # Errors
    /// [`ForgeError::NotFound`] when the repository or commit does not exist (or `repo` is not
    /// an `owner/name`); otherwise when Gitea refuses or cannot be reached.
    async fn workflow_files(&self, repo: &str, commit: &str) -> Result<Vec<RepoFile>, ForgeError>;

    /// The files changed between `before` and `after`, as Gitea computes them; `None` when
    /// Gitea cannot compute them. For a new branch (`before` all zeros) these are the files
    /// of the `after` commit itself.
    ///
    /// # Errors
    /// When Gitea refuses or cannot be reached.
    async fn changed_files(
        &self,
        repo: &str,
        before: &str,
        after: &str,
    ) -> Result<Option<Vec<String>>, ForgeError>;
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
    /// An answer we could not read, or a status we do not expect.
    #[error("unexpected answer from Gitea: {0}")]
    BadResponse(String),
    /// The client could not be set up (a bad base URL, say).
    #[error("cannot set up the Gitea client: {0}")]
    Config(String),
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

impl ForgeError {
    /// Whether trying again later may succeed (Gitea down, slow or rate limiting), as opposed
    /// to a refusal that will repeat until someone changes something.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ForgeError::Unavailable(_) | ForgeError::RateLimited(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use model::config::{RegistrationMode, RunnerScope};

    use super::*;

    fn v(major: u32, minor: u32, patch: u32) -> ForgeVersion {
        ForgeVersion {
            major,
            minor,
            patch,
        }
    }

    #[test]
    fn versions_parse_with_prefixes_and_suffixes() {
        assert_eq!(ForgeVersion::parse("1.26.4"), Ok(v(1, 26, 4)));
        assert_eq!(ForgeVersion::parse(" v1.26.4\n"), Ok(v(1, 26, 4)));
        assert_eq!(
            ForgeVersion::parse("1.25.0+dev-123-gabcdef0"),
            Ok(v(1, 25, 0))
        );
        assert_eq!(ForgeVersion::parse("1.24.0-rc1"), Ok(v(1, 24, 0)));
        assert_eq!(ForgeVersion::parse("1.27"), Ok(v(1, 27, 0)));
        assert_eq!(v(1, 24, 0).to_string(), "1.24.0");
    }

    #[test]
    fn nonsense_and_forgejo_versions_are_refused_with_the_reason() {
        assert!(ForgeVersion::parse("").is_err());
        assert!(ForgeVersion::parse("main")
            .expect_err("not a version")
            .contains("not a number"));
        assert!(ForgeVersion::parse("1")
            .expect_err("no minor")
            .contains("minor"));
        let forgejo = ForgeVersion::parse("11.0.1+gitea-1.22.0").expect_err("forgejo");
        assert!(forgejo.contains("Forgejo"), "{forgejo}");
    }

    fn gitea(demand: DemandSource) -> GiteaConfig {
        GiteaConfig {
            url: "https://git.example.com".into(),
            token_env: "GITEA_TOKEN".into(),
            webhook_secret_env: "GITEA_WEBHOOK_SECRET".into(),
            scope: RunnerScope::Instance,
            demand,
            registration: RegistrationMode::Preregister,
        }
    }

    #[test]
    fn features_follow_the_version() {
        let f = |x| v(1, x, 0).features();
        assert_eq!(
            f(24),
            ForgeFeatures {
                runner_api: true,
                queued_jobs: false,
                disable: false
            }
        );
        assert_eq!(
            f(25),
            ForgeFeatures {
                runner_api: true,
                queued_jobs: true,
                disable: false
            }
        );
        assert_eq!(
            f(26),
            ForgeFeatures {
                runner_api: true,
                queued_jobs: true,
                disable: true
            }
        );
    }

    #[test]
    fn a_gitea_older_than_1_24_is_a_clear_start_up_error_in_both_modes() {
        for demand in [DemandSource::Jobs, DemandSource::Push] {
            let err = v(1, 23, 8)
                .check_supported(&gitea(demand))
                .expect_err("too old");
            let text = err.to_string();
            assert!(text.contains("1.23.8") && text.contains("1.24.0"), "{text}");
            assert!(matches!(err, ForgeError::Unsupported { .. }));
        }
        let jobs = v(1, 23, 0)
            .check_supported(&gitea(DemandSource::Jobs))
            .expect_err("old");
        assert!(jobs.to_string().contains("workflow_job"), "{jobs}");
        assert!(v(1, 24, 0)
            .check_supported(&gitea(DemandSource::Jobs))
            .is_ok());
    }

    #[test]
    fn transient_errors_are_the_ones_worth_retrying() {
        assert!(ForgeError::Unavailable("x".into()).is_transient());
        assert!(ForgeError::RateLimited("x".into()).is_transient());
        assert!(!ForgeError::Unauthorized("x".into()).is_transient());
        assert!(!ForgeError::NotFound("x".into()).is_transient());
    }
}
