//! The gateway's operations, shared by every surface (/v1, /v4, WebSocket, console): each one
//! checks its input, changes the registry, and answers once the change is on disk.

mod certificates;
pub mod diagnosis;
mod error;
mod journal;
mod messages;
mod receipts;
mod sessions;
mod status;
mod tokens;
mod upkeep;

pub(crate) use error::{cert_not_found, field_error, id_error, token_error};
pub use error::{ErrorCode, GatewayError};
pub use messages::{SendRequest, Sent};
pub use receipts::{ReceiptRefusal, ReceiptSummary};
pub use sessions::{EventError, EventResult, KickedDevice, SessionAction, SessionEvent};
pub use status::{user_status, DeviceView, UserStatus};

use crate::certs::{CertBook, CertEntry};
use crate::config::Config;
use crate::domain::ids::check_id;
use crate::domain::validate::{validate_certificate, CertificateInput};
use crate::domain::{
    now_millis, now_secs, Certificate, CertificateId, DeviceEvent, Platform, PushText, TokenError,
};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::push::dispatch::{Dispatch, SenderQueue};
use crate::push::outcomes::Outcomes;
use crate::push::sender::SenderCtx;
use crate::push::{DeviceOutcome, Message, Outcome, PushContent, RecipientResult, Senders};
use crate::registry::{ConnId, Device, NoJournal, Registry, RegistryError, Route, SkipReason};
use crate::session::webhook::WebhookSender;
use crate::session::{Hub, SessionCommand};
use crate::store::{StoreError, StoreHandle, StoreOp};
use compact_str::CompactString;
pub(crate) use journal::StoreJournal;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway: every component, shared.
///
/// Only the settings are public; everything else is reached through a named operation, so each
/// component can change behind the gateway without touching its callers.
pub struct Gateway {
    /// The settings, read by every surface.
    pub config: Config,
    /// Every device of every user: the hot path of dispatch.
    registry: Arc<Registry>,
    /// The certificates and their health, shared with the senders.
    certs: Arc<CertBook>,
    /// One `CertSender` per certificate.
    senders: Senders,
    /// The live connections held by this gateway.
    hub: Hub,
    /// Durable state: an operation answers once its change is on disk.
    store: StoreHandle,
    metrics: Metrics,
    /// The last vendor result per device, for diagnosis.
    outcomes: Arc<Outcomes>,
    /// The receipt endpoint's rate limit per certificate.
    receipt_limits: receipts::ReceiptLimits,
    /// Serialises certificate changes so the disk sees them in memory's order.
    cert_lock: tokio::sync::Mutex<()>,
    next_cert_id: AtomicU64,
    /// Called after a certificate is created or edited (the sandbox registers it with the
    /// in-process emulator).
    cert_hook: std::sync::OnceLock<CertHook>,
    /// Ids of accepted messages.
    next_message_id: AtomicU64,
    /// `State.StateChange` callbacks of WebSocket sessions (disabled without a webhook URL).
    webhook: WebhookSender,
    /// Each iOS device's APNs badge count, shared with the APNs service.
    apns_badges: Arc<crate::providers::apns::Badges>,
    /// The shared registry of cluster mode, set once at start; unset (embedded) the operations
    /// use `registry` and nothing else.
    remote: std::sync::OnceLock<Arc<dyn crate::registry::remote::RemoteDirectory>>,
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
        let outcomes = Arc::new(Outcomes::new(registry.clone()));
        let apns_badges = providers.apns_badges();
        let senders = Senders::new(SenderCtx {
            registry: registry.clone(),
            certs: certs.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            outcomes: outcomes.clone(),
            providers,
            config: config.push.clone(),
            drain: Default::default(),
            journal_accepted: config.cluster.mode == crate::config::ClusterMode::Embedded,
        });
        let max_id = certificates.iter().map(|c| c.id + 1).max().unwrap_or(0);
        let certificates = receipts::with_receipt_secrets(certificates, &store);
        // Cluster mode: a certificate sends only while this node holds its lease.
        if config.cluster.mode != crate::config::ClusterMode::Embedded {
            certs.require_leases();
        }
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
            remote: std::sync::OnceLock::new(),
            apns_badges,
            webhook,
            config,
            registry,
            certs,
            senders,
            hub: Hub::default(),
            store,
            metrics,
            outcomes,
            receipt_limits: receipts::ReceiptLimits::default(),
            cert_lock: tokio::sync::Mutex::new(()),
            cert_hook: std::sync::OnceLock::new(),
            next_cert_id: AtomicU64::new(next),
            // Unique across restarts: milliseconds since the epoch, shifted, then counted.
            next_message_id: AtomicU64::new(now_millis() << 12),
        }
    }

    /// Switches the registry operations to a shared directory (cluster mode, at start). Only
    /// the first call counts.
    pub fn attach_remote(&self, remote: Arc<dyn crate::registry::remote::RemoteDirectory>) {
        let _ = self.remote.set(remote);
    }

    /// The shared directory, in cluster mode.
    pub fn remote(&self) -> Option<&Arc<dyn crate::registry::remote::RemoteDirectory>> {
        self.remote.get()
    }

    /// The client of `conn` acked message `id` (cluster mode finishes its inbox entry).
    pub fn acked(&self, conn: ConnId, id: u64) {
        if let Some(r) = self.remote() {
            r.acked(conn, id);
        }
    }

    /// Cluster mode: the certificates' figures of every node together, read now (the console
    /// shows them); nothing to do in embedded mode.
    pub async fn refresh_certificate_figures(&self, entries: &[Arc<crate::certs::CertEntry>]) {
        if let Some(r) = self.remote() {
            r.refresh_certificate_figures(entries).await;
        }
    }

    /// Each iOS device's APNs badge count (cluster mode keeps it in Redis).
    pub(crate) fn apns_badges(&self) -> &Arc<crate::providers::apns::Badges> {
        &self.apns_badges
    }

    /// The process exits after this gateway is dropped: see [`Registry::leak_at_exit`].
    pub fn leak_at_exit(&self) {
        self.registry.leak_at_exit();
    }

    /// The last result per device; cluster mode observes it to finish its queue entries.
    pub(crate) fn outcomes(&self) -> &Arc<Outcomes> {
        &self.outcomes
    }

    /// The live connections held here (the WebSocket surface registers its sessions).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Why the store cannot write, while it cannot (`/readyz` answers 503 meanwhile).
    pub fn store_fault(&self) -> Option<crate::store::StoreFault> {
        self.store.health().fault()
    }

    /// Registers the hook called after a certificate is created or edited, and calls it for
    /// every certificate loaded so far. Only the first registration counts.
    pub fn on_certificate_change(&self, hook: CertHook) {
        for entry in self.certs.all() {
            hook(&entry.cert());
        }
        let _ = self.cert_hook.set(hook);
    }

    /// Checks the registry's internal invariants (tests call it after a run).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.registry.check_invariants()
    }
}
