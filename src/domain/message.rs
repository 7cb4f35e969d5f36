//! An accepted message, what its notification shows, and the limits on its fields.

use crate::registry::SkipReason;
use std::time::Instant;

/// Longest `text`, in bytes (the TIM body limit, spec/tim-offline-push.md §1.2: 12 KB).
pub const MAX_TEXT_BYTES: usize = 12 * 1024;
/// Longest notification title, in characters.
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest notification description, in characters.
pub const MAX_DESC_CHARS: usize = 1024;
/// Longest `ext` payload handed to the app, in characters.
pub const MAX_EXT_CHARS: usize = 1024;
/// Longest vendor channel id, in characters.
pub const MAX_CHANNEL_ID_CHARS: usize = 64;

/// What a notification would show. Built once per message, shared by every recipient.
/// Serializable because it travels: cluster mode carries it to another node's inbox
/// (`cluster::codec`) and a shutdown saves unsent notifications to the store's outbox. A
/// vendor's per-message fields added here travel with it (give them `#[serde(default)]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PushContent {
    pub title: String,
    pub desc: String,
    pub ext: Option<String>,
    /// Overrides the certificate's channel (TIM `XiaoMiChannelID`).
    pub channel_id: Option<String>,
    /// FCM and APNs fields (TIM `GoogleChannelID`, `Sound`, `ApnsInfo`).
    #[serde(default)]
    pub global: super::global_push_fields::GlobalPushFields,
    /// Huawei and Honor classification overrides (TIM `HuaWeiCategory`, `HonorImportance`, …).
    #[serde(default)]
    pub hw: super::hw_push_fields::HwPushFields,
    /// Notifications of one conversation replace each other in the tray.
    pub conversation: String,
    /// The message's OPPO, vivo and Meizu overrides (TIM `OPPOCategory`, `VIVOClassification`, …).
    #[serde(default)]
    pub ovm: super::vendor_fields::OvmPushFields,
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
