//! `--media` on the X stream, and the `[media]` config refused when it is
//! wrong: the real binary against the mock X API (its own process, behind the
//! spec-checking proxy, which holds the stream request's `expansions` and
//! `media.fields` to X's spec); every stored object is checked against the
//! mock's own bytes (SHA-256).
#![cfg(feature = "mock")]

use std::collections::BTreeMap;

use ingest::mock::media::{self, FILES};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod common;
use common::*;

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every media item of the records, with the record's id.
fn items(records: &[Value]) -> Vec<(String, Value)> {
    records
        .iter()
        .flat_map(|r| {
            let id = r["id"].as_str().unwrap().to_owned();
            r["media"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |m| (id.clone(), m))
        })
        .collect()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The catalog file an X `media_key` names (`3_1001` is the first file).
fn x_file(key: &str) -> &'static media::MockFile {
    let n: usize = key.split_once('_').unwrap().1.parse().unwrap();
    &FILES[n - 1001]
}

fn x_capture(env: &Env, extra: &[&str]) -> (std::process::Output, Vec<Value>) {
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 200.0\ntotal_tweets = 28\n[[rule]]\nvalue = \"cats\"\ntag = \"pets\"\n",
    );
    let out = env
        .cmd()
        .args([
            "twitter",
            "--twitter-api-base",
            &mock.url,
            "--rules-mode",
            "keep",
        ])
        .args(["--media", "--sink", "file", "--file-path", "out.jsonl"])
        .args(["--max-records", "28", "--duration", "60s", "--summary"])
        .args(extra)
        .output()
        .unwrap();
    drop(mock); // the spec proxy checks the stream request (expansions, media.fields)
    (out, env.records("out.jsonl"))
}

#[test]
fn x_media_is_stored_from_photo_urls_and_the_best_mp4_variant() {
    let env = Env::new().with("TWITTER_BEARER_TOKEN", "x-media-token-0123456789");
    let (out, records) = x_capture(&env, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(records.len(), 28);
    let items = items(&records);
    // Posts 1, 5, … 25: seven posts, one with two photos.
    assert_eq!(items.len(), 8, "{items:?}");
    let mut uris = BTreeMap::new();
    for (id, m) in &items {
        let f = x_file(m["key"].as_str().unwrap());
        match f.name {
            "huge.mp4" => assert_eq!(m["skipped"], "too_large", "{id}: {m}"),
            "gone.jpg" => assert!(m["error"].as_str().unwrap().contains("HTTP 404"), "{m}"),
            _ => {
                // The video is the 832 kb/s mp4 (the catalog's), not the
                // low variant (a 404) or the playlist.
                let stored = &m["stored"];
                assert_eq!(stored["sha256"], sha256(&media::bytes(f)), "{id}: {m}");
                assert_eq!(stored["content_type"], f.content_type);
                let path = stored["uri"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("file://")
                    .unwrap();
                assert_eq!(sha256(&std::fs::read(path).unwrap()), stored["sha256"]);
                assert!(path.contains("/media/twitter/"), "{path}");
                uris.insert(path.to_owned(), f.name);
            }
        }
    }
    let kinds: std::collections::BTreeSet<&str> = items
        .iter()
        .map(|(_, m)| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["animation", "photo", "video"].into_iter().collect());
    // The shared photo (two posts) is one file; five distinct files in all.
    assert_eq!(uris.len(), 5, "{uris:?}");
    assert_eq!(files_under(&env.path("media")).len(), 5);
    let s = summary(&out);
    let m = &s["source"]["media"];
    assert_eq!(
        (&m["stored"], &m["reused"], &m["skipped"], &m["failed"]),
        (&5.into(), &1.into(), &1.into(), &1.into()),
        "{s}"
    );
}

#[test]
fn media_video_preview_stores_the_preview_image_of_videos_and_gifs() {
    let env = Env::new().with("TWITTER_BEARER_TOKEN", "x-media-token-0123456789");
    let (out, records) = x_capture(&env, &["--media-video", "preview"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let items = items(&records);
    let preview = |name: &str| sha256(&media::bytes(media::find(name).unwrap()));
    for (_, m) in &items {
        match m["type"].as_str().unwrap() {
            // The mock's previews: photo-2.jpg for videos (the huge one's
            // too: a preview is small), sticker.webp for the GIF.
            "video" => assert_eq!(m["stored"]["sha256"], preview("photo-2.jpg"), "{m}"),
            "animation" => assert_eq!(m["stored"]["sha256"], preview("sticker.webp"), "{m}"),
            _ => {}
        }
    }
    assert!(items.iter().any(|(_, m)| m["type"] == "video"));
}

#[test]
fn without_media_records_and_requests_are_unchanged() {
    let env = Env::new().with("TWITTER_BEARER_TOKEN", "x-media-token-0123456789");
    let mock = MockProcess::start(
        "twitter",
        env.dir.path(),
        "rate = 200.0\ntotal_tweets = 8\n[[rule]]\nvalue = \"cats\"\n",
    );
    let out = env.run(&[
        "twitter",
        "--twitter-api-base",
        &mock.url,
        "--rules-mode",
        "keep",
        "--sink",
        "file",
        "--file-path",
        "out.jsonl",
        "--max-records",
        "8",
        "--duration",
        "60s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let records = env.records("out.jsonl");
    assert_eq!(records.len(), 8);
    assert!(records.iter().all(|r| r.get("media").is_none()));
    // The mock sent no media: the request did not ask for them.
    assert!(
        records
            .iter()
            .all(|r| r["raw"]["includes"].get("media").is_none())
    );
    assert!(!env.path("media").exists());
}

#[test]
fn bad_media_config_is_refused_with_the_file_line_and_field() {
    for (config, field) in [
        (
            "[media]\nenabled = true\nmax_bytes = 0\n",
            "media.max_bytes",
        ),
        ("[media]\nenabled = true\nstore = \"s3\"\n", "media.bucket"),
        (
            "[media]\nenabled = true\npath = \"x/../{sha256}\"\n",
            "media.path",
        ),
        (
            "[media]\nenabled = true\ntypes = [\"photo\", \"executable\"]\n",
            "media.types",
        ),
        (
            "[media]\nenabled = true\nconcurrency = 65\n",
            "media.concurrency",
        ),
        ("[media]\nbogus = 1\n", "bogus"),
    ] {
        let env = Env::new().config(config);
        let out = env.run(&["telegram", "--mock", "--until-idle", "--sink", "file"]);
        assert_eq!(out.status.code(), Some(78), "{config}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(field) && err.contains("ingest.toml"),
            "{config}: {err}"
        );
    }
    let env = Env::new();
    let out = env.run(&["twitter", "--mock", "--media-video", "worst"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
