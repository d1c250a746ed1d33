//! X (Twitter) API v2: the filtered stream source, rule management, and the
//! normalizer for stream lines.

pub mod activity_api;
pub mod api;
pub mod compliance;
mod forward;
pub mod normalize;
pub mod oauth1;
pub mod rules;
pub mod search;
pub mod stream;
pub mod volume;
pub mod webhook;
pub mod webhook_kinds;
pub mod webhooks_api;

pub use normalize::{looks_like_stream_line, normalize_line};
