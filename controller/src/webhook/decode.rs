//! What the pure translation of a payload ([`super::job`], [`super::push`]) gives back, and
//! the JSON decoding both share.

use serde::Deserialize;

/// A payload translated: what to do with it, or why nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decoded<T> {
    /// Something to store.
    Use(T),
    /// Nothing to do, and why (for the log).
    Ignore(String),
}

/// Why a payload can never apply. Each says which field is wrong, never repeating its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Invalid {
    /// Not what Gitea sends (400).
    #[error("{0}")]
    Malformed(String),
    /// Well-formed, but a field is over its limit ([`super::limits`]) or cannot be put in a
    /// Gitea API path (422).
    #[error("{0}")]
    Refused(String),
}

/// Decodes `body` as `T`; a failure names what is wrong and where, never the body itself.
pub(super) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Invalid> {
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let what = if text.starts_with("missing field") {
            text.split(" at line")
                .next()
                .unwrap_or("missing field")
                .to_owned()
        } else {
            match e.classify() {
                serde_json::error::Category::Data => "unexpected field type".to_owned(),
                serde_json::error::Category::Eof => "truncated JSON".to_owned(),
                _ => "not JSON".to_owned(),
            }
        };
        Invalid::Malformed(format!(
            "malformed JSON: {what} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}
