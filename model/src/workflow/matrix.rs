//! Matrix expansion as Gitea (and the Forgejo runner) does it: `GetMatrixes` of the act model.
//!
//! 1. No `strategy`, no `matrix`, or a `matrix` that is not a mapping: one job, empty matrix.
//! 2. A `${{ … }}` expression as the matrix, as an axis, as `include`/`exclude` or as one of
//!    their entries: decided when the run starts, unknown here ([`Matrix::Dynamic`]).
//! 3. A scalar axis value counts as a one-value list; a mapping as an axis value makes Gitea
//!    drop the whole matrix (one job).
//! 4. `include` entries with no key of the matrix mapping (including the keys `include` and
//!    `exclude` themselves) become new jobs of their own. This differs from GitHub, which adds
//!    such entries to every combination.
//! 5. The cartesian product of the axes (empty when any axis is empty or there is none), minus
//!    every combination an `exclude` entry partially matches. An `exclude` key that is not in
//!    the matrix fails the run.
//! 6. Each remaining `include` is merged into every original combination whose axis values it
//!    does not contradict; if it fits none, it becomes a new job.
//! 7. If nothing is left, one job with an empty matrix.
//!
//! Values compare strictly (`'21'` is not `21`, `1` is not `1.0`), like Go's `DeepEqual`.
//! Gitea orders the combinations by their display name `(v1, v2, …)` (values in key order).

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::yaml::{is_expression, scalar_text};

/// One matrix combination: axis name to value.
pub type Combination = BTreeMap<String, Value>;

/// The most combinations we list; a bigger product is reported as [`Matrix::TooLarge`].
pub const MAX_COMBINATIONS: u128 = 65_536;

/// What Gitea makes of a job's `strategy.matrix`.
#[derive(Debug, Clone, PartialEq)]
pub enum Matrix {
    /// Gitea creates exactly these job instances, in this order.
    Static(Vec<Combination>),
    /// Gitea works the matrix out from an expression when the run starts.
    Dynamic(String),
    /// Gitea fails (or crashes) expanding this matrix, so the job never gets instances.
    Invalid(String),
    /// The cartesian product has this many combinations, more than [`MAX_COMBINATIONS`].
    TooLarge(u128),
}

impl Matrix {
    /// The number of job instances Gitea creates, when it is known.
    #[must_use]
    pub fn size(&self) -> Option<usize> {
        match self {
            Matrix::Static(c) => Some(c.len()),
            Matrix::Dynamic(_) | Matrix::Invalid(_) | Matrix::TooLarge(_) => None,
        }
    }

    /// Why the size is not known, if it is not.
    #[must_use]
    pub fn unknown_reason(&self) -> Option<String> {
        match self {
            Matrix::Static(_) => None,
            Matrix::Dynamic(why) => {
                Some(format!("the matrix is decided when the run starts: {why}"))
            }
            Matrix::Invalid(why) => Some(format!("Gitea cannot expand the matrix: {why}")),
            Matrix::TooLarge(n) => Some(format!(
                "the matrix has {n} combinations, more than {MAX_COMBINATIONS} we list"
            )),
        }
    }
}

/// Expands a job's `strategy` value (already merge-resolved) the way Gitea does.
#[must_use]
pub fn expand(strategy: Option<&Value>) -> Matrix {
    let one = || Matrix::Static(vec![Combination::new()]);
    let Some(Value::Mapping(strategy)) = strategy else {
        return one();
    };
    let Some(matrix) = strategy.get("matrix") else {
        return one();
    };
    let map = match matrix {
        Value::Mapping(map) => map,
        m if is_expression(m) => {
            return Matrix::Dynamic("`strategy.matrix` is an expression".into())
        }
        _ => return one(),
    };

    // Expressions anywhere Gitea evaluates them before expanding.
    for (k, v) in map {
        let name = scalar_text(k).unwrap_or_default();
        if is_expression(v) {
            return Matrix::Dynamic(format!("`{name}` is an expression"));
        }
        if (name == "include" || name == "exclude")
            && matches!(v, Value::Sequence(items) if items.iter().any(is_expression))
        {
            return Matrix::Dynamic(format!("an entry of `{name}` is an expression"));
        }
    }

    // Gitea's flexible decode: every key must be text; a scalar becomes a one-value list; a
    // mapping anywhere at this level drops the whole matrix.
    let mut m: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in map {
        let Some(name) = scalar_text(k) else {
            return one();
        };
        let values = match v {
            Value::Sequence(items) => items.clone(),
            Value::Mapping(_) => return one(),
            scalar => vec![scalar.clone()],
        };
        m.push((name, values));
    }
    let has_key = |m: &[(String, Vec<Value>)], key: &str| m.iter().any(|(k, _)| k == key);

    // Sort `include` into entries that mention a matrix key and entries that do not.
    let mut includes: Vec<Combination> = Vec::new();
    let mut extra_includes: Vec<Combination> = Vec::new();
    let include_items: Vec<Value> = m
        .iter()
        .find(|(k, _)| k == "include")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let classify = |entry: &Value,
                    includes: &mut Vec<Combination>,
                    extra: &mut Vec<Combination>|
     -> Result<(), String> {
        let combination = as_combination(entry).ok_or_else(|| {
            format!(
                "an `include` entry is {}, not a mapping (Gitea crashes on it)",
                super::yaml::kind(entry)
            )
        })?;
        if combination.keys().any(|k| has_key(&m, k)) {
            includes.push(combination);
        } else {
            extra.push(combination);
        }
        Ok(())
    };
    for item in &include_items {
        let result = match item {
            Value::Sequence(nested) => nested
                .iter()
                .try_for_each(|entry| classify(entry, &mut includes, &mut extra_includes)),
            // A null entry matches no case of Gitea's type switch and is skipped.
            Value::Null => Ok(()),
            entry => classify(entry, &mut includes, &mut extra_includes),
        };
        if let Err(why) = result {
            return Matrix::Invalid(why);
        }
    }
    m.retain(|(k, _)| k != "include");

    let exclude_items: Vec<Value> = m
        .iter()
        .find(|(k, _)| k == "exclude")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut excludes: Vec<Combination> = Vec::new();
    for item in &exclude_items {
        let Some(exclude) = as_combination(item) else {
            return Matrix::Invalid(format!(
                "an `exclude` entry is {}, not a mapping (Gitea crashes on it)",
                super::yaml::kind(item)
            ));
        };
        if let Some(unknown) = exclude.keys().find(|k| !has_key(&m, k)) {
            return Matrix::Invalid(format!(
                "`exclude` names `{unknown}`, which is not a matrix key"
            ));
        }
        excludes.push(exclude);
    }
    m.retain(|(k, _)| k != "exclude");

    let product: u128 = if m.is_empty() {
        0
    } else {
        m.iter().map(|(_, v)| v.len() as u128).product()
    };
    if product > MAX_COMBINATIONS {
        return Matrix::TooLarge(product);
    }

    let mut combinations: Vec<Combination> = cartesian(&m)
        .into_iter()
        .filter(|c| !excludes.iter().any(|e| common_keys_match(c, e)))
        .collect();
    let originals = combinations.len();
    // Each include is compared with every original combination; bound the work.
    if (includes.len() as u128) * (originals as u128) > 1_000 * MAX_COMBINATIONS {
        return Matrix::TooLarge(product);
    }
    for include in includes {
        let mut matched = false;
        for combination in combinations.iter_mut().take(originals) {
            if axis_keys_match(combination, &include, &m) {
                matched = true;
                for (k, v) in &include {
                    combination.insert(k.clone(), v.clone());
                }
            }
        }
        if !matched {
            extra_includes.push(include);
        }
    }
    combinations.extend(extra_includes);
    if combinations.is_empty() {
        combinations.push(Combination::new());
    }
    combinations.sort_by_cached_key(display_name);
    Matrix::Static(combinations)
}

/// A mapping with text keys as a combination; `None` for anything else.
fn as_combination(value: &Value) -> Option<Combination> {
    let Value::Mapping(map) = value else {
        return None;
    };
    map.iter()
        .map(|(k, v)| match k {
            Value::String(s) => Some((s.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// The cartesian product of the axes, in axis order.
fn cartesian(axes: &[(String, Vec<Value>)]) -> Vec<Combination> {
    if axes.is_empty() || axes.iter().any(|(_, v)| v.is_empty()) {
        return Vec::new();
    }
    let mut out = vec![Combination::new()];
    for (key, values) in axes {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for partial in &out {
            for value in values {
                let mut c = partial.clone();
                c.insert(key.clone(), value.clone());
                next.push(c);
            }
        }
        out = next;
    }
    out
}

/// Gitea's exclude test: every key of the combination that the exclude entry also has must
/// hold the same value.
fn common_keys_match(combination: &Combination, exclude: &Combination) -> bool {
    combination
        .iter()
        .all(|(k, v)| exclude.get(k).is_none_or(|e| e == v))
}

/// Gitea's include test: like [`common_keys_match`], looking only at axis keys.
fn axis_keys_match(
    combination: &Combination,
    include: &Combination,
    axes: &[(String, Vec<Value>)],
) -> bool {
    combination
        .iter()
        .all(|(k, v)| !axes.iter().any(|(a, _)| a == k) || include.get(k).is_none_or(|i| i == v))
}

/// Gitea's name suffix for a combination: `(v1, v2)` with values in key order, each printed
/// the way Go's `fmt.Sprint` prints it.
#[must_use]
pub fn display_name(combination: &Combination) -> String {
    let values: Vec<String> = combination.values().map(go_sprint).collect();
    format!("({})", values.join(", "))
}

/// Go's `fmt.Sprint` of a decoded YAML value.
fn go_sprint(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if n.is_f64() {
                n.as_f64().map_or_else(|| n.to_string(), go_float)
            } else {
                n.to_string()
            }
        }
        Value::String(s) => s.clone(),
        Value::Sequence(items) => {
            let parts: Vec<String> = items.iter().map(go_sprint).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Mapping(map) => {
            let mut parts: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| (go_sprint(k), go_sprint(v)))
                .collect();
            parts.sort();
            let joined: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", joined.join(" "))
        }
        Value::Tagged(t) => go_sprint(&t.value),
    }
}

/// Go's `%v` for a float64: the shortest digits, in exponent form when the exponent is below
/// -4 or at least 6 (`1e+06`, `1.5e-05`, `123456`).
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(yaml: &str) -> Value {
        serde_yaml_ng::from_str(yaml).expect("test YAML parses")
    }

    fn size(yaml: &str) -> Option<usize> {
        expand(Some(&strategy(yaml))).size()
    }

    #[test]
    fn no_strategy_or_no_matrix_is_one_job() {
        assert_eq!(expand(None).size(), Some(1));
        assert_eq!(size("fail-fast: false"), Some(1));
        assert_eq!(size("matrix: ~"), Some(1));
        assert_eq!(
            size("matrix: [a, b]"),
            Some(1),
            "a non-mapping matrix is dropped"
        );
    }

    #[test]
    fn product_of_axes() {
        assert_eq!(size("matrix: {os: [a, b, c], v: [1, 2]}"), Some(6));
        assert_eq!(
            size("matrix: {os: [a, b], v: []}"),
            Some(1),
            "empty product falls back to one"
        );
        assert_eq!(
            size("matrix: {os: a, v: [1, 2]}"),
            Some(2),
            "a scalar axis is one value"
        );
        assert_eq!(
            size("matrix: {os: {a: 1}, v: [1, 2]}"),
            Some(1),
            "a mapping axis drops the matrix"
        );
    }

    #[test]
    fn exclude_matches_partially() {
        let s = "matrix: {os: [a, b], v: [1, 2, 3], exclude: [{os: a}, {os: b, v: 3}]}";
        assert_eq!(size(s), Some(2));
        assert_eq!(
            size("matrix: {os: [a], exclude: [{os: a}]}"),
            Some(1),
            "all excluded falls back to one"
        );
    }

    #[test]
    fn exclude_with_an_unknown_key_fails() {
        let m = expand(Some(&strategy("matrix: {os: [a], exclude: [{arch: x}]}")));
        assert!(
            matches!(m, Matrix::Invalid(ref why) if why.contains("arch")),
            "{m:?}"
        );
        let m = expand(Some(&strategy("matrix: {os: [a], exclude: [x]}")));
        assert!(matches!(m, Matrix::Invalid(_)));
    }

    #[test]
    fn include_extends_or_adds() {
        // Extends both `a` combinations, adds a new one for `c`.
        let s = "matrix: {os: [a, b], v: [1, 2], include: [{os: a, extra: x}, {os: c, v: 9}]}";
        let Matrix::Static(c) = expand(Some(&strategy(s))) else {
            panic!("static")
        };
        assert_eq!(c.len(), 5);
        let with_extra = c.iter().filter(|c| c.contains_key("extra")).count();
        assert_eq!(with_extra, 2);
        // An include that contradicts an original value becomes its own job.
        assert_eq!(size("matrix: {os: [a], include: [{os: b}]}"), Some(2));
    }

    #[test]
    fn include_without_matrix_keys_is_a_new_job_in_gitea() {
        // GitHub would add `experimental` to both combinations (2 jobs); Gitea makes 3.
        assert_eq!(
            size("matrix: {os: [a, b], include: [{experimental: true}]}"),
            Some(3)
        );
        // Include-only matrices: each entry is a job.
        assert_eq!(size("matrix: {include: [{a: 1}, {a: 2}]}"), Some(2));
    }

    #[test]
    fn values_compare_strictly() {
        assert_eq!(size("matrix: {v: ['21'], exclude: [{v: 21}]}"), Some(1));
        let Matrix::Static(c) = expand(Some(&strategy(
            "matrix: {v: ['21', '22'], exclude: [{v: 21}]}",
        ))) else {
            panic!("static")
        };
        assert_eq!(c.len(), 2, "integer 21 excludes nothing");
    }

    #[test]
    fn expressions_make_the_matrix_dynamic() {
        for s in [
            "matrix: ${{ fromJSON(needs.a.outputs.m) }}",
            "matrix: {app: '${{ fromJSON(x) }}'}",
            "matrix: {os: [a], include: '${{ x }}'}",
            "matrix: {os: [a], exclude: ['${{ x }}']}",
        ] {
            assert!(
                matches!(expand(Some(&strategy(s))), Matrix::Dynamic(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn huge_products_are_not_listed() {
        let axes: Vec<String> = (0..6)
            .map(|i| format!("a{i}: [1,2,3,4,5,6,7,8,9,10]"))
            .collect();
        let s = format!("matrix: {{{}}}", axes.join(", "));
        assert_eq!(expand(Some(&strategy(&s))), Matrix::TooLarge(1_000_000));
    }

    #[test]
    fn combinations_are_ordered_by_display_name() {
        let Matrix::Static(c) = expand(Some(&strategy("matrix: {os: [b, a], v: [2, 1]}"))) else {
            panic!("static")
        };
        let names: Vec<String> = c.iter().map(display_name).collect();
        assert_eq!(names, ["(a, 1)", "(a, 2)", "(b, 1)", "(b, 2)"]);
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(3.1), "3.1");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(123_456.0), "123456");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(0.000_01), "1e-05");
        assert_eq!(go_float(0.0001), "0.0001");
    }
}
