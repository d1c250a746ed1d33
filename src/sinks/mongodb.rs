//! The `mongodb` sink: unordered bulk upserts keyed by `_id` = record id, so a
//! replay or a retried batch never duplicates a document.
//!
//! Writes are `update` commands whose statements replace the document with
//! `_id` = id (`upsert: true`), in unordered batches: the plain command every
//! MongoDB-wire server speaks (the newer `bulkWrite` command needs MongoDB 8).
//! Per-statement `writeErrors` decide which records are retried and which are
//! dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::error::{ErrorKind, RETRYABLE_WRITE_ERROR};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{debug, info};

use super::common::{BatchConfig, RetryConfig, default_queue_capacity};
use super::{RecordResults, Sink, SinkError};
use crate::record::{Format, Record};
use crate::secret::Secret;

/// The connection string used when neither `uri` nor `uri_env` is set.
pub const DEFAULT_URI: &str = "mongodb://127.0.0.1:27017";
/// Most statements in one `update` command.
const MAX_STATEMENTS: usize = 1000;
/// Most (estimated) bytes of documents in one command; a command is at most 16 MiB.
const MAX_COMMAND_BYTES: usize = 12 * 1024 * 1024;
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
    pub collection: String,
    /// `record` (default) or `raw`; either way `_id` is the record id.
    #[serde(default)]
    pub format: Format,
    /// Expire documents this long after `ttl_field` (a TTL index is created).
    pub ttl_seconds: Option<u64>,
    /// The date field the TTL index uses; the sink sets it to `received_at` as a BSON date.
    #[serde(default = "default_ttl_field")]
    pub ttl_field: String,
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
            .field("format", &self.format)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("ttl_field", &self.ttl_field)
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
        if self.collection.is_empty()
            || self.collection.starts_with("system.")
            || self.collection.contains('$')
        {
            return Err((
                "collection",
                format!(
                    "`{}` is not a valid collection name (not empty, no `$`, not `system.*`)",
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

/// `uri` with every `${VAR}` replaced; an unset variable is an error naming it.
fn expand_uri(uri: &str, get: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    crate::secret::expand_vars(uri, get)
        .map_err(|name| format!("the environment variable `{name}` used in `uri` is not set"))
}

/// A connection string with its user and password replaced by `***`.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return uri.to_owned();
    };
    let authority_end = uri[scheme_end..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| scheme_end + i);
    match uri[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &uri[..scheme_end], &uri[scheme_end + at..]),
        None => uri.to_owned(),
    }
}

/// The password in a connection string, raw and percent-decoded, to scrub from messages.
fn secrets_in(uri: &str) -> Vec<String> {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return Vec::new();
    };
    let authority_end = uri[scheme_end..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| scheme_end + i);
    let authority = &uri[scheme_end..authority_end];
    let Some(at) = authority.rfind('@') else {
        return Vec::new();
    };
    let userinfo = &authority[..at];
    let mut out = Vec::new();
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        out.push(password.to_owned());
        let decoded = percent_decode(password);
        if decoded != password {
            out.push(decoded);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a server error code is worth retrying (network, elections,
/// interruptions, write conflicts, duplicate keys from racing upserts, throttling).
pub fn retryable_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7
            | 50
            | 64
            | 89
            | 91
            | 112
            | 189
            | 262
            | 9001
            | 10107
            | 11000
            | 11600
            | 11602
            | 13435
            | 13436
            | 16500
            | 462
            | 134
    )
}

/// Writes records as MongoDB documents.
pub struct MongodbSink {
    name: String,
    uri: Secret,
    /// Connected at first use (parsing a `mongodb+srv://` URI resolves DNS; building the sink does not).
    db: OnceCell<Database>,
    config: MongodbSinkConfig,
    /// Strings never to show in a message (the password).
    secrets: Vec<String>,
}

impl MongodbSink {
    /// Checks the config and resolves the connection string (a missing
    /// variable fails here); connects at first use.
    pub fn new(name: &str, config: MongodbSinkConfig) -> Result<Self, String> {
        config.validate().map_err(|(f, m)| format!("`{f}` {m}"))?;
        let uri = config.resolve_uri()?;
        Ok(MongodbSink {
            name: name.to_owned(),
            secrets: secrets_in(uri.expose()),
            uri,
            db: OnceCell::new(),
            config,
        })
    }

    async fn db(&self) -> Result<&Database, SinkError> {
        self.db
            .get_or_try_init(|| async {
                let mut options = ClientOptions::parse(self.uri.expose()).await.map_err(|e| {
                    format!(
                        "invalid connection string `{}`: {e}",
                        redact_uri(self.uri.expose())
                    )
                })?;
                options.app_name = Some("ingest".to_owned());
                options.server_selection_timeout = Some(Duration::from_millis(
                    self.config.server_selection_timeout_ms,
                ));
                let client = Client::with_options(options).map_err(|e| e.to_string())?;
                Ok::<_, String>(client.database(&self.config.database))
            })
            .await
            .map_err(|m| SinkError::fatal(&self.name, self.scrub(m)))
    }

    fn scrub(&self, m: String) -> String {
        scrub_with(&self.secrets, m)
    }

    /// The document of a record: the record (or its raw payload) with `_id` = id.
    fn document(&self, r: &Record) -> Result<Document, String> {
        let value = match (self.config.format, &r.raw) {
            (Format::Raw, Some(raw)) => serde_json::from_str::<Value>(raw.get()),
            _ => serde_json::to_value(r),
        }
        .map_err(|e| format!("cannot convert the record to a document: {e}"))?;
        let mut doc = match value {
            Value::Object(_) => bson::to_document(&value)
                .map_err(|e| format!("cannot convert the record to BSON: {e}"))?,
            other => {
                let mut d = Document::new();
                d.insert(
                    "payload",
                    bson::to_bson(&other)
                        .map_err(|e| format!("cannot convert the record to BSON: {e}"))?,
                );
                d
            }
        };
        doc.insert("_id", r.id.as_str());
        if self.config.ttl_seconds.is_some() {
            let at = DateTime::parse_from_rfc3339(&r.received_at)
                .map(|t| bson::DateTime::from_millis(t.timestamp_millis()))
                .unwrap_or_else(|_| bson::DateTime::now());
            doc.insert(self.config.ttl_field.as_str(), at);
        }
        Ok(doc)
    }

    /// Sends one unordered `update` command with an upsert per record.
    async fn upsert(
        &self,
        db: &Database,
        statements: Vec<Document>,
        indexes: &[usize],
        out: &mut RecordResults,
    ) {
        let command = doc! {
            "update": &self.config.collection,
            "updates": statements,
            "ordered": false,
        };
        let reply = match db.run_command(command).await {
            Ok(reply) => reply,
            Err(e) => {
                let retry = is_transient(&e);
                let m = self.scrub(format!(
                    "update on {}.{}: {e}",
                    self.config.database, self.config.collection
                ));
                if retry {
                    out.failed.extend_from_slice(indexes);
                } else {
                    out.rejected.extend(indexes.iter().map(|&i| (i, m.clone())));
                }
                out.note(m);
                return;
            }
        };
        read_reply(&reply, indexes, out);
    }
}

/// Reads an `update` reply: statements with a transient write error go to
/// `failed`, the others with an error to `rejected`; a write concern error, or
/// an error that names no statement of this command, fails them all (upserts
/// make the retry harmless).
fn read_reply(reply: &Document, indexes: &[usize], out: &mut RecordResults) {
    if let Ok(wce) = reply.get_document("writeConcernError") {
        // The writes may have landed; upserts make the retry harmless.
        out.failed.extend_from_slice(indexes);
        out.note(format!(
            "write concern error: {}",
            wce.get_str("errmsg").unwrap_or("")
        ));
        return;
    }
    let Ok(errors) = reply.get_array("writeErrors") else {
        return;
    };
    fn statement<'a>(e: &'a Bson, indexes: &[usize]) -> Option<(&'a Document, usize)> {
        let Bson::Document(e) = e else { return None };
        let i = match e.get("index") {
            Some(Bson::Int32(i)) => usize::try_from(*i).ok()?,
            Some(Bson::Int64(i)) => usize::try_from(*i).ok()?,
            _ => return None,
        };
        indexes.get(i).map(|&i| (e, i))
    }
    if !errors.iter().all(|e| statement(e, indexes).is_some()) {
        // An error we cannot pin on a statement: none of them counts as written
        // (upserts make the retry harmless).
        out.failed.extend_from_slice(indexes);
        out.note("a write error without a usable statement index".into());
        return;
    }
    for (e, i) in errors.iter().filter_map(|e| statement(e, indexes)) {
        let code = match e.get("code") {
            Some(Bson::Int32(c)) => *c,
            Some(Bson::Int64(c)) => *c as i32,
            _ => 0,
        };
        let m = format!(
            "write error {code}: {}",
            e.get_str("errmsg").unwrap_or("(no message)")
        );
        // A duplicate key on `_id` is a race between two upserts (retry wins);
        // on another unique index it fails every time.
        let other_index = code == 11000 && duplicate_on_other_index(e);
        if retryable_code(code) && !other_index {
            out.failed.push(i);
        } else {
            out.rejected.push((i, m.clone()));
        }
        out.note(m);
    }
}

/// A duplicate-key error that names a unique index other than `_id`.
fn duplicate_on_other_index(e: &Document) -> bool {
    if let Ok(pattern) = e.get_document("keyPattern") {
        return !pattern.contains_key("_id");
    }
    e.get_str("errmsg")
        .ok()
        .and_then(|m| m.split("index: ").nth(1))
        .is_some_and(|index| !index.starts_with("_id_"))
}

/// Whether trying again can help: network trouble, server selection, retryable
/// labels and codes; not bad credentials, TLS settings or arguments.
fn is_transient(e: &mongodb::error::Error) -> bool {
    e.contains_label(RETRYABLE_WRITE_ERROR)
        || match e.kind.as_ref() {
            ErrorKind::Command(c) => retryable_code(c.code),
            ErrorKind::Authentication { .. }
            | ErrorKind::InvalidArgument { .. }
            | ErrorKind::InvalidTlsConfig { .. }
            | ErrorKind::BsonSerialization(_) => false,
            _ => true,
        }
}

fn scrub_with(secrets: &[String], mut m: String) -> String {
    for s in secrets {
        if !s.is_empty() {
            m = m.replace(s.as_str(), "***");
        }
    }
    m
}

impl Sink for MongodbSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        let db = self.db().await?;
        // A server that is away at the start is waited for, like a Kafka
        // broker; bad credentials or TLS settings stop the run.
        db.run_command(doc! { "ping": 1 }).await.map_err(|e| {
            let m = self.scrub(format!(
                "cannot reach MongoDB (database `{}`): {e}",
                self.config.database
            ));
            if is_transient(&e) {
                SinkError::retryable(&self.name, m)
            } else {
                SinkError::fatal(&self.name, m)
            }
        })?;
        if let Some(ttl) = self.config.ttl_seconds {
            let index = IndexModel::builder()
                .keys(doc! { self.config.ttl_field.as_str(): 1 })
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::from_secs(ttl))
                        .build(),
                )
                .build();
            db.collection::<Document>(&self.config.collection)
                .create_index(index)
                .await
                .map_err(|e| {
                    SinkError::fatal(
                        &self.name,
                        self.scrub(format!(
                            "cannot create the TTL index on {}.{} ({}): {e}",
                            self.config.database, self.config.collection, self.config.ttl_field
                        )),
                    )
                })?;
            info!(field = %self.config.ttl_field, ttl_seconds = ttl, "TTL index in place");
        }
        Ok(())
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let db = self.db().await?;
        let mut out = RecordResults::default();
        let mut statements = Vec::with_capacity(batch.len().min(MAX_STATEMENTS));
        let mut indexes = Vec::with_capacity(batch.len().min(MAX_STATEMENTS));
        let mut bytes = 0usize;
        for (i, r) in batch.iter().enumerate() {
            let doc = match self.document(r) {
                Ok(d) => d,
                Err(m) => {
                    out.rejected.push((i, m));
                    continue;
                }
            };
            let mut size = r.approx_size();
            if size > MAX_DOCUMENT_BYTES / 2 {
                size = bson::to_vec(&doc).map_or(usize::MAX, |v| v.len());
                if size > MAX_DOCUMENT_BYTES {
                    out.rejected.push((
                        i,
                        format!("the document is {size} bytes; MongoDB takes at most {MAX_DOCUMENT_BYTES}"),
                    ));
                    continue;
                }
            }
            if statements.len() == MAX_STATEMENTS
                || (bytes + size > MAX_COMMAND_BYTES && !statements.is_empty())
            {
                self.upsert(db, std::mem::take(&mut statements), &indexes, &mut out)
                    .await;
                indexes.clear();
                bytes = 0;
            }
            statements.push(doc! {
                "q": { "_id": r.id.as_str() },
                "u": doc,
                "upsert": true,
            });
            indexes.push(i);
            bytes += size;
        }
        if !statements.is_empty() {
            self.upsert(db, statements, &indexes, &mut out).await;
        }
        if !out.failed.is_empty() || !out.rejected.is_empty() {
            debug!(
                failed = out.failed.len(),
                rejected = out.rejected.len(),
                "update had errors"
            );
        }
        out.finish(&self.name, batch.len(), || "documents rejected".to_owned())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl crate::sinks::SinkType for MongodbSinkConfig {
    fn type_name(&self) -> &'static str {
        "mongodb"
    }
    crate::common_sink_fields!();
    fn format(&self) -> Format {
        self.format
    }
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        self.validate()
            .map_err(|(f, m)| crate::sinks::FieldError::new(f, m))
    }
    fn feature(&self) -> Option<&'static str> {
        Some("mongodb")
    }
    /// The connection string is the one secret here: a missing variable is a config error.
    fn build(&self, name: &str) -> Result<super::AnySink, crate::sinks::BuildError> {
        let sink = MongodbSink::new(name, self.clone())
            .map_err(crate::sinks::BuildError::MissingSecret)?;
        Ok(Box::new(sink))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_redacted_and_expanded() {
        assert_eq!(
            redact_uri("mongodb://user:p%40ss@h1:27017,h2/db?authSource=admin"),
            "mongodb://***@h1:27017,h2/db?authSource=admin"
        );
        assert_eq!(redact_uri("mongodb://h:1"), "mongodb://h:1");
        assert_eq!(
            secrets_in("mongodb://user:p%40ss@h1/db"),
            vec!["p%40ss".to_owned(), "p@ss".to_owned()]
        );
        let get = |k: &str| (k == "PW").then(|| "s3cret".to_owned());
        assert_eq!(
            expand_uri("mongodb://u:${PW}@h/", get).unwrap(),
            "mongodb://u:s3cret@h/"
        );
        assert!(
            expand_uri("mongodb://u:${NOPE}@h/", get)
                .unwrap_err()
                .contains("NOPE")
        );
        assert_eq!(
            scrub_with(&["s3cret".into()], "auth failed for s3cret".into()),
            "auth failed for ***"
        );
    }

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

    #[test]
    fn write_errors_are_retried_or_rejected_by_code() {
        // Statement 0 → batch index 10, 1 → 11, 2 → 12.
        let reply = doc! {
            "ok": 1, "n": 1,
            "writeErrors": [
                { "index": 0, "code": 11000, "errmsg": "E11000 duplicate key" },
                { "index": 2, "code": 2, "errmsg": "bad value" },
            ],
        };
        let mut out = RecordResults::default();
        read_reply(&reply, &[10, 11, 12], &mut out);
        assert_eq!(out.failed, [10]);
        assert_eq!(out.rejected, [(12, "write error 2: bad value".to_owned())]);
        let reply =
            doc! { "ok": 1, "n": 3, "writeConcernError": { "code": 64, "errmsg": "waiting" } };
        let mut out = RecordResults::default();
        read_reply(&reply, &[0, 1, 2], &mut out);
        assert_eq!(out.failed, [0, 1, 2]);
        let mut out = RecordResults::default();
        read_reply(&doc! { "ok": 1, "n": 3 }, &[0, 1, 2], &mut out);
        assert!(out.failed.is_empty() && out.rejected.is_empty());
        // A duplicate on a unique index of the user's is not a race: rejected.
        let reply = doc! { "ok": 1, "n": 2, "writeErrors": [
            { "index": 0, "code": 11000, "errmsg": "E11000 duplicate key error collection: d.c index: url_1 dup key: { url: \"x\" }" },
            { "index": 1, "code": 11000, "errmsg": "E11000 duplicate key error collection: d.c index: _id_ dup key: { _id: \"y\" }" },
        ] };
        let mut out = RecordResults::default();
        read_reply(&reply, &[0, 1, 2], &mut out);
        assert_eq!(out.failed, [1]);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].0, 0);
        // An error that names no statement of the command: nothing counts as written.
        let reply = doc! { "ok": 1, "n": 2, "writeErrors": [ { "index": 7, "code": 2 } ] };
        let mut out = RecordResults::default();
        read_reply(&reply, &[0, 1, 2], &mut out);
        assert_eq!(out.failed, [0, 1, 2]);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn error_codes_are_classified() {
        assert!(retryable_code(11000) && retryable_code(91) && retryable_code(10107));
        assert!(!retryable_code(2) && !retryable_code(10334) && !retryable_code(13));
    }
}
