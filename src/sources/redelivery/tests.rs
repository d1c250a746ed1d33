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
    let opts = crate::record::NormalizeOptions::new(Arc::new(crate::record::RunInfo::new(None)));
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
