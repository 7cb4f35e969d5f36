//! The embedded default store: fjall (an LSM tree) under the data dir.

use super::StoreFault;
use super::{JournalPlace, JournalSlot, Snapshot, Store, StoreError, StoreOp, StoredDevices};
use crate::domain::Certificate;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

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
    /// Notifications accepted and not finished, one record each (message id BE, user \0
    /// device → entry): written by earlier versions; read, journaled again as shares, emptied.
    accepted: Keyspace,
    /// Notifications accepted and not finished, a share at a time ([`ShareBook`]).
    shares: Keyspace,
}

/// The accepted notifications of one message to one certificate are journaled as one record
/// (a share), not one record each: a 500-recipient send is one write instead of 500, and its
/// removals one write per vendor reply instead of one per notification. The exact
/// per-notification journal stays: which notifications of a share finished is kept in a
/// progress record beside it (a bitmap, rewritten in the group of each removal), so a start
/// sends again exactly the unfinished ones. Each notification carries its share id and index
/// ([`crate::store::JournalSlot`]), so a removal is a bit set, found without a key. The book is
/// the writer's memory of the live shares, built from the disk at start; only the writer
/// thread uses it.
#[derive(Default)]
struct ShareBook {
    shares: HashMap<u64, ShareState>,
    /// The book may differ from the disk (not read yet, or a write failed after the book
    /// changed): rebuilt from the disk before the next write.
    stale: bool,
}

struct ShareState {
    /// Notifications not finished.
    left: u32,
    /// Bit i set: notification i finished.
    done: Vec<u64>,
    /// Whether the share record is on disk (false while it waits in its first group: a share
    /// finished in the group it was created in is never written).
    on_disk: bool,
    /// Whether a progress record exists on disk (removed with the share).
    progress_on_disk: bool,
}

impl ShareState {
    fn new(len: u32) -> ShareState {
        ShareState {
            left: len,
            done: vec![0; (len as usize).div_ceil(64)],
            on_disk: false,
            progress_on_disk: false,
        }
    }

    fn is_done(&self, i: u32) -> bool {
        self.done
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn progress(&self) -> Vec<u8> {
        self.done.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// A share record's key: its id, big-endian.
fn share_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Its progress record's key: the id and one more byte (so it sorts right after the share).
fn progress_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8] = b'p';
    k
}

/// The fjall store under one directory. The engine sits behind a lock only so that a failed
/// write can be followed by a reopen ([`Store::reopen`]); the writer thread is its only user
/// after the start, so the lock is never contended.
pub struct FjallStore {
    dir: PathBuf,
    engine: RwLock<Option<Engine>>,
    book: Mutex<ShareBook>,
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
            // A share (one message's notifications to one certificate, tens of KB for a large
            // batch) lives in the journal for the few milliseconds until its vendor replies:
            // compressing it there cost the writer thread a third of its CPU in a batch send,
            // to save disk bytes that are dropped at the next journal rotation.
            .journal_compression(fjall::CompressionType::None)
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
            shares: keyspace("shares")?,
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
            // Read from the disk by `load`, or by the first write if it comes first.
            book: Mutex::new(ShareBook {
                stale: true,
                ..ShareBook::default()
            }),
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

fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

impl Store for FjallStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        self.with_engine(|e| load(e, &mut book))
    }

    fn load_devices(
        &self,
        batch: &mut dyn FnMut(StoredDevices) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.with_engine(|e| load_devices(e, batch))
    }

    fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        self.with_engine(|e| {
            if book.stale {
                *book = read_book(e)?;
            }
            apply(e, ops, &mut book).inspect_err(|_| book.stale = true)
        })
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let mut guard = self.engine.write().unwrap_or_else(|e| e.into_inner());
        // The old engine (and its lock on the directory) goes first; fjall replays its journal
        // on open, dropping a batch the failed write left half-written at its tail.
        drop(guard.take());
        *guard = Some(Engine::open(&self.dir)?);
        Ok(())
    }

    fn first_free_share_id(&self) -> u64 {
        let last = self.with_engine(|e| match e.shares.last_key_value() {
            None => Ok(0),
            Some(g) => {
                let k = g.key().map_err(engine)?;
                k.get(..8)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| corrupt(&k, "shorter than a share id"))
            }
        });
        match last {
            Ok(id) => id + 1,
            Err(e) => {
                // Unreadable: ids from the clock are far above any counted from 1, so none on
                // disk is reused.
                tracing::error!(error = %e, "the last share id could not be read");
                crate::domain::now_millis() << 20
            }
        }
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.with_engine(|e| e.db.persist(PersistMode::SyncAll).map_err(engine))
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

/// The live shares on disk: the book, and each unfinished notification with its place.
fn read_shares(e: &Engine) -> Result<(ShareBook, Vec<crate::push::outbox::Journaled>), StoreError> {
    let mut records = Vec::new();
    let mut progress: HashMap<u64, Vec<u8>> = HashMap::new();
    for g in e.shares.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let id = k
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt(&k, "shorter than a share id"))?;
        match k.len() {
            8 => records.push((id, v)),
            9 => {
                progress.insert(id, v.to_vec());
            }
            _ => return Err(corrupt(&k, "not a share or progress key")),
        }
    }
    let mut book = ShareBook::default();
    let mut unfinished = Vec::new();
    for (id, v) in records {
        let entries =
            crate::push::outbox::decode_share(&v).map_err(|r| corrupt(&share_key(id), r))?;
        let len = u32::try_from(entries.len()).map_err(|_| corrupt(&share_key(id), "too long"))?;
        let mut state = ShareState::new(len);
        state.on_disk = true;
        if let Some(bits) = progress.get(&id) {
            for (w, chunk) in state.done.iter_mut().zip(bits.chunks(8)) {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                *w = u64::from_le_bytes(b);
            }
            state.progress_on_disk = true;
        }
        for (index, entry) in (0u32..).zip(entries) {
            if state.is_done(index) {
                state.left -= 1;
            } else {
                unfinished.push((JournalPlace::Share(JournalSlot { share: id, index }), entry));
            }
        }
        book.shares.insert(id, state);
    }
    Ok((book, unfinished))
}

/// The book as the disk has it: the live shares.
fn read_book(e: &Engine) -> Result<ShareBook, StoreError> {
    Ok(read_shares(e)?.0)
}

fn load(e: &Engine, book: &mut ShareBook) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot::default();
    for g in e.certificates.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let cert: Certificate = serde_json::from_slice(&v).map_err(|e| corrupt(&k, e))?;
        snap.certificates.push(cert);
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
        snap.accepted
            .push((JournalPlace::Legacy(Box::from(k.as_ref())), entry));
    }
    let (shares, unfinished) = read_shares(e)?;
    *book = shares;
    snap.accepted.extend(unfinished);
    if let Some(v) = e.meta.get(NEXT_CERT_ID).map_err(engine)? {
        let bytes: [u8; 8] = v
            .as_ref()
            .try_into()
            .map_err(|_| corrupt(NEXT_CERT_ID, "not 8 bytes"))?;
        snap.next_certificate_id = Some(u64::from_be_bytes(bytes));
    }
    Ok(snap)
}

/// The stored devices in batches (key order: a user's devices are adjacent, so a batch is cut
/// only before a user's first device).
fn load_devices(
    e: &Engine,
    each: &mut dyn FnMut(StoredDevices) -> ControlFlow<()>,
) -> Result<(), StoreError> {
    let new_batch = || StoredDevices::with_capacity(StoredDevices::TARGET_LEN + 32, 1 << 20);
    let mut batch = new_batch();
    for g in e.devices.iter() {
        let (k, v) = g.into_inner().map_err(engine)?;
        let sep = k
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| corrupt(&k, "no separator"))?;
        let (user, device) = (&k[..sep], &k[sep + 1..]);
        if batch.len() >= StoredDevices::TARGET_LEN
            && batch.last_user() != Some(user)
            && each(std::mem::replace(&mut batch, new_batch())).is_break()
        {
            return Ok(());
        }
        batch.push(user, device, &v);
    }
    if !batch.is_empty() {
        let _ = each(batch);
    }
    Ok(())
}

/// Sets the bits of finished notifications in their shares' progress: a share whose last
/// notification finished leaves the disk (or never reaches it, when it was created in this
/// group); the others are noted in `progressed`, their progress written once per group.
fn finish(
    e: &Engine,
    batch: &mut fjall::OwnedWriteBatch,
    slots: &[JournalSlot],
    book: &mut ShareBook,
    progressed: &mut Vec<u64>,
) {
    // A reply's notifications are mostly of one share: it is looked up once per run.
    let mut i = 0;
    while i < slots.len() {
        let id = slots[i].share;
        let run = slots[i..]
            .iter()
            .position(|s| s.share != id)
            .unwrap_or(slots.len() - i);
        let indexes = &slots[i..i + run];
        i += run;
        // Not live: never journaled, or its write failed (the book was read again since).
        let Some(share) = book.shares.get_mut(&id) else {
            continue;
        };
        for slot in indexes {
            let n = slot.index;
            if share.is_done(n) {
                continue;
            }
            let Some(w) = share.done.get_mut(n as usize / 64) else {
                continue;
            };
            *w |= 1 << (n % 64);
            share.left = share.left.saturating_sub(1);
        }
        if share.left == 0 {
            if share.on_disk {
                batch.remove(&e.shares, share_key(id));
            }
            if share.progress_on_disk {
                batch.remove(&e.shares, progress_key(id));
            }
            book.shares.remove(&id);
        } else {
            progressed.push(id);
        }
    }
}

fn apply(e: &Engine, ops: &[StoreOp], book: &mut ShareBook) -> Result<(), StoreError> {
    let mut batch = e.db.batch();
    // Shares created in this group, written at its end if they are still live then (a key is
    // never inserted and removed in one batch).
    let mut created: Vec<(u64, &[u8])> = Vec::new();
    // Shares with a notification finished in this group: their progress is written once.
    let mut progressed: Vec<u64> = Vec::new();
    let mut scratch: Vec<u8> = Vec::with_capacity(256);
    for op in ops {
        match op {
            StoreOp::PutDevice {
                user,
                device,
                record,
            } => {
                // Key and record encoded into one buffer for the group; the batch copies them.
                scratch.clear();
                scratch.extend_from_slice(user.as_bytes());
                scratch.push(0);
                scratch.extend_from_slice(device.as_bytes());
                let key_end = scratch.len();
                super::encode_device_record(record, &mut scratch);
                batch.insert(&e.devices, &scratch[..key_end], &scratch[key_end..]);
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
            StoreOp::PutShare { id, len, record } => {
                if *len > 0 {
                    book.shares.insert(*id, ShareState::new(*len));
                    created.push((*id, record));
                }
            }
            StoreOp::Finished(slots) => finish(e, &mut batch, slots, book, &mut progressed),
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
    for (id, record) in created {
        if let Some(share) = book.shares.get_mut(&id) {
            batch.insert(&e.shares, share_key(id), record);
            share.on_disk = true;
        }
    }
    progressed.sort_unstable();
    progressed.dedup();
    for id in progressed {
        if let Some(share) = book.shares.get_mut(&id) {
            batch.insert(&e.shares, progress_key(id), share.progress());
            share.progress_on_disk = true;
        }
    }
    if batch.is_empty() {
        // Removals of notifications the book no longer holds: nothing to write.
        return Ok(());
    }
    batch.commit().map_err(engine)?;
    // A group of removals only is handed to the OS without an fsync: it survives a crash of
    // the process (kill -9), and the next group that writes anything else syncs it with
    // its own. Only a power loss or an OS crash before that can lose it, and a lost removal
    // sends its notification again at the next start, as a crash between the vendor's
    // answer and the removal always did. Nobody waits on a removal (the senders queue them
    // without a ticket), and an fsync was a third of the writer's CPU when every vendor reply
    // made a group of its own.
    let mode = if ops.iter().all(is_removal) {
        PersistMode::Buffer
    } else {
        PersistMode::SyncAll
    };
    e.db.persist(mode).map_err(engine)
}

/// A change that only takes finished notifications out of the journal.
fn is_removal(op: &StoreOp) -> bool {
    matches!(op, StoreOp::Finished(_) | StoreOp::DeleteAccepted(_))
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

#[cfg(test)]
mod share_tests {
    //! The journal of accepted notifications, a share at a time: what a start reads back is
    //! exactly what was accepted and not finished, whatever the order of the removals.
    use super::*;
    use crate::domain::message::{Message, PushContent};
    use crate::push::PushJob;
    use std::sync::Arc;
    use std::time::Instant;

    fn message(id: u64) -> Arc<Message> {
        Arc::new(Message {
            id,
            from: "carol".into(),
            text: "hi".into(),
            title: None,
            desc: None,
            ext: None,
            push: Ok(PushContent {
                title: "carol".into(),
                desc: "hi".into(),
                ext: None,
                channel_id: None,
                global: Default::default(),
                hw: Default::default(),
                conversation: "c2c:carol".into(),
                ovm: Default::default(),
            }),
            accepted_at: Instant::now(),
        })
    }

    fn jobs(m: &Arc<Message>, cert: u64, users: std::ops::Range<usize>) -> Vec<PushJob> {
        users
            .map(|i| PushJob {
                cert,
                token: Arc::from(format!("token-{i}").as_str()),
                user: format!("u{i}").into(),
                device: "d1".into(),
                message: m.clone(),
                attempt: 0,
                journal: None,
            })
            .collect()
    }

    /// Journals `jobs` as share `id` (as the hand-off to the senders does), noting each
    /// notification's slot.
    fn put(jobs: &mut [PushJob], id: u64) -> StoreOp {
        for (index, j) in (0u32..).zip(jobs.iter_mut()) {
            j.journal = Some(JournalSlot { share: id, index });
        }
        StoreOp::PutShare {
            id,
            len: jobs.len() as u32,
            record: crate::push::outbox::encode_share(jobs).expect("a notification"),
        }
    }

    fn finished(j: &[PushJob]) -> StoreOp {
        StoreOp::Finished(j.iter().filter_map(|j| j.journal).collect())
    }

    /// The users of the notifications a fresh start of the store at `dir` reads back with
    /// their places, sorted by user.
    fn read_back(dir: &Path) -> Vec<(String, JournalPlace)> {
        let store = FjallStore::open(dir).expect("open");
        let mut users: Vec<(String, JournalPlace)> = store
            .load()
            .expect("load")
            .accepted
            .into_iter()
            .map(|(place, e)| (e.user, place))
            .collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        users
    }

    fn unfinished(dir: &Path) -> Vec<String> {
        read_back(dir).into_iter().map(|(u, _)| u).collect()
    }

    fn names(r: std::ops::Range<usize>) -> Vec<String> {
        let mut v: Vec<String> = r.map(|i| format!("u{i}")).collect();
        v.sort();
        v
    }

    #[test]
    fn a_start_reads_back_exactly_the_unfinished_notifications_of_each_share() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("store");
        let (a, b) = (message(1), message(2));
        // Two messages, one of them to two certificates: three shares in one group.
        let (mut a1, mut a2, mut b1) = (
            jobs(&a, 1001, 0..100),
            jobs(&a, 1002, 100..110),
            jobs(&b, 1001, 200..203),
        );
        {
            let store = FjallStore::open(&dir).expect("open");
            store.load().expect("load");
            let first = store.first_free_share_id();
            let ops = [
                put(&mut a1, first),
                put(&mut a2, first + 1),
                put(&mut b1, first + 2),
            ];
            store.apply(&ops).expect("put");
            // Finished in two vendor replies (two groups), out of order; b1 entirely.
            store.apply(&[finished(&a1[70..])]).expect("first reply");
            let mut mixed: Vec<PushJob> = a1[..5].to_vec();
            mixed.extend(b1.iter().cloned());
            mixed.extend(a2[..1].iter().cloned());
            store.apply(&[finished(&mixed)]).expect("second reply");
        }
        let mut want = names(5..70);
        want.extend(names(101..110));
        want.sort();
        assert_eq!(unfinished(&dir), want);
        // Each one read back in the slot it was journaled in.
        let mut slots: Vec<JournalPlace> = read_back(&dir).into_iter().map(|(_, p)| p).collect();
        let mut journaled: Vec<JournalPlace> = a1[5..70]
            .iter()
            .chain(&a2[1..])
            .filter_map(|j| j.journal.map(JournalPlace::Share))
            .collect();
        let order = |p: &JournalPlace| match p {
            JournalPlace::Share(s) => (s.share, s.index),
            JournalPlace::Legacy(_) => (0, 0),
        };
        slots.sort_by_key(order);
        journaled.sort_by_key(order);
        assert_eq!(slots, journaled);

        // Queued again at start, they keep their slots: finishing them empties the journal,
        // progress records included; the next share id is above every one used.
        {
            let store = FjallStore::open(&dir).expect("open");
            store.load().expect("load");
            assert!(store.first_free_share_id() > a2[0].journal.expect("slot").share);
            store.apply(&[finished(&a1[5..70])]).expect("finished");
            store.apply(&[finished(&a2[1..])]).expect("finished");
            assert_eq!(share_records(&store), 0, "no share or progress record left");
        }
        assert!(unfinished(&dir).is_empty());
    }

    fn share_records(store: &FjallStore) -> usize {
        let e = store.engine.read().expect("engine");
        e.as_ref().expect("open").shares.iter().count()
    }

    #[test]
    fn a_share_finished_in_the_group_that_journals_it_is_never_written() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("store");
        let (a, b) = (message(1), message(2));
        let (mut a1, mut b1) = (jobs(&a, 1001, 0..4), jobs(&b, 1001, 10..14));
        {
            let store = FjallStore::open(&dir).expect("open");
            store.load().expect("load");
            // a1 is journaled and finished in one group (a fast vendor); b1 half of it.
            let ops = [
                put(&mut a1, 1),
                put(&mut b1, 2),
                finished(&a1),
                finished(&b1[..2]),
            ];
            store.apply(&ops).expect("one group");
            assert_eq!(share_records(&store), 2, "b1's share and its progress only");
        }
        assert_eq!(unfinished(&dir), names(12..14));
    }

    #[test]
    fn a_write_before_any_load_continues_the_shares_on_disk() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("store");
        let (a, b) = (message(1), message(2));
        let (mut a1, mut b1) = (jobs(&a, 1001, 0..3), jobs(&b, 1001, 10..12));
        {
            let store = FjallStore::open(&dir).expect("open");
            store.apply(&[put(&mut a1, 1)]).expect("put");
        }
        {
            // No load: the share ids on disk must still not be reused, nor a1 forgotten.
            let store = FjallStore::open(&dir).expect("open");
            let id = store.first_free_share_id();
            assert_eq!(id, 2);
            store.apply(&[put(&mut b1, id)]).expect("put");
            store.apply(&[finished(&a1[..1])]).expect("finished");
        }
        let mut want = names(1..3);
        want.extend(names(10..12));
        want.sort();
        assert_eq!(unfinished(&dir), want);
    }

    #[test]
    fn a_removal_for_a_share_whose_write_failed_finishes_nothing_else() {
        // A share id is never reused, so a removal that arrives after its share's write failed
        // (the book is read again from the disk) cannot finish a notification of another share.
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("store");
        let (a, b) = (message(1), message(2));
        let (mut a1, mut b1) = (jobs(&a, 1001, 0..3), jobs(&b, 1001, 10..13));
        let store = FjallStore::open(&dir).expect("open");
        store.load().expect("load");
        let lost = put(&mut a1, 5);
        drop(lost); // never reaches the disk
        store.apply(&[put(&mut b1, 6)]).expect("put");
        store.apply(&[finished(&a1)]).expect("finishes nothing");
        drop(store);
        assert_eq!(unfinished(&dir), names(10..13));
    }

    #[test]
    fn a_notification_journaled_one_record_each_by_an_older_version_is_still_sent_and_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("store");
        let m = message(7);
        let mut old = jobs(&m, 1001, 0..3);
        {
            let store = FjallStore::open(&dir).expect("open");
            let e = store.engine.read().expect("engine");
            let e = e.as_ref().expect("open");
            let mut cache = crate::push::outbox::MessageCache::default();
            for j in &old {
                let (k, v) = cache.encode(j).expect("encodes");
                e.accepted.insert(&*k, v).expect("insert");
            }
        }
        let back = read_back(&dir);
        assert_eq!(back.len(), 3);
        for ((user, place), j) in back.iter().zip(&old) {
            assert_eq!(user, &j.user.to_string());
            assert_eq!(
                place,
                &JournalPlace::Legacy(crate::push::outbox::accepted_key(j))
            );
        }
        {
            let store = FjallStore::open(&dir).expect("open");
            store.load().expect("load");
            // Queued again at start: journaled as a share, then the old records removed.
            let id = store.first_free_share_id();
            store.apply(&[put(&mut old, id)]).expect("queued again");
            let removals: Vec<StoreOp> = back
                .into_iter()
                .filter_map(|(_, p)| match p {
                    JournalPlace::Legacy(k) => Some(StoreOp::DeleteAccepted(k)),
                    JournalPlace::Share(_) => None,
                })
                .collect();
            store.apply(&removals).expect("old records removed");
            let e = store.engine.read().expect("engine");
            assert_eq!(e.as_ref().expect("open").accepted.iter().count(), 0);
        }
        assert_eq!(
            unfinished(&dir),
            names(0..3),
            "read back once, from the share"
        );
        {
            let store = FjallStore::open(&dir).expect("open");
            store.load().expect("load");
            store.apply(&[finished(&old)]).expect("finished");
        }
        assert!(unfinished(&dir).is_empty());
    }
}
