//! Where media bytes go: files (written whole: a temporary file, fsync,
//! rename) or S3 objects (one PUT). Paths are content-addressed, so an object
//! that exists already holds these bytes and is not written again.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::config::StoreSettings;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Worth another attempt (network, throttling, 5xx, a full disk may clear).
    #[error("{0}")]
    Retryable(String),
    /// Retrying cannot help (no bucket, access denied, a path that cannot be a file).
    #[error("{0}")]
    Fatal(String),
}

/// The media store of a run.
#[derive(Debug)]
pub enum MediaStore {
    File,
    #[cfg(feature = "s3")]
    S3(s3::S3Store),
}

impl MediaStore {
    /// The store the settings name; S3 needs the `s3` feature.
    pub fn new(settings: &StoreSettings) -> Result<Self, String> {
        match settings {
            StoreSettings::File => Ok(MediaStore::File),
            #[cfg(feature = "s3")]
            StoreSettings::S3 {
                bucket,
                prefix,
                force_path_style,
                connection,
            } => Ok(MediaStore::S3(s3::S3Store::new(
                bucket,
                prefix,
                *force_path_style,
                connection.clone(),
            ))),
            #[cfg(not(feature = "s3"))]
            StoreSettings::S3 { .. } => Err(
                "`[media] store = \"s3\"` needs the `s3` feature, which this build was compiled without"
                    .into(),
            ),
        }
    }

    /// Stores `bytes` at `path` unless an object is there already; the object's URI.
    pub async fn put(
        &self,
        path: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<String, StoreError> {
        match self {
            MediaStore::File => {
                // A file has no content type of its own: its extension says it.
                let _ = content_type;
                let path = PathBuf::from(path);
                tokio::task::spawn_blocking(move || write_file(&path, &bytes))
                    .await
                    .map_err(|e| StoreError::Fatal(format!("the file writer panicked: {e}")))?
            }
            #[cfg(feature = "s3")]
            MediaStore::S3(s) => s.put(path, bytes, content_type).await,
        }
    }

    /// Writes a probe object in `dir` (empty, or ending in `/`), reads it
    /// back and deletes it (`ingest check`); what was checked.
    pub async fn probe(&self, dir: &str) -> Result<String, StoreError> {
        let name = format!(".ingest-probe-{}", uuid::Uuid::new_v4());
        let path = format!("{dir}{name}");
        let body = Bytes::from(format!("ingest check {name}"));
        match self {
            MediaStore::File => {
                let p = PathBuf::from(&path);
                tokio::task::spawn_blocking(move || probe_file(&p, &body))
                    .await
                    .map_err(|e| StoreError::Fatal(format!("the probe panicked: {e}")))?
            }
            #[cfg(feature = "s3")]
            MediaStore::S3(s) => s.probe(&path, body).await,
        }
    }
}

/// `file://` and the absolute path.
fn file_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    format!("file://{}", abs.display())
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    let m = format!("{what} {}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::PermissionDenied
        | std::io::ErrorKind::NotADirectory
        | std::io::ErrorKind::IsADirectory
        | std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::ReadOnlyFilesystem => StoreError::Fatal(m),
        _ => StoreError::Retryable(m),
    }
}

/// Writes `bytes` at `path` whole (temporary file, fsync, rename, fsync of the
/// directory), unless a file of that length is there already.
fn write_file(path: &Path, bytes: &[u8]) -> Result<String, StoreError> {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
        return Ok(file_uri(path));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, &e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("cannot write", path, &e));
    }
    Ok(file_uri(path))
}

fn probe_file(path: &Path, body: &[u8]) -> Result<String, StoreError> {
    write_file(path, body)?;
    let back = std::fs::read(path).map_err(|e| io_error("cannot read back", path, &e));
    let removed = std::fs::remove_file(path).map_err(|e| io_error("cannot delete", path, &e));
    if back? != body {
        return Err(StoreError::Fatal(format!(
            "{} read back other bytes than were written",
            path.display()
        )));
    }
    removed?;
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(format!("write, read back and delete in {}", file_uri(dir)))
}

#[cfg(feature = "s3")]
mod s3 {
    use aws_sdk_s3::Client;
    use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
    use aws_sdk_s3::error::SdkError;
    use aws_sdk_s3::primitives::ByteStream;
    use bytes::Bytes;
    use tokio::sync::OnceCell;

    use super::StoreError;
    use crate::sinks::aws::{self, AwsConnection, ErrorClass};

    /// Media objects in one bucket.
    #[derive(Debug)]
    pub struct S3Store {
        bucket: String,
        prefix: String,
        force_path_style: bool,
        connection: AwsConnection,
        client: OnceCell<Client>,
    }

    impl S3Store {
        pub fn new(
            bucket: &str,
            prefix: &str,
            force_path_style: bool,
            connection: AwsConnection,
        ) -> Self {
            S3Store {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
                force_path_style,
                connection,
                client: OnceCell::new(),
            }
        }

        async fn client(&self) -> &Client {
            self.client
                .get_or_init(|| async {
                    let sdk = self.connection.sdk_config().await;
                    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
                        .force_path_style(self.force_path_style)
                        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
                        .build();
                    Client::from_conf(s3)
                })
                .await
        }

        fn error<E>(&self, what: &str, e: &SdkError<E>) -> StoreError
        where
            E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        {
            if aws::code(e) == Some("NoSuchBucket") {
                return StoreError::Fatal(format!(
                    "the bucket `{}` does not exist: create it, or fix `bucket` in [media]",
                    self.bucket
                ));
            }
            match aws::classify(what, e) {
                ErrorClass::Retry(m) => StoreError::Retryable(m),
                ErrorClass::Fatal(m) => StoreError::Fatal(m),
            }
        }

        /// PUTs the object unless HEAD finds it.
        pub async fn put(
            &self,
            path: &str,
            bytes: Bytes,
            content_type: &str,
        ) -> Result<String, StoreError> {
            let key = format!("{}{path}", self.prefix);
            let uri = format!("s3://{}/{key}", self.bucket);
            let client = self.client().await;
            match client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(h) if h.content_length() == Some(bytes.len() as i64) => return Ok(uri),
                Ok(_) => {}
                Err(e) if aws::status(&e) == Some(404) => {}
                Err(e) => return Err(self.error(&format!("HEAD {uri}"), &e)),
            }
            client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .content_type(content_type)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| self.error(&format!("PUT {uri}"), &e))?;
            Ok(uri)
        }

        /// PUT, GET and DELETE of a probe object.
        pub async fn probe(&self, path: &str, body: Bytes) -> Result<String, StoreError> {
            let sdk = self.connection.sdk_config().await;
            aws::check_credentials(&sdk)
                .await
                .map_err(StoreError::Fatal)?;
            let key = format!("{}{path}", self.prefix);
            let uri = format!("s3://{}/{key}", self.bucket);
            let client = self.client().await;
            client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map_err(|e| self.error(&format!("PUT {uri}"), &e))?;
            let got = client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error(&format!("GET {uri}"), &e))?;
            let back = got
                .body
                .collect()
                .await
                .map_err(|e| StoreError::Retryable(format!("GET {uri}: {e}")))?
                .into_bytes();
            client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error(&format!("DELETE {uri}"), &e))?;
            if back != body {
                return Err(StoreError::Fatal(format!(
                    "{uri} read back other bytes than were written"
                )));
            }
            Ok(format!("PUT, GET and DELETE of {uri}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_written_whole_once_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("media/ab/abc.jpg");
        let p = path.to_str().unwrap();
        let store = MediaStore::File;
        let uri = store
            .put(p, Bytes::from_static(b"bytes"), "image/jpeg")
            .await
            .unwrap();
        assert_eq!(uri, format!("file://{p}"));
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
        // Present already: not written again (a different mtime would show it).
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        store
            .put(p, Bytes::from_static(b"bytes"), "image/jpeg")
            .await
            .unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    #[tokio::test]
    async fn a_path_that_cannot_be_a_file_fails_for_good() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("media"), b"a file, not a directory").unwrap();
        let p = dir.path().join("media/x/abc.jpg");
        let e = MediaStore::File
            .put(p.to_str().unwrap(), Bytes::from_static(b"b"), "x/y")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot create"), "{e}");
    }

    #[tokio::test]
    async fn the_probe_writes_reads_back_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        let said = MediaStore::File
            .probe(&format!("{}/", media.display()))
            .await
            .unwrap();
        assert!(said.contains("write, read back and delete"), "{said}");
        let left: Vec<_> = std::fs::read_dir(&media).unwrap().collect();
        assert!(left.is_empty());
        std::fs::write(dir.path().join("blocker"), b"a file").unwrap();
        let e = MediaStore::File
            .probe(&format!("{}/blocker/", dir.path().display()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("blocker"), "{e}");
    }
}
