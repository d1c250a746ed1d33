//! The report as plain text, for a terminal.

use std::fmt::Write as _;

use super::{Ranked, Report, TimeField};

/// Up to this many minutes are listed one per line; longer captures get a summary.
const LISTED_MINUTES: usize = 60;

fn share(n: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!(" ({:.1}%)", n as f64 * 100.0 / total as f64)
}

fn ranked(out: &mut String, title: &str, items: &[Ranked], total: u64) {
    let _ = writeln!(out, "\n{title}:");
    if items.is_empty() {
        out.push_str("  (none)\n");
    }
    for r in items {
        let _ = writeln!(
            out,
            "  {:>8}  {}{}",
            r.records,
            r.name,
            share(r.records, total)
        );
    }
}

/// Renders the report as the text `ingest report` prints.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "files: {}", r.files.join(", "));
    let _ = writeln!(out, "records: {}", r.records);
    ranked(&mut out, "by platform", &r.by_platform, r.records);
    ranked(&mut out, "by kind", &r.by_kind, r.records);
    rate(&mut out, r);
    ranked(
        &mut out,
        "top tags (matching rules)",
        &r.top_tags,
        r.records,
    );
    ranked(
        &mut out,
        "top hashtags (in the text)",
        &r.top_hashtags,
        r.records,
    );
    ranked(&mut out, "top languages", &r.top_languages, r.records);
    ranked(&mut out, "top authors", &r.top_authors, r.records);
    ranked(&mut out, "top chats", &r.top_chats, r.records);
    problems(&mut out, r);
    out
}

fn rate(out: &mut String, r: &Report) {
    let field = match r.time_field {
        TimeField::Received => "received_at",
        TimeField::Created => "created_at",
    };
    let _ = writeln!(out, "\nper-minute rate (by {field}):");
    if let (Some(first), Some(last)) = (&r.first, &r.last) {
        let _ = writeln!(out, "  first {first}, last {last}");
    }
    if r.without_time > 0 {
        let _ = writeln!(
            out,
            "  {} records without a {field} that parses",
            r.without_time
        );
    }
    let counts: Vec<u64> = r.per_minute.iter().map(|m| m.records).collect();
    if counts.is_empty() {
        out.push_str("  (no records with a time)\n");
        return;
    }
    if counts.len() <= LISTED_MINUTES {
        for m in &r.per_minute {
            let _ = writeln!(out, "  {}  {:>8}", m.minute, m.records);
        }
    } else {
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        let empty = counts.iter().filter(|c| **c == 0).count();
        let _ = writeln!(
            out,
            "  {} minutes: min {}, median {}, max {} records a minute; {} empty minutes (--json lists every minute)",
            counts.len(),
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
            empty
        );
    }
    let _ = writeln!(out, "\nlongest gaps:");
    if r.longest_gaps.is_empty() {
        out.push_str("  (fewer than two distinct times)\n");
    }
    for g in &r.longest_gaps {
        let _ = writeln!(out, "  {:>10.3}s  {} -> {}", g.secs, g.from, g.to);
    }
}

fn problems(out: &mut String, r: &Report) {
    let d = &r.duplicates;
    let _ = writeln!(
        out,
        "\nduplicate ids: {} ids, {} extra records",
        d.ids, d.extra_records
    );
    for e in &d.examples {
        let _ = writeln!(out, "  {} x{}", e.name, e.records);
    }
    let raw = &r.raw;
    let _ = writeln!(
        out,
        "\nraw: {} parse, {} absent, {} no longer parse",
        raw.parses, raw.absent, raw.broken
    );
    for at in &raw.examples {
        let _ = writeln!(out, "  {at}");
    }
    let _ = writeln!(out, "\nmalformed lines: {}", r.malformed.count);
    for m in &r.malformed.examples {
        let _ = writeln!(out, "  {}: {}", m.at, m.error);
    }
}
