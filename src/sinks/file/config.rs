//! The `file` and `stdout` sink tables: fields, defaults, the file mode, the
//! path template and part names.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use chrono_tz::Tz;

use crate::record::{Format, Platform, Record};
use crate::sinks::common::{BatchConfig, RetryConfig, default_queue_capacity};
use crate::sinks::parquet::{self, Compression, FileFormat, ParquetOptions};
use crate::sinks::template::{Ctx, Target, Template, check_split_tags};
/// Default path template of the `file` sink.
pub const DEFAULT_PATH: &str = "ingest-{platform}-%Y-%m-%d.jsonl";
/// Default path template of the `file` sink with `format = "parquet"`.
pub const DEFAULT_PARQUET_PATH: &str = "ingest-{platform}-%Y-%m-%d.parquet";

/// `[sinks.NAME]` with `type = "file"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Path template: strftime fields and `{date}`/`{hour}` (UTC, at write
    /// time) and the record placeholders `{platform}`, `{kind}`, `{tag}`,
    /// `{chat.id}`, `{author.id}`, `{id}` (values sanitized: they never add
    /// a directory level or leave the directory).
    #[serde(default = "default_path")]
    pub path: String,
    /// With several rule tags, write a record once per tag (into each tag's
    /// path); default false: once, with its first tag.
    #[serde(default)]
    pub split_tags: bool,
    /// `record` (default), `raw` or `parquet` (one Parquet file per batch).
    #[serde(default)]
    pub format: FileFormat,
    /// Gzip each batch (one gzip member per batch; `gzip -d` and `zcat` read the file whole).
    #[serde(default)]
    pub gzip: bool,
    /// Parquet page compression: `zstd` (default) or `snappy`.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Parquet: write the `raw` column (default true).
    #[serde(default)]
    pub raw: Option<bool>,
    /// Start a new part (`name.1.jsonl`, `name.2.jsonl`, …) before a file would pass this size; 0 = never.
    #[serde(default)]
    pub max_file_bytes: u64,
    /// fsync every batch before confirming it (default true).
    #[serde(default = "yes")]
    pub fsync: bool,
    /// Permission bits of the files the sink creates (before the umask); default 0600.
    #[serde(default)]
    pub file_mode: FileMode,
    /// Files the sink keeps open at once (default 128): a batch that touches
    /// more (a path from `{tag}` or `{author.id}`) opens, writes, fsyncs and
    /// closes them in turn, least recently used first. Keep it well under the
    /// process's open-file limit (`ulimit -n`, 1024 by default under systemd).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

/// Default `max_open_files`: room for many paths, far from the usual 1024 limit.
pub const DEFAULT_MAX_OPEN_FILES: usize = 128;

fn default_max_open_files() -> usize {
    DEFAULT_MAX_OPEN_FILES
}

impl Default for FileSinkConfig {
    fn default() -> Self {
        FileSinkConfig {
            path: default_path(),
            split_tags: false,
            format: FileFormat::Record,
            gzip: false,
            compression: None,
            raw: None,
            max_file_bytes: 0,
            fsync: true,
            file_mode: FileMode::default(),
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// `[sinks.NAME]` with `type = "stdout"`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    #[serde(default)]
    pub format: Format,
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub retry: RetryConfig,
}

impl Default for StdoutSinkConfig {
    fn default() -> Self {
        StdoutSinkConfig {
            format: Format::Record,
            queue_capacity: default_queue_capacity(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

/// Permission bits of new files: `file_mode = "0640"` (an octal string) or
/// `file_mode = 0o640` (a TOML integer). The owner must keep read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMode(pub u32);

/// Output files hold private chats: only their owner reads them unless told otherwise.
pub const DEFAULT_FILE_MODE: u32 = 0o600;

impl Default for FileMode {
    fn default() -> Self {
        FileMode(DEFAULT_FILE_MODE)
    }
}

impl FileMode {
    /// Parses `"0640"`, `"640"` or `"0o640"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let digits = t.strip_prefix("0o").unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!(
                "`{text}` is not an octal file mode; write it like \"0640\""
            ));
        }
        let bits = u32::from_str_radix(digits, 8)
            .map_err(|_| format!("`{text}` is not a file mode (at most 0777)"))?;
        Self::from_bits(i64::from(bits), text)
    }

    fn from_bits(bits: i64, shown: &str) -> Result<Self, String> {
        if !(0..=0o777).contains(&bits) {
            let hint = if shown.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                format!(" (a decimal number; write \"0{shown}\" or 0o{shown})")
            } else {
                String::new()
            };
            return Err(format!(
                "file mode {shown} is out of range: at most 0777{hint}"
            ));
        }
        let bits = bits as u32;
        if bits & 0o600 != 0o600 {
            return Err(format!(
                "file mode {bits:04o} must let the owner read and write (0600 at least)"
            ));
        }
        Ok(FileMode(bits))
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an octal file mode such as \"0640\" or 0o640")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                FileMode::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileMode, E> {
                FileMode::from_bits(v, &v.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileMode, E> {
                let v = i64::try_from(v).unwrap_or(i64::MAX);
                FileMode::from_bits(v, &v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn default_path() -> String {
    DEFAULT_PATH.to_owned()
}

fn yes() -> bool {
    true
}

impl FileSinkConfig {
    /// Checks the fields: `(field, message)`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        parquet::validate(self.format, self.gzip, self.compression, self.raw)?;
        if self.format.is_parquet() && self.max_file_bytes > 0 {
            return Err((
                "max_file_bytes",
                "does not apply to Parquet: every batch is its own file; size the files with [batch] max_records and max_bytes".into(),
            ));
        }
        if self.max_open_files == 0 {
            return Err(("max_open_files", "must be at least 1".into()));
        }
        let t = PathTemplate::parse(&self.path_template()).map_err(|m| ("path", m))?;
        check_split_tags(self.split_tags, &[&t.compiled]).map_err(|m| ("split_tags", m))
    }

    /// The path template, with `.parquet` for the default path of the Parquet format.
    pub fn path_template(&self) -> String {
        if self.format.is_parquet() && self.path == DEFAULT_PATH {
            DEFAULT_PARQUET_PATH.to_owned()
        } else {
            self.path.clone()
        }
    }

    /// The Parquet options (defaults where unset).
    pub fn parquet_options(&self) -> ParquetOptions {
        ParquetOptions {
            compression: self.compression.unwrap_or_default(),
            raw: self.raw.unwrap_or(true),
        }
    }
}

/// A parsed path template.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    template: String,
    pub(crate) compiled: Template,
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.trim().is_empty() {
            return Err("the path is empty".into());
        }
        if template.ends_with('/') {
            return Err(format!(
                "`{template}` names a directory; add a file name, e.g. `{template}%Y-%m-%d.jsonl`"
            ));
        }
        Ok(PathTemplate {
            template: template.to_owned(),
            compiled: Template::compile(template, Target::Path)?,
        })
    }

    /// True when the path depends on the platform and the time only.
    pub fn platform_only(&self) -> bool {
        !self.compiled.needs_record()
    }

    /// The path of a platform at `now` (record placeholders render `_unknown`:
    /// use [`PathTemplate::render_record`] when the template has any).
    pub fn render(&self, platform: Platform, now: DateTime<Utc>) -> PathBuf {
        let at = now.with_timezone(&Tz::UTC);
        let mut s = String::with_capacity(self.template.len() + 32);
        self.compiled.render_platform(platform, &at, &mut s);
        PathBuf::from(s)
    }

    /// The path of one record (or one copy of it, for `tag`) at `now`.
    pub fn render_record(&self, r: &Record, tag: Option<&str>, now: DateTime<Utc>) -> PathBuf {
        let at = now.with_timezone(&Tz::UTC);
        let mut s = String::with_capacity(self.template.len() + 32);
        self.compiled.render(
            &Ctx {
                record: r,
                tag,
                at: &at,
            },
            &mut s,
        );
        PathBuf::from(s)
    }

    /// The directory that holds every file the template can name: the part
    /// before the first placeholder, up to its last `/`.
    pub fn fixed_dir(&self) -> PathBuf {
        let cut = self
            .template
            .find(['%', '{'])
            .unwrap_or(self.template.len());
        let fixed = &self.template[..cut];
        match fixed.rfind('/') {
            Some(0) => PathBuf::from("/"),
            Some(i) => PathBuf::from(&fixed[..i]),
            None => PathBuf::from("."),
        }
    }
}

/// The file of part `n` of a base path: `a/x.jsonl.gz` → `a/x.2.jsonl.gz`.
pub fn part_path(base: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return base.to_owned();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dot = name
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '.')
        .map(|(i, _)| i);
    let new = match dot {
        Some(i) => format!("{}.{n}{}", &name[..i], &name[i..]),
        None => format!("{name}.{n}"),
    };
    base.with_file_name(new)
}

impl crate::sinks::SinkType for FileSinkConfig {
    crate::sinks::sink_type_basics!("file");
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        self.validate()
            .map_err(|(f, m)| crate::sinks::FieldError::new(f, m))
    }
    fn build(&self, name: &str) -> Result<crate::sinks::AnySink, crate::sinks::BuildError> {
        let sink =
            super::FileSink::new(name, self.clone()).map_err(crate::sinks::BuildError::Invalid)?;
        Ok(Box::new(sink))
    }
}

impl crate::sinks::SinkType for StdoutSinkConfig {
    crate::sinks::sink_type_basics!("stdout");
    fn validate(&self) -> Result<(), crate::sinks::FieldError> {
        Ok(())
    }
    fn build(&self, name: &str) -> Result<crate::sinks::AnySink, crate::sinks::BuildError> {
        Ok(Box::new(super::StdoutSink::new(name, self)))
    }
}
