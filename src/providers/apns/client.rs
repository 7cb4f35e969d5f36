//! One APNs request over a certificate's HTTP/2 pool (spec/vendors/apns.md §1, §3).

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};

use super::key::ProviderToken;
use super::reply::ApnsReply;
use super::wire::{device_path, headers, payload, ApnsNotification};
use crate::providers::fcm::client::without_url;
use crate::providers::h2_pool::{retry_at_once, H2Pool};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("base URL {0:?} must start with http:// or https://")]
    BadBaseUrl(String),
}

/// Where requests go: `PUSHGATE_APNS_BASE_URL` when set (an `http://` one is HTTP/2 without
/// TLS, for the emulator), else Apple's host of each certificate's environment.
#[derive(Debug, Clone)]
pub struct ApnsClient {
    base_override: Option<String>,
    pub timeout: Duration,
}

impl ApnsClient {
    pub fn new(base_url: Option<&str>, timeout: Duration) -> Result<ApnsClient, ClientError> {
        let base_override = match base_url.map(str::trim).filter(|s| !s.is_empty()) {
            Some(b) if b.starts_with("http://") || b.starts_with("https://") => {
                Some(b.trim_end_matches('/').to_owned())
            }
            Some(b) => return Err(ClientError::BadBaseUrl(b.to_owned())),
            None => None,
        };
        Ok(ApnsClient {
            base_override,
            timeout,
        })
    }

    pub fn base_url(&self, env: super::key::Environment) -> &str {
        self.base_override
            .as_deref()
            .unwrap_or(env.default_base_url())
    }

    /// Sends one notification to one device token. A request that never reached APNs (refused
    /// stream, GOAWAY, dropped connection) is tried once more at once on another connection.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        pool: &H2Pool,
        base_url: &str,
        token: &ProviderToken,
        topic: &str,
        device_token: &str,
        n: &ApnsNotification,
        badge: Option<u32>,
        collapse_id: Option<&str>,
        now: u64,
    ) -> ApnsReply {
        let Some(path) = device_path(device_token) else {
            return ApnsReply::MalformedToken;
        };
        let url = format!("{base_url}{path}");
        let body = payload(n, badge).to_string();
        let mut avoid = None;
        for attempt in 0..2 {
            let conn = pool.lease(avoid);
            let mut req = conn
                .post(&url)
                .header(AUTHORIZATION, format!("bearer {}", token.jwt))
                .header(CONTENT_TYPE, "application/json");
            for (name, value) in headers(n, topic, now, collapse_id) {
                req = req.header(name, value);
            }
            match req.body(body.clone()).send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let h = answer.headers();
                    let apns_id = h
                        .get("apns-id")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let retry_after = h
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    return match answer.bytes().await {
                        Ok(body) => ApnsReply::Http {
                            status,
                            apns_id,
                            retry_after,
                            body,
                        },
                        Err(e) => ApnsReply::Transport(without_url(&e)),
                    };
                }
                Err(e) if attempt == 0 && retry_at_once(&e) => avoid = Some(conn.index),
                Err(e) => return ApnsReply::Transport(without_url(&e)),
            }
        }
        ApnsReply::Transport("no connection".into())
    }
}
