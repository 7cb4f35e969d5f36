//! What the FCM emulator starts with, and the knobs that change while it runs.

use serde::{Deserialize, Serialize};

/// A service account the emulator knows: the token endpoint verifies assertions signed by
/// `client_email` with this public key, and its access tokens send for `project_id` only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorAccount {
    pub client_email: String,
    pub project_id: String,
    /// SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    pub public_key: String,
}

/// Behaviour that can change while the emulator runs (`GET|PUT /_emulator/knobs`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Sends per second per project; more get 429 `QUOTA_EXCEEDED` with `Retry-After`.
    pub qps_limit: Option<u32>,
    /// Share of sends (0.0–1.0) answered 503 `UNAVAILABLE` with `Retry-After`.
    pub error_5xx_ratio: f64,
    /// `Retry-After` seconds on 429 and 503 (0: the header is left out).
    pub retry_after_secs: u64,
    /// Added before every send is handled.
    pub latency_ms: u64,
    /// Sends wait without answer until this is cleared (or the hang cap passes: 504).
    pub hang: bool,
    /// Lifetime of issued access tokens (`expires_in`); Google's is 3599.
    pub access_token_ttl_secs: u64,
    /// The token endpoint answers 503 (Google's OAuth down).
    pub token_endpoint_down: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            qps_limit: None,
            error_5xx_ratio: 0.0,
            retry_after_secs: 1,
            latency_ms: 0,
            hang: false,
            access_token_ttl_secs: 3599,
            token_endpoint_down: false,
        }
    }
}

/// How the emulator starts. Strict by default: it knows no account until one is added (here,
/// by `add_account`, or `POST /_emulator/accounts`), and every token is valid until marked.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    pub accounts: Vec<EmulatorAccount>,
    pub knobs: Knobs,
    /// Generate a test-only account for this project at start, served whole (private key
    /// included, it exists nowhere else) at `GET /_emulator/sample-account`.
    pub sample_project: Option<String>,
    /// Received records kept; the oldest go first.
    pub max_records: usize,
    /// A hanging send answers 504 after this long even if `hang` stays on.
    pub hang_cap_secs: u64,
    /// Runtime worker threads.
    pub workers: usize,
    /// Largest message (notification + data) in bytes: 4096 (spec §3).
    pub max_message_bytes: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            accounts: Vec::new(),
            knobs: Knobs::default(),
            sample_project: None,
            max_records: 100_000,
            hang_cap_secs: 300,
            workers: 1,
            max_message_bytes: 4096,
        }
    }
}
