//! Routing by record fields (README, "Routing"): name templates in every
//! sink, `split_tags`, sanitized values, Kafka `format = "text"` and the
//! Telegram seed's S3 layout, against the real local servers (`scripts/test`)
//! and read back with independent clients (kcat, boto3).

use std::collections::BTreeSet;

mod common;
use common::*;

use serde_json::Value;

/// X stream lines: tweet `i` matches rules tagged `tags(i)`; author `i % 2`.
fn tagged_tweets(n: u64, tags: impl Fn(u64) -> Vec<String>) -> String {
    let mut out = String::new();
    for i in 0..n {
        let rules: Vec<Value> = tags(i)
            .into_iter()
            .enumerate()
            .map(|(k, t)| serde_json::json!({"id": k.to_string(), "tag": t}))
            .collect();
        let line = serde_json::json!({
            "data": {"id": i.to_string(), "text": format!("text {i} ☕"), "author_id": (i % 2).to_string()},
            "matching_rules": rules,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Tweet `i` is tagged `news` (even) or `sport` (odd); every third also `both`-ed
/// with the other tag second.
#[cfg_attr(not(any(feature = "kafka", feature = "mongodb")), allow(dead_code))]
fn news_sport(i: u64) -> Vec<String> {
    let first = if i.is_multiple_of(2) { "news" } else { "sport" };
    let mut tags = vec![first.to_owned()];
    if i.is_multiple_of(3) {
        tags.push(if first == "news" { "sport" } else { "news" }.to_owned());
    }
    tags
}

#[cfg(feature = "kafka")]
mod kafka {
    use super::*;
    use std::collections::BTreeMap;

    fn ids_of(messages: &[Message]) -> BTreeSet<String> {
        messages.iter().map(|m| m.key.clone()).collect()
    }

    /// Tags naming Kafka's own topics (`__consumer_offsets`-like, `_schemas`)
    /// never reach them: the rendered topic gets `_x` in front.
    #[test]
    fn kafka_topics_from_tags_never_hit_kafkas_own() {
        let b = service("INGEST_TEST_KAFKA_BROKERS");
        let p = unique("rsv", '-');
        let internal = format!("__{p}");
        let env = Env::new().config(&format!(
            "[sinks.k]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopic = \"{{tag}}\"\nkey = \"{p}/{{id}}\"\n"
        ));
        let tag = |i: u64| {
            vec![if i.is_multiple_of(2) {
                internal.clone()
            } else {
                "_schemas".to_owned()
            }]
        };
        std::fs::write(env.path("in.jsonl"), tagged_tweets(20, tag)).unwrap();
        let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--summary"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(summary(&out)["sinks"]["k"]["delivered"], 20);
        let ours = |topic: &str, want: usize| -> usize {
            kcat_read(&b, topic, want)
                .iter()
                .filter(|m| m.key.starts_with(&format!("{p}/")))
                .count()
        };
        assert_eq!(ours(&format!("_x{internal}"), 10), 10);
        assert_eq!(ours("_x_schemas", 10), 10);
    }

    #[test]
    fn kafka_records_split_by_tag_into_topics_first_tag_or_every_tag() {
        let b = service("INGEST_TEST_KAFKA_BROKERS");
        let p = unique("route", '-');
        let config = format!(
            r#"
[sinks.first]
type = "kafka"
brokers = "{b}"
topic = "{p}-first-{{tag}}"

[sinks.every]
type = "kafka"
brokers = "{b}"
topic = "{p}-every-{{tag}}"
key = "{{author.id}}/{{id}}"
split_tags = true
"#
        );
        let env = Env::new().config(&config);
        std::fs::write(env.path("in.jsonl"), tagged_tweets(30, news_sport)).unwrap();
        let out = env.run(&[
            "replay",
            "in.jsonl",
            "--sink",
            "first",
            "--sink",
            "every",
            "--summary",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let s = summary(&out);
        assert_eq!(s["sinks"]["first"]["delivered"], 30, "{s}");
        assert_eq!(
            s["sinks"]["every"]["delivered"], 30,
            "records, not copies: {s}"
        );

        let want = |f: &dyn Fn(&[String]) -> bool| -> BTreeSet<String> {
            (0..30)
                .filter(|&i| f(&news_sport(i)))
                .map(|i| format!("twitter:{i}"))
                .collect()
        };
        // Without split_tags: the first tag decides.
        let news = kcat_read(&b, &format!("{p}-first-news"), 15);
        let sport = kcat_read(&b, &format!("{p}-first-sport"), 15);
        assert_eq!(ids_of(&news), want(&|t| t[0] == "news"));
        assert_eq!(ids_of(&sport), want(&|t| t[0] == "sport"));
        assert_eq!(news.len() + sport.len(), 30, "each record once");
        // With split_tags: once per tag; the key template renders per copy.
        let news = kcat_read(&b, &format!("{p}-every-news"), 20);
        let sport = kcat_read(&b, &format!("{p}-every-sport"), 20);
        let keyed = |ms: &[Message]| -> BTreeSet<String> {
            ms.iter()
                .map(|m| {
                    let r: Value = serde_json::from_str(&m.payload).unwrap();
                    let id = r["id"].as_str().unwrap().to_owned();
                    assert_eq!(
                        m.key,
                        format!("{}/{id}", r["author"]["id"].as_str().unwrap())
                    );
                    id
                })
                .collect()
        };
        assert_eq!(keyed(&news), want(&|t| t.iter().any(|t| t == "news")));
        assert_eq!(keyed(&sport), want(&|t| t.iter().any(|t| t == "sport")));
        assert_eq!(
            news.len() + sport.len(),
            40,
            "30 records, 10 of them with two tags"
        );
    }

    #[test]
    fn kafka_text_value_is_the_post_text_alone() {
        let b = service("INGEST_TEST_KAFKA_BROKERS");
        let t = unique("twitter-topic", '-');
        let config = format!(
            "[sinks.k]\ntype = \"kafka\"\nbrokers = \"{b}\"\ntopic = \"{t}\"\nvalue = \"text\"\n"
        );
        let env = Env::new().config(&config);
        std::fs::write(env.path("in.jsonl"), tagged_tweets(5, |_| vec![])).unwrap();
        let out = env.run(&["replay", "in.jsonl", "--sink", "k"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got: BTreeMap<String, String> = kcat_read(&b, &t, 5)
            .into_iter()
            .map(|m| (m.key, m.payload))
            .collect();
        let want: BTreeMap<String, String> = (0..5)
            .map(|i| (format!("twitter:{i}"), format!("text {i} ☕")))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn kafka_bad_templates_are_refused_with_the_line() {
        let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\n\ntopic = \"t-{tags}\"\n");
        let out = env.run(&["replay", "-", "--sink", "k"]);
        assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("line 4") && e.contains("{tags}") && e.contains("{tag}"),
            "{e}"
        );
        let env = Env::new().config("[sinks.k]\ntype = \"kafka\"\nsplit_tags = true\n");
        let out = env.run(&["replay", "-", "--sink", "k"]);
        assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
        assert!(stderr(&out).contains("split_tags"), "{}", stderr(&out));
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn file_paths_by_tag_cannot_leave_the_output_directory() {
    let hostile = ["../../escape", "/etc/passwd", "..", "a\\b", "ok"];
    let env = Env::new().config(
        "[sinks.f]\ntype = \"file\"\npath = \"out/{tag}/{platform}-%Y.jsonl\"\nsplit_tags = true\n",
    );
    let tags = |i: u64| -> Vec<String> {
        match i {
            9 => vec![],
            8 => vec!["ok".into(), "../x".into()],
            i => vec![hostile[i as usize % hostile.len()].to_owned()],
        }
    };
    std::fs::write(env.path("in.jsonl"), tagged_tweets(10, tags)).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "f", "--summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["sinks"]["f"]["delivered"], 10);
    let year = chrono::Utc::now().format("%Y").to_string();
    let files = files_under(&env.path("."));
    let written: Vec<&String> = files
        .iter()
        .filter(|f| f.ends_with(".jsonl") && *f != "in.jsonl")
        .collect();
    let want: Vec<String> = [
        "___x",
        "___.__escape",
        "__",
        "_etc_passwd",
        "_unknown",
        "a_b",
        "ok",
    ]
    .iter()
    .map(|d| format!("out/{d}/twitter-{year}.jsonl"))
    .collect::<BTreeSet<_>>()
    .into_iter()
    .collect();
    assert_eq!(
        written.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        want.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "{files:?}"
    );
    let lines: usize = written.iter().map(|f| read_jsonl(&env.path(f)).len()).sum();
    assert_eq!(lines, 11, "10 records, one of them in two tags' files");
}

#[cfg(feature = "s3")]
mod s3 {
    use super::*;

    /// Creates the bucket, puts `key`=`body` pairs from argv[3..], prints every object.
    const S3: &str = r#"
import boto3, sys, json
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
b = sys.argv[2]
if sys.argv[3] == "create":
    s3.create_bucket(Bucket=b)
    args = sys.argv[4:]
    for k, v in zip(args[::2], args[1::2]):
        s3.put_object(Bucket=b, Key=k, Body=v.encode())
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
    for o in page.get("Contents", []):
        out[o["Key"]] = s3.get_object(Bucket=b, Key=o["Key"])["Body"].read().decode()
print(json.dumps(out))
"#;

    fn aws_env(config: &str) -> Env {
        Env::new()
            .with("AWS_ACCESS_KEY_ID", "test")
            .with("AWS_SECRET_ACCESS_KEY", "test")
            .with("AWS_REGION", "us-east-1")
            .with("AWS_EC2_METADATA_DISABLED", "true")
            .config(config)
    }

    fn updates(n: i64) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"update_id\":{},\"message\":{{\"message_id\":{i},\"date\":1764547200,\"chat\":{{\"id\":-100{},\"type\":\"supergroup\",\"title\":\"g\"}},\"text\":\"m{i}\"}}}}\n",
                    1000 + i,
                    i % 2
                )
            })
            .collect()
    }

    fn sink(endpoint: &str, bucket: &str, key: &str) -> String {
        format!(
            "[sinks.seed]\ntype = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\nformat = \"raw\"\nkey_template = \"{key}\"\n"
        )
    }

    #[test]
    fn s3_telegram_seed_layout_one_object_per_message_never_overwritten() {
        let endpoint = service("INGEST_TEST_S3_ENDPOINT");
        let bucket = unique("seed", '-');
        py(S3, &[&endpoint, &bucket, "create"]);
        let env = aws_env(&sink(
            &endpoint,
            &bucket,
            "telegram/context_date={date}/{timestamp_us}.json",
        ));
        let input = updates(25);
        std::fs::write(env.path("in.jsonl"), &input).unwrap();
        for run in 1..=2 {
            let out = env.run(&[
                "replay",
                "in.jsonl",
                "--platform",
                "telegram",
                "--sink",
                "seed",
                "--summary",
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(summary(&out)["sinks"]["seed"]["delivered"], 25);
            let objects = py(S3, &[&endpoint, &bucket, "list"]);
            let objects = objects.as_object().unwrap();
            assert_eq!(objects.len(), 25 * run, "a second run adds, never replaces");
            for (key, body) in objects {
                let rest = key.strip_prefix("telegram/context_date=").unwrap();
                let (date, file) = rest.split_once('/').unwrap();
                let stamp = file.strip_suffix(".json").unwrap();
                assert!(date.len() == 10 && stamp.len() == 20, "{key}");
                assert!(stamp.bytes().all(|b| b.is_ascii_digit()), "{key}");
                assert_eq!(stamp[..8], date.replace('-', ""), "{key}");
                let body = body.as_str().unwrap();
                assert!(input.lines().any(|l| format!("{l}\n") == body), "{body}");
            }
        }
    }

    #[test]
    fn s3_conditional_put_keeps_an_object_that_is_there_already() {
        let endpoint = service("INGEST_TEST_S3_ENDPOINT");
        let bucket = unique("seed", '-');
        // The first message's object exists (an earlier run, another writer).
        let taken = "telegram/-1000/telegram:-1000:0.json";
        py(S3, &[&endpoint, &bucket, "create", taken, "earlier"]);
        let env = aws_env(&sink(&endpoint, &bucket, "telegram/{chat.id}/{id}.json"));
        std::fs::write(env.path("in.jsonl"), updates(4)).unwrap();
        let out = env.run(&[
            "replay",
            "in.jsonl",
            "--platform",
            "telegram",
            "--sink",
            "seed",
            "--summary",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(summary(&out)["sinks"]["seed"]["delivered"], 4);
        let objects = py(S3, &[&endpoint, &bucket, "list"]);
        let keys: BTreeSet<&str> = objects
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                taken,
                "telegram/-1001/telegram:-1001:1.json",
                "telegram/-1000/telegram:-1000:2.json",
                "telegram/-1001/telegram:-1001:3.json",
            ])
        );
        assert_eq!(
            objects[taken], "earlier",
            "If-None-Match: * refused the replacement"
        );
    }
}

#[cfg(feature = "kinesis")]
#[test]
fn kinesis_constant_partition_key_like_the_seed() {
    const KINESIS: &str = r#"
import boto3, sys, json, time
k = boto3.client("kinesis", endpoint_url=sys.argv[1])
name = sys.argv[2]
if sys.argv[3] == "create":
    k.create_stream(StreamName=name, ShardCount=1)
    for _ in range(200):
        if k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.05)
    print("{}")
else:
    out = []
    shard = k.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = k.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    r = k.get_records(ShardIterator=it, Limit=10000)
    out = [{"key": x["PartitionKey"], "data": x["Data"].decode()} for x in r["Records"]]
    k.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
    print(json.dumps(out))
"#;
    let endpoint = service("INGEST_TEST_KINESIS_ENDPOINT");
    let name = unique("seed", '-');
    py(KINESIS, &[&endpoint, &name, "create"]);
    let env = Env::new()
        .with("AWS_ACCESS_KEY_ID", "test")
        .with("AWS_SECRET_ACCESS_KEY", "test")
        .with("AWS_REGION", "us-east-1")
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .config(&format!(
            "[sinks.k]\ntype = \"kinesis\"\nstream_name = \"{name}\"\nendpoint = \"{endpoint}\"\npartition_key = \"partitionkey\"\nformat = \"text\"\n"
        ));
    std::fs::write(env.path("in.jsonl"), tagged_tweets(10, |_| vec![])).unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "k", "--summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["sinks"]["k"]["delivered"], 10);
    let got = py(KINESIS, &[&endpoint, &name, "read"]);
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), 10);
    let data: BTreeSet<&str> = got.iter().map(|r| r["data"].as_str().unwrap()).collect();
    assert!(got.iter().all(|r| r["key"] == "partitionkey"), "{got:?}");
    assert_eq!(
        data,
        (0..10)
            .map(|i| format!("text {i} ☕"))
            .collect::<BTreeSet<_>>()
            .iter()
            .map(String::as_str)
            .collect()
    );
}

#[cfg(feature = "mongodb")]
#[test]
fn mongodb_collection_per_tag_with_split_tags() {
    const MONGO: &str = r#"
import pymongo, sys, json
db = pymongo.MongoClient(sys.argv[1])[sys.argv[2]]
print(json.dumps({c: sorted(d["_id"] for d in db[c].find()) for c in db.list_collection_names()}))
"#;
    let uri = service("INGEST_TEST_MONGODB_URI");
    let database = unique("route", '_');
    let env = Env::new().config(&format!(
        "[sinks.m]\ntype = \"mongodb\"\nuri = \"{uri}\"\ndatabase = \"{database}\"\ncollection = \"tweets_{{tag}}\"\nsplit_tags = true\n"
    ));
    std::fs::write(
        env.path("in.jsonl"),
        tagged_tweets(12, |i| {
            if i == 11 {
                vec!["$bad".into()]
            } else {
                news_sport(i)
            }
        }),
    )
    .unwrap();
    let out = env.run(&["replay", "in.jsonl", "--sink", "m", "--summary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary(&out)["sinks"]["m"]["delivered"], 12);
    let got = py(MONGO, &[&uri, &database]);
    let ids = |f: &dyn Fn(u64) -> bool| -> Value {
        let mut v: Vec<String> = (0..11)
            .filter(|&i| f(i))
            .map(|i| format!("twitter:{i}"))
            .collect();
        v.sort();
        serde_json::json!(v)
    };
    assert_eq!(
        got["tweets_news"],
        ids(&|i| news_sport(i).contains(&"news".to_owned())),
        "{got}"
    );
    assert_eq!(
        got["tweets_sport"],
        ids(&|i| news_sport(i).contains(&"sport".to_owned())),
        "{got}"
    );
    assert_eq!(
        got["tweets__bad"],
        serde_json::json!(["twitter:11"]),
        "{got}"
    );
}
