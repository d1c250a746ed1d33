//! X replay jobs (`POST /2/webhooks/replay`, app bearer token): X delivers
//! again, to the webhook's URL, every event it delivered or tried to deliver
//! to it between two minutes (`yyyymmddhhmm`, UTC, both inclusive) of the
//! last 24 hours. The receiver asks for one on start when it was down
//! ([`window_since`]); `ingest twitter-webhook replay ID --from T --to T`
//! asks by hand. The redeliveries pass the same signature check and the
//! redelivery window as live ones, so what was recorded already is not again.
//!
//! When a job is done, X sends a `replay_job_status` event to the webhook
//! (`{"replay_job_status": {"webhook_id", "job_id", "job_state":
//! "Complete", "job_state_description"}}`, as the Account Activity replay
//! docs show it): the receiver logs it and stops counting what it records as
//! replayed.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::sources::twitter::webhooks::manage::{
    Auth, WebhooksApi, WebhooksError, endpoint, refuse_errors, shape,
};
use crate::sources::twitter::webhooks::memory::WebhookMemory;

pub const REPLAY_PATH: &str = "/2/webhooks/replay";
/// How far back X replays.
pub const MAX_REPLAY: Duration = Duration::hours(24);
/// Margin before the last confirmed delivery's minute.
pub const MARGIN: Duration = Duration::minutes(1);
/// The top-level key of X's "replay job done" event.
pub const STATUS_EVENT: &str = "replay_job_status";

/// A created replay job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayJob {
    pub job_id: String,
    pub created_at: String,
}

impl ReplayJob {
    /// One tab-separated line: job id, created_at.
    pub fn line(&self) -> String {
        format!("{}\t{}", self.job_id, self.created_at)
    }
}

/// A minute as X's replay dates spell it: `yyyymmddhhmm`, UTC.
pub fn x_minute(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M").to_string()
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// What to ask X to replay after a downtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// What X no longer keeps (older than 24 hours): from, to.
    pub lost: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The window from the minute of `last` (the last confirmed delivery) less
/// [`MARGIN`] to the minute of `now`, clamped to X's 24 hours (one minute
/// inside them, so the start is not already gone when X reads it).
pub fn window_since(last: DateTime<Utc>, now: DateTime<Utc>) -> ReplayWindow {
    let to = floor_minute(now);
    let wanted = floor_minute(last) - MARGIN;
    let oldest = floor_minute(now - MAX_REPLAY) + Duration::minutes(1);
    let (from, lost) = if wanted < oldest {
        (oldest, Some((wanted, oldest)))
    } else {
        (wanted.min(to), None)
    };
    ReplayWindow { from, to, lost }
}

/// What X's spec refuses in a replay request, said before it is sent.
pub fn check_request(
    webhook_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if webhook_id.is_empty()
        || webhook_id.len() > 19
        || !webhook_id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "the webhook id must be 1 to 19 digits (as `ingest twitter-webhook list` shows it), not {webhook_id:?}"
        ));
    }
    if to > now + Duration::minutes(1) {
        return Err(format!(
            "--to {} is in the future: X replays only what it already delivered",
            to.to_rfc3339()
        ));
    }
    if from >= to {
        return Err(format!(
            "--from ({}) must be before --to ({}), counted in whole minutes",
            x_minute(from),
            x_minute(to)
        ));
    }
    if from < now - MAX_REPLAY {
        return Err(format!(
            "--from {} is more than 24 hours ago: X replays only the last 24 hours",
            from.to_rfc3339()
        ));
    }
    Ok(())
}

/// The job in a replay answer: under `data` (2.167) or bare (docs.x.com's example).
pub fn job_of(v: &Value) -> Result<ReplayJob, WebhooksError> {
    let here = endpoint(&reqwest::Method::POST, REPLAY_PATH);
    refuse_errors(v)?;
    let job = v.get("data").filter(|d| d.is_object()).unwrap_or(v);
    let text = |k: &str| job.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    match (text("job_id"), text("created_at")) {
        (Some(id), Some(at)) if id.len() <= 64 && at.len() <= 64 => Ok(ReplayJob {
            job_id: id.to_owned(),
            created_at: at.to_owned(),
        }),
        _ => Err(shape(&here, "no `job_id` and `created_at` strings", v)),
    }
}

impl WebhooksApi {
    /// `POST /2/webhooks/replay`: replays the webhook's deliveries from the
    /// minute `from` to the minute `to`.
    pub async fn replay(
        &self,
        webhook_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ReplayJob, WebhooksError> {
        check_request(webhook_id, from, to, Utc::now()).map_err(WebhooksError::Invalid)?;
        let body = json!({
            "webhook_id": webhook_id,
            "from_date": x_minute(from),
            "to_date": x_minute(to),
        });
        let v = self
            .call(reqwest::Method::POST, REPLAY_PATH, Some(body), Auth::Bearer)
            .await?;
        job_of(&v)
    }
}

/// Replay on start: what the command line asked for.
#[derive(Debug, Clone)]
pub struct ReplayOnStart {
    /// `--webhook-id` (else `--register` finds the id).
    pub webhook_id: Option<String>,
    /// `--replay-after`: a last confirmed delivery older than this means a downtime.
    pub after: std::time::Duration,
    /// False with `--no-replay`.
    pub enabled: bool,
}

/// Once the receiver listens and knows its webhook `id`: names the webhook
/// in the state dir and, when the last delivery it confirmed is older than
/// `after`, asks X to replay everything since (clamped to 24 hours, the
/// rest named in a warning). A failed request is logged with the command
/// that asks again by hand; the receiver keeps running.
pub async fn replay_on_start(
    api: &WebhooksApi,
    memory: &WebhookMemory,
    id: &str,
    settings: &ReplayOnStart,
) -> Option<ReplayJob> {
    let last = match memory.last.set_webhook(id) {
        Ok(last) => last,
        Err(e) => {
            warn!(error = %e, "cannot read when the last delivery was confirmed; no replay job");
            return None;
        }
    };
    if !settings.enabled {
        return None;
    }
    let Some(last) = last else {
        info!(
            webhook_id = id,
            "no delivery confirmed for this webhook yet: nothing to replay"
        );
        return None;
    };
    let now = Utc::now();
    let after = Duration::from_std(settings.after).unwrap_or(MAX_REPLAY);
    if now - last < after {
        info!(webhook_id = id, last = %last.to_rfc3339(), "the last delivery is recent: no replay job");
        return None;
    }
    let w = window_since(last, now);
    if let Some((from, to)) = w.lost {
        warn!(
            webhook_id = id,
            "down for more than 24 hours: X keeps only the last 24, so what it tried to deliver from {} to {} is lost",
            from.to_rfc3339(),
            to.to_rfc3339()
        );
    }
    memory.set_replaying(true);
    match api.replay(id, w.from, w.to).await {
        Ok(job) => {
            info!(webhook_id = id, job_id = %job.job_id, from = %x_minute(w.from), to = %x_minute(w.to),
                "replay job created: X delivers again what it tried to deliver while the receiver was down");
            Some(job)
        }
        Err(e) => {
            memory.set_replaying(false);
            error!(
                webhook_id = id,
                "the replay job failed: {}; ask again with `ingest twitter-webhook replay {id} --from {} --to {}`",
                crate::secret::redact(&e.to_string()),
                w.from.to_rfc3339(),
                w.to.to_rfc3339()
            );
            None
        }
    }
}

/// The job id of a `replay_job_status` event whose job is done, if `body` is one.
pub fn finished_job(body: &Value) -> Option<(String, String)> {
    let status = body
        .as_object()
        .filter(|o| o.len() == 1)?
        .get(STATUS_EVENT)?;
    let field = |k: &str| {
        status
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    Some((field("job_id"), field("job_state")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_window_starts_a_minute_before_the_last_delivery() {
        let w = window_since(t("2026-03-01T10:15:42Z"), t("2026-03-01T11:02:09Z"));
        assert_eq!(x_minute(w.from), "202603011014");
        assert_eq!(x_minute(w.to), "202603011102");
        assert_eq!(w.lost, None);
    }

    #[test]
    fn a_downtime_past_24_hours_is_clamped_and_the_gap_named() {
        let w = window_since(t("2026-03-01T10:15:00Z"), t("2026-03-03T08:00:30Z"));
        assert_eq!(x_minute(w.from), "202603020801");
        assert_eq!(x_minute(w.to), "202603030800");
        let (gone_from, gone_to) = w.lost.unwrap();
        assert_eq!(x_minute(gone_from), "202603011014");
        assert_eq!(gone_to, w.from);
        assert!(check_request("1", w.from, w.to, t("2026-03-03T08:00:30Z")).is_ok());
    }

    #[test]
    fn requests_the_spec_refuses_are_caught_before_sending() {
        let now = t("2026-03-01T12:00:00Z");
        let (a, b) = (t("2026-03-01T11:00:00Z"), t("2026-03-01T11:30:00Z"));
        assert!(check_request("1146654567674912769", a, b, now).is_ok());
        for id in ["", "12a", "12345678901234567890", "-1"] {
            assert!(
                check_request(id, a, b, now)
                    .unwrap_err()
                    .contains("1 to 19 digits")
            );
        }
        assert!(
            check_request("1", b, a, now)
                .unwrap_err()
                .contains("before --to")
        );
        assert!(
            check_request("1", a, a, now)
                .unwrap_err()
                .contains("before --to")
        );
        let future = t("2026-03-01T13:00:00Z");
        assert!(
            check_request("1", a, future, now)
                .unwrap_err()
                .contains("future")
        );
        let old = t("2026-02-28T11:00:00Z");
        assert!(
            check_request("1", old, b, now)
                .unwrap_err()
                .contains("24 hours")
        );
    }

    #[test]
    fn the_answer_is_read_with_and_without_data() {
        let job = ReplayJob {
            job_id: "1915510368169844736".into(),
            created_at: "2025-04-24T20:57:15.242Z".into(),
        };
        let bare = json!({"job_id": job.job_id, "created_at": job.created_at});
        assert_eq!(job_of(&bare).unwrap(), job);
        assert_eq!(job_of(&json!({"data": bare})).unwrap(), job);
        for hostile in [
            json!({}),
            json!({"data": {"job_id": 7, "created_at": "x"}}),
            json!({"data": {"job_id": "", "created_at": "x"}}),
            json!({"data": {"job_id": "x".repeat(100), "created_at": "x"}}),
            json!([1, 2]),
            Value::Null,
        ] {
            let e = job_of(&hostile).unwrap_err().to_string();
            assert!(e.contains("POST /2/webhooks/replay"), "{e}");
        }
        let refused =
            json!({"errors": [{"title": "WebhookIdInvalid", "detail": "no such webhook"}]});
        assert!(
            job_of(&refused)
                .unwrap_err()
                .to_string()
                .contains("WebhookIdInvalid")
        );
    }

    #[test]
    fn a_status_event_is_told_apart() {
        let done = json!({"replay_job_status": {"webhook_id": "1", "job_id": "9", "job_state": "Complete"}});
        assert_eq!(finished_job(&done), Some(("9".into(), "Complete".into())));
        assert_eq!(
            finished_job(&json!({"replay_job_status": {}, "other": 1})),
            None
        );
        assert_eq!(finished_job(&json!({"tweet_create_events": []})), None);
    }
}
