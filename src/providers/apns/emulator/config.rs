//! What the APNs emulator starts with, and the knobs that change while it runs.

use serde::{Deserialize, Serialize};

use crate::providers::apns::key::Environment;

/// A signing key the emulator trusts: provider tokens with this `kid` and `iss` must verify
/// against `public_key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorKey {
    pub key_id: String,
    pub team_id: String,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key: String,
    /// Bundle ids the team may push to; empty: any.
    #[serde(default)]
    pub topics: Vec<String>,
    /// An environment-scoped key; `None`: team-scoped (both).
    #[serde(default)]
    pub environment: Option<Environment>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Notifications per second over all keys; more get 429 `TooManyRequests` (Apple's is per
    /// device token; a global limit is how the emulator exercises the slow-down).
    pub qps_limit: Option<u32>,
    /// Share of requests answered 503 `ServiceUnavailable`.
    pub error_5xx_ratio: f64,
    /// `Retry-After` seconds on 429 and 503 (0: no header; Apple sends none).
    pub retry_after_secs: u64,
    pub latency_ms: u64,
    pub hang: bool,
    /// Provider tokens older than this get 403 `ExpiredProviderToken` (Apple: 3600).
    pub provider_token_ttl_secs: u64,
    /// A connection that sees a new provider token sooner than this after the previous one
    /// answers 429 `TooManyProviderTokenUpdates` (Apple: 20 minutes).
    pub min_token_interval_secs: u64,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of new connections.
    pub max_concurrent_streams: u32,
    /// "Connection concurrency cut to 1": live connections are ended gracefully and new ones
    /// advertise 1 stream (what APNs does after rejected notifications, spec §1).
    pub concurrency_cut: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            qps_limit: None,
            error_5xx_ratio: 0.0,
            retry_after_secs: 0,
            latency_ms: 0,
            hang: false,
            provider_token_ttl_secs: 3600,
            min_token_interval_secs: 20 * 60,
            max_concurrent_streams: 1000,
            concurrency_cut: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub keys: Vec<EmulatorKey>,
    pub knobs: Knobs,
    /// Which APNs it plays: an environment-scoped key of the other one gets
    /// `BadEnvironmentKeyInToken`.
    pub environment: Environment,
    /// Generate a test-only key at start (team `EMUTEAM001`, key `EMUKEY0001`, any topic), served
    /// whole at `GET /_emulator/sample-key`.
    pub sample_key: bool,
    pub max_records: usize,
    pub hang_cap_secs: u64,
    pub workers: usize,
    /// Largest payload: 4096 bytes (spec §4).
    pub max_payload_bytes: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            keys: Vec::new(),
            knobs: Knobs::default(),
            environment: Environment::Sandbox,
            sample_key: false,
            max_records: 100_000,
            hang_cap_secs: 300,
            workers: 1,
            max_payload_bytes: 4096,
        }
    }
}
