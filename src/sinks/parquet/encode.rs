//! One batch of records into one complete Parquet file (one row group).

use std::sync::Arc;

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::{Compression, ParquetOptions, schema};
use crate::record::Record;

/// A batch that could not be encoded (a bug, not an I/O failure: encoding is in memory).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot build the Arrow columns: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("cannot write Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Who wrote the files, in their footer (`created_by`).
const CREATED_BY: &str = concat!("ingest ", env!("CARGO_PKG_VERSION"));

fn properties(options: ParquetOptions, rows: usize) -> WriterProperties {
    let codec = match options.compression {
        Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
        Compression::Snappy => Codec::SNAPPY,
    };
    WriterProperties::builder()
        .set_compression(codec)
        .set_created_by(CREATED_BY.to_owned())
        // One row group for the whole batch.
        .set_max_row_group_row_count(Some(rows.max(1)))
        .set_max_row_group_bytes(None)
        .build()
}

/// The records as the bytes of one Parquet file with one row group.
pub fn encode(records: &[Arc<Record>], options: ParquetOptions) -> Result<Vec<u8>, EncodeError> {
    let batch = schema::record_batch(records, options.raw)?;
    let props = properties(options, records.len());
    let estimate: usize = records.iter().map(|r| r.approx_size()).sum();
    let mut writer = ArrowWriter::try_new(
        Vec::with_capacity(estimate / 3),
        batch.schema(),
        Some(props),
    )?;
    writer.write(&batch)?;
    Ok(writer.into_inner()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NormalizeOptions, Normalized, RunInfo};
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn tweets(n: usize) -> Vec<Arc<Record>> {
        let opts = NormalizeOptions::new(Arc::new(RunInfo::new(None)));
        (0..n)
            .map(|i| {
                let line = format!(r#"{{"data":{{"id":"{i}","text":"text {i}"}}}}"#);
                match crate::sources::twitter::normalize_line(
                    line.as_bytes(),
                    &"2026-11-30T00:00:00.000Z".into(),
                    &opts,
                )
                .unwrap()
                {
                    Normalized::Record(r) => Arc::new(*r),
                    _ => panic!(),
                }
            })
            .collect()
    }

    #[test]
    fn a_batch_is_one_file_with_one_row_group() {
        for compression in [Compression::Zstd, Compression::Snappy] {
            let options = ParquetOptions {
                compression,
                raw: true,
            };
            let bytes = encode(&tweets(3000), options).unwrap();
            assert_eq!(&bytes[..4], b"PAR1");
            let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes)).unwrap();
            let meta = reader.metadata().clone();
            assert_eq!(meta.num_row_groups(), 1);
            assert_eq!(meta.file_metadata().num_rows(), 3000);
            let codec = meta.row_group(0).column(0).compression();
            assert_eq!(
                matches!(codec, Codec::ZSTD(_)),
                compression == Compression::Zstd,
                "{codec:?}"
            );
            let rows: usize = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
            assert_eq!(rows, 3000);
        }
    }
}
