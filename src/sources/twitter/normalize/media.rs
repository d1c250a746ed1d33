//! The media items of an X post (`--media`): `data.attachments.media_keys`,
//! each looked up in `includes.media` (asked for with
//! `expansions=attachments.media_keys` and
//! `media.fields=url,variants,preview_image_url,type`). A photo is fetched
//! from its `url`; a video or GIF from its highest-bitrate `video/mp4`
//! variant, or its `preview_image_url` (`--media-video preview`, or when it
//! has no mp4 variant).

use serde::Deserialize;

use crate::record::{MediaFetch, MediaItem};

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    includes: Option<Includes>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    attachments: Option<Attachments>,
}

#[derive(Deserialize)]
struct Attachments {
    #[serde(default)]
    media_keys: Vec<String>,
}

#[derive(Deserialize)]
struct Includes {
    #[serde(default)]
    media: Vec<Media>,
}

#[derive(Deserialize)]
struct Media {
    #[serde(default)]
    media_key: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    preview_image_url: Option<String>,
    #[serde(default)]
    variants: Vec<Variant>,
}

#[derive(Deserialize)]
struct Variant {
    #[serde(default)]
    bit_rate: Option<u64>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// The record's media type for X's `type`.
fn kind(x: Option<&str>) -> &'static str {
    match x {
        Some("video") => "video",
        Some("animated_gif") => "animation",
        _ => "photo",
    }
}

impl Media {
    fn item(&self, key: &str) -> MediaItem {
        let kind = kind(self.kind.as_deref());
        let best = self
            .variants
            .iter()
            .filter(|v| v.content_type.as_deref() == Some("video/mp4"))
            .filter_map(|v| Some((v.bit_rate.unwrap_or(0), v.url.as_deref()?)))
            .max_by_key(|(rate, _)| *rate)
            .map(|(_, url)| url.to_owned());
        let preview = self.preview_image_url.clone();
        let fetch = match (kind, best, &self.url) {
            ("photo", _, Some(url)) => Some((url.clone(), None)),
            ("photo", _, None) => None,
            (_, Some(mp4), _) => Some((mp4, Some("video/mp4".to_owned()))),
            (_, None, _) => preview.clone().map(|p| (p, None)),
        };
        match fetch {
            Some((url, content_type)) => MediaItem::pending(
                kind,
                key,
                MediaFetch::Url {
                    url,
                    content_type,
                    preview: preview.filter(|_| kind != "photo"),
                },
            ),
            None => MediaItem::unfetchable(kind, key, "no_url"),
        }
    }
}

/// The post's media items, in `media_keys` order; a key without its
/// `includes.media` object is marked `skipped: "no_url"`.
pub fn media_items(line: &str) -> Vec<MediaItem> {
    let Ok(line) = serde_json::from_str::<Line>(line) else {
        return Vec::new();
    };
    let keys = line
        .data
        .and_then(|d| d.attachments)
        .map(|a| a.media_keys)
        .unwrap_or_default();
    let media = line.includes.map(|i| i.media).unwrap_or_default();
    keys.iter()
        .map(|key| {
            match media
                .iter()
                .find(|m| m.media_key.as_deref() == Some(key.as_str()))
            {
                Some(m) => m.item(key),
                None => MediaItem::unfetchable("photo", key, "no_url"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(item: &MediaItem) -> (&str, Option<&str>) {
        match &item.fetch {
            Some(MediaFetch::Url { url, preview, .. }) => (url, preview.as_deref()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn photos_videos_and_gifs_pick_their_url() {
        let items = media_items(
            r#"{"data":{"id":"1","attachments":{"media_keys":["3_1","7_2","16_3","3_9"]}},"includes":{"media":[
                {"media_key":"3_1","type":"photo","url":"https://p/1.jpg"},
                {"media_key":"7_2","type":"video","preview_image_url":"https://p/2.jpg","variants":[
                    {"content_type":"application/x-mpegURL","url":"https://v/2.m3u8"},
                    {"bit_rate":256000,"content_type":"video/mp4","url":"https://v/2-low.mp4"},
                    {"bit_rate":2176000,"content_type":"video/mp4","url":"https://v/2-high.mp4"},
                    {"bit_rate":832000,"content_type":"video/mp4","url":"https://v/2-mid.mp4"}]},
                {"media_key":"16_3","type":"animated_gif","preview_image_url":"https://p/3.jpg"}]}}"#,
        );
        let kinds: Vec<_> = items
            .iter()
            .map(|i| (i.kind.as_str(), i.key.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("photo", "3_1"),
                ("video", "7_2"),
                ("animation", "16_3"),
                ("photo", "3_9")
            ]
        );
        assert_eq!(url(&items[0]), ("https://p/1.jpg", None));
        assert_eq!(
            url(&items[1]),
            ("https://v/2-high.mp4", Some("https://p/2.jpg"))
        );
        // A GIF without an mp4 variant: its preview.
        assert_eq!(url(&items[2]), ("https://p/3.jpg", Some("https://p/3.jpg")));
        // A key without its include: marked, not dropped.
        assert_eq!(items[3].skipped.as_deref(), Some("no_url"));
    }

    #[test]
    fn posts_without_media_or_with_malformed_media_give_no_items() {
        assert!(media_items(r#"{"data":{"id":"1","text":"t"}}"#).is_empty());
        assert!(
            media_items(r#"{"data":{"id":"1","attachments":{"media_keys":"3_1"}}}"#).is_empty()
        );
        assert!(media_items(r#"{"data":{"id":"1","attachments":{"poll_ids":["1"]}}}"#).is_empty());
        assert!(media_items("[1]").is_empty());
        let photo_without_url = media_items(
            r#"{"data":{"attachments":{"media_keys":["3_1"]}},"includes":{"media":[{"media_key":"3_1","type":"photo"}]}}"#,
        );
        assert_eq!(photo_without_url[0].skipped.as_deref(), Some("no_url"));
    }
}
