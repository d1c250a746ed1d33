//! X (Twitter) API v2: the filtered stream source, rule management, and the
//! normalizer for stream lines.

pub mod api;
pub mod compliance;
mod forward;
pub mod normalize;
pub mod rules;
pub mod search;
pub mod stream;
pub mod volume;
pub mod webhook;

pub use normalize::{looks_like_stream_line, normalize_line};
