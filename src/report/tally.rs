//! The counting half of the report: observations in, a [`Report`] out.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{EXAMPLES, GAPS, Observation, Place, RawState, TOP, TimeField, hashtags};

/// A name and how many records carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranked {
    pub name: String,
    pub records: u64,
}

/// Records in one minute (`minute`: its start, RFC 3339 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Minute {
    pub minute: String,
    pub records: u64,
}

/// A stretch with no record: from one record's time to the next one's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub from: String,
    pub to: String,
    pub secs: f64,
}

/// A problem and where it is (`file:line`, or `file row N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located {
    pub at: String,
    pub error: String,
}

/// Ids seen more than once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Duplicates {
    /// Distinct ids that occur more than once.
    pub ids: u64,
    /// Records beyond the first of each id.
    pub extra_records: u64,
    /// The first few such ids, with how often each occurs.
    pub examples: Vec<Ranked>,
}

/// How the records' `raw` reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RawSummary {
    pub parses: u64,
    pub absent: u64,
    /// Records whose `raw` is not a JSON object any more.
    pub broken: u64,
    /// Where the first few broken ones are.
    pub examples: Vec<String>,
}

/// Input that is not a record (a line that is not JSON, or JSON without `id`, `platform`, `kind`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub count: u64,
    pub examples: Vec<Located>,
}

/// The whole report; `--json` prints it as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub files: Vec<String>,
    pub records: u64,
    pub by_platform: Vec<Ranked>,
    pub by_kind: Vec<Ranked>,
    /// The timestamp the rate and the gaps are computed over.
    pub time_field: TimeField,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Records whose `time_field` is missing or does not parse (left out of the rate).
    pub without_time: u64,
    /// Every minute from the first record's to the last one's, empty minutes included.
    pub per_minute: Vec<Minute>,
    /// The longest gaps between consecutive records, longest first.
    pub longest_gaps: Vec<Gap>,
    pub top_tags: Vec<Ranked>,
    pub top_hashtags: Vec<Ranked>,
    pub top_languages: Vec<Ranked>,
    pub top_authors: Vec<Ranked>,
    pub top_chats: Vec<Ranked>,
    pub duplicates: Duplicates,
    pub raw: RawSummary,
    pub malformed: Malformed,
}

/// Counts observations as the readers hand them over.
#[derive(Debug, Default)]
pub struct Tally {
    by: TimeField,
    pub(super) files: Vec<String>,
    records: u64,
    platforms: HashMap<String, u64>,
    kinds: HashMap<String, u64>,
    times: Vec<i64>,
    without_time: u64,
    tags: HashMap<String, u64>,
    hashtags: HashMap<String, u64>,
    languages: HashMap<String, u64>,
    authors: HashMap<String, u64>,
    chats: HashMap<String, u64>,
    ids: HashMap<String, u32>,
    raw: RawSummary,
    malformed: Malformed,
}

fn bump(map: &mut HashMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

/// The `n` largest entries, most records first, ties by name.
fn top(map: HashMap<String, u64>, n: usize) -> Vec<Ranked> {
    let mut all: Vec<Ranked> = map
        .into_iter()
        .map(|(name, records)| Ranked { name, records })
        .collect();
    all.sort_by(|a, b| b.records.cmp(&a.records).then_with(|| a.name.cmp(&b.name)));
    all.truncate(n);
    all
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

const MINUTE_MS: i64 = 60_000;

impl Tally {
    pub fn new(by: TimeField) -> Self {
        Tally {
            by,
            ..Tally::default()
        }
    }

    /// Counts one record found at `at`.
    pub fn record(&mut self, o: Observation, at: &Place<'_>) {
        self.records += 1;
        bump(&mut self.platforms, &o.platform);
        bump(&mut self.kinds, &o.kind);
        let time = match self.by {
            TimeField::Received => o.received_ms,
            TimeField::Created => o.created_ms,
        };
        match time {
            Some(t) => self.times.push(t),
            None => self.without_time += 1,
        }
        for tag in &o.tags {
            bump(&mut self.tags, tag);
        }
        if let Some(text) = &o.text {
            let mut seen: Vec<String> = hashtags(text).collect();
            seen.sort();
            seen.dedup();
            for tag in &seen {
                bump(&mut self.hashtags, tag);
            }
        }
        for (map, value) in [
            (&mut self.languages, &o.lang),
            (&mut self.authors, &o.author),
            (&mut self.chats, &o.chat),
        ] {
            if let Some(v) = value {
                bump(map, v);
            }
        }
        *self.ids.entry(o.id).or_default() += 1;
        match o.raw.unwrap_or(RawState::Absent) {
            RawState::Absent => self.raw.absent += 1,
            RawState::Parses => self.raw.parses += 1,
            RawState::Broken => {
                self.raw.broken += 1;
                if self.raw.examples.len() < EXAMPLES {
                    self.raw.examples.push(at.to_string());
                }
            }
        }
    }

    /// Counts input at `at` that is not a record, and why.
    pub fn malformed(&mut self, at: &Place<'_>, error: impl std::fmt::Display) {
        self.malformed.count += 1;
        if self.malformed.examples.len() < EXAMPLES {
            self.malformed.examples.push(Located {
                at: at.to_string(),
                error: error.to_string(),
            });
        }
    }

    pub fn finish(mut self) -> Report {
        self.times.sort_unstable();
        let per_minute = per_minute(&self.times);
        let longest_gaps = longest_gaps(&self.times);
        Report {
            files: self.files,
            records: self.records,
            by_platform: top(self.platforms, usize::MAX),
            by_kind: top(self.kinds, usize::MAX),
            time_field: self.by,
            first: self.times.first().map(|t| rfc3339(*t)),
            last: self.times.last().map(|t| rfc3339(*t)),
            without_time: self.without_time,
            per_minute,
            longest_gaps,
            top_tags: top(self.tags, TOP),
            top_hashtags: top(self.hashtags, TOP),
            top_languages: top(self.languages, TOP),
            top_authors: top(self.authors, TOP),
            top_chats: top(self.chats, TOP),
            duplicates: duplicates(self.ids),
            raw: self.raw,
            malformed: self.malformed,
        }
    }
}

/// Records per minute over sorted times, empty minutes included.
fn per_minute(sorted: &[i64]) -> Vec<Minute> {
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let minute = |t: i64| t.div_euclid(MINUTE_MS);
    let mut counts: BTreeMap<i64, u64> = BTreeMap::new();
    for t in sorted {
        *counts.entry(minute(*t)).or_default() += 1;
    }
    (minute(*first)..=minute(*last))
        .map(|m| Minute {
            minute: rfc3339(m * MINUTE_MS),
            records: counts.get(&m).copied().unwrap_or(0),
        })
        .collect()
}

/// The [`GAPS`] longest gaps between consecutive sorted times, longest first.
fn longest_gaps(sorted: &[i64]) -> Vec<Gap> {
    let mut gaps: Vec<(i64, i64)> = sorted
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    gaps.sort_by(|a, b| (b.1 - b.0).cmp(&(a.1 - a.0)).then(a.0.cmp(&b.0)));
    gaps.truncate(GAPS);
    gaps.into_iter()
        .map(|(from, to)| Gap {
            from: rfc3339(from),
            to: rfc3339(to),
            secs: (to - from) as f64 / 1000.0,
        })
        .collect()
}

fn duplicates(ids: HashMap<String, u32>) -> Duplicates {
    let mut repeated: Vec<(String, u32)> = ids.into_iter().filter(|(_, n)| *n > 1).collect();
    repeated.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Duplicates {
        ids: repeated.len() as u64,
        extra_records: repeated.iter().map(|(_, n)| u64::from(n - 1)).sum(),
        examples: repeated
            .into_iter()
            .take(EXAMPLES)
            .map(|(name, n)| Ranked {
                name,
                records: n.into(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_are_zero_filled_and_gaps_sorted_longest_first() {
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % MINUTE_MS;
        let times = [
            t0,
            t0 + 1_000,
            t0 + 3 * MINUTE_MS + 5_000,
            t0 + 3 * MINUTE_MS + 6_000,
        ];
        let minutes = per_minute(&times);
        let counts: Vec<u64> = minutes.iter().map(|m| m.records).collect();
        assert_eq!(counts, [2, 0, 0, 2]);
        let gaps = longest_gaps(&times);
        assert_eq!(gaps[0].secs, 184.0);
        assert_eq!(gaps[1].secs, 1.0);
    }

    #[test]
    fn duplicates_count_ids_and_extra_copies() {
        let ids = HashMap::from([
            ("a".to_owned(), 3),
            ("b".to_owned(), 1),
            ("c".to_owned(), 2),
        ]);
        let d = duplicates(ids);
        assert_eq!((d.ids, d.extra_records), (2, 3));
        assert_eq!(d.examples[0].name, "a");
    }
}
