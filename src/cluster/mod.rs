//! Cluster mode over Redis Cluster (shared/cluster.md): the registry's second backend, node
//! leases, per-node inbox streams and the reaper of a dead node.
//!
//! Nothing here runs in embedded mode: the server only builds a `Cluster` when
//! `cluster.mode = "redis"`, so an embedded node opens no network client.
//!
//! Three connections per node process (§10): `shared` for reads and unconfirmed writes,
//! `durable` for the `…; WAIT` pipelines of acknowledged writes (WAIT blocks, and would hold up
//! everything behind it on the shared multiplexed connection), and one per inbox reader for
//! `XREAD BLOCK` (`inbox::InboxReader`), with a response timeout longer than the block.

pub mod certsync;
pub mod codec;
pub mod dedupe;
pub mod directory;
pub mod inbox;
pub mod keys;
pub mod limiter;
pub mod membership;
pub mod node;
pub mod owner;
pub mod reaper;
pub mod receipts;
pub mod scripts;
pub mod shared;

use crate::config::{ClusterConfig, OnUnreplicated};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a cluster operation failed. Every variant but `Registry` is the store's fault and worth a
/// retry: the API answers 503 with `retry_after_secs`.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    #[error("the write reached {got} of {want} replicas in time; it is not acknowledged")]
    Unreplicated { got: i64, want: u32 },
    #[error("the record kept changing under concurrent writes; retry")]
    Contention,
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error("Redis Cluster is not usable: {0}")]
    Startup(String),
}

impl ClusterError {
    /// Seconds a client should wait before retrying; `None` for the caller's own mistakes.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ClusterError::Registry(_) => None,
            _ => Some(1),
        }
    }
}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> Self {
        // Credentials go through the builder, never the URL, so the error text carries none.
        ClusterError::Unavailable(e.to_string())
    }
}

impl From<redis::ParsingError> for ClusterError {
    fn from(e: redis::ParsingError) -> Self {
        ClusterError::Unavailable(format!("unexpected reply: {e}"))
    }
}

/// Counters of the Redis side, read by the metrics endpoint.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Acknowledged writes that fewer replicas than `wait_replicas` confirmed (accept mode).
    pub unreplicated_writes: AtomicU64,
    /// CAS attempts that found a newer version and re-read.
    pub cas_conflicts: AtomicU64,
    /// Devices a reaper turned PushOnline/Offline.
    pub reaped_devices: AtomicU64,
    /// Redis operations that failed.
    pub errors: AtomicU64,
}

/// One node's handle on the Redis Cluster.
pub struct Cluster {
    cfg: ClusterConfig,
    client: ClusterClient,
    /// Replaced when redis-rs has lost every connection (after a whole-cluster outage it did
    /// not reconnect by itself: "No connections found" for as long as the test waited).
    shared: std::sync::RwLock<ClusterConnection>,
    /// `DURABLE_CONNECTIONS` connections for the `…; WAIT` pipelines, taken in turn: Redis
    /// does not read a client's next command while its WAIT blocks, so one connection would
    /// allow one acknowledged write per replica round trip per master.
    durable: std::sync::RwLock<Vec<ClusterConnection>>,
    next_durable: std::sync::atomic::AtomicUsize,
    /// When the connections were last replaced (at most once a second).
    reconnected: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Wakes the requests still waiting on connections that were just replaced (see `recover`).
    replaced: tokio::sync::Notify,
    pub stats: ClusterStats,
    /// The session rules the directory applies (the embedded registry's settings).
    policy: crate::domain::MultiDevicePolicy,
    /// `PushOnline` lifetime in seconds.
    retention: u64,
}

fn builder(cfg: &ClusterConfig, response_timeout: Duration) -> ClusterClientBuilder {
    let mut b = ClusterClientBuilder::new(cfg.redis_nodes.clone())
        .retries(cfg.retries)
        .min_retry_wait(100)
        .max_retry_wait(1_000)
        .connection_timeout(Duration::from_millis(cfg.response_timeout_ms))
        .response_timeout(response_timeout)
        .overall_response_timeout(Some(
            response_timeout.max(Duration::from_millis(cfg.overall_timeout_ms)),
        ));
    if let Some(u) = &cfg.redis_username {
        b = b.username(u);
    }
    if let Some(p) = &cfg.redis_password {
        b = b.password(&p.0);
    }
    b
}

impl Cluster {
    /// Connects with the configured timeouts and runs the start-up checks (§11): cluster state
    /// ok, server ≥ 7.0, `maxmemory-policy noeviction`.
    pub async fn connect(
        cfg: &ClusterConfig,
        policy: crate::domain::MultiDevicePolicy,
        retention_secs: u64,
    ) -> Result<Cluster, ClusterError> {
        if cfg.redis_tls {
            return Err(ClusterError::Startup(
                "cluster.redis_tls: this build has no TLS client for Redis".into(),
            ));
        }
        let client = builder(cfg, Duration::from_millis(cfg.response_timeout_ms))
            .build()
            .map_err(|e| ClusterError::Startup(e.to_string()))?;
        let shared = connect_with_timeout(&client, cfg).await?;
        let durable = connect_durable(&client, cfg).await?;
        let c = Cluster {
            cfg: cfg.clone(),
            client,
            shared: std::sync::RwLock::new(shared),
            durable: std::sync::RwLock::new(durable),
            next_durable: std::sync::atomic::AtomicUsize::new(0),
            reconnected: tokio::sync::Mutex::new(None),
            replaced: tokio::sync::Notify::new(),
            stats: ClusterStats::default(),
            policy,
            retention: retention_secs,
        };
        c.check().await?;
        Ok(c)
    }

    /// How long a `PushOnline` device keeps getting notifications, in seconds.
    pub fn retention(&self) -> u64 {
        self.retention
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    async fn check(&self) -> Result<(), ClusterError> {
        let mut conn = self.conn();
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await?;
        if !info.contains("cluster_state:ok") {
            return Err(ClusterError::Startup(
                "CLUSTER INFO does not report cluster_state:ok".into(),
            ));
        }
        // INFO and CONFIG GET go to every master; their answers are checked all together.
        let server: redis::Value = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        for text in flatten(server) {
            let Some(version) = text
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .map(str::trim)
            else {
                continue;
            };
            let major: u32 = version
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if major < 7 {
                return Err(ClusterError::Startup(format!(
                    "Redis {version} is too old; cluster mode needs >= 7.0"
                )));
            }
        }
        // An ACL may forbid CONFIG; then the operator is trusted to have set the policy.
        let policy: Result<redis::Value, _> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await;
        match policy {
            Ok(v) => {
                let words = flatten(v);
                for pair in words.windows(2) {
                    if pair[0] == "maxmemory-policy" && pair[1] != "noeviction" {
                        return Err(ClusterError::Startup(format!(
                            "maxmemory-policy is {}; it must be noeviction or Redis may delete \
                             registry keys",
                            pair[1]
                        )));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read maxmemory-policy; assuming noeviction")
            }
        }
        Ok(())
    }

    /// A clone of the shared connection (multiplexed; clones are cheap).
    pub fn conn(&self) -> ClusterConnection {
        self.shared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn durable_conn(&self) -> ClusterConnection {
        let pool = self.durable.read().unwrap_or_else(|e| e.into_inner());
        let i = self.next_durable.fetch_add(1, Ordering::Relaxed) % pool.len().max(1);
        match pool.get(i) {
            Some(c) => c.clone(),
            // Never empty (`connect_durable` makes DURABLE_CONNECTIONS ≥ 1).
            None => self.conn(),
        }
    }

    /// Replaces the connections when redis-rs reports it has none left, or when a request timed
    /// out; the failed operation still fails (the caller answers 503), the next one uses the new
    /// connections.
    ///
    /// A timeout is taken as a sign of a wedged connection: redis-rs 1.8 can deadlock its own
    /// connection task during a failover. A slot refresh waits for the write half of its
    /// connection-map lock while a queued request has already been granted a read permit; that
    /// request is only polled once the refresh is over, so neither proceeds, and every later
    /// request on that connection, on every shard, times out for good (§13.2 #6: live nodes
    /// lost their lease and were reaped). Replacing is cheap and at most once a second.
    async fn recover(&self, e: &redis::RedisError) {
        if e.kind() == redis::ErrorKind::ClusterConnectionNotFound || e.is_timeout() {
            self.replace_connections(e).await;
        }
    }

    /// Replaces the shared and durable connections (at most once a second) and fails the
    /// requests still waiting on the old ones at once: on a wedged connection they were never
    /// sent, or their answers will never be read, and would otherwise each wait out the overall
    /// timeout.
    async fn replace_connections(&self, e: &redis::RedisError) {
        // Another request is already replacing them: do not make this one wait for it.
        let Ok(mut last) = self.reconnected.try_lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(std::time::Instant::now());
        match (
            connect_with_timeout(&self.client, &self.cfg).await,
            connect_durable(&self.client, &self.cfg).await,
        ) {
            (Ok(shared), Ok(durable)) => {
                *self.shared.write().unwrap_or_else(|e| e.into_inner()) = shared;
                *self.durable.write().unwrap_or_else(|e| e.into_inner()) = durable;
                self.replaced.notify_waiters();
                tracing::warn!(error = %e, "Redis Cluster connections replaced");
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "Redis Cluster still unreachable")
            }
        }
    }

    /// Watches the shared and durable connections for the wedge `recover` describes: a PING on
    /// each, twice a second; one that gets no answer at all, not even redis-rs's own response
    /// timeout error, means the connection task no longer serves requests, and the connections
    /// are replaced within about 1.5 s (a durable one: plus `wait_timeout_ms`, which a WAIT ahead of
    /// the PING may block) instead of after the first request's overall timeout.
    /// Ends when the cluster handle is dropped.
    pub async fn watch_connections(cluster: std::sync::Weak<Cluster>) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Some(c) = cluster.upgrade() else { return };
            let limit = Duration::from_millis(c.cfg.response_timeout_ms + 500);
            // A PING on a durable connection can queue behind a WAIT that legitimately blocks
            // for up to `wait_timeout_ms` (a replica slow to acknowledge): that is not a wedge.
            let durable_limit = limit + Duration::from_millis(c.cfg.wait_timeout_ms);
            let mut conns = vec![(c.conn(), limit)];
            conns.extend(
                c.durable
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|d| (d.clone(), durable_limit)),
            );
            let pings = conns.into_iter().map(|(mut conn, limit)| async move {
                let ping = redis::cmd("PING");
                let answer = ping.query_async::<redis::Value>(&mut conn);
                tokio::time::timeout(limit, answer).await.is_err()
            });
            if futures_util::future::join_all(pings).await.contains(&true) {
                let e = wedged();
                c.stats.errors.fetch_add(1, Ordering::Relaxed);
                c.replace_connections(&e).await;
            }
        }
    }

    /// Runs `query` unless the connections it was sent on are replaced first (then it fails
    /// as a timeout would: not acknowledged).
    async fn unless_replaced<T>(
        &self,
        query: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> redis::RedisResult<T> {
        let replaced = self.replaced.notified();
        tokio::select! {
            r = query => r,
            () = replaced => Err(wedged()),
        }
    }

    /// A new dedicated connection whose response timeout covers a blocking read of `block`.
    pub async fn blocking_connection(
        &self,
        block: Duration,
    ) -> Result<ClusterConnection, ClusterError> {
        let client = builder(&self.cfg, block + Duration::from_secs(2))
            .build()
            .map_err(|e| ClusterError::Startup(e.to_string()))?;
        connect_with_timeout(&client, &self.cfg).await
    }

    /// Runs one acknowledged write: the command, then `WAIT wait_replicas wait_timeout_ms` on the
    /// same connection (a keyless WAIT in a pipeline goes to the first keyed command's slot).
    pub async fn durable<T: FromRedisValue>(&self, write: Cmd) -> Result<T, ClusterError> {
        let mut conn = self.durable_conn();
        let want = self.cfg.wait_replicas;
        if want == 0 {
            let r = self.unless_replaced(write.query_async(&mut conn)).await;
            if let Err(e) = &r {
                self.recover(e).await;
            }
            return self.count_err(r);
        }
        let mut p = redis::pipe();
        p.add_command(write)
            .cmd("WAIT")
            .arg(want)
            .arg(self.cfg.wait_timeout_ms);
        let r = self.unless_replaced(p.query_async(&mut conn)).await;
        if let Err(e) = &r {
            self.recover(e).await;
        }
        let (out, got): (T, i64) = self.count_err(r)?;
        if got < i64::from(want) {
            match self.cfg.on_unreplicated {
                OnUnreplicated::Fail => return Err(ClusterError::Unreplicated { got, want }),
                OnUnreplicated::Accept => {
                    self.stats
                        .unreplicated_writes
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(out)
    }

    /// Runs a pipeline of reads or unconfirmed writes on the shared connection; every command
    /// must touch the same hash tag (cluster pipelines are single-slot).
    pub async fn run_pipe<T: FromRedisValue>(
        &self,
        p: &redis::Pipeline,
    ) -> Result<T, ClusterError> {
        let mut conn = self.conn();
        let r = self.unless_replaced(p.query_async(&mut conn)).await;
        if let Err(e) = &r {
            self.recover(e).await;
        }
        self.count_err(r)
    }

    /// Runs a read or an unconfirmed write on the shared connection.
    pub async fn run<T: FromRedisValue>(&self, c: &Cmd) -> Result<T, ClusterError> {
        let mut conn = self.conn();
        let r = self.unless_replaced(c.query_async(&mut conn)).await;
        if let Err(e) = &r {
            self.recover(e).await;
        }
        self.count_err(r)
    }

    fn count_err<T>(&self, r: redis::RedisResult<T>) -> Result<T, ClusterError> {
        r.map_err(|e| {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            ClusterError::from(e)
        })
    }

    /// Whether Redis answers now (readiness): a PING to a random node within the timeouts.
    pub async fn ping(&self) -> bool {
        self.run::<String>(&redis::cmd("PING")).await.is_ok()
    }
}

/// The error of a request whose connection was found wedged (a timeout: the caller answers 503).
fn wedged() -> redis::RedisError {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer: the Redis connection stopped serving requests and was replaced",
    )
    .into()
}

/// Connections for acknowledged writes (see `Cluster::durable`): up to four WAITs in flight per
/// master instead of one. A handful is enough on two cores; more would only add idle sockets.
const DURABLE_CONNECTIONS: usize = 4;

async fn connect_durable(
    client: &ClusterClient,
    cfg: &ClusterConfig,
) -> Result<Vec<ClusterConnection>, ClusterError> {
    let mut pool = Vec::with_capacity(DURABLE_CONNECTIONS);
    for _ in 0..DURABLE_CONNECTIONS {
        pool.push(connect_with_timeout(client, cfg).await?);
    }
    Ok(pool)
}

async fn connect_with_timeout(
    client: &ClusterClient,
    cfg: &ClusterConfig,
) -> Result<ClusterConnection, ClusterError> {
    // redis-rs#1953: getting a connection can hang; bound it.
    let limit = Duration::from_millis(cfg.overall_timeout_ms + cfg.response_timeout_ms);
    match tokio::time::timeout(limit, client.get_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ClusterError::Startup(format!(
            "cannot connect to {}: {e}",
            cfg.redis_nodes.join(",")
        ))),
        Err(_) => Err(ClusterError::Startup(format!(
            "no answer from {} within {} ms",
            cfg.redis_nodes.join(","),
            limit.as_millis()
        ))),
    }
}

/// Every string in a reply, in order (answers of commands sent to every node come as maps).
fn flatten(v: redis::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(&b).into_owned()),
            redis::Value::SimpleString(s) => out.push(s),
            redis::Value::VerbatimString { text, .. } => out.push(text),
            redis::Value::Array(items) | redis::Value::Set(items) => {
                stack.extend(items.into_iter().rev())
            }
            redis::Value::Map(pairs) => {
                for (k, v) in pairs.into_iter().rev() {
                    stack.push(v);
                    stack.push(k);
                }
            }
            _ => {}
        }
    }
    out
}

/// An EVAL of one of `scripts` with its keys and arguments.
pub(crate) fn eval(script: &str, keys: &[&str]) -> Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(script).arg(keys.len());
    for k in keys {
        c.arg(*k);
    }
    c
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
