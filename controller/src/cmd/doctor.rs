//! `tinqs-ci doctor --config FILE`: checks that everything the controller needs is in place,
//! and says how to fix what is not.
//!
//! Each check is printed as `ok`, `PROBLEM` (with a fix) or `skipped` (with why). The exit code
//! is 0 when no check found a problem, 1 otherwise. Secrets are checked for presence only;
//! their values are never printed.
//!
//! Nothing is changed: EC2 permissions are probed with `DryRun` requests (EC2 answers
//! `DryRunOperation` when the call would have been allowed, `UnauthorizedOperation` when it
//! would not), DynamoDB write permissions with conditional writes whose condition cannot hold
//! (refused on the condition means the write was allowed). The one Gitea call that is not a
//! read is the registration-token request (a `POST`): Gitea returns the scope's existing token
//! and creates one only when none exists; it never rotates it.
//!
//! The checks are separate functions over the ports ([`check_gitea`] over any
//! [`Forge`], [`check_ec2`] over any [`Ec2Api`]) so they are tested against the fakes and moto.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials as _;
use aws_sdk_dynamodb::types::{
    AttributeValue, IndexStatus, KeyType, TableStatus, TimeToLiveStatus,
};
use aws_sdk_ec2::operation::describe_images::builders::DescribeImagesInputBuilder;
use aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesInputBuilder;
use aws_sdk_ec2::operation::terminate_instances::builders::TerminateInstancesInputBuilder;
use aws_sdk_ec2::types::Filter;
use clap::Args;
use model::config::{Config, DemandSource, RunnerScope};
use model::secret::Secret;
use model::{tags, InstanceId, RunId, RunnerName};
use serde::Serialize;

use crate::aws::ApiError;
use crate::fleet::ec2::{map_instance, run_input, Ec2Api, SdkEc2};
use crate::fleet::{offerings, LaunchRequest};
use crate::forge::{Forge, ForgeError, ForgeVersion};
use crate::notices::SqsQueue;
use crate::store::schema;

/// How long any one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the IAM policy is documented, for fixes.
const POLICY_DOC: &str = "wiki/DevOps-Reference.md#iam-policy-for-the-controller";

/// `doctor --config FILE`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Something to fix.
    Problem,
    /// Not checked, and why is in the detail (a check it depends on failed, or it does not
    /// apply to this configuration).
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`gitea version`, `ec2 RunInstances (pool go)`…).
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (problems only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    #[must_use]
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A problem and its fix.
    #[must_use]
    pub fn problem(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            verdict: Verdict::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check not made, and why.
    #[must_use]
    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            verdict: Verdict::Skipped,
            detail: why.into(),
            fix: None,
        }
    }

    /// Whether this check found a problem.
    #[must_use]
    pub fn is_problem(&self) -> bool {
        self.verdict == Verdict::Problem
    }
}

/// Whether no check found a problem.
#[must_use]
pub fn all_passed(checks: &[Check]) -> bool {
    !checks.iter().any(Check::is_problem)
}

/// The checks as a person reads them, with a closing count.
#[must_use]
pub fn text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let verdict = match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Problem => "PROBLEM",
            Verdict::Skipped => "skipped",
        };
        let _ = writeln!(out, "{verdict:<8} {}: {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{:<8} fix: {fix}", "");
        }
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "{} checks: {} ok, {} problem{}, {} skipped.",
        checks.len(),
        count(Verdict::Ok),
        count(Verdict::Problem),
        if count(Verdict::Problem) == 1 {
            ""
        } else {
            "s"
        },
        count(Verdict::Skipped)
    );
    out
}

/// Runs every check and prints them; exit 0 when all passed, 1 otherwise.
///
/// # Errors
/// When the async runtime cannot start (every other failure is a check's result).
pub fn run(args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    let rt = crate::wiring::runtime()?;
    let checks = rt.block_on(diagnose(&args.config, &|var: &str| std::env::var(var).ok()));
    print!("{}", text(&checks));
    Ok(if all_passed(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every check against the real ports: configuration, secrets in the environment (read
/// through `env`), AWS credentials, EC2, DynamoDB and Gitea.
pub async fn diagnose(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    let (check, config) = check_config(path);
    let mut checks = vec![check];
    let Some(config) = config else {
        checks.push(Check::skipped(
            "everything else",
            "needs a valid configuration",
        ));
        return checks;
    };
    checks.extend(check_secrets(&config, env));
    checks.push(check_spool_dir(Path::new(&config.server.spool_dir)));
    let conf = crate::aws::sdk_config(config.aws.region.as_deref()).await;
    checks.extend(check_aws(&conf, &config).await);
    match env(&config.gitea.token_env).filter(|t| !t.trim().is_empty()) {
        None => checks.push(Check::skipped(
            "gitea",
            format!("needs the API token in {}", config.gitea.token_env),
        )),
        Some(token) => {
            match crate::forge::GiteaForge::new(&config.gitea, Secret::new(token.trim())) {
                Ok(forge) => checks.extend(check_gitea(&forge, &config).await),
                Err(e) => checks.push(Check::problem(
                    "gitea client",
                    e.to_string(),
                    "fix gitea.url (an http or https URL) or the token",
                )),
            }
        }
    }
    checks
}

/// Reads and validates the configuration file.
#[must_use]
pub fn check_config(path: &Path) -> (Check, Option<Config>) {
    match crate::wiring::load_config(path) {
        Ok(config) => {
            let check = Check::ok(
                "config",
                format!(
                    "{} is valid: cluster {}, {} pool{} ({}), scope {}, demand {}",
                    path.display(),
                    config.cluster_id,
                    config.pools.len(),
                    if config.pools.len() == 1 { "" } else { "s" },
                    config.pools.keys().cloned().collect::<Vec<_>>().join(", "),
                    config.gitea.scope,
                    demand_name(config.gitea.demand)
                ),
            );
            (check, Some(config))
        }
        Err(e) => (
            Check::problem(
                "config",
                format!("{e:#}"),
                format!(
                    "correct the fields named above (`tinqs-ci config validate {}` lists them all); \
                     examples/config.yaml shows every field",
                    path.display()
                ),
            ),
            None,
        ),
    }
}

fn demand_name(d: DemandSource) -> &'static str {
    match d {
        DemandSource::Jobs => "jobs",
        DemandSource::Push => "push",
    }
}

/// The Gitea API token and the webhook secret are set in the environment (read through
/// `env`). Values are never printed.
#[must_use]
pub fn check_secrets(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    let one = |var: &str, what: &str, fix: &str| {
        let name = format!("env {var}");
        match env(var) {
            Some(v) if !v.trim().is_empty() => {
                let len = v.trim().chars().count();
                if what == "webhook secret" && len < super::serve::MIN_WEBHOOK_SECRET_LEN {
                    Check::problem(
                        name,
                        format!("set ({what}), but only {len} characters long"),
                        format!("use a random secret of at least {} characters, in Gitea's webhook and here", super::serve::MIN_WEBHOOK_SECRET_LEN),
                    )
                } else {
                    Check::ok(name, format!("set ({what}; value not shown)"))
                }
            }
            Some(_) => Check::problem(name, format!("set but empty ({what})"), fix.to_owned()),
            None => Check::problem(name, format!("not set ({what})"), fix.to_owned()),
        }
    };
    vec![
        one(
            &config.gitea.token_env,
            "Gitea API token",
            &format!(
                "create a token in Gitea ({}) and export it as {} (the name is gitea.token_env)",
                token_need(&config.gitea.scope),
                config.gitea.token_env
            ),
        ),
        one(
            &config.gitea.webhook_secret_env,
            "webhook secret",
            &format!(
                "export {} with the secret set on the Gitea webhook (the name is gitea.webhook_secret_env); \
                 `serve` refuses to start without it",
                config.gitea.webhook_secret_env
            ),
        ),
    ]
}

/// What token the scope needs, in words (see `wiki/Gitea.md#the-api-token`): who the token's
/// user must be and the token scope.
#[must_use]
pub fn token_need(scope: &RunnerScope) -> String {
    match scope {
        RunnerScope::Instance => {
            "scope `instance` needs a site administrator's token with write:admin".to_owned()
        }
        RunnerScope::Org(org) => format!(
            "scope `org:{org}` needs a token of an owner of organization {org} with write:organization"
        ),
        RunnerScope::Repo { owner, name } => format!(
            "scope `repo:{owner}/{name}` needs a token of the owner of {owner}/{name} (the user {owner}, \
             an owner of organization {owner}, or a site administrator; a repository administrator \
             is not enough) with write:repository"
        ),
    }
}

/// The Gitea calls doctor makes with the token, each at the configured scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCall {
    /// `GET {scope}/runners`.
    ListRunners,
    /// `POST {scope}/runners/registration-token`.
    RegistrationToken,
    /// `GET {scope}/jobs?status=queued` (Gitea 1.25+).
    ListJobs,
}

impl TokenCall {
    fn what(self) -> &'static str {
        match self {
            TokenCall::ListRunners => "list runners",
            TokenCall::RegistrationToken => "request the registration token",
            TokenCall::ListJobs => "list jobs",
        }
    }

    /// Gitea asks a token for write access on every method but `GET`.
    fn writes(self) -> bool {
        self == TokenCall::RegistrationToken
    }
}

/// Who Gitea lets make `call` at `scope` on `version`, in words. Runner routes need the
/// repository owner (an owner of the owning organization, a member of one of its teams with
/// administrator access, or a site administrator also count; a repository administrator
/// does not), an organization owner, or a site administrator; the jobs list needs the same
/// on 1.25 and only read access from 1.26. See `wiki/Gitea-Behaviour.md#permissions`.
#[must_use]
pub fn role_needed(scope: &RunnerScope, call: TokenCall, version: ForgeVersion) -> String {
    let relaxed_jobs = call == TokenCall::ListJobs && version.can_disable_runners();
    match scope {
        RunnerScope::Instance => "a site administrator".to_owned(),
        RunnerScope::Org(org) if relaxed_jobs => {
            format!("a member of organization {org} (or a site administrator)")
        }
        RunnerScope::Org(org) => {
            format!("an owner of organization {org} (or a site administrator)")
        }
        RunnerScope::Repo { owner, name } if relaxed_jobs => format!(
            "a user who may read the Actions of {owner}/{name} (Gitea 1.26+ needs no more for the jobs list)"
        ),
        RunnerScope::Repo { owner, name } => format!(
            "the owner of {owner}/{name}: the user {owner}, an owner of organization {owner} \
             (or a member of one of its teams with administrator access to the repository), or a \
             site administrator; a repository administrator (collaborator) is not enough"
        ),
    }
}

/// The token scope `call` needs at `scope`, and the one the controller needs for all its calls.
fn token_scope_needed(scope: &RunnerScope, call: TokenCall) -> (String, &'static str) {
    let category = match scope {
        RunnerScope::Instance => "admin",
        RunnerScope::Org(_) => "organization",
        RunnerScope::Repo { .. } => "repository",
    };
    let controller = match scope {
        RunnerScope::Instance => "write:admin",
        RunnerScope::Org(_) => "write:organization",
        RunnerScope::Repo { .. } => "write:repository",
    };
    let level = if call.writes() { "write" } else { "read" };
    (format!("{level}:{category}"), controller)
}

/// The fix for a 403 on `call`: the role the token's user needs at the configured scope and the
/// token scope, led by what Gitea's answer points at (a missing token scope, or the user's
/// role). Never holds the token: it is built from the scope, the call and Gitea's message,
/// which the client has already scrubbed.
#[must_use]
pub fn forbidden_fix(
    scope: &RunnerScope,
    call: TokenCall,
    version: ForgeVersion,
    gitea_says: &str,
) -> String {
    let (call_scope, controller_scope) = token_scope_needed(scope, call);
    // The client's message is `METHOD PATH: HTTP 403[: Gitea's message]`; only Gitea's own
    // words say why (a path can hold `admin` or `owner`).
    let says = gitea_says.to_ascii_lowercase();
    let says = says
        .rsplit_once("http 403")
        .map_or(says.as_str(), |(_, m)| m);
    let lead = if says.contains("scope") {
        "the token lacks a token scope"
    } else if says.contains("owner") || says.contains("admin") || says.contains("member") {
        "the token's user lacks the role"
    } else {
        "the token's user lacks the role or the token lacks a token scope"
    };
    format!(
        "{lead}. To {} at scope {scope}, Gitea {version} requires {}. The token needs at least \
         {call_scope} for this call, and the controller needs {controller_scope} (a read-only \
         token can list runners but not register or delete them). Create such a token as such a \
         user and export it in the variable named by gitea.token_env (see \
         wiki/Gitea-Behaviour.md#permissions)",
        call.what(),
        role_needed(scope, call, version),
    )
}

/// The spool directory is writable: a probe file is created and removed; the detail gives the
/// spool's depth (events waiting) and its set-aside count, and events set aside in its
/// `dead-letter/` folder are a problem. A directory that does not exist yet is skipped
/// (`serve` creates it; doctor creates nothing).
#[must_use]
pub fn check_spool_dir(dir: &Path) -> Check {
    let name = "spool dir";
    let fix = format!(
        "create {} writable by the controller's user (server.spool_dir), e.g. \
         `install -d -o tinqs-ci -m 0750 {}`",
        dir.display(),
        dir.display()
    );
    if !dir.exists() {
        let ancestor = dir
            .ancestors()
            .skip(1)
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"));
        return Check::skipped(
            name,
            format!(
                "{} does not exist yet: `serve` creates it, which needs write access to {} \
                 (under systemd, StateDirectory=tinqs-ci provides /var/lib/tinqs-ci)",
                dir.display(),
                ancestor.display()
            ),
        );
    }
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    match std::fs::write(&probe, b"probe") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            let dead = crate::spool::DEAD_LETTER;
            match crate::spool::census(dir) {
                Ok(c) if c.dead_letter > 0 => Check::problem(
                    name,
                    format!(
                        "{} is writable; {} event(s) waiting, {} set aside in {dead}/ (they \
                         can never apply as they are)",
                        dir.display(),
                        c.pending,
                        c.dead_letter
                    ),
                    format!(
                        "read the WARN logged for each; move a file from {}/{dead}/ back into {} \
                         to replay it, or delete it to drop it (wiki/Operations.md)",
                        dir.display(),
                        dir.display()
                    ),
                ),
                Ok(c) => Check::ok(
                    name,
                    format!(
                        "{} is writable; {} event(s) waiting, 0 set aside",
                        dir.display(),
                        c.pending
                    ),
                ),
                Err(e) => Check::problem(name, e.to_string(), fix),
            }
        }
        Err(e) => Check::problem(name, format!("cannot write in {}: {e}", dir.display()), fix),
    }
}

// ---- Gitea ---------------------------------------------------------------------------------

/// Gitea: reachable, its version and the features it enables, whether the configured demand
/// mode is supported, and whether the token may list runners, fetch the registration token
/// and (jobs mode, 1.25+) list queued jobs at the configured scope.
pub async fn check_gitea(forge: &dyn Forge, config: &Config) -> Vec<Check> {
    let g = &config.gitea;
    let mut out = Vec::new();
    let version = match timed(forge.version()).await {
        Ok(v) => {
            out.push(Check::ok(
                "gitea version",
                format!("{} answers: Gitea {v}", g.url),
            ));
            v
        }
        Err(e) => {
            out.push(forge_problem("gitea version", &e, config));
            out.push(Check::skipped(
                "gitea features and token",
                "Gitea did not answer its version",
            ));
            return out;
        }
    };
    let features = match version.check_supported(g) {
        Ok(f) => f,
        Err(e) => {
            out.push(Check::problem(
                "gitea features",
                e.to_string(),
                format!("upgrade Gitea to {} or later", ForgeVersion::MINIMUM),
            ));
            return out;
        }
    };
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut detail = format!(
        "runner API and ephemeral runners: {}; queued-jobs backfill (1.25+): {}; disabling idle runners (1.26+): {}",
        yes(features.runner_api),
        yes(features.queued_jobs),
        yes(features.disable)
    );
    match g.demand {
        DemandSource::Jobs if !features.queued_jobs => detail.push_str(
            ". Demand `jobs` works, but without backfill a lost webhook leaves its job waiting until it is re-run; Gitea 1.25+ adds backfill",
        ),
        DemandSource::Jobs => detail.push_str(". Demand `jobs` is fully supported"),
        DemandSource::Push => detail.push_str(
            ". Demand `push` is supported; the token must also read the repositories' workflow files (read:repository)",
        ),
    }
    if !features.disable {
        detail.push_str("; idle runners are deregistered directly (no disable step)");
    }
    out.push(Check::ok("gitea features", detail));

    let ours = RunnerName::prefix(&config.cluster_id);
    match timed(forge.list_runners()).await {
        Ok(runners) => {
            let n_ours = runners.iter().filter(|r| r.name.starts_with(&ours)).count();
            out.push(Check::ok(
                "gitea token: list runners",
                format!(
                    "the token may list runners at scope {}: {} runner{}, {n_ours} of this cluster",
                    g.scope,
                    runners.len(),
                    if runners.len() == 1 { "" } else { "s" }
                ),
            ));
        }
        Err(e) => out.push(token_problem(
            "gitea token: list runners",
            TokenCall::ListRunners,
            version,
            &e,
            config,
        )),
    }
    match timed(forge.registration_token()).await {
        Ok(_) => out.push(Check::ok(
            "gitea token: registration token",
            format!(
                "the token may fetch the registration token of scope {} (needed to register runners; value not shown)",
                g.scope
            ),
        )),
        Err(e) => out.push(token_problem(
            "gitea token: registration token",
            TokenCall::RegistrationToken,
            version,
            &e,
            config,
        )),
    }
    if g.demand == DemandSource::Jobs && features.queued_jobs {
        match timed(forge.queued_jobs()).await {
            Ok(jobs) => out.push(Check::ok(
                "gitea token: queued jobs",
                format!(
                    "the token may list queued jobs at scope {}: {} waiting",
                    g.scope,
                    jobs.len()
                ),
            )),
            Err(e) => out.push(token_problem(
                "gitea token: queued jobs",
                TokenCall::ListJobs,
                version,
                &e,
                config,
            )),
        }
    }
    out
}

/// A failed token check: a 403 says who the token's user must be and which token scope it
/// needs for that call; anything else as [`forge_problem`].
fn token_problem(
    name: &str,
    call: TokenCall,
    version: ForgeVersion,
    e: &ForgeError,
    config: &Config,
) -> Check {
    match e {
        ForgeError::Forbidden(says) => Check::problem(
            name,
            e.to_string(),
            forbidden_fix(&config.gitea.scope, call, version, says),
        ),
        _ => forge_problem(name, e, config),
    }
}

/// A Gitea failure as a problem with the fix that fits it.
fn forge_problem(name: &str, e: &ForgeError, config: &Config) -> Check {
    let g = &config.gitea;
    let fix = match e {
        ForgeError::Unauthorized(_) => format!(
            "the token in {} is wrong, expired or revoked: create a new one ({}) and export it",
            g.token_env,
            token_need(&g.scope)
        ),
        ForgeError::Forbidden(_) => format!(
            "the token lacks the permission: {}; a token made without the write permission can list but not manage runners",
            token_need(&g.scope)
        ),
        ForgeError::NotFound(_) => format!(
            "Gitea does not know scope {} (check gitea.scope: the organization or repository name), \
             or gitea.url does not point at Gitea's root",
            g.scope
        ),
        ForgeError::Unavailable(_) | ForgeError::RateLimited(_) => format!(
            "check that {} is reachable from this host (DNS, TLS, firewall, proxy) and that Gitea is up",
            g.url
        ),
        ForgeError::BadResponse(m) if m.contains("Forgejo") => {
            "Forgejo speaks a different runner API; tinqs-ci supports Gitea only (see wiki/Roadmap.md)".to_owned()
        }
        ForgeError::BadResponse(_) | ForgeError::Config(_) => format!(
            "check that gitea.url ({}) is the Gitea base URL (the page that shows Gitea's front page)",
            g.url
        ),
        ForgeError::Unsupported { need, .. } => format!("upgrade Gitea to {need} or later"),
    };
    Check::problem(name, e.to_string(), fix)
}

async fn timed<T>(
    fut: impl std::future::Future<Output = Result<T, ForgeError>>,
) -> Result<T, ForgeError> {
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(ForgeError::Unavailable(format!(
            "no answer within {}",
            model::time::human(PROBE_TIMEOUT)
        ))),
    }
}

// ---- AWS -----------------------------------------------------------------------------------

/// AWS: credentials resolve, EC2 permissions (see [`check_ec2`]) and the DynamoDB table (see
/// [`check_table`]), with clients built from `conf`.
pub async fn check_aws(conf: &aws_config::SdkConfig, config: &Config) -> Vec<Check> {
    let credentials = check_credentials(conf).await;
    let resolved = !credentials.is_problem();
    let mut out = vec![credentials];
    if !resolved {
        out.push(Check::skipped("ec2 and dynamodb", "needs AWS credentials"));
        return out;
    }
    out.extend(check_ec2(&SdkEc2::from_conf(conf), config).await);
    out.extend(check_table(&aws_sdk_dynamodb::Client::new(conf), &config.store.table).await);
    if let Some(url) = &config.aws.events_queue_url {
        out.push(check_events_queue(&SqsQueue::new(aws_sdk_sqs::Client::new(conf), url)).await);
    }
    out
}

/// The events queue (`aws.events_queue_url`) can be read: EC2's notices reach the loop.
pub async fn check_events_queue(queue: &SqsQueue) -> Check {
    const NAME: &str = "events queue";
    match tokio::time::timeout(std::time::Duration::from_secs(10), queue.depth()).await {
        Ok(Ok(n)) => Check::ok(NAME, format!("readable, {n} message(s) waiting")),
        Ok(Err(e)) => Check::problem(
            NAME,
            e,
            "check aws.events_queue_url and that the controller may call sqs:ReceiveMessage, \
             sqs:DeleteMessage and sqs:GetQueueAttributes on it (the SpotWarningQueue statement in DevOps-Reference)",
        ),
        Err(_) => Check::problem(
            NAME,
            "SQS did not answer within 10s",
            "check the network path to SQS and aws.region",
        ),
    }
}

/// The SDK's credential chain yields credentials (never printed), and a region is set.
pub async fn check_credentials(conf: &aws_config::SdkConfig) -> Check {
    let name = "aws credentials";
    let fix = "give the controller AWS credentials the standard way: its instance or task role, \
               AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; see wiki/DevOps-Reference.md";
    let Some(region) = conf.region() else {
        return Check::problem(
            name,
            "no AWS region configured",
            "set aws.region in the configuration, or AWS_REGION",
        );
    };
    let Some(provider) = conf.credentials_provider() else {
        return Check::problem(name, "no credential provider is configured", fix);
    };
    match tokio::time::timeout(PROBE_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(c)) => {
            let kind = match c.expiry() {
                Some(at) => {
                    let left = at
                        .duration_since(std::time::SystemTime::now())
                        .unwrap_or_default();
                    format!("temporary, valid for another {}", model::time::human(left))
                }
                None => "long-term keys".to_owned(),
            };
            Check::ok(name, format!("resolved ({kind}); region {region}"))
        }
        Ok(Err(e)) => Check::problem(
            name,
            format!(
                "no credentials: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            ),
            fix,
        ),
        Err(_) => Check::problem(name, "resolving credentials did not finish in time", fix),
    }
}

/// An AWS answer to a probe: `Ok` means the call went through.
type Probe<T> = Result<T, ApiError>;

async fn probe<T>(fut: impl std::future::Future<Output = Probe<T>>) -> Probe<T> {
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::network(&format!(
            "no answer within {}",
            model::time::human(PROBE_TIMEOUT)
        ))),
    }
}

fn is_denied(e: &ApiError) -> bool {
    matches!(
        e.code(),
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException"
    )
}

fn is_bad_credentials(e: &ApiError) -> bool {
    matches!(
        e.code(),
        "AuthFailure"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "RequestExpired"
    )
}

/// A failed AWS probe as a problem, with the fix for missing permissions, bad credentials or
/// an unreachable endpoint.
fn aws_problem(name: &str, action: &str, e: &ApiError) -> Check {
    let fix = if is_denied(e) {
        let decode = if e.message.contains("Encoded authorization failure message") {
            " (`aws sts decode-authorization-message --encoded-message …` shows which statement refused it)"
        } else {
            ""
        };
        format!("grant {action} to the controller's role as in {POLICY_DOC}{decode}")
    } else if is_bad_credentials(e) {
        "the credentials are invalid or expired: renew them, or check the clock of this host"
            .to_owned()
    } else if e.code().is_empty() {
        "check that the AWS endpoint is reachable from this host (network, proxy, AWS_ENDPOINT_URL)"
            .to_owned()
    } else {
        format!("AWS refused {action} with {}; see the message", e.code())
    };
    Check::problem(name, describe(e), fix)
}

fn describe(e: &ApiError) -> String {
    if e.code().is_empty() {
        e.message.clone()
    } else {
        format!("{}: {}", e.code(), e.message)
    }
}

/// EC2: `DescribeInstances` (our cluster's instances), and per pool `DescribeImages` of its
/// AMI and a `RunInstances` dry run in its first subnet with its first instance type and
/// market, carrying the ownership tags (the IAM policy allows launches only with them); then
/// a `TerminateInstances` dry run on one of our instances, when one exists.
///
/// If EC2 ever ignored `DryRun` and started an instance, it is terminated at once and
/// reported.
pub async fn check_ec2(api: &dyn Ec2Api, config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let filter = Filter::builder()
        .name(format!("tag:{}", tags::CLUSTER))
        .values(&config.cluster_id)
        .build();
    let listed = probe(
        api.describe_instances(
            DescribeInstancesInputBuilder::default()
                .filters(filter)
                .max_results(5),
        ),
    )
    .await;
    let mut ours: Option<InstanceId> = None;
    match listed {
        Ok(page) => {
            let instances: Vec<_> = page
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| map_instance(i).ok())
                .filter(|i| i.is_ours(&config.cluster_id))
                .collect();
            ours = instances
                .iter()
                .find(|i| i.state.is_live())
                .map(|i| i.id.clone());
            out.push(Check::ok(
                "ec2 DescribeInstances",
                format!(
                    "permitted; {} instance{} of cluster {} on the first page",
                    instances.len(),
                    if instances.len() == 1 { "" } else { "s" },
                    config.cluster_id
                ),
            ));
        }
        Err(e) => {
            out.push(aws_problem(
                "ec2 DescribeInstances",
                "ec2:DescribeInstances",
                &e,
            ));
            if is_bad_credentials(&e) || e.code().is_empty() {
                out.push(Check::skipped(
                    "ec2 launch and terminate",
                    "EC2 cannot be used at all",
                ));
                return out;
            }
        }
    }
    for (pool, pool_config) in &config.pools {
        out.extend(check_pool(api, config, pool, pool_config).await);
    }
    out.push(match ours {
        None => Check::skipped(
            "ec2 TerminateInstances",
            format!(
                "no live instance of cluster {} to dry-run against; the policy's tag condition is checked on the first real termination",
                config.cluster_id
            ),
        ),
        Some(id) => {
            let input = TerminateInstancesInputBuilder::default().instance_ids(id.as_str()).dry_run(true);
            match probe(api.terminate_instances(input)).await {
                Err(e) if e.code() == "DryRunOperation" => Check::ok(
                    "ec2 TerminateInstances",
                    format!("permitted on our instance {id} (dry run; nothing was terminated)"),
                ),
                Err(e) => aws_problem("ec2 TerminateInstances", "ec2:TerminateInstances on instances tagged with our cluster", &e),
                Ok(_) => Check::problem(
                    "ec2 TerminateInstances",
                    format!("EC2 ignored DryRun and terminated {id}, an instance of this cluster; the next pass repairs its run"),
                    "check AWS_ENDPOINT_URL: real EC2 honours DryRun",
                ),
            }
        }
    });
    out
}

async fn check_pool(
    api: &dyn Ec2Api,
    config: &Config,
    pool: &str,
    pool_config: &model::config::PoolConfig,
) -> Vec<Check> {
    let mut out = Vec::new();
    let images = probe(
        api.describe_images(DescribeImagesInputBuilder::default().image_ids(&pool_config.ami)),
    )
    .await;
    let ami_name = format!("ec2 AMI (pool {pool})");
    let root_device = match images {
        Ok(o) => match o
            .images()
            .iter()
            .find(|i| i.image_id() == Some(pool_config.ami.as_str()))
        {
            Some(image) => {
                let device = image.root_device_name().unwrap_or("/dev/xvda").to_owned();
                out.push(Check::ok(
                    ami_name,
                    format!("{} exists (root device {device})", pool_config.ami),
                ));
                device
            }
            None => {
                out.push(Check::problem(
                    ami_name,
                    format!("{} is not visible to this account in this region", pool_config.ami),
                    format!(
                        "build or copy the runner AMI into this region (ami/), or share it with this account, and set pools.{pool}.ami"
                    ),
                ));
                return out;
            }
        },
        Err(e) if e.code().starts_with("InvalidAMIID") => {
            out.push(Check::problem(
                ami_name,
                describe(&e),
                format!("set pools.{pool}.ami to an AMI id of this region (ami-…)"),
            ));
            return out;
        }
        Err(e) => {
            out.push(aws_problem(&ami_name, "ec2:DescribeImages", &e));
            return out;
        }
    };
    let name = format!("ec2 RunInstances (pool {pool})");
    let Some(offering) = offerings(pool_config).into_iter().next() else {
        out.push(Check::problem(
            name,
            "the pool has no instance type or subnet",
            format!("list pools.{pool}.instance_types and pools.{pool}.subnets"),
        ));
        return out;
    };
    let Ok(run) = RunId::for_operator("doctor") else {
        return out;
    };
    let req = LaunchRequest {
        run: run.clone(),
        attempt: 1,
        runner: RunnerName::new(&config.cluster_id, &run, 1),
        pool: pool.to_owned(),
        pool_config: pool_config.clone(),
        user_data: Secret::new("#!/bin/sh\n# tinqs-ci doctor: dry run, never started\npoweroff\n"),
        client_token: format!("tinqs-doctor-{}", uuid::Uuid::new_v4().simple()),
        runner_id: None,
    };
    let input = run_input(
        &config.cluster_id,
        &req,
        &offering,
        &req.client_token,
        &root_device,
    )
    .dry_run(true);
    let what = format!("{offering}, tagged, IMDSv2");
    match probe(api.run_instances(input)).await {
        Err(e) if e.code() == "DryRunOperation" => {
            out.push(Check::ok(
                name,
                format!("permitted: {what} (dry run; nothing was started)"),
            ));
        }
        Err(e) if is_denied(&e) => {
            let profile = if pool_config.instance_profile.is_some() {
                ", iam:PassRole on the runner role"
            } else {
                ""
            };
            out.push(aws_problem(
                &name,
                &format!("ec2:RunInstances and ec2:CreateTags with the tinqs-ci:cluster = {} condition{profile}", config.cluster_id),
                &e,
            ));
        }
        Err(e) if e.code().starts_with("InvalidSubnet") => out.push(Check::problem(
            name,
            describe(&e),
            format!("set pools.{pool}.subnets to subnets of this region"),
        )),
        Err(e)
            if e.code().starts_with("InvalidGroup")
                || e.code().starts_with("InvalidSecurityGroup") =>
        {
            out.push(Check::problem(
                name,
                describe(&e),
                format!("set pools.{pool}.security_groups to groups of the subnets' VPC"),
            ));
        }
        Err(e) if e.code().contains("InstanceType") || e.code() == "Unsupported" => {
            out.push(Check::problem(
                name,
                describe(&e),
                format!(
                    "pools.{pool}.instance_types[0] ({}) is not offered in that subnet's zone",
                    offering.instance_type
                ),
            ))
        }
        Err(e) if e.code().contains("IamInstanceProfile") => out.push(Check::problem(
            name,
            describe(&e),
            format!("pools.{pool}.instance_profile must name an existing instance profile"),
        )),
        Err(e) => out.push(aws_problem(&name, "ec2:RunInstances", &e)),
        Ok(started) => {
            let ids: Vec<String> = started
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_owned))
                .collect();
            if !ids.is_empty() {
                let input =
                    TerminateInstancesInputBuilder::default().set_instance_ids(Some(ids.clone()));
                let _ = probe(api.terminate_instances(input)).await;
            }
            out.push(Check::problem(
                name,
                format!(
                    "EC2 ignored DryRun and started {}; it was terminated again",
                    ids.join(", ")
                ),
                "check AWS_ENDPOINT_URL: real EC2 honours DryRun",
            ));
        }
    }
    out
}

// ---- DynamoDB ------------------------------------------------------------------------------

/// DynamoDB: the table exists, is keyed by `pk`, is active, has the `active-runs` index
/// (active) and TTL on `expires_at` (`DescribeTable`, `DescribeTimeToLive`: only `store init`'s
/// role is granted these, so a refusal is skipped, not a problem); the controller's reads work
/// (`Query` on the index, `GetItem` of the lease, whose holder is shown); its writes are
/// permitted (`PutItem` and `UpdateItem` with a condition that cannot hold, so nothing is
/// written).
pub async fn check_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let init = format!(
        "run `tinqs-ci store init --config FILE` (creates table {table}, its index and TTL)"
    );
    match probe(async { client.describe_table().table_name(table).send().await.map_err(|e| ApiError::from_sdk(&e)) }).await {
        Ok(o) => match o.table() {
            Some(desc) => out.extend(judge_table(desc, table)),
            None => out.push(Check::problem("dynamodb table", format!("DescribeTable returned no table {table}"), init.clone())),
        },
        Err(e) if e.code() == "ResourceNotFoundException" => {
            out.push(Check::problem("dynamodb table", format!("table {table} does not exist in this region"), init));
            return out;
        }
        Err(e) if is_denied(&e) => out.push(Check::skipped(
            "dynamodb table",
            format!("DescribeTable is not granted (only `store init` needs it); the Query below checks table {table} and its index"),
        )),
        Err(e) => {
            out.push(aws_problem("dynamodb table", "dynamodb:DescribeTable", &e));
            if e.code().is_empty() || is_bad_credentials(&e) {
                return out;
            }
        }
    }
    match probe(async {
        client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    })
    .await
    {
        Ok(o) => {
            let d = o.time_to_live_description();
            let on = matches!(
                d.and_then(|d| d.time_to_live_status()),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) && d.and_then(|d| d.attribute_name()) == Some(schema::EXPIRES_AT);
            out.push(if on {
                Check::ok(
                    "dynamodb TTL",
                    format!(
                        "on {}: finished runs expire by themselves",
                        schema::EXPIRES_AT
                    ),
                )
            } else {
                Check::problem(
                    "dynamodb TTL",
                    format!(
                        "TTL is not on {}: finished runs stay in the table forever",
                        schema::EXPIRES_AT
                    ),
                    init.clone(),
                )
            });
        }
        Err(e) if is_denied(&e) => out.push(Check::skipped(
            "dynamodb TTL",
            "DescribeTimeToLive is not granted (only `store init` needs it)",
        )),
        Err(e) if e.code() == "ResourceNotFoundException" => {}
        Err(e) => out.push(aws_problem(
            "dynamodb TTL",
            "dynamodb:DescribeTimeToLive",
            &e,
        )),
    }
    let query = async {
        client
            .query()
            .table_name(table)
            .index_name(schema::ACTIVE_INDEX)
            .key_condition_expression("#a = :one")
            .expression_attribute_names("#a", schema::ACTIVE)
            .expression_attribute_values(":one", AttributeValue::S(schema::ACTIVE_VALUE.into()))
            .limit(1)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    match probe(query).await {
        Ok(_) => out.push(Check::ok(
            "dynamodb read",
            format!("Query on index {} permitted", schema::ACTIVE_INDEX),
        )),
        Err(e) if e.code() == "ResourceNotFoundException" || e.message.contains("index") => {
            out.push(Check::problem("dynamodb read", describe(&e), init.clone()))
        }
        Err(e) => out.push(aws_problem(
            "dynamodb read",
            "dynamodb:Query on the table's index active-runs",
            &e,
        )),
    }
    let lease = async {
        client
            .get_item()
            .table_name(table)
            .key(schema::PK, AttributeValue::S(schema::LEASE_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    match probe(lease).await {
        Ok(o) => out.push(Check::ok("dynamodb lease", lease_text(o.item()))),
        Err(e) => out.push(aws_problem("dynamodb lease", "dynamodb:GetItem", &e)),
    }
    // Writes that cannot happen: the conditions contradict each other, so DynamoDB refuses
    // them on the condition, which it evaluates only after the permission.
    let probe_key = AttributeValue::S("#doctor-probe".into());
    let put = async {
        client
            .put_item()
            .table_name(table)
            .item(schema::PK, probe_key.clone())
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    out.push(write_check(
        "dynamodb write: PutItem",
        "dynamodb:PutItem",
        probe(put).await.map(|_| ()),
    ));
    let update = async {
        client
            .update_item()
            .table_name(table)
            .key(schema::PK, probe_key.clone())
            .update_expression("SET #c = :c")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#c", "doctor")
            .expression_attribute_values(":c", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    out.push(write_check(
        "dynamodb write: UpdateItem",
        "dynamodb:UpdateItem",
        probe(update).await.map(|_| ()),
    ));
    out
}

fn write_check(name: &str, action: &str, result: Probe<()>) -> Check {
    match result {
        Err(e) if e.code() == "ConditionalCheckFailedException" => Check::ok(
            name,
            "permitted (probed with a write whose condition cannot hold; nothing was written)",
        ),
        Err(e) => aws_problem(name, action, &e),
        Ok(()) => Check::problem(
            name,
            "the endpoint wrote a probe row whose condition cannot hold",
            "check AWS_ENDPOINT_URL: this is not DynamoDB's behaviour",
        ),
    }
}

fn lease_text(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> String {
    let holder = item.and_then(|i| match i.get(schema::HOLDER) {
        Some(AttributeValue::S(h)) if !h.is_empty() => Some(h.clone()),
        _ => None,
    });
    let until = item.and_then(|i| match i.get(schema::LEASE_UNTIL) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().ok().map(model::Timestamp::from_millis),
        _ => None,
    });
    match (holder, until) {
        (Some(h), Some(u)) => format!("held by {h} until {u} (a controller applies plans)"),
        (Some(h), None) => format!("held by {h}"),
        (None, _) => "free: no controller holds it now".to_owned(),
    }
}

/// Judges a table description: key schema, status, the active-runs index and its status.
#[must_use]
pub fn judge_table(desc: &aws_sdk_dynamodb::types::TableDescription, table: &str) -> Vec<Check> {
    let init =
        format!("run `tinqs-ci store init --config FILE` (adds what is missing to table {table})");
    let mut out = Vec::new();
    let key_ok = desc.key_schema().len() == 1
        && desc.key_schema()[0].attribute_name() == schema::PK
        && desc.key_schema()[0].key_type() == &KeyType::Hash;
    if !key_ok {
        out.push(Check::problem(
            "dynamodb table",
            format!("table {table} is keyed otherwise than by `{}` alone", schema::PK),
            "use another store.table name (tinqs-ci needs a table keyed by `pk`, string, hash key only) and run `tinqs-ci store init`",
        ));
        return out;
    }
    match desc.table_status() {
        Some(TableStatus::Active) => out.push(Check::ok(
            "dynamodb table",
            format!("{table} exists and is active"),
        )),
        other => out.push(Check::problem(
            "dynamodb table",
            format!(
                "table {table} is {}",
                other.map_or("in an unknown state", |s| s.as_str())
            ),
            "wait for it to become ACTIVE (`aws dynamodb describe-table`), or restore it",
        )),
    }
    let index = desc
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(schema::ACTIVE_INDEX));
    match index {
        None => out.push(Check::problem(
            "dynamodb index",
            format!("table {table} has no index {}", schema::ACTIVE_INDEX),
            init,
        )),
        Some(g) => match g.index_status() {
            None | Some(IndexStatus::Active) => out.push(Check::ok(
                "dynamodb index",
                format!("{} exists and is active", schema::ACTIVE_INDEX),
            )),
            Some(s) => out.push(Check::problem(
                "dynamodb index",
                format!("index {} is {}", schema::ACTIVE_INDEX, s.as_str()),
                "wait for it to become ACTIVE (an index on a large table takes minutes to build)",
            )),
        },
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndexDescription, KeySchemaElement, TableDescription,
    };

    fn key(name: &str, kind: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    }

    #[test]
    fn an_active_table_with_an_active_index_passes() {
        let desc = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .table_status(TableStatus::Active)
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name(schema::ACTIVE_INDEX)
                    .index_status(IndexStatus::Active)
                    .build(),
            )
            .build();
        let checks = judge_table(&desc, "runs");
        assert!(all_passed(&checks), "{checks:?}");
        assert_eq!(checks.len(), 2);
    }

    #[test]
    fn a_missing_index_is_a_problem_fixed_by_store_init() {
        let desc = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .table_status(TableStatus::Active)
            .build();
        let checks = judge_table(&desc, "runs");
        let problem = checks.iter().find(|c| c.is_problem()).expect("a problem");
        assert_eq!(problem.name, "dynamodb index");
        assert!(
            problem
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("store init")),
            "{problem:?}"
        );
    }

    #[test]
    fn a_building_index_and_a_table_keyed_otherwise_are_problems() {
        let building = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .table_status(TableStatus::Active)
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name(schema::ACTIVE_INDEX)
                    .index_status(IndexStatus::Creating)
                    .build(),
            )
            .build();
        let checks = judge_table(&building, "runs");
        assert!(
            checks
                .iter()
                .any(|c| c.is_problem() && c.detail.contains("CREATING")),
            "{checks:?}"
        );

        let other_key = TableDescription::builder()
            .key_schema(key("id", KeyType::Hash))
            .table_status(TableStatus::Active)
            .build();
        let checks = judge_table(&other_key, "runs");
        assert_eq!(checks.len(), 1);
        assert!(checks[0].is_problem() && checks[0].detail.contains("keyed otherwise"));
    }

    #[test]
    fn the_lease_text_names_the_holder_or_says_it_is_free() {
        assert_eq!(lease_text(None), "free: no controller holds it now");
        let item = std::collections::HashMap::from([
            (
                schema::HOLDER.to_owned(),
                AttributeValue::S("host-a/42".into()),
            ),
            (
                schema::LEASE_UNTIL.to_owned(),
                AttributeValue::N("1767225600000".into()),
            ),
        ]);
        assert_eq!(
            lease_text(Some(&item)),
            "held by host-a/42 until 2026-01-01T00:00:00.000Z (a controller applies plans)"
        );
    }

    #[test]
    fn a_denied_write_names_the_permission_and_the_policy() {
        let check = write_check(
            "dynamodb write: PutItem",
            "dynamodb:PutItem",
            Err(ApiError::service(
                "AccessDeniedException",
                "not authorized to perform dynamodb:PutItem",
            )),
        );
        assert!(check.is_problem());
        let fix = check.fix.expect("fix");
        assert!(
            fix.contains("dynamodb:PutItem") && fix.contains("DevOps-Reference"),
            "{fix}"
        );
        let ok = write_check(
            "dynamodb write: PutItem",
            "dynamodb:PutItem",
            Err(ApiError::service(
                "ConditionalCheckFailedException",
                "The conditional request failed",
            )),
        );
        assert_eq!(ok.verdict, Verdict::Ok);
    }

    fn v(minor: u32) -> ForgeVersion {
        ForgeVersion {
            major: 1,
            minor,
            patch: 0,
        }
    }

    fn repo() -> RunnerScope {
        RunnerScope::Repo {
            owner: "acme".into(),
            name: "app".into(),
        }
    }

    #[test]
    fn a_403_at_repo_scope_asks_for_the_repository_owner_not_a_repository_admin() {
        let fix = forbidden_fix(
            &repo(),
            TokenCall::RegistrationToken,
            v(26),
            "user should be the owner of the repo",
        );
        assert!(fix.starts_with("the token's user lacks the role"), "{fix}");
        assert!(fix.contains("the owner of acme/app"), "{fix}");
        assert!(fix.contains("an owner of organization acme"), "{fix}");
        assert!(fix.contains("site administrator"), "{fix}");
        assert!(
            fix.contains("a repository administrator (collaborator) is not enough"),
            "{fix}"
        );
        assert!(fix.contains("at least write:repository"), "{fix}");
        assert!(fix.contains("wiki/Gitea-Behaviour.md#permissions"), "{fix}");

        let list = forbidden_fix(
            &repo(),
            TokenCall::ListRunners,
            v(24),
            "GET /api/v1/repos/owner/admin/actions/runners: HTTP 403",
        );
        assert!(list.contains("at least read:repository"), "{list}");
        assert!(
            list.contains("the controller needs write:repository"),
            "{list}"
        );
        assert!(list.contains("lacks the role or the token lacks a token scope"));
    }

    #[test]
    fn a_403_names_the_role_and_token_scope_of_each_scope() {
        let org = RunnerScope::Org("acme".into());
        let fix = forbidden_fix(
            &org,
            TokenCall::ListRunners,
            v(26),
            "token does not have at least one of required scope(s), required=[read:organization]",
        );
        assert!(fix.starts_with("the token lacks a token scope"), "{fix}");
        assert!(fix.contains("an owner of organization acme"), "{fix}");
        assert!(fix.contains("read:organization"), "{fix}");
        assert!(fix.contains("write:organization"), "{fix}");

        let fix = forbidden_fix(
            &RunnerScope::Instance,
            TokenCall::RegistrationToken,
            v(25),
            "user should be the site admin",
        );
        assert!(fix.contains("requires a site administrator"), "{fix}");
        assert!(fix.contains("write:admin"), "{fix}");
    }

    #[test]
    fn the_jobs_list_needs_the_owner_on_1_25_and_a_reader_from_1_26() {
        let old = role_needed(&repo(), TokenCall::ListJobs, v(25));
        assert!(old.contains("the owner of acme/app"), "{old}");
        let new = role_needed(&repo(), TokenCall::ListJobs, v(26));
        assert!(new.contains("may read the Actions of acme/app"), "{new}");
        let org = RunnerScope::Org("acme".into());
        assert!(role_needed(&org, TokenCall::ListJobs, v(25)).contains("an owner of"));
        assert!(role_needed(&org, TokenCall::ListJobs, v(26)).contains("a member of"));
        assert!(role_needed(&org, TokenCall::ListRunners, v(26)).contains("an owner of"));
    }

    #[test]
    fn the_token_need_of_a_repo_scope_is_the_owner() {
        let need = token_need(&repo());
        assert!(need.contains("the owner of acme/app"), "{need}");
        assert!(
            need.contains("a repository administrator is not enough"),
            "{need}"
        );
        assert!(need.contains("write:repository"), "{need}");
    }

    #[test]
    fn the_text_marks_each_check_and_counts_them() {
        let checks = vec![
            Check::ok("config", "valid"),
            Check::problem("env X", "not set", "export X"),
            Check::skipped("gitea", "needs the token"),
        ];
        let t = text(&checks);
        assert!(t.contains("ok       config: valid\n"), "{t}");
        assert!(
            t.contains("PROBLEM  env X: not set\n         fix: export X\n"),
            "{t}"
        );
        assert!(t.contains("skipped  gitea: needs the token\n"), "{t}");
        assert!(
            t.ends_with("3 checks: 1 ok, 1 problem, 1 skipped.\n"),
            "{t}"
        );
        assert!(!all_passed(&checks));
    }

    #[test]
    fn the_spool_check_writes_and_removes_a_probe() {
        let dir = std::env::temp_dir().join(format!("tinqs-doctor-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let check = check_spool_dir(&dir);
        assert_eq!(check.verdict, Verdict::Ok, "{check:?}");
        assert_eq!(
            std::fs::read_dir(&dir).expect("read").count(),
            0,
            "probe removed"
        );
        assert!(
            check.detail.contains("0 event(s) waiting, 0 set aside"),
            "{check:?}"
        );
        std::fs::create_dir_all(dir.join(crate::spool::DEAD_LETTER)).expect("dir");
        std::fs::write(dir.join("0001-a.json"), b"{}").expect("writes");
        std::fs::write(
            dir.join(crate::spool::DEAD_LETTER).join("0000-b.json"),
            b"{}",
        )
        .expect("writes");
        let set_aside = check_spool_dir(&dir);
        assert!(set_aside.is_problem(), "{set_aside:?}");
        assert!(
            set_aside
                .detail
                .contains("1 event(s) waiting, 1 set aside in dead-letter/"),
            "{set_aside:?}"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let missing = check_spool_dir(Path::new("/nonexistent-tinqs/a/b"));
        assert_eq!(missing.verdict, Verdict::Skipped, "{missing:?}");
        assert!(missing.detail.contains("write access to /"), "{missing:?}");
        let file = std::env::temp_dir().join(format!("tinqs-doctor-file-{}", std::process::id()));
        std::fs::write(&file, b"not a directory").expect("file");
        let not_a_dir = check_spool_dir(&file);
        std::fs::remove_file(&file).expect("cleanup");
        assert!(not_a_dir.is_problem(), "{not_a_dir:?}");
    }
}
