//! Telegram Bot API: long polling and webhook sources, and the normalizer for updates.

pub mod api;
pub mod config;
pub mod normalize;
pub mod polling;
pub mod webhook;

pub use normalize::{MESSAGE_KINDS, normalize_update, update_id};

use std::sync::Arc;

use crate::record::{Normalized, Record};
use crate::sources::SourceContext;

/// Normalizes one update and applies the chat filter.
/// `Ok(None)`: filtered out (still to be confirmed to Telegram).
pub fn update_to_record(
    raw: &[u8],
    received_at: &Arc<str>,
    ctx: &SourceContext,
    chats: &[i64],
) -> Result<Option<Arc<Record>>, crate::record::NormalizeError> {
    match normalize_update(raw, received_at, &ctx.normalize)? {
        Normalized::Record(r) => {
            if chats.is_empty() || r.chat.as_ref().is_some_and(|c| chats.contains(&c.id)) {
                Ok(Some(Arc::from(r)))
            } else {
                Ok(None)
            }
        }
        Normalized::Control(_) | Normalized::Nothing => Ok(None),
    }
}
