//! Structured-but-wrong inputs, for fuzzing the parsers that read what others send: the
//! configuration file, workflow files and webhook bodies.
//!
//! Random bytes mostly die in the first line of a parser. These functions start from a valid
//! document and break it the way real inputs break: a value of the wrong type, a key missing or
//! unknown, deep nesting, huge numbers, odd Unicode, a truncated or spliced text. Every choice
//! is drawn from a [`Choices`] (a list of numbers), so a property-test framework shrinks a
//! failing case by shrinking that list, and the same list always gives the same input.
//!
//! Pure like the rest of the crate: used by the tests here and in the controller.

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;

/// Strings that have broken parsers elsewhere: empty, whitespace, control characters, a lone
/// surrogate's replacement, right-to-left override, combining marks, emoji, zero-width space,
/// noncharacters, very long, YAML and shell syntax.
pub const ODD_STRINGS: &[&str] = &[
    "",
    " ",
    "\t\n",
    "\0",
    "\u{7f}",
    "\u{feff}",
    "\u{202e}drow",
    "e\u{301}\u{301}\u{301}",
    "😀🏳️‍🌈",
    "\u{200b}",
    "\u{fffe}\u{ffff}",
    "\u{10ffff}",
    "\u{fffd}",
    "ǅ",
    "İ",
    "'",
    "\"",
    "\\",
    "${{ github.ref }}",
    "*",
    "**/",
    "!",
    "[",
    "{",
    "a: b",
    "- x",
    "&anchor",
    "*alias",
    "<<",
    "~",
    "null",
    "yes",
    "0x10",
    "1e400",
    "-0",
    ".inf",
    ".nan",
    "$(reboot)",
    "../../etc/passwd",
    "%s%n",
];

/// Text snippets spliced into a document: YAML and JSON syntax, huge and odd numbers, control
/// and Unicode characters.
pub const SNIPPETS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "\t",
    "#",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!str ",
    "!custom ",
    "? ",
    "|\n",
    ">-\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "'",
    "\"",
    "\\u0000",
    "\\ud800",
    "\\uDFFF",
    "1e400",
    "-1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999",
    "0.0000000000000000000000000000001",
    "-0",
    "NaN",
    "Infinity",
    "0x7fffffffffffffff",
    "\u{0}",
    "\u{202e}",
    "\u{feff}",
    "😀",
    "\u{10ffff}",
    "\r\n",
    "\r",
];

/// A source of choices: the numbers a property-test framework generated, read in order. When
/// they run out every further choice is 0 (the simplest), so a shrunk list is still valid.
#[derive(Debug, Clone)]
pub struct Choices<'a> {
    numbers: &'a [u64],
    at: usize,
}

impl<'a> Choices<'a> {
    /// Choices drawn from `numbers`.
    #[must_use]
    pub fn new(numbers: &'a [u64]) -> Self {
        Choices { numbers, at: 0 }
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let raw = self.numbers.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        if n == 0 {
            0
        } else {
            // Lossless: the remainder is below n, which is a usize.
            usize::try_from(raw % n as u64).unwrap_or(0)
        }
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }
}

/// A value of any JSON type, biased to the awkward ones: null, booleans, the integer limits,
/// huge and tiny floats, odd strings, deep nesting (up to 300 levels), a large array, an
/// object with odd keys.
#[must_use]
pub fn weird_json(c: &mut Choices) -> Json {
    match c.below(12) {
        0 => Json::Null,
        1 => Json::Bool(c.below(2) == 1),
        2 => Json::from(*c.pick(&[0i64, -1, 1, i64::MIN, i64::MAX, i64::from(i32::MAX) + 1])),
        3 => Json::from(u64::MAX),
        4 => Json::from(*c.pick(&[1e308, -1e308, 5e-324, 0.5, -0.0, 1e19])),
        5 | 6 => Json::from(*c.pick(ODD_STRINGS)),
        7 => Json::from("x".repeat(1 + c.below(70_000))),
        8 => {
            let depth = 1 + c.below(300);
            let mut v = Json::from(1);
            for _ in 0..depth {
                v = if c.below(2) == 0 {
                    Json::Array(vec![v])
                } else {
                    let mut m = serde_json::Map::new();
                    m.insert("a".into(), v);
                    Json::Object(m)
                };
            }
            v
        }
        9 => Json::Array(vec![Json::from("go"); c.below(5_000)]),
        10 => {
            let mut m = serde_json::Map::new();
            for _ in 0..1 + c.below(4) {
                m.insert((*c.pick(ODD_STRINGS)).to_owned(), Json::from(1));
            }
            Json::Object(m)
        }
        _ => Json::Array(Vec::new()),
    }
}

/// Every node of `v`, as paths of object keys and array indexes.
fn json_paths(v: &Json, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match v {
        Json::Array(items) => {
            for (i, item) in items.iter().enumerate().take(64) {
                prefix.push(Step::Index(i));
                json_paths(item, prefix, out);
                prefix.pop();
            }
        }
        Json::Object(map) => {
            for (k, item) in map {
                prefix.push(Step::Key(k.clone()));
                json_paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// One step of a path into a document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
    YamlKey(Yaml),
}

fn json_at<'v>(v: &'v mut Json, path: &[Step]) -> Option<&'v mut Json> {
    let mut cur = v;
    for step in path {
        cur = match (cur, step) {
            (Json::Object(m), Step::Key(k)) => m.get_mut(k)?,
            (Json::Array(a), Step::Index(i)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Breaks `v` in 1 to 4 places: a node replaced by [`weird_json`], a key or element removed,
/// an unknown or known key added (`keys` are names the reader knows, so type confusion
/// reaches past unknown-field checks), a node wrapped in an array or object, or a node
/// replaced by a copy of another.
pub fn mutate_json(v: &mut Json, keys: &[&str], c: &mut Choices) {
    for _ in 0..1 + c.below(4) {
        let mut paths = Vec::new();
        json_paths(v, &mut Vec::new(), &mut paths);
        let path = c.pick(&paths).clone();
        let op = c.below(6);
        let donor = if op == 5 {
            let other = c.pick(&paths).clone();
            json_at(v, &other).map(|d| d.clone())
        } else {
            None
        };
        let Some(node) = json_at(v, &path) else {
            continue;
        };
        match op {
            0 | 1 => *node = weird_json(c),
            2 => match node {
                Json::Object(m) if !m.is_empty() => {
                    let k = m.keys().nth(c.below(m.len())).cloned().unwrap_or_default();
                    m.remove(&k);
                }
                Json::Array(a) if !a.is_empty() => {
                    a.remove(c.below(a.len()));
                }
                _ => *node = Json::Null,
            },
            3 => {
                if let Json::Object(m) = node {
                    let key = if keys.is_empty() || c.below(3) == 0 {
                        (*c.pick(ODD_STRINGS)).to_owned()
                    } else {
                        (*c.pick(keys)).to_owned()
                    };
                    m.insert(key, weird_json(c));
                } else {
                    *node = weird_json(c);
                }
            }
            4 => {
                let inner = node.take();
                *node = if c.below(2) == 0 {
                    Json::Array(vec![inner])
                } else {
                    let mut m = serde_json::Map::new();
                    m.insert((*c.pick(keys.get(..1).unwrap_or(&["a"]))).to_owned(), inner);
                    Json::Object(m)
                };
            }
            _ => {
                if let Some(d) = donor {
                    *node = d;
                }
            }
        }
    }
}

/// A value of any YAML type, biased to the awkward ones (as [`weird_json`], plus tagged
/// values and mappings with non-string keys).
#[must_use]
pub fn weird_yaml(c: &mut Choices) -> Yaml {
    match c.below(5) {
        0 => Yaml::Tagged(Box::new(serde_yaml_ng::value::TaggedValue {
            tag: serde_yaml_ng::value::Tag::new(*c.pick(&["!custom", "!!binary", "x"])),
            value: weird_yaml_plain(c),
        })),
        1 => {
            let mut m = serde_yaml_ng::Mapping::new();
            m.insert(weird_yaml_plain(c), Yaml::from(1));
            Yaml::Mapping(m)
        }
        _ => weird_yaml_plain(c),
    }
}

fn weird_yaml_plain(c: &mut Choices) -> Yaml {
    // Every JSON value is a YAML value.
    serde_yaml_ng::to_value(weird_json(c)).unwrap_or(Yaml::Null)
}

fn yaml_paths(v: &Yaml, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match v {
        Yaml::Sequence(items) => {
            for (i, item) in items.iter().enumerate().take(64) {
                prefix.push(Step::Index(i));
                yaml_paths(item, prefix, out);
                prefix.pop();
            }
        }
        Yaml::Mapping(map) => {
            for (k, item) in map {
                prefix.push(Step::YamlKey(k.clone()));
                yaml_paths(item, prefix, out);
                prefix.pop();
            }
        }
        Yaml::Tagged(t) => yaml_paths(&t.value, prefix, out),
        _ => {}
    }
}

fn yaml_at<'v>(v: &'v mut Yaml, path: &[Step]) -> Option<&'v mut Yaml> {
    let mut cur = v;
    for step in path {
        if let Yaml::Tagged(t) = cur {
            cur = &mut t.value;
        }
        cur = match (cur, step) {
            (Yaml::Mapping(m), Step::YamlKey(k)) => m.get_mut(k)?,
            (Yaml::Sequence(a), Step::Index(i)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// As [`mutate_json`], for a YAML document.
pub fn mutate_yaml(v: &mut Yaml, keys: &[&str], c: &mut Choices) {
    for _ in 0..1 + c.below(4) {
        let mut paths = Vec::new();
        yaml_paths(v, &mut Vec::new(), &mut paths);
        let path = c.pick(&paths).clone();
        let op = c.below(6);
        let donor = if op == 5 {
            let other = c.pick(&paths).clone();
            yaml_at(v, &other).map(|d| d.clone())
        } else {
            None
        };
        let Some(node) = yaml_at(v, &path) else {
            continue;
        };
        match op {
            0 | 1 => *node = weird_yaml(c),
            2 => match node {
                Yaml::Mapping(m) if !m.is_empty() => {
                    let k = m.keys().nth(c.below(m.len())).cloned();
                    if let Some(k) = k {
                        m.remove(&k);
                    }
                }
                Yaml::Sequence(a) if !a.is_empty() => {
                    a.remove(c.below(a.len()));
                }
                _ => *node = Yaml::Null,
            },
            3 => {
                if let Yaml::Mapping(m) = node {
                    let key = if keys.is_empty() || c.below(3) == 0 {
                        Yaml::from(*c.pick(ODD_STRINGS))
                    } else {
                        Yaml::from(*c.pick(keys))
                    };
                    m.insert(key, weird_yaml(c));
                } else {
                    *node = weird_yaml(c);
                }
            }
            4 => {
                let inner = std::mem::replace(node, Yaml::Null);
                *node = if c.below(2) == 0 {
                    Yaml::Sequence(vec![inner])
                } else {
                    let mut m = serde_yaml_ng::Mapping::new();
                    m.insert(Yaml::from(*c.pick(keys.get(..1).unwrap_or(&["a"]))), inner);
                    Yaml::Mapping(m)
                };
            }
            _ => {
                if let Some(d) = donor {
                    *node = d;
                }
            }
        }
    }
}

/// Breaks a text in 1 to 4 places: a [`SNIPPETS`] or [`ODD_STRINGS`] entry spliced in, a
/// range deleted, the text cut short, a line repeated, digits replaced by a huge number, or
/// the indentation of a line changed. Always cuts at character boundaries.
#[must_use]
pub fn mutate_text(text: &str, c: &mut Choices) -> String {
    let mut s = text.to_owned();
    for _ in 0..1 + c.below(4) {
        let bounds: Vec<usize> = s
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .collect();
        let at = *c.pick(&bounds);
        match c.below(7) {
            0 | 1 => {
                let snippet = *c.pick(SNIPPETS);
                s.insert_str(at, snippet);
            }
            2 => {
                let odd = *c.pick(ODD_STRINGS);
                s.insert_str(at, odd);
            }
            3 => {
                let end = *c.pick(&bounds);
                let (a, b) = if at <= end { (at, end) } else { (end, at) };
                if b - a < 200 {
                    s.replace_range(a..b, "");
                }
            }
            4 => s.truncate(at),
            5 => {
                let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
                if !lines.is_empty() {
                    let i = c.below(lines.len());
                    lines.insert(i, lines[i].clone());
                    let rep = c.pick(&["  ", "\t", " "]);
                    let j = c.below(lines.len());
                    lines[j] = format!("{rep}{}", lines[j]);
                    s = lines.join("\n");
                }
            }
            _ => {
                // Replace the digit run starting nearest after `at` with a huge number.
                if let Some(start) = s[at..].find(|ch: char| ch.is_ascii_digit()) {
                    let start = at + start;
                    let len = s[start..]
                        .find(|ch: char| !ch.is_ascii_digit())
                        .unwrap_or(s.len() - start);
                    let huge = c.pick(&[
                        "18446744073709551616",
                        "99999999999999999999999999",
                        "1e400",
                        "-9223372036854775809",
                        "0",
                    ]);
                    s.replace_range(start..start + len, huge);
                }
            }
        }
    }
    s
}

/// The seed of one fuzzing run, given the value of `TINQS_FUZZ_SEED` if set (a run
/// replayed), otherwise a fresh one. A run prints its seed, so any failure, however rare,
/// can be replayed exactly with the same seed and number of cases.
///
/// # Errors
/// A value that is not a decimal `u64`, naming the variable.
pub fn run_seed(set: Option<&str>) -> Result<u64, String> {
    match set {
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("TINQS_FUZZ_SEED must be a decimal u64, not {text:?}")),
        None => {
            use std::hash::BuildHasher;
            // The standard library keys each RandomState afresh: a seed nobody chose.
            Ok(std::collections::hash_map::RandomState::new().hash_one(0u8))
        }
    }
}

/// The 32 bytes a ChaCha generator takes, spread from a run's seed.
pub fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word =
            seed.rotate_left(16 * i as u32) ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1));
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_seed_is_read_back_or_refused_by_name() {
        assert_eq!(run_seed(Some(" 42\n")), Ok(42));
        let refused = run_seed(Some("0x2a")).unwrap_err();
        assert!(refused.contains("TINQS_FUZZ_SEED"), "{refused}");
        // Unset: a seed nobody chose, different from run to run.
        let drawn: std::collections::BTreeSet<u64> =
            (0..8).map(|_| run_seed(None).unwrap()).collect();
        assert!(drawn.len() > 1, "{drawn:?}");
        assert_eq!(seed_bytes(7), seed_bytes(7));
        assert_ne!(seed_bytes(7), seed_bytes(8));
    }

    #[test]
    fn the_same_choices_give_the_same_input() {
        let doc: Json = serde_json::json!({"a": [1, 2, {"b": "c"}], "d": true});
        let numbers: Vec<u64> = (0..40).map(|i| i * 7919 + 13).collect();
        let mut one = doc.clone();
        mutate_json(&mut one, &["a", "d"], &mut Choices::new(&numbers));
        let mut two = doc.clone();
        mutate_json(&mut two, &["a", "d"], &mut Choices::new(&numbers));
        assert_eq!(one, two);
        assert_ne!(one, doc, "a mutation changes the document");
        let text = "key: [1, 2]\nother: x\n";
        assert_eq!(
            mutate_text(text, &mut Choices::new(&numbers)),
            mutate_text(text, &mut Choices::new(&numbers))
        );
    }

    #[test]
    fn no_choices_means_the_simplest_ones() {
        let mut c = Choices::new(&[]);
        assert_eq!(c.below(10), 0);
        assert_eq!(weird_json(&mut c), Json::Null);
        assert_eq!(c.below(0), 0);
    }

    #[test]
    fn deep_nesting_is_generated() {
        // Choice 8 nests; 299 more levels of arrays give depth 300.
        let mut numbers = vec![8, 299];
        numbers.extend(std::iter::repeat_n(0, 299));
        let v = weird_json(&mut Choices::new(&numbers));
        let mut depth = 0;
        let mut cur = &v;
        while let Json::Array(a) = cur {
            depth += 1;
            cur = &a[0];
        }
        assert_eq!(depth, 300);
    }
}
