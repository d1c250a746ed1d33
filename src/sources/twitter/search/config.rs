//! `[twitter_search]`, as written in the config file, and [`resolve`], the
//! one place it is resolved: flags ([`SearchFlags`]) < this table <
//! `[twitter]`'s field lists < the defaults in [`super`].

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{DEFAULT_MAX_PAGE_BYTES, Endpoint, Fields, SearchConfig, window};
use crate::duration::de_duration_opt;
use crate::locate::{FileAt, ResolveError};
use crate::sources::twitter::stream::StreamConfig;
use crate::sources::twitter::stream::config::{TwitterConfig, api_base};

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

/// What the command line says about a search (flags and `INGEST_*`), as
/// plain data: `None` where it says nothing.
#[derive(Debug, Clone, Default)]
pub struct SearchFlags {
    pub api_base: Option<String>,
    pub query: Option<String>,
    pub archive: bool,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub since_id: Option<String>,
    pub until_id: Option<String>,
    pub poll: Option<Duration>,
    pub tweet_fields: Option<String>,
    pub expansions: Option<String>,
    pub user_fields: Option<String>,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// What `ingest twitter-search` needs besides the run settings.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub api_base: String,
    pub config: SearchConfig,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// A value from a flag (a usage error when bad) or from the table (a config
/// error at `twitter_search.FIELD`'s line).
fn pick<'a>(
    flag: Option<&'a String>,
    file: Option<&'a String>,
    field: &'static str,
) -> Option<(&'a str, Option<String>)> {
    match (flag, file) {
        (Some(f), _) => Some((f.as_str(), None)),
        (None, Some(f)) => Some((f.as_str(), Some(format!("twitter_search.{field}")))),
        (None, None) => None,
    }
}

/// Resolves `ingest twitter-search`; `stream` is `[twitter]`, whose field
/// lists and API base it falls back on.
pub fn resolve(
    flags: &SearchFlags,
    t: &TwitterSearchConfig,
    stream: &TwitterConfig,
    at: FileAt<'_>,
) -> Result<SearchSettings, ResolveError> {
    let query = flags
        .query
        .clone()
        .or(t.query.clone())
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| {
            ResolveError::Usage(
                "no search query: give --query 'QUERY' (or `query` in [twitter_search])".into(),
            )
        })?;
    let (start_time, end_time) = times(flags, t, at)?;
    let id = |flag: &Option<String>, file: &Option<String>, field, name| {
        post_id(pick(flag.as_ref(), file.as_ref(), field), at, name)
    };
    let since_id = id(&flags.since_id, &t.since_id, "since_id", "since-id")?;
    let until_id = id(&flags.until_id, &t.until_id, "until_id", "until-id")?;
    let poll = flags.poll.or(t.poll);
    if poll.is_some_and(|p| p.is_zero()) {
        let from = flags.poll.is_none().then_some("twitter_search.poll");
        return Err(at.bad(from, "poll", "must be more than zero".into()));
    }
    let max_page_bytes = t.max_page_bytes.unwrap_or(DEFAULT_MAX_PAGE_BYTES);
    if max_page_bytes == 0 {
        return Err(at
            .error("twitter_search.max_page_bytes", "must be at least 1")
            .into());
    }
    let archive = flags.archive || t.archive.unwrap_or(false);
    Ok(SearchSettings {
        api_base: api_base(flags.api_base.as_deref(), stream),
        config: SearchConfig {
            query,
            endpoint: if archive {
                Endpoint::Archive
            } else {
                Endpoint::Recent
            },
            start_time,
            end_time,
            since_id,
            until_id,
            poll,
            fields: fields(flags, t, stream),
            max_page_bytes,
        },
        mock: flags.mock.clone(),
    })
}

type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `--start-time`/`--end-time` (or the table's), parsed, start before end.
fn times(
    flags: &SearchFlags,
    t: &TwitterSearchConfig,
    at: FileAt<'_>,
) -> Result<Window, ResolveError> {
    let now = Utc::now();
    let time = |flag: &Option<String>, file: &Option<String>, field, name| {
        pick(flag.as_ref(), file.as_ref(), field)
            .map(|(v, from)| {
                window::parse_time(v, now).map_err(|m| at.bad(from.as_deref(), name, m))
            })
            .transpose()
    };
    let start = time(&flags.start_time, &t.start_time, "start_time", "start-time")?;
    let end = time(&flags.end_time, &t.end_time, "end_time", "end-time")?;
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        return Err(ResolveError::Usage(format!(
            "the start time ({}) is not before the end time ({})",
            window::format_time(s),
            window::format_time(e)
        )));
    }
    Ok((start, end))
}

/// A post id: 1 to 19 digits.
fn post_id(
    value: Option<(&str, Option<String>)>,
    at: FileAt<'_>,
    flag: &str,
) -> Result<Option<String>, ResolveError> {
    value
        .map(|(v, from)| {
            let v = v.trim();
            if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) {
                Ok(v.to_owned())
            } else {
                let message = format!("`{v}` is not a post id (digits only)");
                Err(at.bad(from.as_deref(), flag, message))
            }
        })
        .transpose()
}

/// The field lists: flag, else `[twitter_search]`, else `[twitter]`, else the stream's default.
fn fields(flags: &SearchFlags, t: &TwitterSearchConfig, stream: &TwitterConfig) -> Fields {
    let d = StreamConfig::default();
    let field = |flag: &Option<String>, own: &Option<String>, tw: &Option<String>, default| {
        flag.clone()
            .or(own.clone())
            .or(tw.clone())
            .unwrap_or(default)
    };
    Fields {
        tweet_fields: field(
            &flags.tweet_fields,
            &t.tweet_fields,
            &stream.tweet_fields,
            d.tweet_fields,
        ),
        expansions: field(
            &flags.expansions,
            &t.expansions,
            &stream.expansions,
            d.expansions,
        ),
        user_fields: field(
            &flags.user_fields,
            &t.user_fields,
            &stream.user_fields,
            d.user_fields,
        ),
        media_fields: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LoadedConfig;
    use clap::Parser;

    fn resolve(config: &str, flags: &[&str]) -> Result<SearchSettings, ResolveError> {
        let loaded = LoadedConfig::parse(Some(PathBuf::from("ingest.toml")), config.to_owned())
            .map_err(ResolveError::Config)?;
        let cli = crate::cli::Cli::try_parse_from(
            ["ingest", "twitter-search", "--sink", "stdout"]
                .iter()
                .chain(flags),
        )
        .unwrap();
        let crate::cli::Command::TwitterSearch(args) = cli.command else {
            unreachable!()
        };
        let file = &loaded.file;
        super::resolve(
            &args.flags(),
            &file.twitter_search,
            &file.twitter,
            loaded.at(),
        )
    }

    #[test]
    fn flags_over_the_table_over_the_stream_fields() {
        let s = resolve(
            "[twitter]\nuser_fields = \"name\"\n[twitter_search]\nquery = \"cats\"\narchive = true\npoll = \"60s\"\ntweet_fields = \"created_at\"\n",
            &["--expansions", "author_id,geo.place_id"],
        )
        .unwrap();
        let c = &s.config;
        assert_eq!((c.query.as_str(), c.endpoint), ("cats", Endpoint::Archive));
        assert_eq!(c.poll, Some(Duration::from_secs(60)));
        assert_eq!(c.fields.tweet_fields, "created_at");
        assert_eq!(c.fields.expansions, "author_id,geo.place_id");
        assert_eq!(c.fields.user_fields, "name");
        let s = resolve(
            "",
            &["--query", "dogs", "--since-id", "123", "--start-time", "2h"],
        )
        .unwrap();
        assert_eq!(s.config.endpoint, Endpoint::Recent);
        assert_eq!(
            s.config.fields.expansions,
            StreamConfig::default().expansions
        );
        assert!(s.config.start_time.is_some());
    }

    #[test]
    fn bad_values_are_usage_errors_from_flags_and_located_config_errors_from_the_file() {
        let usage = |flags: &[&str]| match resolve("", flags) {
            Err(ResolveError::Usage(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(usage(&[]).contains("--query"));
        assert!(usage(&["--query", "c", "--start-time", "last tuesday"]).contains("--start-time"));
        assert!(usage(&["--query", "c", "--since-id", "12ab"]).contains("not a post id"));
        assert!(
            usage(&["--query", "c", "--start-time", "1h", "--end-time", "2h"])
                .contains("not before")
        );
        assert!(usage(&["--query", "c", "--poll", "0s"]).contains("more than zero"));
        let config = |text: &str| match resolve(text, &["--query", "c"]) {
            Err(ResolveError::Config(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let e = config("[twitter_search]\nquery = \"c\"\nstart_time = \"soonish\"\n");
        assert!(
            e.contains("line 3") && e.contains("twitter_search.start_time"),
            "{e}"
        );
        let e = config("[twitter_search]\nqeury = \"c\"\n");
        assert!(e.contains("line 2") && e.contains("unknown field"), "{e}");
        let e = config("[twitter_search]\nmax_page_bytes = 0\n");
        assert!(e.contains("twitter_search.max_page_bytes"), "{e}");
        let e = config("[twitter_search]\npoll = \"never\"\n");
        assert!(
            e.contains("line 2") && e.contains("twitter_search.poll"),
            "{e}"
        );
    }
}
