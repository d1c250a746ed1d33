use super::*;
use crate::record::Format;
use crate::sinks::file::torn::gzip_member_end;
use crate::sinks::file::writer::WRITE_CHUNK;
use crate::sinks::file::{FileMode, part_path};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use crate::record::Platform;
use crate::record::{NormalizeOptions, Normalized, RunInfo};
use chrono::TimeZone;
use chrono::Utc;
use std::io::Read;

fn rec(id: u32, platform: Platform) -> Arc<Record> {
    let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
    let n = match platform {
            Platform::Twitter => crate::sources::twitter::normalize_line(
                format!(r#"{{"data":{{"id":"{id}","text":"t{id}"}}}}"#).as_bytes(),
                &"now".into(),
                &opts,
            ),
            Platform::Telegram => crate::sources::telegram::normalize_update(
                format!(r#"{{"update_id":{id},"message":{{"message_id":{id},"chat":{{"id":1,"type":"private"}},"text":"m"}}}}"#).as_bytes(),
                &"now".into(),
                &opts,
            ),
        };
    match n.unwrap() {
        Normalized::Record(r) => Arc::new(*r),
        _ => panic!(),
    }
}

#[test]
fn templates_render_platform_and_time() {
    let t = PathTemplate::parse("out/{platform}/%Y/%m/%d/%H.jsonl").unwrap();
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 7, 5, 0).unwrap();
    assert_eq!(
        t.render(Platform::Telegram, now),
        PathBuf::from("out/telegram/2026/11/22/07.jsonl")
    );
    assert_eq!(t.fixed_dir(), PathBuf::from("out"));
    assert_eq!(
        PathTemplate::parse("x.jsonl").unwrap().fixed_dir(),
        PathBuf::from(".")
    );
    assert_eq!(
        PathTemplate::parse("/abs/%Y.jsonl").unwrap().fixed_dir(),
        PathBuf::from("/abs")
    );
    assert_eq!(
        PathTemplate::parse("100%%.jsonl")
            .unwrap()
            .render(Platform::Twitter, now),
        PathBuf::from("100%.jsonl")
    );
}

#[test]
fn bad_templates_say_why() {
    assert!(PathTemplate::parse("").unwrap_err().contains("empty"));
    assert!(
        PathTemplate::parse("out/")
            .unwrap_err()
            .contains("directory")
    );
    assert!(
        PathTemplate::parse("{platfrom}.jsonl")
            .unwrap_err()
            .contains("unknown placeholder")
    );
    assert!(
        PathTemplate::parse("{platform.jsonl")
            .unwrap_err()
            .contains("unclosed")
    );
    assert!(
        PathTemplate::parse("%Q.jsonl")
            .unwrap_err()
            .contains("strftime")
    );
}

#[test]
fn part_paths_go_before_the_extensions() {
    assert_eq!(
        part_path(Path::new("a/x.jsonl.gz"), 2),
        PathBuf::from("a/x.2.jsonl.gz")
    );
    assert_eq!(part_path(Path::new("a/x"), 1), PathBuf::from("a/x.1"));
    assert_eq!(
        part_path(Path::new(".hidden"), 1),
        PathBuf::from(".hidden.1")
    );
    assert_eq!(part_path(Path::new("x.jsonl"), 0), PathBuf::from("x.jsonl"));
}

/// Parquet files are grouped by the whole rendered path, as JSONL files
/// are: a record field in the path splits the batch into files.
#[cfg(feature = "parquet")]
#[tokio::test]
async fn parquet_files_follow_record_placeholders_in_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileSinkConfig {
        path: format!("{}/{{kind}}.parquet", dir.path().display()),
        format: crate::sinks::parquet::FileFormat::Parquet,
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::new("f", config).unwrap();
    sink.write_batch(&[rec(1, Platform::Twitter), rec(2, Platform::Telegram)])
        .await
        .unwrap();
    sink.flush().await.unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["message.parquet", "tweet.parquet"]);
}

#[tokio::test]
async fn writes_jsonl_per_platform_and_rotates_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileSinkConfig {
        path: format!("{}/{{platform}}.jsonl", dir.path().display()),
        max_file_bytes: 1000,
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::new("f", config).unwrap();
    sink.healthcheck().await.unwrap();
    for i in 0..10 {
        sink.write_batch(&[rec(i, Platform::Twitter), rec(i, Platform::Telegram)])
            .await
            .unwrap();
    }
    sink.flush().await.unwrap();
    let mut twitter_lines = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.len() <= 1000,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        files += 1;
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("twitter")
        {
            twitter_lines += text.lines().count();
        }
    }
    assert_eq!(twitter_lines, 10);
    assert!(files > 2, "size rotation made parts: {files}");
    assert!(dir.path().join("twitter.1.jsonl").exists());
}

#[tokio::test]
async fn gzip_batches_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl.gz");
    let config = FileSinkConfig {
        path: path.display().to_string(),
        gzip: true,
        format: crate::sinks::parquet::FileFormat::Raw,
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::new("f", config).unwrap();
    sink.write_batch(&[rec(1, Platform::Twitter)])
        .await
        .unwrap();
    sink.write_batch(&[rec(2, Platform::Twitter), rec(3, Platform::Twitter)])
        .await
        .unwrap();
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["1", "2", "3"]);
}

#[tokio::test]
async fn an_unwritable_directory_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let config = FileSinkConfig {
        path: format!("{}/sub/x.jsonl", blocker.display()),
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::new("f", config).unwrap();
    let err = sink.healthcheck().await.unwrap_err();
    assert!(err.to_string().contains("cannot create directory"), "{err}");
    let err = sink
        .write_batch(&[rec(1, Platform::Twitter)])
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Fatal { .. }), "{err}");
}

fn twitter_batch(range: std::ops::Range<u32>) -> Vec<Arc<Record>> {
    range.map(|i| rec(i, Platform::Twitter)).collect()
}

/// The ids in a JSONL (or gzip JSONL) file; panics on a line that is not JSON.
fn ids_in(path: &Path, gzip: bool) -> Vec<String> {
    let mut text = String::new();
    if gzip {
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
    } else {
        text = std::fs::read_to_string(path).unwrap();
    }
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    text.lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:.80}"));
            v["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn expect_ids(got: Vec<String>, range: std::ops::Range<u32>) {
    let want: Vec<String> = range.map(|i| format!("twitter:{i}")).collect();
    assert_eq!(got.len(), want.len(), "every record once");
    assert_eq!(got, want);
}

fn sink_at(path: &Path, gzip: bool) -> FileSink {
    let config = FileSinkConfig {
        path: path.display().to_string(),
        gzip,
        ..FileSinkConfig::default()
    };
    FileSink::new("f", config).unwrap()
}

fn writer(sink: &mut FileSink) -> &mut Writer {
    sink.writer.as_mut().unwrap()
}

/// A disk that fills up in the middle of a batch (after one whole 1 MiB
/// chunk of it was written), then stays full for one retry, then has room.
async fn disk_full_then_freed(gzip: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(if gzip { "x.jsonl.gz" } else { "x.jsonl" });
    let mut sink = sink_at(&path, gzip);
    sink.write_batch(&twitter_batch(0..10)).await.unwrap();
    let big = twitter_batch(10..8000);
    let budget = if gzip { 5000 } else { WRITE_CHUNK + 5000 };
    writer(&mut sink).faults.write_budget = Some(budget);
    let err = sink.write_batch(&big).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable { .. }), "{err}");
    // Still full: the retry fails at once.
    assert!(sink.write_batch(&big).await.is_err());
    expect_ids(ids_in(&path, gzip), 0..10);
    writer(&mut sink).faults.write_budget = None;
    sink.write_batch(&big).await.unwrap();
    sink.write_batch(&twitter_batch(8000..8010)).await.unwrap();
    sink.flush().await.unwrap();
    expect_ids(ids_in(&path, gzip), 0..8010);
}

#[tokio::test]
async fn a_batch_that_fails_half_way_leaves_nothing_and_its_retry_writes_it_once() {
    disk_full_then_freed(false).await;
}

#[tokio::test]
async fn a_gzip_batch_that_fails_half_way_leaves_no_partial_member() {
    disk_full_then_freed(true).await;
}

#[tokio::test]
async fn a_failed_batch_is_undone_in_every_part_and_platform_it_touched() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileSinkConfig {
        path: format!("{}/{{platform}}.jsonl", dir.path().display()),
        max_file_bytes: WRITE_CHUNK as u64 * 3 / 2,
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::new("f", config).unwrap();
    sink.write_batch(&twitter_batch(0..10)).await.unwrap();
    let before = std::fs::read(dir.path().join("twitter.jsonl")).unwrap();
    // Twitter's records fill part 0 and go on into part 1, where the disk fills up.
    let mut batch = twitter_batch(10..8000);
    batch.push(rec(1, Platform::Telegram));
    writer(&mut sink).faults.write_budget = Some(WRITE_CHUNK + 5000);
    sink.write_batch(&batch).await.unwrap_err();
    assert_eq!(
        std::fs::read(dir.path().join("twitter.jsonl")).unwrap(),
        before
    );
    assert!(!dir.path().join("twitter.1.jsonl").exists());
    // Twitter's part is written whole; Telegram's write fails: both are undone.
    let twitter_bytes: usize = batch[..7990]
        .iter()
        .map(|r| {
            let mut line = Vec::new();
            r.write_line(Format::Record, &mut line);
            line.len()
        })
        .sum();
    writer(&mut sink).faults.write_budget = Some(twitter_bytes + 10);
    sink.write_batch(&batch).await.unwrap_err();
    assert_eq!(
        std::fs::read(dir.path().join("twitter.jsonl")).unwrap(),
        before
    );
    assert!(!dir.path().join("twitter.1.jsonl").exists());
    assert!(!dir.path().join("telegram.jsonl").exists());
    writer(&mut sink).faults.write_budget = None;
    sink.write_batch(&batch).await.unwrap();
    let mut ids = ids_in(&dir.path().join("twitter.jsonl"), false);
    ids.extend(ids_in(&dir.path().join("twitter.1.jsonl"), false));
    expect_ids(ids, 0..8000);
    assert_eq!(ids_in(&dir.path().join("telegram.jsonl"), false).len(), 1);
}

#[tokio::test]
async fn a_cut_that_fails_is_made_before_anything_more_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    let mut sink = sink_at(&path, false);
    sink.write_batch(&twitter_batch(0..10)).await.unwrap();
    let w = writer(&mut sink);
    w.faults.write_budget = Some(300);
    w.faults.failing_undos = 3;
    sink.write_batch(&twitter_batch(10..20)).await.unwrap_err();
    // The fragment is still there: the next attempt must not append after it.
    writer(&mut sink).faults.write_budget = None;
    let err = sink.write_batch(&twitter_batch(10..20)).await.unwrap_err();
    assert!(err.to_string().contains("failed write"), "{err}");
    assert!(sink.flush().await.is_err(), "a flush owes the cut too");
    sink.write_batch(&twitter_batch(10..20)).await.unwrap();
    expect_ids(ids_in(&path, false), 0..20);
}

/// More files in a batch than the pool holds: opened, written and closed
/// in turn; a failed batch still leaves nothing behind in any of them.
#[tokio::test]
async fn a_batch_touching_more_files_than_the_pool_writes_them_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let config = FileSinkConfig {
        path: format!("{}/{{id}}.jsonl", dir.path().display()),
        max_open_files: 3,
        ..FileSinkConfig::default()
    };
    let mut sink = FileSink::new("f", config).unwrap();
    sink.write_batch(&twitter_batch(0..10)).await.unwrap();
    assert!(writer(&mut sink).open_files() <= 3);
    for i in 0..10 {
        expect_ids(
            ids_in(&dir.path().join(format!("twitter:{i}.jsonl")), false),
            i..i + 1,
        );
    }
    // The disk fills up at the 15th file: the 14 written before (closed
    // since) are cut back too, the new ones removed.
    let line = {
        let mut l = Vec::new();
        rec(0, Platform::Twitter).write_line(Format::Record, &mut l);
        l.len()
    };
    writer(&mut sink).faults.write_budget = Some(line * 14 + 10);
    let err = sink.write_batch(&twitter_batch(0..20)).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable { .. }), "{err}");
    for i in 0..10 {
        expect_ids(
            ids_in(&dir.path().join(format!("twitter:{i}.jsonl")), false),
            i..i + 1,
        );
    }
    for i in 10..20 {
        assert!(
            !dir.path().join(format!("twitter:{i}.jsonl")).exists(),
            "{i}"
        );
    }
    writer(&mut sink).faults.write_budget = None;
    sink.write_batch(&twitter_batch(0..20)).await.unwrap();
    assert!(writer(&mut sink).open_files() <= 3);
    for i in 0..20 {
        let got = ids_in(&dir.path().join(format!("twitter:{i}.jsonl")), false);
        assert_eq!(got.len(), if i < 10 { 2 } else { 1 }, "{i}");
    }
    let config = FileSinkConfig {
        max_open_files: 0,
        ..FileSinkConfig::default()
    };
    let err = FileSink::new("f", config).err().unwrap();
    assert!(err.contains("max_open_files"), "{err}");
}

fn torn_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".torn-"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_torn_jsonl_tail_is_cut_off_and_saved_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl");
    let mut sink = sink_at(&path, false);
    sink.write_batch(&twitter_batch(0..3)).await.unwrap();
    drop(sink);
    // A crash in the middle of the next batch's write.
    let torn = b"{\"id\":\"twitter:3\",\"platform\":\"twi";
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();
    let mut sink = sink_at(&path, false);
    sink.write_batch(&twitter_batch(3..5)).await.unwrap();
    expect_ids(ids_in(&path, false), 0..5);
    let saved = torn_files(dir.path());
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(std::fs::read(&saved[0]).unwrap(), torn);
    assert_eq!(mode_of(&saved[0]), 0o600);
    // Once per file and run: a whole file is left alone.
    drop(sink);
    let mut sink = sink_at(&path, false);
    sink.write_batch(&twitter_batch(5..6)).await.unwrap();
    expect_ids(ids_in(&path, false), 0..6);
    assert_eq!(torn_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn a_torn_gzip_member_is_cut_off_and_saved_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.jsonl.gz");
    let mut sink = sink_at(&path, true);
    sink.write_batch(&twitter_batch(0..3)).await.unwrap();
    sink.write_batch(&twitter_batch(3..6)).await.unwrap();
    drop(sink);
    // Cut the second member at every few bytes, and a tail of a bare magic.
    let whole = std::fs::read(&path).unwrap();
    let first_len = {
        let f = File::open(&path).unwrap();
        gzip_member_end(&f, 0).unwrap().unwrap() as usize
    };
    let mut cuts: Vec<usize> = (first_len + 1..whole.len()).step_by(7).collect();
    cuts.push(whole.len() - 1);
    for cut in cuts {
        let case = dir.path().join(format!("c{cut}"));
        std::fs::create_dir(&case).unwrap();
        let p = case.join("x.jsonl.gz");
        std::fs::write(&p, &whole[..cut]).unwrap();
        let mut sink = sink_at(&p, true);
        sink.write_batch(&twitter_batch(6..8)).await.unwrap();
        let got = ids_in(&p, true);
        assert_eq!(got.len(), 5, "cut at {cut}: {got:?}");
        assert_eq!(got[..3], ["twitter:0", "twitter:1", "twitter:2"]);
        let saved = torn_files(&case);
        assert_eq!(saved.len(), 1, "cut at {cut}");
        assert_eq!(std::fs::read(&saved[0]).unwrap(), &whole[first_len..cut]);
    }
    // Trailing junk after whole members, and a first member torn.
    let p = dir.path().join("junk.jsonl.gz");
    let mut bytes = whole.clone();
    bytes.extend_from_slice(&[0x1f, 0x8b]);
    std::fs::write(&p, &bytes).unwrap();
    let mut sink = sink_at(&p, true);
    sink.write_batch(&twitter_batch(6..7)).await.unwrap();
    expect_ids(ids_in(&p, true), 0..7);
    let p = dir.path().join("first.jsonl.gz");
    std::fs::write(&p, &whole[..first_len / 2]).unwrap();
    let mut sink = sink_at(&p, true);
    sink.write_batch(&twitter_batch(0..1)).await.unwrap();
    expect_ids(ids_in(&p, true), 0..1);
}

#[tokio::test]
async fn whole_files_are_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let path = dir.path().join(format!("x{gzip}"));
        let mut sink = sink_at(&path, gzip);
        sink.write_batch(&twitter_batch(0..3)).await.unwrap();
        drop(sink);
        let mut sink = sink_at(&path, gzip);
        sink.write_batch(&twitter_batch(3..4)).await.unwrap();
        expect_ids(ids_in(&path, gzip), 0..4);
    }
    // Not a gzip file although `gzip = true`: left as it is.
    let path = dir.path().join("plain.jsonl");
    std::fs::write(&path, b"not gzip").unwrap();
    let mut sink = sink_at(&path, true);
    sink.write_batch(&twitter_batch(0..1)).await.unwrap();
    assert!(std::fs::read(&path).unwrap().starts_with(b"not gzip"));
    assert!(torn_files(dir.path()).is_empty());
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line.split_whitespace().nth(1).unwrap(), 8).unwrap()
}

#[tokio::test]
async fn new_files_are_private_unless_file_mode_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.jsonl");
    sink_at(&path, false)
        .write_batch(&twitter_batch(0..1))
        .await
        .unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let config: FileSinkConfig = toml::from_str(&format!(
        "path = \"{}/shared-{{platform}}.jsonl\"\nfile_mode = \"0640\"\nmax_file_bytes = 1\n",
        dir.path().display()
    ))
    .unwrap();
    let mut sink = FileSink::new("f", config).unwrap();
    sink.write_batch(&twitter_batch(0..1)).await.unwrap();
    sink.write_batch(&twitter_batch(1..2)).await.unwrap();
    for name in ["shared-twitter.jsonl", "shared-twitter.1.jsonl"] {
        assert_eq!(mode_of(&dir.path().join(name)), 0o640 & !umask(), "{name}");
    }
}

#[test]
fn file_modes_parse_as_octal_and_bad_ones_say_why() {
    let parse = |v: &str| toml::from_str::<FileSinkConfig>(&format!("file_mode = {v}"));
    assert_eq!(parse("\"0640\"").unwrap().file_mode, FileMode(0o640));
    assert_eq!(parse("\"600\"").unwrap().file_mode, FileMode(0o600));
    assert_eq!(parse("\"0o644\"").unwrap().file_mode, FileMode(0o644));
    assert_eq!(parse("0o660").unwrap().file_mode, FileMode(0o660));
    assert_eq!(
        toml::from_str::<FileSinkConfig>("").unwrap().file_mode,
        FileMode(0o600)
    );
    for (bad, why) in [
        ("\"rw-r-----\"", "not an octal file mode"),
        ("\"0680\"", "not an octal file mode"),
        ("\"\"", "not an octal file mode"),
        ("\"01777\"", "at most 0777"),
        ("640", "write \"0640\""),
        ("-1", "at most 0777"),
        ("\"0440\"", "owner read and write"),
        ("0o200", "owner read and write"),
        ("true", "octal file mode"),
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}
