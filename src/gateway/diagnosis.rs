//! "Why did this user get no notification?" — the seed's troubleshooting checklist (常见问题),
//! answered from the gateway's own state: certificate configured and healthy, token reported,
//! device state, and the last notification with the vendor's answer.

use crate::certs::CertHealth;
use crate::domain::receipt::utc_text;
use crate::domain::{now_secs, DeviceState, OfflineReason, UserStatus};
use crate::gateway::Gateway;
use crate::providers::DeliveryClass;
use crate::push::outcomes::{LastNotification, ReceiptsSeen};
use crate::registry::Device;
use serde::Serialize;

/// One line of the checklist. `ok: None` means "does not apply".
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceDiagnosis {
    pub device: String,
    pub platform: &'static str,
    pub state: UserStatus,
    pub background: bool,
    pub token_bound: bool,
    pub certificate_id: Option<u64>,
    pub would_push: bool,
    /// Cluster mode: the node incarnation holding the device's WebSocket (`gw-2#17`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_on: Option<String>,
    pub checks: Vec<Check>,
    pub last_notification: Option<LastNotification>,
    /// What the vendor's delivery receipts said last (when the gateway asks for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptsSeen>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub user: String,
    pub would_push: bool,
    pub summary: String,
    /// The checklist for the device most likely to get a notification.
    pub checks: Vec<Check>,
    pub devices: Vec<DeviceDiagnosis>,
}

fn check(check: &'static str, ok: Option<bool>, detail: impl Into<String>) -> Check {
    Check {
        check,
        ok,
        detail: detail.into(),
    }
}

/// `shared_last`: cluster mode, the device's last notification as its certificate's owner
/// recorded it in Redis (the owner may be another node). `receipts`: what the vendor's receipts
/// said last about the device (in cluster mode as noted in Redis by whichever node they reached).
fn device_diagnosis(
    g: &Gateway,
    user: &str,
    d: &Device,
    node: Option<&str>,
    shared_last: Option<&LastNotification>,
    receipts: Option<ReceiptsSeen>,
) -> DeviceDiagnosis {
    let now = now_secs();
    let state = d.state().effective(now, g.registry.retention());
    let mut checks = Vec::new();
    let cert = d.token.as_ref().and_then(|_| g.certs.get(d.cert));
    // 1. certificate configured
    match (&d.token, &cert) {
        (None, _) => checks.push(check(
            "certificate_configured",
            None,
            "no token reported, so no certificate chosen yet",
        )),
        (Some(_), None) => checks.push(check(
            "certificate_configured",
            Some(false),
            format!(
                "the token was reported for certificate {}, which does not exist (deleted?)",
                d.cert
            ),
        )),
        (Some(_), Some(e)) => {
            let c = e.cert();
            // `Vendor`'s Debug is its name (`Oppo`): no per-vendor match to keep here.
            let vendor = format!("{:?}", c.vendor()).to_lowercase();
            checks.push(check(
                "certificate_configured",
                Some(true),
                format!("certificate {} ({vendor}, {})", c.id, c.package_name),
            ))
        }
    }
    // 2. certificate healthy
    match &cert {
        None => checks.push(check(
            "certificate_healthy",
            None,
            "no certificate to check",
        )),
        Some(e) => {
            let st = e.status(now);
            let ok = st.state == CertHealth::Healthy;
            let detail = match st.state {
                CertHealth::Healthy => "the vendor accepts this certificate".to_string(),
                CertHealth::Broken => format!(
                    "broken: {}; fix the AppSecret or package name in the console",
                    st.reason.unwrap_or_default()
                ),
                CertHealth::QuotaPaused => format!(
                    "paused until {} (unix) — the vendor's daily quota is used up",
                    st.paused_until.unwrap_or(0)
                ),
            };
            checks.push(check("certificate_healthy", Some(ok), detail));
        }
    }
    // 3. token reported
    checks.push(match &d.token {
        Some(t) => check(
            "token_reported",
            Some(true),
            format!("token {} reported after login", crate::domain::token::redact(t)),
        ),
        None => match receipts.as_ref().and_then(|r| r.invalid_token_at) {
            Some(at) => check(
                "token_reported",
                Some(false),
                format!(
                    "the vendor says this token is no longer valid (receipt at {}): it was unbound; the app must report a new one after its next login",
                    utc_text(at)
                ),
            ),
            None => check(
                "token_reported",
                Some(false),
                "no push token was reported for this device after login (the app must call setOfflinePushConfig / set_push_token)",
            ),
        },
    });
    // 4. device state
    let (state_ok, state_detail) = match state {
        DeviceState::PushOnline { since } => (
            true,
            format!("PushOnline since {since} (unix): the app was killed or lost its connection without logging out"),
        ),
        DeviceState::Online { background: true } => (
            true,
            "Online in the background: gets the message live and as a notification".to_string(),
        ),
        DeviceState::Online { background: false } => (
            false,
            "Online in the foreground: messages go over the live connection, no notification is needed".to_string(),
        ),
        DeviceState::Offline { reason } => (
            false,
            match reason {
                OfflineReason::LoggedOut => "Offline: logged out (or never logged in); logged-out devices get no notifications",
                OfflineReason::Kicked => "Offline: kicked by a newer login on another device; kicked devices get no notifications",
                OfflineReason::Expired => "Offline: PushOnline for longer than the retention (7 days by default) without a login",
                OfflineReason::Disconnected => "Offline: a desktop or web client disconnected (only mobile devices get notifications)",
            }
            .to_string(),
        ),
    };
    let state_detail = match (node, state) {
        (Some(n), DeviceState::Online { .. }) => {
            format!("{state_detail}; its WebSocket is connected to node {n}")
        }
        _ => state_detail,
    };
    checks.push(check("device_state", Some(state_ok), state_detail));
    // 5. last notification
    // The details while kept; afterwards how it ended and when, from the device's record.
    // In cluster mode this node's own record may be older than the owner's (the certificate
    // moved): the later one counts.
    let local = g.outcomes.get(user, &d.id);
    let last = match (local, shared_last) {
        (Some(l), Some(s)) if s.at > l.at => Some(s.clone()),
        (Some(l), _) => Some(l),
        (None, Some(s)) => Some(s.clone()),
        (None, None) => LastNotification::from_device(d),
    };
    checks.push(match &last {
        None => check(
            "last_notification",
            None,
            "no notification sent to this device since the gateway started",
        ),
        Some(n) => {
            let mut detail = match last_receipt_sentence(g, n, receipts.as_ref()) {
                Some(sentence) => sentence,
                None => format!("{}: {}", n.class, n.detail),
            };
            if let Some(t) = &n.trace_id {
                detail.push_str(&format!(" (trace_id {t})"));
            }
            check(
                "last_notification",
                Some(n.class == DeliveryClass::Delivered),
                detail,
            )
        }
    });
    let would_push = state.push_eligible()
        && d.token.is_some()
        && cert
            .as_ref()
            .map(|e| e.status(now).state == CertHealth::Healthy)
            .unwrap_or(false);
    DeviceDiagnosis {
        device: d.id.to_string(),
        platform: d.platform.as_str(),
        state: state.status(),
        background: matches!(state, DeviceState::Online { background: true }),
        token_bound: d.token.is_some(),
        certificate_id: d.token.as_ref().map(|_| d.cert),
        would_push,
        connected_on: node.map(str::to_string),
        checks,
        last_notification: last,
        receipts,
    }
}

/// What the receipts say about the last notification the vendor accepted: "delivered to the
/// phone at …", or "sent, not confirmed" while no receipt came (a lost or late receipt is
/// never a failure). `None` when the notification failed or receipts are not asked for.
fn last_receipt_sentence(
    g: &Gateway,
    n: &LastNotification,
    receipts: Option<&ReceiptsSeen>,
) -> Option<String> {
    if n.class != DeliveryClass::Delivered {
        return None;
    }
    let same = receipts.filter(|r| r.msg_id.is_some() && r.msg_id == n.msg_id);
    match same.map(|r| (r.delivered_at, r.clicked_at)) {
        Some((Some(at), clicked)) | Some((clicked @ None, Some(at))) => {
            let mut s = format!("delivered to the phone at {}", utc_text(at));
            if let Some(c) = clicked.filter(|c| *c != at) {
                s.push_str(&format!(", opened at {}", utc_text(c)));
            }
            Some(s)
        }
        _ if g
            .certs
            .get(n.certificate_id)
            .is_some_and(|e| g.asks_for_receipts(&e.cert())) =>
        {
            Some(format!(
                "sent, not confirmed: {} at {}; no delivery receipt has come yet",
                n.detail,
                utc_text(n.at)
            ))
        }
        _ => None,
    }
}

impl Gateway {
    /// The diagnosis of one user.
    pub fn diagnose(&self, user: &str) -> Diagnosis {
        let devices: Vec<DeviceDiagnosis> = self
            .registry
            .devices(user)
            .iter()
            .map(|d| {
                let receipts = self.outcomes.receipts(user, &d.id);
                device_diagnosis(self, user, d, None, None, receipts)
            })
            .collect();
        diagnose(user, devices)
    }

    /// `diagnose`, from the shared directory in cluster mode (with the node each connected
    /// device is on).
    pub async fn diagnose_any(
        &self,
        user: &str,
    ) -> Result<Diagnosis, crate::gateway::GatewayError> {
        let Some(remote) = self.remote() else {
            return Ok(self.diagnose(user));
        };
        let (records, last, mut receipts) = futures_util::join!(
            remote.user_records(user),
            remote.last_notifications(user),
            remote.device_receipts(user)
        );
        let devices = records?
            .iter()
            .map(|(d, node)| {
                let seen = receipts.remove(&*d.id);
                device_diagnosis(self, user, d, node.as_deref(), last.get(&*d.id), seen)
            })
            .collect();
        Ok(diagnose(user, devices))
    }
}

fn diagnose(user: &str, devices: Vec<DeviceDiagnosis>) -> Diagnosis {
    if devices.is_empty() {
        return Diagnosis {
            user: user.to_string(),
            would_push: false,
            summary: format!("'{user}' has never logged in on this gateway: no device, no token, nothing to push to"),
            checks: vec![
                check("certificate_configured", None, "no device, so no certificate chosen"),
                check("certificate_healthy", None, "no certificate to check"),
                check("token_reported", Some(false), "no device of this user ever reported a push token"),
                check("device_state", Some(false), "Offline: never logged in"),
                check("last_notification", None, "no notification was ever sent"),
            ],
            devices,
        };
    }
    // The device the user is most likely to see a notification on: the one passing most checks.
    let best = devices
        .iter()
        .max_by_key(|d| {
            (
                d.would_push,
                d.checks.iter().filter(|c| c.ok == Some(true)).count(),
            )
        })
        .cloned();
    let would_push = devices.iter().any(|d| d.would_push);
    let summary = match (&best, would_push) {
        (Some(b), true) => format!(
            "a notification would reach device '{}' ({}) now",
            b.device, b.platform
        ),
        (Some(b), false) => {
            let failing: Vec<&str> = b
                .checks
                .iter()
                .filter(|c| c.ok == Some(false) && c.check != "last_notification")
                .map(|c| c.check)
                .collect();
            format!(
                "no device would get a notification now; on '{}' these fail: {}",
                b.device,
                if failing.is_empty() {
                    "none".to_string()
                } else {
                    failing.join(", ")
                }
            )
        }
        (None, _) => String::new(),
    };
    Diagnosis {
        user: user.to_string(),
        would_push,
        summary,
        checks: best.map(|b| b.checks).unwrap_or_default(),
        devices,
    }
}
