//! Checks and descriptions the Gitea client applies to what it sends and reads: repository
//! names, commit ids and paths before they go into a URL; JSON decoding and error bodies
//! described without quoting the document.

use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::forge::ForgeError;

/// `GET /api/v1/admin/actions/runners` — method and path, never the query or host.
pub(super) fn describe(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

pub(super) fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, ForgeError> {
    serde_json::from_slice(body).map_err(|e| {
        ForgeError::BadResponse(format!(
            "{what}: cannot read the answer ({})",
            json_error(&e)
        ))
    })
}

/// A serde error described without quoting the document it came from.
pub(super) fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") {
        return text;
    }
    let kind = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{kind} at line {}, column {}", e.line(), e.column())
}

/// The `message` of a Gitea or Connect error body, or a short printable prefix of the body.
pub(super) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        message: Option<String>,
    }
    let text = match serde_json::from_slice::<Msg>(body) {
        Ok(Msg { message: Some(m) }) => m,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let clean: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    clean.trim().to_owned()
}

/// `owner/name`, each a Gitea name (`A-Za-z0-9-_.`, not `.` or `..`).
pub(super) fn split_repo(repo: &str) -> Result<(&str, &str), ForgeError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    match repo.split_once('/') {
        Some((owner, name)) if ok(owner) && ok(name) => Ok((owner, name)),
        _ => Err(ForgeError::NotFound(format!(
            "`{repo}` is not a repository name (owner/name)"
        ))),
    }
}

/// A commit id: 4 to 64 hex digits (SHA-1 or SHA-256).
pub(super) fn check_commit(commit: &str) -> Result<(), ForgeError> {
    if (4..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ForgeError::NotFound(format!(
            "`{commit}` is not a commit id"
        )))
    }
}

/// All zeros: the "no commit" of a new or deleted ref.
#[must_use]
pub fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// A repository path split into URL segments; refuses `.`, `..` and empty segments.
pub(super) fn path_segments(path: &str) -> Result<Vec<&str>, ForgeError> {
    let segments: Vec<&str> = path.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(ForgeError::BadResponse(format!(
            "`{path}` is not a plain repository path"
        )));
    }
    Ok(segments)
}

pub(super) fn is_workflow_name(path: &str) -> bool {
    path.ends_with(".yml") || path.ends_with(".yaml")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::gitea::wire::ApiVersion;

    #[test]
    fn repository_names_and_commits_are_checked_before_use_in_a_url() {
        assert_eq!(split_repo("acme/web").expect("valid"), ("acme", "web"));
        for bad in ["acme", "acme/web/x", "../x", "a/..", "a b/c", "/x", "x/"] {
            assert!(
                matches!(split_repo(bad), Err(ForgeError::NotFound(_))),
                "{bad}"
            );
        }
        assert!(check_commit("0123abcdef").is_ok());
        assert!(check_commit("main").is_err());
        assert!(check_commit("abc/../../x").is_err());
        assert!(is_zero_sha("0000000000000000000000000000000000000000"));
        assert!(!is_zero_sha("0000a"));
        assert!(!is_zero_sha(""));
    }

    #[test]
    fn error_messages_never_quote_json_documents() {
        let err = serde_json::from_str::<ApiVersion>(r#"{"version": 12345678}"#).expect_err("bad");
        let text = json_error(&err);
        assert!(!text.contains("12345678"), "{text}");
        let missing = serde_json::from_str::<ApiVersion>("{}").expect_err("bad");
        assert_eq!(
            json_error(&missing),
            "missing field `version` at line 1 column 2"
        );
        assert_eq!(
            error_message(br#"{"message":"token is required"}"#),
            "token is required"
        );
        assert_eq!(error_message(b"<html>\n oops</html>"), "<html> oops</html>");
    }
}
