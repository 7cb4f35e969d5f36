//! The HTTP client: one attempt per call, classified into a [`VendorReply`].
//!
//! Retry belongs to the caller (the per-certificate sender), which reads
//! [`VendorReply::retryable`] and [`super::reply::retry_delay`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::reply::{classify, VendorReply};
use super::wire::{multi_form, regid_form, XiaomiApp, XiaomiMessage, MAX_REGIDS_PER_REQUEST};

/// Content type every official SDK sends (spec §2).
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded;charset=UTF-8";

/// The Java SDK's connect timeout (spec §2); the whole-request timeout is the caller's.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(3);

/// Why a [`XiaomiClient`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Xiaomi base URL {url:?} is not an http(s) URL")]
    BaseUrl { url: String },
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// A Xiaomi push client around one `reqwest::Client`; clones share its keep-alive pool.
#[derive(Clone, Debug)]
pub struct XiaomiClient {
    /// Shared connection pool; cheap to clone.
    http: reqwest::Client,
    /// `{base}/v3/message/regid`, built once.
    regid_url: Arc<str>,
    /// `{base}/v2/multi_messages/regids`, built once.
    multi_url: Arc<str>,
}

impl XiaomiClient {
    /// `base_url` is e.g. `https://api.xmpush.xiaomi.com` or an emulator's `http://127.0.0.1:port`;
    /// `timeout` bounds each whole request (connect + send + reply).
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let base = base_url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|_| ClientError::BaseUrl {
            url: base_url.to_owned(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::BaseUrl {
                url: base_url.to_owned(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(XiaomiClient {
            http,
            regid_url: format!("{base}/v3/message/regid").into(),
            multi_url: format!("{base}/v2/multi_messages/regids").into(),
        })
    }

    /// One message to up to 1000 regIds: `POST {base}/v3/message/regid`.
    pub async fn send_regid(
        &self,
        app: &XiaomiApp,
        msg: &XiaomiMessage,
        regids: &[&str],
    ) -> VendorReply {
        if let Some(refusal) = check_batch(regids.len()) {
            return refusal;
        }
        let body = regid_form(app, msg, regids);
        self.post(&self.regid_url, app, body).await
    }

    /// A different message per regId: `POST {base}/v2/multi_messages/regids`.
    pub async fn send_multi(
        &self,
        app: &XiaomiApp,
        items: &[(&str, &XiaomiMessage)],
    ) -> VendorReply {
        if let Some(refusal) = check_batch(items.len()) {
            return refusal;
        }
        let body = multi_form(app, items);
        self.post(&self.multi_url, app, body).await
    }

    async fn post(&self, url: &str, app: &XiaomiApp, body: String) -> VendorReply {
        let Ok(mut auth) = HeaderValue::from_str(&format!("key={}", app.app_secret)) else {
            return VendorReply::Misconfigured {
                code: -1,
                reason: "AppSecret contains characters not allowed in an HTTP header".to_owned(),
                trace_id: String::new(),
            };
        };
        // Keeps the secret out of any Debug output of the request.
        auth.set_sensitive(true);
        let sent = self
            .http
            .post(url)
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(body)
            .send()
            .await;
        let reply = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => classify(status, &bytes),
                    Err(err) => VendorReply::Transient {
                        reason: format!(
                            "reading Xiaomi reply (HTTP {status}): {}",
                            transport(&err)
                        ),
                    },
                }
            }
            Err(err) => VendorReply::Transient {
                reason: transport(&err),
            },
        };
        tracing::debug!(
            package = %app.package_name,
            class = reply.class(),
            trace_id = reply.trace_id().unwrap_or(""),
            "xiaomi send"
        );
        reply
    }
}

/// Refuses locally what Xiaomi would refuse anyway: an empty or oversized batch is a caller bug.
fn check_batch(len: usize) -> Option<VendorReply> {
    let reason = if len == 0 {
        "no targets given".to_owned()
    } else if len > MAX_REGIDS_PER_REQUEST {
        format!("{len} targets in one request; Xiaomi takes at most {MAX_REGIDS_PER_REQUEST}")
    } else {
        return None;
    };
    Some(VendorReply::InvalidRequest {
        code: -1,
        reason,
        trace_id: String::new(),
    })
}

/// A transport error in words, with its kind first (timeout / connect / …).
fn transport(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect error"
    } else if err.is_body() || err.is_decode() {
        "body error"
    } else {
        "request error"
    };
    // reqwest's Display names the URL, which carries no secret.
    format!("{kind}: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_checked() {
        let ok = XiaomiClient::new("http://127.0.0.1:1/", Duration::from_secs(1)).expect("ok");
        assert_eq!(&*ok.regid_url, "http://127.0.0.1:1/v3/message/regid");
        assert_eq!(
            &*ok.multi_url,
            "http://127.0.0.1:1/v2/multi_messages/regids"
        );
        for bad in ["", "api.xmpush.xiaomi.com", "ftp://x", "http://"] {
            assert!(
                XiaomiClient::new(bad, Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn batch_limits() {
        assert!(check_batch(0).is_some());
        assert!(check_batch(1).is_none());
        assert!(check_batch(1000).is_none());
        assert_eq!(
            check_batch(1001).map(|r| r.class()),
            Some("invalid_request")
        );
    }
}
