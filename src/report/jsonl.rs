//! Records as JSON lines (the file sink's `format = "record"`), read line by
//! line with a bound on a line's length: a line that is not a record is
//! counted, never a reason to stop.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{MAX_LINE_BYTES, Observation, Place, RawState, ReportError, Tally, millis};

#[derive(Deserialize)]
struct AuthorLine {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct ChatLine {
    id: i64,
    #[serde(default)]
    title: Option<String>,
}

/// The fields of a record the report reads; others are ignored.
#[derive(Deserialize)]
struct Line<'a> {
    id: String,
    platform: String,
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    author: Option<AuthorLine>,
    #[serde(default)]
    chat: Option<ChatLine>,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, borrow)]
    raw: Option<&'a RawValue>,
}

impl Line<'_> {
    fn observe(self) -> Observation {
        Observation {
            id: self.id,
            platform: self.platform,
            kind: self.kind,
            created_ms: self.created_at.as_deref().and_then(millis),
            received_ms: self.received_at.as_deref().and_then(millis),
            text: self.text,
            tags: self.tags,
            lang: self.lang,
            author: self.author.map(|a| match a.username {
                Some(u) => format!("@{u}"),
                None => a.id,
            }),
            chat: self
                .chat
                .map(|c| c.title.unwrap_or_else(|| c.id.to_string())),
            raw: Some(
                self.raw
                    .map_or(RawState::Absent, |r| RawState::of_json(r.get())),
            ),
        }
    }
}

/// What one read of a line gave.
enum Next {
    Line,
    TooLong,
    End,
}

/// Reads one line (without its `\n`) into `buf`, holding at most
/// [`MAX_LINE_BYTES`]: a longer line is read to its end and dropped.
fn next_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Next> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        if !too_long && buf.len() + part.len() <= MAX_LINE_BYTES {
            buf.extend_from_slice(part);
        } else {
            too_long = true;
            buf.clear();
        }
        let used = done.unwrap_or(chunk.len());
        input.consume(used);
        if done.is_some() {
            break;
        }
    }
    Ok(match (any, too_long) {
        (false, _) => Next::End,
        (true, true) => Next::TooLong,
        (true, false) => Next::Line,
    })
}

/// Counts every line of the JSONL file at `path` into `tally`.
pub(super) fn read(path: &Path, tally: &mut Tally) -> Result<(), ReportError> {
    let read_err = |source| ReportError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut input = BufReader::with_capacity(256 * 1024, file);
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        let next = next_line(&mut input, &mut buf).map_err(read_err)?;
        number += 1;
        let at = Place {
            file: path,
            unit: "line",
            number,
        };
        match next {
            Next::End => return Ok(()),
            Next::TooLong => tally.malformed(
                &at,
                format_args!("a line longer than {} MiB", MAX_LINE_BYTES >> 20),
            ),
            Next::Line if buf.trim_ascii().is_empty() => {}
            Next::Line => match serde_json::from_slice::<Line<'_>>(&buf) {
                Ok(line) => tally.record(line.observe(), &at),
                Err(e) => tally.malformed(&at, e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_an_overlong_one_is_dropped_whole() {
        let big = "x".repeat(MAX_LINE_BYTES + 10);
        let text = format!("a\n{big}\nb");
        let mut input = BufReader::with_capacity(1024, text.as_bytes());
        let mut buf = Vec::new();
        assert!(matches!(
            next_line(&mut input, &mut buf).unwrap(),
            Next::Line
        ));
        assert_eq!(buf, b"a");
        assert!(matches!(
            next_line(&mut input, &mut buf).unwrap(),
            Next::TooLong
        ));
        assert!(buf.is_empty());
        assert!(matches!(
            next_line(&mut input, &mut buf).unwrap(),
            Next::Line
        ));
        assert_eq!(buf, b"b");
        assert!(matches!(
            next_line(&mut input, &mut buf).unwrap(),
            Next::End
        ));
    }
}
