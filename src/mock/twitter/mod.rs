//! The mock X API v2: filtered-stream rules, the stream itself with scripted
//! faults, and `DELETE /2/connections/all`.
//!
//! Faults come from a TOML scenario (see `examples/scenario.toml`): one
//! `[[connection]]` table per connection attempt, in order; attempts past the
//! list get a healthy stream. `GET /mock/connections` returns what each
//! connection answered and which tweets it sent, for tests.
//!
//! - `scenario`: the scenario file (pace, per-connection scripts).
//! - `tweets`: the synthetic tweet lines.
//! - `rules`: the rules endpoints and X's validation errors.
//! - `stream`: the stream endpoint and the task that writes one connection's body.
//! - here: the shared state, X's problem answers, the routes and the `/mock/*` log.

mod activity;
mod deliver;
mod matcher;
mod replay;
mod rules;
mod scenario;
mod search;
mod signing;
mod stream;
mod tweets;
mod volume;
mod webhooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{MockError, MockServer, lock};
use rules::LiveRule;

/// The filtered stream, its rules and the connection reset, as the spec names them.
const STREAM_PATH: &str = "/2/tweets/search/stream";
const RULES_PATH: &str = "/2/tweets/search/stream/rules";
const CONNECTIONS_PATH: &str = "/2/connections/all";

pub use rules::rule_problem;
pub use scenario::{ConnectionScript, Fault, Scenario};
pub use search::{SearchCall, SearchScenario};
pub use tweets::tweet_id;
pub use webhooks::{
    MOCK_ACCESS_TOKEN, MOCK_ACCESS_TOKEN_SECRET, MOCK_CONSUMER_KEY, MOCK_CONSUMER_SECRET,
};

/// One connection attempt as the mock saw it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionLog {
    pub index: usize,
    /// Milliseconds since the mock started.
    pub at_ms: u64,
    pub status: u16,
    pub fault: Fault,
    /// Tweet numbers sent whole on this connection: `[first, last]` of the fresh ones.
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Tweet numbers sent again (duplicates).
    pub duplicate_seqs: Vec<u64>,
    /// The tweet cut mid-line, if any.
    pub cut_seq: Option<u64>,
    /// The `backfill_minutes` the client asked for, as sent.
    pub backfill_minutes: Option<String>,
}

/// The first id the mock gives a rule.
const FIRST_RULE_ID: u64 = 1_700_000_000_000_000_000;

struct Mock {
    /// The mock's own URL, for the media URLs of its posts.
    base_url: String,
    /// Downloads of the media catalog's files (`GET /media/{name}`).
    files: crate::mock::media::Served,
    scenario: Scenario,
    started: Instant,
    rules: Mutex<Vec<LiveRule>>,
    next_rule_id: AtomicU64,
    next_seq: AtomicU64,
    connections: Mutex<Vec<ConnectionLog>>,
    kill: Mutex<CancellationToken>,
    shutdown: CancellationToken,
    /// `DELETE /2/connections/all` calls.
    resets: AtomicU64,
    /// Stream connections being written now.
    open_streams: AtomicU64,
    /// The volume and compliance streams (`volume.rs`).
    volume: volume::VolumeState,
    /// The search endpoints' corpus, budget and call log (`search.rs`).
    search: search::SearchState,
}

impl Mock {
    fn new(scenario: Scenario, shutdown: CancellationToken, base_url: String) -> Mock {
        let initial: Vec<LiveRule> = scenario
            .rule
            .iter()
            .enumerate()
            .map(|(i, r)| LiveRule {
                id: (FIRST_RULE_ID + i as u64).to_string(),
                value: r.value.clone(),
                tag: r.tag.clone(),
            })
            .collect();
        Mock {
            base_url,
            files: crate::mock::media::Served::default(),
            search: search::SearchState::new(scenario.search.clone()),
            next_rule_id: AtomicU64::new(FIRST_RULE_ID + initial.len() as u64),
            rules: Mutex::new(initial),
            scenario,
            started: Instant::now(),
            next_seq: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
            kill: Mutex::new(shutdown.child_token()),
            shutdown,
            resets: AtomicU64::new(0),
            open_streams: AtomicU64::new(0),
            volume: volume::VolumeState::default(),
        }
    }
}

/// X's `application/problem+json` error answer; `kind` is the problem type's
/// last segment, or `about:blank` (a generic error, docs.x.com).
fn problem(status: StatusCode, title: &str, detail: &str, kind: &str) -> Response {
    let kind = match kind {
        "about:blank" => kind.to_owned(),
        k => format!("https://api.twitter.com/2/problems/{k}"),
    };
    let body = json!({"title": title, "detail": detail, "type": kind, "status": status.as_u16()});
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| !t.trim().is_empty())
}

fn unauthorized() -> Response {
    problem(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        // What live X answers a missing or wrong token with.
        "about:blank",
    )
}

/// Starts the mock on `addr` (`127.0.0.1:0` picks a port).
pub async fn start(addr: &str, scenario: Scenario) -> Result<MockServer, MockError> {
    let (listener, local) = super::bind(addr).await?;
    let shutdown = CancellationToken::new();
    let mock = Arc::new(Mock::new(
        scenario,
        shutdown.clone(),
        format!("http://{local}"),
    ));
    let app = Router::new()
        .route(STREAM_PATH, get(stream::stream))
        .route(RULES_PATH, get(rules::list_rules).post(rules::change_rules))
        .route(
            "/2/tweets/search/stream/rules/counts",
            get(rules::rule_counts),
        )
        .route(CONNECTIONS_PATH, delete(kill_connections))
        .route("/mock/connections", get(connection_log))
        .route("/mock/resets", get(resets))
        .route("/media/{name}", get(media_file))
        .route(search::RECENT, get(search::recent))
        .route(search::ARCHIVE, get(search::all))
        .route(search::COUNTS_RECENT, get(search::counts_recent))
        .route(search::COUNTS_ALL, get(search::counts_all))
        .route("/mock/tweets", axum::routing::post(search::add_posts))
        .route("/mock/search/calls", get(search::calls))
        .merge(webhooks::router())
        .merge(volume::routes())
        .layer(axum::middleware::from_fn_with_state(
            mock.clone(),
            volume::count_request,
        ))
        .with_state(mock);
    Ok(super::serve(listener, local, app, shutdown, "mock X API"))
}

async fn connection_log(State(mock): State<Arc<Mock>>) -> Response {
    let log = lock(&mock.connections).clone();
    axum::Json(log).into_response()
}

/// `GET /media/{name}`: a file of the media catalog, as pbs.twimg.com and
/// video.twimg.com serve posts' media (no credentials).
async fn media_file(
    State(mock): State<Arc<Mock>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    mock.files.answer(&name, None)
}

async fn resets(State(mock): State<Arc<Mock>>) -> Response {
    axum::Json(json!({"resets": mock.resets.load(Ordering::Relaxed)})).into_response()
}

async fn kill_connections(State(mock): State<Arc<Mock>>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return unauthorized();
    }
    mock.resets.fetch_add(1, Ordering::Relaxed);
    let mut kill = lock(&mock.kill);
    kill.cancel();
    *kill = mock.shutdown.child_token();
    let killed = mock.open_streams.load(Ordering::Relaxed);
    axum::Json(json!({"data": {"successful_kills": killed, "failed_kills": 0}})).into_response()
}

#[cfg(test)]
mod tests {
    use super::rules::NewRule;
    use super::*;

    #[test]
    fn scenario_rules_start_live_with_consecutive_ids() {
        let scenario = Scenario {
            rule: vec![
                NewRule {
                    value: "cats".into(),
                    tag: None,
                },
                NewRule {
                    value: "dogs".into(),
                    tag: Some("d".into()),
                },
            ],
            ..Scenario::default()
        };
        let mock = Mock::new(
            scenario,
            CancellationToken::new(),
            "http://127.0.0.1:1".into(),
        );
        let rules = lock(&mock.rules).clone();
        assert_eq!(rules[0].id, FIRST_RULE_ID.to_string());
        assert_eq!(rules[1].id, (FIRST_RULE_ID + 1).to_string());
        assert_eq!(rules[1].tag.as_deref(), Some("d"));
        assert_eq!(mock.next_rule_id.load(Ordering::Relaxed), FIRST_RULE_ID + 2);
    }

    #[test]
    fn only_a_bearer_token_authorizes() {
        let mut h = HeaderMap::new();
        assert!(!authorized(&h));
        h.insert(header::AUTHORIZATION, "Bearer  ".parse().unwrap());
        assert!(!authorized(&h));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(!authorized(&h));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(authorized(&h));
    }
}
