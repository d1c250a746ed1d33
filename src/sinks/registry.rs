//! The sink types `ingest` knows, in one list: each type is a module that owns
//! its config struct (with its defaults and validation) and its constructor,
//! and one line of [`sink_types!`] registers it. The config layer, the
//! pipeline, `run` and `check` go through [`SinkConfig`] and never name a
//! sink type themselves.
//!
//! A type whose client is behind a cargo feature keeps its config struct in
//! every build, so a config that names it still parses, and says clearly that
//! this binary was built without it ([`BuildError::CompiledOut`]).

use serde::Deserialize;

use super::AnySink;
use super::common::CommonSinkConfig;
use crate::record::Format;

/// A field of a sink table is wrong: which one (relative to the table) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A sink could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A setting the client refused (a usage error: exit 2).
    #[error("{0}")]
    Invalid(String),
    /// A secret the config refers to is not in the environment (exit 78).
    #[error("{0}")]
    MissingSecret(String),
    /// This binary was built without the sink type's cargo feature (exit 78).
    #[error(
        "sink type `{0}` is not in this build of ingest: rebuild with `cargo build --release --features {0}` (or with the default features)"
    )]
    CompiledOut(&'static str),
}

/// What a sink type's config gives the rest of `ingest`.
pub trait SinkType {
    /// The `type = "…"` of its tables.
    fn type_name(&self) -> &'static str;
    /// `queue_capacity`, `[batch]` and `[retry]` (see [`common_sink_fields!`]).
    fn common(&self) -> CommonSinkConfig;
    /// `record` or `raw` (sinks without the choice write records).
    fn format(&self) -> Format;
    /// Checks the type's own fields.
    fn validate(&self) -> Result<(), FieldError>;
    /// The cargo feature the type's client needs, if any.
    fn feature(&self) -> Option<&'static str> {
        None
    }
    /// Builds the sink (without connecting: that is the healthcheck's job).
    /// A type whose feature is compiled out keeps this default.
    fn build(&self, _name: &str) -> Result<AnySink, BuildError> {
        Err(BuildError::CompiledOut(
            self.feature().unwrap_or(self.type_name()),
        ))
    }
}

/// The `SinkType` items every type writes alike: `type_name`, `common`,
/// `format` and, with `feature`, `feature` (the feature has the type's name).
macro_rules! sink_type_basics {
    ($name:literal) => {
        fn type_name(&self) -> &'static str {
            $name
        }
        $crate::sinks::common_sink_fields!();
        fn format(&self) -> $crate::record::Format {
            // `file` and `s3` have their own `FileFormat` (with Parquet).
            self.format.into()
        }
    };
    ($name:literal, feature) => {
        $crate::sinks::sink_type_basics!($name);
        fn feature(&self) -> Option<&'static str> {
            Some($name)
        }
    };
}

/// `SinkType::common` for a config struct with the three common fields.
macro_rules! common_sink_fields {
    () => {
        fn common(&self) -> $crate::sinks::common::CommonSinkConfig {
            $crate::sinks::common::CommonSinkConfig {
                queue_capacity: self.queue_capacity,
                batch: self.batch,
                retry: self.retry,
            }
        }
    };
}

// Re-exported here and by `sinks` (like `SinkType`), not at the crate root:
// each sink's `mod.rs` names `crate::sinks::sink_type_basics!`, its parent.
pub(crate) use {common_sink_fields, sink_type_basics};

/// Declares [`SinkConfig`] (the tagged enum of every `[sinks.NAME]` table) and
/// its dispatch from one line per sink type.
macro_rules! sink_types {
    ($($variant:ident($config:ty) = $name:literal),* $(,)?) => {
        /// One `[sinks.NAME]` table; `type` picks the sink.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type")]
        pub enum SinkConfig {
            $(#[serde(rename = $name)] $variant($config)),*
        }

        impl SinkConfig {
            /// Every `type` a sink table may have.
            pub const TYPES: &'static [&'static str] = &[$($name),*];

            fn inner(&self) -> &dyn SinkType {
                match self {
                    $(SinkConfig::$variant(c) => c),*
                }
            }

            /// Parses one table as the config of type `kind` alone: its error
            /// keeps the span that the tagged enum's error loses.
            pub fn parse_error(kind: &str, table: &str) -> Option<toml::de::Error> {
                match kind {
                    $($name => toml::from_str::<$config>(table).err(),)*
                    _ => None,
                }
            }
        }
    };
}

sink_types! {
    File(super::file::FileSinkConfig) = "file",
    Stdout(super::file::StdoutSinkConfig) = "stdout",
    Kafka(super::kafka::KafkaSinkConfig) = "kafka",
    S3(super::s3::S3SinkConfig) = "s3",
    Kinesis(super::kinesis::KinesisSinkConfig) = "kinesis",
    Mongodb(super::mongodb::MongodbSinkConfig) = "mongodb",
}

impl SinkConfig {
    /// The sink types a `--sink NAME` may name without a config table.
    pub const BUILT_IN: [&'static str; 4] = ["file", "stdout", "-", "kafka"];

    /// The config `--sink NAME` gets when no `[sinks.NAME]` table exists: the
    /// type's defaults, `Err` with what is missing for a type that needs a
    /// table, `None` for a name that is no type at all.
    pub fn defaults_for(name: &str) -> Option<Result<SinkConfig, String>> {
        Some(Ok(match name {
            "file" => SinkConfig::File(Default::default()),
            "stdout" | "-" => SinkConfig::Stdout(Default::default()),
            "kafka" => SinkConfig::Kafka(Default::default()),
            "s3" | "kinesis" | "mongodb" => {
                let needs = match name {
                    "s3" => "`bucket`",
                    "kinesis" => "`stream_name`",
                    _ => "`database` and `collection`",
                };
                return Some(Err(format!(
                    "sink `{name}` needs a [sinks.{name}] table in the config (with `type = \"{name}\"` and its {needs}); see config.example.toml"
                )));
            }
            _ => return None,
        }))
    }

    pub fn type_name(&self) -> &'static str {
        self.inner().type_name()
    }

    pub fn common(&self) -> CommonSinkConfig {
        self.inner().common()
    }

    pub fn format(&self) -> Format {
        self.inner().format()
    }

    /// Whether this build has the type's client (see [`super::compiled_in`]).
    pub fn compiled_in(&self) -> bool {
        self.inner().feature().is_none_or(super::compiled_in)
    }

    /// The type's own checks, then whether this build has the type at all.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.format() == Format::Text && !matches!(self.type_name(), "kafka" | "kinesis") {
            return Err(FieldError::new(
                "format",
                "`text` (the post's text alone as a message value) is for the kafka and kinesis sinks; a line-oriented or document sink writes `record` or `raw`",
            ));
        }
        self.inner().validate()?;
        match self.inner().feature() {
            Some(feature) if !super::compiled_in(feature) => Err(FieldError::new(
                "type",
                BuildError::CompiledOut(feature).to_string(),
            )),
            _ => Ok(()),
        }
    }

    pub fn build(&self, name: &str) -> Result<AnySink, BuildError> {
        if let Some(feature) = self.inner().feature()
            && !super::compiled_in(feature)
        {
            return Err(BuildError::CompiledOut(feature));
        }
        self.inner().build(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_by_its_name_and_reports_it() {
        for name in SinkConfig::TYPES {
            let extra = match *name {
                "s3" => "bucket = \"b\"\n",
                "kinesis" => "stream_name = \"s\"\n",
                "mongodb" => {
                    "uri = \"mongodb://127.0.0.1\"\ndatabase = \"d\"\ncollection = \"c\"\n"
                }
                _ => "",
            };
            let c: SinkConfig = toml::from_str(&format!("type = \"{name}\"\n{extra}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.type_name(), *name);
            assert_eq!(c.common(), CommonSinkConfig::default(), "{name}");
        }
    }

    #[test]
    fn built_in_names_have_defaults_and_others_say_what_they_need() {
        for name in SinkConfig::BUILT_IN {
            assert!(SinkConfig::defaults_for(name).unwrap().is_ok(), "{name}");
        }
        let err = SinkConfig::defaults_for("s3").unwrap().unwrap_err();
        assert!(
            err.contains("[sinks.s3]") && err.contains("bucket"),
            "{err}"
        );
        assert!(SinkConfig::defaults_for("lake").is_none());
    }
}
