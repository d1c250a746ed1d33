//! Secrets (tokens) that never appear in logs, errors or `Debug` output.

/// A secret string. `Debug` and `Display` print `***`; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
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
                .map(|v| Secret(v.trim().to_owned()))
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

/// [`expand_vars`] with the process environment.
pub fn expand_env(text: &str) -> Result<String, String> {
    expand_vars(text, |name| std::env::var(name).ok())
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
}
