//! The EC2 side: instances carrying our cluster's ownership tag.

use async_trait::async_trait;
use model::config::PoolConfig;
use model::observed::Instance;
use model::secret::Secret;
use model::{InstanceId, RunId, RunnerName};

/// Everything needed to launch one runner instance.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// The run the instance serves.
    pub run: RunId,
    /// The attempt being launched.
    pub attempt: u32,
    /// The runner name (tagged on the instance and its volumes).
    pub runner: RunnerName,
    /// The pool label.
    pub pool: String,
    /// The pool's settings (instance types, subnets, market…).
    pub pool_config: PoolConfig,
    /// The rendered boot script. It carries the runner's credentials, hence a [`Secret`].
    pub user_data: Secret,
    /// EC2 `ClientToken`, from [`model::ids::client_token`].
    pub client_token: String,
}

/// The instance type, subnet and market a launch used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offering {
    /// Instance type.
    pub instance_type: String,
    /// Subnet.
    pub subnet: String,
    /// Spot or on-demand.
    pub lifecycle: model::Lifecycle,
}

/// The EC2 side of the controller.
///
/// Contract: every method is safe to call again after any failure.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Every instance carrying our cluster tag, in any state, across all pages.
    ///
    /// # Errors
    /// Any error means the list is incomplete; callers must not conclude anything from the
    /// absence of an instance.
    async fn list(&self) -> Result<Vec<Instance>, FleetError>;

    /// Launches one instance for `req`, falling back across the pool's offerings on capacity
    /// errors. Idempotent per client token on real EC2.
    ///
    /// # Errors
    /// The last offering's error when none could launch.
    async fn launch(&self, req: &LaunchRequest) -> Result<(Instance, Offering), FleetError>;

    /// Terminates `ids`. Instances already gone count as done.
    ///
    /// # Errors
    /// When EC2 refuses or cannot be reached.
    async fn terminate(&self, ids: &[InstanceId]) -> Result<(), FleetError>;
}

/// An EC2 failure, classified at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// No capacity for the offering (InsufficientInstanceCapacity, Spot limits or price).
    #[error("no capacity: {code}: {message}")]
    Capacity {
        /// EC2's error code.
        code: String,
        /// EC2's message.
        message: String,
    },
    /// EC2 throttled us (RequestLimitExceeded); back off.
    #[error("throttled by EC2: {0}")]
    Throttled(String),
    /// An account quota or limit (vCPU limit, instance limit).
    #[error("quota exceeded: {code}: {message}")]
    Quota {
        /// EC2's error code.
        code: String,
        /// EC2's message.
        message: String,
    },
    /// Credentials missing, expired or lacking permission.
    #[error("not authorized: {0}")]
    Auth(String),
    /// The request itself is wrong (bad AMI, subnet, instance type…): fix the config.
    #[error("invalid configuration: {code}: {message}")]
    InvalidConfig {
        /// EC2's error code.
        code: String,
        /// EC2's message.
        message: String,
    },
    /// The instance does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The call did not finish in time.
    #[error("EC2 call timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// Anything else.
    #[error("EC2 error: {0}")]
    Other(String),
}
