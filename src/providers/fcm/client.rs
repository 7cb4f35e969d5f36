//! The two exchanges with Google: the OAuth token request at the account's `token_uri`
//! (HTTP/1.1 or 2, whatever the endpoint speaks) and one `messages:send` over a certificate's
//! HTTP/2 pool.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};

use super::account::ServiceAccount;
use super::reply::{classify_token, parse_retry_after, FcmReply, TokenFailure, TokenGrant};
use super::wire::send_url;
use crate::providers::h2_pool::{retry_at_once, H2Pool};

/// `https://fcm.googleapis.com`, overridden by `PUSHGATE_FCM_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("base URL {0:?} must start with http:// or https://")]
    BadBaseUrl(String),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

pub struct FcmClient {
    base_url: String,
    /// The token endpoint is called about once an hour per certificate: a plain client.
    auth: reqwest::Client,
    pub timeout: Duration,
}

impl FcmClient {
    pub fn new(base_url: &str, timeout: Duration) -> Result<FcmClient, ClientError> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ClientError::BadBaseUrl(base_url.to_owned()));
        }
        Ok(FcmClient {
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth: reqwest::Client::builder().timeout(timeout).build()?,
            timeout,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Exchanges a fresh assertion for an access token.
    pub async fn fetch_token(
        &self,
        account: &ServiceAccount,
        now: u64,
    ) -> Result<TokenGrant, TokenFailure> {
        let assertion = account
            .assertion(now)
            .map_err(|e| TokenFailure::Refused(format!("signing the assertion failed: {e}")))?;
        let answer = self
            .auth
            .post(&account.token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(ServiceAccount::token_form(&assertion))
            .send()
            .await
            .map_err(|e| TokenFailure::Unavailable(without_url(&e)))?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| TokenFailure::Unavailable(without_url(&e)))?;
        classify_token(status, &body)
    }

    /// One `messages:send`. A request that never reached Google (refused stream, GOAWAY, a
    /// dropped connection) is tried once more at once on another connection of the pool.
    pub async fn send(
        &self,
        pool: &H2Pool,
        project_id: &str,
        access_token: &str,
        body: &[u8],
    ) -> FcmReply {
        let url = send_url(&self.base_url, project_id);
        let mut avoid = None;
        for attempt in 0..2 {
            let conn = pool.lease(avoid);
            let sent = conn
                .post(&url)
                .header(AUTHORIZATION, format!("Bearer {access_token}"))
                .header(CONTENT_TYPE, "application/json; charset=UTF-8")
                .body(body.to_vec())
                .send()
                .await;
            match sent {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let retry_after = parse_retry_after(
                        answer
                            .headers()
                            .get(RETRY_AFTER)
                            .and_then(|v| v.to_str().ok()),
                    );
                    return match answer.bytes().await {
                        Ok(body) => FcmReply::Http {
                            status,
                            retry_after,
                            body,
                        },
                        Err(e) => FcmReply::Transport(without_url(&e)),
                    };
                }
                Err(e) if attempt == 0 && retry_at_once(&e) => avoid = Some(conn.index),
                Err(e) => return FcmReply::Transport(without_url(&e)),
            }
        }
        FcmReply::Transport("no connection".into())
    }
}

/// The error without its URL (the URL holds nothing secret, but keeps logs short).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "…");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
