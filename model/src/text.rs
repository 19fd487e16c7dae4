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

#[cfg(test)]
mod tests {
    use super::*;

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
