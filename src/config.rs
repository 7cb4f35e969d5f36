//! Typed settings: built-in defaults, then a TOML file, then `PUSHGATE_*` environment variables.
//! Parsed once at start-up; a bad value stops the start with a message naming it.

use crate::domain::MultiDevicePolicy;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where environment overrides come from; tests pass a map instead of the real environment.
pub trait EnvSource {
    /// The variable's value; an empty value counts as unset.
    fn var(&self, key: &str) -> Option<String>;
    /// The variable's value even when empty, for settings where an empty value is an error
    /// rather than "unset" (the UserSig key).
    fn raw(&self, key: &str) -> Option<String> {
        self.var(key)
    }
}

/// The process environment.
pub struct ProcessEnv;

// The one reader of the process environment (.clippy.toml bans it everywhere else).
#[allow(clippy::disallowed_methods)]
impl EnvSource for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }

    fn raw(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {key}: {message}")]
    Env { key: &'static str, message: String },
    #[error("setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// Every setting; `config/pushgate.toml` documents each one.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Option<String>,
    pub api_token: Option<String>,
    pub sdkappid: u64,
    pub secret_key: Option<String>,
    pub tim_admins: Vec<String>,
    /// Honor's send host and full OAuth token URL (`PUSHGATE_HONOR_BASE_URL` / `_AUTH_URL`).
    pub honor_base_url: String,
    pub honor_auth_url: String,
    /// Huawei's send host and full OAuth token URL (`PUSHGATE_HUAWEI_BASE_URL` / `_AUTH_URL`).
    pub huawei_base_url: String,
    pub huawei_auth_url: String,
    pub xiaomi_base_url: String,
    /// OPPO, vivo and Meizu hosts (`PUSHGATE_<VENDOR>_BASE_URL`), the vendors' own by default.
    pub oppo_base_url: String,
    pub vivo_base_url: String,
    pub meizu_base_url: String,
    /// FCM's send host (`PUSHGATE_FCM_BASE_URL`); access tokens come from each account's `token_uri`.
    pub fcm_base_url: String,
    /// APNs host for every certificate (`PUSHGATE_APNS_BASE_URL`); unset: Apple's host of each
    /// certificate's environment. `http://` speaks HTTP/2 without TLS (the emulator).
    pub apns_base_url: Option<String>,
    pub webhook_url: Option<String>,
    /// The gateway's address as vendors reach it (`https://push.example.com`); when set,
    /// senders ask vendors for delivery receipts at `<public_url>/v1/receipts/...`.
    pub public_url: Option<String>,
    pub receipts: ReceiptsConfig,
    pub log_format: LogFormat,
    pub log_level: String,
    pub http: HttpConfig,
    pub sessions: SessionConfig,
    pub push: PushConfig,
    pub store: StoreConfig,
    pub cluster: ClusterConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest accepted request body in bytes.
    pub body_limit_bytes: usize,
    /// Recipients per `POST /v1/messages` (TIM's own limit is 500).
    pub max_recipients: usize,
    /// Connections each worker accepts (actix's default of 25k is per worker).
    pub max_connections_per_worker: usize,
    /// Seconds SIGTERM waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    pub multi_device_policy: MultiDevicePolicy,
    /// How long a device stays `PushOnline` before it is `Offline` (Tencent: 7 days).
    pub push_online_retention_secs: u64,
    /// A connection with no frame for this long is dropped as `TimeOut` (Tencent: 400 s).
    pub heartbeat_timeout_secs: u64,
    /// Seconds between server pings.
    pub ping_interval_secs: u64,
    /// Frames queued for one connection before a slow reader is disconnected.
    pub outbound_queue: usize,
    /// Bytes of frames queued for one connection before a slow reader is disconnected (the
    /// frame count alone lets 256 large messages hold megabytes). The connection's 32 KiB write
    /// buffer and the kernel's socket buffers come on top.
    pub max_outbound_bytes: usize,
    /// State-change webhooks queued before new ones are dropped (and counted).
    pub webhook_queue: usize,
    pub webhook_timeout_ms: u64,
    /// The most devices one user may have registered; a login of one more is refused with 409
    /// `too_many_devices`. Bounds what one identifier can add to memory, the store and every
    /// per-user answer (status, diagnosis, a message's `detail`).
    pub max_devices_per_user: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Notifications queued per certificate before new ones are refused as `push_queue_full`.
    pub queue_capacity: usize,
    /// How long a sender waits to fill a batch (milliseconds).
    pub linger_ms: u64,
    /// regIds per `/v3/message/regid` request (Xiaomi allows 1000).
    pub regid_batch: usize,
    /// Notifications per `/v2/multi_messages/regids` request.
    pub multi_batch: usize,
    /// Vendor requests in flight per certificate.
    pub max_in_flight: usize,
    /// Attempts for a transient failure before the notification is dropped as failed.
    pub max_attempts: u32,
    pub vendor_timeout_ms: u64,
    /// Token-bucket burst, in requests (at least 1, and at least 1 ms of the certificate's
    /// qps: `push::bucket::TICK`).
    pub burst: u32,
    /// Sender arbiters (threads) the certificates are spread over.
    pub arbiters: usize,
    /// Seconds a shutdown lets the senders send what they hold; what is still unsent then goes
    /// to the store's outbox, which the next start sends.
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Changes queued for the writer before requests get 503.
    pub queue_capacity: usize,
    /// Changes per group commit.
    pub max_group: usize,
}

/// Whether this node is alone (embedded fjall store) or one of several over Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMode {
    /// One node, fjall under `data_dir`, no network client: the default.
    #[default]
    Embedded,
    /// Several nodes sharing a Redis Cluster (>= 7.0), shared/cluster.md.
    Redis,
}

/// What an acknowledged write does when fewer replicas than `wait_replicas` confirm it in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnUnreplicated {
    /// 503 + Retry-After: nothing is acknowledged that a master failover could lose.
    #[default]
    Fail,
    /// Answer anyway and count `pushgate_redis_unreplicated_writes_total`.
    Accept,
}

/// A secret that must never reach a log line or an API answer.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[cluster]`: shared/cluster.md §11. Only read in `redis` mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub mode: ClusterMode,
    /// This node's name; `#<incarnation>` is appended at each start. Default: the host name.
    pub node_name: Option<String>,
    /// Seed nodes, `redis://host:port` (or `rediss://` with `redis_tls`).
    pub redis_nodes: Vec<String>,
    pub redis_username: Option<String>,
    /// Only from `PUSHGATE_REDIS_PASSWORD`: a password in a config file ends up in backups.
    #[serde(skip)]
    pub redis_password: Option<Secret>,
    pub redis_tls: bool,
    /// One Redis request's timeout.
    pub response_timeout_ms: u64,
    /// A whole operation's timeout, retries on a new topology included.
    pub overall_timeout_ms: u64,
    pub retries: u32,
    /// Replicas an acknowledged write waits for (`WAIT`); 0 = no WAIT.
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
    pub on_unreplicated: OnUnreplicated,
    /// A node's lease; must comfortably exceed a Redis failover (about 4 s with a 2 s
    /// cluster-node-timeout, §6).
    pub node_lease_ms: u64,
    pub node_renew_ms: u64,
    pub cert_lease_ms: u64,
    /// Entries queued in one node's inbox before senders fall back to push.
    pub inbox_capacity: u64,
    /// Notifications queued per certificate (`push.queue_capacity` in redis mode).
    pub cert_queue_capacity: u64,
    /// How long the owner's read of an idle certificate queue blocks (`XREADGROUP … BLOCK`, on
    /// a connection of its own per owned certificate): one Redis request per period while
    /// idle; a new entry is read as soon as it is appended. Finished entries are acked when the
    /// read returns, so at most this late while idle.
    pub cert_queue_block_ms: u64,
    /// The cluster note's (§7.6, §11) adaptive-polling ceiling. Accepted so that a config
    /// written from the note loads; the owner now blocks on its read instead of polling
    /// (`cert_queue_block_ms`), so the value has no effect and a start logs a warning.
    pub cert_poll_max_ms: Option<u64>,
    pub verify_token_owner: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            mode: ClusterMode::Embedded,
            node_name: None,
            redis_nodes: Vec::new(),
            redis_username: None,
            redis_password: None,
            redis_tls: false,
            response_timeout_ms: 1_000,
            overall_timeout_ms: 3_000,
            retries: 5,
            wait_replicas: 1,
            wait_timeout_ms: 50,
            on_unreplicated: OnUnreplicated::Fail,
            node_lease_ms: 10_000,
            node_renew_ms: 2_000,
            cert_lease_ms: 10_000,
            inbox_capacity: 100_000,
            cert_queue_capacity: 100_000,
            cert_queue_block_ms: 1_000,
            cert_poll_max_ms: None,
            verify_token_owner: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            admin_token: None,
            api_token: None,
            sdkappid: 0,
            secret_key: None,
            tim_admins: vec!["administrator".into()],
            honor_base_url: crate::providers::honor::DEFAULT_BASE_URL.into(),
            honor_auth_url: crate::providers::honor::DEFAULT_AUTH_URL.into(),
            huawei_base_url: crate::providers::huawei::DEFAULT_BASE_URL.into(),
            huawei_auth_url: crate::providers::huawei::DEFAULT_AUTH_URL.into(),
            xiaomi_base_url: "https://api.xmpush.xiaomi.com".into(),
            oppo_base_url: crate::providers::oppo::wire::DEFAULT_BASE_URL.into(),
            vivo_base_url: crate::providers::vivo::wire::DEFAULT_BASE_URL.into(),
            meizu_base_url: crate::providers::meizu::wire::DEFAULT_BASE_URL.into(),
            fcm_base_url: "https://fcm.googleapis.com".into(),
            apns_base_url: None,
            webhook_url: None,
            public_url: None,
            receipts: ReceiptsConfig::default(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            http: HttpConfig::default(),
            sessions: SessionConfig::default(),
            push: PushConfig::default(),
            store: StoreConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            workers: 0,
            body_limit_bytes: 1 << 20,
            max_recipients: 500,
            max_connections_per_worker: 100_000,
            shutdown_timeout_secs: 30,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            multi_device_policy: MultiDevicePolicy::PerPlatform,
            push_online_retention_secs: 7 * 86_400,
            heartbeat_timeout_secs: 400,
            ping_interval_secs: 120,
            outbound_queue: 256,
            max_outbound_bytes: 1 << 20,
            webhook_queue: 10_000,
            webhook_timeout_ms: 2_000,
            max_devices_per_user: crate::registry::DEFAULT_MAX_DEVICES_PER_USER,
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            queue_capacity: 100_000,
            linger_ms: 5,
            regid_batch: 1000,
            multi_batch: 100,
            max_in_flight: 8,
            max_attempts: 5,
            vendor_timeout_ms: 5_000,
            burst: 1,
            arbiters: 1,
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            queue_capacity: 65_536,
            max_group: 8_192,
        }
    }
}

/// Bounds of the receipt endpoint (`POST /v1/receipts/{vendor}/{certificate}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptsConfig {
    /// Largest receipt body; larger ones get 413 and change nothing.
    pub max_body_bytes: usize,
    /// Receipt requests per second one certificate may make; more get 429 with Retry-After.
    pub requests_per_sec: u32,
    /// Requests a certificate may make at once above that rate.
    pub burst: u32,
}

impl Default for ReceiptsConfig {
    fn default() -> Self {
        ReceiptsConfig {
            // Huawei posts at most 100 statuses per callback (a few hundred bytes each); Xiaomi
            // batches regIds per message id. 256 KiB holds either with room to spare.
            max_body_bytes: 256 * 1024,
            requests_per_sec: 100,
            burst: 200,
        }
    }
}

fn env_parse<T: std::str::FromStr>(
    env: &dyn EnvSource,
    key: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.var(key) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|e| ConfigError::Env {
            key,
            message: format!("'{v}' is not valid: {e}"),
        }),
    }
}

/// An empty or short UserSig key lets anyone who guesses it sign tickets for any identifier,
/// administrators included; Tencent's console issues 64-character keys.
fn check_secret_key(key: &str, setting: &'static str) -> Result<(), ConfigError> {
    if key.len() < crate::usersig::MIN_SECRET_KEY_BYTES {
        let message = format!(
            "the UserSig secret key is {} characters; at least {} are required (an empty or \
             short key would let anyone sign tickets). Use the key from the IM console, or \
             unset it to refuse every ticket",
            key.len(),
            crate::usersig::MIN_SECRET_KEY_BYTES
        );
        return Err(if setting.starts_with("PUSHGATE_") {
            ConfigError::Env {
                key: setting,
                message,
            }
        } else {
            ConfigError::Invalid {
                key: setting,
                message,
            }
        });
    }
    Ok(())
}

impl Config {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>, env: &dyn EnvSource) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
        };
        if let Some(v) = env_parse(env, "PUSHGATE_LISTEN")? {
            cfg.listen = v;
        }
        if let Some(v) = env.var("PUSHGATE_DATA_DIR") {
            cfg.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env.var("PUSHGATE_ADMIN_TOKEN") {
            cfg.admin_token = Some(v);
        }
        if let Some(v) = env.var("PUSHGATE_API_TOKEN") {
            cfg.api_token = Some(v);
        }
        if let Some(v) = env_parse(env, "PUSHGATE_SDKAPPID")? {
            cfg.sdkappid = v;
        }
        if let Some(v) = env.raw("PUSHGATE_SECRET_KEY") {
            check_secret_key(&v, "PUSHGATE_SECRET_KEY")?;
            cfg.secret_key = Some(v);
        }
        if let Some(v) = env.var("PUSHGATE_TIM_ADMINS") {
            cfg.tim_admins = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        for (key, field) in [
            ("PUSHGATE_HONOR_BASE_URL", &mut cfg.honor_base_url),
            ("PUSHGATE_HONOR_AUTH_URL", &mut cfg.honor_auth_url),
            ("PUSHGATE_HUAWEI_BASE_URL", &mut cfg.huawei_base_url),
            ("PUSHGATE_HUAWEI_AUTH_URL", &mut cfg.huawei_auth_url),
        ] {
            if let Some(v) = env.var(key) {
                *field = v;
            }
        }
        if let Some(v) = env.var("PUSHGATE_XIAOMI_BASE_URL") {
            cfg.xiaomi_base_url = v;
        }
        if let Some(v) = env.var("PUSHGATE_OPPO_BASE_URL") {
            cfg.oppo_base_url = v;
        }
        if let Some(v) = env.var("PUSHGATE_VIVO_BASE_URL") {
            cfg.vivo_base_url = v;
        }
        if let Some(v) = env.var("PUSHGATE_MEIZU_BASE_URL") {
            cfg.meizu_base_url = v;
        }
        if let Some(v) = env.var("PUSHGATE_FCM_BASE_URL") {
            cfg.fcm_base_url = v;
        }
        if let Some(v) = env.var("PUSHGATE_APNS_BASE_URL") {
            cfg.apns_base_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = env.var("PUSHGATE_WEBHOOK_URL") {
            cfg.webhook_url = Some(v);
        }
        if let Some(v) = env.var("PUSHGATE_PUBLIC_URL") {
            cfg.public_url = Some(v);
        }
        if let Some(v) = env.var("PUSHGATE_LOG_FORMAT") {
            cfg.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "human" => LogFormat::Human,
                _ => {
                    return Err(ConfigError::Env {
                        key: "PUSHGATE_LOG_FORMAT",
                        message: format!("'{v}' is not one of human, json"),
                    })
                }
            };
        }
        if let Some(v) = env.var("PUSHGATE_LOG") {
            cfg.log_level = v;
        }
        if let Some(v) = env_parse(env, "PUSHGATE_HEARTBEAT_TIMEOUT_SECS")? {
            cfg.sessions.heartbeat_timeout_secs = v;
        }
        if let Some(v) = env.var("PUSHGATE_CLUSTER_MODE") {
            cfg.cluster.mode = match v.as_str() {
                "embedded" => ClusterMode::Embedded,
                "redis" => ClusterMode::Redis,
                _ => {
                    return Err(ConfigError::Env {
                        key: "PUSHGATE_CLUSTER_MODE",
                        message: format!("'{v}' is not one of embedded, redis"),
                    })
                }
            };
        }
        if let Some(v) = env.var("PUSHGATE_REDIS_URLS") {
            cfg.cluster.redis_nodes = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = env.var("PUSHGATE_REDIS_PASSWORD") {
            cfg.cluster.redis_password = Some(Secret(v));
        }
        if let Some(v) = env.var("PUSHGATE_NODE_NAME") {
            cfg.cluster.node_name = Some(v);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks settings that no type expresses. `load` calls it; so does the server for a
    /// `Config` built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if let Some(k) = &self.secret_key {
            check_secret_key(k, "secret_key")?;
        }
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains(['?', '#']) {
                return invalid(
                    "public_url",
                    "must be an http:// or https:// URL without query or fragment",
                );
            }
        }
        if self.receipts.requests_per_sec == 0 || self.receipts.max_body_bytes < 1024 {
            return invalid(
                "receipts",
                "requests_per_sec must be at least 1 and max_body_bytes at least 1024",
            );
        }
        for (key, url) in [
            ("honor_base_url", &self.honor_base_url),
            ("honor_auth_url", &self.honor_auth_url),
            ("huawei_base_url", &self.huawei_base_url),
            ("huawei_auth_url", &self.huawei_auth_url),
            ("xiaomi_base_url", &self.xiaomi_base_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(key, "must be an http:// or https:// URL");
            }
        }
        for (field, url) in [
            ("oppo_base_url", &self.oppo_base_url),
            ("vivo_base_url", &self.vivo_base_url),
            ("meizu_base_url", &self.meizu_base_url),
        ] {
            if crate::providers::vendor_http::base_url(url).is_err() {
                return invalid(field, "must be an http:// or https:// URL");
            }
        }
        if !(self.fcm_base_url.starts_with("http://") || self.fcm_base_url.starts_with("https://"))
        {
            return invalid("fcm_base_url", "must be an http:// or https:// URL");
        }
        if let Some(u) = &self.apns_base_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return invalid(
                    "apns_base_url",
                    "must be an http:// (HTTP/2 without TLS) or https:// URL",
                );
            }
        }
        if self.http.max_recipients == 0 {
            return invalid("http.max_recipients", "must be at least 1");
        }
        if self.http.body_limit_bytes < 1024 {
            return invalid("http.body_limit_bytes", "must be at least 1024");
        }
        if self.push.regid_batch == 0 || self.push.regid_batch > 1000 {
            return invalid("push.regid_batch", "must be 1..=1000 (Xiaomi's limit)");
        }
        if self.push.multi_batch == 0 || self.push.queue_capacity == 0 {
            return invalid("push", "batch sizes and queue capacity must be at least 1");
        }
        if self.sessions.max_devices_per_user == 0 {
            return invalid("sessions.max_devices_per_user", "must be at least 1");
        }
        if self.sessions.heartbeat_timeout_secs == 0 {
            return invalid("sessions.heartbeat_timeout_secs", "must be at least 1");
        }
        if self.cluster.mode == ClusterMode::Redis {
            self.validate_cluster()?;
        }
        for t in [&self.admin_token, &self.api_token].into_iter().flatten() {
            if t.len() < 8 {
                return invalid(
                    "admin_token/api_token",
                    "tokens must be at least 8 characters",
                );
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let invalid = |key, message: String| Err(ConfigError::Invalid { key, message });
        if c.redis_nodes.is_empty() {
            return invalid(
                "cluster.redis_nodes",
                "redis mode needs at least one seed node (or PUSHGATE_REDIS_URLS)".into(),
            );
        }
        if c.redis_nodes.iter().any(|u| u.contains('@')) {
            return invalid(
                "cluster.redis_nodes",
                "credentials do not belong in a URL; set PUSHGATE_REDIS_PASSWORD".into(),
            );
        }
        let scheme = if c.redis_tls { "rediss://" } else { "redis://" };
        if let Some(bad) = c.redis_nodes.iter().find(|u| !u.starts_with(scheme)) {
            return invalid(
                "cluster.redis_nodes",
                format!("'{bad}' must start with {scheme}"),
            );
        }
        // Tokens generated into one node's data_dir would differ on every node.
        if self.admin_token.is_none() || self.api_token.is_none() {
            return invalid(
                "admin_token/api_token",
                "redis mode needs both tokens configured (the same on every node)".into(),
            );
        }
        if let Some(n) = &c.node_name {
            if n.is_empty() || n.len() > 64 || n.contains(['#', '{', '}', ' ']) {
                return invalid(
                    "cluster.node_name",
                    format!("'{n}' must be 1-64 characters without '#', '{{', '}}' or spaces"),
                );
            }
        }
        if c.response_timeout_ms == 0 || c.overall_timeout_ms < c.response_timeout_ms {
            return invalid(
                "cluster.overall_timeout_ms",
                "timeouts must be at least 1 ms and overall >= response".into(),
            );
        }
        if c.node_renew_ms == 0 || c.node_lease_ms < 2 * c.node_renew_ms + 2_000 {
            return invalid(
                "cluster.node_lease_ms",
                "the lease must be at least twice the renew interval plus the 2 s fence margin"
                    .into(),
            );
        }
        if c.inbox_capacity == 0 || c.cert_queue_capacity == 0 {
            return invalid(
                "cluster.inbox_capacity",
                "queue capacities must be at least 1".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cluster_mode_comes_from_the_environment_and_is_checked() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.cluster.mode, ClusterMode::Embedded);
        let e = Config::load(None, &env(&[("PUSHGATE_CLUSTER_MODE", "raft")])).unwrap_err();
        assert!(e.to_string().contains("PUSHGATE_CLUSTER_MODE"), "{e}");
        let e = Config::load(None, &env(&[("PUSHGATE_CLUSTER_MODE", "redis")])).unwrap_err();
        assert!(e.to_string().contains("cluster.redis_nodes"), "{e}");
        let base = [
            ("PUSHGATE_CLUSTER_MODE", "redis"),
            (
                "PUSHGATE_REDIS_URLS",
                "redis://127.0.0.1:7101, redis://127.0.0.1:7102",
            ),
            ("PUSHGATE_REDIS_PASSWORD", "hunter2-secret"),
            ("PUSHGATE_NODE_NAME", "gw-1"),
        ];
        let e = Config::load(None, &env(&base)).unwrap_err();
        assert!(e.to_string().contains("admin_token/api_token"), "{e}");
        let mut all = base.to_vec();
        all.extend([
            ("PUSHGATE_ADMIN_TOKEN", "admin-token-1"),
            ("PUSHGATE_API_TOKEN", "api-token-12"),
        ]);
        let c = Config::load(None, &env(&all)).unwrap();
        assert_eq!(c.cluster.mode, ClusterMode::Redis);
        assert_eq!(c.cluster.redis_nodes.len(), 2);
        assert_eq!(c.cluster.node_name.as_deref(), Some("gw-1"));
        assert!(
            !format!("{c:?}").contains("hunter2"),
            "the password is never printed"
        );
        let mut bad = all.clone();
        bad.push(("PUSHGATE_NODE_NAME", "gw#1"));
        let e = Config::load(None, &env(&bad)).unwrap_err();
        assert!(e.to_string().contains("cluster.node_name"), "{e}");
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.http.max_recipients, 500);
    }

    #[test]
    fn the_public_url_comes_from_the_environment_and_must_be_http() {
        let c = Config::load(
            None,
            &env(&[("PUSHGATE_PUBLIC_URL", "https://push.example.com")]),
        )
        .unwrap();
        assert_eq!(c.public_url.as_deref(), Some("https://push.example.com"));
        assert_eq!(Config::default().public_url, None);
        let e =
            Config::load(None, &env(&[("PUSHGATE_PUBLIC_URL", "push.example.com")])).unwrap_err();
        assert!(e.to_string().contains("public_url"), "{e}");
    }

    #[test]
    fn environment_overrides_and_errors_name_the_variable() {
        let c = Config::load(
            None,
            &env(&[
                ("PUSHGATE_LISTEN", "127.0.0.1:0"),
                ("PUSHGATE_TIM_ADMINS", "admin, ops"),
                ("PUSHGATE_SDKAPPID", "1400000000"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.tim_admins, vec!["admin", "ops"]);
        assert_eq!(c.sdkappid, 1_400_000_000);
        let e = Config::load(None, &env(&[("PUSHGATE_SDKAPPID", "abc")])).unwrap_err();
        assert!(e.to_string().contains("PUSHGATE_SDKAPPID"), "{e}");
    }

    #[test]
    fn empty_or_short_secret_keys_are_refused_naming_the_setting() {
        for bad in ["", "short"] {
            let e = Config::load(None, &env(&[("PUSHGATE_SECRET_KEY", bad)])).unwrap_err();
            assert!(e.to_string().contains("PUSHGATE_SECRET_KEY"), "{e}");
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p.toml");
            std::fs::write(&path, format!("secret_key = \"{bad}\"\n")).unwrap();
            let e = Config::load(Some(&path), &env(&[])).unwrap_err();
            assert!(e.to_string().contains("secret_key"), "{e}");
            let in_code = Config {
                secret_key: Some(bad.into()),
                ..Config::default()
            };
            assert!(in_code.validate().is_err());
        }
        let ok = Config::load(None, &env(&[("PUSHGATE_SECRET_KEY", &"k".repeat(64))])).unwrap();
        assert_eq!(ok.secret_key.map(|k| k.len()), Some(64));
    }

    #[test]
    fn huawei_and_honor_urls_come_from_the_environment() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.huawei_base_url, "https://push-api.cloud.huawei.com");
        assert_eq!(
            c.honor_auth_url,
            "https://iam.developer.honor.com/auth/token"
        );
        let c = Config::load(
            None,
            &env(&[
                ("PUSHGATE_HUAWEI_BASE_URL", "http://127.0.0.1:9091"),
                (
                    "PUSHGATE_HUAWEI_AUTH_URL",
                    "http://127.0.0.1:9091/oauth2/v3/token",
                ),
                ("PUSHGATE_HONOR_BASE_URL", "http://127.0.0.1:9092"),
                (
                    "PUSHGATE_HONOR_AUTH_URL",
                    "http://127.0.0.1:9092/auth/token",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(c.huawei_auth_url, "http://127.0.0.1:9091/oauth2/v3/token");
        assert_eq!(c.honor_base_url, "http://127.0.0.1:9092");
        let e = Config::load(None, &env(&[("PUSHGATE_HONOR_AUTH_URL", "iam.honor")])).unwrap_err();
        assert!(e.to_string().contains("honor_auth_url"), "{e}");
    }

    #[test]
    fn oppo_vivo_meizu_hosts_default_to_the_vendors_and_are_overridden() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.oppo_base_url, "https://api.push.oppomobile.com");
        assert_eq!(c.vivo_base_url, "https://api-push.vivo.com.cn");
        assert_eq!(c.meizu_base_url, "https://server-api-push.meizu.com");
        let c = Config::load(
            None,
            &env(&[
                ("PUSHGATE_OPPO_BASE_URL", "http://127.0.0.1:9094"),
                ("PUSHGATE_VIVO_BASE_URL", "http://127.0.0.1:9095"),
                ("PUSHGATE_MEIZU_BASE_URL", "http://127.0.0.1:9093"),
            ]),
        )
        .unwrap();
        assert_eq!(c.oppo_base_url, "http://127.0.0.1:9094");
        assert_eq!(c.vivo_base_url, "http://127.0.0.1:9095");
        assert_eq!(c.meizu_base_url, "http://127.0.0.1:9093");
        let e = Config::load(None, &env(&[("PUSHGATE_VIVO_BASE_URL", "ftp://x")])).unwrap_err();
        assert!(e.to_string().contains("vivo_base_url"), "{e}");
    }

    #[test]
    fn the_cluster_notes_example_section_parses() {
        // shared/cluster.md §11 as written there, `cert_poll_max_ms` included (accepted, no
        // effect: the owner blocks on its read instead of polling).
        let text = r#"
[cluster]
mode = "embedded"
redis_nodes = []
redis_tls = false
response_timeout_ms = 1000
overall_timeout_ms = 3000
retries = 5
wait_replicas = 1
wait_timeout_ms = 50
on_unreplicated = "fail"
node_lease_ms = 10000
node_renew_ms = 2000
cert_lease_ms = 10000
inbox_capacity = 100000
cert_queue_capacity = 100000
cert_poll_max_ms = 20
verify_token_owner = false
"#;
        let c: Config = toml::from_str(text).unwrap();
        assert_eq!(c.cluster.cert_poll_max_ms, Some(20));
        assert_eq!(c.cluster.cert_queue_block_ms, 1_000);
    }

    #[test]
    fn the_shipped_config_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pushgate.toml");
        let c = Config::load(Some(&path), &env(&[])).unwrap();
        assert_eq!(c.sessions.heartbeat_timeout_secs, 400);
    }
}
