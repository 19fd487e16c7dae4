//! Building the real ports from a configuration file and the environment.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use model::config::Config;
use model::secret::Secret;

use crate::clock::{Clock, SystemClock};
use crate::fleet::ec2::{Ec2Fleet, Ec2Settings, SdkEc2};
use crate::forge::gitea::GiteaForge;
use crate::forge::ForgeVersion;
use crate::metrics::Metrics;
use crate::notices::{NoticeBook, NoticeReceiver, SqsQueue};
use crate::reconcile::{holder_name, Limits, LoopFeatures, Reconciler};
use crate::store::dynamo::DynamoStore;

/// Reads and validates a configuration file.
///
/// # Errors
/// When the file cannot be read or is invalid (every problem is named).
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Config::parse(&text).with_context(|| format!("{} is not a valid configuration", path.display()))
}

/// Reads a secret from the environment variable `var`; the error names the variable and
/// what it is for, never a value.
///
/// # Errors
/// When the variable is unset or empty.
pub fn secret_from_env(var: &str, what: &str) -> anyhow::Result<Secret> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Secret::new(v.trim())),
        _ => anyhow::bail!("the environment variable {var} ({what}) is not set"),
    }
}

/// The DynamoDB store of `config`.
pub async fn store(config: &Config) -> DynamoStore {
    let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
    DynamoStore::from_conf(&conf, &config.store)
}

/// Everything a pass needs, connected.
pub struct Connected {
    /// The reconciler over the real ports.
    pub reconciler: Reconciler,
    /// The Gitea client (also used by the webhook in push mode).
    pub forge: Arc<GiteaForge>,
    /// The Gitea version seen at start-up.
    pub version: ForgeVersion,
    /// The receiver of EC2's notices, when `aws.events_queue_url` is set; it records into
    /// the reconciler's book.
    pub notices: Option<NoticeReceiver>,
}

/// Connects to DynamoDB, EC2 and Gitea (checking the Gitea version against the
/// configuration) and builds the reconciler.
///
/// # Errors
/// When the API token is missing, or Gitea cannot be reached or is too old.
pub async fn connect(config: Config) -> anyhow::Result<Connected> {
    let token = secret_from_env(&config.gitea.token_env, "the Gitea API token")?;
    let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
    // One clock for every decision the controller makes, the store's and the fleet's included.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(DynamoStore::from_conf(&conf, &config.store).with_clock(clock.clone()));
    let fleet = Arc::new(Ec2Fleet::with_settings(
        SdkEc2::from_conf(&conf),
        &config.cluster_id,
        Ec2Settings::default(),
        clock.clone(),
    ));
    let (forge, version, features) = GiteaForge::connect(&config.gitea, token)
        .await
        .with_context(|| format!("cannot use Gitea at {}", config.gitea.url))?;
    let forge = Arc::new(forge);
    let features = LoopFeatures::from_forge(&config, features);
    let book = NoticeBook::default();
    let notices = config.aws.events_queue_url.as_deref().map(|url| {
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&conf), url);
        NoticeReceiver::new(Arc::new(queue), book.clone())
    });
    let reconciler = Reconciler {
        store,
        fleet,
        forge: forge.clone(),
        config,
        features,
        clock,
        limits: Limits::default(),
        metrics: Metrics::new(),
        holder: holder_name(),
        notices: book,
        disabled: crate::reconcile::DisabledBook::default(),
    };
    Ok(Connected {
        reconciler,
        forge,
        version,
        notices,
    })
}

/// A current-thread runtime for one command.
///
/// # Errors
/// When the runtime cannot start.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
