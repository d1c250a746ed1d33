//! The mock's search endpoints (`GET /2/tweets/search/recent` and
//! `/2/tweets/search/all`) over a deterministic corpus, with X's parameter
//! checks and error shapes, rate-limit headers from a scripted budget, and
//! scripted faults per call.
//!
//! The corpus: `posts` posts, one every `spacing_secs` back from the mock's
//! start, ids increasing with time. Every valid query matches every post (the
//! mock does not evaluate X's query language; it only checks the query the
//! way X refuses malformed ones). `POST /mock/tweets {"count": N}` adds N
//! posts created now; `GET /mock/search/calls` lists every call: endpoint,
//! parameters, status, posts returned.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod counts;
mod query;

use super::{Mock, authorized, problem, unauthorized};
use crate::mock::{elapsed_ms, lock};
use query::SearchQuery;

/// The two search endpoints, with the limits docs.x.com gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Recent,
    Archive,
}

impl Endpoint {
    pub(super) const fn path(self) -> &'static str {
        match self {
            Endpoint::Recent => "/2/tweets/search/recent",
            Endpoint::Archive => "/2/tweets/search/all",
        }
    }

    pub(super) const fn name(self) -> &'static str {
        match self {
            Endpoint::Recent => "recent",
            Endpoint::Archive => "all",
        }
    }

    /// `max_results`: 10–100 on recent, 10–500 on the archive (the spec's maximum).
    pub(super) const fn max_results(self) -> usize {
        match self {
            Endpoint::Recent => 100,
            Endpoint::Archive => 500,
        }
    }

    /// The longest query: 4096 characters on the largest plans (docs.x.com;
    /// the spec's `query` has `maxLength: 4096`).
    pub(super) const fn max_query_chars(self) -> usize {
        4096
    }
}

/// What a call asks of an endpoint: posts, or their counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    Posts,
    Counts,
}

/// The recent search path.
pub(super) const RECENT: &str = Endpoint::Recent.path();
/// The recent counts path.
pub(super) const COUNTS_RECENT: &str = "/2/tweets/counts/recent";
/// The full-archive counts path.
pub(super) const COUNTS_ALL: &str = "/2/tweets/counts/all";
/// The full-archive search path.
pub(super) const ARCHIVE: &str = Endpoint::Archive.path();

/// The search part of a scenario (`[search]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchScenario {
    /// Posts in the corpus at start.
    pub posts: u64,
    /// Seconds between two corpus posts (the newest is this long before the start).
    pub spacing_secs: u64,
    /// Calls allowed per rate-limit window, per endpoint (X: 450 per 15 minutes for recent search).
    pub calls_per_window: u32,
    /// Length of a rate-limit window.
    pub window_secs: u64,
    /// Buckets per counts page (0: X's 31 days of buckets).
    pub count_buckets_per_page: usize,
    /// Scripts for the first search and counts calls, in order; calls past the list answer normally.
    pub call: Vec<SearchCall>,
}

impl Default for SearchScenario {
    fn default() -> Self {
        SearchScenario {
            posts: 250,
            spacing_secs: 60,
            calls_per_window: 450,
            window_secs: 900,
            count_buckets_per_page: 0,
            call: Vec::new(),
        }
    }
}

/// One search call's script.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchCall {
    /// Answer this status instead of a page (429 with the reset header, 503, …); 0 = a page.
    pub status: u16,
    /// Send half of the page, then cut the connection.
    pub cut: bool,
    /// Wait this long before answering.
    pub delay_ms: u64,
    /// Answer 200 with exactly this body (malformed pages for hostile-input tests).
    pub body: Option<String>,
}

/// One search call as the mock saw it.
#[derive(Debug, Clone, Serialize)]
pub struct SearchLog {
    pub index: usize,
    pub at_ms: u64,
    pub endpoint: &'static str,
    pub params: BTreeMap<String, String>,
    pub status: u16,
    /// Posts in the page answered (for counts: the posts counted).
    pub result_count: usize,
}

#[derive(Debug, Clone)]
struct Post {
    seq: u64,
    id: u64,
    created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct Window {
    /// Unix second at which the window resets.
    reset: i64,
    used: u32,
}

/// The search state of the mock.
#[derive(Debug)]
pub(super) struct SearchState {
    scenario: SearchScenario,
    corpus: Mutex<Vec<Post>>,
    calls: Mutex<Vec<SearchLog>>,
    windows: Mutex<BTreeMap<&'static str, Window>>,
}

/// The id of corpus post `seq` (posts added later continue the sequence).
const FIRST_ID: u64 = 1_650_000_000_000_000_000;

impl SearchState {
    pub(super) fn new(scenario: SearchScenario) -> Self {
        let now = Utc::now();
        let n = scenario.posts;
        let corpus = (1..=n)
            .map(|seq| Post {
                seq,
                id: FIRST_ID + seq,
                created_at: now
                    - chrono::Duration::seconds(((n - seq + 1) * scenario.spacing_secs) as i64),
            })
            .collect();
        SearchState {
            scenario,
            corpus: Mutex::new(corpus),
            calls: Mutex::new(Vec::new()),
            windows: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes one call from the endpoint's budget: the headers to send, and
    /// whether the call is over the budget (429).
    fn take_budget(&self, endpoint: &'static str) -> (i64, u32, bool) {
        let now = Utc::now();
        let mut windows = lock(&self.windows);
        let w = windows.entry(endpoint).or_default();
        if now.timestamp() >= w.reset {
            // The reset is a whole second: the window ends at or after it.
            let end = now + chrono::Duration::seconds(self.scenario.window_secs as i64);
            w.reset = end.timestamp() + i64::from(end.timestamp_subsec_nanos() > 0);
            w.used = 0;
        }
        let limit = self.scenario.calls_per_window;
        if w.used >= limit {
            return (w.reset, 0, true);
        }
        w.used += 1;
        (w.reset, limit - w.used, false)
    }
}

fn rate_headers(resp: &mut Response, limit: u32, remaining: u32, reset: i64) {
    let h = resp.headers_mut();
    h.insert("x-rate-limit-limit", HeaderValue::from(limit));
    h.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    h.insert("x-rate-limit-reset", HeaderValue::from(reset));
}

pub(super) async fn recent(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    search(mock, (Endpoint::Recent, Ask::Posts), headers, params).await
}

pub(super) async fn all(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    search(mock, (Endpoint::Archive, Ask::Posts), headers, params).await
}

pub(super) async fn counts_recent(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    search(mock, (Endpoint::Recent, Ask::Counts), headers, params).await
}

pub(super) async fn counts_all(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    search(mock, (Endpoint::Archive, Ask::Counts), headers, params).await
}

async fn search(
    mock: Arc<Mock>,
    (endpoint, ask): (Endpoint, Ask),
    headers: HeaderMap,
    params: Vec<(String, String)>,
) -> Response {
    let s = &mock.search;
    let name = match ask {
        Ask::Posts => endpoint.name(),
        Ask::Counts if endpoint == Endpoint::Recent => "counts/recent",
        Ask::Counts => "counts/all",
    };
    let params: BTreeMap<String, String> = params.into_iter().collect();
    let index = {
        let mut calls = lock(&s.calls);
        let index = calls.len();
        calls.push(SearchLog {
            index,
            at_ms: elapsed_ms(mock.started),
            endpoint: name,
            params: params.clone(),
            status: 200,
            result_count: 0,
        });
        calls.len() - 1
    };
    let script = s.scenario.call.get(index).cloned().unwrap_or_default();
    if script.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
    }
    let (mut resp, count) = answer(s, (endpoint, ask), &headers, &params, &script);
    lock(&s.calls)[index].status = resp.status().as_u16();
    lock(&s.calls)[index].result_count = count;
    if resp.status() != StatusCode::UNAUTHORIZED {
        let (reset, remaining, over) = s.take_budget(name);
        let limit = s.scenario.calls_per_window;
        if over {
            resp = rate_limited();
            lock(&s.calls)[index].status = 429;
            lock(&s.calls)[index].result_count = 0;
        }
        let remaining = if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            0
        } else {
            remaining
        };
        rate_headers(&mut resp, limit, remaining, reset);
    }
    resp
}

/// The 429 of docs.x.com's rate-limit page.
fn rate_limited() -> Response {
    let body = json!({"errors": [{"code": 88, "message": "Rate limit exceeded"}]});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The answer before the rate-limit headers, and how many posts it holds (or counts).
fn answer(
    s: &SearchState,
    (endpoint, ask): (Endpoint, Ask),
    headers: &HeaderMap,
    params: &BTreeMap<String, String>,
    script: &SearchCall,
) -> (Response, usize) {
    if !authorized(headers) {
        return (unauthorized(), 0);
    }
    match script.status {
        0 | 200 => {}
        429 => return (rate_limited(), 0),
        401 => return (unauthorized(), 0),
        code => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let title = status.canonical_reason().unwrap_or("Error");
            return (problem(status, title, "Scripted failure", "about:blank"), 0);
        }
    }
    if let Some(body) = &script.body {
        let resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.clone(),
        );
        return (resp.into_response(), 0);
    }
    if ask == Ask::Counts {
        let corpus = lock(&s.corpus).clone();
        return counts::answer(endpoint, params, &corpus, s.scenario.count_buckets_per_page);
    }
    let q = match SearchQuery::parse(endpoint, params, Utc::now()) {
        Ok(q) => q,
        Err(resp) => return (*resp, 0),
    };
    let corpus = lock(&s.corpus).clone();
    let (page, count) = q.page(&corpus);
    let bytes = Bytes::from(page.to_string());
    let resp = if script.cut {
        let half = bytes.slice(..bytes.len() / 2);
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(half),
            Err(std::io::Error::other("scripted cut mid-page")),
        ];
        let mut resp = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    } else {
        ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
    };
    (resp, count)
}

/// `POST /mock/tweets {"count": N}`: N new posts, created now.
pub(super) async fn add_posts(State(mock): State<Arc<Mock>>, body: Bytes) -> Response {
    let count = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["count"].as_u64())
        .filter(|n| (1..=100_000).contains(n));
    let Some(count) = count else {
        return (
            StatusCode::BAD_REQUEST,
            "send {\"count\": N} with 1 <= N <= 100000",
        )
            .into_response();
    };
    let mut corpus = lock(&mock.search.corpus);
    let next = corpus.last().map_or(1, |p| p.seq + 1);
    let now = Utc::now();
    corpus.extend((next..next + count).map(|seq| Post {
        seq,
        id: FIRST_ID + seq,
        created_at: now,
    }));
    let newest = corpus.last().map(|p| p.id.to_string());
    axum::Json(json!({"added": count, "newest_id": newest})).into_response()
}

/// `GET /mock/search/calls`.
pub(super) async fn calls(State(mock): State<Arc<Mock>>) -> Response {
    axum::Json(lock(&mock.search.calls).clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_runs_out_then_resets_on_a_whole_second() {
        let state = SearchState::new(SearchScenario {
            calls_per_window: 2,
            window_secs: 60,
            ..SearchScenario::default()
        });
        let (reset, remaining, over) = state.take_budget("recent");
        assert_eq!((remaining, over), (1, false));
        assert!(reset >= Utc::now().timestamp() + 59);
        assert_eq!(state.take_budget("recent").1, 0);
        assert!(
            state.take_budget("recent").2,
            "the third call is over the budget"
        );
        assert!(
            !state.take_budget("all").2,
            "each endpoint has its own budget"
        );
    }
}
