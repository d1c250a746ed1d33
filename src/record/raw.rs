//! A record's `raw`: the original payload as JSON text, sharing the bytes of
//! the line it was read from. Keeping `raw` costs no copy and no second parse
//! on the X stream: the record holds a slice of the received chunk.

use std::fmt;

use bytes::Bytes;
use serde::de::Error as _;
use serde_json::value::RawValue;

/// One well-formed JSON value, as UTF-8 text without surrounding whitespace.
#[derive(Clone, PartialEq, Eq)]
pub struct RawJson(Bytes);

impl RawJson {
    /// Shares `bytes` as the payload, unchecked.
    ///
    /// # Safety
    /// `bytes` must be UTF-8 and hold exactly one well-formed JSON value with
    /// no whitespace around it (for example, bytes `serde_json::from_str`
    /// parsed whole): [`RawJson::get`] and the writers rely on both.
    pub unsafe fn from_bytes_unchecked(bytes: Bytes) -> Self {
        RawJson(bytes)
    }

    /// Checks `text` is one JSON value and keeps it.
    pub fn from_string(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(RawJson::from)
    }

    /// Checks a trimmed line is one JSON value and keeps a copy of it.
    pub fn from_slice(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<&RawValue>(line)
            .map(|v| RawJson(Bytes::copy_from_slice(v.get().as_bytes())))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        // SAFETY: every constructor keeps UTF-8 text only (checked, or the
        // caller's promise in `from_bytes_unchecked`).
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The JSON text's bytes, shared.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(value: Box<RawValue>) -> Self {
        let text: Box<str> = value.into();
        RawJson(Bytes::from(text.into_boxed_bytes()))
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawJson").field(&self.get()).finish()
    }
}

impl serde::Serialize for RawJson {
    /// As the JSON value itself (through `RawValue`: verbatim in serde_json).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value: &RawValue =
            serde_json::from_str(self.get()).map_err(serde::ser::Error::custom)?;
        value.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d)
            .map(RawJson::from)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_line_reads_and_serializes_verbatim() {
        let line = Bytes::from_static(br#"{"a": [1, "\u00e9"]}"#);
        let raw = unsafe { RawJson::from_bytes_unchecked(line.clone()) };
        assert_eq!(raw.get(), r#"{"a": [1, "\u00e9"]}"#);
        assert_eq!(raw.bytes().as_ptr(), line.as_ptr(), "no copy");
        assert_eq!(serde_json::to_string(&raw).unwrap(), raw.get());
        let back: RawJson = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn checked_constructors_refuse_what_is_not_one_json_value() {
        assert!(RawJson::from_string("{\"a\":".into()).is_err());
        assert!(RawJson::from_slice(b"{} {}").is_err());
        assert!(RawJson::from_slice(b"\xff").is_err());
        assert_eq!(RawJson::from_slice(b"[1,2]").unwrap().get(), "[1,2]");
    }
}
