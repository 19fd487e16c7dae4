//! Gitea's JSON shapes, rendered from the simulator's state.
//!
//! Field names and presence follow Gitea's Go structs (`modules/structs`): a Go `time.Time`
//! that was never set renders as the epoch (`1970-01-01T00:00:00Z`, from a zero Gitea
//! timestamp), a nil slice renders as `null`, and `omitempty` fields are left out when empty.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::clock::rfc3339;
use crate::git::{Entry, RepoRec};
use crate::state::{JobRec, Liveness, RunnerRec, State};

/// The simulated user's id.
const USER_ID: i64 = 1;

impl State {
    pub(crate) fn api_url(&self) -> String {
        format!("{}/api/v1", self.base_url)
    }

    pub(crate) fn repo_html_url(&self, repo: &RepoRec) -> String {
        format!("{}/{}", self.base_url, repo.full_name())
    }

    pub(crate) fn repo_api_url(&self, repo: &RepoRec) -> String {
        format!("{}/repos/{}", self.api_url(), repo.full_name())
    }

    fn user_email(&self) -> String {
        format!("{}@sim.invalid", self.user_login)
    }

    /// `User` for the one simulated user.
    pub(crate) fn user_json(&self) -> Value {
        let epoch = rfc3339(0);
        json!({
            "id": USER_ID,
            "login": self.user_login,
            "login_name": "",
            "source_id": 0,
            "full_name": "",
            "email": self.user_email(),
            "avatar_url": format!("{}/avatars/{}", self.base_url, self.user_login),
            "html_url": format!("{}/{}", self.base_url, self.user_login),
            "language": "",
            "is_admin": true,
            "last_login": epoch,
            "created": epoch,
            "restricted": false,
            "active": true,
            "prohibit_login": false,
            "location": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
        })
    }

    /// The owner of a repository, as a `User` (organisations render the same way).
    fn owner_json(&self, owner: &str, id: i64) -> Value {
        if owner == self.user_login {
            return self.user_json();
        }
        let epoch = rfc3339(0);
        json!({
            "id": 1000 + id,
            "login": owner,
            "login_name": "",
            "source_id": 0,
            "full_name": "",
            "email": "",
            "avatar_url": format!("{}/avatars/{owner}", self.base_url),
            "html_url": format!("{}/{owner}", self.base_url),
            "language": "",
            "is_admin": false,
            "last_login": epoch,
            "created": epoch,
            "restricted": false,
            "active": false,
            "prohibit_login": false,
            "location": "",
            "website": "",
            "description": "",
            "visibility": "public",
            "followers_count": 0,
            "following_count": 0,
            "starred_repos_count": 0,
        })
    }

    /// `Repository` (the fields a client of ours may read, all in the spec).
    pub(crate) fn repo_json(&self, repo: &RepoRec) -> Value {
        let html = self.repo_html_url(repo);
        json!({
            "id": repo.id,
            "owner": self.owner_json(&repo.owner, repo.id),
            "name": repo.name,
            "full_name": repo.full_name(),
            "description": "",
            "empty": repo.commits.is_empty(),
            "private": false,
            "fork": false,
            "template": false,
            "mirror": false,
            "size": 0,
            "language": "",
            "languages_url": format!("{}/languages", self.repo_api_url(repo)),
            "html_url": html,
            "url": self.repo_api_url(repo),
            "link": "",
            "ssh_url": format!("git@sim.invalid:{}.git", repo.full_name()),
            "clone_url": format!("{html}.git"),
            "original_url": "",
            "website": "",
            "stars_count": 0,
            "forks_count": 0,
            "watchers_count": 0,
            "open_issues_count": 0,
            "default_branch": repo.default_branch,
            "archived": false,
            "created_at": rfc3339(repo.created_ms),
            "updated_at": rfc3339(repo.created_ms),
            "archived_at": rfc3339(0),
            "has_actions": true,
            "object_format_name": "sha1",
        })
    }

    /// `ActionRunner` of the REST API (`ToActionRunner`, go-gitea/gitea v1.26.4
    /// services/convert/convert.go:532-555): `status` only `online`/`offline`, `busy` when
    /// active, label ids are array indexes and every type is `custom`, `disabled` from 1.26.
    pub(crate) fn runner_json(&self, r: &RunnerRec, now: i64) -> Value {
        let live = self.liveness(r, now);
        let labels: Vec<Value> = r
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| json!({"id": i, "name": l, "type": "custom"}))
            .collect();
        let mut m = Map::new();
        m.insert("id".into(), json!(r.id));
        m.insert("name".into(), json!(r.name));
        m.insert(
            "status".into(),
            json!(if live == Liveness::Offline {
                "offline"
            } else {
                "online"
            }),
        );
        m.insert("busy".into(), json!(live == Liveness::Active));
        if self.version.at_least(1, 26) {
            m.insert("disabled".into(), json!(r.disabled));
        }
        m.insert("ephemeral".into(), json!(r.ephemeral));
        m.insert("labels".into(), Value::Array(labels));
        Value::Object(m)
    }

    /// `ActionWorkflowJob` (`ToActionWorkflowJob`, go-gitea/gitea v1.26.4
    /// services/convert/convert.go:321-388; the 1.24 webhook builds it in
    /// services/webhook/notifier.go:965-1024 at v1.24.0). `runner_id`/`runner_name` come from
    /// the job's task and the runner row, so they vanish once the runner is deleted.
    pub(crate) fn job_json(&self, job: &JobRec) -> Value {
        let (owner_repo_api, owner_repo_html) = match self.repos.get(&job.repo) {
            Some(r) => (self.repo_api_url(r), self.repo_html_url(r)),
            None => (
                format!("{}/repos/{}", self.api_url(), job.repo),
                format!("{}/{}", self.base_url, job.repo),
            ),
        };
        let mut m = Map::new();
        m.insert("id".into(), json!(job.id));
        // 1.24 has no jobs API and renders the webhook's `url` under the run
        // (go-gitea/gitea v1.24.0 services/webhook/notifier.go:1006); from 1.25 it is the job's
        // own route (v1.25.0 services/convert/convert.go:372; v1.26.4 convert.go:369).
        let url = if self.version.at_least(1, 25) {
            format!("{owner_repo_api}/actions/jobs/{}", job.id)
        } else {
            format!(
                "{owner_repo_api}/actions/runs/{}/jobs/{}",
                job.run_id, job.id
            )
        };
        m.insert("url".into(), json!(url));
        // Up to 1.25 the web link is run index and job index (v1.25.0 convert.go:373,
        // models/actions/run.go:70 `run.Index`; v1.24.0 notifier.go:1007); from 1.26 it is run id
        // and job id (commit 385994295d, #36842; v1.26.4 convert.go:370, models/actions/run.go:72).
        let html_url = if self.version.at_least(1, 26) {
            format!(
                "{owner_repo_html}/actions/runs/{}/jobs/{}",
                job.run_id, job.id
            )
        } else {
            format!(
                "{owner_repo_html}/actions/runs/{}/jobs/{}",
                job.run_index, job.job_index
            )
        };
        m.insert("html_url".into(), json!(html_url));
        m.insert("run_id".into(), json!(job.run_id));
        m.insert(
            "run_url".into(),
            json!(format!("{owner_repo_api}/actions/runs/{}", job.run_id)),
        );
        m.insert("name".into(), json!(job.name));
        m.insert("labels".into(), json!(job.labels));
        // `RunAttempt: job.Attempt` (v1.26.4 convert.go:376; v1.24.0 notifier.go:1013).
        m.insert("run_attempt".into(), json!(job.attempt));
        m.insert("head_sha".into(), json!(job.head_sha));
        if !job.head_branch.is_empty() {
            m.insert("head_branch".into(), json!(job.head_branch));
        }
        m.insert("status".into(), json!(job.status.phase().as_str()));
        if let Some(c) = job.status.conclusion() {
            m.insert("conclusion".into(), json!(c.as_str()));
        }
        if let Some(rid) = job.runner_id {
            m.insert("runner_id".into(), json!(rid));
            if let Some(r) = self.runners.get(&rid) {
                m.insert("runner_name".into(), json!(r.name));
            }
        }
        // The simulator models no steps. Before 1.26 a job without loaded task steps has a nil
        // slice, sent as `null` (v1.25.0 convert.go:342-386: the task read by id has no steps
        // loaded; v1.24.0 notifier.go:981-1020); from 1.26 `util.SliceNilAsEmpty` sends `[]`
        // (v1.26.4 convert.go:383).
        m.insert(
            "steps".into(),
            if self.version.at_least(1, 26) {
                json!([])
            } else {
                Value::Null
            },
        );
        m.insert("created_at".into(), json!(rfc3339(job.created)));
        m.insert("started_at".into(), json!(rfc3339(job.started)));
        m.insert("completed_at".into(), json!(rfc3339(job.stopped)));
        Value::Object(m)
    }

    fn commit_user_json(&self, time_ms: i64) -> Value {
        json!({"name": self.user_login, "email": self.user_email(), "date": rfc3339(time_ms)})
    }

    /// `PayloadCommit` of push webhooks.
    pub(crate) fn payload_commit_json(&self, repo: &RepoRec, sha: &str) -> Value {
        let Some(c) = repo.commits.get(sha) else {
            return Value::Null;
        };
        let pick = |kind: crate::git::ChangeKind| -> Vec<&str> {
            c.changes
                .iter()
                .filter(|(_, k)| *k == kind)
                .map(|(p, _)| p.as_str())
                .collect()
        };
        let user = json!({"name": self.user_login, "email": self.user_email(), "username": self.user_login});
        json!({
            "id": c.sha,
            "message": c.message,
            "url": format!("{}/commit/{}", self.repo_html_url(repo), c.sha),
            "author": user,
            "committer": user,
            "verification": null,
            "timestamp": rfc3339(c.time_ms),
            "added": pick(crate::git::ChangeKind::Added),
            "removed": pick(crate::git::ChangeKind::Removed),
            "modified": pick(crate::git::ChangeKind::Modified),
        })
    }

    /// `Commit` of `git/commits/{sha}` and `compare`.
    pub(crate) fn commit_json(
        &self,
        repo: &RepoRec,
        sha: &str,
        files: bool,
        stat: bool,
        verification: bool,
    ) -> Value {
        let Some(c) = repo.commits.get(sha) else {
            return Value::Null;
        };
        let api = self.repo_api_url(repo);
        let parents: Vec<Value> = c
            .parents
            .iter()
            .map(|p| {
                let created = repo.commits.get(p).map_or(0, |pc| pc.time_ms);
                json!({"url": format!("{api}/git/commits/{p}"), "sha": p, "created": rfc3339(created)})
            })
            .collect();
        let files_json = if files {
            Value::Array(
                c.changes
                    .iter()
                    .map(|(p, k)| json!({"filename": p, "status": k.as_str()}))
                    .collect(),
            )
        } else {
            Value::Null
        };
        let stats = if stat {
            // Line counts are not modelled: one line per changed file.
            let adds = c
                .changes
                .iter()
                .filter(|(_, k)| *k != crate::git::ChangeKind::Removed)
                .count();
            let dels = c
                .changes
                .iter()
                .filter(|(_, k)| *k != crate::git::ChangeKind::Added)
                .count();
            json!({"total": adds + dels, "additions": adds, "deletions": dels})
        } else {
            Value::Null
        };
        let verification = if verification {
            json!({"verified": false, "reason": "gpg.error.not_signed_commit", "signature": "", "signer": null, "payload": ""})
        } else {
            Value::Null
        };
        json!({
            "url": format!("{api}/git/commits/{sha}"),
            "sha": sha,
            "created": rfc3339(c.time_ms),
            "html_url": format!("{}/commit/{sha}", self.repo_html_url(repo)),
            "commit": {
                "url": format!("{api}/git/commits/{sha}"),
                "author": self.commit_user_json(c.time_ms),
                "committer": self.commit_user_json(c.time_ms),
                "message": c.message,
                "tree": {"url": format!("{api}/git/trees/{sha}"), "sha": sha, "created": rfc3339(c.time_ms)},
                "verification": verification,
            },
            "author": self.user_json(),
            "committer": self.user_json(),
            "parents": parents,
            "files": files_json,
            "stats": stats,
        })
    }

    /// One `ContentsResponse`. `content` is included only for files asked for directly.
    pub(crate) fn contents_json(
        &self,
        repo: &RepoRec,
        commit: &str,
        ref_label: &str,
        path: &str,
        entry: &Entry,
        with_content: bool,
    ) -> Value {
        let api = self.repo_api_url(repo);
        let html = self.repo_html_url(repo);
        let name = path.rsplit('/').next().unwrap_or(path);
        let sha = repo.entry_hash(commit, path).unwrap_or_default();
        let last_commit = repo.last_commit_for(commit, path).unwrap_or_default();
        let last_time = repo.commits.get(&last_commit).map_or(0, |c| c.time_ms);
        let self_url = format!("{api}/contents/{path}?ref={ref_label}");
        let (kind, size, git_url, html_url, download, content, encoding) = match entry {
            Entry::File(bytes) => (
                "file",
                bytes.len(),
                format!("{api}/git/blobs/{sha}"),
                format!("{html}/src/commit/{commit}/{path}"),
                json!(format!("{html}/raw/commit/{commit}/{path}")),
                if with_content {
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    Value::Null
                },
                if with_content {
                    json!("base64")
                } else {
                    Value::Null
                },
            ),
            Entry::Dir(_) => (
                "dir",
                0,
                format!("{api}/git/trees/{sha}"),
                format!("{html}/src/commit/{commit}/{path}"),
                Value::Null,
                Value::Null,
                Value::Null,
            ),
        };
        json!({
            "name": name,
            "path": path,
            "sha": sha,
            "last_commit_sha": last_commit,
            "last_author_date": rfc3339(last_time),
            "last_committer_date": rfc3339(last_time),
            "type": kind,
            "size": size,
            "encoding": encoding,
            "content": content,
            "target": null,
            "url": self_url,
            "html_url": html_url,
            "git_url": git_url,
            "download_url": download,
            "submodule_git_url": null,
            "_links": {"self": self_url, "git": git_url, "html": html_url},
        })
    }
}
