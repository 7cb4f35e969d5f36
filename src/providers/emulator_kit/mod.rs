//! What the OPPO, vivo and Meizu emulators share: the listener thread, outage knobs (latency,
//! hang, 5xx), per-second windows, daily quotas, issued auth tokens, token fates, the received
//! log and the `/_emulator/*` control surface. Each vendor's emulator adds only its endpoints
//! and its rules (`providers/<vendor>/emulator`), modelled on the Xiaomi emulator.

mod control;
mod knobs_patch;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::BytesMut;
use futures_util::StreamExt;
use rand::Rng;

pub(crate) use control::json_response;
pub use knobs_patch::patch_knobs;
pub use state::{
    now_ms, random_hex, EmulatorApp, EmulatorStats, KitRules, Knobs, OverQuota, ReceivedFilter,
    ReceivedNotification, Shared, TokenCheck, TokenFate,
};

/// A running emulator. Dropping the handle stops it.
pub struct EmulatorHandle {
    /// Where it listens (the real port when started on port 0).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
}

/// Starts an emulator on `listen` (port 0 picks a free port) in its own thread with its own
/// actix `System`; `configure` adds the vendor's endpoints (and its rules as app data). Returns
/// once the socket is bound.
pub fn start<F>(shared: Arc<Shared>, listen: SocketAddr, configure: F) -> io::Result<EmulatorHandle>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let (started_tx, started_rx) = std::sync::mpsc::channel::<io::Result<ServerHandle>>();
    let app_state = Arc::clone(&shared);
    let workers = shared.rules.workers.max(1);
    let vendor = shared.vendor;
    std::thread::Builder::new()
        .name(format!("{vendor}-emulator-{}", addr.port()))
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(app_state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .configure(configure.clone())
                        .configure(control::configure)
                        .default_service(web::to(not_found))
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener);
                let server = match server {
                    Ok(server) => server.run(),
                    Err(err) => {
                        let _ = started_tx.send(Err(err));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(server.handle()));
                if let Err(err) = server.await {
                    tracing::warn!(error = %err, vendor, "emulator stopped with an error");
                }
            });
        })?;
    let server = started_rx.recv().map_err(|_| {
        io::Error::other(format!("{vendor} emulator thread ended before it started"))
    })??;
    tracing::info!(%addr, vendor, "emulator listening");
    Ok(EmulatorHandle {
        addr,
        shared,
        server,
    })
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html")
        .body("<html><body><h1>404 Not Found</h1></body></html>")
}

impl EmulatorHandle {
    /// `http://addr`, the base URL to give the vendor's client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every accepted (target, notification), oldest first.
    pub fn received(&self) -> Vec<ReceivedNotification> {
        self.shared.received(&ReceivedFilter::default())
    }

    pub fn received_filtered(&self, filter: &ReceivedFilter) -> Vec<ReceivedNotification> {
        self.shared.received(filter)
    }

    /// Forgets the received records (counters, quota and stats stay).
    pub fn clear(&self) {
        self.shared.clear();
    }

    /// Adds an app, or replaces the secret of a known one.
    pub fn add_app(&self, app: EmulatorApp) {
        self.shared.add_app(app);
    }

    /// Marks device tokens: `Invalid` (unknown / malformed) or `SwitchedOff`.
    pub fn set_token_fate<I, S>(&self, tokens: I, fate: TokenFate)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fates = tokens.into_iter().map(|t| (t.into(), fate)).collect();
        self.shared.set_fates(Vec::new(), fates);
    }

    /// Makes device tokens plainly valid again.
    pub fn set_tokens_valid<I, S>(&self, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .set_fates(tokens.into_iter().map(Into::into).collect(), Vec::new());
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// Replaces all knobs; hanging requests wake when `hang` goes false.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs);
    }

    /// Every auth token issued so far expires now.
    pub fn expire_auth_tokens(&self) -> usize {
        self.shared.expire_auth_tokens()
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    /// Stops accepting and drops in-flight requests; returns at once.
    pub fn stop(&self) {
        drop(self.server.stop(false));
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The outage knobs, applied before a push request is looked at: latency, then hang (504 after
/// the cap), then a share of 503s. `Some` is the answer to give instead of processing.
pub(crate) async fn outage(shared: &Shared, endpoint: &str) -> Option<HttpResponse> {
    let knobs = shared.knobs();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if knobs.hang && !wait_while_hung(shared).await {
        shared.count_request(endpoint, "http_504");
        return Some(
            HttpResponse::GatewayTimeout()
                .content_type("text/html")
                .body("<html><body><h1>504 Gateway Time-out</h1></body></html>"),
        );
    }
    let ratio = shared.knobs().error_5xx_ratio;
    // `<` with a NaN ratio is false: a bad knob never panics, it just never fires.
    if ratio > 0.0 && rand::rng().random::<f64>() < ratio {
        shared.count_request(endpoint, "http_503");
        return Some(
            HttpResponse::ServiceUnavailable()
                .content_type("text/html")
                .body("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"),
        );
    }
    None
}

/// Waits until the `hang` knob is cleared; false when the cap passed or the emulator stopped.
async fn wait_while_hung(shared: &Shared) -> bool {
    let mut knobs = shared.watch_knobs();
    let cap = tokio::time::sleep(shared.hang_cap());
    tokio::pin!(cap);
    loop {
        if !knobs.borrow_and_update().hang {
            return true;
        }
        tokio::select! {
            changed = knobs.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            () = &mut cap => return false,
        }
    }
}

/// The request body, or `None` when it could not be read or is longer than `limit`.
pub(crate) async fn read_body(mut body: web::Payload, limit: usize) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf)
}

/// Runs an emulator until SIGTERM or ctrl-c (`pushgate emulator <vendor>`).
pub async fn run_until_signal(handle: EmulatorHandle) -> io::Result<()> {
    shutdown_signal().await?;
    tracing::info!(addr = %handle.addr, "emulator shutting down");
    handle.stop();
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> io::Result<()> {
    tokio::signal::ctrl_c().await
}

/// Whether a `Content-Type` header value names `expected` (parameters such as charset ignored).
pub(crate) fn content_type_is(req: &actix_web::HttpRequest, expected: &str) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}
