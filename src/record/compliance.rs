//! What a compliance record means to whoever receives it: the X compliance
//! stream (`sources/twitter/compliance/`) makes these records, and a sink that
//! can remove a post (MongoDB) reads them here, never from the source.

use super::Record;

/// The record kind of every compliance event.
pub const KIND: &str = "compliance";

/// The Post event that removes a post for good.
pub const DELETE: &str = "delete";

impl Record {
    /// The post a `delete` compliance record removes, if it is one.
    pub fn deleted_post(&self) -> Option<&str> {
        (self.kind == KIND && self.tags.first().map(String::as_str) == Some(DELETE))
            .then_some(self.refs.tweet_id.as_deref())
            .flatten()
    }
}
