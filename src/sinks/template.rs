//! Name templates: the one engine behind every name a sink chooses per
//! record — the Kafka `topic` and `key`, the S3 `key_template`, the file
//! `path`, the MongoDB `collection` and the Kinesis `partition_key`.
//!
//! A template is compiled once, when the config is validated (an unknown
//! placeholder is a config error with the file, line and field), and rendered
//! per record into a caller's reused `String`. A literal constant is a valid
//! template. Values taken from a record are sanitized for the target (see
//! [`Target`]); a value the record lacks renders as [`MISSING`], never an error.

use std::fmt::Write as _;

use chrono::DateTime;
use chrono::format::{Item, StrftimeItems};
use chrono_tz::Tz;

use crate::record::{Platform, Record};

pub use super::names::MISSING;
/// Longest value one placeholder contributes to a path, key or name (in bytes,
/// cut on a character boundary): a hostile value cannot make a name too long
/// for a file system (255 bytes a component) or a Kafka topic (249).
pub const MAX_VALUE_BYTES: usize = 128;
use super::names;
pub use super::names::MAX_TOPIC_BYTES;

/// Where a rendered name goes: decides which placeholders are allowed and how
/// values from a record are sanitized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A file path (the `file` sink). strftime fields (`%Y`…) are allowed.
    /// Values: `/`, `\`, look-alike slashes and dots and control characters
    /// become `_`, bidi controls are dropped, no `..` and no lone `.`
    /// ([`names::path_value`]).
    Path,
    /// An S3 object key: the path rules, plus `{timestamp}`, `{timestamp_us}` and `{uuid}`.
    S3Key,
    /// A Kafka topic: values keep only `[A-Za-z0-9._-]` (others become `_`), no
    /// `..`; the whole name is cut to 249 bytes and never one Kafka or its
    /// tools keep (`__…`, `_schemas`, `_confluent…`): `_x` goes in front
    /// ([`names::topic_name`]).
    KafkaTopic,
    /// A message key or Kinesis partition key: values are used as they are.
    Key,
    /// A MongoDB collection: `$` and control characters become `_`; the name
    /// never starts or ends with `.` nor holds `..`, and one that would start
    /// with `system.` gets a `_` in front ([`names::collection_name`]).
    Collection,
}

impl Target {
    fn strftime(self) -> bool {
        self == Target::Path
    }
    fn object_placeholders(self) -> bool {
        self == Target::S3Key
    }
}

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(Box<str>),
    /// Literal text with strftime fields (file paths only).
    Strftime(Box<str>),
    Platform,
    Kind,
    Tag,
    Lang,
    ChatId,
    AuthorId,
    Id,
    Date,
    Hour,
    /// `20261130T013822.123Z` (S3 keys only, filled in per object).
    Timestamp,
    /// `20261130013822123456` (S3 keys only, filled in per object).
    TimestampUs,
    /// The object's UUID (S3 keys only, filled in per object).
    Uuid,
}

/// The placeholders, for messages.
pub const PLACEHOLDERS: &str =
    "{platform}, {kind}, {tag}, {lang}, {chat.id}, {author.id}, {id}, {date}, {hour}";
const OBJECT_PLACEHOLDERS: &str = "{timestamp}, {timestamp_us}, {uuid}";

/// Marks where the per-object parts go in an S3 partition string (a
/// sanitized value never holds a control character, so data cannot fake one).
pub const MARK_TIMESTAMP: char = '\u{1}';
pub const MARK_TIMESTAMP_US: char = '\u{2}';
pub const MARK_UUID: char = '\u{3}';

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segs: Vec<Seg>,
    target: Target,
}

/// What a record renders with: the record, the tag of this copy (`None`: its
/// first tag) and the time for date parts (already in the sink's time zone).
pub struct Ctx<'a> {
    pub record: &'a Record,
    pub tag: Option<&'a str>,
    pub at: &'a DateTime<Tz>,
}

impl Template {
    /// Compiles `text` for `target`; the message says what is wrong and lists
    /// the placeholders.
    pub fn compile(text: &str, target: Target) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the template is empty".into());
        }
        let mut segs = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segs.push(lit(&rest[..open], target));
            }
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                return Err(format!("unclosed `{{` in `{text}`"));
            };
            segs.push(placeholder(&rest[open + 1..close], text, target)?);
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            segs.push(lit(rest, target));
        }
        if target.strftime() && StrftimeItems::new(text).any(|i| matches!(i, Item::Error)) {
            return Err(format!(
                "`{text}` has an invalid strftime field (write a literal % as %%)"
            ));
        }
        Ok(Template { segs, target })
    }

    /// The template's text when it has no placeholder (and no strftime field).
    pub fn literal(&self) -> Option<&str> {
        match self.segs.as_slice() {
            [Seg::Lit(l)] => Some(l),
            _ => None,
        }
    }

    /// True when the name depends on nothing but the platform (one name per
    /// platform, computed once).
    pub fn platform_only(&self) -> bool {
        self.segs
            .iter()
            .all(|s| matches!(s, Seg::Lit(_) | Seg::Platform))
    }

    /// True when the name depends on a record beyond its platform (and time).
    pub fn needs_record(&self) -> bool {
        self.segs.iter().any(|s| {
            matches!(
                s,
                Seg::Kind | Seg::Tag | Seg::ChatId | Seg::AuthorId | Seg::Id
            )
        })
    }

    /// True when the template is exactly `{id}`.
    pub fn is_id(&self) -> bool {
        self.segs == [Seg::Id]
    }

    pub fn uses_tag(&self) -> bool {
        self.segs.contains(&Seg::Tag)
    }

    pub fn uses_time(&self) -> bool {
        self.segs.iter().any(|s| {
            matches!(
                s,
                Seg::Strftime(_) | Seg::Date | Seg::Hour | Seg::Timestamp | Seg::TimestampUs
            )
        })
    }

    /// The literal text between the placeholders, for checks by the target.
    pub fn literal_text(&self) -> String {
        self.segs
            .iter()
            .filter_map(|s| match s {
                Seg::Lit(l) | Seg::Strftime(l) => Some(&**l),
                _ => None,
            })
            .collect()
    }

    /// True when the template holds `{placeholder}`.
    pub fn has(&self, placeholder: &str) -> bool {
        let seg = match placeholder {
            "uuid" => Seg::Uuid,
            "timestamp_us" => Seg::TimestampUs,
            "timestamp" => Seg::Timestamp,
            "id" => Seg::Id,
            "tag" => Seg::Tag,
            _ => return false,
        };
        self.segs.contains(&seg)
    }

    /// Appends the name of `ctx` to `out`. `{timestamp}`, `{timestamp_us}` and
    /// `{uuid}` are written as their `MARK_*` characters, for [`fill_object`].
    pub fn render(&self, ctx: &Ctx<'_>, out: &mut String) {
        let start = out.len();
        let r = ctx.record;
        for seg in &self.segs {
            match seg {
                Seg::Lit(l) => out.push_str(l),
                Seg::Strftime(f) => {
                    let _ = write!(out, "{}", ctx.at.format(f));
                }
                Seg::Platform => self.value(r.platform.as_str(), out),
                Seg::Kind => self.value(&r.kind, out),
                Seg::Id => self.value(&r.id, out),
                Seg::Tag => match ctx.tag.or_else(|| r.tags.first().map(String::as_str)) {
                    Some(t) => self.value(t, out),
                    None => out.push_str(MISSING),
                },
                Seg::Lang => match r.lang.as_deref() {
                    Some(l) => self.value(l, out),
                    None => out.push_str(MISSING),
                },
                Seg::ChatId => match &r.chat {
                    Some(c) => {
                        let _ = write!(out, "{}", c.id);
                    }
                    None => out.push_str(MISSING),
                },
                Seg::AuthorId => match &r.author {
                    Some(a) => self.value(&a.id, out),
                    None => out.push_str(MISSING),
                },
                Seg::Date => {
                    let _ = write!(out, "{}", ctx.at.format("%Y-%m-%d"));
                }
                Seg::Hour => {
                    let _ = write!(out, "{}", ctx.at.format("%H"));
                }
                Seg::Timestamp => out.push(MARK_TIMESTAMP),
                Seg::TimestampUs => out.push(MARK_TIMESTAMP_US),
                Seg::Uuid => out.push(MARK_UUID),
            }
        }
        self.finish(start, out);
    }

    /// Appends the name of a platform alone (no record): record placeholders
    /// render [`MISSING`]. For names fixed per platform (see [`Self::platform_only`]).
    pub fn render_platform(&self, platform: Platform, at: &DateTime<Tz>, out: &mut String) {
        let start = out.len();
        for seg in &self.segs {
            match seg {
                Seg::Lit(l) => out.push_str(l),
                Seg::Strftime(f) => {
                    let _ = write!(out, "{}", at.format(f));
                }
                Seg::Platform => out.push_str(platform.as_str()),
                Seg::Date => {
                    let _ = write!(out, "{}", at.format("%Y-%m-%d"));
                }
                Seg::Hour => {
                    let _ = write!(out, "{}", at.format("%H"));
                }
                Seg::Timestamp => out.push(MARK_TIMESTAMP),
                Seg::TimestampUs => out.push(MARK_TIMESTAMP_US),
                Seg::Uuid => out.push(MARK_UUID),
                Seg::Kind | Seg::Tag | Seg::Lang | Seg::ChatId | Seg::AuthorId | Seg::Id => {
                    out.push_str(MISSING)
                }
            }
        }
        self.finish(start, out);
    }

    /// A record's name as a new `String` (for callers that keep it).
    pub fn render_owned(&self, ctx: &Ctx<'_>) -> String {
        let mut s = String::with_capacity(64);
        self.render(ctx, &mut s);
        s
    }

    /// Appends one value from a record, sanitized for the target.
    fn value(&self, v: &str, out: &mut String) {
        if v.is_empty() {
            out.push_str(MISSING);
            return;
        }
        let v = cut(v, MAX_VALUE_BYTES);
        match self.target {
            Target::Key => out.push_str(v),
            Target::Path => names::path_value(v, out),
            Target::S3Key => names::s3_value(v, out),
            Target::KafkaTopic => names::topic_value(v, out),
            Target::Collection => names::collection_value(v, out),
        }
    }

    /// Whole-name rules: Kafka's length limit and reserved names, MongoDB's
    /// dots and `system.` prefix.
    fn finish(&self, start: usize, out: &mut String) {
        match self.target {
            Target::KafkaTopic => names::topic_name(start, out),
            Target::Collection => names::collection_name(start, out),
            _ => {}
        }
    }
}

/// Fills the per-object marks of an S3 partition string.
pub fn fill_object(partition: &str, at: &DateTime<Tz>, uuid: &str) -> String {
    let mut key = String::with_capacity(partition.len() + 48);
    for c in partition.chars() {
        match c {
            MARK_TIMESTAMP => {
                if at.timezone() == Tz::UTC {
                    let _ = write!(key, "{}", at.format("%Y%m%dT%H%M%S%.3fZ"));
                } else {
                    let _ = write!(key, "{}", at.format("%Y%m%dT%H%M%S%.3f%z"));
                }
            }
            MARK_TIMESTAMP_US => {
                let _ = write!(key, "{}", at.format("%Y%m%d%H%M%S%6f"));
            }
            MARK_UUID => key.push_str(uuid),
            c => key.push(c),
        }
    }
    key
}

/// `v` cut to at most `max` bytes on a character boundary.
fn cut(v: &str, max: usize) -> &str {
    if v.len() <= max {
        return v;
    }
    let mut end = max;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

fn lit(text: &str, target: Target) -> Seg {
    if target.strftime() && text.contains('%') {
        Seg::Strftime(text.into())
    } else {
        Seg::Lit(text.into())
    }
}

fn placeholder(name: &str, text: &str, target: Target) -> Result<Seg, String> {
    let seg = match name {
        "platform" => Seg::Platform,
        "kind" => Seg::Kind,
        "tag" => Seg::Tag,
        "lang" => Seg::Lang,
        "chat.id" => Seg::ChatId,
        "author.id" => Seg::AuthorId,
        "id" => Seg::Id,
        "date" => Seg::Date,
        "hour" => Seg::Hour,
        "timestamp" | "timestamp_us" | "uuid" if !target.object_placeholders() => {
            return Err(format!(
                "`{{{name}}}` in `{text}` names an S3 object and works only in an S3 `key_template`; the placeholders here are {PLACEHOLDERS}"
            ));
        }
        "timestamp" => Seg::Timestamp,
        "timestamp_us" => Seg::TimestampUs,
        "uuid" => Seg::Uuid,
        other => {
            let extra = if target.object_placeholders() {
                format!(", {OBJECT_PLACEHOLDERS}")
            } else {
                String::new()
            };
            return Err(format!(
                "unknown placeholder `{{{other}}}` in `{text}`; the placeholders are {PLACEHOLDERS}{extra}"
            ));
        }
    };
    Ok(seg)
}

/// The time of a record for date parts: its `received_at` in `tz` (now, if
/// that does not parse). Records of one read share `received_at`: `last`
/// keeps the previous answer so a batch parses it about once.
pub fn received_at(
    r: &Record,
    tz: Tz,
    last: &mut Option<(std::sync::Arc<str>, DateTime<Tz>)>,
) -> DateTime<Tz> {
    if let Some((ra, at)) = last
        && std::sync::Arc::ptr_eq(ra, &r.received_at)
    {
        return *at;
    }
    let at = DateTime::parse_from_rfc3339(&r.received_at)
        .map(|t| t.with_timezone(&tz))
        .unwrap_or_else(|_| chrono::Utc::now().with_timezone(&tz));
    *last = Some((r.received_at.clone(), at));
    at
}

/// The copies of a batch a sink writes: `(batch index, tag)`. Without
/// `split_tags` one copy per record with its first tag (`None`); with it, one
/// per tag (a record without tags still gets one copy, its `{tag}` `_unknown`).
pub fn copies<'a>(
    batch: &'a [std::sync::Arc<Record>],
    split_tags: bool,
) -> impl Iterator<Item = (usize, Option<&'a str>)> + 'a {
    batch.iter().enumerate().flat_map(move |(i, r)| {
        let tags: &'a [String] = if split_tags && r.tags.len() > 1 {
            &r.tags
        } else {
            &[]
        };
        let single = tags.is_empty().then_some((i, None));
        single
            .into_iter()
            .chain(tags.iter().map(move |t| (i, Some(t.as_str()))))
    })
}

/// Results gathered per copy, made per record: a record is confirmed only
/// when all its copies are; one rejected copy dead-letters the record, else
/// one failed copy retries it (all its copies are written again).
pub fn merge_copies(out: &mut crate::sinks::RecordResults) {
    out.rejected.sort_by_key(|(i, _)| *i);
    out.rejected.dedup_by_key(|(i, _)| *i);
    out.failed.sort_unstable();
    out.failed.dedup();
    let rejected = &out.rejected;
    out.failed
        .retain(|i| rejected.binary_search_by_key(i, |(j, _)| *j).is_err());
}

/// Checks `split_tags` against the templates it would split by.
pub fn check_split_tags(split_tags: bool, templates: &[&Template]) -> Result<(), String> {
    if split_tags && !templates.iter().any(|t| t.uses_tag()) {
        return Err(
            "is true but no template of this sink uses `{tag}`: every copy would go to the same place"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
