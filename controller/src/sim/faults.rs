//! Fault profiles: how often each thing the world can do to the controller happens.

use serde::Serialize;

/// How often each fault happens in a simulated run. Rates are per event of their kind (an
/// instance launched, a call made, a webhook sent) unless said otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Faults {
    /// Chance that one offering (instance type, subnet, market) has no capacity when
    /// RunInstances tries it (InsufficientInstanceCapacity).
    pub ice: f64,
    /// Spot interruptions per Spot instance-hour.
    pub spot_per_hour: f64,
    /// Chance that an EC2 call is throttled (RequestLimitExceeded).
    pub ec2_throttle: f64,
    /// A new instance is missing from DescribeInstances for up to this many seconds.
    pub list_lag_s: u64,
    /// Chance that an instance never boots far enough to start its runner.
    pub never_boot: f64,
    /// Chance that a webhook is late by up to two minutes (which also reorders it).
    pub webhook_delay: f64,
    /// Chance that a webhook is delivered twice.
    pub webhook_duplicate: f64,
    /// Chance that a webhook is never delivered.
    pub webhook_drop: f64,
    /// Gitea outages (every API call fails or hangs) of 3 to 8 minutes, spread over the run.
    pub gitea_outages: u32,
    /// Chance that a Gitea API call answers 5xx outside outages.
    pub gitea_5xx: f64,
    /// Chance that one runner listing skips a row (Gitea pages a list ordered by last
    /// contact only, so rows move between pages while it is read).
    pub runner_paging: f64,
    /// Chance that a runner's process hangs while idle: it stops contacting Gitea and its
    /// instance keeps running.
    pub runner_hang: f64,
    /// Chance that a runner goes offline in the middle of its job (its task is then failed
    /// by Gitea's zombie-task cron) while its instance keeps running.
    pub runner_offline: f64,
    /// Chance that a runner stays online and polling but never takes a job.
    pub runner_stuck: f64,
    /// DynamoDB outages (every call fails) of 5 minutes, spread over the run.
    pub dynamo_outages: u32,
    /// Chance that a DynamoDB call is throttled.
    pub dynamo_throttle: f64,
    /// Times a controller is killed at a step boundary of a launch (after the claim, after
    /// registering the runner, after RunInstances, before recording the instance) and
    /// restarted 5 to 30 s later.
    pub controller_kills: u32,
}

impl Faults {
    /// No faults at all.
    #[must_use]
    pub fn none() -> Self {
        Faults {
            ice: 0.0,
            spot_per_hour: 0.0,
            ec2_throttle: 0.0,
            list_lag_s: 0,
            never_boot: 0.0,
            webhook_delay: 0.0,
            webhook_duplicate: 0.0,
            webhook_drop: 0.0,
            gitea_outages: 0,
            gitea_5xx: 0.0,
            runner_paging: 0.0,
            runner_hang: 0.0,
            runner_offline: 0.0,
            runner_stuck: 0.0,
            dynamo_outages: 0,
            dynamo_throttle: 0.0,
            controller_kills: 0,
        }
    }

    /// A little of everything: what a normal week looks like.
    #[must_use]
    pub fn default_profile() -> Self {
        Faults {
            ice: 0.05,
            spot_per_hour: 0.05,
            ec2_throttle: 0.01,
            list_lag_s: 30,
            never_boot: 0.01,
            webhook_delay: 0.05,
            webhook_duplicate: 0.02,
            webhook_drop: 0.005,
            gitea_outages: 1,
            gitea_5xx: 0.005,
            runner_paging: 0.02,
            runner_hang: 0.005,
            runner_offline: 0.005,
            runner_stuck: 0.005,
            dynamo_outages: 0,
            dynamo_throttle: 0.005,
            controller_kills: 2,
        }
    }

    /// The benchmark's mix (`make sim`): about 10% of instances interrupted, 5% that never
    /// boot, 2% of runners offline mid-job, 1% stuck, 1% of webhooks dropped, two Gitea
    /// outages, one DynamoDB outage, twenty controller kills.
    #[must_use]
    pub fn chaos() -> Self {
        Faults {
            ice: 0.1,
            spot_per_hour: 1.0,
            ec2_throttle: 0.02,
            list_lag_s: 60,
            never_boot: 0.05,
            webhook_delay: 0.05,
            webhook_duplicate: 0.02,
            webhook_drop: 0.01,
            gitea_outages: 2,
            gitea_5xx: 0.01,
            runner_paging: 0.05,
            runner_hang: 0.01,
            runner_offline: 0.02,
            runner_stuck: 0.01,
            dynamo_outages: 1,
            dynamo_throttle: 0.01,
            controller_kills: 20,
        }
    }

    /// One fault kind alone, at a strong rate.
    fn only(kind: &str) -> Option<Self> {
        let mut f = Faults::none();
        match kind {
            "ice" => f.ice = 0.5,
            "spot" => f.spot_per_hour = 2.0,
            "ec2-throttle" => f.ec2_throttle = 0.2,
            "list-lag" => f.list_lag_s = 60,
            "never-boot" => f.never_boot = 0.2,
            "webhook-delay" => f.webhook_delay = 0.5,
            "webhook-duplicate" => f.webhook_duplicate = 0.5,
            "webhook-drop" => f.webhook_drop = 0.3,
            "gitea-outage" => f.gitea_outages = 3,
            "gitea-5xx" => f.gitea_5xx = 0.1,
            "runner-paging" => f.runner_paging = 0.5,
            "runner-hang" => f.runner_hang = 0.1,
            "runner-offline" => f.runner_offline = 0.1,
            "runner-stuck" => f.runner_stuck = 0.1,
            "dynamo-outage" => f.dynamo_outages = 2,
            "dynamo-throttle" => f.dynamo_throttle = 0.1,
            "controller-kill" => f.controller_kills = 12,
            _ => return None,
        }
        Some(f)
    }

    /// The profile called `name`: `none`, `default`, `chaos`, or one fault kind alone
    /// (see [`FAULT_KINDS`]).
    ///
    /// # Errors
    /// When `name` is none of these, listing the names there are.
    pub fn profile(name: &str) -> Result<Self, String> {
        match name {
            "none" => Ok(Faults::none()),
            "default" => Ok(Faults::default_profile()),
            "chaos" => Ok(Faults::chaos()),
            other => Faults::only(other).ok_or_else(|| {
                format!(
                    "unknown fault profile `{}`: use none, default, chaos, or one of {}",
                    other.escape_debug(),
                    FAULT_KINDS.join(", ")
                )
            }),
        }
    }
}

/// Every fault kind that can run alone as a profile.
pub const FAULT_KINDS: [&str; 17] = [
    "ice",
    "spot",
    "ec2-throttle",
    "list-lag",
    "never-boot",
    "webhook-delay",
    "webhook-duplicate",
    "webhook-drop",
    "gitea-outage",
    "gitea-5xx",
    "runner-paging",
    "runner-hang",
    "runner-offline",
    "runner-stuck",
    "dynamo-outage",
    "dynamo-throttle",
    "controller-kill",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_a_profile_with_exactly_one_fault() {
        for kind in FAULT_KINDS {
            let f = Faults::profile(kind).expect(kind);
            assert_ne!(f, Faults::none(), "{kind} changes nothing");
        }
        let err = Faults::profile("chaos-monkey").expect_err("unknown");
        assert!(
            err.contains("chaos-monkey") && err.contains("never-boot"),
            "{err}"
        );
    }
}
