//! The EC2 side: instances carrying our cluster's ownership tag.
//!
//! - [`ec2`]: the real port over `aws-sdk-ec2`, with a narrow [`ec2::Ec2Api`] below it.
//! - [`fake`] (feature `testing`, never in the binary): [`fake::FakeFleet`], a stateful
//!   in-memory fleet for tests and benchmarks.
//! - [`offerings`]: the order offerings are tried in, and the cache of unavailable ones.

pub mod ec2;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod offerings;

use std::collections::BTreeMap;

use async_trait::async_trait;
use model::config::{Market, PoolConfig};
use model::observed::Instance;
use model::secret::Secret;
use model::{InstanceId, RunId, RunnerName, Timestamp};

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
    /// Gitea's id of the registration made for this instance, when the controller made one:
    /// tagged, so a runner a listing skipped can be looked up by id.
    pub runner_id: Option<i64>,
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

impl Offering {
    /// Whether this is a Spot offering.
    #[must_use]
    pub fn is_spot(&self) -> bool {
        self.lifecycle == model::Lifecycle::Spot
    }

    fn key(&self) -> (&str, &str, bool) {
        (&self.instance_type, &self.subnet, self.is_spot())
    }
}

impl PartialOrd for Offering {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Offering {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::fmt::Display for Offering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let market = if self.is_spot() { "spot" } else { "on-demand" };
        write!(f, "{} in {} ({market})", self.instance_type, self.subnet)
    }
}

/// Every offering of `pool`, in the order a launch tries them: each instance type in order of
/// preference, each with every subnet in order; all Spot offerings first, then (when the
/// pool's market allows it) the same list on-demand.
#[must_use]
pub fn offerings(pool: &PoolConfig) -> Vec<Offering> {
    let markets: &[model::Lifecycle] = match pool.market {
        Market::Spot => &[model::Lifecycle::Spot],
        Market::SpotThenOnDemand => &[model::Lifecycle::Spot, model::Lifecycle::OnDemand],
        Market::OnDemand => &[model::Lifecycle::OnDemand],
    };
    let mut out =
        Vec::with_capacity(markets.len() * pool.instance_types.len() * pool.subnets.len());
    for &lifecycle in markets {
        for instance_type in &pool.instance_types {
            for subnet in &pool.subnets {
                out.push(Offering {
                    instance_type: instance_type.clone(),
                    subnet: subnet.clone(),
                    lifecycle,
                });
            }
        }
    }
    out
}

/// The tags every instance and volume launched for `req` carries (see [`model::tags`]).
#[must_use]
pub fn launch_tags(cluster: &str, req: &LaunchRequest) -> BTreeMap<String, String> {
    use model::tags;
    let mut tags = BTreeMap::from([
        (tags::CLUSTER.to_owned(), cluster.to_owned()),
        (tags::POOL.to_owned(), req.pool.clone()),
        (tags::RUN_ID.to_owned(), req.run.to_string()),
        (tags::RUNNER_NAME.to_owned(), req.runner.to_string()),
        (tags::ATTEMPT.to_owned(), req.attempt.to_string()),
        (tags::NAME.to_owned(), req.runner.to_string()),
    ]);
    if let Some(id) = req.runner_id {
        tags.insert(tags::RUNNER_ID.to_owned(), id.to_string());
    }
    tags
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

    /// While every offering of a pool with these settings is remembered as recently without
    /// capacity (so [`Fleet::launch`] would fail without asking EC2), the first time one may
    /// be tried again; `None` when a launch would try at least one now. Observed each pass
    /// (`Observed::pools_without_capacity`): the planner defers such a pool's launches.
    fn without_capacity_until(&self, _pool: &PoolConfig) -> Option<Timestamp> {
        None
    }

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
