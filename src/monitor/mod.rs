//! A live view of a run: Prometheus metrics at `/metrics`, a health check at
//! `/healthz` (`--metrics-addr`), and the status line on a terminal.
//!
//! Nothing here counts: the source's and the sinks' own atomics are read at
//! scrape time, and once a second by a sampler that tracks health and rates.
//!
//! Health, concretely: `/healthz` answers 503 when the source task ended with an
//! error; when a live source's connect attempts have failed for longer than
//! `--unhealthy-after` (60 s) without one succeeding (X: back-off past that
//! bound); or when a sink has owed records (received by the source, neither
//! confirmed nor dead-lettered yet) or failed writes for longer than
//! `--unhealthy-after` without confirming a single record. Otherwise 200.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::pipeline::{MemoryBudget, SinkProbe};

mod metrics;
use crate::sources::SourceCounters;
use metrics::Collected;

/// How often the sampler looks at the counters (and the status line refreshes).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The metrics server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {source}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// What the source task is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceState {
    Running,
    Finished,
    Failed(String),
}

/// A sink's health as the sampler last saw it.
#[derive(Debug, Clone)]
struct SinkHealth {
    delivered: u64,
    failures: u64,
    /// Since when the sink has owed records or failed writes without confirming any.
    stuck_since: Option<Instant>,
}

/// Reconnect reasons that mean a connect attempt failed (as opposed to an
/// established stream that ended: `stall`, `dropped`).
const FAILED_CONNECT: [&str; 3] = ["network_error", "http_error", "rate_limited"];

/// The source's connection as the sampler last saw it.
#[derive(Debug, Clone, Default)]
struct SourceHealth {
    connected: u64,
    failed_connects: u64,
    /// Since when connect attempts have been failing without one succeeding.
    down_since: Option<Instant>,
}

/// One run, watched.
#[derive(Debug)]
pub struct Monitor {
    source_name: &'static str,
    source: Arc<SourceCounters>,
    sinks: Vec<SinkProbe>,
    started: Instant,
    unhealthy_after: Duration,
    source_state: Mutex<SourceState>,
    health: Mutex<Vec<SinkHealth>>,
    source_health: Mutex<SourceHealth>,
    /// Records per second into the pipeline, over the last sample (f64 bits).
    rate_in: AtomicU64,
    /// The bytes of records the pipeline may hold, when the run has one.
    budget: Option<MemoryBudget>,
}

impl Monitor {
    pub fn new(
        source_name: &'static str,
        source: Arc<SourceCounters>,
        sinks: Vec<SinkProbe>,
        unhealthy_after: Duration,
    ) -> Self {
        let health = sinks
            .iter()
            .map(|_| SinkHealth {
                delivered: 0,
                failures: 0,
                stuck_since: None,
            })
            .collect();
        Monitor {
            source_name,
            source,
            sinks,
            started: Instant::now(),
            unhealthy_after,
            source_state: Mutex::new(SourceState::Running),
            health: Mutex::new(health),
            source_health: Mutex::new(SourceHealth::default()),
            rate_in: AtomicU64::new(0f64.to_bits()),
            budget: None,
        }
    }

    /// Watches the pipeline's memory budget too (`ingest_pipeline_memory_*`).
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The source task ended: cleanly (`None`) or with this error.
    pub fn source_ended(&self, error: Option<String>) {
        *self.source_state.lock().unwrap_or_else(|p| p.into_inner()) = match error {
            None => SourceState::Finished,
            Some(e) => SourceState::Failed(e),
        };
    }

    fn records(&self) -> u64 {
        self.source.records.load(Ordering::Relaxed)
    }

    /// Records the source produced that this sink has not confirmed or dead-lettered yet.
    fn owed(&self, probe: &SinkProbe) -> u64 {
        let c = &probe.counters;
        let settled = c.delivered.load(Ordering::Relaxed)
            + c.dead_lettered.load(Ordering::Relaxed)
            + c.lost.load(Ordering::Relaxed);
        self.records().saturating_sub(settled)
    }

    /// Looks at the counters once: health transitions and the input rate.
    fn sample(&self, now: Instant, last_records: &mut u64, elapsed: Duration) {
        let records = self.records();
        let rate = (records.saturating_sub(*last_records)) as f64 / elapsed.as_secs_f64().max(1e-3);
        *last_records = records;
        self.rate_in.store(rate.to_bits(), Ordering::Relaxed);
        {
            let connected = self.source.connected.load(Ordering::Relaxed);
            let failed: u64 = self
                .source
                .reconnects()
                .iter()
                .filter(|(r, _)| FAILED_CONNECT.contains(r))
                .map(|(_, n)| n)
                .sum();
            let mut h = self.source_health.lock().unwrap_or_else(|p| p.into_inner());
            if connected > h.connected {
                h.down_since = None;
            } else if failed > h.failed_connects {
                h.down_since.get_or_insert(now);
            }
            h.connected = connected;
            h.failed_connects = failed;
        }
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        for (probe, h) in self.sinks.iter().zip(health.iter_mut()) {
            let c = &probe.counters;
            let delivered = c.delivered.load(Ordering::Relaxed);
            let failures = c.retried.load(Ordering::Relaxed)
                + c.dead_lettered.load(Ordering::Relaxed)
                + c.lost.load(Ordering::Relaxed);
            let confirmed = delivered > h.delivered;
            let failing = failures > h.failures;
            if confirmed || (!failing && self.owed(probe) == 0) {
                h.stuck_since = None;
            } else {
                h.stuck_since.get_or_insert(now);
            }
            h.delivered = delivered;
            h.failures = failures;
        }
    }

    /// The health document and whether all is well.
    pub fn health(&self, now: Instant) -> (bool, serde_json::Value) {
        let state = self
            .source_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let down_secs = self
            .source_health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .down_since
            .map(|t| now.duration_since(t).as_secs_f64());
        let source_ok = match &state {
            SourceState::Failed(_) => false,
            SourceState::Finished => true,
            SourceState::Running => {
                down_secs.is_none_or(|s| s < self.unhealthy_after.as_secs_f64())
            }
        };
        let mut healthy = source_ok;
        let mut source = json!({
            "name": self.source_name,
            "healthy": source_ok,
            "state": match &state {
                SourceState::Running => "running",
                SourceState::Finished => "finished",
                SourceState::Failed(_) => "failed",
            },
        });
        if let SourceState::Failed(e) = &state {
            source["error"] = json!(e);
        }
        if let Some(s) = down_secs {
            source["failing_connects_for_secs"] = json!((s * 10.0).round() / 10.0);
        }
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let mut sinks = serde_json::Map::new();
        for (probe, h) in self.sinks.iter().zip(health.iter()) {
            let stuck_secs = h.stuck_since.map(|t| now.duration_since(t).as_secs_f64());
            // Records held to fill a batch (an S3 sink's minute) are not stuck.
            let limit = (self.unhealthy_after + probe.linger).as_secs_f64();
            let ok = stuck_secs.is_none_or(|s| s < limit);
            healthy &= ok;
            sinks.insert(
                probe.name.clone(),
                json!({
                    "type": probe.kind,
                    "healthy": ok,
                    "owed": self.owed(probe),
                    "queue_depth": probe.queue_depth(),
                    "unconfirmed_for_secs": stuck_secs.map(|s| (s * 10.0).round() / 10.0),
                }),
            );
        }
        let doc = json!({
            "status": if healthy { "ok" } else { "unhealthy" },
            "unhealthy_after_secs": self.unhealthy_after.as_secs_f64(),
            "source": source,
            "sinks": sinks,
        });
        (healthy, doc)
    }

    /// The status line: `ingest: 1234 in (56/s) | lake 1200 | bus 1100 (3 retried, 0 dead) | 2 reconnects | 0:12`.
    pub fn status_line(&self) -> String {
        let mut line = format!(
            "ingest: {} in ({:.0}/s)",
            self.records(),
            f64::from_bits(self.rate_in.load(Ordering::Relaxed))
        );
        for probe in &self.sinks {
            let c = &probe.counters;
            let _ = write!(
                line,
                " | {} {}",
                probe.name,
                c.delivered.load(Ordering::Relaxed)
            );
            let retried = c.retried.load(Ordering::Relaxed);
            let dead = c.dead_lettered.load(Ordering::Relaxed);
            if retried > 0 || dead > 0 {
                let _ = write!(line, " ({retried} retried, {dead} dead)");
            }
        }
        let reconnects: u64 = self.source.reconnects().iter().map(|(_, n)| n).sum();
        if reconnects > 0 {
            let _ = write!(line, " | {reconnects} reconnects");
        }
        if let Some(wait) = self.rate_limit_wait() {
            let _ = write!(
                line,
                " | rate limited: next call in {}s",
                wait.as_secs() + 1
            );
        }
        let secs = self.started.elapsed().as_secs();
        let _ = write!(line, " | {}:{:02}", secs / 60, secs % 60);
        line
    }

    /// How long the source still waits for a rate-limit reset, if it does.
    fn rate_limit_wait(&self) -> Option<Duration> {
        let until = self.source.rate_limit_until_ms.load(Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// The metrics in the Prometheus text format (0.0.4).
    pub fn render_metrics(self: &Arc<Self>) -> String {
        let mut registry = Registry::with_prefix("ingest");
        registry.register_collector(Box::new(Collected(self.clone())));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}

async fn metrics(State(m): State<Arc<Monitor>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render_metrics(),
    )
        .into_response()
}

async fn healthz(State(m): State<Arc<Monitor>>) -> Response {
    let (healthy, doc) = m.health(Instant::now());
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// The running sampler, server and status line; stopped by [`Watch::stop`].
pub struct Watch {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watch {
    /// Binds the metrics address, if any: before the sinks start, so that an
    /// address in use fails the run before anything else happens.
    pub async fn bind(
        metrics_addr: Option<SocketAddr>,
    ) -> Result<Option<tokio::net::TcpListener>, ListenError> {
        let Some(addr) = metrics_addr else {
            return Ok(None);
        };
        tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| ListenError { addr, source })
    }

    /// Starts what the settings ask for: nothing, the sampler and status line,
    /// the metrics server on `listener`, or both.
    pub fn start(
        monitor: &Arc<Monitor>,
        listener: Option<tokio::net::TcpListener>,
        progress: bool,
    ) -> Watch {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        let serving = listener.is_some();
        if let Some(listener) = listener {
            if let Ok(bound) = listener.local_addr() {
                info!(addr = %bound, "serving /metrics and /healthz");
            }
            let app = Router::new()
                .route("/metrics", get(metrics))
                .route("/healthz", get(healthz))
                .with_state(monitor.clone());
            let token = stop.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await;
            }));
        }
        if serving || progress {
            let (m, token) = (monitor.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let first = tokio::time::Instant::now() + SAMPLE_EVERY;
                let mut tick = tokio::time::interval_at(first, SAMPLE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut last = (Instant::now(), 0u64);
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let now = Instant::now();
                    m.sample(now, &mut last.1, now.duration_since(last.0));
                    last.0 = now;
                    if progress {
                        crate::progress::show(&m.status_line());
                    }
                }
                if progress {
                    crate::progress::clear();
                }
            }));
        }
        Watch { stop, tasks }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_that_owes_records_and_confirms_none_turns_unhealthy_after_its_linger() {
        let source = Arc::new(SourceCounters::default());
        let counters = Arc::new(crate::pipeline::SinkCounters::default());
        let probe =
            crate::pipeline::SinkProbe::detached("lake", counters.clone(), Duration::from_secs(60));
        let monitor = Monitor::new("test", source.clone(), vec![probe], Duration::from_secs(5));
        let t0 = Instant::now();
        source.records.store(10, Ordering::Relaxed);
        monitor.sample(t0, &mut 0, Duration::from_secs(1));
        let (ok, doc) = monitor.health(t0 + Duration::from_secs(30));
        assert!(
            ok,
            "still within the batch linger plus --unhealthy-after: {doc}"
        );
        let (ok, doc) = monitor.health(t0 + Duration::from_secs(70));
        assert!(!ok, "{doc}");
        assert_eq!(doc["sinks"]["lake"]["healthy"], false);
        assert_eq!(doc["sinks"]["lake"]["owed"], 10);
        // A confirmation makes it healthy again.
        counters.delivered.store(10, Ordering::Relaxed);
        monitor.sample(
            t0 + Duration::from_secs(71),
            &mut 10,
            Duration::from_secs(1),
        );
        assert!(monitor.health(t0 + Duration::from_secs(72)).0);
    }

    #[test]
    fn a_rate_limit_wait_shows_in_the_status_line_and_the_metrics() {
        let source = Arc::new(SourceCounters::default());
        let monitor = Arc::new(Monitor::new(
            "twitter-search",
            source.clone(),
            Vec::new(),
            Duration::from_secs(5),
        ));
        assert!(!monitor.status_line().contains("rate limited"));
        let gauge = "ingest_source_rate_limit_wait_seconds{source=\"twitter-search\"}";
        assert!(monitor.render_metrics().contains(&format!("{gauge} 0")));
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        source
            .rate_limit_until_ms
            .store(now_ms + 42_500, Ordering::Relaxed);
        let line = monitor.status_line();
        assert!(line.contains("rate limited: next call in 4"), "{line}");
        let text = monitor.render_metrics();
        assert!(text.contains(&format!("{gauge} 43")), "{text}");
    }

    #[test]
    fn a_failed_source_is_unhealthy() {
        let source = Arc::new(SourceCounters::default());
        let monitor = Monitor::new("test", source.clone(), Vec::new(), Duration::from_secs(5));
        let (ok, doc) = monitor.health(Instant::now());
        assert!(ok, "{doc}");
        monitor.source_ended(Some("boom".into()));
        let (ok, doc) = monitor.health(Instant::now());
        assert!(!ok);
        assert_eq!(doc["source"]["state"], "failed");
    }

    #[test]
    fn metrics_show_the_memory_budget_and_the_resident_set() {
        let monitor = Arc::new(
            Monitor::new(
                "replay",
                Arc::new(SourceCounters::default()),
                Vec::new(),
                Duration::from_secs(5),
            )
            .with_budget(MemoryBudget::new(1000)),
        );
        let text = monitor.render_metrics();
        assert!(
            text.contains("ingest_pipeline_memory_budget_bytes 1000\n"),
            "{text}"
        );
        assert!(
            text.contains("ingest_pipeline_memory_used_bytes 0\n"),
            "{text}"
        );
        let rss: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("ingest_process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .expect("an RSS gauge");
        assert!(rss > 1e6, "{rss}");
    }

    #[test]
    fn metrics_render_in_the_text_format() {
        let source = Arc::new(SourceCounters::default());
        source.records.store(7, Ordering::Relaxed);
        let monitor = Arc::new(Monitor::new(
            "replay",
            source,
            Vec::new(),
            Duration::from_secs(5),
        ));
        let text = monitor.render_metrics();
        assert!(
            text.contains("ingest_source_records_total{source=\"replay\"} 7"),
            "{text}"
        );
        assert!(text.contains("# TYPE ingest_healthy gauge"), "{text}");
        assert!(!text.contains("checkpoint"), "no checkpoint yet: {text}");
    }
}
