//! What the emulator is started with, and the knobs that change while it runs.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An app the emulator knows: its package and AppSecret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct EmulatorApp {
    pub package_name: String,
    pub app_secret: String,
}

impl EmulatorApp {
    pub fn new(package_name: impl Into<String>, app_secret: impl Into<String>) -> Self {
        EmulatorApp {
            package_name: package_name.into(),
            app_secret: app_secret.into(),
        }
    }
}

impl std::fmt::Debug for EmulatorApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorApp")
            .field("package_name", &self.package_name)
            .field("app_secret", &"<redacted>")
            .finish()
    }
}

/// Which regIds count as registered devices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegidPolicy {
    /// Only these are valid.
    Listed(HashSet<String>),
    /// All are valid except these.
    AnyExcept(HashSet<String>),
}

/// Behaviour that can change while the emulator runs (`GET|PUT /_emulator/knobs`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Requests per second per app; more get 10027 (Xiaomi counts requests, not devices).
    pub qps_limit: Option<u32>,
    /// Notifications per app per China day; past it, 200001.
    pub daily_quota: Option<u64>,
    /// Share of requests (0.0–1.0) answered with HTTP 503 before any processing.
    pub error_5xx_ratio: f64,
    /// Added before every push request is handled.
    pub latency_ms: u64,
    /// Push requests wait without answer until this is cleared (or `hang_cap_secs` passes).
    pub hang: bool,
    /// Milliseconds from accepting a notification to its delivery receipt being due.
    pub receipt_delay_ms: u64,
    /// Share of receipts (0.0–1.0) never posted, as when Xiaomi's callback is lost.
    pub receipt_loss_ratio: f64,
    /// Share of delivered notifications (0.0–1.0) the emulated user also taps (type 2).
    pub receipt_click_ratio: f64,
}

/// Limits and the choices made where the spec says UNCONFIRMED; fixed at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulatorRules {
    /// Permissive mode: any package is accepted with any non-empty `key=` secret. Off by default;
    /// real Xiaomi is strict, so tests of credentials need it off.
    pub accept_any_app: bool,
    /// Code for a known secret sent with a package not its own: 22022 is the documented
    /// "invalid package name"; real sends might answer 20301 (UNCONFIRMED, spec §4.3).
    pub unknown_package_code: i64,
    /// Code for title/description over the limit: 10017 "illegal parameter value" (UNCONFIRMED).
    pub too_long_code: i64,
    /// Code for more than `max_regids` targets (UNCONFIRMED, spec §7).
    pub too_many_targets_code: i64,
    /// Code the QPS limiter answers with: 10027 (UNCONFIRMED, spec §5.1).
    pub qps_code: i64,
    /// Title must be shorter than 50 chars (spec §3.1), counted as chars.
    pub title_max_chars: usize,
    /// Description must be shorter than 128 chars (spec §3.1).
    pub description_max_chars: usize,
    /// Targets per `/message/regid` request (spec §3.1).
    pub max_regids: usize,
    /// Messages per multi_messages request; Xiaomi's cap is UNCONFIRMED.
    pub max_multi_messages: usize,
    /// Custom (non-predefined) extras per message: 10 (spec §3.3) → else 65014.
    pub extra_max_custom: usize,
    /// Longest custom extra key or value, in chars: 1024 (spec §3.3) → else 65015.
    pub extra_item_max_chars: usize,
    /// Longest total of custom extra keys + values, in chars → else 65015. The threshold is
    /// UNCONFIRMED; 2048 follows one unverified third-party note (spec §3.3).
    pub extra_total_max_chars: usize,
    /// Longest payload in bytes → else 65009 "message content too long"; limit UNCONFIRMED.
    pub payload_max_bytes: usize,
    /// HTTP status of business errors: 200, as the SDKs parse `code` (UNCONFIRMED, spec §2).
    pub business_error_status: u16,
    /// A hanging request answers 504 after this long even if `hang` stays on.
    pub hang_cap_secs: u64,
    /// Received records kept; the oldest are dropped first.
    pub max_records: usize,
    /// Largest request body; longer ones get 10018 "request too long".
    pub max_body_bytes: usize,
    /// actix workers (threads) serving the emulator; 1 suits tests, more suits load runs.
    pub workers: usize,
    /// Receipts due within this many milliseconds share one POST per callback URL and type.
    pub receipt_batch_ms: u64,
}

impl Default for EmulatorRules {
    fn default() -> Self {
        EmulatorRules {
            accept_any_app: false,
            unknown_package_code: 22022,
            too_long_code: 10017,
            too_many_targets_code: 10017,
            qps_code: 10027,
            title_max_chars: 49,
            description_max_chars: 127,
            max_regids: 1000,
            max_multi_messages: 1000,
            extra_max_custom: 10,
            extra_item_max_chars: 1024,
            extra_total_max_chars: 2048,
            payload_max_bytes: 4096,
            business_error_status: 200,
            hang_cap_secs: 300,
            max_records: 100_000,
            max_body_bytes: 8 * 1024 * 1024,
            workers: 1,
            receipt_batch_ms: 50,
        }
    }
}

/// How the emulator starts.
///
/// `EmulatorConfig::default()` is strict like Xiaomi: it knows no app until one is given here,
/// by [`super::EmulatorHandle::add_app`] or by `POST /_emulator/apps`, and every regId is valid
/// until marked invalid. [`EmulatorConfig::permissive`] additionally accepts any package with any
/// non-empty secret — handy for a standalone emulator that a load test points at without setup.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    pub apps: Vec<EmulatorApp>,
    pub regids: RegidPolicy,
    pub qps_limit: Option<u32>,
    pub daily_quota: Option<u64>,
    pub error_5xx_ratio: f64,
    pub latency: Duration,
    pub hang: bool,
    /// Receipt knobs at start (see [`Knobs`]).
    pub receipt_delay: Duration,
    pub receipt_loss_ratio: f64,
    pub receipt_click_ratio: f64,
    pub rules: EmulatorRules,
}

impl EmulatorConfig {
    /// Accepts any package with any non-empty `Authorization: key=…`; all regIds valid.
    pub fn permissive() -> Self {
        EmulatorConfig {
            rules: EmulatorRules {
                accept_any_app: true,
                ..EmulatorRules::default()
            },
            ..EmulatorConfig::default()
        }
    }
}
