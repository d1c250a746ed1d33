//! The report as one self-contained HTML page: inline CSS and inline SVG
//! charts (the per-minute rate, the top tags, hashtags and languages), no
//! script, no font, no request to anywhere. Every string from the data is
//! escaped: tags and names are whatever the posters wrote.

use std::fmt::Write as _;

use super::{Ranked, Report};

/// The rate chart draws at most this many bars (minutes are summed into bins beyond).
const MAX_BARS: usize = 600;
const CHART_W: f64 = 900.0;
const RATE_H: f64 = 220.0;
const BAR_ROW_H: f64 = 22.0;
const LABEL_W: f64 = 260.0;

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Sums `counts` into at most `max` bins of equal width (in minutes).
fn bins(counts: &[u64], max: usize) -> (Vec<u64>, usize) {
    let width = counts.len().div_ceil(max).max(1);
    (
        counts.chunks(width).map(|c| c.iter().sum()).collect(),
        width,
    )
}

/// The per-minute rate as a bar chart.
fn rate_chart(r: &Report) -> String {
    let counts: Vec<u64> = r.per_minute.iter().map(|m| m.records).collect();
    if counts.is_empty() {
        return "<p>No record has a time to chart.</p>".into();
    }
    let (bars, width) = bins(&counts, MAX_BARS);
    let top = bars.iter().copied().max().unwrap_or(0).max(1) as f64;
    let plot_h = RATE_H - 40.0;
    let step = (CHART_W - 60.0) / bars.len() as f64;
    let mut svg = format!(
        r##"<svg id="rate-chart" class="chart" xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{RATE_H}" viewBox="0 0 {CHART_W} {RATE_H}" role="img" aria-label="records per minute">"##
    );
    let _ = write!(
        svg,
        r##"<line x1="50" y1="10" x2="50" y2="{y}" stroke="#555"/><line x1="50" y1="{y}" x2="{x}" y2="{y}" stroke="#555"/><text x="45" y="16" text-anchor="end">{top}</text><text x="45" y="{y}" text-anchor="end">0</text>"##,
        y = 10.0 + plot_h,
        x = CHART_W - 10.0,
    );
    for (i, n) in bars.iter().enumerate() {
        let h = (*n as f64 / top * plot_h).max(if *n > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            svg,
            r##"<rect class="bar" x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="#3b7dd8"><title>{n}</title></rect>"##,
            x = 50.0 + i as f64 * step,
            y = 10.0 + plot_h - h,
            w = (step - 1.0).max(0.5),
        );
    }
    let first = esc(&r.per_minute[0].minute);
    let last = esc(&r.per_minute[r.per_minute.len() - 1].minute);
    let unit = if width == 1 {
        "records a minute".to_owned()
    } else {
        format!("records per {width} minutes")
    };
    let _ = write!(
        svg,
        r##"<text x="50" y="{y}">{first}</text><text x="{x}" y="{y}" text-anchor="end">{last}</text><text x="{mid}" y="{y}" text-anchor="middle">{unit}</text></svg>"##,
        y = RATE_H - 8.0,
        x = CHART_W - 10.0,
        mid = CHART_W / 2.0,
    );
    svg
}

/// A horizontal bar chart of a top list.
fn bars(id: &str, items: &[Ranked]) -> String {
    if items.is_empty() {
        return "<p>None.</p>".into();
    }
    let top = items.iter().map(|r| r.records).max().unwrap_or(1).max(1) as f64;
    let h = items.len() as f64 * BAR_ROW_H + 10.0;
    let mut svg = format!(
        r##"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{h}" viewBox="0 0 {CHART_W} {h}">"##
    );
    for (i, r) in items.iter().enumerate() {
        let y = 5.0 + i as f64 * BAR_ROW_H;
        let w = (r.records as f64 / top * (CHART_W - LABEL_W - 80.0)).max(1.0);
        let name: String = r.name.chars().take(40).collect();
        let _ = write!(
            svg,
            r##"<text x="{lx}" y="{ty}" text-anchor="end">{name}</text><rect class="bar" x="{LABEL_W}" y="{y}" width="{w:.2}" height="{bh}" fill="#e07b39"/><text x="{nx:.2}" y="{ty}">{n}</text>"##,
            lx = LABEL_W - 8.0,
            ty = y + 15.0,
            name = esc(&name),
            bh = BAR_ROW_H - 6.0,
            nx = LABEL_W + w + 6.0,
            n = r.records,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(items: &[Ranked]) -> String {
    let mut t = String::from("<table>");
    for r in items {
        let _ = write!(
            t,
            "<tr><td class=\"n\">{}</td><td>{}</td></tr>",
            r.records,
            esc(&r.name)
        );
    }
    t.push_str("</table>");
    t
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:960px}\
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}svg text{font-size:12px;fill:#333}\
table{border-collapse:collapse}td{padding:2px 10px}td.n{text-align:right}\
.problem{color:#a40000}";

/// Renders the report as one HTML page.
pub fn render_html(r: &Report) -> String {
    let mut p = String::with_capacity(64 * 1024);
    let _ = write!(
        p,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ingest report</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        p,
        "<h1>ingest report: {} records</h1><p>{}</p>",
        r.records,
        esc(&r.files.join(", "))
    );
    if let (Some(first), Some(last)) = (&r.first, &r.last) {
        let _ = write!(p, "<p>From {} to {}.</p>", esc(first), esc(last));
    }
    let _ = write!(
        p,
        "<h2>By platform</h2>{}<h2>By kind</h2>{}",
        table(&r.by_platform),
        table(&r.by_kind)
    );
    let _ = write!(p, "<h2>Records per minute</h2>{}", rate_chart(r));
    p.push_str("<h2>Longest gaps</h2><table>");
    for g in &r.longest_gaps {
        let _ = write!(
            p,
            "<tr><td class=\"n\">{:.3} s</td><td>{} → {}</td></tr>",
            g.secs,
            esc(&g.from),
            esc(&g.to)
        );
    }
    p.push_str("</table>");
    let _ = write!(
        p,
        "<h2>Top tags</h2>{}<h2>Top hashtags</h2>{}<h2>Top languages</h2>{}",
        bars("tags-chart", &r.top_tags),
        bars("hashtags-chart", &r.top_hashtags),
        bars("languages-chart", &r.top_languages)
    );
    let _ = write!(
        p,
        "<h2>Top authors</h2>{}<h2>Top chats</h2>{}",
        table(&r.top_authors),
        table(&r.top_chats)
    );
    let _ = write!(
        p,
        "<h2>Problems</h2><p class=\"problem\">{} duplicate ids ({} extra records); {} records whose raw no longer parses; {} malformed lines.</p>",
        r.duplicates.ids, r.duplicates.extra_records, r.raw.broken, r.malformed.count
    );
    p.push_str("</body></html>\n");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_escaped() {
        assert_eq!(esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }

    #[test]
    fn long_series_are_binned_to_the_bar_limit() {
        let (b, w) = bins(&vec![1; 1500], 600);
        assert_eq!((b.len(), w), (500, 3));
        assert_eq!(b.iter().sum::<u64>(), 1500);
    }
}
