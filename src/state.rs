//! State kept between runs in `--state-dir`: the dead-letter file (and, for the
//! sources that need them, checkpoints and lock files).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::record::{Format, Record, rfc3339};

/// The dead-letter file's name inside the state dir.
pub const DEAD_LETTER_FILE: &str = "dead-letters.jsonl";
/// The dead-letter file's permission bits when it is created (before the umask).
pub const DEAD_LETTER_FILE_MODE: u32 = 0o600;

/// Errors of the state dir.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use the state dir {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the dead-letter file {path}: {source}")]
    DeadLetter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {source}")]
    Checkpoint {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another ingest run is polling {what} (lock file {path}, held by {holder}); stop it or wait for it to finish"
    )]
    Locked {
        what: String,
        path: PathBuf,
        holder: String,
    },
}

/// The default state dir: `$XDG_STATE_HOME/ingest`, else `~/.local/state/ingest`, else `./.ingest-state`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ingest");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/ingest");
    }
    let dir = PathBuf::from(".ingest-state");
    // Cron's `env -i` has no HOME: say where the state goes, once per run.
    tracing::warn!(
        state_dir = %dir.display(),
        "neither XDG_STATE_HOME nor HOME is set: checkpoints and dead letters go to ./.ingest-state in the working directory (set --state-dir or INGEST_STATE_DIR to choose)"
    );
    dir
}

/// Creates the state dir if needed.
pub fn ensure_dir(path: &Path) -> Result<(), StateError> {
    std::fs::create_dir_all(path).map_err(|source| StateError::Dir {
        path: path.to_owned(),
        source,
    })
}

/// Where a dead letter came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The source could not turn the input into a record.
    Source,
    /// A sink refused the record after its retry budget.
    Sink,
}

#[derive(Serialize)]
struct Entry<'a> {
    at: String,
    run_id: &'a str,
    stage: Stage,
    /// The sink or source name.
    component: &'a str,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<&'a RawValue>,
    /// Input that is not a record: the line as text (lossy for invalid UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_bytes: Option<usize>,
}

/// The append-only dead-letter file (JSONL), opened on first use.
///
/// Each line: `{at, run_id, stage, component, error, record | input, input_bytes}`.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    inner: Arc<DeadLettersInner>,
}

#[derive(Debug)]
struct DeadLettersInner {
    path: PathBuf,
    run_id: String,
    file: Mutex<Option<File>>,
    written: AtomicU64,
}

impl DeadLetters {
    pub fn new(state_dir: &Path, run_id: &str) -> Self {
        DeadLetters {
            inner: Arc::new(DeadLettersInner {
                path: state_dir.join(DEAD_LETTER_FILE),
                run_id: run_id.to_owned(),
                file: Mutex::new(None),
                written: AtomicU64::new(0),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Entries written by this run.
    pub fn written(&self) -> u64 {
        self.inner.written.load(Ordering::Relaxed)
    }

    /// Records a sink gave up on, in one durable append.
    pub fn sink_records(
        &self,
        sink: &str,
        error: &str,
        records: &[Arc<Record>],
    ) -> Result<(), StateError> {
        let mut out = Vec::with_capacity(records.len() * 512);
        let mut line = Vec::with_capacity(512);
        for r in records {
            line.clear();
            r.write_line(Format::Record, &mut line);
            line.pop(); // the newline
            let raw: &RawValue =
                serde_json::from_slice(&line).expect("a serialized record is valid JSON");
            self.entry(&mut out, Stage::Sink, sink, error, Some(raw), None, None);
        }
        self.append(&out, records.len() as u64)
    }

    /// Input a source could not use.
    pub fn source_input(
        &self,
        source: &str,
        error: &str,
        input: &[u8],
        total_len: usize,
    ) -> Result<(), StateError> {
        let mut out = Vec::with_capacity(input.len() + 256);
        let text = String::from_utf8_lossy(input);
        self.entry(
            &mut out,
            Stage::Source,
            source,
            error,
            None,
            Some(&text),
            Some(total_len),
        );
        self.append(&out, 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        out: &mut Vec<u8>,
        stage: Stage,
        component: &str,
        error: &str,
        record: Option<&RawValue>,
        input: Option<&str>,
        input_bytes: Option<usize>,
    ) {
        let entry = Entry {
            at: rfc3339(chrono::Utc::now()),
            run_id: &self.inner.run_id,
            stage,
            component,
            // The error text may echo a request path or URL with a token in it.
            error: &crate::secret::redact(error),
            record,
            input,
            input_bytes,
        };
        serde_json::to_writer(&mut *out, &entry).expect("a dead-letter entry always serializes");
        out.push(b'\n');
    }

    fn append(&self, bytes: &[u8], entries: u64) -> Result<(), StateError> {
        let err = |source| StateError::DeadLetter {
            path: self.inner.path.clone(),
            source,
        };
        let mut guard = self.inner.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.inner.path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            // Dead letters hold whatever the input held (private chats): owner only.
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(DEAD_LETTER_FILE_MODE)
                .open(&self.inner.path)
                .map_err(err)?;
            *guard = Some(file);
        }
        let file = guard.as_mut().expect("opened above");
        file.write_all(bytes).map_err(err)?;
        file.sync_data().map_err(err)?;
        self.inner.written.fetch_add(entries, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};

    #[test]
    fn dead_letters_are_jsonl_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(&dir.path().join("nested"), "run-1");
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        let Normalized::Record(r) = crate::sources::twitter::normalize_line(
            br#"{"data":{"id":"1","text":"t"}}"#,
            &"now".into(),
            &opts,
        )
        .unwrap() else {
            panic!()
        };
        dl.sink_records("kafka", "message too large", &[Arc::new(*r)])
            .unwrap();
        dl.source_input("replay", "invalid JSON", b"\xffbad", 4)
            .unwrap();
        assert_eq!(dl.written(), 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dl.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "dead letters hold private input");
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["stage"], "sink");
        assert_eq!(lines[0]["component"], "kafka");
        assert_eq!(lines[0]["error"], "message too large");
        assert_eq!(lines[0]["record"]["id"], "twitter:1");
        assert_eq!(lines[0]["run_id"], "run-1");
        assert_eq!(lines[1]["stage"], "source");
        assert_eq!(lines[1]["input"], "\u{fffd}bad");
        assert_eq!(lines[1]["input_bytes"], 4);
    }

    #[test]
    fn an_unwritable_dead_letter_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        let dl = DeadLetters::new(&blocker.join("sub"), "r");
        let err = dl.source_input("replay", "x", b"y", 1).unwrap_err();
        assert!(err.to_string().contains("dead-letter file"), "{err}");
    }
}

/// Writes a file atomically: a temporary file in the same directory, fsync, rename, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Removes the temporary files [`atomic_write`] left in `dir` when a process
/// died (or its disk filled) between writing and renaming them:
/// `.<name>.tmp-<pid>` of a pid that no longer runs. Best effort: a file that
/// cannot be removed is logged and left.
pub fn remove_stale_temp_files(dir: &Path) {
    let Ok(items) = std::fs::read_dir(dir) else {
        return;
    };
    for item in items.flatten() {
        let name = item.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.starts_with('.'))
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, pid)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if !gone {
            continue;
        }
        let path = item.path();
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "removed a temporary file a stopped run left")
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove a temporary file a stopped run left")
            }
        }
    }
}

/// A short, stable, non-reversible name for a secret (lock and checkpoint files are named by it).
pub fn secret_fingerprint(secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(secret.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A checkpoint file holding one JSON value, written atomically.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
}

impl Checkpoint {
    pub fn new(path: PathBuf) -> Self {
        Checkpoint { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved value; `None` if there is none yet.
    pub fn load<T: serde::de::DeserializeOwned>(&self) -> Result<Option<T>, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Checkpoint {
                        path: self.path.clone(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Checkpoint {
                path: self.path.clone(),
                source,
            }),
        }
    }

    pub fn save<T: Serialize>(&self, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).expect("a checkpoint serializes");
        atomic_write(&self.path, &bytes).map_err(|source| StateError::Checkpoint {
            path: self.path.clone(),
            source,
        })
    }
}

/// An exclusive lock (flock) on a file in the state dir, held until dropped or the
/// process dies (even by `kill -9`: the kernel releases it, so no lock goes stale).
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock or says who holds it.
    pub fn acquire(path: PathBuf, what: &str) -> Result<Self, StateError> {
        use std::io::{Read, Seek};
        use std::os::fd::AsRawFd;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|source| StateError::Dir {
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StateError::Locked {
                what: what.to_owned(),
                path,
                holder: holder.trim().to_owned(),
            });
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(LockFile { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locks/bot.lock");
        let first = LockFile::acquire(path.clone(), "this bot").unwrap();
        let err = LockFile::acquire(path.clone(), "this bot")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("another ingest run")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        LockFile::acquire(path, "this bot").unwrap();
    }

    #[test]
    fn checkpoints_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoint::new(dir.path().join("c/offset.json"));
        assert_eq!(c.load::<u64>().unwrap(), None);
        c.save(&42u64).unwrap();
        c.save(&43u64).unwrap();
        assert_eq!(c.load::<u64>().unwrap(), Some(43));
        std::fs::write(c.path(), b"garbage").unwrap();
        assert!(
            c.load::<u64>()
                .unwrap_err()
                .to_string()
                .contains("checkpoint")
        );
        let names: Vec<_> = std::fs::read_dir(dir.path().join("c"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary files left: {names:?}");
    }

    #[test]
    fn fingerprints_hide_the_secret() {
        let f = secret_fingerprint("123456:ABC-secret");
        assert_eq!(f.len(), 16);
        assert!(!f.contains("secret") && !f.contains("123456"));
        assert_eq!(f, secret_fingerprint("123456:ABC-secret"));
    }
}
