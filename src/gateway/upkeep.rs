//! Upkeep: the retention sweep, the gauges published at scrape, graceful shutdown.

use super::*;
use crate::certs::CertHealth;

impl Gateway {
    /// Moves expired `PushOnline` devices to `Offline` and persists them.
    pub async fn sweep(&self) {
        let mut journal = StoreJournal::new(&self.store);
        self.registry
            .sweep_expired_journaled(now_secs(), &mut journal);
        if let Some(t) = journal.ticket() {
            if let Err(e) = t.wait().await {
                tracing::error!(error = %e, "persisting expired devices failed");
            }
        }
    }

    /// Publishes registry sizes and certificate states into the metrics (called at scrape).
    pub fn refresh_gauges(&self) {
        let c = self.registry.counts();
        let m = &self.metrics;
        for (state, count) in [
            ("online", &c.online),
            ("background", &c.background),
            ("push_online", &c.push_online),
            ("offline", &c.offline),
        ] {
            m.devices
                .with_label_values(&[state])
                .set(count.load(Ordering::Relaxed));
        }
        m.tokens_bound.set(c.tokens.load(Ordering::Relaxed));
        m.users.set(self.registry.user_count() as i64);
        m.ws_connections.set(self.hub.len() as i64);
        let now = now_secs();
        let (mut healthy, mut broken, mut paused) = (0, 0, 0);
        for e in self.certs.all() {
            match e.status(now).state {
                CertHealth::Broken => broken += 1,
                CertHealth::QuotaPaused => paused += 1,
                CertHealth::Healthy => healthy += 1,
            }
        }
        m.certificates.with_label_values(&["healthy"]).set(healthy);
        m.certificates.with_label_values(&["broken"]).set(broken);
        m.certificates
            .with_label_values(&["quota_paused"])
            .set(paused);
        self.touch_receipt_counters();
    }

    /// The first step of a shutdown: every live WebSocket gets a close frame (1001) at once,
    /// its device goes `PushOnline` and its unacked messages to push. Without it the HTTP
    /// server would wait its whole grace for connections that never end by themselves.
    pub fn close_sessions(&self) {
        for conn in self.hub.conn_ids() {
            if let Err(e) = self.hub.send(conn, SessionCommand::Shutdown) {
                tracing::warn!(error = %e, "a session could not be told to close");
            }
        }
    }

    /// Graceful shutdown after the listener stopped: the senders send what they hold within
    /// `push.shutdown_grace_secs`, what is left goes to the store's outbox, the store writer
    /// commits what is queued and stops.
    pub async fn shutdown(&self) {
        let grace = Duration::from_secs(self.config.push.shutdown_grace_secs);
        let left = self.senders.drain(grace).await;
        if !left.is_empty() {
            let base = self
                .next_message_id
                .fetch_add(left.len() as u64, Ordering::Relaxed);
            let n = left.len();
            let ops = left
                .into_iter()
                .enumerate()
                .map(|(i, e)| StoreOp::PutOutbox(base + i as u64, Box::new(e)))
                .collect();
            match self.store.commit(ops).await {
                Ok(()) => tracing::info!(
                    notifications = n,
                    "unsent notifications saved to the outbox for the next start"
                ),
                Err(e) => tracing::error!(
                    error = %e,
                    notifications = n,
                    "unsent notifications could not be saved to the outbox: lost"
                ),
            }
        }
        self.senders.shutdown();
        self.store.shutdown().await;
    }

    /// Sends again what the last shutdown left in the outbox, and takes it out of the store
    /// once its sender holds it. One whose certificate is gone (or whose queue is full) is
    /// counted `dropped`.
    pub async fn resend_outbox(&self, entries: Vec<(u64, crate::push::outbox::OutboxEntry)>) {
        if entries.is_empty() {
            return;
        }
        let n = entries.len();
        let mut keys = Vec::with_capacity(n);
        let mut dropped = 0u64;
        {
            let mut batch = self.senders.batch();
            for (key, entry) in entries {
                keys.push(StoreOp::DeleteOutbox(key));
                if let Err(e) = batch.add(entry.into_job()) {
                    dropped += 1;
                    tracing::warn!(error = %e, "an outbox notification could not be queued");
                }
            }
        }
        // Its certificate was deleted, or its queue is full: counted, never silent.
        self.metrics
            .outbox
            .with_label_values(&["dropped"])
            .inc_by(dropped);
        self.metrics
            .outbox
            .with_label_values(&["resent"])
            .inc_by(n as u64 - dropped);
        tracing::info!(notifications = n, "sending the outbox of the last shutdown");
        if let Err(e) = self.store.commit(keys).await {
            tracing::error!(error = %e, "clearing the sent outbox failed (it will be sent again)");
        }
    }

    /// Starts the periodic retention sweep.
    pub fn start_sweeper(self: &Arc<Self>) {
        let g = Arc::downgrade(self);
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match g.upgrade() {
                    Some(g) => g.sweep().await,
                    None => break,
                }
            }
        });
    }
}
