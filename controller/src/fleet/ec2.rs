//! [`Ec2Fleet`]: the [`Fleet`] port over EC2.
//!
//! Below it sits [`Ec2Api`], the four SDK calls we make and nothing else, so everything this
//! file decides (which instances are ours, how a launch request is built, the order offerings
//! are tried in, which offerings are remembered as unavailable, how EC2's error codes are
//! classified, how terminate batches and treats instances already gone) is unit-tested with a
//! stateful in-memory EC2 (see the tests). [`SdkEc2`] is the real implementation.
//!
//! Why RunInstances and not CreateFleet: each runner's user-data carries its own credentials,
//! which a fleet's shared launch template cannot; see `wiki/DevOps-Reference.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::operation::describe_images::builders::DescribeImagesInputBuilder;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesInputBuilder;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesInputBuilder;
use aws_sdk_ec2::operation::run_instances::RunInstancesOutput;
use aws_sdk_ec2::operation::terminate_instances::builders::TerminateInstancesInputBuilder;
use aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification,
    InstanceInterruptionBehavior, InstanceLifecycleType, InstanceMarketOptionsRequest,
    InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, MarketType,
    ResourceType, ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification,
    VolumeType,
};
use base64::Engine as _;
use model::config::PoolConfig;
use model::observed::{Instance, InstanceState};
use model::{tags, InstanceId, Lifecycle, Timestamp};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::offerings::UnavailableOfferings;
use super::{launch_tags, offerings, Fleet, FleetError, LaunchRequest, Offering};
use crate::aws::{is_throttling_code, retrying, ApiError, ApiErrorKind, CallPolicy};
use crate::clock::{Clock, SystemClock};

/// The most user-data EC2 accepts, in bytes before base64 encoding.
pub const MAX_USER_DATA: usize = 16 * 1024;

/// Every IAM action the fleet calls (`ec2:CreateTags` is needed to tag at launch).
pub const IAM_ACTIONS: &[&str] = &[
    "ec2:DescribeInstances",
    "ec2:DescribeImages",
    "ec2:RunInstances",
    "ec2:CreateTags",
    "ec2:TerminateInstances",
];

/// The EC2 calls the fleet makes: the narrow seam between our logic and the SDK.
///
/// Inputs are the SDK's own input builders and outputs its output types, so an
/// implementation is a plain pass-through; tests implement it with an in-memory EC2.
#[async_trait]
pub trait Ec2Api: Send + Sync {
    /// `DescribeInstances` (one page).
    async fn describe_instances(
        &self,
        input: DescribeInstancesInputBuilder,
    ) -> Result<DescribeInstancesOutput, ApiError>;
    /// `RunInstances`.
    async fn run_instances(
        &self,
        input: RunInstancesInputBuilder,
    ) -> Result<RunInstancesOutput, ApiError>;
    /// `TerminateInstances`.
    async fn terminate_instances(
        &self,
        input: TerminateInstancesInputBuilder,
    ) -> Result<TerminateInstancesOutput, ApiError>;
    /// `DescribeImages` (to learn an AMI's root device name).
    async fn describe_images(
        &self,
        input: DescribeImagesInputBuilder,
    ) -> Result<DescribeImagesOutput, ApiError>;
}

/// [`Ec2Api`] over the real SDK client.
#[derive(Debug, Clone)]
pub struct SdkEc2 {
    client: aws_sdk_ec2::Client,
}

impl SdkEc2 {
    /// Wraps a client.
    #[must_use]
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        SdkEc2 { client }
    }

    /// A client from the shared SDK configuration (see [`crate::aws::sdk_config`]).
    #[must_use]
    pub fn from_conf(conf: &aws_config::SdkConfig) -> Self {
        SdkEc2 {
            client: aws_sdk_ec2::Client::new(conf),
        }
    }

    /// The underlying client.
    #[must_use]
    pub fn client(&self) -> &aws_sdk_ec2::Client {
        &self.client
    }
}

#[async_trait]
impl Ec2Api for SdkEc2 {
    async fn describe_instances(
        &self,
        input: DescribeInstancesInputBuilder,
    ) -> Result<DescribeInstancesOutput, ApiError> {
        input
            .send_with(&self.client)
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    }

    async fn run_instances(
        &self,
        input: RunInstancesInputBuilder,
    ) -> Result<RunInstancesOutput, ApiError> {
        input
            .send_with(&self.client)
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    }

    async fn terminate_instances(
        &self,
        input: TerminateInstancesInputBuilder,
    ) -> Result<TerminateInstancesOutput, ApiError> {
        input
            .send_with(&self.client)
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    }

    async fn describe_images(
        &self,
        input: DescribeImagesInputBuilder,
    ) -> Result<DescribeImagesOutput, ApiError> {
        input
            .send_with(&self.client)
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    }
}

/// Tunables of [`Ec2Fleet`], each with a default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ec2Settings {
    /// Timeout and retries of each call.
    pub call: CallPolicy,
    /// `MaxResults` of each DescribeInstances page (5 to 1000; default 1000).
    pub page_size: i32,
    /// Most ids in one TerminateInstances call (default 500; EC2 accepts 1000).
    pub terminate_batch: usize,
    /// How long an offering without capacity is skipped (default 3 minutes).
    pub unavailable_ttl: std::time::Duration,
}

impl Default for Ec2Settings {
    fn default() -> Self {
        Ec2Settings {
            call: CallPolicy::default(),
            page_size: 1000,
            terminate_batch: 500,
            unavailable_ttl: super::offerings::DEFAULT_TTL,
        }
    }
}

/// The EC2 fleet of one cluster.
pub struct Ec2Fleet<A: Ec2Api = SdkEc2> {
    api: A,
    cluster: String,
    settings: Ec2Settings,
    /// Where the fleet reads the time (launch fallback remembers offerings until a deadline).
    clock: Arc<dyn Clock>,
    unavailable: UnavailableOfferings,
    root_devices: Mutex<BTreeMap<String, String>>,
    calls: AtomicU64,
}

impl<A: Ec2Api> std::fmt::Debug for Ec2Fleet<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Fleet")
            .field("cluster", &self.cluster)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<A: Ec2Api> Ec2Fleet<A> {
    /// The fleet of `cluster` over `api`, with default settings and the system clock.
    pub fn new(api: A, cluster: &str) -> Self {
        Self::with_settings(api, cluster, Ec2Settings::default(), Arc::new(SystemClock))
    }

    /// The same, with explicit settings and clock.
    pub fn with_settings(
        api: A,
        cluster: &str,
        settings: Ec2Settings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Ec2Fleet {
            api,
            cluster: cluster.to_owned(),
            unavailable: UnavailableOfferings::new(settings.unavailable_ttl),
            settings,
            clock,
            root_devices: Mutex::new(BTreeMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// The API below the fleet.
    pub fn api(&self) -> &A {
        &self.api
    }

    /// EC2 requests sent so far, retries included.
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Offerings currently skipped because they recently had no capacity.
    pub fn unavailable_offerings(&self) -> Vec<Offering> {
        self.unavailable
            .snapshot(self.clock.now())
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    }

    async fn call<T, F, Fut>(&self, name: &str, mut f: F) -> Result<T, FleetError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        retrying(&self.settings.call, name, || {
            self.calls.fetch_add(1, Ordering::Relaxed);
            f()
        })
        .await
        .map_err(|e| classify(&e))
    }

    /// The root device name of `ami`, looked up once per AMI.
    async fn root_device(&self, ami: &str) -> Result<String, FleetError> {
        if let Some(d) = self.root_devices.lock().get(ami) {
            return Ok(d.clone());
        }
        let input = DescribeImagesInputBuilder::default().image_ids(ami);
        let out = self
            .call("DescribeImages", || self.api.describe_images(input.clone()))
            .await
            .map_err(|e| in_context(e, &format!("looking up AMI {ami}")))?;
        let image = out
            .images()
            .iter()
            .find(|i| i.image_id() == Some(ami))
            .ok_or_else(|| FleetError::InvalidConfig {
                code: "InvalidAMIID.NotFound".into(),
                message: format!("AMI {ami} does not exist or is not visible to this account"),
            })?;
        let device = image.root_device_name().unwrap_or("/dev/xvda").to_owned();
        self.root_devices
            .lock()
            .insert(ami.to_owned(), device.clone());
        Ok(device)
    }
}

#[async_trait]
impl<A: Ec2Api> Fleet for Ec2Fleet<A> {
    async fn list(&self) -> Result<Vec<Instance>, FleetError> {
        let filter = Filter::builder()
            .name(format!("tag:{}", tags::CLUSTER))
            .values(&self.cluster)
            .build();
        let mut out = Vec::new();
        let mut seen_tokens = BTreeSet::new();
        let mut token: Option<String> = None;
        for page in 1_u64.. {
            let input = DescribeInstancesInputBuilder::default()
                .filters(filter.clone())
                .max_results(self.settings.page_size)
                .set_next_token(token.clone());
            let resp = self
                .call("DescribeInstances", || {
                    self.api.describe_instances(input.clone())
                })
                .await
                .map_err(|e| {
                    in_context(
                        e,
                        &format!("listing instances, page {page} failed, the list is incomplete"),
                    )
                })?;
            for reservation in resp.reservations() {
                for i in reservation.instances() {
                    let instance = map_instance(i)?;
                    // The filter already selects our tag; check again, never trust a filter alone.
                    if instance.is_ours(&self.cluster) {
                        out.push(instance);
                    }
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => {
                    if !seen_tokens.insert(t.to_owned()) {
                        return Err(FleetError::Other(format!(
                            "listing instances: EC2 returned page token {t} twice; the list is incomplete"
                        )));
                    }
                    token = Some(t.to_owned());
                }
                _ => break,
            }
        }
        Ok(out)
    }

    fn without_capacity_until(&self, pool: &PoolConfig) -> Option<Timestamp> {
        self.unavailable
            .all_unavailable_until(&offerings(pool), self.clock.now())
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<(Instance, Offering), FleetError> {
        let pool = &req.pool_config;
        let candidates = offerings(pool);
        if candidates.is_empty() {
            return Err(FleetError::InvalidConfig {
                code: "InvalidParameterValue".into(),
                message: format!("pool {} lists no instance type or no subnet", req.pool),
            });
        }
        let size = req.user_data.expose().len();
        if size > MAX_USER_DATA {
            return Err(FleetError::InvalidConfig {
                code: "InvalidParameterValue".into(),
                message: format!(
                    "the boot script of runner {} is {size} bytes; EC2 accepts at most {MAX_USER_DATA}",
                    req.runner
                ),
            });
        }
        let root = self.root_device(&pool.ami).await?;
        let now = self.clock.now();
        let mut last: Option<FleetError> = None;
        let mut quota_hit: BTreeSet<bool> = BTreeSet::new();
        for (index, offering) in candidates.iter().enumerate() {
            if quota_hit.contains(&offering.is_spot()) {
                continue;
            }
            if self.unavailable.is_unavailable(offering, now) {
                tracing::debug!(%offering, runner = %req.runner, "skipping offering that recently had no capacity");
                continue;
            }
            let token = offering_token(&req.client_token, index, offering);
            let input = run_input(&self.cluster, req, offering, &token, &root);
            match self
                .call("RunInstances", || self.api.run_instances(input.clone()))
                .await
            {
                Ok(resp) => {
                    let Some(first) = resp.instances().first() else {
                        return Err(FleetError::Other(format!(
                            "RunInstances on {offering} returned no instance"
                        )));
                    };
                    let mut instance = map_instance(first)?;
                    // The launch answer may omit tags and lifecycle; we know what we asked for.
                    for (k, v) in launch_tags(&self.cluster, req) {
                        instance.tags.entry(k).or_insert(v);
                    }
                    instance.lifecycle = offering.lifecycle;
                    tracing::info!(instance = %instance.id, %offering, runner = %req.runner, "launched");
                    return Ok((instance, offering.clone()));
                }
                Err(e @ FleetError::Capacity { .. }) => {
                    tracing::warn!(%offering, runner = %req.runner, error = %e, "no capacity; trying the next offering");
                    self.unavailable.mark(offering, now);
                    last = Some(e);
                }
                Err(e @ FleetError::Quota { .. }) => {
                    tracing::warn!(%offering, runner = %req.runner, error = %e, "quota reached for this market");
                    quota_hit.insert(offering.is_spot());
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| FleetError::Capacity {
            code: "UnavailableOffering".into(),
            message: format!(
                "every offering of pool {} had no capacity within the last {}",
                req.pool,
                model::time::human(self.settings.unavailable_ttl)
            ),
        }))
    }

    async fn terminate(&self, ids: &[InstanceId]) -> Result<(), FleetError> {
        let batch = self.settings.terminate_batch.clamp(1, 1000);
        for chunk in ids.chunks(batch) {
            let mut pending: Vec<String> = chunk.iter().map(|i| i.as_str().to_owned()).collect();
            while !pending.is_empty() {
                match self.terminate_batch(&pending).await {
                    Ok(()) => break,
                    Err(FleetError::NotFound(msg)) => {
                        // EC2 refuses the whole call when any id is unknown, naming the ids.
                        let gone: BTreeSet<&str> = missing_ids(&msg, &pending);
                        if gone.is_empty() {
                            // Could not tell which; go one by one.
                            for id in &pending {
                                match self.terminate_batch(std::slice::from_ref(id)).await {
                                    Ok(()) | Err(FleetError::NotFound(_)) => {}
                                    Err(e) => return Err(e),
                                }
                            }
                            break;
                        }
                        let gone: BTreeSet<String> = gone.into_iter().map(str::to_owned).collect();
                        pending.retain(|id| !gone.contains(id));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

impl<A: Ec2Api> Ec2Fleet<A> {
    async fn terminate_batch(&self, ids: &[String]) -> Result<(), FleetError> {
        let input = TerminateInstancesInputBuilder::default().set_instance_ids(Some(ids.to_vec()));
        self.call("TerminateInstances", || {
            self.api.terminate_instances(input.clone())
        })
        .await
        .map(|_| ())
    }
}

/// The client token for the `index`-th offering tried: the request's own for the first, and
/// a token derived from it and the offering for the others, so a retried launch of the same
/// request on the same offering is idempotent and EC2 never sees one token with two different
/// sets of parameters (which it refuses with `IdempotentParameterMismatch`).
#[must_use]
pub fn offering_token(client_token: &str, index: usize, offering: &Offering) -> String {
    if index == 0 {
        return client_token.to_owned();
    }
    let mut h = Sha256::new();
    for part in [
        client_token,
        &offering.instance_type,
        &offering.subnet,
        if offering.is_spot() {
            "spot"
        } else {
            "on-demand"
        },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = hex::encode(h.finalize());
    let base: String = client_token.chars().take(40).collect();
    format!("{base}-{}", &digest[..16])
}

/// The RunInstances request for `req` on `offering`.
#[must_use]
pub fn run_input(
    cluster: &str,
    req: &LaunchRequest,
    offering: &Offering,
    token: &str,
    root_device: &str,
) -> RunInstancesInputBuilder {
    let pool = &req.pool_config;
    let tags: Vec<Tag> = launch_tags(cluster, req)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let tag_spec = |kind: ResourceType| {
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(tags.clone()))
            .build()
    };
    let market = offering.is_spot().then(|| {
        InstanceMarketOptionsRequest::builder()
            .market_type(MarketType::Spot)
            .spot_options(
                SpotMarketOptions::builder()
                    .spot_instance_type(SpotInstanceType::OneTime)
                    .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                    .build(),
            )
            .build()
    });
    RunInstancesInputBuilder::default()
        .image_id(&pool.ami)
        .instance_type(InstanceType::from(offering.instance_type.as_str()))
        .min_count(1)
        .max_count(1)
        .client_token(token)
        .subnet_id(&offering.subnet)
        .set_security_group_ids(
            (!pool.security_groups.is_empty()).then(|| pool.security_groups.clone()),
        )
        .set_iam_instance_profile(
            pool.instance_profile
                .as_ref()
                .map(|p| IamInstanceProfileSpecification::builder().name(p).build()),
        )
        .set_instance_market_options(market)
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .http_tokens(HttpTokensState::Required)
                .http_put_response_hop_limit(1)
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(root_device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(i32::try_from(pool.volume_size_gb).unwrap_or(i32::MAX))
                        .volume_type(VolumeType::Gp3)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .tag_specifications(tag_spec(ResourceType::Instance))
        .tag_specifications(tag_spec(ResourceType::Volume))
        .user_data(base64::engine::general_purpose::STANDARD.encode(req.user_data.expose()))
}

/// Maps an SDK instance to ours.
///
/// # Errors
/// When EC2 left out the id, state or launch time, or sent a state we do not know.
pub fn map_instance(i: &aws_sdk_ec2::types::Instance) -> Result<Instance, FleetError> {
    let id = i.instance_id().ok_or_else(|| {
        FleetError::Other("DescribeInstances returned an instance without an id".into())
    })?;
    let bad = |what: &str| FleetError::Other(format!("instance {id}: {what}"));
    let state_name = i
        .state()
        .and_then(|s| s.name())
        .ok_or_else(|| bad("no state"))?;
    let state = InstanceState::parse(state_name.as_str())
        .ok_or_else(|| bad(&format!("unknown state `{}`", state_name.as_str())))?;
    let launched_at = i
        .launch_time()
        .and_then(|t| t.to_millis().ok())
        .map(Timestamp::from_millis)
        .ok_or_else(|| bad("no launch time"))?;
    let lifecycle = if i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot) {
        Lifecycle::Spot
    } else {
        Lifecycle::OnDemand
    };
    Ok(Instance {
        id: InstanceId::new(id),
        state,
        state_reason: i.state_reason().and_then(|r| r.code()).map(str::to_owned),
        launched_at,
        lifecycle,
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_owned(),
        tags: i
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    })
}

/// Classifies a failed EC2 call by its error code.
#[must_use]
pub fn classify(e: &ApiError) -> FleetError {
    let code = e.code();
    let message = e.message.clone();
    match e.kind {
        ApiErrorKind::Timeout(d) => return FleetError::Timeout(d),
        ApiErrorKind::Network | ApiErrorKind::Other => return FleetError::Other(e.to_string()),
        ApiErrorKind::Service => {}
    }
    let owned = || (code.to_owned(), message.clone());
    if is_throttling_code(code) {
        return FleetError::Throttled(e.to_string());
    }
    match code {
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "InsufficientHostCapacity"
        | "InsufficientReservedInstanceCapacity"
        | "InsufficientFreeAddressesInSubnet"
        | "SpotMaxPriceTooLow"
        | "MaxSpotInstanceCountExceeded"
        | "Unsupported" => {
            let (code, message) = owned();
            FleetError::Capacity { code, message }
        }
        "VcpuLimitExceeded"
        | "InstanceLimitExceeded"
        | "ResourceLimitExceeded"
        | "MaxSpotFleetRequestCountExceeded" => {
            let (code, message) = owned();
            FleetError::Quota { code, message }
        }
        "UnauthorizedOperation"
        | "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "RequestExpired"
        | "OptInRequired"
        | "Blocked"
        | "AccessDenied"
        | "AccessDeniedException" => FleetError::Auth(e.to_string()),
        "InvalidInstanceID.NotFound" => FleetError::NotFound(e.to_string()),
        c if c.starts_with("Invalid")
            || c == "MissingParameter"
            || c == "IdempotentParameterMismatch" =>
        {
            let (code, message) = owned();
            FleetError::InvalidConfig { code, message }
        }
        _ => FleetError::Other(e.to_string()),
    }
}

/// Adds what we were doing to an error's message.
fn in_context(e: FleetError, what: &str) -> FleetError {
    match e {
        FleetError::Capacity { code, message } => FleetError::Capacity {
            code,
            message: format!("{what}: {message}"),
        },
        FleetError::Quota { code, message } => FleetError::Quota {
            code,
            message: format!("{what}: {message}"),
        },
        FleetError::InvalidConfig { code, message } => FleetError::InvalidConfig {
            code,
            message: format!("{what}: {message}"),
        },
        FleetError::Throttled(m) => FleetError::Throttled(format!("{what}: {m}")),
        FleetError::Auth(m) => FleetError::Auth(format!("{what}: {m}")),
        FleetError::NotFound(m) => FleetError::NotFound(format!("{what}: {m}")),
        FleetError::Other(m) => FleetError::Other(format!("{what}: {m}")),
        FleetError::Timeout(d) => FleetError::Timeout(d),
    }
}

/// The ids among `pending` that EC2's NotFound message names.
fn missing_ids<'a>(message: &str, pending: &'a [String]) -> BTreeSet<&'a str> {
    let named: BTreeSet<&str> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("i-"))
        .collect();
    pending
        .iter()
        .map(String::as_str)
        .filter(|id| named.contains(id))
        .collect()
}

#[cfg(test)]
mod tests;
