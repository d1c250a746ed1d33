//! The mock's own cryptography, written from the documents rather than taken
//! from the client, so that a client that misreads them fails against it:
//!
//! - CRC answers and delivery signatures: `sha256=` + base64 of HMAC-SHA256
//!   keyed with the consumer secret (docs.x.com, "Securing webhooks").
//! - OAuth 1.0a HMAC-SHA1 signatures (RFC 5849 §3.4): the signature base
//!   string of the method, the base URL and the normalized parameters, keyed
//!   with the consumer and token secrets.

use std::collections::BTreeMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// RFC 3986 unreserved characters stay; every other byte is encoded (RFC 5849 §3.6).
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// `sha256=<base64 HMAC-SHA256(key, message)>`: a CRC `response_token` and
/// the `x-twitter-webhooks-signature` of a delivery.
pub fn hmac_sha256_header(key: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(message);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The `oauth_*` parameters of an `Authorization: OAuth …` header, decoded.
pub fn oauth_params(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.trim().strip_prefix("OAuth ")?;
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        out.insert(
            k.trim().to_owned(),
            percent_decode_str(v).decode_utf8().ok()?.into_owned(),
        );
    }
    Some(out)
}

/// The HMAC-SHA1 signature of `method url` with `params` (the `oauth_*`
/// ones but the signature, plus query and form pairs), RFC 5849 §3.4.
pub fn oauth_signature(
    method: &str,
    url: &str,
    params: &[(String, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let (base_url, query) = url.split_once('?').unwrap_or((url, ""));
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "oauth_signature")
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    for p in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        pairs.push((encode(&decode(k)), encode(&decode(v))));
    }
    pairs.sort();
    let normalized = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        encode(&base_url.to_ascii_lowercase()),
        encode(&normalized)
    );
    let key = format!("{}&{}", encode(consumer_secret), encode(token_secret));
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `header` signs `method url` for `consumer_key` with the secrets
/// given; the token it carries, if so.
pub fn oauth_verify(
    header: &str,
    method: &str,
    url: &str,
    consumer_key: &str,
    consumer_secret: &str,
    token_secret: &str,
) -> Option<String> {
    let p = oauth_params(header)?;
    if p.get("oauth_consumer_key")? != consumer_key
        || p.get("oauth_signature_method")? != "HMAC-SHA1"
    {
        return None;
    }
    p.get("oauth_nonce")?;
    p.get("oauth_timestamp")?.parse::<u64>().ok()?;
    let token = p.get("oauth_token")?.clone();
    let params: Vec<(String, String)> = p.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let expected = oauth_signature(method, url, &params, consumer_secret, token_secret);
    (p.get("oauth_signature")? == &expected).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// RFC 5849 §1.2: the request for the photo.
    #[test]
    fn the_rfc_5849_example() {
        let params = pairs(&[
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"),
            ("oauth_token", "nnch734d00sl2jdk"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"),
            ("oauth_nonce", "chapoH"),
        ]);
        let sig = oauth_signature(
            "GET",
            "http://photos.example.net/photos?file=vacation.jpg&size=original",
            &params,
            "kd94hf93k423kf44",
            "pfkkdhi9sl3r4s00",
        );
        assert_eq!(sig, "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
    }

    /// docs.x.com, "Creating a signature".
    #[test]
    fn the_x_documentation_example() {
        let params = pairs(&[
            ("include_entities", "true"),
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
            ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
            ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1318622958"),
            (
                "oauth_token",
                "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            ),
            ("oauth_version", "1.0"),
        ]);
        let sig = oauth_signature(
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        );
        assert_eq!(sig, "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }

    /// The HMAC-SHA256 vector Python's `hmac` module computes.
    #[test]
    fn hmac_sha256_matches_an_independent_computation() {
        // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"key",b"The quick brown fox jumps over the lazy dog",hashlib.sha256).digest()).decode())'
        assert_eq!(
            hmac_sha256_header("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
        );
    }

    #[test]
    fn verification_needs_every_part_right() {
        let params = pairs(&[
            ("oauth_consumer_key", "ck"),
            ("oauth_token", "1-t"),
            ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "1"),
            ("oauth_nonce", "n"),
        ]);
        let url = "http://127.0.0.1:1/2/x";
        let sig = oauth_signature("POST", url, &params, "cs", "ts");
        let header = format!(
            "OAuth {}, oauth_signature=\"{}\"",
            params
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", encode(v)))
                .collect::<Vec<_>>()
                .join(", "),
            encode(&sig)
        );
        assert_eq!(
            oauth_verify(&header, "POST", url, "ck", "cs", "ts").as_deref(),
            Some("1-t")
        );
        assert!(oauth_verify(&header, "GET", url, "ck", "cs", "ts").is_none());
        assert!(oauth_verify(&header, "POST", url, "ck", "cs", "other").is_none());
        assert!(oauth_verify(&header, "POST", url, "other", "cs", "ts").is_none());
        assert!(oauth_verify("Bearer x", "POST", url, "ck", "cs", "ts").is_none());
    }
}
