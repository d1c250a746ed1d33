//! State kept between runs in `--state-dir`: the dead-letter file (and, for the
//! sources that need them, checkpoints and lock files).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::record::{Format, Record, rfc3339};

/// The dead-letter file's name inside the state dir.
pub const DEAD_LETTER_FILE: &str = "dead-letters.jsonl";

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
}

/// The default state dir: `$XDG_STATE_HOME/ingest`, else `~/.local/state/ingest`, else `./.ingest-state`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ingest");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/ingest");
    }
    PathBuf::from(".ingest-state")
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
            error,
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
            let file = OpenOptions::new()
                .create(true)
                .append(true)
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
