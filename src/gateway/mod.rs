//! The gateway's operations, shared by every surface (/v1, /v4, WebSocket, console): each one
//! checks its input, changes the registry, and answers once the change is on disk.

mod certificates;
mod error;
mod messages;
mod sessions;
mod status;
mod tokens;
mod upkeep;

pub use error::GatewayError;
pub(crate) use error::{cert_not_found, id_error, token_error};
pub use messages::{SendRequest, MAX_EXT_CHARS, MAX_TEXT_BYTES};
pub use sessions::{EventError, EventResult, KickedDevice, SessionAction, SessionEvent};
pub use status::{user_status, DeviceView};

use crate::certs::{CertBook, CertEntry};
use crate::config::Config;
use crate::domain::ids::check_id;
use crate::domain::validate::{validate_certificate, CertificateInput};
use crate::domain::{
    now_millis, now_secs, Certificate, CertificateId, DeviceEvent, Platform, PushText, TokenError,
};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::push::dispatch::Dispatch;
use crate::push::outcomes::Outcomes;
use crate::push::sender::SenderCtx;
use crate::push::{DeviceOutcome, Message, Outcome, PushContent, RecipientResult, Senders};
use crate::registry::{ConnId, Device, Registry, RegistryError, SkipReason};
use crate::session::webhook::WebhookSender;
use crate::session::{Hub, SessionCommand};
use crate::store::{StoreError, StoreHandle, StoreOp};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway: every component, shared.
pub struct Gateway {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub certs: Arc<CertBook>,
    pub senders: Senders,
    pub hub: Hub,
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub outcomes: Arc<Outcomes>,
    /// Serialises certificate changes so the disk sees them in memory's order.
    cert_lock: tokio::sync::Mutex<()>,
    next_cert_id: AtomicU64,
    /// Called after a certificate is created or edited (the sandbox registers it with the
    /// in-process emulator).
    pub cert_hook: std::sync::OnceLock<CertHook>,
    next_message_id: AtomicU64,
    /// Recent TIM sends, for /v4 duplicate suppression (bounded; shared by every HTTP worker).
    pub tim_dedupe: crate::domain::tim_dedupe::DedupeWindow,
    /// `State.StateChange` callbacks of WebSocket sessions (disabled without a webhook URL).
    pub webhook: WebhookSender,
}

pub type CertHook = Box<dyn Fn(&Certificate) + Send + Sync>;

/// Certificate ids start here, so they look like the console ids operators know.
pub const FIRST_CERTIFICATE_ID: CertificateId = 1001;

impl Gateway {
    /// Builds the gateway around a loaded registry. Must run inside an actix system (the
    /// certificate senders are actors).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        registry: Arc<Registry>,
        certificates: Vec<Certificate>,
        next_cert_id: Option<CertificateId>,
        store: StoreHandle,
        metrics: Metrics,
        providers: Providers,
    ) -> Gateway {
        let certs = Arc::new(CertBook::default());
        let outcomes = Arc::new(Outcomes::default());
        let senders = Senders::new(SenderCtx {
            registry: registry.clone(),
            certs: certs.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            outcomes: outcomes.clone(),
            providers,
            config: config.push.clone(),
        });
        let max_id = certificates.iter().map(|c| c.id + 1).max().unwrap_or(0);
        for c in certificates {
            senders.start(certs.insert(c));
        }
        let next = next_cert_id
            .unwrap_or(FIRST_CERTIFICATE_ID)
            .max(max_id)
            .max(FIRST_CERTIFICATE_ID);
        let webhook = match &config.webhook_url {
            Some(url) if !url.is_empty() => WebhookSender::start(
                url.clone(),
                config.sdkappid,
                config.sessions.webhook_queue,
                Duration::from_millis(config.sessions.webhook_timeout_ms),
            ),
            _ => WebhookSender::disabled(),
        };
        Gateway {
            webhook,
            config,
            registry,
            certs,
            senders,
            hub: Hub::default(),
            store,
            metrics,
            outcomes,
            cert_lock: tokio::sync::Mutex::new(()),
            cert_hook: std::sync::OnceLock::new(),
            next_cert_id: AtomicU64::new(next),
            // Unique across restarts: milliseconds since the epoch, shifted, then counted.
            next_message_id: AtomicU64::new(now_millis() << 12),
            tim_dedupe: Default::default(),
        }
    }
}
