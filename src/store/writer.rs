//! The single writer thread with group commit.

use super::{JournalSlot, Store, StoreError, StoreFault, StoreOp};
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub type Reply = oneshot::Sender<Result<(), Arc<StoreError>>>;

/// What the writer receives: changes to commit, or the order to finish.
enum Cmd {
    Ops(Vec<StoreOp>, Reply),
    /// Commit what is queued before this, then stop; answered when the writer is done.
    Shutdown(oneshot::Sender<()>),
}

/// Metrics the writer and its handles fill (optional so unit tests need no registry).
#[derive(Clone, Default)]
pub struct StoreMetrics {
    pub commit_seconds: Option<Histogram>,
    pub group_size: Option<Histogram>,
    /// Changes waiting in the queue, updated where they enter and leave it.
    pub queue_depth: Option<IntGauge>,
    /// Changes refused because the queue was full.
    pub busy: Option<IntCounter>,
    /// Commit groups the disk refused, by fault (`pushgate_store_write_failures_total`).
    pub write_failures: Option<IntCounterVec>,
    /// 1 while the store can write, 0 from a failed write until one succeeds again.
    pub writable: Option<IntGauge>,
}

/// After a failed write, the writer reopens the engine and tries again at most this often
/// (a reopen replays the journal); the groups in between are refused at once.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The most device records remembered as unsynced; past it, every device is written again.
const MAX_UNSYNCED_DEVICES: usize = 100_000;

/// The most finished-notification deletions remembered; past it, the rest are sent again by
/// the next start (counted, logged).
const MAX_UNSYNCED_FINISHED: usize = 1_000_000;

/// Whether the store can write, and what memory holds that the disk refused, for the gateway
/// to write again once it can ([`StoreHandle::health`]).
#[derive(Default)]
pub struct StoreHealth {
    /// 0 while writable; else 1 + the index of the fault in `StoreFault::ALL`.
    fault: AtomicU8,
    unsynced: Mutex<Unsynced>,
}

/// Changes the disk refused while memory kept them.
#[derive(Default, Debug)]
pub struct Unsynced {
    /// Devices whose record in memory may differ from the disk's.
    pub devices: HashSet<(String, String)>,
    /// Too many to list: every device is to be written again.
    pub all_devices: bool,
    /// Journal keys (older versions' one-record-each entries) of notifications that finished
    /// but are still on disk.
    pub finished: Vec<Box<[u8]>>,
    /// Journal slots of notifications that finished but are still unfinished on disk.
    pub finished_slots: Vec<JournalSlot>,
}

impl Unsynced {
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
            && !self.all_devices
            && self.finished.is_empty()
            && self.finished_slots.is_empty()
    }
}

impl StoreHealth {
    /// Why the store cannot write, while it cannot.
    pub fn fault(&self) -> Option<StoreFault> {
        match self.fault.load(Ordering::Acquire) {
            0 => None,
            i => StoreFault::ALL.get(usize::from(i) - 1).copied(),
        }
    }

    fn set_fault(&self, fault: Option<StoreFault>) {
        let i = fault
            .and_then(|f| StoreFault::ALL.iter().position(|a| *a == f))
            .map_or(0, |i| i as u8 + 1);
        self.fault.store(i, Ordering::Release);
    }

    /// Takes what is to be written again (the gateway does it once the store is writable).
    pub fn take_unsynced(&self) -> Unsynced {
        std::mem::take(&mut *self.unsynced.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Remembers what the failed changes would have written.
    fn refused(&self, ops: &[StoreOp]) {
        let mut u = self.unsynced.lock().unwrap_or_else(|e| e.into_inner());
        for op in ops {
            match op {
                StoreOp::PutDevice { user, device, .. } if !u.all_devices => {
                    u.devices.insert((user.clone(), device.clone()));
                    if u.devices.len() > MAX_UNSYNCED_DEVICES {
                        u.devices.clear();
                        u.all_devices = true;
                    }
                }
                StoreOp::DeleteAccepted(key) => {
                    if u.finished.len() + u.finished_slots.len() < MAX_UNSYNCED_FINISHED {
                        u.finished.push(key.clone());
                    } else {
                        tracing::error!(
                            "a finished notification stays journaled: the next start sends it again"
                        );
                    }
                }
                StoreOp::Finished(slots) => {
                    let room = MAX_UNSYNCED_FINISHED
                        .saturating_sub(u.finished.len() + u.finished_slots.len());
                    u.finished_slots
                        .extend_from_slice(&slots[..slots.len().min(room)]);
                    if slots.len() > room {
                        tracing::error!(
                            notifications = slots.len() - room,
                            "finished notifications stay journaled: the next start sends them again"
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// Sends changes to the writer. Cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
    queue_depth: Option<IntGauge>,
    busy: Option<IntCounter>,
    health: Arc<StoreHealth>,
    /// The next share id ([`StoreHandle::new_share_id`]).
    share_ids: Arc<AtomicU64>,
}

/// A reserved place in the writer's queue. Take it before changing the registry, send while the
/// change is still locked, so the disk sees changes in the order memory did.
pub struct StorePermit<'a> {
    permit: mpsc::Permit<'a, Cmd>,
}

/// Resolves when the change (or every change it was joined from) is on disk.
#[derive(Debug)]
pub struct CommitTicket(Vec<oneshot::Receiver<Result<(), Arc<StoreError>>>>);

impl CommitTicket {
    pub async fn wait(self) -> Result<(), Arc<StoreError>> {
        for rx in self.0 {
            rx.await
                .unwrap_or_else(|_| Err(Arc::new(StoreError::Stopped)))?;
        }
        Ok(())
    }

    /// A ticket resolved by whoever holds the sender (cluster mode: an acknowledged write to
    /// Redis, for the callers that wait on tickets).
    pub fn pending() -> (Reply, CommitTicket) {
        let (tx, rx) = oneshot::channel();
        (tx, CommitTicket(vec![rx]))
    }

    /// A ticket that is already done (nothing to write).
    pub fn done() -> CommitTicket {
        CommitTicket(Vec::new())
    }

    /// One ticket for several writes: done when all are.
    pub fn join(tickets: impl IntoIterator<Item = CommitTicket>) -> CommitTicket {
        CommitTicket(tickets.into_iter().flat_map(|t| t.0).collect())
    }
}

impl StorePermit<'_> {
    pub fn send(self, ops: Vec<StoreOp>) -> CommitTicket {
        let (tx, rx) = oneshot::channel();
        if ops.is_empty() {
            let _ = tx.send(Ok(()));
        } else {
            self.permit.send(Cmd::Ops(ops, tx));
        }
        CommitTicket(vec![rx])
    }
}

impl StoreHandle {
    /// Starts the writer thread. `capacity` bounds the queued changes; `max_group` the changes
    /// in one commit.
    pub fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        max_group: usize,
        metrics: StoreMetrics,
    ) -> std::io::Result<(StoreHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let health = Arc::new(StoreHealth::default());
        let handle = StoreHandle {
            tx,
            queue_depth: metrics.queue_depth.clone(),
            busy: metrics.busy.clone(),
            health: health.clone(),
            share_ids: Arc::new(AtomicU64::new(store.first_free_share_id())),
        };
        if let Some(g) = &metrics.writable {
            g.set(1);
        }
        let join = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(store, rx, max_group.max(1), metrics, health))?;
        Ok((handle, join))
    }

    /// A share id never used before (on disk or in this process): the caller journals a
    /// share under it with [`StoreOp::PutShare`].
    pub fn new_share_id(&self) -> u64 {
        self.share_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether the store can write, and what it refused.
    pub fn health(&self) -> &Arc<StoreHealth> {
        &self.health
    }

    /// Reserves a place in the queue without waiting; `Busy` when the queue is full.
    pub fn reserve(&self) -> Result<StorePermit<'_>, StoreError> {
        let reserved = self.tx.try_reserve();
        if let Some(g) = &self.queue_depth {
            // Reserved places count: they are changes about to be queued.
            g.set((self.tx.max_capacity() - self.tx.capacity()) as i64);
        }
        match reserved {
            Ok(permit) => Ok(StorePermit { permit }),
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(c) = &self.busy {
                    c.inc();
                }
                Err(StoreError::Busy)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Stopped),
        }
    }

    /// Finishes the queued changes and stops the writer (graceful shutdown). Later changes get
    /// `Stopped`.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Queues changes (waiting for room) and resolves when they are on disk.
    pub async fn commit(&self, ops: Vec<StoreOp>) -> Result<(), Arc<StoreError>> {
        if ops.is_empty() {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Ops(ops, tx))
            .await
            .map_err(|_| Arc::new(StoreError::Stopped))?;
        CommitTicket(vec![rx]).wait().await
    }
}

/// The writer's memory of a failed write.
struct Recovery {
    health: Arc<StoreHealth>,
    /// No reopen before this.
    retry_at: Option<Instant>,
}

impl Recovery {
    /// Commits `ops`; while the store is unwritable, reopens it first, at most every
    /// `RETRY_EVERY`, and refuses the groups in between without touching the disk.
    fn commit(&mut self, store: &dyn Store, ops: &[StoreOp]) -> Result<(), StoreError> {
        if let Some(fault) = self.health.fault() {
            let now = Instant::now();
            if self.retry_at.is_some_and(|t| now < t) {
                return Err(StoreError::Unwritable {
                    fault,
                    detail: "the last write failed under a second ago".into(),
                });
            }
            self.retry_at = Some(now + RETRY_EVERY);
            store.reopen().inspect_err(|_| store.close())?;
        }
        store.apply(ops).inspect_err(|e| {
            if matches!(e, StoreError::Unwritable { .. }) {
                store.close();
            }
        })
    }

    /// Records the outcome of a commit: a refusal by the disk makes the store unwritable until
    /// a commit succeeds again.
    fn settle(&mut self, result: &Result<(), StoreError>, ops: &[StoreOp], metrics: &StoreMetrics) {
        let was = self.health.fault();
        match result {
            Ok(()) => {
                if let Some(fault) = was {
                    tracing::info!(after = %fault, "the store writes again");
                    self.health.set_fault(None);
                    self.retry_at = None;
                    if let Some(g) = &metrics.writable {
                        g.set(1);
                    }
                }
            }
            Err(StoreError::Unwritable { fault, detail }) => {
                // "Poisoned" only says an earlier write failed: the earlier cause is the news.
                let fault = match (was, *fault) {
                    (Some(w), StoreFault::Poisoned) => w,
                    (_, f) => f,
                };
                if let Some(c) = &metrics.write_failures {
                    c.with_label_values(&[fault.label()]).inc();
                }
                if was.is_none() {
                    tracing::error!(%fault, %detail, "the store cannot write: durable changes are refused with 503 until it can");
                    self.retry_at = Some(Instant::now() + RETRY_EVERY);
                    if let Some(g) = &metrics.writable {
                        g.set(0);
                    }
                }
                self.health.set_fault(Some(fault));
                self.health.refused(ops);
            }
            Err(e) => {
                tracing::error!(error = %e, changes = ops.len(), "store commit failed");
            }
        }
    }
}

fn run_writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Cmd>,
    max_group: usize,
    metrics: StoreMetrics,
    health: Arc<StoreHealth>,
) {
    // Only to wait for a change with a timeout while the store is unwritable (to probe it).
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .inspect_err(|e| tracing::warn!(error = %e, "the store writer has no timer: an unwritable store is retried only when a change arrives"))
        .ok();
    let mut recovery = Recovery {
        health,
        retry_at: None,
    };
    let mut ops: Vec<StoreOp> = Vec::new();
    let mut waiting: Vec<Reply> = Vec::new();
    let mut stop: Option<oneshot::Sender<()>> = None;
    while stop.is_none() {
        let next = match (&timer, recovery.health.fault()) {
            (Some(rt), Some(_)) => {
                match rt.block_on(async { tokio::time::timeout(RETRY_EVERY, rx.recv()).await }) {
                    Ok(next) => next,
                    Err(_) => {
                        // Idle while unwritable: try a small write, so /readyz comes back without
                        // waiting for a request.
                        let result = recovery.commit(&*store, &[StoreOp::Probe]);
                        recovery.settle(&result, &[], &metrics);
                        continue;
                    }
                }
            }
            _ => rx.blocking_recv(),
        };
        match next {
            Some(Cmd::Ops(first, reply)) => {
                ops.extend(first);
                waiting.push(reply);
            }
            Some(Cmd::Shutdown(done)) => {
                stop = Some(done);
            }
            None => break,
        }
        while stop.is_none() && waiting.len() < max_group {
            match rx.try_recv() {
                Ok(Cmd::Ops(more, reply)) => {
                    ops.extend(more);
                    waiting.push(reply);
                }
                Ok(Cmd::Shutdown(done)) => stop = Some(done),
                Err(_) => break,
            }
        }
        if let Some(g) = &metrics.queue_depth {
            g.set(rx.len() as i64);
        }
        if waiting.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = recovery.commit(&*store, &ops);
        if let Some(h) = &metrics.commit_seconds {
            h.observe(started.elapsed().as_secs_f64());
        }
        if let Some(h) = &metrics.group_size {
            h.observe(waiting.len() as f64);
        }
        recovery.settle(&result, &ops, &metrics);
        let result = result.map_err(Arc::new);
        for w in waiting.drain(..) {
            let _ = w.send(result.clone());
        }
        ops.clear();
    }
    rx.close();
    // Changes that raced with the shutdown are refused, never silently dropped.
    while let Ok(cmd) = rx.try_recv() {
        if let Cmd::Ops(_, reply) = cmd {
            let _ = reply.send(Err(Arc::new(StoreError::Stopped)));
        }
    }
    if let Err(e) = store.sync().or_else(|e| match recovery.health.fault() {
        // Unwritable: what it refused is remembered, not lost; nothing more to say.
        Some(_) => Ok(()),
        None => Err(e),
    }) {
        tracing::warn!(error = %e, "the store's last removals were not synced");
    }
    drop(store);
    if let Some(done) = stop {
        let _ = done.send(());
    }
    tracing::debug!("store writer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Certificate;
    use crate::registry::DeviceRecord;
    use crate::store::FjallStore;

    fn cert(id: u64) -> Certificate {
        Certificate::xiaomi_for_tests(id, "s", 10)
    }

    #[tokio::test]
    async fn group_commit_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(FjallStore::open(dir.path()).unwrap());
            let (h, join) = StoreHandle::start(store, 64, 16, StoreMetrics::default()).unwrap();
            let mut tickets = vec![];
            for i in 0..10u64 {
                let p = h.reserve().unwrap();
                tickets.push(p.send(vec![StoreOp::PutDevice {
                    user: format!("u{i}"),
                    device: "d".into(),
                    record: DeviceRecord {
                        platform: crate::domain::Platform::Android,
                        state: "PushOnline".into(),
                        background: false,
                        offline_reason: None,
                        since: i,
                        token: Some((7, format!("t{i}"))),
                    },
                }]));
            }
            h.commit(vec![
                StoreOp::PutCertificate(Box::new(cert(7))),
                StoreOp::NextCertificateId(8),
            ])
            .await
            .unwrap();
            for t in tickets {
                t.wait().await.unwrap();
            }
            drop(h);
            join.join().unwrap();
        }
        let store = FjallStore::open(dir.path()).unwrap();
        let snap = store.load().unwrap();
        let mut devices = 0;
        store
            .load_devices(&mut |batch| {
                devices += batch.len();
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(devices, 10);
        assert_eq!(snap.certificates, vec![cert(7)]);
        assert_eq!(snap.next_certificate_id, Some(8));
    }

    #[tokio::test]
    async fn queue_depth_and_refusals_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FjallStore::open(dir.path()).unwrap());
        let metrics = StoreMetrics {
            queue_depth: Some(IntGauge::new("depth", "d").unwrap()),
            busy: Some(IntCounter::new("busy", "b").unwrap()),
            ..StoreMetrics::default()
        };
        let (h, join) = StoreHandle::start(store, 2, 16, metrics.clone()).unwrap();
        let depth = metrics.queue_depth.unwrap();
        let busy = metrics.busy.unwrap();
        // Two reserved places fill the queue; the third change is refused and counted.
        let first = h.reserve().unwrap();
        let second = h.reserve().unwrap();
        assert_eq!(depth.get(), 2);
        assert!(matches!(h.reserve(), Err(StoreError::Busy)));
        assert_eq!(busy.get(), 1);
        // Once the writer has taken the changes, the queue is empty again.
        let ops = |i: u64| vec![StoreOp::NextCertificateId(i)];
        let (a, b) = (first.send(ops(1)), second.send(ops(2)));
        a.wait().await.unwrap();
        b.wait().await.unwrap();
        assert_eq!(depth.get(), 0);
        assert!(h.reserve().is_ok());
        assert_eq!(busy.get(), 1);
        drop(h);
        join.join().unwrap();
    }

    /// A store whose disk refuses writes while `full` is set (fjall's behaviour: every write
    /// after a failed one is refused until a reopen).
    #[derive(Default)]
    struct FlakyDisk {
        full: std::sync::atomic::AtomicBool,
        poisoned: std::sync::atomic::AtomicBool,
        reopens: std::sync::atomic::AtomicUsize,
        written: Mutex<Vec<String>>,
    }

    impl Store for FlakyDisk {
        fn load(&self) -> Result<crate::store::Snapshot, StoreError> {
            Ok(Default::default())
        }
        fn apply(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
            if self.poisoned.load(Ordering::SeqCst) {
                return Err(StoreError::Unwritable {
                    fault: StoreFault::Poisoned,
                    detail: "poisoned".into(),
                });
            }
            if self.full.load(Ordering::SeqCst) {
                self.poisoned.store(true, Ordering::SeqCst);
                return Err(StoreError::Unwritable {
                    fault: StoreFault::DiskFull,
                    detail: "No space left on device (os error 28)".into(),
                });
            }
            let mut w = self.written.lock().unwrap();
            w.extend(ops.iter().map(|op| format!("{op:?}")));
            Ok(())
        }
        fn reopen(&self) -> Result<(), StoreError> {
            self.reopens.fetch_add(1, Ordering::SeqCst);
            self.poisoned.store(false, Ordering::SeqCst);
            Ok(())
        }
    }

    fn device(user: &str) -> StoreOp {
        StoreOp::PutDevice {
            user: user.into(),
            device: "d".into(),
            record: DeviceRecord {
                platform: crate::domain::Platform::Android,
                state: "PushOnline".into(),
                background: false,
                offline_reason: None,
                since: 1,
                token: None,
            },
        }
    }

    #[tokio::test]
    async fn a_full_disk_refuses_changes_until_it_has_room_and_remembers_what_it_refused() {
        let disk = Arc::new(FlakyDisk::default());
        let metrics = StoreMetrics {
            write_failures: Some(
                IntCounterVec::new(prometheus::Opts::new("f", "f"), &["reason"]).unwrap(),
            ),
            writable: Some(IntGauge::new("w", "w").unwrap()),
            ..StoreMetrics::default()
        };
        let (h, join) = StoreHandle::start(disk.clone(), 64, 16, metrics.clone()).unwrap();
        h.commit(vec![device("before")]).await.unwrap();
        assert_eq!(h.health().fault(), None);

        disk.full.store(true, Ordering::SeqCst);
        let refused = h.commit(vec![device("refused")]).await.unwrap_err();
        assert!(matches!(
            &*refused,
            StoreError::Unwritable {
                fault: StoreFault::DiskFull,
                ..
            }
        ));
        // Within the second after a failure, changes are refused without touching the disk,
        // and the fault reported is the cause, not fjall's "poisoned".
        let fast = h.commit(vec![StoreOp::DeleteAccepted(Box::from(&b"k"[..]))]);
        assert!(fast.await.is_err());
        assert_eq!(h.health().fault(), Some(StoreFault::DiskFull));
        let failures = metrics.write_failures.as_ref().unwrap();
        assert_eq!(failures.with_label_values(&["disk_full"]).get(), 2);
        assert_eq!(failures.with_label_values(&["poisoned"]).get(), 0);
        assert_eq!(metrics.writable.as_ref().unwrap().get(), 0);

        // Room again: the idle writer's probe reopens and writes, with no change sent.
        disk.full.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while h.health().fault().is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(h.health().fault(), None, "writable again without a change");
        assert!(disk.reopens.load(Ordering::SeqCst) >= 1);
        assert_eq!(metrics.writable.as_ref().unwrap().get(), 1);
        h.commit(vec![device("after")]).await.unwrap();
        let unsynced = h.health().take_unsynced();
        assert!(unsynced
            .devices
            .contains(&("refused".to_string(), "d".to_string())));
        assert_eq!(unsynced.finished, vec![Box::from(&b"k"[..])]);
        let written = disk.written.lock().unwrap().join("\n");
        assert!(written.contains("before") && written.contains("after"));
        assert!(!written.contains("refused"));
        drop(h);
        join.join().unwrap();
    }
}
