//! From an accepted message to vendor requests: the routing decision (`dispatch`), the
//! per-certificate `CertSender` with its token bucket, and the last result per device for
//! diagnosis.

pub mod bucket;
pub mod dispatch;
pub mod outbox;
pub mod outcomes;
pub mod sender;

use crate::domain::CertificateId;
use compact_str::CompactString;
use std::sync::Arc;

pub use crate::domain::message::{Message, PushContent};
pub use dispatch::{DeviceOutcome, Outcome, RecipientResult};
pub use sender::{EnqueueError, Senders};

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
    /// Where the notification is journaled until its final outcome (embedded mode; set when
    /// it is handed to its sender).
    pub journal: Option<crate::store::JournalSlot>,
}
