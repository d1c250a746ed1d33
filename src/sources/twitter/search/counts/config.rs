//! What `ingest twitter-counts` resolves: the search's own words (query,
//! `--archive`, the window; flags over `[twitter_search]`, resolved by
//! [`super::super::config::resolve`], so a count and the search it sizes
//! read the same query the same way) and the bucket width.

use std::path::PathBuf;

use super::{CountsConfig, Granularity};
use crate::locate::{FileAt, ResolveError};
use crate::sources::twitter::search::config::{SearchFlags, TwitterSearchConfig};
use crate::sources::twitter::stream::config::TwitterConfig;

/// The command line of `twitter-counts` as plain data.
#[derive(Debug, Clone, Default)]
pub struct CountsFlags {
    /// The query, `--archive`, the window, the API base, `--mock`.
    pub search: SearchFlags,
    /// `--granularity` (default: hour, X's default).
    pub granularity: Option<Granularity>,
}

/// What `ingest twitter-counts` needs besides the run settings.
#[derive(Debug, Clone)]
pub struct CountsSettings {
    pub api_base: String,
    pub config: CountsConfig,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// Resolves `ingest twitter-counts` over `[twitter_search]` and `[twitter]`.
pub fn resolve(
    flags: &CountsFlags,
    search: &TwitterSearchConfig,
    stream: &TwitterConfig,
    at: FileAt<'_>,
) -> Result<CountsSettings, ResolveError> {
    let s = crate::sources::twitter::search::config::resolve(&flags.search, search, stream, at)?;
    Ok(CountsSettings {
        api_base: s.api_base,
        config: CountsConfig {
            query: s.config.query,
            endpoint: s.config.endpoint,
            granularity: flags.granularity.unwrap_or_default(),
            start_time: s.config.start_time,
            end_time: s.config.end_time,
        },
        mock: s.mock,
    })
}
