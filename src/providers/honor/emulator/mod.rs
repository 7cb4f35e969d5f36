//! A loopback Honor Push for tests, demos and load runs (spec/vendors/honor.md).
//!
//! Strict where the spec is sure: the token endpoints (both paths), `Authorization: Bearer`,
//! the `timestamp` header in epoch milliseconds, the body without a `message` wrapper,
//! camelCase fields, `importance` LOW/NORMAL, a mandatory `clickAction`, `expireTokens` and
//! `failTokens` in `data`. Everything the spec marks UNCONFIRMED is a field of [`HonorRules`]:
//! the success code, token lifetime (a knob), batch size, payload limit, the codes and statuses
//! of auth failures, rate limiting and bad requests, and how "every token invalid" is answered.

mod push;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use serde::{Deserialize, Serialize};

use crate::providers::oauth_emulator::{self as core, token, Shared, TokenStyle};
pub use crate::providers::oauth_emulator::{
    EmulatorStats, Knobs, OAuthApp, ReceivedFilter, ReceivedNotification,
};

/// The token paths the spec names: the current SDKs' and the older doc's (spec §1).
pub const TOKEN_PATHS: [&str; 2] = [
    "/auth/token",
    "/auth/realms/developer/protocol/openid-connect/token",
];

/// Choices where Honor's behaviour is UNCONFIRMED; the defaults match the client's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HonorRules {
    /// `code` of a success (spec §4: 200; Huawei-like 80000000 is the alternative).
    pub success_code: i64,
    /// Tokens per request (Huawei's 1000 assumed).
    pub max_tokens: usize,
    /// Body bytes without the token list (Huawei's 4096 assumed).
    pub payload_max_bytes: usize,
    /// The `timestamp` header must be present and in milliseconds (spec §2).
    pub require_timestamp: bool,
    /// When set, a `timestamp` further than this from now is refused.
    pub timestamp_max_skew_secs: Option<u64>,
    /// `Authorization` without `Bearer ` is refused (one SDK omits it; spec §2 says do not).
    pub require_bearer_prefix: bool,
    /// HTTP status and code of an unknown or foreign access token.
    pub auth_error_status: u16,
    pub auth_error_code: i64,
    /// Code of an expired access token (same status).
    pub token_expired_code: i64,
    /// HTTP status of rate limiting (503 or 429), and its body code.
    pub rate_limit_status: u16,
    pub rate_limit_code: i64,
    /// HTTP status and code of a malformed request.
    pub bad_request_status: u16,
    pub bad_request_code: i64,
    /// When every token is invalid: `None` answers success with all of them in `expireTokens`
    /// and `sendResult` false; `Some(code)` answers that code (Huawei's 80300007 reading).
    pub all_invalid_code: Option<i64>,
    /// Largest request body read.
    pub max_body_bytes: usize,
    pub workers: usize,
}

impl Default for HonorRules {
    fn default() -> Self {
        HonorRules {
            success_code: 200,
            max_tokens: 1000,
            payload_max_bytes: 4096,
            require_timestamp: true,
            timestamp_max_skew_secs: None,
            require_bearer_prefix: true,
            auth_error_status: 401,
            auth_error_code: 80200001,
            token_expired_code: 80200003,
            rate_limit_status: 503,
            rate_limit_code: 80100017,
            bad_request_status: 400,
            bad_request_code: 80100001,
            all_invalid_code: None,
            max_body_bytes: 1024 * 1024,
            workers: 1,
        }
    }
}

/// How the emulator starts. `default()` is strict: no app is known until one is added.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    pub apps: Vec<OAuthApp>,
    pub knobs: Knobs,
    pub rules: HonorRules,
    pub accept_any_app: bool,
}

impl EmulatorConfig {
    pub fn permissive() -> Self {
        EmulatorConfig {
            accept_any_app: true,
            ..EmulatorConfig::default()
        }
    }
}

pub struct EmulatorHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
}

pub(crate) struct Vendor {
    rules: HonorRules,
}

fn configure(cfg: &mut web::ServiceConfig) {
    for path in TOKEN_PATHS {
        cfg.service(web::resource(path).route(web::post().to(
            |req, body, shared: web::Data<Shared>| {
                token::handle(TokenStyle::Keycloak, req, body, shared)
            },
        )));
    }
    push::configure(cfg);
}

pub fn start(config: EmulatorConfig, listen: SocketAddr) -> io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new(
        "honor",
        config.apps,
        config.knobs,
        config.accept_any_app,
    ));
    let workers = config.rules.workers;
    let vendor = Arc::new(Vendor {
        rules: config.rules,
    });
    let parts = core::serve(
        "honor",
        Arc::clone(&shared),
        vendor,
        configure,
        workers,
        listen,
    )?;
    Ok(EmulatorHandle {
        addr: parts.addr,
        shared,
        server: parts.server,
    })
}

impl EmulatorHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full token URL (`PUSHGATE_HONOR_AUTH_URL`).
    pub fn auth_url(&self) -> String {
        format!("http://{}{}", self.addr, TOKEN_PATHS[0])
    }

    pub fn received(&self) -> Vec<ReceivedNotification> {
        self.shared.received(&ReceivedFilter::default())
    }

    pub fn received_filtered(&self, filter: &ReceivedFilter) -> Vec<ReceivedNotification> {
        self.shared.received(filter)
    }

    pub fn clear(&self) {
        self.shared.clear();
    }

    pub fn add_app(&self, app: OAuthApp) {
        self.shared.add_app(app);
    }

    /// Tokens Honor reports in `expireTokens`.
    pub fn add_expired_tokens<I: IntoIterator<Item = S>, S: Into<String>>(&self, tokens: I) {
        let invalid = tokens.into_iter().map(Into::into).collect();
        self.shared
            .set_tokens(Vec::new(), invalid, Vec::new(), None);
    }

    /// Tokens Honor reports in `failTokens`.
    pub fn add_failing_tokens<I: IntoIterator<Item = S>, S: Into<String>>(&self, tokens: I) {
        let failing = tokens.into_iter().map(Into::into).collect();
        self.shared
            .set_tokens(Vec::new(), Vec::new(), failing, None);
    }

    pub fn expire_access_tokens(&self) {
        self.shared.expire_access_tokens();
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs);
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    pub fn stop(&self) {
        drop(self.server.stop(false));
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs until SIGTERM or ctrl-c: `pushgate emulator honor --listen HOST:PORT`.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> io::Result<()> {
    let handle = start(config, listen)?;
    core::shutdown_signal().await?;
    tracing::info!(addr = %handle.addr, "honor emulator shutting down");
    handle.stop();
    Ok(())
}

#[cfg(test)]
mod tests;
