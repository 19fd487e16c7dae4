//! A check's result ([`Check`], [`Verdict`]) and the report printed from them: the one
//! type every group of checks returns. A leaf: it imports none of the checks.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// How long any one probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Something to fix.
    Problem,
    /// Not checked, and why is in the detail (a check it depends on failed, or it does not
    /// apply to this configuration).
    Skipped,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`gitea version`, `ec2 RunInstances (pool go)`…).
    pub name: String,
    /// The outcome.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (problems only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    #[must_use]
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            verdict: Verdict::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    /// A problem and its fix.
    #[must_use]
    pub fn problem(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Check {
            name: name.into(),
            verdict: Verdict::Problem,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    /// A check not made, and why.
    #[must_use]
    pub fn skipped(name: impl Into<String>, why: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            verdict: Verdict::Skipped,
            detail: why.into(),
            fix: None,
        }
    }

    /// Whether this check found a problem.
    #[must_use]
    pub fn is_problem(&self) -> bool {
        self.verdict == Verdict::Problem
    }
}

/// Whether no check found a problem.
#[must_use]
pub fn all_passed(checks: &[Check]) -> bool {
    !checks.iter().any(Check::is_problem)
}

/// The checks as a person reads them, with a closing count.
#[must_use]
pub fn text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let verdict = match c.verdict {
            Verdict::Ok => "ok",
            Verdict::Problem => "PROBLEM",
            Verdict::Skipped => "skipped",
        };
        let _ = writeln!(out, "{verdict:<8} {}: {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{:<8} fix: {fix}", "");
        }
    }
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    let _ = writeln!(
        out,
        "{} checks: {} ok, {} problem{}, {} skipped.",
        checks.len(),
        count(Verdict::Ok),
        count(Verdict::Problem),
        if count(Verdict::Problem) == 1 {
            ""
        } else {
            "s"
        },
        count(Verdict::Skipped)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_marks_each_check_and_counts_them() {
        let checks = vec![
            Check::ok("config", "valid"),
            Check::problem("env X", "not set", "export X"),
            Check::skipped("gitea", "needs the token"),
        ];
        let t = text(&checks);
        assert!(t.contains("ok       config: valid\n"), "{t}");
        assert!(
            t.contains("PROBLEM  env X: not set\n         fix: export X\n"),
            "{t}"
        );
        assert!(t.contains("skipped  gitea: needs the token\n"), "{t}");
        assert!(
            t.ends_with("3 checks: 1 ok, 1 problem, 1 skipped.\n"),
            "{t}"
        );
        assert!(!all_passed(&checks));
    }
}
