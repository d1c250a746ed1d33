//! Records as the Parquet files of `format = "parquet"` (the columns
//! `sinks::parquet::schema` documents), read column by column with Apache
//! Arrow's own reader. Columns are found by name, so a file without `raw`
//! (`raw = false`) or with extra columns still reads.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, StructArray};
use arrow::datatypes::TimestampMillisecondType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Observation, Place, RawState, ReportError, Tally};

/// Rows per batch the reader hands over.
const BATCH_ROWS: usize = 8192;

/// Counts every row of the Parquet file at `path` into `tally`.
pub(super) fn read(path: &Path, tally: &mut Tally) -> Result<(), ReportError> {
    let bad = |message: String| ReportError::Parquet {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| ReportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| bad(e.to_string()))?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let columns = Columns::of(&batch).map_err(bad)?;
        for i in 0..batch.num_rows() {
            row += 1;
            let at = Place {
                file: path,
                unit: "row",
                number: row,
            };
            match columns.observe(i) {
                Some(o) => tally.record(o, &at),
                None => tally.malformed(&at, "a row without id, platform or kind"),
            }
        }
    }
    Ok(())
}

/// The columns of one batch the report reads.
struct Columns<'a> {
    id: &'a StringArray,
    platform: &'a StringArray,
    kind: &'a StringArray,
    text: Option<&'a StringArray>,
    lang: Option<&'a StringArray>,
    raw: Option<&'a StringArray>,
    created: Option<&'a arrow::array::PrimitiveArray<TimestampMillisecondType>>,
    received: Option<&'a arrow::array::PrimitiveArray<TimestampMillisecondType>>,
    author: Option<&'a StructArray>,
    chat: Option<&'a StructArray>,
    tags: Option<&'a arrow::array::ListArray>,
}

fn string<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch.column_by_name(name)?.as_string_opt::<i32>()
}

fn field<'a>(s: &'a StructArray, name: &str) -> Option<&'a StringArray> {
    s.column_by_name(name)?.as_string_opt::<i32>()
}

fn get(a: Option<&StringArray>, i: usize) -> Option<String> {
    a.filter(|a| a.is_valid(i)).map(|a| a.value(i).to_owned())
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, String> {
        let required = |name: &str| {
            string(batch, name).ok_or_else(|| {
                format!("no text column `{name}`: not a file of ingest records (`ingest schema --format parquet`)")
            })
        };
        let time = |name: &str| {
            batch
                .column_by_name(name)?
                .as_primitive_opt::<TimestampMillisecondType>()
        };
        Ok(Columns {
            id: required("id")?,
            platform: required("platform")?,
            kind: required("kind")?,
            text: string(batch, "text"),
            lang: string(batch, "lang"),
            raw: string(batch, "raw"),
            created: time("created_at"),
            received: time("received_at"),
            author: batch
                .column_by_name("author")
                .and_then(|c| c.as_struct_opt()),
            chat: batch.column_by_name("chat").and_then(|c| c.as_struct_opt()),
            tags: batch
                .column_by_name("tags")
                .and_then(|c| c.as_list_opt::<i32>()),
        })
    }

    /// Row `i` as an observation; `None` when a required value is null.
    fn observe(&self, i: usize) -> Option<Observation> {
        let valid = |a: &StringArray| a.is_valid(i);
        if !(valid(self.id) && valid(self.platform) && valid(self.kind)) {
            return None;
        }
        let author = self.author.filter(|a| a.is_valid(i)).and_then(|a| {
            get(field(a, "username"), i)
                .map(|u| format!("@{u}"))
                .or_else(|| get(field(a, "id"), i))
        });
        let chat = self.chat.filter(|c| c.is_valid(i)).and_then(|c| {
            get(field(c, "title"), i).or_else(|| {
                let id = c
                    .column_by_name("id")?
                    .as_primitive_opt::<arrow::datatypes::Int64Type>()?;
                id.is_valid(i).then(|| id.value(i).to_string())
            })
        });
        let tags = self
            .tags
            .filter(|t| t.is_valid(i))
            .and_then(|t| {
                let item = t.value(i);
                let s = item.as_string_opt::<i32>()?;
                Some(s.iter().flatten().map(str::to_owned).collect())
            })
            .unwrap_or_default();
        let millis = |a: Option<&arrow::array::PrimitiveArray<TimestampMillisecondType>>| {
            a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
        };
        Some(Observation {
            id: self.id.value(i).to_owned(),
            platform: self.platform.value(i).to_owned(),
            kind: self.kind.value(i).to_owned(),
            created_ms: millis(self.created),
            received_ms: millis(self.received),
            text: get(self.text, i),
            tags,
            lang: get(self.lang, i),
            author,
            chat,
            raw: Some(match self.raw.filter(|r| r.is_valid(i)) {
                None => RawState::Absent,
                Some(r) => RawState::of_text(r.value(i)),
            }),
        })
    }
}
