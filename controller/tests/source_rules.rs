//! Rules about the controller's own source that the compiler does not hold: one clock, and
//! no import circle between the modules of one folder (wiki/Architecture.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `controller/src`, with its text up to its test module (tests may
/// read the host's clock to set up a scene).
fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("read a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                out.push((path, code.to_owned()));
            }
        }
    }
    out.sort();
    assert!(out.len() > 20, "found the sources: {}", out.len());
    out
}

fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.starts_with("//"))
}

/// Whatever decides by the time reads it from the one `Clock` it was given: only
/// `clock.rs` reads the host's clock (`Instant`, for measuring, is not a time of day).
#[test]
fn only_the_clock_module_reads_the_time_of_day() {
    let forbidden = ["SystemTime::now", "Utc::now", "Local::now", "Zoned::now"];
    let mut found = Vec::new();
    for (path, code) in sources() {
        if path.ends_with("clock.rs") {
            assert!(
                code.contains("SystemTime::now"),
                "the clock reads the host's time"
            );
            continue;
        }
        for (n, line) in code_lines(&code) {
            if forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{n}: {line}", path.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "read the time from a Clock instead:\n{}",
        found.join("\n")
    );
}

/// The modules a folder's module names among its siblings (`super::x`, or `crate::a::x` for
/// a folder `a`), by file stem.
fn sibling_imports(folder: &str, siblings: &BTreeSet<String>, code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, line) in code_lines(code) {
        for s in siblings {
            let via_super = format!("super::{s}");
            let via_crate = format!("crate::{folder}::{s}");
            let named = |p: &str| {
                line.match_indices(p).any(|(at, _)| {
                    let after = line[at + p.len()..].chars().next();
                    !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            };
            if named(&via_super) || (!folder.is_empty() && named(&via_crate)) {
                out.insert(s.clone());
            }
        }
    }
    out
}

/// A module that shares something with its siblings sits in a leaf they import, never in a
/// sibling that imports them back: within each folder the imports between sibling files
/// form no circle.
#[test]
fn no_import_goes_in_a_circle_between_the_files_of_a_folder() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut folders: BTreeMap<PathBuf, Vec<(String, String)>> = BTreeMap::new();
    for (path, code) in sources() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if matches!(stem, "mod" | "lib" | "main") {
            continue; // the folder's own module, parent of the siblings
        }
        let folder = path.parent().expect("in a folder").to_path_buf();
        folders
            .entry(folder)
            .or_default()
            .push((stem.to_owned(), code));
    }
    let mut circles = Vec::new();
    for (folder, files) in &folders {
        let rel = folder
            .strip_prefix(root)
            .expect("under src")
            .to_string_lossy()
            .replace('/', "::");
        let names: BTreeSet<String> = files.iter().map(|(s, _)| s.clone()).collect();
        let edges: BTreeMap<&str, BTreeSet<String>> = files
            .iter()
            .map(|(s, code)| {
                let mut others = names.clone();
                others.remove(s);
                (s.as_str(), sibling_imports(&rel, &others, code))
            })
            .collect();
        // Depth-first search for a path back to where it started.
        for start in edges.keys() {
            let mut stack: Vec<Vec<&str>> = vec![vec![start]];
            while let Some(path) = stack.pop() {
                let last = *path.last().expect("not empty");
                for next in edges.get(last).into_iter().flatten() {
                    if next == start {
                        circles.push(format!(
                            "{}: {} -> {next}",
                            folder.display(),
                            path.join(" -> ")
                        ));
                    } else if !path.contains(&next.as_str()) && path.len() < names.len() {
                        let mut longer = path.clone();
                        longer.push(next);
                        stack.push(longer);
                    }
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}
