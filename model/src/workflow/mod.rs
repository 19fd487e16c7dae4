//! Workflow files as Gitea reads them: events, push filters, jobs and their matrices, and the
//! decision whether a push triggers a workflow.
//!
//! Everything here follows Gitea 1.27 (see `wiki/Workflows.md` and the conformance data under
//! `shared/conformance`):
//! - [`Workflow::parse`] reads YAML 1.2 (only `true`/`false` are booleans, `on` is a string),
//!   rejects repeated keys, applies merge keys as Go's YAML library does, and rejects shapes
//!   Gitea's decoder rejects, naming the line or the path.
//! - [`Workflow::match_push`] decides a push with Gitea's filter semantics and its own pattern
//!   dialect ([`pattern`]), and says why.
//! - [`Job::matrix`] is Gitea's matrix expansion ([`matrix`]), and [`expand_jobs`] lists the
//!   job instances of a run with their `runs-on` labels.
//!
//! # Layout
//! - [`parse`]: the file into [`Workflow`], [`PushFilters`] and [`Job`]s; [`ParseError`].
//! - [`pattern`]: Gitea's glob dialect for `branches`, `tags` and `paths`.
//! - [`push`]: [`PushEvent`] → [`PushDecision`].
//! - [`matrix`]: `strategy.matrix` → [`Matrix`].
//! - [`expand`]: a workflow → [`JobInstance`]s.

mod goregex;
mod yaml;

pub mod expand;
pub mod matrix;
pub mod parse;
pub mod pattern;
pub mod push;

pub use expand::{expand_jobs, Expansion, JobInstance, Labels, NotExpanded};
pub use matrix::{Combination, Matrix};
pub use parse::{Job, ParseError, PushFilters, Workflow};
pub use pattern::{Pattern, PatternError};
pub use push::{PushDecision, PushEvent, SKIP_CI_MARKERS};
