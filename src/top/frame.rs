//! What one or two scrapes say: the rows of the view.

use super::Sample;

/// One source of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    pub name: String,
    pub records: u64,
    /// Records per second between the two scrapes (`None` with one scrape).
    pub rate: Option<f64>,
    pub malformed: u64,
    pub duplicates: u64,
    pub reconnects: u64,
    pub up: bool,
    /// Seconds since the source last committed a checkpoint, if it has.
    pub checkpoint_age_secs: Option<f64>,
    /// Seconds left of a rate-limit wait (0: not waiting).
    pub rate_limit_wait_secs: f64,
}

/// One sink of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRow {
    pub name: String,
    pub kind: String,
    pub delivered: u64,
    pub rate: Option<f64>,
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub owed: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub lost: u64,
}

/// The whole view at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub uptime_secs: f64,
    pub healthy: Option<bool>,
    pub rss_bytes: Option<f64>,
    pub memory_used_bytes: Option<f64>,
    pub memory_budget_bytes: Option<f64>,
    pub sources: Vec<SourceRow>,
    pub sinks: Vec<SinkRow>,
}

/// Per second between two values of a counter; `None` without an earlier
/// scrape, or when the counter went down (the run restarted).
fn per_sec(prev: Option<(&Sample, f64)>, cur: &Sample, now: f64) -> Option<f64> {
    let (before, then) = prev?;
    let secs = cur.at.duration_since(before.at).as_secs_f64();
    (now >= then && secs > 0.0).then(|| (now - then) / secs)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Frame {
    /// The view of `cur`, with rates from `prev` when there is one.
    pub fn new(prev: Option<&Sample>, cur: &Sample) -> Frame {
        Frame {
            uptime_secs: cur.value("ingest_uptime_seconds", "", "").unwrap_or(0.0),
            healthy: cur.value("ingest_healthy", "", "").map(|v| v > 0.0),
            rss_bytes: cur.value("ingest_process_resident_memory_bytes", "", ""),
            memory_used_bytes: cur.value("ingest_pipeline_memory_used_bytes", "", ""),
            memory_budget_bytes: cur.value("ingest_pipeline_memory_budget_bytes", "", ""),
            sources: sources(prev, cur),
            sinks: sinks(prev, cur),
        }
    }
}

fn sources(prev: Option<&Sample>, cur: &Sample) -> Vec<SourceRow> {
    let now = unix_now();
    cur.all("ingest_source_records_total")
        .map(|s| {
            let name = s.label("source");
            let get = |metric: &str| cur.value(metric, "source", name).unwrap_or(0.0);
            let before = prev.and_then(|p| {
                p.value("ingest_source_records_total", "source", name)
                    .map(|v| (p, v))
            });
            let checkpoint = get("ingest_source_last_checkpoint_timestamp_seconds");
            SourceRow {
                name: name.to_owned(),
                records: s.value as u64,
                rate: per_sec(before, cur, s.value),
                malformed: get("ingest_source_malformed_total") as u64,
                duplicates: get("ingest_source_duplicates_total") as u64,
                reconnects: cur
                    .all("ingest_source_reconnects_total")
                    .filter(|r| r.label("source") == name)
                    .map(|r| r.value as u64)
                    .sum(),
                up: cur.value("ingest_source_up", "source", name) != Some(0.0),
                checkpoint_age_secs: (checkpoint > 0.0).then(|| (now - checkpoint).max(0.0)),
                rate_limit_wait_secs: get("ingest_source_rate_limit_wait_seconds"),
            }
        })
        .collect()
}

fn sinks(prev: Option<&Sample>, cur: &Sample) -> Vec<SinkRow> {
    cur.all("ingest_sink_delivered_total")
        .map(|s| {
            let name = s.label("sink");
            let get = |metric: &str| cur.value(metric, "sink", name).unwrap_or(0.0) as u64;
            let before = prev.and_then(|p| {
                p.value("ingest_sink_delivered_total", "sink", name)
                    .map(|v| (p, v))
            });
            SinkRow {
                name: name.to_owned(),
                kind: s.label("type").to_owned(),
                delivered: s.value as u64,
                rate: per_sec(before, cur, s.value),
                queue_depth: get("ingest_sink_queue_depth"),
                queue_capacity: get("ingest_sink_queue_capacity"),
                owed: get("ingest_sink_owed_records"),
                retried: get("ingest_sink_retried_total"),
                dead_lettered: get("ingest_sink_dead_lettered_total"),
                lost: get("ingest_sink_lost_total"),
            }
        })
        .collect()
}
