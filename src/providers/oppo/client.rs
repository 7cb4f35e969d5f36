//! The OPPO HTTP client: the auth call and one send per call, each classified. Retry and token
//! caching belong to the caller (the certificate's sender and its access cache).

use std::sync::Arc;
use std::time::Duration;

use super::reply::{classify, classify_auth};
use super::wire::{
    auth_form, unicast_batch_form, unicast_form, OppoApp, OppoNotification, AUTH_PATH,
    MAX_MESSAGES_PER_BATCH, UNICAST_BATCH_PATH, UNICAST_PATH,
};
use crate::providers::outcome::{AuthFailure, AuthToken, Outcome};
use crate::providers::vendor_http::{self, ClientError, FORM};

/// An OPPO client around one `reqwest::Client`; clones share its keep-alive pool.
#[derive(Clone, Debug)]
pub struct OppoClient {
    http: reqwest::Client,
    auth_url: Arc<str>,
    unicast_url: Arc<str>,
    batch_url: Arc<str>,
}

impl OppoClient {
    /// `base_url` is `https://api.push.oppomobile.com` or an emulator's `http://127.0.0.1:port`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let base = vendor_http::base_url(base_url)?;
        Ok(OppoClient {
            http: vendor_http::build(timeout)?,
            auth_url: format!("{base}{AUTH_PATH}").into(),
            unicast_url: format!("{base}{UNICAST_PATH}").into(),
            batch_url: format!("{base}{UNICAST_BATCH_PATH}").into(),
        })
    }

    /// A new `auth_token` (valid 24 h), signed with the MasterSecret at `now_ms`.
    pub async fn authenticate(&self, app: &OppoApp, now_ms: u64) -> Result<AuthToken, AuthFailure> {
        match vendor_http::post(
            &self.http,
            &self.auth_url,
            FORM,
            None,
            auth_form(app, now_ms),
        )
        .await
        {
            Ok((status, body)) => classify_auth(status, &body),
            Err(reason) => Err(AuthFailure::Unavailable(reason)),
        }
    }

    /// One notification to one target: `unicast`.
    pub async fn unicast(&self, auth_token: &str, target: &str, n: &OppoNotification) -> Outcome {
        self.post(&self.unicast_url, unicast_form(auth_token, target, n))
            .await
    }

    /// Up to 1,000 notifications, each to its own target and each possibly different:
    /// `unicast_batch`.
    pub async fn unicast_batch(
        &self,
        auth_token: &str,
        items: &[(&str, &OppoNotification)],
    ) -> Outcome {
        if items.is_empty() || items.len() > MAX_MESSAGES_PER_BATCH {
            return Outcome::InvalidRequest {
                code: -1,
                reason: format!(
                    "{} messages in one unicast_batch; OPPO takes 1 to {MAX_MESSAGES_PER_BATCH}",
                    items.len()
                ),
            };
        }
        self.post(&self.batch_url, unicast_batch_form(auth_token, items))
            .await
    }

    async fn post(&self, url: &str, body: String) -> Outcome {
        match vendor_http::post(&self.http, url, FORM, None, body).await {
            Ok((status, body)) => classify(status, &body),
            Err(reason) => Outcome::Transient { reason },
        }
    }
}
