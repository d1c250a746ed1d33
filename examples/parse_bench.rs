//! The X stream line's struct parse, serde_json against sonic-rs (issue 30's
//! trial of a SIMD parser): the same realistic lines as `stream_bench`, the
//! same struct shapes as `src/sources/twitter/normalize.rs` (borrowed `Cow`
//! strings, the unread parts kept as raw slices), the same work per line as
//! ingest does with `raw` kept (UTF-8 check, then one parse of the whole
//! line). One core, lines in memory: the parse alone, none of the pipeline.
//!
//! It also asks each parser whether it refuses a line whose *skipped* member
//! is not JSON: ingest's `raw` is the line itself, trusted as one well-formed
//! value because the parse read every byte of it; a parser that skips
//! unread members without checking them would need a second, validating pass.
//!
//! ```text
//! cargo run --release --example parse_bench -- --records 1000000 [--runs 3]
//! RUSTFLAGS="-C target-cpu=native" cargo run --release --example parse_bench …
//! ```
//!
//! sonic-rs picks its SIMD kernels at compile time: without AVX2 enabled for
//! the build (`target-cpu=native`, or `-C target-feature=+avx2,+pclmulqdq`)
//! it runs its portable fallback. The header line says which build this is.

#[path = "common/util.rs"]
mod util;
use util::arg_or;

#[path = "common/spread.rs"]
mod spread;
use spread::show;

#[path = "common/lines.rs"]
mod lines;

use std::hint::black_box;
use std::time::Instant;

/// The struct shapes of `normalize.rs`, over a parser's raw-slice type.
macro_rules! shapes {
    ($m:ident, $raw:path) => {
        mod $m {
            #![allow(dead_code)]
            use serde::Deserialize;
            use std::borrow::Cow;
            use $raw as Raw;

            #[derive(Deserialize)]
            pub struct StreamLine<'a> {
                #[serde(borrow)]
                pub data: Option<Tweet<'a>>,
                #[serde(borrow, default)]
                pub includes: Option<Includes<'a>>,
                #[serde(borrow, default)]
                pub matching_rules: Vec<Rule<'a>>,
                #[serde(borrow, default)]
                pub errors: Option<Raw<'a>>,
            }

            #[derive(Deserialize)]
            pub struct Tweet<'a> {
                #[serde(borrow)]
                pub id: Cow<'a, str>,
                #[serde(borrow, default)]
                pub text: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub note_tweet: Option<NoteTweet<'a>>,
                #[serde(borrow, default)]
                pub note_post: Option<NoteTweet<'a>>,
                #[serde(borrow, default)]
                pub author_id: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub created_at: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub lang: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub source: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub conversation_id: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub entities: Option<Raw<'a>>,
            }

            #[derive(Deserialize)]
            pub struct NoteTweet<'a> {
                #[serde(borrow, default)]
                pub text: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub entities: Option<Raw<'a>>,
            }

            #[derive(Deserialize)]
            pub struct Includes<'a> {
                #[serde(borrow, default)]
                pub users: Vec<User<'a>>,
            }

            #[derive(Deserialize)]
            pub struct User<'a> {
                #[serde(borrow, default)]
                pub id: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub name: Option<Cow<'a, str>>,
                #[serde(borrow, default)]
                pub username: Option<Cow<'a, str>>,
            }

            #[derive(Deserialize)]
            pub struct Rule<'a> {
                #[serde(borrow)]
                pub id: Cow<'a, str>,
                #[serde(borrow, default)]
                pub tag: Option<Cow<'a, str>>,
            }

            impl StreamLine<'_> {
                /// What the normalizer reads, summed so nothing is optimized away.
                pub fn weight(&self) -> usize {
                    let Some(t) = &self.data else { return 0 };
                    let users: usize = self.includes.as_ref().map_or(0, |i| {
                        i.users
                            .iter()
                            .map(|u| {
                                u.id.as_ref().map_or(0, |s| s.len())
                                    + u.name.as_ref().map_or(0, |s| s.len())
                                    + u.username.as_ref().map_or(0, |s| s.len())
                            })
                            .sum()
                    });
                    let rules: usize = self
                        .matching_rules
                        .iter()
                        .map(|r| r.id.len() + r.tag.as_ref().map_or(0, |s| s.len()))
                        .sum();
                    t.id.len()
                        + t.text.as_ref().map_or(0, |s| s.len())
                        + t.author_id.as_ref().map_or(0, |s| s.len())
                        + t.created_at.as_ref().map_or(0, |s| s.len())
                        + t.lang.as_ref().map_or(0, |s| s.len())
                        + users
                        + rules
                }
            }
        }
    };
}

mod serde_json_raw {
    pub type Raw<'a> = &'a serde_json::value::RawValue;
}
mod sonic_raw {
    pub type Raw<'a> = sonic_rs::LazyValue<'a>;
}

shapes!(with_serde_json, super::serde_json_raw::Raw);
shapes!(with_sonic, super::sonic_raw::Raw);

fn serde_json_parse(line: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let parsed: with_serde_json::StreamLine<'_> =
        serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(parsed.weight())
}

fn sonic_parse(line: &[u8]) -> Result<usize, String> {
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let parsed: with_sonic::StreamLine<'_> = sonic_rs::from_str(text).map_err(|e| e.to_string())?;
    Ok(parsed.weight())
}

fn serde_json_slice(line: &[u8]) -> Result<usize, String> {
    let parsed: with_serde_json::StreamLine<'_> =
        serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(parsed.weight())
}

fn sonic_slice(line: &[u8]) -> Result<usize, String> {
    let parsed: with_sonic::StreamLine<'_> =
        sonic_rs::from_slice(line).map_err(|e| e.to_string())?;
    Ok(parsed.weight())
}

type Parse = fn(&[u8]) -> Result<usize, String>;

fn main() {
    let records: u64 = arg_or("--records", 1_000_000);
    let runs = spread::runs();
    let mut lines = Vec::with_capacity(records as usize);
    let mut bytes = 0usize;
    for i in 0..records {
        let mut line = Vec::with_capacity(640);
        lines::line(i, &mut line);
        line.truncate(line.len() - 2); // the `\r\n`
        bytes += line.len();
        lines.push(line);
    }
    println!(
        "parse_bench: {records} lines, {:.0} bytes per line, {runs} runs each, one core, built {} AVX2",
        bytes as f64 / records as f64,
        if cfg!(target_feature = "avx2") {
            "with"
        } else {
            "without"
        }
    );
    // ingest's two entry points: `raw` kept (std's UTF-8 check, then
    // `from_str`) and `--no-raw` (`from_slice`).
    let parsers: [(&str, Parse); 4] = [
        (
            "serde_json, from_utf8 + from_str (ingest, raw kept)",
            serde_json_parse,
        ),
        ("sonic-rs, from_utf8 + from_str", sonic_parse),
        (
            "serde_json, from_slice (ingest, --no-raw)",
            serde_json_slice,
        ),
        ("sonic-rs, from_slice", sonic_slice),
    ];
    // Every parser reads the same fields from every line.
    for line in lines.iter().step_by(997) {
        let want = serde_json_parse(line);
        for (name, parse) in parsers {
            assert_eq!(parse(line), want, "{name}");
        }
    }
    // Round by round, every parser once per round: the machine's noise,
    // which moves whole seconds, falls on all of them alike.
    let mut ns = vec![Vec::new(); parsers.len()];
    let mut mbs = vec![Vec::new(); parsers.len()];
    for _ in 0..runs {
        for (i, (_, parse)) in parsers.iter().enumerate() {
            let start = Instant::now();
            let mut sum = 0usize;
            for line in &lines {
                sum += parse(black_box(line)).expect("a bench line parses");
            }
            black_box(sum);
            let secs = start.elapsed().as_secs_f64();
            ns[i].push(secs * 1e9 / records as f64);
            mbs[i].push(bytes as f64 / secs / 1e6);
        }
    }
    for (i, (name, _)) in parsers.iter().enumerate() {
        println!(
            "{name}: {} per line; {}",
            show(&ns[i], 0, "ns"),
            show(&mbs[i], 0, "MB/s")
        );
    }
    // A line whose unread member is not JSON: each parser's answer.
    let broken: [(&str, &str); 3] = [
        (
            "an unread member with a stray comma",
            r#"{"data":{"id":"1","text":"hi","public_metrics":{"like_count":1,}}}"#,
        ),
        (
            "an unread member with a bare word",
            r#"{"data":{"id":"1","text":"hi","public_metrics":{"like_count":tru}}}"#,
        ),
        (
            "an unread string with a raw control byte",
            "{\"data\":{\"id\":\"1\",\"text\":\"hi\",\"source\":\"a\u{1}b\"},\"x\":\"c\u{2}d\"}",
        ),
    ];
    for (what, line) in broken {
        for (name, parse) in parsers.into_iter().take(2) {
            let answer = match parse(line.as_bytes()) {
                Ok(_) => "accepted".to_owned(),
                Err(e) => format!("refused ({})", e.lines().next().unwrap_or_default()),
            };
            println!("{what}, {name}: {answer}");
        }
    }
}
