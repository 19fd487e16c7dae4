//! Workflow files as Gitea reads them: events, push filters, jobs and their matrices, and the
//! decision whether a push triggers a workflow.
//!
//! Everything here follows Gitea 1.27 (see `wiki/Workflows.md` and the conformance data under
//! `shared/conformance`):
//! - [`Workflow::parse`] reads YAML 1.2 (only `true`/`false` are booleans, `on` is a string),
//!   rejects repeated keys, applies merge keys as Go's YAML library does, and rejects shapes
//!   Gitea's decoder rejects, naming the line or the path.
//! - [`Workflow::match_push`] decides a push with Gitea's filter semantics and its own pattern
//!   dialect ([`pattern`]), and says why.
//! - [`Job::matrix`] is Gitea's matrix expansion ([`matrix`]), and [`expand_jobs`] lists the
//!   job instances of a run with their `runs-on` labels.
//!
//! # Layout
//! - [`parse`]: the file into [`Workflow`], [`PushFilters`] and [`Job`]s; [`ParseError`].
//! - [`pattern`]: Gitea's glob dialect for `branches`, `tags` and `paths`.
//! - [`push`]: [`PushEvent`] → [`PushDecision`].
//! - [`matrix`]: `strategy.matrix` → [`Matrix`].
//! - [`expand`]: a workflow → [`JobInstance`]s.

mod goregex;
mod yaml;

pub mod expand;
pub mod matrix;
pub mod parse;
pub mod pattern;
pub mod push;

pub use expand::{expand_jobs, Expansion, JobInstance, Labels, NotExpanded};
pub use matrix::{Combination, Matrix};
pub use parse::{Job, ParseError, PushFilters, Workflow};
pub use pattern::{Pattern, PatternError};
pub use push::{PushDecision, PushEvent, SKIP_CI_MARKERS};

#[cfg(test)]
mod props {
    //! Random input never panics, and the Go-regexp reader never hands the `regex` crate a
    //! pattern it rejects.

    use proptest::prelude::*;
    use serde_yaml_ng::{Mapping, Value};

    use super::*;

    /// Characters that mean something to globs or regular expressions, plus a few letters.
    fn tricky_text(max: usize) -> impl Strategy<Value = String> {
        let alphabet: Vec<char> = "\\[](){}*+?|^$.-:!,/<>&~=PpdDwsSbBxQEz0179aAé_ #'\""
            .chars()
            .collect();
        proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
            .prop_map(|v| v.into_iter().collect())
    }

    const WORDS: &[&str] = &[
        "on",
        "push",
        "pull_request",
        "workflow_call",
        "workflow_dispatch",
        "schedule",
        "inputs",
        "branches",
        "branches-ignore",
        "tags",
        "tags-ignore",
        "paths",
        "paths-ignore",
        "types",
        "jobs",
        "build",
        "runs-on",
        "needs",
        "uses",
        "strategy",
        "matrix",
        "include",
        "exclude",
        "os",
        "group",
        "labels",
        "steps",
        "with",
        "continue-on-error",
        "env",
        "<<",
        "${{ matrix.os }}",
        "${{ x }}",
        "main",
        "**",
        "[",
        "",
    ];

    fn yaml_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            proptest::sample::select(WORDS).prop_map(|w| Value::String(w.to_string())),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
                proptest::collection::vec((proptest::sample::select(WORDS), inner), 0..6).prop_map(
                    |entries| {
                        let mut m = Mapping::new();
                        for (k, v) in entries {
                            m.insert(Value::String(k.to_string()), v);
                        }
                        Value::Mapping(m)
                    }
                ),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn translated_go_regexps_always_compile_in_rust(go in tricky_text(24)) {
            if let Ok(rust) = goregex::translate(&go) {
                let built = regex::RegexBuilder::new(&rust).nest_limit(8000).build();
                prop_assert!(built.is_ok(), "{go:?} -> {rust:?}: {built:?}");
            }
        }

        #[test]
        fn patterns_never_panic(p in tricky_text(24), input in tricky_text(12)) {
            if let Ok(pattern) = Pattern::compile(&p) {
                let _ = pattern.matches(&input);
            }
        }

        #[test]
        fn plain_names_match_themselves(name in "[a-z0-9_/-]{1,20}") {
            let pattern = Pattern::compile(&name).expect("a plain name compiles");
            prop_assert!(pattern.matches(&name));
            prop_assert!(Pattern::compile("**").expect("compiles").matches(&name));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            if let Ok(w) = Workflow::parse(&text) {
                let _ = w.match_push(&PushEvent { git_ref: "refs/heads/main".into(), ..PushEvent::default() });
                let _ = expand_jobs(&w);
            }
        }

        #[test]
        fn arbitrary_workflow_shapes_never_panic(on in yaml_value(), jobs in yaml_value(), files in proptest::option::of(proptest::collection::vec(tricky_text(8), 0..4))) {
            let mut top = Mapping::new();
            top.insert("on".into(), on);
            top.insert("jobs".into(), jobs);
            if let Ok(w) = Workflow::from_value(Value::Mapping(top)) {
                for git_ref in ["refs/heads/main", "refs/tags/v1", "refs/pull/1/head"] {
                    let push = PushEvent { git_ref: git_ref.into(), changed_files: files.clone(), ..PushEvent::default() };
                    let decision = w.match_push(&push);
                    prop_assert!(!decision.reason.is_empty());
                }
                let e = expand_jobs(&w);
                prop_assert!(e.instances.len() + e.not_expanded.len() >= w.jobs.len());
            }
        }
    }
}
