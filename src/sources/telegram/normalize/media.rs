//! The media items of a Telegram `Message` (`--media`): the largest `photo`
//! size, and the `video`, `animation`, `document`, `voice`, `audio` and
//! `sticker` objects (Bot API 10.1 `PhotoSize`, `Video`, …). Telegram sends an
//! animation also as a `document`; it is taken once, as the animation.

use serde::Deserialize;

use crate::record::{MediaFetch, MediaItem};

/// The fields every Bot API file object shares.
#[derive(Deserialize)]
struct TgFile {
    file_id: String,
    file_unique_id: String,
    #[serde(default)]
    file_size: Option<u64>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    width: Option<u64>,
    #[serde(default)]
    height: Option<u64>,
}

#[derive(Deserialize)]
struct MessageMedia {
    #[serde(default)]
    photo: Vec<TgFile>,
    #[serde(default)]
    video: Option<TgFile>,
    #[serde(default)]
    animation: Option<TgFile>,
    #[serde(default)]
    document: Option<TgFile>,
    #[serde(default)]
    voice: Option<TgFile>,
    #[serde(default)]
    audio: Option<TgFile>,
    #[serde(default)]
    sticker: Option<TgFile>,
}

impl TgFile {
    fn item(self, kind: &str) -> MediaItem {
        MediaItem::pending(
            kind,
            &self.file_unique_id,
            MediaFetch::Telegram {
                file_id: self.file_id,
                size: self.file_size,
                mime_type: self.mime_type,
            },
        )
    }

    /// Photo sizes are ordered by how large they are: file size, else pixels.
    fn rank(&self) -> (u64, u64) {
        (
            self.file_size.unwrap_or(0),
            self.width
                .unwrap_or(0)
                .saturating_mul(self.height.unwrap_or(0)),
        )
    }
}

/// The message's media items; none when the message has no media or its
/// media fields do not have the Bot API's shape.
pub fn media_items(message: &str) -> Vec<MediaItem> {
    let Ok(m) = serde_json::from_str::<MessageMedia>(message) else {
        return Vec::new();
    };
    let mut items = Vec::new();
    if let Some(largest) = m.photo.into_iter().max_by_key(TgFile::rank) {
        items.push(largest.item("photo"));
    }
    let animation = m.animation.is_some();
    let document = m.document.filter(|_| !animation);
    for (kind, file) in [
        ("video", m.video),
        ("animation", m.animation),
        ("document", document),
        ("voice", m.voice),
        ("audio", m.audio),
        ("sticker", m.sticker),
    ] {
        if let Some(f) = file {
            items.push(f.item(kind));
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_photo_size_and_every_file_object_become_items() {
        let items = media_items(
            r#"{"message_id":1,"photo":[{"file_id":"s","file_unique_id":"us","width":90,"height":90,"file_size":900},{"file_id":"l","file_unique_id":"ul","width":1280,"height":960,"file_size":90000},{"file_id":"m","file_unique_id":"um","width":320,"height":240}],"voice":{"file_id":"v","file_unique_id":"uv","duration":3,"mime_type":"audio/ogg","file_size":10}}"#,
        );
        let keys: Vec<_> = items
            .iter()
            .map(|i| (i.kind.as_str(), i.key.as_str()))
            .collect();
        assert_eq!(keys, [("photo", "ul"), ("voice", "uv")]);
        assert_eq!(
            items[1].fetch,
            Some(MediaFetch::Telegram {
                file_id: "v".into(),
                size: Some(10),
                mime_type: Some("audio/ogg".into())
            })
        );
        assert!(items.iter().all(MediaItem::is_pending));
    }

    #[test]
    fn an_animation_is_not_taken_twice_as_a_document() {
        let items = media_items(
            r#"{"animation":{"file_id":"a","file_unique_id":"ua","width":1,"height":1,"duration":1},"document":{"file_id":"a","file_unique_id":"ua"}}"#,
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].kind, "animation");
    }

    #[test]
    fn no_media_or_a_malformed_media_field_gives_no_items() {
        assert!(media_items(r#"{"text":"hi"}"#).is_empty());
        assert!(media_items(r#"{"photo":"not a list"}"#).is_empty());
        assert!(media_items(r#"{"video":{"file_id":1}}"#).is_empty());
        assert!(media_items("not json").is_empty());
        assert!(media_items(r#"{"photo":[]}"#).is_empty());
    }
}
