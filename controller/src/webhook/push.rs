//! Push mode, translated: a `push` payload becomes a push to match ([`translate`]), and that
//! push with the workflow files at its commit becomes one desired run per job instance of
//! every workflow it triggers ([`runs`]). Pure: Gitea's reads and the store's writes are
//! [`super::record`]'s.
//!
//! Order, as Gitea does it (`wiki/Gitea-Behaviour.md#push-events-and-workflow-files`): a push
//! by the Actions bot triggers nothing, nor does one that starts no workflow whatever the
//! files say ([`PushEvent::starts_nothing`]: a deleted ref, a skip marker in the head commit
//! message; the same check [`Workflow::match_push`] starts with, asked here before any file is
//! read). Otherwise the workflow files are read at `after` (the first existing of
//! `.gitea/workflows` and `.github/workflows`), each is matched with [`Workflow::match_push`],
//! and a triggered one is expanded with [`expand_jobs`]. Changed files are asked of Gitea only
//! when a workflow has a `paths` or `paths-ignore` filter on a branch push
//! ([`needs_changed_files`]). Run ids are [`RunId::for_push`] of repository, commit, workflow
//! path, job id and instance index, so a redelivered push changes nothing.

use model::desired::{DesiredRun, JobState, Origin, RunSpec};
use model::workflow::{expand_jobs, Labels, PushEvent, Workflow};
use model::{RunId, Timestamp};
use serde::Deserialize;

use super::decode::{parse, Decoded, Invalid};
use super::ACTIONS_BOT;
use crate::forge::gitea::RepoRef;
use crate::forge::RepoFile;
use crate::quiet::{cap, FIELD_CHARS};

#[derive(Deserialize)]
struct PushHook {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    before: String,
    after: String,
    repository: RepoRef,
    #[serde(default)]
    pusher: Option<HookUser>,
    #[serde(default)]
    head_commit: Option<HookCommit>,
}

#[derive(Deserialize)]
struct HookUser {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct HookCommit {
    #[serde(default)]
    message: Option<String>,
}

/// A push whose workflow files decide what runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Push {
    /// `owner/name`, safe to put in a Gitea API path ([`super::limits::check_repo`]).
    pub repo: String,
    /// The push as matching needs it; `before` and `after` are commit ids.
    pub event: PushEvent,
}

impl Push {
    /// The commit pushed.
    pub(super) fn after(&self) -> &str {
        self.event.after.as_deref().unwrap_or_default()
    }

    /// The commit before the push (empty when the payload had none).
    pub(super) fn before(&self) -> &str {
        self.event.before.as_deref().unwrap_or_default()
    }
}

/// Translates a `push` payload.
///
/// # Errors
/// [`Invalid::Malformed`] for a body that is not a push payload, or an `after` (or a non-empty
/// `before`) that is not a commit id; [`Invalid::Refused`] for a repository that is not
/// `owner/name` ([`super::limits::check_repo`]). Both are checked before either value is
/// named to Gitea, and neither is repeated in the error.
pub(super) fn translate(body: &[u8]) -> Result<Decoded<Push>, Invalid> {
    let push: PushHook = parse(body)?;
    let Some(repo) = push.repository.full_name.filter(|r| !r.is_empty()) else {
        return Err(Invalid::Malformed(
            "push payload has no repository.full_name".into(),
        ));
    };
    if push.after.is_empty() {
        return Err(Invalid::Malformed(
            "push payload has no `after` commit".into(),
        ));
    }
    super::limits::check_repo(&repo).map_err(Invalid::Refused)?;
    // Checked before the commit is named to Gitea or in an answer (found by fuzzing: any
    // string was passed on to Gitea and repeated in the 422).
    for (field, value) in [("after", &push.after), ("before", &push.before)] {
        let absent_before = value.is_empty() && field == "before";
        if !absent_before && !is_commit_id(value) {
            return Err(Invalid::Malformed(format!(
                "push payload's `{field}` is not a commit id (40 or 64 hexadecimal characters)"
            )));
        }
    }
    let by_bot = push.pusher.as_ref().is_some_and(|p| {
        [&p.login, &p.username]
            .iter()
            .any(|n| n.as_deref() == Some(ACTIONS_BOT))
    });
    if by_bot {
        return Ok(Decoded::Ignore(
            "push by the Actions bot triggers no workflow".into(),
        ));
    }
    let event = PushEvent {
        git_ref: push.git_ref,
        before: Some(push.before),
        after: Some(push.after),
        changed_files: None,
        head_commit_message: push.head_commit.and_then(|c| c.message),
    };
    if let Some(why) = event.starts_nothing() {
        return Ok(Decoded::Ignore(why));
    }
    Ok(Decoded::Use(Push { repo, event }))
}

/// How loud a [`Note`] is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Debug,
    Info,
    Warn,
}

/// Something about one workflow file or job that gets no run, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Note {
    pub level: Level,
    /// What happened, as a fixed message.
    pub what: &'static str,
    /// The workflow file.
    pub path: String,
    /// The job, when the note is about one.
    pub job: Option<String>,
    /// Why, in words.
    pub reason: Option<String>,
}

/// The workflow files that parse, with a note for each that does not (Gitea skips those too).
pub(super) fn parse_workflows(files: Vec<RepoFile>) -> (Vec<(String, Workflow)>, Vec<Note>) {
    let mut workflows = Vec::new();
    let mut notes = Vec::new();
    for file in files {
        match Workflow::parse(&file.content) {
            Ok(w) => workflows.push((file.path, w)),
            Err(e) => notes.push(Note {
                level: Level::Warn,
                what: "workflow file skipped: invalid",
                path: file.path,
                job: None,
                reason: Some(e.to_string()),
            }),
        }
    }
    (workflows, notes)
}

/// Whether matching needs the files the push changed: a branch push and a workflow with a
/// `paths` or `paths-ignore` filter.
pub(super) fn needs_changed_files(push: &Push, workflows: &[(String, Workflow)]) -> bool {
    push.event.git_ref.starts_with("refs/heads/")
        && workflows.iter().any(|(_, w)| {
            w.push
                .as_ref()
                .is_some_and(|p| p.paths.is_some() || p.paths_ignore.is_some())
        })
}

/// The runs `push` (with its changed files, when they were needed) creates at `at`: one per
/// job instance of each workflow it triggers whose `runs-on` is known, with a note for each
/// workflow not triggered and each job that gets no runner.
///
/// # Errors
/// [`Invalid::Refused`] when any run is over a [limit](super::limits), naming the workflow and
/// job: a push is stored whole or refused whole.
pub(super) fn runs(
    push: &Push,
    workflows: &[(String, Workflow)],
    at: Timestamp,
) -> Result<(Vec<DesiredRun>, Vec<Note>), Invalid> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let note = |level, what, path: &str, job: Option<&str>, reason: Option<String>| Note {
        level,
        what,
        path: path.to_owned(),
        job: job.map(str::to_owned),
        reason,
    };
    for (path, workflow) in workflows {
        let decision = workflow.match_push(&push.event);
        if !decision.triggered {
            let why = Some(decision.reason);
            notes.push(note(
                Level::Debug,
                "workflow not triggered",
                path,
                None,
                why,
            ));
            continue;
        }
        let expansion = expand_jobs(workflow);
        for skipped in &expansion.not_expanded {
            let (job, why) = (Some(skipped.job_id.as_str()), Some(skipped.reason.clone()));
            notes.push(note(Level::Info, "job gets no runner", path, job, why));
        }
        for instance in expansion.instances {
            let job = Some(instance.job_id.as_str());
            let labels = match instance.runs_on {
                Labels::Known(labels) if !labels.is_empty() => labels,
                Labels::Known(_) => {
                    let what = "job has no runs-on; no runner";
                    notes.push(note(Level::Warn, what, path, job, None));
                    continue;
                }
                Labels::Unknown { reason, .. } => {
                    let what = "runs-on unknown before the run; no runner";
                    notes.push(note(Level::Warn, what, path, job, Some(reason)));
                    continue;
                }
            };
            let index = u32::try_from(instance.index).unwrap_or(u32::MAX);
            let id = RunId::for_push(&push.repo, push.after(), path, &instance.job_id, index);
            let spec = RunSpec {
                labels,
                pool: None,
                repo: Some(push.repo.clone()),
                job: None,
                origin: Origin::Push,
                job_state: JobState::Queued,
                cancel: false,
                created_at: at,
            };
            super::limits::check_spec(&spec).map_err(|e| {
                let (path, job) = (cap(path, FIELD_CHARS), cap(&instance.job_id, FIELD_CHARS));
                Invalid::Refused(format!("{path} job {job}: {e}"))
            })?;
            out.push(DesiredRun::new(id, spec));
        }
    }
    Ok((out, notes))
}

/// A Git object id: SHA-1 (40) or SHA-256 (64, Gitea 1.22+ repositories) in hexadecimal.
fn is_commit_id(value: &str) -> bool {
    matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::testing::T0;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn body(after: &str, message: &str, pusher: &str) -> Vec<u8> {
        serde_json::json!({
            "ref": "refs/heads/main",
            "before": "",
            "after": after,
            "repository": {"full_name": "acme/app"},
            "pusher": {"login": pusher},
            "head_commit": {"message": message},
        })
        .to_string()
        .into_bytes()
    }

    fn workflow(text: &str) -> (String, Workflow) {
        (
            ".gitea/workflows/ci.yml".to_owned(),
            Workflow::parse(text).expect("parses"),
        )
    }

    #[test]
    fn a_push_that_starts_nothing_is_ignored_with_the_models_reason() {
        let deleted = translate(&body(&"0".repeat(40), "drop", "dev")).expect("valid");
        let Decoded::Ignore(why) = deleted else {
            panic!("not ignored: {deleted:?}");
        };
        assert!(why.contains("deletes refs/heads/main"), "{why}");
        let skipped = translate(&body(SHA, "wip [skip ci]", "dev")).expect("valid");
        assert!(
            matches!(&skipped, Decoded::Ignore(why) if why.contains("`[skip ci]`")),
            "{skipped:?}"
        );
        let bot = translate(&body(SHA, "x", ACTIONS_BOT)).expect("valid");
        assert!(matches!(bot, Decoded::Ignore(_)), "{bot:?}");
    }

    #[test]
    fn bad_pushes_name_the_field_and_never_echo_it() {
        let err = translate(&body("not-a-sha", "x", "dev")).expect_err("invalid");
        assert_eq!(
            err,
            Invalid::Malformed(
                "push payload's `after` is not a commit id (40 or 64 hexadecimal characters)"
                    .into()
            )
        );
        let no_repo = br#"{"ref":"refs/heads/main","after":"x","repository":{}}"#;
        assert_eq!(
            translate(no_repo).expect_err("invalid"),
            Invalid::Malformed("push payload has no repository.full_name".into())
        );
        let odd_repo = format!(
            r#"{{"ref":"refs/heads/main","after":"{SHA}","repository":{{"full_name":"../../etc"}}}}"#
        );
        let Err(Invalid::Refused(why)) = translate(odd_repo.as_bytes()) else {
            panic!("refused");
        };
        assert!(!why.contains("etc"), "{why}");
    }

    #[test]
    fn a_triggered_workflow_gives_one_run_per_job_with_stable_ids() {
        let Decoded::Use(push) = translate(&body(SHA, "feat", "dev")).expect("valid") else {
            panic!("ignored");
        };
        let workflows = vec![
            workflow("on: push\njobs:\n  build:\n    runs-on: [go, linux]\n    steps: [{run: make}]\n  lint:\n    runs-on: ${{ matrix.os }}\n    steps: [{run: make}]\n"),
            (
                ".gitea/workflows/tags.yml".to_owned(),
                Workflow::parse("on:\n  push:\n    tags: ['v*']\njobs:\n  t:\n    runs-on: go\n    steps: [{run: x}]\n")
                    .expect("parses"),
            ),
        ];
        assert!(!needs_changed_files(&push, &workflows));
        let (runs, notes) = runs(&push, &workflows, T0).expect("runs");
        assert_eq!(runs.len(), 1, "{notes:?}");
        assert_eq!(
            runs[0].id,
            RunId::for_push("acme/app", SHA, ".gitea/workflows/ci.yml", "build", 0)
        );
        assert_eq!(runs[0].spec.labels, ["go", "linux"]);
        assert_eq!(runs[0].spec.origin, Origin::Push);
        assert!(notes
            .iter()
            .any(|n| n.level == Level::Debug && n.path.ends_with("tags.yml")));
        assert!(
            notes.iter().any(|n| n.job.as_deref() == Some("lint")),
            "{notes:?}"
        );
    }
}
