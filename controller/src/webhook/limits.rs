//! What one event may put in a run, checked at the door before anything is stored or spooled.
//!
//! A DynamoDB item is at most 400 KB; a body may be 1 MiB. An event whose run could never be
//! stored is refused (422) instead of being accepted and then failing for ever. Limits, in
//! characters:
//!
//! | Field | Limit | Source |
//! |---|---|---|
//! | job name | 255 | Gitea's: `action_run_job.name` is `VARCHAR(255)` (go-gitea/gitea, commit 01a3d629d20d, `models/actions/run_job.go` line 31) |
//! | runner name (in-progress events) | 255 | Gitea's: `action_runner.name` is `VARCHAR(255)` (go-gitea/gitea, commit 04813dd7d80c, `models/actions/runner.go` line 29) |
//! | labels (`runs-on`) | 64 labels of 255 each | ours: Gitea keeps `runs_on` and a runner's labels as unbounded JSON `TEXT` (same files) |
//! | repository `owner/name` | 255 | ours (Gitea's owner and repository names are far shorter); in push mode also exactly `owner/name` of letters, digits, `-`, `_` and `.` (not `.` or `..`), since it becomes part of Gitea API paths ([`check_repo`]) |
//! | conclusion | 64 | ours |
//!
//! At the limits a run's item stays under 70 KB, far below DynamoDB's 400 KB.

use model::desired::{JobState, RunSpec};

/// The most `runs-on` labels one run may have (ours).
pub const MAX_LABELS: usize = 64;
/// The longest label, in characters (ours).
pub const MAX_LABEL_CHARS: usize = 255;
/// The longest job name, in characters (Gitea's `VARCHAR(255)`).
pub const MAX_JOB_NAME_CHARS: usize = 255;
/// The longest runner name, in characters (Gitea's `VARCHAR(255)`).
pub const MAX_RUNNER_CHARS: usize = 255;
/// The longest repository `owner/name`, in characters (ours).
pub const MAX_REPO_CHARS: usize = 255;
/// The longest job conclusion, in characters (ours).
pub const MAX_CONCLUSION_CHARS: usize = 64;

fn at_most(field: &str, value: &str, max: usize) -> Result<(), String> {
    let n = value.chars().count();
    if n > max {
        return Err(format!(
            "{field} is {n} characters long; at most {max} are accepted"
        ));
    }
    Ok(())
}

/// Whether a run with `spec` can be stored; otherwise what is too big (the value itself is
/// never echoed).
///
/// # Errors
/// A short reason naming the field and its limit.
pub fn check_spec(spec: &RunSpec) -> Result<(), String> {
    if spec.labels.len() > MAX_LABELS {
        return Err(format!(
            "the job has {} labels; at most {MAX_LABELS} are accepted",
            spec.labels.len()
        ));
    }
    for (i, label) in spec.labels.iter().enumerate() {
        at_most(&format!("label {}", i + 1), label, MAX_LABEL_CHARS)?;
    }
    if let Some(repo) = &spec.repo {
        at_most("the repository name", repo, MAX_REPO_CHARS)?;
    }
    if let Some(name) = spec.job.as_ref().and_then(|j| j.name.as_deref()) {
        at_most("the job name", name, MAX_JOB_NAME_CHARS)?;
    }
    check_state(&spec.job_state)
}

/// Whether `repo` can be named in a Gitea API path: at most [`MAX_REPO_CHARS`], exactly one
/// `/` between an owner and a name of ASCII letters, digits, `-`, `_` and `.`, neither of
/// them `.` or `..` (ours: nothing in it can change the path it is put in).
///
/// # Errors
/// A short reason; the value itself is never echoed.
pub fn check_repo(repo: &str) -> Result<(), String> {
    at_most("the repository name", repo, MAX_REPO_CHARS)?;
    let part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match repo.split_once('/') {
        Some((owner, name)) if part(owner) && part(name) => Ok(()),
        _ => Err("the repository is not `owner/name` of letters, digits, '-', '_' and '.'".into()),
    }
}

/// Whether a reported job state can be stored.
///
/// # Errors
/// A short reason naming the field and its limit.
pub fn check_state(state: &JobState) -> Result<(), String> {
    match state {
        JobState::Queued => Ok(()),
        JobState::InProgress { runner } => runner
            .as_deref()
            .map_or(Ok(()), |r| at_most("the runner name", r, MAX_RUNNER_CHARS)),
        JobState::Completed { conclusion } => {
            at_most("the conclusion", conclusion, MAX_CONCLUSION_CHARS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::desired::{JobRef, Origin};
    use model::Timestamp;

    fn spec(labels: Vec<String>) -> RunSpec {
        RunSpec::for_job(
            JobRef {
                id: 1,
                attempt: 1,
                name: Some("build".into()),
                run_id: None,
            },
            labels,
            Some("acme/web".into()),
            Origin::Webhook,
            Timestamp::EPOCH,
        )
    }

    #[test]
    fn a_repository_named_in_a_gitea_path_is_owner_slash_name() {
        // Found by fuzzing push bodies: any full_name went into Gitea's API paths.
        for ok in ["acme/web", "a-b_c.d/x.y", "A1/b2"] {
            assert_eq!(check_repo(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "acme",
            "/web",
            "acme/",
            "acme/web/x",
            "../web",
            "acme/..",
            "acme/.",
            "acme/we b",
            "acme/w%2e",
            "acme/w?x",
            "acme/w#x",
            "acme/wé",
            "acme/w\u{1b}",
        ] {
            let err = check_repo(bad).expect_err(bad);
            assert!(err.contains("not `owner/name`"), "{bad}: {err}");
        }
        let long = format!("acme/{}", "r".repeat(MAX_REPO_CHARS));
        assert!(check_repo(&long).expect_err("long").contains("at most 255"));
    }

    #[test]
    fn runs_within_the_limits_pass_and_the_largest_stays_far_below_dynamodbs_item_limit() {
        assert_eq!(check_spec(&spec(vec!["linux".into()])), Ok(()));
        let mut big = spec(vec!["é".repeat(MAX_LABEL_CHARS); MAX_LABELS]);
        big.repo = Some("r".repeat(MAX_REPO_CHARS));
        assert_eq!(check_spec(&big), Ok(()));
        let bytes = serde_json::to_vec(&big).expect("encodes").len();
        assert!(bytes < 70_000, "{bytes}");
    }

    #[test]
    fn each_limit_is_named_and_the_value_never_echoed() {
        let long = "x".repeat(450_000);
        let e = check_spec(&spec(vec!["linux".into(), long.clone()])).expect_err("too long");
        assert_eq!(
            e,
            "label 2 is 450000 characters long; at most 255 are accepted"
        );
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!("l{i}")).collect();
        assert!(check_spec(&spec(many))
            .expect_err("too many")
            .contains("65 labels"));
        let mut s = spec(vec![]);
        s.job.as_mut().expect("job").name = Some("n".repeat(256));
        assert!(check_spec(&s).expect_err("name").contains("job name"));
        let mut s = spec(vec![]);
        s.repo = Some(long.clone());
        assert!(check_spec(&s).expect_err("repo").contains("repository"));
        let runner = JobState::InProgress {
            runner: Some(long.clone()),
        };
        assert!(check_state(&runner)
            .expect_err("runner")
            .contains("runner name"));
        let done = JobState::Completed { conclusion: long };
        assert!(check_state(&done)
            .expect_err("conclusion")
            .contains("conclusion"));
    }
}
