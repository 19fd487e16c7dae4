//! Integration tests of the Gitea simulator, in one binary.

mod agents;
mod common;
mod control;
mod faults;
mod jobs;
mod openapi;
mod push_mode;
mod queue;
mod runners;
mod versions;
mod webhooks;
