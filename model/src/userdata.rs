//! The boot script (EC2 user-data) of a runner instance, rendered from the pool and the runner's
//! Gitea identity.
//!
//! The script itself is `userdata/boot.sh.tmpl`, a complete bash script whose values block is
//! empty. [`render`] replaces that block with single-quoted assignments and touches nothing
//! else, so every value the script uses is data, never code: a label or URL holding quotes,
//! `$(…)` or backticks reaches the runner exactly as written. The `.runner` file is built here
//! as JSON and the runner's config as YAML (every string JSON-quoted, which YAML reads as a
//! double-quoted scalar), so the script never assembles either from pieces.
//!
//! The script runs whichever runner binary the image has: `gitea-runner` (act_runner's name from
//! its v1.0.0) when present, else `act_runner` (0.2.12 or later). With neither it logs why and
//! powers the instance off. Both read the same `.runner` file and config keys, so the files
//! rendered here serve either.
//!
//! What the rendered script does on the instance is described in the template's header and in
//! the wiki page `Runner.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::ids::RunnerName;
use crate::secret::Secret;

/// EC2's limit on user-data, counted before base64 encoding.
pub const USER_DATA_LIMIT: usize = 16_384;

/// The boot script template; its values block is replaced by [`render`].
pub const TEMPLATE: &str = include_str!("userdata/boot.sh.tmpl");

const VALUES_START: &str =
    "# --- values: filled in by the renderer; every value is single-quoted ---";
const VALUES_END: &str = "# --- end of values ---";

/// Stands for the runner state directory in the rendered config; the script substitutes the
/// directory it actually uses (overridable in tests).
const STATE_DIR: &str = "@STATE_DIR@";

/// The variables of the template's values block, in order.
const VARIABLES: [&str; 9] = [
    "TQ_MODE",
    "TQ_GITEA_URL",
    "TQ_RUNNER_NAME",
    "TQ_POOL",
    "TQ_LABELS",
    "TQ_LIFETIME_MINUTES",
    "TQ_CONFIG",
    "TQ_RUNNER_FILE",
    "TQ_REGISTRATION_TOKEN",
];

/// How the runner on the instance gets its Gitea identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// The controller registered the ephemeral runner (runner RPC `Register`) and the script
    /// writes the result as the runner's `.runner` file. The instance receives only this
    /// runner's own token: no API token, no registration token.
    Preregistered {
        /// Gitea's runner id (`Register` sends it as a string; it is a number here).
        id: i64,
        /// The runner's UUID.
        uuid: String,
        /// The runner's own token.
        token: Secret,
    },
    /// Fallback: the instance runs the runner's `register --ephemeral` itself. The registration
    /// token is reusable for its whole scope, and anything on the instance that can read the
    /// user-data can read it; prefer [`Registration::Preregistered`].
    SelfRegister {
        /// The scope's registration token.
        registration_token: Secret,
    },
}

/// Everything the boot script of one runner depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDataInput {
    /// Base URL of Gitea as runners reach it (`gitea.url`); trailing slashes are dropped.
    pub gitea_url: String,
    /// The pool's own label.
    pub pool: String,
    /// Every label the runner serves (see `PoolConfig::runner_labels`), the pool's own among
    /// them. Each becomes `<label>:host` for the runner: jobs run directly on the instance.
    pub labels: Vec<String>,
    /// The instance's hard lifetime; the script schedules a power-off at this age (rounded down
    /// to whole minutes) and uses it as the runner's job timeout.
    pub max_lifetime: Duration,
    /// The runner's name in Gitea.
    pub runner_name: RunnerName,
    /// How the runner gets its identity.
    pub registration: Registration,
    /// The runner's `cache.external_server` URL (it holds the runner's cache credential), when
    /// the cache service is configured; `None` leaves act_runner's cache off.
    pub cache_url: Option<Secret>,
}

impl UserDataInput {
    /// The input for a runner of `pool` in `config`: Gitea URL, labels and max lifetime from
    /// the configuration.
    ///
    /// # Errors
    /// [`RenderError::UnknownPool`] naming the configured pools when `pool` is not one of them.
    pub fn for_pool(
        config: &Config,
        pool: &str,
        runner_name: RunnerName,
        registration: Registration,
    ) -> Result<Self, RenderError> {
        let pool_config = config
            .pools
            .get(pool)
            .ok_or_else(|| RenderError::UnknownPool {
                pool: pool.to_owned(),
                known: config.pools.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        Ok(UserDataInput {
            gitea_url: config.gitea.url.clone(),
            pool: pool.to_owned(),
            labels: pool_config.runner_labels(pool),
            max_lifetime: config.max_lifetime(pool),
            runner_name,
            registration,
            cache_url: None,
        })
    }
}

/// Why a boot script could not be rendered. No variant ever holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The pool is not configured.
    #[error("pool `{pool}` is not in the configuration; configured pools: {known}")]
    UnknownPool {
        /// The pool asked for.
        pool: String,
        /// The configured pools, comma-separated.
        known: String,
    },
    /// An input value is unusable.
    #[error("cannot render user-data: {field} {problem}")]
    Invalid {
        /// Which input (`labels[2]`, `registration.token`…).
        field: String,
        /// What is wrong with it; never the value of a secret.
        problem: String,
    },
    /// The script would not fit EC2's user-data limit.
    #[error(
        "the boot script would be {size} bytes, over EC2's user-data limit of {limit} bytes: \
         use fewer or shorter labels"
    )]
    TooLarge {
        /// The rendered size in bytes.
        size: usize,
        /// The limit, [`USER_DATA_LIMIT`].
        limit: usize,
    },
    /// The template lost its values block (a build defect, caught by the unit tests).
    #[error("the boot script template has no values block")]
    Template,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> RenderError {
    RenderError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Renders the boot script for one runner.
///
/// The result holds the runner's token (or the registration token) and is therefore a
/// [`Secret`]; pass `expose()` only to the EC2 launch call (base64-encoded there).
///
/// # Errors
/// [`RenderError::Invalid`] naming the bad input, [`RenderError::TooLarge`] past
/// [`USER_DATA_LIMIT`]. Messages never contain a token.
pub fn render(input: &UserDataInput) -> Result<Secret, RenderError> {
    let gitea_url = input.gitea_url.trim_end_matches('/');
    check_url(gitea_url)?;
    check_word("pool", &input.pool)?;
    if input.labels.is_empty() {
        return Err(invalid("labels", "must name at least the pool's own label"));
    }
    for (i, label) in input.labels.iter().enumerate() {
        check_word(&format!("labels[{i}]"), label)?;
    }
    if !input.labels.contains(&input.pool) {
        return Err(invalid(
            "labels",
            format!("must include the pool's own label `{}`", input.pool),
        ));
    }
    let name = input.runner_name.as_str();
    if name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "runner_name",
            "must be 1 to 255 characters with no spaces or control characters",
        ));
    }
    if let Some(url) = &input.cache_url {
        let u = url.expose();
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || !u.ends_with('/')
            || u.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(invalid(
                "cache_url",
                "must be an http(s) URL ending with / and holding no spaces",
            ));
        }
    }
    let minutes = input.max_lifetime.as_secs() / 60;
    if minutes == 0 {
        return Err(invalid("max_lifetime", "must be at least one minute"));
    }

    let host_labels: Vec<String> = input.labels.iter().map(|l| format!("{l}:host")).collect();
    let (mode, runner_file, registration_token) = match &input.registration {
        Registration::Preregistered { id, uuid, token } => {
            if *id <= 0 {
                return Err(invalid(
                    "registration.id",
                    format!("must be a positive runner id, not {id}"),
                ));
            }
            if uuid.len() != 36 || !uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                return Err(invalid(
                    "registration.uuid",
                    "must be a UUID (36 characters of hex digits and '-')",
                ));
            }
            check_token("registration.token", token)?;
            let file = RunnerFile {
                warning: "Written by the tinqs-ci boot script for one ephemeral runner.",
                id: *id,
                uuid,
                name,
                token: token.expose(),
                address: gitea_url,
                labels: &host_labels,
                ephemeral: true,
            };
            let json = serde_json::to_string_pretty(&file)
                .map_err(|e| invalid("registration", format!("cannot be written as JSON: {e}")))?;
            ("preregistered", json, String::new())
        }
        Registration::SelfRegister { registration_token } => {
            check_token("registration.registration_token", registration_token)?;
            (
                "self-register",
                String::new(),
                registration_token.expose().to_owned(),
            )
        }
    };

    let values: BTreeMap<&str, String> = [
        ("TQ_MODE", mode.to_owned()),
        ("TQ_GITEA_URL", gitea_url.to_owned()),
        ("TQ_RUNNER_NAME", name.to_owned()),
        ("TQ_POOL", input.pool.clone()),
        ("TQ_LABELS", host_labels.join(",")),
        ("TQ_LIFETIME_MINUTES", minutes.to_string()),
        ("TQ_CONFIG", runner_config(input, &host_labels, minutes)),
        ("TQ_RUNNER_FILE", runner_file),
        ("TQ_REGISTRATION_TOKEN", registration_token),
    ]
    .into_iter()
    .collect();
    let block: String = VARIABLES
        .iter()
        .map(|var| format!("{var}={}\n", shell_quote(&values[var])))
        .collect();

    let start = TEMPLATE.find(VALUES_START).ok_or(RenderError::Template)?;
    let body_start = start + TEMPLATE[start..].find('\n').ok_or(RenderError::Template)? + 1;
    let end = TEMPLATE[body_start..]
        .find(VALUES_END)
        .ok_or(RenderError::Template)?
        + body_start;
    let script = format!("{}{block}{}", &TEMPLATE[..body_start], &TEMPLATE[end..]);
    if script.len() > USER_DATA_LIMIT {
        return Err(RenderError::TooLarge {
            size: script.len(),
            limit: USER_DATA_LIMIT,
        });
    }
    Ok(Secret::new(script))
}

/// The runner's `.runner` file; field names are the ones act_runner reads (gitea.com/gitea/act_runner
/// commit 8920c4a `internal/pkg/config/registration.go:15-23`), unchanged in gitea-runner through
/// v3.3.0.
#[derive(Serialize)]
struct RunnerFile<'a> {
    #[serde(rename = "WARNING")]
    warning: &'a str,
    id: i64,
    uuid: &'a str,
    name: &'a str,
    token: &'a str,
    address: &'a str,
    labels: &'a [String],
    ephemeral: bool,
}

/// The runner's config.yaml. Only keys that every supported runner knows: act_runner 0.2.x
/// ignores a key it does not know (`yaml.Unmarshal`, gitea.com/gitea/act_runner commit 8920c4a
/// `internal/pkg/config/config.go:84`), and gitea-runner from v3.0.0 loads the file the same
/// way and warns about unknown keys (v3.3.0 `internal/pkg/config/config.go:221-224`,
/// `:387-400`); a key an older runner skips would silently not apply. The tests hold the
/// written keys to `tests::ACCEPTED_KEYS`. Paths are under [`STATE_DIR`], which the script replaces.
fn runner_config(input: &UserDataInput, host_labels: &[String], minutes: u64) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let mut yaml = String::from("# Runner config written by the tinqs-ci boot script.\n");
    yaml.push_str("log:\n  level: info\n");
    yaml.push_str("runner:\n");
    yaml.push_str(&format!("  file: {}\n", q(&format!("{STATE_DIR}/.runner"))));
    yaml.push_str("  capacity: 1\n");
    yaml.push_str(&format!("  timeout: {minutes}m\n"));
    yaml.push_str(&format!(
        "  env_file: {}\n",
        q(&format!("{STATE_DIR}/job.env"))
    ));
    yaml.push_str("  envs:\n");
    yaml.push_str(&format!("    TINQS_POOL: {}\n", q(&input.pool)));
    yaml.push_str(&format!(
        "    TINQS_RUNNER_NAME: {}\n",
        q(input.runner_name.as_str())
    ));
    yaml.push_str("  labels:\n");
    for label in host_labels {
        yaml.push_str(&format!("    - {}\n", q(label)));
    }
    match &input.cache_url {
        // act_runner hands `external_server` to jobs as ACTIONS_CACHE_URL instead of starting
        // its own cache server; `v2: false` keeps gitea-runner v3.0 – v3.2 from pointing jobs'
        // cache clients at the v2 API, which this service does not speak (wiki/Cache.md).
        Some(url) => {
            yaml.push_str("cache:\n  enabled: true\n");
            yaml.push_str(&format!("  external_server: {}\n", q(url.expose())));
            yaml.push_str("  v2: false\n");
        }
        None => yaml.push_str("cache:\n  enabled: false\n"),
    }
    yaml.push_str("host:\n");
    yaml.push_str(&format!(
        "  workdir_parent: {}\n",
        q(&format!("{STATE_DIR}/work"))
    ));
    yaml
}

/// `s` as one bash word that expands to exactly `s`: single quotes, with each `'` written as
/// `'\''`. Nothing inside single quotes is special to bash.
#[must_use]
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `.runner` JSON a rendered boot script carries (`TQ_RUNNER_FILE`), read back the way
/// bash would read the assignment; `None` when the script assigns none or an empty one (the
/// self-register mode). For tools that play the instance's part, such as the end-to-end
/// harness that boots simulated runners from the user-data EC2 holds.
#[must_use]
pub fn runner_file_from_script(script: &str) -> Option<String> {
    assigned_value(script, "TQ_RUNNER_FILE").filter(|v| !v.is_empty())
}

/// The runner config's `cache.external_server` a rendered boot script carries (in
/// `TQ_CONFIG`); `None` when the cache is off. For tools that play the instance's part.
#[must_use]
pub fn cache_server_from_script(script: &str) -> Option<String> {
    let config = assigned_value(script, "TQ_CONFIG")?;
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config).ok()?;
    yaml.get("cache")?
        .get("external_server")?
        .as_str()
        .map(str::to_owned)
}

/// The value of a `VAR='…'` line as [`render`] writes it (single-quoted, each `'` written as
/// `'\''`), undoing the quoting; `None` when there is no such line or it is not quoted that way.
fn assigned_value(script: &str, var: &str) -> Option<String> {
    let prefix = format!("{var}='");
    let line_start = script
        .match_indices(&prefix)
        .map(|(at, _)| at)
        .find(|&at| at == 0 || script[..at].ends_with('\n'))?;
    let mut rest = &script[line_start + prefix.len()..];
    let mut out = String::new();
    loop {
        let close = rest.find('\'')?;
        out.push_str(&rest[..close]);
        rest = &rest[close + 1..];
        if let Some(after) = rest.strip_prefix("\\''") {
            out.push('\'');
            rest = after;
        } else if rest.is_empty() || rest.starts_with('\n') {
            return Some(out);
        } else {
            return None;
        }
    }
}

fn check_url(url: &str) -> Result<(), RenderError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    // NOTE: the URL is not echoed: it may carry credentials in its user-info part.
    match rest {
        Some(host)
            if !host.is_empty() && !host.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            Ok(())
        }
        _ => Err(invalid(
            "gitea_url",
            "must be an http(s) URL with no spaces or control characters",
        )),
    }
}

fn check_word(field: &str, value: &str) -> Result<(), RenderError> {
    match crate::text::label_problem(value) {
        Some(problem) => Err(invalid(
            field,
            format!("`{}` {problem}", value.escape_debug()),
        )),
        None => Ok(()),
    }
}

fn check_token(field: &str, token: &Secret) -> Result<(), RenderError> {
    let t = token.expose();
    if t.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) || t.len() > 255 {
        return Err(invalid(
            field,
            "must be at most 255 printable ASCII characters with no spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EXAMPLE;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
    const REG_TOKEN: &str = "reg-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    const UUID: &str = "3f2b6c1e-8a4d-4b9e-9c7f-1d2e3f4a5b6c";

    fn preregistered() -> Registration {
        Registration::Preregistered {
            id: 57,
            uuid: UUID.into(),
            token: Secret::new(TOKEN),
        }
    }

    fn input() -> UserDataInput {
        UserDataInput {
            gitea_url: "https://git.example.com/".into(),
            pool: "go".into(),
            labels: vec!["go".into(), "linux".into()],
            max_lifetime: Duration::from_secs(6 * 3600),
            runner_name: RunnerName::observed("tq-prod-job-42-1-a1"),
            registration: preregistered(),
            cache_url: None,
        }
    }

    #[test]
    fn with_a_cache_url_the_runner_uses_the_service_instead_of_its_own() {
        let cache_token = "ab".repeat(32);
        let mut i = input();
        let url =
            crate::cache::runner_url("http://10.0.0.5:8081", "tq-prod-job-42-1-a1", &cache_token);
        i.cache_url = Some(Secret::new(url.clone()));
        let text = render(&i).expect("renders").expose().to_owned();
        let yaml: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&value_of(&text, "TQ_CONFIG")).expect("config is YAML");
        assert_eq!(yaml["cache"]["enabled"].as_bool(), Some(true));
        assert_eq!(
            yaml["cache"]["external_server"].as_str(),
            Some(url.as_str())
        );
        assert_eq!(yaml["cache"]["v2"].as_bool(), Some(false));
        let mut paths = Vec::new();
        key_paths(&yaml, "", &mut paths);
        for path in &paths {
            assert!(ACCEPTED_KEYS.contains(&path.as_str()), "{path}");
        }
        assert_eq!(
            cache_server_from_script(&text).as_deref(),
            Some(url.as_str())
        );
        assert_eq!(
            cache_server_from_script(render(&input()).expect("renders").expose()),
            None,
            "no cache, no server"
        );
        i.cache_url = Some(Secret::new(format!("http://10.0.0.5:8081/x/{cache_token}")));
        let err = render(&i).expect_err("no trailing slash").to_string();
        assert!(
            err.contains("cache_url") && !err.contains(&cache_token),
            "{err}"
        );
    }

    /// Reads back the value a rendered `VAR='…'` assignment gives `VAR`, undoing
    /// [`shell_quote`] the way bash does.
    fn value_of(script: &str, var: &str) -> String {
        let prefix = format!("\n{var}='");
        let start = script.find(&prefix).expect("variable assigned") + prefix.len();
        let mut out = String::new();
        let mut rest = &script[start..];
        loop {
            let close = rest.find('\'').expect("closing quote");
            out.push_str(&rest[..close]);
            rest = &rest[close + 1..];
            if let Some(after) = rest.strip_prefix(r"\''") {
                out.push('\'');
                rest = after;
            } else {
                assert!(rest.starts_with('\n'), "assignment ends at the line end");
                return out;
            }
        }
    }

    #[test]
    fn preregistered_script_carries_a_runner_file_act_runner_can_read() {
        let script = render(&input()).expect("renders");
        let text = script.expose();
        assert!(text.starts_with("#!/bin/bash\n"));
        let file: serde_json::Value =
            serde_json::from_str(&value_of(text, "TQ_RUNNER_FILE")).expect(".runner is JSON");
        assert_eq!(
            file["id"],
            serde_json::json!(57),
            "id is a number, not a string"
        );
        assert_eq!(file["uuid"], UUID);
        assert_eq!(file["name"], "tq-prod-job-42-1-a1");
        assert_eq!(file["token"], TOKEN);
        assert_eq!(file["address"], "https://git.example.com");
        assert_eq!(file["labels"], serde_json::json!(["go:host", "linux:host"]));
        assert_eq!(file["ephemeral"], true);
        assert_eq!(value_of(text, "TQ_MODE"), "preregistered");
        assert_eq!(value_of(text, "TQ_REGISTRATION_TOKEN"), "");
        assert_eq!(value_of(text, "TQ_LIFETIME_MINUTES"), "360");
        assert_eq!(value_of(text, "TQ_LABELS"), "go:host,linux:host");
    }

    #[test]
    fn self_register_script_has_the_registration_token_and_no_runner_file() {
        let mut i = input();
        i.registration = Registration::SelfRegister {
            registration_token: Secret::new(REG_TOKEN),
        };
        let script = render(&i).expect("renders");
        let text = script.expose();
        assert_eq!(value_of(text, "TQ_MODE"), "self-register");
        assert_eq!(value_of(text, "TQ_REGISTRATION_TOKEN"), REG_TOKEN);
        assert_eq!(value_of(text, "TQ_RUNNER_FILE"), "");
        assert!(!text.contains(TOKEN));
    }

    #[test]
    fn runner_config_lists_host_labels_and_state_paths() {
        let text = render(&input()).expect("renders").expose().to_owned();
        let config = value_of(&text, "TQ_CONFIG");
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config).expect("config is YAML");
        assert_eq!(
            yaml["runner"]["labels"],
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[go:host, linux:host]").expect("yaml")
        );
        assert_eq!(yaml["runner"]["file"].as_str(), Some("@STATE_DIR@/.runner"));
        assert_eq!(yaml["runner"]["capacity"].as_u64(), Some(1));
        assert_eq!(yaml["runner"]["timeout"].as_str(), Some("360m"));
        assert_eq!(yaml["runner"]["envs"]["TINQS_POOL"].as_str(), Some("go"));
        assert_eq!(yaml["cache"]["enabled"].as_bool(), Some(false));
        assert_eq!(
            yaml["host"]["workdir_parent"].as_str(),
            Some("@STATE_DIR@/work")
        );
        assert!(!config.contains(TOKEN), "the config holds no secret");
    }

    /// Every key the rendered config may hold. act_runner knows each since 0.2.12
    /// (gitea.com/gitea/act_runner commit 8920c4a, `internal/pkg/config/config.go`: `log.level`
    /// :19; `runner.file`, `capacity`, `envs`, `env_file`, `timeout` :24-28; `runner.labels` :33;
    /// `cache.enabled` :39; `host.workdir_parent` :63; the sections :68-72), and gitea-runner keeps
    /// them unchanged through v3.3.0, where any other key stops it from starting.
    /// `runner.envs` is a free map of variable names.
    /// `cache.external_server` is act_runner's since 0.2.x (commit 8920c4a
    /// `internal/pkg/config/config.go:43`); `cache.v2` is gitea-runner's from v3.0.0
    /// (`internal/pkg/config/config.go:77`), and older runners skip it, which is what it asks
    /// of them anyway (they speak only the v1 cache API).
    const ACCEPTED_KEYS: [&str; 15] = [
        "log",
        "log.level",
        "runner",
        "runner.file",
        "runner.capacity",
        "runner.envs",
        "runner.env_file",
        "runner.timeout",
        "runner.labels",
        "cache",
        "cache.enabled",
        "cache.external_server",
        "cache.v2",
        "host",
        "host.workdir_parent",
    ];

    /// The dotted key paths of a config mapping, not descending into `runner.envs`.
    fn key_paths(value: &serde_yaml_ng::Value, prefix: &str, out: &mut Vec<String>) {
        let Some(map) = value.as_mapping() else {
            return;
        };
        for (key, child) in map {
            let key = key.as_str().expect("string keys");
            let path = if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}.{key}")
            };
            if path != "runner.envs" {
                key_paths(child, &path, out);
            }
            out.push(path);
        }
    }

    #[test]
    fn runner_config_holds_only_keys_both_runners_accept() {
        for registration in [
            preregistered(),
            Registration::SelfRegister {
                registration_token: Secret::new(REG_TOKEN),
            },
        ] {
            let mut i = input();
            i.registration = registration;
            let text = render(&i).expect("renders").expose().to_owned();
            let yaml: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&value_of(&text, "TQ_CONFIG")).expect("config is YAML");
            let mut paths = Vec::new();
            key_paths(&yaml, "", &mut paths);
            assert!(paths.len() >= 10, "{paths:?}");
            for path in &paths {
                assert!(
                    ACCEPTED_KEYS.contains(&path.as_str()),
                    "`{path}` is not a key both act_runner 0.2.x and gitea-runner accept"
                );
            }
        }
    }

    #[test]
    fn the_script_looks_for_gitea_runner_then_act_runner_before_changing_anything() {
        let text = render(&input()).expect("renders").expose().to_owned();
        let order = text
            .find("for name in gitea-runner act_runner; do")
            .expect("gitea-runner is looked for first");
        let search = text
            .find("elif ! runner_bin=$(find_runner); then")
            .expect("the search picks the binary");
        let watchdog = text.find("shutdown -P").expect("watchdog");
        assert!(
            order < search && search < watchdog,
            "found before the watchdog"
        );
        assert!(text.contains("runner_path=${TINQS_RUNNER_PATH:-$PATH:/usr/local/bin:/usr/bin}"));
        let logged = text
            .find(r#"log "runner binary $runner_bin: ${runner_version:-version unknown}""#)
            .expect("the binary and its version are logged");
        assert!(
            watchdog < logged,
            "a hung --version cannot outlive the watchdog"
        );
        for run in [
            r#""$runner_bin" register --no-interactive --ephemeral"#,
            r#""$runner_bin" daemon --once --config "$config_file""#,
        ] {
            assert!(text.contains(run), "{run}");
        }
        assert!(
            !text.contains("act_runner_bin"),
            "one variable for either binary"
        );
    }

    #[test]
    fn no_runner_binary_fails_loudly_and_powers_off() {
        let text = render(&input()).expect("renders").expose().to_owned();
        let failure = text
            .find(
                "fail \"FATAL: no runner binary: neither gitea-runner nor act_runner is installed \
                 (searched $runner_path); this image cannot run jobs\"",
            )
            .expect("a failure that names both binaries and where it looked");
        // fail logs and exits 1; the EXIT trap, set before any check, powers off.
        assert!(text.contains("fail() {\n  log \"$*\"\n  exit 1\n}"));
        let trap = text.find("trap finish EXIT").expect("trap");
        let finish = text.find("finish() {").expect("finish");
        assert!(finish < trap && trap < failure);
        assert!(
            text[finish..trap].contains("poweroff ||"),
            "finish powers off"
        );
    }

    #[test]
    fn quotes_and_shell_syntax_in_values_stay_data() {
        let mut i = input();
        let label = r#"a'b"$(touch${IFS}x)`id`\"#;
        i.labels.push(label.into());
        i.gitea_url = "https://git.example.com/x'$(id)'".into();
        let text = render(&i).expect("renders").expose().to_owned();
        assert_eq!(
            value_of(&text, "TQ_GITEA_URL"),
            "https://git.example.com/x'$(id)'"
        );
        assert_eq!(
            value_of(&text, "TQ_LABELS"),
            format!("go:host,linux:host,{label}:host")
        );
        let config = value_of(&text, "TQ_CONFIG");
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&config).expect("still YAML");
        assert_eq!(
            yaml["runner"]["labels"][2].as_str(),
            Some(format!("{label}:host").as_str())
        );
        let file: serde_json::Value =
            serde_json::from_str(&value_of(&text, "TQ_RUNNER_FILE")).expect("JSON");
        assert_eq!(file["address"], "https://git.example.com/x'$(id)'");
    }

    #[test]
    fn shell_quote_closes_and_reopens_around_single_quotes() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn only_the_values_block_changes() {
        let text = render(&input()).expect("renders").expose().to_owned();
        let (head, _) = TEMPLATE.split_once(VALUES_START).expect("start marker");
        let (_, tail) = TEMPLATE.split_once(VALUES_END).expect("end marker");
        assert!(text.starts_with(head));
        assert!(text.ends_with(tail));
        for var in VARIABLES {
            assert_eq!(
                text.matches(&format!("\n{var}=")).count(),
                1,
                "{var} assigned once"
            );
        }
    }

    #[test]
    fn template_values_block_assigns_exactly_the_rendered_variables() {
        let (_, rest) = TEMPLATE.split_once(VALUES_START).expect("start marker");
        let (block, _) = rest.split_once(VALUES_END).expect("end marker");
        let vars: Vec<&str> = block
            .lines()
            .filter_map(|l| l.split_once("=''").map(|(v, _)| v))
            .collect();
        assert_eq!(vars, VARIABLES);
    }

    #[test]
    fn lifetime_rounds_down_to_whole_minutes() {
        let mut i = input();
        i.max_lifetime = Duration::from_secs(3 * 3600 + 59);
        let text = render(&i).expect("renders").expose().to_owned();
        assert_eq!(value_of(&text, "TQ_LIFETIME_MINUTES"), "180");
        i.max_lifetime = Duration::from_secs(59);
        let err = render(&i).expect_err("under a minute");
        assert!(err.to_string().contains("max_lifetime"), "{err}");
    }

    #[test]
    fn oversized_script_is_refused_with_its_size() {
        let mut i = input();
        i.labels
            .extend((0..400).map(|n| format!("label-number-{n:04}")));
        let err = render(&i).expect_err("too large");
        let RenderError::TooLarge { size, limit } = err else {
            panic!("expected TooLarge, got {err}")
        };
        assert!(size > USER_DATA_LIMIT);
        assert_eq!(limit, 16_384);
        assert!(!err.to_string().contains(TOKEN));
        assert!(
            err.to_string().contains("user-data limit of 16384 bytes"),
            "{err}"
        );
    }

    #[test]
    fn every_example_pool_renders_within_the_limit() {
        let config = Config::parse(EXAMPLE).expect("example config");
        for pool in config.pools.keys() {
            let i = UserDataInput::for_pool(
                &config,
                pool,
                RunnerName::observed("tq-demo-op-x-a1"),
                preregistered(),
            )
            .expect("pool exists");
            assert_eq!(i.labels[0], *pool);
            assert_eq!(i.max_lifetime, config.max_lifetime(pool));
            let script = render(&i).expect("renders");
            assert!(script.expose().len() <= USER_DATA_LIMIT);
        }
    }

    #[test]
    fn unknown_pool_error_lists_the_configured_pools() {
        let config = Config::parse(EXAMPLE).expect("example config");
        let err =
            UserDataInput::for_pool(&config, "gpu", RunnerName::observed("x"), preregistered())
                .expect_err("unknown pool");
        assert_eq!(
            err.to_string(),
            "pool `gpu` is not in the configuration; configured pools: docker, go"
        );
    }

    #[test]
    fn bad_tokens_are_refused_without_echoing_them() {
        for token in ["", "sec ret", "line\nbreak", "tab\there"] {
            let mut i = input();
            i.registration = Registration::Preregistered {
                id: 1,
                uuid: UUID.into(),
                token: Secret::new(token),
            };
            let err = render(&i).expect_err("bad token").to_string();
            assert!(err.contains("registration.token"), "{err}");
            assert!(
                token.is_empty() || !err.contains(token),
                "token echoed: {err}"
            );
            i.registration = Registration::SelfRegister {
                registration_token: Secret::new(token),
            };
            let err = render(&i).expect_err("bad registration token").to_string();
            assert!(err.contains("registration.registration_token"), "{err}");
            assert!(
                token.is_empty() || !err.contains(token),
                "token echoed: {err}"
            );
        }
    }

    #[test]
    fn bad_inputs_name_the_field() {
        type Breaker = Box<dyn Fn(&mut UserDataInput)>;
        let cases: Vec<(&str, Breaker)> = vec![
            (
                "gitea_url",
                Box::new(|i| i.gitea_url = "git.example.com".into()),
            ),
            (
                "gitea_url",
                Box::new(|i| i.gitea_url = "https://git example.com".into()),
            ),
            ("labels[1]", Box::new(|i| i.labels[1] = "two words".into())),
            (
                "labels[1]",
                Box::new(|i| i.labels[1] = "ubuntu:docker".into()),
            ),
            ("labels", Box::new(|i| i.labels = vec!["linux".into()])),
            ("labels", Box::new(|i| i.labels.clear())),
            ("pool", Box::new(|i| i.pool = String::new())),
            (
                "runner_name",
                Box::new(|i| i.runner_name = RunnerName::observed("a b")),
            ),
            (
                "registration.id",
                Box::new(|i| {
                    i.registration = Registration::Preregistered {
                        id: 0,
                        uuid: UUID.into(),
                        token: Secret::new(TOKEN),
                    }
                }),
            ),
            (
                "registration.uuid",
                Box::new(|i| {
                    i.registration = Registration::Preregistered {
                        id: 3,
                        uuid: "x'y".into(),
                        token: Secret::new(TOKEN),
                    }
                }),
            ),
        ];
        for (field, break_it) in cases {
            let mut i = input();
            break_it(&mut i);
            let err = render(&i).expect_err(field).to_string();
            assert!(
                err.contains(&format!("cannot render user-data: {field} ")),
                "{field}: {err}"
            );
            assert!(!err.contains(TOKEN), "{err}");
        }
    }

    #[test]
    fn a_url_with_credentials_is_not_echoed_in_errors() {
        let mut i = input();
        i.gitea_url = "https://user:hunter2@git example.com".into();
        let err = render(&i).expect_err("space").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn the_runner_file_is_read_back_from_a_rendered_script() {
        let script = render(&input()).expect("renders");
        let text = runner_file_from_script(script.expose()).expect("a .runner file");
        assert_eq!(text, value_of(script.expose(), "TQ_RUNNER_FILE"));
        let file: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(file["token"], TOKEN);
        assert_eq!(file["uuid"], UUID);
        assert_eq!(file["name"], "tq-prod-job-42-1-a1");
    }

    #[test]
    fn single_quotes_inside_the_runner_file_survive_the_round_trip() {
        let mut i = input();
        i.gitea_url = "https://git.example.com/it's/here".into();
        let script = render(&i).expect("renders");
        let text = runner_file_from_script(script.expose()).expect("a .runner file");
        let file: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(file["address"], "https://git.example.com/it's/here");
    }

    #[test]
    fn a_self_register_script_or_plain_text_has_no_runner_file() {
        let mut i = input();
        i.registration = Registration::SelfRegister {
            registration_token: Secret::new(REG_TOKEN),
        };
        let script = render(&i).expect("renders");
        assert_eq!(runner_file_from_script(script.expose()), None);
        assert_eq!(runner_file_from_script("#!/bin/bash\necho hi\n"), None);
        assert_eq!(
            runner_file_from_script("TQ_RUNNER_FILE='unterminated"),
            None
        );
        assert_eq!(
            runner_file_from_script("TQ_RUNNER_FILE='{}'\n"),
            Some("{}".to_owned())
        );
        assert_eq!(
            runner_file_from_script("XTQ_RUNNER_FILE='{}'\n"),
            None,
            "only a whole assignment counts"
        );
    }

    #[test]
    fn rendered_script_debug_output_is_redacted() {
        let script = render(&input()).expect("renders");
        assert_eq!(format!("{script:?}"), "[redacted]");
        assert!(!format!("{:?}", input()).contains(TOKEN));
    }
}
