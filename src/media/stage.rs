//! The media stage: for each pending item of a batch, download (bounded by
//! `concurrency` and the pipeline's memory budget), hash, store under the
//! content-addressed path, and mark the item stored, skipped or failed —
//! retrying transient failures with the sinks' backoff. Items sharing a
//! platform key are fetched once per batch and once per run while the run
//! remembers them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::config::{MediaSettings, VideoChoice};
use super::fetch::{Downloader, FetchError};
use super::key::{PathValues, content_type, extension};
use super::store::{MediaStore, StoreError};
use crate::pipeline::MemoryBudget;
use crate::record::{MediaFetch, MediaItem, Platform, Record, StoredMedia};
use crate::secret::redact;
use crate::sources::{MediaResolver, SourceCounters};

/// Items whose stored location the run remembers (then forgets them all).
const REMEMBERED: usize = 100_000;

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    Retry(String),
    Fatal(String),
    TooLarge,
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Retryable(m) => Failure::Retry(m),
            FetchError::Permanent(m) => Failure::Fatal(m),
            FetchError::TooLarge => Failure::TooLarge,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Retryable(m) => Failure::Retry(format!("storing: {m}")),
            StoreError::Fatal(m) => Failure::Fatal(format!("storing: {m}")),
        }
    }
}

/// Fetches and stores records' media.
#[derive(Debug)]
pub struct MediaStage {
    settings: MediaSettings,
    store: MediaStore,
    downloader: Downloader,
    budget: MemoryBudget,
    counters: Arc<SourceCounters>,
    slots: Semaphore,
    remembered: Mutex<HashMap<(Platform, String), StoredMedia>>,
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl MediaStage {
    pub fn new(
        settings: MediaSettings,
        budget: MemoryBudget,
        counters: Arc<SourceCounters>,
    ) -> Result<Self, String> {
        let store = MediaStore::new(&settings.store)?;
        let downloader = Downloader::new(
            settings.telegram.clone(),
            Duration::from_millis(settings.download_timeout_ms),
        )?;
        Ok(MediaStage {
            slots: Semaphore::new(settings.concurrency),
            settings,
            store,
            downloader,
            budget,
            counters,
            remembered: Mutex::default(),
        })
    }

    fn remembered(&self, key: &(Platform, String)) -> Option<StoredMedia> {
        let map = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).cloned()
    }

    fn remember(&self, key: (Platform, String), stored: StoredMedia) {
        let mut map = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(key, stored);
    }

    /// What becomes of one item; true when its bytes were stored just now
    /// (not found stored earlier in the run).
    async fn item(&self, platform: Platform, mut item: MediaItem) -> (MediaItem, bool) {
        if !self.settings.types.contains(&item.kind) {
            item.skipped = Some("type".into());
            return (item, false);
        }
        let key = (platform, item.key.clone());
        if let Some(stored) = self.remembered(&key) {
            item.stored = Some(stored);
            return (item, false);
        }
        let Some(fetch) = item.fetch.clone() else {
            return (item, false);
        };
        let fetch = match fetch {
            // `--media-video preview`: a video's or GIF's preview image instead.
            MediaFetch::Url {
                preview: Some(preview),
                ..
            } if self.settings.video == VideoChoice::Preview => MediaFetch::Url {
                url: preview,
                content_type: None,
                preview: None,
            },
            other => other,
        };
        match self.with_retries(platform, &item.kind, &fetch).await {
            Ok(stored) => {
                SourceCounters::add(&self.counters.media.bytes, stored.bytes);
                self.remember(key, stored.clone());
                item.stored = Some(stored);
                return (item, true);
            }
            Err(Failure::TooLarge) => item.skipped = Some("too_large".into()),
            Err(Failure::Retry(m) | Failure::Fatal(m)) => {
                let m = redact(&m).into_owned();
                warn!(platform = %platform, key = %item.key, error = %m, "media item failed for good");
                item.error = Some(m);
            }
        }
        (item, false)
    }

    /// Counts one occurrence of an item in a record.
    fn count(&self, item: &MediaItem, fresh: bool) {
        let media = &self.counters.media;
        let counter = match (&item.stored, &item.skipped, &item.error) {
            (Some(_), ..) if fresh => &media.stored,
            (Some(_), ..) => &media.reused,
            (None, Some(_), _) => &media.skipped,
            _ => &media.failed,
        };
        SourceCounters::add(counter, 1);
    }

    async fn with_retries(
        &self,
        platform: Platform,
        kind: &str,
        fetch: &MediaFetch,
    ) -> Result<StoredMedia, Failure> {
        let backoff = self.settings.retry.backoff();
        let attempts = self.settings.retry.max_attempts;
        let mut attempt = 1;
        loop {
            match self.attempt(platform, kind, fetch).await {
                Err(Failure::Retry(m)) if attempt < attempts => {
                    let delay = backoff.delay(attempt);
                    SourceCounters::add(&self.counters.media.retries, 1);
                    warn!(attempt, delay_ms = delay.as_millis() as u64, error = %redact(&m), "media download failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(Failure::Retry(m)) => {
                    return Err(Failure::Retry(format!("{m} (after {attempts} attempts)")));
                }
                other => return other,
            }
        }
    }

    /// One download and store, within a slot and the memory budget.
    async fn attempt(
        &self,
        platform: Platform,
        kind: &str,
        fetch: &MediaFetch,
    ) -> Result<StoredMedia, Failure> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the slots are never closed");
        let max = self.settings.max_bytes;
        let download = self.downloader.open(fetch, max).await?;
        let _room = self
            .budget
            .reserve(download.len.unwrap_or(max).min(max) as usize)
            .await;
        let name = download.name.clone();
        let served = download.content_type.clone();
        let bytes = download.read(max).await?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let given = match fetch {
            MediaFetch::Telegram { mime_type, .. } => mime_type.as_deref(),
            MediaFetch::Url { content_type, .. } => content_type.as_deref(),
        };
        let ext = extension(name.as_deref(), given.or(served.as_deref()));
        let content_type = content_type(&[given, served.as_deref()], &ext);
        let path = self.settings.path.render(&PathValues {
            platform: platform.as_str(),
            kind,
            sha256: &sha256,
            ext: &ext,
        });
        let len = bytes.len() as u64;
        let uri = self.store.put(&path, bytes, &content_type).await?;
        debug!(%uri, bytes = len, "media stored");
        Ok(StoredMedia {
            uri,
            sha256,
            bytes: len,
            content_type,
        })
    }

    /// Resolves the pending items of `records`, each distinct key once.
    async fn resolve_all(&self, records: &mut [Arc<Record>]) {
        let mut places: HashMap<(Platform, String), Vec<(usize, usize)>> = HashMap::new();
        let mut firsts = Vec::new();
        for (ri, r) in records.iter().enumerate() {
            for (mi, item) in r.media.iter().enumerate() {
                if !item.is_pending() {
                    continue;
                }
                let key = (r.platform, item.key.clone());
                let at = places.entry(key).or_default();
                if at.is_empty() {
                    firsts.push((r.platform, item.clone()));
                }
                at.push((ri, mi));
            }
        }
        let mut work: FuturesUnordered<_> = firsts
            .into_iter()
            .map(|(platform, item)| async move { (platform, self.item(platform, item).await) })
            .collect();
        while let Some((platform, (done, fresh))) = work.next().await {
            let at = places
                .remove(&(platform, done.key.clone()))
                .unwrap_or_default();
            for (n, (ri, mi)) in at.into_iter().enumerate() {
                let mut item = done.clone();
                item.fetch = None;
                self.count(&item, fresh && n == 0);
                Arc::make_mut(&mut records[ri]).media[mi] = item;
            }
        }
    }
}

impl MediaResolver for MediaStage {
    fn resolve<'a>(
        &'a self,
        records: &'a mut [Arc<Record>],
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.resolve_all(records))
    }
}
