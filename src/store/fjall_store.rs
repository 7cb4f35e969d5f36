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
}

const NEXT_CERT_ID: &[u8] = b"next_certificate_id";

fn engine(e: fjall::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

impl FjallStore {
    pub fn open(dir: &Path) -> Result<FjallStore, StoreError> {
        std::fs::create_dir_all(dir)?;
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
        Ok(FjallStore {
            db,
            devices,
            certificates,
            meta,
        })
    }
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
            }
        }
        batch.commit().map_err(engine)?;
        self.db.persist(PersistMode::SyncAll).map_err(engine)
    }
}
