//! A frame as plain text: a header line, then one table of sources and one of
//! sinks, columns separated by at least two spaces (names have none), `-`
//! where a figure is not known.

use std::fmt::Write as _;

use super::Frame;

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}"))
}

/// Rows of cells, left-aligned, padded to the widest cell of each column.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn header(f: &Frame, url: &str) -> String {
    let mut line = format!("ingest top  {url}\nuptime {}", clock(f.uptime_secs));
    if let Some(h) = f.healthy {
        let _ = write!(line, "  healthy {}", if h { "yes" } else { "NO" });
    }
    match f.rss_bytes {
        Some(rss) => {
            let _ = write!(line, "  rss {}", mib(rss));
        }
        None => line.push_str("  rss -"),
    }
    if let (Some(used), Some(budget)) = (f.memory_used_bytes, f.memory_budget_bytes) {
        let pct = if budget > 0.0 {
            used * 100.0 / budget
        } else {
            0.0
        };
        let _ = write!(
            line,
            "  memory {} of {} ({pct:.0}%)",
            mib(used),
            mib(budget)
        );
    }
    line.push('\n');
    line
}

/// The frame as text; `url` is what was scraped.
pub fn render(f: &Frame, url: &str) -> String {
    let mut out = header(f, url);
    out.push('\n');
    let mut rows = vec![
        [
            "SOURCE",
            "RECORDS",
            "REC/S",
            "MALFORMED",
            "DUPLICATES",
            "RECONNECTS",
            "UP",
            "CHECKPOINT_AGE",
            "RATE_LIMIT_WAIT",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for s in &f.sources {
        rows.push(vec![
            s.name.clone(),
            s.records.to_string(),
            rate(s.rate),
            s.malformed.to_string(),
            s.duplicates.to_string(),
            s.reconnects.to_string(),
            if s.up { "yes" } else { "NO" }.to_owned(),
            s.checkpoint_age_secs
                .map_or_else(|| "-".to_owned(), |a| format!("{a:.0}s")),
            format!("{:.0}s", s.rate_limit_wait_secs),
        ]);
    }
    table(&mut out, &rows);
    out.push('\n');
    let mut rows = vec![
        [
            "SINK",
            "TYPE",
            "DELIVERED",
            "REC/S",
            "QUEUE",
            "OWED",
            "RETRIED",
            "DEAD",
            "LOST",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for s in &f.sinks {
        rows.push(vec![
            s.name.clone(),
            s.kind.clone(),
            s.delivered.to_string(),
            rate(s.rate),
            format!("{}/{}", s.queue_depth, s.queue_capacity),
            s.owed.to_string(),
            s.retried.to_string(),
            s.dead_lettered.to_string(),
            s.lost.to_string(),
        ]);
    }
    table(&mut out, &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Sample, parse};
    use super::*;
    use std::time::{Duration, Instant};

    const BODY: &str = "ingest_uptime_seconds 62.5\ningest_healthy 1\n\
ingest_source_records_total{source=\"twitter\"} N\n\
ingest_sink_delivered_total{sink=\"lake\",type=\"file\"} N\n\
ingest_sink_queue_depth{sink=\"lake\",type=\"file\"} 3\n\
ingest_sink_queue_capacity{sink=\"lake\",type=\"file\"} 16\n";

    fn sample(n: u64, at: Instant) -> Sample {
        Sample {
            at,
            series: parse(&BODY.replace(" N\n", &format!(" {n}\n"))).unwrap(),
        }
    }

    #[test]
    fn two_scrapes_give_rates_and_one_gives_dashes() {
        let t0 = Instant::now();
        let (a, b) = (sample(100, t0), sample(150, t0 + Duration::from_secs(2)));
        let text = render(&Frame::new(Some(&a), &b), "u");
        assert!(text.contains("uptime 0:01:02  healthy yes"), "{text}");
        let source = text.lines().find(|l| l.starts_with("twitter")).unwrap();
        let cells: Vec<&str> = source.split_whitespace().collect();
        assert_eq!(&cells[..3], ["twitter", "150", "25.0"], "{text}");
        let sink = text.lines().find(|l| l.starts_with("lake")).unwrap();
        let cells: Vec<&str> = sink.split_whitespace().collect();
        assert_eq!(
            &cells[..5],
            ["lake", "file", "150", "25.0", "3/16"],
            "{text}"
        );
        let once = render(&Frame::new(None, &b), "u");
        let source = once.lines().find(|l| l.starts_with("twitter")).unwrap();
        assert_eq!(source.split_whitespace().nth(2), Some("-"), "{once}");
    }
}
