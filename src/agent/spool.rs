//! The spool: events that could not be delivered yet, one JSON file each, in a local directory.
//!
//! A file is written atomically (a temporary file, fsync, rename, fsync of the directory) and
//! named so that lexical order is creation order: nanoseconds since the epoch (never going back
//! within a process), the process id, a counter. It is deleted only after the server answered
//! 2xx, or refused it for good (a 4xx other than 408 and 429). Deliveries hold an exclusive lock
//! on `.lock` in the directory, so two flushes never interleave and never reorder.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

const LOCK_FILE: &str = ".lock";
const SUFFIX: &str = ".json";

/// One spooled event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The monitor it is for.
    pub slug: String,
    /// The body for `POST /v1/monitors/{slug}/events`, with its `event_id`.
    pub event: Value,
    /// When it was spooled (RFC 3339).
    pub spooled_at: String,
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// Holds the spool's lock until dropped.
#[derive(Debug)]
pub struct SpoolLock {
    _file: File,
}

static LAST_NANOS: AtomicU64 = AtomicU64::new(0);
static COUNTER: Mutex<u32> = Mutex::new(0);

/// A name that sorts after every name this process made before.
fn next_name() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let previous = LAST_NANOS.fetch_max(now, Ordering::SeqCst);
    let nanos = if now > previous {
        now
    } else {
        // The clock did not move (or went back): one nanosecond after the last name.
        LAST_NANOS.fetch_add(1, Ordering::SeqCst) + 1
    };
    let count = {
        let mut counter = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        *counter = counter.wrapping_add(1);
        *counter
    };
    format!("{nanos:020}-{:010}-{count:06}{SUFFIX}", std::process::id())
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new one, never a part:
/// a temporary file (mode 0600) in the same directory, fsync, rename over `path`, fsync of the
/// directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{}-{name}", next_name()));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Makes the rename durable; best effort, as some file systems cannot sync a directory.
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Spool {
        Spool { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn create_dir(&self) -> io::Result<()> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir)
    }

    /// Writes an entry durably behind every entry spooled before it; returns its path.
    pub fn write(&self, entry: &Entry) -> io::Result<PathBuf> {
        self.create_dir()?;
        let path = self.dir.join(next_name());
        write_atomically(&path, &serde_json::to_vec(entry).map_err(io::Error::other)?)?;
        Ok(path)
    }

    /// The spooled files, oldest first. A missing directory is an empty spool.
    pub fn list(&self) -> io::Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            if let Some(name) = name.to_str()
                && name.ends_with(SUFFIX)
                && !name.starts_with('.')
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names.into_iter().map(|n| self.dir.join(n)).collect())
    }

    /// Reads a spooled file.
    pub fn read(path: &Path) -> Result<Entry, String> {
        let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is not a spooled event: {e}", path.display()))
    }

    /// Moves a file that cannot be read aside (`….bad`), so it no longer blocks the ones behind it.
    pub fn set_aside(path: &Path) -> io::Result<PathBuf> {
        let mut bad = path.as_os_str().to_owned();
        bad.push(".bad");
        fs::rename(path, &bad)?;
        Ok(PathBuf::from(bad))
    }

    fn lock_file(&self) -> io::Result<File> {
        self.create_dir()?;
        OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(self.dir.join(LOCK_FILE))
    }

    /// Waits as long as it takes for the lock.
    pub fn lock(&self) -> io::Result<SpoolLock> {
        let file = self.lock_file()?;
        file.lock()?;
        Ok(SpoolLock { _file: file })
    }

    /// Takes the lock if it becomes free within `wait`; `None` if another process kept it.
    pub fn try_lock_within(&self, wait: Duration) -> io::Result<Option<SpoolLock>> {
        let file = self.lock_file()?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Some(SpoolLock { _file: file })),
                Err(TryLockError::Error(e)) => return Err(e),
                Err(TryLockError::WouldBlock) if Instant::now() >= deadline => return Ok(None),
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(i: usize) -> Entry {
        Entry { slug: "job".into(), event: json!({"type": "heartbeat", "n": i}), spooled_at: "now".into() }
    }

    #[test]
    fn entries_list_in_the_order_they_were_written() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        assert!(spool.list().unwrap().is_empty(), "a missing directory is empty");
        for i in 0..50 {
            spool.write(&entry(i)).unwrap();
        }
        let listed = spool.list().unwrap();
        assert_eq!(listed.len(), 50);
        for (i, path) in listed.iter().enumerate() {
            assert_eq!(Spool::read(path).unwrap().event["n"], i);
        }
        let names: Vec<_> = fs::read_dir(spool.dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().starts_with(".tmp")), "no temporary file is left");
    }

    #[test]
    fn the_lock_is_exclusive_and_a_bad_file_can_be_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let held = spool.lock().unwrap();
        assert!(spool.try_lock_within(Duration::ZERO).unwrap().is_none());
        drop(held);
        assert!(spool.try_lock_within(Duration::ZERO).unwrap().is_some());

        let path = dir.path().join("00000000000000000001-0000000001-000001.json");
        fs::write(&path, "{").unwrap();
        assert!(Spool::read(&path).is_err());
        Spool::set_aside(&path).unwrap();
        assert!(spool.list().unwrap().is_empty());
    }
}
