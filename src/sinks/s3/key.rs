//! The object key template: parsed (and checked) from the config in every
//! build; with the `s3` feature, rendered per record into a partition
//! (everything but `{timestamp}` and `{uuid}`), then into one object's key.

#[cfg(feature = "s3")]
use chrono::DateTime;
#[cfg(feature = "s3")]
use chrono_tz::Tz;
#[cfg(feature = "s3")]
use sha2::{Digest, Sha256};

#[cfg(feature = "s3")]
use crate::record::Platform;

const PLACEHOLDERS: &str = "{platform}, {date}, {hour}, {timestamp}, {uuid}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Platform,
    Date,
    Hour,
    Timestamp,
    Uuid,
}

/// A parsed key template.
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    // Without the `s3` feature a template is only parsed, to check the config.
    #[cfg_attr(not(feature = "s3"), allow(dead_code))]
    segments: Vec<Segment>,
}

impl KeyTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.trim().is_empty() {
            return Err("the key template is empty".into());
        }
        if template.starts_with('/') {
            return Err(format!(
                "`{template}` starts with `/`: S3 keys have no leading slash"
            ));
        }
        let mut segments = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Lit(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                return Err(format!("unclosed `{{` in `{template}`"));
            };
            segments.push(match &rest[open + 1..close] {
                "platform" => Segment::Platform,
                "date" => Segment::Date,
                "hour" => Segment::Hour,
                "timestamp" => Segment::Timestamp,
                "uuid" => Segment::Uuid,
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}` in `{template}`; the placeholders are {PLACEHOLDERS}"
                    ));
                }
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Lit(rest.to_owned()));
        }
        if !segments.contains(&Segment::Uuid) {
            return Err(format!(
                "`{template}` has no `{{uuid}}`: without it two batches could get the same key and one would overwrite the other"
            ));
        }
        Ok(KeyTemplate { segments })
    }

    /// The key's fixed part for a record: everything but `{timestamp}` and `{uuid}`.
    /// Records with the same partition go into the same object.
    #[cfg(feature = "s3")]
    pub(super) fn partition(&self, platform: Platform, at: &DateTime<Tz>) -> String {
        let mut s = String::with_capacity(64);
        for seg in &self.segments {
            match seg {
                Segment::Lit(l) => s.push_str(l),
                Segment::Platform => s.push_str(platform.as_str()),
                Segment::Date => s.push_str(&at.format("%Y-%m-%d").to_string()),
                Segment::Hour => s.push_str(&at.format("%H").to_string()),
                Segment::Timestamp => s.push_str("{timestamp}"),
                Segment::Uuid => s.push_str("{uuid}"),
            }
        }
        s
    }

    /// The object key: the partition with `{timestamp}` and `{uuid}` filled in.
    #[cfg(feature = "s3")]
    pub(super) fn key(partition: &str, at: &DateTime<Tz>, uuid: &uuid::Uuid, gzip: bool) -> String {
        let mut key = partition
            .replace("{timestamp}", &timestamp(at))
            .replace("{uuid}", &uuid.to_string());
        if gzip && !key.ends_with(".gz") {
            key.push_str(".gz");
        }
        key
    }
}

#[cfg(feature = "s3")]
/// `20261130T013822.123Z` in UTC, `20261130T023822.123+0100` elsewhere.
fn timestamp(at: &DateTime<Tz>) -> String {
    if at.timezone() == Tz::UTC {
        at.format("%Y%m%dT%H%M%S%.3fZ").to_string()
    } else {
        at.format("%Y%m%dT%H%M%S%.3f%z").to_string()
    }
}

/// A UUID derived from the ids in an object, so a retried write replaces the
/// same object instead of adding a second copy.
#[cfg(feature = "s3")]
pub(super) fn content_uuid<'a>(ids: impl Iterator<Item = &'a str>) -> uuid::Uuid {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(feature = "s3")]
    use chrono::TimeZone;

    #[cfg(feature = "s3")]
    #[test]
    fn the_default_template_renders_platform_date_timestamp_uuid() {
        let t = KeyTemplate::parse(super::super::DEFAULT_KEY_TEMPLATE).unwrap();
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
            .unwrap()
            .with_timezone(&Tz::UTC);
        let p = t.partition(Platform::Twitter, &at);
        assert_eq!(
            p,
            "twitter/context_date=2026-11-30/{timestamp}-{uuid}.jsonl"
        );
        let u = content_uuid(["twitter:1", "twitter:2"].into_iter());
        assert_eq!(u, content_uuid(["twitter:1", "twitter:2"].into_iter()));
        assert_ne!(u, content_uuid(["twitter:1"].into_iter()));
        assert_eq!(
            KeyTemplate::key(&p, &at, &u, true),
            format!("twitter/context_date=2026-11-30/20261130T233005.000Z-{u}.jsonl.gz")
        );
    }

    #[cfg(feature = "s3")]
    #[test]
    fn the_time_zone_moves_the_date() {
        let t = KeyTemplate::parse("{date}/{hour}/{timestamp}-{uuid}").unwrap();
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 11, 30, 23, 30, 5)
            .unwrap()
            .with_timezone(&tz);
        assert_eq!(
            t.partition(Platform::Telegram, &at),
            "2026-12-01/00/{timestamp}-{uuid}"
        );
        assert_eq!(timestamp(&at), "20261201T003005.000+0100");
    }

    #[test]
    fn bad_templates_say_why() {
        assert!(
            KeyTemplate::parse("{platform}/{date}.jsonl")
                .unwrap_err()
                .contains("{uuid}")
        );
        assert!(
            KeyTemplate::parse("{platfrom}/{uuid}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            KeyTemplate::parse("{uuid")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            KeyTemplate::parse("/x/{uuid}")
                .unwrap_err()
                .contains("leading slash")
        );
    }
}
