//! The checks made on this host alone: the configuration file, the secrets in the
//! environment, the spool directory.

use std::path::Path;

use model::config::{Config, DemandSource};

use super::check::Check;
use super::gitea::token_need;

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
                if what == "webhook secret" && len < crate::cmd::serve::MIN_WEBHOOK_SECRET_LEN {
                    Check::problem(
                        name,
                        format!("set ({what}), but only {len} characters long"),
                        format!("use a random secret of at least {} characters, in Gitea's webhook and here", crate::cmd::serve::MIN_WEBHOOK_SECRET_LEN),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::doctor::check::Verdict;

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
