//! `ingest schema`: the record's shape, generated from the types that make
//! it: the JSON Schema derived from [`Record`] (schemars), and the Arrow
//! schema the Parquet writer itself uses (`sinks::parquet::schema`).

use crate::cli::SchemaFormat;
use crate::record::Record;

/// The JSON Schema (draft 2020-12) of one record as the JSON sinks write it.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Record)).expect("a schema serializes")
}

/// The Arrow schema of the Parquet files (with the `raw` column), as JSON.
#[cfg(feature = "parquet")]
pub fn arrow_schema() -> serde_json::Value {
    use crate::sinks::parquet::schema;
    schema::describe(&schema::arrow_schema(true))
}

/// The Parquet message type of the files (with the `raw` column).
#[cfg(feature = "parquet")]
pub fn parquet_schema() -> String {
    use parquet::arrow::ArrowSchemaConverter;
    let arrow = crate::sinks::parquet::schema::arrow_schema(true);
    let descr = ArrowSchemaConverter::new()
        .convert(&arrow)
        .expect("the record's Arrow schema converts to Parquet");
    let mut out = Vec::new();
    parquet::schema::printer::print_schema(&mut out, descr.root_schema());
    String::from_utf8(out).expect("the schema printer writes UTF-8")
}

/// Prints the schema in `format` on stdout; the exit code.
pub fn print(format: SchemaFormat) -> Result<u8, crate::run::Error> {
    let text = match format {
        SchemaFormat::JsonSchema => pretty(&json_schema()),
        #[cfg(feature = "parquet")]
        SchemaFormat::Arrow => pretty(&arrow_schema()),
        #[cfg(feature = "parquet")]
        SchemaFormat::Parquet => parquet_schema(),
        #[cfg(not(feature = "parquet"))]
        SchemaFormat::Arrow | SchemaFormat::Parquet => {
            return Err(crate::run::Error::CompiledOut(
                "the Arrow and Parquet schemas are not in this build of ingest: rebuild with `cargo build --release --features parquet` (or with the default features)".into(),
            ));
        }
    };
    Ok(super::man::write_stdout(text.as_bytes()))
}

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("JSON serializes");
    s.push('\n');
    s
}

/// The field paths (`author.id`, `matching_rules.tag`…) a JSON Schema
/// describes, following `$ref`s into `$defs`, arrays into their items, and
/// `anyOf`/`oneOf` (how optional structs are written).
pub fn json_schema_paths(schema: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_json(schema, schema, "", &mut out);
    out.sort();
    out
}

fn walk_json(
    root: &serde_json::Value,
    node: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    if let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
        let name = r.trim_start_matches("#/$defs/");
        return walk_json(root, &root["$defs"][name], prefix, out);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for sub in node
            .get(key)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            walk_json(root, sub, prefix, out);
        }
    }
    if let Some(items) = node.get("items") {
        walk_json(root, items, prefix, out);
    }
    if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
        for (name, sub) in props {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.push(path.clone());
            walk_json(root, sub, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_schema_describes_every_record_field() {
        let s = json_schema();
        assert_eq!(s["title"], "ingest record");
        let required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for f in ["id", "platform", "kind", "received_at", "run"] {
            assert!(required.contains(&f), "{f} required: {required:?}");
        }
        assert_eq!(s["additionalProperties"], false);
        let paths = json_schema_paths(&s);
        for p in [
            "author.username",
            "chat.type",
            "matching_rules.tag",
            "refs.update_id",
            "run.started_at",
            "raw",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p} in {paths:?}");
        }
    }

    /// The Arrow schema's fields, nested, as dotted paths.
    #[cfg(feature = "parquet")]
    fn arrow_paths() -> Vec<String> {
        use arrow::datatypes::{DataType, Field};
        fn walk(f: &Field, prefix: &str, out: &mut Vec<String>) {
            let path = if prefix.is_empty() {
                f.name().clone()
            } else {
                format!("{prefix}.{}", f.name())
            };
            out.push(path.clone());
            let children = match f.data_type() {
                DataType::Struct(fields) => fields.iter().cloned().collect(),
                DataType::List(item) => match item.data_type() {
                    DataType::Struct(fields) => fields.iter().cloned().collect(),
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            for c in children {
                walk(&c, &path, out);
            }
        }
        let schema = crate::sinks::parquet::schema::arrow_schema(true);
        let mut out = Vec::new();
        for f in schema.fields() {
            walk(f, "", &mut out);
        }
        out.sort();
        out
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn the_json_schema_and_the_arrow_schema_name_the_same_fields() {
        assert_eq!(json_schema_paths(&json_schema()), arrow_paths());
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn the_parquet_schema_has_utc_timestamps_and_nested_groups() {
        let text = parquet_schema();
        assert!(
            text.contains("INT64 received_at (TIMESTAMP(MILLIS,true))"),
            "{text}"
        );
        assert!(text.contains("group author"), "{text}");
        assert!(text.contains("group matching_rules (LIST)"), "{text}");
    }
}
