//! The sanitizers behind the name templates (`sinks/template.rs`): one per target, for a value a
//! record puts into a name (a tag, an author id…) and for the whole rendered
//! name. A record's values come from strangers: whatever they hold, the name
//! stays where the operator put it and is one the destination takes.
//!
//! - File paths and S3 keys: no `/`, `\` or look-alike slashes (they would
//!   read as a directory level), no look-alike dots (`．．` reads as `..`), no
//!   control or bidi-control characters (a right-to-left override shows
//!   `gpj.exe` as `exe.jpg`), no `..`, not `.` alone.
//! - Kafka topics: only `[A-Za-z0-9._-]`, no `..`, at most 249 bytes, and
//!   never a name of Kafka's own (`__consumer_offsets`, `__transaction_state`)
//!   or of the tools beside it (`_schemas`, `_confluent…`, `_redpanda…`):
//!   those get [`RESERVED_TOPIC_PREFIX`] in front.
//! - MongoDB collections: no `$`, no control characters, no `..`, not
//!   starting or ending with `.`, not `system.…`.

/// What a placeholder renders as when the record has no such value (or the
/// value is nothing once cleaned).
pub const MISSING: &str = "_unknown";
/// Put in front of a topic name Kafka or its tools keep for themselves.
pub const RESERVED_TOPIC_PREFIX: &str = "_x";
/// Topic names kept by Kafka's tools (exact).
const RESERVED_TOPICS: [&str; 1] = ["_schemas"];
/// Topic name prefixes kept by Kafka (`__consumer_offsets`,
/// `__transaction_state`, Strimzi's `__strimzi…`) and its tools.
const RESERVED_TOPIC_PREFIXES: [&str; 3] = ["__", "_confluent", "_redpanda"];
/// Kafka's longest topic name.
pub const MAX_TOPIC_BYTES: usize = 249;

/// Characters that change the order text is shown in, or show nothing:
/// bidi embeddings, overrides and isolates, the direction marks, the Arabic
/// letter mark, zero-width characters and the byte-order mark.
pub fn is_invisible_control(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{061C}'
        | '\u{180E}'
        | '\u{FEFF}')
}

/// Characters that look like `/` or `\` in a file name.
pub fn is_slash_like(c: char) -> bool {
    matches!(
        c,
        '/' | '\\'
            | '\u{2044}' // fraction slash
            | '\u{2215}' // division slash
            | '\u{2216}' // set minus
            | '\u{2571}' // box drawings light diagonal upper right to lower left
            | '\u{2572}' // box drawings light diagonal upper left to lower right
            | '\u{29F5}' // reverse solidus operator
            | '\u{29F8}' // big solidus
            | '\u{29F9}' // big reverse solidus
            | '\u{FE68}' // small reverse solidus
            | '\u{FF0F}' // fullwidth solidus
            | '\u{FF3C}' // fullwidth reverse solidus
            | '\u{1735}' // philippine single punctuation
    )
}

/// Characters that look like `.` (but are not).
pub fn is_dot_like(c: char) -> bool {
    matches!(
        c,
        '\u{2024}' // one dot leader
            | '\u{2025}' // two dot leader
            | '\u{2026}' // horizontal ellipsis
            | '\u{3002}' // ideographic full stop
            | '\u{FE52}' // small full stop
            | '\u{FF0E}' // fullwidth full stop
            | '\u{FF61}' // halfwidth ideographic full stop
            | '\u{0701}' // syriac supralinear full stop
            | '\u{0702}' // syriac sublinear full stop
            | '\u{A4F8}' // lisu letter tone mya ti
            | '\u{10A50}' // kharoshthi punctuation dot
    )
}

/// Appends `v` with every character `keep` refuses as `_`, no `..` (the
/// second dot becomes `_`), invisible controls dropped, and never `.` alone
/// nor nothing ([`MISSING`] then).
fn push_value(v: &str, out: &mut String, keep: impl Fn(char) -> bool) {
    let start = out.len();
    let mut prev_dot = false;
    for c in v.chars() {
        if is_invisible_control(c) {
            continue;
        }
        let c = if !keep(c) || (c == '.' && prev_dot) {
            '_'
        } else {
            c
        };
        prev_dot = c == '.';
        out.push(c);
    }
    match &out[start..] {
        "" => out.push_str(MISSING),
        "." => out.replace_range(start.., "_"),
        _ => {}
    }
}

/// A value in a file path: one path component's worth, never more, and
/// never starting with a dot (a value could otherwise make a hidden file).
pub fn path_value(v: &str, out: &mut String) {
    let start = out.len();
    push_value(v, out, |c| {
        !is_slash_like(c) && !is_dot_like(c) && !c.is_control()
    });
    if out[start..].starts_with('.') {
        out.replace_range(start..start + 1, "_");
    }
}

/// A value in an S3 object key: the file path rules (keys are read as paths
/// by every tool that syncs a bucket to a disk).
pub fn s3_value(v: &str, out: &mut String) {
    path_value(v, out);
}

/// A value in a Kafka topic name: Kafka's characters only.
pub fn topic_value(v: &str, out: &mut String) {
    push_value(v, out, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
    });
}

/// Whether a topic name is one Kafka or its tools keep for themselves.
pub fn is_reserved_topic(name: &str) -> bool {
    RESERVED_TOPICS.contains(&name) || RESERVED_TOPIC_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The whole topic name from `start` in `out`: not a reserved name (prefixed
/// with [`RESERVED_TOPIC_PREFIX`]), at most [`MAX_TOPIC_BYTES`]. Only ASCII
/// is left in a topic by then (values were cleaned, literals checked).
pub fn topic_name(start: usize, out: &mut String) {
    if is_reserved_topic(&out[start..]) {
        out.insert_str(start, RESERVED_TOPIC_PREFIX);
    }
    if out.len() - start > MAX_TOPIC_BYTES {
        let mut end = start + MAX_TOPIC_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
}

/// A value in a MongoDB collection name: no `$` and no control characters.
pub fn collection_value(v: &str, out: &mut String) {
    out.extend(
        v.chars()
            .map(|c| if c == '$' || c.is_control() { '_' } else { c }),
    );
}

/// The whole collection name from `start` in `out`: no `..` (the second dot
/// becomes `_`), not starting or ending with `.` (`_` instead), not empty,
/// not `system.…` (a `_` in front).
pub fn collection_name(start: usize, out: &mut String) {
    let name = &out[start..];
    if name.is_empty() {
        out.push_str(MISSING);
        return;
    }
    if name.starts_with('.') || name.ends_with('.') || name.contains("..") {
        let mut fixed = String::with_capacity(name.len());
        let mut prev_dot = true; // a leading dot becomes `_`
        for c in name.chars() {
            let c = if c == '.' && prev_dot { '_' } else { c };
            prev_dot = c == '.';
            fixed.push(c);
        }
        if fixed.ends_with('.') {
            fixed.pop();
            fixed.push('_');
        }
        out.replace_range(start.., &fixed);
    }
    if out[start..].starts_with("system.") {
        out.insert(start, '_');
    }
}
