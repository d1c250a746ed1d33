//! The resolution of `ingest twitter-search` (its `[twitter_search]` table
//! lives in `sources/twitter/search/config.rs`):
//! flags (and `INGEST_*`) < `[twitter_search]` < `[twitter]`'s fields < defaults.

use std::path::PathBuf;

use super::{LoadedConfig, ResolveError, api_base};
use crate::cli::TwitterSearchArgs;
use crate::sources::twitter::search::{
    DEFAULT_MAX_PAGE_BYTES, Endpoint, Fields, SearchConfig, window,
};
use crate::sources::twitter::stream::StreamConfig;

/// What `ingest twitter-search` needs besides the run settings.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    pub api_base: String,
    pub config: SearchConfig,
    /// Run the built-in mock (with this scenario file, if any).
    pub mock: Option<Option<PathBuf>>,
}

/// A value from a flag (a usage error when bad) or from the config (a config error with its line).
fn pick<'a>(
    flag: Option<&'a String>,
    file: Option<&'a String>,
    field: &'static str,
) -> Option<(&'a str, Option<&'static str>)> {
    match (flag, file) {
        (Some(f), _) => Some((f.as_str(), None)),
        (None, Some(f)) => Some((f.as_str(), Some(field))),
        (None, None) => None,
    }
}

fn bad(loaded: &LoadedConfig, from: Option<&str>, flag: &str, message: String) -> ResolveError {
    match from {
        Some(field) => loaded
            .error(&format!("twitter_search.{field}"), message)
            .into(),
        None => ResolveError::Usage(format!("--{flag}: {message}")),
    }
}

impl SearchSettings {
    pub fn resolve(args: &TwitterSearchArgs, loaded: &LoadedConfig) -> Result<Self, ResolveError> {
        let t = &loaded.file.twitter_search;
        let query = args
            .query
            .clone()
            .or(t.query.clone())
            .filter(|q| !q.trim().is_empty())
            .ok_or_else(|| {
                ResolveError::Usage(
                    "no search query: give --query 'QUERY' (or `query` in [twitter_search])".into(),
                )
            })?;
        let now = chrono::Utc::now();
        let time = |flag, file, field, name| -> Result<_, ResolveError> {
            pick(flag, file, field)
                .map(|(v, from)| window::parse_time(v, now).map_err(|m| bad(loaded, from, name, m)))
                .transpose()
        };
        let start_time = time(
            args.start_time.as_ref(),
            t.start_time.as_ref(),
            "start_time",
            "start-time",
        )?;
        let end_time = time(
            args.end_time.as_ref(),
            t.end_time.as_ref(),
            "end_time",
            "end-time",
        )?;
        if let (Some(s), Some(e)) = (start_time, end_time)
            && s >= e
        {
            return Err(ResolveError::Usage(format!(
                "the start time ({}) is not before the end time ({})",
                window::format_time(s),
                window::format_time(e)
            )));
        }
        let id = |flag, file, field, name| -> Result<Option<String>, ResolveError> {
            pick(flag, file, field)
                .map(|(v, from)| {
                    let v = v.trim();
                    if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) {
                        Ok(v.to_owned())
                    } else {
                        Err(bad(
                            loaded,
                            from,
                            name,
                            format!("`{v}` is not a post id (digits only)"),
                        ))
                    }
                })
                .transpose()
        };
        let since_id = id(
            args.since_id.as_ref(),
            t.since_id.as_ref(),
            "since_id",
            "since-id",
        )?;
        let until_id = id(
            args.until_id.as_ref(),
            t.until_id.as_ref(),
            "until_id",
            "until-id",
        )?;
        let poll = args.poll.or(t.poll);
        if poll.is_some_and(|p| p.is_zero()) {
            let from = args.poll.is_none().then_some("poll");
            return Err(bad(loaded, from, "poll", "must be more than zero".into()));
        }
        let max_page_bytes = t.max_page_bytes.unwrap_or(DEFAULT_MAX_PAGE_BYTES);
        if max_page_bytes == 0 {
            return Err(loaded
                .error("twitter_search.max_page_bytes", "must be at least 1")
                .into());
        }
        let (tw, d) = (&loaded.file.twitter, StreamConfig::default());
        let field = |flag: &Option<String>,
                     own: &Option<String>,
                     stream: &Option<String>,
                     default: String| {
            flag.clone()
                .or(own.clone())
                .or(stream.clone())
                .unwrap_or(default)
        };
        let fields = Fields {
            tweet_fields: field(
                &args.tweet_fields,
                &t.tweet_fields,
                &tw.tweet_fields,
                d.tweet_fields,
            ),
            expansions: field(
                &args.expansions,
                &t.expansions,
                &tw.expansions,
                d.expansions,
            ),
            user_fields: field(
                &args.user_fields,
                &t.user_fields,
                &tw.user_fields,
                d.user_fields,
            ),
        };
        let archive = args.archive || t.archive.unwrap_or(false);
        Ok(SearchSettings {
            api_base: api_base(args.api.twitter_api_base.as_deref(), loaded),
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
                fields,
                max_page_bytes,
            },
            mock: args.mock.then(|| args.mock_scenario.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

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
        SearchSettings::resolve(&args, &loaded)
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
