use super::*;
use crate::cli::RunArgs;
use crate::sources::twitter::stream::Buffer;

#[test]
fn telegram_webhook_keys_move_to_webhook_with_a_deprecation_naming_the_new_key() {
    let old = parse("[telegram]\nmax_body_bytes = 5\nack_timeout = \"2s\"\n").unwrap();
    assert_eq!(old.file.webhook.max_body_bytes, Some(5));
    assert_eq!(old.file.webhook.ack_timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        old.deprecations,
        [
            "`[telegram] max_body_bytes` is deprecated: write `max_body_bytes` in `[webhook]`",
            "`[telegram] ack_timeout` is deprecated: write `ack_timeout` in `[webhook]`",
        ]
    );
    let new = parse("[webhook]\nmax_body_bytes = 5\nack_timeout = \"2s\"\n").unwrap();
    assert_eq!(new.file.webhook.max_body_bytes, Some(5));
    assert!(new.deprecations.is_empty());
    // Both set: the new key wins, and the old one is still named.
    let both = parse("[webhook]\nmax_body_bytes = 7\n[telegram]\nmax_body_bytes = 5\n").unwrap();
    assert_eq!(both.file.webhook.max_body_bytes, Some(7));
    assert_eq!(both.deprecations.len(), 1);
    let zero = parse("[webhook]\nmax_body_bytes = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        zero.contains("line 2, field `webhook.max_body_bytes`"),
        "{zero}"
    );
}

fn parse(text: &str) -> Result<LoadedConfig, ConfigError> {
    LoadedConfig::parse(Some(PathBuf::from("ingest.toml")), text.to_owned())
}

// The example names every sink type; a build without one refuses it (CompiledOut).
#[cfg(all(
    feature = "kafka",
    feature = "s3",
    feature = "kinesis",
    feature = "mongodb"
))]
#[test]
fn the_example_config_parses_and_resolves() {
    let text = include_str!("../../config.example.toml");
    // The example's `${VAR}` secrets must be set, or resolving says which is not.
    for var in ["KAFKA_API_KEY", "KAFKA_API_SECRET", "MONGODB_PASSWORD"] {
        // SAFETY: test-only variables that no other test reads or unsets.
        unsafe { std::env::set_var(var, "example-value") };
    }
    let loaded = parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert!(!loaded.file.sinks.is_empty());
    // Every sink this build can run (a build without a connector's
    // feature refuses its type: tests/features.rs).
    let sinks = loaded.file.sinks.iter();
    let args = RunArgs {
        sinks: sinks
            .filter(|(_, c)| c.compiled_in())
            .map(|(name, _)| name.clone())
            .collect(),
        ..RunArgs::default()
    };
    Settings::resolve(&args, &loaded).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_twitter_buffer_is_memory_unless_the_config_or_a_flag_says_disk() {
    use clap::Parser;
    let twitter = |config: &str, flags: &[&str]| {
        let cli =
            crate::cli::Cli::try_parse_from(["ingest", "twitter", "--mock"].iter().chain(flags))
                .unwrap();
        let crate::cli::Command::Twitter(args) = cli.command else {
            unreachable!()
        };
        let loaded = parse(config).unwrap();
        let file = &loaded.file.twitter;
        crate::sources::twitter::stream::config::resolve(&args.flags(), file, loaded.at())
            .unwrap()
            .stream
            .buffer
    };
    assert_eq!(twitter("", &[]), Buffer::Memory);
    assert_eq!(twitter("[twitter]\nbuffer = \"disk\"\n", &[]), Buffer::Disk);
    assert_eq!(
        twitter("[twitter]\nbuffer = \"disk\"\n", &["--buffer", "memory"]),
        Buffer::Memory
    );
    assert_eq!(twitter("", &["--buffer", "disk"]), Buffer::Disk);
    let err = parse("[twitter]\nbuffer = \"tape\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("twitter.buffer"),
        "{err}"
    );
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let err = parse("state_dir = \"/tmp\"\n\n[sinks.lake]\ntype = \"file\"\npath = \"x.jsonl\"\npathh = \"y\"\n").unwrap_err().to_string();
    assert!(err.contains("ingest.toml line 6"), "{err}");
    assert!(err.contains("sinks.lake.pathh"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn unknown_sink_type_and_wrong_value_types() {
    let err = parse("[sinks.q]\ntype = \"carrier-pigeon\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("sinks.q.type") && err.contains("carrier-pigeon"),
        "{err}"
    );
    let err = parse("max_records = \"many\"\n").unwrap_err().to_string();
    assert!(
        err.contains("line 1") && err.contains("max_records"),
        "{err}"
    );
    let err = parse("[sinks.a]\ntype = \"file\"\n[sinks.a.batch]\nmax_records = -1\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 4") && err.contains("sinks.a.batch.max_records"),
        "{err}"
    );
    let err = parse("duration = \"soon\"\n").unwrap_err().to_string();
    assert!(
        err.contains("line 1") && err.contains("duration") && err.contains("try 90s"),
        "{err}"
    );
    let err = parse("[sinks.a]\npath = \"x\"\n").unwrap_err().to_string();
    assert!(err.contains("type"), "{err}");
}

#[test]
fn broken_toml_is_a_config_error() {
    for text in [
        "[sinks.a\ntype = 1",
        "a = = 1",
        "\u{0}",
        "[sinks.a]\ntype = \"file\"\n[sinks.a]\ntype = \"file\"\n",
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.starts_with("config error in ingest.toml line "),
            "{err}"
        );
    }
}

#[test]
fn validation_errors_point_at_the_field() {
    let loaded = parse("raw = false\n[sinks.lake]\ntype = \"file\"\nformat = \"raw\"\n").unwrap();
    let args = RunArgs {
        sinks: vec!["lake".into()],
        ..RunArgs::default()
    };
    let err = Settings::resolve(&args, &loaded).unwrap_err().to_string();
    assert!(
        err.contains("line 4") && err.contains("sinks.lake.format"),
        "{err}"
    );
    let loaded =
        parse("[sinks.lake]\ntype = \"file\"\n[sinks.lake.batch]\nmax_records = 0\n").unwrap();
    let err = Settings::resolve(&args, &loaded).unwrap_err().to_string();
    assert!(
        err.contains("line 4") && err.contains("sinks.lake.batch.max_records"),
        "{err}"
    );
}

#[test]
fn layering_flags_over_file_over_defaults() {
    let loaded =
        parse("max_records = 5\nduration = \"15m\"\ndefault_sinks = [\"stdout\"]\n").unwrap();
    let s = Settings::resolve(&RunArgs::default(), &loaded).unwrap();
    assert_eq!(s.max_records, Some(5));
    assert_eq!(s.duration, Some(Duration::from_secs(900)));
    assert_eq!(s.sinks[0].config.type_name(), "stdout");
    assert_eq!(s.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    assert!(s.keep_raw);
    let args = RunArgs {
        max_records: Some(9),
        sinks: vec!["file".into()],
        built_in: crate::cli::BuiltInSinkArgs {
            file_path: Some("o.jsonl".into()),
            ..Default::default()
        },
        no_raw: true,
        ..RunArgs::default()
    };
    let s = Settings::resolve(&args, &loaded).unwrap();
    assert_eq!(s.max_records, Some(9));
    assert!(!s.keep_raw);
    let SinkConfig::File(f) = &s.sinks[0].config else {
        panic!()
    };
    assert_eq!(f.path, "o.jsonl");
}

#[test]
fn unknown_and_duplicate_sinks_are_usage_errors() {
    let loaded = parse("[sinks.lake]\ntype = \"file\"\n").unwrap();
    let args = RunArgs {
        sinks: vec!["lakee".into()],
        ..RunArgs::default()
    };
    let err = Settings::resolve(&args, &loaded).unwrap_err();
    assert!(matches!(err, ResolveError::Usage(_)));
    assert!(err.to_string().contains("the config has: lake"), "{err}");
    let args = RunArgs {
        sinks: vec!["file".into(), "file".into()],
        ..RunArgs::default()
    };
    assert!(matches!(
        Settings::resolve(&args, &loaded).unwrap_err(),
        ResolveError::Usage(_)
    ));
    assert!(matches!(
        Settings::resolve(&RunArgs::default(), &loaded).unwrap_err(),
        ResolveError::Usage(_)
    ));
}

#[test]
fn a_bad_default_sinks_name_is_a_config_error_with_its_line() {
    let loaded =
        parse("duration = \"1m\"\ndefault_sinks = [\"lakee\"]\n[sinks.lake]\ntype = \"file\"\n")
            .unwrap();
    let err = Settings::resolve(&RunArgs::default(), &loaded).unwrap_err();
    assert!(matches!(err, ResolveError::Config(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("ingest.toml") && text.contains("line 2") && text.contains("lakee"),
        "{text}"
    );
    let loaded = parse("default_sinks = [\"s3\"]\n").unwrap();
    let err = Settings::resolve(&RunArgs::default(), &loaded).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn an_unset_property_variable_is_a_config_error_with_its_line() {
    let loaded = parse(
            "[sinks.k]\ntype = \"kafka\"\n[sinks.k.properties]\n\"sasl.password\" = \"${INGEST_TEST_SURELY_UNSET_VAR}\"\n",
        )
        .unwrap();
    let args = RunArgs {
        sinks: vec!["k".into()],
        ..RunArgs::default()
    };
    let err = Settings::resolve(&args, &loaded).unwrap_err();
    assert!(matches!(err, ResolveError::Config(_)), "{err}");
    let text = err.to_string();
    // The line holding the variable, not its table's header (line 3).
    assert!(
        text.contains("line 4")
            && text.contains("sasl.password")
            && text.contains("INGEST_TEST_SURELY_UNSET_VAR"),
        "{text}"
    );
}

#[test]
fn zero_webhook_limits_are_refused_at_load_with_the_line() {
    let err = parse("raw = true\n[telegram]\nmax_body_bytes = 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("config error in ingest.toml line 3, field `telegram.max_body_bytes`"),
        "{err}"
    );
    let err = parse("[webhook]\nmax_connections = 8\nbody_read_timeout = \"0s\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 3") && err.contains("webhook.body_read_timeout"),
        "{err}"
    );
    let ok = parse("[webhook]\nmax_connections = 8\nheader_read_timeout = \"2s\"\n").unwrap();
    assert_eq!(ok.file.webhook.max_connections, Some(8));
}
