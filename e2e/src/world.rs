//! One world: moto (EC2 and DynamoDB through the real AWS SDK), a Gitea simulator, the booter,
//! and any number of controllers, each running [`controller::cmd::serve::serve`] (what
//! `tinqs-ci serve` runs) over the real `Ec2Fleet`, `DynamoStore` and `GiteaForge`.
//!
//! Every world has its own cluster id, table, VPC, AMI and simulator, so several can share one
//! moto (tests run in parallel).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use controller::aws::CallPolicy;
use controller::clock::{Clock, SystemClock};
use controller::fleet::ec2::{Ec2Fleet, Ec2Settings, SdkEc2};
use controller::fleet::Fleet;
use controller::forge::{Forge, GiteaForge};
use controller::metrics::Metrics;
use controller::reconcile::{Limits, LoopFeatures, Reconciler};
use controller::store::dynamo::DynamoStore;
use controller::store::Store;
use gitea_sim::{
    Delivery, JobPhase, JobSpec, JobView, SimConfig, SimHandle, Simulator, WebhookTarget,
};
use model::config::{Config, Timeouts};
use model::desired::DesiredRun;
use model::secret::Secret;
use model::{tags, RunId};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::booter::{BootFault, BootSettings, Booter, FaultRule, Match};
use crate::faults::{FaultyFleet, FaultyStore, Interruptions};
use crate::narrate::{Events, Source};

/// The repository every job of a world belongs to.
pub const REPO: &str = "acme/app";

/// Timings of a world: the controller's deadlines, the simulator's thresholds, the machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The controller's deadlines (`timeouts` in the configuration).
    pub timeouts: Timeouts,
    /// `safety.max_attempts`.
    pub max_attempts: u32,
    /// How long a controller's lease lasts unless renewed.
    pub lease_ttl: Duration,
    /// Timeout of every store, fleet and forge call.
    pub call_timeout: Duration,
    /// The simulator's offline threshold (Gitea: 60 s).
    pub runner_offline_after: Duration,
    /// The simulator's busy window (Gitea: 10 s).
    pub runner_idle_after: Duration,
    /// How long a task of a silent runner runs before Gitea fails it (Gitea: 10 min).
    pub zombie_task_timeout: Duration,
    /// The simulated machines.
    pub boot: BootSettings,
    /// Print the story as it happens.
    pub echo: bool,
}

impl Settings {
    /// Short deadlines for the integration tests: every story settles within seconds.
    #[must_use]
    pub fn fast() -> Self {
        Settings {
            timeouts: Timeouts {
                launch: Duration::from_secs(15),
                registration: Duration::from_secs(5),
                boot: Duration::from_secs(3),
                idle: Duration::from_secs(4),
                offline_grace: Duration::from_secs(2),
                stuck: Duration::from_secs(6),
                max_lifetime: Duration::from_secs(3600),
                orphan_min_age: Duration::from_secs(5),
                resync: Duration::from_secs(1),
                retry_failed: Duration::from_secs(20),
            },
            max_attempts: 3,
            lease_ttl: Duration::from_secs(8),
            call_timeout: Duration::from_secs(5),
            runner_offline_after: Duration::from_secs(2),
            runner_idle_after: Duration::from_secs(2),
            zombie_task_timeout: Duration::from_secs(10),
            boot: BootSettings::default(),
            echo: true,
        }
    }

    /// The demo's deadlines: slow enough to follow, short enough to finish in a few minutes.
    #[must_use]
    pub fn demo() -> Self {
        Settings {
            timeouts: Timeouts {
                launch: Duration::from_secs(30),
                registration: Duration::from_secs(20),
                boot: Duration::from_secs(10),
                idle: Duration::from_secs(15),
                offline_grace: Duration::from_secs(8),
                stuck: Duration::from_secs(12),
                max_lifetime: Duration::from_secs(3600),
                orphan_min_age: Duration::from_secs(10),
                resync: Duration::from_secs(2),
                retry_failed: Duration::from_secs(60),
            },
            max_attempts: 3,
            lease_ttl: Duration::from_secs(15),
            call_timeout: Duration::from_secs(10),
            runner_offline_after: Duration::from_secs(5),
            runner_idle_after: Duration::from_secs(3),
            zombie_task_timeout: Duration::from_secs(30),
            boot: BootSettings {
                boot_delay: Duration::from_millis(1500),
                power_off_delay: Duration::from_secs(1),
                fetch_interval: Duration::from_millis(500),
                report_interval: Duration::from_millis(500),
                poll_interval: Duration::from_millis(300),
            },
            echo: true,
        }
    }
}

/// Checks that the AWS SDK will talk to moto on loopback and nowhere else, and returns
/// moto's URL.
///
/// # Errors
/// When `TINQS_TEST_MOTO_URL` is unset (these need `scripts/with-moto.sh`), not loopback, or
/// not what `AWS_ENDPOINT_URL` says, or when `AWS_EC2_METADATA_DISABLED` is not `true`.
pub fn moto_url() -> anyhow::Result<String> {
    Ok(controller::aws::moto::url()?)
}

/// The VPC pieces and AMI the pools launch into, created in moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Subnet.
    pub subnet: String,
    /// Security group.
    pub security_group: String,
    /// The "runner AMI" (an empty image registered in moto).
    pub ami: String,
}

fn moto_error<E: std::error::Error>(what: &str, e: &E) -> anyhow::Error {
    anyhow!(
        "cannot create the {what} in moto: {}",
        aws_sdk_ec2::error::DisplayErrorContext(e)
    )
}

async fn network(ec2: &aws_sdk_ec2::Client, name: &str) -> anyhow::Result<Network> {
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .map_err(|e| moto_error("VPC", &e))?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .context("moto returned no VPC id")?;
    let subnet = ec2
        .create_subnet()
        .vpc_id(vpc_id)
        .cidr_block("10.0.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .map_err(|e| moto_error("subnet", &e))?;
    let subnet = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .context("moto returned no subnet id")?
        .to_owned();
    let sg = ec2
        .create_security_group()
        .group_name(format!("{name}-runners"))
        .description("runner instances")
        .vpc_id(vpc_id)
        .send()
        .await
        .map_err(|e| moto_error("security group", &e))?;
    let security_group = sg
        .group_id()
        .context("moto returned no group id")?
        .to_owned();
    let image = ec2
        .register_image()
        .name(format!("{name}-runner-ami"))
        .root_device_name("/dev/xvda")
        .send()
        .await
        .map_err(|e| moto_error("AMI", &e))?;
    let ami = image
        .image_id()
        .context("moto returned no image id")?
        .to_owned();
    Ok(Network {
        subnet,
        security_group,
        ami,
    })
}

/// An EC2 instance as moto describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2View {
    /// Instance id.
    pub id: String,
    /// State name (`running`, `terminated`…).
    pub state: String,
    /// Launch time (seconds precision in moto).
    pub launched_at: model::Timestamp,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl Ec2View {
    /// Whether it is pending or running.
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.state == "pending" || self.state == "running"
    }
}

/// Who a controller is and what it does besides the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerOptions {
    /// Its name in the lease.
    pub holder: String,
    /// Point the simulator's webhook at this controller.
    pub receive_webhooks: bool,
    /// Read Gitea's queued-jobs list (backfill). Off, only webhooks (and the spool) create runs.
    pub backfill: bool,
    /// Receive EC2's notices from this SQS queue (in moto), as `aws.events_queue_url` does.
    pub events_queue_url: Option<String>,
    /// Serve the actions cache (on a loopback port, entries in a moto S3 bucket of this
    /// world), so runners get a `cache.external_server`.
    pub cache: bool,
    /// A pool that keeps warm runners, in its configuration. None: no pool does.
    pub warm: Option<WarmPool>,
}

/// A pool's warm runners in a world's configuration: `pools.<pool>.warm.min_idle`, always (no
/// schedule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmPool {
    /// The pool (`go` or `docker`).
    pub pool: String,
    /// Idle runners it keeps ready.
    pub min_idle: u32,
}

impl ControllerOptions {
    /// A controller named `holder` that receives the webhooks and backfills.
    #[must_use]
    pub fn named(holder: &str) -> Self {
        ControllerOptions {
            holder: holder.to_owned(),
            receive_webhooks: true,
            backfill: true,
            events_queue_url: None,
            cache: false,
            warm: None,
        }
    }

    /// The same, with pool `pool` keeping `min_idle` warm runners.
    #[must_use]
    pub fn with_warm(self, pool: &str, min_idle: u32) -> Self {
        ControllerOptions {
            warm: Some(WarmPool {
                pool: pool.to_owned(),
                min_idle,
            }),
            ..self
        }
    }
}

/// A running controller.
pub struct Controller {
    /// Its name in the lease.
    pub holder: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its fleet (the real one, decorated).
    pub fleet: Arc<FaultyFleet>,
    /// Its store (the real one, decorated).
    pub store: Arc<FaultyStore>,
    /// Its metrics.
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("holder", &self.holder)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Where it receives webhooks.
    #[must_use]
    pub fn hook_url(&self) -> String {
        format!("{}{}", self.url, controller::webhook::HOOK_PATH)
    }

    /// Applied actions of `kind` with reason code `reason` (`None`: any reason) that
    /// succeeded, from its metrics.
    #[must_use]
    pub fn actions(&self, kind: &str, reason: Option<&str>) -> u64 {
        actions_in(&self.metrics, kind, reason)
    }

    /// Whether it holds the single-writer lease now.
    #[must_use]
    pub fn holds_lease(&self) -> bool {
        metric(&self.metrics.render(), "tinqs_lease_held", &[]) >= 1.0
    }

    /// Whether its task has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops it as SIGTERM would: the current pass finishes and the lease is released.
    ///
    /// # Errors
    /// When `serve` failed, or did not stop within 30 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(Ok(result)) => result.with_context(|| format!("controller {} failed", self.holder)),
            Ok(Err(e)) => bail!("controller {} panicked or was aborted: {e}", self.holder),
            Err(_) => bail!("controller {} did not stop within 30s", self.holder),
        }
    }

    /// Kills it at once (`kill -9`): nothing finishes, the lease is not released, its
    /// listener closes.
    pub fn kill(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// The sum of the samples of `name` whose labels include every one of `labels`, from the
/// Prometheus text exposition.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some(p) => p,
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let present: Vec<(&str, &str)> = label_text
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if labels.iter().all(|l| present.contains(l)) {
            sum += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

/// One world.
pub struct World {
    /// The cluster id (also the prefix of every name in it).
    pub cluster: String,
    /// The DynamoDB table.
    pub table: String,
    /// Timings.
    pub settings: Settings,
    /// What happened, in order.
    pub events: Events,
    /// The Gitea simulator.
    pub sim: SimHandle,
    /// The simulated machines.
    pub booter: Booter,
    /// Instances "reclaimed" by EC2.
    pub interruptions: Arc<Interruptions>,
    /// The clock of every controller started here, their ports and the stories: the system
    /// clock, since moto and the Gitea simulator run in real time.
    pub clock: Arc<dyn Clock>,
    /// The table, read directly (as an operator's `tinqs-ci runs` would).
    pub store: Arc<DynamoStore>,
    /// EC2 (moto) through the SDK.
    pub ec2: aws_sdk_ec2::Client,
    /// Where the pools launch.
    pub network: Network,
    /// SQS (moto), for EC2's notices.
    pub sqs: aws_sdk_sqs::Client,
    /// S3 (moto), for the actions cache.
    pub s3: aws_sdk_s3::Client,
    dynamo: aws_sdk_dynamodb::Client,
    secret: String,
    spool: tempfile::TempDir,
    watcher: JoinHandle<()>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("cluster", &self.cluster)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Starts a world named `name` (at most 16 characters of `a-z0-9-`): the table, the
    /// network and AMI in moto, the simulator, the booter. No controller yet.
    ///
    /// # Errors
    /// When moto is not set up (see [`moto_url`]) or refuses something.
    pub async fn start(name: &str, settings: Settings) -> anyhow::Result<World> {
        Self::start_with_events(name, settings, Events::new(settings.echo)).await
    }

    /// [`World::start`], narrating into an existing log (one a `tracing` subscriber already
    /// writes the controller's events into).
    ///
    /// # Errors
    /// As [`World::start`].
    pub async fn start_with_events(
        name: &str,
        settings: Settings,
        events: Events,
    ) -> anyhow::Result<World> {
        moto_url()?;
        ensure!(
            !name.is_empty()
                && name.len() <= 16
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "world name `{name}` must be 1 to 16 characters of a-z, 0-9 and -"
        );
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let cluster = format!("{name}-{}", &suffix[..6]);
        let table = format!("tinqs-{cluster}");

        let conf = controller::aws::moto::config().await?;
        let ec2 = aws_sdk_ec2::Client::new(&conf);
        let dynamo = aws_sdk_dynamodb::Client::new(&conf);
        let sqs = aws_sdk_sqs::Client::new(&conf);
        // Path-style, as the cache service addresses moto.
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = Arc::new(
            DynamoStore::with_policy(
                dynamo.clone(),
                &table,
                Duration::from_secs(3600),
                CallPolicy::fast(),
            )
            .with_clock(clock.clone()),
        );
        store
            .init_table(Duration::from_secs(30))
            .await
            .with_context(|| format!("cannot create the table {table} in moto"))?;
        let network = network(&ec2, &cluster).await?;

        let secret = format!("whsec-{}", uuid::Uuid::new_v4().simple());
        let mut sim_config = SimConfig::default().repo(REPO);
        sim_config.runner_offline_after = settings.runner_offline_after;
        sim_config.runner_idle_after = settings.runner_idle_after;
        sim_config.zombie_task_timeout = settings.zombie_task_timeout;
        let sim = Simulator::start(sim_config)
            .await
            .context("cannot start the Gitea simulator")?;

        let interruptions = Arc::new(Interruptions::new());
        let booter = Booter::start(
            ec2.clone(),
            &cluster,
            &sim.base_url(),
            settings.boot,
            interruptions.clone(),
            events.clone(),
        );
        let spool = tempfile::Builder::new()
            .prefix(&format!("tinqs-spool-{cluster}-"))
            .tempdir()
            .context("cannot create the spool directory")?;
        let watcher = watch_jobs(sim.clone(), events.clone());
        events.push(
            Source::Story,
            "world",
            format!(
                "world {cluster}: table {table}, Gitea simulator at {}, moto EC2 subnet {} and AMI {}",
                sim.base_url(),
                network.subnet,
                network.ami
            ),
        );
        Ok(World {
            cluster,
            table,
            settings,
            events,
            sim,
            booter,
            interruptions,
            clock,
            store,
            ec2,
            network,
            sqs,
            s3,
            dynamo,
            secret,
            spool,
            watcher,
        })
    }

    /// The controller configuration of this world: pools `go` (labels go, linux) and
    /// `docker`, foreign label `host`, this world's deadlines; no warm runners.
    ///
    /// # Errors
    /// When it does not validate (a bug in the harness).
    pub fn config(&self) -> anyhow::Result<Config> {
        self.config_with(None)
    }

    /// [`World::config`], with `warm`'s pool keeping warm runners when given.
    ///
    /// # Errors
    /// When it does not validate (a bug in the harness, or a pool it does not have).
    pub fn config_with(&self, warm: Option<&WarmPool>) -> anyhow::Result<Config> {
        let d = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
        let t = &self.settings.timeouts;
        let n = &self.network;
        let pool = |name: &str, types: &str, extra: &str| {
            let warm = match warm {
                Some(w) if w.pool == name => format!("    warm:\n      min_idle: {}\n", w.min_idle),
                _ => String::new(),
            };
            format!(
                "    instance_types: [{types}]\n    subnets: [{}]\n    security_groups: [{}]\n    ami: {}\n    market: spot\n    max_instances: 6\n    volume_size_gb: 30\n{extra}{warm}",
                n.subnet, n.security_group, n.ami
            )
        };
        if let Some(w) = warm.filter(|w| w.pool != "go" && w.pool != "docker") {
            bail!("the harness has pools go and docker, not {}", w.pool);
        }
        let yaml = format!(
            "cluster_id: {cluster}\n\
             gitea:\n  url: {url}\n  scope: instance\n  demand: jobs\n  registration: preregister\n\
             aws:\n  region: us-east-1\n\
             store:\n  table: {table}\n  retention: 1h\n\
             server:\n  listen: 127.0.0.1:0\n  spool_dir: {spool}\n\
             pools:\n  go:\n{go}  docker:\n{docker}\
             foreign_labels: [host]\n\
             timeouts:\n  launch: {launch}\n  registration: {registration}\n  boot: {boot}\n  idle: {idle}\n  offline_grace: {grace}\n  stuck: {stuck}\n  max_lifetime: {lifetime}\n  orphan_min_age: {orphan}\n  resync: {resync}\n  retry_failed: {retry}\n\
             safety:\n  max_launches_per_pass: 20\n  max_terminations_per_pass: 20\n  max_instances: 20\n  max_attempts: {attempts}\n",
            cluster = self.cluster,
            url = self.sim.base_url(),
            table = self.table,
            spool = self.spool.path().display(),
            go = pool("go", "c7a.large, c6a.large", "    extra_labels: [linux]\n"),
            docker = pool("docker", "c7a.xlarge", ""),
            launch = d(t.launch),
            registration = d(t.registration),
            boot = d(t.boot),
            idle = d(t.idle),
            grace = d(t.offline_grace),
            stuck = d(t.stuck),
            lifetime = d(t.max_lifetime),
            orphan = d(t.orphan_min_age),
            resync = d(t.resync),
            retry = d(t.retry_failed),
            attempts = self.settings.max_attempts,
        );
        Config::parse(&yaml)
            .map_err(|e| anyhow!("the harness built an invalid configuration: {e}\n{yaml}"))
    }

    /// The spool directory every controller of this world uses (one host, restarted).
    #[must_use]
    pub fn spool_dir(&self) -> &std::path::Path {
        self.spool.path()
    }

    /// Starts a controller: the real ports (decorated), `serve` on `127.0.0.1:0`.
    ///
    /// # Errors
    /// When Gitea cannot be reached at start-up or the listener cannot bind.
    pub async fn start_controller(&self, options: ControllerOptions) -> anyhow::Result<Controller> {
        let mut config = self.config_with(options.warm.as_ref())?;
        if options.cache {
            let bucket = format!("{}-cache", self.cluster);
            // Creating it again (a second controller) is refused by moto as owned already.
            let _ = self.s3.create_bucket().bucket(&bucket).send().await;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("cannot find a free port for the cache service")?
                .port();
            config.server.cache_listen = Some(format!("127.0.0.1:{port}"));
            config.cache = Some(model::cache::CacheConfig {
                bucket,
                prefix: String::new(),
                url: format!("http://127.0.0.1:{port}"),
                max_repo_size: model::cache::DEFAULT_MAX_REPO_SIZE,
                expiry: model::cache::DEFAULT_EXPIRY,
            });
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the controller's listener")?;
        let url = format!(
            "http://{}",
            listener.local_addr().context("listener address")?
        );
        let (forge, _version, offered) =
            GiteaForge::connect(&config.gitea, Secret::new(self.sim.admin_token()))
                .await
                .context("the controller cannot use the Gitea simulator")?;
        let forge: Arc<dyn Forge> = Arc::new(forge);
        let mut features = LoopFeatures::from_forge(&config, offered);
        if !options.backfill {
            features.queued_jobs = false;
        }
        let ec2 = Ec2Fleet::with_settings(
            SdkEc2::new(self.ec2.clone()),
            &self.cluster,
            Ec2Settings {
                call: CallPolicy::fast(),
                ..Ec2Settings::default()
            },
            self.clock.clone(),
        );
        let inner_fleet: Arc<dyn Fleet> = Arc::new(ec2);
        let fleet = Arc::new(FaultyFleet::new(
            inner_fleet,
            self.interruptions.clone(),
            self.events.clone(),
            self.clock.clone(),
        ));
        let inner_store: Arc<dyn Store> = Arc::new(
            DynamoStore::with_policy(
                self.dynamo.clone(),
                &self.table,
                Duration::from_secs(3600),
                CallPolicy::fast(),
            )
            .with_clock(self.clock.clone()),
        );
        let store = Arc::new(FaultyStore::new(inner_store));
        let metrics = Metrics::new();
        let spool_dir = config.server.spool_dir.clone();
        let reconciler = Reconciler {
            store: store.clone(),
            fleet: fleet.clone(),
            forge: forge.clone(),
            config,
            features,
            clock: self.clock.clone(),
            limits: Limits {
                concurrency: 8,
                call_timeout: self.settings.call_timeout,
                launch_timeout: Duration::from_secs(20),
                lease_ttl: self.settings.lease_ttl,
            },
            metrics: metrics.clone(),
            holder: options.holder.clone(),
            notices: controller::notices::NoticeBook::default(),
            disabled: controller::reconcile::DisabledBook::default(),
        };
        let receiver = options.events_queue_url.as_deref().map(|url| {
            let queue = controller::notices::SqsQueue::new(self.sqs.clone(), url);
            controller::notices::NoticeReceiver::new(Arc::new(queue), reconciler.notices.clone())
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let secret = Secret::new(self.secret.clone());
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let serving = controller::cmd::serve::serve(
                reconciler,
                Some(forge),
                secret,
                &spool_dir,
                listener,
                shutdown,
            );
            match receiver {
                // As `serve` runs it: beside the loop, until the controller stops.
                Some(receiver) => {
                    tokio::pin!(serving);
                    tokio::select! {
                        result = &mut serving => result,
                        () = receiver.run(std::future::pending()) => Ok(()),
                    }
                }
                None => serving.await,
            }
        });
        let c = Controller {
            holder: options.holder.clone(),
            url,
            fleet,
            store,
            metrics,
            stop: Some(stop),
            task: Some(task),
        };
        self.events.push(
            Source::Story,
            "controller",
            format!(
                "controller {} serving webhooks at {}",
                c.holder,
                c.hook_url()
            ),
        );
        if options.receive_webhooks {
            self.send_webhooks_to(&c);
        }
        Ok(c)
    }

    /// Points the simulator's webhook at `c`.
    pub fn send_webhooks_to(&self, c: &Controller) {
        self.sim.set_webhook(Some(WebhookTarget {
            url: c.hook_url(),
            secret: self.secret.clone(),
        }));
    }

    /// Queues a job in `acme/app` that runs on `labels` for `duration`.
    ///
    /// # Errors
    /// When the simulator refuses it.
    pub fn enqueue(
        &self,
        name: &str,
        labels: &[&str],
        duration: Duration,
    ) -> anyhow::Result<JobView> {
        let job = self
            .sim
            .enqueue_job(JobSpec::new(REPO, name, labels).duration(duration))
            .map_err(|e| anyhow!("cannot queue job {name}: {e}"))?;
        Ok(job)
    }

    /// Queues a job as `spec` describes it (another result, a blocked job…).
    ///
    /// # Errors
    /// When the simulator refuses it.
    pub fn enqueue_spec(&self, spec: JobSpec) -> anyhow::Result<JobView> {
        let name = spec.name.clone();
        self.sim
            .enqueue_job(spec)
            .map_err(|e| anyhow!("cannot queue job {name}: {e}"))
    }

    /// Presses "Re-run" on a finished job in Gitea; returns the job(s) queued again.
    ///
    /// # Errors
    /// When the simulator refuses it (the job is not finished).
    pub fn rerun(&self, job: i64) -> anyhow::Result<Vec<JobView>> {
        let jobs = self
            .sim
            .rerun_job(job)
            .map_err(|e| anyhow!("cannot re-run job {job}: {e}"))?;
        self.events.push(
            Source::Gitea,
            "rerun",
            format!("a user re-runs job {job} in Gitea"),
        );
        Ok(jobs)
    }

    /// Sends an old webhook delivery again to `c`, as Gitea's "Redeliver" button does (with
    /// a new delivery id, signed with the hook's secret); returns the HTTP status.
    ///
    /// # Errors
    /// When the request cannot be sent.
    pub async fn redeliver(&self, delivery: &Delivery, c: &Controller) -> anyhow::Result<u16> {
        let secret = Secret::new(self.secret.clone());
        let signature = controller::webhook::sign(&secret, delivery.body.as_bytes());
        let response = reqwest::Client::new()
            .post(c.hook_url())
            .header("content-type", "application/json")
            .header("x-gitea-event", delivery.event.as_str())
            .header("x-gitea-delivery", uuid::Uuid::new_v4().to_string())
            .header("x-gitea-signature", signature)
            .body(delivery.body.clone())
            .send()
            .await
            .context("cannot redeliver the webhook")?;
        self.events.push(
            Source::Gitea,
            "redeliver",
            format!(
                "an old `{}` delivery of job {} is redelivered: {}",
                delivery.action.as_deref().unwrap_or("?"),
                delivery.job_id.unwrap_or(0),
                response.status()
            ),
        );
        Ok(response.status().as_u16())
    }

    /// Scripts what happens to the machines of `job`'s run: every attempt (`None`) or one.
    pub fn script(&self, job: &JobView, attempt: Option<u32>, fault: BootFault) {
        let run = run_of(job);
        let matches = match attempt {
            Some(a) => Match::Attempt(run, a),
            None => Match::Run(run),
        };
        self.booter.add_rule(FaultRule::new(matches, fault));
    }

    /// The run of `run` as the table holds it.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub async fn run(&self, run: &RunId) -> anyhow::Result<Option<DesiredRun>> {
        self.store
            .get(run)
            .await
            .with_context(|| format!("cannot read run {run}"))
    }

    /// Creates this world's events queue in moto (what the deployment's EventBridge rule
    /// feeds); its URL.
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn events_queue(&self) -> anyhow::Result<String> {
        let out = self
            .sqs
            .create_queue()
            .queue_name(format!("{}-events", self.cluster))
            .send()
            .await
            .context("cannot create the events queue in moto")?;
        out.queue_url()
            .map(str::to_owned)
            .context("moto returned no queue URL")
    }

    /// Puts on `queue` the event EventBridge delivers for EC2's notice `detail_type` about
    /// `instance` (shape: the EC2 user guide, "Spot Instance interruption notices").
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn send_ec2_notice(
        &self,
        queue: &str,
        detail_type: &str,
        instance: &str,
    ) -> anyhow::Result<()> {
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let body = serde_json::json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": detail_type,
            "source": "aws.ec2",
            "account": "123456789012",
            "time": time.to_string(),
            "region": "us-east-1",
            "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")],
            "detail": {"instance-id": instance, "instance-action": "terminate"},
        });
        self.sqs
            .send_message()
            .queue_url(queue)
            .message_body(body.to_string())
            .send()
            .await
            .context("cannot send the notice to the events queue")?;
        self.events.push(
            Source::Story,
            "ec2",
            format!("EC2 sends \"{detail_type}\" for {instance}"),
        );
        Ok(())
    }

    /// The warm runs `ctl` launched in `pool` that are ready: recorded online in the table,
    /// no job taken, and their runner online, idle and enabled in Gitea. Oldest launch first.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub async fn ready_warm_runs(
        &self,
        ctl: &Controller,
        pool: &str,
    ) -> anyhow::Result<Vec<DesiredRun>> {
        let runners = self.sim.runners();
        let mut ready: Vec<DesiredRun> = Vec::new();
        for launch in ctl.fleet.launches() {
            let warm = launch.run.as_str().starts_with("warm-") && launch.pool == pool;
            if !warm || ready.iter().any(|r| r.id == launch.run) {
                continue;
            }
            let Some(run) = self.run(&launch.run).await? else {
                continue;
            };
            let online = runners
                .iter()
                .any(|r| r.name == launch.runner.as_str() && r.online && !r.busy && !r.disabled);
            let recorded = run.status.registered_at.is_some()
                && run.status.took_job_at.is_none()
                && !run.status.phase.is_final();
            if online && recorded {
                ready.push(run);
            }
        }
        Ok(ready)
    }

    /// Our instances (by cluster tag), in every state, as moto describes them.
    ///
    /// # Errors
    /// When EC2 cannot be listed.
    pub async fn instances(&self) -> anyhow::Result<Vec<Ec2View>> {
        self.describe(
            Some(
                Filter::builder()
                    .name(format!("tag:{}", tags::CLUSTER))
                    .values(&self.cluster)
                    .build(),
            ),
            None,
        )
        .await
    }

    /// One instance, whatever its tags.
    ///
    /// # Errors
    /// When EC2 cannot be asked, or does not know it.
    pub async fn instance(&self, id: &str) -> anyhow::Result<Ec2View> {
        self.describe(None, Some(id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("EC2 does not know {id}"))
    }

    async fn describe(
        &self,
        filter: Option<Filter>,
        id: Option<&str>,
    ) -> anyhow::Result<Vec<Ec2View>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .ec2
                .describe_instances()
                .set_filters(filter.clone().map(|f| vec![f]))
                .set_instance_ids(id.map(|i| vec![i.to_owned()]))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    anyhow!(
                        "DescribeInstances failed: {}",
                        aws_sdk_ec2::error::DisplayErrorContext(&e)
                    )
                })?;
            for r in resp.reservations() {
                for i in r.instances() {
                    out.push(Ec2View {
                        id: i.instance_id().unwrap_or_default().to_owned(),
                        state: i
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_owned())
                            .unwrap_or_default(),
                        launched_at: i
                            .launch_time()
                            .and_then(|t| t.to_millis().ok())
                            .map_or(model::Timestamp::EPOCH, model::Timestamp::from_millis),
                        tags: i
                            .tags()
                            .iter()
                            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                            .collect(),
                    });
                }
            }
            match resp.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Launches an instance in moto directly, tagged as ours in `pool` for a run that does
    /// not exist (what a controller crash after a launch, or a hand-made instance, leaves).
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn launch_orphan(&self, pool: &str) -> anyhow::Result<String> {
        let run = RunId::for_job(999_999, 1);
        let runner = model::RunnerName::new(&self.cluster, &run, 1);
        let tags = [
            (tags::CLUSTER, self.cluster.as_str()),
            (tags::POOL, pool),
            (tags::RUN_ID, run.as_str()),
            (tags::RUNNER_NAME, runner.as_str()),
            (tags::ATTEMPT, "1"),
        ];
        let id = self.run_raw(&tags).await?;
        self.events.push(
            Source::Story,
            "orphan",
            format!(
                "an instance {id} tagged as ours (pool {pool}) for run {run}, which does not exist"
            ),
        );
        Ok(id)
    }

    /// Launches an instance in moto without our ownership tag (someone else's machine).
    ///
    /// # Errors
    /// When moto refuses.
    pub async fn launch_foreign(&self) -> anyhow::Result<String> {
        let id = self.run_raw(&[("Name", "someone-elses-build-box")]).await?;
        self.events.push(
            Source::Story,
            "foreign",
            format!("an instance {id} without our ownership tag (someone else's)"),
        );
        Ok(id)
    }

    async fn run_raw(&self, tags: &[(&str, &str)]) -> anyhow::Result<String> {
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                    .collect(),
            ))
            .build();
        let resp = self
            .ec2
            .run_instances()
            .image_id(&self.network.ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::from("c7a.large"))
            .min_count(1)
            .max_count(1)
            .subnet_id(&self.network.subnet)
            .tag_specifications(spec)
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "RunInstances failed: {}",
                    aws_sdk_ec2::error::DisplayErrorContext(&e)
                )
            })?;
        resp.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_owned)
            .context("RunInstances returned no instance")
    }

    /// Polls `check` every 100 ms until it gives a value, or fails after `timeout` with `what`
    /// and the story so far.
    ///
    /// # Errors
    /// When `timeout` passes first.
    pub async fn wait_until<T, F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{what}: did not happen within {}\n--- what happened ---\n{}",
                    humantime::format_duration(timeout),
                    self.events.dump()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until job `job` is completed in Gitea; returns it.
    ///
    /// # Errors
    /// When it is not completed within `timeout`.
    pub async fn job_completed(&self, job: i64, timeout: Duration) -> anyhow::Result<JobView> {
        self.wait_until(
            &format!("job {job} completes in Gitea"),
            timeout,
            || async move {
                self.sim
                    .job(job)
                    .filter(|j| j.status == JobPhase::Completed)
            },
        )
        .await
    }

    /// Waits until the run of `run` reaches a final phase; returns it.
    ///
    /// # Errors
    /// When it does not within `timeout`, or the table cannot be read.
    pub async fn run_final(&self, run: &RunId, timeout: Duration) -> anyhow::Result<DesiredRun> {
        self.wait_until(
            &format!("run {run} reaches a final phase"),
            timeout,
            || async move {
                self.run(run)
                    .await
                    .ok()
                    .flatten()
                    .filter(|r| r.status.phase.is_final())
            },
        )
        .await
    }

    /// Waits until instance `id` is terminated in EC2.
    ///
    /// # Errors
    /// When it is not within `timeout`.
    pub async fn terminated(&self, id: &str, timeout: Duration) -> anyhow::Result<()> {
        self.wait_until(&format!("{id} is terminated"), timeout, || async move {
            self.instance(id)
                .await
                .ok()
                .filter(|i| !i.is_live())
                .map(|_| ())
        })
        .await
    }

    /// Stops the booter, its agents and the simulator.
    pub async fn shutdown(self) {
        self.booter.shutdown().await;
        self.watcher.abort();
        self.sim.shutdown().await;
    }
}

/// Applied actions of `kind` with reason code `reason` (`None`: any reason) that succeeded,
/// in a controller's `metrics` (readable after the controller stopped).
#[must_use]
pub fn actions_in(metrics: &Metrics, kind: &str, reason: Option<&str>) -> u64 {
    let mut labels = vec![("kind", kind), ("result", "ok")];
    if let Some(r) = reason {
        labels.push(("reason", r));
    }
    metric(&metrics.render(), "tinqs_actions_total", &labels) as u64
}

/// The run a new job's `workflow_job` webhook (or its backfill) creates: `job-<id>-1`.
#[must_use]
pub fn run_of(job: &JobView) -> RunId {
    RunId::for_job(job.id, 1)
}

/// The run of pick `pick` of `job` (a re-run of a job picked once is pick 2).
#[must_use]
pub fn run_of_pick(job: &JobView, pick: u32) -> RunId {
    RunId::for_job(job.id, pick)
}

/// Narrates job transitions as the simulator reports them.
fn watch_jobs(sim: SimHandle, events: Events) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<i64, JobPhase> = BTreeMap::new();
        loop {
            for job in sim.jobs() {
                if seen.get(&job.id) == Some(&job.status) {
                    continue;
                }
                seen.insert(job.id, job.status);
                let text = match job.status {
                    JobPhase::Waiting => format!("job {} `{}` waiting", job.id, job.name),
                    JobPhase::Queued => format!(
                        "job {} `{}` queued, runs-on [{}]",
                        job.id,
                        job.name,
                        job.labels.join(", ")
                    ),
                    JobPhase::InProgress => {
                        let runner = job.runner_id.and_then(|r| sim.runner(r)).map_or_else(
                            || "a runner".to_owned(),
                            |r| format!("runner {}", r.name),
                        );
                        format!("job {} `{}` started on {runner}", job.id, job.name)
                    }
                    JobPhase::Completed => format!(
                        "job {} `{}` completed: {}",
                        job.id,
                        job.name,
                        job.conclusion
                            .map_or("unknown", gitea_sim::Conclusion::as_str)
                    ),
                };
                events.push(Source::Gitea, "job", text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}
