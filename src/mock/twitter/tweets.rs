//! The synthetic tweets the mock X stream sends: authors and texts in many
//! scripts, one JSON line per tweet number.

use serde_json::json;

use super::matcher;
use super::rules::LiveRule;
use crate::mock::media;

/// The tweet id of tweet number `seq`.
pub fn tweet_id(seq: u64) -> String {
    (1_600_000_000_000_000_000u64 + seq).to_string()
}

pub(super) const AUTHORS: [(&str, &str, &str); 8] = [
    ("2244994945", "X Developers", "XDevelopers"),
    ("1001", "Ada Lovelace", "ada"),
    ("1002", "أميرة حداد", "amira_h"),
    ("1003", "佐藤 健二", "kenji"),
    ("1004", "Zoë 🌻 Müller", "zoe_m"),
    ("1005", "Ivan Petrov", "ivan"),
    ("1006", "Noa Levi", "noa"),
    ("1007", "Data Bot 🤖", "databot"),
];
pub(super) const TEXTS: [(&str, &str); 8] = [
    (
        "en",
        "Just shipped a new release of our data pipeline 🚀 #rustlang",
    ),
    ("ar", "مرحبا بالعالم — هذا اختبار للبث المباشر"),
    ("ja", "データ収集のテストです 📡"),
    ("de", "Grüße aus Köln! Streaming ohne Datenverlust 🙌"),
    ("ru", "Привет, мир! Потоковые данные идут без потерь."),
    ("he", "שלום עולם, זוהי בדיקה של זרם הנתונים"),
    (
        "en",
        "lol 😂 this is the best thread I've read all week 🧵👇 \"quoted\" and a\nnewline",
    ),
    (
        "es",
        "¿Alguien sabe si la API v2 sigue enviando keep-alives? 🤔",
    ),
];

/// Appends one stream line (with `\r\n`) for tweet `seq`. With rules (the
/// filtered stream), the post is written for rule `seq % rules.len()`: its
/// text gets the words that rule needs (see [`matcher`](super::matcher)), and
/// `matching_rules` names every live rule the text and language really match.
/// A rule no text can satisfy (`cats -cats`) is still named, alone: the
/// mock's one liberty.
pub(super) fn tweet_line(seq: u64, rules: &[LiveRule], out: &mut Vec<u8>) {
    tweet_line_with_media(seq, rules, None, out)
}

/// The media of the posts that have some (every fourth from the second), in
/// turn: (catalog file, X `type`) lists.
const MEDIA_ROTATION: [&[(&str, &str)]; 7] = [
    &[("photo-shared.jpg", "photo")],
    &[("clip.mp4", "video")],
    &[("flaky.jpg", "photo")],
    &[("photo-shared.jpg", "photo"), ("photo-2.jpg", "photo")],
    &[("huge.mp4", "video")],
    &[("gone.jpg", "photo")],
    &[("loop.mp4", "animated_gif")],
];

/// The `media_key` of a catalog file (`3_` photos, `7_` videos, `16_` GIFs, as X numbers them).
pub fn media_key(name: &str, x_type: &str) -> String {
    let n = media::FILES
        .iter()
        .position(|f| f.name == name)
        .unwrap_or(0)
        + 1001;
    match x_type {
        "video" => format!("7_{n}"),
        "animated_gif" => format!("16_{n}"),
        _ => format!("3_{n}"),
    }
}

/// The `includes.media` object of a catalog file, its URLs under `base`.
fn media_object(name: &str, x_type: &str, base: &str) -> serde_json::Value {
    let url = |n: &str| format!("{base}/media/{n}");
    let key = media_key(name, x_type);
    match x_type {
        "photo" => {
            json!({"media_key": key, "type": "photo", "url": url(name), "width": 1280, "height": 720})
        }
        "video" => {
            json!({"media_key": key, "type": "video", "preview_image_url": url("photo-2.jpg"), "variants": [
                {"content_type": "application/x-mpegURL", "url": url(&format!("{name}.m3u8"))},
                {"bit_rate": 256_000, "content_type": "video/mp4", "url": url(&format!("low-{name}"))},
                {"bit_rate": 832_000, "content_type": "video/mp4", "url": url(name)},
            ]})
        }
        _ => {
            json!({"media_key": key, "type": "animated_gif", "preview_image_url": url("sticker.webp"), "variants": [
                {"bit_rate": 0, "content_type": "video/mp4", "url": url(name)},
            ]})
        }
    }
}

/// Adds post `seq`'s media, if it has some: `attachments.media_keys` and `includes.media`.
fn add_media(seq: u64, base: &str, line: &mut serde_json::Value) {
    if seq % 4 != 1 {
        return;
    }
    let files = MEDIA_ROTATION[(seq / 4) as usize % MEDIA_ROTATION.len()];
    let keys: Vec<String> = files.iter().map(|(n, t)| media_key(n, t)).collect();
    line["data"]["attachments"] = json!({"media_keys": keys});
    line["includes"]["media"] = files
        .iter()
        .map(|(n, t)| media_object(n, t, base))
        .collect();
}

/// [`tweet_line`], with the post's media (URLs under `media_base`) when the
/// request asked for them.
pub(super) fn tweet_line_with_media(
    seq: u64,
    rules: &[LiveRule],
    media_base: Option<&str>,
    out: &mut Vec<u8>,
) {
    let (author_id, name, username) = AUTHORS[(seq % AUTHORS.len() as u64) as usize];
    let id = tweet_id(seq);
    let (lang, text, matching) = if rules.is_empty() {
        let (lang, text) = TEXTS[(seq * 7 % TEXTS.len() as u64) as usize];
        (lang.to_owned(), format!("{text} #{seq}"), Vec::new())
    } else {
        written_for(seq, rules)
    };
    let tags: Vec<serde_json::Value> = matcher::hashtags(&text)
        .into_iter()
        .map(|(start, end, tag)| json!({"start": start, "end": end, "tag": tag}))
        .collect();
    let mut line = json!({
        "data": {
            "id": id,
            "text": text,
            "author_id": author_id,
            "created_at": crate::record::rfc3339(chrono::Utc::now()),
            "lang": lang,
            "conversation_id": id,
            "source": "ingest mock",
            "edit_history_tweet_ids": [id],
        },
        "includes": {"users": [{"id": author_id, "name": name, "username": username}]},
    });
    if !tags.is_empty() {
        line["data"]["entities"] = json!({ "hashtags": tags });
    }
    // Only the filtered stream has rules (2.167: the volume streams' lines
    // carry no `matching_rules`).
    if !rules.is_empty() {
        line["matching_rules"] = json!(matching);
    }
    if let Some(base) = media_base {
        add_media(seq, base, &mut line);
    }
    serde_json::to_writer(&mut *out, &line).expect("a JSON value serializes");
    out.extend_from_slice(b"\r\n");
}

/// The language, text and matching rules of post `seq` written for rule
/// `seq % rules.len()`: the post's own sample text when the rule's words
/// leave it matching, else the next sample that does, else the words alone.
fn written_for(seq: u64, rules: &[LiveRule]) -> (String, String, Vec<serde_json::Value>) {
    let parsed: Vec<matcher::Expr> = rules.iter().map(|r| matcher::parse(&r.value)).collect();
    let at = (seq % rules.len() as u64) as usize;
    let (words, want_lang) = parsed[at].witness(seq / rules.len() as u64);
    let words = words.join(" ");
    let first = (seq * 7 % TEXTS.len() as u64) as usize;
    let samples = (0..TEXTS.len())
        .map(|i| TEXTS[(first + i) % TEXTS.len()])
        .chain([("en", "")]);
    let compose = |(lang, base): (&str, &str)| {
        let lang = want_lang.clone().unwrap_or_else(|| lang.to_owned());
        let text = [base, words.as_str(), &format!("#{seq}")]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (lang, text)
    };
    let candidates: Vec<(String, String)> = samples.map(compose).collect();
    let (lang, text) = candidates
        .iter()
        .find(|(lang, text)| parsed[at].matches(&matcher::Post { text, lang }))
        .unwrap_or(&candidates[0])
        .clone();
    let post = matcher::Post {
        text: &text,
        lang: &lang,
    };
    let mut matching: Vec<serde_json::Value> = rules
        .iter()
        .zip(&parsed)
        .filter(|(_, e)| e.matches(&post))
        .map(|(r, _)| json!({"id": r.id, "tag": r.tag.clone().unwrap_or_default()}))
        .collect();
    if matching.is_empty() {
        let r = &rules[at];
        matching.push(json!({"id": r.id, "tag": r.tag.clone().unwrap_or_default()}));
    }
    (lang, text, matching)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tweet_line_is_one_json_line_naming_its_rule_and_author() {
        let rules = [LiveRule {
            id: "7".into(),
            value: "cats".into(),
            tag: Some("pets".into()),
        }];
        let mut out = Vec::new();
        tweet_line(9, &rules, &mut out);
        assert!(out.ends_with(b"\r\n"));
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["data"]["id"], tweet_id(9));
        assert!(v["data"]["text"].as_str().unwrap().ends_with(" cats #9"));
        assert_eq!(v["includes"]["users"][0]["id"], v["data"]["author_id"]);
        assert_eq!(v["matching_rules"][0]["tag"], "pets");
    }

    fn line(seq: u64, rules: &[LiveRule]) -> serde_json::Value {
        let mut out = Vec::new();
        tweet_line(seq, rules, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    fn rule(id: &str, value: &str, tag: &str) -> LiveRule {
        LiveRule {
            id: id.into(),
            value: value.into(),
            tag: Some(tag.into()),
        }
    }

    /// Each post names the rules its text really matches: the one it was
    /// written for, and any other its words happen to satisfy, never one
    /// they do not.
    #[test]
    fn a_post_names_the_rules_its_text_matches() {
        let rules = [
            rule("1", "#F1", "f1"),
            rule("2", "#MotoGP -crash", "motogp"),
            rule("3", "\"data pipeline\" lang:de", "de"),
            rule("4", "rustlang", "rust"),
        ];
        let parsed: Vec<matcher::Expr> = rules.iter().map(|r| matcher::parse(&r.value)).collect();
        for seq in 0..64 {
            let v = line(seq, &rules);
            let text = v["data"]["text"].as_str().unwrap();
            let lang = v["data"]["lang"].as_str().unwrap();
            let named: Vec<&str> = v["matching_rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap())
                .collect();
            assert!(
                named.contains(&rules[(seq % 4) as usize].id.as_str()),
                "{seq}: {v}"
            );
            for (r, e) in rules.iter().zip(&parsed) {
                let matches = e.matches(&matcher::Post { text, lang });
                assert_eq!(
                    named.contains(&r.id.as_str()),
                    matches,
                    "{seq} {}: {text}",
                    r.value
                );
            }
            let tags: Vec<&str> = v["data"]["entities"]["hashtags"]
                .as_array()
                .map(|a| a.iter().map(|h| h["tag"].as_str().unwrap()).collect())
                .unwrap_or_default();
            if seq % 4 == 0 {
                assert!(tags.contains(&"F1"), "{v}");
            }
        }
    }
}
