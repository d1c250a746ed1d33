//! The mock's replay jobs, `POST /2/webhooks/replay` (app bearer token), as
//! docs.x.com describes them: `{"webhook_id", "from_date", "to_date"}`, the
//! dates `yyyymmddhhmm` UTC, both inclusive, within the last 24 hours, none
//! in the future, `to_date` after `from_date`. The answer is `{"data":
//! {"job_id", "created_at"}}`; then every delivery attempted to that webhook
//! in those minutes (answered or not, replays excepted) is sent again, in
//! order, signed, to the webhook's URL, one attempt each, and last a
//! `replay_job_status` event says the job is complete. Each resend is in
//! `GET /mock/deliveries` with its `replay_job`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::webhooks::{Hooks, unknown_webhook};
use super::{authorized, problem, unauthorized};
use crate::mock::lock;

/// X keeps this much delivery history for replays.
const HISTORY: chrono::Duration = chrono::Duration::hours(24);

static NEXT_JOB: AtomicU64 = AtomicU64::new(1_915_510_368_169_844_736);

fn invalid(detail: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Invalid Request",
        detail,
        "invalid-request",
    )
}

/// `yyyymmddhhmm` as a UTC minute.
fn minute(v: &Value, field: &str) -> Result<DateTime<Utc>, String> {
    let text = v.get(field).and_then(Value::as_str).unwrap_or("");
    if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{field}` must be a UTC time in yyyymmddhhmm format."
        ));
    }
    NaiveDateTime::parse_from_str(&format!("{text}00"), "%Y%m%d%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|_| format!("`{field}` is not a valid time."))
}

/// The request's webhook id and window, or X's refusal.
fn check(v: &Value, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>, DateTime<Utc>), String> {
    let id = v.get("webhook_id").and_then(Value::as_str).unwrap_or("");
    if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("`webhook_id` must be 1 to 19 digits.".into());
    }
    let (from, to) = (minute(v, "from_date")?, minute(v, "to_date")?);
    if from > now || to > now {
        return Err("`from_date` and `to_date` cannot be in the future.".into());
    }
    if to < from {
        return Err("`to_date` must be after `from_date`.".into());
    }
    if from < now - HISTORY - chrono::Duration::minutes(1) {
        return Err("`from_date` must be within the last 24 hours.".into());
    }
    Ok((id.to_owned(), from, to))
}

pub(super) async fn create(
    State(h): State<Arc<Hooks>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return invalid("The body must be a JSON object.");
    };
    let (id, from, to) = match check(&v, Utc::now()) {
        Ok(ok) => ok,
        Err(detail) => return invalid(&detail),
    };
    let Some(url) = lock(&h.hooks)
        .iter()
        .find(|w| w.id == id)
        .map(|w| w.url.clone())
    else {
        return unknown_webhook();
    };
    let job_id = NEXT_JOB.fetch_add(1, Ordering::Relaxed).to_string();
    let created_at = crate::record::rfc3339(Utc::now());
    tokio::spawn(run(h, id, url, from, to, job_id.clone()));
    axum::Json(json!({"data": {"job_id": job_id, "created_at": created_at}})).into_response()
}

/// Sends the window's deliveries again, then the job's status event.
async fn run(
    h: Arc<Hooks>,
    id: String,
    url: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    job: String,
) {
    let until = to + chrono::Duration::minutes(1);
    let again: Vec<_> = h
        .deliveries
        .all()
        .into_iter()
        .filter(|d| d.webhook_id == id && d.replay_job.is_none())
        .filter(|d| {
            DateTime::parse_from_rfc3339(&d.attempted_at).is_ok_and(|t| t >= from && t < until)
        })
        .collect();
    for d in again {
        let index = h.deliveries.push(&id, &d.kind, &d.body, Some(&job));
        super::deliver::send(
            h.clone(),
            index,
            url.clone(),
            d.body,
            Vec::<Duration>::new(),
        )
        .await;
    }
    let status = json!({"replay_job_status": {
        "webhook_id": id,
        "job_id": job,
        "job_state": "Complete",
        "job_state_description": "Job completed successfully",
    }})
    .to_string()
    .into_bytes();
    let index = h
        .deliveries
        .push(&id, "replay_job_status", &status, Some(&job));
    super::deliver::send(h, index, url, status, Vec::new()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_outside_what_x_accepts_are_refused() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        let ok = json!({"webhook_id": "1", "from_date": "202603011100", "to_date": "202603011200"});
        assert!(check(&ok, now).is_ok());
        for bad in [
            json!({"webhook_id": "x1", "from_date": "202603011100", "to_date": "202603011200"}),
            json!({"webhook_id": "1", "from_date": "2026030111", "to_date": "202603011200"}),
            json!({"webhook_id": "1", "from_date": "202613011100", "to_date": "202603011200"}),
            json!({"webhook_id": "1", "from_date": "202603011100", "to_date": "202603011300"}),
            json!({"webhook_id": "1", "from_date": "202603011130", "to_date": "202603011100"}),
            json!({"webhook_id": "1", "from_date": "202602271100", "to_date": "202603011100"}),
            json!({}),
        ] {
            assert!(check(&bad, now).is_err(), "{bad}");
        }
    }
}
