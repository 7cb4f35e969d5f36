//! The msgpack forms kept in Redis: device records (with their location), inbox entries and
//! last outcomes.
//! Named fields (`to_vec_named`), so a field added later reads as its default on old records.

use crate::domain::message::{Message, PushContent};
use crate::domain::{CertificateId, DeviceState, OfflineReason, Platform};
use crate::providers::DeliveryClass;
use crate::push::outcomes::LastNotification;
use crate::registry::{ConnId, Device, SkipReason};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One device in `pg:{u:<user>}` as field `d:<device>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDevice {
    pub platform: Platform,
    /// `Online`, `PushOnline` or `Offline`.
    pub state: String,
    #[serde(default)]
    pub background: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_reason: Option<OfflineReason>,
    /// For `PushOnline`: since when (unix seconds).
    #[serde(default)]
    pub since: u64,
    /// The bound token and its certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tok: Option<(CertificateId, String)>,
    /// The node incarnation holding the connection (`gw-b#17`); absent when the IM cluster holds
    /// it or there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// ConnId on that node; 0 when none.
    #[serde(default)]
    pub conn: ConnId,
    /// Incremented by every login: the reaper and a re-asserting node only touch the login they
    /// saw.
    #[serde(default)]
    pub gen: u64,
}

impl StoredDevice {
    pub fn new(platform: Platform) -> StoredDevice {
        let mut d = StoredDevice {
            platform,
            state: String::new(),
            background: false,
            offline_reason: None,
            since: 0,
            tok: None,
            node: None,
            conn: 0,
            gen: 0,
        };
        d.set_state(DeviceState::NEVER_LOGGED_IN);
        d
    }

    pub fn state(&self) -> DeviceState {
        match self.state.as_str() {
            "Online" => DeviceState::Online {
                background: self.background,
            },
            "PushOnline" => DeviceState::PushOnline { since: self.since },
            _ => DeviceState::Offline {
                reason: self.offline_reason.unwrap_or(OfflineReason::LoggedOut),
            },
        }
    }

    pub fn set_state(&mut self, s: DeviceState) {
        self.state = s.tim_name().to_string();
        self.background = matches!(s, DeviceState::Online { background: true });
        self.offline_reason = match s {
            DeviceState::Offline { reason } => Some(reason),
            _ => None,
        };
        self.since = match s {
            DeviceState::PushOnline { since } => since,
            _ => 0,
        };
        if !s.is_connected() {
            self.node = None;
            self.conn = 0;
        }
    }

    /// The token string, if bound.
    pub fn token(&self) -> Option<&str> {
        self.tok.as_ref().map(|(_, t)| t.as_str())
    }

    /// Whether this record's connection is (node, conn).
    pub fn is_at(&self, node: &str, conn: ConnId) -> bool {
        self.node.as_deref() == Some(node) && self.conn == conn
    }

    /// The embedded registry's `Device` for the same record, so routing runs the one
    /// `Device::route` both modes share. `conn` is kept only when the connection is on `here`.
    pub fn to_device(&self, id: &str, here: Option<&str>) -> Device {
        let mut d = Device::new(id, self.platform);
        d.set_state(self.state());
        if let Some((cert, t)) = &self.tok {
            d.cert = *cert;
            d.token = Some(Arc::from(t.as_str()));
        }
        if here.is_some() && self.node.as_deref() == here {
            d.conn = self.conn;
        }
        d
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing a plain struct of strings and numbers cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<StoredDevice, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }
}

/// What an inbox entry asks the node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Deliver,
    /// A message moved here from another connection's unacked set.
    Redeliver,
    Kick,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Deliver => "deliver",
            EntryKind::Redeliver => "redeliver",
            EntryKind::Kick => "kick",
        }
    }

    pub fn parse(s: &[u8]) -> Option<EntryKind> {
        Some(match s {
            b"deliver" => EntryKind::Deliver,
            b"redeliver" => EntryKind::Redeliver,
            b"kick" => EntryKind::Kick,
            _ => return None,
        })
    }
}

/// One recipient connection of an inbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxTarget {
    pub user: String,
    pub device: String,
    pub conn: ConnId,
    /// The device also got a notification for this message (background): no second push on
    /// fallback.
    #[serde(default)]
    pub also_pushed: bool,
}

pub fn encode_targets(t: &[InboxTarget]) -> Vec<u8> {
    rmp_serde::to_vec_named(t).unwrap_or_default()
}

pub fn decode_targets(b: &[u8]) -> Result<Vec<InboxTarget>, rmp_serde::decode::Error> {
    rmp_serde::from_slice(b)
}

/// An accepted message as an inbox entry carries it (`msg`), so any node can deliver or push it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub id: u64,
    pub from: String,
    pub text: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub desc: Option<String>,
    #[serde(default)]
    pub ext: Option<String>,
    /// The notification, when the message has one.
    #[serde(default)]
    pub push: Option<PushContent>,
    /// Why it has none (a `SkipReason` name).
    #[serde(default)]
    pub no_push: Option<String>,
}

/// The inbox form of a message.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let w = WireMessage {
        id: m.id,
        from: m.from.clone(),
        text: m.text.clone(),
        title: m.title.clone(),
        desc: m.desc.clone(),
        ext: m.ext.clone(),
        push: m.push.as_ref().ok().cloned(),
        no_push: m.push.as_ref().err().map(|r| r.as_str().to_string()),
    };
    rmp_serde::to_vec_named(&w).unwrap_or_default()
}

/// A message back from its inbox form; `accepted_at` is the time of reading.
pub fn decode_message(b: &[u8]) -> Result<Message, rmp_serde::decode::Error> {
    let w: WireMessage = rmp_serde::from_slice(b)?;
    let push = match (w.push, w.no_push) {
        (Some(p), _) => Ok(p),
        (None, reason) => Err(reason
            .and_then(|r| SkipReason::ALL.into_iter().find(|s| s.as_str() == r))
            .unwrap_or(SkipReason::NothingToShow)),
    };
    Ok(Message {
        id: w.id,
        from: w.from,
        text: w.text,
        title: w.title,
        desc: w.desc,
        ext: w.ext,
        push,
        accepted_at: std::time::Instant::now(),
    })
}

/// A device's last notification in `pg:{u:<user>}:last` (diagnosis from any node).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredOutcome {
    at: u64,
    #[serde(default)]
    message_id: u64,
    certificate_id: CertificateId,
    /// `DeliveryClass::as_str`.
    class: String,
    #[serde(default)]
    vendor_code: Option<i64>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    msg_id: Option<String>,
    #[serde(default)]
    detail: String,
}

pub fn encode_outcome(n: &LastNotification) -> Vec<u8> {
    let s = StoredOutcome {
        at: n.at,
        message_id: n.message_id,
        certificate_id: n.certificate_id,
        class: n.class.as_str().to_string(),
        vendor_code: n.vendor_code,
        trace_id: n.trace_id.as_deref().map(str::to_string),
        msg_id: n.msg_id.as_deref().map(str::to_string),
        detail: n.detail.to_string(),
    };
    // Plain data of known types: encoding cannot fail.
    rmp_serde::to_vec_named(&s).unwrap_or_default()
}

/// The outcome, or None when it is unreadable or names a class this build does not know.
pub fn decode_outcome(b: &[u8]) -> Option<LastNotification> {
    let s: StoredOutcome = rmp_serde::from_slice(b).ok()?;
    let class = DeliveryClass::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == s.class)?;
    Some(LastNotification {
        at: s.at,
        message_id: s.message_id,
        certificate_id: s.certificate_id,
        class,
        vendor_code: s.vendor_code,
        trace_id: s.trace_id.map(Arc::from),
        msg_id: s.msg_id.map(Arc::from),
        detail: std::borrow::Cow::Owned(s.detail),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Route;

    #[test]
    fn records_round_trip_and_route_like_the_embedded_registry() {
        let mut d = StoredDevice::new(Platform::Android);
        assert_eq!(d.state(), DeviceState::NEVER_LOGGED_IN);
        d.set_state(DeviceState::Online { background: true });
        d.node = Some("gw-2#7".into());
        d.conn = 42;
        d.gen = 3;
        d.tok = Some((1001, "regid".into()));
        let back = StoredDevice::decode(&d.encode()).unwrap();
        assert_eq!(back, d);
        match back.to_device("d1", Some("gw-2#7")).route(10, 100) {
            Route::OnlineAndPush { conn, cert, .. } => {
                assert_eq!((conn, cert), (Some(42), 1001));
            }
            r => panic!("{r:?}"),
        }
        // Another node sees the device online but holds no connection for it.
        assert_eq!(
            back.to_device("d1", Some("gw-1#1")).conn,
            0,
            "a ConnId is only meaningful on its own node"
        );
        d.set_state(DeviceState::PushOnline { since: 5 });
        assert_eq!(
            (d.node.as_deref(), d.conn),
            (None, 0),
            "no location once disconnected"
        );
        assert!(StoredDevice::decode(b"\xc1garbage").is_err());
    }

    #[test]
    fn outcomes_round_trip_and_unknown_classes_are_dropped() {
        let n = LastNotification {
            at: 1_700_000_000_123,
            message_id: 42,
            certificate_id: 1001,
            class: DeliveryClass::BadToken,
            vendor_code: Some(20301),
            trace_id: Some(Arc::from("t-1")),
            msg_id: None,
            detail: std::borrow::Cow::Borrowed("Xiaomi listed this regId in bad_regids"),
        };
        assert_eq!(decode_outcome(&encode_outcome(&n)), Some(n.clone()));
        let mut other: StoredOutcome = rmp_serde::from_slice(&encode_outcome(&n)).expect("decodes");
        other.class = "from_a_newer_build".into();
        let b = rmp_serde::to_vec_named(&other).expect("encodes");
        assert_eq!(decode_outcome(&b), None);
        assert_eq!(decode_outcome(b"not msgpack"), None);
    }

    #[test]
    fn messages_round_trip_with_or_without_a_notification() {
        let m = Message {
            id: 7,
            from: "bob".into(),
            text: "hi".into(),
            title: Some("t".into()),
            desc: None,
            ext: None,
            push: Ok(PushContent {
                title: "t".into(),
                desc: "hi".into(),
                ext: None,
                channel_id: Some("c".into()),
                conversation: "c2c:bob".into(),
                global: Default::default(),
                hw: Default::default(),
                // A vendor's per-message override must survive the trip to another node.
                ovm: crate::domain::vendor_fields::OvmPushFields {
                    vivo_classification: Some(1),
                    ..Default::default()
                },
            }),
            accepted_at: std::time::Instant::now(),
        };
        let back = decode_message(&encode_message(&m)).unwrap();
        assert_eq!((back.id, back.text.as_str()), (7, "hi"));
        assert_eq!(back.push, m.push);
        let quiet = Message {
            push: Err(SkipReason::PushDisabled),
            ..m
        };
        let back = decode_message(&encode_message(&quiet)).unwrap();
        assert_eq!(back.push, Err(SkipReason::PushDisabled));
        assert!(decode_message(b"\x01").is_err());
    }
}
