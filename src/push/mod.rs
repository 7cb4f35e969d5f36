//! From an accepted message to vendor requests: the routing decision (`dispatch`), the
//! per-certificate `CertSender` with its token bucket, and the last result per device for
//! diagnosis.

pub mod bucket;
pub mod dispatch;
pub mod outcomes;
pub mod sender;

use crate::domain::CertificateId;
use crate::registry::SkipReason;
use compact_str::CompactString;
use std::sync::Arc;
use std::time::Instant;

pub use dispatch::{DeviceOutcome, Outcome, RecipientResult};
pub use sender::{EnqueueError, Senders};

/// What a notification would show. Built once per message, shared by every recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PushContent {
    pub title: String,
    pub desc: String,
    pub ext: Option<String>,
    /// Overrides the certificate's channel (TIM `XiaoMiChannelID`).
    pub channel_id: Option<String>,
    /// FCM and APNs fields (TIM `GoogleChannelID`, `Sound`, `ApnsInfo`).
    pub global: crate::domain::global_push_fields::GlobalPushFields,
    /// Notifications of one conversation replace each other in the tray.
    pub conversation: String,
}

/// One accepted message.
#[derive(Debug)]
pub struct Message {
    /// Gateway-wide message id; the id of `message` frames the client acks.
    pub id: u64,
    pub from: String,
    pub text: String,
    /// Extra fields for the online frame (title, desc, ext as sent).
    pub title: Option<String>,
    pub desc: Option<String>,
    pub ext: Option<String>,
    /// The notification for push-eligible devices, or why there is none (push flag off,
    /// online-only, nothing to show).
    pub push: Result<PushContent, SkipReason>,
    pub accepted_at: Instant,
}

/// One notification for one device, handed to the sender of its certificate.
#[derive(Debug, Clone)]
pub struct PushJob {
    pub cert: CertificateId,
    pub token: Arc<str>,
    pub user: CompactString,
    pub device: CompactString,
    pub message: Arc<Message>,
    /// Attempts already made (transient failures retry).
    pub attempt: u32,
}
