//! The synthetic updates the mock Telegram Bot API queues: every chat type,
//! texts in many scripts, photos with captions, edits.

use serde_json::json;

/// The first update id the mock hands out.
pub const FIRST_UPDATE_ID: i64 = 500_000;

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
        "hello 👋",
        "مرحبا",
        "данные без потерь",
        "データ 📡",
        "line one\nline \"two\"",
    ];
    if n % 5 == 3 {
        message["photo"] =
            json!([{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 90, "height": 90}]);
        message["caption"] = json!(format!("caption #{n}"));
    } else {
        message["text"] = json!(format!("{} #{n}", texts[(n % 5) as usize]));
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
