//! X Activity API subscriptions (`/2/activity/subscriptions`) and the
//! filtered-stream webhook links (`/2/tweets/search/webhooks`), both with the
//! app bearer token.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::sources::twitter::stream::{
    DEFAULT_EXPANSIONS, DEFAULT_TWEET_FIELDS, DEFAULT_USER_FIELDS,
};
use crate::sources::twitter::webhooks::manage::{
    Auth, WebhooksApi, WebhooksError, deleted, endpoint, flag, list_of, refuse_errors, shape,
};

pub const ACTIVITY_PATH: &str = "/2/activity/subscriptions";

/// The event types `POST /2/activity/subscriptions` takes (X API v2 2.167).
pub const EVENT_TYPES: [&str; 29] = [
    "profile.update.bio",
    "profile.update.profile_picture",
    "profile.update.banner_picture",
    "profile.update.screenname",
    "profile.update.geo",
    "profile.update.url",
    "profile.update.verified_badge",
    "profile.update.affiliate_badge",
    "profile.update.handle",
    "news.new",
    "follow.follow",
    "follow.unfollow",
    "spaces.start",
    "spaces.end",
    "chat.received",
    "chat.sent",
    "chat.conversation_join",
    "dm.sent",
    "dm.received",
    "dm.indicate_typing",
    "dm.read",
    "post.create",
    "post.delete",
    "post.mention.create",
    "like.create",
    "mute.mute",
    "mute.unmute",
    "block.block",
    "block.unblock",
];

/// What the spec would refuse in a new subscription, said before sending it.
fn check_new(new: &NewActivitySubscription) -> Result<(), WebhooksError> {
    if !EVENT_TYPES.contains(&new.event_type.as_str()) {
        return Err(WebhooksError::Invalid(format!(
            "event_type must be one of: {} (got {:?})",
            EVENT_TYPES.join(", "),
            new.event_type
        )));
    }
    if new.user_id.is_none() && new.keyword.is_none() {
        return Err(WebhooksError::Invalid(
            "a subscription needs --user-id or --keyword".into(),
        ));
    }
    if let Some(t) = &new.tag
        && !(1..=200).contains(&t.chars().count())
    {
        return Err(WebhooksError::Invalid(
            "--tag must be 1 to 200 characters".into(),
        ));
    }
    let digits = |s: &str| (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(&new.webhook_id) {
        return Err(WebhooksError::Invalid(format!(
            "a webhook id is 1 to 19 digits, not {:?}",
            new.webhook_id
        )));
    }
    Ok(())
}
pub const STREAM_LINKS_PATH: &str = "/2/tweets/search/webhooks";

/// An X Activity API subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySubscription {
    pub subscription_id: String,
    pub event_type: String,
    #[serde(default)]
    pub filter: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl ActivitySubscription {
    /// id, event type, filter (JSON), webhook id, tag: tab-separated.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}",
            self.subscription_id,
            self.event_type,
            self.filter,
            self.webhook_id.as_deref().unwrap_or(""),
            self.tag.as_deref().unwrap_or("")
        )
    }
}

/// What `activity-subscribe` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewActivitySubscription {
    pub event_type: String,
    pub user_id: Option<String>,
    pub keyword: Option<String>,
    pub tag: Option<String>,
    pub webhook_id: String,
}

/// The fields a linked stream delivers (query parameters of the link).
#[derive(Debug, Clone)]
pub struct LinkFields {
    pub tweet_fields: String,
    pub expansions: String,
    pub user_fields: String,
}

impl Default for LinkFields {
    /// The stream's defaults, so a post has the same record from both.
    fn default() -> Self {
        LinkFields {
            tweet_fields: DEFAULT_TWEET_FIELDS.into(),
            expansions: DEFAULT_EXPANSIONS.into(),
            user_fields: DEFAULT_USER_FIELDS.into(),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    part: Value,
    whole: &Value,
    endpoint: &str,
) -> Result<T, WebhooksError> {
    serde_json::from_value(part).map_err(|e| shape(endpoint, e, whole))
}

impl WebhooksApi {
    /// `POST /2/activity/subscriptions`, delivering to `webhook_id`.
    pub async fn activity_subscribe(
        &self,
        new: &NewActivitySubscription,
    ) -> Result<ActivitySubscription, WebhooksError> {
        check_new(new)?;
        let mut filter = serde_json::Map::new();
        if let Some(u) = &new.user_id {
            filter.insert("user_id".into(), u.clone().into());
        }
        if let Some(k) = &new.keyword {
            filter.insert("keyword".into(), k.clone().into());
        }
        let mut body =
            json!({"event_type": new.event_type, "filter": filter, "webhook_id": new.webhook_id});
        if let Some(t) = &new.tag {
            body["tag"] = t.clone().into();
        }
        let v = self
            .call(
                reqwest::Method::POST,
                ACTIVITY_PATH,
                Some(body),
                Auth::Bearer,
            )
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::POST, ACTIVITY_PATH);
        // 2.167: `data.subscription`; the docs' example also shows `data` itself.
        let sub = v
            .pointer("/data/subscription")
            .or_else(|| v.get("data").filter(|d| d.get("subscription_id").is_some()))
            .cloned()
            .ok_or_else(|| shape(&here, "no `data.subscription`", &v))?;
        decode(sub, &v, &here)
    }

    /// `GET /2/activity/subscriptions`.
    pub async fn activity_subscriptions(&self) -> Result<Vec<ActivitySubscription>, WebhooksError> {
        let v = self
            .call(reqwest::Method::GET, ACTIVITY_PATH, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::GET, ACTIVITY_PATH);
        decode(Value::Array(list_of(&v, &here)?), &v, &here)
    }

    /// `DELETE /2/activity/subscriptions/:id`.
    pub async fn activity_unsubscribe(&self, id: &str) -> Result<(), WebhooksError> {
        let path = format!("{ACTIVITY_PATH}/{id}");
        let v = self
            .call(reqwest::Method::DELETE, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        deleted(&v, &endpoint(&reqwest::Method::DELETE, &path))
    }

    /// `POST /2/tweets/search/webhooks/:id`: filtered-stream posts go to the webhook.
    pub async fn stream_link(
        &self,
        webhook_id: &str,
        fields: &LinkFields,
    ) -> Result<(), WebhooksError> {
        let query = serde_urlencoded_pairs(&[
            ("tweet.fields", &fields.tweet_fields),
            ("expansions", &fields.expansions),
            ("user.fields", &fields.user_fields),
        ]);
        let path = format!("{STREAM_LINKS_PATH}/{webhook_id}?{query}");
        let v = self
            .call(reqwest::Method::POST, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::POST, &path);
        match flag(&v, &here, "provisioned", None)? {
            true => Ok(()),
            false => Err(shape(&here, "X did not provision the link", &v)),
        }
    }

    /// `GET /2/tweets/search/webhooks`: the links, as X returns them.
    pub async fn stream_links(&self) -> Result<Vec<Value>, WebhooksError> {
        let v = self
            .call(reqwest::Method::GET, STREAM_LINKS_PATH, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        let here = endpoint(&reqwest::Method::GET, STREAM_LINKS_PATH);
        // 2.167: `data` is the array of links; an older reading had `data.links`.
        match v.pointer("/data/links") {
            Some(Value::Array(links)) => Ok(links.clone()),
            _ => list_of(&v, &here),
        }
    }

    /// `DELETE /2/tweets/search/webhooks/:id`.
    pub async fn stream_unlink(&self, webhook_id: &str) -> Result<(), WebhooksError> {
        let path = format!("{STREAM_LINKS_PATH}/{webhook_id}");
        let v = self
            .call(reqwest::Method::DELETE, &path, None, Auth::Bearer)
            .await?;
        refuse_errors(&v)?;
        deleted(&v, &endpoint(&reqwest::Method::DELETE, &path))
    }
}

/// `k=v&…`, percent-encoded.
fn serde_urlencoded_pairs(pairs: &[(&str, &String)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_query_is_the_streams_defaults() {
        let f = LinkFields::default();
        let q = serde_urlencoded_pairs(&[
            ("tweet.fields", &f.tweet_fields),
            ("expansions", &f.expansions),
        ]);
        assert_eq!(
            q,
            "tweet.fields=created%5Fat%2Clang%2Cauthor%5Fid%2Cconversation%5Fid%2Csource%2Centities&expansions=author%5Fid"
        );
    }
}
