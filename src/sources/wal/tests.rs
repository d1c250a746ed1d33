use super::*;

fn config(dir: &tempfile::TempDir, segment_bytes: u64) -> WalConfig {
    WalConfig {
        dir: dir.path().join("x.wal"),
        segment_bytes,
    }
}

fn lines(range: std::ops::Range<u32>) -> Vec<bytes::Bytes> {
    range.map(|i| format!("line {i}").into()).collect()
}

fn drain(replay: &mut Replay) -> Vec<(u64, String)> {
    let mut got = Vec::new();
    loop {
        let batch = replay.next_batch(3).unwrap();
        if batch.is_empty() {
            return got;
        }
        for (seq, item) in batch {
            let Replayed::Line((at, line)) = item else {
                panic!("line {seq} is bad: {item:?}");
            };
            assert_eq!(&*at, "T");
            got.push((seq, String::from_utf8(line.to_vec()).unwrap()));
        }
    }
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

#[test]
fn appended_lines_are_replayed_in_order_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    assert_eq!(replay.remaining(), 0);
    assert_eq!(wal.append("T", &lines(0..4)).unwrap(), 0);
    assert_eq!(wal.append("T", &lines(4..6)).unwrap(), 4);
    // No sync, no close: as after kill -9 (the kernel still has the writes).
    drop(wal);
    let (wal, mut replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    assert_eq!(replay.remaining(), 6);
    let got = drain(&mut replay);
    let want: Vec<(u64, String)> = (0..6).map(|i| (i, format!("line {i}"))).collect();
    assert_eq!(got, want);
    assert_eq!(wal.next_seq(), 6, "new lines follow the recovered ones");
    wal.close();
}

#[test]
// What a sync makes durable is seen from outside, with strace
// (`tests/disk_buffer.rs`, `the_log_is_fsynced_on_its_interval_while_the_stream_runs`):
// a reopen here reads through the page cache and would pass without any fsync.
fn sync_saves_the_confirmed_mark_and_a_reopen_replays_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    wal.append("T", &lines(0..10)).unwrap();
    wal.confirm(4);
    wal.sync().unwrap();
    assert_eq!(wal.lock().unsynced_lines, 0);
    let saved: ConfirmedMark = Checkpoint::new(dir.path().join("x.wal/confirmed.json"))
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(saved.next, 4);
    drop(wal);
    let (_, mut replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    let got: Vec<u64> = drain(&mut replay).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, (4..10).collect::<Vec<_>>());
}

#[test]
fn the_sync_thread_syncs_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    wal.append("T", &lines(0..3)).unwrap();
    wal.confirm(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wal.lock().saved_confirmed != 2 || wal.lock().unsynced_lines != 0 {
        assert!(std::time::Instant::now() < deadline, "never synced");
        std::thread::sleep(Duration::from_millis(10));
    }
    wal.close();
}

#[test]
fn wholly_confirmed_segments_are_deleted_and_the_rest_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("x.wal");
    // Tiny segments: one append per segment.
    let (wal, _) = Wal::open(config(&dir, 1)).unwrap();
    wal.append("T", &lines(0..3)).unwrap();
    wal.append("T", &lines(3..6)).unwrap();
    wal.append("T", &lines(6..9)).unwrap();
    assert_eq!(segments(&wal_dir).len(), 3);
    wal.confirm(7);
    wal.sync().unwrap();
    assert_eq!(
        segments(&wal_dir),
        vec![format!("{:020}.seg", 6)],
        "segments wholly below the mark are gone, the open one stays"
    );
    wal.confirm(9);
    wal.sync().unwrap();
    assert_eq!(
        segments(&wal_dir).len(),
        1,
        "the open segment is never deleted"
    );
    wal.close();
    drop(wal);
    let (wal, replay) = Wal::open(config(&dir, 1)).unwrap();
    assert_eq!(replay.remaining(), 0);
    assert!(
        segments(&wal_dir).is_empty(),
        "a confirmed segment goes on open"
    );
    assert_eq!(wal.next_seq(), 9, "numbers are never reused");
    wal.append("T", &lines(9..10)).unwrap();
    assert_eq!(segments(&wal_dir), vec![format!("{:020}.seg", 9)]);
}

#[test]
fn confirmation_never_goes_back_nor_past_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    wal.append("T", &lines(0..5)).unwrap();
    wal.confirm(3);
    wal.confirm(1);
    assert_eq!(wal.confirmed(), 3);
    wal.confirm(99);
    assert_eq!(wal.confirmed(), 5);
    wal.close();
}

#[test]
fn a_torn_last_line_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("x.wal");
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    wal.append("T", &lines(0..3)).unwrap();
    drop(wal);
    let seg = wal_dir.join(&segments(&wal_dir)[0]);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(b"T\t{\"data\":{\"id\":\"12").unwrap();
    drop(f);
    let (wal, mut replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    assert_eq!(replay.remaining(), 3);
    let got: Vec<String> = drain(&mut replay).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, vec!["line 0", "line 1", "line 2"]);
    assert!(
        std::fs::read(&seg).unwrap().ends_with(b"line 2\n"),
        "the tail is gone"
    );
    // New lines go after the recovered ones, in a new segment.
    assert_eq!(wal.append("T", &lines(3..4)).unwrap(), 3);
    wal.close();
    drop(wal);
    let (_, mut replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    let got: Vec<u64> = drain(&mut replay).into_iter().map(|(s, _)| s).collect();
    assert_eq!(got, vec![0, 1, 2, 3]);
}

#[test]
fn recovery_spans_segments_in_order_from_the_confirmed_mark() {
    let dir = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(config(&dir, 30)).unwrap();
    for i in 0..20 {
        wal.append("T", &lines(i..i + 1)).unwrap();
    }
    wal.confirm(5);
    wal.sync().unwrap();
    drop(wal);
    // A second run recovers 5..20, appends more, confirms part of the backlog, crashes.
    let (wal, mut replay) = Wal::open(config(&dir, 30)).unwrap();
    let first = replay.next_batch(4).unwrap();
    assert_eq!(
        first.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![5, 6, 7, 8]
    );
    wal.append("T", &lines(20..23)).unwrap();
    wal.confirm(9);
    wal.sync().unwrap();
    drop(wal);
    let (wal, mut replay) = Wal::open(config(&dir, 30)).unwrap();
    let got = drain(&mut replay);
    let want: Vec<(u64, String)> = (9..23).map(|i| (i, format!("line {i}"))).collect();
    assert_eq!(got, want);
    wal.close();
}

/// A line read back: its receive time and text, or why it is bad.
type Read = Result<(String, String), String>;

/// Every line read back, with its sequence number.
fn replay_all(replay: &mut Replay) -> Vec<(u64, Read)> {
    let mut got = Vec::new();
    loop {
        let batch = replay.next_batch(3).unwrap();
        if batch.is_empty() {
            return got;
        }
        for (seq, item) in batch {
            got.push((
                seq,
                match item {
                    Replayed::Line((at, line)) => {
                        Ok((at.to_string(), String::from_utf8(line.to_vec()).unwrap()))
                    }
                    Replayed::Bad { reason, .. } => Err(reason),
                },
            ));
        }
    }
}

#[test]
fn a_changed_byte_or_a_missing_receive_time_is_handed_back_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("x.wal");
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    wal.append("2026-12-06T02:00:00.000Z", &lines(0..4))
        .unwrap();
    drop(wal);
    let seg = wal_dir.join(&segments(&wal_dir)[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    let line_len = bytes.len() / 4;
    // Line 1: a flipped bit in its text; line 2: its receive time gone.
    bytes[line_len + line_len - 3] ^= 0x01;
    let text = String::from_utf8(bytes).unwrap();
    let mut rows: Vec<String> = text.lines().map(str::to_owned).collect();
    rows[2] = "line 2 without a time".into();
    std::fs::write(&seg, rows.join("\n") + "\n").unwrap();
    let (_, mut replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    let got = replay_all(&mut replay);
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[0].1,
        Ok(("2026-12-06T02:00:00.000Z".into(), "line 0".into()))
    );
    let bad = got[1].1.as_ref().unwrap_err();
    assert!(
        bad.contains("checksum")
            && bad.contains(&seg.display().to_string())
            && bad.contains(&format!("byte {line_len}")),
        "{bad}"
    );
    assert!(got[2].1.as_ref().unwrap_err().contains("no receive time"));
    assert_eq!(
        got[3].1,
        Ok(("2026-12-06T02:00:00.000Z".into(), "line 3".into()))
    );
}

#[test]
fn lines_of_the_earlier_format_are_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("x.wal");
    std::fs::create_dir_all(&wal_dir).unwrap();
    std::fs::write(
        wal_dir.join(format!("{:020}.seg", 0)),
        "2026-12-06T02:00:00.000Z\t{\"data\":1}\nno time at all\n2026-12-06T02:00:01Z\tx\ty\n",
    )
    .unwrap();
    let (wal, mut replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    let got = replay_all(&mut replay);
    assert_eq!(
        got[0].1,
        Ok(("2026-12-06T02:00:00.000Z".into(), "{\"data\":1}".into()))
    );
    assert!(got[1].1.is_err());
    assert_eq!(got[2].1, Ok(("2026-12-06T02:00:01Z".into(), "x\ty".into())));
    // New lines follow, in the new format, in a new segment.
    assert_eq!(wal.append("T", &lines(3..4)).unwrap(), 3);
    wal.close();
}

#[test]
fn a_confirmed_mark_beyond_the_log_is_an_error_that_keeps_the_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("x.wal");
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    wal.append("T", &lines(0..5)).unwrap();
    drop(wal);
    Checkpoint::new(wal_dir.join(CONFIRMED_FILE))
        .save(&ConfirmedMark { next: 7453 })
        .unwrap();
    let err = Wal::open(config(&dir, 1 << 20)).err().unwrap().to_string();
    assert!(
        err.contains("confirmed.json") && err.contains("7453") && err.contains("ends at line 5"),
        "{err}"
    );
    assert_eq!(segments(&wal_dir).len(), 1, "nothing deleted");
    // Wholly confirmed and deleted: an empty log with a mark is normal.
    Checkpoint::new(wal_dir.join(CONFIRMED_FILE))
        .save(&ConfirmedMark { next: 5 })
        .unwrap();
    let (wal, replay) = Wal::open(config(&dir, 1 << 20)).unwrap();
    assert_eq!(replay.remaining(), 0);
    wal.close();
    drop(wal);
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    assert_eq!(wal.next_seq(), 5);
    wal.close();
}

#[test]
fn temp_files_of_dead_processes_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("x.wal");
    std::fs::create_dir_all(&wal_dir).unwrap();
    // A pid above the kernel's largest cannot be running.
    let dead = wal_dir.join(".confirmed.json.tmp-4999999");
    let mine = wal_dir.join(format!(".confirmed.json.tmp-{}", std::process::id()));
    std::fs::write(&dead, b"{").unwrap();
    std::fs::write(&mine, b"{").unwrap();
    let (wal, _) = Wal::open(config(&dir, 1 << 20)).unwrap();
    assert!(!dead.exists());
    assert!(mine.exists(), "a live process's temp file is left alone");
    wal.close();
}
