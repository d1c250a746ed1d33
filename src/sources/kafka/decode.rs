//! Decoding a message's value: an `ingest` record (what the Kafka sink
//! writes with `format = "record"`), else a raw X stream line or Telegram
//! update normalized as `replay` does, else a dead letter with its topic,
//! partition, offset and key.

use std::sync::Arc;

use rdkafka::message::{BorrowedMessage, Headers, Message};

use super::offsets::{Entry, TopicNames, Tp};
use crate::record::{Normalized, Record, rfc3339, trim_line};
use crate::sources::output::{Origin, Tracked};
use crate::sources::{InputPlatform, SourceContext, SourceCounters, SourceOutput};
use crate::state::StateError;

/// The most of a dead message's value kept in the dead-letter file.
const DEAD_LETTER_KEEP: usize = 1 << 20;

/// What a dead letter from this source says it came from.
const ORIGIN: Origin = Origin {
    label: "kafka",
    item: "message",
};

/// Decodes one message into the batch (at `position`, as a record or as an
/// item that made none) or the dead-letter file; returns its coordinates. A
/// dead letter that cannot be written is an error, and the message is not
/// in the batch: its offset is never confirmed.
pub(super) fn read_message(
    m: &BorrowedMessage<'_>,
    platform: InputPlatform,
    ctx: &SourceContext,
    out: &SourceOutput,
    topics: &mut TopicNames,
    (batch, position): (&mut Tracked, u64),
) -> Result<Entry, StateError> {
    let tp: Tp = (topics.get(m.topic()), m.partition());
    let offset = m.offset();
    let value = m.payload().unwrap_or_default();
    let record = match decode(value, platform, ctx) {
        Ok(Some(mut r)) => {
            add_header_tags(m, &mut r);
            Some(Arc::new(r))
        }
        Ok(None) => None,
        Err(why) => {
            dead_letter(m, &tp, offset, &why, out)?;
            None
        }
    };
    batch.push(position, record);
    Ok(Entry { tp, offset })
}

/// Rule tags a producer put in headers join the record's tags.
fn add_header_tags(m: &BorrowedMessage<'_>, r: &mut Record) {
    let Some(headers) = m.headers() else {
        return;
    };
    for h in headers.iter() {
        if h.key == "rule_tag"
            && let Some(tag) = h.value.and_then(|v| std::str::from_utf8(v).ok())
            && !r.tags.iter().any(|t| t == tag)
        {
            r.tags.push(tag.to_owned());
        }
    }
}

/// An unusable message goes to the dead-letter file with its coordinates,
/// through the one handle every source dead-letters with.
fn dead_letter(
    m: &BorrowedMessage<'_>,
    tp: &Tp,
    offset: i64,
    why: &str,
    out: &SourceOutput,
) -> Result<(), StateError> {
    let value = m.payload().unwrap_or_default();
    let key = m
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    let reason = format!(
        "{why} (topic {} partition {} offset {offset}{})",
        tp.0,
        tp.1,
        if key.is_empty() {
            String::new()
        } else {
            format!(" key {key}")
        }
    );
    let keep = value.len().min(DEAD_LETTER_KEEP);
    out.dead_letter(ORIGIN, &reason, &value[..keep], value.len())
}

/// Turns one message value into a record (or says why not).
fn decode(
    value: &[u8],
    platform: InputPlatform,
    ctx: &SourceContext,
) -> Result<Option<Record>, String> {
    if value.is_empty() {
        return Err("empty message value (a tombstone?)".into());
    }
    // A record our Kafka sink wrote (format = "record") is read back as it
    // is, without a clock read or a timestamp it would not use (they were 2 %
    // of this source's CPU); anything else normalized as `replay` does.
    if let Some(r) = crate::sources::replay::read_back(trim_line(value), ctx) {
        return Ok(Some(r));
    }
    let received_at: Arc<str> = Arc::from(rfc3339(chrono::Utc::now()));
    match crate::sources::replay::normalize(platform, value, &received_at, ctx) {
        Ok(Normalized::Record(r)) => Ok(Some(*r)),
        Ok(Normalized::Control(_)) => {
            SourceCounters::add(&ctx.counters.control, 1);
            Ok(None)
        }
        Ok(Normalized::Nothing) => Err("blank message value".into()),
        Err(e) => Err(format!(
            "neither an ingest record nor a raw X line or Telegram update: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, RunInfo};
    use crate::state::DeadLetters;

    fn ctx(keep_raw: bool) -> SourceContext {
        let run = Arc::new(RunInfo::new(None));
        // Never written to: decode itself does not dead-letter.
        let state_dir = std::env::temp_dir().join("ingest-kafka-decode-unused");
        SourceContext {
            normalize: NormalizeOptions {
                keep_raw,
                ..NormalizeOptions::new(run.clone())
            },
            dead_letters: DeadLetters::new(&state_dir, &run.id),
            state_dir,
            counters: Arc::new(SourceCounters::default()),
        }
    }

    const TWEET: &str = r#"{"data":{"id":"1600000000000000001","text":"hello","author_id":"1","created_at":"2026-11-22T07:01:00.000Z"}}"#;

    #[test]
    fn a_raw_x_line_is_normalized_and_a_record_read_back_as_is() {
        let ctx = ctx(true);
        let r = decode(TWEET.as_bytes(), InputPlatform::Auto, &ctx)
            .unwrap()
            .unwrap();
        assert_eq!(r.id, "twitter:1600000000000000001");
        assert!(r.raw.is_some());
        // What the Kafka sink writes with format = "record" comes back whole,
        // without its raw payload when the run does not keep raw payloads.
        let mut line = Vec::new();
        r.write_line(crate::record::Format::Record, &mut line);
        let back = decode(&line, InputPlatform::Auto, &self::ctx(false))
            .unwrap()
            .unwrap();
        assert_eq!((&back.id, &back.run.id), (&r.id, &r.run.id));
        assert!(back.raw.is_none());
    }

    #[test]
    fn unusable_values_say_why() {
        let ctx = ctx(true);
        let err = |v: &[u8]| decode(v, InputPlatform::Auto, &ctx).unwrap_err();
        assert!(err(b"").contains("tombstone"));
        assert!(err(b"this is not json").contains("neither an ingest record"));
        assert!(err(b"   ").contains("blank"));
    }
}
