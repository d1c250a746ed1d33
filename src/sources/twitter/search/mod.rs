//! `ingest twitter-search`: X recent search (`/2/tweets/search/recent`) or
//! full-archive search (`/2/tweets/search/all`), page by page, newest first.
//!
//! Invariants:
//! - A page's records go to the pipeline whole, and the checkpoint moves past
//!   the page only once every sink confirmed every record of it (the Telegram
//!   offset discipline); a killed run resumes at the first unconfirmed page.
//! - The checkpoint is keyed by query and endpoint and locked: two runs never
//!   share it, and another query never reuses it.
//! - A finished backfill's rerun asks only for posts newer than the newest
//!   confirmed (`since_id`): cron mode. `--poll` keeps doing that.
//! - No call is made while `x-rate-limit-remaining` says 0: the source sleeps
//!   until `x-rate-limit-reset` (shown in the status line and `/metrics`).
//! - Each post becomes the line `{"data", "includes"}` the filtered stream
//!   would have sent, normalized by the stream's normalizer.

mod api;
pub mod checkpoint;
pub mod config;
pub mod counts;
pub mod page;
pub mod rate;
pub mod window;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use api::Answer;
pub use api::Fields;
use checkpoint::{SearchState, Store, Window};
use page::Page;
use rate::RateLimit;

use super::api::TwitterApi;
use super::normalize_line;
use crate::pipeline::Outcome;
use crate::record::Normalized;
use crate::retry::Backoff;
use crate::sources::seen::SeenWindow;
use crate::sources::{
    Origin, Source, SourceContext, SourceCounters, SourceError, SourceOutput, Tracked, received_now,
};

/// Which search endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// The last 7 days (`/2/tweets/search/recent`).
    Recent,
    /// Every post since 2006 (`/2/tweets/search/all`), with `--archive`.
    Archive,
}

impl Endpoint {
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Recent => "/2/tweets/search/recent",
            Endpoint::Archive => "/2/tweets/search/all",
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Endpoint::Recent => "recent",
            Endpoint::Archive => "all",
        }
    }

    /// The largest `max_results` the endpoint takes (docs.x.com: 100 and 500).
    pub const fn max_results(self) -> usize {
        match self {
            Endpoint::Recent => 100,
            Endpoint::Archive => 500,
        }
    }

    /// The longest query the mock takes (X's largest plans: 4096 characters).
    pub const fn max_query_chars(self) -> usize {
        4096
    }

    /// Shortest time between two calls (full-archive: 1 request per second).
    const fn min_interval(self) -> Duration {
        match self {
            Endpoint::Recent => Duration::ZERO,
            Endpoint::Archive => Duration::from_secs(1),
        }
    }
}

/// Default cap on one page's body.
pub const DEFAULT_MAX_PAGE_BYTES: usize = 32 * 1024 * 1024;
/// Unusable 200 pages in a row before the run gives up.
const MAX_BAD_PAGES: u32 = 5;
/// Post ids a run remembers to drop duplicates (the stream's default window).
const SEEN_WINDOW: usize = 100_000;

/// What a search run does.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub query: String,
    pub endpoint: Endpoint,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub since_id: Option<String>,
    pub until_id: Option<String>,
    /// After the backfill, poll for newer posts this often.
    pub poll: Option<Duration>,
    pub fields: Fields,
    pub max_page_bytes: usize,
}

/// Why a search stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("X refused the request (HTTP 400): {0}")]
    BadRequest(String),
    #[error(
        "the X API refused the bearer token (HTTP {status}): {message}. Check TWITTER_BEARER_TOKEN (or BEARER_TOKEN) and that your plan includes {endpoint} search"
    )]
    Unauthorized {
        status: u16,
        message: String,
        endpoint: &'static str,
    },
    #[error("the X API answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error(
        "a search page from X was larger than {limit} bytes; refused (raise [twitter_search] max_page_bytes if this is real)"
    )]
    Oversized { limit: usize },
    #[error("X sent {count} unusable search pages in a row; the last: {last}")]
    BadPages { count: u32, last: String },
    #[error(
        "X's search at {endpoint} {why} after {pages} pages: the pass ended there (not followed further, not kept in the checkpoint); posts older than {oldest} in its window may be missing"
    )]
    Loop {
        endpoint: &'static str,
        why: &'static str,
        pages: u64,
        oldest: String,
    },
    #[error(
        "a sink did not take the records of a search page; the checkpoint ({path}) stays before it, so a rerun retries it (see the dead-letter file)"
    )]
    NotConfirmed { path: String },
    #[error(
        "a sink did not take a page of count records (see the dead-letter file); rerun to count again"
    )]
    CountsNotConfirmed,
}

const ORIGIN: Origin = Origin {
    label: "twitter-search",
    item: "search result",
};

/// The search source.
pub struct TwitterSearch {
    pub api: TwitterApi,
    pub config: SearchConfig,
}

impl Source for TwitterSearch {
    fn name(&self) -> &'static str {
        "twitter-search"
    }

    async fn run(
        self,
        ctx: SourceContext,
        out: SourceOutput,
        shutdown: CancellationToken,
    ) -> Result<(), SourceError> {
        let c = &self.config;
        let store = Store::open(&ctx.state_dir, &c.query, c.endpoint)?;
        let mut state = store.load(&c.query, c.endpoint)?;
        info!(query = %c.query, endpoint = c.endpoint.name(), checkpoint = %store.path().display(), newest_id = ?state.newest_id, resuming = state.pass.is_some(), "searching X");
        let mut run = Runner {
            source: &self,
            ctx: &ctx,
            out: &out,
            shutdown: &shutdown,
            store: &store,
            rate: RateLimit::default(),
            last_call: None,
            seen: SeenWindow::new(SEEN_WINDOW),
        };
        loop {
            if !run.pass(&mut state).await? {
                return Ok(());
            }
            let Some(every) = c.poll else {
                info!(newest_id = ?state.newest_id, "search done");
                return Ok(());
            };
            debug!(every_secs = every.as_secs(), "waiting for the next poll");
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(every) => {}
            }
        }
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

/// One run's moving parts.
struct Runner<'a> {
    source: &'a TwitterSearch,
    ctx: &'a SourceContext,
    out: &'a SourceOutput,
    shutdown: &'a CancellationToken,
    store: &'a Store,
    rate: RateLimit,
    last_call: Option<Instant>,
    /// Post ids of this run: a post seen again is dropped (counted as a duplicate).
    seen: SeenWindow<u64>,
}

impl Runner<'_> {
    /// The window of the next pass: the one in progress, else since the
    /// newest confirmed post, else the configured backfill window.
    fn next_window(&self, state: &SearchState) -> (Window, Option<String>) {
        let c = &self.source.config;
        if let Some(p) = &state.pass {
            return (p.window.clone(), Some(p.next_token.clone()));
        }
        let now = Utc::now();
        let (mut start, mut end) = (c.start_time, c.end_time);
        for what in window::clamp(c.endpoint, &mut start, &mut end, now) {
            info!("{what}");
        }
        let since_id = checkpoint::newer(state.newest_id.clone(), c.since_id.clone());
        let w = Window {
            // X pages by id from `since_id`; a start time would only narrow it.
            start_time: if since_id.is_some() {
                None
            } else {
                start.map(window::format_time)
            },
            end_time: end.map(window::format_time),
            since_id,
            until_id: c.until_id.clone(),
        };
        (w, None)
    }

    /// One pass to its last page. False when the run must stop (a signal,
    /// the record limit, the pipeline gone). A page that repeats a
    /// `next_token` of the pass, or holds only posts this run has seen, ends
    /// the pass with [`SearchError::Loop`].
    async fn pass(&mut self, state: &mut SearchState) -> Result<bool, SourceError> {
        let (window, mut token) = self.next_window(state);
        if token.is_some() {
            info!(
                pages_done = state.pass.as_ref().map_or(0, |p| p.pages),
                "resuming the search at the first unconfirmed page"
            );
        }
        let mut followed: HashSet<String> = token.iter().cloned().collect();
        let mut pages = 0u64;
        loop {
            let Some(mut page) = self.fetch(&window, token.as_deref()).await? else {
                return Ok(false);
            };
            pages += 1;
            let looped = self.loop_in(&page, &followed);
            if looped.is_some() {
                page.meta.next_token = None;
            }
            let batch = self.page_batch(&page)?;
            let Some(confirmed) = self.out.send_and_wait(batch).await else {
                return Ok(false);
            };
            if confirmed.outcome != Outcome::Delivered {
                return Err(SearchError::NotConfirmed {
                    path: self.store.path().display().to_string(),
                }
                .into());
            }
            if confirmed.cut() {
                // The record limit took part of the page: it stays unconfirmed.
                return Ok(false);
            }
            state.page_confirmed(&window, &page.meta);
            self.store.save(state)?;
            self.ctx.counters.checkpointed();
            debug!(next_token = ?page.meta.next_token, oldest_id = ?page.meta.oldest_id, "page confirmed");
            if let Some(why) = looped {
                let endpoint = self.source.config.endpoint.path();
                warn!(
                    endpoint,
                    why, pages, "X's search pages loop: ending the pass"
                );
                let oldest = page
                    .meta
                    .oldest_id
                    .clone()
                    .unwrap_or_else(|| "the last page".into());
                return Err(SearchError::Loop {
                    endpoint,
                    why,
                    pages,
                    oldest,
                }
                .into());
            }
            match page.meta.next_token {
                Some(t) => {
                    followed.insert(t.clone());
                    token = Some(t);
                }
                None => return Ok(true),
            }
        }
    }

    /// Why `page` loops: its `next_token` was followed already in this
    /// pass, or every post on it was seen in this run.
    fn loop_in(&self, page: &Page, followed: &HashSet<String>) -> Option<&'static str> {
        if page
            .meta
            .next_token
            .as_ref()
            .is_some_and(|t| followed.contains(t))
        {
            return Some("sent a `next_token` it had already sent in this pass");
        }
        let all_seen = page
            .ids
            .iter()
            .all(|id| id.is_some_and(|id| self.seen.contains(&id)));
        (page.meta.next_token.is_some() && !page.ids.is_empty() && all_seen)
            .then_some("sent a page of posts this run had already received")
    }

    /// A page's posts as records, each at its place in the page; posts that
    /// cannot become records are dead-lettered.
    fn page_batch(&mut self, page: &Page) -> Result<Tracked, SourceError> {
        let received_at = received_now();
        let mut batch = Tracked::starting_at(0);
        for (i, (line, id)) in page.lines.iter().zip(&page.ids).enumerate() {
            if id.is_some_and(|id| !self.seen.insert(id)) {
                SourceCounters::add(&self.ctx.counters.duplicates, 1);
                debug!(id, "duplicate dropped");
                batch.push(i as u64, None);
                continue;
            }
            let record = match normalize_line(line, &received_at, &self.ctx.normalize) {
                Ok(Normalized::Record(r)) => Some(Arc::new(*r)),
                Ok(_) => None,
                Err(e) => {
                    self.out
                        .dead_letter(ORIGIN, &e.to_string(), line, line.len())?;
                    None
                }
            };
            batch.push(i as u64, record);
        }
        Ok(batch)
    }

    /// The next page, waiting out rate limits and transient failures; `None` on stop.
    async fn fetch(
        &mut self,
        window: &Window,
        token: Option<&str>,
    ) -> Result<Option<Page>, SourceError> {
        let c = &self.source.config;
        let params = api::params(&c.query, c.endpoint, window, token, &c.fields);
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let (mut failures, mut bad_pages, mut limited) = (0u32, 0u32, 0u32);
        loop {
            if !self.pace().await {
                return Ok(None);
            }
            SourceCounters::add(&self.ctx.counters.connections, 1);
            self.last_call = Some(Instant::now());
            let call = api::call(&self.source.api, c.endpoint, &params, c.max_page_bytes).await?;
            if call.rate.remaining.is_some() || call.rate.reset.is_some() {
                self.rate = call.rate;
            }
            let (reason, wait, error) = match call.answer {
                Answer::Page(body) => match page::parse_page(&body) {
                    Ok(page) => {
                        SourceCounters::add(&self.ctx.counters.connected, 1);
                        if page.partial_errors > 0 {
                            debug!(
                                errors = page.partial_errors,
                                "X reported partial errors beside the page"
                            );
                        }
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
            self.ctx.counters.reconnected(reason);
            warn!(error = %error, wait_ms = wait.as_millis() as u64, "search call failed; retrying");
            if reason == "rate_limited" {
                self.rate.remaining = Some(0);
                if !self.wait_rate_limit(wait).await {
                    return Ok(None);
                }
            } else if !self.sleep(wait).await {
                return Ok(None);
            }
        }
    }

    /// Waits what the budget and the endpoint's pace ask before a call; false on stop.
    async fn pace(&mut self) -> bool {
        if let Some(wait) = self.rate.wait_before_call(rate::now_ms()) {
            info!(wait_secs = wait.as_secs(), reset = ?self.rate.reset, "rate-limit budget spent; waiting for the reset");
            if !self.wait_rate_limit(wait).await {
                return false;
            }
            self.rate = RateLimit::default();
        }
        let min = self.source.config.endpoint.min_interval();
        if let Some(since) = self.last_call.map(|t| t.elapsed()).filter(|e| *e < min) {
            return self.sleep(min - since).await;
        }
        !self.shutdown.is_cancelled()
    }

    /// Sleeps through a rate-limit wait, showing it in the counters; false on stop.
    async fn wait_rate_limit(&self, wait: Duration) -> bool {
        let until = rate::now_ms().max(0) as u64 + wait.as_millis() as u64;
        let gauge = &self.ctx.counters.rate_limit_until_ms;
        gauge.store(until, std::sync::atomic::Ordering::Relaxed);
        let ok = self.sleep(wait).await;
        gauge.store(0, std::sync::atomic::Ordering::Relaxed);
        ok
    }

    async fn sleep(&self, wait: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, RunInfo};
    use serde_json::{Value, json};

    /// A record as JSON without what legitimately differs between endpoints.
    fn comparable(record: &crate::record::Record) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(&record.to_line(Default::default())).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in ["received_at", "run", "matching_rules", "tags"] {
            o.remove(k);
        }
        let raw = o.get_mut("raw").unwrap().as_object_mut().unwrap();
        raw.remove("matching_rules");
        serde_json::to_vec(&v).unwrap()
    }

    fn record(line: &[u8], run: &Arc<RunInfo>, at: &str) -> crate::record::Record {
        let opts = NormalizeOptions {
            transliterate: true,
            ..NormalizeOptions::new(run.clone())
        };
        match normalize_line(line, &at.into(), &opts).unwrap() {
            Normalized::Record(r) => *r,
            _ => panic!("not a record"),
        }
    }

    #[test]
    fn a_post_makes_the_same_record_from_the_stream_and_from_search() {
        let post = json!({"id": "1650000000000000042", "text": "Grüße aus Köln 🙌 @ann",
            "author_id": "1001", "created_at": "2026-11-30T11:59:58.000Z", "lang": "de",
            "conversation_id": "1650000000000000042", "source": "ingest mock",
            "in_reply_to_user_id": "1002",
            "entities": {"mentions": [{"start": 15, "end": 19, "username": "ann", "id": "1002"}]},
            "note_tweet": {"text": "Grüße aus Köln 🙌 @ann — the long version"},
            "edit_history_tweet_ids": ["1650000000000000042"]});
        let ada = json!({"id": "1001", "name": "Ada Lovelace", "username": "ada"});
        let ann = json!({"id": "1002", "name": "Ann", "username": "ann"});
        let stream_line = json!({"data": post, "includes": {"users": [ada, ann]},
            "matching_rules": [{"id": "7", "tag": "köln"}]});
        let search_page = json!({"data": [
                {"id": "1650000000000000043", "text": "newer", "author_id": "1003"},
                post],
            "includes": {"users": [{"id": "1003", "name": "Kenji", "username": "kenji"}, ada, ann]},
            "meta": {"newest_id": "1650000000000000043", "oldest_id": "1650000000000000042", "result_count": 2}});
        let page = page::parse_page(search_page.to_string().as_bytes()).unwrap();
        let from_search = record(
            &page.lines[1],
            &Arc::new(RunInfo::new(None)),
            "2026-11-30T12:00:01Z",
        );
        let from_stream = record(
            stream_line.to_string().as_bytes(),
            &Arc::new(RunInfo::new(Some(60))),
            "2026-11-30T12:00:00Z",
        );
        assert_eq!(
            String::from_utf8(comparable(&from_search)).unwrap(),
            String::from_utf8(comparable(&from_stream)).unwrap()
        );
        assert_eq!(
            from_search.author.as_ref().unwrap().username.as_deref(),
            Some("ada")
        );
        assert!(from_search.matching_rules.is_empty() && !from_stream.matching_rules.is_empty());
    }
}
