//! `ingest twitter-counts`: how many posts an X search query matches, per
//! bucket. Without `--sink` it prints the buckets on stdout (a table, or
//! `--json` / `--csv` for scripts); with `--sink NAME` each bucket is a record
//! of kind `count` in the sinks. `--summary` prints the total on stderr.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::finish;
use super::twitter::twitter_api_or_mock;
use crate::config::{LoadedConfig, Settings};
use crate::exit_codes;
use crate::run::Error;
use crate::sources::twitter::search::counts::config::{CountsSettings, resolve};
use crate::sources::twitter::search::counts::{Bucket, Counter, CountsConfig, TwitterCounts};

pub async fn run(
    args: crate::cli::TwitterCountsArgs,
    loaded: &LoadedConfig,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    let file = &loaded.file;
    let counts = resolve(
        &args.flags(),
        &file.twitter_search,
        &file.twitter,
        loaded.at(),
    )?;
    if !args.run.sinks.is_empty() {
        return into_sinks(args, loaded, counts, shutdown).await;
    }
    let (api, mock) = twitter_api_or_mock(&counts.mock, &counts.api_base, "counting").await?;
    let mut counter = Counter::new(&api, &counts.config, &shutdown, None);
    let mut buckets = Vec::new();
    let result = loop {
        match counter.next_page().await {
            Ok(Some(page)) => buckets.extend(page.buckets),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let pages = counter.pages;
    if let Some(m) = mock {
        m.stop().await;
    }
    result?;
    if shutdown.is_cancelled() {
        return Ok(exit_codes::ABORTED);
    }
    buckets.sort_by(|a, b| a.start.cmp(&b.start));
    let c = &counts.config;
    let text = if args.json {
        json_document(c, &buckets)
    } else if args.csv {
        csv(&buckets)
    } else {
        table(&buckets)
    };
    print!("{text}");
    if args.run.summary {
        let total = buckets.iter().map(|b| b.count).sum();
        eprintln!("{}", summary_line(c, buckets.len(), pages, total));
    }
    Ok(exit_codes::SUCCESS)
}

/// `--sink NAME`: the buckets as records through the pipeline.
async fn into_sinks(
    args: crate::cli::TwitterCountsArgs,
    loaded: &LoadedConfig,
    counts: CountsSettings,
    shutdown: CancellationToken,
) -> Result<u8, Error> {
    if args.run.no_raw {
        return Err(Error::Usage(
            "a count record carries its count in `raw`: --no-raw would drop it; leave --no-raw off with twitter-counts".into(),
        ));
    }
    let mut settings = Settings::resolve(&args.run, loaded)?;
    if args.mock {
        super::mock::keep_state_apart(&mut settings, &args.run, loaded);
    }
    let (api, mock) = twitter_api_or_mock(&counts.mock, &counts.api_base, "counting").await?;
    let source = TwitterCounts {
        api,
        config: counts.config.clone(),
        total: Arc::default(),
    };
    let total = source.total.clone();
    let result = crate::run::run(&settings, source, shutdown).await;
    if let Some(m) = mock {
        m.stop().await;
    }
    let summary = result?;
    if settings.summary {
        let buckets = summary.source.records;
        let line = summary_line(
            &counts.config,
            buckets as usize,
            None,
            total.load(Ordering::Relaxed),
        );
        eprintln!("{line}");
    }
    Ok(finish(summary, settings.summary))
}

/// The `--summary` line: what was counted and the total.
fn summary_line(
    c: &CountsConfig,
    buckets: usize,
    pages: impl Into<Option<u64>>,
    total: u64,
) -> String {
    let mut v = json!({
        "query": c.query, "endpoint": c.endpoint.counts_path(), "granularity": c.granularity.name(),
        "buckets": buckets, "total_post_count": total,
    });
    if let Some(p) = pages.into() {
        v["pages"] = json!(p);
    }
    v.to_string()
}

/// The default: aligned columns, a header and a total line.
fn table(buckets: &[Bucket]) -> String {
    let width = buckets
        .iter()
        .map(|b| b.count.to_string().len())
        .chain([5])
        .max()
        .unwrap_or(5);
    let mut out = format!("{:<24}  {:<24}  {:>width$}\n", "start", "end", "posts");
    for b in buckets {
        let _ = writeln!(out, "{:<24}  {:<24}  {:>width$}", b.start, b.end, b.count);
    }
    let total: u64 = buckets.iter().map(|b| b.count).sum();
    let _ = writeln!(out, "{:<24}  {:<24}  {:>width$}", "total", "", total);
    out
}

/// `--csv`: `start,end,post_count`, one bucket a line.
fn csv(buckets: &[Bucket]) -> String {
    let mut out = String::from("start,end,post_count\n");
    for b in buckets {
        let _ = writeln!(out, "{},{},{}", b.start, b.end, b.count);
    }
    out
}

/// `--json`: one document with the request, the buckets and the total.
fn json_document(c: &CountsConfig, buckets: &[Bucket]) -> String {
    let data: Vec<_> = buckets
        .iter()
        .map(|b| json!({"start": b.start, "end": b.end, "post_count": b.count}))
        .collect();
    let total: u64 = buckets.iter().map(|b| b.count).sum();
    let v = json!({
        "query": c.query, "endpoint": c.endpoint.counts_path(), "granularity": c.granularity.name(),
        "buckets": data, "total_post_count": total,
    });
    format!("{v}\n")
}
