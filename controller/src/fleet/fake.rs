//! [`FakeFleet`]: an in-memory EC2 that behaves like the real port, for tests and benchmarks
//! (feature `testing`, never in the binary).
//!
//! It keeps instances in a map, logs every call, and lets a test inject what real EC2 does
//! to us: no capacity for an offering, throttling, a failed list page, Spot interruptions.
//! Launches honour the client token as real EC2 does (the same token returns the same
//! instance), try the pool's offerings in the real order and remember offerings without
//! capacity, and stamp launch times from a clock the test controls.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use async_trait::async_trait;
use model::observed::{Instance, InstanceState, SPOT_INTERRUPTION};
use model::{InstanceId, Timestamp};
use parking_lot::{Mutex, MutexGuard};

use super::offerings::UnavailableOfferings;
use super::{launch_tags, offerings, Fleet, FleetError, LaunchRequest, Offering};

/// Which call an injected fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FleetOp {
    /// [`Fleet::list`].
    List,
    /// [`Fleet::launch`].
    Launch,
    /// [`Fleet::terminate`].
    Terminate,
}

/// One call as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetCall {
    /// A list, and whether it succeeded.
    List {
        /// `Ok(n)` instances listed, or the error text.
        result: Result<usize, String>,
    },
    /// A launch, with every offering tried and what came of it.
    Launch {
        /// The request's client token.
        client_token: String,
        /// The runner name.
        runner: String,
        /// Offerings tried, in order, with the error each gave (`None`: launched there).
        tried: Vec<(Offering, Option<String>)>,
        /// The instance launched or returned for the token, if any.
        instance: Option<InstanceId>,
    },
    /// A terminate of these ids.
    Terminate {
        /// The ids asked for.
        ids: Vec<InstanceId>,
        /// Whether it succeeded.
        ok: bool,
    },
}

#[derive(Debug)]
struct State {
    now: Timestamp,
    next_id: u64,
    instances: BTreeMap<InstanceId, Instance>,
    offering_of: BTreeMap<InstanceId, Offering>,
    by_token: BTreeMap<String, InstanceId>,
    no_capacity: BTreeSet<Offering>,
    zones: BTreeMap<String, String>,
    next_faults: BTreeMap<FleetOp, VecDeque<FleetError>>,
    sticky_faults: BTreeMap<FleetOp, FleetError>,
    calls: Vec<FleetCall>,
}

/// An in-memory fleet for one cluster. Cheap to clone the handle via `Arc`.
#[derive(Debug)]
pub struct FakeFleet {
    cluster: String,
    unavailable: UnavailableOfferings,
    state: Mutex<State>,
}

impl FakeFleet {
    /// An empty fleet for `cluster`, with its clock at `now`.
    #[must_use]
    pub fn new(cluster: &str, now: Timestamp) -> Self {
        FakeFleet {
            cluster: cluster.to_owned(),
            unavailable: UnavailableOfferings::default(),
            state: Mutex::new(State {
                now,
                next_id: 1,
                instances: BTreeMap::new(),
                offering_of: BTreeMap::new(),
                by_token: BTreeMap::new(),
                no_capacity: BTreeSet::new(),
                zones: BTreeMap::new(),
                next_faults: BTreeMap::new(),
                sticky_faults: BTreeMap::new(),
                calls: Vec::new(),
            }),
        }
    }

    /// The same, with a custom lifetime for the unavailable-offering cache.
    #[must_use]
    pub fn with_unavailable_ttl(cluster: &str, now: Timestamp, ttl: Duration) -> Self {
        FakeFleet {
            unavailable: UnavailableOfferings::new(ttl),
            ..Self::new(cluster, now)
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    // ---- clock ----

    /// The fake's clock.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.lock().now
    }

    /// Sets the clock (launch times and the unavailable-offering cache read it).
    pub fn set_now(&self, now: Timestamp) {
        self.lock().now = now;
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut s = self.lock();
        s.now = s.now.plus(d);
    }

    // ---- faults ----

    /// The next call of `op` fails with `err` (queued: several calls fail in order).
    pub fn fail_next(&self, op: FleetOp, err: FleetError) {
        self.lock()
            .next_faults
            .entry(op)
            .or_default()
            .push_back(err);
    }

    /// Every call of `op` fails with `err` until [`FakeFleet::clear_faults`].
    pub fn fail_always(&self, op: FleetOp, err: FleetError) {
        self.lock().sticky_faults.insert(op, err);
    }

    /// The next `n` calls of `op` are throttled (`RequestLimitExceeded`).
    pub fn throttle_next(&self, op: FleetOp, n: usize) {
        for _ in 0..n {
            self.fail_next(
                op,
                FleetError::Throttled("RequestLimitExceeded: Request limit exceeded.".into()),
            );
        }
    }

    /// The next list fails part-way, as when one page of DescribeInstances fails.
    pub fn fail_next_list_page(&self) {
        self.fail_next(
            FleetOp::List,
            FleetError::Other(
                "DescribeInstances page 2 failed: InternalError: An internal error has occurred"
                    .into(),
            ),
        );
    }

    /// Drops every injected fault (capacity included).
    pub fn clear_faults(&self) {
        let mut s = self.lock();
        s.next_faults.clear();
        s.sticky_faults.clear();
        s.no_capacity.clear();
    }

    /// EC2 has no capacity for `offering` until [`FakeFleet::restore_capacity`].
    pub fn set_no_capacity(&self, offering: Offering) {
        self.lock().no_capacity.insert(offering);
    }

    /// Capacity for `offering` is back.
    pub fn restore_capacity(&self, offering: &Offering) {
        self.lock().no_capacity.remove(offering);
    }

    /// The zone instances launched in `subnet` report (default: `<subnet>-zone`).
    pub fn set_zone(&self, subnet: &str, zone: &str) {
        self.lock().zones.insert(subnet.to_owned(), zone.to_owned());
    }

    // ---- instance state ----

    /// Puts an instance in the map as is: another cluster's, an untagged one, or one of ours
    /// made by hand. Only those carrying our cluster tag are ever listed.
    pub fn insert(&self, instance: Instance) {
        self.lock().instances.insert(instance.id.clone(), instance);
    }

    /// Sets an instance's state and state reason. Returns `false` when it does not exist.
    pub fn set_state(&self, id: &InstanceId, state: InstanceState, reason: Option<&str>) -> bool {
        let mut s = self.lock();
        match s.instances.get_mut(id) {
            Some(i) => {
                i.state = state;
                i.state_reason = reason.map(str::to_owned);
                true
            }
            None => false,
        }
    }

    /// EC2 reclaims a Spot instance: it is terminated with reason
    /// `Server.SpotInstanceTermination`. Returns `false` when it does not exist.
    pub fn interrupt(&self, id: &InstanceId) -> bool {
        self.set_state(id, InstanceState::Terminated, Some(SPOT_INTERRUPTION))
    }

    /// EC2 forgets a terminated instance (it drops out of DescribeInstances after about an
    /// hour). Returns `false` when it does not exist.
    pub fn forget(&self, id: &InstanceId) -> bool {
        let mut s = self.lock();
        s.offering_of.remove(id);
        s.instances.remove(id).is_some()
    }

    /// One instance, ours or not.
    #[must_use]
    pub fn instance(&self, id: &InstanceId) -> Option<Instance> {
        self.lock().instances.get(id).cloned()
    }

    /// Every instance in the map, ours or not.
    #[must_use]
    pub fn all_instances(&self) -> Vec<Instance> {
        self.lock().instances.values().cloned().collect()
    }

    /// Our instances that are not shutting down or terminated.
    #[must_use]
    pub fn live(&self) -> Vec<Instance> {
        let s = self.lock();
        s.instances
            .values()
            .filter(|i| i.is_ours(&self.cluster) && i.state.is_live())
            .cloned()
            .collect()
    }

    /// The offering an instance was launched on.
    #[must_use]
    pub fn offering_of(&self, id: &InstanceId) -> Option<Offering> {
        self.lock().offering_of.get(id).cloned()
    }

    // ---- call log ----

    /// Every call so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<FleetCall> {
        self.lock().calls.clone()
    }

    /// How many calls of `op` were made.
    #[must_use]
    pub fn count(&self, op: FleetOp) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| {
                matches!(
                    (op, c),
                    (FleetOp::List, FleetCall::List { .. })
                        | (FleetOp::Launch, FleetCall::Launch { .. })
                        | (FleetOp::Terminate, FleetCall::Terminate { .. })
                )
            })
            .count()
    }

    /// Forgets the call log.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Offerings the fleet currently skips because they recently had no capacity.
    #[must_use]
    pub fn unavailable_offerings(&self) -> Vec<Offering> {
        let now = self.now();
        self.unavailable
            .snapshot(now)
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    }

    fn take_fault(s: &mut State, op: FleetOp) -> Option<FleetError> {
        if let Some(e) = s.next_faults.get_mut(&op).and_then(VecDeque::pop_front) {
            return Some(e);
        }
        s.sticky_faults.get(&op).cloned()
    }
}

#[async_trait]
impl Fleet for FakeFleet {
    async fn list(&self) -> Result<Vec<Instance>, FleetError> {
        let mut s = self.lock();
        if let Some(e) = Self::take_fault(&mut s, FleetOp::List) {
            s.calls.push(FleetCall::List {
                result: Err(e.to_string()),
            });
            return Err(e);
        }
        let out: Vec<Instance> = s
            .instances
            .values()
            .filter(|i| i.is_ours(&self.cluster))
            .cloned()
            .collect();
        s.calls.push(FleetCall::List {
            result: Ok(out.len()),
        });
        Ok(out)
    }

    fn without_capacity_until(&self, pool: &model::config::PoolConfig) -> Option<Timestamp> {
        let now = self.lock().now;
        self.unavailable
            .all_unavailable_until(&offerings(pool), now)
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<(Instance, Offering), FleetError> {
        let mut s = self.lock();
        let mut call = FleetCall::Launch {
            client_token: req.client_token.clone(),
            runner: req.runner.to_string(),
            tried: Vec::new(),
            instance: None,
        };
        if let Some(e) = Self::take_fault(&mut s, FleetOp::Launch) {
            s.calls.push(call);
            return Err(e);
        }
        // Real EC2: the same client token returns the instance it already started.
        if let Some(id) = s.by_token.get(&req.client_token).cloned() {
            if let (Some(i), Some(o)) = (
                s.instances.get(&id).cloned(),
                s.offering_of.get(&id).cloned(),
            ) {
                if let FleetCall::Launch { instance, .. } = &mut call {
                    *instance = Some(id);
                }
                s.calls.push(call);
                return Ok((i, o));
            }
        }
        let now = s.now;
        let candidates = offerings(&req.pool_config);
        if candidates.is_empty() {
            s.calls.push(call);
            return Err(FleetError::InvalidConfig {
                code: "InvalidParameterValue".into(),
                message: format!("pool {} lists no instance type or no subnet", req.pool),
            });
        }
        let mut last = None;
        let mut tried = Vec::new();
        for offering in candidates {
            if self.unavailable.is_unavailable(&offering, now) {
                continue;
            }
            if s.no_capacity.contains(&offering) {
                let err = FleetError::Capacity {
                    code: "InsufficientInstanceCapacity".into(),
                    message: format!(
                        "We currently do not have sufficient {} capacity",
                        offering.instance_type
                    ),
                };
                self.unavailable.mark(&offering, now);
                tried.push((offering, Some(err.to_string())));
                last = Some(err);
                continue;
            }
            let id = InstanceId::new(format!("i-{:017x}", s.next_id));
            s.next_id += 1;
            let zone = s
                .zones
                .get(&offering.subnet)
                .cloned()
                .unwrap_or_else(|| format!("{}-zone", offering.subnet));
            let instance = Instance {
                id: id.clone(),
                state: InstanceState::Pending,
                state_reason: None,
                launched_at: now,
                lifecycle: offering.lifecycle,
                instance_type: offering.instance_type.clone(),
                zone,
                tags: launch_tags(&self.cluster, req).into(),
            };
            s.instances.insert(id.clone(), instance.clone());
            s.offering_of.insert(id.clone(), offering.clone());
            s.by_token.insert(req.client_token.clone(), id.clone());
            tried.push((offering.clone(), None));
            call = FleetCall::Launch {
                client_token: req.client_token.clone(),
                runner: req.runner.to_string(),
                tried,
                instance: Some(id),
            };
            s.calls.push(call);
            return Ok((instance, offering));
        }
        if let FleetCall::Launch { tried: t, .. } = &mut call {
            *t = tried;
        }
        s.calls.push(call);
        Err(last.unwrap_or_else(|| FleetError::Capacity {
            code: "UnavailableOffering".into(),
            message: format!(
                "every offering of pool {} recently had no capacity",
                req.pool
            ),
        }))
    }

    async fn terminate(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        let mut s = self.lock();
        if let Some(e) = Self::take_fault(&mut s, FleetOp::Terminate) {
            s.calls.push(FleetCall::Terminate {
                ids: ids.to_vec(),
                ok: false,
            });
            return Err(e);
        }
        // The controller's IAM policy only allows terminating instances carrying our cluster
        // tag; EC2 refuses the whole call otherwise.
        if let Some(foreign) = ids.iter().find(|id| {
            s.instances
                .get(*id)
                .is_some_and(|i| !i.is_ours(&self.cluster))
        }) {
            s.calls.push(FleetCall::Terminate {
                ids: ids.to_vec(),
                ok: false,
            });
            return Err(FleetError::Auth(format!(
                "UnauthorizedOperation: not authorized to terminate {foreign} (not tagged for cluster {})",
                self.cluster
            )));
        }
        for id in ids {
            if let Some(i) = s.instances.get_mut(id) {
                if i.state != InstanceState::Terminated {
                    i.state = InstanceState::Terminated;
                    i.state_reason = Some("Client.UserInitiatedShutdown".into());
                }
            }
        }
        s.calls.push(FleetCall::Terminate {
            ids: ids.to_vec(),
            ok: true,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::config::{Market, PoolConfig};
    use model::secret::Secret;
    use model::{Lifecycle, RunId, RunnerName};

    fn pool(market: Market) -> PoolConfig {
        PoolConfig {
            instance_types: vec!["c7a.large".into(), "m7a.large".into()],
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            security_groups: vec![],
            ami: "ami-1".into(),
            instance_profile: None,
            market,
            max_instances: 10,
            volume_size_gb: 30,
            extra_labels: vec![],
            max_lifetime: None,
            warm: None,
            hourly_price: None,
        }
    }

    fn req(job: i64, market: Market) -> LaunchRequest {
        let run = RunId::for_job(job, 1);
        LaunchRequest {
            runner: RunnerName::new("prod", &run, 1),
            client_token: model::ids::client_token("prod", &run, 1),
            runner_id: None,
            run,
            attempt: 1,
            pool: "go".into(),
            pool_config: pool(market),
            user_data: Secret::new("#!/bin/sh\necho token"),
        }
    }

    fn offering(t: &str, subnet: &str, lifecycle: Lifecycle) -> Offering {
        Offering {
            instance_type: t.into(),
            subnet: subnet.into(),
            lifecycle,
        }
    }

    #[tokio::test]
    async fn launch_tags_the_instance_and_lists_it() {
        let fleet = FakeFleet::new("prod", Timestamp::from_millis(5_000));
        let (i, o) = fleet.launch(&req(1, Market::Spot)).await.expect("launch");
        assert_eq!(o, offering("c7a.large", "subnet-a", Lifecycle::Spot));
        assert_eq!(i.launched_at, Timestamp::from_millis(5_000));
        assert!(i.is_ours("prod"));
        assert_eq!(
            i.runner_name().map(|n| n.to_string()),
            Some("tq-prod-job-1-1-a1".into())
        );
        assert_eq!(fleet.list().await.expect("list"), vec![i]);
    }

    #[tokio::test]
    async fn the_same_client_token_returns_the_same_instance() {
        let fleet = FakeFleet::new("prod", Timestamp::EPOCH);
        let (a, _) = fleet.launch(&req(1, Market::Spot)).await.expect("first");
        let (b, _) = fleet.launch(&req(1, Market::Spot)).await.expect("second");
        assert_eq!(a.id, b.id);
        assert_eq!(fleet.all_instances().len(), 1);
    }

    #[tokio::test]
    async fn no_capacity_falls_back_and_is_remembered_for_a_while() {
        let fleet = FakeFleet::new("prod", Timestamp::EPOCH);
        fleet.set_no_capacity(offering("c7a.large", "subnet-a", Lifecycle::Spot));
        let (_, o) = fleet
            .launch(&req(1, Market::Spot))
            .await
            .expect("falls back");
        assert_eq!(o, offering("c7a.large", "subnet-b", Lifecycle::Spot));
        fleet.restore_capacity(&offering("c7a.large", "subnet-a", Lifecycle::Spot));
        let (_, o) = fleet
            .launch(&req(2, Market::Spot))
            .await
            .expect("skips the cached one");
        assert_eq!(o.subnet, "subnet-b");
        fleet.advance(Duration::from_secs(600));
        let (_, o) = fleet
            .launch(&req(3, Market::Spot))
            .await
            .expect("cache expired");
        assert_eq!(o.subnet, "subnet-a");
    }

    #[tokio::test]
    async fn spot_then_on_demand_uses_on_demand_when_spot_has_no_capacity() {
        let fleet = FakeFleet::new("prod", Timestamp::EPOCH);
        for o in offerings(&pool(Market::Spot)) {
            fleet.set_no_capacity(o);
        }
        let err = fleet
            .launch(&req(1, Market::Spot))
            .await
            .expect_err("spot only");
        assert!(matches!(err, FleetError::Capacity { .. }), "{err:?}");
        let (i, o) = fleet
            .launch(&req(2, Market::SpotThenOnDemand))
            .await
            .expect("on-demand");
        assert_eq!(o.lifecycle, Lifecycle::OnDemand);
        assert_eq!(i.lifecycle, Lifecycle::OnDemand);
    }

    #[tokio::test]
    async fn injected_faults_fail_the_next_calls_in_order() {
        let fleet = FakeFleet::new("prod", Timestamp::EPOCH);
        fleet.throttle_next(FleetOp::Launch, 1);
        fleet.fail_next_list_page();
        assert!(matches!(
            fleet.launch(&req(1, Market::Spot)).await,
            Err(FleetError::Throttled(_))
        ));
        assert!(fleet.list().await.is_err());
        assert!(fleet.launch(&req(1, Market::Spot)).await.is_ok());
        assert!(fleet.list().await.is_ok());
        assert_eq!(fleet.count(FleetOp::Launch), 2);
    }

    #[tokio::test]
    async fn foreign_instances_are_never_listed_nor_terminated() {
        let fleet = FakeFleet::new("prod", Timestamp::EPOCH);
        let (mine, _) = fleet.launch(&req(1, Market::Spot)).await.expect("launch");
        let mut other = mine.clone();
        other.id = InstanceId::new("i-other");
        other
            .tags
            .insert(model::tags::CLUSTER.into(), "staging".into());
        fleet.insert(other.clone());
        assert_eq!(fleet.list().await.expect("list").len(), 1);
        let err = fleet
            .terminate(&[other.id.clone()])
            .await
            .expect_err("refused");
        assert!(matches!(err, FleetError::Auth(_)));
        assert!(fleet.instance(&other.id).is_some_and(|i| i.state.is_live()));
    }

    #[tokio::test]
    async fn terminate_is_idempotent_and_interruption_carries_its_reason() {
        let fleet = FakeFleet::new("prod", Timestamp::EPOCH);
        let (a, _) = fleet.launch(&req(1, Market::Spot)).await.expect("a");
        let (b, _) = fleet.launch(&req(2, Market::Spot)).await.expect("b");
        fleet
            .terminate(&[a.id.clone(), InstanceId::new("i-gone")])
            .await
            .expect("once");
        fleet
            .terminate(std::slice::from_ref(&a.id))
            .await
            .expect("twice");
        assert!(fleet.interrupt(&b.id));
        let listed = fleet.list().await.expect("list");
        assert!(listed.iter().all(|i| i.state == InstanceState::Terminated));
        let b = listed.iter().find(|i| i.id == b.id).expect("b listed");
        assert_eq!(b.state_reason.as_deref(), Some(SPOT_INTERRUPTION));
        assert!(fleet.live().is_empty());
    }
}
