//! Property tests for the parsers that read outside input (issue 12): the line
//! splitter at any chunk boundary, the X and Telegram normalizers and both
//! webhook body parsers on arbitrary JSON and bytes, and the config loader on
//! arbitrary TOML and bytes.
//!
//! Each property states one promise: no input panics; every valid item comes
//! out exactly once as one record with the right id; every invalid one is an
//! error carrying a reason (which the callers dead-letter). The case count is
//! proptest's default (256), `PROPTEST_CASES` overrides it.

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use ingest::cli::RunArgs;
use ingest::config::{ConfigError, LoadedConfig, ResolveError, Settings};
use ingest::record::{NormalizeOptions, Normalized, Record, RunInfo, trim_line};
use ingest::sources::lines::{Line, LineSplitter, OVERSIZED_PREFIX_BYTES};
use ingest::sources::telegram::{MESSAGE_KINDS, normalize_update, update_id, update_to_record};
use ingest::sources::twitter::normalize_line;
use ingest::sources::twitter::webhooks::receive::body_to_records;
use ingest::sources::{SourceContext, SourceCounters};
use ingest::state::DeadLetters;

// ---------------------------------------------------------------------------
// Shared strategies
// ---------------------------------------------------------------------------

/// Text of any kind: arbitrary code points (controls, RTL, astral, U+0000),
/// numbers as text, and a few hand-picked troublemakers.
fn arb_text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        2 => "\\PC{0,40}",
        1 => Just(String::new()),
        1 => "[0-9]{1,40}",
        1 => Just("مرحبا بالعالم 𝕏 👩\u{200d}👩\u{200d}👧 שלום \u{0}\u{feff}\\\"\r\n\t".to_owned()),
        1 => "[a-z]{1,3}".prop_map(|s| s.repeat(2000)),
    ]
    .boxed()
}

/// JSON numbers of every range serde_json can hold.
fn arb_number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0)].prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
    ]
    .boxed()
}

/// Keys the parsers look for, so arbitrary JSON reaches their inner paths.
const KNOWN_KEYS: &[&str] = &[
    "data",
    "errors",
    "includes",
    "users",
    "matching_rules",
    "id",
    "id_str",
    "tag",
    "text",
    "note_tweet",
    "author_id",
    "update_id",
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "message_id",
    "chat",
    "from",
    "sender_chat",
    "date",
    "edit_date",
    "type",
    "for_user_id",
    "tweet_create_events",
    "favorite_events",
    "user",
    "apps",
];

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => arb_text(),
    ]
    .boxed()
}

/// Any JSON value, nested a few levels deep.
fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A JSON object with arbitrary members: what most lines look like.
fn arb_json_object() -> BoxedStrategy<Value> {
    prop::collection::btree_map(arb_key(), arb_json(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
        .boxed()
}

/// Writes JSON with every non-ASCII character as a `\u` escape (surrogate
/// pairs above U+FFFF), as some producers do; keys are escaped too.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// How a value is put on the wire.
#[derive(Debug, Clone, Copy)]
enum Wire {
    Plain,
    Escaped,
    Pretty,
    /// With the stream's `\r\n` and surrounding blanks.
    CrLf,
}

fn arb_wire() -> BoxedStrategy<Wire> {
    prop_oneof![
        Just(Wire::Plain),
        Just(Wire::Escaped),
        Just(Wire::Pretty),
        Just(Wire::CrLf)
    ]
    .boxed()
}

fn to_wire(v: &Value, wire: Wire) -> Vec<u8> {
    match wire {
        Wire::Plain => serde_json::to_vec(v).unwrap(),
        Wire::Escaped => escape_non_ascii(&v.to_string()).into_bytes(),
        Wire::Pretty => serde_json::to_vec_pretty(v).unwrap(),
        Wire::CrLf => format!("  {v}\r\n").into_bytes(),
    }
}

/// Adds `key` to `obj` as the value, as `null`, or not at all.
fn put(obj: &mut Map<String, Value>, key: &str, v: Option<Option<Value>>) {
    match v {
        None => {}
        Some(None) => {
            obj.insert(key.to_owned(), Value::Null);
        }
        Some(Some(v)) => {
            obj.insert(key.to_owned(), v);
        }
    }
}

/// An optional field: absent, `null`, or a value.
fn field<S: Strategy>(s: S) -> impl Strategy<Value = Option<Option<S::Value>>>
where
    S::Value: Clone + std::fmt::Debug,
{
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(None)),
        2 => s.prop_map(|v| Some(Some(v))),
    ]
}

fn present<T: Clone>(f: &Option<Option<T>>) -> Option<T> {
    f.clone().flatten()
}

/// Unknown members a newer API version might add (never a key the parser reads).
fn arb_extras(reserved: &'static [&'static str]) -> BoxedStrategy<Map<String, Value>> {
    prop::collection::btree_map(
        prop_oneof!["[a-z_]{1,16}", arb_text()]
            .prop_filter("not a field the parser reads", move |k| {
                !reserved.contains(&k.as_str())
            }),
        arb_json(),
        0..3,
    )
    .prop_map(|m| m.into_iter().collect())
    .boxed()
}

fn opts(keep_raw: bool, transliterate: bool) -> NormalizeOptions {
    NormalizeOptions {
        keep_raw,
        transliterate,
        run: Arc::new(RunInfo::new(None)),
        media: false,
    }
}

fn ctx(keep_raw: bool) -> SourceContext {
    let run = Arc::new(RunInfo::new(None));
    // Never written to: the parsers under test only return errors.
    let state_dir = std::env::temp_dir().join("ingest-proptests-unused");
    SourceContext {
        normalize: NormalizeOptions {
            keep_raw,
            transliterate: false,
            run: run.clone(),
            media: false,
        },
        dead_letters: DeadLetters::new(&state_dir, &run.id),
        state_dir,
        counters: Arc::new(SourceCounters::default()),
    }
}

fn record_of(n: Normalized) -> Option<Record> {
    match n {
        Normalized::Record(r) => Some(*r),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// The line splitter
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Complete(Vec<u8>),
    Oversized { len: usize, prefix: Vec<u8> },
}

/// What the splitter must produce for one line (without its `\n`).
fn expected_line(line: &[u8], max: usize) -> Out {
    if line.len() <= max {
        Out::Complete(line.to_vec())
    } else {
        Out::Oversized {
            len: line.len(),
            prefix: line[..OVERSIZED_PREFIX_BYTES.min(line.len())].to_vec(),
        }
    }
}

fn shapes(out: &[Out]) -> Vec<(&'static str, usize, usize)> {
    out.iter()
        .map(|o| match o {
            Out::Complete(l) => ("complete", l.len(), 0),
            Out::Oversized { len, prefix } => ("oversized", *len, prefix.len()),
        })
        .collect()
}

/// One line of a stream: keep-alives, blanks, JSON-ish text, binary, long lines.
fn arb_stream_line() -> BoxedStrategy<Vec<u8>> {
    let no_newline = any::<u8>().prop_filter("no newline", |b| *b != b'\n');
    prop_oneof![
        2 => Just(b"\r".to_vec()),
        1 => Just(Vec::new()),
        3 => (arb_text(), any::<bool>()).prop_map(|(t, cr)| {
            let mut v = json!({"data": {"id": "1", "text": t}}).to_string().into_bytes();
            if cr {
                v.push(b'\r');
            }
            v
        }),
        2 => prop::collection::vec(no_newline.clone(), 0..200),
        1 => (no_newline.clone(), 900..2600usize).prop_map(|(b, n)| vec![b; n]),
        1 => prop::collection::vec(no_newline, 1000..2600),
    ]
    .boxed()
}

/// Lines, whether the input ends in a newline, the line cap, and where to cut.
fn arb_split_case() -> BoxedStrategy<(Vec<u8>, usize, Vec<usize>)> {
    (
        prop::collection::vec(arb_stream_line(), 0..12),
        any::<bool>(),
        prop_oneof![1..64usize, 1000..1600usize, Just(1usize << 20)],
        prop::collection::vec(any::<prop::sample::Index>(), 0..24),
    )
        .prop_map(|(lines, terminated, max, cuts)| {
            let mut input = lines.join(&b'\n');
            if terminated && !lines.is_empty() {
                input.push(b'\n');
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            cuts.sort_unstable();
            (input, max, cuts)
        })
        .boxed()
}

proptest! {
    /// Whatever the chunking, every line comes out once, whole and in order;
    /// a line over the cap comes out as `Oversized` with its true length and
    /// its first `OVERSIZED_PREFIX_BYTES` bytes, never as a line; a last line
    /// without a newline comes out at `finish`. The partial length is right
    /// after every chunk.
    #[test]
    fn line_splitter_emits_every_line_once_at_any_chunk_boundary(
        (input, max, cuts) in arb_split_case()
    ) {
        let mut segments: Vec<&[u8]> = input.split(|b| *b == b'\n').collect();
        let tail = segments.pop().unwrap_or_default();
        let mut expected: Vec<Out> = segments.iter().map(|l| expected_line(l, max)).collect();
        if !tail.is_empty() {
            expected.push(expected_line(tail, max));
        }

        let mut splitter = LineSplitter::new(max);
        let mut got = Vec::new();
        let mut emit = |l: Line<'_>| got.push(match l {
            Line::Complete(b) => Out::Complete(b.to_vec()),
            Line::Oversized { len, prefix } => Out::Oversized { len, prefix: prefix.to_vec() },
        });
        let mut start = 0;
        for end in cuts.into_iter().chain([input.len()]) {
            splitter.push(&input[start..end], &mut emit);
            let fed = &input[..end];
            let partial = fed.len() - fed.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            prop_assert_eq!(splitter.partial_len(), partial);
            start = end;
        }
        let had_partial = splitter.finish(&mut emit);
        prop_assert_eq!(had_partial, !tail.is_empty());
        // Shapes first (kind, length, prefix length): readable when they differ.
        prop_assert_eq!(shapes(&got), shapes(&expected));
        prop_assert_eq!(got, expected);
    }
}

// ---------------------------------------------------------------------------
// The X stream normalizer
// ---------------------------------------------------------------------------

/// A stream line shaped as X sends it, with arbitrary field values, and what
/// the record must say.
#[derive(Debug, Clone)]
struct TweetCase {
    line: Value,
    id: String,
    text: Option<String>,
    author_id: Option<String>,
    author_name: Option<String>,
    rule_ids: Vec<String>,
    tags: Vec<String>,
}

fn arb_tweet_id() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<u64>().prop_map(|n| n.to_string()),
        1 => "[0-9]{19,40}",
        1 => arb_text(),
    ]
    .boxed()
}

fn arb_rule() -> BoxedStrategy<(Value, String, Option<Option<String>>)> {
    (
        prop_oneof![
            arb_text().prop_map(|s| (Value::from(s.clone()), s)),
            any::<u64>().prop_map(|n| (Value::from(n), n.to_string())),
        ],
        field(arb_text()),
    )
        .prop_map(|((id, id_text), tag)| {
            let mut r = Map::new();
            r.insert("id".into(), id);
            put(&mut r, "tag", tag.clone().map(|t| t.map(Value::from)));
            (Value::Object(r), id_text, tag)
        })
        .boxed()
}

fn arb_tweet_case() -> BoxedStrategy<TweetCase> {
    let user = (
        prop_oneof![arb_tweet_id(), Just("42".to_owned())],
        field(arb_text()),
        field(arb_text()),
    );
    (
        (
            arb_tweet_id(),
            field(arb_text()),
            field(field(arb_text())),
            field(prop_oneof![arb_tweet_id(), Just("42".to_owned())]),
            field(arb_text()),
            field(arb_text()),
            field(arb_text()),
            arb_extras(&[
                "id",
                "text",
                "note_tweet",
                "author_id",
                "created_at",
                "lang",
                "source",
                "conversation_id",
            ]),
        ),
        field(prop::collection::vec(user, 0..4)),
        prop::option::of(prop::collection::vec(arb_rule(), 0..4)),
        prop::option::of(arb_json()),
        arb_extras(&["data", "includes", "matching_rules", "errors"]),
    )
        .prop_map(
            |(
                (id, text, note, author_id, created_at, lang, conversation_id, data_extras),
                users,
                rules,
                errors,
                extras,
            )| {
                let mut data = data_extras;
                data.insert("id".into(), Value::from(id.clone()));
                put(&mut data, "text", text.clone().map(|t| t.map(Value::from)));
                let note_text = present(&note).and_then(|n| present(&n));
                put(
                    &mut data,
                    "note_tweet",
                    note.map(|n| {
                        n.map(|t| {
                            let mut m = Map::new();
                            put(&mut m, "text", t.map(|t| t.map(Value::from)));
                            Value::Object(m)
                        })
                    }),
                );
                put(
                    &mut data,
                    "author_id",
                    author_id.clone().map(|a| a.map(Value::from)),
                );
                put(
                    &mut data,
                    "created_at",
                    created_at.map(|a| a.map(Value::from)),
                );
                put(&mut data, "lang", lang.map(|a| a.map(Value::from)));
                put(
                    &mut data,
                    "conversation_id",
                    conversation_id.map(|a| a.map(Value::from)),
                );
                let mut line = extras;
                line.insert("data".into(), Value::Object(data));
                let author_id = present(&author_id);
                let user_list = present(&users).unwrap_or_default();
                let author_name = author_id.as_ref().and_then(|a| {
                    user_list
                        .iter()
                        .find(|(uid, _, _)| uid == a)
                        .and_then(|(_, name, _)| present(name))
                });
                if let Some(users) = users {
                    let users = users.map(|list| {
                        let list: Vec<Value> = list
                            .into_iter()
                            .map(|(uid, name, username)| {
                                let mut u = Map::new();
                                u.insert("id".into(), Value::from(uid));
                                put(&mut u, "name", name.map(|n| n.map(Value::from)));
                                put(&mut u, "username", username.map(|n| n.map(Value::from)));
                                Value::Object(u)
                            })
                            .collect();
                        json!({ "users": list })
                    });
                    put(&mut line, "includes", Some(users));
                }
                let rules = rules.unwrap_or_default();
                if !rules.is_empty() {
                    line.insert(
                        "matching_rules".into(),
                        Value::Array(rules.iter().map(|r| r.0.clone()).collect()),
                    );
                }
                if let Some(e) = errors {
                    line.insert("errors".into(), e);
                }
                TweetCase {
                    line: Value::Object(line),
                    id,
                    text: note_text.or_else(|| present(&text)),
                    author_id,
                    author_name,
                    rule_ids: rules.iter().map(|r| r.1.clone()).collect(),
                    tags: rules.iter().filter_map(|r| present(&r.2)).collect(),
                }
            },
        )
        .boxed()
}

const BAD_UTF8_MARK: &str = "@@not-utf8@@";

/// Ways a stream line can be unusable: each must be an error.
fn arb_bad_tweet_line() -> BoxedStrategy<Vec<u8>> {
    let id_of_wrong_type = prop_oneof![
        arb_number(),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_json_object(),
        Just(json!([])),
    ];
    prop_oneof![
        // `data.id` missing or not a string.
        (arb_tweet_case(), prop::option::of(id_of_wrong_type)).prop_map(|(c, id)| {
            let mut line = c.line;
            match id {
                Some(id) => line["data"]["id"] = id,
                None => {
                    line["data"].as_object_mut().unwrap().remove("id");
                }
            }
            line.to_string().into_bytes()
        }),
        // Neither `data` nor `errors`.
        arb_extras(&["data", "errors"]).prop_map(|m| Value::Object(m).to_string().into_bytes()),
        // Not an object at the top or in `data`.
        prop_oneof![
            arb_text().prop_map(Value::from),
            arb_number(),
            Just(json!([1, 2])),
            any::<bool>().prop_map(Value::Bool),
        ]
        .prop_flat_map(|v| prop_oneof![
            Just(v.to_string().into_bytes()),
            Just(json!({ "data": v }).to_string().into_bytes()),
        ]),
        // A rule id that is neither a string nor an unsigned number.
        (
            arb_tweet_case(),
            prop_oneof![
                (i64::MIN..0).prop_map(Value::from),
                Just(json!(1.5)),
                Just(Value::Null),
                Just(json!({})),
            ]
        )
            .prop_map(|(c, id)| {
                let mut line = c.line;
                line["matching_rules"] = json!([{ "id": id }]);
                line.to_string().into_bytes()
            }),
        // A valid line cut short (a dropped connection).
        (arb_tweet_case(), any::<prop::sample::Index>()).prop_map(|(c, at)| {
            let s = c.line.to_string().into_bytes();
            let cut = 1 + at.index(s.len() - 1);
            s[..cut].to_vec()
        }),
        // Invalid UTF-8 inside a string.
        arb_tweet_case().prop_map(|c| {
            let mut line = c.line;
            line["data"]["id"] = Value::from(BAD_UTF8_MARK);
            let s = line.to_string();
            let at = s.find(BAD_UTF8_MARK).unwrap();
            let mut b = s.into_bytes();
            b.splice(at..at + BAD_UTF8_MARK.len(), [b'a', 0xff, 0xfe]);
            b
        }),
    ]
    .boxed()
}

proptest! {
    /// No input panics. A record's id is `twitter:` + the line's `data.id`;
    /// `Nothing` only for blank lines; `Control` only for an `errors` line
    /// without `data`.
    #[test]
    fn x_normalizer_never_panics_on_arbitrary_json(
        v in prop_oneof![arb_json_object(), arb_json()],
        wire in arb_wire(),
        keep_raw in any::<bool>(),
        transliterate in any::<bool>(),
    ) {
        let line = to_wire(&v, wire);
        match normalize_line(&line, &"t".into(), &opts(keep_raw, transliterate)) {
            Ok(Normalized::Record(r)) => {
                // Only from an object with a string `id` (never serde's
                // positional array form for structs).
                let want = v["data"]["id"].as_str().map(|id| format!("twitter:{id}"));
                prop_assert_eq!(Some(&r.id), want.as_ref());
                prop_assert_eq!(r.raw.is_some(), keep_raw);
            }
            Ok(Normalized::Control(_)) => {
                prop_assert!(v["data"].is_null() && !v["errors"].is_null(), "{}", v);
            }
            Ok(Normalized::Nothing) => prop_assert!(false, "a JSON value is not blank: {}", v),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Arbitrary bytes: no panic, and an error always says why.
    #[test]
    fn x_normalizer_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        keep_raw in any::<bool>(),
    ) {
        if let Err(e) = normalize_line(&bytes, &"t".into(), &opts(keep_raw, true)) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// A line shaped as X sends it gives exactly one record with the right id,
    /// text, author and rules, whatever the values (unicode, huge ids, nulls,
    /// unknown fields) and however it is written.
    #[test]
    fn x_normalizer_turns_every_valid_line_into_one_record(
        case in arb_tweet_case(),
        wire in arb_wire(),
        keep_raw in any::<bool>(),
        transliterate in any::<bool>(),
    ) {
        let line = to_wire(&case.line, wire);
        let out = normalize_line(&line, &"t".into(), &opts(keep_raw, transliterate));
        let r = match out {
            Ok(n) => record_of(n),
            Err(e) => return Err(TestCaseError::fail(format!("{e} for {}", case.line))),
        };
        prop_assert!(r.is_some(), "no record for {}", case.line);
        let r = r.unwrap();
        prop_assert_eq!(&r.id, &format!("twitter:{}", case.id));
        prop_assert_eq!(r.refs.tweet_id.as_ref(), Some(&case.id));
        prop_assert_eq!(&r.text, &case.text);
        prop_assert_eq!(r.author.as_ref().map(|a| &a.id), case.author_id.as_ref());
        prop_assert_eq!(r.author.as_ref().and_then(|a| a.name.as_ref()), case.author_name.as_ref());
        let rule_ids: Vec<&String> = r.matching_rules.iter().map(|m| &m.id).collect();
        prop_assert_eq!(rule_ids, case.rule_ids.iter().collect::<Vec<_>>());
        // Tags: the rules' tags, an empty one (an untagged rule) left out, each once.
        let mut tags: Vec<String> = Vec::new();
        for t in case.tags.iter().filter(|t| !t.is_empty()) {
            if !tags.contains(t) {
                tags.push(t.clone());
            }
        }
        prop_assert_eq!(&r.tags, &tags);
        prop_assert_eq!(r.text_ascii.is_some(), transliterate && case.text.is_some());
        if keep_raw {
            prop_assert_eq!(r.raw.as_ref().unwrap().get().as_bytes(), trim_line(&line));
        }
    }

    /// Every unusable line is an error with a reason, never a record.
    #[test]
    fn x_normalizer_rejects_invalid_lines_with_a_reason(
        line in arb_bad_tweet_line(),
        keep_raw in any::<bool>(),
    ) {
        match normalize_line(&line, &"t".into(), &opts(keep_raw, false)) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(n) => prop_assert!(false, "{:?} gave {:?}", String::from_utf8_lossy(&line), n),
        }
    }
}

// ---------------------------------------------------------------------------
// The Telegram normalizer and webhook parsing
// ---------------------------------------------------------------------------

/// A Telegram `Update` with arbitrary values, and what its record must say.
#[derive(Debug, Clone)]
struct UpdateCase {
    line: Value,
    update_id: i64,
    kind: String,
    id: String,
    text: Option<String>,
    chat_id: Option<i64>,
    author_id: Option<String>,
}

fn arb_i64() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => any::<i64>(),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)],
        1 => -1_000_000_000_000i64..-1_000_000_000_000 + 1000,
    ]
    .boxed()
}

fn arb_tg_user() -> BoxedStrategy<(Value, i64)> {
    (
        arb_i64(),
        field(arb_text()),
        field(arb_text()),
        field(arb_text()),
        any::<bool>(),
    )
        .prop_map(|(id, first, last, username, is_bot)| {
            let mut u = Map::new();
            u.insert("id".into(), id.into());
            u.insert("is_bot".into(), is_bot.into());
            put(&mut u, "first_name", first.map(|v| v.map(Value::from)));
            put(&mut u, "last_name", last.map(|v| v.map(Value::from)));
            put(&mut u, "username", username.map(|v| v.map(Value::from)));
            (Value::Object(u), id)
        })
        .boxed()
}

fn arb_tg_chat() -> BoxedStrategy<(Value, i64)> {
    (
        arb_i64(),
        field(prop_oneof![
            prop::sample::select(&["private", "group", "supergroup", "channel"][..])
                .prop_map(str::to_owned),
            arb_text(),
        ]),
        field(arb_text()),
        field(arb_text()),
        field(arb_text()),
    )
        .prop_map(|(id, kind, title, username, first)| {
            let mut c = Map::new();
            c.insert("id".into(), id.into());
            put(&mut c, "type", kind.map(|v| v.map(Value::from)));
            put(&mut c, "title", title.map(|v| v.map(Value::from)));
            put(&mut c, "username", username.map(|v| v.map(Value::from)));
            put(&mut c, "first_name", first.map(|v| v.map(Value::from)));
            (Value::Object(c), id)
        })
        .boxed()
}

fn arb_message_update() -> BoxedStrategy<UpdateCase> {
    (
        (
            arb_i64(),
            prop::sample::select(&MESSAGE_KINDS[..]),
            arb_i64(),
            arb_tg_chat(),
            field(arb_i64()),
            field(arb_i64()),
        ),
        (
            field(arb_text()),
            field(arb_text()),
            field(arb_tg_user()),
            field(arb_tg_chat()),
            arb_extras(&[
                "message_id",
                "date",
                "edit_date",
                "text",
                "caption",
                "from",
                "sender_chat",
                "chat",
            ]),
            arb_extras(&[
                "update_id",
                "message",
                "edited_message",
                "channel_post",
                "edited_channel_post",
            ]),
        ),
    )
        .prop_map(
            |(
                (update_id, kind, message_id, (chat, chat_id), date, edit_date),
                (text, caption, from, sender_chat, msg_extras, extras),
            )| {
                let mut m = msg_extras;
                m.insert("message_id".into(), message_id.into());
                m.insert("chat".into(), chat);
                put(&mut m, "date", date.map(|v| v.map(Value::from)));
                put(&mut m, "edit_date", edit_date.map(|v| v.map(Value::from)));
                put(&mut m, "text", text.clone().map(|v| v.map(Value::from)));
                put(
                    &mut m,
                    "caption",
                    caption.clone().map(|v| v.map(Value::from)),
                );
                put(&mut m, "from", from.clone().map(|v| v.map(|u| u.0)));
                put(
                    &mut m,
                    "sender_chat",
                    sender_chat.clone().map(|v| v.map(|c| c.0)),
                );
                let mut line = extras;
                line.insert("update_id".into(), update_id.into());
                line.insert(kind.to_owned(), Value::Object(m));
                let id = match (present(&edit_date), kind.starts_with("edited_")) {
                    (Some(e), _) => format!("telegram:{chat_id}:{message_id}:{e}"),
                    // An edit without its date keeps apart by its update id.
                    (None, true) => format!("telegram:{chat_id}:{message_id}:u{update_id}"),
                    (None, false) => format!("telegram:{chat_id}:{message_id}"),
                };
                let author_id = present(&sender_chat)
                    .map(|c| c.1)
                    .or(present(&from).map(|u| u.1))
                    .map(|a| a.to_string());
                UpdateCase {
                    line: Value::Object(line),
                    update_id,
                    kind: kind.to_owned(),
                    id,
                    text: present(&text).or(present(&caption)),
                    chat_id: Some(chat_id),
                    author_id,
                }
            },
        )
        .boxed()
}

/// Any other update type: one payload field of any name and any value.
fn arb_other_update() -> BoxedStrategy<UpdateCase> {
    (
        arb_i64(),
        prop_oneof![
            prop::sample::select(
                &[
                    "callback_query",
                    "message_reaction",
                    "chat_member",
                    "poll",
                    "inline_query",
                    "my_chat_member",
                ][..]
            )
            .prop_map(str::to_owned),
            arb_text(),
        ]
        .prop_filter("a payload name", |k| {
            k != "update_id" && !MESSAGE_KINDS.contains(&k.as_str())
        }),
        prop_oneof![
            arb_json(),
            (arb_tg_user(), arb_tg_chat(), field(arb_i64())).prop_map(|(u, c, d)| {
                let mut m = Map::new();
                m.insert("from".into(), u.0);
                m.insert("chat".into(), c.0);
                put(&mut m, "date", d.map(|v| v.map(Value::from)));
                Value::Object(m)
            }),
        ],
    )
        .prop_map(|(update_id, kind, payload)| {
            let line = json!({ "update_id": update_id, kind.clone(): payload });
            UpdateCase {
                line,
                update_id,
                id: format!("telegram:update:{update_id}"),
                kind,
                text: None,
                chat_id: None,
                author_id: None,
            }
        })
        .boxed()
}

fn arb_update_case() -> BoxedStrategy<UpdateCase> {
    prop_oneof![3 => arb_message_update(), 1 => arb_other_update()].boxed()
}

/// Ways an update can be unusable: each must be an error.
fn arb_bad_update() -> BoxedStrategy<Vec<u8>> {
    let not_an_i64 = prop_oneof![
        arb_text().prop_map(Value::from),
        Just(json!(1.5)),
        (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::from),
        Just(Value::Null),
        Just(json!([])),
        Just(json!({})),
    ];
    prop_oneof![
        // `update_id` missing or not an i64.
        (arb_update_case(), prop::option::of(not_an_i64.clone())).prop_map(|(c, id)| {
            let mut line = c.line;
            match id {
                Some(id) => line["update_id"] = id,
                None => {
                    line.as_object_mut().unwrap().remove("update_id");
                }
            }
            line.to_string().into_bytes()
        }),
        // No payload besides `update_id`.
        arb_i64().prop_map(|id| json!({ "update_id": id }).to_string().into_bytes()),
        // A message without `message_id` or `chat`, or with one of the wrong type.
        (
            arb_message_update(),
            prop::sample::select(&["message_id", "chat"][..]),
            prop::option::of(not_an_i64),
        )
            .prop_map(|(c, key, v)| {
                let mut line = c.line;
                let msg = line[c.kind.as_str()].as_object_mut().unwrap();
                match v {
                    Some(v) => {
                        msg.insert(key.into(), v);
                    }
                    None => {
                        msg.remove(key);
                    }
                }
                line.to_string().into_bytes()
            }),
        // A message payload that is not an object.
        (
            arb_i64(),
            prop::sample::select(&MESSAGE_KINDS[..]),
            prop_oneof![
                arb_text().prop_map(Value::from),
                arb_number(),
                Just(Value::Null),
                Just(json!([])),
            ]
        )
            .prop_map(|(id, kind, v)| json!({ "update_id": id, kind: v }).to_string().into_bytes()),
        // Not an object at all.
        prop_oneof![
            arb_text().prop_map(Value::from),
            arb_number(),
            Just(json!([{"update_id": 1}]))
        ]
        .prop_map(|v| v.to_string().into_bytes()),
        // Cut short.
        (arb_update_case(), any::<prop::sample::Index>()).prop_map(|(c, at)| {
            let s = c.line.to_string().into_bytes();
            let cut = 1 + at.index(s.len() - 1);
            s[..cut].to_vec()
        }),
    ]
    .boxed()
}

proptest! {
    /// No input panics; a record carries the line's `update_id`.
    #[test]
    fn telegram_normalizer_never_panics_on_arbitrary_json(
        v in prop_oneof![arb_json_object(), arb_json()],
        wire in arb_wire(),
        keep_raw in any::<bool>(),
    ) {
        let line = to_wire(&v, wire);
        match normalize_update(&line, &"t".into(), &opts(keep_raw, true)) {
            Ok(Normalized::Record(r)) => {
                prop_assert_eq!(r.refs.update_id, v["update_id"].as_i64());
                if MESSAGE_KINDS.contains(&r.kind.as_ref()) {
                    // A message record only from a message object with a chat object.
                    let msg = &v[r.kind.as_ref()];
                    let want = format!("telegram:{}:{}", msg["chat"]["id"], msg["message_id"]);
                    prop_assert!(r.id.starts_with(&want), "{} for {}", r.id, v);
                } else {
                    prop_assert_eq!(&r.id, &format!("telegram:update:{}", r.refs.update_id.unwrap()));
                }
            }
            Ok(other) => prop_assert!(false, "{:?} for {}", other, v),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Arbitrary bytes: no panic, and an error always says why.
    #[test]
    fn telegram_normalizer_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = update_id(&bytes);
        if let Err(e) = normalize_update(&bytes, &"t".into(), &opts(true, true)) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// An update shaped as Telegram sends it gives exactly one record with the
    /// right id, kind, text, chat and author, whatever the values.
    #[test]
    fn telegram_normalizer_turns_every_valid_update_into_one_record(
        case in arb_update_case(),
        wire in arb_wire(),
        keep_raw in any::<bool>(),
        transliterate in any::<bool>(),
    ) {
        let line = to_wire(&case.line, wire);
        let r = match normalize_update(&line, &"t".into(), &opts(keep_raw, transliterate)) {
            Ok(n) => record_of(n),
            Err(e) => return Err(TestCaseError::fail(format!("{e} for {}", case.line))),
        };
        prop_assert!(r.is_some(), "no record for {}", case.line);
        let r = r.unwrap();
        prop_assert_eq!(&r.id, &case.id);
        prop_assert_eq!(r.kind.as_ref(), case.kind.as_str());
        prop_assert_eq!(r.refs.update_id, Some(case.update_id));
        prop_assert_eq!(&r.text, &case.text);
        if case.chat_id.is_some() {
            prop_assert_eq!(r.chat.as_ref().map(|c| c.id), case.chat_id);
            prop_assert_eq!(r.author.as_ref().map(|a| &a.id), case.author_id.as_ref());
        }
        if keep_raw {
            prop_assert_eq!(r.raw.as_ref().unwrap().get().as_bytes(), trim_line(&line));
        }
    }

    /// Every unusable update is an error with a reason, never a record.
    #[test]
    fn telegram_normalizer_rejects_invalid_updates_with_a_reason(line in arb_bad_update()) {
        match normalize_update(&line, &"t".into(), &opts(true, false)) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(n) => prop_assert!(false, "{:?} gave {:?}", String::from_utf8_lossy(&line), n),
        }
    }

    /// The webhook's two steps on any body: `update_id` then `update_to_record`.
    /// No panic; a record has the `update_id` the webhook keyed it by; the chat
    /// filter keeps exactly the listed chats; an error has a reason.
    #[test]
    fn telegram_webhook_parsing_never_panics_and_keys_records_by_update_id(
        body in prop_oneof![
            2 => (arb_update_case(), arb_wire()).prop_map(|(c, w)| to_wire(&c.line, w)),
            1 => arb_bad_update(),
            2 => (arb_json_object(), arb_wire()).prop_map(|(v, w)| to_wire(&v, w)),
            1 => prop::collection::vec(any::<u8>(), 0..256),
        ],
        chats in prop::collection::vec(arb_i64(), 0..3),
    ) {
        let ctx = ctx(true);
        let Some(id) = update_id(&body) else {
            // Dead-lettered as "not a Telegram update (no update_id)".
            return Ok(());
        };
        match update_to_record(&body, &"t".into(), &ctx, &chats) {
            Ok(Some(r)) => {
                prop_assert_eq!(r.refs.update_id, Some(id));
                let chat = r.chat.as_ref().map(|c| c.id);
                prop_assert!(chats.is_empty() || chat.is_some_and(|c| chats.contains(&c)));
            }
            Ok(None) => {
                prop_assert!(!chats.is_empty(), "no record and no error without a filter");
                let r = record_of(normalize_update(&body, &"t".into(), &ctx.normalize).unwrap());
                let chat = r.and_then(|r| r.chat).map(|c| c.id);
                prop_assert!(!chat.is_some_and(|c| chats.contains(&c)));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------
// The X Account Activity webhook body
// ---------------------------------------------------------------------------

/// An Account Activity body and the record ids it must give, in order.
#[derive(Debug, Clone)]
struct ActivityCase {
    body: Value,
    /// Each id, and whether it is a fingerprint of the event's bytes as sent
    /// (an event without `id`), which only holds for compact JSON.
    ids: Vec<(String, bool)>,
}

fn arb_v1_tweet() -> BoxedStrategy<(Value, String)> {
    (
        arb_tweet_id(),
        field(arb_text()),
        field(arb_text()),
        field(field(arb_text())),
        field(prop_oneof![
            Just("Wed Oct 10 20:19:24 +0000 2018".to_owned()),
            arb_text()
        ]),
        field((arb_tweet_id(), field(arb_text()), field(arb_text()))),
        field(arb_tweet_id()),
        arb_extras(&[
            "id_str",
            "text",
            "full_text",
            "extended_tweet",
            "created_at",
            "lang",
            "source",
            "user",
            "in_reply_to_status_id_str",
        ]),
    )
        .prop_map(
            |(id, text, full_text, extended, created_at, user, reply_to, extras)| {
                let mut t = extras;
                t.insert("id_str".into(), id.clone().into());
                put(&mut t, "text", text.map(|v| v.map(Value::from)));
                put(&mut t, "full_text", full_text.map(|v| v.map(Value::from)));
                put(
                    &mut t,
                    "extended_tweet",
                    extended.map(|e| {
                        e.map(|ft| {
                            let mut m = Map::new();
                            put(&mut m, "full_text", ft.map(|v| v.map(Value::from)));
                            Value::Object(m)
                        })
                    }),
                );
                put(&mut t, "created_at", created_at.map(|v| v.map(Value::from)));
                put(
                    &mut t,
                    "user",
                    user.map(|u| {
                        u.map(|(uid, name, screen)| {
                            let mut m = Map::new();
                            m.insert("id_str".into(), uid.into());
                            put(&mut m, "name", name.map(|v| v.map(Value::from)));
                            put(&mut m, "screen_name", screen.map(|v| v.map(Value::from)));
                            Value::Object(m)
                        })
                    }),
                );
                put(
                    &mut t,
                    "in_reply_to_status_id_str",
                    reply_to.map(|v| v.map(Value::from)),
                );
                (Value::Object(t), format!("twitter:{id}"))
            },
        )
        .boxed()
}

/// The id `body_to_records` gives a non-tweet event.
fn activity_id(for_user: &str, kind: &str, item: &Value) -> String {
    let event_id = match item.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => ingest::state::secret_fingerprint(&item.to_string()),
    };
    format!("twitter:activity:{for_user}:{kind}:{event_id}")
}

fn arb_activity_case() -> BoxedStrategy<ActivityCase> {
    let event = prop_oneof![
        (arb_tweet_id(), arb_json_object()).prop_map(|(id, mut v)| {
            v["id"] = Value::from(id);
            v
        }),
        arb_json_object().prop_filter("no id", |v| v.get("id").is_none()),
    ];
    (
        arb_tweet_id(),
        prop::collection::vec(arb_v1_tweet(), 0..4),
        prop::collection::btree_map(
            prop_oneof![
                prop::sample::select(
                    &[
                        "favorite_events",
                        "follow_events",
                        "block_events",
                        "direct_message_events",
                        "tweet_delete_events",
                    ][..]
                )
                .prop_map(str::to_owned),
                "[a-z_]{1,20}",
            ]
            .prop_filter("an event list", |k| {
                ![
                    "for_user_id",
                    "tweet_create_events",
                    "user_has_blocked",
                    "users",
                    "apps",
                ]
                .contains(&k.as_str())
            }),
            prop::collection::vec(event, 0..3),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(for_user, tweets, events, with_metadata)| {
            let mut body = Map::new();
            body.insert("for_user_id".into(), for_user.clone().into());
            if with_metadata {
                body.insert("user_has_blocked".into(), false.into());
                body.insert("users".into(), json!({ "1": { "id": "1" } }));
                body.insert("apps".into(), json!({ "2": { "id": "2" } }));
            }
            let tweet_ids: Vec<String> = tweets.iter().map(|t| t.1.clone()).collect();
            if !tweets.is_empty() {
                body.insert(
                    "tweet_create_events".into(),
                    Value::Array(tweets.into_iter().map(|t| t.0).collect()),
                );
            }
            for (kind, items) in &events {
                body.insert(kind.clone(), Value::Array(items.clone()));
            }
            // In key order (serde_json's map keeps insertion order here: bson
            // turns on `preserve_order`), each list in its order.
            let mut ids = Vec::new();
            let kinds: std::collections::BTreeSet<&String> = body.keys().collect();
            for kind in kinds {
                if kind == "tweet_create_events" {
                    ids.extend(tweet_ids.iter().map(|id| (id.clone(), false)));
                } else if let Some(items) = events.get(kind) {
                    ids.extend(
                        items
                            .iter()
                            .map(|i| (activity_id(&for_user, kind, i), i.get("id").is_none())),
                    );
                }
            }
            ActivityCase {
                body: Value::Object(body),
                ids,
            }
        })
        .boxed()
}

proptest! {
    /// Any body: no panic; Ok with twitter records or Err with a reason.
    #[test]
    fn x_webhook_body_parser_never_panics(
        body in prop_oneof![
            (arb_json_object(), arb_wire()).prop_map(|(v, w)| to_wire(&v, w)),
            (arb_json(), arb_wire()).prop_map(|(v, w)| to_wire(&v, w)),
            prop::collection::vec(any::<u8>(), 0..256),
            // A tweet_create_events list of arbitrary values.
            prop::collection::vec(arb_json(), 0..4)
                .prop_map(|l| json!({ "tweet_create_events": l }).to_string().into_bytes()),
        ],
        keep_raw in any::<bool>(),
    ) {
        match body_to_records(&body, &"t".into(), &ctx(keep_raw)) {
            Ok(records) => {
                for r in records {
                    prop_assert!(r.id.starts_with("twitter:"), "{}", r.id);
                    // A body of no known kind keeps its `raw` always.
                    let unknown = r.tags == ["unknown"];
                    prop_assert_eq!(r.raw.is_some(), keep_raw || unknown);
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// A body shaped as X sends it gives one record per event, in order, with
    /// the right ids; metadata members (`users`, `apps`, …) give none.
    #[test]
    fn x_webhook_body_gives_one_record_per_event(
        case in arb_activity_case(),
        wire in arb_wire(),
    ) {
        let body = to_wire(&case.body, wire);
        let records = match body_to_records(&body, &"t".into(), &ctx(true)) {
            Ok(r) => r,
            Err(e) => return Err(TestCaseError::fail(format!("{e} for {}", case.body))),
        };
        prop_assert_eq!(records.len(), case.ids.len(), "{}", case.body);
        let compact = matches!(wire, Wire::Plain | Wire::CrLf);
        for (r, (id, fingerprint)) in records.iter().zip(&case.ids) {
            if *fingerprint && !compact {
                // The fingerprint follows the bytes; the part before it does not.
                let prefix = &id[..id.rfind(':').unwrap() + 1];
                prop_assert!(r.id.starts_with(prefix), "{} vs {}", r.id, id);
            } else {
                prop_assert_eq!(&r.id, id);
            }
        }
    }

    /// A tweet event without a string `id_str` fails the whole body, with a reason.
    #[test]
    fn x_webhook_body_rejects_a_bad_tweet_with_a_reason(
        case in arb_activity_case(),
        tweet in arb_v1_tweet(),
        id in prop::option::of(prop_oneof![arb_number(), Just(Value::Null), Just(json!({}))]),
    ) {
        let mut body = case.body;
        let mut bad = tweet.0;
        match id {
            Some(id) => bad["id_str"] = id,
            None => {
                bad.as_object_mut().unwrap().remove("id_str");
            }
        }
        let list = body
            .as_object_mut()
            .unwrap()
            .entry("tweet_create_events")
            .or_insert_with(|| json!([]));
        list.as_array_mut().unwrap().push(bad);
        match body_to_records(body.to_string().as_bytes(), &"t".into(), &ctx(true)) {
            Err(e) => prop_assert!(e.starts_with("tweet_create_events: "), "{}", e),
            Ok(r) => prop_assert!(false, "{} records for {}", r.len(), body),
        }
    }
}

// ---------------------------------------------------------------------------
// The config loader
// ---------------------------------------------------------------------------

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "duration",
    "max_records",
    "shutdown_timeout",
    "log_format",
    "raw",
    "transliterate",
];
const SECTION_KEYS: &[(&str, &[&str])] = &[
    ("replay", &["platform", "max_line_bytes"]),
    (
        "twitter",
        &[
            "api_base",
            "rules",
            "rules_mode",
            "stall_timeout",
            "tweet_fields",
            "expansions",
            "user_fields",
            "backfill_minutes",
            "dedupe_window",
            "max_line_bytes",
            "spill_memory_bytes",
            "spill_max_bytes",
        ],
    ),
    (
        "telegram",
        &[
            "api_base",
            "chat_ids",
            "allowed_updates",
            "poll_timeout_secs",
            "webhook_path",
            "max_body_bytes",
            "ack_timeout",
        ],
    ),
    (
        "kafka",
        &[
            "brokers",
            "topics",
            "group",
            "from",
            "platform",
            "session_timeout_ms",
            "batch_max_messages",
            "idle_ms",
            "properties",
        ],
    ),
];
/// Each sink type, the fields it needs, and the fields it may have.
const SINK_TYPES: &[(&str, &[&str], &[&str])] = &[
    (
        "file",
        &["path"],
        &[
            "format",
            "gzip",
            "max_file_bytes",
            "fsync",
            "queue_capacity",
        ],
    ),
    ("stdout", &[], &["format", "queue_capacity"]),
    (
        "kafka",
        &["brokers", "topic"],
        &[
            "format",
            "compression",
            "acks",
            "idempotence",
            "headers",
            "message_timeout_ms",
            "client_id",
            "properties",
            "queue_capacity",
        ],
    ),
    (
        "s3",
        &["bucket"],
        &[
            "key_template",
            "format",
            "gzip",
            "time_zone",
            "multipart_threshold_bytes",
            "multipart_part_bytes",
            "force_path_style",
            "region",
            "endpoint",
            "connect_timeout_ms",
            "request_timeout_ms",
            "queue_capacity",
        ],
    ),
    (
        "kinesis",
        &["stream_name"],
        &[
            "stream_arn",
            "partition_key",
            "format",
            "max_in_flight",
            "region",
            "endpoint",
            "connect_timeout_ms",
            "request_timeout_ms",
            "queue_capacity",
        ],
    ),
    (
        "mongodb",
        &["database", "collection"],
        &[
            "uri",
            "uri_env",
            "format",
            "ttl_seconds",
            "ttl_field",
            "server_selection_timeout_ms",
            "queue_capacity",
        ],
    ),
];
const SUB_KEYS: &[(&str, &[&str])] = &[
    ("batch", &["max_records", "max_bytes", "timeout_ms"]),
    (
        "retry",
        &["max_attempts", "initial_backoff_ms", "max_backoff_ms"],
    ),
];

fn toml_str(options: &'static [&'static str]) -> BoxedStrategy<toml::Value> {
    prop::sample::select(options)
        .prop_map(toml::Value::from)
        .boxed()
}

/// A value of the type `key` wants (with edge values: 0, empty, unknown
/// names, unparsable durations), guessed from the key's name.
fn arb_field_value(key: &'static str) -> BoxedStrategy<toml::Value> {
    use toml::Value as T;
    let ints = || {
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(5),
            Just(1000),
            Just(65536),
            1..100_000_000i64
        ]
        .prop_map(T::Integer)
        .boxed()
    };
    match key {
        "duration" | "shutdown_timeout" | "stall_timeout" | "ack_timeout" => toml_str(&[
            "15m",
            "90s",
            "1h",
            "0s",
            "soon",
            "",
            "-5s",
            "99999999999999h",
        ]),
        "raw" | "transliterate" | "gzip" | "fsync" | "idempotence" | "headers"
        | "force_path_style" => any::<bool>().prop_map(T::Boolean).boxed(),
        "log_format" => toml_str(&["text", "json", "xml"]),
        "format" => toml_str(&["record", "raw", "jsonl", ""]),
        "compression" => toml_str(&["none", "gzip", "snappy", "lz4", "zstd", "brotli"]),
        "acks" => toml_str(&["all", "leader", "none", "2"]),
        "platform" => toml_str(&["twitter", "telegram", "auto", "myspace"]),
        "rules_mode" => toml_str(&["sync", "keep", "merge"]),
        "from" => toml_str(&["earliest", "latest", "committed", "yesterday"]),
        "time_zone" => toml_str(&["UTC", "Europe/Paris", "Mars/Base", ""]),
        "path" | "key_template" => toml_str(&[
            "out.jsonl",
            "out/%Y-%m-%d/{platform}.jsonl",
            "dir/",
            "",
            "{unclosed.jsonl",
            "{nope}.jsonl",
        ]),
        "uri_env" => toml_str(&["INGEST_PROPTEST_UNSET_URI", ""]),
        "uri" => toml_str(&["mongodb://127.0.0.1:1", "not a uri", ""]),
        "chat_ids" => prop::collection::vec(any::<i64>().prop_map(T::Integer), 0..3)
            .prop_map(T::Array)
            .boxed(),
        "allowed_updates" | "topics" => prop::collection::vec(
            prop_oneof!["[a-z_]{1,12}", arb_text()].prop_map(T::String),
            0..3,
        )
        .prop_map(T::Array)
        .boxed(),
        "properties" => prop::collection::btree_map("[a-z.]{1,12}", "[a-z0-9]{0,6}", 0..3)
            .prop_map(|m| T::Table(m.into_iter().map(|(k, v)| (k, T::String(v))).collect()))
            .boxed(),
        k if k.ends_with("_ms")
            || k.ends_with("_bytes")
            || k.ends_with("_secs")
            || k.ends_with("_seconds")
            || k.ends_with("_minutes")
            || k.ends_with("_window")
            || k.ends_with("_capacity")
            || k.ends_with("_attempts")
            || k.ends_with("_in_flight")
            || k.ends_with("_messages")
            || k == "max_records" =>
        {
            ints()
        }
        _ => prop_oneof![
            3 => toml_str(&["x", "127.0.0.1:9092", "ingest", "http://127.0.0.1:1", ""]),
            1 => arb_text().prop_map(T::String),
        ]
        .boxed(),
    }
}

/// Values of every TOML type: the wrong ones for most fields.
fn arb_toml_leaf() -> BoxedStrategy<toml::Value> {
    use toml::Value as T;
    prop_oneof![
        any::<i64>().prop_map(T::Integer),
        arb_text().prop_map(T::String),
        any::<bool>().prop_map(T::Boolean),
        any::<f64>().prop_map(T::Float),
        Just(T::Datetime("1979-05-27T07:32:00Z".parse().unwrap())),
    ]
    .boxed()
}

fn arb_toml_value() -> BoxedStrategy<toml::Value> {
    arb_toml_leaf()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
                prop::collection::btree_map(prop_oneof!["[a-z_]{1,10}", arb_text()], inner, 0..4)
                    .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// `key` with mostly a value of the right type, sometimes any value.
fn arb_entry(key: &'static str) -> BoxedStrategy<(String, toml::Value)> {
    prop_oneof![
        12 => arb_field_value(key),
        1 => arb_toml_value(),
    ]
    .prop_map(move |v| (key.to_owned(), v))
    .boxed()
}

/// A table with `required` keys (each left out now and then), some of
/// `optional`, and rarely an unknown key.
fn arb_toml_table(
    required: &'static [&'static str],
    optional: &'static [&'static str],
) -> BoxedStrategy<toml::Table> {
    let optional = if optional.is_empty() {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::vec(
            prop::sample::select(optional).prop_flat_map(arb_entry),
            0..4,
        )
        .boxed()
    };
    (
        required
            .iter()
            .map(|k| prop::option::weighted(0.95, arb_entry(k)))
            .collect::<Vec<_>>(),
        optional,
        prop::option::weighted(0.08, ("[a-z_]{1,12}", arb_toml_value())),
    )
        .prop_map(|(required, optional, unknown)| {
            let mut t: toml::Table = required.into_iter().flatten().collect();
            t.extend(optional);
            if let Some((k, v)) = unknown {
                t.entry(k).or_insert(v);
            }
            t
        })
        .boxed()
}

fn arb_sink_table() -> BoxedStrategy<toml::Table> {
    (
        (0..SINK_TYPES.len()).prop_flat_map(|i| {
            let (kind, required, optional) = SINK_TYPES[i];
            (
                prop_oneof![
                    20 => Just(Some(toml::Value::from(kind))),
                    1 => arb_toml_leaf().prop_map(Some),
                    1 => Just(None),
                ],
                arb_toml_table(required, optional),
            )
        }),
        prop::collection::vec(
            (0..SUB_KEYS.len()).prop_flat_map(|i| {
                arb_toml_table(&[], SUB_KEYS[i].1).prop_map(move |t| (SUB_KEYS[i].0, t))
            }),
            0..2,
        ),
    )
        .prop_map(|((kind, mut t), subs)| {
            if let Some(kind) = kind {
                t.insert("type".into(), kind);
            }
            for (name, sub) in subs {
                t.insert(name.into(), toml::Value::Table(sub));
            }
            t
        })
        .boxed()
}

fn arb_sink_name() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop_oneof![
            prop::sample::select(&["lake", "file", "stdout", "kafka", "s3", "a"][..])
                .prop_map(str::to_owned),
            "[a-z][a-z0-9_-]{0,8}",
        ],
        1 => arb_text().prop_filter("a name", |s| !s.is_empty()),
    ]
    .boxed()
}

/// A config file as a TOML document: mostly well-typed, with missing
/// required fields, unknown keys, wrong types and edge values mixed in.
fn arb_config_doc() -> BoxedStrategy<toml::Table> {
    (
        arb_toml_table(&[], TOP_KEYS),
        prop::collection::vec(
            (0..SECTION_KEYS.len()).prop_flat_map(|i| {
                arb_toml_table(&[], SECTION_KEYS[i].1).prop_map(move |t| (SECTION_KEYS[i].0, t))
            }),
            0..3,
        ),
        prop::collection::btree_map(arb_sink_name(), arb_sink_table(), 0..3),
        prop::option::of(prop::collection::vec(arb_sink_name(), 0..3)),
    )
        .prop_map(|(mut doc, sections, sinks, default_sinks)| {
            for (name, t) in sections {
                doc.insert(name.into(), toml::Value::Table(t));
            }
            if !sinks.is_empty() {
                doc.insert(
                    "sinks".into(),
                    toml::Value::Table(
                        sinks
                            .into_iter()
                            .map(|(k, v)| (k, toml::Value::Table(v)))
                            .collect(),
                    ),
                );
            }
            if let Some(names) = default_sinks {
                doc.insert(
                    "default_sinks".into(),
                    toml::Value::Array(names.into_iter().map(toml::Value::from).collect()),
                );
            }
            doc
        })
        .boxed()
}

/// Line-shaped TOML fragments, valid and broken, in any order.
fn arb_config_lines() -> BoxedStrategy<String> {
    let line = prop_oneof![
        prop::sample::select(
            &[
                "[sinks.a]",
                "[sinks.a.batch]",
                "[sinks.a.retry]",
                "[sinks.\"x.y\"]",
                "[[sinks]]",
                "[twitter]",
                "[telegram]",
                "[replay]",
                "[kafka]",
                "[sinks.a",
                "type = \"file\"",
                "type = \"kafka\"",
                "type = \"carrier-pigeon\"",
                "type = ",
                "path = \"out.jsonl\"",
                "path = \"dir/\"",
                "max_records = 0",
                "max_records = \"many\"",
                "duration = \"soon\"",
                "format = \"raw\"",
                "raw = false",
                "pathh = 1",
                "a = = 1",
                "\"quoted key\" = 1",
                "k = \"\"\"",
                "x = [1, \"two\"]",
                "y = { z = 1 }",
                "# comment",
                "",
                "   ",
                "\u{0}",
                "\u{feff}",
                "=",
                "[",
                "]",
            ][..]
        )
        .prop_map(str::to_owned),
        (
            "[a-z_.]{0,12}",
            prop_oneof![Just(" = "), Just("="), Just(" ")],
            "\\PC{0,12}"
        )
            .prop_map(|(k, eq, v)| format!("{k}{eq}{v}")),
        arb_text(),
    ];
    (
        prop::collection::vec(line, 0..12),
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
    )
        .prop_map(|(lines, nl)| lines.join(nl))
        .boxed()
}

/// The promise of `LoadedConfig::parse`: an error names the file and a line
/// that exists (1-based, at most one past the last), and has a message.
fn check_parse_error(text: &str, err: &ConfigError) -> Result<(), TestCaseError> {
    let shown = err.to_string();
    prop_assert!(
        shown.starts_with("config error in ingest.toml line "),
        "{shown}"
    );
    let ConfigError::Invalid { line, message, .. } = err else {
        return Err(TestCaseError::fail(format!(
            "not an Invalid error: {shown}"
        )));
    };
    let lines = text.split('\n').count();
    prop_assert!(
        line.is_some_and(|l| l >= 1 && l <= lines),
        "line {line:?} of {lines}: {shown}"
    );
    prop_assert!(!message.trim().is_empty(), "{shown}");
    Ok(())
}

/// Parses `text`, checks the error promise, and resolves a parsed config
/// with every sink it names.
fn parse_and_resolve(text: String) -> Result<(), TestCaseError> {
    match LoadedConfig::parse(Some(PathBuf::from("ingest.toml")), text.clone()) {
        Err(e) => check_parse_error(&text, &e),
        Ok(loaded) => {
            let mut names: Vec<String> = loaded.file.sinks.keys().cloned().collect();
            names.extend(["file".to_owned(), "stdout".to_owned()]);
            names.sort();
            names.dedup();
            let args = RunArgs {
                sinks: names,
                ..RunArgs::default()
            };
            match Settings::resolve(&args, &loaded) {
                Ok(_) => {}
                Err(ResolveError::Usage(m)) => prop_assert!(!m.is_empty()),
                Err(ResolveError::Config(e)) => {
                    let shown = e.to_string();
                    prop_assert!(shown.starts_with("config error in ingest.toml"), "{shown}");
                    prop_assert!(
                        matches!(&e, ConfigError::Invalid { message, line: Some(_), .. } if !message.is_empty()),
                        "{shown}\n{text}"
                    );
                }
            }
            // The defaults-only run never fails on a parsed file: it names no sink.
            let _ = Settings::resolve(&RunArgs::default(), &loaded);
            Ok(())
        }
    }
}

/// Found by `config_loader_never_panics_on_arbitrary_toml`: a sink whose name
/// TOML writes quoted (`[sinks."a]b"]`, `[sinks."my sink"]`) lost the line in
/// its validation errors, as the header was read up to the first `]` with
/// quotes and spaces dropped.
#[test]
fn config_errors_in_a_quoted_sink_table_name_the_line() {
    for (written, name) in [
        ("a]b", "a]b"),
        ("my sink", "my sink"),
        ("x.y", "x.y"),
        ("A\\u0000é", "A\0é"),
    ] {
        let text = format!("\n[sinks.\"{written}\"]\ntype = \"file\"\npath = \"dir/\"\n");
        let loaded = LoadedConfig::parse(Some(PathBuf::from("ingest.toml")), text).unwrap();
        let args = RunArgs {
            sinks: vec![name.to_owned()],
            ..RunArgs::default()
        };
        let err = Settings::resolve(&args, &loaded).unwrap_err().to_string();
        assert!(
            err.starts_with("config error in ingest.toml line 4, field `sinks."),
            "{err}"
        );
    }
}

proptest! {
    /// A TOML document with known and unknown keys and values of any type:
    /// no panic; a parse error names the file and an existing line and says
    /// why; resolving what parsed never panics and every error has a message.
    #[test]
    fn config_loader_never_panics_on_arbitrary_toml(doc in arb_config_doc()) {
        let Ok(text) = toml::to_string(&doc) else {
            return Ok(());
        };
        parse_and_resolve(text)?;
    }

    /// Broken and valid TOML lines in any order (any newline convention).
    #[test]
    fn config_loader_never_panics_on_toml_like_lines(text in arb_config_lines()) {
        parse_and_resolve(text)?;
    }

    /// Arbitrary bytes (read as the loader reads a file: UTF-8 or an I/O error).
    #[test]
    fn config_loader_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(text) = String::from_utf8(bytes.clone()) {
            parse_and_resolve(text)?;
        }
        parse_and_resolve(String::from_utf8_lossy(&bytes).into_owned())?;
    }
}
