//! `getUpdates` as the Bot API answers it: scripted failures first, then the
//! offset semantics — applied the moment the call arrives, before any
//! scripted delay (a higher offset confirms every update below it, a negative
//! one keeps only the last |offset|) —, `allowed_updates` (a setting kept
//! across calls that decides which updates are created from then on; those
//! already queued are still delivered, as the Bot API warns) and a long poll
//! up to `timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use serde_json::Value;

use super::{CallScript, Inner, Mock, fail, ok};
use crate::mock::lock;

const WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
const OTHER_POLLER: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";

/// The parameters of one `getUpdates` call.
pub(super) struct Request {
    pub offset: Option<i64>,
    pub limit: Option<i64>,
    pub timeout: Option<i64>,
    /// `None`: the previous setting stays.
    pub allowed: Option<Vec<String>>,
}

pub(super) async fn get_updates(mock: Arc<Mock>, request: Request) -> Response {
    let Request {
        offset,
        limit,
        timeout,
        allowed,
    } = request;
    let script = {
        let mut inner = lock(&mock.inner);
        let i = inner.get_updates_calls;
        inner.get_updates_calls += 1;
        let script = mock.scenario.call.get(i).cloned().unwrap_or_default();
        // A call the Bot API answers (not a scripted refusal) confirms and
        // sets `allowed_updates` when it arrives, however slow its answer.
        if script.status == 200 && inner.webhook_url.is_empty() {
            confirm(&mut inner, offset);
            if let Some(allowed) = &allowed {
                inner.allowed_updates = allowed.clone();
            }
        }
        script
    };
    if script.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
    }
    let log = |inner: &mut Inner, status: u16| {
        mock.log(inner, "getUpdates", status, offset);
        if let Some(call) = inner.calls.last_mut() {
            call.allowed_updates = allowed.clone();
        }
    };
    if let Some((status, refusal)) = scripted_failure(&script) {
        log(&mut lock(&mock.inner), status);
        return refusal;
    }
    let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
    let deadline = Instant::now() + Duration::from_secs(timeout.unwrap_or(0).clamp(0, 50) as u64);
    loop {
        let waiter = mock.arrived.notified();
        {
            let mut inner = lock(&mock.inner);
            if !inner.webhook_url.is_empty() {
                log(&mut inner, 409);
                return fail(409, WEBHOOK_ACTIVE, None);
            }
            if !inner.queue.is_empty() || Instant::now() >= deadline {
                let updates = pending(&inner, limit);
                log(&mut inner, 200);
                return ok(Value::Array(updates));
            }
        }
        tokio::select! {
            _ = waiter => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// The status and answer of a scripted failure, if the script is one.
fn scripted_failure(script: &CallScript) -> Option<(u16, Response)> {
    let status = script.status;
    let answer = match status {
        200 => return None,
        409 if script.kind.as_deref() == Some("other_poller") => fail(409, OTHER_POLLER, None),
        409 => fail(409, WEBHOOK_ACTIVE, None),
        429 => fail(
            429,
            &format!("Too Many Requests: retry after {}", script.retry_after),
            Some(script.retry_after),
        ),
        s => fail(s, "Internal Server Error", None),
    };
    Some((status, answer))
}

/// Drops the updates `offset` confirms from the queue.
fn confirm(inner: &mut Inner, offset: Option<i64>) {
    match offset {
        // A higher offset confirms every update below it.
        Some(o) if o > 0 => {
            while inner.queue.front().is_some_and(|(id, _)| *id < o) {
                inner.queue.pop_front();
            }
            inner.confirmed_below = inner.confirmed_below.max(o);
        }
        // A negative offset keeps only the last |o| updates.
        Some(o) if o < 0 => {
            let keep = o.unsigned_abs() as usize;
            while inner.queue.len() > keep {
                if let Some((id, _)) = inner.queue.pop_front() {
                    inner.confirmed_below = inner.confirmed_below.max(id + 1);
                }
            }
        }
        _ => {}
    }
}

/// The update's type: its one field besides `update_id`.
pub(super) fn update_type(update: &str) -> String {
    let value: Value = serde_json::from_str(update).expect("the mock's updates are JSON");
    value
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id").cloned())
        .unwrap_or_default()
}

/// The first `limit` queued updates, as JSON.
fn pending(inner: &Inner, limit: usize) -> Vec<Value> {
    inner
        .queue
        .iter()
        .take(limit)
        .map(|(_, u)| serde_json::from_str(u).expect("the mock's updates are JSON"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(ids: std::ops::Range<i64>) -> Inner {
        let mut inner = Inner::new(String::new());
        inner.queue = ids
            .map(|id| (id, format!("{{\"update_id\":{id}}}")))
            .collect();
        inner
    }

    fn ids(inner: &Inner) -> Vec<i64> {
        inner.queue.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn a_higher_offset_confirms_every_update_below_it() {
        let mut inner = queue(10..15);
        confirm(&mut inner, Some(12));
        assert_eq!(ids(&inner), [12, 13, 14]);
        assert_eq!(inner.confirmed_below, 12);
        confirm(&mut inner, Some(3));
        assert_eq!(ids(&inner), [12, 13, 14]);
        assert_eq!(inner.confirmed_below, 12);
        confirm(&mut inner, None);
        confirm(&mut inner, Some(0));
        assert_eq!(ids(&inner).len(), 3);
    }

    #[test]
    fn allowed_updates_decide_which_updates_are_created_not_which_are_delivered() {
        let mut inner = Inner::new(String::new());
        let u = |id: i64, kind: &str| format!(r#"{{"update_id":{id},"{kind}":{{}}}}"#);
        // Default: every type but the opt-in ones is created.
        inner.create(u(500_000, "message"));
        inner.create(u(500_001, "message_reaction"));
        assert_eq!(ids(&inner), [500_000]);
        // A new setting: queued updates stay; new ones follow the setting.
        inner.allowed_updates = vec!["message_reaction".into()];
        inner.create(u(500_002, "message"));
        inner.create(u(500_003, "message_reaction"));
        assert_eq!(ids(&inner), [500_000, 500_003]);
    }

    #[test]
    fn a_negative_offset_keeps_the_last_updates() {
        let mut inner = queue(10..15);
        confirm(&mut inner, Some(-2));
        assert_eq!(ids(&inner), [13, 14]);
        assert_eq!(inner.confirmed_below, 13);
    }

    #[test]
    fn pending_takes_at_most_limit_in_order() {
        let inner = queue(10..15);
        let got = pending(&inner, 2);
        assert_eq!(
            got,
            [
                serde_json::json!({"update_id": 10}),
                serde_json::json!({"update_id": 11})
            ]
        );
    }

    #[test]
    fn scripted_failures_answer_like_the_bot_api() {
        let script = |status, kind: Option<&str>| CallScript {
            status,
            kind: kind.map(str::to_owned),
            ..CallScript::default()
        };
        assert!(scripted_failure(&script(200, None)).is_none());
        for (s, kind) in [
            (409, None),
            (409, Some("other_poller")),
            (429, None),
            (500, None),
            (502, None),
        ] {
            let (status, answer) = scripted_failure(&script(s, kind)).unwrap();
            assert_eq!((status, answer.status().as_u16()), (s, s));
        }
    }
}
