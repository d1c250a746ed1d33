//! `ingest man`: the man page (roff) on stdout.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit_codes;

/// `ingest man`: the man page (roff) on stdout.
pub fn run() -> u8 {
    let mut buf = Vec::new();
    match clap_mangen::Man::new(Cli::command()).render(&mut buf) {
        Ok(()) => write_stdout(&buf),
        Err(e) => {
            eprintln!("ingest: cannot render the man page: {e}");
            exit_codes::FAILURE
        }
    }
}

/// Writes a command's output on stdout: 0, also when the reader left (`| head`).
pub(crate) fn write_stdout(buf: &[u8]) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(buf).and_then(|()| out.flush()) {
        Ok(()) => exit_codes::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit_codes::SUCCESS,
        Err(e) => {
            eprintln!("ingest: cannot write to standard output: {e}");
            exit_codes::FAILURE
        }
    }
}
