//! `ingest twitter-counts`: how many posts match a search query, per minute,
//! hour or day (`/2/tweets/counts/recent`, or `/2/tweets/counts/all` with
//! `--archive`), before paying for the search itself.
//!
//! Invariants:
//! - Every page is followed to the last `next_token`; a token seen twice ends
//!   the run with an error rather than a loop.
//! - The calls obey the search's rate-limit discipline ([`super::rate`]): no
//!   call while `x-rate-limit-remaining` says 0, a 429 waits for the reset.
//! - A 400 is X refusing the query or the window: it stops the run with X's
//!   own words. Unusable 200 pages are retried a few times, then fail.
//! - As a source (`--sink`), each bucket is one record of kind `count`
//!   ([`bucket_record`]); one page's records are confirmed before the next call.

pub mod config;
pub mod page;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::api::{self, Answer};
use super::rate::{self, RateLimit};
use super::{Endpoint, SearchError, window};
use crate::pipeline::Outcome;
use crate::record::{Platform, Record, Refs, RunInfo};
use crate::retry::Backoff;
use crate::sources::twitter::api::TwitterApi;
use crate::sources::{
    Source, SourceContext, SourceCounters, SourceError, SourceOutput, Tracked, received_now,
};
pub use page::{Bucket, CountsPage};

/// The record kind of one bucket.
pub const KIND: &str = "count";
/// Largest counts page accepted, in bytes (a minute-granularity week is ~1 MB).
const MAX_PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Unusable 200 pages in a row before the run gives up.
const MAX_BAD_PAGES: u32 = 5;

/// The width of a bucket (`granularity`; X's default is `hour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Minute,
    #[default]
    Hour,
    Day,
}

impl Granularity {
    pub const NAMES: &'static [&'static str] = &["minute", "hour", "day"];

    pub const fn name(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }
}

impl Endpoint {
    /// The counts path of the endpoint's plan.
    pub const fn counts_path(self) -> &'static str {
        match self {
            Endpoint::Recent => "/2/tweets/counts/recent",
            Endpoint::Archive => "/2/tweets/counts/all",
        }
    }
}

/// What a counts run asks.
#[derive(Debug, Clone)]
pub struct CountsConfig {
    pub query: String,
    pub endpoint: Endpoint,
    pub granularity: Granularity,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl CountsConfig {
    /// The query string of a call (the window clamped to what X accepts at `now`).
    fn params(&self, token: Option<&str>, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let (mut start, mut end) = (self.start_time, self.end_time);
        for what in window::clamp(self.endpoint, &mut start, &mut end, now) {
            info!("{what}");
        }
        let mut p = vec![
            ("query", self.query.clone()),
            ("granularity", self.granularity.name().to_owned()),
        ];
        p.extend(start.map(|t| ("start_time", window::format_time(t))));
        p.extend(end.map(|t| ("end_time", window::format_time(t))));
        p.extend(token.map(|t| ("next_token", t.to_owned())));
        p
    }
}

/// The pages of one counts request, each fetched through rate limits and
/// transient failures.
pub struct Counter<'a> {
    api: &'a TwitterApi,
    config: &'a CountsConfig,
    shutdown: &'a CancellationToken,
    counters: Option<&'a SourceCounters>,
    rate: RateLimit,
    last_call: Option<Instant>,
    /// The window as first sent: later pages repeat it exactly.
    params: Option<Vec<(&'static str, String)>>,
    followed: HashSet<String>,
    /// The next page's token; `None` once the last page was read.
    next: Option<Option<String>>,
    pub pages: u64,
}

impl<'a> Counter<'a> {
    pub fn new(
        api: &'a TwitterApi,
        config: &'a CountsConfig,
        shutdown: &'a CancellationToken,
        counters: Option<&'a SourceCounters>,
    ) -> Self {
        Counter {
            api,
            config,
            shutdown,
            counters,
            rate: RateLimit::default(),
            last_call: None,
            params: None,
            followed: HashSet::new(),
            next: Some(None),
            pages: 0,
        }
    }

    /// The next page; `None` after the last one or on stop.
    pub async fn next_page(&mut self) -> Result<Option<CountsPage>, SearchError> {
        let Some(token) = self.next.clone() else {
            return Ok(None);
        };
        let mut params = self
            .params
            .get_or_insert_with(|| self.config.params(None, Utc::now()))
            .clone();
        params.extend(token.map(|t| ("next_token", t)));
        let Some(page) = self.fetch(&params).await? else {
            return Ok(None);
        };
        self.pages += 1;
        self.next = match &page.next_token {
            Some(t) if !self.followed.insert(t.clone()) => {
                return Err(SearchError::Loop {
                    endpoint: self.config.endpoint.counts_path(),
                    why: "sent a `next_token` it had already sent",
                    pages: self.pages,
                    oldest: "the last page".into(),
                });
            }
            Some(t) => Some(Some(t.clone())),
            None => None,
        };
        Ok(Some(page))
    }

    /// One page, waiting out rate limits and transient failures; `None` on stop.
    async fn fetch(
        &mut self,
        params: &[(&'static str, String)],
    ) -> Result<Option<CountsPage>, SearchError> {
        let endpoint = self.config.endpoint;
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let (mut failures, mut bad_pages, mut limited) = (0u32, 0u32, 0u32);
        loop {
            if !self.pace().await {
                return Ok(None);
            }
            self.count(|c| SourceCounters::add(&c.connections, 1));
            self.last_call = Some(Instant::now());
            let call = api::call_path(
                self.api,
                endpoint.counts_path(),
                endpoint,
                params,
                MAX_PAGE_BYTES,
            )
            .await?;
            if call.rate.remaining.is_some() || call.rate.reset.is_some() {
                self.rate = call.rate;
            }
            let (reason, wait, error) = match call.answer {
                Answer::Page(body) => match page::parse(&body) {
                    Ok(page) => {
                        self.count(|c| SourceCounters::add(&c.connected, 1));
                        return Ok(Some(page));
                    }
                    Err(e) => {
                        bad_pages = unusable(bad_pages, e.to_string())?;
                        failures += 1;
                        ("http_error", backoff.delay(failures), e.to_string())
                    }
                },
                Answer::Unbuildable(e) => {
                    bad_pages = unusable(bad_pages, e.clone())?;
                    failures += 1;
                    ("http_error", backoff.delay(failures), e)
                }
                Answer::RateLimited => {
                    limited += 1;
                    self.rate.remaining = Some(0);
                    let wait = self.rate.wait_after_429(rate::now_ms(), limited);
                    (
                        "rate_limited",
                        wait,
                        "HTTP 429: rate limit exceeded".to_owned(),
                    )
                }
                Answer::Transient(e) => {
                    failures += 1;
                    ("network_error", backoff.delay(failures), e)
                }
            };
            self.count(|c| c.reconnected(reason));
            warn!(error = %error, wait_ms = wait.as_millis() as u64, "counts call failed; retrying");
            if !self.wait(wait, reason == "rate_limited").await {
                return Ok(None);
            }
        }
    }

    fn count(&self, f: impl FnOnce(&SourceCounters)) {
        if let Some(c) = self.counters {
            f(c);
        }
    }

    /// Waits what the budget and the endpoint's pace ask before a call; false on stop.
    async fn pace(&mut self) -> bool {
        if let Some(wait) = self.rate.wait_before_call(rate::now_ms()) {
            info!(wait_secs = wait.as_secs(), reset = ?self.rate.reset, "rate-limit budget spent; waiting for the reset");
            if !self.wait(wait, true).await {
                return false;
            }
            self.rate = RateLimit::default();
        }
        let min = self.config.endpoint.min_interval();
        if let Some(since) = self.last_call.map(|t| t.elapsed()).filter(|e| *e < min) {
            return self.wait(min - since, false).await;
        }
        !self.shutdown.is_cancelled()
    }

    /// Sleeps (a rate-limit wait shows in the counters); false on stop.
    async fn wait(&self, wait: Duration, rate_limit: bool) -> bool {
        let gauge = self
            .counters
            .filter(|_| rate_limit)
            .map(|c| &c.rate_limit_until_ms);
        if let Some(g) = gauge {
            let until = rate::now_ms().max(0) as u64 + wait.as_millis() as u64;
            g.store(until, std::sync::atomic::Ordering::Relaxed);
        }
        let ok = tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        };
        if let Some(g) = gauge {
            g.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        ok
    }
}

/// One more unusable page in a row; an error once there were [`MAX_BAD_PAGES`].
fn unusable(bad_pages: u32, why: String) -> Result<u32, SearchError> {
    let count = bad_pages + 1;
    if count >= MAX_BAD_PAGES {
        return Err(SearchError::BadPages { count, last: why });
    }
    Ok(count)
}

/// A short stable key of a query, so one query's buckets share an id prefix.
fn query_key(query: &str) -> String {
    let digest = sha2::Sha256::digest(query.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One bucket as a record of kind `count`:
/// `id` = `twitter:count:<recent|all>:<granularity>:<query key>:<start>`
/// (a rerun of the same query upserts the same ids with the newer counts),
/// `created_at` = the bucket's start, `text` = the query, and `raw` =
/// `{query, endpoint, granularity, start, end, post_count}`, built by ingest
/// (X's `tweet_count` is read as `post_count`).
pub fn bucket_record(
    c: &CountsConfig,
    b: &Bucket,
    received_at: Arc<str>,
    run: Arc<RunInfo>,
) -> Record {
    let raw = serde_json::json!({
        "query": c.query, "endpoint": c.endpoint.name(), "granularity": c.granularity.name(),
        "start": b.start, "end": b.end, "post_count": b.count,
    });
    let raw = serde_json::value::to_raw_value(&raw).expect("a JSON value serializes");
    Record {
        id: format!(
            "twitter:count:{}:{}:{}:{}",
            c.endpoint.name(),
            c.granularity.name(),
            query_key(&c.query),
            b.start
        ),
        platform: Platform::Twitter,
        kind: KIND.into(),
        text: Some(c.query.clone()),
        text_ascii: None,
        created_at: Some(b.start.clone()),
        received_at,
        author: None,
        chat: None,
        lang: None,
        source: None,
        matching_rules: Vec::new(),
        tags: Vec::new(),
        hashtags: Vec::new(),
        refs: Refs::default(),
        media: Vec::new(),
        run,
        raw: Some(raw.into()),
    }
}

/// `twitter-counts --sink NAME`: every bucket as a record.
pub struct TwitterCounts {
    pub api: TwitterApi,
    pub config: CountsConfig,
    /// The posts counted so far (for the command's `--summary`).
    pub total: Arc<AtomicU64>,
}

impl Source for TwitterCounts {
    fn name(&self) -> &'static str {
        "twitter-counts"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let c = &self.config;
        info!(query = %c.query, endpoint = c.endpoint.counts_path(), granularity = c.granularity.name(), "counting posts on X");
        let mut counter = Counter::new(&self.api, c, &shutdown, Some(&ctx.counters));
        while let Some(page) = counter.next_page().await? {
            let received_at = received_now();
            let run = ctx.normalize.run.clone();
            let records: Vec<_> = page
                .buckets
                .iter()
                .map(|b| Arc::new(bucket_record(c, b, received_at.clone(), run.clone())))
                .collect();
            let page_total = page.buckets.iter().map(|b| b.count).sum::<u64>();
            let Some(confirmed) = out.send_and_wait(Tracked::whole(records)).await else {
                return Ok(());
            };
            if confirmed.outcome != Outcome::Delivered {
                return Err(SearchError::CountsNotConfirmed.into());
            }
            if confirmed.cut() {
                return Ok(());
            }
            self.total.fetch_add(page_total, Ordering::Relaxed);
            debug!(pages = counter.pages, "counts page confirmed");
        }
        info!(
            total = self.total.load(Ordering::Relaxed),
            pages = counter.pages,
            "counting done"
        );
        Ok(())
    }
}
