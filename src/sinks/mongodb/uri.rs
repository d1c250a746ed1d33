//! The connection string's secrets: `${VAR}` expansion, the redacted form
//! for messages and `Debug`, and (with the client) the password to scrub from
//! the driver's errors.

/// `uri` with every `${VAR}` replaced; an unset variable is an error naming it.
pub(super) fn expand_uri(
    uri: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    crate::secret::expand_vars(uri, get)
        .map_err(|name| format!("the environment variable `{name}` used in `uri` is not set"))
}

/// A connection string with its user and password replaced by `***`.
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return uri.to_owned();
    };
    let authority_end = uri[scheme_end..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| scheme_end + i);
    match uri[scheme_end..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &uri[..scheme_end], &uri[scheme_end + at..]),
        None => uri.to_owned(),
    }
}

/// The password in a connection string, raw and percent-decoded, to scrub from messages.
pub fn secrets_in(uri: &str) -> Vec<String> {
    let Some(scheme_end) = uri.find("://").map(|i| i + 3) else {
        return Vec::new();
    };
    let authority_end = uri[scheme_end..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| scheme_end + i);
    let authority = &uri[scheme_end..authority_end];
    let Some(at) = authority.rfind('@') else {
        return Vec::new();
    };
    let userinfo = &authority[..at];
    let mut out = Vec::new();
    if let Some((_, password)) = userinfo.split_once(':')
        && !password.is_empty()
    {
        out.push(password.to_owned());
        let decoded = percent_decode(password);
        if decoded != password {
            out.push(decoded);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `m` with every secret replaced by `***`.
pub fn scrub_with(secrets: &[String], mut m: String) -> String {
    for s in secrets {
        if !s.is_empty() {
            m = m.replace(s.as_str(), "***");
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_redacted_and_expanded() {
        assert_eq!(
            redact_uri("mongodb://user:p%40ss@h1:27017,h2/db?authSource=admin"),
            "mongodb://***@h1:27017,h2/db?authSource=admin"
        );
        assert_eq!(redact_uri("mongodb://h:1"), "mongodb://h:1");
        assert_eq!(
            secrets_in("mongodb://user:p%40ss@h1/db"),
            vec!["p%40ss".to_owned(), "p@ss".to_owned()]
        );
        let get = |k: &str| (k == "PW").then(|| "s3cret".to_owned());
        assert_eq!(
            expand_uri("mongodb://u:${PW}@h/", get).unwrap(),
            "mongodb://u:s3cret@h/"
        );
        assert!(
            expand_uri("mongodb://u:${NOPE}@h/", get)
                .unwrap_err()
                .contains("NOPE")
        );
        assert_eq!(
            scrub_with(&["s3cret".into()], "auth failed for s3cret".into()),
            "auth failed for ***"
        );
    }
}
