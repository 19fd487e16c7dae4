//! Identifiers, and the one rule that ties them together: every name is derived, never invented.
//!
//! A desired run has a deterministic [`RunId`]: the same Gitea job (or the same push) seen twice
//! is the same row. Each launch attempt of a run gets a [`RunnerName`] built from the cluster, the
//! whole run id and the attempt number. That name is the join key between the table, the EC2 tags
//! and Gitea's runner list, so it is never truncated.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The longest run id accepted; runner names must fit Gitea's 255-character name column.
pub const MAX_RUN_ID_LEN: usize = 128;

/// The id of one desired run (one ephemeral runner wanted for one job).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// The run for pick `pick` of Gitea job `job_id` (from a `workflow_job` webhook, the
    /// queued-jobs API or a job read by id): `job-<job_id>-<pick>`. The pick is the job's
    /// `run_attempt` once a runner takes it ([`crate::desired::AttemptCounting::pick`]), so a re-run of the
    /// same job row is a new run, and a redelivered event the same one.
    #[must_use]
    pub fn for_job(job_id: i64, pick: u32) -> Self {
        RunId(format!("job-{job_id}-{pick}"))
    }

    /// The run for one job instance of a push-triggered workflow: `push-` and the first 24 hex
    /// digits of a SHA-256 over repository, commit, workflow path, job id and instance index.
    #[must_use]
    pub fn for_push(repo: &str, commit: &str, workflow: &str, job: &str, index: u32) -> Self {
        let mut h = Sha256::new();
        for part in [repo, commit, workflow, job] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        h.update(index.to_be_bytes());
        let digest = hex::encode(h.finalize());
        RunId(format!("push-{}", &digest[..24]))
    }

    /// The run an operator adds by hand: `op-<name>`.
    ///
    /// # Errors
    /// When `name` is not a valid id fragment (see [`RunId::parse`]).
    pub fn for_operator(name: &str) -> Result<Self, IdError> {
        RunId::parse(&format!("op-{name}"))
    }

    /// The `n`th warm run of `pool` created at `now`: `warm-<pool>-<millis>-<n>`, where the
    /// pool's label is lowered to `a-z0-9-` (and followed by a short hash of the label when
    /// that changed it, so two labels never share ids). Creation time and index make it new
    /// every time, while a pass planned twice at the same `now` names the same runs.
    #[must_use]
    pub fn for_warm(pool: &str, now: crate::time::Timestamp, n: u32) -> Self {
        let mut slug: String = pool
            .chars()
            .map(|c| match c.to_ascii_lowercase() {
                l @ ('a'..='z' | '0'..='9') => l,
                _ => '-',
            })
            .take(40)
            .collect();
        if slug != pool {
            let digest = hex::encode(Sha256::digest(pool.as_bytes()));
            slug = format!("{}-{}", slug.trim_matches('-'), &digest[..6]);
        }
        RunId(format!(
            "warm-{}-{}-{n}",
            slug.trim_start_matches('-'),
            now.as_millis()
        ))
    }

    /// Checks an id read from the table or typed by a person: 1 to 128 characters of
    /// `a-z`, `0-9` and `-`, starting with a letter or digit.
    ///
    /// # Errors
    /// When the id is empty, too long, or has other characters.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() || s.len() > MAX_RUN_ID_LEN {
            return Err(IdError::new(
                "run id",
                s,
                "must be 1 to 128 characters long",
            ));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || s.starts_with('-')
        {
            return Err(IdError::new(
                "run id",
                s,
                "may hold only a-z, 0-9 and '-', and must not start with '-'",
            ));
        }
        Ok(RunId(s.to_owned()))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Gitea job id, for ids made by [`RunId::for_job`].
    #[must_use]
    pub fn job_id(&self) -> Option<i64> {
        let rest = self.0.strip_prefix("job-")?;
        let (job, _attempt) = rest.split_once('-')?;
        job.parse().ok()
    }
}

impl TryFrom<String> for RunId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        RunId::parse(&s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of one runner attempt: `tq-<cluster>-<run id>-a<attempt>`.
///
/// It is the Gitea runner name, the EC2 `tinqs-ci:runner-name` tag, and derivable from a table
/// row, so all three sources join on it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunnerName(String);

impl RunnerName {
    /// The name for `run`'s attempt number `attempt` in `cluster`.
    #[must_use]
    pub fn new(cluster: &str, run: &RunId, attempt: u32) -> Self {
        // Built in one allocation of the right size: the planner names every run each pass.
        let mut name = String::with_capacity(3 + cluster.len() + 1 + run.0.len() + 2 + 10);
        Self::write(&mut name, cluster, run, attempt);
        RunnerName(name)
    }

    /// Appends the name [`RunnerName::new`] makes to `out` (no allocation of its own).
    pub fn write(out: &mut String, cluster: &str, run: &RunId, attempt: u32) {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut rest = attempt;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        out.push_str("tq-");
        out.push_str(cluster);
        out.push('-');
        out.push_str(&run.0);
        out.push_str("-a");
        for &d in &digits[at..] {
            out.push(char::from(d));
        }
    }

    /// The prefix every runner of `cluster` carries.
    #[must_use]
    pub fn prefix(cluster: &str) -> String {
        format!("tq-{cluster}-")
    }

    /// Wraps a name observed elsewhere (a Gitea runner, an EC2 tag) without checking it.
    #[must_use]
    pub fn observed(name: impl Into<String>) -> Self {
        RunnerName(name.into())
    }

    /// Splits a name of `cluster` back into run id and attempt; `None` for anything else
    /// (a standing runner, another cluster's runner).
    #[must_use]
    pub fn parse_ours(&self, cluster: &str) -> Option<(RunId, u32)> {
        let rest = self
            .0
            .strip_prefix("tq-")?
            .strip_prefix(cluster)?
            .strip_prefix('-')?;
        let (run, attempt) = rest.rsplit_once("-a")?;
        let attempt = attempt.parse().ok()?;
        Some((RunId::parse(run).ok()?, attempt))
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RunnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An EC2 instance id (`i-0abc…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl InstanceId {
    /// Wraps an instance id.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        InstanceId(id.into())
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The EC2 `ClientToken` for a launch: stable per run and attempt, so a retried or repeated
/// RunInstances call for the same attempt cannot start a second instance on real EC2. At most
/// 64 ASCII characters, as EC2 requires.
#[must_use]
pub fn client_token(cluster: &str, run: &RunId, attempt: u32) -> String {
    let mut h = Sha256::new();
    h.update(RunnerName::new(cluster, run, attempt).as_str().as_bytes());
    format!("tq-{}", &hex::encode(h.finalize())[..48])
}

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} `{value}`: {problem}")]
pub struct IdError {
    what: &'static str,
    value: String,
    problem: &'static str,
}

impl IdError {
    fn new(what: &'static str, value: &str, problem: &'static str) -> Self {
        let mut value = value.to_owned();
        if value.len() > 80 {
            value.truncate(value.floor_char_boundary(80));
            value.push('…');
        }
        IdError {
            what,
            value,
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_job_and_attempt_give_the_same_run_id() {
        assert_eq!(RunId::for_job(42, 1), RunId::for_job(42, 1));
        assert_ne!(RunId::for_job(42, 1), RunId::for_job(42, 2));
        assert_eq!(RunId::for_job(42, 1).as_str(), "job-42-1");
        assert_eq!(RunId::for_job(42, 1).job_id(), Some(42));
    }

    #[test]
    fn push_ids_are_stable_and_distinct_per_instance() {
        let a = RunId::for_push("o/r", "abc", ".gitea/workflows/ci.yml", "build", 0);
        let b = RunId::for_push("o/r", "abc", ".gitea/workflows/ci.yml", "build", 1);
        assert_eq!(
            a,
            RunId::for_push("o/r", "abc", ".gitea/workflows/ci.yml", "build", 0)
        );
        assert_ne!(a, b);
        assert!(RunId::parse(a.as_str()).is_ok());
        assert_eq!(a.as_str().len(), "push-".len() + 24);
    }

    #[test]
    fn runner_names_keep_the_whole_id_and_parse_back() {
        let run = RunId::parse("op-a-very-long-operator-name-that-would-collide-if-cut-at-twelve")
            .expect("valid");
        let name = RunnerName::new("prod", &run, 3);
        assert!(name.as_str().contains(run.as_str()));
        assert_eq!(name.parse_ours("prod"), Some((run.clone(), 3)));
        assert_eq!(name.parse_ours("staging"), None);
        assert_eq!(
            RunnerName::observed("host-runner-1").parse_ours("prod"),
            None
        );
        for attempt in [0, 1, 9, 10, 4_294_967_295] {
            assert_eq!(
                RunnerName::new("prod", &run, attempt).as_str(),
                format!("tq-prod-{run}-a{attempt}")
            );
        }
    }

    #[test]
    fn bad_run_ids_are_refused_with_the_reason() {
        let err = RunId::parse("Job_1").expect_err("uppercase refused");
        assert!(err.to_string().contains("a-z, 0-9"), "{err}");
        assert!(RunId::parse("").is_err());
        assert!(RunId::parse(&"a".repeat(129)).is_err());
        assert!(RunId::parse("-x").is_err());
    }

    #[test]
    fn client_tokens_fit_ec2_and_differ_per_attempt() {
        let run = RunId::for_job(7, 1);
        let t1 = client_token("prod", &run, 1);
        assert!(t1.len() <= 64);
        assert_eq!(t1, client_token("prod", &run, 1));
        assert_ne!(t1, client_token("prod", &run, 2));
        assert_ne!(t1, client_token("staging", &run, 1));
    }
}
