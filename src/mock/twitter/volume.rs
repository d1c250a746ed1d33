//! The mock's volume and compliance streams: `GET /2/tweets/sample/stream`,
//! `/2/tweets/sample10/stream`, `/2/tweets/firehose/stream`,
//! `/2/tweets/compliance/stream` and `/2/users/compliance/stream`.
//!
//! - Partitions are checked as X does (a missing or out-of-range `partition`
//!   is a 400 `invalid-request` problem naming the parameter and the range);
//!   so is `backfill_minutes` (0-5).
//! - The corpus is deterministic: post number `seq` (the same lines as the
//!   filtered stream, without `matching_rules`), `total_tweets` of them (0:
//!   without end). Partition `p` of a stream with `n` partitions carries the
//!   numbers with `seq % n == p - 1`: the partitions are disjoint and together
//!   carry every post once. Each (stream, partition) has its own cursor, so a
//!   reconnect goes on where the last connection stopped; a script's
//!   `duplicates` sends the last few again first, as `backfill_minutes` does.
//! - The Post compliance stream sends one event per corpus post of its
//!   partition: `delete`, `withheld`, `drop`, `undrop`, `tweet_edit` in turn
//!   (`seq % 5`), with a fixed `event_at` per post; the User compliance
//!   stream one event per post about its author, cycling through the user
//!   events.
//! - `scenario.connection` scripts apply to these attempts in order too
//!   (status, delay, duplicates, `tweets`, fault).
//! - `GET /mock/volume` lists every attempt: path, partition, status, the
//!   post numbers and compliance events sent. `GET /mock/requests` counts
//!   every API request the mock answered (not `/mock/*`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::stream::scripted_refusal;
use super::tweets::{AUTHORS, tweet_id, tweet_line};
use super::{ConnectionScript, Fault, Mock, authorized, unauthorized};
use crate::mock::lock;

/// The volume and compliance streams the mock serves, with their paths and
/// partitions as X's spec (2.167) declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Sample,
    Sample10,
    Firehose,
    /// `/2/tweets/firehose/stream/lang/{en,ja,ko,pt}`: one path per language.
    FirehoseLang(&'static str),
    LikesFirehose,
    LikesSample10,
    LikesCompliance,
    Labels,
    Activity,
    Compliance,
    UserCompliance,
}

/// The language firehoses the spec declares, with their last partition.
const LANG_FIREHOSES: [(&str, u32); 4] = [("en", 8), ("ja", 2), ("ko", 2), ("pt", 2)];

impl StreamKind {
    fn path(self) -> &'static str {
        match self {
            StreamKind::Sample => "/2/tweets/sample/stream",
            StreamKind::Sample10 => "/2/tweets/sample10/stream",
            StreamKind::Firehose => "/2/tweets/firehose/stream",
            StreamKind::FirehoseLang("en") => "/2/tweets/firehose/stream/lang/en",
            StreamKind::FirehoseLang("ja") => "/2/tweets/firehose/stream/lang/ja",
            StreamKind::FirehoseLang("ko") => "/2/tweets/firehose/stream/lang/ko",
            StreamKind::FirehoseLang(_) => "/2/tweets/firehose/stream/lang/pt",
            StreamKind::LikesFirehose => "/2/likes/firehose/stream",
            StreamKind::LikesSample10 => "/2/likes/sample10/stream",
            StreamKind::LikesCompliance => "/2/likes/compliance/stream",
            StreamKind::Labels => "/2/tweets/label/stream",
            StreamKind::Activity => "/2/activity/stream",
            StreamKind::Compliance => "/2/tweets/compliance/stream",
            StreamKind::UserCompliance => "/2/users/compliance/stream",
        }
    }

    /// The `partition` parameter's range (required where there is one).
    fn partitions(self) -> Option<std::ops::RangeInclusive<u32>> {
        match self {
            StreamKind::Sample
            | StreamKind::LikesCompliance
            | StreamKind::Labels
            | StreamKind::Activity => None,
            StreamKind::Sample10 | StreamKind::LikesSample10 => Some(1..=2),
            StreamKind::Firehose | StreamKind::LikesFirehose => Some(1..=20),
            StreamKind::FirehoseLang(lang) => LANG_FIREHOSES
                .iter()
                .find(|(l, _)| *l == lang)
                .map(|(_, last)| 1..=*last),
            StreamKind::Compliance | StreamKind::UserCompliance => Some(1..=4),
        }
    }
}

/// Bytes gathered before a write when unpaced.
const CHUNK: usize = 60 * 1024;

/// Post compliance event types, in the order the corpus cycles through them.
const POST_EVENTS: [&str; 5] = ["delete", "withheld", "drop", "undrop", "tweet_edit"];
/// User compliance event types, likewise.
const USER_EVENTS: [&str; 9] = [
    "user_delete",
    "user_undelete",
    "user_protect",
    "user_unprotect",
    "user_suspend",
    "user_unsuspend",
    "user_withheld",
    "scrub_geo",
    "user_profile_modification",
];

/// One attempt at a volume or compliance stream, as the mock saw it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeLog {
    pub index: usize,
    pub path: &'static str,
    pub partition: Option<u32>,
    pub status: u16,
    /// Post numbers sent whole, in order (compliance: the posts the events are about).
    pub seqs: Vec<u64>,
    /// Compliance events sent: `[event type, post id]`.
    pub events: Vec<(String, String)>,
}

/// The volume streams' share of the mock's state.
#[derive(Default)]
pub(super) struct VolumeState {
    /// Next corpus position per (stream, partition).
    cursors: Mutex<HashMap<(&'static str, u32), u64>>,
    log: Mutex<Vec<VolumeLog>>,
    /// API requests answered (every route but `/mock/*`).
    requests: AtomicU64,
}

/// The routes, to merge into the mock's router.
pub(super) fn routes() -> Router<Arc<Mock>> {
    let mut router = Router::new();
    let langs = LANG_FIREHOSES.map(|(l, _)| StreamKind::FirehoseLang(l));
    for kind in [
        StreamKind::Sample,
        StreamKind::Sample10,
        StreamKind::Firehose,
        StreamKind::Compliance,
        StreamKind::UserCompliance,
        StreamKind::LikesFirehose,
        StreamKind::LikesSample10,
        StreamKind::LikesCompliance,
        StreamKind::Labels,
        StreamKind::Activity,
    ]
    .into_iter()
    .chain(langs)
    {
        router = router.route(
            kind.path(),
            get(
                move |state: State<Arc<Mock>>,
                      headers: HeaderMap,
                      query: Query<HashMap<String, String>>| {
                    volume_stream(kind, state, headers, query)
                },
            ),
        );
    }
    router
        .route("/mock/volume", get(volume_log))
        .route("/mock/requests", get(request_count))
}

/// Middleware: counts every API request.
pub(super) async fn count_request(
    State(mock): State<Arc<Mock>>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with("/mock/") {
        mock.volume.requests.fetch_add(1, Ordering::Relaxed);
    }
    next.run(req).await
}

async fn volume_log(State(mock): State<Arc<Mock>>) -> Response {
    axum::Json(lock(&mock.volume.log).clone()).into_response()
}

async fn request_count(State(mock): State<Arc<Mock>>) -> Response {
    axum::Json(json!({"requests": mock.volume.requests.load(Ordering::Relaxed)})).into_response()
}

/// A query parameter X does not accept: the parameter, its value, X's message.
#[derive(Debug)]
pub(super) struct Invalid(&'static str, String, String);

fn invalid_request(parameter: &'static str, value: &str, message: String) -> Invalid {
    Invalid(parameter, value.to_owned(), message)
}

/// X's 400 for a query parameter it does not accept.
pub(super) fn refuse(Invalid(parameter, value, message): Invalid) -> Response {
    let body = json!({
        "title": "Invalid Request",
        "detail": message,
        "type": "https://api.twitter.com/2/problems/invalid-request",
        "parameter": parameter,
        "value": value,
        "status": 400,
    });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The partition the query asks for, or X's 400.
fn partition_of(kind: StreamKind, query: &HashMap<String, String>) -> Result<Option<u32>, Invalid> {
    let given = query.get("partition");
    let Some(range) = kind.partitions() else {
        return match given {
            None => Ok(None),
            Some(v) => Err(invalid_request(
                "partition",
                v,
                "The query parameter [partition] is not one of [backfill_minutes,expansions,tweet.fields,user.fields,media.fields,place.fields,poll.fields]".into(),
            )),
        };
    };
    let Some(v) = given else {
        return Err(invalid_request(
            "partition",
            "",
            "The `partition` query parameter can not be empty".into(),
        ));
    };
    match v.parse::<u32>() {
        Ok(p) if range.contains(&p) => Ok(Some(p)),
        _ => Err(invalid_request(
            "partition",
            v,
            format!(
                "The `partition` query parameter value [{v}] is not between {} and {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

pub(super) fn check_backfill(query: &HashMap<String, String>) -> Result<(), Invalid> {
    match query.get("backfill_minutes") {
        None => Ok(()),
        Some(v) if v.parse::<u32>().is_ok_and(|m| m <= 5) => Ok(()),
        Some(v) => Err(invalid_request(
            "backfill_minutes",
            v,
            format!("The `backfill_minutes` query parameter value [{v}] is not between 0 and 5"),
        )),
    }
}

async fn volume_stream(
    kind: StreamKind,
    State(mock): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (index, script) = {
        let mut log = lock(&mock.volume.log);
        let index = log.len();
        log.push(VolumeLog {
            index,
            path: kind.path(),
            partition: None,
            status: 200,
            seqs: Vec::new(),
            events: Vec::new(),
        });
        (index, mock.scenario.script(index))
    };
    let set = |f: &dyn Fn(&mut VolumeLog)| f(&mut lock(&mock.volume.log)[index]);
    if script.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(script.delay_ms)).await;
    }
    if !authorized(&headers) {
        set(&|l| l.status = 401);
        return unauthorized();
    }
    let partition =
        match partition_of(kind, &query).and_then(|p| check_backfill(&query).map(|()| p)) {
            Ok(p) => p,
            Err(invalid) => {
                set(&|l| l.status = 400);
                return refuse(invalid);
            }
        };
    set(&|l| l.partition = partition);
    if let Some(refusal) = scripted_refusal(&script) {
        set(&|l| l.status = script.status);
        return refusal;
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let producer = VolumeProducer {
        kind,
        partition: partition.unwrap_or(1),
        partitions: kind.partitions().map_or(1, |r| *r.end()),
        mock: mock.clone(),
        index,
        tx,
        kill: lock(&mock.kill).clone(),
        buf: Vec::new(),
    };
    tokio::spawn(producer.produce(script));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("a valid response")
}

/// Writes one connection's body.
struct VolumeProducer {
    kind: StreamKind,
    partition: u32,
    partitions: u32,
    mock: Arc<Mock>,
    index: usize,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    kill: CancellationToken,
    buf: Vec<u8>,
}

impl VolumeProducer {
    /// The corpus post at partition position `n`, unless past the corpus.
    fn seq_at(&self, n: u64) -> Option<u64> {
        let seq = n * u64::from(self.partitions) + u64::from(self.partition - 1);
        let total = self.mock.scenario.total_tweets;
        (total == 0 || seq < total).then_some(seq)
    }

    /// Takes the next position of this stream's partition.
    fn take(&self) -> Option<u64> {
        let mut cursors = lock(&self.mock.volume.cursors);
        let n = cursors
            .entry((self.kind.path(), self.partition))
            .or_insert(0);
        let seq = self.seq_at(*n)?;
        *n += 1;
        Some(seq)
    }

    /// Appends the line for `seq` and logs it.
    fn push(&mut self, seq: u64) {
        let event = match self.kind {
            StreamKind::Compliance
            | StreamKind::UserCompliance
            | StreamKind::LikesCompliance
            | StreamKind::Labels => {
                let (line, event) = compliance_line(self.kind, seq);
                self.buf.extend_from_slice(line.as_bytes());
                Some(event)
            }
            StreamKind::LikesFirehose | StreamKind::LikesSample10 => {
                like_line(seq, &mut self.buf);
                None
            }
            StreamKind::Activity => {
                activity_line(seq, &mut self.buf);
                None
            }
            _ => {
                tweet_line(seq, &[], &mut self.buf);
                None
            }
        };
        let mut log = lock(&self.mock.volume.log);
        let entry = &mut log[self.index];
        entry.seqs.push(seq);
        entry.events.extend(event);
    }

    async fn send(&mut self) -> bool {
        let bytes = std::mem::take(&mut self.buf);
        tokio::select! {
            _ = self.kill.cancelled() => false,
            r = self.tx.send(Ok(Bytes::from(bytes))) => r.is_ok(),
        }
    }

    async fn produce(mut self, script: ConnectionScript) {
        // What a backfill resends: the last few posts of this partition.
        let done = lock(&self.mock.volume.cursors)
            .get(&(self.kind.path(), self.partition))
            .copied()
            .unwrap_or(0);
        for n in done.saturating_sub(script.duplicates)..done {
            if let Some(seq) = self.seq_at(n) {
                self.push(seq);
            }
        }
        if !self.buf.is_empty() && !self.send().await {
            return;
        }
        let rate = self.mock.scenario.rate;
        let keepalive = Duration::from_secs_f64(self.mock.scenario.keepalive_secs);
        let limit = script.tweets.unwrap_or(u64::MAX);
        let mut sent = 0;
        while sent < limit {
            match self.take() {
                Some(seq) => {
                    self.push(seq);
                    sent += 1;
                    if rate > 0.0 || self.buf.len() >= CHUNK {
                        if !self.send().await {
                            return;
                        }
                        if rate > 0.0 {
                            tokio::time::sleep(Duration::from_secs_f64(1.0 / rate)).await;
                        }
                    }
                }
                None => {
                    if (!self.buf.is_empty() && !self.send().await)
                        || !self.keepalive(keepalive).await
                    {
                        return;
                    }
                }
            }
        }
        if !self.buf.is_empty() && !self.send().await {
            return;
        }
        self.fault(script.fault).await;
    }

    /// Waits `every`, then sends `\r\n`; false once the connection is gone.
    async fn keepalive(&mut self, every: Duration) -> bool {
        tokio::select! {
            _ = self.kill.cancelled() => return false,
            _ = self.tx.closed() => return false,
            _ = tokio::time::sleep(every) => {}
        }
        self.buf.extend_from_slice(b"\r\n");
        self.send().await
    }

    async fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::None | Fault::Close => {}
            Fault::CutMidLine => {
                if let Some(seq) = self.take() {
                    let mut line = Vec::new();
                    tweet_line(seq, &[], &mut line);
                    line.truncate(line.len() / 2);
                    self.buf = line;
                    self.send().await;
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
                self.buf = format!("{line}\r\n").into_bytes();
                self.send().await;
            }
        }
    }
}

/// Like number `seq` (the `seq`-th corpus post, liked by one of the authors
/// a minute after it was posted), as the likes streams send it: the spec's
/// `LikeWithPostAuthor`, the liked post's author expanded.
fn like_line(seq: u64, out: &mut Vec<u8>) {
    let (author_id, name, username) = AUTHORS[(seq % AUTHORS.len() as u64) as usize];
    let created = chrono::DateTime::from_timestamp(1_764_000_000 + seq as i64 * 60, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let line = json!({
        "data": {
            "id": format!("{:016x}{:016x}", seq.wrapping_mul(0x9e37_79b9_7f4a_7c15), seq),
            "created_at": created,
            "liked_tweet_id": tweet_id(seq),
            "tweet_author_id": author_id,
        },
        "includes": {"users": [{"id": author_id, "name": name, "username": username}]},
    });
    out.extend_from_slice(line.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// X Activity event number `seq`: a like of corpus post `seq` seen through a
/// subscription to its author (`like.create`, payload `LikeWithPostAuthor`).
fn activity_line(seq: u64, out: &mut Vec<u8>) {
    let author = author_of(seq);
    let line = json!({
        "data": {
            "event_type": "like.create",
            "event_uuid": (1_900_000_000_000_000_000u64 + seq).to_string(),
            "filter": {"user_id": author},
            "tag": "mock",
            "payload": {"id": format!("{seq:x}"), "liked_tweet_id": tweet_id(seq), "tweet_author_id": author},
        }
    });
    out.extend_from_slice(line.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The author of corpus post `seq` (as its stream line names it).
fn author_of(seq: u64) -> String {
    let mut line = Vec::new();
    tweet_line(seq, &[], &mut line);
    serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v["data"]["author_id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The compliance event about corpus post `seq` (with `\r\n`) and its `(type, post id)`.
fn compliance_line(kind: StreamKind, seq: u64) -> (String, (String, String)) {
    let id = tweet_id(seq);
    let author = author_of(seq);
    let event_at = crate::record::rfc3339(
        chrono::DateTime::from_timestamp(1_767_225_600 + seq as i64, 0).unwrap_or_default(),
    );
    let (event_type, body) = if kind == StreamKind::Labels {
        // A label applied (even numbers: a notice; odd: unviewable), the spec's `PostLabelData`.
        let tweet = json!({"id": id, "author_id": author});
        if seq.is_multiple_of(2) {
            let body = json!({"tweet": tweet, "event_type": "misleading", "event_at": event_at, "application": "apply", "details": "Context added by the mock"});
            ("public_tweet_notice", body)
        } else {
            let body = json!({"tweet": tweet, "event_at": event_at, "application": "apply"});
            ("public_tweet_unviewable", body)
        }
    } else if kind == StreamKind::LikesCompliance {
        // An unlike: the spec's `LikeComplianceSchema`.
        let body = json!({"favorite": {"id": id, "user_id": author}, "event_at": event_at});
        ("delete", body)
    } else if kind == StreamKind::UserCompliance {
        let t = USER_EVENTS[(seq % USER_EVENTS.len() as u64) as usize];
        let mut body = json!({"user": {"id": author}, "event_at": event_at});
        match t {
            "scrub_geo" => body["up_to_tweet_id"] = json!(id),
            "user_withheld" => body["withheld_in_countries"] = json!(["DE", "TR"]),
            "user_profile_modification" => {
                body["profile_field"] = json!("description");
                body["new_value"] = json!(format!("profile text #{seq}"));
            }
            _ => {}
        }
        (t, body)
    } else {
        let t = POST_EVENTS[(seq % POST_EVENTS.len() as u64) as usize];
        let mut body = json!({"tweet": {"id": id, "author_id": author}, "event_at": event_at});
        match t {
            "withheld" => body["withheld_in_countries"] = json!(["DE"]),
            "tweet_edit" => {
                body = json!({"tweet": {"id": id}, "initial_tweet_id": id, "edit_tweet_ids": [id], "event_at": event_at});
            }
            _ => {}
        }
        (t, body)
    };
    let line = json!({"data": {event_type: body}});
    (format!("{line}\r\n"), (event_type.to_owned(), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn partitions_are_checked_like_x() {
        assert_eq!(partition_of(StreamKind::Sample, &q(&[])).unwrap(), None);
        assert_eq!(
            partition_of(StreamKind::Sample10, &q(&[("partition", "2")])).unwrap(),
            Some(2)
        );
        for (kind, query) in [
            (StreamKind::Sample10, q(&[])),
            (StreamKind::Sample10, q(&[("partition", "3")])),
            (StreamKind::Firehose, q(&[("partition", "21")])),
            (StreamKind::Compliance, q(&[("partition", "x")])),
            (StreamKind::Sample, q(&[("partition", "1")])),
        ] {
            let r = refuse(partition_of(kind, &query).unwrap_err());
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{kind:?} {query:?}");
        }
        assert!(check_backfill(&q(&[("backfill_minutes", "6")])).is_err());
        assert!(check_backfill(&q(&[("backfill_minutes", "5")])).is_ok());
    }

    #[test]
    fn compliance_events_name_their_post_or_user() {
        for kind in [StreamKind::Compliance, StreamKind::UserCompliance] {
            for seq in 0..12 {
                let (line, (t, id)) = compliance_line(kind, seq);
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let event = &v["data"][&t];
                assert!(event["event_at"].is_string(), "{line}");
                if kind == StreamKind::Compliance {
                    assert_eq!(event["tweet"]["id"], id.as_str(), "{line}");
                } else {
                    assert!(event["user"]["id"].is_string(), "{line}");
                }
                if t == "user_profile_modification" {
                    assert!(event["profile_field"].is_string() && event["new_value"].is_string());
                }
            }
        }
    }
}
