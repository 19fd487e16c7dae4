//! A Gitea simulator with act_runner-like agents, for testing tinqs-ci without a real Gitea.
//!
//! It serves, on one loopback port, the part of Gitea tinqs-ci talks to, with Gitea's paths,
//! JSON shapes and semantics read from Gitea's source for the configured version (1.24 to
//! 1.27, and `main`); each behaviour cites its upstream file where it is played:
//! - the REST API under `/api/v1`: version, runners (admin, org and repo scope), jobs,
//!   repository contents, raw files, compare and commits;
//! - the runner protocol under `/api/actions` (Connect, JSON codec): `Register`, `Declare`,
//!   `FetchTask`, `UpdateTask`, `UpdateLog`;
//! - signed `workflow_job` and `push` webhooks to one configurable target;
//! - a control API under `/_sim` to enqueue jobs, push commits, set faults and inspect state.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gitea_sim::{Agent, AgentConfig, JobSpec, Scope, SimConfig, Simulator};
//! let sim = Simulator::start(SimConfig::default().repo("acme/app")).await?;
//! let job = sim.enqueue_job(JobSpec::new("acme/app", "build", &["linux"]))?;
//! let token = sim.registration_token(&Scope::Instance)?;
//! let agent = Agent::spawn(AgentConfig::register(sim.base_url(), token, "runner-1", &["linux"]));
//! let outcome = agent.wait().await;
//! # let _ = (job, outcome);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`server`]: [`Simulator::start`] and [`SimHandle`], the library API.
//! - [`agent`]: [`Agent`], a runner that takes one job and exits.
//! - [`config`]: [`SimConfig`], [`Faults`], [`Scope`], [`Version`].
//! - [`types`]: jobs, runners, pushes and deliveries as values.
//! - `state`, `json`, `git`: the model and Gitea's JSON shapes; `api`, `rpc`, `control`,
//!   `webhook`: the HTTP faces; `shared`: the state they and [`SimHandle`] share (a leaf
//!   module, so none of them imports `server`).

pub mod agent;
mod api;
mod cache_step;
pub mod clock;
pub mod config;
mod control;
mod git;
mod ids;
mod json;
mod rpc;
pub mod server;
mod shared;
mod state;
pub mod types;
mod webhook;

pub use agent::{
    Agent, AgentConfig, AgentError, AgentFault, AgentHandle, AgentOutcome, AgentState, Identity,
    RunnerFile,
};
pub use clock::SimClock;
pub use config::{
    ApiDelayFault, ApiErrorFault, FaultMatch, Faults, Scope, SimConfig, Version, WebhookTarget,
};
pub use git::ZERO_SHA;
pub use server::{SimHandle, SimStartError, Simulator};
pub use state::SimError;
pub use types::{
    CacheStep, CommitSpec, Conclusion, Delivery, FileChange, JobPhase, JobSpec, JobView,
    PushResult, PushSpec, RunnerSpec, RunnerView,
};
pub use webhook::sign;
