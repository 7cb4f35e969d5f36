//! The vivo HTTP client: the auth call, a single send, and a list send (`saveListPayload` then
//! `pushToList`), each classified. Token caching is the caller's: vivo's auth endpoint takes
//! about 10 calls/s per app, so a token must never be fetched per send (spec §2).

use std::sync::Arc;
use std::time::Duration;

use super::reply::{classify, classify_auth, classify_list_payload};
use super::wire::{
    auth_body, list_payload_body, new_request_id, push_to_list_body, send_body, VivoApp,
    VivoNotification, AUTH_PATH, MAX_REGIDS_PER_LIST, MIN_REGIDS_PER_LIST, PUSH_TO_LIST_PATH,
    SAVE_LIST_PAYLOAD_PATH, SEND_PATH,
};
use crate::providers::outcome::{AuthFailure, AuthToken, Outcome};
use crate::providers::vendor_http::{self, ClientError, JSON};

/// The custom header that carries the token (not `Authorization: Bearer`, §2).
const AUTH_TOKEN_HEADER: &str = "authtoken";

/// A vivo client around one `reqwest::Client`; clones share its keep-alive pool.
#[derive(Clone, Debug)]
pub struct VivoClient {
    http: reqwest::Client,
    auth_url: Arc<str>,
    send_url: Arc<str>,
    save_url: Arc<str>,
    list_url: Arc<str>,
}

impl VivoClient {
    /// `base_url` is `https://api-push.vivo.com.cn` or an emulator's `http://127.0.0.1:port`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let base = vendor_http::base_url(base_url)?;
        Ok(VivoClient {
            http: vendor_http::build(timeout)?,
            auth_url: format!("{base}{AUTH_PATH}").into(),
            send_url: format!("{base}{SEND_PATH}").into(),
            save_url: format!("{base}{SAVE_LIST_PAYLOAD_PATH}").into(),
            list_url: format!("{base}{PUSH_TO_LIST_PATH}").into(),
        })
    }

    /// A new `authToken` (valid 24 h), signed at `now_ms`.
    pub async fn authenticate(&self, app: &VivoApp, now_ms: u64) -> Result<AuthToken, AuthFailure> {
        match vendor_http::post(
            &self.http,
            &self.auth_url,
            JSON,
            None,
            auth_body(app, now_ms),
        )
        .await
        {
            Ok((status, body)) => classify_auth(status, &body),
            Err(reason) => Err(AuthFailure::Unavailable(reason)),
        }
    }

    /// One notification to one regId: `/message/send`.
    pub async fn send(
        &self,
        app: &VivoApp,
        auth_token: &str,
        reg_id: &str,
        n: &VivoNotification,
    ) -> Outcome {
        let body = send_body(app.app_id, reg_id, n, &new_request_id());
        match self.post(&self.send_url, auth_token, body).await {
            Ok((status, body)) => classify(status, &body),
            Err(outcome) => outcome,
        }
    }

    /// One notification to 2…1000 regIds: `saveListPayload`, then `pushToList` with its taskId.
    pub async fn send_list(
        &self,
        app: &VivoApp,
        auth_token: &str,
        reg_ids: &[&str],
        n: &VivoNotification,
    ) -> Outcome {
        if !(MIN_REGIDS_PER_LIST..=MAX_REGIDS_PER_LIST).contains(&reg_ids.len()) {
            return Outcome::InvalidRequest {
                code: -1,
                reason: format!(
                    "{} regIds in one pushToList; vivo takes {MIN_REGIDS_PER_LIST} to {MAX_REGIDS_PER_LIST}",
                    reg_ids.len()
                ),
            };
        }
        let saved = self
            .post(
                &self.save_url,
                auth_token,
                list_payload_body(app.app_id, n, &new_request_id()),
            )
            .await;
        let task_id = match saved {
            Ok((status, body)) => match classify_list_payload(status, &body) {
                Ok(task_id) => task_id,
                Err(outcome) => return outcome,
            },
            Err(outcome) => return outcome,
        };
        let body = push_to_list_body(app.app_id, reg_ids, &task_id, &new_request_id());
        match self.post(&self.list_url, auth_token, body).await {
            Ok((status, body)) => classify(status, &body),
            Err(outcome) => outcome,
        }
    }

    async fn post(
        &self,
        url: &str,
        auth_token: &str,
        body: String,
    ) -> Result<(u16, bytes::Bytes), Outcome> {
        let Some(header) = vendor_http::sensitive(AUTH_TOKEN_HEADER, auth_token) else {
            // A token with characters a header cannot carry: vivo's answer was not a token.
            return Err(Outcome::AuthExpired {
                code: -1,
                reason: "the authToken cannot be sent in a header".to_owned(),
            });
        };
        vendor_http::post(&self.http, url, JSON, Some(header), body)
            .await
            .map_err(|reason| Outcome::Transient { reason })
    }
}
