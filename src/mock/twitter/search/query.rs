//! A search request as the mock reads it: X's parameter checks and error
//! answers, and the page it selects from the corpus (newest first, `meta`,
//! an opaque `next_token`).

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Endpoint;
use super::Post;
use crate::mock::twitter::tweets::{AUTHORS, TEXTS};

/// X's 400 for an invalid parameter, as 2.167's `InvalidRequestProblem`:
/// the parameter, its value and what is wrong with it.
fn invalid_request(param: &str, value: &str, message: String) -> Response {
    let body = json!({
        "title": "Invalid Request",
        "detail": message,
        "type": "https://api.twitter.com/2/problems/invalid-request",
        "parameter": param,
        "value": value,
        "status": 400,
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// A validated search request.
#[derive(Debug)]
pub(super) struct SearchQuery {
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

pub(super) type Refusal = Box<Response>;

pub(super) fn bad(p: &str, v: &str, m: String) -> Refusal {
    Box::new(invalid_request(p, v, m))
}

/// Every parameter is one the endpoint knows (`known`).
pub(super) fn check_known(
    params: &BTreeMap<String, String>,
    known: &[&str],
) -> Result<(), Refusal> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(p) => Err(bad(
            p,
            &params[p],
            format!(
                "The query parameter [{p}] is not one of [{}]",
                known.join(",")
            ),
        )),
        None => Ok(()),
    }
}

/// `max_results`: 10 by default, 10 to the endpoint's maximum.
fn max_results(endpoint: Endpoint, params: &BTreeMap<String, String>) -> Result<usize, Refusal> {
    let max = endpoint.max_results();
    match params.get("max_results") {
        None => Ok(10),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (10..=max).contains(&n) => Ok(n),
            _ => Err(bad(
                "max_results",
                v,
                format!(
                    "The `max_results` query parameter value [{v}] is not between 10 and {max}"
                ),
            )),
        },
    }
}

/// A post id parameter (`since_id`, `until_id`).
pub(super) fn id(params: &BTreeMap<String, String>, name: &str) -> Result<Option<u64>, Refusal> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                bad(
                    name,
                    v,
                    format!(
                        "The `{name}` query parameter value [{v}] does not match ^[0-9]{{1,19}}$"
                    ),
                )
            })
        })
        .transpose()
}

/// A time parameter (`start_time`, `end_time`): RFC 3339, at least 10 s before `now`.
fn time(
    params: &BTreeMap<String, String>,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, Refusal> {
    let Some(v) = params.get(name) else {
        return Ok(None);
    };
    let t = DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(name, v, format!("Invalid '{name}':'{v}'. '{name}' must be an RFC 3339 timestamp (YYYY-MM-DDTHH:mm:ssZ)")))?;
    if t > now - chrono::Duration::seconds(10) {
        return Err(bad(
            name,
            v,
            format!(
                "Invalid '{name}':'{}'. '{name}' must be a minimum of 10 seconds prior to the request time.",
                crate::record::rfc3339(t)
            ),
        ));
    }
    Ok(Some(t))
}

/// A window's start and end, each optional.
pub(super) type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The time window: each bound valid, recent search within 7 days, start before end.
pub(super) fn window(
    endpoint: Endpoint,
    params: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Bounds, Refusal> {
    let (start_time, end_time) = (
        time(params, "start_time", now)?,
        time(params, "end_time", now)?,
    );
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
    Ok((start_time, end_time))
}

impl SearchQuery {
    pub(super) fn parse(
        endpoint: Endpoint,
        params: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<SearchQuery, Refusal> {
        check_known(params, &KNOWN_PARAMS)?;
        check_query(
            endpoint,
            params.get("query").map(String::as_str).unwrap_or(""),
        )
        .map_err(|(v, m)| bad("query", &v, m))?;
        let max_results = max_results(endpoint, params)?;
        let (since_id, until_id) = (id(params, "since_id")?, id(params, "until_id")?);
        let (start_time, end_time) = window(endpoint, params, now)?;
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
    pub(super) fn page(&self, corpus: &[Post]) -> (Value, usize) {
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
pub(super) fn check_query(endpoint: Endpoint, query: &str) -> Result<(), (String, String)> {
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
pub(super) fn encode_token(id: u64) -> String {
    let mut n = id;
    let mut s = Vec::new();
    while n > 0 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    format!("b26v{}", String::from_utf8(s).expect("ascii"))
}

pub(super) fn decode_token(token: &str) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::super::{FIRST_ID, SearchScenario, SearchState};
    use super::*;
    use crate::mock::lock;

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
            v["detail"]
                .as_str()
                .unwrap()
                .contains("Missing closing parenthesis")
        );
        assert_eq!(v["value"], "(cats");
        let v = refusal(
            Endpoint::Recent,
            &[("query", "cats"), ("max_results", "500")],
        );
        assert!(
            v["detail"]
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
            v["detail"]
                .as_str()
                .unwrap()
                .contains("must be on or after")
        );
        let v = refusal(Endpoint::Recent, &[("query", "")]);
        assert!(v["detail"].as_str().unwrap().contains("can not be empty"));
        let v = refusal(
            Endpoint::Recent,
            &[("query", "cats"), ("next_token", "nope")],
        );
        assert_eq!(v["value"], "nope");
        let v = refusal(Endpoint::Recent, &[("query", "cats"), ("colour", "red")]);
        assert!(v["detail"].as_str().unwrap().contains("[colour]"));
        let soon = crate::record::rfc3339(Utc::now());
        let v = refusal(Endpoint::Recent, &[("query", "cats"), ("end_time", &soon)]);
        assert!(v["detail"].as_str().unwrap().contains("10 seconds"));
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
}
