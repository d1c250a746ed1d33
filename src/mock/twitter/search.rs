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

use super::tweets::{AUTHORS, TEXTS};
use super::{Mock, authorized, problem, unauthorized};
use crate::mock::{elapsed_ms, lock};
use crate::sources::twitter::search::Endpoint;

/// The recent search path.
pub(super) const RECENT: &str = Endpoint::Recent.path();
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
    /// Scripts for the first search calls, in order; calls past the list answer normally.
    pub call: Vec<SearchCall>,
}

impl Default for SearchScenario {
    fn default() -> Self {
        SearchScenario {
            posts: 250,
            spacing_secs: 60,
            calls_per_window: 450,
            window_secs: 900,
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
    /// Posts in the page answered.
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

/// X's 400 for invalid parameters: `errors[]` naming the parameter, then the problem fields.
fn invalid_request(param: &str, value: &str, message: String) -> Response {
    let body = json!({
        "errors": [{"parameters": {param: [value]}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) async fn recent(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    search(mock, Endpoint::Recent, headers, params).await
}

pub(super) async fn all(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    search(mock, Endpoint::Archive, headers, params).await
}

async fn search(
    mock: Arc<Mock>,
    endpoint: Endpoint,
    headers: HeaderMap,
    params: Vec<(String, String)>,
) -> Response {
    let s = &mock.search;
    let name = endpoint.name();
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
    let (mut resp, count) = answer(s, endpoint, &headers, &params, &script);
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

/// The answer before the rate-limit headers, and how many posts it holds.
fn answer(
    s: &SearchState,
    endpoint: Endpoint,
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
            return (
                problem(status, title, "Scripted failure", "service-unavailable"),
                0,
            );
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

/// A validated search request.
#[derive(Debug)]
struct SearchQuery {
    max_results: usize,
    since_id: Option<u64>,
    until_id: Option<u64>,
    start_time: Option<DateTime<Utc>>,
    end_time: Option<DateTime<Utc>>,
    /// Continue below this id (the decoded `next_token`).
    below: Option<u64>,
}

const KNOWN_PARAMS: [&str; 15] = [
    "query",
    "start_time",
    "end_time",
    "since_id",
    "until_id",
    "max_results",
    "next_token",
    "pagination_token",
    "sort_order",
    "expansions",
    "tweet.fields",
    "user.fields",
    "media.fields",
    "place.fields",
    "poll.fields",
];

type Refusal = Box<Response>;

impl SearchQuery {
    fn parse(
        endpoint: Endpoint,
        params: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<SearchQuery, Refusal> {
        let bad = |p: &str, v: &str, m: String| Box::new(invalid_request(p, v, m));
        if let Some(p) = params.keys().find(|k| !KNOWN_PARAMS.contains(&k.as_str())) {
            return Err(bad(
                p,
                &params[p],
                format!(
                    "The query parameter [{p}] is not one of [{}]",
                    KNOWN_PARAMS.join(",")
                ),
            ));
        }
        check_query(
            endpoint,
            params.get("query").map(String::as_str).unwrap_or(""),
        )
        .map_err(|(v, m)| bad("query", &v, m))?;
        let max = endpoint.max_results();
        let max_results = match params.get("max_results") {
            None => 10,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (10..=max).contains(&n) => n,
                _ => {
                    return Err(bad(
                        "max_results",
                        v,
                        format!(
                            "The `max_results` query parameter value [{v}] is not between 10 and {max}"
                        ),
                    ));
                }
            },
        };
        let id = |name: &str| -> Result<Option<u64>, Refusal> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        bad(name, v, format!("The `{name}` query parameter value [{v}] does not match ^[0-9]{{1,19}}$"))
                    })
                })
                .transpose()
        };
        let (since_id, until_id) = (id("since_id")?, id("until_id")?);
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, Refusal> {
            params
                .get(name)
                .map(|v| {
                    DateTime::parse_from_rfc3339(v)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| bad(name, v, format!("Invalid '{name}':'{v}'. '{name}' must be an RFC 3339 timestamp (YYYY-MM-DDTHH:mm:ssZ)")))
                })
                .transpose()
        };
        let (start_time, end_time) = (time("start_time")?, time("end_time")?);
        let latest = now - chrono::Duration::seconds(10);
        for (name, t) in [("start_time", start_time), ("end_time", end_time)] {
            if let Some(t) = t.filter(|t| *t > latest) {
                return Err(bad(
                    name,
                    &params[name],
                    format!(
                        "Invalid '{name}':'{}'. '{name}' must be a minimum of 10 seconds prior to the request time.",
                        crate::record::rfc3339(t)
                    ),
                ));
            }
        }
        if endpoint == Endpoint::Recent {
            let earliest = now - chrono::Duration::days(7);
            if let Some(t) = start_time.filter(|t| *t < earliest) {
                return Err(bad(
                    "start_time",
                    &params["start_time"],
                    format!(
                        "Invalid 'start_time':'{}'. 'start_time' must be on or after {}",
                        crate::record::rfc3339(t),
                        crate::record::rfc3339(earliest)
                    ),
                ));
            }
        }
        if let (Some(s), Some(e)) = (start_time, end_time)
            && s >= e
        {
            return Err(bad(
                "start_time",
                &params["start_time"],
                "Invalid 'start_time'. 'start_time' must be before 'end_time'".into(),
            ));
        }
        let token = params.get("next_token").or(params.get("pagination_token"));
        let below = token
            .map(|t| {
                decode_token(t)
                    .ok_or_else(|| bad("next_token", t, format!("Invalid 'next_token':'{t}'")))
            })
            .transpose()?;
        // Recent search looks back 7 days; full-archive defaults to 30 days.
        let default_start = match endpoint {
            Endpoint::Recent => now - chrono::Duration::days(7),
            Endpoint::Archive => now - chrono::Duration::days(30),
        };
        let start_time = start_time.or((since_id.is_none()).then_some(default_start));
        Ok(SearchQuery {
            max_results,
            since_id,
            until_id,
            start_time,
            end_time,
            below,
        })
    }

    fn matches(&self, p: &Post) -> bool {
        self.since_id.is_none_or(|s| p.id > s)
            && self.until_id.is_none_or(|u| p.id < u)
            && self.start_time.is_none_or(|s| p.created_at >= s)
            && self.end_time.is_none_or(|e| p.created_at < e)
            && self.below.is_none_or(|b| p.id < b)
    }

    /// The page: newest first, at most `max_results`, with `meta`.
    fn page(&self, corpus: &[Post]) -> (Value, usize) {
        let mut hits: Vec<&Post> = corpus.iter().filter(|p| self.matches(p)).collect();
        hits.sort_by_key(|p| std::cmp::Reverse(p.id));
        let more = hits.len() > self.max_results;
        hits.truncate(self.max_results);
        let (Some(newest), Some(oldest)) = (hits.first(), hits.last()) else {
            return (json!({"meta": {"result_count": 0}}), 0);
        };
        let mut meta = json!({
            "newest_id": newest.id.to_string(),
            "oldest_id": oldest.id.to_string(),
            "result_count": hits.len(),
        });
        if more {
            meta["next_token"] = json!(encode_token(oldest.id));
        }
        let mut users: Vec<Value> = Vec::new();
        let data: Vec<Value> = hits
            .iter()
            .map(|p| {
                let (data, user) = post_json(p);
                if !users.iter().any(|u| u["id"] == user["id"]) {
                    users.push(user);
                }
                data
            })
            .collect();
        let n = data.len();
        (
            json!({"data": data, "includes": {"users": users}, "meta": meta}),
            n,
        )
    }
}

/// Refuses queries the way X does for the malformed ones the mock can tell.
fn check_query(endpoint: Endpoint, query: &str) -> Result<(), (String, String)> {
    if query.trim().is_empty() {
        return Err((
            query.into(),
            "The `query` query parameter can not be empty".into(),
        ));
    }
    let max = endpoint.max_query_chars();
    if query.chars().count() > max {
        return Err((
            query.into(),
            format!(
                "There were errors processing your request: Rules are limited to {max} characters"
            ),
        ));
    }
    let mut depth = 0i32;
    for (i, c) in query.chars().enumerate() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return Err((
                query.into(),
                format!(
                    "There were errors processing your request: Unexpected closing parenthesis (at position {})",
                    i + 1
                ),
            ));
        }
    }
    if depth > 0 {
        return Err((
            query.into(),
            format!(
                "There were errors processing your request: Missing closing parenthesis (at position {})",
                query.chars().count()
            ),
        ));
    }
    Ok(())
}

/// An opaque-looking token for "continue below this id".
fn encode_token(id: u64) -> String {
    let mut n = id;
    let mut s = Vec::new();
    while n > 0 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    format!("b26v{}", String::from_utf8(s).expect("ascii"))
}

fn decode_token(token: &str) -> Option<u64> {
    let digits = token.strip_prefix("b26v")?;
    if digits.is_empty() {
        return None;
    }
    digits.chars().try_fold(0u64, |n, c| {
        n.checked_mul(36)?.checked_add(c.to_digit(36)? as u64)
    })
}

/// A corpus post as X returns it with the stream's default fields: (`data` item, its author).
fn post_json(p: &Post) -> (Value, Value) {
    let (author_id, name, username) = AUTHORS[(p.seq % AUTHORS.len() as u64) as usize];
    let (lang, text) = TEXTS[(p.seq * 7 % TEXTS.len() as u64) as usize];
    let id = p.id.to_string();
    let data = json!({
        "id": id,
        "text": format!("{text} #s{}", p.seq),
        "author_id": author_id,
        "created_at": p.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "lang": lang,
        "conversation_id": id,
        "source": "ingest mock",
        "edit_history_tweet_ids": [id],
    });
    (
        data,
        json!({"id": author_id, "name": name, "username": username}),
    )
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

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn refusal(endpoint: Endpoint, pairs: &[(&str, &str)]) -> Value {
        let resp = *SearchQuery::parse(endpoint, &params(pairs), Utc::now()).unwrap_err();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body =
            futures_util::FutureExt::now_or_never(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .unwrap()
                .unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        for id in [1, 35, 36, FIRST_ID + 12345, u64::MAX] {
            assert_eq!(decode_token(&encode_token(id)), Some(id));
        }
        for bad in ["", "b26v", "zzz", "b26v!!", "b26vzzzzzzzzzzzzzzzzzzzz"] {
            assert_eq!(decode_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_parameters_get_x_invalid_request_answers() {
        let v = refusal(Endpoint::Recent, &[("query", "(cats")]);
        assert_eq!(v["title"], "Invalid Request");
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Missing closing parenthesis")
        );
        assert_eq!(v["errors"][0]["parameters"]["query"][0], "(cats");
        let v = refusal(
            Endpoint::Recent,
            &[("query", "cats"), ("max_results", "500")],
        );
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("not between 10 and 100")
        );
        SearchQuery::parse(
            Endpoint::Archive,
            &params(&[("query", "cats"), ("max_results", "500")]),
            Utc::now(),
        )
        .unwrap();
        let v = refusal(
            Endpoint::Recent,
            &[("query", "cats"), ("start_time", "2001-01-01T00:00:00Z")],
        );
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("must be on or after")
        );
        let v = refusal(Endpoint::Recent, &[("query", "")]);
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("can not be empty")
        );
        let v = refusal(
            Endpoint::Recent,
            &[("query", "cats"), ("next_token", "nope")],
        );
        assert_eq!(v["errors"][0]["parameters"]["next_token"][0], "nope");
        let v = refusal(Endpoint::Recent, &[("query", "cats"), ("colour", "red")]);
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("[colour]")
        );
        let soon = crate::record::rfc3339(Utc::now());
        let v = refusal(Endpoint::Recent, &[("query", "cats"), ("end_time", &soon)]);
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("10 seconds")
        );
    }

    #[test]
    fn pages_run_newest_first_across_tokens_and_honor_since_id() {
        let state = SearchState::new(SearchScenario {
            posts: 25,
            ..SearchScenario::default()
        });
        let corpus = lock(&state.corpus).clone();
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut p = vec![("query", "cats")];
            if let Some(t) = &token {
                p.push(("next_token", t));
            }
            let q = SearchQuery::parse(Endpoint::Recent, &params(&p), Utc::now()).unwrap();
            let (page, n) = q.page(&corpus);
            assert_eq!(page["meta"]["result_count"], n);
            ids.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["id"].as_str().unwrap().parse::<u64>().unwrap()),
            );
            match page["meta"]["next_token"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        assert_eq!(ids.len(), 25);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
        let since = (FIRST_ID + 20).to_string();
        let q = SearchQuery::parse(
            Endpoint::Recent,
            &params(&[("query", "cats"), ("since_id", &since)]),
            Utc::now(),
        )
        .unwrap();
        let (page, n) = q.page(&corpus);
        assert_eq!(n, 5);
        assert_eq!(page["meta"]["oldest_id"], (FIRST_ID + 21).to_string());
        let q = SearchQuery::parse(
            Endpoint::Recent,
            &params(&[
                ("query", "cats"),
                ("since_id", &(FIRST_ID + 25).to_string()),
            ]),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(q.page(&corpus).0, json!({"meta": {"result_count": 0}}));
    }

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
