//! OAuth 1.0a user context (HMAC-SHA1), for the Account Activity subscription
//! endpoints: signing is done by the `oauth1-request` crate; this module only
//! holds the four credentials (as [`Secret`]s, read from the environment) and
//! checks a received `Authorization` header (the mock X API verifies with it).

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use oauth1_request as oauth;

use crate::secret::Secret;

/// The environment variables of the four credentials, in lookup order.
pub const CONSUMER_KEY_VARS: [&str; 2] = ["TWITTER_CONSUMER_KEY", "TWITTER_API_KEY"];
pub const CONSUMER_SECRET_VARS: [&str; 2] = ["TWITTER_CONSUMER_SECRET", "TWITTER_API_SECRET"];
pub const ACCESS_TOKEN_VARS: [&str; 1] = ["TWITTER_ACCESS_TOKEN"];
pub const ACCESS_TOKEN_SECRET_VARS: [&str; 1] = ["TWITTER_ACCESS_TOKEN_SECRET"];

/// The consumer (app) and access-token (user) credentials.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub consumer_key: Secret,
    pub consumer_secret: Secret,
    pub token: Secret,
    pub token_secret: Secret,
}

impl UserCredentials {
    /// The four credentials from the environment, or the names of the missing ones.
    pub fn from_env() -> Result<Self, String> {
        let get = |names: &[&str]| Secret::from_env(names).ok_or_else(|| names[0].to_owned());
        let found = [
            get(&CONSUMER_KEY_VARS),
            get(&CONSUMER_SECRET_VARS),
            get(&ACCESS_TOKEN_VARS),
            get(&ACCESS_TOKEN_SECRET_VARS),
        ];
        let missing: Vec<String> = found
            .iter()
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "OAuth 1.0a user context needs {} in the environment",
                missing.join(", ")
            ));
        }
        let [
            Ok(consumer_key),
            Ok(consumer_secret),
            Ok(token),
            Ok(token_secret),
        ] = found
        else {
            unreachable!("every credential was found")
        };
        Ok(UserCredentials {
            consumer_key,
            consumer_secret,
            token,
            token_secret,
        })
    }

    /// The `Authorization` header of a request without query or form
    /// parameters (a JSON body is not signed), with a fresh nonce and timestamp.
    pub fn authorization(&self, method: &str, uri: &str) -> String {
        sign(self, method, uri, &(), None)
    }
}

/// Nonce and timestamp pinned (tests, and verifying a received header).
pub struct Pinned<'a> {
    pub nonce: &'a str,
    pub timestamp: u64,
    /// Whether `oauth_version="1.0"` is part of the header.
    pub version: bool,
}

/// Signs `method uri` plus `params` (query or form pairs) with HMAC-SHA1.
pub fn sign<R: oauth::Request + ?Sized>(
    creds: &UserCredentials,
    method: &str,
    uri: &str,
    params: &R,
    pinned: Option<Pinned<'_>>,
) -> String {
    let token = oauth::Token::from_parts(
        creds.consumer_key.expose(),
        creds.consumer_secret.expose(),
        creds.token.expose(),
        creds.token_secret.expose(),
    );
    let mut builder = oauth::Builder::with_token(token, oauth::HmacSha1::new());
    if let Some(p) = &pinned {
        builder
            .nonce(p.nonce)
            .timestamp(NonZeroU64::new(p.timestamp))
            .version(p.version);
    }
    builder.authorize(method, uri, params)
}

/// The `oauth_*` parameters of an `Authorization: OAuth …` header, decoded.
pub fn parse_header(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.trim().strip_prefix("OAuth ")?;
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        let v = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .ok()?
            .into_owned();
        out.insert(k.trim().to_owned(), v);
    }
    Some(out)
}

/// Whether `header` is a valid HMAC-SHA1 signature of `method uri` (no query
/// or form parameters) by `creds`: the header's consumer key and token must be
/// the credentials', and its signature must be the one the secrets give.
pub fn verify(creds: &UserCredentials, method: &str, uri: &str, header: &str) -> bool {
    let Some(p) = parse_header(header) else {
        return false;
    };
    let field = |k: &str| p.get(k).map(String::as_str);
    if field("oauth_consumer_key") != Some(creds.consumer_key.expose())
        || field("oauth_token") != Some(creds.token.expose())
        || field("oauth_signature_method") != Some("HMAC-SHA1")
    {
        return false;
    }
    let (Some(nonce), Some(timestamp), Some(signature)) = (
        field("oauth_nonce"),
        field("oauth_timestamp").and_then(|t| t.parse::<u64>().ok()),
        field("oauth_signature"),
    ) else {
        return false;
    };
    let pinned = Pinned {
        nonce,
        timestamp,
        version: p.contains_key("oauth_version"),
    };
    let expected = sign(creds, method, uri, &(), Some(pinned));
    parse_header(&expected).and_then(|e| e.get("oauth_signature").cloned())
        == Some(signature.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(ck: &str, cs: &str, t: &str, ts: &str) -> UserCredentials {
        UserCredentials {
            consumer_key: Secret::new(ck),
            consumer_secret: Secret::new(cs),
            token: Secret::new(t),
            token_secret: Secret::new(ts),
        }
    }

    fn signature_of(header: &str) -> String {
        parse_header(header).unwrap()["oauth_signature"].clone()
    }

    /// RFC 5849 section 1.2: the request for the photo.
    #[test]
    fn signs_the_rfc_5849_example() {
        let c = creds(
            "dpf43f3p2l4k3l03",
            "kd94hf93k423kf44",
            "nnch734d00sl2jdk",
            "pfkkdhi9sl3r4s00",
        );
        let params = oauth::ParameterList::new([("file", "vacation.jpg"), ("size", "original")]);
        let pinned = Pinned {
            nonce: "chapoH",
            timestamp: 137131202,
            version: false,
        };
        let header = sign(
            &c,
            "GET",
            "http://photos.example.net/photos",
            &params,
            Some(pinned),
        );
        assert_eq!(signature_of(&header), "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
    }

    /// X's "Creating a signature" page (docs.x.com, OAuth 1.0a).
    #[test]
    fn signs_the_x_documentation_example() {
        let c = creds(
            "xvz1evFS4wEEPTGEFPHBog",
            "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        );
        let params = oauth::ParameterList::new([
            ("include_entities", "true"),
            (
                "status",
                "Hello Ladies + Gentlemen, a signed OAuth request!",
            ),
        ]);
        let pinned = Pinned {
            nonce: "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            timestamp: 1318622958,
            version: true,
        };
        let header = sign(
            &c,
            "POST",
            "https://api.twitter.com/1.1/statuses/update.json",
            &params,
            Some(pinned),
        );
        assert_eq!(signature_of(&header), "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    }

    #[test]
    fn verification_needs_every_secret_right() {
        let good = creds("ck", "cs", "1-t", "ts");
        let uri = "http://127.0.0.1:1/2/account_activity/webhooks/1/subscriptions/all";
        let header = good.authorization("POST", uri);
        assert!(verify(&good, "POST", uri, &header));
        assert!(!verify(&good, "GET", uri, &header));
        assert!(!verify(&good, "POST", &format!("{uri}x"), &header));
        for bad in [
            creds("ck", "cs", "1-t", "wrong"),
            creds("ck", "wrong", "1-t", "ts"),
            creds("other", "cs", "1-t", "ts"),
        ] {
            assert!(!verify(&good, "POST", uri, &bad.authorization("POST", uri)));
        }
        assert!(!verify(&good, "POST", uri, "Bearer abc"));
        assert!(!verify(&good, "POST", uri, "OAuth garbage"));
    }

    #[test]
    fn the_header_holds_no_secret() {
        let c = creds("ck", "consumer-secret-x", "1-t", "token-secret-y");
        let header = c.authorization("POST", "https://api.x.com/2/x");
        assert!(!header.contains("consumer-secret-x"));
        assert!(!header.contains("token-secret-y"));
        assert!(!format!("{c:?}").contains("token-secret-y"));
    }
}
