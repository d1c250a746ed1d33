//! A binary built without a sink type's cargo feature still reads a config
//! that names the type, and refuses to use it with a config error (exit 78)
//! that says how to get it back; a config that merely holds such a table is
//! fine as long as the run does not use it. Runs in the
//! `cargo test --no-default-features` pass of `scripts/test`.
#![cfg(not(all(feature = "s3", feature = "kinesis", feature = "mongodb")))]

mod common;
use common::*;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.jsonl");

/// `check` and a replay into the sink `table` of type `kind` both fail with
/// exit 78 and the compiled-out message, pointing at the `type` line.
fn refused(kind: &str, table: &str) {
    let env = Env::new().config(&format!("[sinks.lake]\ntype = \"{kind}\"\n{table}"));
    for args in [&["check"][..], &["replay", SAMPLE, "--sink", "lake"][..]] {
        let out = env.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(
            err.contains("ingest.toml line 2")
                && err.contains(&format!(
                    "sink type `{kind}` is not in this build of ingest"
                ))
                && err.contains(&format!("--features {kind}")),
            "{args:?}: {err}"
        );
    }
    // Unused, the table does no harm.
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--sink",
        "file",
        "--file-path",
        "out.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!env.records("out.jsonl").is_empty());
}

#[cfg(not(feature = "s3"))]
#[test]
fn an_s3_sink_is_refused_when_compiled_out() {
    refused("s3", "bucket = \"b\"\n");
}

#[cfg(not(feature = "kinesis"))]
#[test]
fn a_kinesis_sink_is_refused_when_compiled_out() {
    refused("kinesis", "stream_name = \"s\"\n");
}

#[cfg(not(feature = "mongodb"))]
#[test]
fn a_mongodb_sink_is_refused_when_compiled_out() {
    refused("mongodb", "database = \"d\"\ncollection = \"c\"\n");
}

#[cfg(not(feature = "parquet"))]
#[test]
fn a_parquet_format_is_refused_when_compiled_out() {
    let env = Env::new().config("[sinks.lake]\ntype = \"file\"\nformat = \"parquet\"\n");
    for args in [&["check"][..], &["replay", SAMPLE, "--sink", "lake"][..]] {
        let out = env.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(
            err.contains("format = \"parquet\"") && err.contains("--features parquet"),
            "{args:?}: {err}"
        );
    }
}

/// Without the `mock` feature, every way into the built-in mocks (`--mock` on
/// each capture command, `ingest mock`) exits 78 before capturing anything,
/// saying how to get them back; the rest of the binary works (the replay of
/// the sample into a file in `refused` above, this test's `check`).
#[cfg(not(feature = "mock"))]
#[test]
fn the_mock_is_refused_when_compiled_out() {
    let env = Env::new();
    let runs: [&[&str]; 5] = [
        &[
            "twitter",
            "--mock",
            "--sink",
            "file",
            "--file-path",
            "out.jsonl",
            "--duration",
            "2s",
        ],
        &[
            "twitter-search",
            "--mock",
            "--query",
            "cats",
            "--sink",
            "file",
            "--file-path",
            "out.jsonl",
        ],
        &[
            "telegram",
            "--mock",
            "--sink",
            "file",
            "--file-path",
            "out.jsonl",
            "--duration",
            "2s",
        ],
        &["mock", "twitter", "--listen", "127.0.0.1:0"],
        &["mock", "telegram", "--listen", "127.0.0.1:0"],
    ];
    for args in runs {
        let out = env.run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{args:?}: {err}");
        assert!(
            err.contains("mock APIs are not in this build") && err.contains("--features mock"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", out.stdout);
        assert!(env.records("out.jsonl").is_empty(), "{args:?} captured");
    }
    let out = env.run(&["check", "--sink", "file", "--file-path", "out.jsonl"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
