//! The X API v2 endpoints `ingest` uses: filtered-stream rules and connection reset.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The environment variables that may hold the X bearer token, in order.
pub const BEARER_TOKEN_VARS: [&str; 2] = ["TWITTER_BEARER_TOKEN", "BEARER_TOKEN"];

/// The public API.
pub const DEFAULT_API_BASE: &str = "https://api.x.com";
/// Stream path.
pub const STREAM_PATH: &str = "/2/tweets/search/stream";
/// Rules path.
pub const RULES_PATH: &str = "/2/tweets/search/stream/rules";
/// How many rules the app and its project hold, against their caps.
pub const RULE_COUNTS_PATH: &str = "/2/tweets/search/stream/rules/counts";
/// Terminates every streaming connection of the app.
pub const CONNECTIONS_PATH: &str = "/2/connections/all";

/// `User-Agent` of every request.
/// `media.fields` asked for with `--media`: what the media stage fetches from.
pub const MEDIA_FIELDS: &str = "url,variants,preview_image_url,type";

/// `expansions` with `attachments.media_keys` added (once).
pub fn with_media_expansion(expansions: &str) -> String {
    const MEDIA: &str = "attachments.media_keys";
    let mut list: Vec<&str> = expansions
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    if !list.contains(&MEDIA) {
        list.push(MEDIA);
    }
    list.join(",")
}

pub fn user_agent() -> String {
    format!("ingest/{}", env!("CARGO_PKG_VERSION"))
}

/// A rule as the API holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRule {
    pub id: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A rule to add (also a `[[rule]]` of a rules file: unknown fields are errors).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// One problem X reports (`errors[]` or a problem document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// For rule errors: the rule value at fault; for an invalid request,
    /// the value of `parameter`.
    #[serde(default)]
    pub value: Option<String>,
    /// For an invalid request (2.167's `InvalidRequestProblem`): the parameter at fault.
    #[serde(default)]
    pub parameter: Option<String>,
    /// For rule errors: details per rule.
    #[serde(default)]
    pub details: Vec<String>,
    /// Streaming errors: e.g. `TooManyConnections`.
    #[serde(default)]
    pub connection_issue: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.title.as_deref().unwrap_or("error"))?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        match (&self.parameter, &self.value) {
            (Some(p), Some(v)) => write!(f, " (parameter `{p}` = `{v}`)")?,
            (Some(p), None) => write!(f, " (parameter `{p}`)")?,
            (None, Some(v)) => write!(f, " (rule `{v}`)")?,
            (None, None) => {}
        }
        if !self.details.is_empty() {
            write!(f, ": {}", self.details.join("; "))?;
        }
        Ok(())
    }
}

/// An X API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "the X API refused the bearer token (HTTP {status}): {problem}. Check TWITTER_BEARER_TOKEN (or BEARER_TOKEN)"
    )]
    Unauthorized { status: u16, problem: Box<Problem> },
    #[error("the X API answered HTTP {status}: {problem}")]
    Http { status: u16, problem: Box<Problem> },
    #[error("the X API rejected the rules: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Rules(Vec<Problem>),
    #[error("cannot reach the X API at {base}: {}", crate::secret::error_chain(.source))]
    Network {
        base: String,
        source: reqwest::Error,
    },
    #[error("unexpected answer from the X API: {0}")]
    Decode(String),
}

/// Parses an error body: a problem document, `{"errors":[…]}`, or anything else as detail.
pub fn parse_problem(body: &str) -> Problem {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Problem>,
    }
    if let Some(first) = serde_json::from_str::<Errors>(body)
        .ok()
        .and_then(|e| e.errors.into_iter().next())
    {
        return first;
    }
    match serde_json::from_str::<Problem>(body) {
        Ok(p) if p.title.is_some() || p.detail.is_some() => p,
        _ => Problem {
            detail: Some(body.chars().take(300).collect::<String>().trim().to_owned())
                .filter(|d| !d.is_empty()),
            ..Problem::default()
        },
    }
}

/// A client for the rules and connection endpoints.
#[derive(Debug, Clone)]
pub struct TwitterApi {
    pub base: String,
    token: Secret,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct RulesResponse {
    #[serde(default)]
    data: Vec<LiveRule>,
    #[serde(default)]
    errors: Vec<Problem>,
}

impl TwitterApi {
    pub fn new(base: &str, token: Secret) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ApiError::Network {
                base: base.to_owned(),
                source,
            })?;
        Ok(TwitterApi {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn network(&self, source: reqwest::Error) -> ApiError {
        ApiError::Network {
            base: self.base.clone(),
            source: source.without_url(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, String), ApiError> {
        let resp = req
            .bearer_auth(self.token.expose())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| self.network(e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| self.network(e))?;
        match status {
            200..=299 => Ok((status, body)),
            401 | 403 => Err(ApiError::Unauthorized {
                status,
                problem: Box::new(parse_problem(&body)),
            }),
            _ => Err(ApiError::Http {
                status,
                problem: Box::new(parse_problem(&body)),
            }),
        }
    }

    /// The live rules.
    pub async fn rules(&self) -> Result<Vec<LiveRule>, ApiError> {
        let (_, body) = self.send(self.http.get(self.url(RULES_PATH))).await?;
        let r: RulesResponse =
            serde_json::from_str(&body).map_err(|e| ApiError::Decode(e.to_string()))?;
        Ok(r.data)
    }

    /// Adds rules (or only validates them with `dry_run`); returns the created rules.
    pub async fn add_rules(
        &self,
        rules: &[NewRule],
        dry_run: bool,
    ) -> Result<Vec<LiveRule>, ApiError> {
        if rules.is_empty() {
            return Ok(Vec::new());
        }
        let body = serde_json::json!({ "add": rules });
        let mut req = self.http.post(self.url(RULES_PATH)).json(&body);
        if dry_run {
            req = req.query(&[("dry_run", "true")]);
        }
        let (_, text) = match self.send(req).await {
            // Invalid rules come back as a 400 with `errors`, or a 2xx with `errors`.
            Err(ApiError::Http {
                status: 400 | 422,
                problem,
            }) => return Err(ApiError::Rules(vec![*problem])),
            other => other?,
        };
        let r: RulesResponse =
            serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))?;
        if !r.errors.is_empty() {
            return Err(ApiError::Rules(r.errors));
        }
        Ok(r.data)
    }

    /// Deletes rules by id.
    pub async fn delete_rules(&self, ids: &[String]) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let body = serde_json::json!({ "delete": { "ids": ids } });
        let (_, text) = self
            .send(self.http.post(self.url(RULES_PATH)).json(&body))
            .await?;
        let r: RulesResponse =
            serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))?;
        if !r.errors.is_empty() {
            return Err(ApiError::Rules(r.errors));
        }
        Ok(())
    }

    /// `GET /2/tweets/search/stream/rules/counts`: the answer's body, read by
    /// [`crate::sources::twitter::stream::rules::RuleCounts::parse`].
    pub async fn rule_counts(&self) -> Result<String, ApiError> {
        let (_, body) = self.send(self.http.get(self.url(RULE_COUNTS_PATH))).await?;
        Ok(body)
    }

    /// `DELETE /2/connections/all`: ends every streaming connection of the app.
    pub async fn reset_connections(&self) -> Result<(), ApiError> {
        self.send(self.http.delete(self.url(CONNECTIONS_PATH)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_from_every_error_shape() {
        let p = parse_problem(
            r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.twitter.com/2/problems/streaming-connection"}"#,
        );
        assert_eq!(p.connection_issue.as_deref(), Some("TooManyConnections"));
        assert!(
            p.to_string()
                .starts_with("ConnectionException: This stream")
        );
        let p = parse_problem(
            r#"{"errors":[{"value":"(cat","details":["Rules must contain balanced parentheses"],"title":"UnprocessableEntity","type":"https://api.twitter.com/2/problems/invalid-rules"}]}"#,
        );
        assert_eq!(
            p.to_string(),
            "UnprocessableEntity (rule `(cat`): Rules must contain balanced parentheses"
        );
        assert_eq!(
            parse_problem("Service Unavailable").detail.as_deref(),
            Some("Service Unavailable")
        );
        assert_eq!(parse_problem("").to_string(), "error");
        let long = "x".repeat(10_000);
        assert!(parse_problem(&long).detail.unwrap().len() <= 300);
    }
}
