//! `format = "parquet"` for the `file` and `s3` sinks: the format choice and
//! the Parquet options (in every build, so a config that asks for Parquet
//! always parses), and with the `parquet` cargo feature the fixed Arrow schema
//! of the record ([`schema`]) and the encoder of one batch into one complete
//! Parquet file ([`encode`]).
//!
//! One batch is one Parquet file with one row group: a file is written whole
//! (to a temporary name, then renamed; or as one S3 object) before any of its
//! records is confirmed, so a reader never sees half a file and a crash loses
//! no confirmed record.

use serde::Deserialize;

use crate::record::Format;

#[cfg(feature = "parquet")]
mod encode;
#[cfg(feature = "parquet")]
pub mod schema;

#[cfg(feature = "parquet")]
pub use encode::{EncodeError, encode};

/// What the `file` and `s3` sinks write: JSON lines (`record`, `raw`) or Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// The normalized record, one JSON object a line.
    #[default]
    Record,
    /// The original payload alone, one a line.
    Raw,
    /// The record as Parquet rows (see `ingest schema --format arrow`).
    Parquet,
}

impl FileFormat {
    /// The line format of the JSON formats (Parquet rows hold the record).
    pub fn lines(self) -> Format {
        match self {
            FileFormat::Raw => Format::Raw,
            FileFormat::Record | FileFormat::Parquet => Format::Record,
        }
    }

    pub fn is_parquet(self) -> bool {
        self == FileFormat::Parquet
    }

    /// The file extension objects and default paths get.
    pub fn extension(self) -> &'static str {
        if self.is_parquet() {
            "parquet"
        } else {
            "jsonl"
        }
    }
}

impl From<FileFormat> for Format {
    fn from(f: FileFormat) -> Format {
        f.lines()
    }
}

/// Parquet page compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard (level 3): smaller files.
    #[default]
    Zstd,
    /// Snappy: faster, larger; what older readers expect.
    Snappy,
}

/// The Parquet options of a sink table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetOptions {
    pub compression: Compression,
    /// Write the `raw` column (the original payload as a JSON string).
    pub raw: bool,
}

/// Checks the Parquet fields of a `file` or `s3` table: `(field, message)`.
///
/// `compression` and `raw` belong to Parquet; `gzip` does not (Parquet
/// compresses its pages itself); and a build without the `parquet` feature
/// refuses the format with how to get it.
pub fn validate(
    format: FileFormat,
    gzip: bool,
    compression: Option<Compression>,
    raw: Option<bool>,
) -> Result<(), (&'static str, String)> {
    if !format.is_parquet() {
        if compression.is_some() {
            return Err((
                "compression",
                "applies to `format = \"parquet\"` only (JSON lines use `gzip = true`)".into(),
            ));
        }
        if raw.is_some() {
            return Err((
                "raw",
                "applies to `format = \"parquet\"` only (it drops the `raw` column); for JSON use `format = \"record\"` with the top-level `raw = false` or --no-raw".into(),
            ));
        }
        return Ok(());
    }
    if gzip {
        return Err((
            "gzip",
            "Parquet compresses its own pages: use `compression = \"zstd\"` or `\"snappy\"` instead of `gzip`".into(),
        ));
    }
    if !cfg!(feature = "parquet") {
        return Err((
            "format",
            "`format = \"parquet\"` is not in this build of ingest: rebuild with `cargo build --release --features parquet` (or with the default features)".into(),
        ));
    }
    Ok(())
}

/// Marks the temporary files of Parquet writes: `.<final name>.<pid>.ingest-tmp`.
pub const TEMP_SUFFIX: &str = ".ingest-tmp";

/// The temporary name a file is written under before its rename: hidden (a
/// leading dot, which Hive, Spark, Athena and DuckDB globs skip), in the same
/// directory, and naming the writing process so a later run can tell a
/// crashed writer's leftovers from a live one's.
pub fn temp_name(final_name: &str, pid: u32) -> String {
    format!(".{final_name}.{pid}{TEMP_SUFFIX}")
}

/// The pid in a temporary name made by [`temp_name`], or `None` for any other name.
pub fn temp_owner(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (_, pid) = stem.rsplit_once('.')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name_and_map_to_lines() {
        #[derive(Deserialize)]
        struct T {
            format: FileFormat,
        }
        let f = |v: &str| toml::from_str::<T>(&format!("format = \"{v}\"")).map(|t| t.format);
        assert_eq!(f("parquet").unwrap(), FileFormat::Parquet);
        assert_eq!(Format::from(f("raw").unwrap()), Format::Raw);
        assert_eq!(Format::from(FileFormat::Parquet), Format::Record);
        let err = f("csv").unwrap_err().to_string();
        assert!(err.contains("parquet"), "{err}");
    }

    #[test]
    fn parquet_fields_are_checked_together() {
        use FileFormat::*;
        assert!(validate(Record, true, None, None).is_ok());
        assert_eq!(
            validate(Record, false, Some(Compression::Zstd), None)
                .unwrap_err()
                .0,
            "compression"
        );
        assert_eq!(
            validate(Raw, false, None, Some(false)).unwrap_err().0,
            "raw"
        );
        assert_eq!(validate(Parquet, true, None, None).unwrap_err().0, "gzip");
        let r = validate(Parquet, false, Some(Compression::Snappy), Some(false));
        if cfg!(feature = "parquet") {
            assert!(r.is_ok());
        } else {
            let (field, message) = r.unwrap_err();
            assert_eq!(field, "format");
            assert!(message.contains("--features parquet"), "{message}");
        }
    }

    #[test]
    fn temp_names_are_hidden_and_name_their_writer() {
        let t = temp_name("x.3.parquet", 4242);
        assert_eq!(t, ".x.3.parquet.4242.ingest-tmp");
        assert_eq!(temp_owner(&t), Some(4242));
        assert_eq!(temp_owner("x.parquet"), None);
        assert_eq!(temp_owner(".x.parquet.ingest-tmp"), None);
        assert_eq!(temp_owner(".x.abc.ingest-tmp"), None);
    }
}
