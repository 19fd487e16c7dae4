//! An in-memory repository: commits with full file snapshots, branches and tags.
//!
//! Enough git for push mode: the controller reads workflow files at a commit (`contents`,
//! `raw`) and the files changed between two commits (`compare`, `git/commits`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::ids::object_id;
use crate::types::FileChange;

/// Forty zeros: the `before` of a new branch.
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// How a commit changed a file, relative to its first parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New file.
    Added,
    /// Content changed.
    Modified,
    /// Deleted.
    Removed,
}

impl ChangeKind {
    /// The word Gitea's `CommitAffectedFiles.status` uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Removed => "removed",
        }
    }
}

/// One commit.
#[derive(Debug, Clone)]
pub struct CommitRec {
    /// Object id.
    pub sha: String,
    /// Parents (first parent first).
    pub parents: Vec<String>,
    /// Message, ending in a newline as git stores it.
    pub message: String,
    /// Commit time, ms since the epoch.
    pub time_ms: i64,
    /// Order of creation within the repository (newer = larger).
    pub seq: u64,
    /// The whole tree: path → content.
    pub tree: BTreeMap<String, Vec<u8>>,
    /// Changes relative to the first parent, sorted by path.
    pub changes: Vec<(String, ChangeKind)>,
}

/// What a path names inside a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file with its content.
    File(Vec<u8>),
    /// A directory with its immediate children: (name, is_dir).
    Dir(Vec<(String, bool)>),
}

/// One repository.
#[derive(Debug, Clone)]
pub struct RepoRec {
    /// Repository id.
    pub id: i64,
    /// Owner login.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Default branch.
    pub default_branch: String,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Branch → tip.
    pub branches: BTreeMap<String, String>,
    /// Tag → commit.
    pub tags: BTreeMap<String, String>,
    /// All commits by id.
    pub commits: HashMap<String, CommitRec>,
    /// Next commit sequence number.
    pub next_seq: u64,
    /// Next run index (the per-repository run number in web URLs).
    pub next_run_index: i64,
}

impl RepoRec {
    /// An empty repository.
    #[must_use]
    pub fn new(id: i64, owner: &str, name: &str, now_ms: i64) -> Self {
        RepoRec {
            id,
            owner: owner.to_owned(),
            name: name.to_owned(),
            default_branch: "main".to_owned(),
            created_ms: now_ms,
            branches: BTreeMap::new(),
            tags: BTreeMap::new(),
            commits: HashMap::new(),
            next_seq: 1,
            next_run_index: 1,
        }
    }

    /// `owner/name`.
    #[must_use]
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// Resolves a branch name, `refs/heads/…`, `refs/tags/…`, tag name, full SHA or a unique
    /// SHA prefix of at least 7 characters to a commit id.
    #[must_use]
    pub fn resolve(&self, reference: &str) -> Option<String> {
        let r = reference.trim();
        if r.is_empty() {
            return self.branches.get(&self.default_branch).cloned();
        }
        if let Some(b) = r.strip_prefix("refs/heads/") {
            return self.branches.get(b).cloned();
        }
        if let Some(t) = r.strip_prefix("refs/tags/") {
            return self.tags.get(t).cloned();
        }
        if let Some(sha) = self.branches.get(r).or_else(|| self.tags.get(r)) {
            return Some(sha.clone());
        }
        if self.commits.contains_key(r) {
            return Some(r.to_owned());
        }
        if r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut hits = self.commits.keys().filter(|k| k.starts_with(r));
            if let (Some(one), None) = (hits.next(), hits.next()) {
                return Some(one.clone());
            }
        }
        None
    }

    /// What `path` (no leading or trailing slash; empty = root) is at `commit`.
    #[must_use]
    pub fn entry(&self, commit: &str, path: &str) -> Option<Entry> {
        let tree = &self.commits.get(commit)?.tree;
        let path = path.trim_matches('/');
        if !path.is_empty() {
            if let Some(content) = tree.get(path) {
                return Some(Entry::File(content.clone()));
            }
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut children: BTreeMap<String, bool> = BTreeMap::new();
        for key in tree.keys().filter(|k| k.starts_with(&prefix)) {
            let rest = &key[prefix.len()..];
            match rest.split_once('/') {
                Some((dir, _)) => {
                    children.insert(dir.to_owned(), true);
                }
                None => {
                    children.entry(rest.to_owned()).or_insert(false);
                }
            }
        }
        if children.is_empty() && !path.is_empty() {
            return None;
        }
        Some(Entry::Dir(children.into_iter().collect()))
    }

    /// A hash of what `path` is at `commit` (file content or the whole subtree); `None` when
    /// the path does not exist there.
    #[must_use]
    pub fn entry_hash(&self, commit: &str, path: &str) -> Option<String> {
        let tree = &self.commits.get(commit)?.tree;
        let path = path.trim_matches('/');
        if let Some(content) = tree.get(path) {
            return Some(object_id(&[b"blob", content]));
        }
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut parts: Vec<&[u8]> = vec![b"tree"];
        let mut any = false;
        for (k, v) in tree.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            any = true;
            parts.push(k.as_bytes());
            parts.push(v);
        }
        if !any && !path.is_empty() {
            return None;
        }
        Some(object_id(&parts))
    }

    /// The newest commit on the first-parent chain from `commit` that changed `path`.
    #[must_use]
    pub fn last_commit_for(&self, commit: &str, path: &str) -> Option<String> {
        let mut current = self.commits.get(commit)?;
        let here = self.entry_hash(commit, path);
        loop {
            let Some(parent) = current.parents.first().and_then(|p| self.commits.get(p)) else {
                return Some(current.sha.clone());
            };
            if self.entry_hash(&parent.sha, path) != here {
                return Some(current.sha.clone());
            }
            current = parent;
        }
    }

    /// Commits reachable from `head` but not from `base`, newest first.
    #[must_use]
    pub fn commits_between(&self, base: &str, head: &str) -> Vec<String> {
        let excluded = self.ancestors(base);
        let mut out: Vec<&CommitRec> = self
            .ancestors(head)
            .difference(&excluded)
            .filter_map(|s| self.commits.get(s))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.seq));
        out.into_iter().map(|c| c.sha.clone()).collect()
    }

    fn ancestors(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([from.to_owned()]);
        while let Some(sha) = queue.pop_front() {
            if let Some(c) = self.commits.get(&sha) {
                if seen.insert(sha) {
                    queue.extend(c.parents.iter().cloned());
                }
            }
        }
        seen
    }

    /// Creates a commit on top of `parent` (or a root commit) and returns its id.
    ///
    /// # Errors
    /// When a change deletes a file that does not exist, or names an empty path.
    pub fn commit(
        &mut self,
        parent: Option<&str>,
        message: &str,
        changes: &[FileChange],
        now_ms: i64,
    ) -> Result<String, String> {
        let mut tree = match parent {
            Some(p) => self
                .commits
                .get(p)
                .map(|c| c.tree.clone())
                .ok_or_else(|| format!("unknown parent {p}"))?,
            None => BTreeMap::new(),
        };
        let before = tree.clone();
        for change in changes {
            match change {
                FileChange::Put { path, content } => {
                    let path = clean_path(path)?;
                    if before.keys().any(|k| k.starts_with(&format!("{path}/"))) {
                        return Err(format!("{path} is a directory"));
                    }
                    tree.insert(path, content.as_bytes().to_vec());
                }
                FileChange::Delete { path } => {
                    let path = clean_path(path)?;
                    if tree.remove(&path).is_none() {
                        return Err(format!("cannot delete {path}: no such file"));
                    }
                }
            }
        }
        let mut diff = Vec::new();
        for (k, v) in &tree {
            match before.get(k) {
                None => diff.push((k.clone(), ChangeKind::Added)),
                Some(old) if old != v => diff.push((k.clone(), ChangeKind::Modified)),
                Some(_) => {}
            }
        }
        for k in before.keys().filter(|k| !tree.contains_key(*k)) {
            diff.push((k.clone(), ChangeKind::Removed));
        }
        diff.sort_by(|a, b| a.0.cmp(&b.0));
        let message = if message.ends_with('\n') {
            message.to_owned()
        } else {
            format!("{message}\n")
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let sha = object_id(&[
            self.full_name().as_bytes(),
            parent.unwrap_or("").as_bytes(),
            message.as_bytes(),
            &seq.to_be_bytes(),
            &now_ms.to_be_bytes(),
        ]);
        self.commits.insert(
            sha.clone(),
            CommitRec {
                sha: sha.clone(),
                parents: parent.map(|p| vec![p.to_owned()]).unwrap_or_default(),
                message,
                time_ms: now_ms,
                seq,
                tree,
                changes: diff,
            },
        );
        Ok(sha)
    }
}

fn clean_path(path: &str) -> Result<String, String> {
    let p = path.trim_matches('/');
    if p.is_empty()
        || p.split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!("invalid file path {path:?}"));
    }
    Ok(p.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with_two_commits() -> (RepoRec, String, String) {
        let mut r = RepoRec::new(1, "acme", "app", 0);
        let a = r
            .commit(
                None,
                "first",
                &[
                    FileChange::put(".gitea/workflows/ci.yml", "on: push"),
                    FileChange::put("README.md", "hi"),
                ],
                1,
            )
            .expect("first commit");
        let b = r
            .commit(
                Some(&a),
                "second",
                &[
                    FileChange::put("src/main.rs", "fn main(){}"),
                    FileChange::delete("README.md"),
                ],
                2,
            )
            .expect("second commit");
        r.branches.insert("main".into(), b.clone());
        (r, a, b)
    }

    #[test]
    fn commits_record_changes_against_the_first_parent() {
        let (r, a, b) = repo_with_two_commits();
        let second = &r.commits[&b];
        assert_eq!(second.parents, vec![a]);
        assert_eq!(
            second.changes,
            vec![
                ("README.md".into(), ChangeKind::Removed),
                ("src/main.rs".into(), ChangeKind::Added)
            ]
        );
        assert_eq!(second.message, "second\n");
    }

    #[test]
    fn entries_are_files_or_directories_of_immediate_children() {
        let (r, _, b) = repo_with_two_commits();
        assert_eq!(
            r.entry(&b, ""),
            Some(Entry::Dir(vec![
                (".gitea".into(), true),
                ("src".into(), true)
            ]))
        );
        assert_eq!(
            r.entry(&b, ".gitea/workflows"),
            Some(Entry::Dir(vec![("ci.yml".into(), false)]))
        );
        assert_eq!(
            r.entry(&b, ".gitea/workflows/ci.yml"),
            Some(Entry::File(b"on: push".to_vec()))
        );
        assert_eq!(r.entry(&b, "README.md"), None);
        assert_eq!(r.entry(&b, ".github/workflows"), None);
    }

    #[test]
    fn refs_resolve_by_branch_prefix_and_full_ref() {
        let (r, a, b) = repo_with_two_commits();
        assert_eq!(r.resolve("main"), Some(b.clone()));
        assert_eq!(r.resolve("refs/heads/main"), Some(b.clone()));
        assert_eq!(r.resolve(""), Some(b));
        assert_eq!(r.resolve(&a[..10]), Some(a));
        assert_eq!(r.resolve("nope"), None);
    }

    #[test]
    fn compare_lists_new_commits_newest_first_and_last_commit_finds_the_change() {
        let (r, a, b) = repo_with_two_commits();
        assert_eq!(r.commits_between(&a, &b), vec![b.clone()]);
        assert!(r.commits_between(&b, &a).is_empty());
        assert_eq!(r.last_commit_for(&b, ".gitea/workflows/ci.yml"), Some(a));
        assert_eq!(r.last_commit_for(&b, "src/main.rs"), Some(b));
    }

    #[test]
    fn deleting_a_missing_file_is_refused() {
        let mut r = RepoRec::new(1, "acme", "app", 0);
        let err = r
            .commit(None, "x", &[FileChange::delete("nope")], 0)
            .expect_err("must fail");
        assert!(err.contains("no such file"), "{err}");
    }
}
