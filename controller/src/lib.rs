//! tinqs-ci's controller: the effects around the pure planner in `model`.
//!
//! # Layout
//! - [`aws`]: AWS SDK configuration, call timeouts and retries shared by the AWS ports.
//! - [`cli`] and [`cmd`]: the `tinqs-ci` command line.
//! - [`fleet`]: the EC2 port (trait [`fleet::Fleet`]).
//! - [`store`]: the DynamoDB port (trait [`store::Store`]).
//! - [`forge`]: the Gitea port (trait [`forge::Forge`]).

pub mod aws;
pub mod cli;
pub mod cmd;
pub mod fleet;
pub mod forge;
pub mod store;
