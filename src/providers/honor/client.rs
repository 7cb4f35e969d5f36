//! The Honor HTTP client: the OAuth token request and the send request, one attempt each.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use super::reply::{classify, HonorReply};
use super::wire::{send_body, HonorApp, HonorMessage, MAX_TOKENS_PER_REQUEST};
use crate::providers::huawei::auth::{AccessToken, TokenError};
use crate::providers::huawei::client::{
    bearer, checked_url, fetch_token, http_client, transport, ClientError,
};

/// Production hosts (spec §1). Which family (`honor.com` / `hihonor.com`) is canonical today is
/// UNCONFIRMED; both are reachable through the configured URLs.
pub const DEFAULT_BASE_URL: &str = "https://push-api.cloud.honor.com";
pub const DEFAULT_AUTH_URL: &str = "https://iam.developer.honor.com/auth/token";

const JSON_CONTENT_TYPE: &str = "application/json; charset=UTF-8";

/// The `timestamp` header: epoch milliseconds (spec §2; one SDK sends seconds — we do not).
pub fn timestamp_header(now: SystemTime) -> String {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string()
}

/// A Honor Push client; clones share one connection pool.
#[derive(Clone, Debug)]
pub struct HonorClient {
    http: reqwest::Client,
    base: Arc<str>,
    auth_url: Arc<str>,
}

impl HonorClient {
    pub fn new(base_url: &str, auth_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Ok(HonorClient {
            http: http_client(timeout)?,
            base: checked_url("Honor base", base_url)?.into(),
            auth_url: checked_url("Honor auth", auth_url)?.into(),
        })
    }

    /// `{base}/api/v1/{appId}/sendMessage`.
    pub fn send_url(&self, app: &HonorApp) -> String {
        format!("{}/api/v1/{}/sendMessage", self.base, app.app_id.trim())
    }

    pub async fn fetch_token(&self, app: &HonorApp) -> Result<AccessToken, TokenError> {
        fetch_token(
            &self.http,
            &self.auth_url,
            &app.client_id,
            &app.client_secret,
        )
        .await
    }

    /// One message to 1–1000 tokens.
    pub async fn send(
        &self,
        app: &HonorApp,
        access_token: &str,
        msg: &HonorMessage,
        tokens: &[&str],
    ) -> HonorReply {
        if tokens.is_empty() || tokens.len() > MAX_TOKENS_PER_REQUEST {
            return HonorReply::InvalidRequest {
                code: -1,
                msg: format!(
                    "{} tokens in one request; Honor takes 1 to {MAX_TOKENS_PER_REQUEST}",
                    tokens.len()
                ),
            };
        }
        let Some(auth) = bearer(access_token) else {
            return HonorReply::AccessRefused {
                code: -1,
                msg: "the access token holds characters not allowed in a header".into(),
            };
        };
        let sent = self
            .http
            .post(self.send_url(app))
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE)
            .header("timestamp", timestamp_header(SystemTime::now()))
            .body(send_body(msg, tokens))
            .send()
            .await;
        let reply = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => classify(status, &body),
                    Err(err) => HonorReply::Transient {
                        reason: format!("reading Honor reply (HTTP {status}): {}", transport(&err)),
                    },
                }
            }
            Err(err) => HonorReply::Transient {
                reason: transport(&err),
            },
        };
        tracing::debug!(
            app_id = %app.app_id,
            class = reply.class(),
            request_id = reply.request_id().unwrap_or(""),
            "honor send"
        );
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_timestamp() {
        let c = HonorClient::new(
            "http://127.0.0.1:1",
            DEFAULT_AUTH_URL,
            Duration::from_secs(1),
        )
        .expect("ok");
        let app = HonorApp {
            app_id: "104436".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        assert_eq!(
            c.send_url(&app),
            "http://127.0.0.1:1/api/v1/104436/sendMessage"
        );
        assert_eq!(
            timestamp_header(UNIX_EPOCH + Duration::from_millis(1_563_105_451_261)),
            "1563105451261"
        );
        assert!(HonorClient::new("nope", DEFAULT_AUTH_URL, Duration::from_secs(1)).is_err());
    }
}
