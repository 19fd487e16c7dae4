//! The configuration file: typed, validated, and never holding a secret.
//!
//! Secrets (the Gitea API token, the webhook secret) are named by environment variable; the file
//! holds only the variable's name. [`Config::parse`] reports every problem at once, each naming
//! the field (`pools.go.instance_types`) and what is wrong with it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::duration_serde;

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Stamped in every ownership tag and runner name, so two deployments in one AWS account
    /// and one Gitea never touch each other's machines. 1 to 24 characters of `a-z0-9-`.
    pub cluster_id: String,
    /// How to reach Gitea, and what to listen to.
    pub gitea: GiteaConfig,
    /// AWS settings shared by all pools.
    #[serde(default)]
    pub aws: AwsConfig,
    /// The DynamoDB table of desired runs.
    pub store: StoreConfig,
    /// The webhook and metrics listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Runner pools keyed by the runner label a workflow's `runs-on` names (`go`, `docker`…).
    /// A label given twice is an error, never "the last one wins".
    #[serde(deserialize_with = "unique_pools::deserialize")]
    pub pools: BTreeMap<String, PoolConfig>,
    /// Labels served by standing runners that are not ours (`host`, say). Jobs asking for one
    /// of these are ignored, never reported as unschedulable.
    #[serde(default)]
    pub foreign_labels: Vec<String>,
    /// Deadlines.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Budgets and caps.
    #[serde(default)]
    pub safety: Safety,
    /// The actions cache service (optional; off when absent). It needs
    /// `server.cache_listen` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheConfig>,
}

/// Gitea connection and behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiteaConfig {
    /// Base URL of the Gitea server, e.g. `https://git.example.com`.
    pub url: String,
    /// Name of the environment variable holding the API token (default `GITEA_TOKEN`).
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// Name of the environment variable holding the webhook secret
    /// (default `GITEA_WEBHOOK_SECRET`).
    #[serde(default = "default_secret_env")]
    pub webhook_secret_env: String,
    /// Where our runners are registered: `instance`, `org:<name>` or `repo:<owner>/<name>`.
    #[serde(default)]
    pub scope: RunnerScope,
    /// Where demand comes from.
    #[serde(default)]
    pub demand: DemandSource,
    /// How runners get their Gitea identity.
    #[serde(default)]
    pub registration: RegistrationMode,
}

fn default_token_env() -> String {
    "GITEA_TOKEN".into()
}

fn default_secret_env() -> String {
    "GITEA_WEBHOOK_SECRET".into()
}

/// The Gitea scope runners are registered in (and listed from).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunnerScope {
    /// Site-wide runners (admin token).
    #[default]
    Instance,
    /// Runners of one organisation.
    Org(String),
    /// Runners of one repository.
    Repo {
        /// Owner (user or organisation).
        owner: String,
        /// Repository name.
        name: String,
    },
}

impl RunnerScope {
    /// Parses `instance`, `org:<name>` or `repo:<owner>/<name>`.
    ///
    /// # Errors
    /// With a message saying which forms are accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a scope: write instance, org:<name> or repo:<owner>/<name>");
        match s.split_once(':') {
            None if s == "instance" => Ok(RunnerScope::Instance),
            Some(("org", org)) if valid_gitea_name(org) => Ok(RunnerScope::Org(org.to_owned())),
            Some(("repo", full)) => match full.split_once('/') {
                Some((owner, name)) if valid_gitea_name(owner) && valid_gitea_name(name) => {
                    Ok(RunnerScope::Repo {
                        owner: owner.to_owned(),
                        name: name.to_owned(),
                    })
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    /// The REST path prefix of this scope's Actions endpoints, e.g. `/api/v1/orgs/acme/actions`.
    #[must_use]
    pub fn api_prefix(&self) -> String {
        match self {
            RunnerScope::Instance => "/api/v1/admin/actions".into(),
            RunnerScope::Org(org) => format!("/api/v1/orgs/{org}/actions"),
            RunnerScope::Repo { owner, name } => format!("/api/v1/repos/{owner}/{name}/actions"),
        }
    }
}

fn valid_gitea_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl fmt::Display for RunnerScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunnerScope::Instance => f.write_str("instance"),
            RunnerScope::Org(o) => write!(f, "org:{o}"),
            RunnerScope::Repo { owner, name } => write!(f, "repo:{owner}/{name}"),
        }
    }
}

impl Serialize for RunnerScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunnerScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RunnerScope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where the controller learns which jobs need runners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DemandSource {
    /// `workflow_job` webhooks (Gitea 1.24+) plus the queued-jobs API (1.25+) for backfill.
    #[default]
    Jobs,
    /// Push webhooks matched against the repository's workflow files (older Gitea, Forgejo).
    Push,
}

/// How a runner instance gets its Gitea identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationMode {
    /// The controller registers the ephemeral runner and hands the instance its `.runner` file:
    /// no reusable token ever reaches the instance.
    #[default]
    Preregister,
    /// Fallback: the instance runs `act_runner register --ephemeral` with a registration token.
    SelfRegister,
}

/// AWS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Region; when absent the standard AWS environment and profile settings decide.
    #[serde(default)]
    pub region: Option<String>,
    /// The SQS queue receiving EC2's Spot interruption warnings and rebalance recommendations
    /// through EventBridge (`deploy/tinqs-ci.yaml` creates both and writes this URL). Optional;
    /// when set, the controller long-polls it (`controller/src/notices.rs`).
    #[serde(default)]
    pub events_queue_url: Option<String>,
}

/// The desired-state table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// DynamoDB table name.
    pub table: String,
    /// How long finished runs stay in the table before DynamoDB's TTL removes them
    /// (default 7 days).
    #[serde(default = "default_retention", with = "duration_serde")]
    pub retention: Duration,
}

fn default_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

/// The HTTP listener for webhooks, metrics and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address (default `0.0.0.0:8080`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Directory of the local webhook spool used while DynamoDB is unreachable
    /// (default `/var/lib/tinqs-ci/spool`).
    #[serde(default = "default_spool")]
    pub spool_dir: String,
    /// When set, `/metrics` is served only on this address (a private one, say
    /// `127.0.0.1:9090`) and no longer on `listen`, which Gitea's webhooks reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// When set, the actions cache service listens here (an address runners reach inside the
    /// VPC, say `0.0.0.0:8081`); the cache is on only with the `cache:` section too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_listen: Option<String>,
    /// Most HTTP connections open at once (default 256); one more is closed on accept. With
    /// the 1 MiB body limit this bounds request bodies held in memory to about this many MiB.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Time a client has to send a request's headers, counted from when the connection opens
    /// or the previous response was sent; an idle connection is closed after it (default 10s).
    #[serde(default = "default_header_timeout", with = "duration_serde")]
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body once its headers are in; a slower
    /// one is answered 408 and its connection closed (default 30s).
    #[serde(default = "default_body_timeout", with = "duration_serde")]
    pub body_timeout: Duration,
}

fn default_listen() -> String {
    "0.0.0.0:8080".into()
}

fn default_max_connections() -> u32 {
    256
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_spool() -> String {
    "/var/lib/tinqs-ci/spool".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            spool_dir: default_spool(),
            metrics_listen: None,
            cache_listen: None,
            max_connections: default_max_connections(),
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
        }
    }
}

/// One pool of runners, serving one `runs-on` label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Instance types in order of preference; the next is tried when one has no capacity.
    pub instance_types: Vec<String>,
    /// Subnets (one per zone, usually); tried in order with each instance type.
    pub subnets: Vec<String>,
    /// Security groups for the runner instances.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The runner AMI.
    pub ami: String,
    /// Instance profile name, if the jobs need AWS access.
    #[serde(default)]
    pub instance_profile: Option<String>,
    /// Spot only (`spot`, the default), Spot falling back to on-demand
    /// (`spot-then-on-demand`), or on-demand only (`on-demand`).
    #[serde(default)]
    pub market: Market,
    /// Most instances of this pool alive at once (default 10).
    #[serde(default = "default_pool_max")]
    pub max_instances: u32,
    /// Root volume size in GiB (default 30).
    #[serde(default = "default_volume")]
    pub volume_size_gb: u32,
    /// Labels the runner carries besides the pool's own.
    #[serde(default)]
    pub extra_labels: Vec<String>,
    /// Overrides `timeouts.max_lifetime` for this pool.
    #[serde(default, with = "opt_duration")]
    pub max_lifetime: Option<Duration>,
    /// Idle runners kept ready for this pool's jobs, so a job starts without waiting for a
    /// machine to boot. None when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmConfig>,
    /// What one instance of this pool costs per hour, in US dollars, as the operator puts it
    /// (the Spot price of its first instance type, say). Only shown: `tinqs-ci status` prints
    /// what the pool's idle warm runners cost with it. Never used to plan. None: not known,
    /// and no cost is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_price: Option<HourlyPrice>,
}

/// A price per hour in US dollars, kept in millionths of a dollar so that it adds up and
/// compares exactly. Written in the file as a number of dollars (`0.0312`), from 0 to
/// [`HourlyPrice::MAX_DOLLARS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HourlyPrice {
    micros: u64,
}

impl HourlyPrice {
    /// The highest price accepted, in dollars per hour (far above any instance's).
    pub const MAX_DOLLARS: u64 = 1000;

    /// A price of `micros` millionths of a dollar per hour.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        HourlyPrice { micros }
    }

    /// The price of `dollars` per hour.
    ///
    /// # Errors
    /// When `dollars` is not a number from 0 to [`Self::MAX_DOLLARS`].
    pub fn from_dollars(dollars: f64) -> Result<Self, String> {
        #[allow(clippy::cast_precision_loss)]
        let max = Self::MAX_DOLLARS as f64;
        if !dollars.is_finite() || !(0.0..=max).contains(&dollars) {
            return Err(format!(
                "hourly_price must be a number of US dollars per hour from 0 to {}, like 0.0312",
                Self::MAX_DOLLARS
            ));
        }
        // In range and finite: the product fits a u64 and is not negative.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let micros = (dollars * 1_000_000.0).round() as u64;
        Ok(HourlyPrice { micros })
    }

    /// Millionths of a dollar per hour.
    #[must_use]
    pub const fn micros(self) -> u64 {
        self.micros
    }

    /// The price of `n` instances.
    #[must_use]
    pub fn times(self, n: u32) -> Self {
        HourlyPrice {
            micros: self.micros.saturating_mul(u64::from(n)),
        }
    }

    /// Dollars per hour, for JSON.
    #[must_use]
    pub fn dollars(self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let micros = self.micros as f64;
        micros / 1_000_000.0
    }
}

impl fmt::Display for HourlyPrice {
    /// `$0.0312/h`: as many decimals as it has, at least two.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.micros / 1_000_000;
        let frac = format!("{:06}", self.micros % 1_000_000);
        let frac = frac.trim_end_matches('0');
        write!(f, "${whole}.{frac:0<2}/h")
    }
}

impl Serialize for HourlyPrice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for HourlyPrice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dollars = f64::deserialize(d)?;
        HourlyPrice::from_dollars(dollars).map_err(serde::de::Error::custom)
    }
}

/// A pool's warm runners: ordinary ephemeral runners launched ahead of demand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmConfig {
    /// Idle, registered runners kept ready (at least 1, at most the pool's `max_instances`).
    pub min_idle: u32,
    /// Weekly windows in which `min_idle` applies, like `Mon-Fri 07:00-19:00 Europe/Berlin`
    /// (see [`crate::schedule::Window`]); outside all of them it is 0. Empty: always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<String>,
    /// A warm runner idle this long after its machine started is replaced by a fresh one
    /// (new machine, current AMI); kept until its replacement is ready. None: kept up to the
    /// pool's max lifetime.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_idle_age: Option<Duration>,
}

impl WarmConfig {
    /// The schedule's windows.
    ///
    /// # Errors
    /// The first entry that is not a window, with its index.
    pub fn windows(&self) -> Result<Vec<crate::schedule::Window>, (usize, String)> {
        self.schedule
            .iter()
            .enumerate()
            .map(|(i, w)| crate::schedule::Window::parse(w).map_err(|e| (i, e)))
            .collect()
    }

    fn validate(&self, label: &str, pool: &PoolConfig, lifetime: Duration, p: &mut Problems) {
        let at = |f: &str| format!("pools.{label}.warm.{f}");
        if self.min_idle == 0 {
            p.add(
                at("min_idle"),
                "must be at least 1 (leave `warm` out for no warm runners)",
            );
        } else if self.min_idle > pool.max_instances {
            p.add(
                at("min_idle"),
                format!(
                    "must not exceed pools.{label}.max_instances ({})",
                    pool.max_instances
                ),
            );
        }
        for (i, w) in self.schedule.iter().enumerate() {
            if let Err(e) = crate::schedule::Window::parse(w) {
                p.add(format!("{}[{i}]", at("schedule")), e);
            }
        }
        if let Some(age) = self.max_idle_age {
            if age < Duration::from_secs(60) {
                p.add(at("max_idle_age"), "must be at least 1m");
            } else if age >= lifetime {
                p.add(
                    at("max_idle_age"),
                    format!(
                        "must be shorter than the pool's max lifetime ({})",
                        crate::time::human(lifetime)
                    ),
                );
            }
        }
    }
}

fn default_pool_max() -> u32 {
    10
}

fn default_volume() -> u32 {
    30
}

/// Which EC2 market a pool buys from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    /// Spot only.
    #[default]
    Spot,
    /// Spot, and on-demand when no Spot offering has capacity.
    SpotThenOnDemand,
    /// On-demand only.
    OnDemand,
}

/// Deadlines, each with a documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTimeouts")]
pub struct Timeouts {
    /// From claiming a run to seeing its instance in EC2 (default 5m). A claim older than
    /// this with no instance is launched again with the same client token.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub launch: Duration,
    /// From launch to the runner first showing online in Gitea (default 10m). Past it the
    /// instance is terminated and the run retried.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub registration: Duration,
    /// How long a machine may take from launch to its runner online and still count as
    /// booting normally (default 2m). A booting runner whose own job went to another runner
    /// stands in for one launch for a job it could serve until then; past it, that job gets
    /// a machine of its own (the slow one is still retired only at `registration`).
    #[serde(serialize_with = "duration_serde::serialize")]
    pub boot: Duration,
    /// How long an online runner may sit without a job while nothing queued could use it
    /// (default 10m). Then it is disabled, deregistered and terminated.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub idle: Duration,
    /// How long a runner that was online may stay offline (or vanish from Gitea while its
    /// instance runs) before it counts as a zombie (default 3m).
    #[serde(serialize_with = "duration_serde::serialize")]
    pub offline_grace: Duration,
    /// How long a runner may stay online and idle while a job it could serve waits before it
    /// counts as stuck (default 3m; act_runner asks for work every 2 s). A stuck runner is
    /// disabled, removed and replaced.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub stuck: Duration,
    /// Hard limit on an instance's life, busy or not (default 6h). The boot script also
    /// schedules a power-off at this age, so it holds even when the controller is down.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub max_lifetime: Duration,
    /// An instance of ours that no live run wants is terminated only once it is this old
    /// (default 5m), so a launch in flight is never mistaken for an orphan.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub orphan_min_age: Duration,
    /// Longest wait between two passes (default 60s).
    #[serde(serialize_with = "duration_serde::serialize")]
    pub resync: Duration,
    /// How long a run failed after its attempts rests before it tries once more, while
    /// Gitea still lists its job as queued (default 10m). Gitea never gives up on a queued
    /// job, so neither may the controller; this bounds what a job that cannot start costs.
    #[serde(serialize_with = "duration_serde::serialize")]
    pub retry_failed: Duration,
}

/// Timeouts as written: durations as text, converted with the field's name in any error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    launch: Option<String>,
    registration: Option<String>,
    boot: Option<String>,
    idle: Option<String>,
    offline_grace: Option<String>,
    stuck: Option<String>,
    max_lifetime: Option<String>,
    orphan_min_age: Option<String>,
    resync: Option<String>,
    retry_failed: Option<String>,
}

impl TryFrom<RawTimeouts> for Timeouts {
    type Error = String;
    fn try_from(raw: RawTimeouts) -> Result<Self, String> {
        let d = Timeouts::default();
        let read = |field: &str, text: Option<String>, default: Duration| match text {
            None => Ok(default),
            Some(t) => crate::time::parse_config_duration(&t, "90s, 10m or 6h")
                .map_err(|e| format!("timeouts.{field}: {e}")),
        };
        Ok(Timeouts {
            launch: read("launch", raw.launch, d.launch)?,
            registration: read("registration", raw.registration, d.registration)?,
            boot: read("boot", raw.boot, d.boot)?,
            idle: read("idle", raw.idle, d.idle)?,
            offline_grace: read("offline_grace", raw.offline_grace, d.offline_grace)?,
            stuck: read("stuck", raw.stuck, d.stuck)?,
            max_lifetime: read("max_lifetime", raw.max_lifetime, d.max_lifetime)?,
            orphan_min_age: read("orphan_min_age", raw.orphan_min_age, d.orphan_min_age)?,
            resync: read("resync", raw.resync, d.resync)?,
            retry_failed: read("retry_failed", raw.retry_failed, d.retry_failed)?,
        })
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            launch: Duration::from_secs(5 * 60),
            registration: Duration::from_secs(10 * 60),
            boot: Duration::from_secs(2 * 60),
            idle: Duration::from_secs(10 * 60),
            offline_grace: Duration::from_secs(3 * 60),
            stuck: Duration::from_secs(3 * 60),
            max_lifetime: Duration::from_secs(6 * 3600),
            orphan_min_age: Duration::from_secs(5 * 60),
            resync: Duration::from_secs(60),
            retry_failed: Duration::from_secs(10 * 60),
        }
    }
}

/// Budgets and caps that bound what one pass may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Safety {
    /// Most launches in one pass (default 20).
    pub max_launches_per_pass: u32,
    /// Most terminations in one pass (default 20).
    pub max_terminations_per_pass: u32,
    /// Most instances alive at once across all pools (default 50).
    pub max_instances: u32,
    /// Launch attempts per run before it is failed (default 3).
    pub max_attempts: u32,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            max_launches_per_pass: 20,
            max_terminations_per_pass: 20,
            max_instances: 50,
            max_attempts: 3,
        }
    }
}

/// The pools mapping, refusing a label that appears twice (a plain map keeps the last).
mod unique_pools {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{Error, MapAccess, Visitor};
    use serde::Deserializer;

    use super::PoolConfig;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, PoolConfig>, D::Error> {
        struct Pools;
        impl<'de> Visitor<'de> for Pools {
            type Value = BTreeMap<String, PoolConfig>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of pool labels to pools")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pools = BTreeMap::new();
                while let Some(label) = map.next_key::<String>()? {
                    if pools.contains_key(&label) {
                        return Err(A::Error::custom(format!(
                            "pool `{}` is defined twice: each pool label may appear once",
                            crate::text::escape_control(&label)
                        )));
                    }
                    let pool = map.next_value()?;
                    pools.insert(label, pool);
                }
                Ok(pools)
            }
        }
        d.deserialize_map(Pools)
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.collect_str(&crate::time::human(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        crate::time::parse_config_duration(&s, "90s, 10m or 6h")
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

/// Everything wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The YAML does not fit the schema (unknown field, wrong type, missing field).
    #[error("{0}")]
    Syntax(String),
    /// The YAML fits the schema but values are wrong. Printed, the first
    /// [`MAX_PROBLEMS_SHOWN`] and a count of the rest (a list of 5,000 wrong instance types
    /// helps no one), long values not repeated; the list itself holds them all.
    #[error("{}", problems_text(.0))]
    Invalid(Vec<Problem>),
}

/// How many problems a [`ConfigError::Invalid`] prints.
pub const MAX_PROBLEMS_SHOWN: usize = 20;

/// A field path cut to 48 characters when over 64: it holds keys from the file (pool
/// labels), which can be long too.
fn short_field(field: &str) -> String {
    crate::text::shown(field, 64)
}

fn problems_text(problems: &[Problem]) -> String {
    let mut lines: Vec<String> = problems
        .iter()
        .take(MAX_PROBLEMS_SHOWN)
        .map(|p| {
            format!(
                "{}: {}",
                short_field(&p.field),
                crate::text::hide_values(&p.problem)
            )
        })
        .collect();
    if problems.len() > MAX_PROBLEMS_SHOWN {
        lines.push(format!(
            "… and {} more problems",
            problems.len() - MAX_PROBLEMS_SHOWN
        ));
    }
    lines.join("\n")
}

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `pools.go.subnets`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// The largest configuration file accepted, in bytes (a real one is a few KiB).
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// The deepest nesting of flow collections (`[…]`, `{…}` inside one another) accepted. A
/// configuration needs two or three levels; the YAML parser takes time quadratic in this depth,
/// so a deeper file is refused before it is parsed.
pub const MAX_FLOW_DEPTH: usize = 32;

/// The shortest `timeouts.resync` accepted.
pub const MIN_RESYNC: Duration = Duration::from_secs(1);

/// The shortest `store.retention` accepted.
pub const MIN_RETENTION: Duration = Duration::from_secs(60);

/// Refuses, cheaply and before any YAML parsing, a file too large or nested too deeply.
fn check_shape(text: &str) -> Result<(), ConfigError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigError::Syntax(format!(
            "the file is {} bytes; a configuration file may be at most {MAX_FILE_BYTES} bytes",
            text.len()
        )));
    }
    // Counts `[` and `{` against `]` and `}` outside quoted scalars and comments. It may
    // over-count a bracket inside a plain scalar, which only matters past MAX_FLOW_DEPTH.
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (n, line) in text.lines().enumerate() {
        let mut prev = ' ';
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '\'' | '"' if prev.is_whitespace() || "[{,:".contains(prev) => {
                        quote = Some(c);
                    }
                    '[' | '{' => {
                        depth += 1;
                        if depth > MAX_FLOW_DEPTH {
                            return Err(ConfigError::Syntax(format!(
                                "line {}: collections ([…] or {{…}}) nested more than \
                                 {MAX_FLOW_DEPTH} deep; a configuration needs only a few levels",
                                n + 1
                            )));
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
    }
    Ok(())
}

impl Config {
    /// Parses and validates a configuration file.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] when the file is larger than [`MAX_FILE_BYTES`], nests flow
    /// collections deeper than [`MAX_FLOW_DEPTH`], or does not fit the schema (the message
    /// names the field and line), [`ConfigError::Invalid`] with every value problem found.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        check_shape(text)?;
        let config: Config = serde_yaml_ng::from_str(text).map_err(|e| {
            // serde quotes the offending value; it may be long, or a secret in the wrong place.
            // Its message starts with the field's path, which holds keys from the file.
            let msg = e.to_string();
            // The path is printed apart from the message: a key holding a quote must not pair
            // with a quote of the message and hide where a value starts.
            let msg = match msg.split_once(": ") {
                Some((path, rest)) if !path.contains(' ') => {
                    format!("{}: {}", short_field(path), crate::text::hide_values(rest))
                }
                _ => crate::text::hide_values(&msg),
            };
            // NOTE: a secret written literally is the mistake we most want to explain.
            if msg.contains("unknown field `token`")
                || msg.contains("unknown field `webhook_secret`")
            {
                ConfigError::Syntax(format!(
                    "{msg}\nsecrets are never written in the file: set gitea.token_env / \
                     gitea.webhook_secret_env to the name of an environment variable instead"
                ))
            } else {
                ConfigError::Syntax(msg)
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values the schema cannot express.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing every problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        let c = &self.cluster_id;
        if c.is_empty()
            || c.len() > 24
            || !c
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            p.add(
                "cluster_id",
                "must be 1 to 24 characters of a-z, 0-9 and '-'",
            );
        }
        self.gitea.validate(&mut p);
        if self.store.table.len() < 3
            || self.store.table.len() > 255
            || !self
                .store
                .table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            p.add(
                "store.table",
                "must be a DynamoDB table name: 3 to 255 of A-Z a-z 0-9 _ - .",
            );
        }
        if let Some(metrics) = &self.server.metrics_listen {
            if metrics.trim().is_empty() {
                p.add(
                    "server.metrics_listen",
                    "must be an address like 127.0.0.1:9090",
                );
            } else if *metrics == self.server.listen {
                p.add(
                    "server.metrics_listen",
                    "must differ from server.listen (leave it out to serve /metrics there)",
                );
            }
        }
        if let Some(url) = &self.aws.events_queue_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                p.add(
                    "aws.events_queue_url",
                    "must be an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)",
                );
            }
        }
        self.validate_cache(&mut p);
        if self.store.retention < MIN_RETENTION {
            p.add("store.retention", "must be at least 1m");
        }
        if self.pools.is_empty() {
            p.add("pools", "must define at least one pool");
        }
        for (label, pool) in &self.pools {
            pool.validate(label, &self.foreign_labels, &mut p);
            if let Some(warm) = &pool.warm {
                warm.validate(label, pool, self.max_lifetime(label), &mut p);
            }
        }
        for (i, label) in self.foreign_labels.iter().enumerate() {
            if label.trim().is_empty() {
                p.add(format!("foreign_labels[{i}]"), "must not be empty");
            }
        }
        self.timeouts.validate(&mut p);
        self.server.validate(&mut p);
        let s = &self.safety;
        for (field, value) in [
            ("safety.max_launches_per_pass", s.max_launches_per_pass),
            (
                "safety.max_terminations_per_pass",
                s.max_terminations_per_pass,
            ),
            ("safety.max_instances", s.max_instances),
            ("safety.max_attempts", s.max_attempts),
        ] {
            if value == 0 {
                p.add(field, "must be at least 1");
            }
        }
        p.finish()
    }

    /// The max lifetime that applies to `pool`.
    #[must_use]
    pub fn max_lifetime(&self, pool: &str) -> Duration {
        self.pools
            .get(pool)
            .and_then(|p| p.max_lifetime)
            .unwrap_or(self.timeouts.max_lifetime)
    }
}

impl Config {
    /// The cache section and its listener come together, on an address of their own.
    fn validate_cache(&self, p: &mut Problems) {
        match (&self.server.cache_listen, &self.cache) {
            (Some(listen), Some(cache)) => {
                if listen.trim().is_empty() {
                    p.add(
                        "server.cache_listen",
                        "must be an address like 0.0.0.0:8081",
                    );
                } else if *listen == self.server.listen
                    || self.server.metrics_listen.as_ref() == Some(listen)
                {
                    p.add(
                        "server.cache_listen",
                        "must differ from server.listen and server.metrics_listen",
                    );
                }
                for (field, problem) in cache.problems() {
                    p.add(format!("cache.{field}"), problem);
                }
            }
            // The install template opens the listener whenever it creates the bucket; the
            // cache stays off until the pools file adds its section.
            (Some(_), None) => {}
            (None, Some(_)) => p.add(
                "cache",
                "needs server.cache_listen, the address the cache service listens on",
            ),
            (None, None) => {}
        }
    }
}

impl GiteaConfig {
    fn validate(&self, p: &mut Problems) {
        // NOTE: the URL is never echoed: it may carry credentials in its user-info part.
        let url = self.url.trim_end_matches('/');
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(rest)
                if !rest.is_empty()
                    && !rest.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                if authority.contains('@') {
                    p.add(
                        "gitea.url",
                        "must not hold credentials (user:password@host): the API token is \
                         read from the variable gitea.token_env names",
                    );
                } else if authority.is_empty() {
                    p.add("gitea.url", "has no host");
                }
            }
            _ => p.add(
                "gitea.url",
                "is not an http(s) URL like https://git.example.com (no spaces or control \
                 characters)",
            ),
        }
        for (field, name) in [
            ("gitea.token_env", &self.token_env),
            ("gitea.webhook_secret_env", &self.webhook_secret_env),
        ] {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                p.add(
                    field,
                    "must be the NAME of an environment variable (A-Z, 0-9, _), not the secret itself",
                );
            }
        }
    }
}

impl PoolConfig {
    fn validate(&self, label: &str, foreign: &[String], p: &mut Problems) {
        let at = |f: &str| format!("pools.{label}.{f}");
        // The same check render-user-data makes: the label becomes the runner's `<label>:host`.
        if let Some(problem) = crate::text::label_problem(label) {
            p.add(
                format!("pools.{label:?}"),
                format!("a pool label {problem}"),
            );
        }
        if foreign.iter().any(|f| f == label) {
            p.add(format!("pools.{label}"), "is also listed in foreign_labels");
        }
        if self.instance_types.is_empty() {
            p.add(at("instance_types"), "must list at least one instance type");
        }
        for (i, t) in self.instance_types.iter().enumerate() {
            if !t.contains('.') || t.contains(char::is_whitespace) {
                p.add(
                    format!("{}[{i}]", at("instance_types")),
                    format!("`{t}` is not an instance type like c7a.large"),
                );
            }
        }
        if self.subnets.is_empty() {
            p.add(at("subnets"), "must list at least one subnet");
        }
        for (i, s) in self.subnets.iter().enumerate() {
            if !s.starts_with("subnet-") {
                p.add(
                    format!("{}[{i}]", at("subnets")),
                    format!("`{s}` is not a subnet id (subnet-…)"),
                );
            }
        }
        for (i, s) in self.security_groups.iter().enumerate() {
            if !s.starts_with("sg-") {
                p.add(
                    format!("{}[{i}]", at("security_groups")),
                    format!("`{s}` is not a security group id (sg-…)"),
                );
            }
        }
        if !self.ami.starts_with("ami-") {
            p.add(
                at("ami"),
                format!("`{}` is not an AMI id (ami-…)", self.ami),
            );
        }
        if self.max_instances == 0 {
            p.add(at("max_instances"), "must be at least 1");
        }
        if !(8..=16_384).contains(&self.volume_size_gb) {
            p.add(at("volume_size_gb"), "must be between 8 and 16384");
        }
        for (i, l) in self.extra_labels.iter().enumerate() {
            if let Some(problem) = crate::text::label_problem(l) {
                p.add(
                    format!("{}[{i}]", at("extra_labels")),
                    format!("`{}` is not a runner label: it {problem}", l.escape_debug()),
                );
            }
        }
        if self
            .max_lifetime
            .is_some_and(|d| d < Duration::from_secs(60))
        {
            p.add(at("max_lifetime"), "must be at least 1m");
        }
    }

    /// Every label a runner of this pool registers with: the pool's own first, then the extras.
    #[must_use]
    pub fn runner_labels(&self, label: &str) -> Vec<String> {
        let mut labels = vec![label.to_owned()];
        for l in &self.extra_labels {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        labels
    }
}

impl ServerConfig {
    fn validate(&self, p: &mut Problems) {
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            p.add(
                "server.max_connections",
                format!("must be 1 to {MAX_CONNECTIONS}"),
            );
        }
        for (field, d) in [
            ("server.header_timeout", self.header_timeout),
            ("server.body_timeout", self.body_timeout),
        ] {
            if d < Duration::from_secs(1) || d > MAX_HTTP_TIMEOUT {
                p.add(field, "must be 1s to 1h");
            }
        }
    }
}

/// The most `server.max_connections` accepted.
pub const MAX_CONNECTIONS: u32 = 65_536;
/// The longest `server.header_timeout` or `server.body_timeout` accepted.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(3600);

impl Timeouts {
    fn validate(&self, p: &mut Problems) {
        for (field, d) in [
            ("timeouts.launch", self.launch),
            ("timeouts.registration", self.registration),
            ("timeouts.idle", self.idle),
            ("timeouts.offline_grace", self.offline_grace),
            ("timeouts.stuck", self.stuck),
            ("timeouts.max_lifetime", self.max_lifetime),
            ("timeouts.orphan_min_age", self.orphan_min_age),
            ("timeouts.resync", self.resync),
            ("timeouts.retry_failed", self.retry_failed),
        ] {
            if d.is_zero() {
                p.add(field, "must be longer than zero");
            }
        }
        if self.boot > self.registration {
            p.add(
                "timeouts.boot",
                "must not be longer than timeouts.registration (a runner not online by then is retired)",
            );
        }
        if !self.resync.is_zero() && self.resync < MIN_RESYNC {
            p.add("timeouts.resync", "must be at least 1s");
        }
        if self.max_lifetime <= self.registration {
            p.add(
                "timeouts.max_lifetime",
                "must be longer than timeouts.registration",
            );
        }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            problem: problem.into(),
        });
    }

    fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(self.0))
        }
    }
}

/// A complete example configuration, used by docs, `make demo` and tests.
pub const EXAMPLE: &str = include_str!("../../examples/config.yaml");

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> String {
        "cluster_id: prod\n\
         gitea:\n  url: https://git.example.com\n\
         store:\n  table: tinqs-ci\n\
         pools:\n  go:\n    instance_types: [c7a.large]\n    subnets: [subnet-1]\n    ami: ami-1\n"
            .to_owned()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::parse(&minimal()).expect("valid");
        assert_eq!(c.timeouts, Timeouts::default());
        assert_eq!(c.timeouts.registration, Duration::from_secs(600));
        assert_eq!(c.safety.max_attempts, 3);
        assert_eq!(c.gitea.token_env, "GITEA_TOKEN");
        assert_eq!(c.gitea.scope, RunnerScope::Instance);
        assert_eq!(c.gitea.demand, DemandSource::Jobs);
        assert_eq!(c.pools["go"].market, Market::Spot);
        assert_eq!(c.max_lifetime("go"), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn example_config_is_valid() {
        let c = Config::parse(EXAMPLE).expect("the shipped example must validate");
        assert!(c.pools.len() >= 2);
    }

    #[test]
    fn literal_secret_is_refused_with_a_hint() {
        let text = minimal().replace("  url:", "  token: abc123\n  url:");
        let err = Config::parse(&text)
            .expect_err("literal token refused")
            .to_string();
        assert!(err.contains("token_env"), "{err}");
        assert!(
            !err.contains("abc123"),
            "the secret must not be echoed: {err}"
        );
    }

    #[test]
    fn every_value_problem_is_named_by_field() {
        let text = minimal()
            .replace("subnet-1", "sn-1")
            .replace("ami-1", "my-image")
            .replace("cluster_id: prod", "cluster_id: Prod_1");
        let ConfigError::Invalid(problems) = Config::parse(&text).expect_err("invalid") else {
            panic!("expected value problems");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["cluster_id", "pools.go.subnets[0]", "pools.go.ami"]
        );
    }

    #[test]
    fn bad_duration_and_unknown_field_name_the_place() {
        let text = minimal() + "timeouts:\n  idle: ten minutes\n";
        let err = Config::parse(&text).expect_err("bad duration").to_string();
        assert!(
            err.contains("timeouts.idle") && err.contains("not a duration"),
            "{err}"
        );
        let text = minimal() + "safety:\n  max_lanches_per_pass: 3\n";
        let err = Config::parse(&text).expect_err("typo").to_string();
        assert!(err.contains("max_lanches_per_pass"), "{err}");
    }

    #[test]
    fn a_boot_allowance_past_the_registration_timeout_is_refused() {
        let text = minimal() + "timeouts:\n  registration: 3m\n  boot: 4m\n";
        let ConfigError::Invalid(problems) = Config::parse(&text).expect_err("invalid") else {
            panic!("expected value problems");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "timeouts.boot");
        let text = minimal() + "timeouts:\n  boot: 0s\n";
        let c = Config::parse(&text).expect("0s: booting runners never stand in");
        assert_eq!(c.timeouts.boot, Duration::ZERO);
        assert_eq!(Timeouts::default().boot, Duration::from_secs(120));
    }

    #[test]
    fn scopes_parse_and_print() {
        for s in ["instance", "org:acme", "repo:acme/app"] {
            assert_eq!(RunnerScope::parse(s).expect(s).to_string(), s);
        }
        assert_eq!(
            RunnerScope::parse("org:acme").expect("org").api_prefix(),
            "/api/v1/orgs/acme/actions"
        );
        assert!(RunnerScope::parse("repo:acme").is_err());
        assert!(RunnerScope::parse("team:x").is_err());
    }

    #[test]
    fn a_pool_also_listed_as_foreign_is_refused() {
        let text = minimal() + "foreign_labels: [go]\n";
        let err = Config::parse(&text).expect_err("conflict").to_string();
        assert!(
            err.contains("pools.go: is also listed in foreign_labels"),
            "{err}"
        );
    }

    #[test]
    fn a_pool_defined_twice_is_refused_naming_it() {
        let text = minimal()
            + "  go:\n    instance_types: [c7a.xlarge]\n    subnets: [subnet-2]\n    ami: ami-2\n";
        let err = Config::parse(&text)
            .expect_err("duplicate pool")
            .to_string();
        assert!(err.contains("pool `go` is defined twice"), "{err}");
    }

    #[test]
    fn a_pool_name_render_user_data_refuses_is_refused() {
        for (label, yaml) in [("go:x", "'go:x'"), ("go\u{1b}", "\"go\\e\"")] {
            let text = minimal().replace("  go:\n", &format!("  {yaml}:\n"));
            let input = crate::userdata::UserDataInput {
                gitea_url: "https://git.example.com".into(),
                pool: label.into(),
                labels: vec![label.into()],
                max_lifetime: Duration::from_secs(3600),
                runner_name: crate::RunnerName::observed("tq-prod-job-1-1-a1"),
                registration: crate::userdata::Registration::Preregistered {
                    id: 1,
                    uuid: "3f2b6c1e-8a4d-4b9e-9c7f-1d2e3f4a5b6c".into(),
                    token: crate::secret::Secret::new("0123456789abcdef"),
                },
                cache_url: None,
            };
            assert!(crate::userdata::render(&input).is_err(), "{label:?}");
            let err = Config::parse(&text).expect_err(label).to_string();
            assert!(
                err.contains("a pool label must be one word with no spaces, commas, colons"),
                "{err}"
            );
        }
    }

    #[test]
    fn credentials_in_the_gitea_url_are_refused_and_not_echoed() {
        for url in [
            "https://admin:hunter2secret@git.example.com",
            "http://hunter2secret@git.example.com/sub",
            "ftp://admin:hunter2secret@git.example.com",
        ] {
            let text = minimal().replace("https://git.example.com", url);
            let err = Config::parse(&text).expect_err(url).to_string();
            assert!(err.contains("gitea.url"), "{err}");
            assert!(!err.contains("hunter2secret"), "echoed: {err}");
        }
        let text = minimal().replace("https://git.example.com", "https://u:p@git.example.com");
        let err = Config::parse(&text).expect_err("credentials").to_string();
        assert!(err.contains("must not hold credentials"), "{err}");
        let ok = minimal().replace("git.example.com", "git.example.com/gitea?x=a@b");
        Config::parse(&ok).expect("an @ after the host is no credential");
    }

    #[test]
    fn resync_and_retention_have_minimums() {
        // A file holds whole seconds only; a configuration built in code (the simulator's)
        // can hold less.
        let text = minimal().replace("table: tinqs-ci\n", "table: tinqs-ci\n  retention: 0s\n");
        let mut config: Config = serde_yaml_ng::from_str(&text).expect("the schema holds");
        config.timeouts.resync = Duration::from_millis(500);
        let ConfigError::Invalid(problems) = config.validate().expect_err("too short") else {
            panic!("expected value problems");
        };
        let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "store.retention: must be at least 1m",
                "timeouts.resync: must be at least 1s"
            ]
        );
        let text = minimal().replace("table: tinqs-ci\n", "table: tinqs-ci\n  retention: 1m\n")
            + "timeouts:\n  resync: 1s\n";
        Config::parse(&text).expect("the minimums themselves are accepted");
    }

    #[test]
    fn a_deeply_nested_file_is_refused_before_parsing() {
        let depth = 100_000;
        let text = format!("pools: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        assert!(text.len() > 200_000 && text.len() <= MAX_FILE_BYTES);
        let err = Config::parse(&text).expect_err("too deep").to_string();
        assert!(
            err.contains("line 1: collections ([…] or {…}) nested more than 32 deep"),
            "{err}"
        );
        let text = format!(
            "cluster_id: x\npools: {}{}\n",
            "{a: ".repeat(depth / 2),
            "}".repeat(depth / 2)
        );
        let err = Config::parse(&text).expect_err("too deep").to_string();
        assert!(err.contains("line 2: collections"), "{err}");
        // Brackets in quotes and comments are not nesting.
        let brackets = "[".repeat(MAX_FLOW_DEPTH + 1);
        let text =
            minimal() + &format!("foreign_labels: ['{brackets}', \"{brackets}\"] # {brackets}\n");
        Config::parse(&text).expect("quoted and commented brackets");
    }

    #[test]
    fn an_oversized_file_is_refused_before_parsing() {
        let text = minimal() + &"# padding\n".repeat(MAX_FILE_BYTES / 10);
        let err = Config::parse(&text).expect_err("too big").to_string();
        assert!(err.contains("may be at most 262144 bytes"), "{err}");
    }

    #[test]
    fn metrics_listen_is_optional_and_apart_from_listen() {
        assert_eq!(
            Config::parse(&minimal())
                .expect("valid")
                .server
                .metrics_listen,
            None
        );
        let text = minimal() + "server:\n  metrics_listen: 127.0.0.1:9090\n";
        let c = Config::parse(&text).expect("valid");
        assert_eq!(c.server.metrics_listen.as_deref(), Some("127.0.0.1:9090"));
        let text = minimal() + "server:\n  listen: 0.0.0.0:8080\n  metrics_listen: 0.0.0.0:8080\n";
        let err = Config::parse(&text).expect_err("same address").to_string();
        assert!(err.contains("server.metrics_listen: must differ"), "{err}");
    }

    #[test]
    fn a_long_list_of_problems_is_cut_short_when_printed() {
        // Found by fuzzing: 5,000 wrong instance types printed 5,000 lines.
        let types = vec!["go"; 5000].join(", ");
        let text = minimal().replace("[c7a.large]", &format!("[{types}]"));
        let err = Config::parse(&text).expect_err("not instance types");
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), 5000);
        let shown = err.to_string();
        assert_eq!(shown.lines().count(), MAX_PROBLEMS_SHOWN + 1, "{shown}");
        assert!(shown.starts_with("pools.go.instance_types[0]: `go` is not an instance type"));
        assert!(shown.ends_with("… and 4980 more problems"), "{shown}");
    }

    #[test]
    fn a_value_in_the_wrong_place_is_not_repeated_in_the_error() {
        // Found by fuzzing (model/tests/fuzz_inputs.rs): serde's messages quoted the whole
        // value, so a 70 KB string came back as a 70 KB error, and a token pasted under the
        // wrong key would have reached the log.
        let token = "ghp_0123456789abcdef0123456789abcdef01234567";
        for text in [
            minimal().replace(
                "  url: https://git.example.com",
                &format!("  url: x\n  demand: {token}"),
            ),
            minimal().replace(
                "  url: https://git.example.com",
                &format!("  url: x\n  scope: {token}"),
            ),
            minimal().replace(
                "ami: ami-1",
                &format!("ami: ami-1\n    max_instances: {token}"),
            ),
            minimal().replace(
                "cluster_id: prod",
                &format!("cluster_id: prod\naws: {token}"),
            ),
            minimal().replace(
                "cluster_id: prod",
                &format!("cluster_id: prod\naws: {}", "x".repeat(70_000)),
            ),
        ] {
            let err = Config::parse(&text)
                .expect_err("wrong type or value")
                .to_string();
            assert!(!err.contains(token) && err.len() < 300, "{err}");
            assert!(err.contains("not shown"), "{err}");
        }
    }

    /// Found by fuzzing (`TINQS_FUZZ_SEED=21` in model/tests/fuzz_inputs.rs): a pool named
    /// `"` put an unclosed quote before serde's `unknown field` message, the search for
    /// quoted values stopped there, and an 8,000-character field name came back whole.
    #[test]
    fn a_quote_in_a_key_does_not_hide_a_long_value_after_it() {
        let field = "x".repeat(8_000);
        for pool in ["'\"'", "'`'", "'a\"b'"] {
            let text = format!("{}  {pool}:\n    ? {field}\n    : 1\n", minimal());
            let err = Config::parse(&text).expect_err("unknown field").to_string();
            assert!(err.len() < 400, "{} bytes: {}", err.len(), &err[..400]);
            assert!(err.contains("unknown field"), "{err}");
        }
    }

    /// Found by fuzzing (`TINQS_FUZZ_SEED=118` in model/tests/fuzz_inputs.rs): `5ms` (a `5m`
    /// with a stray letter) was taken as five milliseconds, used as such, and written back as
    /// `0s`, which the file then refused. A fraction of a second is refused where it is read.
    #[test]
    fn a_duration_with_a_fraction_of_a_second_is_refused_by_name() {
        for (field, text) in [
            ("timeouts", "timeouts:\n  orphan_min_age: 5ms\n"),
            ("timeouts", "timeouts:\n  resync: 1500ms\n"),
            // serde names the mapping and the line for a value read by a helper.
            (
                "store: `2s 1ns`",
                "store:\n  table: t\n  retention: 2s 1ns\n",
            ),
            ("server: `10.5s`", "server:\n  header_timeout: 10.5s\n"),
        ] {
            let config = if field.starts_with("store") {
                minimal().replace("store:\n  table: tinqs-ci\n", text)
            } else {
                format!("{}{text}", minimal())
            };
            let err = Config::parse(&config).expect_err(text).to_string();
            assert!(err.contains(field), "{err}");
            assert!(err.contains("whole number of seconds"), "{err}");
        }
        let config = format!("{}timeouts:\n  resync: 2m 30s\n", minimal());
        let parsed = Config::parse(&config).expect("whole seconds");
        assert_eq!(parsed.timeouts.resync, Duration::from_secs(150));
        let again = serde_yaml_ng::to_string(&parsed).expect("prints");
        assert_eq!(Config::parse(&again).expect("reads back"), parsed);
    }

    #[test]
    fn events_queue_url_is_optional_and_a_url() {
        assert_eq!(
            Config::parse(&minimal())
                .expect("valid")
                .aws
                .events_queue_url,
            None
        );
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/tinqs-ci-events";
        let text = minimal() + &format!("aws:\n  events_queue_url: {url}\n");
        let c = Config::parse(&text).expect("valid");
        assert_eq!(c.aws.events_queue_url.as_deref(), Some(url));
        let text = minimal() + "aws:\n  events_queue_url: tinqs-ci-events\n";
        let err = Config::parse(&text)
            .expect_err("a name, not a URL")
            .to_string();
        assert!(
            err.contains("aws.events_queue_url: must be an SQS queue URL"),
            "{err}"
        );
    }

    #[test]
    fn the_cache_needs_its_listener_and_names_each_bad_value() {
        let with_cache = |server: &str, cache: &str| minimal() + server + cache;
        let listen = "server:\n  cache_listen: 0.0.0.0:8081\n";
        let section = "cache:\n  bucket: ci-cache\n  url: http://10.0.0.5:8081/\n";
        let c = Config::parse(&with_cache(listen, section)).expect("valid");
        let cache = c.cache.expect("cache");
        assert_eq!(cache.url, "http://10.0.0.5:8081");
        assert_eq!(cache.max_repo_size, crate::cache::DEFAULT_MAX_REPO_SIZE);
        assert_eq!(cache.expiry, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.server.cache_listen.as_deref(), Some("0.0.0.0:8081"));

        let err = Config::parse(&with_cache("", section))
            .expect_err("no listener")
            .to_string();
        assert!(err.contains("cache: needs server.cache_listen"), "{err}");
        let off = Config::parse(&with_cache(listen, "")).expect("a listener alone is valid");
        assert!(off.cache.is_none(), "and leaves the cache off");

        let bad = "cache:\n  bucket: Bad_Bucket\n  prefix: /abs\n  url: http://u:secretpw@h\n  \
                   max_repo_size: 1KB\n  expiry: 10m\n";
        let ConfigError::Invalid(problems) =
            Config::parse(&with_cache(listen, bad)).expect_err("bad values")
        else {
            panic!("expected value problems");
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "cache.bucket",
                "cache.prefix",
                "cache.url",
                "cache.max_repo_size",
                "cache.expiry"
            ]
        );
        assert!(!format!("{problems:?}").contains("secretpw"));
        let err = Config::parse(&with_cache(
            listen,
            &section.replace("url:", "max_repo_size: lots\n  url:"),
        ))
        .expect_err("bad size")
        .to_string();
        assert!(
            err.contains("cache.max_repo_size") && err.contains("not a size"),
            "{err}"
        );
        let same = "server:\n  cache_listen: 0.0.0.0:8080\n";
        let err = Config::parse(&with_cache(same, section))
            .expect_err("same")
            .to_string();
        assert!(err.contains("server.cache_listen: must differ"), "{err}");
    }

    #[test]
    fn the_examples_warm_block_is_valid_once_uncommented() {
        let text: Vec<String> = EXAMPLE
            .lines()
            .map(
                |l| match (l.strip_prefix("    # warm:"), l.strip_prefix("    #   ")) {
                    (Some(_), _) => "    warm:".to_owned(),
                    (_, Some(rest)) if !rest.starts_with('#') => format!("      {rest}"),
                    _ => match l.strip_prefix("    # hourly_price:") {
                        Some(rest) => format!("    hourly_price:{rest}"),
                        None => l.to_owned(),
                    },
                },
            )
            .collect();
        let c = Config::parse(&text.join("\n")).expect("valid once uncommented");
        let warm = c.pools["go"].warm.as_ref().expect("the block is there");
        assert_eq!((warm.min_idle, warm.schedule.len()), (2, 1));
        assert_eq!(
            c.pools["go"].hourly_price,
            Some(HourlyPrice::from_micros(30_000))
        );
    }

    #[test]
    fn an_hourly_price_is_read_in_dollars_and_anything_else_is_named() {
        let c = Config::parse(&(minimal() + "    hourly_price: 0.0312\n")).expect("valid");
        let price = c.pools["go"].hourly_price.expect("set");
        assert_eq!(price.micros(), 31_200);
        assert_eq!(price.to_string(), "$0.0312/h");
        assert_eq!(price.times(3).to_string(), "$0.0936/h");
        assert_eq!(
            Config::parse(&(minimal() + "    hourly_price: 2\n"))
                .expect("a whole number of dollars")
                .pools["go"]
                .hourly_price
                .map(|p| p.to_string()),
            Some("$2.00/h".into())
        );
        assert_eq!(
            Config::parse(&minimal()).expect("valid").pools["go"].hourly_price,
            None
        );
        for bad in ["-0.5", "1000.01", ".nan", ".inf", "cheap", "[1]"] {
            let err = Config::parse(&(minimal() + &format!("    hourly_price: {bad}\n")))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("hourly_price"), "{bad}: {err}");
        }
        let err = Config::parse(&(minimal() + "    hourly_price: -1\n"))
            .expect_err("negative")
            .to_string();
        assert!(err.contains("from 0 to 1000"), "{err}");
        for (micros, shown) in [(0, "$0.00/h"), (1, "$0.000001/h"), (1_500_000, "$1.50/h")] {
            assert_eq!(HourlyPrice::from_micros(micros).to_string(), shown);
        }
    }

    #[test]
    fn warm_pools_parse_and_their_mistakes_are_named() {
        let warm = "    warm:\n      min_idle: 2\n      schedule: ['Mon-Fri 07:00-19:00 Europe/Berlin']\n      max_idle_age: 2h\n";
        let c = Config::parse(&(minimal() + warm)).expect("valid");
        let w = c.pools["go"].warm.as_ref().expect("warm");
        assert_eq!(w.min_idle, 2);
        assert_eq!(w.max_idle_age, Some(Duration::from_secs(7200)));
        let policy = crate::plan::Policy::from_config(&c, true);
        let warm = policy.pools[0].warm.as_ref().expect("warm policy");
        assert_eq!(warm.schedule.len(), 1);
        // Thursday 2026-01-01 10:00 UTC is 11:00 in Berlin: inside; 20:00 UTC is outside.
        let ten = crate::time::Timestamp::parse("2026-01-01T10:00:00Z").expect("time");
        assert_eq!(warm.min_idle_at(ten), 2);
        assert_eq!(
            warm.min_idle_at(ten.plus(Duration::from_secs(10 * 3600))),
            0
        );

        let bad = "    max_instances: 3\n    warm:\n      min_idle: 4\n      schedule: ['Mon-Fri 07:00-19:00 Mars/Olympus']\n      max_idle_age: 7h\n";
        let ConfigError::Invalid(problems) = Config::parse(&(minimal() + bad)).expect_err("bad")
        else {
            panic!("expected value problems");
        };
        let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert_eq!(
            found[0],
            "pools.go.warm.min_idle: must not exceed pools.go.max_instances (3)"
        );
        assert!(
            found[1].starts_with("pools.go.warm.schedule[0]: `Mars/Olympus` is not a time zone"),
            "{found:#?}"
        );
        assert_eq!(
            found[2],
            "pools.go.warm.max_idle_age: must be shorter than the pool's max lifetime (6h)"
        );
        let typo = "    warm:\n      min_idel: 1\n";
        let err = Config::parse(&(minimal() + typo))
            .expect_err("typo")
            .to_string();
        assert!(err.contains("min_idel"), "{err}");
    }

    #[test]
    fn secret_env_must_be_a_variable_name() {
        let text = minimal().replace("  url:", "  token_env: 'ghp_abc def'\n  url:");
        let err = Config::parse(&text).expect_err("bad env name").to_string();
        assert!(err.contains("gitea.token_env"), "{err}");
    }
}
