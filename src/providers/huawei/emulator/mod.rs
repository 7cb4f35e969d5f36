//! A loopback Huawei Push Kit for tests, demos and load runs.
//!
//! It behaves as `spec/vendors/huawei.md` says Huawei does, not as our client happens to send:
//! the OAuth token endpoint (`/oauth2/v3/token`, 3600 s tokens, 1101 errors), `Authorization:
//! Bearer` checked against the app of the URL (80200001 / 80200003), the v1 and v2 send URLs,
//! the body's rules (exactly one target kind, 1–1000 tokens, 4096-byte payload, category,
//! importance, click_action, ttl, collapse_key, sound), illegal tokens (80100000 with the list
//! in `msg` as a JSON string, 80300007 when all are), flow control as HTTP 503, outages, and
//! message receipts posted to the callback of a receipt configuration (`receipts`, spec §6),
//! and service-account JWTs in place of access tokens, checked against each account's public
//! key (`jwt`, spec §2.2; the choices the spec leaves open are [`HuaweiRules`] fields), and
//! HarmonyOS NEXT's v3 send URL with its own body, JWT-only (`harmony`, spec §1).
//! Shared pieces (tokens, knobs, control surface) are in `providers::oauth_emulator`.

mod harmony;
mod jwt;
mod push;
mod receipts;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;

use crate::providers::oauth_emulator::{self as core, token, Shared, TokenStyle};
pub use crate::providers::oauth_emulator::{
    EmulatorStats, Knobs, OAuthApp, ReceivedFilter, ReceivedNotification,
};
pub use crate::providers::receipt_poster::ReceiptStats;
pub use jwt::ServiceAccountKey;
pub use receipts::ReceiptConfig;

/// Fixed choices, where the spec is silent or UNCONFIRMED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HuaweiRules {
    /// Tokens per request (spec §3).
    pub max_tokens: usize,
    /// Message bytes, token list excluded (spec §3).
    pub payload_max_bytes: usize,
    /// HTTP status of a refused bearer (80200001/80200003): 401 (spec §4).
    pub auth_error_status: u16,
    /// HTTP status of parameter errors: 400 (spec §4).
    pub bad_request_status: u16,
    /// Largest request body read.
    pub max_body_bytes: usize,
    /// actix workers; 1 suits tests, more suits load runs.
    pub workers: usize,
    /// The `aud` a service-account JWT must carry. The spec's only source is the v3 page
    /// (§2.2): its token URL, which is also the client's default.
    pub jwt_audience: String,
    /// Longest `exp − iat` of a JWT; more answers 80300036 "validity > 1 day" (§5).
    pub jwt_max_validity_secs: u64,
    /// Whether a v3 `clickAction` may carry `data`, where our client puts `Ext` (UNCONFIRMED:
    /// the spec's v3 sample has no `data`); off, such a request answers 80100003.
    pub v3_click_data: bool,
    /// Tokens a v3 test message (`pushOptions.testMessage`) may carry; more answers 80300030.
    /// The spec names the code only; 10 is the v3 page's figure.
    pub test_message_max_tokens: usize,
}

impl Default for HuaweiRules {
    fn default() -> Self {
        HuaweiRules {
            max_tokens: 1000,
            payload_max_bytes: 4096,
            auth_error_status: 401,
            bad_request_status: 400,
            max_body_bytes: 1024 * 1024,
            workers: 1,
            jwt_audience: crate::providers::huawei::account::JWT_AUDIENCE.to_owned(),
            jwt_max_validity_secs: 86_400,
            v3_click_data: true,
            test_message_max_tokens: 10,
        }
    }
}

/// How the emulator starts. `default()` is strict: no app is known until one is added.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    pub apps: Vec<OAuthApp>,
    pub knobs: Knobs,
    pub rules: HuaweiRules,
    /// Any client id with any non-empty secret gets a token and may send for any app id.
    pub accept_any_app: bool,
    /// AppGallery Connect's receipt configurations at start (more by
    /// [`EmulatorHandle::add_receipt_config`] or `POST /_emulator/receipt_configs`).
    pub receipt_configs: Vec<ReceiptConfig>,
    /// Service accounts whose JWTs are accepted (more by
    /// [`EmulatorHandle::add_service_account`] or `POST /_emulator/service_accounts`).
    pub service_accounts: Vec<ServiceAccountKey>,
}

impl EmulatorConfig {
    /// Accepts any client with any non-empty secret, for load runs without setup.
    pub fn permissive() -> Self {
        EmulatorConfig {
            accept_any_app: true,
            ..EmulatorConfig::default()
        }
    }
}

/// A running Huawei emulator; dropping it stops the server.
pub struct EmulatorHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    receipts: Arc<receipts::Receipts>,
    accounts: Arc<jwt::Accounts>,
    server: ServerHandle,
}

pub(crate) struct Vendor {
    rules: HuaweiRules,
    receipts: Arc<receipts::Receipts>,
    accounts: Arc<jwt::Accounts>,
}

fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/oauth2/v3/token").route(web::post().to(
        |req, body, shared: web::Data<Shared>| token::handle(TokenStyle::Huawei, req, body, shared),
    )));
    push::configure(cfg);
    harmony::configure(cfg);
    receipts::configure(cfg);
    jwt::configure(cfg);
}

/// Starts an emulator on `listen` (port 0 picks a free port); returns once bound.
pub fn start(config: EmulatorConfig, listen: SocketAddr) -> io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new(
        "huawei",
        config.apps,
        config.knobs,
        config.accept_any_app,
    ));
    let workers = config.rules.workers;
    let receipts = Arc::new(receipts::Receipts::new(
        config.receipt_configs,
        shared.max_records,
    ));
    let accounts = Arc::new(jwt::Accounts::new(config.service_accounts));
    let vendor = Arc::new(Vendor {
        rules: config.rules,
        receipts: Arc::clone(&receipts),
        accounts: Arc::clone(&accounts),
    });
    let poster = Arc::clone(&receipts);
    let parts = core::serve_with(
        "huawei",
        Arc::clone(&shared),
        vendor,
        configure,
        workers,
        listen,
        move || drop(actix_rt::spawn(receipts::run_poster(poster))),
    )?;
    Ok(EmulatorHandle {
        addr: parts.addr,
        shared,
        receipts,
        accounts,
        server: parts.server,
    })
}

impl EmulatorHandle {
    /// `http://addr`: the send base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full token URL (`PUSHGATE_HUAWEI_AUTH_URL`).
    pub fn auth_url(&self) -> String {
        format!("http://{}/oauth2/v3/token", self.addr)
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

    /// Marks device tokens invalid (unregistered, uninstalled).
    pub fn add_invalid_tokens<I: IntoIterator<Item = S>, S: Into<String>>(&self, tokens: I) {
        let invalid = tokens.into_iter().map(Into::into).collect();
        self.shared
            .set_tokens(Vec::new(), invalid, Vec::new(), None);
    }

    /// Registers device tokens as issued to one app: invalid for every other (a wrong app id).
    pub fn add_tokens_of_app<I: IntoIterator<Item = S>, S: Into<String>>(
        &self,
        app_id: &str,
        tokens: I,
    ) {
        let valid = tokens.into_iter().map(Into::into).collect();
        self.shared
            .set_tokens(valid, Vec::new(), Vec::new(), Some(app_id));
    }

    /// Adds a receipt configuration of AppGallery Connect (replacing the app's one with the
    /// same `receipt_id`).
    pub fn add_receipt_config(&self, config: ReceiptConfig) {
        self.receipts.add_config(config);
    }

    /// Tokens Huawei accepts but later reports with status 2 (app not installed).
    pub fn add_uninstalled_tokens<I: IntoIterator<Item = S>, S: Into<String>>(&self, tokens: I) {
        self.receipts
            .add_uninstalled(tokens.into_iter().map(Into::into).collect());
    }

    /// Statuses posted, lost and failed since start.
    pub fn receipt_stats(&self) -> ReceiptStats {
        self.receipts.queue.stats()
    }

    /// Accepts the JWTs of a service account (replacing one with the same `key_id`).
    pub fn add_service_account(&self, key: ServiceAccountKey) {
        self.accounts.add(key);
    }

    /// Every service-account JWT issued before this second answers 80200005 from now on.
    pub fn expire_jwts_issued_before(&self, unix_secs: u64) {
        self.accounts.expire_before(unix_secs);
    }

    /// Every access token issued so far expires now.
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

/// Runs until SIGTERM or ctrl-c: `pushgate emulator huawei --listen HOST:PORT`.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> io::Result<()> {
    let handle = start(config, listen)?;
    core::shutdown_signal().await?;
    tracing::info!(addr = %handle.addr, "huawei emulator shutting down");
    handle.stop();
    Ok(())
}

#[cfg(test)]
mod tests;
