//! The single writer thread with group commit.

use super::{Store, StoreError, StoreOp};
use prometheus::{Histogram, IntCounter, IntGauge};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<(), Arc<StoreError>>>;

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
}

/// Sends changes to the writer. Cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
    queue_depth: Option<IntGauge>,
    busy: Option<IntCounter>,
}

/// A reserved place in the writer's queue. Take it before changing the registry, send while the
/// change is still locked, so the disk sees changes in the order memory did.
pub struct StorePermit<'a> {
    permit: mpsc::Permit<'a, Cmd>,
}

/// Resolves when the change is on disk.
pub struct CommitTicket(oneshot::Receiver<Result<(), Arc<StoreError>>>);

impl CommitTicket {
    pub async fn wait(self) -> Result<(), Arc<StoreError>> {
        self.0
            .await
            .unwrap_or_else(|_| Err(Arc::new(StoreError::Stopped)))
    }

    /// A ticket that is already done (nothing to write).
    pub fn done() -> CommitTicket {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(()));
        CommitTicket(rx)
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
        CommitTicket(rx)
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
        let handle = StoreHandle {
            tx,
            queue_depth: metrics.queue_depth.clone(),
            busy: metrics.busy.clone(),
        };
        let join = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run_writer(store, rx, max_group.max(1), metrics))?;
        Ok((handle, join))
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
        CommitTicket(rx).wait().await
    }
}

fn run_writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Cmd>,
    max_group: usize,
    metrics: StoreMetrics,
) {
    let mut ops: Vec<StoreOp> = Vec::new();
    let mut waiting: Vec<Reply> = Vec::new();
    let mut stop: Option<oneshot::Sender<()>> = None;
    while stop.is_none() {
        match rx.blocking_recv() {
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
        let result = store.apply(&ops).map_err(Arc::new);
        if let Some(h) = &metrics.commit_seconds {
            h.observe(started.elapsed().as_secs_f64());
        }
        if let Some(h) = &metrics.group_size {
            h.observe(waiting.len() as f64);
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, changes = ops.len(), "store commit failed");
        }
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
        assert_eq!(snap.devices.len(), 10);
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
}
