//! A sink that keeps a batch in flight ([`Sent::InFlight`]): the worker sends
//! the next batch meanwhile, keeps at most two out, and acks in order.

use std::collections::HashMap;

use tokio::sync::watch;

use super::*;
use crate::sinks::{AnySink, Sent};

type Release = oneshot::Sender<Result<(), SinkError>>;

/// What the sink was asked, in order (`send twitter:0`, `retry twitter:0`),
/// and the releases of the writes it holds, by the batch's first id.
#[derive(Clone)]
struct Gates {
    log: watch::Sender<Vec<String>>,
    held: Arc<Mutex<HashMap<String, Release>>>,
}

impl Gates {
    fn new() -> Self {
        Gates {
            log: watch::channel(Vec::new()).0,
            held: Arc::default(),
        }
    }

    /// A write of `batch` held until released, noted as `what first-id`.
    fn hold(
        &self,
        what: &str,
        batch: &[Arc<Record>],
    ) -> impl Future<Output = Result<(), SinkError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let id = batch[0].id.clone();
        self.held.lock().unwrap().insert(id.clone(), tx);
        self.log.send_modify(|l| l.push(format!("{what} {id}")));
        async move {
            rx.await
                .unwrap_or_else(|_| Err(SinkError::retryable("test", "dropped")))
        }
    }

    /// Waits until the sink was asked `event` (a guard, not a timing: it
    /// fails instead of hanging when the worker never asks).
    async fn until(&self, event: &str) {
        let mut rx = self.log.subscribe();
        tokio::time::timeout(
            Duration::from_secs(30),
            rx.wait_for(|l| l.iter().any(|e| e == event)),
        )
        .await
        .unwrap_or_else(|_| panic!("the sink was never asked `{event}`: {:?}", self.events()))
        .unwrap();
    }

    fn release(&self, first_id: &str, result: Result<(), SinkError>) {
        let tx = self.held.lock().unwrap().remove(first_id).expect("held");
        tx.send(result).unwrap();
    }

    fn events(&self) -> Vec<String> {
        self.log.borrow().clone()
    }
}

/// Sends keep the batch in flight until the test releases it; a retry
/// (`write_batch`) is held the same way.
struct PipelinedSink(Gates);

impl Sink for PipelinedSink {
    fn name(&self) -> &str {
        "test"
    }
    async fn healthcheck(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn write_batch(&mut self, batch: &[Arc<Record>]) -> Result<(), SinkError> {
        self.0.hold("retry", batch).await
    }
    async fn send(&mut self, batch: &[Arc<Record>]) -> Sent {
        Sent::InFlight(Box::pin(self.0.hold("send", batch)))
    }
    fn keeps_batches_in_flight(&self) -> bool {
        true
    }
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fn pipelined() -> (Harness, Gates) {
    let gates = Gates::new();
    let h = start(vec![(PipelinedSink(gates.clone()), config(100, 5))], None);
    (h, gates)
}

#[tokio::test]
async fn the_next_batch_is_sent_while_one_awaits_its_confirmation_and_acks_keep_their_order() {
    let (h, gates) = pipelined();
    let (a, mut ack_a) = SourceBatch::with_ack(records(0..2));
    h.tx.send(a).await.unwrap();
    gates.until("send twitter:0").await;
    let (b, mut ack_b) = SourceBatch::with_ack(records(2..4));
    h.tx.send(b).await.unwrap();
    // A is not confirmed, yet B goes out: two batches in flight.
    gates.until("send twitter:2").await;
    let (c, ack_c) = SourceBatch::with_ack(records(4..6));
    h.tx.send(c).await.unwrap();

    // B is confirmed first, A fails: A is retried, and B's ack waits for A.
    gates.release("twitter:2", Ok(()));
    gates.release("twitter:0", retryable(2));
    gates.until("retry twitter:0").await;
    assert!(ack_a.try_recv().is_err(), "A is not confirmed yet");
    assert!(
        ack_b.try_recv().is_err(),
        "B was confirmed, but acking it before A would let a checkpoint pass A's records"
    );
    assert_eq!(
        gates.events(),
        ["send twitter:0", "send twitter:2", "retry twitter:0"],
        "C waits: at most two batches are out, and B is not resent"
    );

    gates.release("twitter:0", Ok(()));
    gates.until("send twitter:4").await;
    assert_eq!(
        ack_a
            .try_recv()
            .expect("A was settled before C went out")
            .outcome,
        Outcome::Delivered
    );
    gates.release("twitter:4", Ok(()));
    assert_eq!(ack_c.await.unwrap().outcome, Outcome::Delivered);
    assert_eq!(
        ack_b.try_recv().expect("B's ack came before C's").outcome,
        Outcome::Delivered
    );
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    let s = &out.per_sink["test"];
    assert_eq!((s.delivered, s.retried, s.dead_lettered), (6, 2, 0));
}

#[tokio::test]
async fn a_batch_dead_lettered_in_flight_is_acked_before_the_batch_sent_after_it() {
    let (h, gates) = pipelined();
    let (a, mut ack_a) = SourceBatch::with_ack(records(0..2));
    h.tx.send(a).await.unwrap();
    gates.until("send twitter:0").await;
    let (b, ack_b) = SourceBatch::with_ack(records(2..5));
    h.tx.send(b).await.unwrap();
    gates.until("send twitter:2").await;
    gates.release("twitter:2", Ok(()));
    gates.release("twitter:0", fatal(2));
    assert_eq!(ack_b.await.unwrap().outcome, Outcome::Delivered);
    assert_eq!(
        ack_a.try_recv().expect("A's ack came first").outcome,
        Outcome::DeadLettered,
        "A's failure is A's alone"
    );
    assert_eq!(h.dead_letters.written(), 2);
    drop(h.tx);
    let out = h.outcome.await.unwrap();
    let s = &out.per_sink["test"];
    assert_eq!((s.delivered, s.dead_lettered), (3, 2));
}

#[tokio::test]
async fn the_batch_in_flight_is_settled_before_the_worker_stops() {
    let (h, gates) = pipelined();
    let (a, ack_a) = SourceBatch::with_ack(records(0..2));
    h.tx.send(a).await.unwrap();
    gates.until("send twitter:0").await;
    drop(h.tx);
    gates.release("twitter:0", Ok(()));
    assert_eq!(ack_a.await.unwrap().outcome, Outcome::Delivered);
    let out = h.outcome.await.unwrap();
    assert_eq!(out.per_sink["test"].delivered, 2);
}

#[tokio::test]
async fn the_memory_budget_holds_two_batches_of_a_sink_that_keeps_one_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = DeadLetters::new(dir.path(), "run");
    let mb = 1024 * 1024;
    let mut config = config(100, 5);
    config.batch.max_bytes = 16 * mb;
    let spawn = |sink: AnySink| {
        spawn_sink(
            SinkSpec {
                sink,
                kind: "test",
                config: config.clone(),
            },
            dead_letters.clone(),
            CancellationToken::new(),
        )
    };
    let plain = spawn(Box::new(ScriptedSink::new(vec![]).0));
    assert_eq!(MemoryBudget::for_sinks(&[plain]).total(), 24 * mb);
    let pipelined = spawn(Box::new(PipelinedSink(Gates::new())));
    assert_eq!(
        MemoryBudget::for_sinks(&[pipelined]).total(),
        40 * mb,
        "two batches in flight and half of the next"
    );
}
