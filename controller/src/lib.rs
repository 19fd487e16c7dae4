//! tinqs-ci's controller: the effects around the pure planner in `model`.
//!
//! # Layout
//! - [`cli`] and [`cmd`]: the `tinqs-ci` command line.
//! - [`fleet`]: the EC2 port (trait [`fleet::Fleet`]).
//! - [`store`]: the DynamoDB port (trait [`store::Store`]).
//! - [`forge`]: the Gitea port (trait [`forge::Forge`]).

pub mod cli;
pub mod cmd;
pub mod fleet;
pub mod forge;
pub mod store;
