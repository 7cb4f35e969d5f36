//! Upkeep: the retention sweep, the gauges published at scrape, graceful shutdown.

use super::*;
use crate::certs::CertHealth;

impl Gateway {
    /// Moves expired `PushOnline` devices to `Offline` and persists them.
    pub async fn sweep(&self) {
        let changed = self.registry.sweep_expired(now_secs());
        if changed.is_empty() {
            return;
        }
        let ops = changed
            .into_iter()
            .map(|(u, d, record)| StoreOp::PutDevice {
                user: u.to_string(),
                device: d.to_string(),
                record,
            })
            .collect();
        if let Err(e) = self.store.commit(ops).await {
            tracing::error!(error = %e, "persisting expired devices failed");
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
    }

    /// Graceful shutdown after the listener stopped: senders stop, the store writer commits
    /// what is queued and stops.
    pub async fn shutdown(&self) {
        self.senders.shutdown();
        self.store.shutdown().await;
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
