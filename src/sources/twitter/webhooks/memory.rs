//! What the X webhook receiver keeps in the state dir between runs, so that
//! nothing X delivered or tried to deliver while it was down is lost or
//! recorded twice:
//!
//! - the SHA-256 of every body it recorded (the redelivery window), one hex
//!   line each in `twitter-webhook/recorded-bodies-<fingerprint>.sha256`
//!   (the consumer secret's fingerprint: each app has its own), appended and
//!   synced once every sink confirmed the body, the last [`DEFAULT_BODY_WINDOW`]
//!   of them read back on start;
//! - per webhook id, when it last confirmed a delivery
//!   (`twitter-webhook/last-delivery-<id>.json`), written only after the
//!   sinks confirmed it: on start, a replay job asks X for everything since.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::state::{Checkpoint, StateError, atomic_write};

/// Everything the receiver keeps between runs, and whether a replay job it
/// asked for is under way (what it records meanwhile counts as replayed).
#[derive(Debug)]
pub struct WebhookMemory {
    pub bodies: BodyLog,
    pub last: LastDelivery,
    replaying: AtomicBool,
}

impl WebhookMemory {
    /// The memory of the app whose consumer secret has `fingerprint`.
    pub fn new(state_dir: &Path, fingerprint: &str) -> Self {
        WebhookMemory {
            bodies: BodyLog::new(state_dir, fingerprint),
            last: LastDelivery::new(state_dir),
            replaying: AtomicBool::new(false),
        }
    }

    /// A replay job is (about to be) asked for, or it is over.
    pub fn set_replaying(&self, on: bool) {
        self.replaying.store(on, Ordering::Relaxed);
    }

    pub fn replaying(&self) -> bool {
        self.replaying.load(Ordering::Relaxed)
    }
}

/// The receiver's folder in the state dir.
pub const STATE_FOLDER: &str = "twitter-webhook";

/// A body key: the SHA-256 of a signed body.
pub type BodyKey = [u8; 32];

/// The recorded bodies' keys, kept in an append-only file.
#[derive(Debug)]
pub struct BodyLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

fn hex(key: &BodyKey) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(line: &str) -> Option<BodyKey> {
    let line = line.trim();
    if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, out) in key.iter_mut().enumerate() {
        *out = u8::from_str_radix(&line[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

impl BodyLog {
    /// The log of the app whose consumer secret has `fingerprint`.
    pub fn new(state_dir: &Path, fingerprint: &str) -> Self {
        BodyLog {
            path: state_dir
                .join(STATE_FOLDER)
                .join(format!("recorded-bodies-{fingerprint}.sha256")),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last `window` keys recorded, oldest first. Lines that are not a
    /// key (a write cut by a crash) are skipped with a warning. A file grown
    /// past twice the window is rewritten with the keys kept.
    pub fn load(&self, window: usize) -> Result<Vec<BodyKey>, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(self.error(source)),
        };
        let lines = text.lines().filter(|l| !l.is_empty()).count();
        let mut keys: Vec<BodyKey> = text.lines().filter_map(parse_hex).collect();
        let bad = lines - keys.len();
        if bad > 0 {
            warn!(file = %self.path.display(), lines = bad, "skipped lines of the recorded-bodies file that are not SHA-256 keys");
        }
        let keep = keys.len().saturating_sub(window);
        keys.drain(..keep);
        if lines > window.saturating_mul(2) || bad > 0 {
            let text: String = keys.iter().map(|k| hex(k) + "\n").collect();
            atomic_write(&self.path, text.as_bytes()).map_err(|e| self.error(e))?;
        }
        Ok(keys)
    }

    /// Appends `key` and syncs it to disk.
    pub fn append(&self, key: &BodyKey) -> Result<(), StateError> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| self.error(e))?;
            *file = Some(f);
        }
        let f = file.as_mut().expect("opened above");
        f.write_all(format!("{}\n", hex(key)).as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| self.error(e))
    }

    fn error(&self, source: std::io::Error) -> StateError {
        StateError::Checkpoint {
            path: self.path.clone(),
            source,
        }
    }
}

/// The saved time of a webhook's last confirmed delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastDeliveryFile {
    pub webhook_id: String,
    /// RFC 3339, UTC.
    pub last_confirmed_at: String,
}

/// When the receiver last confirmed a delivery, per webhook id. The id may
/// become known after deliveries arrive (`--register` learns it from X):
/// the time waits in memory until then.
#[derive(Debug)]
pub struct LastDelivery {
    dir: PathBuf,
    id: OnceLock<String>,
    at: Mutex<Option<DateTime<Utc>>>,
}

impl LastDelivery {
    pub fn new(state_dir: &Path) -> Self {
        LastDelivery {
            dir: state_dir.join(STATE_FOLDER),
            id: OnceLock::new(),
            at: Mutex::new(None),
        }
    }

    fn checkpoint(&self, id: &str) -> Checkpoint {
        Checkpoint::new(self.dir.join(format!("last-delivery-{id}.json")))
    }

    /// The time saved for `id` by an earlier run.
    pub fn saved(&self, id: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let checkpoint = self.checkpoint(id);
        let saved: Option<LastDeliveryFile> = checkpoint.load()?;
        let Some(saved) = saved.filter(|s| s.webhook_id == id) else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(&saved.last_confirmed_at)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| StateError::Checkpoint {
                path: checkpoint.path().to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })
    }

    /// Names the webhook; returns the time an earlier run saved for it, then
    /// saves this run's, if a delivery was confirmed already.
    pub fn set_webhook(&self, id: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let earlier = self.saved(id)?;
        if self.id.set(id.to_owned()).is_err() {
            return Ok(earlier);
        }
        let now = *self.at.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = now {
            self.save(id, at)?;
        }
        Ok(earlier)
    }

    /// A delivery was confirmed by every sink at `at`.
    pub fn confirmed(&self, at: DateTime<Utc>) -> Result<(), StateError> {
        {
            let mut last = self.at.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|l| l >= at) {
                return Ok(());
            }
            *last = Some(at);
        }
        match self.id.get() {
            Some(id) => self.save(id, at),
            None => Ok(()),
        }
    }

    fn save(&self, id: &str, at: DateTime<Utc>) -> Result<(), StateError> {
        self.checkpoint(id).save(&LastDeliveryFile {
            webhook_id: id.to_owned(),
            last_confirmed_at: crate::record::rfc3339(at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> BodyKey {
        [n; 32]
    }

    #[test]
    fn keys_survive_a_restart_and_the_file_is_trimmed_to_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let log = BodyLog::new(dir.path(), "ab12");
        assert!(log.load(3).unwrap().is_empty());
        for n in 1..=7 {
            log.append(&key(n)).unwrap();
        }
        let again = BodyLog::new(dir.path(), "ab12");
        assert_eq!(again.load(3).unwrap(), vec![key(5), key(6), key(7)]);
        let lines = std::fs::read_to_string(log.path()).unwrap().lines().count();
        assert_eq!(lines, 3, "rewritten past twice the window");
        // Another app's secret: its own file.
        assert!(BodyLog::new(dir.path(), "cd34").load(3).unwrap().is_empty());
    }

    #[test]
    fn a_torn_or_foreign_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = BodyLog::new(dir.path(), "f");
        log.append(&key(1)).unwrap();
        let mut text = std::fs::read_to_string(log.path()).unwrap();
        text.push_str("0123abc\nnot hex at all but sixty-four characters long............\n");
        std::fs::write(log.path(), &text).unwrap();
        log.append(&key(2)).unwrap();
        assert_eq!(
            BodyLog::new(dir.path(), "f").load(10).unwrap(),
            vec![key(1), key(2)]
        );
    }

    #[test]
    fn the_last_delivery_waits_for_the_webhook_id_and_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let last = LastDelivery::new(dir.path());
        last.confirmed(t("2026-01-01T10:00:00Z")).unwrap();
        assert_eq!(
            last.set_webhook("77").unwrap(),
            None,
            "nothing saved before"
        );
        last.confirmed(t("2026-01-01T09:00:00Z")).unwrap();
        let next = LastDelivery::new(dir.path());
        assert_eq!(next.saved("77").unwrap(), Some(t("2026-01-01T10:00:00Z")));
        assert_eq!(next.saved("78").unwrap(), None);
        // A file of another id under this name is not this webhook's.
        std::fs::write(
            dir.path().join(STATE_FOLDER).join("last-delivery-79.json"),
            r#"{"webhook_id":"80","last_confirmed_at":"2026-01-01T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(next.saved("79").unwrap(), None);
        std::fs::write(
            dir.path().join(STATE_FOLDER).join("last-delivery-81.json"),
            "{not json",
        )
        .unwrap();
        assert!(
            next.saved("81")
                .unwrap_err()
                .to_string()
                .contains("last-delivery-81")
        );
    }
}
