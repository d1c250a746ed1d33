//! `format = "parquet"` in the file and S3 sinks, read back by pyarrow (an
//! independent reader, installed by `scripts/services`): the rows equal the
//! JSON records of the same input, nested fields and UTC timestamps
//! included; one row group per batch; kill -9 leaves no partial file and a
//! rerun delivers the rest. Run with `scripts/test --test parquet`.
#![cfg(feature = "parquet")]

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::*;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sample.jsonl");

/// Reads Parquet files with pyarrow: every row (timestamps as epoch
/// milliseconds) and per file its row groups, rows, codec and columns.
const READ_FILES: &str = r#"
import sys, json, datetime, pyarrow.parquet as pq
E = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def conv(o):
    if isinstance(o, datetime.datetime):
        assert o.tzinfo is not None, "a timestamp without a time zone"
        return (o - E) // datetime.timedelta(milliseconds=1)
    raise TypeError(type(o))
rows, files = [], []
for p in sys.argv[1:]:
    f = pq.ParquetFile(p)
    files.append({"path": p, "row_groups": f.num_row_groups, "rows": f.metadata.num_rows,
                  "codec": f.metadata.row_group(0).column(0).compression,
                  "columns": f.schema_arrow.names})
    rows += f.read().to_pylist()
print(json.dumps({"rows": rows, "files": files}, default=conv))
"#;

/// The same for every object of a bucket (boto3 + pyarrow), with its key and Content-Type.
const READ_BUCKET: &str = r#"
import sys, json, datetime, boto3, pyarrow as pa, pyarrow.parquet as pq
E = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
def conv(o):
    if isinstance(o, datetime.datetime):
        return (o - E) // datetime.timedelta(milliseconds=1)
    raise TypeError(type(o))
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
rows, files = [], []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        obj = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])
        f = pq.ParquetFile(pa.BufferReader(obj["Body"].read()))
        files.append({"path": o["Key"], "row_groups": f.num_row_groups, "rows": f.metadata.num_rows,
                      "codec": f.metadata.row_group(0).column(0).compression,
                      "columns": f.schema_arrow.names, "content_type": obj["ContentType"]})
        rows += f.read().to_pylist()
print(json.dumps({"rows": rows, "files": files}, default=conv))
"#;

/// Runs a reader script; its JSON (not checked as records: rows are not JSON records).
fn python(script: &str, args: &[&str]) -> Value {
    let out = Command::new(service("INGEST_TEST_PYTHON"))
        .arg("-c")
        .arg(script)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every `*.parquet` file under `dir`, and every other file name seen.
fn files_under(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let (mut parquet, mut other) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (parquet, other);
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            let (a, b) = files_under(&p);
            parquet.extend(a);
            other.extend(b);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            parquet.push(p);
        } else {
            other.push(p.display().to_string());
        }
    }
    parquet.sort();
    (parquet, other)
}

fn read_files(paths: &[PathBuf]) -> Value {
    let args: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    python(READ_FILES, &args)
}

fn millis(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Value::from(t.timestamp_millis()))
            .unwrap_or(Value::Null),
        None => Value::Null,
    }
}

/// A JSON object's field, `null` when absent (Parquet has a null there).
fn field(v: &Value, name: &str) -> Value {
    v.get(name).cloned().unwrap_or(Value::Null)
}

/// Asserts that the Parquet rows hold exactly the JSON records, field by field.
fn assert_rows_equal_records(rows: &[Value], records: &[Value], with_raw: bool) {
    let by_id = |vs: &[Value]| -> BTreeMap<String, Value> {
        vs.iter()
            .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
            .collect()
    };
    let (rows, records) = (by_id(rows), by_id(records));
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        records.keys().collect::<Vec<_>>(),
        "the same ids"
    );
    for (id, rec) in &records {
        let row = &rows[id];
        for f in ["platform", "kind", "text", "lang", "source"] {
            assert_eq!(field(row, f), field(rec, f), "{id}: {f}");
        }
        for f in ["created_at", "received_at"] {
            assert_eq!(row[f], millis(&rec[f]), "{id}: {f} as a UTC timestamp");
        }
        for (s, subs) in [
            ("author", &["id", "name", "username"][..]),
            ("chat", &["id", "type", "title"][..]),
        ] {
            if rec.get(s).is_none() {
                assert!(row[s].is_null(), "{id}: {s} is null");
                continue;
            }
            for sub in subs {
                assert_eq!(field(&row[s], sub), field(&rec[s], sub), "{id}: {s}.{sub}");
            }
        }
        let tags = rec.get("tags").cloned().unwrap_or(Value::Array(vec![]));
        assert_eq!(row["tags"], tags, "{id}: tags");
        let rules: Vec<(Value, Value)> = field(rec, "matching_rules")
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| (field(r, "id"), field(r, "tag")))
                    .collect()
            })
            .unwrap_or_default();
        let row_rules: Vec<(Value, Value)> = row["matching_rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (field(r, "id"), field(r, "tag")))
            .collect();
        assert_eq!(row_rules, rules, "{id}: matching_rules");
        for sub in ["tweet_id", "conversation_id", "update_id", "message_id"] {
            assert_eq!(
                field(&row["refs"], sub),
                rec.get("refs").map_or(Value::Null, |r| field(r, sub)),
                "{id}: refs.{sub}"
            );
        }
        assert_eq!(row["run"]["id"], rec["run"]["id"], "{id}: run.id");
        assert_eq!(
            row["run"]["started_at"],
            millis(&rec["run"]["started_at"]),
            "{id}: run.started_at"
        );
        if with_raw {
            let raw: Value = serde_json::from_str(row["raw"].as_str().unwrap()).unwrap();
            assert_eq!(raw, rec["raw"], "{id}: raw");
        } else {
            assert!(row.get("raw").is_none(), "{id}: no raw column");
        }
    }
}

const TWO_SINKS: &str = r#"
[sinks.json]
type = "file"
path = "json/{platform}.jsonl"

[sinks.pq]
type = "file"
format = "parquet"
path = "pq/{platform}/%Y-%m-%d.parquet"
[sinks.pq.batch]
max_records = 7

[sinks.slim]
type = "file"
format = "parquet"
compression = "snappy"
raw = false
path = "slim/{platform}.parquet"
"#;

#[test]
fn parquet_files_read_back_by_pyarrow_equal_the_json_records() {
    let env = Env::new().config(TWO_SINKS);
    let out = env.run(&[
        "replay",
        SAMPLE,
        "--sink",
        "json",
        "--sink",
        "pq",
        "--sink",
        "slim",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut records = env.records("json/twitter.jsonl");
    records.extend(env.records("json/telegram.jsonl"));
    assert!(records.len() > 20, "{}", records.len());
    assert!(records.iter().any(|r| r.get("chat").is_some()));
    assert!(records.iter().any(|r| r.get("matching_rules").is_some()));

    let (paths, other) = files_under(&env.path("pq"));
    assert!(other.is_empty(), "no temporary file left: {other:?}");
    let got = read_files(&paths);
    for f in got["files"].as_array().unwrap() {
        assert_eq!(f["row_groups"], 1, "one row group per batch: {f}");
        assert!(f["rows"].as_u64().unwrap() <= 7, "one file per batch: {f}");
        assert_eq!(f["codec"], "ZSTD", "{f}");
    }
    assert!(paths.len() >= records.len() / 7, "{paths:?}");
    assert!(
        paths.iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(".1.parquet")),
        "later batches are new parts: {paths:?}"
    );
    assert_rows_equal_records(got["rows"].as_array().unwrap(), &records, true);

    let (paths, _) = files_under(&env.path("slim"));
    let got = read_files(&paths);
    for f in got["files"].as_array().unwrap() {
        assert_eq!(f["codec"], "SNAPPY", "{f}");
        assert!(!f["columns"].as_array().unwrap().contains(&"raw".into()));
    }
    assert_rows_equal_records(got["rows"].as_array().unwrap(), &records, false);
}

/// A 10 s capture into Parquet writes one file (it wrote one a second with the
/// JSON batch defaults): a Parquet file rolls at 5 minutes, 128 MiB or 1 M
/// records unless `[batch]` says otherwise, and the run's end closes it.
/// Every delivered record is a row; an explicit `timeout_ms` still rolls.
#[test]
fn a_ten_second_parquet_capture_writes_one_file() {
    let env = Env::new().config(
        "[sinks.pq]\ntype = \"file\"\nformat = \"parquet\"\npath = \"pq/part.parquet\"\n\n[sinks.fast]\ntype = \"file\"\nformat = \"parquet\"\npath = \"fast/part.parquet\"\n[sinks.fast.batch]\ntimeout_ms = 500\n",
    );
    let out = env.run(&[
        "twitter",
        "--mock",
        "--stream",
        "sample",
        "--sink",
        "pq",
        "--sink",
        "fast",
        "--duration",
        "10s",
        "--summary",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(&out);
    let delivered = s["sinks"]["pq"]["delivered"].as_u64().unwrap();
    assert!(delivered > 50, "{s}");
    let (paths, other) = files_under(&env.path("pq"));
    assert!(other.is_empty(), "{other:?}");
    assert_eq!(paths.len(), 1, "one file for a 10 s capture: {paths:?}");
    let got = read_files(&paths);
    assert_eq!(got["rows"].as_array().unwrap().len() as u64, delivered);
    let (fast, _) = files_under(&env.path("fast"));
    assert!(
        fast.len() > 3,
        "an explicit timeout_ms still rolls: {fast:?}"
    );
}

#[test]
fn bad_parquet_settings_are_config_errors_that_name_the_field() {
    for (table, field, why) in [
        ("format = \"parquet\"\ngzip = true", "gzip", "compression"),
        (
            "compression = \"zstd\"",
            "compression",
            "format = \"parquet\"",
        ),
        (
            "format = \"parquet\"\ncompression = \"lz4\"",
            "compression",
            "zstd",
        ),
        (
            "format = \"parquet\"\nmax_file_bytes = 1000",
            "max_file_bytes",
            "batch",
        ),
    ] {
        let env = Env::new().config(&format!(
            "[sinks.lake]\ntype = \"file\"\npath = \"x.parquet\"\n{table}\n"
        ));
        let out = env.run(&["replay", SAMPLE, "--sink", "lake"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{table}: {err}");
        assert!(err.contains(field) && err.contains(why), "{table}: {err}");
    }
    // Parquet is for files and S3 only.
    let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\nformat = \"parquet\"\n");
    let out = env.run(&["replay", SAMPLE, "--sink", "k"]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("parquet"), "{}", stderr(&out));
}

/// An X stream line with a matching rule and an author.
fn tweet(i: usize) -> String {
    format!(
        r#"{{"data":{{"id":"{i}","text":"post {i} {pad}","author_id":"42","created_at":"2026-11-30T10:00:00.000Z"}},"includes":{{"users":[{{"id":"42","name":"N","username":"n"}}]}},"matching_rules":[{{"id":"1","tag":"t"}}]}}"#,
        pad = "x".repeat(300)
    )
}

/// Kill -9 while Parquet files are being written, many times, with a source
/// that checkpoints (the Kafka source commits an offset only once the sink
/// confirmed it), then a rerun without kills: every message on the topic is
/// in the files, each file a reader opens is whole, and no temporary file is
/// left. strace slows every write (`delay_exit`) and fsync (`delay_enter`) so
/// a file's temporary stays for a while, and the kill comes while one is
/// there: inside a file's write, before it is linked to its name. A missing
/// id means a kill lost a confirmed record.
#[cfg(feature = "kafka")]
#[test]
fn kill_9_during_parquet_files_leaves_no_partial_file_and_a_rerun_delivers_the_rest() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "this test needs strace (Debian: apt-get install strace)"
    );
    let brokers = service("INGEST_TEST_KAFKA_BROKERS");
    let topic = unique("ingest-parquet-kill", '-');
    let group = unique("ingest-parquet-kill-g", '-');
    let env = Env::new().config(
        "[kafka]\nsession_timeout_ms = 2000\nidle_ms = 500\nbatch_max_messages = 500\n[sinks.pq]\ntype = \"file\"\nformat = \"parquet\"\npath = \"pq/{platform}.parquet\"\n[sinks.pq.batch]\nmax_records = 500\n",
    );
    let n = 20_000;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(env.path("in.jsonl")).unwrap());
        for i in 0..n {
            writeln!(f, "{}", tweet(i)).unwrap();
        }
    }
    let kcat = Command::new(service("INGEST_TEST_KCAT"))
        .args(["-P", "-b", &brokers, "-t", &topic, "-p", "0", "-l"])
        .arg(env.path("in.jsonl"))
        .status()
        .unwrap();
    assert!(kcat.success());
    // What a writer killed inside its write leaves: a temporary file of a dead process.
    std::fs::create_dir_all(env.path("pq")).unwrap();
    let stale = env.path("pq/.twitter.parquet.999999999.ingest-tmp");
    std::fs::write(&stale, b"PAR1 half a file").unwrap();
    let run = |strace: bool| {
        let probe = env.cmd();
        let mut cmd = if strace {
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq", "-o", "/dev/null"])
                .args(["-e", "trace=write,pwrite64,writev,fsync,fdatasync"])
                .args(["-e", "inject=write,pwrite64,writev:delay_exit=20000"])
                .args(["-e", "inject=fsync,fdatasync:delay_enter=300000", "--"])
                .arg(probe.get_program());
            cmd
        } else {
            Command::new(probe.get_program())
        };
        cmd.args([
            "kafka", "--topic", &topic, "--group", &group, "--sink", "pq",
        ])
        .args(["--until-idle", "--summary", "--duration", "120s"])
        .env("INGEST_KAFKA_SOURCE_BROKERS", &brokers)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
        for (k, v) in probe.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    };
    let temporary = || {
        std::fs::read_dir(env.path("pq")).is_ok_and(|d| {
            d.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".ingest-tmp")
                    && !name.contains(".999999999.")
                    && e.metadata().is_ok_and(|m| m.len() > 0)
            })
        })
    };
    let mut kills = 0;
    for round in 0..5usize {
        let before = files_under(&env.path("pq")).0.len();
        let mut child = run(true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // ingest is strace's child (read at the kill: strace forks probes
        // of its own as it starts).
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            // A few files more than the last run (the committed offsets move
            // on), and the next one half-written.
            let done = files_under(&env.path("pq")).0.len();
            if done >= before + 2 + round % 3 && temporary() {
                let kids = std::fs::read_to_string(&children).unwrap();
                let ingest: i32 = kids.trim().parse().expect("one child: ingest");
                // SAFETY: a signal to our grandchild, alive (strace waits for it).
                let rc = unsafe { libc::kill(ingest, libc::SIGKILL) };
                assert_eq!(rc, 0, "kill {ingest}: {}", std::io::Error::last_os_error());
                kills += 1;
                break;
            }
            assert!(Instant::now() < deadline, "no Parquet file to catch");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
        // Every file a reader can see is whole.
        let (paths, other) = files_under(&env.path("pq"));
        let got = read_files(&paths);
        for f in got["files"].as_array().unwrap() {
            assert_eq!(f["row_groups"], 1, "{f}");
        }
        assert!(
            other.iter().all(|o| o.ends_with(".ingest-tmp")),
            "only hidden temporary files besides: {other:?}"
        );
        assert!(!stale.exists(), "a dead writer's temporary file is removed");
    }
    assert!(kills >= 4, "only {kills} runs were killed inside a file");
    let out = run(false).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        summary(&out)["records_in"].as_u64().unwrap() < n as u64,
        "the last run resumed from the committed offsets"
    );
    let (paths, other) = files_under(&env.path("pq"));
    assert!(other.is_empty(), "the rerun cleaned up: {other:?}");
    let got = read_files(&paths);
    let ids: HashSet<&str> = got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let missing: Vec<usize> = (0..n)
        .filter(|i| !ids.contains(format!("twitter:{i}").as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids lost: {missing:?}",
        missing.len()
    );
}

#[cfg(feature = "s3")]
#[test]
fn s3_parquet_objects_under_hive_keys_read_back_equal_the_json_records() {
    const S3_CREATE: &str = "import sys, boto3\nboto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket=sys.argv[2])\nprint('{}')";
    let endpoint = service("INGEST_TEST_S3_ENDPOINT");
    let bucket = unique("pq", '-');
    py(S3_CREATE, &[&endpoint, &bucket]);
    let env = Env::new()
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .config(&format!(
            r#"
[sinks.json]
type = "file"
path = "json/{{platform}}.jsonl"

[sinks.lake]
type = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
force_path_style = true
format = "parquet"
key_template = "platform={{platform}}/date={{date}}/{{timestamp}}-{{uuid}}.parquet"
[sinks.lake.batch]
max_records = 10
"#
        ));
    let out = env.run(&["replay", SAMPLE, "--sink", "json", "--sink", "lake"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut records = env.records("json/twitter.jsonl");
    records.extend(env.records("json/telegram.jsonl"));
    let got = python(READ_BUCKET, &[&endpoint, &bucket]);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for f in got["files"].as_array().unwrap() {
        let key = f["path"].as_str().unwrap();
        assert!(
            (key.starts_with("platform=twitter/") || key.starts_with("platform=telegram/"))
                && key.contains(&format!("/date={today}/"))
                && key.ends_with(".parquet"),
            "{key}"
        );
        assert_eq!(f["row_groups"], 1, "{f}");
        assert!(f["rows"].as_u64().unwrap() <= 10, "{f}");
        assert_eq!(f["content_type"], "application/vnd.apache.parquet");
    }
    assert_rows_equal_records(got["rows"].as_array().unwrap(), &records, true);
}
