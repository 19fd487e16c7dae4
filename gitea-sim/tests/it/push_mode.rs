//! Repository reads for push mode: contents, raw files, compare and commits.

use base64::Engine;
use gitea_sim::{CommitSpec, FileChange, JobPhase, JobSpec, PushSpec, SimConfig};
use serde_json::json;

use crate::common::*;

const CI: &str = "on: push\njobs:\n  build:\n    runs-on: linux\n";

async fn seeded() -> (gitea_sim::SimHandle, String, String) {
    let sim = start(SimConfig::default()).await;
    let first = sim
        .push(PushSpec::new(
            "acme/app",
            "main",
            vec![CommitSpec::new(
                "init",
                vec![
                    FileChange::put(".gitea/workflows/ci.yml", CI),
                    FileChange::put(".gitea/workflows/nested/deploy.yaml", "on: push\n"),
                    FileChange::put("README.md", "hello"),
                ],
            )],
        ))
        .expect("push");
    let second = sim
        .push(PushSpec::new(
            "acme/app",
            "main",
            vec![
                CommitSpec::new("code", vec![FileChange::put("src/main.rs", "fn main() {}")]),
                CommitSpec::new(
                    "docs",
                    vec![
                        FileChange::put("README.md", "hello!"),
                        FileChange::delete(".gitea/workflows/nested/deploy.yaml"),
                    ],
                ),
            ],
        ))
        .expect("push");
    (sim, first.after, second.after)
}

#[tokio::test]
async fn a_directory_lists_its_entries_and_a_file_comes_with_base64_content() {
    let (sim, first, _) = seeded().await;
    let (status, dir) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/contents/.gitea/workflows?ref={first}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let entries: Vec<(String, String, String)> = dir
        .as_array()
        .expect("a directory is an array")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").into(),
                e["path"].as_str().unwrap_or("").into(),
                e["type"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                "ci.yml".into(),
                ".gitea/workflows/ci.yml".into(),
                "file".into()
            ),
            (
                "nested".into(),
                ".gitea/workflows/nested".into(),
                "dir".into()
            ),
        ]
    );
    assert!(dir[0]["content"].is_null(), "listings carry no content");
    assert_eq!(dir[0]["sha"].as_str().map(str::len), Some(40));

    let (status, file) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/contents/.gitea/workflows/ci.yml?ref={first}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(file["type"], "file");
    assert_eq!(file["encoding"], "base64");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(file["content"].as_str().expect("content"))
        .expect("base64");
    assert_eq!(decoded, CI.as_bytes());
    assert_eq!(file["size"], CI.len());
    assert_eq!(file["last_commit_sha"], first);
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_paths_refs_and_repositories_are_404() {
    let (sim, first, second) = seeded().await;
    for path in [
        format!("/repos/acme/app/contents/.github/workflows?ref={first}"),
        "/repos/acme/app/contents/.gitea/workflows?ref=nope".to_owned(),
        format!("/repos/acme/app/contents/.gitea/workflows/nested?ref={second}"),
        "/repos/acme/ghost/contents/.gitea/workflows".to_owned(),
        format!("/repos/acme/app/raw/missing.txt?ref={first}"),
        format!("/repos/acme/app/compare/{}...{first}", gitea_sim::ZERO_SHA),
        "/repos/acme/app/git/commits/0123456789".to_owned(),
    ] {
        let (status, body) = api(&sim, "GET", &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn raw_serves_bytes_at_a_ref_or_the_default_branch() {
    let (sim, first, _) = seeded().await;
    let get = |path: String| {
        let sim = sim.clone();
        async move {
            client()
                .get(format!("{}/api/v1{path}", sim.base_url()))
                .header("Authorization", format!("token {}", sim.admin_token()))
                .send()
                .await
                .expect("request")
                .text()
                .await
                .expect("text")
        }
    };
    assert_eq!(
        get(format!("/repos/acme/app/raw/README.md?ref={first}")).await,
        "hello"
    );
    assert_eq!(get("/repos/acme/app/raw/README.md".into()).await, "hello!");
    assert_eq!(
        get(format!(
            "/repos/acme/app/raw/README.md?ref={}",
            &first[..10]
        ))
        .await,
        "hello"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn compare_lists_the_new_commits_with_their_files() {
    let (sim, first, second) = seeded().await;
    let (status, body) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/compare/{first}...{second}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total_commits"], 2);
    let files: Vec<Vec<(String, String)>> = body["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .map(|c| {
            c["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| {
                    (
                        f["filename"].as_str().unwrap_or("").into(),
                        f["status"].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .collect();
    assert_eq!(
        files,
        vec![
            vec![
                (
                    ".gitea/workflows/nested/deploy.yaml".to_owned(),
                    "removed".to_owned()
                ),
                ("README.md".to_owned(), "modified".to_owned())
            ],
            vec![("src/main.rs".to_owned(), "added".to_owned())],
        ],
        "newest first"
    );
    let (_, same) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/compare/{second}..{second}"),
        None,
    )
    .await;
    assert_eq!(same, json!({"total_commits": 0, "commits": []}));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_commit_has_its_files_parents_and_message() {
    let (sim, first, second) = seeded().await;
    let (status, body) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/git/commits/{first}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["sha"], first);
    assert_eq!(body["commit"]["message"], "init\n");
    assert_eq!(body["parents"], json!([]));
    assert_eq!(body["files"].as_array().map(Vec::len), Some(3));
    let (_, head) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/git/commits/{second}?files=false"),
        None,
    )
    .await;
    assert!(head["files"].is_null());
    assert_eq!(head["parents"].as_array().map(Vec::len), Some(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_push_can_start_a_branch_and_enqueue_jobs_for_its_head() {
    let (sim, _, second) = seeded().await;
    let pushed = sim
        .push(
            PushSpec::new(
                "acme/app",
                "feature",
                vec![CommitSpec::new("feat", vec![FileChange::put("x", "1")])],
            )
            .from("main")
            .job(JobSpec::new("ignored", "build", &["linux"])),
        )
        .expect("push");
    assert_eq!(pushed.before, gitea_sim::ZERO_SHA);
    assert_eq!(pushed.jobs.len(), 1);
    let job = &pushed.jobs[0];
    assert_eq!(
        (
            job.repo.as_str(),
            job.head_branch.as_str(),
            job.head_sha.as_str()
        ),
        ("acme/app", "feature", pushed.after.as_str())
    );
    assert_eq!(job.status, JobPhase::Queued);
    let (_, body) = api(
        &sim,
        "GET",
        &format!("/repos/acme/app/compare/{second}...feature"),
        None,
    )
    .await;
    assert_eq!(body["total_commits"], 1);
    let (_, repo) = api(&sim, "GET", "/repos/acme/app", None).await;
    assert_eq!(repo["default_branch"], "main");
    assert!(sim
        .push(PushSpec::new(
            "acme/app",
            "main",
            vec![CommitSpec::new("bad", vec![FileChange::delete("nope")])]
        ))
        .is_err());
    sim.shutdown().await;
}
