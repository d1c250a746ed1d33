//! `ingest twitter-webhook ACTION`: the webhook management subcommands (clap only).

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum WebhookAction {
    /// Register a webhook URL with X (POST /2/webhooks). X sends a CRC GET to the URL first:
    /// `ingest twitter-webhook --listen` (behind your TLS proxy, or with --tls-cert) must answer it.
    Register {
        /// The public https URL of the webhook (no port), e.g. https://example.com/webhooks/twitter.
        #[arg(long, env = "INGEST_WEBHOOK_URL", value_name = "URL")]
        url: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// List the app's webhooks: id, url, valid|invalid, created_at (tab-separated).
    List {
        /// One JSON document (`{"webhooks":[…]}`) instead of lines.
        #[arg(long, env = "INGEST_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
        json: bool,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Ask X to send the CRC check again (PUT /2/webhooks/:id); an invalid webhook turns valid if it passes.
    Validate {
        /// The webhook id.
        id: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Delete a webhook (DELETE /2/webhooks/:id).
    Delete {
        /// The webhook id.
        id: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Ask X to deliver again what it delivered or tried to deliver to the webhook between two
    /// minutes of the last 24 hours (POST /2/webhooks/replay); prints the job id and its creation time.
    Replay {
        /// The webhook id.
        id: String,
        /// The first minute replayed: RFC 3339, a date, or a duration ago (`2h`); sent as yyyymmddhhmm UTC.
        #[arg(long, env = "INGEST_REPLAY_FROM", value_name = "TIME")]
        from: String,
        /// The last minute replayed, the same forms (default: now).
        #[arg(long, env = "INGEST_REPLAY_TO", value_name = "TIME")]
        to: Option<String>,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Subscribe the user of TWITTER_ACCESS_TOKEN to the webhook's Account Activity (OAuth 1.0a user context).
    Subscribe {
        /// The webhook id.
        id: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Remove a user's Account Activity subscription (app bearer token).
    Unsubscribe {
        /// The webhook id.
        id: String,
        /// The user to unsubscribe.
        #[arg(long, env = "INGEST_USER_ID", value_name = "ID")]
        user_id: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// List the users subscribed to a webhook's Account Activity, one id a line (app bearer token).
    Subscriptions {
        /// The webhook id.
        id: String,
        /// One JSON document instead of lines.
        #[arg(long, env = "INGEST_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
        json: bool,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Subscribe the webhook to an X Activity API event type for a user (POST /2/activity/subscriptions).
    ActivitySubscribe {
        /// The webhook id the events go to.
        id: String,
        /// The event type, e.g. profile.update.bio, follow.follow, dm.received (see the X Activity docs).
        #[arg(long, env = "INGEST_EVENT_TYPE", value_name = "TYPE")]
        event_type: String,
        /// Filter: the user whose events to receive.
        #[arg(long, env = "INGEST_USER_ID", value_name = "ID")]
        user_id: Option<String>,
        /// Filter: a keyword (event types filtered by keyword, e.g. news.new).
        #[arg(long, env = "INGEST_KEYWORD", value_name = "WORD")]
        keyword: Option<String>,
        /// A tag X sends back with each event.
        #[arg(long, env = "INGEST_TAG", value_name = "TAG")]
        tag: Option<String>,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// List the app's X Activity API subscriptions: id, event type, filter, webhook id, tag.
    ActivitySubscriptions {
        /// One JSON document instead of lines.
        #[arg(long, env = "INGEST_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
        json: bool,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Delete an X Activity API subscription (DELETE /2/activity/subscriptions/:id).
    ActivityUnsubscribe {
        /// The subscription id.
        subscription_id: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Deliver the filtered stream's posts to the webhook (POST /2/tweets/search/webhooks/:id).
    StreamLink {
        /// The webhook id.
        id: String,
        /// `tweet.fields` of the delivered posts (default: the stream's).
        #[arg(long, env = "INGEST_TWEET_FIELDS", value_name = "FIELDS")]
        tweet_fields: Option<String>,
        /// `expansions` of the delivered posts (default: the stream's).
        #[arg(long, env = "INGEST_EXPANSIONS", value_name = "FIELDS")]
        expansions: Option<String>,
        /// `user.fields` of the delivered posts (default: the stream's).
        #[arg(long, env = "INGEST_USER_FIELDS", value_name = "FIELDS")]
        user_fields: Option<String>,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// List the filtered-stream webhook links (GET /2/tweets/search/webhooks).
    StreamLinks {
        /// One JSON document instead of lines.
        #[arg(long, env = "INGEST_JSON", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
        json: bool,
        #[command(flatten)]
        common: WebhookCommon,
    },
    /// Stop delivering the filtered stream to the webhook (DELETE /2/tweets/search/webhooks/:id).
    StreamUnlink {
        /// The webhook id.
        id: String,
        #[command(flatten)]
        common: WebhookCommon,
    },
}

/// Options of every webhook action.
#[derive(Debug, Args)]
pub struct WebhookCommon {
    /// Base URL of the X API (tests and proxies point it elsewhere). The same
    /// flag as `TwitterApiArgs` of the main command line, spelled out here.
    #[arg(long, env = "INGEST_TWITTER_API_BASE", value_name = "URL")]
    pub twitter_api_base: Option<String>,

    /// How long one call to X may take in all before it is "timed out".
    #[arg(long, env = "INGEST_API_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = crate::duration::parse_duration)]
    pub api_timeout: std::time::Duration,

    /// Config file (default: ./ingest.toml when present).
    #[arg(long, env = "INGEST_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

impl WebhookAction {
    pub fn common(&self) -> &WebhookCommon {
        match self {
            WebhookAction::Register { common, .. }
            | WebhookAction::List { common, .. }
            | WebhookAction::Validate { common, .. }
            | WebhookAction::Delete { common, .. }
            | WebhookAction::Replay { common, .. }
            | WebhookAction::Subscribe { common, .. }
            | WebhookAction::Unsubscribe { common, .. }
            | WebhookAction::Subscriptions { common, .. }
            | WebhookAction::ActivitySubscribe { common, .. }
            | WebhookAction::ActivitySubscriptions { common, .. }
            | WebhookAction::ActivityUnsubscribe { common, .. }
            | WebhookAction::StreamLink { common, .. }
            | WebhookAction::StreamLinks { common, .. }
            | WebhookAction::StreamUnlink { common, .. } => common,
        }
    }
}
