//! Secrets (tokens) that never appear in logs, errors or `Debug` output.
//!
//! `Debug` and `Display` of a [`Secret`] print `***`. That does not cover text
//! that echoes a secret without going through the type — an error body from a
//! proxy that repeats the request path with the bot token in it, a URL in a
//! transport error. So every secret also registers its value (and its
//! percent-encoded form) in a process-wide list, and [`redact`] replaces them
//! in any text before it is shown: every log line (the log writer calls it),
//! the run summary, `ingest check` output,
//! the final error and the error field of dead letters.

use std::borrow::Cow;
use std::sync::RwLock;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// What a redacted secret becomes.
pub const REDACTED: &str = "***";

/// Values shorter than this are not registered: redacting every `k` or `1234`
/// in every log line would hide more than it protects (real tokens are longer).
const MIN_REDACTED_LEN: usize = 6;

/// Every registered secret form, longest first.
static REGISTRY: RwLock<Vec<Box<str>>> = RwLock::new(Vec::new());

/// Remembers `value` (and its percent-encoded form) so [`redact`] hides it.
pub fn register(value: &str) {
    let value = value.trim();
    if value.len() < MIN_REDACTED_LEN {
        return;
    }
    let encoded = utf8_percent_encode(value, NON_ALPHANUMERIC).to_string();
    let mut registry = REGISTRY.write().unwrap_or_else(|p| p.into_inner());
    for form in [value.to_owned(), encoded] {
        if !registry.iter().any(|r| **r == *form) {
            registry.push(form.into_boxed_str());
        }
    }
    registry.sort_by_key(|r| std::cmp::Reverse(r.len()));
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    let registry = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    if registry.is_empty() || !registry.iter().any(|s| text.contains(&**s)) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_owned();
    for secret in registry.iter() {
        if out.contains(&**secret) {
            out = out.replace(&**secret, REDACTED);
        }
    }
    Cow::Owned(out)
}

/// [`redact`] over bytes that may not be UTF-8 (a log buffer): secrets are
/// ASCII or UTF-8, so a byte search finds them whatever surrounds them.
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let registry = REGISTRY.read().unwrap_or_else(|p| p.into_inner());
    let hit = |b: &[u8], s: &str| memchr::memmem::find(b, s.as_bytes()).is_some();
    if registry.is_empty() || !registry.iter().any(|s| hit(bytes, s)) {
        return Cow::Borrowed(bytes);
    }
    let mut out = bytes.to_vec();
    for secret in registry.iter() {
        let needle = secret.as_bytes();
        let mut replaced = Vec::with_capacity(out.len());
        let mut rest = &out[..];
        while let Some(i) = memchr::memmem::find(rest, needle) {
            replaced.extend_from_slice(&rest[..i]);
            replaced.extend_from_slice(REDACTED.as_bytes());
            rest = &rest[i + needle.len()..];
        }
        replaced.extend_from_slice(rest);
        out = replaced;
    }
    Cow::Owned(out)
}

/// A secret string. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret; its value is also registered for [`redact`].
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        register(&value);
        Secret(value)
    }

    /// The value, for the one place that sends it (an `Authorization` header, a URL path).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The first environment variable of `names` that is set and not empty.
    pub fn from_env(names: &[&str]) -> Option<Self> {
        names.iter().find_map(|n| {
            std::env::var(n)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| Secret::new(v.trim()))
        })
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Replaces every `${VAR}` in `text` with `get(VAR)`; `Err(VAR)` names the
/// first one that is unset. An unclosed `${` stays as written.
pub fn expand_vars(text: &str, get: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("${") {
        let Some(len) = rest[open + 2..].find('}') else {
            break;
        };
        let name = &rest[open + 2..open + 2 + len];
        out.push_str(&rest[..open]);
        out.push_str(&get(name).ok_or_else(|| name.to_owned())?);
        rest = &rest[open + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// [`expand_vars`] with the process environment. `${VAR}` is how secrets
/// reach configs (Kafka SASL passwords, Mongo URIs), so every value it brings
/// in is registered for [`redact`].
pub fn expand_env(text: &str) -> Result<String, String> {
    expand_vars(text, |name| {
        let value = std::env::var(name).ok()?;
        register(&value);
        Some(value)
    })
}

/// An error and its causes, `: `-joined, each cause once: "error sending
/// request" alone hides whether the connection was refused, the name did not
/// resolve or TLS failed. (Secrets are redacted where the text is printed.)
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("AAAA-very-secret");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "AAAA-very-secret");
    }

    #[test]
    fn registered_secrets_are_redacted_from_any_text() {
        let token = Secret::new("424242:redact-me-Token_x");
        let _ = token;
        let echoed = "404 Not Found: /bot424242:redact-me-Token_x/getUpdates and /bot424242%3Aredact%2Dme%2DToken%5Fx/";
        let clean = redact(echoed);
        assert!(!clean.contains("redact-me"), "{clean}");
        assert!(!clean.contains("redact%2Dme"), "{clean}");
        assert_eq!(clean, "404 Not Found: /bot***/getUpdates and /bot***/");
        let bytes = redact_bytes(echoed.as_bytes());
        assert_eq!(&*bytes, clean.as_bytes());
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn short_values_are_not_registered() {
        let _ = Secret::new("k");
        assert_eq!(redact("kkk keep"), "kkk keep");
    }

    #[test]
    fn expanded_variables_are_registered() {
        let got = expand_vars("x", |_| None).unwrap();
        assert_eq!(got, "x");
        // SAFETY: a test-only variable no other test reads.
        unsafe { std::env::set_var("INGEST_TEST_REDACT_PW", "pw-from-env-123") };
        let props = expand_env("sasl.password=${INGEST_TEST_REDACT_PW}").unwrap();
        assert_eq!(props, "sasl.password=pw-from-env-123");
        assert_eq!(
            redact("auth failed for pw-from-env-123"),
            "auth failed for ***"
        );
    }
}
