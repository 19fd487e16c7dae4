//! The ownership tag scheme. Every instance and volume we launch carries all of these; the
//! fleet lists only instances whose [`CLUSTER`] tag is ours, and the planner checks it again.

/// Cluster id: ownership. An instance without our value here is never touched.
pub const CLUSTER: &str = "tinqs-ci:cluster";
/// Pool label.
pub const POOL: &str = "tinqs-ci:pool";
/// Desired run id.
pub const RUN_ID: &str = "tinqs-ci:run-id";
/// Runner name (the join key with Gitea).
pub const RUNNER_NAME: &str = "tinqs-ci:runner-name";
/// Gitea's id of the runner registration made for the instance (absent when the instance
/// registers itself). Lets a runner's absence from a listing be confirmed by id.
pub const RUNNER_ID: &str = "tinqs-ci:runner-id";
/// Launch attempt number.
pub const ATTEMPT: &str = "tinqs-ci:attempt";
/// The EC2 console name.
pub const NAME: &str = "Name";
