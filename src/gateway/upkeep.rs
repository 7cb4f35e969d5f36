//! Upkeep: the retention sweep, the gauges published at scrape, graceful shutdown.

use super::*;
use crate::certs::CertHealth;
use crate::store::JournalPlace;

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
    /// `push.shutdown_grace_secs` (what is left stays in the journal of accepted
    /// notifications, for the next start), the store writer commits what is queued and stops.
    pub async fn shutdown(&self) {
        let grace = Duration::from_secs(self.config.push.shutdown_grace_secs);
        let left = self.senders.drain(grace).await;
        if left > 0 {
            tracing::info!(
                notifications = left,
                "unsent notifications stay journaled for the next start"
            );
        }
        self.senders.shutdown();
        self.store.shutdown().await;
    }

    /// Queues again the notifications the last process accepted and did not finish (its
    /// journal), and the outbox an older version's shutdown left. One journaled in a share
    /// keeps its place until it finishes; one an older version journaled one record each, or
    /// left in its outbox, is journaled again as a share and its old record removed once that
    /// is on disk. One whose certificate is gone (or whose queue is full) is counted `dropped`
    /// and taken out.
    pub async fn resend_journaled(
        &self,
        accepted: Vec<crate::push::outbox::Journaled>,
        outbox: Vec<(u64, crate::push::outbox::OutboxEntry)>,
    ) {
        let n = accepted.len() + outbox.len();
        if n == 0 {
            return;
        }
        let mut removals = Vec::new();
        let mut dropped_slots = Vec::new();
        let mut dropped = 0u64;
        let journaled = {
            let mut batch = self.senders.batch();
            let entries = accepted
                .into_iter()
                .map(|(place, e)| match place {
                    JournalPlace::Share(slot) => (Err(slot), e),
                    JournalPlace::Legacy(key) => (Ok(StoreOp::DeleteAccepted(key)), e),
                })
                .chain(
                    outbox
                        .into_iter()
                        .map(|(key, e)| (Ok(StoreOp::DeleteOutbox(key)), e)),
                );
            // `Ok`: an old record, removed once the notification is journaled again;
            // `Err`: a slot in a share, kept.
            for (old, entry) in entries {
                let mut job = entry.into_job();
                job.journal = old.as_ref().err().copied();
                match (batch.add(job), old) {
                    (Ok(()), Err(_)) => {}
                    (Ok(()), Ok(removal)) => removals.push(removal),
                    (Err(e), old) => {
                        dropped += 1;
                        match old {
                            Ok(removal) => removals.push(removal),
                            Err(slot) => dropped_slots.push(slot),
                        }
                        tracing::warn!(error = %e, "a journaled notification could not be queued");
                    }
                }
            }
            batch.journaled()
        };
        if !dropped_slots.is_empty() {
            removals.push(StoreOp::Finished(dropped_slots));
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
        tracing::info!(
            notifications = n,
            "sending what the last process left unsent"
        );
        if let Err(e) = journaled.wait().await {
            // Their old records stay, so the next start sends them again.
            tracing::error!(error = %e, "journaling the resent notifications failed");
            return;
        }
        if let Err(e) = self.store.commit(removals).await {
            tracing::error!(error = %e, "clearing the resent outbox failed (it will be sent again)");
        }
    }

    /// Writes again what the store refused while it could not write, once it can: the current
    /// records of the devices whose writes failed (memory kept those changes), and the removal
    /// of notifications that finished meanwhile. What fails again is remembered again.
    pub async fn resync_store(&self) {
        let health = self.store.health().clone();
        if health.fault().is_some() {
            return;
        }
        let unsynced = health.take_unsynced();
        if unsynced.is_empty() {
            return;
        }
        let devices: Vec<(String, String)> = if unsynced.all_devices {
            let mut all = Vec::new();
            self.registry
                .for_each_device(|user, d| all.push((user.to_string(), d.id.to_string())));
            all
        } else {
            unsynced.devices.into_iter().collect()
        };
        tracing::info!(
            devices = devices.len(),
            finished = unsynced.finished.len() + unsynced.finished_slots.len(),
            "writing again what the store refused while it could not write"
        );
        let mut tickets = Vec::new();
        for (user, device) in &devices {
            loop {
                let mut journal = StoreJournal::new(&self.store);
                match self.registry.rewrite_journaled(user, device, &mut journal) {
                    // The queue is full: this is background work, so it waits its turn.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Ok(_) => {
                        tickets.extend(journal.ticket());
                        break;
                    }
                }
            }
        }
        let mut finished: Vec<StoreOp> = unsynced
            .finished
            .into_iter()
            .map(StoreOp::DeleteAccepted)
            .collect();
        if !unsynced.finished_slots.is_empty() {
            finished.push(StoreOp::Finished(unsynced.finished_slots));
        }
        let removed = self.store.commit(finished).await;
        let rewritten = crate::store::CommitTicket::join(tickets).wait().await;
        if let Err(e) = removed.and(rewritten) {
            tracing::warn!(error = %e, "writing again what the store refused failed; it is retried");
        }
    }

    /// Starts the periodic retention sweep, and the store's resync after a refused write.
    pub fn start_sweeper(self: &Arc<Self>) {
        let g = Arc::downgrade(self);
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match g.upgrade() {
                    Some(g) => g.resync_store().await,
                    None => break,
                }
            }
        });
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
