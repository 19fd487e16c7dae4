//! Reading YAML the way Gitea's Go YAML library does, on top of `serde_yaml_ng`.
//!
//! - YAML 1.2 core schema: `on`, `yes`, `off` are strings; only `true`/`false` are booleans.
//! - Only the first document of a file counts (Gitea reads one document).
//! - A repeated mapping key is an error.
//! - Merge keys (`<<`) are applied bottom-up; keys written in the mapping win over merged
//!   ones, and earlier merge sources win over later ones.
//! - Tags (`!!str`, `!custom`) are dropped; the tagged value stays.

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use super::ParseError;

/// Parses the first YAML document of `text`.
pub(crate) fn load(text: &str) -> Result<Value, ParseError> {
    let Some(document) = serde_yaml_ng::Deserializer::from_str(text).next() else {
        return Err(ParseError::Empty);
    };
    let value = Value::deserialize(document).map_err(|e| {
        let location = e.location();
        let line = location.as_ref().map(serde_yaml_ng::Location::line);
        let column = location.as_ref().map(serde_yaml_ng::Location::column);
        let mut message = e.to_string();
        if let (Some(l), Some(c)) = (line, column) {
            // serde_yaml_ng repeats the position inside some messages; it is shown in front.
            message = message.replacen(&format!(" at line {l} column {c}"), "", 1);
        }
        ParseError::Yaml {
            line,
            column,
            message,
        }
    })?;
    let value = untag(value);
    if value.is_null() {
        return Err(ParseError::Empty);
    }
    Ok(value)
}

/// Drops YAML tags, keeping the tagged values.
pub(crate) fn untag(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => untag(tagged.value),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(untag).collect()),
        Value::Mapping(map) => {
            Value::Mapping(map.into_iter().map(|(k, v)| (untag(k), untag(v))).collect())
        }
        other => other,
    }
}

/// Applies `<<` merge keys everywhere in `value`, innermost first.
pub(crate) fn apply_merges(value: &mut Value, path: &str) -> Result<(), ParseError> {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let child = format!(
                    "{path}{}{}",
                    if path.is_empty() { "" } else { "." },
                    key_text(k)
                );
                apply_merges(v, &child)?;
            }
            merge_into(map, path)
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                apply_merges(item, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Merges the `<<` entry of one mapping (whose values are already merged).
fn merge_into(map: &mut Mapping, path: &str) -> Result<(), ParseError> {
    let Some(source) = map.remove("<<") else {
        return Ok(());
    };
    let bad = || ParseError::Invalid {
        path: join(path, "<<"),
        message: "a merge key needs a mapping or a list of mappings".into(),
    };
    match source {
        Value::Mapping(merged) => {
            for (k, v) in merged {
                map.entry(k).or_insert(v);
            }
        }
        Value::Sequence(sources) => {
            for source in sources {
                let Value::Mapping(merged) = source else {
                    return Err(bad());
                };
                for (k, v) in merged {
                    map.entry(k).or_insert(v);
                }
            }
        }
        _ => return Err(bad()),
    }
    Ok(())
}

/// `a.b` path joining for messages.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The text Go's YAML library yields when it decodes a scalar into a string; `None` for a
/// sequence or mapping. A null decodes to the empty string.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => scalar_text(&t.value),
        Value::Sequence(_) | Value::Mapping(_) => None,
    }
}

/// A mapping key as text, for paths and names.
pub(crate) fn key_text(key: &Value) -> String {
    scalar_text(key).unwrap_or_else(|| format!("<{}>", kind(key)))
}

/// What kind of node a value is, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(t) => kind(&t.value),
    }
}

/// Whether a value is a scalar (not a sequence or mapping).
pub(crate) fn is_scalar(value: &Value) -> bool {
    scalar_text(value).is_some()
}

/// Whether a value is a string holding a `${{ … }}` expression.
pub(crate) fn is_expression(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.contains("${{"))
}

/// The value as JSON, as written (numbers stay numbers; non-string keys become text).
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(
                        || serde_json::Value::String(n.to_string()),
                        serde_json::Value::Number,
                    )
            }
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Mapping(map) => {
            serde_json::Value::Object(map.iter().map(|(k, v)| (key_text(k), to_json(v))).collect())
        }
        Value::Tagged(t) => to_json(&t.value),
    }
}

/// The Go field types Gitea decodes a workflow into (`model.Workflow` and friends). A value
/// of the wrong type makes Go's decoder fail, and Gitea then ignores the whole file.
#[derive(Debug)]
pub(crate) enum Ty {
    /// A `yaml.Node`: anything goes.
    Any,
    /// A Go `string`: any scalar.
    Str,
    /// A Go `bool`: `true`/`false` (or YAML 1.1 words such as `yes`), or null.
    Bool,
    /// A Go map keyed by string.
    Map(&'static Ty),
    /// A Go slice.
    Seq(&'static Ty),
    /// A Go struct: known fields are checked, other keys ignored.
    Struct(&'static [(&'static str, Ty)]),
    /// `concurrency`: a string, or a mapping of strings.
    Concurrency,
}

const RUN_DEFAULTS: Ty = Ty::Struct(&[("shell", Ty::Str), ("working-directory", Ty::Str)]);
pub(crate) const DEFAULTS: Ty = Ty::Struct(&[("run", RUN_DEFAULTS)]);
const CONTAINER: Ty = Ty::Struct(&[
    ("image", Ty::Str),
    ("env", Ty::Map(&Ty::Str)),
    ("ports", Ty::Seq(&Ty::Str)),
    ("volumes", Ty::Seq(&Ty::Str)),
    ("options", Ty::Str),
    ("credentials", Ty::Map(&Ty::Str)),
    ("entrypoint", Ty::Str),
    ("args", Ty::Str),
    ("name", Ty::Str),
    ("reuse", Ty::Bool),
    ("cmd", Ty::Seq(&Ty::Str)),
]);
const STEP: Ty = Ty::Struct(&[
    ("id", Ty::Str),
    ("if", Ty::Any),
    ("name", Ty::Str),
    ("uses", Ty::Str),
    ("run", Ty::Str),
    ("working-directory", Ty::Str),
    ("shell", Ty::Str),
    ("env", Ty::Any),
    ("with", Ty::Map(&Ty::Str)),
    // A string in Gitea's workflow model, but a `bool` in its job parser: an expression here
    // makes Gitea 1.27 reject the file.
    ("continue-on-error", Ty::Bool),
    ("timeout-minutes", Ty::Str),
]);
const STRATEGY: Ty = Ty::Struct(&[
    ("fail-fast", Ty::Str),
    ("max-parallel", Ty::Str),
    ("matrix", Ty::Any),
]);
/// One job (`model.Job`).
pub(crate) const JOB: Ty = Ty::Struct(&[
    ("name", Ty::Str),
    ("needs", Ty::Any),
    ("runs-on", Ty::Any),
    ("env", Ty::Any),
    ("if", Ty::Any),
    ("steps", Ty::Seq(&STEP)),
    ("timeout-minutes", Ty::Str),
    ("services", Ty::Map(&CONTAINER)),
    ("strategy", STRATEGY),
    ("container", Ty::Any),
    ("defaults", DEFAULTS),
    ("outputs", Ty::Map(&Ty::Str)),
    ("uses", Ty::Str),
    ("with", Ty::Map(&Ty::Any)),
    ("secrets", Ty::Any),
    ("permissions", Ty::Any),
    ("result", Ty::Str),
    ("continue-on-error", Ty::Any),
    ("concurrency", Ty::Concurrency),
]);
/// The top level (`model.Workflow`), without `jobs` (checked job by job).
pub(crate) const WORKFLOW: Ty = Ty::Struct(&[
    ("name", Ty::Str),
    ("on", Ty::Any),
    ("env", Ty::Map(&Ty::Str)),
    ("defaults", DEFAULTS),
    ("concurrency", Ty::Concurrency),
    ("permissions", Ty::Any),
]);
const CONCURRENCY: Ty = Ty::Struct(&[("group", Ty::Str), ("cancel-in-progress", Ty::Str)]);

/// YAML 1.1 boolean words Go still accepts for a `bool` field.
const YAML11_BOOLS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "n", "N", "no", "No", "NO", "off", "Off",
    "OFF",
];

/// Checks `value` against a Go type, naming the first mismatch.
pub(crate) fn check(value: &Value, ty: &Ty, path: &str) -> Result<(), ParseError> {
    let mismatch = |expected: &str| ParseError::Invalid {
        path: if path.is_empty() {
            "(top level)".into()
        } else {
            path.to_string()
        },
        message: format!("expected {expected}, found {}", kind(value)),
    };
    match ty {
        Ty::Any => Ok(()),
        Ty::Str => is_scalar(value)
            .then_some(())
            .ok_or_else(|| mismatch("a string")),
        Ty::Bool => match value {
            Value::Null | Value::Bool(_) => Ok(()),
            Value::String(s) if YAML11_BOOLS.contains(&s.as_str()) => Ok(()),
            _ => Err(mismatch("a boolean")),
        },
        Ty::Map(inner) => match value {
            Value::Null => Ok(()),
            Value::Mapping(map) => {
                for (k, v) in map {
                    if !is_scalar(k) {
                        return Err(ParseError::Invalid {
                            path: path.to_string(),
                            message: format!("a key is {}, expected a string", kind(k)),
                        });
                    }
                    check(v, inner, &join(path, &key_text(k)))?;
                }
                Ok(())
            }
            _ => Err(mismatch("a mapping")),
        },
        Ty::Seq(inner) => match value {
            Value::Null => Ok(()),
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, inner, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            _ => Err(mismatch("a list")),
        },
        Ty::Struct(fields) => match value {
            Value::Null => Ok(()),
            Value::Mapping(map) => {
                for (name, field_ty) in *fields {
                    if let Some(v) = map.get(*name) {
                        check(v, field_ty, &join(path, name))?;
                    }
                }
                Ok(())
            }
            _ => Err(mismatch("a mapping")),
        },
        Ty::Concurrency => {
            if is_scalar(value) {
                Ok(())
            } else {
                check(value, &CONCURRENCY, path)
            }
        }
    }
}
