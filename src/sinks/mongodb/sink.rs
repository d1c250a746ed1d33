//! The MongoDB client: connects at first use, turns records into documents
//! with `_id` = id and sends them as unordered `update` commands of upserts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::DateTime;
use mongodb::bson::{self, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{debug, info};

use super::errors::{is_refusal, is_transient, read_reply, server_message};
use super::uri::{redact_uri, scrub_with, secrets_in};
use super::{MAX_DOCUMENT_BYTES, MongodbSinkConfig};
use crate::record::{Format, Record};
use crate::secret::Secret;
use crate::sinks::template::{Ctx, Target, Template, copies, merge_copies, received_at};
use crate::sinks::{RecordResults, Sink, SinkError};
use chrono_tz::Tz;

/// Most statements in one `update` command.
const MAX_STATEMENTS: usize = 1000;
/// Most (estimated) bytes of documents in one command; a command is at most 16 MiB.
const MAX_COMMAND_BYTES: usize = 12 * 1024 * 1024;

/// Writes records as MongoDB documents.
pub struct MongodbSink {
    name: String,
    uri: Secret,
    /// Connected at first use (parsing a `mongodb+srv://` URI resolves DNS; building the sink does not).
    db: OnceCell<Database>,
    config: MongodbSinkConfig,
    /// Strings never to show in a message (the password).
    secrets: Vec<String>,
    /// Documents deleted by compliance `delete` events (`apply_compliance`).
    deleted: AtomicU64,
    /// The `collection` template.
    collection: Template,
    /// Collections whose TTL index this run created.
    ttl_ready: std::sync::Mutex<std::collections::HashSet<String>>,
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
            collection: Template::compile(&config.collection, Target::Collection)?,
            ttl_ready: Default::default(),
            config,
            deleted: AtomicU64::new(0),
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
        if self.config.format != Format::Raw {
            // Times as BSON dates, so that queries and indexes compare them as times.
            for field in ["created_at", "received_at"] {
                let at = doc
                    .get_str(field)
                    .ok()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                if let Some(at) = at {
                    doc.insert(field, bson::DateTime::from_millis(at.timestamp_millis()));
                }
            }
        }
        if self.config.ttl_seconds.is_some() {
            let at = DateTime::parse_from_rfc3339(&r.received_at)
                .map(|t| bson::DateTime::from_millis(t.timestamp_millis()))
                .unwrap_or_else(|_| bson::DateTime::now());
            doc.insert(self.config.ttl_field.as_str(), at);
        }
        Ok(doc)
    }

    /// Deletes the documents of deleted posts: one unordered `delete` command
    /// for `(batch index, post id)` pairs. Deleting is idempotent, so a
    /// transient failure retries them all.
    async fn delete_posts(
        &self,
        db: &Database,
        posts: &[(usize, String)],
        out: &mut RecordResults,
    ) {
        let statements: Vec<Document> = posts
            .iter()
            .map(|(_, post)| doc! { "q": { "_id": format!("twitter:{post}") }, "limit": 1 })
            .collect();
        let indexes: Vec<usize> = posts.iter().map(|(i, _)| *i).collect();
        let command = doc! {
            "delete": &self.config.collection,
            "deletes": statements,
            "ordered": false,
        };
        match db.run_command(command).await {
            Ok(reply) => {
                let before = (out.failed.len(), out.rejected.len());
                read_reply(&reply, &indexes, out);
                if (out.failed.len(), out.rejected.len()) == before {
                    let n = match reply.get("n") {
                        Some(bson::Bson::Int32(n)) => *n as u64,
                        Some(bson::Bson::Int64(n)) => *n as u64,
                        _ => 0,
                    };
                    self.deleted.fetch_add(n, Ordering::Relaxed);
                    info!(
                        events = posts.len(),
                        deleted = n,
                        "applied compliance delete events"
                    );
                }
            }
            Err(e) => {
                let m = self.scrub(format!(
                    "delete on {}.{}: {e}",
                    self.config.database, self.config.collection
                ));
                if is_transient(&e) {
                    out.failed.extend_from_slice(&indexes);
                } else {
                    out.rejected.extend(indexes.iter().map(|&i| (i, m.clone())));
                }
                out.note(m);
            }
        }
    }

    /// Sends one unordered `update` command with an upsert per record.
    async fn upsert(
        &self,
        db: &Database,
        collection: &str,
        statements: Vec<Document>,
        indexes: &[usize],
        out: &mut RecordResults,
    ) {
        let command = doc! {
            "update": collection,
            "updates": statements,
            "ordered": false,
        };
        let reply = match db.run_command(command).await {
            Ok(reply) => reply,
            Err(e) => {
                let retry = is_transient(&e);
                let m = match server_message(&e).filter(|_| is_refusal(&e)) {
                    Some(said) => format!(
                        "the server refused the update on {}.{collection}: {said}",
                        self.config.database
                    ),
                    None => format!("update on {}.{collection}: {e}", self.config.database),
                };
                let m = self.scrub(m);
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
    /// The batch indexes per collection (one collection, unless the
    /// `collection` template names record fields; with `split_tags` a record
    /// may be in several).
    fn groups(&self, batch: &[Arc<Record>]) -> Vec<(String, Vec<usize>)> {
        if let Some(c) = self.collection.literal() {
            return vec![(c.to_owned(), (0..batch.len()).collect())];
        }
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        let mut name = String::with_capacity(64);
        let mut last_at = None;
        for (i, tag) in copies(batch, self.config.split_tags) {
            let at = received_at(&batch[i], Tz::UTC, &mut last_at);
            name.clear();
            self.collection.render(
                &Ctx {
                    record: &batch[i],
                    tag,
                    at: &at,
                },
                &mut name,
            );
            match groups.iter_mut().find(|(c, _)| *c == name) {
                Some((_, idx)) if idx.last() == Some(&i) => {}
                Some((_, idx)) => idx.push(i),
                None => groups.push((name.clone(), vec![i])),
            }
        }
        groups
    }

    /// Creates the TTL index of a collection once per run (when `ttl_seconds` is set).
    /// An error is `(message, refused)`: `refused` when the server refused the
    /// collection for good (its records are dead-lettered, not retried).
    async fn ensure_ttl(&self, collection: &str) -> Result<(), (String, bool)> {
        let Some(ttl) = self.config.ttl_seconds else {
            return Ok(());
        };
        if self
            .ttl_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(collection)
        {
            return Ok(());
        }
        let db = self.db().await.map_err(|e| (e.to_string(), false))?;
        let index = IndexModel::builder()
            .keys(doc! { self.config.ttl_field.as_str(): 1 })
            .options(
                IndexOptions::builder()
                    .expire_after(Duration::from_secs(ttl))
                    .build(),
            )
            .build();
        db.collection::<Document>(collection)
            .create_index(index)
            .await
            .map_err(|e| {
                let said = server_message(&e).unwrap_or_else(|| e.to_string());
                let m = self.scrub(format!(
                    "cannot create the TTL index on {}.{collection} ({}): {said}",
                    self.config.database, self.config.ttl_field
                ));
                (m, is_refusal(&e))
            })?;
        info!(collection, field = %self.config.ttl_field, ttl_seconds = ttl, "TTL index in place");
        self.ttl_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(collection.to_owned());
        Ok(())
    }

    /// Upserts the records at `indexes` into `collection`, in commands within the limits.
    async fn write_collection(
        &self,
        db: &Database,
        batch: &[Arc<Record>],
        collection: &str,
        indexes_in: &[usize],
        out: &mut RecordResults,
    ) {
        let mut statements = Vec::with_capacity(indexes_in.len().min(MAX_STATEMENTS));
        let mut indexes = Vec::with_capacity(indexes_in.len().min(MAX_STATEMENTS));
        let mut bytes = 0usize;
        for &i in indexes_in {
            let r = &batch[i];
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
                self.upsert(
                    db,
                    collection,
                    std::mem::take(&mut statements),
                    &indexes,
                    out,
                )
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
            self.upsert(db, collection, statements, &indexes, out).await;
        }
    }
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
        if let Some(collection) = self.collection.literal().map(str::to_owned) {
            self.ensure_ttl(&collection)
                .await
                .map_err(|(m, _)| SinkError::fatal(&self.name, m))?;
        }
        Ok(())
    }

    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        let db = self.db().await?.clone();
        let mut out = RecordResults::default();
        // `delete` events (with `apply_compliance`) delete a document instead of being stored.
        let deletes: Vec<(usize, String)> = if self.config.apply_compliance {
            batch
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.deleted_post().map(|p| (i, p.to_owned())))
                .collect()
        } else {
            Vec::new()
        };
        let mut is_delete = vec![false; batch.len()];
        for (i, _) in &deletes {
            is_delete[*i] = true;
        }
        for (collection, mut indexes) in self.groups(batch) {
            indexes.retain(|&i| !is_delete[i]);
            if indexes.is_empty() {
                continue;
            }
            if let Err((m, refused)) = self.ensure_ttl(&collection).await {
                if refused {
                    out.rejected.extend(indexes.iter().map(|&i| (i, m.clone())));
                } else {
                    out.failed.extend_from_slice(&indexes);
                }
                out.note(m);
                continue;
            }
            self.write_collection(&db, batch, &collection, &indexes, &mut out)
                .await;
        }
        // After the upserts: a post and its delete in one batch end deleted.
        for chunk in deletes.chunks(MAX_STATEMENTS) {
            self.delete_posts(&db, chunk, &mut out).await;
        }
        merge_copies(&mut out);
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

    fn compliance_deleted(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }
}
