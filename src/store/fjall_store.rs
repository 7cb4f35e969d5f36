//! The embedded default store: fjall (an LSM tree) under the data dir.

use super::{Snapshot, Store, StoreError, StoreOp};
use crate::domain::Certificate;
use crate::registry::DeviceRecord;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;

/// Keyspaces: `devices` (user \0 device → record), `certificates` (id BE → certificate), `meta`.
pub struct FjallStore {
    db: Database,
    devices: Keyspace,
    certificates: Keyspace,
    meta: Keyspace,
    /// Notifications a shutdown left unsent (key BE → entry).
    outbox: Keyspace,
}

const NEXT_CERT_ID: &[u8] = b"next_certificate_id";

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

impl FjallStore {
    pub fn open(dir: &Path) -> Result<FjallStore, StoreError> {
        // The journal holds certificate secrets: fjall creates its files with the umask's mode
        // (often 0644), so the directory is what keeps other local users out.
        private_dir(dir)?;
        restrict_files(dir)?;
        let db = Database::builder(dir)
            // Durability comes from our own persist(SyncAll) after each group, not from fjall's
            // background flusher.
            .manual_journal_persist(true)
            .open()
            .map_err(engine)?;
        let devices = db
            .keyspace("devices", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let certificates = db
            .keyspace("certificates", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        let outbox = db
            .keyspace("outbox", KeyspaceCreateOptions::default)
            .map_err(engine)?;
        Ok(FjallStore {
            db,
            devices,
            certificates,
            meta,
            outbox,
        })
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
        let mut snap = Snapshot::default();
        for g in self.certificates.iter() {
            let (k, v) = g.into_inner().map_err(engine)?;
            let cert: Certificate = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
            snap.certificates.push(cert);
        }
        for g in self.devices.iter() {
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
        for g in self.outbox.iter() {
            let (k, v) = g.into_inner().map_err(engine)?;
            let key: [u8; 8] = k
                .as_ref()
                .try_into()
                .map_err(|_| corrupt(&k, "not 8 bytes"))?;
            let entry = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
            snap.outbox.push((u64::from_be_bytes(key), entry));
        }
        if let Some(v) = self.meta.get(NEXT_CERT_ID).map_err(engine)? {
            let bytes: [u8; 8] = v
                .as_ref()
                .try_into()
                .map_err(|_| corrupt(NEXT_CERT_ID, "not 8 bytes"))?;
            snap.next_certificate_id = Some(u64::from_be_bytes(bytes));
        }
        Ok(snap)
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for op in ops {
            match op {
                StoreOp::PutDevice {
                    user,
                    device,
                    record,
                } => {
                    let v = serde_json::to_vec(record)
                        .map_err(|e| StoreError::Engine(e.to_string()))?;
                    batch.insert(&self.devices, device_key(user, device), v);
                }
                StoreOp::PutCertificate(c) => {
                    let v = serde_json::to_vec(c).map_err(|e| StoreError::Engine(e.to_string()))?;
                    batch.insert(&self.certificates, c.id.to_be_bytes().to_vec(), v);
                }
                StoreOp::DeleteCertificate(id) => {
                    batch.remove(&self.certificates, id.to_be_bytes().to_vec());
                }
                StoreOp::NextCertificateId(id) => {
                    batch.insert(&self.meta, NEXT_CERT_ID.to_vec(), id.to_be_bytes().to_vec());
                }
                StoreOp::PutOutbox(key, entry) => {
                    let v =
                        serde_json::to_vec(entry).map_err(|e| StoreError::Engine(e.to_string()))?;
                    batch.insert(&self.outbox, key.to_be_bytes().to_vec(), v);
                }
                StoreOp::DeleteOutbox(key) => {
                    batch.remove(&self.outbox, key.to_be_bytes().to_vec());
                }
            }
        }
        batch.commit().map_err(engine)?;
        self.db.persist(PersistMode::SyncAll).map_err(engine)
    }
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
