//! The gateway's operations, shared by every surface (/v1, /v4, WebSocket, console): each one
//! checks its input, changes the registry, and answers once the change is on disk.

use crate::certs::{CertBook, CertEntry};
use crate::config::Config;
use crate::domain::ids::check_id;
use crate::domain::validate::{validate_certificate, CertificateInput};
use crate::domain::{
    now_millis, now_secs, Certificate, CertificateId, DeviceEvent, Platform, PushText, TokenError,
};
use crate::metrics::Metrics;
use crate::push::dispatch::Dispatch;
use crate::push::outcomes::Outcomes;
use crate::push::sender::SenderCtx;
use crate::push::{DeviceOutcome, Message, Outcome, PushContent, RecipientResult, Senders};
use crate::registry::{ConnId, Device, Registry, RegistryError, SkipReason};
use crate::session::webhook::WebhookSender;
use crate::session::{Hub, SessionCommand};
use crate::store::{StoreError, StoreHandle, StoreOp};
use crate::vendor::xiaomi::XiaomiClient;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A refused or failed operation, with what the caller should see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// 400: the input is wrong; `field` names the culprit when there is one.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
        tim_code: Option<u32>,
    },
    /// 404
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the state does not allow it (token before login).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        tim_code: Option<u32>,
    },
    /// 503 with Retry-After: a bounded queue is full.
    #[error("{message}")]
    Busy { message: String },
    /// 500: the store failed.
    #[error("{message}")]
    Internal { message: String },
}

impl GatewayError {
    pub fn invalid(
        code: &'static str,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        GatewayError::Invalid {
            code,
            field,
            message: message.into(),
            tim_code: None,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Invalid { code, .. }
            | GatewayError::NotFound { code, .. }
            | GatewayError::Conflict { code, .. } => code,
            GatewayError::Busy { .. } => "busy",
            GatewayError::Internal { .. } => "internal",
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => GatewayError::Busy {
                message: "the store's write queue is full; retry shortly".into(),
            },
            other => GatewayError::Internal {
                message: format!("the change could not be made durable: {other}"),
            },
        }
    }
}

impl From<Arc<StoreError>> for GatewayError {
    fn from(e: Arc<StoreError>) -> Self {
        GatewayError::Internal {
            message: format!("the change could not be made durable: {e}"),
        }
    }
}

impl From<RegistryError> for GatewayError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::UnknownDevice { .. } => GatewayError::NotFound {
                code: "unknown_device",
                message,
            },
            RegistryError::PlatformMismatch { .. } => {
                GatewayError::invalid("platform_mismatch", Some("platform"), message)
            }
            RegistryError::Transition(t) => GatewayError::Conflict {
                code: match t {
                    crate::domain::TransitionError::NotLoggedIn => "not_logged_in",
                    crate::domain::TransitionError::NotConnected => "not_connected",
                    crate::domain::TransitionError::NotExpired => "not_expired",
                },
                message,
                tim_code: None,
            },
            RegistryError::Token(t) => token_error(t),
            RegistryError::StaleConnection => GatewayError::Conflict {
                code: "stale_connection",
                message,
                tim_code: None,
            },
        }
    }
}

fn token_error(t: TokenError) -> GatewayError {
    let message = t.to_string();
    match t {
        TokenError::NotLoggedIn => GatewayError::Conflict {
            code: t.code(),
            message,
            tim_code: Some(t.tim_code()),
        },
        _ => GatewayError::Invalid {
            code: t.code(),
            field: Some(if matches!(t, TokenError::UnknownCertificate(_)) {
                "certificate_id"
            } else {
                "token"
            }),
            message,
            tim_code: Some(t.tim_code()),
        },
    }
}

fn id_error(e: crate::domain::ids::IdError) -> GatewayError {
    GatewayError::invalid("invalid_field", Some(e.field), e.to_string())
}

/// A session event as the IM cluster reports it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEvent {
    pub user: String,
    pub platform: Platform,
    pub device: String,
    pub action: SessionAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    Login,
    Logout,
    Disconnect,
    Kicked,
    Background,
    Foreground,
}

/// The answer to one session event.
#[derive(Debug, Clone, Serialize)]
pub struct EventResult {
    pub user: String,
    pub device: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kicked: Vec<KickedDevice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KickedDevice {
    pub device: String,
    pub platform: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventError {
    pub code: &'static str,
    pub message: String,
}

/// A message to send, in the gateway's own terms (the /v1 body; /v4 translates into it).
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    pub to: Vec<String>,
    pub from: String,
    pub text: String,
    pub title: Option<String>,
    pub desc: Option<String>,
    pub ext: Option<String>,
    pub channel_id: Option<String>,
    /// 1 = no vendor notification (TIM `PushFlag`).
    pub push_disabled: bool,
    /// Deliver only to live connections (TIM `MsgLifeTime=0`).
    pub online_only: bool,
    /// Replacement key of the notification in the tray; the sender's id by default.
    pub conversation: Option<String>,
    /// The push text could not be built (e.g. a custom element without Desc).
    pub nothing_to_show: bool,
    /// Report each device's outcome in the results.
    pub detail: bool,
}

/// Limits on a message's fields.
pub const MAX_TEXT_BYTES: usize = 12 * 1024;
pub const MAX_EXT_CHARS: usize = 1024;

/// One device as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub device: String,
    pub platform: &'static str,
    pub state: &'static str,
    pub background: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_reason: Option<crate::domain::OfflineReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_online_since: Option<u64>,
    pub connected_here: bool,
    pub token_bound: bool,
    /// The token shortened (first and last four characters), never in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<CertificateId>,
}

/// A user's aggregate state (TIM §5.1): `Online` if any device is, else `PushOnline` if any
/// device is, else `Offline`.
pub fn user_status(devices: &[DeviceView]) -> &'static str {
    if devices.iter().any(|d| d.state == "Online") {
        "Online"
    } else if devices.iter().any(|d| d.state == "PushOnline") {
        "PushOnline"
    } else {
        "Offline"
    }
}

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
        client: XiaomiClient,
    ) -> Gateway {
        let certs = Arc::new(CertBook::default());
        let outcomes = Arc::new(Outcomes::default());
        let senders = Senders::new(SenderCtx {
            registry: registry.clone(),
            certs: certs.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
            outcomes: outcomes.clone(),
            client,
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

    // ---- certificates -------------------------------------------------------------------

    pub async fn create_certificate(
        &self,
        input: CertificateInput,
    ) -> Result<Arc<CertEntry>, GatewayError> {
        validate_certificate(&input, true)
            .map_err(|e| GatewayError::invalid("invalid_field", Some(e.field), e.to_string()))?;
        let _g = self.cert_lock.lock().await;
        let id = self.next_cert_id.load(Ordering::Relaxed);
        let cert = Certificate {
            id,
            vendor: input.vendor,
            package_name: input.package_name,
            app_id: input.app_id,
            app_secret: input.app_secret.unwrap_or_default(),
            click_action: input.click_action,
            channel_id: input.channel_id,
            qps: input.qps,
        };
        self.store
            .commit(vec![
                StoreOp::PutCertificate(Box::new(cert.clone())),
                StoreOp::NextCertificateId(id + 1),
            ])
            .await?;
        self.next_cert_id.store(id + 1, Ordering::Relaxed);
        if let Some(h) = self.cert_hook.get() {
            h(&cert);
        }
        let entry = self.certs.insert(cert);
        self.senders.start(entry.clone());
        tracing::info!(certificate = id, "certificate created");
        Ok(entry)
    }

    pub async fn update_certificate(
        &self,
        id: CertificateId,
        input: CertificateInput,
    ) -> Result<Arc<CertEntry>, GatewayError> {
        validate_certificate(&input, false)
            .map_err(|e| GatewayError::invalid("invalid_field", Some(e.field), e.to_string()))?;
        let _g = self.cert_lock.lock().await;
        let entry = self.certs.get(id).ok_or_else(|| cert_not_found(id))?;
        let old = entry.cert();
        let cert = Certificate {
            id,
            vendor: input.vendor,
            package_name: input.package_name,
            app_id: input.app_id,
            app_secret: input.app_secret.unwrap_or_else(|| old.app_secret.clone()),
            click_action: input.click_action,
            channel_id: input.channel_id,
            qps: input.qps,
        };
        self.store
            .commit(vec![StoreOp::PutCertificate(Box::new(cert.clone()))])
            .await?;
        if let Some(h) = self.cert_hook.get() {
            h(&cert);
        }
        entry.replace(cert);
        tracing::info!(certificate = id, "certificate updated");
        Ok(entry)
    }

    pub async fn delete_certificate(&self, id: CertificateId) -> Result<(), GatewayError> {
        let _g = self.cert_lock.lock().await;
        if !self.certs.contains(id) {
            return Err(cert_not_found(id));
        }
        self.store
            .commit(vec![StoreOp::DeleteCertificate(id)])
            .await?;
        self.certs.remove(id);
        self.senders.stop(id);
        tracing::info!(certificate = id, "certificate deleted");
        Ok(())
    }

    pub fn certificate(&self, id: CertificateId) -> Result<Arc<CertEntry>, GatewayError> {
        self.certs.get(id).ok_or_else(|| cert_not_found(id))
    }

    // ---- sessions -----------------------------------------------------------------------

    /// Applies session events in order; each has its own result. Durable changes are on disk
    /// before this returns.
    pub async fn session_events(&self, events: Vec<SessionEvent>) -> Vec<EventResult> {
        let mut results = Vec::with_capacity(events.len());
        let mut tickets = Vec::new();
        for ev in events {
            let (res, ticket) = self.session_event(&ev, None);
            let i = results.len();
            results.push(match res {
                Ok(r) => r,
                Err(e) => EventResult {
                    user: ev.user.clone(),
                    device: ev.device.clone(),
                    ok: false,
                    state: None,
                    kicked: vec![],
                    error: Some(EventError {
                        code: e.code(),
                        message: e.to_string(),
                    }),
                },
            });
            if let Some(t) = ticket {
                tickets.push((i, t));
            }
        }
        for (i, t) in tickets {
            if let Err(e) = t.wait().await {
                let e = GatewayError::from(e);
                results[i].ok = false;
                results[i].error = Some(EventError {
                    code: e.code(),
                    message: e.to_string(),
                });
            }
        }
        results
    }

    /// One event. `conn` is the live connection on this gateway the event comes from (a
    /// WebSocket session), if any. Returns the result and the ticket of its durable write.
    pub fn session_event(
        &self,
        ev: &SessionEvent,
        conn: Option<ConnId>,
    ) -> (
        Result<EventResult, GatewayError>,
        Option<crate::store::CommitTicket>,
    ) {
        if let Err(e) = check_id("user", &ev.user).and_then(|_| check_id("device", &ev.device)) {
            return (Err(id_error(e)), None);
        }
        let durable = !matches!(
            ev.action,
            SessionAction::Background | SessionAction::Foreground
        );
        let permit = if durable {
            match self.store.reserve() {
                Ok(p) => Some(p),
                Err(e) => return (Err(e.into()), None),
            }
        } else {
            None
        };
        // A logout or kick reported by the IM cluster also closes our own live connection of
        // that device, if it has one (the registry forgets the connection on the change).
        let live_conn = if conn.is_none()
            && matches!(ev.action, SessionAction::Logout | SessionAction::Kicked)
        {
            self.registry
                .devices(&ev.user)
                .iter()
                .find(|d| d.id == ev.device)
                .map(|d| d.conn)
                .filter(|c| *c != 0)
        } else {
            None
        };
        let now = now_secs();
        let put = |user: &str, device: &str, record| StoreOp::PutDevice {
            user: user.to_string(),
            device: device.to_string(),
            record,
        };
        let outcome = match ev.action {
            SessionAction::Login => self
                .registry
                .login(&ev.user, ev.platform, &ev.device, conn, now)
                .map(|out| {
                    let mut ops = vec![put(&ev.user, &ev.device, out.record.clone())];
                    let mut kicked = Vec::new();
                    for k in &out.kicked {
                        ops.push(put(&ev.user, &k.device, k.record.clone()));
                        if let Some(c) = k.conn {
                            let _ = self.hub.send(
                                c,
                                SessionCommand::Kick {
                                    reason: format!(
                                        "a newer login on {} took over this account",
                                        ev.platform
                                    ),
                                },
                            );
                        }
                        kicked.push(KickedDevice {
                            device: k.device.to_string(),
                            platform: k.platform.as_str(),
                        });
                    }
                    if let Some(c) = out.replaced_conn {
                        if Some(c) != conn {
                            let _ = self.hub.send(
                                c,
                                SessionCommand::Kick {
                                    reason: "a newer connection of this device took over".into(),
                                },
                            );
                        }
                    }
                    (ops, "Online", kicked)
                }),
            other => {
                let event = match other {
                    SessionAction::Logout => DeviceEvent::Logout,
                    SessionAction::Disconnect => DeviceEvent::Disconnect,
                    SessionAction::Kicked => DeviceEvent::Kicked,
                    SessionAction::Background => DeviceEvent::Background,
                    SessionAction::Foreground => DeviceEvent::Foreground,
                    SessionAction::Login => DeviceEvent::Login,
                };
                self.registry
                    .apply(&ev.user, &ev.device, event, conn, now)
                    .map(|(new, rec)| {
                        (vec![put(&ev.user, &ev.device, rec)], new.tim_name(), vec![])
                    })
            }
        };
        match outcome {
            Ok((ops, state, kicked)) => {
                if let Some(c) = live_conn {
                    let _ = self.hub.send(
                        c,
                        SessionCommand::Kick {
                            reason: "the session was ended by the server".into(),
                        },
                    );
                }
                let ticket = permit.map(|p| p.send(ops));
                (
                    Ok(EventResult {
                        user: ev.user.clone(),
                        device: ev.device.clone(),
                        ok: true,
                        state: Some(state),
                        kicked,
                        error: None,
                    }),
                    ticket,
                )
            }
            Err(e) => (Err(e.into()), None),
        }
    }

    /// Kicks every device of a user (TIM `im_open_login_svc/kick`): no more pushes, live
    /// connections get `kicked`.
    pub async fn kick_user(&self, user: &str) -> Result<usize, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        let devices = self.registry.devices(user);
        let mut tickets = Vec::new();
        let mut n = 0;
        for d in devices.iter().filter(|d| d.state().is_logged_in()) {
            let permit = self.store.reserve()?;
            let conn = d.conn;
            match self
                .registry
                .apply(user, &d.id, DeviceEvent::Kicked, None, now_secs())
            {
                Ok((_, rec)) => {
                    n += 1;
                    if conn != 0 {
                        let _ = self.hub.send(
                            conn,
                            SessionCommand::Kick {
                                reason: "kicked by the server".into(),
                            },
                        );
                    }
                    tickets.push(permit.send(vec![StoreOp::PutDevice {
                        user: user.to_string(),
                        device: d.id.to_string(),
                        record: rec,
                    }]));
                }
                Err(e) => tracing::debug!(error = %e, "kick skipped a device"),
            }
        }
        for t in tickets {
            t.wait().await?;
        }
        Ok(n)
    }

    // ---- push tokens --------------------------------------------------------------------

    /// Binds a vendor token to a logged-in device (TIM rules and codes).
    pub async fn report_token(
        &self,
        user: &str,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<DeviceView, GatewayError> {
        let ticket = self.report_token_now(user, device, certificate_id, token)?;
        ticket.wait().await?;
        self.device_view(user, device)
    }

    /// The synchronous part of a token report (the WebSocket session awaits the ticket itself).
    pub fn report_token_now(
        &self,
        user: &str,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<crate::store::CommitTicket, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        check_id("device", device).map_err(id_error)?;
        crate::domain::token::check_token_shape(token).map_err(token_error)?;
        if !self.certs.contains(certificate_id) {
            return Err(token_error(TokenError::UnknownCertificate(certificate_id)));
        }
        let permit = self.store.reserve()?;
        let out = self
            .registry
            .set_token(user, device, certificate_id, token)?;
        let mut ops = vec![StoreOp::PutDevice {
            user: user.to_string(),
            device: device.to_string(),
            record: out.record,
        }];
        if let Some((u, d, rec)) = out.moved_from {
            ops.push(StoreOp::PutDevice {
                user: u.to_string(),
                device: d.to_string(),
                record: rec,
            });
        }
        Ok(permit.send(ops))
    }

    /// Unbinds a device's token (the client disabled offline push).
    pub async fn clear_token(&self, user: &str, device: &str) -> Result<DeviceView, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        check_id("device", device).map_err(id_error)?;
        let permit = self.store.reserve()?;
        let Some(rec) = self.registry.clear_token(user, device) else {
            drop(permit);
            return self.device_view(user, device);
        };
        permit
            .send(vec![StoreOp::PutDevice {
                user: user.to_string(),
                device: device.to_string(),
                record: rec,
            }])
            .wait()
            .await?;
        self.device_view(user, device)
    }

    // ---- messages -----------------------------------------------------------------------

    /// Checks a send request; the error names the field.
    pub fn check_send(&self, req: &SendRequest) -> Result<(), GatewayError> {
        if req.to.is_empty() {
            return Err(GatewayError::invalid(
                "invalid_field",
                Some("to"),
                "to: at least one recipient is required",
            ));
        }
        let max = self.config.http.max_recipients;
        if req.to.len() > max {
            return Err(GatewayError::invalid(
                "too_many_recipients",
                Some("to"),
                format!("to: {} recipients; at most {max} per request", req.to.len()),
            ));
        }
        for u in &req.to {
            check_id("to", u).map_err(id_error)?;
        }
        check_id("from", &req.from).map_err(id_error)?;
        if req.text.len() > MAX_TEXT_BYTES {
            return Err(GatewayError::invalid(
                "invalid_field",
                Some("text"),
                format!("text is {} bytes; at most {MAX_TEXT_BYTES}", req.text.len()),
            ));
        }
        for (field, v, max) in [
            ("offline_push.title", &req.title, 256usize),
            ("offline_push.desc", &req.desc, 1024),
            ("offline_push.ext", &req.ext, MAX_EXT_CHARS),
            ("offline_push.channel_id", &req.channel_id, 64),
        ] {
            if let Some(v) = v {
                if v.chars().count() > max {
                    return Err(GatewayError::invalid(
                        "invalid_field",
                        Some(field),
                        format!("{field} is longer than {max} characters"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Builds the shared message (id, notification text) once.
    pub fn build_message(&self, req: &SendRequest) -> Arc<Message> {
        let push = if req.push_disabled {
            Err(SkipReason::PushDisabled)
        } else if req.online_only {
            Err(SkipReason::OnlineOnly)
        } else if req.nothing_to_show {
            Err(SkipReason::NothingToShow)
        } else {
            match PushText::new(req.title.as_deref(), req.desc.as_deref(), Some(&req.text)) {
                Some(t) => Ok(PushContent {
                    title: t.title,
                    desc: t.desc,
                    ext: req.ext.clone(),
                    channel_id: req.channel_id.clone(),
                    conversation: req
                        .conversation
                        .clone()
                        .unwrap_or_else(|| format!("c2c:{}", req.from)),
                }),
                None => Err(SkipReason::NothingToShow),
            }
        };
        Arc::new(Message {
            id: self.next_message_id.fetch_add(1, Ordering::Relaxed),
            from: req.from.clone(),
            text: req.text.clone(),
            title: req.title.clone(),
            desc: req.desc.clone(),
            ext: req.ext.clone(),
            push,
            accepted_at: Instant::now(),
        })
    }

    /// Routes a message to each recipient.
    pub fn send(&self, req: &SendRequest) -> Result<(u64, Vec<RecipientResult>), GatewayError> {
        self.check_send(req)?;
        let msg = self.build_message(req);
        let mut d = self.dispatch();
        d.detail = req.detail;
        let results = req.to.iter().map(|u| d.recipient(u, &msg)).collect();
        Ok((msg.id, results))
    }

    pub fn dispatch(&self) -> Dispatch<'_> {
        Dispatch {
            registry: &self.registry,
            certs: &self.certs,
            hub: &self.hub,
            metrics: &self.metrics,
            batch: std::cell::RefCell::new(self.senders.batch()),
            detail: false,
        }
    }

    /// Hands a message that a live connection did not ack to the push path of that device
    /// (the connection is gone; the device is `PushOnline` or `Offline` by now).
    pub fn push_fallback(&self, user: &str, device: &str, msg: &Arc<Message>) -> DeviceOutcome {
        let d = self.dispatch();
        let now = now_secs();
        let mut out = None;
        self.registry.route_with(user, now, |dev, route| {
            if dev.id == device {
                out = Some(d.fallback(user, dev, route, msg, now));
            }
        });
        out.unwrap_or_else(|| {
            self.metrics.skip(SkipReason::UnknownUser);
            DeviceOutcome {
                device: CompactString::from(device),
                platform: Platform::Android.as_str(),
                outcome: Outcome::Skipped,
                also_pushed: false,
                reason: Some(SkipReason::UnknownUser.as_str()),
            }
        })
    }

    // ---- status and diagnosis -----------------------------------------------------------

    pub fn view(&self, d: &Device) -> DeviceView {
        let state = d.state().effective(now_secs(), self.registry.retention());
        DeviceView {
            device: d.id.to_string(),
            platform: d.platform.as_str(),
            state: state.tim_name(),
            background: matches!(
                state,
                crate::domain::DeviceState::Online { background: true }
            ),
            offline_reason: match state {
                crate::domain::DeviceState::Offline { reason } => Some(reason),
                _ => None,
            },
            push_online_since: match state {
                crate::domain::DeviceState::PushOnline { since } => Some(since),
                _ => None,
            },
            connected_here: d.conn != 0,
            token_bound: d.token.is_some(),
            token_hint: d.token.as_deref().map(crate::domain::token::redact),
            certificate_id: d.token.as_ref().map(|_| d.cert),
        }
    }

    pub fn device_view(&self, user: &str, device: &str) -> Result<DeviceView, GatewayError> {
        self.registry
            .devices(user)
            .iter()
            .find(|d| d.id == device)
            .map(|d| self.view(d))
            .ok_or_else(|| GatewayError::NotFound {
                code: "unknown_device",
                message: format!("unknown device '{device}' of user '{user}'"),
            })
    }

    pub fn user_devices(&self, user: &str) -> Vec<DeviceView> {
        self.registry
            .devices(user)
            .iter()
            .map(|d| self.view(d))
            .collect()
    }

    /// Moves expired `PushOnline` devices to `Offline` and persists them.
    pub async fn sweep(&self) {
        let changed = self.registry.sweep_expired(now_secs());
        if changed.is_empty() {
            return;
        }
        let ops = changed
            .into_iter()
            .map(|(u, d, record)| StoreOp::PutDevice {
                user: u.to_string(),
                device: d.to_string(),
                record,
            })
            .collect();
        if let Err(e) = self.store.commit(ops).await {
            tracing::error!(error = %e, "persisting expired devices failed");
        }
    }

    /// Publishes registry sizes and certificate states into the metrics (called at scrape).
    pub fn refresh_gauges(&self) {
        let c = self.registry.counts();
        let m = &self.metrics;
        m.devices
            .with_label_values(&["online"])
            .set(c.online.load(Ordering::Relaxed));
        m.devices
            .with_label_values(&["background"])
            .set(c.background.load(Ordering::Relaxed));
        m.devices
            .with_label_values(&["push_online"])
            .set(c.push_online.load(Ordering::Relaxed));
        m.devices
            .with_label_values(&["offline"])
            .set(c.offline.load(Ordering::Relaxed));
        m.tokens_bound.set(c.tokens.load(Ordering::Relaxed));
        m.users.set(self.registry.user_count() as i64);
        m.ws_connections.set(self.hub.len() as i64);
        let now = now_secs();
        let (mut healthy, mut broken, mut paused) = (0, 0, 0);
        for e in self.certs.all() {
            match e.status(now).state {
                "broken" => broken += 1,
                "quota_paused" => paused += 1,
                _ => healthy += 1,
            }
        }
        m.certificates.with_label_values(&["healthy"]).set(healthy);
        m.certificates.with_label_values(&["broken"]).set(broken);
        m.certificates
            .with_label_values(&["quota_paused"])
            .set(paused);
    }

    /// Graceful shutdown after the listener stopped: senders stop, the store writer commits
    /// what is queued and stops.
    pub async fn shutdown(&self) {
        self.senders.shutdown();
        self.store.shutdown().await;
    }

    /// Starts the periodic retention sweep.
    pub fn start_sweeper(self: &Arc<Self>) {
        let g = Arc::downgrade(self);
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match g.upgrade() {
                    Some(g) => g.sweep().await,
                    None => break,
                }
            }
        });
    }
}

fn cert_not_found(id: CertificateId) -> GatewayError {
    GatewayError::NotFound {
        code: "unknown_certificate",
        message: format!("no certificate with id {id}"),
    }
}
