//! The published API descriptions as the judge of the client and of the mocks.
//!
//! `../shared/specs/x-api-v2.openapi.json` (X API v2, OpenAPI 3.0) and
//! `../shared/specs/telegram-bot-api.json` (the machine-readable Bot API) are
//! read once per test binary (`INGEST_X_SPEC` / `INGEST_TELEGRAM_SPEC` point
//! at newer files). [`SpecProxy`] sits between `ingest` and a mock process:
//! every request the client sends is checked against the operation it names,
//! every answer the mock gives (every stream line, every error body) against
//! the operation's response schema for that status. What differs between the
//! spec and the docs that live X follows is in [`allow`], one entry a reason.
//!
//! Nothing here comes from the product's code: the mock is checked by the
//! published contract, not by our reading of it.

pub mod allow;
pub mod generate;
pub mod openapi;
mod proxy;
pub mod telegram;

use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

pub use proxy::SpecProxy;

/// One request as the client sent it.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    /// Percent-decoded `name=value` pairs, in order.
    pub query: Vec<(String, String)>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Exchange {
    /// `METHOD /path?query` as a client would write it.
    pub fn new(method: &str, target: &str, content_type: Option<&str>, body: &[u8]) -> Exchange {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Exchange {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            query: parse_query(query),
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// `a=1&b=x%2Cy` → `[(a, 1), (b, "x,y")]` (`+` is a space, as in forms).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A place where a request or an answer breaks the published contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `METHOD /path` of the exchange.
    pub endpoint: String,
    /// `query tweet.fields`, `response 200 at /data/0/id`, `stream line at /data`.
    pub place: String,
    /// The spec's rule: a JSON Schema keyword path, `declared`, `required`…
    pub rule: String,
    pub message: String,
}

impl Violation {
    pub fn new(endpoint: &str, place: &str, rule: &str, message: &str) -> Violation {
        Violation {
            endpoint: endpoint.to_owned(),
            place: place.to_owned(),
            rule: rule.to_owned(),
            message: message.chars().take(400).collect(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}: {} (spec rule: {})",
            self.endpoint, self.place, self.message, self.rule
        )
    }
}

/// Every error of `v` against `validator`, as violations at `place`.
pub fn validate(
    validator: &jsonschema::Validator,
    v: &Value,
    endpoint: &str,
    place: &str,
    out: &mut Vec<Violation>,
) {
    for e in validator.iter_errors(v) {
        let at = e.instance_path().to_string();
        let place = if at.is_empty() {
            place.to_owned()
        } else {
            format!("{place} at {at}")
        };
        out.push(Violation::new(
            endpoint,
            &place,
            &e.schema_path().to_string(),
            &e.to_string(),
        ));
    }
}

/// Where the published descriptions live: `../shared/specs/` beside the checkout.
fn spec_path(var: &str, file: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/specs")
            .join(file),
    }
}

fn read_json(var: &str, file: &str) -> Value {
    let path = spec_path(var, file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the published spec {}: {e} (set {var} to its path)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// X API v2, converted once per test binary.
pub fn x() -> &'static openapi::OpenApi {
    static X: OnceLock<openapi::OpenApi> = OnceLock::new();
    X.get_or_init(|| {
        openapi::OpenApi::from_document(read_json("INGEST_X_SPEC", "x-api-v2.openapi.json"))
    })
}

/// The Bot API, converted once per test binary.
pub fn telegram() -> &'static telegram::BotApi {
    static T: OnceLock<telegram::BotApi> = OnceLock::new();
    T.get_or_init(|| {
        telegram::BotApi::from_document(&read_json("INGEST_TELEGRAM_SPEC", "telegram-bot-api.json"))
    })
}

/// Which contract a proxy holds the traffic to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    X,
    Telegram,
}

impl Api {
    /// Violations of the request `ex`, the allow-list applied.
    pub fn check_request(self, ex: &Exchange) -> Vec<Violation> {
        let mut out = Vec::new();
        match self {
            Api::X => {
                let ex = allow::x_request(ex, &mut out);
                x().check_request(&ex, &mut out)
            }
            Api::Telegram => telegram().check_request(ex, &mut out),
        }
        out
    }

    /// Whether the answer to `ex` is a stream of JSON lines rather than one document.
    pub fn streams(self, ex: &Exchange) -> bool {
        self == Api::X
            && x()
                .template(&ex.method, &ex.path)
                .is_some_and(|t| t.ends_with("/stream") || t.contains("/stream/lang/"))
    }

    /// Violations of one answer (a whole body, or one stream line).
    pub fn check_response(
        self,
        ex: &Exchange,
        status: u16,
        content_type: &str,
        body: &[u8],
        place: &str,
    ) -> Vec<Violation> {
        let mut out = Vec::new();
        let endpoint = ex.endpoint();
        if self == Api::Telegram && telegram::is_file_download(&ex.path) {
            // The file's own bytes, whatever their type (getFile's documentation).
            return out;
        }
        let v: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                out.push(Violation::new(
                    &endpoint,
                    place,
                    "a JSON document",
                    &format!("{e}: {}", String::from_utf8_lossy(body)),
                ));
                return out;
            }
        };
        match self {
            Api::X => {
                let (status, v) = allow::x_response(ex, status, v, &mut out);
                if v.is_null() {
                    return out;
                }
                match x().response_schema(&ex.method, &ex.path, status, content_type) {
                    Ok(pointer) => x().check_body(&pointer, &v, &endpoint, place, &mut out),
                    Err((rule, message)) => {
                        out.push(Violation::new(&endpoint, place, &rule, &message))
                    }
                }
            }
            Api::Telegram => telegram().check_response(ex, status, &v, place, &mut out),
        }
        out
    }
}
