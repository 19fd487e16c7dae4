//! Gitea's workflow filter patterns (`branches`, `tags`, `paths` and their `-ignore` forms).
//!
//! Gitea 1.27 compiles each pattern into a regular expression anchored at both ends:
//!
//! | pattern | meaning |
//! |---|---|
//! | `*` | any run of characters except `/` |
//! | `**` | any run of characters, `/` included |
//! | `**/` at the start (or after a `/`) | also matches no directory at all: `**/docs` is `.*docs` |
//! | `?`, `+` | regex quantifiers on the previous character (zero-or-one, one-or-more) |
//! | `[abc]`, `[a-z]`, `[!a-z]` | character classes; `[!…]` negates |
//! | `{a,b}` | alternation |
//! | `\x` | `x` passed to the regular expression escaped (`\d` is a digit, `\.` a dot) |
//! | `.`, `^`, `$`, `(`, `)`, `\|` | literal characters |
//! | leading `!` | negates the pattern |
//!
//! Any other character stands for itself. The result is a Go regular expression; a pattern
//! that does not compile (`[`, `abc\`, `(`) makes the whole filter list fail, and Gitea then
//! never counts that filter as holding. [`goregex`](super::goregex) carries the Go syntax over
//! to the `regex` crate.
//!
//! How a list of patterns applies to a list of inputs:
//! - include lists ([`skip`]): for each input the *last* pattern that matches decides (a `!`
//!   pattern excludes); the filter holds if any input ends up included. An empty list holds.
//! - ignore lists ([`filter`]): the filter fails (the workflow is skipped) only if *every*
//!   input is matched by some pattern. A `!pat` entry counts as matching an input that `pat`
//!   does not match. An empty list holds.

use std::fmt;

use regex::{Regex, RegexBuilder};

use super::goregex;

/// A filter pattern compiled the way Gitea 1.27 compiles it.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    negative: bool,
    regex: Regex,
}

/// A pattern that Gitea cannot compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern `{pattern}` does not compile: {problem}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Pattern {
    /// Compiles one pattern.
    ///
    /// # Errors
    /// When Gitea's compiler rejects the pattern (an unfinished escape or class, or a
    /// regular expression Go refuses).
    pub fn compile(pattern: &str) -> Result<Self, PatternError> {
        let fail = |problem: String| PatternError {
            pattern: pattern.to_string(),
            problem,
        };
        let (go, negative) = glob_to_go_regex(pattern).map_err(fail)?;
        let rust = goregex::translate(&go).map_err(|e| fail(e.0))?;
        let regex = RegexBuilder::new(&rust)
            .nest_limit(u32::try_from(4 * goregex::MAX_NESTING).unwrap_or(u32::MAX))
            .size_limit(32 * 1024 * 1024)
            .build()
            .map_err(|e| fail(format!("regular expression too large or invalid: {e}")))?;
        Ok(Self {
            source: pattern.to_string(),
            negative,
            regex,
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern starts with `!`.
    #[must_use]
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Whether the pattern's expression (without the leading `!`) matches `input`.
    #[must_use]
    pub fn expression_matches(&self, input: &str) -> bool {
        self.regex.is_match(input)
    }

    /// Gitea's `Match`: the expression's result, flipped for a `!` pattern.
    #[must_use]
    pub fn matches(&self, input: &str) -> bool {
        self.expression_matches(input) != self.negative
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Compiles a whole list; one bad pattern fails the list, as in Gitea.
///
/// # Errors
/// The first pattern that does not compile.
pub fn compile_all<S: AsRef<str>>(patterns: &[S]) -> Result<Vec<Pattern>, PatternError> {
    patterns
        .iter()
        .map(|p| Pattern::compile(p.as_ref()))
        .collect()
}

/// Gitea's `Skip` for include lists: `true` when no input is included.
///
/// For each input the last matching pattern decides (a `!` pattern excludes). An empty
/// pattern list never skips; an empty input list with a non-empty pattern list always skips.
#[must_use]
pub fn skip<S: AsRef<str>>(patterns: &[Pattern], inputs: &[S]) -> bool {
    !patterns.is_empty()
        && inputs
            .iter()
            .all(|i| include_decider(patterns, i.as_ref()).is_none())
}

/// Gitea's `Filter` for ignore lists: `true` (skip the workflow) when every input is matched
/// by some pattern. An empty pattern list never skips; an empty input list with a non-empty
/// pattern list always skips.
#[must_use]
pub fn filter<S: AsRef<str>>(patterns: &[Pattern], inputs: &[S]) -> bool {
    !patterns.is_empty()
        && inputs
            .iter()
            .all(|i| ignore_matcher(patterns, i.as_ref()).is_some())
}

/// For an include list: the pattern that leaves `input` included, or `None` if it ends up
/// excluded (no positive match, or a later `!` pattern matched).
#[must_use]
pub fn include_decider<'p>(patterns: &'p [Pattern], input: &str) -> Option<&'p Pattern> {
    let mut decider = None;
    for p in patterns {
        if p.expression_matches(input) {
            decider = if p.negative { None } else { Some(p) };
        }
    }
    decider
}

/// For an include list: the last pattern whose expression matches `input`, whatever its sign.
#[must_use]
pub fn last_match<'p>(patterns: &'p [Pattern], input: &str) -> Option<&'p Pattern> {
    patterns.iter().rev().find(|p| p.expression_matches(input))
}

/// For an ignore list: the first pattern that counts as matching `input` (Gitea's order).
#[must_use]
pub fn ignore_matcher<'p>(patterns: &'p [Pattern], input: &str) -> Option<&'p Pattern> {
    patterns.iter().find(|p| p.matches(input))
}

/// Gitea 1.27's glob compiler: the Go regular expression for `pattern` (anchored `^…$`) and
/// whether the pattern is negated.
fn glob_to_go_regex(pattern: &str) -> Result<(String, bool), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let negative = chars.first() == Some(&'!');
    let mut pos = usize::from(negative);
    let mut out = String::from("^");
    // Brace depth: inside `{…}`, `,` separates alternatives and `}` closes.
    let mut depth: usize = 0;
    while let Some(&c) = chars.get(pos) {
        pos += 1;
        match c {
            '}' if depth > 0 => {
                out.push(')');
                depth -= 1;
            }
            '*' => {
                if chars.get(pos) == Some(&'*') {
                    // `**/` at the start of the pattern or after a `/` may match no directory:
                    // the slash is swallowed into `.*`. `pos - 2` is the character before
                    // the first `*`, counting a leading `!`.
                    let slash_follows = chars.get(pos + 1) == Some(&'/');
                    let at_boundary = pos < 2 || chars.get(pos - 2) == Some(&'/');
                    pos += if slash_follows && at_boundary { 2 } else { 1 };
                    out.push_str(".*");
                } else {
                    out.push_str("[^/]*");
                }
            }
            '?' => out.push('?'),
            '+' => out.push('+'),
            '[' => {
                out.push('[');
                if chars.get(pos) == Some(&'!') {
                    pos += 1;
                    out.push('^');
                }
                loop {
                    let Some(&k) = chars.get(pos) else {
                        return Err("unterminated character class".into());
                    };
                    pos += 1;
                    if k == ']' {
                        out.push(']');
                        break;
                    }
                    if k == '\\' {
                        let Some(&escaped) = chars.get(pos) else {
                            return Err("unterminated character class escape".into());
                        };
                        pos += 1;
                        out.push('\\');
                        out.push(escaped);
                    } else {
                        out.push(k);
                    }
                }
            }
            '{' => {
                depth += 1;
                if depth > goregex::MAX_NESTING {
                    return Err("expression nests too deeply".into());
                }
                out.push('(');
            }
            ',' => out.push(if depth > 0 { '|' } else { ',' }),
            '\\' => {
                let Some(&escaped) = chars.get(pos) else {
                    return Err("no character to escape".into());
                };
                pos += 1;
                out.push('\\');
                out.push(escaped);
            }
            '.' | '^' | '$' | '(' | ')' | '|' => {
                out.push('\\');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    // An unclosed `{` leaves an unclosed group, which the regular expression rejects.
    out.push('$');
    Ok((out, negative))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(p: &str) -> String {
        glob_to_go_regex(p).expect("compiles").0
    }

    fn m(p: &str, input: &str) -> bool {
        Pattern::compile(p).expect("compiles").matches(input)
    }

    #[test]
    fn translates_like_gitea() {
        assert_eq!(go("*"), "^[^/]*$");
        assert_eq!(go("**"), "^.*$");
        assert_eq!(go("**/docs"), "^.*docs$");
        assert_eq!(go("a/**/b"), "^a/.*b$");
        assert_eq!(go("a**/b"), "^a.*/b$");
        assert_eq!(go("{main,dev}"), "^(main|dev)$");
        assert_eq!(go("[!0-9]x"), "^[^0-9]x$");
        assert_eq!(go("v1.0"), r"^v1\.0$");
        assert_eq!(go("a,b}"), "^a,b}$");
        assert_eq!(
            go("!**/docs"),
            "^.*/docs$",
            "a leading ! makes **/ need the slash"
        );
    }

    #[test]
    fn star_does_not_cross_slash_but_double_star_does() {
        assert!(m("feature/*", "feature/a"));
        assert!(!m("feature/*", "feature/a/b"));
        assert!(m("feature/**", "feature/a/b"));
        assert!(!m("*", "a/b"));
    }

    #[test]
    fn leading_double_star_slash_matches_zero_directories() {
        assert!(m("**/README.md", "README.md"));
        assert!(m("**/README.md", "a/b/README.md"));
        assert!(m("**/docs", "xdocs"), "Gitea 1.27 swallows the slash");
        assert!(m("a/**/b", "a/b"));
        assert!(m("a/**/b", "a/xb"));
        assert!(!m("a**/b", "ab"));
    }

    #[test]
    fn question_mark_and_plus_are_quantifiers() {
        assert!(m("*.jsx?", "page.js"));
        assert!(m("*.jsx?", "page.jsx"));
        assert!(!m("Octoc?t", "Octocat"));
        assert!(m("Octoc?t", "Octot"));
        assert!(m("v[0-9]+", "v123"));
        assert!(!m("v1.0.0+build", "v1.0.0+build"));
        assert!(m(r"v1.0.0\+build", "v1.0.0+build"));
    }

    #[test]
    fn classes_braces_and_escapes() {
        assert!(m("[CB]at", "Cat"));
        assert!(!m("[CB]at", "Hat"));
        assert!(m("release-[!0-9]*", "release-x1"));
        assert!(!m("release-[!0-9]*", "release-1"));
        assert!(m("{main,dev}", "dev"));
        assert!(!m("{main,dev}", "{main,dev}"));
        assert!(m(r"v\d*", "v1"));
        assert!(!m(r"v\d", "vd"));
        assert!(m(r"\!file", "!file"));
        assert!(m("[._-]x", "_x"));
    }

    #[test]
    fn broken_patterns_do_not_compile() {
        for bad in [
            "abc\\", "[", "[]", "[abc", "{a,b", "*+", "a???", "[z-a]", r"\e",
        ] {
            assert!(Pattern::compile(bad).is_err(), "{bad} must not compile");
        }
        for good in ["(", "a**/**", "+abc", "}", "a,b", "[[:alpha:]]", "{}"] {
            assert!(Pattern::compile(good).is_ok(), "{good} compiles");
        }
        let e = Pattern::compile("abc\\").expect_err("trailing backslash");
        assert_eq!(e.pattern, "abc\\");
        assert!(e.to_string().contains("no character to escape"));
    }

    #[test]
    fn matching_is_anchored_and_case_sensitive() {
        assert!(!m("main", "mainline"));
        assert!(!m("main", "xmain"));
        assert!(!m("Main", "main"));
    }

    #[test]
    fn include_list_last_match_wins() {
        let p = compile_all(&["*.md", "!README.md", "README*"]).expect("compiles");
        assert!(!skip(&p, &["README.md"]));
        let p = compile_all(&["*.md", "!README.md"]).expect("compiles");
        assert!(skip(&p, &["README.md"]));
        assert!(
            !skip(&p, &["README.md", "a.md"]),
            "one included input is enough"
        );
        let only_negative = compile_all(&["!main"]).expect("compiles");
        assert!(skip(&only_negative, &["dev"]));
        assert!(!skip(&[], &["x"]), "an empty list never skips");
        assert!(skip(&p, &[] as &[&str]), "no inputs with patterns skips");
    }

    #[test]
    fn ignore_list_needs_every_input_matched() {
        let p = compile_all(&["docs/**"]).expect("compiles");
        assert!(filter(&p, &["docs/a.md", "docs/b/c.md"]));
        assert!(!filter(&p, &["docs/a.md", "src/main.rs"]));
        assert!(
            filter(&p, &[] as &[&str]),
            "no inputs with patterns is filtered"
        );
        assert!(!filter(&[], &["x"]));
        // A `!` entry counts as matching what it does not name.
        let neg = compile_all(&["!main"]).expect("compiles");
        assert!(filter(&neg, &["dev"]));
        assert!(!filter(&neg, &["main"]));
    }
}

#[cfg(test)]
mod deep {
    use super::*;

    #[test]
    fn deeply_nested_patterns_compile_or_fail_without_crashing() {
        // Go counts the anchors' concatenation as one more level: 998 groups is its limit.
        for depth in [200, 998, 999, 1000, 1001, 5000] {
            let braces = "{".repeat(depth) + "a" + &"}".repeat(depth);
            let result = Pattern::compile(&braces);
            assert_eq!(
                result.is_ok(),
                depth + 2 <= goregex::MAX_NESTING,
                "depth {depth}"
            );
            if let Ok(p) = result {
                assert!(p.matches("a"));
            }
        }
        let classes = "[a]+".repeat(20_000);
        assert!(Pattern::compile(&classes).is_ok());
    }
}
