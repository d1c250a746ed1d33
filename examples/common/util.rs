//! What the benchmarks share besides the line generator: their arguments and
//! the binary under test (included with `#[path]`, as `lines.rs` is).

#![allow(dead_code)] // each benchmark uses its own subset

use std::path::PathBuf;

/// The value after `name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The value after `name`, parsed, else `default`.
pub fn arg_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The `ingest` binary next to this example (`cargo build --release` first), or `INGEST_BIN`.
pub fn ingest_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin: PathBuf = std::env::var_os("INGEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.parent().unwrap().parent().unwrap().join("ingest"));
    assert!(
        bin.exists(),
        "build the binary first (cargo build --release) or set INGEST_BIN; looked at {}",
        bin.display()
    );
    bin
}
