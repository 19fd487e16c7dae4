//! The actions cache: its configuration, who may see which entry, which entry a lookup
//! restores, how an upload's chunks make an entry, and what eviction removes.
//!
//! Pure: the service in the controller (`controller::cache`) reads and writes S3 and asks
//! these functions what to do. The protocol is the one `actions/cache` speaks to
//! `ACTIONS_CACHE_URL` (see `wiki/Cache.md`, which cites its sources).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::time::duration_serde;

/// The `cache:` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCacheConfig")]
pub struct CacheConfig {
    /// The S3 bucket holding entries and their metadata.
    pub bucket: String,
    /// A key prefix inside the bucket (empty: the bucket's root); ends with `/` when set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The service's base URL as runners reach it (`http://10.0.1.5:8081`): each runner's
    /// `cache.external_server` is this plus the runner's name and credential.
    pub url: String,
    /// Most bytes of committed entries one repository keeps (default 10 GB); past it the
    /// least recently used entries are evicted.
    pub max_repo_size: u64,
    /// An entry nobody restored for this long is removed (default 7 days).
    #[serde(serialize_with = "duration_serde::serialize")]
    pub expiry: Duration,
}

/// The default `max_repo_size`: 10 GB, GitHub's limit per repository.
pub const DEFAULT_MAX_REPO_SIZE: u64 = 10_000_000_000;
/// The default `expiry`: 7 days, GitHub's (and act's) for entries not used.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A size as written: a number of bytes, or text like `10GB`, `500MiB`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCacheConfig {
    bucket: String,
    #[serde(default)]
    prefix: String,
    url: String,
    #[serde(default)]
    max_repo_size: Option<SizeText>,
    #[serde(default)]
    expiry: Option<String>,
}

impl TryFrom<RawCacheConfig> for CacheConfig {
    type Error = String;
    fn try_from(raw: RawCacheConfig) -> Result<Self, String> {
        let max_repo_size = match raw.max_repo_size {
            None => DEFAULT_MAX_REPO_SIZE,
            Some(SizeText::Bytes(n)) => n,
            Some(SizeText::Text(t)) => {
                parse_size(&t).map_err(|e| format!("cache.max_repo_size: {e}"))?
            }
        };
        let expiry = match raw.expiry {
            None => DEFAULT_EXPIRY,
            Some(t) => crate::time::parse_config_duration(&t, "7days or 36h")
                .map_err(|e| format!("cache.expiry: {e}"))?,
        };
        let prefix = if raw.prefix.is_empty() || raw.prefix.ends_with('/') {
            raw.prefix
        } else {
            format!("{}/", raw.prefix)
        };
        Ok(CacheConfig {
            bucket: raw.bucket,
            prefix,
            url: raw.url.trim_end_matches('/').to_owned(),
            max_repo_size,
            expiry,
        })
    }
}

/// Parses a size: bytes (`1048576`), or a number with `KB`, `MB`, `GB`, `TB` (powers of
/// 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024).
///
/// # Errors
/// When the text is not such a size.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || format!("`{t}` is not a size (write it like 10GB, 500MiB or 1048576)");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

impl CacheConfig {
    /// Every value problem, as (field, problem).
    #[must_use]
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let b = &self.bucket;
        if b.len() < 3
            || b.len() > 63
            || !b
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
            || !b.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !b.ends_with(|c: char| c.is_ascii_alphanumeric())
        {
            out.push((
                "bucket",
                "must be an S3 bucket name: 3 to 63 of a-z 0-9 . -, starting and ending with a \
                 letter or digit"
                    .to_owned(),
            ));
        }
        if self.prefix.starts_with('/')
            || self.prefix.split('/').any(|s| s == "..")
            || !self
                .prefix
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c))
        {
            out.push((
                "prefix",
                "must be a relative key prefix of A-Z a-z 0-9 - _ . / (like ci-cache/)".to_owned(),
            ));
        }
        // NOTE: the URL is never echoed: it could hold credentials.
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"));
        match rest {
            Some(rest)
                if !rest.is_empty()
                    && !rest.contains(['?', '#', '@'])
                    && !rest.chars().any(|c| c.is_whitespace() || c.is_control()) => {}
            _ => out.push((
                "url",
                "must be the http:// or https:// address runners reach the service at, with no \
                 credentials, query or fragment (like http://10.0.1.5:8081)"
                    .to_owned(),
            )),
        }
        if self.max_repo_size < MIN_REPO_SIZE {
            out.push(("max_repo_size", "must be at least 1MiB".to_owned()));
        }
        if self.expiry < Duration::from_secs(3600) {
            out.push(("expiry", "must be at least 1h".to_owned()));
        }
        out
    }
}

/// The smallest `max_repo_size` accepted.
pub const MIN_REPO_SIZE: u64 = 1 << 20;

/// The `cache.external_server` URL of one runner: the service's base URL, the runner's name
/// and its credential, ending with `/` (the toolkit appends `_apis/artifactcache/…` to it
/// without a separator).
#[must_use]
pub fn runner_url(base: &str, runner: &str, token: &str) -> String {
    format!("{}/{runner}/{token}/", base.trim_end_matches('/'))
}

/// What is stored for a runner's cache credential: its SHA-256, in hex. The credential itself
/// is only in the runner's user-data.
#[must_use]
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` looks like a credential the controller makes (64 hex digits); anything else
/// is refused before any lookup.
#[must_use]
pub fn token_well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where a job's entries live and which it may read.
///
/// Like GitHub: a job writes entries in its own scope (its branch), and reads its own scope
/// first, then its repository's default branch. A job whose branch is not known (a tag or a
/// pull request ref) gets a scope of its workflow run alone, so it can neither read another
/// pull request's entries nor plant one for a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobScope {
    /// `owner/name`, lower case (Gitea repository names are case-insensitive).
    pub repo: String,
    /// The scope this job writes.
    pub write: String,
    /// The scopes this job reads, in the order they are searched.
    pub read: Vec<String>,
}

impl JobScope {
    /// The scope of a job of `repo` on branch `branch` (when known), whose repository's
    /// default branch is `default_branch` (when known), in workflow run `workflow_run` (or,
    /// without one, job `job`).
    #[must_use]
    pub fn of_job(
        repo: &str,
        branch: Option<&str>,
        default_branch: Option<&str>,
        workflow_run: Option<i64>,
        job: i64,
    ) -> Self {
        let branch_scope = |b: &str| format!("branch:{b}");
        let write = match (branch.filter(|b| !b.is_empty()), workflow_run) {
            (Some(b), _) => branch_scope(b),
            (None, Some(run)) => format!("run:{run}"),
            (None, None) => format!("job:{job}"),
        };
        let mut read = vec![write.clone()];
        if let Some(d) = default_branch.filter(|d| !d.is_empty()) {
            let d = branch_scope(d);
            if d != write {
                read.push(d);
            }
        }
        JobScope {
            repo: repo.to_ascii_lowercase(),
            write,
            read,
        }
    }

    /// Whether this job may read an entry of `repo` in `scope`.
    #[must_use]
    pub fn may_read(&self, repo: &str, scope: &str) -> bool {
        self.repo == repo && self.read.iter().any(|s| s == scope)
    }

    /// Whether this job may write (upload to, commit) an entry of `repo` in `scope`.
    #[must_use]
    pub fn may_write(&self, repo: &str, scope: &str) -> bool {
        self.repo == repo && self.write == scope
    }
}

/// The job a runner is running, as the `in_progress` webhook named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerJob {
    /// The run of that job (whose job state says whether it still runs on this runner).
    pub run: crate::RunId,
    /// Gitea's job id.
    pub job_id: i64,
    /// `owner/name`.
    pub repo: String,
    /// The branch the job runs for (`head_branch`), when it is a branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The repository's default branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// The workflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_run: Option<i64>,
}

impl RunnerJob {
    /// The cache scope of this job.
    #[must_use]
    pub fn scope(&self) -> JobScope {
        JobScope::of_job(
            &self.repo,
            self.branch.as_deref(),
            self.default_branch.as_deref(),
            self.workflow_run,
            self.job_id,
        )
    }
}

/// What the run table holds about one runner, for the cache: its credential's hash (written
/// at launch) and the job it started (written by the `in_progress` webhook).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerRecord {
    /// [`token_hash`] of the runner's credential.
    pub credential: Option<String>,
    /// The job it runs.
    pub job: Option<RunnerJob>,
}

/// One chunk of an entry: bytes `offset .. offset + len`, stored as one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (at least 1).
    pub len: u64,
}

/// An entry's metadata, stored as one small object beside its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The id handed to the client (`cacheId`); below 2^53 so JavaScript reads it exactly.
    pub id: u64,
    /// `owner/name`, lower case.
    pub repo: String,
    /// The scope it was written in ([`JobScope::write`]).
    pub scope: String,
    /// The key as the client gave it (matched without regard to case).
    pub key: String,
    /// The version (a hash of the cached paths and compression) as the client gave it.
    pub version: String,
    /// When it was reserved (milliseconds since the epoch).
    pub created_ms: i64,
    /// The size the client announced when reserving, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<u64>,
    /// Set at commit: the chunks in order, covering `0 .. size` with no gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<Committed>,
}

/// What a commit fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// Total bytes.
    pub size: u64,
    /// The chunks in order.
    pub chunks: Vec<Chunk>,
}

/// The largest entry id, 2^53 - 1 (JavaScript's largest exact integer).
pub const MAX_ENTRY_ID: u64 = (1 << 53) - 1;

/// Lower case, as keys are matched (act lower-cases them too).
#[must_use]
pub fn normalize_key(key: &str) -> String {
    key.to_lowercase()
}

/// Checks a key or version from a client: 1 to 512 characters, no control characters, and a
/// key holds no `,` (lookups separate keys with commas).
///
/// # Errors
/// What is wrong, naming `what`.
pub fn check_text(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.chars().count() > 512 {
        return Err(format!("{what} must be 1 to 512 characters"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} must not hold control characters"));
    }
    if what == "key" && text.contains(',') {
        return Err("key must not hold a comma".to_owned());
    }
    Ok(())
}

/// A committed entry as its index key names it, enough to choose among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    /// Entry id.
    pub id: u64,
    /// `owner/name`.
    pub repo: String,
    /// Scope.
    pub scope: String,
    /// Key, lower case.
    pub key: String,
    /// Version.
    pub version: String,
    /// When it was reserved.
    pub created_ms: i64,
}

/// The entry a lookup restores, as act and GitHub choose it: for each scope the job reads (its
/// own first), for each key in the order given, an entry whose key equals it, else one whose
/// key starts with it; always of the same version, and the newest of those that match.
#[must_use]
pub fn pick<'a>(
    keys: &[String],
    version: &str,
    scopes: &[String],
    found: &'a [Indexed],
) -> Option<&'a Indexed> {
    let newest =
        |it: &mut dyn Iterator<Item = &'a Indexed>| it.max_by_key(|e| (e.created_ms, e.id));
    for scope in scopes {
        for key in keys {
            let key = normalize_key(key);
            let same = |e: &&'a Indexed| e.scope == *scope && e.version == version;
            if let Some(e) = newest(&mut found.iter().filter(same).filter(|e| e.key == key)) {
                return Some(e);
            }
            if let Some(e) = newest(
                &mut found
                    .iter()
                    .filter(same)
                    .filter(|e| e.key.starts_with(&key)),
            ) {
                return Some(e);
            }
        }
    }
    None
}

/// Object keys in the bucket, all under the configured prefix.
///
/// - `entries/<id>.json`: an entry's metadata ([`Entry`]); its last-modified time is when the
///   entry was last restored (the service writes it again on every hit).
/// - `blobs/<id>/<offset, 16 hex digits>`: one object per uploaded chunk.
/// - `index/<repo>/<scope>/<key>/<version>/<created ms>-<id>`: an empty marker per committed
///   entry, each part percent-encoded, so listing `index/<repo>/<scope>/<key prefix>` finds
///   exactly the entries whose key starts with that prefix.
/// - `stats.json`: per-repository sizes and hit counts, for `tinqs-ci status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// The layout under `prefix` (empty, or ending with `/`).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        Layout {
            prefix: prefix.to_owned(),
        }
    }

    /// An entry's metadata object.
    #[must_use]
    pub fn entry(&self, id: u64) -> String {
        format!("{}entries/{id}.json", self.prefix)
    }

    /// Where every entry's metadata lives.
    #[must_use]
    pub fn entries(&self) -> String {
        format!("{}entries/", self.prefix)
    }

    /// The id of an entry metadata object's key.
    #[must_use]
    pub fn entry_id(&self, key: &str) -> Option<u64> {
        key.strip_prefix(&self.entries())?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    /// The chunk of entry `id` starting at `offset`.
    #[must_use]
    pub fn chunk(&self, id: u64, offset: u64) -> String {
        format!("{}blobs/{id}/{offset:016x}", self.prefix)
    }

    /// Where the chunks of entry `id` live.
    #[must_use]
    pub fn chunks(&self, id: u64) -> String {
        format!("{}blobs/{id}/", self.prefix)
    }

    /// Where every chunk lives.
    #[must_use]
    pub fn blobs(&self) -> String {
        format!("{}blobs/", self.prefix)
    }

    /// The entry id and offset of a chunk's key.
    #[must_use]
    pub fn chunk_of(&self, key: &str) -> Option<(u64, u64)> {
        let (id, offset) = key.strip_prefix(&self.blobs())?.split_once('/')?;
        if offset.len() != 16 {
            return None;
        }
        Some((id.parse().ok()?, u64::from_str_radix(offset, 16).ok()?))
    }

    /// Where every index marker lives.
    #[must_use]
    pub fn index(&self) -> String {
        format!("{}index/", self.prefix)
    }

    /// The listing prefix of entries of `repo` in `scope` whose key starts with `key_prefix`.
    #[must_use]
    pub fn index_prefix(&self, repo: &str, scope: &str, key_prefix: &str) -> String {
        format!(
            "{}index/{}/{}/{}",
            self.prefix,
            encode(repo),
            encode(scope),
            encode(&normalize_key(key_prefix))
        )
    }

    /// The index marker of a committed entry.
    #[must_use]
    pub fn index_key(&self, e: &Entry) -> String {
        format!(
            "{}/{}/{:013}-{}",
            self.index_prefix(&e.repo, &e.scope, &e.key),
            encode(&e.version),
            e.created_ms.max(0),
            e.id
        )
    }

    /// Reads an index marker's key back.
    #[must_use]
    pub fn parse_index_key(&self, key: &str) -> Option<Indexed> {
        let rest = key.strip_prefix(&self.index())?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [repo, scope, k, version, last] = parts.as_slice() else {
            return None;
        };
        let (created, id) = last.split_once('-')?;
        Some(Indexed {
            id: id.parse().ok()?,
            repo: decode(repo)?,
            scope: decode(scope)?,
            key: decode(k)?,
            version: decode(version)?,
            created_ms: created.parse().ok()?,
        })
    }

    /// The statistics object.
    #[must_use]
    pub fn stats(&self) -> String {
        format!("{}stats.json", self.prefix)
    }
}

/// S3's longest object key, in bytes.
pub const MAX_OBJECT_KEY: usize = 1024;

/// Percent-encodes every byte but `A-Z a-z 0-9 - _ . ~`. Each byte maps to a fixed string and
/// no mapped string is a prefix of another, so `a` is a prefix of `b` exactly when
/// `encode(a)` is a prefix of `encode(b)`: what prefix lookups rely on.
#[must_use]
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`encode`]; `None` for text it could not have made.
#[must_use]
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads a chunk upload's `Content-Range: bytes <first>-<last>/<total or *>` into
/// `(first, last)`, both inclusive.
///
/// # Errors
/// When the header is not of that form, or `last < first`.
pub fn parse_content_range(header: &str) -> Result<(u64, u64), String> {
    let bad = || format!("Content-Range `{header}` is not like `bytes 0-1023/*`");
    let rest = header.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, _total) = rest.split_once('/').ok_or_else(bad)?;
    let (first, last) = range.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    Ok((first, last))
}

/// A download's `Range` header against an entry of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable range: send the whole entry (a header of another unit or several ranges is
    /// ignored, as HTTP allows).
    Whole,
    /// Bytes `first ..= last`.
    Part(u64, u64),
    /// The range lies outside the entry: answer 416.
    Unsatisfiable,
}

/// Reads a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against `size`.
#[must_use]
pub fn parse_range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(first), Some(last)) if first <= last => (first, last.min(size.saturating_sub(1))),
        (Some(first), None) if b.is_empty() => (first, size.saturating_sub(1)),
        (None, Some(n)) if a.is_empty() && n > 0 => {
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        _ => return RangeAsk::Whole,
    };
    if size == 0 || range.0 >= size {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part(range.0, range.1)
}

/// The chunks uploaded for an entry, checked and put in order: they must cover `0 .. size`
/// with no gap and no overlap, `size` must equal what the client commits (when it says), and
/// fit `max` bytes.
///
/// # Errors
/// What is wrong, in words for the client.
pub fn assemble(
    uploaded: &[Chunk],
    committed_size: Option<u64>,
    max: u64,
) -> Result<Committed, String> {
    let mut chunks: Vec<Chunk> = uploaded.iter().copied().filter(|c| c.len > 0).collect();
    chunks.sort_by_key(|c| c.offset);
    let mut next = 0u64;
    for c in &chunks {
        if c.offset != next {
            return Err(if c.offset > next {
                format!("no data was uploaded for bytes {next}..{}", c.offset)
            } else {
                format!("uploaded chunks overlap at byte {}", c.offset)
            });
        }
        next = next.saturating_add(c.len);
    }
    if let Some(size) = committed_size {
        if size != next {
            return Err(format!(
                "the commit says {size} bytes but {next} bytes were uploaded"
            ));
        }
    }
    if next > max {
        return Err(format!(
            "the entry is {next} bytes, over this repository's limit of {max} bytes"
        ));
    }
    Ok(Committed { size: next, chunks })
}

/// The parts of chunks that make bytes `first ..= last` of an entry, in order:
/// `(chunk, first byte within it, last byte within it)`.
#[must_use]
pub fn slices(chunks: &[Chunk], first: u64, last: u64) -> Vec<(Chunk, u64, u64)> {
    chunks
        .iter()
        .filter(|c| c.offset <= last && c.offset + c.len > first)
        .map(|c| {
            let from = first.max(c.offset) - c.offset;
            let to = last.min(c.offset + c.len - 1) - c.offset;
            (*c, from, to)
        })
        .collect()
}

/// An entry as the sweep sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Entry id.
    pub id: u64,
    /// `owner/name`, when its metadata was read.
    pub repo: Option<String>,
    /// Bytes of its chunks.
    pub bytes: u64,
    /// Committed and indexed (restorable).
    pub committed: bool,
    /// Last restored, reserved or written (milliseconds since the epoch).
    pub used_ms: i64,
    /// Same repository, scope, key and version as a newer committed entry.
    pub superseded: bool,
}

/// How the sweep decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most committed bytes per repository.
    pub max_repo_size: u64,
    /// Unused this long: removed.
    pub expiry: Duration,
    /// A reservation not committed this long after its last write: removed.
    pub abandon_after: Duration,
    /// A superseded entry not used this long (a download may still be reading it): removed.
    pub superseded_after: Duration,
}

/// Why the sweep removes an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Eviction {
    /// Not restored for `expiry`.
    Expired,
    /// Never committed.
    Abandoned,
    /// A newer entry has the same key and version.
    Superseded,
    /// Its repository is over `max_repo_size`; the least recently used go first.
    OverLimit,
    /// Its metadata is gone (chunks left behind).
    Orphaned,
}

impl std::fmt::Display for Eviction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Eviction::Expired => "not used within the expiry",
            Eviction::Abandoned => "reserved but never committed",
            Eviction::Superseded => "replaced by a newer entry with the same key and version",
            Eviction::OverLimit => "least recently used while its repository is over its limit",
            Eviction::Orphaned => "its metadata is gone",
        })
    }
}

/// What to remove, and why: expired, abandoned, superseded and orphaned entries first, then,
/// per repository still over `max_repo_size`, the least recently used committed entries
/// until it fits.
#[must_use]
pub fn evictions(stored: &[Stored], policy: &Retention, now_ms: i64) -> Vec<(u64, Eviction)> {
    let age =
        |used: i64| Duration::from_millis(u64::try_from(now_ms.saturating_sub(used)).unwrap_or(0));
    let mut out = Vec::new();
    let mut kept: std::collections::BTreeMap<&str, Vec<&Stored>> =
        std::collections::BTreeMap::new();
    for s in stored {
        let why = match &s.repo {
            None if age(s.used_ms) >= policy.abandon_after => Some(Eviction::Orphaned),
            None => None,
            Some(_) if !s.committed && age(s.used_ms) >= policy.abandon_after => {
                Some(Eviction::Abandoned)
            }
            Some(_) if s.committed && age(s.used_ms) >= policy.expiry => Some(Eviction::Expired),
            Some(_) if s.superseded && age(s.used_ms) >= policy.superseded_after => {
                Some(Eviction::Superseded)
            }
            Some(_) => None,
        };
        match (why, &s.repo) {
            (Some(w), _) => out.push((s.id, w)),
            (None, Some(repo)) if s.committed => kept.entry(repo).or_default().push(s),
            (None, _) => {}
        }
    }
    for entries in kept.values_mut() {
        let mut total: u64 = entries.iter().map(|s| s.bytes).sum();
        entries.sort_by_key(|s| (s.used_ms, s.id));
        for s in entries.iter() {
            if total <= policy.max_repo_size {
                break;
            }
            total -= s.bytes;
            out.push((s.id, Eviction::OverLimit));
        }
    }
    out
}

/// One repository's cache, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoUsage {
    /// Committed entries.
    pub entries: u64,
    /// Bytes of committed entries.
    pub bytes: u64,
    /// Lookups that found an entry, since the counts began.
    pub hits: u64,
    /// Lookups that found none.
    pub misses: u64,
}

impl RepoUsage {
    /// Hits over lookups, as a percentage with no decimals; `None` before any lookup.
    #[must_use]
    pub fn hit_rate(&self) -> Option<u64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| (self.hits * 100 + total / 2) / total)
    }
}

/// The statistics object: usage per repository (`owner/name`), and when it was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// When the sweep last wrote it (milliseconds since the epoch).
    pub updated_ms: i64,
    /// Per repository.
    pub repos: std::collections::BTreeMap<String, RepoUsage>,
}

/// Bytes for people: `512 B`, `1.5 MB`, `10.0 GB`.
#[must_use]
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed(id: u64, scope: &str, key: &str, version: &str, created_ms: i64) -> Indexed {
        Indexed {
            id,
            repo: "acme/app".into(),
            scope: scope.into(),
            key: key.into(),
            version: version.into(),
            created_ms,
        }
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_exact_key_wins_over_a_newer_prefix_match() {
        let main = vec!["branch:main".to_owned()];
        let found = [
            indexed(1, "branch:main", "linux-go-abc", "v1", 10),
            indexed(2, "branch:main", "linux-go-abcdef", "v1", 20),
        ];
        let hit = pick(&keys(&["linux-go-abc"]), "v1", &main, &found).expect("hit");
        assert_eq!(hit.id, 1);
        let hit = pick(&keys(&["linux-go-"]), "v1", &main, &found).expect("prefix hit");
        assert_eq!(hit.id, 2, "the newest prefix match");
    }

    #[test]
    fn keys_are_tried_in_order_and_matched_without_case() {
        let main = vec!["branch:main".to_owned()];
        let found = [
            indexed(1, "branch:main", "deps-old", "v1", 10),
            indexed(2, "branch:main", "build-x", "v1", 20),
        ];
        let hit = pick(&keys(&["DEPS-", "build-"]), "v1", &main, &found).expect("hit");
        assert_eq!(hit.id, 1, "the first key that matches decides");
    }

    #[test]
    fn another_version_is_a_miss() {
        let main = vec!["branch:main".to_owned()];
        let found = [indexed(1, "branch:main", "k", "v1", 10)];
        assert_eq!(pick(&keys(&["k"]), "v2", &main, &found), None);
    }

    #[test]
    fn the_own_branch_is_searched_before_the_default_branch() {
        let scope = JobScope::of_job("Acme/App", Some("feature"), Some("main"), Some(9), 5);
        assert_eq!(scope.repo, "acme/app");
        assert_eq!(scope.read, ["branch:feature", "branch:main"]);
        let found = [
            indexed(1, "branch:main", "k-1", "v", 30),
            indexed(2, "branch:feature", "k-0", "v", 10),
            indexed(3, "branch:other", "k-2", "v", 40),
        ];
        assert_eq!(
            pick(&keys(&["k-"]), "v", &scope.read, &found).map(|e| e.id),
            Some(2)
        );
        let only_main = [indexed(1, "branch:main", "k-1", "v", 30)];
        assert_eq!(
            pick(&keys(&["k-"]), "v", &scope.read, &only_main).map(|e| e.id),
            Some(1)
        );
        let other = [indexed(3, "branch:other", "k-2", "v", 40)];
        assert_eq!(pick(&keys(&["k-"]), "v", &scope.read, &other), None);
    }

    #[test]
    fn a_job_without_a_branch_writes_only_to_its_workflow_run() {
        let scope = JobScope::of_job("acme/app", None, Some("main"), Some(77), 5);
        assert_eq!(scope.write, "run:77");
        assert!(scope.may_read("acme/app", "branch:main"));
        assert!(!scope.may_write("acme/app", "branch:main"));
        assert!(!scope.may_read("acme/other", "run:77"));
        assert_eq!(
            JobScope::of_job("a/b", Some(""), None, None, 5).write,
            "job:5"
        );
    }

    #[test]
    fn encoding_keeps_prefixes_and_round_trips() {
        for (a, b) in [
            ("linux-", "linux-go"),
            ("a/b", "a/b c"),
            ("ü", "üx"),
            ("%", "%2"),
        ] {
            assert!(encode(b).starts_with(&encode(a)), "{a} {b}");
            assert_eq!(decode(&encode(b)).as_deref(), Some(b));
        }
        assert!(!encode("a%2").starts_with(&encode("a%20")));
        assert!(!encode("ab").starts_with(&encode("a/")));
        assert_eq!(decode("%zz"), None);
    }

    #[test]
    fn index_keys_round_trip() {
        let l = Layout::new("ci/");
        let e = Entry {
            id: 42,
            repo: "acme/app".into(),
            scope: "branch:feat/x".into(),
            key: "Linux-Go/1".into(),
            version: "abc".into(),
            created_ms: 1_700_000_000_000,
            announced: None,
            committed: None,
        };
        let key = l.index_key(&e);
        assert!(key.starts_with(&l.index_prefix("acme/app", "branch:feat/x", "linux-go")));
        let back = l.parse_index_key(&key).expect("parses");
        assert_eq!(
            back,
            Indexed {
                id: 42,
                repo: "acme/app".into(),
                scope: "branch:feat/x".into(),
                key: "linux-go/1".into(),
                version: "abc".into(),
                created_ms: 1_700_000_000_000,
            }
        );
        assert_eq!(l.chunk_of(&l.chunk(42, 1 << 25)), Some((42, 1 << 25)));
        assert_eq!(l.entry_id(&l.entry(42)), Some(42));
    }

    #[test]
    fn content_ranges_parse_or_are_refused() {
        assert_eq!(parse_content_range("bytes 0-199/*"), Ok((0, 199)));
        assert_eq!(parse_content_range("bytes 32-63/64"), Ok((32, 63)));
        for bad in ["", "bytes 5-1/*", "bytes=0-1", "bytes a-b/*", "0-1/*"] {
            assert!(parse_content_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn download_ranges() {
        assert_eq!(parse_range(None, 10), RangeAsk::Whole);
        assert_eq!(parse_range(Some("bytes=0-1"), 10), RangeAsk::Part(0, 1));
        assert_eq!(parse_range(Some("bytes=4-"), 10), RangeAsk::Part(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), RangeAsk::Part(7, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), RangeAsk::Part(5, 9));
        assert_eq!(
            parse_range(Some("bytes=10-12"), 10),
            RangeAsk::Unsatisfiable
        );
        assert_eq!(parse_range(Some("items=0-1"), 10), RangeAsk::Whole);
    }

    #[test]
    fn chunks_assemble_only_without_gaps_or_overlaps() {
        let c = |offset, len| Chunk { offset, len };
        let ok = assemble(&[c(4, 4), c(0, 4)], Some(8), 100).expect("contiguous");
        assert_eq!(ok.size, 8);
        assert_eq!(ok.chunks, [c(0, 4), c(4, 4)]);
        let gap = assemble(&[c(0, 4), c(5, 3)], None, 100).expect_err("gap");
        assert!(gap.contains("bytes 4..5"), "{gap}");
        assert!(assemble(&[c(0, 4), c(2, 4)], None, 100).is_err());
        let size = assemble(&[c(0, 4)], Some(5), 100).expect_err("size");
        assert!(size.contains("says 5 bytes but 4"), "{size}");
        let big = assemble(&[c(0, 4)], None, 3).expect_err("too big");
        assert!(big.contains("limit of 3 bytes"), "{big}");
        assert_eq!(assemble(&[], Some(0), 3).expect("empty").size, 0);
    }

    #[test]
    fn slices_cover_a_range_across_chunks() {
        let c = |offset, len| Chunk { offset, len };
        let chunks = [c(0, 4), c(4, 4), c(8, 2)];
        assert_eq!(
            slices(&chunks, 2, 8),
            [(c(0, 4), 2, 3), (c(4, 4), 0, 3), (c(8, 2), 0, 0)]
        );
        assert_eq!(slices(&chunks, 0, 9).len(), 3);
        assert_eq!(slices(&chunks, 9, 9), [(c(8, 2), 1, 1)]);
    }

    fn stored(id: u64, repo: &str, bytes: u64, used_ms: i64) -> Stored {
        Stored {
            id,
            repo: Some(repo.into()),
            bytes,
            committed: true,
            used_ms,
            superseded: false,
        }
    }

    const DAY: i64 = 24 * 3600 * 1000;

    fn policy() -> Retention {
        Retention {
            max_repo_size: 100,
            expiry: Duration::from_secs(7 * 24 * 3600),
            abandon_after: Duration::from_secs(3600),
            superseded_after: Duration::from_secs(600),
        }
    }

    #[test]
    fn least_recently_used_entries_go_until_the_repository_fits() {
        let now = 10 * DAY;
        let all = [
            stored(1, "a/x", 60, now - 3 * DAY),
            stored(2, "a/x", 60, now - DAY),
            stored(3, "a/x", 30, now - 2 * DAY),
            stored(4, "b/y", 90, now - 6 * DAY),
        ];
        assert_eq!(evictions(&all, &policy(), now), [(1, Eviction::OverLimit)]);
    }

    #[test]
    fn unused_abandoned_superseded_and_orphaned_entries_go() {
        let now = 10 * DAY;
        let mut abandoned = stored(2, "a/x", 5, now - 2 * 3600 * 1000);
        abandoned.committed = false;
        let mut fresh_upload = stored(3, "a/x", 5, now - 60_000);
        fresh_upload.committed = false;
        let mut superseded = stored(4, "a/x", 5, now - 3_600_000);
        superseded.superseded = true;
        let mut orphan = stored(5, "a/x", 5, now - 2 * 3_600_000);
        orphan.repo = None;
        let all = [
            stored(1, "a/x", 5, now - 8 * DAY),
            abandoned,
            fresh_upload,
            superseded,
            orphan,
            stored(6, "a/x", 5, now - 6 * DAY),
        ];
        let mut got = evictions(&all, &policy(), now);
        got.sort();
        assert_eq!(
            got,
            [
                (1, Eviction::Expired),
                (2, Eviction::Abandoned),
                (4, Eviction::Superseded),
                (5, Eviction::Orphaned)
            ]
        );
    }

    #[test]
    fn sizes_parse_in_both_unit_families() {
        assert_eq!(parse_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("ten GB").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("99999999999999TB").is_err());
    }

    #[test]
    fn a_runner_url_ends_with_a_slash_and_the_stored_hash_is_not_the_token() {
        let token = "ab".repeat(32);
        assert!(token_well_formed(&token));
        assert!(!token_well_formed("short"));
        assert_eq!(
            runner_url("http://10.0.0.5:8081/", "tq-x-job-1-1-a1", &token),
            format!("http://10.0.0.5:8081/tq-x-job-1-1-a1/{token}/")
        );
        assert_ne!(token_hash(&token), token);
        assert_eq!(token_hash(&token).len(), 64);
    }

    #[test]
    fn hit_rates_round_and_bytes_read_for_people() {
        let u = RepoUsage {
            hits: 2,
            misses: 1,
            ..RepoUsage::default()
        };
        assert_eq!(u.hit_rate(), Some(67));
        assert_eq!(RepoUsage::default().hit_rate(), None);
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
    }
}
