//! Media beside the records (`--media`, `[media]`): the photos, videos and
//! files posts and messages point at, downloaded once each and stored under
//! content-addressed paths in files or S3, before their record enters the
//! pipeline.
//!
//! - `config`: `[media]`, the flags, and their resolution.
//! - `key`: the path template, extensions and MIME types.
//! - `fetch`: downloads (Telegram through the bot, X from public URLs).
//! - `store`: files and S3 objects, written whole.
//! - `stage`: the [`crate::sources::MediaResolver`] the source's output calls.

pub mod config;
pub mod fetch;
pub mod key;
pub mod stage;
pub mod store;

pub use config::{MediaConfig, MediaFlags, MediaSettings, VideoChoice};
pub use stage::MediaStage;
pub use store::MediaStore;
