//! One search call: the request X documents, the answer read whole (up to a
//! size limit), its rate-limit headers, and its failure classified.

use std::time::Duration;

use serde::Deserialize;

use super::checkpoint::Window;
use super::rate::RateLimit;
use super::{Endpoint, SearchError};
use crate::sources::twitter::api::{TwitterApi, parse_problem};

/// The fields of every request (the stream's, so records match).
#[derive(Debug, Clone)]
pub struct Fields {
    pub tweet_fields: String,
    pub expansions: String,
    pub user_fields: String,
    /// `media.fields` (with `--media`; empty: not sent).
    pub media_fields: String,
}

impl Fields {
    /// Asks for the posts' media too (`--media`).
    pub fn with_media(&mut self) {
        self.expansions = crate::sources::twitter::api::with_media_expansion(&self.expansions);
        self.media_fields = crate::sources::twitter::api::MEDIA_FIELDS.to_owned();
    }
}

/// What one call came back with.
#[derive(Debug)]
pub enum Answer {
    /// 200: the body.
    Page(Vec<u8>),
    /// 429: wait until the reset.
    RateLimited,
    /// 5xx, a cut connection, a timeout: try again later.
    Transient(String),
    /// A request that cannot be built (a URL too long, a value no URL can
    /// carry): sending it again cannot help, so it counts as an unusable page.
    Unbuildable(String),
}

/// The answer and the budget it reported.
#[derive(Debug)]
pub struct Call {
    pub answer: Answer,
    pub rate: RateLimit,
}

/// The query string of a call.
pub fn params(
    query: &str,
    endpoint: Endpoint,
    window: &Window,
    token: Option<&str>,
    fields: &Fields,
) -> Vec<(&'static str, String)> {
    let mut p = vec![
        ("query", query.to_owned()),
        ("max_results", endpoint.max_results().to_string()),
    ];
    let optional = [
        ("start_time", &window.start_time),
        ("end_time", &window.end_time),
        ("since_id", &window.since_id),
        ("until_id", &window.until_id),
    ];
    p.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k, v))),
    );
    if let Some(t) = token {
        p.push(("next_token", t.to_owned()));
    }
    for (k, v) in [
        ("tweet.fields", &fields.tweet_fields),
        ("expansions", &fields.expansions),
        ("user.fields", &fields.user_fields),
        ("media.fields", &fields.media_fields),
    ] {
        if !v.trim().is_empty() {
            p.push((k, v.clone()));
        }
    }
    p
}

/// X's own words for a refused request: `title: detail` and each `errors[].message`.
pub fn x_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct Item {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    }
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        detail: Option<String>,
        #[serde(default)]
        errors: Vec<Item>,
    }
    let Ok(b) = serde_json::from_str::<Body>(body) else {
        return parse_problem(body).to_string();
    };
    let mut parts: Vec<String> = Vec::new();
    match (b.title, b.detail) {
        (Some(t), Some(d)) => parts.push(format!("{t}: {d}")),
        (t, d) => parts.extend(t.or(d)),
    }
    parts.extend(
        b.errors
            .into_iter()
            .filter_map(|e| e.message.or(e.detail))
            .map(|m| m.chars().take(500).collect()),
    );
    if parts.is_empty() {
        parse_problem(body).to_string()
    } else {
        parts.join(" — ")
    }
}

/// Reads the body, refusing more than `limit` bytes.
async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::Oversized);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Cut)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::Oversized);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

enum ReadError {
    Oversized,
    Cut(reqwest::Error),
}

/// The answer to a request reqwest cannot build or send as a request.
fn unbuildable(path: &str, e: reqwest::Error) -> Call {
    Call {
        answer: Answer::Unbuildable(format!(
            "the request to {path} cannot be built: {}",
            e.without_url()
        )),
        rate: RateLimit::default(),
    }
}

/// Makes one search call: [`call_path`] at the endpoint's path.
pub async fn call(
    api: &TwitterApi,
    endpoint: Endpoint,
    params: &[(&'static str, String)],
    max_page_bytes: usize,
) -> Result<Call, SearchError> {
    call_path(api, endpoint.path(), endpoint, params, max_page_bytes).await
}

/// Makes one call to `path` (a search or a counts path of `endpoint`'s
/// plan). Fatal answers (400, 401, 403, other 4xx, an oversized page) are
/// errors; the rest is an [`Answer`].
pub async fn call_path(
    api: &TwitterApi,
    path: &str,
    endpoint: Endpoint,
    params: &[(&'static str, String)],
    max_page_bytes: usize,
) -> Result<Call, SearchError> {
    let req = api
        .http()
        .get(api.url(path))
        .query(params)
        .bearer_auth(api.token().expose())
        .timeout(Duration::from_secs(60))
        .build();
    let req = match req {
        Ok(r) => r,
        Err(e) => {
            return Ok(unbuildable(path, e));
        }
    };
    let resp = match api.http().execute(req).await {
        Ok(r) => r,
        // reqwest turns the URL into a request URI only when sending.
        Err(e) if e.is_builder() => {
            return Ok(unbuildable(path, e));
        }
        Err(e) => {
            return Ok(Call {
                answer: Answer::Transient(format!(
                    "cannot reach the X API at {}: {}",
                    api.base,
                    e.without_url()
                )),
                rate: RateLimit::default(),
            });
        }
    };
    let status = resp.status().as_u16();
    let rate = RateLimit::from_headers(resp.headers());
    let body = match read_body(resp, max_page_bytes).await {
        Ok(b) => b,
        Err(ReadError::Oversized) => {
            return Err(SearchError::Oversized {
                limit: max_page_bytes,
            });
        }
        Err(ReadError::Cut(e)) => {
            let answer = Answer::Transient(format!(
                "the answer (HTTP {status}) was cut: {}",
                e.without_url()
            ));
            return Ok(Call { answer, rate });
        }
    };
    let text = || String::from_utf8_lossy(&body).into_owned();
    let answer = match status {
        200 => Answer::Page(body),
        429 => Answer::RateLimited,
        400 => return Err(SearchError::BadRequest(x_message(&text()))),
        401 | 403 => {
            return Err(SearchError::Unauthorized {
                status,
                message: x_message(&text()),
                endpoint: endpoint.name(),
            });
        }
        500..=599 => Answer::Transient(format!("HTTP {status}: {}", x_message(&text()))),
        _ => {
            return Err(SearchError::Http {
                status,
                message: x_message(&text()),
            });
        }
    };
    Ok(Call { answer, rate })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_messages_keep_title_detail_and_each_error() {
        let body = r#"{"errors":[{"parameters":{"start_time":["2001-01-01T00:00:00Z"]},"message":"Invalid 'start_time':'2001-01-01T00:00Z'. 'start_time' must be on or after 2026-11-23T12:00Z"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#;
        assert_eq!(
            x_message(body),
            "Invalid Request: One or more parameters to your request was invalid. — Invalid 'start_time':'2001-01-01T00:00Z'. 'start_time' must be on or after 2026-11-23T12:00Z"
        );
        assert_eq!(
            x_message(r#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#),
            "Rate limit exceeded"
        );
        assert_eq!(
            x_message(r#"{"title":"Unauthorized","detail":"Unauthorized","status":401}"#),
            "Unauthorized: Unauthorized"
        );
        assert_eq!(x_message("Bad Gateway"), "error: Bad Gateway");
        assert!(x_message(&"x".repeat(100_000)).len() < 400);
    }

    #[test]
    fn params_carry_the_window_the_token_and_the_fields() {
        let fields = Fields {
            tweet_fields: "created_at,lang".into(),
            expansions: "author_id".into(),
            user_fields: String::new(),
            media_fields: String::new(),
        };
        let w = Window {
            since_id: Some("5".into()),
            ..Window::default()
        };
        let p = params(
            "cats -is:retweet",
            Endpoint::Archive,
            &w,
            Some("tok"),
            &fields,
        );
        let get = |k: &str| p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("max_results"), Some("500"));
        assert_eq!(get("since_id"), Some("5"));
        assert_eq!(get("start_time"), None);
        assert_eq!(get("next_token"), Some("tok"));
        assert_eq!(get("tweet.fields"), Some("created_at,lang"));
        assert_eq!(get("user.fields"), None, "an empty field list is not sent");
        let p = params("cats", Endpoint::Recent, &Window::default(), None, &fields);
        assert!(p.contains(&("max_results", "100".into())));
    }
}
