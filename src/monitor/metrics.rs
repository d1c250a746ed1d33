//! `/metrics`: the monitor's figures in the Prometheus text format, read at
//! scrape time through a prometheus-client collector.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{Monitor, SourceState};
use crate::pipeline::SinkProbe;

/// Picks one counter of a sink.
type SinkField = fn(&SinkProbe) -> &AtomicU64;

/// The monitor as a prometheus-client collector.
#[derive(Debug)]
pub(super) struct Collected(pub(super) Arc<Monitor>);

fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: &[(Vec<(&'static str, String)>, f64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in values {
        let m = metric.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*value as u64).encode(m)?,
            // Integral figures (depths, flags, timestamps) read better without `.0`.
            _ if value.fract() == 0.0 && value.abs() < 9e15 => {
                ConstGauge::new(*value as i64).encode(m)?
            }
            _ => ConstGauge::new(*value).encode(m)?,
        }
    }
    Ok(())
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_source(&self.0, &mut encoder)?;
        encode_sinks(&self.0, &mut encoder)?;
        encode_process(&self.0, &mut encoder)
    }
}

fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}

/// `ingest_media_items{outcome}` and `ingest_media_bytes` (`--media`).
fn encode_media(m: &Monitor, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let c = &m.source.media;
    let outcome = |o: &str| {
        vec![
            ("source", m.source_name.to_owned()),
            ("outcome", o.to_owned()),
        ]
    };
    family(
        encoder,
        "media_items",
        "Media items by outcome: stored, reused (stored earlier in the run), skipped, failed.",
        MetricType::Counter,
        &[
            (outcome("stored"), load(&c.stored)),
            (outcome("reused"), load(&c.reused)),
            (outcome("skipped"), load(&c.skipped)),
            (outcome("failed"), load(&c.failed)),
        ],
    )?;
    let src = vec![("source", m.source_name.to_owned())];
    family(
        encoder,
        "media_bytes",
        "Bytes of media downloaded and stored.",
        MetricType::Counter,
        &[(src.clone(), load(&c.bytes))],
    )?;
    family(
        encoder,
        "media_retries",
        "Media download attempts retried.",
        MetricType::Counter,
        &[(src, load(&c.retries))],
    )
}

/// `ingest_source_*`: the source's counters, reconnects, checkpoint and state.
fn encode_source(m: &Monitor, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let src = || vec![("source", m.source_name.to_owned())];
    let s = &m.source;
    let source_counters: [(&str, &str, &AtomicU64); 6] = [
        ("source_records", "Records the source produced.", &s.records),
        (
            "source_malformed",
            "Input that could not become a record (dead-lettered).",
            &s.malformed,
        ),
        (
            "source_control",
            "Control messages seen (not records).",
            &s.control,
        ),
        (
            "source_duplicates",
            "Items dropped as already seen (reconnects, backfill).",
            &s.duplicates,
        ),
        (
            "source_connections",
            "Stream connections opened (X) or getUpdates calls made (Telegram).",
            &s.connections,
        ),
        (
            "source_replayed",
            "Items recorded from a replay job (X webhooks).",
            &s.replayed,
        ),
    ];
    for (name, help, counter) in source_counters {
        family(
            encoder,
            name,
            help,
            MetricType::Counter,
            &[(src(), load(counter))],
        )?;
    }
    encode_media(m, encoder)?;
    encode_reconnects(m, encoder)?;
    let checkpoint = load(&s.checkpoint_unix_secs);
    if checkpoint > 0.0 {
        family(
            encoder,
            "source_last_checkpoint_timestamp_seconds",
            "When the source last committed a checkpoint (Unix time).",
            MetricType::Gauge,
            &[(src(), checkpoint)],
        )?;
    }
    family(
        encoder,
        "source_rate_limit_wait_seconds",
        "Seconds left before the source may call its API again after a rate limit (0: not waiting).",
        MetricType::Gauge,
        &[(
            src(),
            m.rate_limit_wait().map_or(0.0, |w| w.as_secs_f64().ceil()),
        )],
    )?;
    let failed = matches!(
        *m.source_state.lock().unwrap_or_else(|p| p.into_inner()),
        SourceState::Failed(_)
    );
    family(
        encoder,
        "source_up",
        "1 while the source runs or ended cleanly, 0 once it failed.",
        MetricType::Gauge,
        &[(src(), if failed { 0.0 } else { 1.0 })],
    )?;
    Ok(())
}

/// `ingest_source_stalls_total` and `ingest_source_reconnects_total{reason}`.
fn encode_reconnects(m: &Monitor, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let src = || vec![("source", m.source_name.to_owned())];
    let s = &m.source;
    let reconnects = s.reconnects();
    let stalls = reconnects
        .iter()
        .find(|(r, _)| *r == "stall")
        .map_or(0, |(_, n)| *n);
    family(
        encoder,
        "source_stalls",
        "Streams that went silent past the stall timeout and were reconnected.",
        MetricType::Counter,
        &[(src(), stalls as f64)],
    )?;
    family(
        encoder,
        "source_reconnects",
        "Reconnects and retried calls of a live source, by reason.",
        MetricType::Counter,
        &reconnects
            .iter()
            .map(|(reason, n)| {
                let mut labels = src();
                labels.push(("reason", (*reason).to_owned()));
                (labels, *n as f64)
            })
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}

/// `ingest_sink_*`: per-sink counters, queues and what each sink owes.
fn encode_sinks(m: &Monitor, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let labels = |p: &SinkProbe| vec![("sink", p.name.clone()), ("type", p.kind.to_owned())];
    let per_sink = |f: &dyn Fn(&SinkProbe) -> f64| -> Vec<(Vec<(&'static str, String)>, f64)> {
        m.sinks.iter().map(|p| (labels(p), f(p))).collect()
    };
    let sink_counters: [(&str, &str, SinkField); 6] = [
        (
            "sink_delivered",
            "Records the destination confirmed.",
            |p| &p.counters.delivered,
        ),
        (
            "sink_retried",
            "Records written again after a failed attempt.",
            |p| &p.counters.retried,
        ),
        (
            "sink_dead_lettered",
            "Records given up on and written to the dead-letter file.",
            |p| &p.counters.dead_lettered,
        ),
        (
            "sink_lost",
            "Records neither delivered nor dead-lettered (the dead-letter file failed).",
            |p| &p.counters.lost,
        ),
        (
            "sink_batches",
            "Write attempts (batches sent to the destination).",
            |p| &p.counters.batches,
        ),
        (
            "sink_compliance_deleted",
            "Stored posts deleted because X's compliance stream said they were deleted (MongoDB apply_compliance).",
            |p| &p.counters.compliance_deleted,
        ),
    ];
    for (name, help, field) in sink_counters {
        family(
            encoder,
            name,
            help,
            MetricType::Counter,
            &per_sink(&|p| load(field(p))),
        )?;
    }
    family(
        encoder,
        "sink_queue_depth",
        "Source batches waiting in the sink's queue.",
        MetricType::Gauge,
        &per_sink(&|p| p.queue_depth() as f64),
    )?;
    family(
        encoder,
        "sink_queue_capacity",
        "Capacity of the sink's queue, in source batches.",
        MetricType::Gauge,
        &per_sink(&|p| p.queue_capacity() as f64),
    )?;
    family(
        encoder,
        "sink_owed_records",
        "Records received but not yet confirmed or dead-lettered by the sink.",
        MetricType::Gauge,
        &per_sink(&|p| m.owed(p) as f64),
    )?;
    Ok(())
}

/// The process's resident set in bytes (Linux: `/proc/self/statm`), if known.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf with a constant name reads a system setting.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|p| pages * p)
}

/// `ingest_pipeline_memory_*`: the bytes of records the pipeline holds, and may hold.
fn encode_budget(m: &Monitor, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let Some(budget) = &m.budget else {
        return Ok(());
    };
    family(
        encoder,
        "pipeline_memory_used_bytes",
        "Bytes of records the pipeline holds now (from the router until every sink is done with them).",
        MetricType::Gauge,
        &[(Vec::new(), budget.used() as f64)],
    )?;
    family(
        encoder,
        "pipeline_memory_budget_bytes",
        "Bytes of records the pipeline may hold before the source waits.",
        MetricType::Gauge,
        &[(Vec::new(), budget.total() as f64)],
    )
}

/// `ingest_healthy`, `ingest_uptime_seconds`, `ingest_process_resident_memory_bytes`.
fn encode_process(m: &Monitor, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    encode_budget(m, encoder)?;
    if let Some(rss) = resident_bytes() {
        family(
            encoder,
            "process_resident_memory_bytes",
            "Resident memory of the ingest process, in bytes.",
            MetricType::Gauge,
            &[(Vec::new(), rss as f64)],
        )?;
    }
    let (healthy, _) = m.health(Instant::now());
    family(
        encoder,
        "healthy",
        "1 when /healthz answers 200, else 0.",
        MetricType::Gauge,
        &[(Vec::new(), if healthy { 1.0 } else { 0.0 })],
    )?;
    family(
        encoder,
        "uptime_seconds",
        "Seconds since the run started.",
        MetricType::Gauge,
        &[(Vec::new(), m.started.elapsed().as_secs_f64())],
    )?;
    Ok(())
}
