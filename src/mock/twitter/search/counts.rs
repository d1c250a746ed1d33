//! The mock's post counts (`GET /2/tweets/counts/recent` and `/2/tweets/counts/all`)
//! over the search corpus: the same parameter checks and window as search, so
//! the counts of a window add up to the posts search returns for it. Buckets
//! are cut at whole minutes, hours or days (UTC), the first and last clipped
//! to the window, oldest first; a page holds at most 31 days of buckets (or
//! the scenario's `count_buckets_per_page`), `meta.next_token` continues.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Value, json};

use super::query::{
    Refusal, bad, check_known, check_query, decode_token, encode_token, id, window,
};
use super::{Endpoint, Post};

const KNOWN_PARAMS: [&str; 9] = [
    "query",
    "start_time",
    "end_time",
    "since_id",
    "until_id",
    "next_token",
    "pagination_token",
    "granularity",
    "search_count.fields",
];

/// One bucket's `[start, end)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The most days one page of counts covers.
const DAYS_PER_PAGE: i64 = 31;

/// A validated counts request.
#[derive(Debug)]
pub(super) struct CountsQuery {
    step: TimeDelta,
    since_id: Option<u64>,
    until_id: Option<u64>,
    /// The window, with X's defaults filled in.
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// This page starts here (the decoded `next_token`), else at `start`.
    from: DateTime<Utc>,
}

fn granularity(params: &BTreeMap<String, String>) -> Result<TimeDelta, Refusal> {
    match params.get("granularity").map(String::as_str) {
        None | Some("hour") => Ok(TimeDelta::hours(1)),
        Some("minute") => Ok(TimeDelta::minutes(1)),
        Some("day") => Ok(TimeDelta::days(1)),
        Some(v) => Err(bad(
            "granularity",
            v,
            format!(
                "The `granularity` query parameter value [{v}] is not one of [minute,hour,day]"
            ),
        )),
    }
}

impl CountsQuery {
    pub(super) fn parse(
        endpoint: Endpoint,
        params: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<CountsQuery, Refusal> {
        check_known(params, &KNOWN_PARAMS)?;
        check_query(
            endpoint,
            params.get("query").map(String::as_str).unwrap_or(""),
        )
        .map_err(|(v, m)| bad("query", &v, m))?;
        let step = granularity(params)?;
        let (since_id, until_id) = (id(params, "since_id")?, id(params, "until_id")?);
        let (start, end) = window(endpoint, params, now)?;
        let start = start.unwrap_or(match endpoint {
            Endpoint::Recent => now - TimeDelta::days(7),
            Endpoint::Archive => now - TimeDelta::days(30),
        });
        let end = end.unwrap_or(now - TimeDelta::seconds(30));
        let token = params.get("next_token").or(params.get("pagination_token"));
        let from = match token {
            None => start,
            Some(t) => decode_token(t)
                .and_then(|s| DateTime::from_timestamp(i64::try_from(s).ok()?, 0))
                .filter(|f| *f > start && *f < end)
                .ok_or_else(|| bad("next_token", t, format!("Invalid 'next_token':'{t}'")))?,
        };
        Ok(CountsQuery {
            step,
            since_id,
            until_id,
            start,
            end,
            from,
        })
    }

    /// The buckets of this page: `[start, end)` each.
    fn buckets(&self, per_page: usize) -> (Vec<Span>, bool) {
        let per_page = match per_page {
            0 => (TimeDelta::days(DAYS_PER_PAGE).num_seconds() / self.step.num_seconds()) as usize,
            n => n,
        };
        let mut out = Vec::new();
        let mut at = self.from.max(self.start);
        while at < self.end && out.len() < per_page {
            let next = (at.duration_trunc(self.step).unwrap_or(at) + self.step).min(self.end);
            out.push((at, next));
            at = next;
        }
        (out, at < self.end)
    }

    fn matches(&self, p: &Post) -> bool {
        self.since_id.is_none_or(|s| p.id > s) && self.until_id.is_none_or(|u| p.id < u)
    }

    /// The page (X's 2.167 shape: `post_count`, `total_post_count`) and the posts it counts.
    pub(super) fn page(&self, corpus: &[Post], per_page: usize) -> (Value, usize) {
        let (buckets, more) = self.buckets(per_page);
        let mut counts = vec![0usize; buckets.len()];
        for p in corpus.iter().filter(|p| self.matches(p)) {
            let i = buckets.partition_point(|(s, _)| *s <= p.created_at);
            if i > 0 && p.created_at < buckets[i - 1].1 {
                counts[i - 1] += 1;
            }
        }
        let time = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let data: Vec<Value> = buckets
            .iter()
            .zip(&counts)
            .map(|((s, e), n)| json!({"start": time(*s), "end": time(*e), "post_count": n}))
            .collect();
        let total: usize = counts.iter().sum();
        let mut meta = json!({"total_post_count": total});
        if let (true, Some((_, last_end))) = (more, buckets.last()) {
            meta["next_token"] = json!(encode_token(last_end.timestamp() as u64));
        }
        (json!({"data": data, "meta": meta}), total)
    }
}

/// The answer to a counts call whose script says to answer normally.
pub(super) fn answer(
    endpoint: Endpoint,
    params: &BTreeMap<String, String>,
    corpus: &[Post],
    per_page: usize,
) -> (Response, usize) {
    match CountsQuery::parse(endpoint, params, Utc::now()) {
        Ok(q) => {
            let (page, n) = q.page(corpus, per_page);
            let resp = (
                [(header::CONTENT_TYPE, "application/json")],
                page.to_string(),
            );
            (resp.into_response(), n)
        }
        Err(resp) => {
            debug_assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            (*resp, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn query(pairs: &[(&str, &str)]) -> CountsQuery {
        let params = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        CountsQuery::parse(Endpoint::Archive, &params, at("2026-12-01T00:00:00Z")).unwrap()
    }

    #[test]
    fn buckets_are_cut_at_whole_units_and_clipped_to_the_window() {
        let q = query(&[
            ("query", "cats"),
            ("start_time", "2026-11-30T10:30:00Z"),
            ("end_time", "2026-11-30T12:15:00Z"),
        ]);
        let corpus: Vec<Post> = [
            "2026-11-30T10:29:59Z",
            "2026-11-30T10:30:00Z",
            "2026-11-30T11:00:00Z",
            "2026-11-30T12:14:59Z",
            "2026-11-30T12:15:00Z",
        ]
        .iter()
        .enumerate()
        .map(|(i, t)| Post {
            seq: i as u64,
            id: i as u64 + 1,
            created_at: at(t),
        })
        .collect();
        let (page, n) = q.page(&corpus, 0);
        assert_eq!(n, 3);
        let starts: Vec<&str> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["start"].as_str().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "2026-11-30T10:30:00.000Z",
                "2026-11-30T11:00:00.000Z",
                "2026-11-30T12:00:00.000Z"
            ]
        );
        assert_eq!(page["data"][2]["end"], "2026-11-30T12:15:00.000Z");
        let counts: Vec<u64> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["post_count"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, [1, 1, 1]);
        // Two buckets a page: a token continues where the page ended.
        let (first, _) = q.page(&corpus, 2);
        let token = first["meta"]["next_token"].as_str().unwrap().to_owned();
        let next = query(&[
            ("query", "cats"),
            ("start_time", "2026-11-30T10:30:00Z"),
            ("end_time", "2026-11-30T12:15:00Z"),
            ("next_token", &token),
        ]);
        let (second, n) = next.page(&corpus, 2);
        assert_eq!((second["data"].as_array().unwrap().len(), n), (1, 1));
        assert!(second["meta"].get("next_token").is_none());
    }
}
