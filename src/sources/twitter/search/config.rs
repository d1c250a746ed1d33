//! `[twitter_search]`, as written in the config file (resolved by
//! `config::SearchSettings::resolve`: flags < this table < `[twitter]`'s field
//! lists < the defaults in [`super`]).

use std::time::Duration;

use serde::Deserialize;

use crate::duration::de_duration_opt;

/// `[twitter_search]`: X recent and full-archive search.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwitterSearchConfig {
    /// The search query.
    pub query: Option<String>,
    /// Full-archive search instead of recent search.
    pub archive: Option<bool>,
    /// Oldest post time: RFC 3339, a date, or that long ago (`"7d"`).
    pub start_time: Option<String>,
    /// Newest post time (exclusive), same forms.
    pub end_time: Option<String>,
    /// Only posts newer than this id.
    pub since_id: Option<String>,
    /// Only posts older than this id.
    pub until_id: Option<String>,
    /// After the backfill, poll this often (`"60s"`).
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub poll: Option<Duration>,
    /// Default: `[twitter] tweet_fields`, else the stream's default.
    pub tweet_fields: Option<String>,
    /// Default: `[twitter] expansions`, else the stream's default.
    pub expansions: Option<String>,
    /// Default: `[twitter] user_fields`, else the stream's default.
    pub user_fields: Option<String>,
    /// Largest search page accepted, in bytes (default 32 MiB).
    pub max_page_bytes: Option<usize>,
}
