//! The Gitea checks, and what the token needs at each scope: the fix a refusal (403) prints
//! names the role and token scope the call needs (see `wiki/Gitea-Behaviour.md#permissions`).

use model::config::{Config, DemandSource, RunnerScope};
use model::RunnerName;

use crate::forge::{Forge, ForgeError, ForgeVersion};

use super::check::{Check, PROBE_TIMEOUT};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
