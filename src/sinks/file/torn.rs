//! Torn tails: what a crash left after the last whole line or gzip member of
//! an output file, cut off and saved beside it on first open.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tracing::warn;

use super::config::DEFAULT_FILE_MODE;
/// Bytes read at a time while looking backwards for the end of the last whole line or member.
const SCAN_BLOCK: u64 = 64 * 1024;
/// The first bytes of a gzip member: magic and the deflate method.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Checks the end of a file the sink is about to append to, once per file and
/// run. A write cut short by a crash leaves a torn tail: for JSONL, bytes after
/// the last newline; for gzip, bytes after the last whole member. The tail is
/// saved beside the file (`<file>.torn-<unix time>`, mode 0600), cut off, and
/// reported; a file whose end is whole is not touched. Returns the new size.
pub(super) fn repair_torn_tail(
    file: &File,
    path: &Path,
    size: u64,
    gzip: bool,
) -> std::io::Result<u64> {
    let keep = if gzip {
        match gzip_whole_end(file, size)? {
            Some(end) => end,
            None => {
                warn!(file = %path.display(),
                    "the file does not start with a gzip member although `gzip = true`; appending to it as it is");
                size
            }
        }
    } else {
        jsonl_whole_end(file, size)?
    };
    if keep == size {
        return Ok(size);
    }
    let saved = save_torn_tail(file, path, keep, size)?;
    file.set_len(keep)?;
    file.sync_all()?;
    warn!(file = %path.display(), torn_bytes = size - keep, saved_to = %saved.display(),
        "cut off a torn tail (a write cut short by a crash; it was never confirmed, so its records are delivered again)");
    Ok(keep)
}

/// The length of a JSONL file up to and including its last newline.
fn jsonl_whole_end(file: &File, size: u64) -> std::io::Result<u64> {
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, size - 1)?;
    if last[0] == b'\n' {
        return Ok(size);
    }
    let mut end = size;
    let mut block = vec![0u8; SCAN_BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(SCAN_BLOCK);
        let chunk = &mut block[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// The end of the last whole gzip member; `None` if the file does not start with one at all
/// (not a file this sink wrote: left alone).
///
/// Looks backwards for member headers and decodes from each until one decodes
/// whole (its CRC and length check out): the file is whole up to where it ends.
fn gzip_whole_end(file: &File, size: u64) -> std::io::Result<Option<u64>> {
    let mut end = size;
    let mut block = vec![0u8; SCAN_BLOCK as usize + GZIP_MAGIC.len()];
    while end > 0 {
        let start = end.saturating_sub(SCAN_BLOCK);
        // Read a little past `end` so a header across blocks is seen.
        let stop = (end + GZIP_MAGIC.len() as u64 - 1).min(size);
        let chunk = &mut block[..(stop - start) as usize];
        file.read_exact_at(chunk, start)?;
        let mut candidates: Vec<u64> = memchr::memmem::find_iter(chunk, &GZIP_MAGIC)
            .map(|i| start + i as u64)
            .filter(|&p| p < end)
            .collect();
        candidates.reverse();
        for p in candidates {
            if let Some(member_end) = gzip_member_end(file, p)? {
                return Ok(Some(member_end));
            }
        }
        end = start;
    }
    let mut head = [0u8; 3];
    let starts_gzip = size >= 3 && file.read_exact_at(&mut head, 0).is_ok() && head == GZIP_MAGIC;
    Ok(starts_gzip.then_some(0))
}

/// Where a gzip member starting at `at` ends, if one decodes whole from there.
pub(super) fn gzip_member_end(file: &File, at: u64) -> std::io::Result<Option<u64>> {
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(at))?;
    let mut decoder = flate2::bufread::GzDecoder::new(reader);
    if std::io::copy(&mut decoder, &mut std::io::sink()).is_err() {
        return Ok(None);
    }
    let mut reader = decoder.into_inner();
    Ok(Some(reader.stream_position()?))
}

/// Copies bytes `from..to` of `file` to a new file beside it; returns its path.
fn save_torn_tail(file: &File, path: &Path, from: u64, to: u64) -> std::io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut n = 0u32;
    let (mut out, saved) = loop {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        let saved = path.with_file_name(format!("{name}.torn-{secs}{suffix}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(DEFAULT_FILE_MODE)
            .open(&saved)
        {
            Ok(f) => break (f, saved),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(e),
        }
    };
    let mut reader = BufReader::new(file);
    reader.seek(SeekFrom::Start(from))?;
    std::io::copy(&mut reader.take(to - from), &mut out)?;
    out.sync_all()?;
    Ok(saved)
}
