//! The HTTP server under the FCM and APNs emulators: HTTP/2 without TLS (prior knowledge, "h2c"),
//! plus HTTP/1.1 on the same port where the vendor allows it (FCM's token endpoint, curl).
//!
//! hyper's server cannot lower `SETTINGS_MAX_CONCURRENT_STREAMS` on a live connection the way
//! APNs does (spec/vendors/apns.md §1), so [`H2Server::reset_connections`] ends every live
//! connection gracefully (GOAWAY; streams in flight finish) and the next connections advertise
//! the limit `streams` returns then. A client sees the same lowered limit, and must also survive
//! the GOAWAY.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::watch;

/// One accepted connection, as a handler sees it.
#[derive(Debug, Default)]
pub struct Connection {
    /// Increases by one per connection since start.
    pub id: u64,
    /// Whatever the emulator wants to remember per connection (APNs: the first key id).
    pub memo: Mutex<std::collections::HashMap<&'static str, String>>,
    /// Requests of this connection being handled now, this one included.
    pub in_flight: AtomicU64,
}

pub type Reply = Response<Full<Bytes>>;
pub type BoxReply = Pin<Box<dyn Future<Output = Reply> + Send>>;
/// Answers one request whose body was read whole.
pub type Handler = Arc<dyn Fn(Request<Bytes>, Arc<Connection>) -> BoxReply + Send + Sync>;
/// The `SETTINGS_MAX_CONCURRENT_STREAMS` a new connection advertises.
pub type StreamLimit = Arc<dyn Fn() -> u32 + Send + Sync>;

/// How the server starts.
pub struct Options {
    /// Thread and log name.
    pub name: &'static str,
    /// Refuse HTTP/1.1 (APNs speaks HTTP/2 only).
    pub http2_only: bool,
    /// Longest request body; longer ones get 413 before the handler runs.
    pub max_body_bytes: usize,
    /// Runtime worker threads.
    pub workers: usize,
    pub streams: StreamLimit,
}

/// A running server; dropping it stops it.
pub struct H2Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    resets: Arc<watch::Sender<u64>>,
    connections: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
}

pub fn text(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        reply.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    reply
}

pub fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    text(status, "application/json; charset=UTF-8", body.to_string())
}

/// Binds `listen` and serves `handler` on a thread of its own with its own tokio runtime, so
/// actix tests and plain tokio tests can both start it. Returns once the socket is bound.
pub fn start(listen: SocketAddr, options: Options, handler: Handler) -> io::Result<H2Server> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(false);
    let (resets, resets_rx) = watch::channel(0u64);
    let resets = Arc::new(resets);
    let connections = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let counter = (Arc::clone(&connections), Arc::clone(&open));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.workers.max(1))
        .thread_name(options.name)
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(format!("{}-{}", options.name, addr.port()))
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        accept_loop(listener, options, handler, stop_rx, resets_rx, counter).await
                    }
                    Err(err) => tracing::warn!(error = %err, "emulator listener failed"),
                }
            });
            // Dropping the runtime here aborts the connections still open.
        })?;
    Ok(H2Server {
        addr,
        stop,
        resets,
        connections,
        open,
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    options: Options,
    handler: Handler,
    mut stop: watch::Receiver<bool>,
    resets: watch::Receiver<u64>,
    counter: (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let (counter, open) = counter;
    let options = Arc::new(options);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::debug!(error = %err, "emulator accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let conn = Arc::new(Connection {
            id,
            ..Connection::default()
        });
        let options = Arc::clone(&options);
        let handler = Arc::clone(&handler);
        let mut resets = resets.clone();
        resets.mark_unchanged();
        let open = Arc::clone(&open);
        open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // Counted down however the task ends.
            let _open = OpenGuard(open);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http2()
                .max_concurrent_streams((options.streams)().max(1));
            if options.http2_only {
                builder = builder.http2_only();
            }
            let max_body = options.max_body_bytes;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = Arc::clone(&handler);
                let conn = Arc::clone(&conn);
                async move { Ok::<_, Infallible>(serve(req, max_body, handler, conn).await) }
            });
            let served = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(served);
            tokio::select! {
                _ = served.as_mut() => return,
                _ = resets.changed() => served.as_mut().graceful_shutdown(),
            }
            let _ = served.await;
        });
    }
}

struct OpenGuard(Arc<AtomicU64>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(
    req: Request<Incoming>,
    max_body: usize,
    handler: Handler,
    conn: Arc<Connection>,
) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "request body too large or cut off",
            )
        }
    };
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    let reply = handler(Request::from_parts(parts, body), Arc::clone(&conn)).await;
    conn.in_flight.fetch_sub(1, Ordering::Relaxed);
    reply
}

/// Ends every live connection of a server gracefully; handed to a handler that needs it.
#[derive(Clone)]
pub struct Resetter(Arc<watch::Sender<u64>>);

impl Resetter {
    pub fn reset(&self) {
        self.0.send_modify(|g| *g += 1);
    }
}

impl H2Server {
    /// Ends every live connection gracefully; new ones get the limit `streams` gives now.
    pub fn reset_connections(&self) {
        self.resets.send_modify(|g| *g += 1);
    }

    pub fn resetter(&self) -> Resetter {
        Resetter(Arc::clone(&self.resets))
    }

    /// Connections accepted since start.
    pub fn connections_accepted(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Stops accepting and drops open connections; returns at once.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for H2Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until `hang` reads false, or `cap` passes (false then).
pub async fn wait_while<K: Clone>(
    knobs: &mut watch::Receiver<K>,
    hang: impl Fn(&K) -> bool,
    cap: std::time::Duration,
) -> bool {
    let cap = tokio::time::sleep(cap);
    tokio::pin!(cap);
    loop {
        if !hang(&knobs.borrow_and_update()) {
            return true;
        }
        tokio::select! {
            changed = knobs.changed() => if changed.is_err() { return false },
            () = &mut cap => return false,
        }
    }
}

/// Runs until SIGTERM or ctrl-c (the standalone `pushgate emulator <vendor>`).
pub async fn until_signal() -> io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
