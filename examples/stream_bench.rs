//! X stream client benchmark: `ingest twitter … --sink file` against a stream
//! server that costs the benchmark no CPU per record, beside the limit of this
//! path (the same bytes copied straight from the socket to a file).
//!
//! ```text
//! cargo build --release && cargo run --release --example stream_bench -- --records 300000,3000000
//! ```
//!
//! For each run length the benchmark writes the whole HTTP answer once, already
//! framed (`Transfer-Encoding: chunked`, one stream line per chunk as X sends
//! them, realistic ~610-byte posts), to a file; its server answers the stream
//! request by handing that file to the kernel (`sendfile`), so serving costs
//! no CPU per record. Then, each pinned to the same core while the server runs
//! on the other:
//!
//! 1. `socket → file`: this binary itself (`--copy`) reads the answer with 256 KiB
//!    reads and writes what it read to a file: the floor of this path.
//! 2. `ingest twitter --sink file` with `raw` kept, `--max-records N`.
//! 3. the same with `--no-raw`.
//!
//! Each row's CPU time and peak RSS come from `wait4`; ingest's output is
//! checked (N lines, every post id exactly once) before its row is printed.
//! Each case runs `--runs N` times (at least 3); every figure is min / median
//! / max (the rate against the floor run by run against the floor's median).
//! With `--python PYTHON` (an interpreter with `tweepy` and `twarc`
//! installed), two more rows per run length: tweepy's `StreamingClient` and
//! twarc2's stream client, each writing the posts to a file
//! (`examples/competitors.py`), and how many times as many records per CPU
//! second ingest handles.
//! `--chunk-lines K` frames K lines per chunk instead of one; `--serve N`
//! only serves an answer of N lines (printing its URL), for `perf` by hand.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[path = "common/util.rs"]
mod util;
use util::{arg, arg_or, ingest_bin};

#[path = "common/lines.rs"]
mod lines;

#[path = "common/child.rs"]
mod child;
use child::{Measured, measure};

#[path = "common/spread.rs"]
mod spread;
use spread::{runs, show, spread};

const STREAM_PATH: &str = "/2/tweets/search/stream";

/// Pins a child to one CPU (when there are two or more).
fn pin(cmd: &mut Command, cpu: usize) {
    if cpus() > 1 {
        // SAFETY: only sched_setaffinity (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(move || set_affinity(cpu));
        }
    }
}

fn set_affinity(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPUs of the machine (read once, before this process pins itself to one).
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Writes the pre-framed chunked body of `records` stream lines; returns the
/// bytes of stream lines in it (what a client writes out, framing aside).
fn write_body(path: &Path, records: u64, chunk_lines: u64) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let (mut chunk, mut line, mut payload) = (Vec::new(), Vec::new(), 0u64);
    for i in 0..records {
        line.clear();
        lines::line(i, &mut line);
        payload += line.len() as u64;
        chunk.extend_from_slice(&line);
        if (i + 1) % chunk_lines == 0 || i + 1 == records {
            write!(out, "{:x}\r\n", chunk.len()).unwrap();
            out.write_all(&chunk).unwrap();
            out.write_all(b"\r\n").unwrap();
            chunk.clear();
        }
    }
    // No terminating zero chunk: X's stream does not end; ingest stops at --max-records.
    out.flush().unwrap();
    payload
}

/// Serves `body` for every stream request (headers first, then `sendfile`);
/// anything else gets a 404 and is reported.
fn serve(listener: TcpListener, body: PathBuf) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let body = body.clone();
        std::thread::spawn(move || {
            let mut head = Vec::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut l = String::new();
                if reader.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                let end = l == "\r\n";
                head.push(l);
                if end {
                    break;
                }
            }
            let path = head[0].split_whitespace().nth(1).unwrap_or("").to_owned();
            if path.split('?').next() != Some(STREAM_PATH) {
                eprintln!("stream_bench server: unexpected request {}", head[0].trim());
                let _ = conn.write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                return;
            }
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            );
            // std::io::copy from a File to a TcpStream uses sendfile/splice on Linux.
            let mut file = std::fs::File::open(&body).unwrap();
            let _ = std::io::copy(&mut file, &mut conn);
            // Hold the connection open (a stream does not end) until the client goes.
            let mut sink = [0u8; 1024];
            while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
        });
    }
}

/// `--copy ADDR OUT BYTES`: the floor. Asks for the stream and copies what
/// arrives to OUT until BYTES of answer (headers included) have come.
fn copy_mode(addr: &str, out: &Path, bytes: u64) {
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {STREAM_PATH} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer bench\r\n\r\n"
    )
    .unwrap();
    let mut file = std::fs::File::create(out).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < bytes {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed after {got} of {bytes} bytes");
        file.write_all(&buf[..n]).unwrap();
        got += n as u64;
    }
}

/// Every post id 0..records exactly once, one record per line.
fn check_output(out: &Path, records: u64, u: &Measured) {
    let file = std::fs::File::open(out).unwrap();
    let mut seen = HashSet::with_capacity(records as usize);
    let mut lines = 0u64;
    for line in BufReader::with_capacity(1 << 20, file).split(b'\n') {
        let line = line.unwrap();
        lines += 1;
        let at = memchr::memmem::find(&line, b"\"id\":\"twitter:")
            .unwrap_or_else(|| panic!("a line without a record id:\n{}", u.stderr));
        let rest = &line[at + 14..];
        let end = memchr::memchr(b'"', rest).unwrap();
        let id: u64 = std::str::from_utf8(&rest[..end]).unwrap().parse().unwrap();
        assert!(
            seen.insert(id - 1_600_000_000_000_000_000),
            "post {id} twice"
        );
    }
    assert_eq!(
        lines, records,
        "ingest wrote {lines} records, not {records}:\n{}",
        u.stderr
    );
    assert!(seen.iter().all(|i| *i < records), "ids outside the input");
}

struct Row {
    what: String,
    records: u64,
    out_bytes: u64,
    /// Every run of this case.
    runs: Vec<Measured>,
}

impl Row {
    fn of(&self, f: &dyn Fn(&Measured) -> f64) -> Vec<f64> {
        self.runs.iter().map(f).collect()
    }

    fn rates(&self) -> Vec<f64> {
        let n = self.records as f64;
        self.of(&|m| n / m.wall)
    }
}

/// One table row; every figure is min / median / max over the runs.
fn print_row(r: &Row, floor: Option<&Row>) {
    let n = r.records as f64;
    let ratio = floor.map_or(String::from("1.00"), |f| {
        let floor = spread(&f.rates()).1;
        show(
            &r.rates().iter().map(|x| x / floor).collect::<Vec<_>>(),
            2,
            "",
        )
    });
    println!(
        "| {} | {} | {} | {} ({} user + {} sys) | {} | {:.0} | {} |",
        r.what,
        r.records,
        show(&r.rates(), 0, ""),
        show(&r.of(&|m| m.cpu * 1e6 / n), 2, ""),
        show(&r.of(&|m| m.user * 1e6 / n), 2, ""),
        show(&r.of(&|m| m.sys * 1e6 / n), 2, ""),
        show(&r.of(&|m| m.max_rss_mib), 1, ""),
        r.out_bytes as f64 / n,
        ratio,
    );
}

fn main() {
    if let Some(addr) = arg("--copy") {
        let args: Vec<String> = std::env::args().collect();
        let i = args.iter().position(|a| a == "--copy").unwrap();
        copy_mode(&addr, Path::new(&args[i + 2]), args[i + 3].parse().unwrap());
        return;
    }
    if let Some(records) = arg("--serve") {
        // For profiling by hand: serve one run length's answer until killed.
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("body");
        write_body(
            &body,
            records.parse().unwrap(),
            arg_or("--chunk-lines", 1u64).max(1),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        println!("http://{}", listener.local_addr().unwrap());
        serve(listener, body);
        return;
    }
    let lengths: Vec<u64> = arg("--records")
        .unwrap_or_else(|| "300000,3000000".into())
        .split(',')
        .map(|n| n.trim().parse().expect("--records N[,N…]"))
        .collect();
    let chunk_lines = arg_or("--chunk-lines", 1u64).max(1);
    let runs = runs();
    let bin = ingest_bin();
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir_in(arg("--dir").unwrap_or_else(|| ".".into())).unwrap();
    // The server (this process) on CPU 1, every measured client on CPU 0.
    if cpus() > 1 {
        set_affinity(1).unwrap();
    }
    println!(
        "ingest stream → file, {} core(s); server: pre-framed chunked answer from sendfile, {chunk_lines} line(s) per chunk; {runs} runs per case, figures min / median / max",
        cpus()
    );
    println!(
        "| what | records | records/s | CPU µs per record | max RSS MiB | bytes out per record | rate vs socket → file |"
    );
    println!("|---|---|---|---|---|---|---|");
    let python = arg("--python");
    let (mut ingest_rows, mut competitor_rows) = (Vec::new(), Vec::new());
    for records in lengths {
        let body = dir.path().join("body");
        let payload = write_body(&body, records, chunk_lines);
        println!(
            "| {records} stream lines, {:.0} B each on average | | | | | | |",
            payload as f64 / records as f64
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = body.clone();
        std::thread::spawn(move || serve(listener, served));
        let answer_bytes = std::fs::metadata(&body).unwrap().len()
            + "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".len() as u64;

        let out = dir.path().join("socket.out");
        let floor_runs = (0..runs)
            .map(|_| {
                let mut copy = Command::new(&exe);
                copy.arg("--copy")
                    .arg(&addr)
                    .arg(&out)
                    .arg(answer_bytes.to_string());
                pin(&mut copy, 0);
                let u = measure(&mut copy);
                assert_eq!(std::fs::metadata(&out).unwrap().len(), answer_bytes);
                std::fs::remove_file(&out).unwrap();
                u
            })
            .collect();
        let floor = Row {
            what: "socket → file (the floor)".into(),
            records,
            out_bytes: answer_bytes,
            runs: floor_runs,
        };
        print_row(&floor, None);

        for (what, extra) in [
            ("ingest twitter → file, raw kept", None),
            ("ingest twitter → file, --no-raw", Some("--no-raw")),
        ] {
            let out = dir.path().join("ingest.jsonl");
            let state = dir.path().join("state");
            let client = || {
                let _ = std::fs::remove_dir_all(&state);
                let mut client = Command::new(&bin);
                client
                    .args(["twitter", "--rules-mode", "keep", "--sink", "file"])
                    .arg("--twitter-api-base")
                    .arg(format!("http://{addr}"))
                    .arg("--max-records")
                    .arg(records.to_string())
                    .arg("--file-path")
                    .arg(&out)
                    .arg("--state-dir")
                    .arg(&state)
                    .args(extra)
                    .env("TWITTER_BEARER_TOKEN", "bench")
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null());
                client
            };
            let row = case(what, records, runs, &out, client, check_output);
            print_row(&row, Some(&floor));
            ingest_rows.push(row);
        }
        if let Some(python) = &python {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/competitors.py");
            for (what, which) in [
                ("tweepy StreamingClient → file", "tweepy"),
                ("twarc2 stream → file", "twarc2"),
            ] {
                let out = dir.path().join("python.jsonl");
                let client = || {
                    let mut client = Command::new(python);
                    client
                        .arg(&script)
                        .arg(which)
                        .arg(format!("http://{addr}"))
                        .arg(&out)
                        .arg(records.to_string())
                        .stdout(Stdio::null());
                    client
                };
                let row = case(what, records, runs, &out, client, check_post_lines);
                print_row(&row, Some(&floor));
                competitor_rows.push(row);
            }
        }
        let _ = std::fs::remove_file(&body);
    }
    print_per_cpu_second(&ingest_rows, &competitor_rows);
}

/// One client's case, `runs` times: `client` gives the command (pinned here
/// to the measured core), `check` reads what it wrote to `out` before the
/// file is removed for the next run.
fn case(
    what: &str,
    records: u64,
    runs: usize,
    out: &Path,
    client: impl Fn() -> Command,
    check: fn(&Path, u64, &Measured),
) -> Row {
    let mut out_bytes = 0;
    let runs = (0..runs)
        .map(|_| {
            let mut client = client();
            pin(&mut client, 0);
            let u = measure(&mut client);
            check(out, records, &u);
            out_bytes = std::fs::metadata(out).unwrap().len();
            std::fs::remove_file(out).unwrap();
            u
        })
        .collect();
    Row {
        what: what.into(),
        records,
        out_bytes,
        runs,
    }
}

/// How many times as many records ingest handles per CPU second as each
/// Python client, run length by run length: the ratio of the median CPU time
/// per record (the Python client's over ingest's).
fn print_per_cpu_second(ingest: &[Row], competitors: &[Row]) {
    let median_cpu = |r: &Row| spread(&r.of(&|m| m.cpu / r.records as f64)).1;
    for c in competitors {
        for i in ingest.iter().filter(|i| i.records == c.records) {
            println!(
                "{} records: {} handles {:.1}× the records per CPU second of {}",
                c.records,
                i.what,
                median_cpu(c) / median_cpu(i),
                c.what
            );
        }
    }
}

/// A Python client's output: `records` lines, each a stream line (or its
/// `json.dumps`) whose `data.id` is a post of the input, every post once.
fn check_post_lines(out: &Path, records: u64, u: &Measured) {
    let file = std::fs::File::open(out).unwrap();
    let mut seen = HashSet::with_capacity(records as usize);
    for line in BufReader::with_capacity(1 << 20, file).lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap())
            .unwrap_or_else(|e| panic!("a line that is not JSON ({e}):\n{}", u.stderr));
        let id: u64 = v["data"]["id"].as_str().unwrap().parse().unwrap();
        assert!(
            seen.insert(id - 1_600_000_000_000_000_000),
            "post {id} twice"
        );
    }
    assert_eq!(
        seen.len() as u64,
        records,
        "{} posts, not {records}:\n{}",
        seen.len(),
        u.stderr
    );
}
