//! tinqs-ci's pure core: what the controller knows and decides, with no I/O.
//!
//! Nothing here reads a clock, a socket or a file: time is an argument, observations are
//! values, and the result of planning is a list of actions for the controller to carry out.
//! That keeps every decision a table test, and makes `--dry-run` free.
//!
//! # Layout
//! - [`cache`]: the actions cache: scoping, key matching, chunk assembly, eviction.
//! - [`config`]: the configuration file, validated field by field.
//! - [`ids`]: run ids, runner names and client tokens, all derived, never invented.
//! - [`desired`]: desired runs (spec written by webhooks and operators, status by us).
//! - [`observed`]: what was seen in EC2 and Gitea, and whether it was seen whole.
//! - [`schedule`]: weekly time windows (warm pools), in a named time zone.
//! - [`secret`]: a string that never prints.
//! - [`tags`]: the EC2 ownership tag scheme.
//! - [`text`]: outside text made safe to print (control characters escaped), and label words.
//! - [`plan`]: the planner: `plan(desired, observed, policy, now) -> Plan`.
//! - [`summary`]: the fleet as `tinqs-ci status` shows it, from the planner's own predicates.
//! - [`fuzz`]: structured-but-wrong inputs for fuzzing the parsers (feature `testing`).
//! - [`testing`]: builders and a world model for tests and benchmarks (feature `testing`).
//!
//! [`fuzz`] and [`testing`] serve tests only: they compile under `cfg(test)` or the `testing`
//! feature (which this crate's own tests and benchmarks, and `tinqs-ci`'s `testing` feature,
//! switch on), never into the `tinqs-ci` binary.
//! - [`time`]: timestamps and duration parsing.
//! - [`userdata`]: the boot script (EC2 user-data) of a runner instance.
//! - [`workflow`]: workflow files as Gitea reads them, and whether a push triggers one.
#![deny(missing_docs)]

pub mod cache;
pub mod config;
pub mod desired;
#[cfg(any(test, feature = "testing"))]
pub mod fuzz;
pub mod ids;
pub mod notice;
pub mod observed;
pub mod plan;
pub mod schedule;
pub mod secret;
pub mod summary;
pub mod tags;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod time;
pub mod userdata;
pub mod workflow;

pub use desired::{DesiredRun, JobRef, JobState, Origin, Phase, RunSpec, RunStatus};
pub use ids::{InstanceId, RunId, RunnerName};
pub use observed::{
    DesiredView, ForgeRunner, Instance, InstanceState, Lifecycle, Observed, QueuedJob, Seen,
};
pub use plan::{plan, Action, Plan, Policy, Reason, SeenRunner, StatusChange};
pub use time::Timestamp;
