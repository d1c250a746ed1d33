//! The mock's filtered-stream rules endpoints (`GET`/`POST /2/tweets/search/stream/rules`,
//! `GET …/rules/counts`)
//! with the validation errors X answers: invalid values, duplicate rules, and a
//! body that is neither one `add` nor one `delete`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Mock, authorized, problem, unauthorized};
use crate::mock::lock;

/// The longest rule value the mock takes: docs.x.com's filtered-stream
/// limits give 1024 characters on the Pro plan (the spec sets no length).
pub const MAX_RULE_CHARS: usize = 1024;

/// A rule as the API holds it (the spec's `GetRulesResponseData`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRule {
    pub id: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

/// A rule to add (the spec's `UpdateRulesAdd`; also a scenario's `[[rule]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct DryRun {
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    add: Option<Vec<NewRule>>,
    #[serde(default)]
    delete: Option<DeleteIds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteIds {
    ids: Vec<String>,
}

/// Why X would refuse a rule value, if it would.
pub fn rule_problem(value: &str) -> Option<&'static str> {
    if value.trim().is_empty() {
        return Some("Rules must contain a non-empty value");
    }
    if value.chars().count() > MAX_RULE_CHARS {
        return Some("Rule value is too long");
    }
    let mut depth: i64 = 0;
    let mut in_quotes = false;
    for c in value.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            '(' if !in_quotes => depth += 1,
            ')' if !in_quotes => {
                depth -= 1;
                if depth < 0 {
                    return Some("Rules must contain balanced parentheses");
                }
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Some("Rules must contain balanced parentheses");
    }
    if in_quotes {
        return Some("Rules must contain balanced quotes");
    }
    None
}

pub(super) async fn list_rules(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let rules = lock(&mock.rules).clone();
    // 2.167's `GetRulesResponse` meta: `result_count` (and `next_token`).
    let meta = json!({ "result_count": rules.len() });
    if rules.is_empty() {
        axum::Json(json!({"meta": meta})).into_response()
    } else {
        axum::Json(json!({"data": rules, "meta": meta})).into_response()
    }
}

/// The mock's rule caps: X's Pro plan (1000 rules per app and project).
pub const RULE_CAP: usize = 1000;

/// `GET /2/tweets/search/stream/rules/counts`: the mock's one app holds
/// every rule of its project.
pub(super) async fn rule_counts(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let n = lock(&mock.rules).len();
    let app = json!({"client_app_id": super::webhooks::APP_ID, "rule_count": n});
    axum::Json(json!({"data": {
        "cap_per_client_app": RULE_CAP.to_string(),
        "cap_per_project": RULE_CAP.to_string(),
        "project_rules_count": n.to_string(),
        "client_app_rules_count": app,
        "all_project_client_apps": [app],
    }}))
    .into_response()
}

pub(super) async fn change_rules(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(q): Query<DryRun>,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let sent = crate::record::rfc3339(chrono::Utc::now());
    let body: ChangeBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Invalid Request",
                &format!("One or more parameters to your request was invalid: {e}"),
                "invalid-request",
            );
        }
    };
    let dry_run = q.dry_run.unwrap_or(false);
    match (body.add, body.delete) {
        (Some(add), None) => add_rules(&mock, add, dry_run, sent),
        (None, Some(del)) => delete_rules(&mock, &del.ids, dry_run, sent),
        _ => problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "Give exactly one of `add` or `delete`.",
            "invalid-request",
        ),
    }
}

/// The refusal when any value in `add` is invalid (nothing is added then),
/// in 2.167's `UpdateRulesResponse` shape: `errors` of `invalid-rules`
/// problems (the type docs.x.com names) and the summary. Live X has also
/// been seen to answer these with a 400 problem document; the client reads both.
fn invalid_rules(add: &[NewRule], sent: &str) -> Option<Response> {
    let invalid: Vec<Value> = add
        .iter()
        .filter_map(|r| rule_problem(&r.value).map(|d| json!({"value": r.value, "details": [d], "title": "UnprocessableEntity", "type": "https://api.twitter.com/2/problems/invalid-rules"})))
        .collect();
    if invalid.is_empty() {
        return None;
    }
    let n = invalid.len();
    let summary =
        json!({"created": 0, "not_created": add.len(), "valid": add.len() - n, "invalid": n});
    let body = json!({"errors": invalid, "meta": {"sent": sent, "summary": summary}});
    Some(axum::Json(body).into_response())
}

fn add_rules(mock: &Mock, add: Vec<NewRule>, dry_run: bool, sent: String) -> Response {
    let mut rules = lock(&mock.rules);
    if let Some(refusal) = invalid_rules(&add, &sent) {
        return refusal;
    }
    let (created, errors) = create(mock, &rules, add);
    let summary = json!({"created": if dry_run { 0 } else { created.len() }, "not_created": errors.len(), "valid": created.len(), "invalid": errors.len()});
    let data = created.clone();
    if !dry_run {
        rules.extend(created);
    }
    let mut body = json!({"meta": {"sent": sent, "summary": summary}});
    if !data.is_empty() {
        body["data"] = json!(data);
    }
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    let status = if dry_run || data.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, axum::Json(body)).into_response()
}

/// The rules `add` creates beside `live` (with fresh ids), and X's
/// `DuplicateRule` error for each value already there or repeated.
fn create(mock: &Mock, live: &[LiveRule], add: Vec<NewRule>) -> (Vec<LiveRule>, Vec<Value>) {
    let mut seen: HashSet<String> = live.iter().map(|r| r.value.clone()).collect();
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for r in add {
        if !seen.insert(r.value.clone()) {
            let id = live
                .iter()
                .find(|l| l.value == r.value)
                .map(|l| l.id.clone())
                .unwrap_or_default();
            errors.push(json!({"value": r.value, "id": id, "title": "DuplicateRule", "type": "https://api.twitter.com/2/problems/duplicate-rules"}));
            continue;
        }
        let id = mock
            .next_rule_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        created.push(LiveRule {
            id,
            value: r.value,
            tag: r.tag,
        });
    }
    (created, errors)
}

fn delete_rules(mock: &Mock, ids: &[String], dry_run: bool, sent: String) -> Response {
    let mut rules = lock(&mock.rules);
    let before = rules.len();
    if !dry_run {
        rules.retain(|r| !ids.contains(&r.id));
    }
    let deleted = before - rules.len();
    axum::Json(json!({"meta": {"sent": sent, "summary": {"deleted": deleted, "not_deleted": ids.len() - deleted}}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_values_are_validated_like_x() {
        assert!(rule_problem("").is_some());
        assert!(rule_problem("   ").is_some());
        assert!(
            rule_problem("(cats OR dogs")
                .unwrap()
                .contains("parentheses")
        );
        assert!(rule_problem("cats)").unwrap().contains("parentheses"));
        assert!(rule_problem("\"open quote").unwrap().contains("quotes"));
        assert!(
            rule_problem(&"a".repeat(1025))
                .unwrap()
                .contains("too long")
        );
        assert!(rule_problem("\"(not a paren\" lang:en").is_none());
        assert!(rule_problem("(a b) OR c").is_none());
    }
}
