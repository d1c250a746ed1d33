//! The `mongodb` sink: unordered bulk upserts keyed by `_id` = record id, so a
//! replay or a retried batch never duplicates a document.
//!
//! Writes are `update` commands whose statements replace the document with
//! `_id` = id (`upsert: true`), in unordered batches: the plain command every
//! MongoDB-wire server speaks (the newer `bulkWrite` command needs MongoDB 8).
//! Per-statement `writeErrors` decide which records are retried and which are
//! dead-lettered.
//!
//! This module holds the config, its validation and the connection string's
//! resolution (in every build); [`uri`] the connection string's secrets;
//! `errors` (write results and error classification) and `sink` (the client)
//! need the `mongodb` feature.

use serde::Deserialize;

use crate::record::Format;
use crate::secret::Secret;
use crate::sinks::common::{BatchConfig, RetryConfig, default_queue_capacity};
#[cfg(feature = "mongodb")]
use crate::sinks::{AnySink, BuildError};
use crate::sinks::{FieldError, SinkType};

use super::uri::{expand_uri, redact_uri};

/// The connection string used when neither `uri` nor `uri_env` is set.
pub const DEFAULT_URI: &str = "mongodb://127.0.0.1:27017";
/// MongoDB's largest document.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// `[sinks.NAME]` with `type = "mongodb"`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MongodbSinkConfig {
    /// Connection string; `${VAR}` is replaced by the environment variable VAR.
    pub uri: Option<String>,
    /// Or: the environment variable holding the whole connection string.
    pub uri_env: Option<String>,
    pub database: String,
    /// Collection template: a name, or placeholders (`tweets_{tag}`) whose
    /// values are sanitized (README, "Routing").
    pub collection: String,
    /// With several rule tags, upsert a record into each tag's collection;
    /// default false: once, with its first tag.
    #[serde(default)]
    pub split_tags: bool,
    /// `record` (default) or `raw`; either way `_id` is the record id.
    #[serde(default)]
    pub format: Format,
    /// Expire documents this long after `ttl_field` (a TTL index is created).
    pub ttl_seconds: Option<u64>,
    /// The date field the TTL index uses; the sink sets it to `received_at` as a BSON date.
    #[serde(default = "default_ttl_field")]
    pub ttl_field: String,
    /// Apply X compliance `delete` events: delete the document of the deleted
    /// post (`_id` = `twitter:<post id>`) instead of storing the event, and
    /// count it. Other compliance events are stored like any record.
    #[serde(default)]
    pub apply_compliance: bool,
    /// How long to wait for a usable server before a write counts as failed.
    #[serde(default = "default_server_selection_timeout_ms")]
    pub server_selection_timeout_ms: u64,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_ttl_field() -> String {
    "ingested_at".to_owned()
}
fn default_server_selection_timeout_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for MongodbSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongodbSinkConfig")
            .field("uri", &self.uri.as_deref().map(redact_uri))
            .field("uri_env", &self.uri_env)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("split_tags", &self.split_tags)
            .field("format", &self.format)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("ttl_field", &self.ttl_field)
            .field("apply_compliance", &self.apply_compliance)
            .field(
                "server_selection_timeout_ms",
                &self.server_selection_timeout_ms,
            )
            .field("queue_capacity", &self.queue_capacity)
            .field("batch", &self.batch)
            .field("retry", &self.retry)
            .finish()
    }
}

impl MongodbSinkConfig {
    /// Checks the fields; the error names the field and says why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.uri.is_some() && self.uri_env.is_some() {
            return Err(("uri_env", "cannot be used with `uri`: keep one".into()));
        }
        if let Some(uri) = &self.uri
            && !(uri.starts_with("mongodb://")
                || uri.starts_with("mongodb+srv://")
                || uri.starts_with("${"))
        {
            return Err((
                "uri",
                format!(
                    "`{}` is not a MongoDB connection string (`mongodb://…` or `mongodb+srv://…`)",
                    redact_uri(uri)
                ),
            ));
        }
        if let Some(var) = &self.uri_env
            && var.trim().is_empty()
        {
            return Err(("uri_env", "is empty".into()));
        }
        if self.database.is_empty() || self.database.contains(['/', '\\', '.', ' ', '"', '$']) {
            return Err((
                "database",
                format!(
                    "`{}` is not a valid database name (not empty, none of / \\ . space \" $)",
                    self.database
                ),
            ));
        }
        let template = crate::sinks::template::Template::compile(
            &self.collection,
            crate::sinks::template::Target::Collection,
        )
        .map_err(|m| ("collection", m))?;
        if self.collection.starts_with("system.") || template.literal_text().contains('$') {
            return Err((
                "collection",
                format!(
                    "`{}` is not a valid collection name (not empty, no `$`, not `system.*`)",
                    self.collection
                ),
            ));
        }
        crate::sinks::template::check_split_tags(self.split_tags, &[&template])
            .map_err(|m| ("split_tags", m))?;
        if self.apply_compliance && template.literal().is_none() {
            return Err((
                "apply_compliance",
                format!(
                    "needs a fixed `collection` (the deleted post's document is looked up there), not the template `{}`",
                    self.collection
                ),
            ));
        }
        if self.ttl_seconds == Some(0) {
            return Err((
                "ttl_seconds",
                "must be at least 1 (remove it to keep documents forever)".into(),
            ));
        }
        if self.ttl_field.is_empty() || self.ttl_field.starts_with('$') || self.ttl_field == "_id" {
            return Err((
                "ttl_field",
                format!("`{}` cannot hold the TTL date", self.ttl_field),
            ));
        }
        if self.server_selection_timeout_ms == 0 {
            return Err(("server_selection_timeout_ms", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The connection string, with `${VAR}` expanded or read from `uri_env`.
    pub fn resolve_uri(&self) -> Result<Secret, String> {
        if let Some(var) = &self.uri_env {
            return std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret::new(v.trim()))
                .ok_or_else(|| {
                    format!("the environment variable `{var}` (named by `uri_env`) is not set")
                });
        }
        let uri = self.uri.as_deref().unwrap_or(DEFAULT_URI);
        expand_uri(uri, |k| std::env::var(k).ok()).map(Secret::new)
    }
}

impl SinkType for MongodbSinkConfig {
    crate::sinks::sink_type_basics!("mongodb", feature);
    fn validate(&self) -> Result<(), FieldError> {
        self.validate().map_err(|(f, m)| FieldError::new(f, m))
    }
    /// The connection string is the one secret here: a missing variable is a config error.
    #[cfg(feature = "mongodb")]
    fn build(&self, name: &str) -> Result<AnySink, BuildError> {
        let sink =
            super::MongodbSink::new(name, self.clone()).map_err(BuildError::MissingSecret)?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c: MongodbSinkConfig = toml::from_str(
            "uri = \"mongodb://u:hunter2@h/\"\ndatabase = \"d\"\ncollection = \"c\"",
        )
        .unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && d.contains("***@h/"), "{d}");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn config_errors_name_the_field() {
        let c: MongodbSinkConfig =
            toml::from_str("uri = \"http://x\"\ndatabase = \"d\"\ncollection = \"c\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "uri");
        let c: MongodbSinkConfig =
            toml::from_str("database = \"d.x\"\ncollection = \"c\"").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "database");
        let c: MongodbSinkConfig =
            toml::from_str("database = \"d\"\ncollection = \"c\"\nttl_seconds = 0").unwrap();
        assert_eq!(c.validate().unwrap_err().0, "ttl_seconds");
        let c: MongodbSinkConfig = toml::from_str(
            "database = \"d\"\ncollection = \"c\"\nuri = \"mongodb://h\"\nuri_env = \"X\"",
        )
        .unwrap();
        assert_eq!(c.validate().unwrap_err().0, "uri_env");
    }
}
