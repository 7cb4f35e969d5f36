//! The embedded default store: fjall (an LSM tree) under the data dir.

use super::StoreFault;
use super::{Snapshot, Store, StoreError, StoreOp};
use crate::domain::Certificate;
use crate::registry::DeviceRecord;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The open engine: fjall and its keyspaces.
struct Engine {
    db: Database,
    /// user \0 device → record.
    devices: Keyspace,
    /// id BE → certificate.
    certificates: Keyspace,
    meta: Keyspace,
    /// Notifications older versions' shutdown left unsent (key BE → entry); read, then emptied.
    outbox: Keyspace,
    /// Notifications accepted and not finished (message id BE, user \0 device → entry).
    accepted: Keyspace,
}

/// The fjall store under one directory. The engine sits behind a lock only so that a failed
/// write can be followed by a reopen ([`Store::reopen`]); the writer thread is its only user
/// after the start, so the lock is never contended.
pub struct FjallStore {
    dir: PathBuf,
    engine: RwLock<Option<Engine>>,
}

const NEXT_CERT_ID: &[u8] = b"next_certificate_id";
const PROBE: &[u8] = b"writable_probe";

/// A fjall error as the store's: a write the disk refused is `Unwritable` with its fault.
fn engine(e: fjall::Error) -> StoreError {
    if matches!(e, fjall::Error::Poisoned) {
        return StoreError::Unwritable {
            fault: StoreFault::Poisoned,
            detail: "an earlier write failed".into(),
        };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return StoreError::Unwritable {
                fault: StoreFault::of_io(io),
                detail: io.to_string(),
            };
        }
        source = s.source();
    }
    StoreError::Engine(e.to_string())
}

impl Engine {
    fn open(dir: &Path) -> Result<Engine, StoreError> {
        let db = Database::builder(dir)
            // Durability comes from our own persist(SyncAll) after each group, not from fjall's
            // background flusher.
            .manual_journal_persist(true)
            .open()
            .map_err(engine)?;
        let keyspace = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(engine)
        };
        Ok(Engine {
            devices: keyspace("devices")?,
            certificates: keyspace("certificates")?,
            meta: keyspace("meta")?,
            outbox: keyspace("outbox")?,
            accepted: keyspace("accepted")?,
            db,
        })
    }
}

impl FjallStore {
    pub fn open(dir: &Path) -> Result<FjallStore, StoreError> {
        // The journal holds certificate secrets: fjall creates its files with the umask's mode
        // (often 0644), so the directory is what keeps other local users out.
        private_dir(dir)?;
        restrict_files(dir)?;
        let engine = Engine::open(dir)?;
        Ok(FjallStore {
            dir: dir.to_path_buf(),
            engine: RwLock::new(Some(engine)),
        })
    }

    fn with_engine<T>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.engine.read().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(e) => f(e),
            // A reopen failed (the file system is still read-only, say): the next one retries.
            None => Err(StoreError::Unwritable {
                fault: StoreFault::Poisoned,
                detail: "the store is not open".into(),
            }),
        }
    }
}

/// Creates `dir` (and missing parents) so only its owner can list or enter it, and narrows an
/// existing one (a data dir from before this rule) to 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Narrows the files a store from before the 0700 rule left group/world-readable to 0600, and
/// its subdirectories to 0700.
fn restrict_files(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let mode = if kind.is_dir() {
                restrict_files(&entry.path())?;
                0o700
            } else if kind.is_file() {
                0o600
            } else {
                continue;
            };
            let current = entry.metadata()?.permissions().mode();
            if current & 0o077 != 0 {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

fn device_key(user: &str, device: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + device.len() + 1);
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(device.as_bytes());
    k
}

fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

impl Store for FjallStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        self.with_engine(load)
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        self.with_engine(|e| apply(e, ops))
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.engine.write().unwrap_or_else(|e| e.into_inner());
        // The old engine (and its lock on the directory) goes first; fjall replays its journal
        // on open, dropping a batch the failed write left half-written at its tail.
        drop(guard.take());
        *guard = Some(Engine::open(&self.dir)?);
        Ok(())
    }

    fn close(&self) {
        drop(
            self.engine
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }
}

fn load(e: &Engine) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot::default();
    for g in e.certificates.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let cert: Certificate = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
        snap.certificates.push(cert);
    }
    for g in e.devices.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let sep = k
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| corrupt(&k, "no separator"))?;
        let user = std::str::from_utf8(&k[..sep]).map_err(|e| corrupt(&k, e))?;
        let device = std::str::from_utf8(&k[sep + 1..]).map_err(|e| corrupt(&k, e))?;
        let rec: DeviceRecord = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
        snap.devices
            .push((user.to_string(), device.to_string(), rec));
    }
    for g in e.outbox.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let key: [u8; 8] = k
            .as_ref()
            .try_into()
            .map_err(|_| corrupt(&k, "not 8 bytes"))?;
        let entry = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
        snap.outbox.push((u64::from_be_bytes(key), entry));
    }
    for g in e.accepted.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let entry = crate::push::outbox::decode_accepted(&k, &v).map_err(|r| corrupt(&k, r))?;
        snap.accepted.push((Box::from(k.as_ref()), entry));
    }
    if let Some(v) = e.meta.get(NEXT_CERT_ID).map_err(engine)? {
        let bytes: [u8; 8] = v
            .as_ref()
            .try_into()
            .map_err(|_| corrupt(NEXT_CERT_ID, "not 8 bytes"))?;
        snap.next_certificate_id = Some(u64::from_be_bytes(bytes));
    }
    Ok(snap)
}

fn apply(e: &Engine, ops: &[StoreOp]) -> Result<(), StoreError> {
    let mut batch = e.db.batch();
    // A message to many recipients is encoded once per group, not once per notification.
    let mut messages = crate::push::outbox::MessageCache::default();
    for op in ops {
        match op {
            StoreOp::PutDevice {
                user,
                device,
                record,
            } => {
                let v =
                    serde_json::to_vec(record).map_err(|e| StoreError::Engine(e.to_string()))?;
                batch.insert(&e.devices, device_key(user, device), v);
            }
            StoreOp::PutCertificate(c) => {
                let v = serde_json::to_vec(c).map_err(|e| StoreError::Engine(e.to_string()))?;
                batch.insert(&e.certificates, c.id.to_be_bytes().to_vec(), v);
            }
            StoreOp::DeleteCertificate(id) => {
                batch.remove(&e.certificates, id.to_be_bytes().to_vec());
            }
            StoreOp::NextCertificateId(id) => {
                batch.insert(&e.meta, NEXT_CERT_ID.to_vec(), id.to_be_bytes().to_vec());
            }
            StoreOp::PutAccepted(job) => {
                if let Some((k, v)) = messages.encode(job) {
                    batch.insert(&e.accepted, &*k, v);
                }
            }
            StoreOp::DeleteAccepted(key) => {
                batch.remove(&e.accepted, key.to_vec());
            }
            StoreOp::Probe => {
                let now = crate::domain::now_millis().to_be_bytes().to_vec();
                batch.insert(&e.meta, PROBE.to_vec(), now);
            }
            StoreOp::DeleteOutbox(key) => {
                batch.remove(&e.outbox, key.to_be_bytes().to_vec());
            }
        }
    }
    batch.commit().map_err(engine)?;
    e.db.persist(PersistMode::SyncAll).map_err(engine)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn the_store_dir_is_owner_only_and_an_old_world_readable_one_is_narrowed() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data").join("store");
        let store = FjallStore::open(&dir).expect("open");
        store
            .apply(&[StoreOp::NextCertificateId(7)])
            .expect("apply");
        drop(store);
        assert_eq!(mode(&dir), 0o700, "a new store dir is 0700");

        // A store written before the rule: directory and journal left readable by everyone.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut files = vec![];
        let mut pending = vec![dir.clone()];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    pending.push(p);
                } else {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
                        .expect("chmod");
                    files.push(p);
                }
            }
        }
        assert!(!files.is_empty(), "fjall wrote files");
        let store = FjallStore::open(&dir).expect("reopen");
        assert_eq!(mode(&dir), 0o700);
        for f in &files {
            if f.exists() {
                assert_eq!(
                    mode(f) & 0o077,
                    0,
                    "{} is still readable by others",
                    f.display()
                );
            }
        }
        assert_eq!(store.load().expect("load").next_certificate_id, Some(7));
    }
}
