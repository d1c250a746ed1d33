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

/// Keys recorded recently (a bounded window) and keys in flight.
#[derive(Debug)]
pub struct Redeliveries<K> {
    inner: Mutex<Inner<K>>,
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
        Arc::new(Redeliveries {
            inner: Mutex::new(Inner {
                seen: SeenWindow::new(window.max(1)),
                in_flight: HashMap::new(),
            }),
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
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.in_flight.remove(&key);
        if recorded {
            inner.seen.insert(key);
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
        RecordOnce {
            items: Redeliveries::new(window),
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
mod tests {
    use super::*;

    fn mine<K: Eq + Hash + Clone + std::fmt::Debug>(c: Claim<K>) -> Pending<K> {
        match c {
            Claim::Mine(p) => p,
            other => panic!("expected the claim, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_key_in_flight_is_claimed_once_and_waiters_share_its_outcome() {
        let r = Redeliveries::new(10);
        let first = mine(r.claim(7));
        let Claim::InFlight(waiter) = r.claim(7) else {
            panic!("a second claim while in flight")
        };
        let waiting = tokio::spawn(waiter.recorded_within(Duration::from_secs(30)));
        first.settle(true);
        assert!(waiting.await.unwrap());
        assert!(matches!(r.claim(7), Claim::Seen));
    }

    #[tokio::test]
    async fn an_outcome_after_the_waiters_gave_up_still_marks_the_key_seen() {
        let r = Redeliveries::new(10);
        let first = mine(r.claim(1));
        let own = first.in_flight();
        assert!(!own.recorded_within(Duration::from_millis(10)).await);
        // The request answered 503; the write completes later.
        first.settle(true);
        assert!(matches!(r.claim(1), Claim::Seen));
    }

    #[tokio::test]
    async fn a_failed_or_abandoned_claim_lets_the_next_delivery_record_it() {
        let r = Redeliveries::new(10);
        let first = mine(r.claim(1));
        let Claim::InFlight(waiter) = r.claim(1) else {
            panic!()
        };
        first.settle(false);
        assert!(!waiter.recorded_within(Duration::from_secs(30)).await);
        let again = mine(r.claim(1));
        drop(again);
        let _ = mine(r.claim(1));
    }

    #[test]
    fn the_seen_window_is_bounded() {
        let r = Redeliveries::new(2);
        for k in 0..3 {
            mine(r.claim(k)).settle(true);
        }
        let _ = mine(r.claim(0));
        assert!(matches!(r.claim(2), Claim::Seen));
        assert_eq!(r.inner.lock().unwrap().seen.len(), 2);
    }

    const ORIGIN: Origin = Origin {
        label: "test",
        item: "body",
    };

    fn recorder() -> (
        RecordOnce<u32>,
        Arc<SourceCounters>,
        tokio::sync::mpsc::Receiver<crate::pipeline::SourceBatch>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let counters = Arc::new(SourceCounters::default());
        let dead = crate::state::DeadLetters::new(dir.path(), "test-run");
        let out = SourceOutput::new(tx, counters.clone(), dead);
        let once = RecordOnce::new(4, Duration::from_secs(5), out, ORIGIN);
        (once, counters, rx, dir)
    }

    #[tokio::test]
    async fn an_item_without_records_is_recorded_and_then_a_duplicate() {
        let (once, counters, _rx, _dir) = recorder();
        let first = once.record(1, b"{}", || Ok(Vec::new())).await;
        assert_eq!(first, Delivered::Recorded);
        let again = once.record(1, b"{}", || Ok(Vec::new())).await;
        assert_eq!(again, Delivered::Duplicate);
        assert_eq!(
            counters
                .duplicates
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn an_unusable_item_is_dead_lettered_once() {
        let (once, counters, _rx, _dir) = recorder();
        let bad = || Err("no".to_owned());
        assert_eq!(once.record(2, b"x", bad).await, Delivered::DeadLettered);
        assert_eq!(once.record(2, b"x", bad).await, Delivered::Duplicate);
        assert_eq!(
            counters
                .malformed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    fn one_record() -> Result<Vec<Arc<Record>>, String> {
        let opts =
            crate::record::NormalizeOptions::new(Arc::new(crate::record::RunInfo::new(None)));
        let line = br#"{"data":{"id":"1","text":"t"}}"#;
        match crate::sources::twitter::normalize_line(line, &"now".into(), &opts) {
            Ok(crate::record::Normalized::Record(r)) => Ok(vec![Arc::new(*r)]),
            _ => unreachable!(),
        }
    }

    /// Answers the next batch's ack with `outcome`.
    fn sinks_answer(
        mut rx: tokio::sync::mpsc::Receiver<crate::pipeline::SourceBatch>,
        outcomes: Vec<crate::pipeline::Outcome>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            for outcome in outcomes {
                let batch = rx.recv().await.unwrap();
                let ack = crate::pipeline::Ack {
                    accepted: batch.records.len(),
                    outcome,
                };
                batch.ack.unwrap().send(ack).unwrap();
            }
        })
    }

    #[tokio::test]
    async fn an_item_is_recorded_only_once_the_sinks_delivered_it() {
        use crate::pipeline::Outcome;
        let (once, _counters, rx, _dir) = recorder();
        let sinks = sinks_answer(rx, vec![Outcome::DeadLettered, Outcome::Delivered]);
        assert_eq!(
            once.record(3, b"{}", one_record).await,
            Delivered::RetryLater
        );
        assert_eq!(once.record(3, b"{}", one_record).await, Delivered::Recorded);
        assert_eq!(
            once.record(3, b"{}", one_record).await,
            Delivered::Duplicate
        );
        sinks.await.unwrap();
    }
}
