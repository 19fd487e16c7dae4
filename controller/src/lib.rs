//! tinqs-ci's controller: the effects around the pure planner in `model`.
//!
//! # Layout
//! - [`aws`]: AWS SDK configuration, call timeouts and retries shared by the AWS ports.
//! - [`cli`] and [`cmd`]: the `tinqs-ci` command line.
//! - [`clock`]: where "now" comes from.
//! - [`fleet`]: the EC2 port (trait [`fleet::Fleet`]).
//! - [`store`]: the DynamoDB port (trait [`store::Store`]).
//! - [`forge`]: the Gitea port (trait [`forge::Forge`]).
//! - [`metrics`]: Prometheus metrics.
//! - [`reconcile`]: observe, plan, apply, and the loop.

pub mod aws;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod fleet;
pub mod forge;
pub mod metrics;
pub mod reconcile;
pub mod store;
