//! `[media]`, as written in the config file, the `--media` flags, and
//! [`resolve`]: defaults < `[media]` < flags. Off unless `enabled = true` or
//! `--media`.

use serde::Deserialize;

use super::key::PathTemplate;
use crate::locate::{ConfigError, FileAt};
use crate::record::media::MEDIA_TYPES;
use crate::sinks::aws::{self, AwsConnection};
use crate::sinks::common::RetryConfig;
use crate::sources::telegram::api::TelegramApi;

/// The Bot API's own download limit, the default `max_bytes`.
pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;
/// Largest `max_bytes` accepted: one object is held in memory whole.
pub const MAX_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Downloads at once by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Most downloads at once `concurrency` may ask for.
pub const MAX_CONCURRENCY: usize = 64;
/// The default object path: content-addressed.
pub const DEFAULT_PATH: &str = "media/{platform}/{sha256:0:2}/{sha256}.{ext}";
const DEFAULT_DOWNLOAD_TIMEOUT_MS: u64 = 60_000;

/// Where media objects go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Files under `path` (relative to the working directory unless absolute).
    #[default]
    File,
    /// Objects in `bucket`, keys `prefix` + `path`.
    S3,
}

/// Which bytes of an X video or GIF to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoChoice {
    /// The highest-bitrate `video/mp4` variant.
    #[default]
    Best,
    /// The preview image only.
    Preview,
}

/// `[media]`: the photos, videos and files records point at.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Store media (default false; `--media` turns it on).
    pub enabled: Option<bool>,
    /// `file` (default) or `s3`.
    pub store: Option<StoreKind>,
    /// Object path template: `{platform}`, `{type}`, `{sha256}`, `{sha256:A:B}`, `{ext}`.
    pub path: Option<String>,
    /// S3: the bucket (it must exist).
    pub bucket: Option<String>,
    /// S3: put before every key (`archive/`).
    pub prefix: Option<String>,
    /// S3: path-style URLs (local S3 servers).
    pub force_path_style: Option<bool>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    /// Largest object downloaded; larger ones are marked `skipped: "too_large"`.
    pub max_bytes: Option<u64>,
    /// Media types to download; the others are marked `skipped: "type"`.
    pub types: Option<Vec<String>>,
    /// Downloads at once.
    pub concurrency: Option<usize>,
    /// Longest single download.
    pub download_timeout_ms: Option<u64>,
    /// X videos and GIFs: `best` (highest-bitrate mp4) or `preview` (the image).
    pub video: Option<VideoChoice>,
    /// Attempts and backoff, as a sink's `retry`.
    pub retry: Option<RetryConfig>,
}

/// What the command line says about media (flags and `INGEST_MEDIA*`).
#[derive(Debug, Clone, Default)]
pub struct MediaFlags {
    pub media: bool,
    pub video: Option<VideoChoice>,
}

/// Where the store is, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    File,
    S3 {
        bucket: String,
        prefix: String,
        force_path_style: bool,
        connection: AwsConnection,
    },
}

/// `[media]` resolved: media capture is on.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub store: StoreSettings,
    pub path: PathTemplate,
    pub max_bytes: u64,
    pub types: Vec<String>,
    pub concurrency: usize,
    pub download_timeout_ms: u64,
    pub video: VideoChoice,
    pub retry: RetryConfig,
    /// The bot whose files Telegram records point at (set by `ingest telegram`).
    pub telegram: Option<TelegramApi>,
}

/// Resolves `[media]` and the flags; `None` when media capture is off.
pub fn resolve(
    flags: &MediaFlags,
    t: &MediaConfig,
    at: FileAt<'_>,
) -> Result<Option<MediaSettings>, ConfigError> {
    if !(flags.media || t.enabled == Some(true) || flags.video.is_some()) {
        return Ok(None);
    }
    let bad = |field: &str, m: String| at.error(&format!("media.{field}"), m);
    let path = PathTemplate::parse(t.path.as_deref().unwrap_or(DEFAULT_PATH))
        .map_err(|m| bad("path", m))?;
    let store = store(t, path.is_absolute()).map_err(|(f, m)| bad(f, m))?;
    let max_bytes = t.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 || max_bytes > MAX_MAX_BYTES {
        return Err(bad(
            "max_bytes",
            format!("{max_bytes} is out of range: 1 to {MAX_MAX_BYTES} (1 GiB)"),
        ));
    }
    let types = types(t.types.as_deref()).map_err(|m| bad("types", m))?;
    let concurrency = t.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 || concurrency > MAX_CONCURRENCY {
        return Err(bad(
            "concurrency",
            format!("{concurrency} is out of range: 1 to {MAX_CONCURRENCY}"),
        ));
    }
    let download_timeout_ms = t.download_timeout_ms.unwrap_or(DEFAULT_DOWNLOAD_TIMEOUT_MS);
    if download_timeout_ms == 0 {
        return Err(bad("download_timeout_ms", "must be at least 1".into()));
    }
    let retry = t.retry.unwrap_or_default();
    if retry.max_attempts == 0 {
        return Err(bad(
            "retry.max_attempts",
            "must be at least 1 (the first attempt counts)".into(),
        ));
    }
    Ok(Some(MediaSettings {
        store,
        path,
        max_bytes,
        types,
        concurrency,
        download_timeout_ms,
        video: flags.video.or(t.video).unwrap_or_default(),
        retry,
        telegram: None,
    }))
}

/// The store: its keys must fit the kind.
fn store(t: &MediaConfig, absolute: bool) -> Result<StoreSettings, (&'static str, String)> {
    let s3_only = [
        ("bucket", t.bucket.is_some()),
        ("prefix", t.prefix.is_some()),
        ("force_path_style", t.force_path_style.is_some()),
        ("region", t.region.is_some()),
        ("endpoint", t.endpoint.is_some()),
    ];
    match t.store.unwrap_or_default() {
        StoreKind::File => match s3_only.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err((
                field,
                "applies to `store = \"s3\"` only; remove it or set `store = \"s3\"`".into(),
            )),
            None => Ok(StoreSettings::File),
        },
        StoreKind::S3 => {
            let bucket = t.bucket.clone().unwrap_or_default();
            if bucket.trim().is_empty() {
                return Err(("bucket", "is required with `store = \"s3\"`".into()));
            }
            if absolute {
                return Err((
                    "path",
                    "is an object key with `store = \"s3\"`: it cannot start with `/`".into(),
                ));
            }
            let connection = AwsConnection {
                region: t.region.clone(),
                endpoint: t.endpoint.clone(),
                connect_timeout_ms: t
                    .connect_timeout_ms
                    .unwrap_or_else(aws::default_connect_timeout_ms),
                request_timeout_ms: t
                    .request_timeout_ms
                    .unwrap_or_else(aws::default_request_timeout_ms),
            };
            connection.validate()?;
            let prefix = t.prefix.clone().unwrap_or_default();
            if prefix.starts_with('/') || prefix.split('/').any(|p| p == "..") {
                return Err((
                    "prefix",
                    format!("`{prefix}` may not start with `/` or hold a `..` segment"),
                ));
            }
            Ok(StoreSettings::S3 {
                bucket,
                prefix,
                force_path_style: t.force_path_style.unwrap_or(false),
                connection,
            })
        }
    }
}

/// The `types` list: known names, at least one.
fn types(list: Option<&[String]>) -> Result<Vec<String>, String> {
    let Some(list) = list else {
        return Ok(MEDIA_TYPES.iter().map(|t| (*t).to_owned()).collect());
    };
    if list.is_empty() {
        return Err("is empty: name at least one type, or turn media off".into());
    }
    for t in list {
        if !MEDIA_TYPES.contains(&t.as_str()) {
            return Err(format!(
                "`{}` is not a media type: use {}",
                t.escape_debug(),
                MEDIA_TYPES.join(", ")
            ));
        }
    }
    Ok(list.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_text(text: &str, flags: &MediaFlags) -> Result<Option<MediaSettings>, String> {
        let t: MediaConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let file = format!("[media]\n{text}");
        let at = FileAt {
            path: None,
            text: &file,
        };
        resolve(flags, &t, at).map_err(|e| e.to_string())
    }

    fn on() -> MediaFlags {
        MediaFlags {
            media: true,
            video: None,
        }
    }

    #[test]
    fn off_unless_asked_and_defaults_when_on() {
        assert!(resolve_text("", &MediaFlags::default()).unwrap().is_none());
        assert!(
            resolve_text("enabled = false", &MediaFlags::default())
                .unwrap()
                .is_none()
        );
        let s = resolve_text("", &on()).unwrap().unwrap();
        assert_eq!(s.store, StoreSettings::File);
        assert_eq!(s.max_bytes, DEFAULT_MAX_BYTES);
        assert_eq!(s.concurrency, DEFAULT_CONCURRENCY);
        assert_eq!(s.types.len(), MEDIA_TYPES.len());
        assert_eq!(s.video, VideoChoice::Best);
        let s = resolve_text(
            "enabled = true\nvideo = \"preview\"",
            &MediaFlags::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.video, VideoChoice::Preview);
        let flags = MediaFlags {
            media: true,
            video: Some(VideoChoice::Best),
        };
        let s = resolve_text("video = \"preview\"", &flags)
            .unwrap()
            .unwrap();
        assert_eq!(s.video, VideoChoice::Best, "the flag wins");
    }

    #[test]
    fn s3_store_needs_a_bucket_and_keeps_s3_keys_to_itself() {
        let s = resolve_text(
            "store = \"s3\"\nbucket = \"b\"\nprefix = \"archive/\"\nendpoint = \"http://127.0.0.1:9\"\nforce_path_style = true",
            &on(),
        )
        .unwrap()
        .unwrap();
        let StoreSettings::S3 { bucket, prefix, .. } = &s.store else {
            panic!("{:?}", s.store)
        };
        assert_eq!((bucket.as_str(), prefix.as_str()), ("b", "archive/"));
        let e = resolve_text("store = \"s3\"", &on()).unwrap_err();
        assert!(e.contains("media.bucket") && e.contains("required"), "{e}");
        let e = resolve_text("bucket = \"b\"", &on()).unwrap_err();
        assert!(e.contains("media.bucket") && e.contains("s3"), "{e}");
        let e =
            resolve_text("store = \"s3\"\nbucket = \"b\"\nendpoint = \"x\"", &on()).unwrap_err();
        assert!(e.contains("media.endpoint"), "{e}");
        let e =
            resolve_text("store = \"s3\"\nbucket = \"b\"\nprefix = \"../x\"", &on()).unwrap_err();
        assert!(e.contains("media.prefix"), "{e}");
        let e = resolve_text(
            "store = \"s3\"\nbucket = \"b\"\npath = \"/abs/{sha256}\"",
            &on(),
        )
        .unwrap_err();
        assert!(e.contains("media.path"), "{e}");
    }

    #[test]
    fn malformed_and_hostile_values_are_refused_with_the_field() {
        for (text, field) in [
            ("max_bytes = 0", "media.max_bytes"),
            ("max_bytes = 18446744073709551615", "media.max_bytes"),
            ("concurrency = 0", "media.concurrency"),
            ("concurrency = 100000", "media.concurrency"),
            ("types = []", "media.types"),
            ("types = [\"photo\", \"exe\\u0000\"]", "media.types"),
            ("download_timeout_ms = 0", "media.download_timeout_ms"),
            ("retry = { max_attempts = 0 }", "media.retry.max_attempts"),
            ("path = \"media/{sha256}/../../etc/passwd\"", "media.path"),
            ("path = \"media/{platform}.{ext}\"", "media.path"),
            ("path = \"{nope}{sha256}\"", "media.path"),
        ] {
            let e = resolve_text(text, &on()).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
        for text in [
            "store = \"ftp\"",
            "unknown = 1",
            "max_bytes = -1",
            "types = \"photo\"",
            "video = \"worst\"",
            "concurrency = 1.5",
        ] {
            assert!(resolve_text(text, &on()).is_err(), "{text}");
        }
        let huge = format!("path = \"{}{{sha256}}\"", "a/".repeat(5000));
        assert!(
            resolve_text(&huge, &on())
                .unwrap_err()
                .contains("media.path")
        );
    }
}
