//! Durability behind one trait: the embedded default is fjall on disk; a Redis Cluster backend
//! can implement the same trait.
//!
//! All writes go through one writer thread that commits in groups: it takes every change queued
//! since its last commit, writes them as one atomic batch, syncs the journal, and only then
//! answers each waiting request. A request that changes durable state answers after its group is
//! on disk.

mod fjall_store;
mod writer;

pub use fjall_store::{private_dir, FjallStore};
pub use writer::{CommitTicket, StoreHandle, StoreMetrics, StorePermit};

use crate::domain::{Certificate, CertificateId};
use crate::push::outbox::OutboxEntry;
use crate::registry::DeviceRecord;

/// One durable change.
#[derive(Debug, Clone)]
pub enum StoreOp {
    PutDevice {
        user: String,
        device: String,
        record: DeviceRecord,
    },
    PutCertificate(Box<Certificate>),
    DeleteCertificate(CertificateId),
    /// The next certificate id to hand out (ids are never reused).
    NextCertificateId(CertificateId),
    /// A notification a shutdown left unsent, under its key (the next start sends it).
    PutOutbox(u64, Box<OutboxEntry>),
    /// An outbox entry the start has handed to its sender again.
    DeleteOutbox(u64),
}

/// Everything the store holds, read once at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub certificates: Vec<Certificate>,
    pub devices: Vec<(String, String, DeviceRecord)>,
    pub next_certificate_id: Option<CertificateId>,
    /// Notifications the last shutdown left unsent, by key.
    pub outbox: Vec<(u64, OutboxEntry)>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("corrupt record under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the store is too busy; retry shortly")]
    Busy,
    #[error("the store writer has stopped")]
    Stopped,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A durable backend. `apply` must be atomic (all ops or none) and durable on return.
pub trait Store: Send + Sync + 'static {
    fn load(&self) -> Result<Snapshot, StoreError>;
    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError>;
}
