//! Push mode: a `push` event becomes one desired run per job instance of every workflow the
//! push triggers.
//!
//! Order, as Gitea does it (`wiki/Gitea-Behaviour.md#push-events-and-workflow-files`): a
//! deleted ref, a push by the Actions bot, or a head commit message with a skip string
//! triggers nothing. Otherwise the workflow files are read at `after` (the first existing of
//! `.gitea/workflows` and `.github/workflows`), each is matched with [`Workflow::match_push`],
//! and a triggered one is expanded with [`expand_jobs`]. Changed files are asked of Gitea only
//! when a workflow has a `paths` or `paths-ignore` filter on a branch push. Run ids are
//! [`RunId::for_push`] of repository, commit, workflow path, job id and instance index, so a
//! redelivered push changes nothing.

use model::desired::{DesiredRun, JobState, Origin, RunSpec};
use model::workflow::{expand_jobs, Labels, PushEvent, Workflow};
use model::{RunId, Timestamp};
use serde::Deserialize;

use super::{parse, Applied, ApplyError, WebhookState, ACTIONS_BOT};
use crate::forge::gitea::{is_zero_sha, RepoRef};
use crate::forge::ForgeError;
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

pub(super) async fn apply_push(
    state: &WebhookState,
    body: &[u8],
    at: Timestamp,
) -> Result<Applied, ApplyError> {
    let push: PushHook = parse(body)?;
    let Some(repo) = push.repository.full_name.filter(|r| !r.is_empty()) else {
        return Err(ApplyError::Malformed(
            "push payload has no repository.full_name".into(),
        ));
    };
    if push.after.is_empty() {
        return Err(ApplyError::Malformed(
            "push payload has no `after` commit".into(),
        ));
    }
    super::limits::check_repo(&repo).map_err(ApplyError::Refused)?;
    // Checked before the commit is named to Gitea or in an answer (found by fuzzing: any
    // string was passed on to Gitea and repeated in the 422).
    for (field, value) in [("after", &push.after), ("before", &push.before)] {
        let absent_before = value.is_empty() && field == "before";
        if !absent_before && !is_commit_id(value) {
            return Err(ApplyError::Malformed(format!(
                "push payload's `{field}` is not a commit id (40 or 64 hexadecimal characters)"
            )));
        }
    }
    if is_zero_sha(&push.after) {
        return Ok(Applied::Ignored("push deletes the ref"));
    }
    let by_bot = push.pusher.as_ref().is_some_and(|p| {
        [&p.login, &p.username]
            .iter()
            .any(|n| n.as_deref() == Some(ACTIONS_BOT))
    });
    if by_bot {
        return Ok(Applied::Ignored(
            "push by the Actions bot triggers no workflow",
        ));
    }
    let message = push.head_commit.and_then(|c| c.message);
    if let Some(m) = &message {
        if state
            .inner
            .skip_strings
            .iter()
            .any(|s| !s.is_empty() && m.contains(s.as_str()))
        {
            return Ok(Applied::Ignored("head commit asks to skip CI"));
        }
    }
    let Some(forge) = state.inner.forge.as_ref() else {
        // WebhookState::new refuses push mode without a forge.
        return Ok(Applied::Ignored("no Gitea client for push mode"));
    };

    let files = forge.workflow_files(&repo, &push.after).await?;
    let mut workflows = Vec::new();
    for file in files {
        match Workflow::parse(&file.content) {
            Ok(w) => workflows.push((file.path, w)),
            Err(e) => {
                tracing::warn!(repo, path = file.path, error = %e, "workflow file skipped: invalid")
            }
        }
    }
    if workflows.is_empty() {
        return Ok(Applied::Ignored("no workflow files at the pushed commit"));
    }

    let branch_push = push.git_ref.starts_with("refs/heads/");
    let needs_changes = branch_push
        && workflows.iter().any(|(_, w)| {
            w.push
                .as_ref()
                .is_some_and(|p| p.paths.is_some() || p.paths_ignore.is_some())
        });
    let changed_files = if needs_changes {
        match forge.changed_files(&repo, &push.before, &push.after).await {
            Ok(files) => files,
            // Gitea cannot diff either: path-filtered workflows do not run.
            Err(ForgeError::NotFound(_) | ForgeError::BadResponse(_)) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let event = PushEvent {
        git_ref: push.git_ref.clone(),
        before: Some(push.before.clone()),
        after: Some(push.after.clone()),
        changed_files,
        head_commit_message: message,
    };

    let store = &state.inner.store;
    // Every run is checked against the limits before any is written, so a push is stored
    // whole or refused whole.
    let mut pending = Vec::new();
    for (path, workflow) in &workflows {
        let decision = workflow.match_push(&event);
        if !decision.triggered {
            tracing::debug!(
                repo,
                path,
                reason = decision.reason,
                "workflow not triggered"
            );
            continue;
        }
        let expansion = expand_jobs(workflow);
        for skipped in &expansion.not_expanded {
            tracing::info!(
                repo,
                path,
                job = skipped.job_id,
                reason = skipped.reason,
                "job gets no runner"
            );
        }
        for instance in expansion.instances {
            let labels = match instance.runs_on {
                Labels::Known(labels) if !labels.is_empty() => labels,
                Labels::Known(_) => {
                    tracing::warn!(
                        repo,
                        path,
                        job = instance.job_id,
                        "job has no runs-on; no runner"
                    );
                    continue;
                }
                Labels::Unknown { reason, .. } => {
                    tracing::warn!(
                        repo,
                        path,
                        job = instance.job_id,
                        reason,
                        "runs-on unknown before the run; no runner"
                    );
                    continue;
                }
            };
            let index = u32::try_from(instance.index).unwrap_or(u32::MAX);
            let id = RunId::for_push(&repo, &push.after, path, &instance.job_id, index);
            let spec = RunSpec {
                labels,
                pool: None,
                repo: Some(repo.clone()),
                job: None,
                origin: Origin::Push,
                job_state: JobState::Queued,
                cancel: false,
                created_at: at,
            };
            super::limits::check_spec(&spec).map_err(|e| {
                let (path, job) = (cap(path, FIELD_CHARS), cap(&instance.job_id, FIELD_CHARS));
                ApplyError::Refused(format!("{path} job {job}: {e}"))
            })?;
            pending.push(DesiredRun::new(id, spec));
        }
    }
    let mut runs = Vec::new();
    let mut created = 0;
    for run in pending {
        if store.create(&run).await? {
            created += 1;
        }
        runs.push(run.id);
    }
    if runs.is_empty() {
        return Ok(Applied::Ignored("no workflow triggered"));
    }
    Ok(Applied::Stored { runs, created })
}

/// A Git object id: SHA-1 (40) or SHA-256 (64, Gitea 1.22+ repositories) in hexadecimal.
fn is_commit_id(value: &str) -> bool {
    matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit())
}
