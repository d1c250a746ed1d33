//! Where X's spec 2.167 and docs.x.com disagree and live X follows the docs:
//! one entry a difference, with its reason. The checker reads the exchange
//! through these (a rename, a status, a problem type) and then holds it to the
//! spec as strictly as everything else. Nothing else may be added here without
//! the docs.x.com page that documents it.

use serde_json::{Map, Value, json};

use super::{Exchange, Violation, validate};

/// One documented difference between the spec and live X.
pub struct Allowance {
    pub id: &'static str,
    pub reason: &'static str,
}

/// The list, printed by `tests/spec_check.rs` and quoted in the README.
pub const X: &[Allowance] = &[
    Allowance {
        id: "search-tweet-fields",
        reason: "search takes `tweet.fields` on docs.x.com (x-api/posts/search-recent-posts), with the docs' field list (`author_id` among them); 2.167 declares `post.fields` instead: checked against the `tweet.fields` of `GET /2/tweets/search/stream`, the same list",
    },
    Allowance {
        id: "edit-history-tweet-ids",
        reason: "posts carry `edit_history_tweet_ids` on docs.x.com (x-api/fundamentals/data-dictionary); 2.167 says `edit_history_post_ids`: checked as that",
    },
    Allowance {
        id: "problem-type-domain",
        reason: "live X's problem `type` URIs are `https://api.twitter.com/2/problems/…` (docs.x.com x-api/fundamentals/response-codes-and-errors); 2.167 writes `https://api.x.com/2/problems/…`",
    },
    Allowance {
        id: "stream-link-fields",
        reason: "`POST /2/tweets/search/webhooks/{id}` takes the stream's field parameters on docs.x.com (x-api/webhooks/stream/create-stream-link); 2.167 declares none: checked against `GET /2/tweets/search/stream`'s",
    },
    Allowance {
        id: "rule-creation-201",
        reason: "`POST /2/tweets/search/stream/rules` answers 201 Created on docs.x.com (x-api/posts/filtered-stream/update-stream-rules); 2.167 declares 200: checked against 200's schema",
    },
    Allowance {
        id: "rate-limit-errors",
        reason: "a 429 answers `{\"errors\":[{\"code\":88,\"message\":\"Rate limit exceeded\"}]}` on docs.x.com (x-api/fundamentals/rate-limits); 2.167's `Error` is one `{code, message}`: each item is checked against `Error`",
    },
    Allowance {
        id: "documented-problem-types",
        reason: "docs.x.com (x-api/fundamentals/response-codes-and-errors, x-api/fundamentals/handling-disconnections) name problem types 2.167's list lacks: `about:blank`, `client-forbidden`, `usage-capped`, `rate-limit-exceeded`, `streaming-connection`, `rule-cap`, `invalid-rules`, `duplicate-rules`, `operational-disconnect`: checked against the documented shape (type, title, detail; disconnect_type, connection_issue, value, id, details where the docs show them)",
    },
];

const SEARCH: [&str; 2] = ["/2/tweets/search/recent", "/2/tweets/search/all"];
const STREAM_LINK: &str = "/2/tweets/search/webhooks/";
/// The stream's field parameters a stream link takes on docs.x.com.
const FIELD_PARAMS: [&str; 6] = [
    "tweet.fields",
    "expansions",
    "user.fields",
    "media.fields",
    "poll.fields",
    "place.fields",
];

/// The request as the checker reads it.
pub fn x_request(ex: &Exchange, out: &mut Vec<Violation>) -> Exchange {
    let mut ex = ex.clone();
    let search = ex.method == "GET" && SEARCH.contains(&ex.path.as_str());
    let link = ex.method == "POST" && ex.path.starts_with(STREAM_LINK);
    if search || link {
        let (fields, rest): (Vec<_>, Vec<_>) = ex.query.drain(..).partition(|(k, _)| {
            if search {
                k == "tweet.fields"
            } else {
                FIELD_PARAMS.contains(&k.as_str())
            }
        });
        ex.query = rest;
        let as_stream = Exchange {
            method: "GET".into(),
            path: "/2/tweets/search/stream".into(),
            query: fields,
            ..Exchange::default()
        };
        super::x().check_request(&as_stream, out);
        for v in out.iter_mut() {
            if v.endpoint == as_stream.endpoint() {
                v.endpoint = ex.endpoint();
            }
        }
    }
    ex
}

/// The answer as the checker reads it: its status and body. A body left
/// `null` has been checked here entirely.
pub fn x_response(
    ex: &Exchange,
    status: u16,
    mut v: Value,
    out: &mut Vec<Violation>,
) -> (u16, Value) {
    let status =
        if status == 201 && ex.method == "POST" && ex.path == "/2/tweets/search/stream/rules" {
            200
        } else {
            status
        };
    rename_keys(&mut v);
    problem_domain(&mut v);
    documented_problems(ex, &mut v, out);
    if status == 429 {
        rate_limit_errors(ex, &mut v, out);
    }
    (status, v)
}

/// docs.x.com's 429 body: `errors` of `{code, message}`, each an `Error`.
fn rate_limit_errors(ex: &Exchange, v: &mut Value, out: &mut Vec<Violation>) {
    let only_errors = v.as_object().is_some_and(|o| o.len() == 1);
    let Some(Value::Array(items)) = v.get("errors").filter(|_| only_errors) else {
        return;
    };
    for item in items {
        super::x().check_body(
            "/components/schemas/Error",
            item,
            &ex.endpoint(),
            "response 429 errors[]",
            out,
        );
    }
    *v = Value::Null;
}

fn rename_keys(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(ids) = map.remove("edit_history_tweet_ids") {
                map.insert("edit_history_post_ids".into(), ids);
            }
            map.values_mut().for_each(rename_keys);
        }
        Value::Array(items) => items.iter_mut().for_each(rename_keys),
        _ => {}
    }
}

fn problem_domain(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get_mut("type")
                && let Some(rest) = t.strip_prefix("https://api.twitter.com/2/problems/")
            {
                *t = format!("https://api.x.com/2/problems/{rest}");
            }
            map.values_mut().for_each(problem_domain);
        }
        Value::Array(items) => items.iter_mut().for_each(problem_domain),
        _ => {}
    }
}

/// The documented shape of the problems 2.167 does not list.
fn stream_problem_schema() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        jsonschema::validator_for(&json!({
            "type": "object",
            "required": ["title", "type"],
            "properties": {
                "title": {"type": "string"},
                "detail": {"type": "string"},
                "type": {"enum": DOCUMENTED_PROBLEMS
                    .iter()
                    .map(|p| if *p == "about:blank" { (*p).to_owned() } else { format!("https://api.x.com/2/problems/{p}") })
                    .collect::<Vec<_>>()},
                "disconnect_type": {"type": "string"},
                "connection_issue": {"type": "string"},
                "value": {"type": "string"},
                "id": {"type": "string"},
                "details": {"type": "array", "items": {"type": "string"}},
                "status": {"type": "integer"}
            },
            "additionalProperties": false
        }))
        .unwrap()
    })
}

/// The problem types docs.x.com names and 2.167 lacks.
const DOCUMENTED_PROBLEMS: [&str; 9] = [
    "about:blank",
    "client-forbidden",
    "usage-capped",
    "rate-limit-exceeded",
    "streaming-connection",
    "rule-cap",
    "invalid-rules",
    "duplicate-rules",
    "operational-disconnect",
];

fn is_documented_problem(p: &Value) -> bool {
    p["type"].as_str().is_some_and(|t| {
        DOCUMENTED_PROBLEMS
            .iter()
            .any(|d| t == *d || t.strip_prefix("https://api.x.com/2/problems/") == Some(d))
    })
}

/// Checks the stream problems here and takes them out of the body (an
/// `errors` array, or the problem document itself).
fn documented_problems(ex: &Exchange, v: &mut Value, out: &mut Vec<Violation>) {
    let endpoint = ex.endpoint();
    if is_documented_problem(v) {
        validate(stream_problem_schema(), v, &endpoint, "problem", out);
        *v = Value::Null;
        return;
    }
    let Some(Value::Array(errors)) = v.get_mut("errors") else {
        return;
    };
    errors.retain(|p| {
        if is_documented_problem(p) {
            validate(stream_problem_schema(), p, &endpoint, "errors[]", out);
            false
        } else {
            true
        }
    });
    if errors.is_empty() {
        let map: &mut Map<String, Value> = v.as_object_mut().unwrap();
        map.remove("errors");
        if map.is_empty() {
            *v = Value::Null;
        }
    }
}
