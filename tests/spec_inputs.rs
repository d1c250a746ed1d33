//! Inputs built from the published specs: X stream lines (posts with
//! `includes` users, media, polls and places, referenced posts, partial
//! `errors` beside `data`), compliance and user-compliance events, and
//! Telegram updates of every type of the Bot API, each generated from its
//! schema with random optional members. Normalization never panics, keeps the
//! id, text, author and chat, and keeps `raw` byte-identical to the payload.

mod common;

use std::sync::Arc;

use common::spec::{self, generate::Gen};
use ingest::record::{NormalizeOptions, Normalized, Record, RunInfo};
use ingest::sources::telegram::normalize_update;
use ingest::sources::twitter::compliance::normalize_compliance_line;
use ingest::sources::twitter::normalize::normalize_line;
use proptest::prelude::*;
use rand::Rng;
use serde_json::{Value, json};

fn opts() -> NormalizeOptions {
    NormalizeOptions::new(Arc::new(RunInfo::new(None)))
}

fn record_of(result: Result<Normalized, ingest::record::NormalizeError>, line: &str) -> Record {
    match result {
        Ok(Normalized::Record(r)) => *r,
        other => panic!("no record ({other:?}) for a spec-valid payload:\n{line}"),
    }
}

/// Panics unless `v` is an instance of the X schema `name`.
fn x_valid(name: &str, v: &Value) {
    let mut out = Vec::new();
    spec::x().check_body(
        &format!("/components/schemas/{name}"),
        v,
        "generated",
        name,
        &mut out,
    );
    assert!(
        out.is_empty(),
        "the generator made an off-spec {name}: {out:?}\n{v}"
    );
}

/// A filtered-stream line from `StreamPostsResponse`, with the members the
/// stream asks for (`id`, `text`, `author_id` and the author in
/// `includes.users`).
fn x_post(seed: u64) -> (Value, String) {
    let x = spec::x();
    let mut g = Gen::new(x.doc(), seed);
    let mut v = g.value(&x.doc()["components"]["schemas"]["StreamPostsResponse"]);
    if v.get("data").is_none() {
        v["data"] = g.value(&x.doc()["components"]["schemas"]["Post"]);
    }
    let id = g.digits(1, 19);
    let author = g.digits(1, 19);
    let data = v["data"].as_object_mut().unwrap();
    data.insert("id".into(), json!(id));
    data.insert("text".into(), json!(g.text()));
    data.insert("author_id".into(), json!(author));
    let user = json!({"id": author, "name": g.text(), "username": format!("u{}", g.digits(1, 10))});
    let includes = v
        .as_object_mut()
        .unwrap()
        .entry("includes")
        .or_insert(json!({}));
    let users = includes
        .as_object_mut()
        .unwrap()
        .entry("users")
        .or_insert(json!([]));
    let users = users.as_array_mut().unwrap();
    users.retain(|u| u["id"] != author.as_str());
    let at = if users.is_empty() {
        0
    } else {
        seed as usize % (users.len() + 1)
    };
    users.insert(at, user);
    x_valid("StreamPostsResponse", &v);
    let line = v.to_string();
    (v, line)
}

fn check_x_post(v: &Value, line: &str) {
    let r = record_of(
        normalize_line(line.as_bytes(), &"now".into(), &opts()),
        line,
    );
    let data = &v["data"];
    assert_eq!(r.id, format!("twitter:{}", data["id"].as_str().unwrap()));
    // A long post's full text is in `note_tweet.text`; `text` is then cut.
    let text = data["note_tweet"]["text"]
        .as_str()
        .or(data["note_post"]["text"].as_str())
        .or(data["text"].as_str());
    assert_eq!(r.text.as_deref(), text, "{line}");
    let author = r.author.as_ref().expect("an author");
    let user = v["includes"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == data["author_id"])
        .unwrap();
    assert_eq!(author.id, user["id"].as_str().unwrap());
    assert_eq!(author.username.as_deref(), user["username"].as_str());
    assert_eq!(author.name.as_deref(), user["name"].as_str());
    assert_eq!(
        r.raw.as_ref().expect("raw").get(),
        line,
        "raw is the line, byte for byte"
    );
}

/// A compliance line from the Post or User compliance stream's schema.
fn compliance(seed: u64, schema: &str) -> (Value, String) {
    let x = spec::x();
    let mut g = Gen::new(x.doc(), seed);
    let v = g.value(&x.doc()["components"]["schemas"][schema]);
    x_valid(schema, &v);
    let line = v.to_string();
    (v, line)
}

/// The Bot API's message kinds (their payload is a `Message`).
const MESSAGE_KINDS: [&str; 7] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
    "guest_message",
];

/// An `Update` carrying `field`, its payload generated from the Bot API type.
fn telegram_update(seed: u64, field: &str) -> (Value, String) {
    let t = spec::telegram();
    let mut g = Gen::new(t.doc(), seed);
    let payload = g.value(&t.doc()["$defs"]["Update"]["properties"][field]);
    let update_id = g.rng.random_range(1..i64::from(i32::MAX));
    let v = json!({"update_id": update_id, field: payload});
    let mut out = Vec::new();
    t.check_update(&v, "generated", &mut out);
    assert!(
        out.is_empty(),
        "the generator made an off-spec update: {out:?}\n{v}"
    );
    let line = v.to_string();
    (v, line)
}

fn check_telegram(field: &str, v: &Value, line: &str) {
    let r = record_of(
        normalize_update(line.as_bytes(), &"now".into(), &opts()),
        line,
    );
    assert_eq!(r.kind, field);
    assert_eq!(r.refs.update_id, v["update_id"].as_i64());
    assert_eq!(r.raw.as_ref().expect("raw").get(), line);
    let p = &v[field];
    if MESSAGE_KINDS.contains(&field) {
        let chat = p["chat"]["id"].as_i64().unwrap();
        let prefix = format!("telegram:{chat}:{}", p["message_id"]);
        assert!(
            r.id == prefix || r.id.starts_with(&format!("{prefix}:")),
            "{} {line}",
            r.id
        );
        if field.starts_with("edited") {
            assert_ne!(r.id, prefix, "an edit has an id of its own");
        }
        assert_eq!(
            r.text.as_deref(),
            p["text"].as_str().or(p["caption"].as_str())
        );
        assert_eq!(r.chat.as_ref().unwrap().id, chat);
        let sender = p.get("sender_chat").or(p.get("from"));
        assert_eq!(
            r.author.as_ref().map(|a| a.id.clone()),
            sender.map(|s| s["id"].to_string())
        );
    } else {
        assert_eq!(r.id, format!("telegram:update:{}", v["update_id"]));
        if let Some(from) = p.get("from").filter(|f| f.is_object()) {
            assert_eq!(r.author.as_ref().unwrap().id, from["id"].to_string());
        }
        if let Some(chat) = p.get("chat").filter(|c| c.is_object()) {
            assert_eq!(r.chat.as_ref().unwrap().id, chat["id"].as_i64().unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn x_posts_from_the_spec_keep_id_text_author_and_raw(seed in any::<u64>()) {
        let (v, line) = x_post(seed);
        check_x_post(&v, &line);
    }

    #[test]
    fn x_compliance_events_from_the_spec_become_compliance_records(
        seed in any::<u64>(),
        users in any::<bool>(),
    ) {
        let schema = if users { "StreamUsersComplianceResponse" } else { "StreamPostsComplianceResponse" };
        let (v, line) = compliance(seed, schema);
        match normalize_compliance_line(line.as_bytes(), &"now".into(), &opts()) {
            Ok(Normalized::Record(r)) => {
                prop_assert_eq!(r.kind.as_ref(), "compliance");
                prop_assert_eq!(r.raw.as_ref().unwrap().get(), line.as_str());
                let event = v["data"].as_object().unwrap().keys().next().unwrap().clone();
                prop_assert!(r.tags.contains(&event), "{:?} {}", r.tags, line);
            }
            // An `errors`-only line is a control message, not a record.
            Ok(Normalized::Control(_)) => prop_assert!(v.get("data").is_none(), "{}", line),
            other => prop_assert!(false, "{:?} for {}", other, line),
        }
    }

    #[test]
    fn telegram_updates_of_every_type_keep_kind_ids_text_author_chat_and_raw(
        seed in any::<u64>(),
        which in any::<prop::sample::Index>(),
    ) {
        let fields = spec::telegram().update_fields();
        let field = which.get(&fields).clone();
        let (v, line) = telegram_update(seed, &field);
        check_telegram(&field, &v, &line);
    }
}

#[test]
fn the_generators_cover_every_update_type_and_the_x_shapes() {
    // Every Update field at least once, whatever proptest's seeds were.
    for (i, field) in spec::telegram().update_fields().iter().enumerate() {
        let (v, line) = telegram_update(i as u64, field);
        check_telegram(field, &v, &line);
    }
    // Over a few seeds the X generator makes includes with media, polls and
    // places, referenced posts and `errors` beside `data`.
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let (v, line) = x_post(seed);
        check_x_post(&v, &line);
        for k in ["media", "polls", "places", "tweets"] {
            if v["includes"][k].as_array().is_some_and(|a| !a.is_empty()) {
                seen.insert(k.to_owned());
            }
        }
        if v["data"]["referenced_tweets"].is_array() || v["data"]["referenced_posts"].is_array() {
            seen.insert("referenced".into());
        }
        if v["errors"].is_array() {
            seen.insert("errors".into());
        }
    }
    for k in ["media", "polls", "places", "errors"] {
        assert!(seen.contains(k), "no {k} in 64 generated lines: {seen:?}");
    }
}
