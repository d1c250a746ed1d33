//! Every file shipped in `examples/` loads with the loader it is written for:
//! scenarios, rules, configs, the crontab's and unit file's command lines (each
//! parsed by the real command tree), the sample data (replayed), shell scripts
//! (`bash -n`). A file of a kind with no loader here fails the test, so a new
//! example gets one.

#![cfg(feature = "mock")]

use std::path::{Path, PathBuf};

use clap::Parser;
use ingest::cli::Cli;

mod common;
use common::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// The `ingest …` command lines of a crontab or unit file: from the `ingest`
/// token (any path) to a shell operator or redirection.
fn ingest_commands(text: &str) -> Vec<Vec<String>> {
    // A template unit's instance (`%i`) stands for a partition: try the first.
    let joined = text.replace("\\\n", " ").replace("%i", "1");
    let mut out = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(start) = words
            .iter()
            .position(|w| *w == "ingest" || w.ends_with("bin/ingest"))
        else {
            continue;
        };
        let program = "ingest".to_owned();
        let args: Vec<String> = std::iter::once(program)
            .chain(words[start + 1..].iter().map(|w| w.to_string()))
            .take_while(|w| !matches!(w.as_str(), ">>" | ">" | "2>&1" | "|" | "&&" | ";"))
            .collect();
        out.push(args);
    }
    out
}

fn check_commands(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let commands = ingest_commands(&text);
    assert!(
        !commands.is_empty(),
        "{}: no ingest command",
        path.display()
    );
    for args in commands {
        if let Err(e) = Cli::try_parse_from(&args) {
            panic!("{}: `{}`: {e}", path.display(), args.join(" "));
        }
    }
}

fn check_toml(path: &Path) {
    let name = path.file_name().unwrap().to_string_lossy();
    let what = if name.contains("telegram") && name.contains("scenario") {
        ingest::mock::telegram::TelegramScenario::load(path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else if name.contains("scenario") {
        ingest::mock::twitter::Scenario::load(path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    } else if name.contains("rules") {
        ingest::sources::twitter::stream::rules::load(path)
            .map(|rules| assert!(!rules.is_empty(), "{name}: no rule"))
            .map_err(|e| e.to_string())
    } else {
        let text = std::fs::read_to_string(path).unwrap();
        ingest::config::LoadedConfig::parse(Some(path.to_path_buf()), text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    if let Err(e) = what {
        panic!("{}: {e}", path.display());
    }
}

fn check_jsonl(path: &Path) {
    let env = Env::new();
    let out = env.run(&[
        "replay",
        path.to_str().unwrap(),
        "--sink",
        "file",
        "--file-path",
        "o.jsonl",
    ]);
    assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
    let lines = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert!(lines > 0);
    assert!(
        env.dead_letters().is_empty(),
        "{}: dead letters",
        path.display()
    );
    assert!(
        !env.records("o.jsonl").is_empty(),
        "{}: no record",
        path.display()
    );
}

fn check_shell(path: &Path) {
    let out = std::process::Command::new("bash")
        .arg("-n")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
}

/// A bench's Python helper (`competitors.py`): it parses. Its imports
/// (tweepy, twarc) are the bench's to install, not the tests'.
fn check_python(path: &Path) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn every_example_file_loads() {
    let mut all = Vec::new();
    files(Path::new(EXAMPLES), &mut all);
    let mut checked = 0;
    for path in &all {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        match path.extension().and_then(|e| e.to_str()) {
            // Benches and their helpers: cargo compiles them (`cargo test` builds examples).
            Some("rs") => continue,
            Some("toml") => check_toml(path),
            Some("jsonl") => check_jsonl(path),
            Some("sh") => check_shell(path),
            Some("py") => check_python(path),
            Some("service") => check_commands(path),
            None if name == "crontab" => check_commands(path),
            _ => panic!(
                "{}: no loader for this example in tests/examples.rs",
                path.display()
            ),
        }
        checked += 1;
    }
    assert!(checked >= 6, "checked {checked} files");
}

#[test]
fn a_wrong_example_is_caught() {
    // The loaders refuse what they should: the X scenario is not a Telegram one.
    let x = Path::new(EXAMPLES).join("scenario.toml");
    assert!(ingest::mock::telegram::TelegramScenario::load(&x).is_err());
    assert!(Cli::try_parse_from(["ingest", "telegram", "--no-such-flag"]).is_err());
    assert_eq!(
        ingest_commands("0 * * * * . /e && flock -n l ingest twitter --quiet >> log 2>&1"),
        vec![vec![
            "ingest".to_owned(),
            "twitter".to_owned(),
            "--quiet".to_owned()
        ]]
    );
}

/// `ingest mock telegram --help` points at the Telegram scenario, which the mock loads.
#[test]
fn mock_telegram_help_points_at_a_scenario_it_accepts() {
    let env = Env::new();
    let out = env.run(&["mock", "telegram", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(help.contains("examples/telegram-scenario.toml"), "{help}");
    assert!(!help.contains("examples/scenario.toml"), "{help}");
    let out = env.run(&["telegram", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(help.contains("examples/telegram-scenario.toml"), "{help}");
    // The named file runs in the mock.
    let scenario = Path::new(EXAMPLES).join("telegram-scenario.toml");
    let mut child = env
        .cmd()
        .args(["mock", "telegram", "--listen", "127.0.0.1:0", "--scenario"])
        .arg(&scenario)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("http://127.0.0.1:"),
        "no base URL: {line:?}"
    );
}
