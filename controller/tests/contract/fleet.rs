//! The fleet port's contract (`controller/src/fleet.rs`), written once and run against the
//! tests' `FakeFleet` (`tests/fleet_contract.rs`) and the EC2 fleet over moto (`tests/aws.rs`).
//! Where they disagree EC2's behaviour wins and the fake is fixed.
//!
//! Not here, because moto cannot show EC2's behaviour: client-token idempotency, capacity
//! errors and throttling (the fake's own tests and the in-memory `Ec2Api` below the real
//! fleet cover them), and the IAM refusal to terminate another cluster's instance (moto does
//! not enforce IAM; the fake refuses as the policy in wiki/DevOps-Reference.md does).
//!
//! `fleet_contract!(fresh)` expands to one test per clause, each on a fresh rig from the
//! async expression `fresh`.

#![allow(dead_code)] // each including test binary uses the macro, not every helper directly

use async_trait::async_trait;
use controller::fleet::{Fleet, LaunchRequest};
use model::config::PoolConfig;
use model::secret::Secret;
use model::{tags, InstanceId, Lifecycle, RunId, RunnerName};

/// A fleet for one cluster and what the clauses need around it.
#[async_trait]
pub trait FleetRig: Send + Sync {
    /// The port under test.
    fn fleet(&self) -> &dyn Fleet;
    /// Its cluster id.
    fn cluster(&self) -> &str;
    /// A spot pool whose first offering can launch (first type, first subnet).
    fn pool(&self) -> PoolConfig;
    /// Starts an instance outside the fleet: tagged for `cluster`, or untagged when `None`.
    async fn start_foreign(&self, cluster: Option<&str>) -> InstanceId;
}

/// The user data every clause launches with: a secret, never to be listed or logged.
pub const USER_DATA: &str = "#!/bin/bash\necho 'runner credentials: s3cr3t-runner-token'\n";

/// The launch request for Gitea job `job`, attempt 1, in the rig's pool `go`.
#[must_use]
pub fn launch_req(rig: &dyn FleetRig, job: i64) -> LaunchRequest {
    let run = RunId::for_job(job, 1);
    LaunchRequest {
        runner: RunnerName::new(rig.cluster(), &run, 1),
        client_token: model::ids::client_token(rig.cluster(), &run, 1),
        runner_id: None,
        run,
        attempt: 1,
        pool: "go".into(),
        pool_config: rig.pool(),
        user_data: Secret::new(USER_DATA),
    }
}

/// A launch lands on the pool's first offering and carries the ownership tags (cluster,
/// runner, run, pool, attempt, name); listing shows the same instance, live.
pub async fn a_launch_carries_our_tags_and_is_listed(rig: &dyn FleetRig) {
    let req = launch_req(rig, 1);
    let (instance, offering) = rig.fleet().launch(&req).await.expect("launch");
    let pool = rig.pool();
    assert_eq!(offering.lifecycle, Lifecycle::Spot);
    assert_eq!(offering.instance_type, pool.instance_types[0]);
    assert_eq!(offering.subnet, pool.subnets[0]);
    assert!(instance.is_ours(rig.cluster()), "{instance:?}");
    assert!(instance.state.is_live(), "{instance:?}");
    let listed = rig.fleet().list().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let seen = &listed[0];
    assert_eq!(seen.id, instance.id);
    assert!(seen.state.is_live(), "{seen:?}");
    assert_eq!(seen.lifecycle, Lifecycle::Spot);
    assert_eq!(seen.instance_type, pool.instance_types[0]);
    assert_eq!(seen.runner_name().as_ref(), Some(&req.runner));
    let tag = |k: &str| seen.tags.get(k).map(String::as_str);
    assert_eq!(tag(tags::CLUSTER), Some(rig.cluster()));
    assert_eq!(tag(tags::RUNNER_NAME), Some(req.runner.as_str()));
    assert_eq!(tag(tags::RUN_ID), Some("job-1-1"));
    assert_eq!(tag(tags::POOL), Some("go"));
    assert_eq!(tag(tags::ATTEMPT), Some("1"));
    assert_eq!(tag(tags::NAME), Some(req.runner.as_str()));
    assert!(
        !format!("{listed:?}").contains("s3cr3t"),
        "the user data is never listed"
    );
}

/// Only instances carrying our cluster's tag are listed: not another cluster's, not untagged.
pub async fn only_our_clusters_instances_are_listed(rig: &dyn FleetRig) {
    let (ours, _) = rig
        .fleet()
        .launch(&launch_req(rig, 1))
        .await
        .expect("launch");
    rig.start_foreign(Some("another-cluster")).await;
    rig.start_foreign(None).await;
    let listed = rig.fleet().list().await.expect("list");
    let ids: Vec<InstanceId> = listed.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, vec![ours.id]);
}

/// Terminating is idempotent: twice, and with ids that never existed, succeeds; terminated
/// instances are still listed for a while, no longer live.
pub async fn terminating_twice_and_unknown_ids_both_succeed(rig: &dyn FleetRig) {
    let (a, _) = rig.fleet().launch(&launch_req(rig, 1)).await.expect("a");
    let (b, _) = rig.fleet().launch(&launch_req(rig, 2)).await.expect("b");
    let (c, _) = rig.fleet().launch(&launch_req(rig, 3)).await.expect("c");
    let ids = vec![
        a.id.clone(),
        InstanceId::new("i-0000000000000dead"),
        b.id.clone(),
    ];
    rig.fleet().terminate(&ids).await.expect("terminate");
    rig.fleet().terminate(&ids).await.expect("terminate again");
    rig.fleet()
        .terminate(&[])
        .await
        .expect("nothing to terminate");
    let listed = rig.fleet().list().await.expect("list");
    let live = |id: &InstanceId| {
        listed
            .iter()
            .find(|i| &i.id == id)
            .map(|i| i.state.is_live())
    };
    assert_eq!(live(&a.id), Some(false), "{listed:?}");
    assert_eq!(live(&b.id), Some(false), "{listed:?}");
    assert_eq!(live(&c.id), Some(true), "untouched: {listed:?}");
}

/// One test per clause of the contract, each on a fresh rig from the async expression
/// `$fresh`.
macro_rules! fleet_contract {
    ($fresh:expr) => {
        fleet_contract!(@each $fresh;
            a_launch_carries_our_tags_and_is_listed,
            only_our_clusters_instances_are_listed,
            terminating_twice_and_unknown_ids_both_succeed,
        );
    };
    (@each $fresh:expr; $($clause:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $clause() {
                let rig = $fresh;
                $crate::fleet_contract::$clause(&rig).await;
            }
        )*
    };
}
