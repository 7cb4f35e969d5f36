//! The HTTP client: the OAuth token request and the send request, one attempt each.
//!
//! Caching the token (per certificate, one fetch shared by concurrent senders) and retrying are
//! the caller's; this module only speaks the wire.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::auth::{parse_token_reply, token_form, AccessToken, TokenError, FORM_CONTENT_TYPE};
use super::harmony::{harmony_body, PUSH_TYPE_HEADER, PUSH_TYPE_NOTIFICATION};
use super::reply::{classify, HuaweiReply};
use super::wire::{send_body, HuaweiApp, HuaweiMessage, MAX_TOKENS_PER_REQUEST};

/// Production hosts (spec §1).
pub const DEFAULT_BASE_URL: &str = "https://push-api.cloud.huawei.com";
pub const DEFAULT_AUTH_URL: &str = "https://oauth-login.cloud.huawei.com/oauth2/v3/token";

const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(3);

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{what} URL {url:?} is not an http(s) URL")]
    Url { what: &'static str, url: String },
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Checks an http(s) URL with a host and returns it without a trailing `/`.
pub fn checked_url(what: &'static str, url: &str) -> Result<String, ClientError> {
    let trimmed = url.trim().trim_end_matches('/');
    let bad = || ClientError::Url {
        what,
        url: url.to_owned(),
    };
    let parsed = reqwest::Url::parse(trimmed).map_err(|_| bad())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad());
    }
    Ok(trimmed.to_owned())
}

/// A reqwest client with the settings every vendor client here uses.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()?)
}

/// A transport error in words, with its kind first.
pub fn transport(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect error"
    } else if err.is_body() || err.is_decode() {
        "body error"
    } else {
        "request error"
    };
    // reqwest's Display names the URL, which carries no secret (secrets travel in bodies/headers).
    format!("{kind}: {err}")
}

/// `Authorization: Bearer <token>`, marked sensitive so no Debug output shows it.
pub fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// POSTs the client-credentials form to `auth_url`.
pub async fn fetch_token(
    http: &reqwest::Client,
    auth_url: &str,
    client_id: &str,
    client_secret: &str,
) -> Result<AccessToken, TokenError> {
    let sent = http
        .post(auth_url)
        .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
        .body(token_form(client_id, client_secret))
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) => parse_token_reply(status, &body),
                Err(err) => Err(TokenError::Unavailable(transport(&err))),
            }
        }
        Err(err) => Err(TokenError::Unavailable(transport(&err))),
    }
}

/// A Huawei Push Kit client; clones share one connection pool.
#[derive(Clone, Debug)]
pub struct HuaweiClient {
    http: reqwest::Client,
    /// `https://push-api.cloud.huawei.com` or an emulator, without a trailing `/`.
    base: Arc<str>,
    /// The full OAuth token URL.
    auth_url: Arc<str>,
}

impl HuaweiClient {
    pub fn new(base_url: &str, auth_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Ok(HuaweiClient {
            http: http_client(timeout)?,
            base: checked_url("Huawei base", base_url)?.into(),
            auth_url: checked_url("Huawei auth", auth_url)?.into(),
        })
    }

    /// `{base}/v1/{app_id}/messages:send`, or the v2 per-project URL when a project id is set.
    pub fn send_url(&self, app: &HuaweiApp) -> String {
        match app.project_id.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(project) => format!("{}/v2/{}/messages:send", self.base, project.trim()),
            None => format!("{}/v1/{}/messages:send", self.base, app.app_id.trim()),
        }
    }

    /// A new access token for the app (client id = app id, spec §1).
    pub async fn fetch_token(&self, app: &HuaweiApp) -> Result<AccessToken, TokenError> {
        fetch_token(&self.http, &self.auth_url, &app.app_id, &app.client_secret).await
    }

    /// `{base}/v3/{project_id}/messages:send`, HarmonyOS NEXT's URL (spec §1).
    pub fn harmony_url(&self, project_id: &str) -> String {
        format!("{}/v3/{}/messages:send", self.base, project_id.trim())
    }

    /// One message to 1–1000 tokens through v1 (or v2).
    pub async fn send(
        &self,
        app: &HuaweiApp,
        access_token: &str,
        msg: &HuaweiMessage,
        tokens: &[&str],
    ) -> HuaweiReply {
        let reply = self
            .post(self.send_url(app), None, access_token, tokens.len(), || {
                send_body(msg, tokens)
            })
            .await;
        tracing::debug!(
            app_id = %app.app_id,
            class = reply.class(),
            request_id = reply.request_id().unwrap_or(""),
            "huawei send"
        );
        reply
    }

    /// One notification to 1–1000 HarmonyOS NEXT tokens through v3: the project's URL, the
    /// service account's JWT, `push-type: 0` and the v3 body (see `harmony`).
    pub async fn send_harmony(
        &self,
        project_id: &str,
        jwt: &str,
        msg: &HuaweiMessage,
        tokens: &[&str],
    ) -> HuaweiReply {
        let reply = self
            .post(
                self.harmony_url(project_id),
                Some(PUSH_TYPE_NOTIFICATION),
                jwt,
                tokens.len(),
                || harmony_body(msg, tokens),
            )
            .await;
        tracing::debug!(
            project_id,
            class = reply.class(),
            request_id = reply.request_id().unwrap_or(""),
            "huawei v3 send"
        );
        reply
    }

    /// POSTs a send body and classifies the answer; the token count is checked first.
    async fn post(
        &self,
        url: String,
        push_type: Option<&'static str>,
        access_token: &str,
        token_count: usize,
        body: impl FnOnce() -> String,
    ) -> HuaweiReply {
        if token_count == 0 || token_count > MAX_TOKENS_PER_REQUEST {
            return HuaweiReply::InvalidRequest {
                code: 80300010,
                msg: format!(
                    "{token_count} tokens in one request; Huawei takes 1 to \
                     {MAX_TOKENS_PER_REQUEST}"
                ),
            };
        }
        let Some(auth) = bearer(access_token) else {
            return HuaweiReply::AccessRefused {
                code: -1,
                msg: "the access token holds characters not allowed in a header".into(),
            };
        };
        let mut request = self
            .http
            .post(url)
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, JSON_CONTENT_TYPE);
        if let Some(push_type) = push_type {
            request = request.header(PUSH_TYPE_HEADER, push_type);
        }
        match request.body(body()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(body) => classify(status, &body),
                    Err(err) => HuaweiReply::Transient {
                        reason: format!(
                            "reading Huawei reply (HTTP {status}): {}",
                            transport(&err)
                        ),
                    },
                }
            }
            Err(err) => HuaweiReply::Transient {
                reason: transport(&err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_built() {
        let c = HuaweiClient::new(
            "http://127.0.0.1:1/",
            "http://127.0.0.1:2/oauth2/v3/token",
            Duration::from_secs(1),
        )
        .expect("ok");
        let mut app = HuaweiApp {
            app_id: "10086".into(),
            client_secret: "s".into(),
            project_id: None,
        };
        assert_eq!(
            c.send_url(&app),
            "http://127.0.0.1:1/v1/10086/messages:send"
        );
        app.project_id = Some("736430079244623135".into());
        assert_eq!(
            c.send_url(&app),
            "http://127.0.0.1:1/v2/736430079244623135/messages:send"
        );
        assert_eq!(
            c.harmony_url("736430079244623135"),
            "http://127.0.0.1:1/v3/736430079244623135/messages:send"
        );
        for bad in ["", "push-api.cloud.huawei.com", "ftp://x", "http://"] {
            assert!(HuaweiClient::new(bad, DEFAULT_AUTH_URL, Duration::from_secs(1)).is_err());
            assert!(HuaweiClient::new(DEFAULT_BASE_URL, bad, Duration::from_secs(1)).is_err());
        }
    }

    #[test]
    fn the_bearer_header_is_sensitive() {
        let h = bearer("abc").expect("header");
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().ok(), Some("Bearer abc"));
        assert!(bearer("a\nb").is_none());
    }
}
