//! Why one step of a plan failed, by kind.
//!
//! Every variant is built from a port's own typed error (which never holds a token: the
//! ports leave answers that may carry one out of their messages) or from ids, names and
//! durations, so printing a step error never prints a secret.

use std::time::Duration;

use crate::fleet::FleetError;
use crate::forge::ForgeError;
use crate::store::StoreError;

/// Why one step of a plan was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The table failed or refused a call (a version conflict, throttling, DynamoDB down).
    #[error("{0}")]
    Store(StoreError),
    /// EC2 failed or refused a call.
    #[error("{0}")]
    Fleet(FleetError),
    /// Gitea failed or refused a call.
    #[error("{0}")]
    Forge(ForgeError),
    /// A call gave no answer within its timeout: its outcome is unknown.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    /// The store refused a write because the lease is no longer ours: another controller
    /// may be applying its own plan, so this pass writes and launches nothing more.
    #[error("the lease is no longer held by this controller; the pass stops here")]
    LeaseLost,
    /// The plan's precondition no longer holds: the runner changed since it was seen.
    #[error("runner #{runner_id} changed since it was seen (online: {online}, busy: {busy}); left for the next pass")]
    RunnerChanged {
        /// Gitea's runner id.
        runner_id: i64,
        /// Whether it is online now.
        online: bool,
        /// Whether it is busy now.
        busy: bool,
    },
    /// The step cannot be carried out as planned (its run is not in this pass's view, its
    /// pool is not configured, its boot script cannot be made).
    #[error("{0}")]
    Invalid(String),
    /// Not attempted.
    #[error("skipped: {0}")]
    Skipped(Skip),
    /// A launch failed at one of its stages (the claim, the record of the instance…).
    #[error("{stage}: {source}")]
    Launch {
        /// Which stage, in words (`claim failed`, `launch failed`…).
        stage: String,
        /// What went wrong there.
        source: Box<StepError>,
    },
}

/// Why a step was not attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// An earlier step of the same run failed: this one would act on a state that did not
    /// come true (a machine terminated while its registration still takes jobs).
    #[error("an earlier step of the run failed ({0})")]
    EarlierStep(Box<StepError>),
    /// A write of this pass found the lease lost.
    #[error("the lease was lost during this pass")]
    LeaseLost,
}

impl StepError {
    /// A short stable name for the kind of failure, for metric labels and logs: `store`,
    /// `fleet`, `forge`, `timed-out`, `lease-lost`, `runner-changed`, `held-back`,
    /// `invalid` or `skipped`. A failed launch stage is the kind of what failed there.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            StepError::Store(_) => "store",
            StepError::Fleet(_) => "fleet",
            StepError::Forge(_) => "forge",
            StepError::TimedOut(_) => "timed-out",
            StepError::LeaseLost => "lease-lost",
            StepError::RunnerChanged { .. } => "runner-changed",
            StepError::Invalid(_) => "invalid",
            StepError::Skipped(_) => "skipped",
            StepError::Launch { source, .. } => source.kind(),
        }
    }

    /// Whether the lease was lost: this step found it so, or was skipped because of it.
    #[must_use]
    pub fn lease_lost(&self) -> bool {
        match self {
            StepError::LeaseLost | StepError::Skipped(Skip::LeaseLost) => true,
            StepError::Launch { source, .. } => source.lease_lost(),
            _ => false,
        }
    }

    /// `self` as the failure of a launch stage.
    #[must_use]
    pub fn at(self, stage: impl Into<String>) -> StepError {
        StepError::Launch {
            stage: stage.into(),
            source: Box::new(self),
        }
    }
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LeaseLost => StepError::LeaseLost,
            e => StepError::Store(e),
        }
    }
}

impl From<FleetError> for StepError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::Timeout(after) => StepError::TimedOut(after),
            e => StepError::Fleet(e),
        }
    }
}

impl From<ForgeError> for StepError {
    fn from(e: ForgeError) -> Self {
        StepError::Forge(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_lease_is_its_own_kind_however_it_arrives() {
        let lost = StepError::from(StoreError::LeaseLost);
        assert_eq!(lost, StepError::LeaseLost);
        assert!(lost.lease_lost());
        let in_launch = lost.clone().at("claim failed");
        assert_eq!(in_launch.kind(), "lease-lost");
        assert!(in_launch.lease_lost());
        assert_eq!(
            in_launch.to_string(),
            "claim failed: the lease is no longer held by this controller; the pass stops here"
        );
        let skipped = StepError::Skipped(Skip::LeaseLost);
        assert_eq!(skipped.kind(), "skipped");
        assert!(skipped.lease_lost());
        assert!(!StepError::from(StoreError::Conflict("job-1-1".into())).lease_lost());
    }

    #[test]
    fn each_port_error_keeps_its_kind_and_its_words() {
        let cases = [
            (
                StepError::from(StoreError::Throttled("slow down".into())),
                "store",
                "throttled by DynamoDB: slow down",
            ),
            (
                StepError::from(FleetError::Capacity {
                    code: "InsufficientInstanceCapacity".into(),
                    message: "none left".into(),
                }),
                "fleet",
                "no capacity: InsufficientInstanceCapacity: none left",
            ),
            (
                StepError::from(FleetError::Timeout(Duration::from_secs(3))),
                "timed-out",
                "timed out after 3s",
            ),
            (
                StepError::from(ForgeError::Unavailable("502".into())),
                "forge",
                "Gitea unavailable: 502",
            ),
            (
                StepError::Skipped(Skip::EarlierStep(Box::new(StepError::TimedOut(
                    Duration::from_secs(5),
                )))),
                "skipped",
                "skipped: an earlier step of the run failed (timed out after 5s)",
            ),
        ];
        for (e, kind, text) in cases {
            assert_eq!(e.kind(), kind, "{e:?}");
            assert_eq!(e.to_string(), text);
        }
    }
}
