//! End-to-end harness for tinqs-ci: the real controller, driven through
//! [`controller::cmd::serve::serve`] (what `tinqs-ci serve` runs) over the real EC2 fleet,
//! DynamoDB store and Gitea client, against moto (the AWS APIs, through the real AWS SDK) and
//! the Gitea simulator, with simulated machines booting from the user-data the controller
//! gave them.
//!
//! # Layout
//! - [`world`]: [`world::World`], one isolated world (table, VPC, AMI, simulator, booter) and
//!   its controllers ([`world::Controller`]).
//! - [`booter`]: [`booter::Booter`], which plays EC2 booting our AMI: it starts a runner agent
//!   from each new instance's `.runner` file and powers the instance off when the agent exits;
//!   scripted faults per machine.
//! - [`faults`]: decorators around the real ports for what moto and the simulator cannot do:
//!   Spot interruptions, an unreachable DynamoDB, a controller killed mid-launch.
//! - [`narrate`]: the time-ordered story of what Gitea, EC2 and the controller did.
//! - [`story`]: the scripted demo run by `tinqs-demo` (`make demo`).

pub mod booter;
pub mod faults;
pub mod narrate;
pub mod story;
pub mod testkit;
pub mod world;

pub use booter::{BootFault, BootSettings, Booter, FaultRule, MachineView, Match};
pub use faults::{FaultyFleet, FaultyStore, Interruptions};
pub use narrate::{capture, CaptureLayer, Event, Events, Source};
pub use world::{
    run_of, run_of_pick, Controller, ControllerOptions, Ec2View, Settings, WarmPool, World, REPO,
};
