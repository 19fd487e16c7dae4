//! tinqs-ci's controller: the effects around the pure planner in `model`.
//!
//! # Layout
//! - [`cache`]: the actions cache service (S3-backed, scoped per repository).
//! - [`aws`]: AWS SDK configuration, call timeouts and retries shared by the AWS ports.
//! - [`cli`] and [`cmd`]: the `tinqs-ci` command line.
//! - [`clock`]: where "now" comes from.
//! - [`fleet`]: the EC2 port (trait [`fleet::Fleet`]).
//! - [`store`]: the DynamoDB port (trait [`store::Store`]).
//! - [`forge`]: the Gitea port (trait [`forge::Forge`]).
//! - [`metrics`]: Prometheus metrics.
//! - [`quiet`]: keeping logs bounded (capped fields, log-on-change, rate-limited warnings).
//! - [`reconcile`]: observe, plan, apply, and the loop.
//! - [`sim`]: the whole world in virtual time (`tinqs-ci sim`), driving the real loop.
//! - [`spool`]: the durable local spool of webhooks the table could not take.
//! - [`telemetry`]: logging setup.
//! - [`webhook`]: the Gitea webhook receiver (`POST /hooks/gitea`) and the spool replayer.
//! - [`wiring`]: building the real ports from a configuration.

pub mod aws;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod cmd;
pub mod fleet;
pub mod forge;
pub mod http;
pub mod metrics;
pub mod notices;
pub mod quiet;
pub mod reconcile;
pub mod sim;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod webhook;
pub mod wiring;
