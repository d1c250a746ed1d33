//! `ingest report FILE...`: reads captured records and prints the report
//! (text, or `--json`), and with `--html FILE` writes the page as well.

use crate::cli::ReportArgs;
use crate::report::{self, ReportError};
use crate::run::Error;

/// Reads the files, prints the report on stdout; the exit code.
pub fn run(args: &ReportArgs) -> Result<u8, Error> {
    let by = args.by.unwrap_or_default();
    let report = report::read_files(&args.files, by)?;
    if let Some(path) = &args.html {
        std::fs::write(path, report::render_html(&report)).map_err(|source| {
            ReportError::Write {
                path: path.clone(),
                source,
            }
        })?;
    }
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report).expect("the report serializes");
        s.push('\n');
        s
    } else {
        report::render_text(&report)
    };
    Ok(super::man::write_stdout(text.as_bytes()))
}
