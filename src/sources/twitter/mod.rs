//! X (Twitter) API v2, one folder per product: the streams (`stream/`: the
//! filtered stream with its rules, the volume and compliance streams), search
//! (`search/`), the Account Activity webhooks (`webhooks/`) and the compliance
//! records (`compliance/`); `api.rs` the bearer-token client and its errors,
//! `normalize.rs` a post to a record, for every product.

pub mod api;
pub mod compliance;
pub mod likes;
pub mod normalize;
pub mod search;
pub mod stream;
pub mod webhooks;

pub use normalize::{looks_like_stream_line, normalize_line};
pub use stream::config::api_base;
