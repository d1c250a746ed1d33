//! `ingest man`: the man page (roff) on stdout, or every command's page in a
//! directory (`--dir`).

use std::io::Write;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit_codes;

/// `ingest man [--dir DIR]`.
pub fn run(dir: Option<&std::path::Path>) -> u8 {
    if let Some(dir) = dir {
        return write_pages(dir);
    }
    let mut buf = Vec::new();
    match clap_mangen::Man::new(Cli::command()).render(&mut buf) {
        Ok(()) => write_stdout(&buf),
        Err(e) => {
            eprintln!("ingest: cannot render the man page: {e}");
            exit_codes::FAILURE
        }
    }
}

/// Every command's page into `dir` (created if needed), then their names on stdout.
fn write_pages(dir: &std::path::Path) -> u8 {
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .and_then(|()| {
            let mut names: Vec<String> = std::fs::read_dir(dir)?
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("ingest") && n.ends_with(".1"))
                .collect();
            names.sort();
            Ok(names)
        });
    match written {
        Ok(names) => write_stdout(format!("{}\n", names.join("\n")).as_bytes()),
        Err(e) => {
            eprintln!(
                "ingest: cannot write the man pages to {}: {e}",
                dir.display()
            );
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
