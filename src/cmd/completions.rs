//! `ingest completions SHELL`: the shell completion script on stdout.

use clap::CommandFactory;

use super::man::write_stdout;
use crate::cli::Cli;

/// `ingest completions SHELL`: the completion script on stdout.
pub fn run(shell: clap_complete::Shell) -> u8 {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ingest", &mut buf);
    write_stdout(&buf)
}
