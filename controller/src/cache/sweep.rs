//! The sweep: what the bucket holds, what `model::cache::evictions` says to remove, removing
//! it, and the per-repository statistics `tinqs-ci status` shows.
//!
//! Run by `serve` every [`SWEEP_EVERY`] (the controller's loop, not an S3 lifecycle rule:
//! S3 lifecycle counts age from when an object was written, while expiry counts from when an
//! entry was last restored, and the size limit needs the whole repository in view). A lookup
//! hit rewrites the entry's metadata object, so its last-modified time is the entry's last use.
//!
//! Removal order: the index marker first (no lookup finds the entry any more), then its
//! metadata, then its chunks. A sweep that stops half-way leaves chunks without metadata,
//! which the next sweep removes as orphaned.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use model::cache::{self as rules, Entry, Eviction, Indexed, RepoUsage, Retention, Stats, Stored};

use super::blobs::{BlobError, Blobs};
use super::CacheService;

/// How often `serve` sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// An upload not committed this long after its last chunk is abandoned.
pub const ABANDON_AFTER: Duration = Duration::from_secs(3600);

/// An entry replaced by a newer one with the same key and version is kept this long after
/// its last use (a download may still be reading it).
pub const SUPERSEDED_AFTER: Duration = Duration::from_secs(10 * 60);

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries removed, with why.
    pub removed: Vec<(u64, Eviction)>,
    /// Usage per repository after the sweep.
    pub stats: Stats,
}

/// The retention of a `cache:` section.
#[must_use]
pub fn retention(config: &model::cache::CacheConfig) -> Retention {
    Retention {
        max_repo_size: config.max_repo_size,
        expiry: config.expiry,
        abandon_after: ABANDON_AFTER,
        superseded_after: SUPERSEDED_AFTER,
    }
}

/// One sweep of `service`'s bucket at `now_ms`.
///
/// # Errors
/// When a listing fails (nothing is removed then: a partial view never deletes) or a delete
/// fails.
pub async fn sweep(
    service: &CacheService,
    policy: &Retention,
    now_ms: i64,
) -> Result<SweepReport, BlobError> {
    let blobs = service.blobs();
    let layout = service.layout();
    let entries = blobs.list(&layout.entries()).await?;
    let chunks = blobs.list(&layout.blobs()).await?;
    let index = blobs.list(&layout.index()).await?;

    let mut used: HashMap<u64, i64> = HashMap::new();
    for o in &entries {
        if let Some(id) = layout.entry_id(&o.key) {
            used.insert(id, o.modified_ms);
        }
    }
    let mut bytes: HashMap<u64, (u64, i64, Vec<String>)> = HashMap::new();
    for o in &chunks {
        if let Some((id, _)) = layout.chunk_of(&o.key) {
            let slot = bytes.entry(id).or_default();
            slot.0 += o.size;
            slot.1 = slot.1.max(o.modified_ms);
            slot.2.push(o.key.clone());
        }
    }
    let mut indexed: HashMap<u64, (Indexed, String)> = HashMap::new();
    for o in &index {
        if let Some(i) = layout.parse_index_key(&o.key) {
            indexed.insert(i.id, (i, o.key.clone()));
        }
    }
    // The newest committed entry of each repository, scope, key and version.
    let mut newest: HashMap<(&str, &str, &str, &str), (i64, u64)> = HashMap::new();
    for (i, _) in indexed.values() {
        let k = (
            i.repo.as_str(),
            i.scope.as_str(),
            i.key.as_str(),
            i.version.as_str(),
        );
        let v = (i.created_ms, i.id);
        newest
            .entry(k)
            .and_modify(|n| *n = (*n).max(v))
            .or_insert(v);
    }

    let mut ids: Vec<u64> = used
        .keys()
        .chain(bytes.keys())
        .chain(indexed.keys())
        .copied()
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut stored = Vec::with_capacity(ids.len());
    for id in ids {
        let chunk_bytes = bytes.get(&id).map_or(0, |b| b.0);
        let last_chunk = bytes.get(&id).map_or(0, |b| b.1);
        let (repo, committed, superseded) = match (indexed.get(&id), used.contains_key(&id)) {
            (Some((i, _)), true) => {
                let k = (
                    i.repo.as_str(),
                    i.scope.as_str(),
                    i.key.as_str(),
                    i.version.as_str(),
                );
                let sup = newest.get(&k).is_some_and(|n| n.1 != id);
                (Some(i.repo.clone()), true, sup)
            }
            // Not committed: its repository is in its metadata (reservations are few).
            (None, true) => match blobs.get_small(&layout.entry(id)).await? {
                Some(b) => match serde_json::from_slice::<Entry>(&b) {
                    Ok(e) => (Some(e.repo), false, false),
                    Err(_) => (None, false, false),
                },
                None => (None, false, false),
            },
            (_, false) => (None, false, false),
        };
        stored.push(Stored {
            id,
            repo,
            bytes: chunk_bytes,
            committed,
            used_ms: used.get(&id).copied().unwrap_or(0).max(last_chunk),
            superseded,
        });
    }

    let removed = rules::evictions(&stored, policy, now_ms);
    for (id, why) in &removed {
        let mut keys = Vec::new();
        if let Some((_, marker)) = indexed.get(id) {
            keys.push(marker.clone());
        }
        blobs.delete(&keys).await?;
        blobs.delete(&[layout.entry(*id)]).await?;
        if let Some((_, _, chunk_keys)) = bytes.get(id) {
            blobs.delete(chunk_keys).await?;
        }
        tracing::info!(entry = id, reason = %why, "cache entry removed");
    }

    let gone: std::collections::HashSet<u64> = removed.iter().map(|(id, _)| *id).collect();
    let mut repos: BTreeMap<String, RepoUsage> = BTreeMap::new();
    for s in stored
        .iter()
        .filter(|s| s.committed && !gone.contains(&s.id))
    {
        if let Some(repo) = &s.repo {
            let u = repos.entry(repo.clone()).or_default();
            u.entries += 1;
            u.bytes += s.bytes;
        }
    }
    let previous: Stats = match blobs.get_small(&layout.stats()).await? {
        Some(b) => serde_json::from_slice(&b).unwrap_or_default(),
        None => Stats::default(),
    };
    let counts = service.take_counts();
    for (repo, old) in &previous.repos {
        let u = repos.entry(repo.clone()).or_default();
        u.hits += old.hits;
        u.misses += old.misses;
    }
    for (repo, (h, m)) in &counts {
        let u = repos.entry(repo.clone()).or_default();
        u.hits += h;
        u.misses += m;
    }
    let stats = Stats {
        updated_ms: now_ms,
        repos,
    };
    let body = serde_json::to_vec(&stats).map_err(|e| BlobError::Unavailable(e.to_string()))?;
    if let Err(e) = blobs.put_small(&layout.stats(), body).await {
        service.restore_counts(counts);
        return Err(e);
    }
    Ok(SweepReport { removed, stats })
}

/// Reads the statistics the last sweep wrote (`None` before the first).
///
/// # Errors
/// When S3 fails.
pub async fn read_stats(
    blobs: &Blobs,
    layout: &model::cache::Layout,
) -> Result<Option<Stats>, BlobError> {
    Ok(blobs
        .get_small(&layout.stats())
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}
