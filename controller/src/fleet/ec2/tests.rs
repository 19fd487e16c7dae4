//! Unit tests of [`Ec2Fleet`] over an in-memory EC2 that behaves like the real one where we
//! depend on it (tag filters, pages, client tokens, NotFound on terminate) and injects what
//! moto cannot: capacity errors per offering, throttling, failed pages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::operation::run_instances::RunInstancesInput;
use aws_sdk_ec2::types::{
    HttpTokensState, Image, InstanceStateName, Placement, Reservation, ResourceType,
    ShutdownBehavior, StateReason,
};
use model::config::{Market, PoolConfig};
use model::secret::Secret;
use model::{RunId, RunnerName};

use super::*;

const SECRET: &str = "#!/bin/bash\nRUNNER_TOKEN=very-secret-token\n";

#[derive(Debug, Clone)]
struct Launched {
    id: String,
    input: RunInstancesInput,
    state: InstanceStateName,
    reason: Option<String>,
    launched_ms: i64,
}

#[derive(Debug, Default)]
struct Ec2State {
    instances: Vec<Launched>,
    tokens: BTreeMap<String, usize>,
    images: BTreeMap<String, String>,
    no_capacity: BTreeSet<(String, String, bool)>,
    quota: BTreeSet<bool>,
    faults: BTreeMap<&'static str, VecDeque<ApiError>>,
    fail_page: Option<usize>,
    ignore_filters: bool,
    calls: Vec<&'static str>,
    terminate_sizes: Vec<usize>,
    next: u64,
}

/// An in-memory EC2 with fault injection.
#[derive(Debug, Clone, Default)]
struct MemEc2 {
    state: Arc<Mutex<Ec2State>>,
    now_ms: Arc<AtomicI64>,
}

impl MemEc2 {
    fn new() -> Self {
        let ec2 = MemEc2::default();
        ec2.lock().images.insert("ami-1".into(), "/dev/sda1".into());
        ec2.now_ms.store(1_700_000_000_000, Ordering::SeqCst);
        ec2
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ec2State> {
        self.state.lock().expect("test lock")
    }

    fn fault(&self, op: &'static str, err: ApiError) {
        self.lock().faults.entry(op).or_default().push_back(err);
    }

    fn take(&self, op: &'static str) -> Result<(), ApiError> {
        let mut s = self.lock();
        s.calls.push(op);
        match s.faults.get_mut(op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn calls(&self, op: &str) -> usize {
        self.lock().calls.iter().filter(|c| **c == op).count()
    }

    /// Adds an instance that is not ours (no tags, or another cluster's).
    fn add_foreign(&self, tags: &[(&str, &str)]) {
        let mut input = RunInstancesInput::builder()
            .image_id("ami-1")
            .instance_type(InstanceType::M5Large);
        let t: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect();
        if !t.is_empty() {
            input = input.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(t))
                    .build(),
            );
        }
        let mut s = self.lock();
        s.next += 1;
        let id = format!("i-{:017x}", 0xf000 + s.next);
        let launched_ms = self.now_ms.load(Ordering::SeqCst);
        s.instances.push(Launched {
            id,
            input: input.build().expect("input"),
            state: InstanceStateName::Running,
            reason: None,
            launched_ms,
        });
    }

    fn sdk_instance(l: &Launched) -> aws_sdk_ec2::types::Instance {
        let tags: Vec<Tag> = l
            .input
            .tag_specifications()
            .iter()
            .filter(|s| s.resource_type() == Some(&ResourceType::Instance))
            .flat_map(|s| s.tags().to_vec())
            .collect();
        let spot = l.input.instance_market_options().is_some();
        let zone = l
            .input
            .subnet_id()
            .map_or_else(|| "us-east-1a".to_owned(), |s| format!("{s}-zone"));
        let mut b = aws_sdk_ec2::types::Instance::builder()
            .instance_id(&l.id)
            .set_instance_type(l.input.instance_type().cloned())
            .state(
                aws_sdk_ec2::types::InstanceState::builder()
                    .name(l.state.clone())
                    .build(),
            )
            .launch_time(aws_smithy_types::DateTime::from_millis(l.launched_ms))
            .placement(Placement::builder().availability_zone(zone).build())
            .set_tags(Some(tags));
        if spot {
            b = b.instance_lifecycle(InstanceLifecycleType::Spot);
        }
        if let Some(r) = &l.reason {
            b = b.state_reason(StateReason::builder().code(r).message(r).build());
        }
        b.build()
    }

    fn launched(&self) -> Vec<Launched> {
        self.lock().instances.clone()
    }
}

fn cluster_of(l: &Launched) -> Option<String> {
    l.input
        .tag_specifications()
        .iter()
        .flat_map(|s| s.tags())
        .find(|t| t.key() == Some(tags::CLUSTER))
        .and_then(|t| t.value().map(str::to_owned))
}

#[async_trait]
impl Ec2Api for MemEc2 {
    async fn describe_instances(
        &self,
        input: DescribeInstancesInputBuilder,
    ) -> Result<DescribeInstancesOutput, ApiError> {
        self.take("DescribeInstances")?;
        let input = input
            .build()
            .map_err(|e| ApiError::service("InvalidParameterValue", &e.to_string()))?;
        let s = self.lock();
        let start: usize = input.next_token().map_or(0, |t| t.parse().unwrap_or(0));
        let page_no =
            start / usize::try_from(input.max_results().unwrap_or(1000)).unwrap_or(1000) + 1;
        if s.fail_page == Some(page_no) {
            return Err(ApiError::service(
                "InternalError",
                "An internal error has occurred",
            ));
        }
        let wanted: Option<(String, Vec<String>)> = input.filters().first().map(|f| {
            (
                f.name()
                    .unwrap_or_default()
                    .trim_start_matches("tag:")
                    .to_owned(),
                f.values().to_vec(),
            )
        });
        let matching: Vec<&Launched> = s
            .instances
            .iter()
            .filter(|l| {
                s.ignore_filters
                    || wanted.as_ref().is_none_or(|(key, values)| {
                        key == tags::CLUSTER && cluster_of(l).is_some_and(|c| values.contains(&c))
                    })
            })
            .collect();
        let size = usize::try_from(input.max_results().unwrap_or(1000)).unwrap_or(1000);
        let page: Vec<&Launched> = matching.iter().skip(start).take(size).copied().collect();
        let mut out = DescribeInstancesOutput::builder();
        for l in &page {
            out = out.reservations(
                Reservation::builder()
                    .instances(Self::sdk_instance(l))
                    .build(),
            );
        }
        if start + size < matching.len() {
            out = out.next_token((start + size).to_string());
        }
        Ok(out.build())
    }

    async fn run_instances(
        &self,
        input: RunInstancesInputBuilder,
    ) -> Result<RunInstancesOutput, ApiError> {
        self.take("RunInstances")?;
        let input = input
            .build()
            .map_err(|e| ApiError::service("InvalidParameterValue", &e.to_string()))?;
        let mut s = self.lock();
        let token = input.client_token().unwrap_or_default().to_owned();
        if let Some(&i) = s.tokens.get(&token) {
            let l = &s.instances[i];
            if l.input.instance_type() != input.instance_type()
                || l.input.subnet_id() != input.subnet_id()
            {
                return Err(ApiError::service(
                    "IdempotentParameterMismatch",
                    "token reused with other parameters",
                ));
            }
            return Ok(RunInstancesOutput::builder()
                .instances(Self::sdk_instance(l))
                .build());
        }
        let ami = input.image_id().unwrap_or_default();
        if !s.images.contains_key(ami) {
            return Err(ApiError::service(
                "InvalidAMIID.NotFound",
                &format!("The image id '[{ami}]' does not exist"),
            ));
        }
        let spot = input.instance_market_options().is_some();
        if s.quota.contains(&spot) {
            return Err(ApiError::service(
                "VcpuLimitExceeded",
                "You have requested more vCPU capacity than your current vCPU limit",
            ));
        }
        let key = (
            input
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
            input.subnet_id().unwrap_or_default().to_owned(),
            spot,
        );
        if s.no_capacity.contains(&key) {
            return Err(ApiError::service(
                "InsufficientInstanceCapacity",
                &format!("We currently do not have sufficient {} capacity in the Availability Zone you requested", key.0),
            ));
        }
        s.next += 1;
        let id = format!("i-{:017x}", s.next);
        let launched = Launched {
            id,
            input,
            state: InstanceStateName::Pending,
            reason: None,
            launched_ms: self.now_ms.load(Ordering::SeqCst),
        };
        let out = RunInstancesOutput::builder()
            .instances(Self::sdk_instance(&launched))
            .build();
        s.instances.push(launched);
        let index = s.instances.len() - 1;
        s.tokens.insert(token, index);
        Ok(out)
    }

    async fn terminate_instances(
        &self,
        input: TerminateInstancesInputBuilder,
    ) -> Result<TerminateInstancesOutput, ApiError> {
        self.take("TerminateInstances")?;
        let ids = input.get_instance_ids().clone().unwrap_or_default();
        let mut s = self.lock();
        s.terminate_sizes.push(ids.len());
        let unknown: Vec<&String> = ids
            .iter()
            .filter(|id| !s.instances.iter().any(|l| &&l.id == id))
            .collect();
        if !unknown.is_empty() {
            let list = unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ApiError::service(
                "InvalidInstanceID.NotFound",
                &format!("The instance IDs '{list}' do not exist"),
            ));
        }
        for l in s.instances.iter_mut().filter(|l| ids.contains(&l.id)) {
            l.state = InstanceStateName::Terminated;
            l.reason = Some("Client.UserInitiatedShutdown".into());
        }
        Ok(TerminateInstancesOutput::builder().build())
    }

    async fn describe_images(
        &self,
        input: DescribeImagesInputBuilder,
    ) -> Result<DescribeImagesOutput, ApiError> {
        self.take("DescribeImages")?;
        let ids = input.get_image_ids().clone().unwrap_or_default();
        let s = self.lock();
        let mut out = DescribeImagesOutput::builder();
        for id in ids {
            if let Some(root) = s.images.get(&id) {
                out = out.images(Image::builder().image_id(id).root_device_name(root).build());
            }
        }
        Ok(out.build())
    }
}

fn pool(market: Market) -> PoolConfig {
    PoolConfig {
        instance_types: vec!["c7a.large".into(), "m7a.large".into()],
        subnets: vec!["subnet-a".into(), "subnet-b".into()],
        security_groups: vec!["sg-1".into()],
        ami: "ami-1".into(),
        instance_profile: Some("runner-profile".into()),
        market,
        max_instances: 10,
        volume_size_gb: 40,
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
        user_data: Secret::new(SECRET),
    }
}

struct Rig {
    ec2: MemEc2,
    fleet: Ec2Fleet<MemEc2>,
}

fn rig() -> Rig {
    rig_with(Ec2Settings {
        call: CallPolicy::fast(),
        page_size: 5,
        terminate_batch: 3,
        ..Ec2Settings::default()
    })
}

fn rig_with(settings: Ec2Settings) -> Rig {
    let ec2 = MemEc2::new();
    let now = ec2.now_ms.clone();
    let clock: Arc<dyn Clock> =
        Arc::new(move || Timestamp::from_millis(now.load(Ordering::SeqCst)));
    let fleet = Ec2Fleet::with_settings(ec2.clone(), "prod", settings, clock);
    Rig { ec2, fleet }
}

fn off(t: &str, subnet: &str, lifecycle: Lifecycle) -> Offering {
    Offering {
        instance_type: t.into(),
        subnet: subnet.into(),
        lifecycle,
    }
}

fn no_capacity(ec2: &MemEc2, t: &str, subnet: &str, spot: bool) {
    ec2.lock()
        .no_capacity
        .insert((t.into(), subnet.into(), spot));
}

#[tokio::test]
async fn launch_asks_for_spot_imdsv2_tags_and_encoded_user_data() {
    let r = rig();
    let (instance, offering) = r.fleet.launch(&req(1, Market::Spot)).await.expect("launch");
    assert_eq!(offering, off("c7a.large", "subnet-a", Lifecycle::Spot));
    assert_eq!(instance.lifecycle, Lifecycle::Spot);
    assert!(instance.is_ours("prod"));
    let l = &r.ec2.launched()[0];
    let i = &l.input;
    assert_eq!(
        i.client_token(),
        Some(req(1, Market::Spot).client_token.as_str())
    );
    assert_eq!(
        i.instance_initiated_shutdown_behavior(),
        Some(&ShutdownBehavior::Terminate)
    );
    let md = i.metadata_options().expect("metadata options");
    assert_eq!(md.http_tokens(), Some(&HttpTokensState::Required));
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    let market = i.instance_market_options().expect("spot");
    assert_eq!(market.market_type(), Some(&MarketType::Spot));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(i.user_data().expect("user data"))
        .expect("base64");
    assert_eq!(decoded, SECRET.as_bytes());
    let bdm = &i.block_device_mappings()[0];
    assert_eq!(
        bdm.device_name(),
        Some("/dev/sda1"),
        "the AMI's root device"
    );
    assert_eq!(bdm.ebs().and_then(|e| e.volume_size()), Some(40));
    assert_eq!(i.security_group_ids(), ["sg-1".to_owned()]);
    assert_eq!(
        i.iam_instance_profile().and_then(|p| p.name()),
        Some("runner-profile")
    );
    let kinds: Vec<_> = i
        .tag_specifications()
        .iter()
        .filter_map(|s| s.resource_type().cloned())
        .collect();
    assert_eq!(kinds, [ResourceType::Instance, ResourceType::Volume]);
    for spec in i.tag_specifications() {
        let tags: BTreeMap<_, _> = spec
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
            .collect();
        assert_eq!(tags.get(tags::CLUSTER), Some(&"prod"));
        assert_eq!(tags.get(tags::RUNNER_NAME), Some(&"tq-prod-job-1-1-a1"));
        assert_eq!(tags.get(tags::RUN_ID), Some(&"job-1-1"));
        assert_eq!(tags.get(tags::POOL), Some(&"go"));
        assert_eq!(tags.get(tags::ATTEMPT), Some(&"1"));
        assert_eq!(tags.get(tags::NAME), Some(&"tq-prod-job-1-1-a1"));
    }
}

#[tokio::test]
async fn the_user_data_never_shows_in_debug_output() {
    let r = rig();
    let input = run_input(
        "prod",
        &req(1, Market::Spot),
        &off("c7a.large", "subnet-a", Lifecycle::Spot),
        "t",
        "/dev/xvda",
    );
    let text = format!("{input:?} {:?}", req(1, Market::Spot));
    assert!(!text.contains("very-secret-token"), "{text}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(SECRET);
    assert!(!text.contains(&encoded));
    drop(r);
}

#[tokio::test]
async fn on_demand_launches_carry_no_spot_options() {
    let r = rig();
    let (i, o) = r
        .fleet
        .launch(&req(1, Market::OnDemand))
        .await
        .expect("launch");
    assert_eq!(o.lifecycle, Lifecycle::OnDemand);
    assert_eq!(i.lifecycle, Lifecycle::OnDemand);
    assert!(r.ec2.launched()[0]
        .input
        .instance_market_options()
        .is_none());
}

#[tokio::test]
async fn no_capacity_moves_to_the_next_subnet_then_the_next_type() {
    let r = rig();
    no_capacity(&r.ec2, "c7a.large", "subnet-a", true);
    no_capacity(&r.ec2, "c7a.large", "subnet-b", true);
    let (_, o) = r.fleet.launch(&req(1, Market::Spot)).await.expect("launch");
    assert_eq!(o, off("m7a.large", "subnet-a", Lifecycle::Spot));
    assert_eq!(r.ec2.calls("RunInstances"), 3);
    let base = req(1, Market::Spot).client_token;
    let used = r.ec2.launched()[0].input.client_token().map(str::to_owned);
    assert_eq!(
        used,
        Some(offering_token(&base, 2, &o)),
        "a fallback offering gets its own derived token"
    );
}

#[tokio::test]
async fn offerings_without_capacity_are_skipped_until_they_expire() {
    let r = rig();
    no_capacity(&r.ec2, "c7a.large", "subnet-a", true);
    r.fleet.launch(&req(1, Market::Spot)).await.expect("first");
    assert_eq!(
        r.fleet.unavailable_offerings(),
        vec![off("c7a.large", "subnet-a", Lifecycle::Spot)]
    );
    r.ec2.lock().no_capacity.clear();
    let before = r.ec2.calls("RunInstances");
    let (_, o) = r.fleet.launch(&req(2, Market::Spot)).await.expect("second");
    assert_eq!(
        o.subnet, "subnet-b",
        "the cached offering is not asked again"
    );
    assert_eq!(r.ec2.calls("RunInstances"), before + 1);
    r.ec2.now_ms.fetch_add(181_000, Ordering::SeqCst);
    let (_, o) = r.fleet.launch(&req(3, Market::Spot)).await.expect("third");
    assert_eq!(o.subnet, "subnet-a", "expired after 3 minutes");
}

#[tokio::test]
async fn a_pool_can_be_tried_again_once_one_of_its_offerings_expires() {
    let r = rig();
    let spot = req(1, Market::Spot);
    assert_eq!(r.fleet.without_capacity_until(&spot.pool_config), None);
    for t in ["c7a.large", "m7a.large"] {
        for s in ["subnet-a", "subnet-b"] {
            no_capacity(&r.ec2, t, s, true);
        }
    }
    let failed_at = Timestamp::from_millis(r.ec2.now_ms.load(Ordering::SeqCst));
    r.fleet
        .launch(&spot)
        .await
        .expect_err("no capacity anywhere");
    let until = r
        .fleet
        .without_capacity_until(&spot.pool_config)
        .expect("every offering is remembered as without capacity");
    assert!(
        until > failed_at && until <= failed_at.plus(std::time::Duration::from_secs(180)),
        "{until} within 3 minutes of {failed_at}"
    );
    r.ec2.now_ms.fetch_add(181_000, Ordering::SeqCst);
    assert_eq!(
        r.fleet.without_capacity_until(&spot.pool_config),
        None,
        "expired after 3 minutes"
    );
}

#[tokio::test]
async fn spot_then_on_demand_falls_back_when_no_spot_offering_has_capacity() {
    let r = rig();
    for t in ["c7a.large", "m7a.large"] {
        for s in ["subnet-a", "subnet-b"] {
            no_capacity(&r.ec2, t, s, true);
        }
    }
    let err = r
        .fleet
        .launch(&req(1, Market::Spot))
        .await
        .expect_err("spot only");
    assert!(
        matches!(&err, FleetError::Capacity { code, .. } if code == "InsufficientInstanceCapacity"),
        "{err:?}"
    );
    let err = r
        .fleet
        .launch(&req(2, Market::Spot))
        .await
        .expect_err("all cached");
    assert!(
        matches!(&err, FleetError::Capacity { code, .. } if code == "UnavailableOffering"),
        "{err:?}"
    );
    let (i, o) = r
        .fleet
        .launch(&req(3, Market::SpotThenOnDemand))
        .await
        .expect("on-demand");
    assert_eq!(o, off("c7a.large", "subnet-a", Lifecycle::OnDemand));
    assert_eq!(i.lifecycle, Lifecycle::OnDemand);
}

#[tokio::test]
async fn a_spot_quota_skips_to_on_demand_without_trying_every_spot_offering() {
    let r = rig();
    r.ec2.lock().quota.insert(true);
    let (_, o) = r
        .fleet
        .launch(&req(1, Market::SpotThenOnDemand))
        .await
        .expect("on-demand");
    assert_eq!(o.lifecycle, Lifecycle::OnDemand);
    assert_eq!(r.ec2.calls("RunInstances"), 2);
    let err = r
        .fleet
        .launch(&req(2, Market::Spot))
        .await
        .expect_err("quota");
    assert!(matches!(err, FleetError::Quota { .. }), "{err:?}");
}

#[tokio::test]
async fn a_bad_ami_is_a_config_error_and_stops_the_launch() {
    let r = rig();
    let mut bad = req(1, Market::SpotThenOnDemand);
    bad.pool_config.ami = "ami-missing".into();
    let err = r.fleet.launch(&bad).await.expect_err("bad ami");
    assert!(
        matches!(&err, FleetError::InvalidConfig { code, message } if code == "InvalidAMIID.NotFound" && message.contains("ami-missing")),
        "{err:?}"
    );
    assert_eq!(r.ec2.calls("RunInstances"), 0);
}

#[tokio::test]
async fn a_throttled_launch_is_retried_with_the_same_token_and_starts_one_instance() {
    let r = rig();
    r.ec2.fault(
        "RunInstances",
        ApiError::service("RequestLimitExceeded", "Request limit exceeded."),
    );
    r.ec2.fault(
        "RunInstances",
        ApiError::service("RequestLimitExceeded", "Request limit exceeded."),
    );
    r.fleet
        .launch(&req(1, Market::Spot))
        .await
        .expect("launch after throttling");
    r.fleet
        .launch(&req(1, Market::Spot))
        .await
        .expect("same request again");
    assert_eq!(
        r.ec2.launched().len(),
        1,
        "the client token makes the repeat a no-op"
    );
    assert_eq!(r.ec2.calls("RunInstances"), 4);
}

#[tokio::test]
async fn throttling_that_does_not_stop_is_reported_as_throttled() {
    let r = rig();
    for _ in 0..10 {
        r.ec2.fault(
            "DescribeInstances",
            ApiError::service("RequestLimitExceeded", "Request limit exceeded."),
        );
    }
    let err = r.fleet.list().await.expect_err("throttled");
    assert!(
        matches!(err, FleetError::Throttled(ref m) if m.contains("page 1")),
        "{err:?}"
    );
    assert_eq!(
        r.ec2.calls("DescribeInstances"),
        1 + CallPolicy::fast().max_retries
    );
}

#[tokio::test]
async fn list_follows_every_page_and_keeps_only_our_instances() {
    let r = rig();
    for job in 0..12 {
        r.fleet
            .launch(&req(job, Market::Spot))
            .await
            .expect("launch");
    }
    r.ec2.add_foreign(&[]);
    r.ec2.add_foreign(&[(tags::CLUSTER, "staging")]);
    let listed = r.fleet.list().await.expect("list");
    assert_eq!(listed.len(), 12);
    assert!(listed
        .iter()
        .all(|i| i.is_ours("prod") && i.runner_name().is_some()));
    assert_eq!(
        r.ec2.calls("DescribeInstances"),
        3,
        "12 instances in pages of 5"
    );
}

#[tokio::test]
async fn list_rechecks_the_tag_even_when_ec2_ignores_the_filter() {
    let r = rig();
    r.fleet.launch(&req(1, Market::Spot)).await.expect("launch");
    r.ec2.add_foreign(&[(tags::CLUSTER, "staging")]);
    r.ec2.add_foreign(&[]);
    r.ec2.lock().ignore_filters = true;
    assert_eq!(r.fleet.list().await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_failed_page_fails_the_whole_list_with_a_clear_error() {
    let r = rig_with(Ec2Settings {
        call: CallPolicy {
            max_retries: 0,
            ..CallPolicy::fast()
        },
        page_size: 5,
        ..Ec2Settings::default()
    });
    for job in 0..7 {
        r.fleet
            .launch(&req(job, Market::Spot))
            .await
            .expect("launch");
    }
    r.ec2.lock().fail_page = Some(2);
    let err = r.fleet.list().await.expect_err("page 2 fails");
    let text = err.to_string();
    assert!(
        text.contains("page 2") && text.contains("incomplete"),
        "{text}"
    );
}

#[tokio::test]
async fn list_maps_state_reason_lifecycle_and_launch_time() {
    let r = rig();
    let (i, _) = r.fleet.launch(&req(1, Market::Spot)).await.expect("launch");
    {
        let mut s = r.ec2.lock();
        s.instances[0].state = InstanceStateName::Terminated;
        s.instances[0].reason = Some(model::observed::SPOT_INTERRUPTION.into());
    }
    let listed = r.fleet.list().await.expect("list");
    assert_eq!(listed[0].id, i.id);
    assert_eq!(listed[0].state, InstanceState::Terminated);
    assert_eq!(
        listed[0].state_reason.as_deref(),
        Some(model::observed::SPOT_INTERRUPTION)
    );
    assert_eq!(listed[0].lifecycle, Lifecycle::Spot);
    assert_eq!(
        listed[0].launched_at,
        Timestamp::from_millis(1_700_000_000_000)
    );
    assert_eq!(listed[0].zone, "subnet-a-zone");
}

#[tokio::test]
async fn terminate_batches_and_treats_unknown_ids_as_done() {
    let r = rig();
    let mut ids = Vec::new();
    for job in 0..5 {
        ids.push(
            r.fleet
                .launch(&req(job, Market::Spot))
                .await
                .expect("launch")
                .0
                .id,
        );
    }
    ids.insert(1, InstanceId::new("i-00000000000000bad"));
    r.fleet.terminate(&ids).await.expect("terminate");
    assert!(r
        .ec2
        .launched()
        .iter()
        .all(|l| l.state == InstanceStateName::Terminated));
    let sizes = r.ec2.lock().terminate_sizes.clone();
    assert!(sizes.iter().all(|n| *n <= 3), "{sizes:?}");
    r.fleet.terminate(&ids).await.expect("twice");
}

#[tokio::test]
async fn terminate_reports_permission_errors() {
    let r = rig();
    r.ec2.fault(
        "TerminateInstances",
        ApiError::service(
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ),
    );
    let err = r
        .fleet
        .terminate(&[InstanceId::new("i-1")])
        .await
        .expect_err("refused");
    assert!(matches!(err, FleetError::Auth(_)), "{err:?}");
}

#[test]
fn error_codes_are_classified_at_the_edge() {
    let c = |code: &str| classify(&ApiError::service(code, "m"));
    assert!(matches!(
        c("InsufficientInstanceCapacity"),
        FleetError::Capacity { .. }
    ));
    assert!(matches!(
        c("SpotMaxPriceTooLow"),
        FleetError::Capacity { .. }
    ));
    assert!(matches!(
        c("MaxSpotInstanceCountExceeded"),
        FleetError::Capacity { .. }
    ));
    assert!(matches!(
        c("RequestLimitExceeded"),
        FleetError::Throttled(_)
    ));
    assert!(matches!(c("VcpuLimitExceeded"), FleetError::Quota { .. }));
    assert!(matches!(c("UnauthorizedOperation"), FleetError::Auth(_)));
    assert!(matches!(c("AuthFailure"), FleetError::Auth(_)));
    assert!(matches!(
        c("InvalidSubnetID.NotFound"),
        FleetError::InvalidConfig { .. }
    ));
    assert!(matches!(
        c("InvalidParameterValue"),
        FleetError::InvalidConfig { .. }
    ));
    assert!(matches!(
        c("InvalidInstanceID.NotFound"),
        FleetError::NotFound(_)
    ));
    assert!(matches!(c("InternalError"), FleetError::Other(_)));
    let timeout = ApiError {
        kind: ApiErrorKind::Timeout(Duration::from_secs(20)),
        code: None,
        message: String::new(),
        status: None,
        reasons: Vec::new(),
    };
    assert_eq!(
        classify(&timeout),
        FleetError::Timeout(Duration::from_secs(20))
    );
    assert!(matches!(
        classify(&ApiError::network("connection refused")),
        FleetError::Other(_)
    ));
}

#[test]
fn fallback_tokens_fit_ec2_and_differ_per_offering() {
    let base = model::ids::client_token("prod", &RunId::for_job(1, 1), 1);
    let a = offering_token(&base, 0, &off("c7a.large", "subnet-a", Lifecycle::Spot));
    let b = offering_token(&base, 1, &off("c7a.large", "subnet-b", Lifecycle::Spot));
    let c = offering_token(&base, 2, &off("c7a.large", "subnet-b", Lifecycle::OnDemand));
    assert_eq!(a, base);
    assert!(b != a && c != b);
    assert!([&a, &b, &c].iter().all(|t| t.len() <= 64 && t.is_ascii()));
    assert_eq!(
        b,
        offering_token(&base, 1, &off("c7a.large", "subnet-b", Lifecycle::Spot))
    );
}

#[tokio::test]
async fn an_oversized_boot_script_is_refused_before_calling_ec2() {
    let r = rig();
    let mut big = req(1, Market::Spot);
    big.user_data = Secret::new("x".repeat(MAX_USER_DATA + 1));
    let err = r.fleet.launch(&big).await.expect_err("too big");
    assert!(
        matches!(&err, FleetError::InvalidConfig { message, .. } if message.contains("16384")),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains("xxxx"),
        "the script itself is never echoed"
    );
    assert_eq!(r.ec2.calls("RunInstances"), 0);
}

#[test]
fn the_iam_policy_lists_every_ec2_action() {
    let granted = crate::aws::doc::actions(&crate::aws::doc::json_block("iam-policy-json"));
    for action in IAM_ACTIONS {
        assert!(
            granted.iter().any(|a| a == action),
            "{action} missing from the IAM policy"
        );
    }
    let ec2: BTreeSet<&String> = granted.iter().filter(|a| a.starts_with("ec2:")).collect();
    assert_eq!(
        ec2.len(),
        IAM_ACTIONS.len(),
        "the policy grants no EC2 action the fleet does not call"
    );
}
