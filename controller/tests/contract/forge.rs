//! The forge port's contract (`controller/src/forge.rs`), written once and run against the
//! tests' `FakeForge` (`tests/forge_contract.rs`) and the Gitea client against the Gitea
//! simulator (`tests/forge.rs`), both as Gitea 1.26.4. Where they disagree Gitea's behaviour
//! (as the simulator reproduces it, wiki/Gitea.md) wins and the fake is fixed.
//!
//! `forge_contract!(fresh)` expands to one test per clause, each on a fresh rig from the
//! async expression `fresh`.

#![allow(dead_code)] // each including test binary uses the macro, not every helper directly

use controller::forge::Forge;
use model::desired::JobAction;
use model::observed::{JobFound, JobSeen};
use model::RunnerName;

/// A Gitea 1.26.4 with the repositories `acme/web` and `other/tool`, and what the clauses
/// need to set it up.
pub trait ForgeRig: Send + Sync {
    /// The port under test.
    fn forge(&self) -> &dyn Forge;
    /// Queues a runnable job `name` of `repo` asking for `labels`; returns its id.
    fn queue_job(&self, repo: &str, name: &str, labels: &[&str]) -> i64;
}

/// Registering creates an ephemeral runner with the labels asked for, offline until it first
/// contacts Gitea, listed and found by id; each registration is a new runner.
pub async fn a_registered_runner_is_listed_and_found_by_id(rig: &dyn ForgeRig) {
    let forge = rig.forge();
    let name = RunnerName::observed("tq-prod-job-1-1-a1");
    let labels = vec!["go".to_owned(), "linux".to_owned()];
    let reg = forge
        .register_runner(&name, &labels)
        .await
        .expect("registers");
    assert!(reg.id > 0, "{}", reg.id);
    assert!(!reg.uuid.is_empty());
    assert!(!reg.token.expose().is_empty());
    assert_eq!(reg.name, name);
    let listed = forge.list_runners().await.expect("lists");
    let seen = listed
        .iter()
        .find(|r| r.id == reg.id)
        .unwrap_or_else(|| panic!("{} not in {listed:?}", reg.id));
    assert_eq!(seen.name, name.as_str());
    assert_eq!(seen.labels, labels);
    assert!(
        seen.ephemeral && !seen.online && !seen.busy && !seen.disabled,
        "{seen:?}"
    );
    assert_eq!(
        forge.get_runner(reg.id).await.expect("gets").as_ref(),
        Some(seen)
    );
    let again = forge
        .register_runner(&name, &labels)
        .await
        .expect("registers again");
    assert_ne!(again.id, reg.id, "not idempotent: a new runner row");
    assert_eq!(forge.get_runner(987_654).await.expect("answers"), None);
}

/// Disabling keeps the runner, marked disabled; deleting removes it; both are `Ok` for a
/// runner that is gone.
pub async fn disable_then_delete_and_both_are_done_when_the_runner_is_gone(rig: &dyn ForgeRig) {
    let forge = rig.forge();
    let reg = forge
        .register_runner(&RunnerName::observed("tq-prod-job-2-1-a1"), &["go".into()])
        .await
        .expect("registers");
    forge.disable_runner(reg.id).await.expect("disables");
    let seen = forge
        .get_runner(reg.id)
        .await
        .expect("gets")
        .expect("still there");
    assert!(seen.disabled, "{seen:?}");
    forge
        .disable_runner(987_654)
        .await
        .expect("disabling a gone runner is done");
    forge.delete_runner(reg.id).await.expect("deletes");
    assert_eq!(forge.get_runner(reg.id).await.expect("answers"), None);
    assert!(!forge
        .list_runners()
        .await
        .expect("lists")
        .iter()
        .any(|r| r.id == reg.id));
    forge
        .delete_runner(reg.id)
        .await
        .expect("deleting a gone runner is done");
}

/// The queued jobs of every repository in scope are listed with their repository, name and
/// labels, and each is found by id as queued; an unknown job is `Missing`.
pub async fn queued_jobs_are_listed_and_found_by_id(rig: &dyn ForgeRig) {
    let forge = rig.forge();
    let a = rig.queue_job("acme/web", "build", &["go"]);
    let b = rig.queue_job("other/tool", "test", &["go", "linux"]);
    let mut got: Vec<(i64, String, String, Vec<String>)> = forge
        .queued_jobs()
        .await
        .expect("lists")
        .into_iter()
        .map(|j| (j.id, j.repo, j.name, j.labels))
        .collect();
    got.sort();
    let mut want = vec![
        (a, "acme/web".into(), "build".into(), vec!["go".to_owned()]),
        (
            b,
            "other/tool".into(),
            "test".into(),
            vec!["go".to_owned(), "linux".to_owned()],
        ),
    ];
    want.sort();
    assert_eq!(got, want);
    let seen = forge.get_job("acme/web", a).await.expect("gets");
    assert_eq!(seen.id, a);
    assert!(
        matches!(
            &seen.found,
            JobFound::Job { action: JobAction::Queued, runner: None, labels, .. } if labels == &["go"]
        ),
        "{seen:?}"
    );
    assert_eq!(
        forge.get_job("acme/web", 987_654).await.expect("answers"),
        JobSeen {
            id: 987_654,
            found: JobFound::Missing
        }
    );
}

/// The registration token is a secret: never printed.
pub async fn the_registration_token_never_prints(rig: &dyn ForgeRig) {
    let token = rig.forge().registration_token().await.expect("fetches");
    assert!(!token.expose().is_empty());
    assert_eq!(format!("{token}"), "[redacted]");
    assert!(!format!("{token:?}").contains(token.expose()));
}

/// One test per clause of the contract, each on a fresh rig from the async expression
/// `$fresh`.
macro_rules! forge_contract {
    ($fresh:expr) => {
        forge_contract!(@each $fresh;
            a_registered_runner_is_listed_and_found_by_id,
            disable_then_delete_and_both_are_done_when_the_runner_is_gone,
            queued_jobs_are_listed_and_found_by_id,
            the_registration_token_never_prints,
        );
    };
    (@each $fresh:expr; $($clause:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $clause() {
                let rig = $fresh;
                $crate::forge_contract::$clause(&rig).await;
            }
        )*
    };
}
