//! The `file` sink (JSONL files from a path template, rotation, gzip, fsync) and
//! the `stdout` sink: `config.rs` their tables and registration, `sink.rs` the
//! file client, `writer.rs` one open file, `torn.rs` a torn last line,
//! `parquet.rs` Parquet parts, `stdout.rs` the stdout sink.

mod config;
#[cfg(feature = "parquet")]
mod parquet;
mod sink;
mod stdout;
mod torn;
mod writer;

pub use config::*;
pub use sink::FileSink;
pub use stdout::StdoutSink;
