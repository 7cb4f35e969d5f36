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
pub use writer::{CommitTicket, StoreHandle, StoreHealth, StoreMetrics, StorePermit};

use crate::domain::{Certificate, CertificateId};
use crate::push::outbox::OutboxEntry;
use crate::registry::DeviceRecord;

/// Where an accepted notification is journaled: its share and its index in it. Carried with
/// the notification to its final outcome, so finishing it is a bit set in its share's
/// progress, with no lookup by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JournalSlot {
    pub share: u64,
    pub index: u32,
}

/// Where a notification read back at start is journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalPlace {
    /// In a share: finished with [`StoreOp::Finished`].
    Share(JournalSlot),
    /// One record each (older versions), under this key: journaled again as a share by the
    /// start, then removed with [`StoreOp::DeleteAccepted`].
    Legacy(Box<[u8]>),
}

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
    /// The accepted notifications of one message to one certificate, journaled as one record
    /// (a share, [`crate::push::outbox::encode_share`]) until each reaches its final outcome;
    /// a start sends again the unfinished ones. `id` comes from [`StoreHandle::new_share_id`];
    /// each notification carries its [`JournalSlot`].
    PutShare {
        id: u64,
        len: u32,
        record: Vec<u8>,
    },
    /// Journaled notifications that reached their final outcome.
    Finished(Vec<JournalSlot>),
    /// A notification journaled one record each by an older version (key:
    /// [`crate::push::outbox::accepted_key`]), finished or journaled again as a share.
    DeleteAccepted(Box<[u8]>),
    /// An entry of the shutdown outbox of older versions, handed to its sender again.
    DeleteOutbox(u64),
    /// Writes nothing of use: proves the store can write again after a failure.
    Probe,
}

/// Everything the store holds but the devices, read once at start-up (the devices come from
/// [`Store::load_devices`]).
#[derive(Debug, Default)]
pub struct Snapshot {
    pub certificates: Vec<Certificate>,
    pub next_certificate_id: Option<CertificateId>,
    /// Notifications older versions' shutdown left unsent, by key.
    pub outbox: Vec<(u64, OutboxEntry)>,
    /// Notifications accepted and not finished when the process stopped, with their place.
    pub accepted: Vec<(JournalPlace, OutboxEntry)>,
}

/// Device records as the store holds them, a batch of them in key order, undecoded: the
/// start-up decodes batches on several threads while the store reads the next ones. A batch
/// holds every stored device of each of its users.
#[derive(Debug, Default)]
pub struct StoredDevices {
    /// Each record's user, device and JSON record, one after the other.
    bytes: Vec<u8>,
    /// Where each record's user, device and JSON record end in `bytes`.
    ends: Vec<[usize; 3]>,
}

impl StoredDevices {
    /// Records in a batch before the store starts the next one (at a user's first device): a
    /// few hundred KB, so that decoding threads get work early and often.
    pub const TARGET_LEN: usize = 4096;

    pub fn with_capacity(records: usize, bytes: usize) -> StoredDevices {
        StoredDevices {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(records),
        }
    }

    pub fn push(&mut self, user: &[u8], device: &[u8], record: &[u8]) {
        let mut end = |part: &[u8]| {
            self.bytes.extend_from_slice(part);
            self.bytes.len()
        };
        let ends = [end(user), end(device), end(record)];
        self.ends.push(ends);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The last record's user.
    pub fn last_user(&self) -> Option<&[u8]> {
        let n = self.ends.len();
        let start = match n {
            0 => return None,
            1 => 0,
            _ => self.ends[n - 2][2],
        };
        Some(&self.bytes[start..self.ends[n - 1][0]])
    }

    /// (user, device, JSON record) of each record, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8], &[u8])> {
        let mut start = 0usize;
        self.ends.iter().map(move |&[u, d, r]| {
            let parts = (&self.bytes[start..u], &self.bytes[u..d], &self.bytes[d..r]);
            start = r;
            parts
        })
    }
}

/// Writes `record` as the store keeps it: the JSON `serde_json::to_vec(record)` gives, byte for
/// byte (records on disk and records written now read alike), without serde's machinery or a
/// `Vec` of its own (the writer encodes every device change of a group into one buffer).
pub fn encode_device_record(record: &DeviceRecord, out: &mut Vec<u8>) {
    use crate::domain::{OfflineReason, Platform};
    use crate::json_out::{push_str, push_u64};
    let platform: &[u8] = match record.platform {
        Platform::Android => b"Android",
        Platform::IPhone => b"iPhone",
        Platform::IPad => b"iPad",
        Platform::Web => b"Web",
        Platform::Pc => b"PC",
        Platform::Mac => b"Mac",
        Platform::Linux => b"Linux",
    };
    out.extend_from_slice(b"{\"platform\":\"");
    out.extend_from_slice(platform);
    out.extend_from_slice(b"\",\"state\":");
    push_str(out, &record.state);
    out.extend_from_slice(if record.background {
        b",\"background\":true,\"offline_reason\":"
    } else {
        b",\"background\":false,\"offline_reason\":"
    });
    out.extend_from_slice(match record.offline_reason {
        None => b"null",
        Some(OfflineReason::LoggedOut) => b"\"logged_out\"",
        Some(OfflineReason::Kicked) => b"\"kicked\"",
        Some(OfflineReason::Expired) => b"\"expired\"",
        Some(OfflineReason::Disconnected) => b"\"disconnected\"",
    });
    out.extend_from_slice(b",\"since\":");
    push_u64(out, record.since);
    out.extend_from_slice(b",\"token\":");
    match &record.token {
        None => out.extend_from_slice(b"null"),
        Some((cert, token)) => {
            out.push(b'[');
            push_u64(out, *cert);
            out.push(b',');
            push_str(out, token);
            out.push(b']');
        }
    }
    out.push(b'}');
}

/// Why the store cannot write, as the metric label and the error message say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// ENOSPC or EDQUOT: no room left on the store's file system.
    DiskFull,
    /// EROFS: the file system was mounted (or remounted) read-only.
    ReadOnly,
    /// Another I/O error.
    Io,
    /// An earlier write failed and the engine refuses writes until it is reopened.
    Poisoned,
}

impl StoreFault {
    pub const ALL: [StoreFault; 4] = [
        StoreFault::DiskFull,
        StoreFault::ReadOnly,
        StoreFault::Io,
        StoreFault::Poisoned,
    ];

    pub fn label(self) -> &'static str {
        match self {
            StoreFault::DiskFull => "disk_full",
            StoreFault::ReadOnly => "read_only",
            StoreFault::Io => "io",
            StoreFault::Poisoned => "poisoned",
        }
    }

    /// The fault of an I/O error, by its OS error code.
    pub fn of_io(e: &std::io::Error) -> StoreFault {
        match e.raw_os_error() {
            Some(libc_codes::ENOSPC) | Some(libc_codes::EDQUOT) => StoreFault::DiskFull,
            Some(libc_codes::EROFS) => StoreFault::ReadOnly,
            _ => StoreFault::Io,
        }
    }
}

/// The Linux error numbers the store tells apart (no libc dependency for three constants).
mod libc_codes {
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const EDQUOT: i32 = 122;
}

impl std::fmt::Display for StoreFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoreFault::DiskFull => "the store's disk is full",
            StoreFault::ReadOnly => "the store's file system is read-only",
            StoreFault::Io => "the store's disk failed a write",
            StoreFault::Poisoned => "the store is recovering from a failed write",
        })
    }
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
    /// The disk refused the write (full, read-only, failing): nothing of it is acknowledged.
    #[error("{fault}; the change was not made ({detail})")]
    Unwritable { fault: StoreFault, detail: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A durable backend. `apply` must be atomic (all ops or none) and durable on return; a group
/// of removals only (finished notifications) may be durable only against a crash of the
/// process until the next group or `sync`.
pub trait Store: Send + Sync + 'static {
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Hands every stored device to `batch`, in batches of [`StoredDevices`], in key order;
    /// stops early when `batch` says so.
    fn load_devices(
        &self,
        batch: &mut dyn FnMut(StoredDevices) -> std::ops::ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let _ = batch;
        Ok(())
    }
    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError>;
    /// After a failed write: makes the engine able to write again once the cause is gone
    /// (fjall refuses every write after one failed, until it is reopened).
    fn reopen(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// After a failed write: closes the engine's files until the next `reopen` (an engine
    /// that refuses writes has no use for them, and a file open for writing keeps the
    /// operator from remounting the file system, read-only or elsewhere).
    fn close(&self) {}
    /// Makes everything written so far durable (the writer, as it stops: a last group of
    /// removals is only handed to the OS, see `FjallStore`).
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The first share id not used on disk (share ids are never reused: a late removal must
    /// not finish a notification of another share).
    fn first_free_share_id(&self) -> u64 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OfflineReason, Platform};

    #[test]
    fn a_device_record_is_encoded_byte_for_byte_as_serde_json_encodes_it() {
        let reasons = [
            None,
            Some(OfflineReason::LoggedOut),
            Some(OfflineReason::Kicked),
            Some(OfflineReason::Expired),
            Some(OfflineReason::Disconnected),
        ];
        // Every reason is listed above: a new one fails to compile here until it is.
        for r in reasons.iter().flatten() {
            match r {
                OfflineReason::LoggedOut
                | OfflineReason::Kicked
                | OfflineReason::Expired
                | OfflineReason::Disconnected => {}
            }
        }
        let tokens = [
            None,
            Some((0, String::new())),
            Some((1001, "lt0000000042AbCdEf:GhI-jK_l".to_string())),
            Some((
                u64::MAX,
                "quote\" back\\ tab\t nl\n nul\u{0} del\u{7f} é 中 🎉".to_string(),
            )),
        ];
        let states = ["Online", "PushOnline", "Offline", "", "odd \"state\"\u{1f}"];
        let mut n = 0;
        for platform in Platform::ALL {
            for state in states {
                for background in [false, true] {
                    for offline_reason in reasons {
                        for since in [0, 7, 1_764_460_800, u64::MAX] {
                            for token in &tokens {
                                let record = DeviceRecord {
                                    platform,
                                    state: state.to_string(),
                                    background,
                                    offline_reason,
                                    since,
                                    token: token.clone(),
                                };
                                let mut ours = b"left as it was".to_vec();
                                encode_device_record(&record, &mut ours);
                                let serde = serde_json::to_vec(&record).unwrap();
                                assert_eq!(
                                    &ours[14..],
                                    &serde[..],
                                    "{}",
                                    String::from_utf8_lossy(&serde)
                                );
                                let back: DeviceRecord =
                                    serde_json::from_slice(&ours[14..]).unwrap();
                                assert_eq!(back, record);
                                n += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(n, 7 * 5 * 2 * 5 * 4 * 4);
    }
}
