//! Text from outside (webhooks, Gitea, the table) made safe to print and to use as a word.
//!
//! Labels, repository names and errors recorded in the table arrive from webhooks and Gitea;
//! printed raw, an ESC or CR in one of them would drive the operator's terminal (recolour,
//! rewrite earlier lines, hide text). [`escape_control`] is the one function that text output
//! passes such values through; JSON output needs no help, as JSON escapes them itself.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL, C1, so ESC, CR, LF, NUL, tab…) and every
/// bidirectional override written as a Rust-style escape (`\u{1b}`, `\r`, `\n`, `\0`), so
/// the result is one line that does nothing to a terminal. Borrowed when nothing needs
/// escaping.
#[must_use]
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    // NOTE: the bidi embeddings, overrides and isolates reorder what follows them on the line.
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Why `value` cannot be a runner label (a pool's name or one of its extra labels), or `None`
/// when it can. A label is one word: not empty, with no spaces, commas, colons or control
/// characters, because the runner's configuration joins labels with commas and gives each a
/// `:host` suffix.
#[must_use]
pub fn label_problem(value: &str) -> Option<&'static str> {
    let bad = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ',' || c == ':');
    bad.then_some("must be one word with no spaces, commas, colons or control characters")
}

/// Quoted values longer than this many characters are not repeated in an error.
pub const MAX_QUOTED_CHARS: usize = 24;

/// A parser's error `message` (serde's wording) made fit to print and log: a value quoted
/// after `invalid type: string` is replaced by its length (the field and the expected type
/// say what is wrong, and a secret pasted into the wrong field must not reach a log), any
/// other value quoted in backticks or double quotes and longer than [`MAX_QUOTED_CHARS`] is
/// replaced by its length, and control characters are escaped. Field names and the short
/// lists of what was expected stay.
#[must_use]
pub fn hide_values(message: &str) -> String {
    const STRING: &str = "invalid type: string ";
    let out = rewrite_quoted(message, |out, before, quote, inner| {
        let chars = inner.chars().count();
        if quote == '"' && before.ends_with(STRING) {
            out.truncate(out.len() - STRING.len());
            out.push_str(&format!(
                "invalid type: a string of {chars} characters (not shown)"
            ));
        } else if chars > MAX_QUOTED_CHARS {
            out.push_str(&format!("a value of {chars} characters (not shown)"));
        } else {
            out.push(quote);
            out.push_str(inner);
            out.push(quote);
        }
    });
    let out = escape_control(&out);
    cut(&out, MAX_MESSAGE_CHARS).into_owned()
}

/// `message` with each value quoted in backticks or double quotes written by `quoted`, which
/// gets the output so far (ending with the text before the quote), that text, the quote
/// character and the value. A quote that is never closed (a key named `"`, say) is copied as
/// text, and the search goes on after it: a value quoted later is still seen.
fn rewrite_quoted(message: &str, mut quoted: impl FnMut(&mut String, &str, char, &str)) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        let before = &rest[..open];
        out.push_str(before);
        let after = &rest[open + 1..];
        match quoted_len(after, quote) {
            Some(len) => {
                quoted(&mut out, before, quote, &after[..len]);
                rest = &after[len + 1..];
            }
            None => {
                out.push(quote);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` cut to its first three quarters of `max` characters, with its length, when it is
/// longer than `max` characters: a key or value from a file, quoted in an error, stays
/// recognisable without filling the screen. Borrowed when short enough.
#[must_use]
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    let n = text.chars().count();
    if n <= max {
        return Cow::Borrowed(text);
    }
    let head: String = text.chars().take(max * 3 / 4).collect();
    Cow::Owned(format!("{head}… ({n} characters)"))
}

/// A key, path or value from outside as an error quotes it on its own: [`cut`] to `max`
/// characters, then with its control characters escaped.
#[must_use]
pub fn shown(value: &str, max: usize) -> String {
    escape_control(&cut(value, max)).into_owned()
}

/// Longest message [`hide_values`] and [`cut_quoted`] return, in characters, whatever it
/// quotes.
pub const MAX_MESSAGE_CHARS: usize = 2048;

/// A message that quotes values from a file (in backticks or double quotes) made fit to
/// print: each quoted value over `max` characters is [`cut`], control characters are
/// escaped, and the whole is at most [`MAX_MESSAGE_CHARS`] characters. Unlike
/// [`hide_values`], short values stay whole: for text an author wrote, not secrets.
#[must_use]
pub fn cut_quoted(message: &str, max: usize) -> String {
    let out = rewrite_quoted(message, |out, _, quote, inner| {
        out.push(quote);
        out.push_str(&cut(inner, max));
        out.push(quote);
    });
    let out = escape_control(&out);
    cut(&out, MAX_MESSAGE_CHARS).into_owned()
}

/// The byte length of a quoted value up to its closing `quote` (a backslash escapes the next
/// character inside double quotes, as Rust's debug format writes them); `None` if unclosed.
fn quoted_len(text: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote == '"' {
            escaped = true;
        } else if c == quote {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_and_short_ones_kept() {
        let key = "x".repeat(8124);
        let message = format!("`jobs.release.{key}.<<`: a merge key needs a mapping, \"{key}\"");
        let printed = cut_quoted(&message, 64);
        assert!(printed.len() < 300, "{printed}");
        assert!(printed.starts_with("`jobs.release.xxx"), "{printed}");
        assert!(printed.contains("… (8140 characters)`"), "{printed}");
        assert!(printed.contains("… (8124 characters)\""), "{printed}");
        assert!(
            printed.contains(": a merge key needs a mapping, "),
            "{printed}"
        );
        assert_eq!(
            cut_quoted("`jobs.build`: no `runs-on`", 64),
            "`jobs.build`: no `runs-on`"
        );
        assert_eq!(cut_quoted("`a\u{1b}[2J`", 64), "`a\\u{1b}[2J`");
        // Unquoted text from elsewhere is bounded too, and an unclosed quote is no trouble.
        let long = format!("`{}", "y".repeat(10_000));
        assert!(cut_quoted(&long, 64).chars().count() <= MAX_MESSAGE_CHARS + 24);
        assert_eq!(cut("short", 64), "short");
        assert_eq!(cut("abcdefghij", 8), "abcdef… (10 characters)");
    }

    #[test]
    fn values_in_errors_are_hidden_when_long_or_of_the_wrong_type() {
        let token = "ghp_0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            hide_values(&format!(
                "gitea: invalid type: string \"{token}\", expected struct GiteaConfig at line 2"
            )),
            "gitea: invalid type: a string of 44 characters (not shown), expected struct GiteaConfig at line 2"
        );
        assert_eq!(
            hide_values("x: invalid type: string \"a\\\"b\", expected u32"),
            "x: invalid type: a string of 4 characters (not shown), expected u32"
        );
        assert_eq!(
            hide_values(&format!("gitea.demand: unknown variant `{token}`, expected `jobs` or `push`")),
            "gitea.demand: unknown variant a value of 44 characters (not shown), expected `jobs` or `push`"
        );
        assert_eq!(
            hide_values("unknown field `tokn`, expected one of `url`, `token_env`"),
            "unknown field `tokn`, expected one of `url`, `token_env`"
        );
        assert_eq!(
            hide_values("unclosed `quote\u{1b}"),
            "unclosed `quote\\u{1b}"
        );
        assert_eq!(hide_values("é \"ü\" `😀`"), "é \"ü\" `😀`");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(escape_control("go, linux"), Cow::Borrowed(_)));
        assert_eq!(
            escape_control("a\u{1b}[31mred\r\0\nb\u{7f}\u{9b}"),
            "a\\u{1b}[31mred\\r\\0\\nb\\u{7f}\\u{9b}"
        );
        assert_eq!(escape_control("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(escape_control("émoji ✓ \"q\" \\"), "émoji ✓ \"q\" \\");
    }

    #[test]
    fn labels_are_one_word() {
        for ok in ["go", "ubuntu-22.04", "gpu_a10"] {
            assert_eq!(label_problem(ok), None, "{ok}");
        }
        for bad in ["", "go linux", "a,b", "go:host", "x\u{1b}", "tab\t"] {
            assert!(label_problem(bad).is_some(), "{bad:?}");
        }
    }
}
