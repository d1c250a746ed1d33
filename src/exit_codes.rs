//! The process exit codes (docs/operations.md, "Stopping, dead letters, exit codes").

/// Success, including a time or record limit reached.
pub const SUCCESS: u8 = 0;
/// A source or sink failed for good, or records went to the dead-letter file.
pub const FAILURE: u8 = 1;
/// Bad usage (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// Bad config (`EX_CONFIG` from sysexits.h).
pub const CONFIG: u8 = 78;
/// Interrupted twice: aborted without draining.
pub const ABORTED: u8 = 130;
