use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::record::{NormalizeOptions, Normalized, RunInfo};
use crate::sinks::{BatchConfig, RetryConfig, SinkError};
use crate::state::DeadLetters;

type Written = Arc<Mutex<Vec<Vec<String>>>>;

/// A sink that answers from a script, then succeeds; it records every batch it confirmed.
struct ScriptedSink {
    name: String,
    script: VecDeque<fn(usize) -> Result<(), SinkError>>,
    confirmed: Written,
    calls: Arc<AtomicUsize>,
}

impl ScriptedSink {
    fn new(script: Vec<fn(usize) -> Result<(), SinkError>>) -> (Self, Written, Arc<AtomicUsize>) {
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let sink = ScriptedSink {
            name: "test".into(),
            script: script.into(),
            confirmed: confirmed.clone(),
            calls: calls.clone(),
        };
        (sink, confirmed, calls)
    }
}

impl Sink for ScriptedSink {
    fn name(&self) -> &str {
        &self.name
    }
    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let result = match self.script.pop_front() {
            Some(step) => step(batch.len()),
            None => Ok(()),
        };
        let ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
        match &result {
            Ok(()) => self.confirmed.lock().unwrap().push(ids),
            Err(SinkError::Partial {
                failed, rejected, ..
            }) => {
                let ok = ids
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !failed.contains(i) && !rejected.iter().any(|(r, _)| r == i))
                    .map(|(_, id)| id.clone())
                    .collect();
                self.confirmed.lock().unwrap().push(ok);
            }
            Err(_) => {}
        }
        result
    }
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn records(range: std::ops::Range<u32>) -> Vec<Arc<Record>> {
    let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
    range
        .map(|i| {
            let line = format!(r#"{{"data":{{"id":"{i}","text":"t"}}}}"#);
            match crate::sources::twitter::normalize_line(line.as_bytes(), &"now".into(), &opts)
                .unwrap()
            {
                Normalized::Record(r) => Arc::new(*r),
                _ => unreachable!(),
            }
        })
        .collect()
}

fn config(max_records: usize, max_attempts: u32) -> CommonSinkConfig {
    CommonSinkConfig {
        queue_capacity: 4,
        batch: BatchConfig {
            max_records,
            max_bytes: usize::MAX,
            timeout_ms: 20,
        },
        retry: RetryConfig {
            max_attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        },
    }
}

struct Harness {
    tx: mpsc::Sender<SourceBatch>,
    outcome: tokio::task::JoinHandle<RouterOutcome>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
    dead_letters: DeadLetters,
}

fn start<S: Sink>(sinks: Vec<(S, CommonSinkConfig)>, max_records: Option<u64>) -> Harness {
    start_with_timeout(sinks, max_records, Duration::from_secs(30))
}

fn start_with_timeout<S: Sink>(
    sinks: Vec<(S, CommonSinkConfig)>,
    max_records: Option<u64>,
    shutdown_timeout: Duration,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = DeadLetters::new(dir.path(), "run");
    let abort = CancellationToken::new();
    let handles: Vec<SinkHandle> = sinks
        .into_iter()
        .map(|(sink, config)| {
            spawn_sink(
                SinkSpec {
                    sink,
                    kind: "test",
                    config,
                },
                dead_letters.clone(),
                abort.clone(),
            )
        })
        .collect();
    let (tx, rx) = mpsc::channel(4);
    let stop = CancellationToken::new();
    let limits = RunLimits {
        duration: None,
        max_records,
        shutdown_timeout,
    };
    let budget = MemoryBudget::for_sinks(&handles);
    let outcome = tokio::spawn(route(
        rx,
        handles,
        limits,
        budget,
        stop.clone(),
        CancellationToken::new(),
        abort,
    ));
    Harness {
        tx,
        outcome,
        stop,
        _dir: dir,
        dead_letters,
    }
}

fn retryable(_: usize) -> Result<(), SinkError> {
    Err(SinkError::retryable("test", "connection reset"))
}
fn fatal(_: usize) -> Result<(), SinkError> {
    Err(SinkError::fatal("test", "message too large"))
}
fn first_two_fail(n: usize) -> Result<(), SinkError> {
    Err(SinkError::Partial {
        sink: "test".into(),
        failed: vec![0, 1],
        rejected: vec![],
        total: n,
        source: "throttled".into(),
    })
}

#[tokio::test]
async fn ack_fires_only_after_every_sink_confirmed() {
    let (a, a_confirmed, _) = ScriptedSink::new(vec![]);
    let (b, _, b_calls) = ScriptedSink::new(vec![retryable, retryable]);
    let h = start(vec![(a, config(100, 5)), (b, config(100, 5))], None);
    let (batch, ack) = SourceBatch::with_ack(records(0..3));
    h.tx.send(batch).await.unwrap();
    let ack = ack.await.unwrap();
    assert_eq!(
        ack,
        Ack {
            accepted: 3,
            outcome: Outcome::Delivered
        }
    );
    // The ack came after sink b's third attempt succeeded.
    assert_eq!(b_calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        a_confirmed.lock().unwrap().concat(),
        ["twitter:0", "twitter:1", "twitter:2"]
    );
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    assert_eq!(out.per_sink["test"].delivered, 3);
}

#[tokio::test]
async fn partial_failures_retry_only_the_failed_records() {
    let (sink, confirmed, calls) = ScriptedSink::new(vec![first_two_fail]);
    let h = start(vec![(sink, config(100, 5))], None);
    let (batch, ack) = SourceBatch::with_ack(records(0..5));
    h.tx.send(batch).await.unwrap();
    assert_eq!(ack.await.unwrap().outcome, Outcome::Delivered);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let batches = confirmed.lock().unwrap().clone();
    assert_eq!(batches[0], ["twitter:2", "twitter:3", "twitter:4"]);
    assert_eq!(
        batches[1],
        ["twitter:0", "twitter:1"],
        "only the failed records are resent"
    );
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    assert_eq!(
        (out.per_sink["test"].delivered, out.per_sink["test"].retried),
        (5, 2)
    );
}

fn one_rejected_one_throttled(n: usize) -> Result<(), SinkError> {
    Err(SinkError::Partial {
        sink: "test".into(),
        failed: vec![3],
        rejected: vec![(1, "message too large".into())],
        total: n,
        source: "mixed results".into(),
    })
}

#[tokio::test]
async fn rejected_records_are_dead_lettered_with_their_reason_and_the_rest_retried() {
    let (sink, confirmed, calls) = ScriptedSink::new(vec![one_rejected_one_throttled]);
    let h = start(vec![(sink, config(100, 5))], None);
    let (batch, ack) = SourceBatch::with_ack(records(0..5));
    h.tx.send(batch).await.unwrap();
    assert_eq!(ack.await.unwrap().outcome, Outcome::DeadLettered);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let batches = confirmed.lock().unwrap().clone();
    assert_eq!(batches[0], ["twitter:0", "twitter:2", "twitter:4"]);
    assert_eq!(
        batches[1],
        ["twitter:3"],
        "only the retryable record is resent"
    );
    assert_eq!(h.dead_letters.written(), 1);
    let text = std::fs::read_to_string(h.dead_letters.path()).unwrap();
    assert!(
        text.contains("message too large") && text.contains("twitter:1"),
        "{text}"
    );
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    let s = &out.per_sink["test"];
    assert_eq!((s.delivered, s.dead_lettered, s.retried), (4, 1, 1));
}

fn first_one_succeeds(n: usize) -> Result<(), SinkError> {
    Err(SinkError::Partial {
        sink: "test".into(),
        failed: (1..n).collect(),
        rejected: Vec::new(),
        total: n,
        source: "throttled".into(),
    })
}

#[tokio::test]
async fn partial_progress_does_not_spend_the_retry_budget() {
    // A throttled destination that takes one record per call: with a budget of
    // 2 attempts, every record still gets through, since each call progresses.
    let (sink, confirmed, calls) = ScriptedSink::new(vec![first_one_succeeds; 5]);
    let h = start(vec![(sink, config(100, 2))], None);
    let (batch, ack) = SourceBatch::with_ack(records(0..6));
    h.tx.send(batch).await.unwrap();
    assert_eq!(ack.await.unwrap().outcome, Outcome::Delivered);
    assert_eq!(calls.load(Ordering::SeqCst), 6);
    assert_eq!(confirmed.lock().unwrap().concat().len(), 6);
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    assert_eq!(out.per_sink["test"].delivered, 6);
}

#[tokio::test]
async fn retry_budget_spent_means_dead_letters_and_the_ack_says_so() {
    let (sink, _, calls) = ScriptedSink::new(vec![retryable, retryable, retryable]);
    let h = start(vec![(sink, config(100, 3))], None);
    let (batch, ack) = SourceBatch::with_ack(records(0..2));
    h.tx.send(batch).await.unwrap();
    assert_eq!(ack.await.unwrap().outcome, Outcome::DeadLettered);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(h.dead_letters.written(), 2);
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    assert_eq!(
        (
            out.per_sink["test"].delivered,
            out.per_sink["test"].dead_lettered
        ),
        (0, 2)
    );
}

#[tokio::test]
async fn fatal_errors_dead_letter_at_once_and_later_batches_still_flow() {
    let (sink, confirmed, calls) = ScriptedSink::new(vec![fatal]);
    let h = start(vec![(sink, config(2, 5))], None);
    let (b1, ack1) = SourceBatch::with_ack(records(0..2));
    h.tx.send(b1).await.unwrap();
    assert_eq!(ack1.await.unwrap().outcome, Outcome::DeadLettered);
    let (b2, ack2) = SourceBatch::with_ack(records(2..4));
    h.tx.send(b2).await.unwrap();
    assert_eq!(ack2.await.unwrap().outcome, Outcome::Delivered);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        confirmed.lock().unwrap().concat(),
        ["twitter:2", "twitter:3"]
    );
    drop(h.tx);
    h.outcome.await.unwrap();
}

fn closed(_: usize) -> Result<(), SinkError> {
    Err(SinkError::Closed {
        sink: "test".into(),
        source: "standard output was closed by its reader (broken pipe)".into(),
    })
}

#[tokio::test]
async fn a_closed_destination_stops_the_run_and_keeps_nothing() {
    let (sink, confirmed, calls) = ScriptedSink::new(vec![closed]);
    let h = start(vec![(sink, config(2, 5))], None);
    let (b1, ack1) = SourceBatch::with_ack(records(0..2));
    h.tx.send(b1).await.unwrap();
    // Neither delivered nor dead-lettered: a checkpoint must not pass it.
    assert_eq!(ack1.await.unwrap().outcome, Outcome::Lost);
    h.stop.cancelled().await;
    let (b2, ack2) = SourceBatch::with_ack(records(2..4));
    h.tx.send(b2).await.unwrap();
    assert_eq!(ack2.await.unwrap().outcome, Outcome::Lost);
    drop(h.tx);
    let outcome = h.outcome.await.unwrap();
    assert_eq!(outcome.stop_reason, StopReason::OutputClosed);
    let s = &outcome.per_sink["test"];
    assert_eq!((s.unwritten, s.dead_lettered, s.lost), (4, 0, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry, no later write");
    assert!(confirmed.lock().unwrap().is_empty());
    assert_eq!(h.dead_letters.written(), 0);
}

#[tokio::test]
async fn batches_are_split_at_max_records_and_merged_below_it() {
    let (sink, confirmed, _) = ScriptedSink::new(vec![]);
    let h = start(vec![(sink, config(4, 1))], None);
    h.tx.send(SourceBatch::new(records(0..10))).await.unwrap();
    drop(h.tx);
    h.outcome.await.unwrap();
    let sizes: Vec<usize> = confirmed.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(sizes, [4, 4, 2]);

    let (sink, confirmed, _) = ScriptedSink::new(vec![]);
    let h = start(vec![(sink, config(100, 1))], None);
    for i in 0..5 {
        h.tx.send(SourceBatch::new(records(i * 2..i * 2 + 2)))
            .await
            .unwrap();
    }
    drop(h.tx);
    h.outcome.await.unwrap();
    let all = confirmed.lock().unwrap().concat();
    assert_eq!(all.len(), 10);
    assert!(
        confirmed.lock().unwrap().len() < 5,
        "small source batches are merged into fewer writes"
    );
}

#[tokio::test]
async fn acked_batches_of_a_source_that_keeps_sending_are_merged() {
    let (sink, confirmed, _) = ScriptedSink::new(vec![]);
    let mut c = config(6, 1);
    c.batch.timeout_ms = 60_000;
    let h = start(vec![(sink, c)], None);
    let mut acks = Vec::new();
    for i in 0..3 {
        let (b, ack) = SourceBatch::with_ack_lingering(records(i * 2..i * 2 + 2));
        h.tx.send(b).await.unwrap();
        acks.push(ack);
        // Let the router and the worker take it before the next one comes.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }
    for ack in acks {
        assert_eq!(ack.await.unwrap().outcome, Outcome::Delivered);
    }
    let sizes: Vec<usize> = confirmed.lock().unwrap().iter().map(Vec::len).collect();
    assert_eq!(
        sizes,
        [6],
        "one write once the batch was full, not one per source batch"
    );
    drop(h.tx);
    h.outcome.await.unwrap();
}

#[tokio::test]
async fn max_records_cuts_the_batch_and_stops_the_source() {
    let (sink, confirmed, _) = ScriptedSink::new(vec![]);
    let h = start(vec![(sink, config(100, 1))], Some(5));
    let (b1, ack1) = SourceBatch::with_ack(records(0..3));
    h.tx.send(b1).await.unwrap();
    let (b2, ack2) = SourceBatch::with_ack(records(3..6));
    h.tx.send(b2).await.unwrap();
    assert_eq!(ack1.await.unwrap().accepted, 3);
    assert_eq!(ack2.await.unwrap().accepted, 2);
    assert!(h.stop.is_cancelled());
    let (b3, ack3) = SourceBatch::with_ack(records(6..7));
    h.tx.send(b3).await.unwrap();
    assert_eq!(ack3.await.unwrap().accepted, 0);
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    assert_eq!(
        (out.records_in, out.dropped_over_limit, out.stop_reason),
        (5, 2, StopReason::MaxRecords)
    );
    assert_eq!(confirmed.lock().unwrap().concat().len(), 5);
}

#[tokio::test]
async fn the_shutdown_timeout_dead_letters_what_is_left() {
    let failing: Vec<fn(usize) -> Result<(), SinkError>> = vec![retryable; 1000];
    let (sink, _, _) = ScriptedSink::new(failing);
    let mut cfg = config(2, 1000);
    cfg.retry.initial_backoff_ms = 50;
    let h = start_with_timeout(vec![(sink, cfg)], None, Duration::from_millis(200));
    let (b1, ack1) = SourceBatch::with_ack(records(0..2));
    h.tx.send(b1).await.unwrap();
    let (b2, ack2) = SourceBatch::with_ack(records(2..4));
    h.tx.send(b2).await.unwrap();
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    assert_eq!(ack1.await.unwrap().outcome, Outcome::DeadLettered);
    assert_eq!(ack2.await.unwrap().outcome, Outcome::DeadLettered);
    assert_eq!(
        out.per_sink["test"].dead_lettered, 4,
        "nothing dropped silently"
    );
    assert_eq!(h.dead_letters.written(), 4);
}

#[tokio::test]
async fn the_memory_budget_waits_for_room_and_gets_it_back() {
    let budget = MemoryBudget::new(1000);
    let first = budget.take(600).await;
    assert_eq!(budget.used(), 600);
    let second = budget.take(600);
    tokio::pin!(second);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut second)
            .await
            .is_err(),
        "no room for 600 more of 1000"
    );
    assert!(budget.starved.is_set(), "the sinks are told");
    drop(first);
    let second = second.await;
    assert!(!budget.starved.is_set());
    assert_eq!(budget.used(), 600);
    drop(second);
    // A batch larger than the whole budget takes all of it, and no more.
    let huge = budget.take(5000).await;
    assert_eq!(budget.used(), 1000);
    drop(huge);
    assert_eq!(budget.used(), 0);
}

/// Blocks every write until the test opens the gate.
struct GatedSink {
    gate: Arc<tokio::sync::Semaphore>,
}

impl Sink for GatedSink {
    fn name(&self) -> &str {
        "gated"
    }
    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn write_batch(&mut self, _batch: &[Arc<Record>]) -> Result<(), SinkError> {
        self.gate.acquire().await.unwrap().forget();
        Ok(())
    }
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_spent_memory_budget_holds_the_source_and_lingering_sinks_write_what_they_have() {
    // Sink A is stuck: it holds the batches the router gave it, so the
    // 8 MiB budget runs out after five batches (~1.5 MB each). Sink B (linger: an hour, batches of 4 MiB) writes three, then
    // must write the last two instead of waiting for a batch that cannot come.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let a = GatedSink { gate: gate.clone() };
    let (b, b_confirmed, _) = ScriptedSink::new(vec![]);
    let lingering = CommonSinkConfig {
        queue_capacity: 4,
        batch: BatchConfig {
            max_records: 1_000_000,
            max_bytes: 4 * 1024 * 1024,
            timeout_ms: 3_600_000,
        },
        retry: RetryConfig::default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = DeadLetters::new(dir.path(), "run");
    let abort = CancellationToken::new();
    let handles = vec![
        spawn_sink(
            SinkSpec {
                sink: a,
                kind: "test",
                config: lingering.clone(),
            },
            dead_letters.clone(),
            abort.clone(),
        ),
        spawn_sink(
            SinkSpec {
                sink: b,
                kind: "test",
                config: lingering,
            },
            dead_letters.clone(),
            abort.clone(),
        ),
    ];
    let (tx, rx) = mpsc::channel(SOURCE_CHANNEL_CAPACITY);
    let limits = RunLimits {
        duration: None,
        max_records: None,
        shutdown_timeout: Duration::from_secs(30),
    };
    let budget = MemoryBudget::for_sinks(&handles);
    let outcome = tokio::spawn(route(
        rx,
        handles,
        limits,
        budget,
        CancellationToken::new(),
        CancellationToken::new(),
        abort,
    ));
    let one = records(0..1)[0].approx_size();
    let n = (MEMORY_BUDGET_BYTES as f64 / (5.5 * one as f64)) as usize;
    let batch = records(0..n as u32);
    let per_batch: usize = batch.iter().map(|r| r.approx_size()).sum();
    let fit = MEMORY_BUDGET_BYTES / per_batch;
    assert_eq!(
        fit, 5,
        "the test assumes five batches fit ({per_batch} bytes each)"
    );
    let sender = tokio::spawn(async move {
        for _ in 0..12 {
            tx.send(SourceBatch::new(batch.clone())).await.unwrap();
        }
    });
    let written = |c: &Written| c.lock().unwrap().iter().map(Vec::len).sum::<usize>();
    tokio::time::timeout(Duration::from_secs(30), async {
        while written(&b_confirmed) < fit * n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("sink B wrote every batch the budget let in, without lingering");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        written(&b_confirmed),
        fit * n,
        "nothing past the budget entered"
    );
    assert!(!sender.is_finished(), "the source is held back");
    gate.add_permits(1_000_000);
    sender.await.unwrap();
    let outcome = outcome.await.unwrap();
    assert_eq!(outcome.records_in, 12 * n as u64);
    assert_eq!(written(&b_confirmed), 12 * n);
    assert_eq!(
        outcome.per_sink.values().map(|s| s.delivered).sum::<u64>(),
        24 * n as u64
    );
}

mod pipelined;
