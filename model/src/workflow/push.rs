//! Whether a push triggers a workflow, decided as Gitea 1.27 decides it.
//!
//! In order:
//! 1. A push that deletes the ref (`after` all zeros) triggers nothing.
//! 2. A head commit message holding `[skip ci]`, `[ci skip]`, `[no ci]`, `[skip actions]` or
//!    `[actions skip]` triggers nothing.
//! 3. A file Gitea cannot use ([`Workflow::ignored_by_gitea`]) triggers nothing.
//! 4. The workflow needs a `push` event. `on: push` without filters matches every push,
//!    tags included. A non-empty list under `push:` is stored as a schedule and never matches.
//! 5. Every filter key under `push` must hold; Gitea counts the keys that hold and compares
//!    with the number of keys:
//!    - `branches`/`branches-ignore` hold only for a branch push (`refs/heads/…`), matched
//!      against the branch name; `tags`/`tags-ignore` only for a tag push (`refs/tags/…`);
//!    - if the workflow has both a branch and a tag filter, Gitea adds one to the count, so
//!      the filters of the other ref kind may fail;
//!    - `paths`/`paths-ignore` hold for every tag push; for other pushes they are matched
//!      against the changed files, and never hold when those are unknown;
//!    - a pattern list that does not compile never holds; any other key never holds.

use super::parse::{TriggerKind, Workflow};
use super::pattern::{self, Pattern};

/// The strings in a head commit message that make Gitea skip workflows (its default
/// `[actions] SKIP_WORKFLOW_STRINGS`).
pub const SKIP_CI_MARKERS: [&str; 5] = [
    "[skip ci]",
    "[ci skip]",
    "[no ci]",
    "[skip actions]",
    "[actions skip]",
];

/// A push, as far as trigger matching needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushEvent {
    /// The full ref pushed: `refs/heads/main`, `refs/tags/v1`.
    pub git_ref: String,
    /// The commit before the push (all zeros for a new ref). Informational: the caller uses
    /// it to work out `changed_files`.
    pub before: Option<String>,
    /// The commit after the push; all zeros means the ref was deleted.
    pub after: Option<String>,
    /// The files changed between `before` and `after` (Gitea's `git diff-tree`); `None`
    /// when they could not be computed.
    pub changed_files: Option<Vec<String>>,
    /// The head commit's message.
    pub head_commit_message: Option<String>,
}

impl PushEvent {
    /// Why this push triggers no workflow at all, whatever the workflow files say (steps 1
    /// and 2: a deleted ref, a skip marker in the head commit message); `None` when the files
    /// decide. [`Workflow::match_push`] starts with it, and a receiver may ask it before
    /// reading any workflow file (there are none at an all-zero commit).
    #[must_use]
    pub fn starts_nothing(&self) -> Option<String> {
        if self.after.as_deref().is_some_and(is_zero_id) {
            return Some(format!(
                "does not run: the push deletes {} (`after` is all zeros), and Gitea starts no workflow for a deleted ref",
                self.git_ref
            ));
        }
        let message = self.head_commit_message.as_deref()?;
        let marker = SKIP_CI_MARKERS.iter().find(|m| message.contains(**m))?;
        Some(format!(
            "does not run: the head commit message contains `{marker}`, and Gitea skips workflows for such pushes"
        ))
    }
}

/// The outcome of matching one push against one workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushDecision {
    /// Whether Gitea starts a run of the workflow for this push.
    pub triggered: bool,
    /// Why, for people.
    pub reason: String,
}

impl PushDecision {
    fn runs(reason: impl Into<String>) -> Self {
        Self {
            triggered: true,
            reason: reason.into(),
        }
    }

    fn skips(reason: impl Into<String>) -> Self {
        Self {
            triggered: false,
            reason: reason.into(),
        }
    }
}

/// A ref split the way Gitea's `RefName` splits it.
#[derive(Debug, Clone, Copy)]
enum Ref<'a> {
    Branch(&'a str),
    Tag(&'a str),
    Other,
}

fn classify(git_ref: &str) -> Ref<'_> {
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        Ref::Branch(branch)
    } else if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        Ref::Tag(tag)
    } else {
        Ref::Other
    }
}

/// Whether a commit id is the all-zero id Gitea uses for "no commit".
fn is_zero_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

impl Workflow {
    /// Decides whether `push` triggers this workflow, as Gitea 1.27 would.
    #[must_use]
    pub fn match_push(&self, push: &PushEvent) -> PushDecision {
        if let Some(why) = push.starts_nothing() {
            return PushDecision::skips(why);
        }
        if let Some(why) = &self.ignored_by_gitea {
            return PushDecision::skips(format!(
                "does not run: Gitea ignores this workflow file: {why}"
            ));
        }
        let pushes: Vec<&TriggerKind> = self
            .triggers
            .iter()
            .filter(|t| t.name == "push")
            .map(|t| &t.kind)
            .collect();
        if pushes.is_empty() {
            let events = if self.events.is_empty() {
                "none".to_string()
            } else {
                self.events.join(", ")
            };
            return PushDecision::skips(format!(
                "does not run: the workflow has no `push` event (its events: {events})"
            ));
        }
        let mut reasons = Vec::new();
        for kind in pushes {
            match kind {
                TriggerKind::Plain => {
                    return PushDecision::runs(
                        "runs: `on.push` has no filters, so every push (branches and tags) triggers the workflow",
                    )
                }
                TriggerKind::Schedule => reasons.push(
                    "`on.push` is a non-empty list; Gitea stores a list under an event as a schedule and never matches it against a push"
                        .to_string(),
                ),
                TriggerKind::Filters(acts) => {
                    let decision = match_filters(acts, push);
                    if decision.triggered {
                        return decision;
                    }
                    reasons.push(decision.reason);
                }
            }
        }
        PushDecision::skips(
            if reasons.len() == 1 && reasons[0].starts_with("does not run") {
                reasons.remove(0)
            } else {
                format!("does not run: {}", reasons.join("; "))
            },
        )
    }
}

/// Gitea's `matchPushEvent` for an event with filters.
fn match_filters(acts: &[(String, Vec<String>)], push: &PushEvent) -> PushDecision {
    let git_ref = classify(&push.git_ref);
    let mut count = 0usize;
    let mut has_branch_filter = false;
    let mut has_tag_filter = false;
    let mut lines = Vec::with_capacity(acts.len());
    for (key, patterns) in acts {
        let (holds, why) = match key.as_str() {
            "branches" | "branches-ignore" => {
                has_branch_filter = true;
                match git_ref {
                    Ref::Branch(name) => check(key, patterns, &[name], "branch"),
                    _ => (false, format!("{} is not a branch", push.git_ref)),
                }
            }
            "tags" | "tags-ignore" => {
                has_tag_filter = true;
                match git_ref {
                    Ref::Tag(name) => check(key, patterns, &[name], "tag"),
                    _ => (false, format!("{} is not a tag", push.git_ref)),
                }
            }
            "paths" | "paths-ignore" => match (git_ref, &push.changed_files) {
                (Ref::Tag(_), _) => (true, "path filters are not checked for tag pushes".to_string()),
                (_, None) => (
                    false,
                    "the changed files are unknown, and Gitea then never counts a path filter".to_string(),
                ),
                (_, Some(files)) => {
                    let files: Vec<&str> = files.iter().map(String::as_str).collect();
                    check(key, patterns, &files, "changed file")
                }
            },
            _ => (
                false,
                "not a push filter Gitea knows, so it never holds and the workflow never runs on push".to_string(),
            ),
        };
        if holds {
            count += 1;
        }
        lines.push(format!(
            "`{key}` {} ({why})",
            if holds { "holds" } else { "fails" }
        ));
    }
    let both = has_branch_filter && has_tag_filter;
    if both {
        count += 1;
    }
    let triggered = count == acts.len();
    let verdict = if triggered { "runs" } else { "does not run" };
    let detail = lines.join("; ");
    let reason = if both {
        format!(
            "{verdict}: {detail}; the workflow has both branch and tag filters, so Gitea counts one more: {count} of the {} it needs",
            acts.len()
        )
    } else if triggered {
        format!("{verdict}: every filter under `on.push` holds: {detail}")
    } else {
        format!("{verdict}: {detail}")
    };
    PushDecision { triggered, reason }
}

/// Applies one filter list to its inputs. Returns whether the filter holds, and why.
fn check(key: &str, patterns: &[String], inputs: &[&str], noun: &str) -> (bool, String) {
    let compiled = match pattern::compile_all(patterns) {
        Ok(c) => c,
        Err(e) => return (false, format!("{e}; Gitea then never counts `{key}`")),
    };
    if compiled.is_empty() {
        return (true, "the pattern list is empty".to_string());
    }
    let listed = || {
        let shown: Vec<&str> = compiled.iter().take(8).map(Pattern::as_str).collect();
        let more = if compiled.len() > 8 { ", …" } else { "" };
        format!("[{}{more}]", shown.join(", "))
    };
    if key.ends_with("-ignore") {
        if pattern::filter(&compiled, inputs) {
            let why = match inputs.first() {
                None => format!(
                    "the push changes no files, which Gitea counts as all ignored by {}",
                    listed()
                ),
                Some(first) => {
                    let by = pattern::ignore_matcher(&compiled, first).map_or("", Pattern::as_str);
                    if inputs.len() == 1 {
                        format!("{noun} `{first}` is ignored by `{by}`")
                    } else {
                        format!("every {noun} is ignored, e.g. `{first}` by `{by}`")
                    }
                }
            };
            (false, why)
        } else {
            let kept = inputs
                .iter()
                .find(|i| pattern::ignore_matcher(&compiled, i).is_none())
                .copied()
                .unwrap_or_default();
            (
                true,
                format!("{noun} `{kept}` is not ignored by {}", listed()),
            )
        }
    } else if pattern::skip(&compiled, inputs) {
        let why = match inputs {
            [] => "the push changes no files".to_string(),
            [only] => match pattern::last_match(&compiled, only) {
                Some(p) => format!("{noun} `{only}` is excluded by `{p}`"),
                None => format!("{noun} `{only}` matches none of {}", listed()),
            },
            many => format!(
                "none of the {} {noun}s is included by {}",
                many.len(),
                listed()
            ),
        };
        (false, why)
    } else {
        let (input, by) = inputs
            .iter()
            .find_map(|i| pattern::include_decider(&compiled, i).map(|p| (*i, p.as_str())))
            .unwrap_or_default();
        (true, format!("{noun} `{input}` is included by `{by}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(on: &str) -> Workflow {
        Workflow::parse(&format!("on:\n{on}\njobs: {{}}\n")).expect("test workflow parses")
    }

    fn push(git_ref: &str, files: Option<&[&str]>) -> PushEvent {
        PushEvent {
            git_ref: git_ref.into(),
            changed_files: files.map(|f| f.iter().map(ToString::to_string).collect()),
            ..PushEvent::default()
        }
    }

    #[test]
    fn push_without_filters_runs_for_branches_and_tags() {
        let w = workflow("  push:");
        assert!(w.match_push(&push("refs/heads/x", None)).triggered);
        assert!(w.match_push(&push("refs/tags/v1", None)).triggered);
    }

    #[test]
    fn branch_filters_use_the_short_name() {
        let w = workflow("  push:\n    branches: [main]");
        let d = w.match_push(&push("refs/heads/main", None));
        assert!(d.triggered, "{}", d.reason);
        assert!(
            d.reason.contains("branch `main` is included by `main`"),
            "{}",
            d.reason
        );
        let d = w.match_push(&push("refs/heads/dev", None));
        assert!(!d.triggered);
        assert!(d.reason.contains("matches none of [main]"), "{}", d.reason);
        assert!(!w.match_push(&push("refs/tags/main", None)).triggered);
    }

    #[test]
    fn deleted_refs_and_skip_markers_never_run() {
        let w = workflow("  push:");
        let mut p = push("refs/heads/main", None);
        p.after = Some("0".repeat(40));
        let d = w.match_push(&p);
        assert!(!d.triggered);
        assert!(d.reason.contains("deletes"), "{}", d.reason);
        for marker in SKIP_CI_MARKERS {
            let mut p = push("refs/heads/main", None);
            p.head_commit_message = Some(format!("fix {marker} later"));
            assert!(!w.match_push(&p).triggered, "{marker}");
        }
        let mut p = push("refs/heads/main", None);
        p.head_commit_message = Some("skip ci".into());
        assert!(w.match_push(&p).triggered, "no brackets, no skip");
    }

    #[test]
    fn a_push_that_starts_nothing_matches_no_workflow_for_the_same_reason() {
        let workflows = [
            workflow("  push:"),
            workflow("  push:\n    branches: [main]"),
            workflow("  push:\n    tags: ['v*']"),
            workflow("  push:\n    paths: ['src/**']"),
        ];
        let deleted = PushEvent {
            after: Some("0".repeat(64)),
            ..push("refs/heads/main", Some(&["src/a.rs"]))
        };
        let mut cases = vec![deleted];
        for marker in SKIP_CI_MARKERS {
            let mut p = push("refs/tags/v1", Some(&["src/a.rs"]));
            p.head_commit_message = Some(format!("release\n\n{marker}"));
            cases.push(p);
        }
        for p in &cases {
            let why = p.starts_nothing().expect("starts nothing");
            for w in &workflows {
                let d = w.match_push(p);
                assert!(!d.triggered, "{p:?}");
                assert_eq!(d.reason, why);
            }
        }
        let plain = push("refs/heads/main", Some(&["src/a.rs"]));
        assert_eq!(plain.starts_nothing(), None);
        assert!(workflows[0].match_push(&plain).triggered);
    }

    #[test]
    fn paths_need_known_changed_files_except_for_tags() {
        let w = workflow("  push:\n    paths: ['src/**']");
        assert!(
            w.match_push(&push("refs/heads/main", Some(&["src/a.rs"])))
                .triggered
        );
        assert!(
            !w.match_push(&push("refs/heads/main", Some(&["docs/a.md"])))
                .triggered
        );
        let unknown = w.match_push(&push("refs/heads/main", None));
        assert!(!unknown.triggered);
        assert!(unknown.reason.contains("unknown"), "{}", unknown.reason);
        assert!(!w.match_push(&push("refs/heads/main", Some(&[]))).triggered);
        assert!(w.match_push(&push("refs/tags/v1", None)).triggered);
    }

    #[test]
    fn paths_ignore_skips_only_when_every_file_is_ignored() {
        let w = workflow("  push:\n    paths-ignore: ['docs/**']");
        assert!(
            !w.match_push(&push(
                "refs/heads/main",
                Some(&["docs/a.md", "docs/b/c.md"])
            ))
            .triggered
        );
        assert!(
            w.match_push(&push("refs/heads/main", Some(&["docs/a.md", "src/x.rs"])))
                .triggered
        );
        assert!(
            !w.match_push(&push("refs/heads/main", Some(&[]))).triggered,
            "no files counts as all ignored"
        );
    }

    #[test]
    fn both_branch_and_tag_filters_need_only_the_pushed_kind() {
        let w = workflow("  push:\n    branches: [main]\n    tags: ['v*']");
        assert!(w.match_push(&push("refs/heads/main", None)).triggered);
        let d = w.match_push(&push("refs/tags/v1", None));
        assert!(d.triggered, "{}", d.reason);
        assert!(d.reason.contains("counts one more"), "{}", d.reason);
        assert!(!w.match_push(&push("refs/heads/dev", None)).triggered);
        let only_tags = workflow("  push:\n    tags: ['v*']");
        assert!(
            !only_tags
                .match_push(&push("refs/heads/main", None))
                .triggered
        );
    }

    #[test]
    fn unknown_keys_and_bad_patterns_never_hold() {
        let w = workflow("  push:\n    branches: [main]\n    types: [created]");
        let d = w.match_push(&push("refs/heads/main", None));
        assert!(!d.triggered);
        assert!(d.reason.contains("`types` fails"), "{}", d.reason);
        let bad = workflow("  push:\n    branches: [main, '[']");
        let d = bad.match_push(&push("refs/heads/main", None));
        assert!(!d.triggered);
        assert!(d.reason.contains("does not compile"), "{}", d.reason);
    }

    #[test]
    fn a_list_under_push_never_matches() {
        let w = workflow("  push: [main]");
        let d = w.match_push(&push("refs/heads/main", None));
        assert!(!d.triggered);
        assert!(d.reason.contains("schedule"), "{}", d.reason);
        assert!(
            workflow("  push: []")
                .match_push(&push("refs/heads/main", None))
                .triggered
        );
    }

    #[test]
    fn a_file_gitea_ignores_never_matches() {
        let w = Workflow::parse("on: push\njobs:\n  a:\n    steps: x\n").expect("parses");
        let d = w.match_push(&push("refs/heads/main", None));
        assert!(!d.triggered);
        assert!(
            d.reason
                .contains("Gitea ignores this workflow file: `jobs.a.steps`"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn no_push_event_never_matches() {
        let w = workflow("  pull_request:\n  workflow_dispatch:");
        let d = w.match_push(&push("refs/heads/main", None));
        assert!(!d.triggered);
        assert!(
            d.reason.contains("pull_request, workflow_dispatch"),
            "{}",
            d.reason
        );
    }
}
