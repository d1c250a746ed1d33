//! The mock's stream endpoint (`GET /2/tweets/search/stream`): each attempt is
//! logged, answers its scripted status, or gets a body written by a
//! [`Producer`]: duplicates, a burst, paced tweets with keep-alives, then the
//! scripted fault.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::rules::LiveRule;
use super::tweets::tweet_line_with_media;
use super::volume::{check_backfill, refuse};
use super::{ConnectionLog, ConnectionScript, Fault, Mock, authorized, problem, unauthorized};
use crate::mock::{elapsed_ms, lock};

/// Bytes gathered before a write (a write is one chunk of the body).
const CHUNK: usize = 60 * 1024;

type BodySender = mpsc::Sender<Result<Bytes, std::io::Error>>;

pub(super) async fn stream(
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (index, script) = log_attempt(&mock, query.get("backfill_minutes").cloned());
    if script.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
    }
    let set_status = |status: u16| lock(&mock.connections)[index].status = status;
    if !authorized(&headers) {
        set_status(401);
        return unauthorized();
    }
    if let Some(refusal) = scripted_refusal(&script) {
        return refusal;
    }
    if let Err(invalid) = check_backfill(&query) {
        set_status(400);
        return refuse(invalid);
    }
    let rules = lock(&mock.rules).clone();
    if rules.is_empty() {
        set_status(409);
        return problem(
            StatusCode::CONFLICT,
            "ConnectionException",
            "There are no rules on this stream; add rules before connecting.",
            "streaming-connection",
        );
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let kill = lock(&mock.kill).clone();
    let producer = Producer {
        mock: mock.clone(),
        index,
        rules,
        tx,
        kill,
        buf: Vec::with_capacity(64 * 1024),
        media: asks_for_media(&query),
    };
    mock.open_streams
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(async move {
        let mock = producer.mock.clone();
        producer.produce(script).await;
        mock.open_streams
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-rate-limit-limit", "50")
        .header("x-rate-limit-remaining", "49")
        .body(body)
        .expect("a valid response")
}

/// Logs a connection attempt; returns its index and script.
fn log_attempt(mock: &Mock, backfill_minutes: Option<String>) -> (usize, ConnectionScript) {
    let mut log = lock(&mock.connections);
    let index = log.len();
    let script = mock.scenario.script(index);
    log.push(ConnectionLog {
        index,
        at_ms: elapsed_ms(mock.started),
        status: script.status,
        fault: script.fault,
        first_seq: None,
        last_seq: None,
        duplicate_seqs: Vec::new(),
        cut_seq: None,
        backfill_minutes,
    });
    (index, script)
}

/// X's answer for a scripted status other than 200.
pub(super) fn scripted_refusal(script: &ConnectionScript) -> Option<Response> {
    Some(match script.status {
        200 => return None,
        401 => unauthorized(),
        403 => problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Your client app is not enrolled for this endpoint.",
            "client-forbidden",
        ),
        429 if script.too_many_connections => {
            let body = json!({"title": "ConnectionException", "detail": "This stream is currently at the maximum allowed connection limit.", "connection_issue": "TooManyConnections", "type": "https://api.twitter.com/2/problems/streaming-connection"});
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
        }
        429 => problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "Too Many Requests",
            "usage-capped",
        ),
        s => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            problem(
                status,
                status.canonical_reason().unwrap_or("Error"),
                "Scripted failure",
                "about:blank",
            )
        }
    })
}

/// The request asks for the posts' media (`expansions=attachments.media_keys`).
pub(super) fn asks_for_media(query: &HashMap<String, String>) -> bool {
    query
        .get("expansions")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "attachments.media_keys"))
}

/// Writes one connection's body and notes in the connection log what it sent.
struct Producer {
    /// The request asked for media.
    media: bool,
    mock: Arc<Mock>,
    index: usize,
    rules: Vec<LiveRule>,
    tx: BodySender,
    kill: CancellationToken,
    buf: Vec<u8>,
}

impl Producer {
    async fn produce(mut self, script: ConnectionScript) {
        if !self.duplicates(script.duplicates).await || !self.burst(script.burst).await {
            return;
        }
        if !self.paced(script.tweets.unwrap_or(u64::MAX)).await {
            return;
        }
        self.fault(script.fault).await;
    }

    fn record(&self, f: impl FnOnce(&mut ConnectionLog)) {
        f(&mut lock(&self.mock.connections)[self.index]);
    }

    fn mark_sent(&self, first: u64, last: u64) {
        self.record(|l| {
            l.first_seq.get_or_insert(first);
            l.last_seq = Some(last);
        });
    }

    /// The next fresh tweet number, unless the scenario's total is reached.
    fn take_seq(&self) -> Option<u64> {
        let total = self.mock.scenario.total_tweets;
        let seq = self.mock.next_seq.fetch_add(1, Ordering::Relaxed);
        (total == 0 || seq < total).then_some(seq)
    }

    fn push(&mut self, seq: u64) {
        let base = self.media.then_some(self.mock.base_url.as_str());
        tweet_line_with_media(seq, &self.rules, base, &mut self.buf);
    }

    /// Writes `bytes`; false once the connection is killed or gone.
    async fn send(&self, bytes: Vec<u8>) -> bool {
        tokio::select! {
            _ = self.kill.cancelled() => false,
            r = self.tx.send(Ok(Bytes::from(bytes))) => r.is_ok(),
        }
    }

    /// Writes what is gathered in the buffer.
    async fn flush(&mut self) -> bool {
        let bytes = std::mem::take(&mut self.buf);
        self.send(bytes).await
    }

    /// Sends again the last `n` tweets sent before this connection.
    async fn duplicates(&mut self, n: u64) -> bool {
        let next = self.mock.next_seq.load(Ordering::Relaxed);
        let dups: Vec<u64> = (next.saturating_sub(n)..next).collect();
        for &seq in &dups {
            self.push(seq);
        }
        if dups.is_empty() {
            return true;
        }
        if !self.flush().await {
            return false;
        }
        self.record(|l| l.duplicate_seqs.extend(&dups));
        true
    }

    /// Sends `n` fresh tweets at once, in chunks.
    async fn burst(&mut self, n: u64) -> bool {
        let mut i = 0;
        while i < n {
            let Some(first) = self.take_seq() else { break };
            let mut last = first;
            self.push(first);
            i += 1;
            while i < n && self.buf.len() < CHUNK {
                let Some(seq) = self.take_seq() else { break };
                self.push(seq);
                last = seq;
                i += 1;
            }
            if !self.flush().await {
                return false;
            }
            self.mark_sent(first, last);
        }
        true
    }

    /// Sends `limit` tweets at the scenario's rate, with keep-alives between.
    async fn paced(&mut self, limit: u64) -> bool {
        let rate = self.mock.scenario.rate;
        let keepalive = Duration::from_secs_f64(self.mock.scenario.keepalive_secs);
        let start = Instant::now();
        let mut last_write = Instant::now();
        let mut pace = Pace {
            sent: 0,
            limit,
            exhausted: false,
        };
        while pace.sent < limit {
            let due = if rate == 0.0 {
                u64::MAX
            } else {
                (start.elapsed().as_secs_f64() * rate) as u64 + 1
            };
            if let Some((first, last)) = self.fill(&mut pace, due) {
                if !self.flush().await {
                    return false;
                }
                self.mark_sent(first, last);
                last_write = Instant::now();
                continue;
            }
            if last_write.elapsed() >= keepalive {
                if !self.send(b"\r\n".to_vec()).await {
                    return false;
                }
                last_write = Instant::now();
            }
            let wait = if rate == 0.0 || pace.exhausted {
                keepalive
            } else {
                Duration::from_secs_f64((1.0 / rate).min(keepalive.as_secs_f64()))
            };
            let wait = wait
                .min(keepalive.saturating_sub(last_write.elapsed()))
                .max(Duration::from_millis(1));
            tokio::select! {
                _ = self.kill.cancelled() => return false,
                _ = self.tx.closed() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        true
    }

    /// Gathers the tweets due by now (up to a chunk); the first and last sent.
    fn fill(&mut self, pace: &mut Pace, due: u64) -> Option<(u64, u64)> {
        let mut first = None;
        let mut last = 0;
        while pace.sent < pace.limit && pace.sent < due && self.buf.len() < CHUNK && !pace.exhausted
        {
            match self.take_seq() {
                Some(seq) => {
                    self.push(seq);
                    first.get_or_insert(seq);
                    last = seq;
                    pace.sent += 1;
                }
                None => pace.exhausted = true,
            }
        }
        first.map(|first| (first, last))
    }

    /// Ends the connection the way the script says.
    async fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::None | Fault::Close => {}
            Fault::CutMidLine => {
                if let Some(seq) = self.take_seq() {
                    self.push(seq);
                    self.buf.truncate(self.buf.len() / 2);
                    self.flush().await;
                    self.record(|l| l.cut_seq = Some(seq));
                }
            }
            Fault::Stall => {
                tokio::select! {
                    _ = self.kill.cancelled() => {}
                    _ = self.tx.closed() => {}
                }
            }
            Fault::OperationalDisconnect => {
                let line = json!({"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect", "detail": "This stream has been disconnected upstream for operational reasons.", "type": "https://api.twitter.com/2/problems/operational-disconnect"}]});
                self.send(format!("{line}\r\n").into_bytes()).await;
            }
        }
    }
}

/// How far the paced part of a connection is.
struct Pace {
    sent: u64,
    limit: u64,
    /// The scenario's `total_tweets` is reached: only keep-alives from now on.
    exhausted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_statuses_answer_like_x() {
        let script = |status, too_many_connections| ConnectionScript {
            status,
            too_many_connections,
            ..ConnectionScript::default()
        };
        assert!(scripted_refusal(&script(200, false)).is_none());
        for (s, want) in [(401, 401), (403, 403), (429, 429), (503, 503), (1000, 503)] {
            let r = scripted_refusal(&script(s, false)).unwrap();
            assert_eq!(r.status().as_u16(), want, "{s}");
        }
        let r = scripted_refusal(&script(429, true)).unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
