//! `ingest report`: what a researcher checks first in a capture — records by
//! kind and platform, the per-minute rate and its longest gaps, the top tags,
//! hashtags, languages, authors and chats, duplicate ids, records whose `raw`
//! no longer parses, and lines that are not records at all.
//!
//! Input is what the sinks write: records as JSONL (the file sink's default
//! format, gzip or not is not detected: decompress first) or the Parquet files
//! of `format = "parquet"` (told apart by the `PAR1` magic, not the name).
//! Both readers turn a record into one [`Observation`]; the [`Tally`] never
//! sees which format it came from, so the same records give the same report.
//!
//! Memory: the tally keeps one entry per distinct id (for duplicates), per
//! minute, and per distinct tag, language, author and chat; never a record.

mod html;
mod jsonl;
#[cfg(feature = "parquet")]
mod parquet;
mod tally;
mod text;

use std::path::{Path, PathBuf};

pub use html::render_html;
pub use tally::{Gap, Located, Minute, Ranked, Report, Tally};
pub use text::render_text;

/// How many entries each top list keeps.
pub const TOP: usize = 10;
/// How many locations (file:line) a problem keeps as examples.
pub const EXAMPLES: usize = 5;
/// How many of the longest gaps the report lists.
pub const GAPS: usize = 5;
/// A line longer than this is counted as malformed without being held whole.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Which timestamp the per-minute rate and the gaps are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeField {
    /// `received_at`: when ingest read the item (gaps are gaps in the capture).
    #[default]
    Received,
    /// `created_at`: when the platform says the item was made (gaps in the conversation).
    Created,
}

/// Whether a record's `raw` still reads as the payload it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawState {
    /// No `raw` (`--no-raw`, or a Parquet file without the column).
    Absent,
    /// A JSON object (or a string holding one, as a text column stores it).
    Parses,
    /// Anything else: not JSON, or JSON that is not an object.
    Broken,
}

impl RawState {
    /// Classifies the text of a `raw` value as JSON gave it (an object, a
    /// string, anything else).
    pub fn of_json(raw: &str) -> RawState {
        let raw = raw.trim_start();
        if raw.starts_with('{') {
            return RawState::Parses;
        }
        if raw.starts_with('"')
            && let Ok(inner) = serde_json::from_str::<String>(raw)
        {
            return RawState::of_text(&inner);
        }
        RawState::Broken
    }

    /// Classifies `raw` stored as text (a Parquet column): it must parse as a JSON object.
    pub fn of_text(text: &str) -> RawState {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => RawState::Parses,
            _ => RawState::Broken,
        }
    }
}

/// The parts of one record the report counts.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub id: String,
    pub platform: String,
    pub kind: String,
    /// Milliseconds since the epoch of `created_at` / `received_at`, when they parse.
    pub created_ms: Option<i64>,
    pub received_ms: Option<i64>,
    pub text: Option<String>,
    pub tags: Vec<String>,
    pub lang: Option<String>,
    /// `@username`, else the author's id.
    pub author: Option<String>,
    /// The chat's title, else its id.
    pub chat: Option<String>,
    pub raw: Option<RawState>,
}

/// Where an input item is: the file and its line (JSONL) or row (Parquet), 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place<'a> {
    pub file: &'a Path,
    pub unit: &'static str,
    pub number: u64,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unit {
            "line" => write!(f, "{}:{}", self.file.display(), self.number),
            unit => write!(f, "{} {unit} {}", self.file.display(), self.number),
        }
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is a Parquet file that cannot be read: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error(
        "{} is a Parquet file, and this build of ingest has no Parquet reader: rebuild with the `parquet` feature (a default one)",
        path.display()
    )]
    NoParquet { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The magic bytes that open (and close) every Parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

fn is_parquet(path: &Path) -> Result<bool, ReportError> {
    use std::io::Read;
    let read_err = |source| ReportError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]).map_err(read_err)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got == 4 && &head == PARQUET_MAGIC)
}

/// Reads every file into one report, in the order given.
pub fn read_files(paths: &[PathBuf], by: TimeField) -> Result<Report, ReportError> {
    let mut tally = Tally::new(by);
    for path in paths {
        if is_parquet(path)? {
            read_parquet(path, &mut tally)?;
        } else {
            jsonl::read(path, &mut tally)?;
        }
        tally.files.push(path.display().to_string());
    }
    Ok(tally.finish())
}

#[cfg(feature = "parquet")]
fn read_parquet(path: &Path, tally: &mut Tally) -> Result<(), ReportError> {
    parquet::read(path, tally)
}

#[cfg(not(feature = "parquet"))]
fn read_parquet(path: &Path, _tally: &mut Tally) -> Result<(), ReportError> {
    Err(ReportError::NoParquet {
        path: path.to_owned(),
    })
}

/// `#word` hashtags of a text (letters, digits, `_`; case folded), in order.
/// All digits is not a hashtag (X marks none: `#1` is a number).
pub fn hashtags(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split('#').skip(1).filter_map(|rest| {
        let end = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(i, _)| i);
        let word = &rest[..end];
        word.chars()
            .any(|c| !c.is_ascii_digit())
            .then(|| format!("#{}", word.to_lowercase()))
    })
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn millis(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_parses_as_an_object_or_a_string_holding_one() {
        assert_eq!(RawState::of_json(r#" {"a":1}"#), RawState::Parses);
        assert_eq!(RawState::of_json(r#""{\"a\":1}""#), RawState::Parses);
        assert_eq!(RawState::of_json(r#""{broken""#), RawState::Broken);
        assert_eq!(RawState::of_json("[1]"), RawState::Broken);
        assert_eq!(RawState::of_json("null"), RawState::Broken);
        assert_eq!(RawState::of_text("{\"a\":"), RawState::Broken);
    }

    #[test]
    fn hashtags_are_words_after_a_hash_case_folded_and_not_all_digits() {
        let tags: Vec<_> =
            hashtags("ship it #RustLang, #0 and # alone #data_eng! #2026a").collect();
        assert_eq!(tags, ["#rustlang", "#data_eng", "#2026a"], "#0 is a number");
    }
}
