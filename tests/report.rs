//! `ingest report`: a capture from the built-in Telegram mock, with planted
//! faults (duplicates, a gap, a malformed line, binary junk, a `raw` that no
//! longer parses), reported and checked against the file itself; the same
//! records as Parquet give the same report; hostile inputs; and the `--html`
//! page opened in headless Chromium, its charts checked in the screenshot.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Env, stderr};
use serde_json::Value;

#[cfg(feature = "parquet")]
const PARQUET_SINK: &str =
    "[sinks.pq]\ntype = \"file\"\nformat = \"parquet\"\npath = \"pq/{platform}.parquet\"\n";

/// `ingest telegram --mock --until-idle` into `t.jsonl` (and the `pq` Parquet
/// sink when the config names it); the records written.
fn capture(env: &Env, sinks: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "telegram",
        "--mock",
        "--until-idle",
        "--file-path",
        "t.jsonl",
    ];
    for s in sinks {
        args.extend(["--sink", s]);
    }
    let out = env.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("t.jsonl");
    assert!(records.len() > 40, "the mock's queue: {}", records.len());
    records
}

fn report_json(env: &Env, files: &[&str]) -> Value {
    let out = env
        .cmd()
        .arg("report")
        .arg("--json")
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ranked(v: &Value) -> BTreeMap<String, u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["records"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn report_figures_match_the_capture_and_find_the_planted_faults() {
    let env = Env::new();
    let mut records = capture(&env, &["file"]);
    // A gap: the last five records received 25 minutes later.
    let n = records.len();
    let later = |t: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(t).unwrap() + chrono::Duration::minutes(25);
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    for r in &mut records[n - 5..] {
        r["received_at"] = Value::String(later(r["received_at"].as_str().unwrap()));
    }
    // A raw that no longer parses: the payload mangled into a string.
    records[3]["raw"] = Value::String("{\"update_id\": 5000".into());
    // Duplicates: the first record twice more, the second once more.
    let (first, second) = (records[0].clone(), records[1].clone());
    records.extend([first.clone(), second, first]);
    let mut lines: Vec<Vec<u8>> = records
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    lines.insert(10, b"{\"id\": \"telegram:cut".to_vec());
    lines.insert(20, vec![0xff, 0x00, 0xfe, 0x89, b'P', b'N', b'G']);
    let mut body = lines.join(&b'\n');
    body.push(b'\n');
    std::fs::write(env.path("planted.jsonl"), &body).unwrap();

    let r = report_json(&env, &["planted.jsonl"]);
    assert_eq!(r["records"], records.len() as u64);
    let kinds = common::counts(
        records
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_owned()),
    );
    let kinds: BTreeMap<String, u64> = kinds.into_iter().map(|(k, v)| (k, v as u64)).collect();
    assert_eq!(ranked(&r["by_kind"]), kinds);
    assert_eq!(
        ranked(&r["by_platform"]),
        BTreeMap::from([("telegram".into(), records.len() as u64)])
    );
    assert_eq!(r["duplicates"]["ids"], 2);
    assert_eq!(r["duplicates"]["extra_records"], 3);
    assert_eq!(r["duplicates"]["examples"][0]["name"], records[0]["id"]);
    assert_eq!(r["duplicates"]["examples"][0]["records"], 3);
    // Line 4 of the file is records[3] (the junk lines come later).
    assert_eq!(r["raw"]["broken"], 1);
    assert_eq!(r["raw"]["examples"], serde_json::json!(["planted.jsonl:4"]));
    assert_eq!(r["malformed"]["count"], 2);
    let at: Vec<&str> = r["malformed"]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["at"].as_str().unwrap())
        .collect();
    assert_eq!(at, ["planted.jsonl:11", "planted.jsonl:21"]);
    // The gap: about 25 minutes, and 26 minutes of rate with the empty ones in.
    let gap = r["longest_gaps"][0]["secs"].as_f64().unwrap();
    assert!((24.0 * 60.0..26.0 * 60.0).contains(&gap), "{gap}");
    let minutes = r["per_minute"].as_array().unwrap();
    assert!((25..=27).contains(&minutes.len()), "{}", minutes.len());
    let sum: u64 = minutes.iter().map(|m| m["records"].as_u64().unwrap()).sum();
    assert_eq!(sum, records.len() as u64);
    assert!(minutes.iter().any(|m| m["records"] == 0));
    // Languages and chats as the records carry them.
    let langs = common::counts(
        records
            .iter()
            .filter_map(|r| r["lang"].as_str().map(str::to_owned)),
    );
    let top = ranked(&r["top_languages"]);
    for (lang, n) in &top {
        assert_eq!(langs[lang] as u64, *n, "{lang}");
    }
    assert!(!ranked(&r["top_chats"]).is_empty());

    let text = env.run(&["report", "planted.jsonl"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    for want in [
        format!("records: {}", records.len()),
        "duplicate ids: 2 ids, 3 extra records".into(),
        "malformed lines: 2".into(),
        "planted.jsonl:4".into(),
        "1 no longer parse".into(),
    ] {
        assert!(text.contains(&want), "no `{want}` in:\n{text}");
    }
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_files_give_the_same_report_as_the_jsonl_of_the_same_records() {
    let env = Env::new().config(PARQUET_SINK);
    capture(&env, &["file", "pq"]);
    let parquet: Vec<String> = std::fs::read_dir(env.path("pq"))
        .unwrap()
        .map(|e| format!("pq/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert!(!parquet.is_empty());
    let mut from_jsonl = report_json(&env, &["t.jsonl"]);
    let files: Vec<&str> = parquet.iter().map(String::as_str).collect();
    let mut from_parquet = report_json(&env, &files);
    assert!(from_parquet["records"].as_u64().unwrap() > 40);
    from_jsonl["files"] = Value::Null;
    from_parquet["files"] = Value::Null;
    assert_eq!(from_jsonl, from_parquet);
}

#[test]
fn hostile_inputs_are_counted_or_named_never_a_crash() {
    let env = Env::new();
    std::fs::write(env.path("empty.jsonl"), b"").unwrap();
    let r = report_json(&env, &["empty.jsonl"]);
    assert_eq!(
        (r["records"].as_u64(), r["malformed"]["count"].as_u64()),
        (Some(0), Some(0))
    );

    let junk: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(env.path("junk.bin"), &junk).unwrap();
    let r = report_json(&env, &["junk.bin"]);
    assert_eq!(r["records"], 0);
    assert!(r["malformed"]["count"].as_u64().unwrap() > 0);

    // A 20 MiB line between two good ones.
    let good = r#"{"id":"twitter:1","platform":"twitter","kind":"tweet","received_at":"2026-01-01T00:00:00.000Z","run":{"id":"r","started_at":"2026-01-01T00:00:00.000Z"}}"#;
    let mut huge = format!("{good}\n{{\"id\":\"");
    huge.push_str(&"a".repeat(20 << 20));
    huge.push_str(&format!(
        "\"}}\n{}\n",
        good.replace("twitter:1", "twitter:2")
    ));
    std::fs::write(env.path("huge.jsonl"), huge).unwrap();
    let r = report_json(&env, &["huge.jsonl"]);
    assert_eq!(r["records"], 2);
    assert_eq!(r["malformed"]["count"], 1);
    assert!(
        r["malformed"]["examples"][0]["error"]
            .as_str()
            .unwrap()
            .contains("longer than 16 MiB")
    );

    let out = env.run(&["report", "empty.jsonl", "nosuch.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read nosuch.jsonl"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "no half report on stdout");

    // A file that starts like Parquet but is not (a build without the
    // `parquet` feature refuses any Parquet file, saying how to get it).
    std::fs::write(env.path("fake.parquet"), b"PAR1 not really").unwrap();
    let out = env.run(&["report", "fake.parquet"]);
    let (code, says) = if cfg!(feature = "parquet") {
        (1, "fake.parquet is a Parquet file that cannot be read")
    } else {
        (78, "has no Parquet reader")
    };
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    assert!(stderr(&out).contains(says), "{}", stderr(&out));
}

/// A decoded PNG: width, height, RGBA pixels.
struct Png {
    width: usize,
    height: usize,
    rgba: Vec<[u8; 4]>,
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes(b[..4].try_into().unwrap()) as usize
}

/// Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes):
/// the chunks, the zlib stream, and the five scanline filters.
fn decode_png(bytes: &[u8]) -> Png {
    use std::io::Read;
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    let (mut pos, mut idat, mut header) = (8, Vec::new(), None);
    while pos + 8 <= bytes.len() {
        let len = be32(&bytes[pos..]);
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => header = Some((be32(data), be32(&data[4..]), data[8], data[9], data[12])),
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let (width, height, depth, color, interlace) = header.expect("an IHDR chunk");
    assert_eq!((depth, interlace), (8, 0), "8-bit, not interlaced");
    let bpp = match color {
        2 => 3,
        6 => 4,
        c => panic!("colour type {c}"),
    };
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * bpp;
    let mut prev = vec![0u8; stride];
    let mut rgba = Vec::with_capacity(width * height);
    for row in raw.chunks(stride + 1).take(height) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= bpp { cur[i - bpp] as i16 } else { 0 };
            let b = prev[i] as i16;
            let c = if i >= bpp { prev[i - bpp] as i16 } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            cur[i] = line[i].wrapping_add(predictor as u8);
        }
        for px in cur.chunks(bpp) {
            rgba.push([px[0], px[1], px[2], if bpp == 4 { px[3] } else { 255 }]);
        }
        prev = cur;
    }
    Png {
        width,
        height,
        rgba,
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status
            .success()
            .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

fn headless(chromium: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.join("chromium-profile").display()
        ))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn the_html_page_is_self_contained_and_its_charts_render_in_chromium() {
    let env = Env::new();
    let out = env.run(&[
        "twitter",
        "--mock",
        "--track",
        "rust",
        "--sink",
        "file",
        "--file-path",
        "x.jsonl",
        "--max-records",
        "40",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    capture(&env, &["file"]);
    let out = env.run(&["report", "--html", "page.html", "x.jsonl", "t.jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(env.path("page.html")).unwrap();
    for banned in ["<script", "src=", "href=", "url(", "@import", "@font-face"] {
        assert!(
            !page.contains(banned),
            "the page loads nothing: found `{banned}`"
        );
    }
    for id in [
        "rate-chart",
        "tags-chart",
        "hashtags-chart",
        "languages-chart",
    ] {
        assert!(page.contains(&format!("<svg id=\"{id}\"")), "{id}");
    }

    let Some(chromium) = chromium() else {
        eprintln!(
            "\n\n*** SKIPPED: chromium is not installed (`scripts/services install` installs it); the page was not rendered ***\n"
        );
        return;
    };
    let url = format!("file://{}", env.path("page.html").display());
    let dom = headless(&chromium, env.dir.path(), &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.matches("class=\"bar\"").count() >= 5,
        "bars in the loaded DOM:\n{dom}"
    );

    let shot = headless(
        &chromium,
        env.dir.path(),
        &["--screenshot=shot.png", "--window-size=1000,1600", &url],
    );
    let png = std::fs::read(env.path("shot.png")).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&shot.stderr)
        )
    });
    let png = decode_png(&png);
    assert_eq!((png.width, png.height), (1000, 1600));
    let count = |rgb: [u8; 3]| png.rgba.iter().filter(|p| p[..3] == rgb).count();
    // The rate chart's bars (#3b7dd8) and the top-list bars (#e07b39), drawn.
    let (blue, orange) = (count([0x3b, 0x7d, 0xd8]), count([0xe0, 0x7b, 0x39]));
    assert!(blue > 2_000, "rate-chart pixels: {blue}");
    assert!(orange > 2_000, "bar-chart pixels: {orange}");
    let white = count([255, 255, 255]);
    assert!(
        white < png.rgba.len() * 99 / 100,
        "a page, not a blank: {white} white"
    );
    if let Ok(keep) = std::env::var("INGEST_TEST_KEEP_SCREENSHOT") {
        std::fs::copy(env.path("shot.png"), keep).unwrap();
    }
}
