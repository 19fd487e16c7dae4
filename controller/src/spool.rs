//! A durable local spool for webhook events the store could not take.
//!
//! The webhook answers 2xx only once a run is durable. When DynamoDB is unreachable the verified
//! event goes here instead: one file per event in `server.spool_dir`, written to a temporary
//! name, fsync'd, renamed into place and the directory fsync'd, so after a crash an event is
//! either wholly present or absent. A replayer (`webhook::replay_spool_once`,
//! `webhook::run_spool_replayer`) feeds spooled events back through the same handling once the
//! store returns, and deletes each file only after it succeeded.
//!
//! File names sort by arrival: `<millis, 16 digits>-<sequence, 10 digits>-<uuid>.json`.
//! Events that can never be applied (unreadable, over a limit, refused by the table as
//! invalid) are moved into the `dead-letter/` folder inside the spool directory, kept for
//! people and never replayed, so the events after them still replay. Moving a file from
//! `dead-letter/` back into the spool directory replays it; deleting it drops it. Files
//! starting with `.` are unfinished writes and are removed on open.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use model::Timestamp;
use serde::{Deserialize, Serialize};

/// The spool file format version written by this code.
pub const FORMAT: u32 = 1;

/// The folder inside the spool directory where events that can never apply are set aside
/// (one name for the spool and for `status`'s problem about it).
pub use model::summary::DEAD_LETTER;

/// How many events a spool holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    /// Events waiting to be replayed.
    pub pending: usize,
    /// Events set aside in [`DEAD_LETTER`].
    pub dead_letter: usize,
}

/// Counts the events in the spool directory `dir` without creating or changing anything
/// (for `status` and `doctor`); a directory that does not exist holds none.
///
/// # Errors
/// When a directory exists but cannot be read.
pub fn census(dir: &Path) -> Result<Census, SpoolError> {
    let count = |dir: &Path, keep: fn(&str) -> bool| -> Result<usize, SpoolError> {
        match fs::read_dir(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io("read", dir)(e)),
            Ok(entries) => {
                let mut n = 0;
                for entry in entries {
                    let entry = entry.map_err(io("read", dir))?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if keep(&name) && entry.path().is_file() {
                        n += 1;
                    }
                }
                Ok(n)
            }
        }
    };
    Ok(Census {
        pending: count(dir, is_event)?,
        dead_letter: count(&dir.join(DEAD_LETTER), |n| !n.starts_with('.'))?,
    })
}

fn is_event(name: &str) -> bool {
    !name.starts_with('.') && name.ends_with(".json")
}

/// One spooled webhook delivery: the verified body and what is needed to handle it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledEvent {
    /// File format version ([`FORMAT`]).
    pub format: u32,
    /// The `X-Gitea-Event` header (`workflow_job`, `push`).
    pub event: String,
    /// The `X-Gitea-Delivery` header, for people reading logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// When the webhook arrived; runs created on replay carry this time.
    pub received_at: Timestamp,
    /// The request body, already signature-checked.
    pub payload: String,
}

/// A spool failure.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool: cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A spool file is not a spooled event.
    #[error("spool: {path} is not a spooled event: {problem}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The blocking file task died.
    #[error("spool: file task failed: {0}")]
    Task(String),
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    seq: AtomicU64,
    /// Held by whoever replays, so two replays never handle the same file at once.
    replaying: tokio::sync::Mutex<()>,
}

impl Spool {
    /// Opens (creating it if needed, mode 0700) the spool directory and removes unfinished
    /// writes left by a crash.
    ///
    /// # Errors
    /// When the directory cannot be created or read.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SpoolError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(io("restrict", &dir))?;
        }
        let dead = dir.join(DEAD_LETTER);
        fs::create_dir_all(&dead).map_err(io("create", &dead))?;
        for entry in fs::read_dir(&dir).map_err(io("read", &dir))? {
            let entry = entry.map_err(io("read", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            if name.starts_with('.') {
                fs::remove_file(&path).map_err(io("remove", &path))?;
            } else if let Some(event) = name.strip_suffix(".bad") {
                // Set aside by an earlier version, next to the events: into the folder.
                fs::rename(&path, dead.join(event)).map_err(io("rename", &path))?;
            }
        }
        Ok(Spool {
            dir,
            seq: AtomicU64::new(0),
            replaying: tokio::sync::Mutex::new(()),
        })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `event` durably and returns its file.
    ///
    /// # Errors
    /// When the file cannot be written or synced; the event is then not spooled.
    pub async fn append(&self, event: &SpooledEvent) -> Result<PathBuf, SpoolError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{:016}-{seq:010}-{}.json",
            event.received_at.as_millis().max(0),
            uuid::Uuid::new_v4().simple()
        );
        let bytes = serde_json::to_vec(event).map_err(|e| SpoolError::Corrupt {
            path: self.dir.join(&name),
            problem: e.to_string(),
        })?;
        let dir = self.dir.clone();
        blocking(move || write_durably(&dir, &name, &bytes)).await
    }

    /// The spooled events waiting, oldest first (`.bad` and unfinished files excluded).
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub async fn pending(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let dir = self.dir.clone();
        blocking(move || {
            let mut files = Vec::new();
            for entry in fs::read_dir(&dir).map_err(io("read", &dir))? {
                let entry = entry.map_err(io("read", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_event(&name) && entry.path().is_file() {
                    files.push(entry.path());
                }
            }
            files.sort();
            Ok(files)
        })
        .await
    }

    /// Reads one spooled event.
    ///
    /// # Errors
    /// [`SpoolError::Corrupt`] when the file is not a spooled event of a known format.
    pub async fn read(&self, path: &Path) -> Result<SpooledEvent, SpoolError> {
        let path = path.to_owned();
        blocking(move || {
            let bytes = fs::read(&path).map_err(io("read", &path))?;
            let event: SpooledEvent =
                serde_json::from_slice(&bytes).map_err(|e| SpoolError::Corrupt {
                    path: path.clone(),
                    problem: e.to_string(),
                })?;
            if event.format != FORMAT {
                return Err(SpoolError::Corrupt {
                    path,
                    problem: format!("format {} is not {FORMAT}", event.format),
                });
            }
            Ok(event)
        })
        .await
    }

    /// Deletes a replayed event (and syncs the directory).
    ///
    /// # Errors
    /// When the file cannot be removed.
    pub async fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        let path = path.to_owned();
        let dir = self.dir.clone();
        blocking(move || {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path)(e)),
            }
            sync_dir(&dir)
        })
        .await
    }

    /// Sets aside an event that can never be applied: moved into [`DEAD_LETTER`], kept for
    /// people, never replayed. Returns its new path.
    ///
    /// # Errors
    /// When the file cannot be moved.
    pub async fn quarantine(&self, path: &Path) -> Result<PathBuf, SpoolError> {
        let path = path.to_owned();
        let dir = self.dir.clone();
        blocking(move || {
            let dead = dir.join(DEAD_LETTER);
            fs::create_dir_all(&dead).map_err(io("create", &dead))?;
            let name = path.file_name().ok_or_else(|| SpoolError::Corrupt {
                path: path.clone(),
                problem: "not a file".into(),
            })?;
            let target = dead.join(name);
            fs::rename(&path, &target).map_err(io("rename", &path))?;
            sync_dir(&dead)?;
            sync_dir(&dir)?;
            Ok(target)
        })
        .await
    }

    /// How many events wait and how many are set aside.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub async fn census(&self) -> Result<Census, SpoolError> {
        let dir = self.dir.clone();
        blocking(move || census(&dir)).await
    }

    /// Serializes replays: hold the guard while replaying.
    pub async fn replay_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.replaying.lock().await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SpoolError::Task(e.to_string()))?
}

fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io("create", &tmp))?;
        file.write_all(bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: an unfinished write is also removed on the next open.
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> SpooledEvent {
        SpooledEvent {
            format: FORMAT,
            event: "workflow_job".into(),
            delivery: Some(format!("d-{n}")),
            received_at: Timestamp::from_millis(1_700_000_000_000 + n),
            payload: format!("{{\"n\":{n}}}"),
        }
    }

    #[tokio::test]
    async fn events_come_back_oldest_first_and_survive_reopening() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(tmp.path().join("spool")).expect("opens");
        for n in [3, 1, 2] {
            spool.append(&event(n)).await.expect("appends");
        }
        let reopened = Spool::open(tmp.path().join("spool")).expect("reopens");
        let files = reopened.pending().await.expect("lists");
        let mut seen = Vec::new();
        for f in &files {
            seen.push(
                reopened
                    .read(f)
                    .await
                    .expect("reads")
                    .delivery
                    .unwrap_or_default(),
            );
        }
        assert_eq!(seen, ["d-1", "d-2", "d-3"]);
        reopened.remove(&files[0]).await.expect("removes");
        reopened
            .remove(&files[0])
            .await
            .expect("removing twice is fine");
        assert_eq!(reopened.pending().await.expect("lists").len(), 2);
    }

    #[tokio::test]
    async fn unfinished_writes_are_dropped_and_bad_files_set_aside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("spool");
        let spool = Spool::open(&dir).expect("opens");
        fs::write(dir.join(".0001-x.json.tmp"), b"half").expect("writes");
        fs::write(dir.join("0002-garbage.json"), b"not json").expect("writes");
        let spool2 = Spool::open(&dir).expect("reopens");
        assert!(!dir.join(".0001-x.json.tmp").exists());
        let files = spool2.pending().await.expect("lists");
        assert_eq!(files.len(), 1);
        assert!(matches!(
            spool2.read(&files[0]).await,
            Err(SpoolError::Corrupt { .. })
        ));
        let bad = spool2.quarantine(&files[0]).await.expect("renames");
        assert!(bad.exists());
        assert_eq!(bad, dir.join(DEAD_LETTER).join("0002-garbage.json"));
        assert!(spool.pending().await.expect("lists").is_empty());
        assert_eq!(
            spool.census().await.expect("counts"),
            Census {
                pending: 0,
                dead_letter: 1
            }
        );
    }

    #[tokio::test]
    async fn the_dead_letter_folder_is_counted_and_takes_in_earlier_bad_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("spool");
        assert_eq!(census(&dir).expect("absent is empty"), Census::default());
        fs::create_dir_all(&dir).expect("creates");
        fs::write(dir.join("0001-old.json.bad"), b"{}").expect("writes");
        let spool = Spool::open(&dir).expect("opens");
        spool.append(&event(1)).await.expect("appends");
        assert!(!dir.join("0001-old.json.bad").exists());
        assert!(dir.join(DEAD_LETTER).join("0001-old.json").exists());
        assert_eq!(
            census(&dir).expect("counts"),
            Census {
                pending: 1,
                dead_letter: 1
            }
        );
        // Moving an entry back from the folder replays it.
        fs::rename(
            dir.join(DEAD_LETTER).join("0001-old.json"),
            dir.join("0001-old.json"),
        )
        .expect("moves back");
        assert_eq!(spool.pending().await.expect("lists").len(), 2);
    }

    #[tokio::test]
    async fn a_vanished_directory_fails_the_write_instead_of_pretending() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("spool");
        let spool = Spool::open(&dir).expect("opens");
        fs::remove_dir_all(&dir).expect("removes");
        assert!(matches!(
            spool.append(&event(1)).await,
            Err(SpoolError::Io { .. })
        ));
    }
}
