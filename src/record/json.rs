//! The record's JSON line, written by hand: the same bytes as
//! `serde_json::to_writer(record)` (a test holds them equal for every field),
//! at a fraction of the cost. serde_json escapes a string byte by byte through
//! a lookup table; most of a record's strings need no escape at all, which a
//! word-at-a-time scan finds eight bytes per step. Strings that do need one
//! go to serde_json's own escaper, so the output matches it exactly.

use std::io::Write;

use super::{Author, Chat, MatchingRule, MediaItem, Record, Refs, RunInfo, StoredMedia};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// True if no byte of `w` is below 0x20, a `"` or a `\`.
#[inline]
fn word_is_plain(w: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    // A byte below 0x20: (b - 0x20) borrows into bit 7 for bytes < 0x20 (and
    // for bytes ≥ 0x80 the high bit was set already, masked out by `!w`).
    let control = w.wrapping_sub(LO * 0x20) & !w & HI;
    control | has_zero(w ^ (LO * b'"' as u64)) | has_zero(w ^ (LO * b'\\' as u64)) == 0
}

/// True if `s` can be written between quotes as it is.
#[inline]
fn is_plain(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        if !word_is_plain(u64::from_le_bytes(c.try_into().expect("8 bytes"))) {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// Appends `s` as a JSON string.
#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    if is_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

/// Appends `,"key":` (or `"key":` for the first field).
#[inline]
fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn opt_string(out: &mut Vec<u8>, first: &mut bool, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        key(out, first, k);
        string(out, v);
    }
}

fn integer(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    write!(out, "{n}").expect("writing to a Vec cannot fail");
}

fn author(out: &mut Vec<u8>, a: &Author) {
    let mut first = true;
    out.push(b'{');
    key(out, &mut first, "id");
    string(out, &a.id);
    opt_string(out, &mut first, "name", a.name.as_deref());
    opt_string(out, &mut first, "username", a.username.as_deref());
    out.push(b'}');
}

fn chat(out: &mut Vec<u8>, c: &Chat) {
    let mut first = true;
    out.push(b'{');
    key(out, &mut first, "id");
    integer(out, c.id);
    key(out, &mut first, "type");
    string(out, &c.kind);
    opt_string(out, &mut first, "title", c.title.as_deref());
    out.push(b'}');
}

fn rules(out: &mut Vec<u8>, rules: &[MatchingRule]) {
    out.push(b'[');
    for (i, r) in rules.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut first = true;
        out.push(b'{');
        key(out, &mut first, "id");
        string(out, &r.id);
        opt_string(out, &mut first, "tag", r.tag.as_deref());
        out.push(b'}');
    }
    out.push(b']');
}

fn strings(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

fn refs(out: &mut Vec<u8>, r: &Refs) {
    let mut first = true;
    out.push(b'{');
    opt_string(out, &mut first, "tweet_id", r.tweet_id.as_deref());
    opt_string(
        out,
        &mut first,
        "conversation_id",
        r.conversation_id.as_deref(),
    );
    if let Some(n) = r.update_id {
        key(out, &mut first, "update_id");
        integer(out, n);
    }
    if let Some(n) = r.message_id {
        key(out, &mut first, "message_id");
        integer(out, n);
    }
    out.push(b'}');
}

fn stored(out: &mut Vec<u8>, s: &StoredMedia) {
    let mut first = true;
    out.push(b'{');
    key(out, &mut first, "uri");
    string(out, &s.uri);
    key(out, &mut first, "sha256");
    string(out, &s.sha256);
    key(out, &mut first, "bytes");
    integer(out, s.bytes);
    key(out, &mut first, "content_type");
    string(out, &s.content_type);
    out.push(b'}');
}

fn media(out: &mut Vec<u8>, items: &[MediaItem]) {
    out.push(b'[');
    for (i, m) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut first = true;
        out.push(b'{');
        key(out, &mut first, "type");
        string(out, &m.kind);
        key(out, &mut first, "key");
        string(out, &m.key);
        key(out, &mut first, "stored");
        match &m.stored {
            Some(s) => stored(out, s),
            None => out.extend_from_slice(b"null"),
        }
        opt_string(out, &mut first, "skipped", m.skipped.as_deref());
        opt_string(out, &mut first, "error", m.error.as_deref());
        out.push(b'}');
    }
    out.push(b']');
}

fn run(out: &mut Vec<u8>, r: &RunInfo) {
    let mut first = true;
    out.push(b'{');
    key(out, &mut first, "id");
    string(out, &r.id);
    key(out, &mut first, "started_at");
    string(out, &r.started_at);
    if let Some(n) = r.time_limit_secs {
        key(out, &mut first, "time_limit_secs");
        integer(out, n);
    }
    out.push(b'}');
}

/// Appends the record as one JSON object (no newline), field for field what
/// its derived `Serialize` writes.
pub fn write_record(out: &mut Vec<u8>, r: &Record) {
    let mut first = true;
    out.push(b'{');
    key(out, &mut first, "id");
    string(out, &r.id);
    key(out, &mut first, "platform");
    string(out, r.platform.as_str());
    key(out, &mut first, "kind");
    string(out, &r.kind);
    opt_string(out, &mut first, "text", r.text.as_deref());
    opt_string(out, &mut first, "text_ascii", r.text_ascii.as_deref());
    opt_string(out, &mut first, "created_at", r.created_at.as_deref());
    key(out, &mut first, "received_at");
    string(out, &r.received_at);
    if let Some(a) = &r.author {
        key(out, &mut first, "author");
        author(out, a);
    }
    if let Some(c) = &r.chat {
        key(out, &mut first, "chat");
        chat(out, c);
    }
    opt_string(out, &mut first, "lang", r.lang.as_deref());
    opt_string(out, &mut first, "source", r.source.as_deref());
    if !r.matching_rules.is_empty() {
        key(out, &mut first, "matching_rules");
        rules(out, &r.matching_rules);
    }
    if !r.tags.is_empty() {
        key(out, &mut first, "tags");
        strings(out, &r.tags);
    }
    if !r.hashtags.is_empty() {
        key(out, &mut first, "hashtags");
        strings(out, &r.hashtags);
    }
    if r.refs != Refs::default() {
        key(out, &mut first, "refs");
        refs(out, &r.refs);
    }
    if !r.media.is_empty() {
        key(out, &mut first, "media");
        media(out, &r.media);
    }
    key(out, &mut first, "run");
    run(out, &r.run);
    if let Some(raw) = &r.raw {
        key(out, &mut first, "raw");
        out.extend_from_slice(raw.get().as_bytes());
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;

    use super::*;
    use crate::record::Platform;

    fn full(text: &str) -> Record {
        // A struct literal: a new Record field fails to compile here until the
        // writer and this test know it.
        Record {
            id: "telegram:-100:7:1700000000".into(),
            platform: Platform::Telegram,
            kind: Cow::Borrowed("edited_channel_post"),
            text: Some(text.into()),
            text_ascii: Some("ascii \"q\"".into()),
            created_at: Some("2026-11-22T07:00:00.000Z".into()),
            received_at: Arc::from("2026-11-22T07:00:01.000Z"),
            author: Some(Author {
                id: "42".into(),
                name: Some("Nämé \\ \u{1}".into()),
                username: Some("user".into()),
            }),
            chat: Some(Chat {
                id: -1001234567890,
                kind: "channel".into(),
                title: Some("Title\twith tab".into()),
            }),
            lang: Some("ru".into()),
            source: Some("Twitter for iPhone".into()),
            matching_rules: vec![
                MatchingRule {
                    id: "1".into(),
                    tag: Some("a\"b".into()),
                },
                MatchingRule {
                    id: "2".into(),
                    tag: None,
                },
            ],
            tags: vec!["a\"b".into(), "c".into()],
            hashtags: vec!["F1".into(), "é\"\u{1}".into()],
            refs: Refs {
                tweet_id: Some("1".into()),
                conversation_id: Some("2".into()),
                update_id: Some(i64::MAX),
                message_id: Some(-7),
            },
            media: vec![
                MediaItem {
                    kind: "photo".into(),
                    key: "AQAD\"x".into(),
                    stored: Some(StoredMedia {
                        uri: "s3://b/media/telegram/ab/ab.jpg".into(),
                        sha256: "ab".into(),
                        bytes: u64::MAX,
                        content_type: "image/jpeg".into(),
                    }),
                    skipped: None,
                    error: None,
                    fetch: None,
                },
                MediaItem::unfetchable("video", "k", "too_large"),
                MediaItem {
                    error: Some("HTTP 404 \n".into()),
                    ..MediaItem::unfetchable("document", "d", "x")
                },
            ],
            run: Arc::new(RunInfo {
                id: "run".into(),
                started_at: "2026-11-22T07:00:00.000Z".into(),
                time_limit_secs: Some(u64::MAX),
            }),
            raw: Some(
                crate::record::RawJson::from_string(r#"{"a": [1, "\u00e9"]}"#.into()).unwrap(),
            ),
        }
    }

    fn same(r: &Record) {
        let mut ours = Vec::new();
        write_record(&mut ours, r);
        let theirs = serde_json::to_vec(r).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn every_field_is_written_as_serde_writes_it() {
        for text in [
            "",
            "plain",
            "exactly8",
            "quote \" backslash \\ newline \n tab \t bell \u{7} del \u{7f}",
            "مرحبا 😂🧵 Привет データ",
            "\u{1f}",
            "0123456789abcdef\"",
            "é\u{80}\u{7ff}\u{ffff}",
        ] {
            same(&full(text));
        }
    }

    #[test]
    fn absent_fields_are_left_out_as_serde_leaves_them() {
        let mut r = full("x");
        r.text = None;
        r.text_ascii = None;
        r.created_at = None;
        r.author = Some(Author {
            id: "1".into(),
            name: None,
            username: None,
        });
        r.chat = None;
        r.lang = None;
        r.source = None;
        r.matching_rules.clear();
        r.tags.clear();
        r.hashtags.clear();
        r.media.clear();
        r.refs = Refs::default();
        r.run = Arc::new(RunInfo {
            id: "r".into(),
            started_at: "s".into(),
            time_limit_secs: None,
        });
        r.raw = None;
        same(&r);
        r.author = None;
        r.chat = Some(Chat::default());
        r.refs.message_id = Some(1);
        same(&r);
    }

    #[test]
    fn the_word_scan_finds_every_byte_that_needs_an_escape_at_every_position() {
        for bad in (0u8..0x20).chain([b'"', b'\\']) {
            for len in 1..20 {
                for at in 0..len {
                    let mut s = vec![b'a'; len];
                    s[at] = bad;
                    assert!(!is_plain(&s), "byte {bad:#x} at {at} of {len}");
                }
            }
        }
        for ok in (0x20u8..=0xff).filter(|b| *b != b'"' && *b != b'\\') {
            assert!(is_plain(&[ok; 17]), "byte {ok:#x} needs no escape");
        }
    }
}
