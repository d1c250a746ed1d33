//! The `media` field of a record: the photos, videos and files a post or a
//! message points at, and what became of each (stored, skipped or failed).
//!
//! A normalizer fills [`MediaItem::fetch`] (how to get the bytes; never
//! serialized) when media capture is on; the media stage downloads, stores
//! and fills `stored`, `skipped` or `error` before the record enters the
//! pipeline.

use serde::{Deserialize, Serialize};

/// The media types `[media] types` may name.
pub const MEDIA_TYPES: [&str; 7] = [
    "photo",
    "video",
    "animation",
    "document",
    "voice",
    "audio",
    "sticker",
];

/// One media item of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MediaItem {
    /// `photo`, `video`, `animation`, `document`, `voice`, `audio` or `sticker`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The platform's id of the item: X `media_key`, Telegram `file_unique_id`.
    pub key: String,
    /// Where the bytes were stored; null when they were not.
    #[serde(default)]
    pub stored: Option<StoredMedia>,
    /// Why the item was not downloaded: `too_large` (over `max_bytes`),
    /// `type` (not in `[media] types`), `no_url` (the platform gave none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Why the item could not be stored, after the retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How to get the bytes (set by the normalizer, used by the media stage).
    #[serde(skip)]
    #[schemars(skip)]
    pub fetch: Option<MediaFetch>,
}

impl MediaItem {
    /// An item still to be fetched.
    pub fn pending(kind: &str, key: &str, fetch: MediaFetch) -> Self {
        MediaItem {
            kind: kind.to_owned(),
            key: key.to_owned(),
            stored: None,
            skipped: None,
            error: None,
            fetch: Some(fetch),
        }
    }

    /// An item that cannot be fetched at all (`reason` goes to `skipped`).
    pub fn unfetchable(kind: &str, key: &str, reason: &str) -> Self {
        MediaItem {
            kind: kind.to_owned(),
            key: key.to_owned(),
            stored: None,
            skipped: Some(reason.to_owned()),
            error: None,
            fetch: None,
        }
    }

    /// Still waiting for the media stage.
    pub fn is_pending(&self) -> bool {
        self.fetch.is_some()
            && self.stored.is_none()
            && self.skipped.is_none()
            && self.error.is_none()
    }
}

/// Where an item's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StoredMedia {
    /// `s3://bucket/key` or `file:///absolute/path`.
    pub uri: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// The MIME type (from the platform, the download or the file extension).
    pub content_type: String,
}

/// How the media stage gets an item's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaFetch {
    /// A Telegram file: `getFile`, then the bot's file endpoint.
    Telegram {
        file_id: String,
        /// `file_size` when the message gives it.
        size: Option<u64>,
        /// `mime_type` when the message gives it.
        mime_type: Option<String>,
    },
    /// A plain HTTPS URL (X media): no credentials.
    Url {
        url: String,
        /// The type the platform gives (`video/mp4` for a variant).
        content_type: Option<String>,
        /// A video's or GIF's preview image, fetched instead with
        /// `--media-video preview`.
        preview: Option<String>,
    },
}
