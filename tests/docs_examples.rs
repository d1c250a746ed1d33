//! The examples of `README.md` and `docs/*.md`, run as written.
//!
//! Every ```` ```sh ```` and ```` ```console ```` block is extracted and run
//! with the built binary first on `PATH` as `ingest`, in a fresh directory per
//! page (the blocks of a page in order, sharing it) where `examples/` is the
//! repository's, with a scrubbed environment and a state dir of its own
//! (`INGEST_STATE_DIR`). A `sh` block is one `bash -e -o pipefail` script; a
//! `console` block runs each `$ ` line in one shell and compares its stdout
//! with the lines shown under it (`...` alone on a line: any lines; `[..]`:
//! any text within a line). A comment on the line before a block marks it:
//! `<!-- not-run: REASON -->` (listed with its reason, counted unchecked),
//! `<!-- needs: kafka -->` (run only when `scripts/services` serves it, else
//! unchecked), `<!-- file: NAME -->` (the block is written to `NAME` for the
//! blocks after it). `cargo run [--release] -- ARGS` runs the built binary.
//!
//! Why our own harness and not `trycmd`: the examples are shell (pipes,
//! `export`, here-documents, background servers such as `ingest mock twitter
//! &` that later lines talk to), they need a per-page working directory with
//! `examples/`, an isolated state dir and the local servers' addresses, and
//! most show no output to compare; `trycmd` runs one command per `$` line
//! without a shell and compares every output, so nearly every block would have
//! to be rewritten for it or skipped.
//!
//! The examples need the mocks, Parquet and the Kafka sink: the default
//! features.
#![cfg(all(feature = "mock", feature = "parquet", feature = "kafka"))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Longest a block may run before it counts as failed (it is killed).
const BLOCK_TIMEOUT_SECS: u64 = 240;

#[derive(Debug, Clone, PartialEq)]
enum Mark {
    Run,
    NotRun(String),
    Needs(Vec<String>),
}

#[derive(Debug, Clone)]
struct Block {
    page: String,
    line: usize,
    lang: String,
    body: String,
    mark: Mark,
    /// `<!-- file: NAME -->`: write the block to NAME instead of running it.
    file: Option<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages: the README, then `docs/*.md` by name.
fn pages() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    let mut all = vec![repo().join("README.md")];
    all.extend(docs);
    all
}

/// Every fenced block of a page that is `sh`, `console`, or carries a
/// `file:` mark, with its mark.
fn extract(page: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        let Some(info) = trimmed.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let indent = lines[i].len() - trimmed.len();
        let lang = info.trim().to_string();
        let start = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            let l = lines[i];
            body.push_str(
                l.get(indent.min(l.len() - l.trim_start().len())..)
                    .unwrap_or(""),
            );
            body.push('\n');
            i += 1;
        }
        i += 1;
        let (mark, file) = marks(page, start + 1, &lines[..start]);
        if lang == "sh" || lang == "console" || file.is_some() {
            blocks.push(Block {
                page: page.to_string(),
                line: start + 1,
                lang,
                body,
                mark,
                file,
            });
        }
    }
    blocks
}

/// The `<!-- … -->` comments directly above a fence (blank lines between
/// them allowed).
fn marks(page: &str, line: usize, before: &[&str]) -> (Mark, Option<String>) {
    let mut mark = Mark::Run;
    let mut file = None;
    for l in before.iter().rev().map(|l| l.trim()) {
        if l.is_empty() {
            continue;
        }
        let Some(inner) = l.strip_prefix("<!--").and_then(|r| r.strip_suffix("-->")) else {
            break;
        };
        let inner = inner.trim();
        if let Some(reason) = inner.strip_prefix("not-run:") {
            let reason = reason.trim();
            assert!(
                !reason.is_empty(),
                "{page}:{line}: `not-run:` needs a reason"
            );
            mark = Mark::NotRun(reason.to_string());
        } else if let Some(list) = inner.strip_prefix("needs:") {
            mark = Mark::Needs(list.split(',').map(|s| s.trim().to_string()).collect());
        } else if let Some(name) = inner.strip_prefix("file:") {
            file = Some(name.trim().to_string());
        } else {
            panic!("{page}:{line}: unknown mark `{inner}` (not-run:, needs:, file:)");
        }
    }
    (mark, file)
}

/// The variable `scripts/services env` gives each server's address.
fn service_var(name: &str) -> &'static str {
    match name {
        "kafka" => "INGEST_TEST_KAFKA_BROKERS",
        "s3" => "INGEST_TEST_S3_ENDPOINT",
        "kinesis" => "INGEST_TEST_KINESIS_ENDPOINT",
        "mongodb" => "INGEST_TEST_MONGODB_URI",
        other => panic!("unknown service `{other}` in a needs: mark"),
    }
}

/// The local servers' env: the process's (as `scripts/test` exports it),
/// else `$INGEST_SERVICES_DIR/env`.
fn services_env() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let file = std::env::var_os("INGEST_SERVICES_DIR")
        .and_then(|dir| fs::read_to_string(Path::new(&dir).join("env")).ok())
        .unwrap_or_default();
    for line in file.lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    for (k, v) in std::env::vars() {
        if k.starts_with("INGEST_TEST_") {
            env.insert(k, v);
        }
    }
    env
}

/// Shell lines every block starts with: `cargo run -- ARGS` is the built
/// binary, and background jobs are stopped when the block ends.
const PRELUDE: &str = r#"
cargo() {
  if [ "$1" = run ]; then
    shift
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do shift; done
    [ "$#" -gt 0 ] && shift
    ingest "$@"
  else
    echo "docs_examples: only \`cargo run -- ARGS\` runs here" >&2
    return 127
  fi
}
trap 'jobs -p | xargs -r kill 2>/dev/null; wait' EXIT
"#;

struct Env {
    root: PathBuf,
    bin_dir: PathBuf,
    extra: BTreeMap<String, String>,
}

impl Env {
    fn new(root: &Path) -> Env {
        let bin_dir = root.join("bin");
        fs::create_dir_all(&bin_dir).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ingest"), bin_dir.join("ingest")).unwrap();
        Env {
            root: root.to_path_buf(),
            bin_dir,
            extra: BTreeMap::new(),
        }
    }

    /// A fresh working directory for a page, `examples/` reachable in it.
    fn page_dir(&self, page: &str) -> PathBuf {
        let dir = self.root.join("pages").join(page.replace('/', "_"));
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(repo().join("examples"), dir.join("examples")).unwrap();
        dir
    }

    /// Runs a script in `dir`; (exit status, stdout, stderr).
    fn bash(&self, dir: &Path, script: &str, flags: &[&str]) -> (i32, String, String) {
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir.display());
        let home = self.root.join("home");
        fs::create_dir_all(&home).unwrap();
        let out = Command::new("timeout")
            .args(["--kill-after=5", &BLOCK_TIMEOUT_SECS.to_string(), "bash"])
            .args(flags)
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .current_dir(dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", &self.root)
            .env("INGEST_STATE_DIR", self.root.join("state"))
            .envs(&self.extra)
            .output()
            .expect("bash runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// `[..]` within a line matches any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("[..]").collect();
    if parts.len() == 1 {
        return pattern == line;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || line.len() < first.len() + last.len() || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// `...` alone on a line matches any number of lines.
fn lines_match(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((first, rest)) => {
            !actual.is_empty() && line_matches(first, actual[0]) && lines_match(rest, &actual[1..])
        }
    }
}

/// A console block as (command, shown output lines).
fn console_steps(body: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut continuing = false;
    for line in body.lines() {
        if continuing {
            let cmd = &mut steps.last_mut().unwrap().0;
            cmd.push('\n');
            cmd.push_str(line);
            continuing = line.ends_with('\\');
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            steps.push((cmd.to_string(), Vec::new()));
            continuing = cmd.ends_with('\\');
        } else {
            let step = steps
                .last_mut()
                .unwrap_or_else(|| panic!("console block starts with output, not `$ `: {line}"));
            step.1.push(line.to_string());
        }
    }
    steps
}

/// Runs one block; `Err` says why it failed.
fn run_block(env: &Env, dir: &Path, block: &Block) -> Result<(), String> {
    if let Some(name) = &block.file {
        fs::write(dir.join(name), &block.body).map_err(|e| format!("writing {name}: {e}"))?;
        return Ok(());
    }
    if block.lang == "sh" {
        let (code, out, err) = env.bash(dir, &block.body, &["-e", "-o", "pipefail"]);
        return if code == 0 {
            Ok(())
        } else {
            Err(format!(
                "exit {code}\n--- stdout (last 2000 bytes)\n{}\n--- stderr (last 4000 bytes)\n{}",
                tail(&out, 2000),
                tail(&err, 4000)
            ))
        };
    }
    let steps = console_steps(&block.body);
    let outputs = dir.join(".console");
    fs::create_dir_all(&outputs).unwrap();
    let mut script = String::new();
    for (i, (cmd, _)) in steps.iter().enumerate() {
        let o = outputs.join(i.to_string());
        let o = o.display();
        writeln!(
            script,
            "{{ {cmd}\n}} >'{o}.out' 2>'{o}.err'; __rc=$?; echo $__rc >'{o}.rc'; (exit $__rc)"
        )
        .unwrap();
    }
    let (code, _, err) = env.bash(dir, &script, &[]);
    if code != 0 {
        return Err(format!("the console block's shell exited {code}: {err}"));
    }
    for (i, (cmd, shown)) in steps.iter().enumerate() {
        let read = |ext: &str| fs::read_to_string(outputs.join(format!("{i}.{ext}")));
        let rc: i32 = read("rc")
            .map_err(|_| format!("`{cmd}` never ran"))?
            .trim()
            .parse()
            .unwrap();
        let out = read("out").unwrap_or_default();
        let err = read("err").unwrap_or_default();
        let checked_next = steps.get(i + 1).is_some_and(|(c, _)| c.trim() == "echo $?");
        if rc != 0 && !checked_next {
            return Err(format!(
                "`{cmd}` exited {rc}\n--- stderr\n{}",
                tail(&err, 4000)
            ));
        }
        let expected: Vec<&str> = shown.iter().map(String::as_str).collect();
        let actual: Vec<&str> = out.lines().collect();
        if !lines_match(&expected, &actual) {
            return Err(format!(
                "`{cmd}` printed\n{}\n--- but the docs show\n{}\n--- stderr\n{}",
                tail(&out, 3000),
                shown.join("\n"),
                tail(&err, 2000)
            ));
        }
    }
    Ok(())
}

fn tail(s: &str, n: usize) -> &str {
    let mut at = s.len().saturating_sub(n);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

fn all_blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for path in pages() {
        let page = path.strip_prefix(repo()).unwrap().display().to_string();
        blocks.extend(extract(&page, &fs::read_to_string(&path).unwrap()));
    }
    blocks
}

#[test]
fn every_runnable_example_of_the_readme_and_the_guide_runs_as_written() {
    let blocks = all_blocks();
    let services = services_env();
    let root = tempfile::tempdir().unwrap();
    let mut env = Env::new(root.path());
    let mut executed = 0;
    let mut unchecked: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for block in &blocks {
        let at = format!("{}:{} ({})", block.page, block.line, block.lang);
        match &block.mark {
            Mark::NotRun(reason) => {
                unchecked.push((at, reason.clone()));
                continue;
            }
            Mark::Needs(list) => {
                let missing: Vec<&String> = list
                    .iter()
                    .filter(|s| !services.contains_key(service_var(s)))
                    .collect();
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    unchecked.push((
                        at,
                        format!(
                            "needs {} from scripts/services, not running",
                            names.join(", ")
                        ),
                    ));
                    continue;
                }
                env.extra.clear();
                if let Some(brokers) = services.get("INGEST_TEST_KAFKA_BROKERS") {
                    env.extra
                        .insert("INGEST_KAFKA_BROKERS".into(), brokers.clone());
                    env.extra
                        .insert("INGEST_KAFKA_SOURCE_BROKERS".into(), brokers.clone());
                }
                if let Some(uri) = services.get("INGEST_TEST_MONGODB_URI") {
                    env.extra.insert("MONGODB_URI".into(), uri.clone());
                }
            }
            Mark::Run => env.extra.clear(),
        }
        let dir = dirs
            .entry(block.page.clone())
            .or_insert_with(|| env.page_dir(&block.page))
            .clone();
        if block.file.is_none() {
            executed += 1;
        }
        match run_block(&env, &dir, block) {
            Ok(()) => eprintln!("ok      {at}"),
            Err(why) => {
                eprintln!("FAILED  {at}");
                failures.push(format!("{at}:\n{}\n{why}", block.body));
            }
        }
    }
    // Written to stderr directly, not through `eprintln!`, so the counts show
    // in every `cargo test` run, not only when the test fails.
    let mut report = String::from("\ndocs_examples: unchecked examples:\n");
    for (at, reason) in &unchecked {
        writeln!(report, "  {at}: {reason}").unwrap();
    }
    writeln!(
        report,
        "docs examples: {executed} executed, {} unchecked, {} failed",
        unchecked.len(),
        failures.len()
    )
    .unwrap();
    std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes()).unwrap();
    assert!(
        failures.is_empty(),
        "{} example(s) failed as written:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(
        executed >= 15,
        "only {executed} examples ran: is the harness still finding the blocks?"
    );
}

/// CI's `.ci/run` calls `scripts/test`: the README names that exact command,
/// and keeps the mock capture as its first command.
#[test]
fn the_readme_gives_the_two_commands() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let blocks = extract("README.md", &readme);
    assert_eq!(
        blocks[0].body.trim(),
        "cargo run --release -- twitter --mock --rules examples/rules.toml --sink file --file-path 'out/{platform}.jsonl' --duration 10s --summary"
    );
    assert_eq!(blocks[0].mark, Mark::Run);
    assert_eq!(blocks[1].body.trim(), "scripts/test");
    let ci = fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.lines().any(|l| l.trim() == "scripts/test"));
    assert!(
        readme.lines().count() <= 300,
        "the README is a front door: at most 300 lines"
    );
}

#[test]
fn wildcards_match_times_and_ids_and_nothing_else() {
    assert!(line_matches("run [..] took [..]s", "run 7f3a took 0.42s"));
    assert!(!line_matches(
        "run [..] took [..]s",
        "run 7f3a took 0.42ms!"
    ));
    assert!(line_matches("exact", "exact"));
    assert!(!line_matches("exact", "exactly"));
    assert!(lines_match(&["a", "...", "z"], &["a", "b", "c", "z"]));
    assert!(lines_match(&["a", "...", "z"], &["a", "z"]));
    assert!(!lines_match(&["a", "z"], &["a", "b", "z"]));
    assert!(!lines_match(&["a"], &[]));
}

#[test]
fn marks_are_read_from_the_comment_before_a_block_and_a_failing_example_is_caught() {
    let page = "text\n\n<!-- not-run: needs a token -->\n```sh\nfalse\n```\n\n```sh\nfalse\n```\n\n<!-- file: a.toml -->\n```toml\nx = 1\n```\n\n```console\n$ echo one; echo two\none\ntwo\n$ false\n$ echo $?\n1\n```\n";
    let blocks = extract("t.md", page);
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks[0].mark, Mark::NotRun("needs a token".into()));
    assert_eq!(blocks[1].mark, Mark::Run);
    assert_eq!(blocks[2].file.as_deref(), Some("a.toml"));
    let root = tempfile::tempdir().unwrap();
    let env = Env::new(root.path());
    let dir = env.page_dir("t.md");
    assert!(
        run_block(&env, &dir, &blocks[1]).is_err(),
        "a failing sh block fails"
    );
    run_block(&env, &dir, &blocks[2]).unwrap();
    assert_eq!(fs::read_to_string(dir.join("a.toml")).unwrap(), "x = 1\n");
    run_block(&env, &dir, &blocks[3]).unwrap();
    let mut wrong = blocks[3].clone();
    wrong.body = wrong
        .body
        .replace("one\ntwo\n$ false", "one\nthree\n$ false");
    assert!(
        run_block(&env, &dir, &wrong).is_err(),
        "shown output is compared"
    );
}
