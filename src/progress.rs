//! The status line on a terminal: redrawn in place on stderr about once a
//! second (`\r`, erase line). Log lines go through [`LogWriter`], which erases
//! the status line first, so the two never share a line; the next tick redraws it.
//! Shown only when stderr is a terminal, without `--quiet` and with text logs
//! (`Settings::progress`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// A status line is on screen (no newline after it).
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Carriage return, then erase the whole line (ANSI EL2).
const ERASE: &[u8] = b"\r\x1b[2K";

/// Draws `line` in place of the previous status line.
pub fn show(line: &str) {
    let width = terminal_width().unwrap_or(120).saturating_sub(1);
    let line: String = line.chars().take(width).collect();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(ERASE);
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
    SHOWN.store(true, Ordering::Relaxed);
}

/// Erases the status line, if one is shown.
pub fn clear() {
    let mut err = std::io::stderr().lock();
    if SHOWN.swap(false, Ordering::Relaxed) {
        let _ = err.write_all(ERASE);
        let _ = err.flush();
    }
}

fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; fd 2 is stderr.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(ws.ws_col as usize)
}

/// Stderr for tracing: erases a shown status line before a log line, and
/// redacts every registered secret from it ([`crate::secret::redact`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if SHOWN.swap(false, Ordering::Relaxed) {
            err.write_all(ERASE)?;
        }
        // tracing formats each event into one buffer: redact it whole.
        err.write_all(&crate::secret::redact_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
