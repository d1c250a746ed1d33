//! The object key template: parsed (and checked) from the config in every
//! build; with the `s3` feature, rendered per record into a partition
//! (everything but `{timestamp}` and `{uuid}`), then into one object's key.

#[cfg(feature = "s3")]
use sha2::{Digest, Sha256};

use crate::sinks::template::{Target, Template};

/// A parsed key template: the shared [`Template`] engine plus the S3 rules.
#[derive(Debug, Clone)]
pub struct KeyTemplate {
    pub(super) template: Template,
}

impl KeyTemplate {
    pub fn parse(template: &str) -> Result<Self, String> {
        if template.trim().is_empty() {
            return Err("the key template is empty".into());
        }
        if template.starts_with('/') {
            return Err(format!(
                "`{template}` starts with `/`: S3 keys have no leading slash"
            ));
        }
        let t = Template::compile(template, Target::S3Key)?;
        if !(t.has("uuid") || t.has("timestamp_us") || t.has("id")) {
            return Err(format!(
                "`{template}` has no `{{uuid}}` (one object per batch and partition), `{{timestamp_us}}` or `{{id}}` (one object per record): without one of them two writes could get the same key and one would overwrite the other"
            ));
        }
        Ok(KeyTemplate { template: t })
    }

    /// One object per batch and partition (the template has `{uuid}`), or
    /// one object per record.
    pub fn per_batch(&self) -> bool {
        self.template.has("uuid")
    }
}

/// A UUID derived from the ids in an object, so a retried write replaces the
/// same object instead of adding a second copy.
#[cfg(feature = "s3")]
pub(super) fn content_uuid<'a>(ids: impl Iterator<Item = &'a str>) -> uuid::Uuid {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_templates_say_why() {
        assert!(
            KeyTemplate::parse("{platform}/{date}.jsonl")
                .unwrap_err()
                .contains("{uuid}")
        );
        assert!(
            KeyTemplate::parse("{platfrom}/{uuid}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            KeyTemplate::parse("{uuid")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            KeyTemplate::parse("/x/{uuid}")
                .unwrap_err()
                .contains("leading slash")
        );
        let seed = KeyTemplate::parse("telegram/context_date={date}/{timestamp_us}.json").unwrap();
        assert!(!seed.per_batch());
        assert!(
            KeyTemplate::parse(super::super::DEFAULT_KEY_TEMPLATE)
                .unwrap()
                .per_batch()
        );
    }
}
