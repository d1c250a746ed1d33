//! Recording a redelivered item once. A webhook claims an item's key (a
//! Telegram `update_id`, a hash of a signed X body) before it records it, in
//! one step under one lock: the key is either already recorded (seen), or in
//! flight in another request (wait for that request's outcome), or this
//! request's to record. A claim is settled with its outcome when the sinks
//! answer — even after the request that made it gave up and answered 503 —
//! so a redelivery arriving later finds the key seen and is not recorded again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::SourceCounters;
use super::output::{Origin, SourceOutput, Tracked};
use super::seen::SeenWindow;
use crate::record::Record;

/// What became of one delivery of an item; the webhook answers accordingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Every sink confirmed its records (or it made none): 200.
    Recorded,
    /// Recorded before, or by a concurrent request: 200.
    Duplicate,
    /// Unusable, and kept in the dead-letter file: 200 (a resend cannot fix it).
    DeadLettered,
    /// Not confirmed (yet): 503 with `Retry-After`, so the sender delivers it again.
    RetryLater,
}

/// The outcome of a claim: `None` while in flight, then whether it was recorded.
type Outcome = watch::Receiver<Option<bool>>;

/// Where a window's keys outlive the process: the keys earlier runs
/// recorded, and each key this run records (once every sink confirmed it, or
/// it was dead-lettered), so a redelivery after a restart is still a duplicate.
pub trait Remember<K>: Send + Sync + std::fmt::Debug {
    /// Keys recorded by earlier runs, oldest first.
    fn earlier(&self) -> Vec<K>;
    /// `key` was recorded by this run.
    fn recorded(&self, key: &K);
}

/// Keys recorded recently (a bounded window) and keys in flight.
#[derive(Debug)]
pub struct Redeliveries<K> {
    inner: Mutex<Inner<K>>,
    memory: Option<Arc<dyn Remember<K>>>,
}

#[derive(Debug)]
struct Inner<K> {
    seen: SeenWindow<K>,
    in_flight: HashMap<K, Outcome>,
}

/// What a request may do with an item.
#[derive(Debug)]
pub enum Claim<K: Eq + Hash + Clone> {
    /// Recorded before: answer 200 at once.
    Seen,
    /// Another request is recording it: wait for its outcome.
    InFlight(InFlight),
    /// This request records it and settles the claim.
    Mine(Pending<K>),
}

/// Another request's claim on the same key.
#[derive(Debug)]
pub struct InFlight(Outcome);

impl InFlight {
    /// Whether the other request's item was recorded, waiting at most `timeout`;
    /// `false` when it was not, or not yet.
    pub async fn recorded_within(mut self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.0.wait_for(Option::is_some)).await,
            Ok(Ok(v)) if *v == Some(true)
        )
    }
}

/// This request's claim on a key. Dropped unsettled, it is released (not recorded).
#[derive(Debug)]
pub struct Pending<K: Eq + Hash + Clone> {
    owner: Arc<Redeliveries<K>>,
    key: Option<K>,
    tx: watch::Sender<Option<bool>>,
}

impl<K: Eq + Hash + Clone> Pending<K> {
    /// A handle on this claim's outcome, for the request to wait on while the
    /// claim itself moves to whoever settles it.
    pub fn in_flight(&self) -> InFlight {
        InFlight(self.tx.subscribe())
    }

    /// Ends the claim: `recorded` marks the key seen; otherwise a later
    /// delivery of it is recorded anew.
    pub fn settle(mut self, recorded: bool) {
        if let Some(key) = self.key.take() {
            self.owner.settle(key, recorded);
            let _ = self.tx.send(Some(recorded));
        }
    }
}

impl<K: Eq + Hash + Clone> Drop for Pending<K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.owner.settle(key, false);
            let _ = self.tx.send(Some(false));
        }
    }
}

impl<K: Eq + Hash + Clone> Redeliveries<K> {
    /// Remembers up to `window` recorded keys.
    pub fn new(window: usize) -> Arc<Self> {
        Self::remembering(window, None)
    }

    /// Remembers up to `window` recorded keys, starting with those `memory`
    /// kept from earlier runs and telling it each key recorded.
    pub fn remembering(window: usize, memory: Option<Arc<dyn Remember<K>>>) -> Arc<Self> {
        let mut seen = SeenWindow::new(window.max(1));
        for key in memory.iter().flat_map(|m| m.earlier()) {
            seen.insert(key);
        }
        Arc::new(Redeliveries {
            inner: Mutex::new(Inner {
                seen,
                in_flight: HashMap::new(),
            }),
            memory,
        })
    }

    /// Claims `key`: seen, in flight elsewhere, or this caller's.
    pub fn claim(self: &Arc<Self>, key: K) -> Claim<K> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.seen.contains(&key) {
            return Claim::Seen;
        }
        if let Some(outcome) = inner.in_flight.get(&key) {
            return Claim::InFlight(InFlight(outcome.clone()));
        }
        let (tx, rx) = watch::channel(None);
        inner.in_flight.insert(key.clone(), rx);
        Claim::Mine(Pending {
            owner: self.clone(),
            key: Some(key),
            tx,
        })
    }

    fn settle(&self, key: K, recorded: bool) {
        let new = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.in_flight.remove(&key);
            recorded && inner.seen.insert(key.clone())
        };
        if let (true, Some(memory)) = (new, &self.memory) {
            memory.recorded(&key);
        }
    }
}

/// A webhook's way into the pipeline: each item recorded once, whatever its
/// redeliveries, with the answer its sender needs.
#[derive(Debug)]
pub struct RecordOnce<K> {
    items: Arc<Redeliveries<K>>,
    out: SourceOutput,
    /// How long a request waits for the sinks before answering "retry later".
    ack_timeout: Duration,
    origin: Origin,
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> RecordOnce<K> {
    /// Remembers up to `window` recorded keys.
    pub fn new(window: usize, ack_timeout: Duration, out: SourceOutput, origin: Origin) -> Self {
        Self::remembering(window, None, ack_timeout, out, origin)
    }

    /// Remembers up to `window` recorded keys, across runs when `memory` keeps them.
    pub fn remembering(
        window: usize,
        memory: Option<Arc<dyn Remember<K>>>,
        ack_timeout: Duration,
        out: SourceOutput,
        origin: Origin,
    ) -> Self {
        RecordOnce {
            items: Redeliveries::remembering(window, memory),
            out,
            ack_timeout,
            origin,
        }
    }

    /// Records one delivery of the item `key`: claims it, turns it into
    /// records with `make` (or dead-letters `body` with `make`'s reason),
    /// sends them, and waits at most the ack timeout for the sinks. The claim
    /// is settled when the sinks answer, even after this request gave up: a
    /// redelivery then finds the item recorded.
    pub async fn record(
        &self,
        key: K,
        body: &[u8],
        make: impl FnOnce() -> Result<Vec<Arc<Record>>, String>,
    ) -> Delivered {
        let claim = match self.items.claim(key) {
            Claim::Seen => return self.duplicate(),
            Claim::InFlight(other) => {
                if !other.recorded_within(self.ack_timeout).await {
                    return Delivered::RetryLater;
                }
                return self.duplicate();
            }
            Claim::Mine(claim) => claim,
        };
        let records = match make() {
            Ok(records) => records,
            Err(reason) => {
                let kept = self.dead_letter(&reason, body);
                if kept == Delivered::DeadLettered {
                    claim.settle(true);
                }
                return kept;
            }
        };
        let Some(ack) = self.out.send_tracked(Tracked::whole(records), false).await else {
            return Delivered::RetryLater;
        };
        let outcome = claim.in_flight();
        tokio::spawn(async move {
            let recorded = ack.confirmed().await.is_some_and(|c| c.all_delivered());
            claim.settle(recorded);
        });
        if outcome.recorded_within(self.ack_timeout).await {
            Delivered::Recorded
        } else {
            Delivered::RetryLater
        }
    }

    /// Keeps an unusable body: dead-lettered (a resend cannot fix it), or
    /// "retry later" when even the dead-letter file cannot take it.
    pub fn dead_letter(&self, reason: &str, body: &[u8]) -> Delivered {
        match self.out.dead_letter(self.origin, reason, body, body.len()) {
            Ok(()) => Delivered::DeadLettered,
            Err(e) => {
                tracing::warn!(error = %e, "unusable input could not be dead-lettered; asking the sender to resend it");
                Delivered::RetryLater
            }
        }
    }

    fn duplicate(&self) -> Delivered {
        SourceCounters::add(&self.out.counters().duplicates, 1);
        Delivered::Duplicate
    }
}

#[cfg(test)]
mod tests;
