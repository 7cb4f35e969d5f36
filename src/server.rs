//! Start-up and shutdown: load the store, rebuild the registry, start the senders, bind the
//! listener. `run` serves until SIGTERM/SIGINT; `start` runs a server on its own thread for
//! tests and tools.

use crate::api::{self, auth::Tokens, AppState};
use crate::config::Config;
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::registry::Registry;
use crate::store::{FjallStore, Store, StoreHandle, StoreMetrics};
use actix_web::{web, App, HttpServer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("xiaomi client: {0}")]
    Client(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("the server thread ended before it was ready")]
    Aborted,
}

/// A token from the config, or one generated once and kept in the data dir (mode 0600). The
/// value is never logged.
fn token_or_generated(given: &Option<String>, dir: &Path, name: &str) -> std::io::Result<String> {
    if let Some(t) = given {
        return Ok(t.clone());
    }
    let path = dir.join(name);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let t: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..32)
            .map(|_| {
                let i = rng.random_range(0..62u8);
                (match i {
                    0..=9 => b'0' + i,
                    10..=35 => b'a' + i - 10,
                    _ => b'A' + i - 36,
                }) as char
            })
            .collect()
    };
    write_private(&path, &format!("{t}\n"))?;
    let what = match name {
        "admin_token" => "an admin token",
        "api_token" => "an API token",
        _ => "a token",
    };
    tracing::info!("generated {what} and wrote it to {}", path.display());
    Ok(t)
}

/// Writes a file only its owner can read, from the moment it exists: `fs::write` creates it
/// with the umask's mode (often 0644), readable by every local user until a later chmod.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    // A file that already existed (empty) keeps its mode through `open`.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents.as_bytes())
}

/// Everything built before the listener binds.
pub struct Prepared {
    pub gateway: Arc<Gateway>,
    pub tokens: Tokens,
    pub writer: std::thread::JoinHandle<()>,
    pub load_time: Duration,
    pub devices_loaded: usize,
}

/// Loads the store and builds the gateway. Must run inside an actix system.
pub fn prepare(config: Config) -> Result<Prepared, StartError> {
    let started = Instant::now();
    config.validate()?;
    // Holds the generated tokens and the store (certificate secrets): owner only.
    crate::store::private_dir(&config.data_dir)?;
    let metrics = Metrics::new();
    let store = Arc::new(FjallStore::open(&config.data_dir.join("store"))?);
    let mut snapshot = store.load()?;
    let registry = Arc::new(
        Registry::new(
            config.sessions.multi_device_policy,
            config.sessions.push_online_retention_secs,
        )
        .with_max_devices(config.sessions.max_devices_per_user),
    );
    let outbox = std::mem::take(&mut snapshot.outbox);
    let accepted = std::mem::take(&mut snapshot.accepted);
    let restored =
        crate::registry::restore::from_store(&registry, store.as_ref(), crate::domain::now_secs())?;
    let devices_loaded = restored.devices;
    let rewrites = restored.rewrites;
    // Devices that were Online are PushOnline since this start: written back before anything
    // else, so that the next restart keeps their retention clock instead of starting it again.
    if !rewrites.is_empty() {
        store.apply(&rewrites)?;
    }
    // The bounds the alert rules compare queue depths with (config/alerts.yml).
    metrics
        .store_queue_capacity
        .set(config.store.queue_capacity as i64);
    metrics
        .push_queue_capacity
        .set(config.push.queue_capacity as i64);
    for fault in crate::store::StoreFault::ALL {
        metrics
            .store_write_failures
            .with_label_values(&[fault.label()]);
    }
    let (handle, writer) = StoreHandle::start(
        store,
        config.store.queue_capacity,
        config.store.max_group,
        StoreMetrics {
            commit_seconds: Some(metrics.store_commit_seconds.clone()),
            group_size: Some(metrics.store_group_size.clone()),
            queue_depth: Some(metrics.store_queue_depth.clone()),
            busy: Some(metrics.store_busy.clone()),
            write_failures: Some(metrics.store_write_failures.clone()),
            writable: Some(metrics.store_writable.clone()),
        },
    )?;
    let providers =
        Providers::from_config(&config).map_err(|e| StartError::Client(e.to_string()))?;
    let tokens = Tokens {
        admin: token_or_generated(&config.admin_token, &config.data_dir, "admin_token")?,
        api: token_or_generated(&config.api_token, &config.data_dir, "api_token")?,
    };
    let gateway = Arc::new(Gateway::new(
        config,
        registry,
        snapshot.certificates,
        snapshot.next_certificate_id,
        handle,
        metrics,
        providers,
    ));
    gateway.export_webhook_requests();
    gateway.start_sweeper();
    // What the last shutdown could not send goes out first.
    let g = gateway.clone();
    actix_rt::spawn(async move { g.resend_journaled(accepted, outbox).await });
    Ok(Prepared {
        gateway,
        tokens,
        writer,
        load_time: started.elapsed(),
        devices_loaded,
    })
}

/// In `cluster.mode = "redis"`, connects to Redis Cluster, registers this node and switches the
/// gateway's registry operations to the shared directory. Embedded: nothing (no client).
async fn join_cluster(gateway: &Arc<Gateway>) -> Result<(), StartError> {
    if gateway.config.cluster.mode != crate::config::ClusterMode::Redis {
        return Ok(());
    }
    #[cfg(feature = "cluster")]
    {
        crate::cluster::node::ClusterNode::start(gateway)
            .await
            .map_err(|e| StartError::Cluster(e.to_string()))?;
        Ok(())
    }
    #[cfg(not(feature = "cluster"))]
    Err(StartError::Cluster(
        "cluster.mode = \"redis\" needs a build with the `cluster` feature".into(),
    ))
}

/// Binds the listener and returns the server future and its address.
pub fn bind(
    prepared: &Prepared,
    ready: Arc<AtomicBool>,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let config = &prepared.gateway.config;
    let state = web::Data::new(AppState {
        gateway: prepared.gateway.clone(),
        tokens: prepared.tokens.clone(),
        tickets: crate::usersig::TicketVerifier::new(config.sdkappid, config.secret_key.as_deref()),
        ready: ready.clone(),
        tim_dedupe: Default::default(),
    });
    let body_limit = config.http.body_limit_bytes;
    let gateway = prepared.gateway.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(api::Observe::new(gateway.clone()))
            .configure(|c| api::configure(c, body_limit))
    })
    .max_connections(config.http.max_connections_per_worker)
    .backlog(4096)
    .shutdown_timeout(config.http.shutdown_timeout_secs)
    // SIGTERM/SIGINT are ours (`run_with`): WebSockets must be closed while the server stops.
    .disable_signals();
    if config.http.workers > 0 {
        server = server.workers(config.http.workers);
    }
    let server = server.bind(config.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no listening address"))?;
    let server = server.run();
    ready.store(true, Ordering::Relaxed);
    Ok((server, addr))
}

/// Runs the gateway until SIGTERM/SIGINT: stops accepting, finishes in-flight requests, lets
/// the store writer finish its last group, exits.
pub async fn run(config: Config) -> Result<(), StartError> {
    run_with(config, |_| {}).await
}

/// `run`, with a hook that sees the gateway before the listener binds (the sandbox uses it).
pub async fn run_with(
    config: Config,
    before_bind: impl FnOnce(&Arc<Gateway>),
) -> Result<(), StartError> {
    let prepared = prepare(config)?;
    join_cluster(&prepared.gateway).await?;
    before_bind(&prepared.gateway);
    let ready = Arc::new(AtomicBool::new(false));
    let (server, addr) = bind(&prepared, ready)?;
    tracing::info!(
        %addr,
        devices = prepared.devices_loaded,
        load_ms = prepared.load_time.as_millis() as u64,
        "pushgate listening"
    );
    // Tools that start us on port 0 read the address from this line.
    println!("pushgate listening on {addr}");
    let handle = server.handle();
    let gateway = prepared.gateway.clone();
    actix_rt::spawn(async move {
        stop_signal().await;
        tracing::info!("stopping: closing WebSockets, finishing requests, draining senders");
        gateway.close_sessions();
        handle.stop(true).await;
    });
    server.await?;
    let Prepared {
        gateway, writer, ..
    } = prepared;
    // Cluster mode: this node's devices turn PushOnline and its unacked messages go to push.
    if let Some(remote) = gateway.remote() {
        remote.leave(&gateway).await;
    }
    // Every acknowledged change is already synced; this drains what is queued and stops the
    // senders and the writer.
    gateway.shutdown().await;
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    tracing::info!("pushgate stopped");
    // Only the process's exit is left: freeing 10M devices one by one took longer than the
    // whole graceful stop.
    gateway.leak_at_exit();
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                tracing::error!("cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
                std::future::pending::<()>().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A gateway running on its own thread (tests, tools, the sandbox).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    pub admin_token: String,
    pub api_token: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; returns when the store writer has finished.
    pub async fn stop(mut self) {
        self.gateway.close_sessions();
        self.handle.stop(true).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Starts a gateway on a new thread with its own actix system.
pub fn start(config: Config) -> Result<RunningServer, StartError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("pushgate-server".into())
        .spawn(move || {
            let sys = actix_rt::System::new();
            sys.block_on(async move {
                let prepared = match prepare(config) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let ready = Arc::new(AtomicBool::new(false));
                let (server, addr) = match bind(&prepared, ready) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = tx.send(Ok((
                    addr,
                    prepared.gateway.clone(),
                    prepared.tokens.clone(),
                    server.handle(),
                )));
                let _ = server.await;
                let Prepared {
                    gateway, writer, ..
                } = prepared;
                gateway.shutdown().await;
                let _ = writer.join();
            });
        })?;
    let (addr, gateway, tokens, handle) = rx.recv().map_err(|_| StartError::Aborted)??;
    Ok(RunningServer {
        addr,
        gateway,
        admin_token: tokens.admin,
        api_token: tokens.api,
        handle,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_kept_owner_only_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = token_or_generated(&None, dir.path(), "admin_token").expect("generated");
        assert_eq!(t.len(), 32);
        let path = dir.path().join("admin_token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            token_or_generated(&None, dir.path(), "admin_token").expect("read back"),
            t
        );
    }
}
