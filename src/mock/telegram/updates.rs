//! The synthetic updates the mock Telegram Bot API queues: every chat type,
//! texts in many scripts, photos with captions, edits — and one of each other
//! `Update` field of Bot API 10.1 ([`OTHER_TYPES`]), each in the shape the
//! spec gives its type.

use serde_json::{Value, json};

use crate::mock::media::{self, MockFile};

/// Every `Update` field of Bot API 10.1 besides the four plain message kinds.
pub const OTHER_TYPES: [&str; 21] = [
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "guest_message",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
    "managed_bot",
];

/// Update types a bot gets only when it names them in `allowed_updates`.
pub const OPT_IN: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// Whether a bot whose `allowed_updates` setting is `allowed` (empty: the
/// default) gets updates of type `kind`.
pub fn wanted(kind: &str, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        !OPT_IN.contains(&kind)
    } else {
        allowed.iter().any(|a| a == kind)
    }
}

/// Update `update_id` of type `kind` (one of [`OTHER_TYPES`]) as JSON.
pub fn other_update(update_id: i64, kind: &str) -> String {
    let date = 1_795_000_000 + (update_id - FIRST_UPDATE_ID);
    let user = json!({"id": 7001, "is_bot": false, "first_name": "User", "language_code": "en"});
    let group = json!({"id": -1_002_001, "type": "supergroup", "title": "Researchers 🔬"});
    let private = json!({"id": 7001, "type": "private", "first_name": "User"});
    let message = |text: &str| json!({"message_id": 900 + update_id % 100, "date": date, "chat": private, "from": user, "business_connection_id": "bc-1", "text": text});
    let member = |status: &str| json!({"status": status, "user": user});
    let boost_source = json!({"source": "premium", "user": user});
    let payload: Value = match kind {
        "business_connection" => {
            json!({"id": "bc-1", "user": user, "user_chat_id": 7001, "date": date, "is_enabled": true})
        }
        "business_message" => message("a business message"),
        "edited_business_message" => {
            let mut m = message("a business message, edited");
            m["edit_date"] = json!(date + 60);
            m
        }
        "deleted_business_messages" => {
            json!({"business_connection_id": "bc-1", "chat": private, "message_ids": [900, 901]})
        }
        "guest_message" => {
            let mut m = message("a guest's message");
            m.as_object_mut()
                .map(|o| o.remove("business_connection_id"));
            m
        }
        "message_reaction" => {
            json!({"chat": group, "message_id": 101, "user": user, "date": date, "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]})
        }
        "message_reaction_count" => {
            json!({"chat": group, "message_id": 101, "date": date, "reactions": [{"type": {"type": "emoji", "emoji": "👍"}, "total_count": 3}]})
        }
        "inline_query" => json!({"id": "iq-1", "from": user, "query": "data", "offset": ""}),
        "chosen_inline_result" => json!({"result_id": "r-1", "from": user, "query": "data"}),
        "callback_query" => {
            json!({"id": "cq-1", "from": user, "chat_instance": "ci-1", "data": "button", "message": {"message_id": 100, "date": date, "chat": private, "text": "choose"}})
        }
        "shipping_query" => {
            json!({"id": "sq-1", "from": user, "invoice_payload": "order-1", "shipping_address": {"country_code": "DE", "state": "", "city": "Berlin", "street_line1": "Unter den Linden 1", "street_line2": "", "post_code": "10117"}})
        }
        "pre_checkout_query" => {
            json!({"id": "pcq-1", "from": user, "currency": "EUR", "total_amount": 1299, "invoice_payload": "order-1"})
        }
        "purchased_paid_media" => json!({"from": user, "paid_media_payload": "media-1"}),
        "poll" => {
            json!({"id": "poll-1", "question": "Which sink?", "options": [{"persistent_id": "a", "text": "Kafka", "voter_count": 2}, {"persistent_id": "b", "text": "S3", "voter_count": 1}], "total_voter_count": 3, "is_closed": false, "is_anonymous": true, "type": "regular", "allows_multiple_answers": false, "allows_revoting": false, "members_only": false})
        }
        "poll_answer" => {
            json!({"poll_id": "poll-1", "user": user, "option_ids": [0], "option_persistent_ids": ["a"]})
        }
        "my_chat_member" | "chat_member" => {
            json!({"chat": group, "from": user, "date": date, "old_chat_member": member("left"), "new_chat_member": member("member")})
        }
        "chat_join_request" => {
            json!({"chat": group, "from": user, "user_chat_id": 7001, "date": date})
        }
        "chat_boost" => {
            json!({"chat": group, "boost": {"boost_id": "boost-1", "add_date": date, "expiration_date": date + 86_400, "source": boost_source}})
        }
        "removed_chat_boost" => {
            json!({"chat": group, "boost_id": "boost-1", "remove_date": date, "source": boost_source})
        }
        "managed_bot" => {
            json!({"user": user, "bot": {"id": 8001, "is_bot": true, "first_name": "Helper", "username": "helper_bot"}})
        }
        other => panic!("no synthetic update of type {other}"),
    };
    json!({"update_id": update_id, kind: payload}).to_string()
}

/// The first update id the mock hands out.
pub const FIRST_UPDATE_ID: i64 = 500_000;

/// The files the media messages (every fifth update, from the fourth) carry
/// in turn: the shared photo twice among the first four, then the file over
/// the limit, the one that is gone, and the rest of the catalog.
const MEDIA_ROTATION: [&str; 11] = [
    "photo-shared.jpg",
    "clip.mp4",
    "flaky.jpg",
    "photo-shared.jpg",
    "huge.mp4",
    "gone.jpg",
    "note.oga",
    "paper.pdf",
    "sticker.webp",
    "loop.mp4",
    "photo-2.jpg",
];

/// The `file_id` of a catalog file (what `getFile` takes).
pub fn file_id(name: &str) -> String {
    format!("mockfile-{name}")
}

/// The `file_unique_id` of a catalog file (the record's media `key`).
pub fn file_unique_id(name: &str) -> String {
    format!("u-{}", name.split('.').next().unwrap_or(name))
}

/// Where `getFile` says a catalog file is (`photos/…`, `videos/…`).
pub fn file_path(f: &MockFile) -> String {
    let dir = match f.kind {
        "photo" => "photos",
        "video" => "videos",
        "voice" => "voice",
        "sticker" => "stickers",
        "animation" => "animations",
        _ => "documents",
    };
    format!("{dir}/{}", f.name)
}

/// Adds the catalog file `name` to `message` as the Bot API field of its
/// type (a photo as two sizes, the larger one the catalog's).
fn add_media(message: &mut Value, name: &str) {
    let f = media::find(name).expect("the rotation names catalog files");
    let mut obj = json!({"file_id": file_id(name), "file_unique_id": file_unique_id(name), "file_size": f.size});
    let visual = |o: &mut Value| {
        o["width"] = json!(1280);
        o["height"] = json!(720);
    };
    match f.kind {
        "photo" => {
            visual(&mut obj);
            let thumb = json!({"file_id": format!("{}-thumb", file_id(name)), "file_unique_id": format!("{}-thumb", file_unique_id(name)), "width": 90, "height": 51, "file_size": 1200});
            message["photo"] = json!([thumb, obj]);
            return;
        }
        "sticker" => {
            visual(&mut obj);
            obj["type"] = json!("regular");
            obj["is_animated"] = json!(false);
            obj["is_video"] = json!(false);
        }
        "video" | "animation" => {
            visual(&mut obj);
            obj["duration"] = json!(4);
            obj["mime_type"] = json!(f.content_type);
        }
        "voice" => {
            obj["duration"] = json!(3);
            obj["mime_type"] = json!(f.content_type);
        }
        _ => {
            obj["file_name"] = json!(f.name);
            obj["mime_type"] = json!(f.content_type);
        }
    }
    if f.kind == "animation" {
        // The Bot API sends an animation as a document too.
        let mut doc = obj.clone();
        for k in ["width", "height", "duration"] {
            doc.as_object_mut().map(|o| o.remove(k));
        }
        doc["file_name"] = json!(f.name);
        message["document"] = doc;
    }
    message[f.kind] = obj;
}

/// `update` (a message update) with a photo of its own, `size` bytes
/// (generated: see `mock::media::generated_name`), in place of its media.
pub fn with_distinct_photo(update: &str, n: u64, size: u64) -> String {
    let mut v: Value = serde_json::from_str(update).expect("a synthetic update is JSON");
    let name = media::generated_name(n, size);
    if let Some((_, message)) = v
        .as_object_mut()
        .and_then(|o| o.iter_mut().find(|(k, _)| *k != "update_id"))
    {
        for k in [
            "photo",
            "video",
            "voice",
            "document",
            "sticker",
            "animation",
        ] {
            message.as_object_mut().map(|m| m.remove(k));
        }
        message["photo"] = json!([{"file_id": file_id(&name), "file_unique_id": file_unique_id(&name), "width": 1280, "height": 720, "file_size": size}]);
    }
    v.to_string()
}

/// The chats updates rotate through: (id, type, title).
pub const CHATS: [(i64, &str, &str); 4] = [
    (1001, "private", "Ada"),
    (-4001, "group", "Data team"),
    (-1_002_001, "supergroup", "Researchers 🔬"),
    (-1_003_001, "channel", "Newsroom"),
];

/// Update number `n` (update_id = FIRST_UPDATE_ID + n) as JSON.
pub fn synthetic_update(n: u64) -> String {
    let update_id = FIRST_UPDATE_ID + n as i64;
    let (chat_id, kind, title) = CHATS[(n % 4) as usize];
    let message_id = 100 + (n / 4) as i64;
    let date = 1_795_000_000 + n as i64;
    let chat = if kind == "private" {
        json!({"id": chat_id, "type": kind, "first_name": title, "username": "ada"})
    } else {
        json!({"id": chat_id, "type": kind, "title": title})
    };
    let mut message = json!({"message_id": message_id, "date": date, "chat": chat});
    if kind == "channel" {
        message["sender_chat"] = chat.clone();
    } else {
        message["from"] = json!({"id": 7000 + (n % 5), "is_bot": false, "first_name": "User", "last_name": (n % 5).to_string(), "language_code": "en"});
    }
    let texts = [
        "hello 👋 #greetings",
        "مرحبا",
        "данные без потерь",
        "データ 📡",
        "line one\nline \"two\"",
    ];
    if n % 5 == 3 {
        let file = MEDIA_ROTATION[(n / 5) as usize % MEDIA_ROTATION.len()];
        add_media(&mut message, file);
        message["caption"] = json!(format!("caption #{n}"));
    } else {
        message["text"] = json!(format!("{} #{n}", texts[(n % 5) as usize]));
        if n.is_multiple_of(5) {
            // "hello 👋 " is 9 UTF-16 code units (the emoji takes two).
            message["entities"] = json!([{"type": "hashtag", "offset": 9, "length": 10}]);
        }
    }
    let field = match (n % 7 == 6, kind == "channel") {
        (false, false) => "message",
        (false, true) => "channel_post",
        (true, false) => "edited_message",
        (true, true) => "edited_channel_post",
    };
    if field.starts_with("edited") {
        message["edit_date"] = json!(date + 60);
    }
    json!({"update_id": update_id, field: message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_other_type_has_a_payload_and_opt_in_types_need_asking() {
        for (i, kind) in OTHER_TYPES.iter().enumerate() {
            let v: Value =
                serde_json::from_str(&other_update(FIRST_UPDATE_ID + i as i64, kind)).unwrap();
            assert!(v[*kind].is_object(), "{kind}");
        }
        assert!(!wanted("chat_member", &[]));
        assert!(wanted("poll", &[]));
        assert!(wanted("chat_member", &["chat_member".to_owned()]));
        assert!(!wanted("poll", &["chat_member".to_owned()]));
    }

    #[test]
    fn synthetic_updates_cover_every_chat_and_kind() {
        let kinds: std::collections::BTreeSet<String> = (0..28)
            .map(|n| {
                let v: Value = serde_json::from_str(&synthetic_update(n)).unwrap();
                v.as_object()
                    .unwrap()
                    .keys()
                    .find(|k| *k != "update_id")
                    .unwrap()
                    .clone()
            })
            .collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "channel_post",
                "edited_channel_post",
                "edited_message",
                "message"
            ]
        );
        assert!(synthetic_update(3).contains("caption"));
    }
}
