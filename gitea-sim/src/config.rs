//! How a simulator is set up, and the fault knobs that can be changed while it runs.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The Gitea version the simulator pretends to be.
///
/// Routes and fields follow the version (each with its upstream source at the place it is
/// played): the runner REST API needs 1.24 (go-gitea/gitea commit 21b43fce08, #33873), the
/// jobs API 1.25 (cda90eca31, #33964), `PATCH` and `disabled` 1.26 (b3b2d111da, #36776);
/// `GET …/registration-token` exists from 1.22 (baf0d402d9, #27144) to 1.25 (removed by
/// 716a800f50, #36801). A string that does not parse (`main`) counts as the newest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// Parses `1.26.4`, `v1.25.0`, `1.24.0+dev` and the like; `None` when it does not parse.
    #[must_use]
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['+', '-', ' ']).next().unwrap_or(s);
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// Whether this version is at least `major.minor`.
    #[must_use]
    pub fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// The version the simulator treats an unparsable string as.
    pub const NEWEST: Version = Version {
        major: u32::MAX,
        minor: 0,
        patch: 0,
    };
}

/// Where webhooks go.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookTarget {
    /// The URL every hook is POSTed to.
    pub url: String,
    /// The hook secret; empty means unsigned (Gitea then sends an empty signature).
    #[serde(default)]
    pub secret: String,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Everything a simulator is started with.
#[derive(Clone)]
pub struct SimConfig {
    /// Address to bind; port 0 picks a free one. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Version string served by `/api/v1/version`. Default `1.26.4`.
    pub version: String,
    /// The site-admin API token. Default: a fresh random token.
    pub admin_token: String,
    /// Login of the one simulated user (site admin, pusher, job trigger). Default `sim-admin`.
    pub user_login: String,
    /// Webhook target, if any. Can be changed later.
    pub webhook: Option<WebhookTarget>,
    /// Repositories (`owner/name`) that exist from the start. Their owners exist as organisations.
    pub repos: Vec<String>,
    /// A pre-seeded instance-wide registration token, like `GITEA_RUNNER_REGISTRATION_TOKEN`.
    pub global_registration_token: Option<String>,
    /// A runner is offline when its last contact is older than this. Gitea: 1 minute.
    pub runner_offline_after: Duration,
    /// A runner is busy when its last `UpdateTask`/`UpdateLog` is newer than this. Gitea: 10 s.
    pub runner_idle_after: Duration,
    /// A running task with no update for this long is failed. Gitea: 10 minutes.
    pub zombie_task_timeout: Duration,
    /// Webhook delivery timeout. Gitea: 5 s, no retries.
    pub webhook_timeout: Duration,
    /// How many commits a push payload carries (`[ui] FEED_MAX_COMMIT_NUM`). Gitea: 5.
    pub feed_max_commits: usize,
    /// Faults active from the start.
    pub faults: Faults,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("listen", &self.listen)
            .field("version", &self.version)
            .field("admin_token", &"[redacted]")
            .field("user_login", &self.user_login)
            .field("webhook", &self.webhook)
            .field("repos", &self.repos)
            .field(
                "global_registration_token",
                &self
                    .global_registration_token
                    .as_ref()
                    .map(|_| "[redacted]"),
            )
            .field("runner_offline_after", &self.runner_offline_after)
            .field("runner_idle_after", &self.runner_idle_after)
            .field("zombie_task_timeout", &self.zombie_task_timeout)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("feed_max_commits", &self.feed_max_commits)
            .field("faults", &self.faults)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            version: "1.26.4".to_owned(),
            admin_token: crate::ids::random_hex(40),
            user_login: "sim-admin".to_owned(),
            webhook: None,
            repos: Vec::new(),
            global_registration_token: None,
            runner_offline_after: Duration::from_secs(60),
            runner_idle_after: Duration::from_secs(10),
            zombie_task_timeout: Duration::from_secs(600),
            webhook_timeout: Duration::from_secs(5),
            feed_max_commits: 5,
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// Sets the version string.
    #[must_use]
    pub fn version(mut self, v: impl Into<String>) -> Self {
        self.version = v.into();
        self
    }

    /// Sets the admin token.
    #[must_use]
    pub fn admin_token(mut self, t: impl Into<String>) -> Self {
        self.admin_token = t.into();
        self
    }

    /// Adds a repository (`owner/name`) that exists from the start.
    #[must_use]
    pub fn repo(mut self, full_name: impl Into<String>) -> Self {
        self.repos.push(full_name.into());
        self
    }

    /// Sets the webhook target.
    #[must_use]
    pub fn webhook(mut self, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.webhook = Some(WebhookTarget {
            url: url.into(),
            secret: secret.into(),
        });
        self
    }

    /// Sets the listen address.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
}

/// Injected failures. All off by default; replace the whole set with `SimHandle::set_faults`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Answer matching requests with an error status instead of serving them.
    pub api_error: Option<ApiErrorFault>,
    /// Delay matching requests before serving them (longer than a client's timeout = a hang).
    pub api_delay: Option<ApiDelayFault>,
    /// Fraction (0.0..=1.0) of webhooks that are silently not sent; 1.0 drops all.
    pub drop_webhooks: f64,
    /// Seeds the generator behind the orders Gitea leaves to the database: runners tying on
    /// `last_online` in the runner list (before 1.28) and the jobs lists (before 1.27), both
    /// drawn afresh on every request. Setting faults with a seed restarts the sequence; `None`
    /// keeps the current one (random at start).
    pub order_seed: Option<u64>,
}

/// Which requests a fault applies to.
///
/// With no `path_contains`, a fault applies to the REST API (`/api/v1/…`) only. With one, it
/// applies to every request whose path contains the string, the runner protocol included
/// (e.g. `"FetchTask"` or `"RunnerService"`). The control API `/_sim` is never affected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultMatch {
    /// Only paths containing this string.
    pub path_contains: Option<String>,
    /// Only this HTTP method (`GET`, `POST`, …).
    pub method: Option<String>,
}

/// Answer with `status` instead of serving the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorFault {
    /// HTTP status to answer with (500, 502, 503, 429, 403, …).
    pub status: u16,
    /// Fraction of matching requests that fail, spread evenly (0.5 = every second one). Default 1.
    #[serde(default = "one")]
    pub fraction: f64,
    /// Stop after this many injected failures; `None` = never stop.
    #[serde(default)]
    pub count: Option<u32>,
    /// Which requests.
    #[serde(default, flatten)]
    pub matches: FaultMatch,
}

impl ApiErrorFault {
    /// Every REST request fails with `status`.
    #[must_use]
    pub fn always(status: u16) -> Self {
        ApiErrorFault {
            status,
            fraction: 1.0,
            count: None,
            matches: FaultMatch::default(),
        }
    }
}

/// Wait before serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiDelayFault {
    /// How long, in milliseconds.
    pub delay_ms: u64,
    /// Which requests.
    #[serde(default, flatten)]
    pub matches: FaultMatch,
}

fn one() -> f64 {
    1.0
}

/// The scope a runner, a registration token or a list belongs to.
///
/// Written as a string: `instance` (site-wide, the admin endpoints), `owner` (an organisation),
/// or `owner/repo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Instance-wide: admin endpoints; such runners take jobs from every repository.
    Instance,
    /// One organisation (or user) and all its repositories.
    Org(String),
    /// One repository, `owner/name`.
    Repo(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Instance => f.write_str("instance"),
            Scope::Org(o) => f.write_str(o),
            Scope::Repo(r) => f.write_str(r),
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s == "instance" || s == "admin" {
            return Ok(Scope::Instance);
        }
        match s.split_once('/') {
            None => Ok(Scope::Org(s.to_owned())),
            Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.contains('/') => {
                Ok(Scope::Repo(s.to_owned()))
            }
            Some(_) => Err(format!(
                "scope {s:?} is neither `instance`, `owner` nor `owner/repo`"
            )),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_prefixes_and_suffixes() {
        assert_eq!(
            Version::parse("1.26.4"),
            Some(Version {
                major: 1,
                minor: 26,
                patch: 4
            })
        );
        assert_eq!(
            Version::parse("v1.25.0+dev-12"),
            Some(Version {
                major: 1,
                minor: 25,
                patch: 0
            })
        );
        assert_eq!(
            Version::parse("1.24"),
            Some(Version {
                major: 1,
                minor: 24,
                patch: 0
            })
        );
        assert_eq!(Version::parse("main"), None);
    }

    #[test]
    fn scopes_round_trip_through_strings() {
        for s in ["instance", "acme", "acme/app"] {
            let scope: Scope = s.parse().expect("valid scope");
            assert_eq!(scope.to_string(), s);
        }
        assert!("a/b/c".parse::<Scope>().is_err());
        assert_eq!("".parse::<Scope>(), Ok(Scope::Instance));
    }
}
