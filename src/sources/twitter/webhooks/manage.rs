//! The X API v2 webhook management endpoints `ingest twitter-webhook` calls:
//!
//! - Webhooks (app bearer token): `POST/GET /2/webhooks`, `PUT/DELETE /2/webhooks/:id`.
//! - Account Activity user subscriptions: `POST` and `GET
//!   /2/account_activity/webhooks/:id/subscriptions/all` (OAuth 1.0a user
//!   context: the subscribed user is the one whose access token signs),
//!   `GET …/subscriptions/all/list` and `DELETE …/subscriptions/:user_id/all`
//!   (app bearer token).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::Secret;
use crate::sources::twitter::api::{Problem, user_agent};
use crate::sources::twitter::webhooks::oauth1::UserCredentials;

pub const WEBHOOKS_PATH: &str = "/2/webhooks";

/// `/2/account_activity/webhooks/:id/subscriptions/all`.
pub fn subscription_path(webhook_id: &str) -> String {
    format!("/2/account_activity/webhooks/{webhook_id}/subscriptions/all")
}

/// A webhook config as X returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl WebhookConfig {
    /// One tab-separated line: id, url, valid|invalid, created_at.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}",
            self.id,
            self.url,
            if self.valid { "valid" } else { "invalid" },
            self.created_at.as_deref().unwrap_or("")
        )
    }
}

/// The Account Activity subscriptions of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionList {
    #[serde(default)]
    pub webhook_id: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub application_id: Option<String>,
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub user_id: String,
}

/// A failed webhook call.
#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    /// X refused the request's content (a URL that fails the CRC or X's
    /// requirements, an unknown webhook id): exit 78.
    #[error("X refused the request (HTTP {status}): {problem}")]
    Refused { status: u16, problem: Box<Problem> },
    /// The credentials were refused: exit 1.
    #[error("X refused the credentials (HTTP {status}): {problem}. Check {hint}")]
    Unauthorized {
        status: u16,
        problem: Box<Problem>,
        hint: &'static str,
    },
    #[error("the X API answered HTTP {status}: {problem}")]
    Http { status: u16, problem: Box<Problem> },
    #[error("cannot reach the X API at {base}: {}", crate::secret::error_chain(.source))]
    Network {
        base: String,
        source: reqwest::Error,
    },
    #[error("the X API at {base} timed out after {} ({endpoint})", humane(*.after))]
    Timeout {
        base: String,
        endpoint: String,
        after: Duration,
    },
    /// A 2xx answer in none of the shapes X documents: never read as an
    /// empty result.
    #[error("unexpected answer from {endpoint}: {detail}")]
    Shape { endpoint: String, detail: String },
    #[error("X could not validate the webhook {id}: its URL did not answer the CRC check")]
    NotValid { id: String },
    /// A request X's spec would refuse, caught before it is sent: exit 78.
    #[error("{0}")]
    Invalid(String),
}

/// The total time a management call may take, unless told otherwise.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// `60 s`, `1.5 s`.
fn humane(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{} s", d.as_secs()),
        _ => format!("{:.1} s", d.as_secs_f64()),
    }
}

/// `METHOD /path` of a call, without its query, for errors.
pub(super) fn endpoint(method: &reqwest::Method, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

/// An answer that is not what `endpoint` documents.
pub(super) fn shape(endpoint: &str, detail: impl std::fmt::Display, v: &Value) -> WebhooksError {
    let body: String = v.to_string().chars().take(200).collect();
    WebhooksError::Shape {
        endpoint: endpoint.to_owned(),
        detail: format!("{detail} (answer: {body})"),
    }
}

/// `data.<flag>` as a boolean; an empty answer (204) counts as `when_empty`.
pub(super) fn flag(
    v: &Value,
    endpoint: &str,
    name: &str,
    when_empty: Option<bool>,
) -> Result<bool, WebhooksError> {
    if v.is_null() {
        return when_empty.ok_or_else(|| shape(endpoint, "an empty answer", v));
    }
    v.pointer(&format!("/data/{name}"))
        .and_then(Value::as_bool)
        .ok_or_else(|| shape(endpoint, format!("no boolean `data.{name}`"), v))
}

/// A list answer: `data` as an array, or no `data` at all when the list is
/// empty (X leaves it out, keeping `meta`).
pub(super) fn list_of(v: &Value, endpoint: &str) -> Result<Vec<Value>, WebhooksError> {
    match v.get("data") {
        Some(Value::Array(items)) => Ok(items.clone()),
        None if v.as_object().is_some_and(|o| o.keys().all(|k| k == "meta")) => Ok(Vec::new()),
        _ => Err(shape(endpoint, "no `data` array", v)),
    }
}

/// An error body: a problem document, `{"errors":[…]}` (problems, or
/// `message`/`code` pairs), or anything else as detail.
pub fn problem_of(body: &str) -> Problem {
    let mut p = crate::sources::twitter::api::parse_problem(body);
    if p.title.is_none() && p.detail.is_none() {
        // `{"errors":[{"message":"…","code":214}]}`, X's older error shape.
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let first = v.get("errors").and_then(|e| e.get(0)).unwrap_or(&v);
        if let Some(m) = first.get("message").and_then(Value::as_str) {
            p.detail = Some(m.to_owned());
            p.title = first.get("code").map(|c| format!("error {c}"));
        } else if p.detail.is_none() && !body.trim().is_empty() {
            p.detail = Some(body.chars().take(300).collect::<String>().trim().to_owned());
        }
    }
    p
}

/// How a request authenticates.
pub(super) enum Auth<'a> {
    Bearer,
    User(&'a UserCredentials),
}

/// The webhook management client.
pub struct WebhooksApi {
    base: String,
    bearer: Option<Secret>,
    http: reqwest::Client,
    timeout: Duration,
}

impl WebhooksApi {
    pub fn new(base: &str, bearer: Option<Secret>) -> Result<Self, WebhooksError> {
        Self::with_timeout(base, bearer, CALL_TIMEOUT)
    }

    /// A client whose calls time out after `timeout` in all.
    pub fn with_timeout(
        base: &str,
        bearer: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self, WebhooksError> {
        let http = reqwest::Client::builder()
            .user_agent(user_agent())
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|source| WebhooksError::Network {
                base: base.to_owned(),
                source,
            })?;
        Ok(WebhooksApi {
            base: base.trim_end_matches('/').to_owned(),
            bearer,
            http,
            timeout,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        auth: Auth<'_>,
    ) -> Result<Value, WebhooksError> {
        let url = self.url(path);
        let mut req = self.http.request(method.clone(), &url);
        let hint = match auth {
            Auth::Bearer => {
                let token = self.bearer.as_ref().map_or("", |t| t.expose());
                req = req.bearer_auth(token);
                "TWITTER_BEARER_TOKEN (or BEARER_TOKEN)"
            }
            Auth::User(creds) => {
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    creds.authorization(method.as_str(), &url),
                );
                "TWITTER_CONSUMER_KEY, TWITTER_CONSUMER_SECRET, TWITTER_ACCESS_TOKEN and TWITTER_ACCESS_TOKEN_SECRET"
            }
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let network = |source: reqwest::Error| {
            if source.is_timeout() {
                WebhooksError::Timeout {
                    base: self.base.clone(),
                    endpoint: endpoint(&method, path),
                    after: self.timeout,
                }
            } else {
                WebhooksError::Network {
                    base: self.base.clone(),
                    source: source.without_url(),
                }
            }
        };
        let resp = req.send().await.map_err(network)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(network)?;
        let problem = || Box::new(problem_of(&text));
        match status {
            200..=299 => serde_json::from_str(&text).or_else(|e| match text.trim() {
                "" => Ok(Value::Null),
                _ => Err(WebhooksError::Shape {
                    endpoint: endpoint(&method, path),
                    detail: format!("not JSON ({e})"),
                }),
            }),
            401 | 403 => Err(WebhooksError::Unauthorized {
                status,
                problem: problem(),
                hint,
            }),
            400 | 404 | 409 | 422 => Err(WebhooksError::Refused {
                status,
                problem: problem(),
            }),
            _ => Err(WebhooksError::Http {
                status,
                problem: problem(),
            }),
        }
    }

    /// `POST /2/webhooks`: X sends a CRC GET to `url` before it answers.
    pub async fn register(&self, url: &str) -> Result<WebhookConfig, WebhooksError> {
        let v = self
            .call(
                reqwest::Method::POST,
                WEBHOOKS_PATH,
                Some(serde_json::json!({ "url": url })),
                Auth::Bearer,
            )
            .await?;
        refuse_errors(&v)?;
        // 2.167 wraps the config in `data`; docs.x.com's example shows it bare.
        let config = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
        serde_json::from_value(config.clone())
            .map_err(|e| shape(&endpoint(&reqwest::Method::POST, WEBHOOKS_PATH), e, &v))
    }

    /// `GET /2/webhooks`.
    pub async fn list(&self) -> Result<Vec<WebhookConfig>, WebhooksError> {
        let v = self
            .call(reqwest::Method::GET, WEBHOOKS_PATH, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::GET, WEBHOOKS_PATH);
        let data = list_of(&v, &here)?;
        serde_json::from_value(Value::Array(data)).map_err(|e| shape(&here, e, &v))
    }

    /// `PUT /2/webhooks/:id`: asks X to send a CRC again.
    pub async fn validate(&self, id: &str) -> Result<(), WebhooksError> {
        let path = format!("{WEBHOOKS_PATH}/{id}");
        let v = self
            .call(reqwest::Method::PUT, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        match flag(&v, &endpoint(&reqwest::Method::PUT, &path), "valid", None)? {
            true => Ok(()),
            false => Err(WebhooksError::NotValid { id: id.to_owned() }),
        }
    }

    /// `DELETE /2/webhooks/:id`.
    pub async fn delete(&self, id: &str) -> Result<(), WebhooksError> {
        let path = format!("{WEBHOOKS_PATH}/{id}");
        let v = self
            .call(reqwest::Method::DELETE, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        deleted(&v, &endpoint(&reqwest::Method::DELETE, &path))
    }

    /// `POST …/subscriptions/all`: subscribes the user whose access token signs.
    pub async fn subscribe(
        &self,
        webhook_id: &str,
        creds: &UserCredentials,
    ) -> Result<bool, WebhooksError> {
        let path = subscription_path(webhook_id);
        let v = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(serde_json::json!({})),
                Auth::User(creds),
            )
            .await?;
        refuse_errors(&v)?;
        flag(
            &v,
            &endpoint(&reqwest::Method::POST, &path),
            "subscribed",
            None,
        )
    }

    /// `GET …/subscriptions/all/list` (bearer).
    pub async fn subscriptions(&self, webhook_id: &str) -> Result<SubscriptionList, WebhooksError> {
        let path = format!("{}/list", subscription_path(webhook_id));
        let v = self
            .call(reqwest::Method::GET, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::GET, &path);
        match v.get("data") {
            Some(d @ Value::Object(_)) => {
                serde_json::from_value(d.clone()).map_err(|e| shape(&here, e, &v))
            }
            None if v.as_object().is_some_and(|o| o.is_empty()) => Ok(SubscriptionList::default()),
            _ => Err(shape(&here, "no `data` object", &v)),
        }
    }

    /// `DELETE …/subscriptions/:user_id/all` (bearer).
    pub async fn unsubscribe(&self, webhook_id: &str, user_id: &str) -> Result<(), WebhooksError> {
        let path = format!("/2/account_activity/webhooks/{webhook_id}/subscriptions/{user_id}/all");
        let v = self
            .call(reqwest::Method::DELETE, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::DELETE, &path);
        match flag(&v, &here, "subscribed", Some(false))? {
            false => Ok(()),
            true => Err(shape(&here, "the user is still subscribed", &v)),
        }
    }
}

/// A delete's answer: `data.deleted: true` (or an empty 204).
pub(super) fn deleted(v: &Value, endpoint: &str) -> Result<(), WebhooksError> {
    match flag(v, endpoint, "deleted", Some(true))? {
        true => Ok(()),
        false => Err(shape(endpoint, "X did not delete it", v)),
    }
}

/// A 200 that carries `errors` and no `data` is a refusal.
pub(super) fn refuse_errors(v: &Value) -> Result<(), WebhooksError> {
    match (v.get("data"), v.get("errors").and_then(|e| e.get(0))) {
        (None, Some(first)) => Err(WebhooksError::Refused {
            status: 200,
            problem: Box::new(problem_of(&first.to_string())),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_in_every_shape_x_uses() {
        let p = problem_of(
            r#"{"title":"CrcValidationFailed","detail":"The callback URL did not respond correctly to the CRC check.","type":"https://api.x.com/2/problems/invalid-request","status":400}"#,
        );
        assert_eq!(
            p.to_string(),
            "CrcValidationFailed: The callback URL did not respond correctly to the CRC check."
        );
        let p = problem_of(
            r#"{"errors":[{"message":"Too many resources already created.","code":214}]}"#,
        );
        assert_eq!(
            p.to_string(),
            "error 214: Too many resources already created."
        );
        assert_eq!(problem_of("Bad Gateway").to_string(), "error: Bad Gateway");
    }

    #[test]
    fn a_line_per_webhook() {
        let w = WebhookConfig {
            id: "1".into(),
            url: "https://e.x/h".into(),
            valid: false,
            created_at: Some("2026-01-01T00:00:00.000Z".into()),
        };
        assert_eq!(
            w.line(),
            "1\thttps://e.x/h\tinvalid\t2026-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn errors_without_data_are_refusals() {
        let v: Value = serde_json::from_str(
            r#"{"errors":[{"title":"WebhookIdInvalid","detail":"no such webhook"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            refuse_errors(&v),
            Err(WebhooksError::Refused { .. })
        ));
        let v: Value = serde_json::from_str(r#"{"data":{"valid":true}}"#).unwrap();
        assert!(refuse_errors(&v).is_ok());
    }

    #[test]
    fn answers_in_no_documented_shape_are_errors_naming_the_endpoint() {
        let e = "PUT /2/webhooks/1";
        for body in [
            "null",
            "{}",
            r#"{"data":{"attempted":true}}"#,
            r#""valid""#,
            "[]",
        ] {
            let v: Value = serde_json::from_str(body).unwrap();
            let err = flag(&v, e, "valid", None).unwrap_err();
            assert!(err.to_string().contains(e), "{body}: {err}");
        }
        let v = serde_json::json!({"data": {"valid": false}});
        assert!(!flag(&v, e, "valid", None).unwrap());
        assert!(deleted(&Value::Null, "DELETE /2/webhooks/1").is_ok());
        let v = serde_json::json!({"data": {"deleted": false}});
        assert!(deleted(&v, "DELETE /2/webhooks/1").is_err());
        let v = serde_json::json!({"data": 1});
        assert!(deleted(&v, "DELETE /2/webhooks/1").is_err());
        assert!(
            list_of(&serde_json::json!({"meta": {"result_count": 0}}), e)
                .unwrap()
                .is_empty()
        );
        assert!(list_of(&serde_json::json!({}), e).unwrap().is_empty());
        assert!(list_of(&serde_json::json!({"data": {"links": []}}), e).is_err());
        assert!(list_of(&Value::Null, e).is_err());
    }
}
