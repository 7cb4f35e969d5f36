//! A loopback Xiaomi MiPush server for tests, demos and load runs.
//!
//! It behaves as `spec/xiaomi-push-api.md` says Xiaomi behaves — not as our client happens to
//! send — so the client is tested against the vendor's rules: `Authorization: key=` checks,
//! package ownership, blank/long title and description, extra limits, ≤1000 targets, bad regIds
//! in `data.bad_regids`, 20301, QPS (10027), daily quota (200001), outages (5xx, latency, hang).
//! Where the spec says UNCONFIRMED the choice lives in [`EmulatorRules`].
//!
//! Files: `config` (what it starts with), `state` (shared state), `envelope` (Xiaomi's reply
//! shape and ids), `push` (the send endpoints), `receipts` (delivery receipts posted to
//! `extra.callback`), `control` (`/_emulator/*`).

mod config;
mod control;
mod envelope;
mod push;
mod receipts;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use crate::providers::receipt_poster::ReceiptStats;
pub use config::{EmulatorApp, EmulatorConfig, EmulatorRules, Knobs, RegidPolicy};
pub use state::{EmulatorStats, ReceivedFilter, ReceivedNotification};

use state::Shared;

/// A running emulator. Dropping the handle stops it.
pub struct EmulatorHandle {
    /// Where it listens (the real port when started on port 0).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
}

/// Starts an emulator on `listen` (port 0 picks a free port) in its own thread with its own
/// actix `System`, so plain tokio tests and other actix apps can both start it. Returns once
/// the socket is bound.
pub fn start(config: EmulatorConfig, listen: SocketAddr) -> io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new(config));
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let (started_tx, started_rx) = std::sync::mpsc::channel::<io::Result<ServerHandle>>();
    let app_state = Arc::clone(&shared);
    let workers = shared.rules.workers.max(1);
    std::thread::Builder::new()
        .name(format!("xiaomi-emulator-{}", addr.port()))
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                actix_rt::spawn(receipts::run_poster(Arc::clone(&app_state)));
                let data = web::Data::from(app_state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .configure(push::configure)
                        .configure(control::configure)
                        .default_service(web::to(push::not_found))
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
                    tracing::warn!(error = %err, "xiaomi emulator stopped with an error");
                }
            });
        })?;
    let server = started_rx
        .recv()
        .map_err(|_| io::Error::other("xiaomi emulator thread ended before it started"))??;
    tracing::info!(%addr, "xiaomi emulator listening");
    Ok(EmulatorHandle {
        addr,
        shared,
        server,
    })
}

impl EmulatorHandle {
    /// See [`start`].
    pub fn start(config: EmulatorConfig, listen: SocketAddr) -> io::Result<EmulatorHandle> {
        start(config, listen)
    }

    /// `http://addr`, the base URL to give a `XiaomiClient`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every accepted (regId, notification), oldest first.
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

    /// Adds an app, or replaces the secret of a known package.
    pub fn add_app(&self, app: EmulatorApp) {
        self.shared.add_app(app);
    }

    pub fn add_valid_regids<I, S>(&self, regids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .add_regids(regids.into_iter().map(Into::into).collect(), Vec::new());
    }

    pub fn add_invalid_regids<I, S>(&self, regids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .add_regids(Vec::new(), regids.into_iter().map(Into::into).collect());
    }

    /// RegIds Xiaomi accepts but later reports invalid with a receipt (app uninstalled).
    pub fn add_uninstalled_regids<I, S>(&self, regids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .add_uninstalled(regids.into_iter().map(Into::into).collect());
    }

    /// Receipts posted, lost and failed since start.
    pub fn receipt_stats(&self) -> ReceiptStats {
        self.shared.receipt_stats()
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// Replaces all knobs; hanging requests wake when `hang` goes false.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs);
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    /// Stops accepting and drops in-flight requests; returns at once.
    pub fn stop(&self) {
        // The stop command is sent when `stop` is called; awaiting the future only waits for
        // the workers to finish, which a sync caller need not do.
        drop(self.server.stop(false));
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs an emulator until SIGTERM or ctrl-c: `pushgate emulator xiaomi --listen HOST:PORT`.
///
/// With `EmulatorConfig::default()` it starts with no apps and every regId valid; register apps
/// with `POST /_emulator/apps {"package_name":…,"app_secret":…}`. With
/// [`EmulatorConfig::permissive`] any package is accepted with any non-empty secret, for load runs
/// without setup. The choice is the caller's, made explicitly; nothing is read from the
/// environment.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> io::Result<()> {
    let handle = start(config, listen)?;
    shutdown_signal().await?;
    tracing::info!(addr = %handle.addr, "xiaomi emulator shutting down");
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
