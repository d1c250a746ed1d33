//! A checking proxy on loopback: `ingest` talks to it as to X or Telegram, it
//! forwards to the mock, and checks both directions against the published
//! spec on the way. Stream answers pass through chunk by chunk, at the mock's
//! pace (a cut stream stays cut, a stall stays a stall, a burst stays a
//! burst); their whole lines are checked on a thread of their own, and the
//! proxy's drop waits until every line received was checked. One-document
//! answers are checked before the client sees them. `/mock/…` control paths
//! pass unchecked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Api, Exchange, Violation};

/// A stream line to check: its exchange, the answer's content type, the line.
type StreamLine = (Arc<Exchange>, String, Vec<u8>);

struct Shared {
    api: Api,
    upstream: String,
    client: reqwest::Client,
    violations: Mutex<Vec<Violation>>,
    /// Requests and stream lines checked.
    checked: Mutex<(usize, usize)>,
    /// Stream lines to check, for the line checker's thread.
    lines: Mutex<std::sync::mpsc::Sender<StreamLine>>,
    /// Stream lines received and not yet checked.
    pending: AtomicUsize,
}

impl Shared {
    fn record(&self, v: Vec<Violation>) {
        if !v.is_empty() {
            self.violations.lock().unwrap().extend(v);
        }
    }
}

/// The proxy; its drop fails the test that caused a violation.
pub struct SpecProxy {
    pub url: String,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl SpecProxy {
    /// A proxy in front of `upstream` (`http://127.0.0.1:port`) holding the
    /// traffic to `api`'s published contract.
    pub fn start(api: Api, upstream: &str) -> SpecProxy {
        // Loads (and converts) the spec before the first request waits on it.
        match api {
            Api::X => drop(super::x()),
            Api::Telegram => drop(super::telegram()),
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            api,
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            violations: Mutex::new(Vec::new()),
            checked: Mutex::new((0, 0)),
            lines: Mutex::new(line_tx),
            pending: AtomicUsize::new(0),
        });
        let checker = Arc::downgrade(&shared);
        std::thread::spawn(move || {
            for (ex, content_type, line) in line_rx {
                let Some(s) = checker.upgrade() else { return };
                s.record(
                    s.api
                        .check_response(&ex, 200, &content_type, &line, "stream line"),
                );
                s.checked.lock().unwrap().1 += 1;
                s.pending.fetch_sub(1, Ordering::SeqCst);
            }
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
        SpecProxy {
            url,
            shared,
            runtime: Some(runtime),
        }
    }

    /// What broke the contract so far, taken (a test that plants a violation
    /// asserts on it this way), once every stream line received is checked.
    pub fn take_violations(&self) -> Vec<Violation> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while self.shared.pending.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::mem::take(&mut *self.shared.violations.lock().unwrap())
    }

    /// (requests, stream lines) checked so far.
    pub fn checked(&self) -> (usize, usize) {
        while self.shared.pending.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        *self.shared.checked.lock().unwrap()
    }
}

impl Drop for SpecProxy {
    fn drop(&mut self) {
        // Every stream line received is checked before the verdict.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while self.shared.pending.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let violations = self.take_violations();
        if !violations.is_empty() && !std::thread::panicking() {
            let list: Vec<String> = violations.iter().map(|v| format!("- {v}")).collect();
            panic!(
                "the traffic between ingest and the mock breaks the published {:?} spec ({} violations):\n{}",
                self.shared.api,
                violations.len(),
                list.join("\n")
            );
        }
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ]
    .contains(name)
}

fn copy_headers(from: &HeaderMap) -> Vec<(HeaderName, axum::http::HeaderValue)> {
    from.iter()
        .filter(|(k, _)| !hop_by_hop(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn forward(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 << 20).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "proxy: body over 64 MiB").into_response();
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let ex = Exchange::new(parts.method.as_str(), &target, content_type, &bytes);
    let checked = !ex.path.starts_with("/mock/");
    if checked {
        s.record(s.api.check_request(&ex));
        s.checked.lock().unwrap().0 += 1;
    }
    let mut upstream = s
        .client
        .request(parts.method.clone(), format!("{}{target}", s.upstream));
    for (k, v) in copy_headers(&parts.headers) {
        upstream = upstream.header(k, v);
    }
    let resp = match upstream.body(bytes.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("proxy: {e}")).into_response(),
    };
    let status = resp.status();
    let resp_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut builder = Response::builder().status(status.as_u16());
    for (k, v) in copy_headers(resp.headers()) {
        builder = builder.header(k, v);
    }
    let streaming = status == StatusCode::OK && s.api.streams(&ex);
    if !streaming {
        let Ok(whole) = resp.bytes().await else {
            return (
                StatusCode::BAD_GATEWAY,
                "proxy: the mock's answer broke off",
            )
                .into_response();
        };
        if checked && !(whole.is_empty() && status.is_success() && s.api == Api::X) {
            let place = format!("response {}", status.as_u16());
            s.record(
                s.api
                    .check_response(&ex, status.as_u16(), &resp_type, &whole, &place),
            );
        }
        return builder.body(Body::from(whole)).unwrap();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(pump(s, ex, resp, resp_type, tx));
    builder
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}

/// Passes a stream answer on chunk by chunk and hands each whole line to the
/// line checker; a broken-off upstream breaks the downstream.
async fn pump(
    s: Arc<Shared>,
    ex: Exchange,
    mut resp: reqwest::Response,
    content_type: String,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let ex = Arc::new(ex);
    let mut pending: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                pending.extend_from_slice(&chunk);
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the client hung up: so does the proxy
                }
                let lines = s.lines.lock().unwrap().clone();
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = line.trim_ascii();
                    if line.is_empty() {
                        continue; // keep-alive
                    }
                    s.pending.fetch_add(1, Ordering::SeqCst);
                    if lines
                        .send((ex.clone(), content_type.clone(), line.to_vec()))
                        .is_err()
                    {
                        s.pending.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
            // A line cut by the end of the stream is the mock's scripted
            // fault, not an answer: it is not checked.
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e))).await;
                return;
            }
        }
    }
}
