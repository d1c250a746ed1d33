//! Recording a redelivered item once. A webhook claims an item's key (a
//! Telegram `update_id`, a hash of a signed X body) before it records it, in
//! one step under one lock: the key is either already recorded (seen), or in
//! flight in another request (wait for that request's outcome), or this
//! request's to record. A claim is settled with its outcome when the sinks
//! answer — even after the request that made it gave up and answered 503 —
//! so a redelivery arriving later finds the key seen and is not recorded again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// The outcome of a claim: `None` while in flight, then whether it was recorded.
type Outcome = watch::Receiver<Option<bool>>;

/// Keys recorded recently (a bounded window) and keys in flight.
#[derive(Debug)]
pub struct Redeliveries<K> {
    window: usize,
    inner: Mutex<Inner<K>>,
}

#[derive(Debug)]
struct Inner<K> {
    seen: HashSet<K>,
    order: VecDeque<K>,
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
            window: window.max(1),
            inner: Mutex::new(Inner {
                seen: HashSet::new(),
                order: VecDeque::new(),
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
        if recorded && inner.seen.insert(key.clone()) {
            inner.order.push_back(key);
            if inner.order.len() > self.window
                && let Some(old) = inner.order.pop_front()
            {
                inner.seen.remove(&old);
            }
        }
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
}
