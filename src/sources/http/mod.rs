//! The HTTP(S) server both webhooks run on (Telegram's and X's Account
//! Activity), written as its own accept loop so that every way a client can
//! hold the process is bounded:
//!
//! - at most `max_connections` connections are open; past it the oldest idle
//!   one (no request in progress: a half-sent header, an idle keep-alive) is
//!   closed to make room, or the new one is refused when every connection is
//!   busy; either is logged at warn, at most once per [`SHED_LOG_EVERY`];
//! - a request's headers must arrive within `header_read_timeout`, which also
//!   closes connections idle that long between requests;
//! - a body must arrive whole within `body_read_timeout` (408 otherwise) and be
//!   at most `max_body_bytes` (413);
//! - on shutdown the listener closes, idle connections close, requests in
//!   progress get `drain_timeout` (the run's `--shutdown-timeout`) to finish,
//!   and whatever is still open after it is closed.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::sources::SourceError;

mod config;
pub use config::*;

/// The shortest gap between two "shedding connections" warnings.
pub const SHED_LOG_EVERY: Duration = Duration::from_secs(10);
/// The pause after a failed `accept` (out of descriptors, say) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// TLS certificate and key (PEM files) for a webhook listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

/// The server's limits, resolved.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_body_bytes: usize,
    /// How long requests in progress may still take after shutdown begins.
    pub drain_timeout: Duration,
}

impl ServerLimits {
    pub fn new(config: &WebhookServerConfig, drain_timeout: Duration) -> Self {
        ServerLimits {
            max_connections: config.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            header_read_timeout: config
                .header_read_timeout
                .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT),
            body_read_timeout: config
                .body_read_timeout
                .unwrap_or(DEFAULT_BODY_READ_TIMEOUT),
            max_body_bytes: config.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            drain_timeout,
        }
    }
}

/// Binds `listen`, serves `app` (over TLS with `tls`) until `shutdown`, then
/// drains requests in progress for at most `limits.drain_timeout`.
///
/// Handlers can extract the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listen: &str,
    tls: Option<&TlsFiles>,
    app: Router,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> Result<(), SourceError> {
    let listen_err = |source| SourceError::Listen {
        addr: listen.to_owned(),
        source,
    };
    let acceptor = tls_acceptor(tls, &limits).await.map_err(listen_err)?;
    let listener = TcpListener::bind(listen).await.map_err(listen_err)?;
    let addr = listener.local_addr().map_err(listen_err)?;
    let scheme = if acceptor.is_some() {
        "TLS"
    } else {
        "plain HTTP"
    };
    info!(%addr, max_connections = limits.max_connections, "webhook listening ({scheme})");
    let slots = Arc::new(Slots::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut accept_errors = RateLimitedLog::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done
                    && e.is_panic()
                {
                    warn!(error = %e, "a webhook connection task panicked");
                }
            }
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors, say: pause instead of spinning.
                        if let Some(n) = accept_errors.note(1) {
                            warn!(error = %e, errors = n, "webhook cannot accept connections");
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                let slot = match slots.admit() {
                    Admit::Room(slot) => slot,
                    Admit::Evicted(slot) => {
                        slots.shed(Shed::ClosedIdle);
                        slot
                    }
                    Admit::Full => {
                        slots.shed(Shed::Refused);
                        refuse(tcp, acceptor.is_none());
                        continue;
                    }
                };
                let conn = Connection {
                    peer,
                    app: app.clone(),
                    limits,
                    slot,
                    shutdown: shutdown.clone(),
                };
                connections.spawn(conn.run(tcp, acceptor.clone()));
            }
        }
    }
    drop(listener);
    drain(connections, limits.drain_timeout).await;
    Ok(())
}

/// The TLS acceptor for `tls` (HTTP/1.1 only), or none for plain HTTP.
async fn tls_acceptor(
    tls: Option<&TlsFiles>,
    limits: &ServerLimits,
) -> std::io::Result<Option<RustlsAcceptor>> {
    let Some(tls) = tls else {
        return Ok(None);
    };
    let loaded = RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "TLS certificate {} / key {}: {e}",
                    tls.cert.display(),
                    tls.key.display()
                ),
            )
        })?;
    // The server speaks HTTP/1.1 only (its timeouts are HTTP/1's): offer no h2.
    let mut config = (*loaded.get_inner()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(
        RustlsAcceptor::new(RustlsConfig::from_config(Arc::new(config)))
            .handshake_timeout(limits.header_read_timeout),
    ))
}

/// Waits at most `timeout` for the requests in progress, then closes the rest.
async fn drain(mut connections: JoinSet<()>, timeout: Duration) {
    let open = connections.len();
    if open > 0 {
        debug!(
            open,
            "webhook stopped accepting; draining requests in progress"
        );
    }
    let drained = tokio::time::timeout(timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = connections.len(),
            timeout_secs = timeout.as_secs_f64(),
            "webhook connections still open after the shutdown timeout; closing them"
        );
        connections.shutdown().await;
    }
}

/// Answers a connection there is no room for: a plain-HTTP 503 when the socket
/// takes it at once, then close.
fn refuse(tcp: TcpStream, plain: bool) {
    if plain {
        let _ = tcp.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
    }
}

/// One accepted connection and what it needs.
struct Connection {
    peer: SocketAddr,
    app: Router,
    limits: ServerLimits,
    slot: Slot,
    shutdown: CancellationToken,
}

impl Connection {
    async fn run(self, tcp: TcpStream, tls: Option<RustlsAcceptor>) {
        let _ = tcp.set_nodelay(true);
        match tls {
            None => self.serve(tcp).await,
            Some(acceptor) => {
                let handshake = tokio::select! {
                    r = acceptor.accept(tcp, ()) => r,
                    _ = self.slot.evict.cancelled() => return,
                    _ = self.shutdown.cancelled() => return,
                };
                match handshake {
                    Ok((stream, ())) => self.serve(stream).await,
                    Err(e) => debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
                }
            }
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            app,
            limits,
            slot,
            shutdown,
        } = self;
        let busy = slot.busy.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let app = app.clone();
            let guard = BusyGuard::new(busy.clone());
            async move {
                let _guard = guard;
                let mut req = match buffer_body(req, &limits).await {
                    Ok(req) => req,
                    Err(response) => return Ok::<_, std::convert::Infallible>(response),
                };
                req.extensions_mut().insert(ConnectInfo(peer));
                app.oneshot(req).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let ended = tokio::select! {
            r = conn.as_mut() => Some(r),
            _ = slot.evict.cancelled() => None,
            _ = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    r = conn.as_mut() => Some(r),
                    _ = slot.evict.cancelled() => None,
                }
            }
        };
        if let Some(Err(e)) = ended {
            debug!(%peer, error = %e, "webhook connection ended with an error");
        }
    }
}

/// Reads the whole body within the body timeout and the size cap.
async fn buffer_body(
    req: Request<Incoming>,
    limits: &ServerLimits,
) -> Result<Request<Body>, Response<Body>> {
    let (parts, body) = req.into_parts();
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {} bytes\n", limits.max_body_bytes),
        )
            .into_response()
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large());
    }
    let read = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => {
            Err((StatusCode::BAD_REQUEST, "the body could not be read\n").into_response())
        }
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            "the body did not arrive in time\n",
        )
            .into_response()),
    }
}

/// Counts a request in progress on its connection while it lives.
struct BusyGuard(Arc<AtomicUsize>);

impl BusyGuard {
    fn new(busy: Arc<AtomicUsize>) -> Self {
        busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(busy)
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open connections, oldest first, and the cap on them.
struct Slots {
    max: usize,
    inner: Mutex<SlotsInner>,
    shed_log: Mutex<ShedLog>,
}

#[derive(Default)]
struct SlotsInner {
    next_id: u64,
    open: BTreeMap<u64, (Arc<AtomicUsize>, CancellationToken)>,
}

/// A connection's place under the cap; dropping it frees the place.
struct Slot {
    id: u64,
    slots: Arc<Slots>,
    /// Requests in progress on the connection.
    busy: Arc<AtomicUsize>,
    /// Cancelled when the connection is closed to make room for a new one.
    evict: CancellationToken,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .remove(&self.id);
    }
}

enum Admit {
    Room(Slot),
    /// Admitted after closing the oldest idle connection.
    Evicted(Slot),
    /// Every connection has a request in progress.
    Full,
}

#[derive(Clone, Copy)]
enum Shed {
    ClosedIdle,
    Refused,
}

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            max: max.max(1),
            inner: Mutex::new(SlotsInner::default()),
            shed_log: Mutex::new(ShedLog::default()),
        }
    }

    fn admit(self: &Arc<Self>) -> Admit {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut evicted = false;
        if inner.open.len() >= self.max {
            let idle = inner
                .open
                .iter()
                .find(|(_, (busy, _))| busy.load(Ordering::SeqCst) == 0)
                .map(|(id, _)| *id);
            let Some(id) = idle else {
                return Admit::Full;
            };
            if let Some((_, evict)) = inner.open.remove(&id) {
                evict.cancel();
            }
            evicted = true;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let evict = CancellationToken::new();
        inner.open.insert(id, (busy.clone(), evict.clone()));
        let slot = Slot {
            id,
            slots: self.clone(),
            busy,
            evict,
        };
        if evicted {
            Admit::Evicted(slot)
        } else {
            Admit::Room(slot)
        }
    }

    /// Notes a shed connection; warns at most once per [`SHED_LOG_EVERY`].
    fn shed(&self, how: Shed) {
        let mut log = self.shed_log.lock().unwrap_or_else(|p| p.into_inner());
        match how {
            Shed::ClosedIdle => log.closed_idle += 1,
            Shed::Refused => log.refused += 1,
        }
        if log.last.is_none_or(|t| t.elapsed() >= SHED_LOG_EVERY) {
            warn!(
                max_connections = self.max,
                closed_idle = log.closed_idle,
                refused = log.refused,
                "webhook connection limit reached: shedding connections"
            );
            *log = ShedLog {
                last: Some(Instant::now()),
                ..ShedLog::default()
            };
        }
    }
}

/// Connections shed since the last warning.
#[derive(Default)]
struct ShedLog {
    last: Option<Instant>,
    closed_idle: u64,
    refused: u64,
}

/// Counts events and says when to log them: at most once per [`SHED_LOG_EVERY`].
#[derive(Default)]
struct RateLimitedLog {
    last: Option<Instant>,
    since: u64,
}

impl RateLimitedLog {
    /// `Some(events since the last log)` when it is time to log.
    fn note(&mut self, n: u64) -> Option<u64> {
        self.since += n;
        if self.last.is_none_or(|t| t.elapsed() >= SHED_LOG_EVERY) {
            self.last = Some(Instant::now());
            return Some(std::mem::take(&mut self.since));
        }
        None
    }
}

/// A token bucket per client: `per_minute` requests, refilled evenly.
/// IPv6 clients are keyed by their /64, the block one host usually holds.
#[derive(Debug)]
pub struct PerClientLimit {
    per_minute: u32,
    buckets: Mutex<std::collections::HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients tracked at most; past it full buckets are forgotten.
const MAX_TRACKED_CLIENTS: usize = 10_000;

impl PerClientLimit {
    pub fn new(per_minute: u32) -> Self {
        PerClientLimit {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Takes a token for `ip`; false when its bucket is empty.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let key = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut o = v6.octets();
                    o[8..].fill(0);
                    IpAddr::from(o)
                }
            },
            v4 => v4,
        };
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let refill = |(tokens, at): (f64, Instant)| {
            (tokens + now.saturating_duration_since(at).as_secs_f64() * per_sec).min(capacity)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&key) {
            buckets.retain(|_, b| refill(*b) < capacity);
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert((capacity, now));
        let tokens = refill(*bucket);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

/// 503 with `Retry-After`: not confirmed by the sinks (yet), so deliver it again.
pub fn retry_later() -> axum::response::Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "not confirmed by every sink yet; retry\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(slot: &Slot) {
        slot.busy.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn past_the_cap_the_oldest_idle_connection_makes_room() {
        let slots = Arc::new(Slots::new(2));
        let Admit::Room(a) = slots.admit() else {
            panic!()
        };
        let Admit::Room(b) = slots.admit() else {
            panic!()
        };
        busy(&a);
        let Admit::Evicted(c) = slots.admit() else {
            panic!("the idle connection was not closed")
        };
        assert!(!a.evict.is_cancelled(), "a busy connection was closed");
        assert!(b.evict.is_cancelled());
        busy(&c);
        assert!(matches!(slots.admit(), Admit::Full));
        drop(a);
        assert!(matches!(slots.admit(), Admit::Room(_)));
    }

    #[test]
    fn a_dropped_slot_frees_its_place() {
        let slots = Arc::new(Slots::new(1));
        let Admit::Room(a) = slots.admit() else {
            panic!()
        };
        busy(&a);
        assert!(matches!(slots.admit(), Admit::Full));
        drop(a);
        assert!(matches!(slots.admit(), Admit::Room(_)));
    }

    #[test]
    fn the_per_client_limit_refills_over_a_minute() {
        let limit = PerClientLimit::new(10);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        assert!((0..10).all(|_| limit.allow_at(a, t0)));
        assert!(!limit.allow_at(a, t0));
        assert!(limit.allow_at(b, t0), "another client has its own bucket");
        assert!(!limit.allow_at(a, t0 + Duration::from_secs(3)));
        assert!(limit.allow_at(a, t0 + Duration::from_secs(7)));
        assert!(!limit.allow_at(a, t0 + Duration::from_secs(7)));
    }

    #[test]
    fn ipv6_clients_share_their_64_block() {
        let limit = PerClientLimit::new(1);
        let t0 = Instant::now();
        assert!(limit.allow_at("2001:db8::1".parse().unwrap(), t0));
        assert!(!limit.allow_at("2001:db8::2".parse().unwrap(), t0));
        assert!(limit.allow_at("2001:db8:0:1::1".parse().unwrap(), t0));
    }

    #[test]
    fn zero_values_are_refused() {
        let ok = WebhookServerConfig::default();
        assert!(ok.validate().is_ok());
        let zero = WebhookServerConfig {
            max_connections: Some(0),
            ..WebhookServerConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().0, "max_connections");
        let zero = WebhookServerConfig {
            body_read_timeout: Some(Duration::ZERO),
            ..WebhookServerConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().0, "body_read_timeout");
    }
}
