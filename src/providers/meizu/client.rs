//! The Meizu HTTP client: one signed `pushByPushId` per call, classified. Meizu has no token:
//! every request carries its own MD5 signature (spec §2).

use std::sync::Arc;
use std::time::Duration;

use super::reply::{classify, redirect};
use super::wire::{
    push_form, MeizuApp, MeizuNotification, MAX_PUSH_IDS_PER_REQUEST, PUSH_BY_PUSH_ID_PATH,
};
use crate::providers::outcome::Outcome;
use crate::providers::vendor_http::{self, ClientError, FORM};

/// A Meizu client around one `reqwest::Client`; clones share its keep-alive pool.
#[derive(Clone, Debug)]
pub struct MeizuClient {
    http: reqwest::Client,
    push_url: Arc<str>,
}

impl MeizuClient {
    /// `base_url` is `https://server-api-push.meizu.com` or an emulator's `http://127.0.0.1:port`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let base = vendor_http::base_url(base_url)?;
        Ok(MeizuClient {
            http: vendor_http::build(timeout)?,
            push_url: format!("{base}{PUSH_BY_PUSH_ID_PATH}").into(),
        })
    }

    /// One notification to up to 1,000 push ids. A code-300 answer is followed once to the URL
    /// it names (§4), with the same signed body.
    pub async fn push(&self, app: &MeizuApp, push_ids: &[&str], n: &MeizuNotification) -> Outcome {
        if push_ids.is_empty() || push_ids.len() > MAX_PUSH_IDS_PER_REQUEST {
            return Outcome::InvalidRequest {
                code: -1,
                reason: format!(
                    "{} push ids in one request; Meizu takes 1 to {MAX_PUSH_IDS_PER_REQUEST}",
                    push_ids.len()
                ),
            };
        }
        let body = push_form(app, push_ids, n);
        let (status, reply) =
            match vendor_http::post(&self.http, &self.push_url, FORM, None, body.clone()).await {
                Ok(answer) => answer,
                Err(reason) => return Outcome::Transient { reason },
            };
        if let Some(url) = redirect(&reply) {
            return match vendor_http::post(&self.http, &url, FORM, None, body).await {
                Ok((status, reply)) => classify(status, &reply),
                Err(reason) => Outcome::Transient { reason },
            };
        }
        classify(status, &reply)
    }
}
