//! A gateway node in cluster mode: the `RemoteDirectory` the gateway calls instead of its local
//! registry when `cluster.mode = "redis"`, and the node's background work — its lease, its view
//! of the other nodes, the reaper of dead ones, and the reader of its own inbox.
//!
//! Every live delivery goes through the holder's inbox stream, a local one too (§7.5): the
//! stream is the journal of unacked messages, so whatever this node has not finished when it
//! dies is still there for the reaper. An entry is deleted when every target has acked, has been
//! re-routed (another connection of the device, or push), or has ended with its session.

use super::certsync::CertChange;
use super::codec::{decode_message, encode_message, EntryKind, InboxTarget, StoredDevice};
use super::directory::{location, route_hash, Location};
use super::inbox::{InboxEntry, InboxReader, Outstanding};
use super::membership::{LeaseTick, NodeLease};
use super::owner::{preferred, Held, QueueEntry, QueueReader, QueuedJob};
use super::reaper::{ReapPush, ReapSink, ReapedDevice};
use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::certs::lease_clock_ms;
use crate::domain::{
    now_millis, now_secs, Certificate, CertificateId, DeviceEvent, DeviceState, UserStatus,
};
use crate::gateway::{
    DeviceView, ErrorCode, EventResult, Gateway, GatewayError, KickedDevice, SendRequest,
    SessionAction, SessionEvent,
};
use crate::push::dispatch::PushQueue;
use crate::push::outcomes::LastNotification;
use crate::push::{DeviceOutcome, Message, Outcome, PushJob, RecipientResult};
use crate::registry::remote::{BoxFut, RemoteDirectory};
use crate::registry::{ConnId, Route, SkipReason};
use crate::session::webhook::{StateAction, StateChange};
use crate::session::SessionCommand;
use crate::store::{CommitTicket, StoreError};
use compact_str::CompactString;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

/// Message ids taken from `pg:msgid` at a time.
const ID_BLOCK: u64 = 65_536;
/// How long one `XREAD` blocks.
const INBOX_BLOCK: Duration = Duration::from_millis(1_000);
/// How often the membership view is refreshed and dead nodes are looked for.
const VIEW_EVERY: Duration = Duration::from_millis(1_000);
/// How often the certificate change log is read.
const CERT_LOG_EVERY: Duration = Duration::from_millis(500);
/// Lease polls a certificate may stay ownerless before any node takes it.
const OWNERLESS_POLLS: u32 = 3;
/// Queue entries one read takes at most.
const READ_COUNT: usize = 64;
/// How often health changes, figures and last outcomes are shared.
const SHARED_EVERY: Duration = Duration::from_millis(500);
/// How long a certificate view waits for the cluster's figures.
const FIGURES_WAIT: Duration = Duration::from_millis(1_000);
/// Devices whose last outcome may wait for Redis (about 300 bytes each).
const OUTCOMES_QUEUED: usize = 65_536;
/// Users whose last outcomes are written concurrently.
const OUTCOME_WRITES: usize = 64;
/// Invalid tokens waiting to be unbound.
const INVALID_TOKENS_QUEUED: usize = 65_536;
/// Attempts after the first to unbind one invalid token (Redis failing over).
const UNBIND_TRIES: u32 = 10;

/// This node in the cluster.
pub struct ClusterNode {
    /// Itself, for the work it spawns from `&self` calls.
    this: Weak<ClusterNode>,
    cluster: Arc<Cluster>,
    lease: NodeLease,
    gateway: OnceLock<Weak<Gateway>>,
    /// Incarnations whose lease was alive at the last view.
    alive: RwLock<HashSet<String>>,
    /// (connection, message id) → (inbox, entry id) of every message handed to a session here
    /// and not finished yet.
    delivered: Mutex<HashMap<(ConnId, u64), (String, String)>>,
    outstanding: Mutex<Outstanding>,
    /// The current block of message ids: next, end (exclusive).
    ids: tokio::sync::Mutex<(u64, u64)>,
    /// Set by a graceful stop: the background loops end (the lease must not be renewed again).
    leaving: std::sync::atomic::AtomicBool,
    /// Certificates whose queue this node consumes: id → the incarnation that took the lease.
    owned: Mutex<HashMap<CertificateId, String>>,
    /// Certificates seen without an owner, by consecutive lease polls (any node takes one
    /// that stays ownerless, whatever rendezvous prefers).
    ownerless: Mutex<HashMap<CertificateId, u32>>,
    /// Queue entries handed to this node's senders and not finished.
    held: Mutex<Held>,
    /// This node's WebSocket sessions: connection → (user, device, login generation), to
    /// re-assert them under a new incarnation after a fence (§6).
    sessions: Mutex<HashMap<ConnId, (String, String, u64)>>,
    /// Last outcomes of this node's senders not yet written to `pg:{u:<user>}:last`, the latest
    /// per device.
    outcomes_out: Mutex<HashMap<(String, String), LastNotification>>,
    /// Tokens a vendor named invalid, to unbind in the shared directory.
    invalid_tokens: tokio::sync::mpsc::Sender<String>,
    /// The health change count (`CertEntry::health_gen`) last published per certificate.
    health_published: Mutex<HashMap<CertificateId, u64>>,
    /// The 10027 back-off (`CertEntry::rate_factor`, as bits) last published per certificate
    /// this node owns.
    factor_published: Mutex<HashMap<CertificateId, u64>>,
    /// One flush of this node's certificate figures at a time (a figure added twice would be
    /// counted twice).
    figures: tokio::sync::Mutex<()>,
    /// Adds this process's figures to the cluster's totals, each addition once.
    figure_adder: super::shared::FigureAdder,
}

/// A cluster failure as the API shows it: the caller's mistakes keep their codes, the store's
/// faults are 503 with Retry-After (nothing was acknowledged).
fn gateway_error(e: ClusterError) -> GatewayError {
    match e {
        ClusterError::Registry(r) => r.into(),
        other => GatewayError::Busy {
            message: format!("the cluster registry did not acknowledge the change: {other}"),
        },
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace(['#', '{', '}', ' '], "-"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pushgate".into())
}

impl ClusterNode {
    /// Connects, registers a new incarnation, attaches itself to the gateway and starts the
    /// background work. Must run inside an actix system.
    pub async fn start(gw: &Arc<Gateway>) -> Result<Arc<ClusterNode>, ClusterError> {
        let cfg = &gw.config.cluster;
        let cluster = Arc::new(
            Cluster::connect(
                cfg,
                gw.config.sessions.multi_device_policy,
                gw.config.sessions.push_online_retention_secs,
            )
            .await?,
        );
        let name = cfg.node_name.clone().unwrap_or_else(host_name);
        let lease = NodeLease::register(&cluster, &name).await?;
        let (invalid_tokens, invalid_rx) = tokio::sync::mpsc::channel(INVALID_TOKENS_QUEUED);
        let node = Arc::new_cyclic(|this| ClusterNode {
            this: this.clone(),
            cluster,
            gateway: OnceLock::new(),
            alive: RwLock::new(HashSet::new()),
            delivered: Mutex::new(HashMap::new()),
            outstanding: Mutex::new(Outstanding::default()),
            ids: tokio::sync::Mutex::new((0, 0)),
            leaving: std::sync::atomic::AtomicBool::new(false),
            owned: Mutex::new(HashMap::new()),
            ownerless: Mutex::new(HashMap::new()),
            held: Mutex::new(Held::default()),
            sessions: Mutex::new(HashMap::new()),
            outcomes_out: Mutex::new(HashMap::new()),
            invalid_tokens,
            health_published: Mutex::new(HashMap::new()),
            factor_published: Mutex::new(HashMap::new()),
            figures: tokio::sync::Mutex::new(()),
            figure_adder: super::shared::FigureAdder::new(&lease.incarnation()),
            lease,
        });
        let _ = node.gateway.set(Arc::downgrade(gw));
        if let Err(e) = node.refresh_view().await {
            tracing::warn!(error = %e, "first membership view failed");
        }
        let log_at = node.join_certificates(gw).await?;
        gw.attach_remote(node.clone());
        // A notification the local senders finish finishes its queue entry.
        let weak = Arc::downgrade(&node);
        // Its outcome goes to Redis for diagnosis on any node.
        gw.outcomes().observe(Box::new(move |user, device, n| {
            if let Some(node) = weak.upgrade() {
                node.held
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .finished(n.certificate_id, n.message_id, user, device);
                let mut out = node.outcomes_out.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded while Redis does not answer: a device already waiting keeps only its
                // latest; beyond the bound a new device's outcome is not shared (counted).
                if out.len() < OUTCOMES_QUEUED || out.contains_key(&(user.into(), device.into())) {
                    out.insert((user.to_string(), device.to_string()), n.clone());
                } else {
                    node.cluster
                        .stats
                        .errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }));
        let weak = Arc::downgrade(&node);
        gw.outcomes().on_invalid_token(Box::new(move |token| {
            if let Some(node) = weak.upgrade() {
                if node.invalid_tokens.try_send(token.to_string()).is_err() {
                    tracing::warn!(
                        "too many invalid tokens waiting to be unbound; one is left bound"
                    );
                }
            }
        }));
        gw.apns_badges()
            .share(Arc::new(super::shared::RedisBadges(node.cluster.clone())));
        tracing::info!(node = %node.me(), "joined the cluster");
        if let Some(ms) = cfg.cert_poll_max_ms {
            tracing::warn!(
                cert_poll_max_ms = ms,
                "cluster.cert_poll_max_ms has no effect: idle certificate queues are read with a \
                 blocking read (cluster.cert_queue_block_ms)"
            );
        }
        actix_rt::spawn(Cluster::watch_connections(Arc::downgrade(&node.cluster)));
        actix_rt::spawn(node.clone().renew_loop());
        actix_rt::spawn(node.clone().view_loop());
        actix_rt::spawn(node.clone().inbox_loop());
        actix_rt::spawn(node.clone().certificate_log_loop(log_at));
        actix_rt::spawn(node.clone().owner_loop());
        actix_rt::spawn(node.clone().shared_state_loop());
        actix_rt::spawn(node.clone().unbind_loop(invalid_rx));
        Ok(node)
    }

    /// Makes this node's certificate book Redis's: certificates only this node had (on disk,
    /// from embedded mode) are written to Redis first, then every certificate Redis has is
    /// loaded and the ones it lacks are dropped. The change log position to tail from.
    async fn join_certificates(&self, gw: &Gateway) -> Result<String, ClusterError> {
        let local: Vec<Certificate> = gw
            .certificates()
            .iter()
            .map(|e| (*e.cert()).clone())
            .collect();
        let adopted = self.cluster.adopt_certificates(&local).await?;
        if !adopted.is_empty() {
            tracing::info!(certificates = ?adopted, "certificates of this node's store written to the cluster");
        }
        let (certs, at) = self.cluster.load_certificates().await?;
        for e in gw.certificates() {
            let id = e.cert().id;
            if !certs.contains_key(&id) {
                tracing::warn!(certificate = id, "certificate of this node's store not in the cluster (another one has its id): dropped here");
                gw.certificate_deleted_elsewhere(id);
            }
        }
        let mut certs: Vec<Certificate> = certs.into_values().collect();
        certs.sort_by_key(|c| c.id);
        let ids: Vec<CertificateId> = certs.iter().map(|c| c.id).collect();
        for c in certs {
            gw.certificate_changed_elsewhere(c);
        }
        self.read_health(gw, &ids).await?;
        Ok(at)
    }

    /// Shows the health the owners of `ids` published.
    async fn read_health(&self, gw: &Gateway, ids: &[CertificateId]) -> Result<(), ClusterError> {
        for id in ids {
            let h = self.cluster.cert_health(*id).await?;
            if let Ok(e) = gw.certificate(*id) {
                e.set_shared_health(h.broken, h.paused_until);
            }
        }
        Ok(())
    }

    /// Tails `pg:certs:log`: changes made on any node reach this node's book (§7.8).
    async fn certificate_log_loop(self: Arc<Self>, mut at: String) {
        let mut failing = false;
        loop {
            tokio::time::sleep(CERT_LOG_EVERY).await;
            let Some(gw) = self.gw() else { return };
            if failing {
                // Behind or back from an outage: reload everything rather than trust the log.
                match self.cluster.load_certificates().await {
                    Ok((certs, next)) => {
                        for e in gw.certificates() {
                            if !certs.contains_key(&e.cert().id) {
                                gw.certificate_deleted_elsewhere(e.cert().id);
                            }
                        }
                        let ids: Vec<CertificateId> = certs.keys().copied().collect();
                        for c in certs.into_values() {
                            gw.certificate_changed_elsewhere(c);
                        }
                        if let Err(e) = self.read_health(&gw, &ids).await {
                            tracing::debug!(error = %e, "reading certificate health failed");
                            continue;
                        }
                        at = next;
                        failing = false;
                    }
                    Err(e) => tracing::debug!(error = %e, "reloading certificates failed"),
                }
                continue;
            }
            match self.cluster.certificate_changes(&at).await {
                Ok((changes, next)) => {
                    for ch in changes {
                        match ch {
                            CertChange::Put(id) => match self.cluster.certificate(id).await {
                                Ok(Some(c)) => gw.certificate_changed_elsewhere(c),
                                Ok(None) => gw.certificate_deleted_elsewhere(id),
                                Err(e) => {
                                    tracing::warn!(error = %e, "reading a changed certificate failed");
                                    failing = true;
                                }
                            },
                            CertChange::Delete(id) => gw.certificate_deleted_elsewhere(id),
                            CertChange::Health(id) => {
                                if let Err(e) = self.read_health(&gw, &[id]).await {
                                    tracing::warn!(error = %e, "reading a certificate's health failed");
                                    failing = true;
                                }
                            }
                        }
                    }
                    at = next;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading certificate changes failed");
                    failing = true;
                }
            }
        }
    }

    /// What this node learned and every node shows (`cluster::shared`), every
    /// [`SHARED_EVERY`]: health changes of its certificates published, its new figures added to
    /// the totals, its senders' last outcomes written.
    async fn shared_state_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(SHARED_EVERY).await;
            let Some(gw) = self.gw() else { return };
            for e in gw.certificates() {
                let id = e.cert().id;
                let gen = e.health_gen();
                let published = *self
                    .health_published
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(id)
                    .or_insert(0);
                if gen == published {
                    continue;
                }
                // The broken mark with the version it is about, read together: an edit landing
                // after this read makes Redis refuse the mark, not the fix.
                let (broken, about, paused_until) = e.health_to_publish();
                let about = about.map(|c| super::certsync::fingerprint(&c));
                let health = super::shared::SharedHealth {
                    broken,
                    paused_until,
                };
                match self
                    .cluster
                    .publish_health(id, &health, about.as_deref())
                    .await
                {
                    Ok(published) => {
                        if published == super::shared::Published::StaleBroken {
                            tracing::info!(
                                certificate = id,
                                "a refusal of the certificate's credentials before its last edit not published"
                            );
                        } else {
                            tracing::info!(
                                certificate = id,
                                broken = health.broken.is_some(),
                                paused_until,
                                "certificate health published"
                            );
                        }
                        self.health_published
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id, gen);
                    }
                    Err(e) => {
                        tracing::warn!(certificate = id, error = %e, "publishing certificate health failed")
                    }
                }
            }
            self.publish_rate_factors(&gw).await;
            let pending: Vec<_> = gw
                .certificates()
                .into_iter()
                .filter(|e| !e.stats.unflushed().is_zero())
                .collect();
            if !pending.is_empty() {
                self.flush_figures(&pending).await;
            }
            self.write_outcomes().await;
        }
    }

    /// Publishes the 10027 back-off of the certificates this node sends for, where it moved.
    async fn publish_rate_factors(&self, gw: &Gateway) {
        let owned: Vec<CertificateId> = self
            .owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect();
        for id in owned {
            let Ok(e) = gw.certificate(id) else { continue };
            let factor = e.rate_factor();
            let published = self
                .factor_published
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
                .copied();
            // None: the queue loop has not read the previous owner's back-off yet. Publishing
            // this node's own factor before that read would erase what it is about to adopt.
            if published.is_none_or(|p| p == factor.to_bits()) {
                continue;
            }
            match self.cluster.publish_rate_factor(id, factor).await {
                Ok(()) => {
                    self.factor_published
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, factor.to_bits());
                }
                Err(err) => {
                    tracing::debug!(certificate = id, error = %err, "publishing the back-off failed")
                }
            }
        }
    }

    /// Adds this node's new figures of `entries` to Redis's totals and reads them back.
    async fn flush_figures(&self, entries: &[Arc<crate::certs::CertEntry>]) {
        let _one = self.figures.lock().await;
        let runs = entries.iter().map(|e| async move {
            let id = e.cert().id;
            if let Err(err) = self.figure_adder.flush(&self.cluster, id, &e.stats).await {
                tracing::debug!(certificate = id, error = %err, "certificate figures not flushed; sent again")
            }
        });
        futures_util::future::join_all(runs).await;
    }

    /// Writes the outcomes waiting in `outcomes_out`, one request per user; those that fail
    /// wait for the next round unless a newer one came meanwhile.
    async fn write_outcomes(&self) {
        let waiting =
            std::mem::take(&mut *self.outcomes_out.lock().unwrap_or_else(|e| e.into_inner()));
        if waiting.is_empty() {
            return;
        }
        let mut by_user: HashMap<String, Vec<(String, LastNotification)>> = HashMap::new();
        for ((user, device), n) in waiting {
            by_user.entry(user).or_default().push((device, n));
        }
        use futures_util::StreamExt;
        let failed: Vec<(String, Vec<(String, LastNotification)>)> =
            futures_util::stream::iter(by_user.into_iter().map(|(user, outcomes)| async move {
                match self.cluster.record_outcomes(&user, &outcomes).await {
                    Ok(()) => None,
                    Err(e) => {
                        tracing::debug!(error = %e, "last outcomes not written; retried");
                        Some((user, outcomes))
                    }
                }
            }))
            .buffer_unordered(OUTCOME_WRITES)
            .filter_map(|r| async move { r })
            .collect()
            .await;
        let mut out = self.outcomes_out.lock().unwrap_or_else(|e| e.into_inner());
        for (user, outcomes) in failed {
            for (device, n) in outcomes {
                out.entry((user.clone(), device)).or_insert(n);
            }
        }
    }

    /// A vendor named `token` invalid — in its answer to this node's sender, or in a delivery
    /// receipt posted to any node: unbinds it in the shared directory (§7.7), the holder's
    /// record first, then the index entry if its owner is unchanged, both acknowledged, and
    /// counts it. With `cert`, only where it is bound under that certificate. The (user,
    /// device) it was bound to.
    async fn unbind_invalid_token(
        &self,
        gw: &Gateway,
        token: &str,
        cert: Option<CertificateId>,
    ) -> Result<Option<(String, String)>, ClusterError> {
        let unbound = self.cluster.unbind_token(token, cert).await?;
        if unbound.is_some() {
            gw.metrics().tokens_unbound.inc();
        }
        Ok(unbound.map(|(user, device, _)| (user, device)))
    }

    /// Unbinds the tokens this node's senders learned are invalid, retrying while Redis fails.
    async fn unbind_loop(self: Arc<Self>, mut tokens: tokio::sync::mpsc::Receiver<String>) {
        while let Some(token) = tokens.recv().await {
            let Some(gw) = self.gw() else { return };
            let mut tries = 0;
            loop {
                match self.unbind_invalid_token(&gw, &token, None).await {
                    Ok(_) => break,
                    Err(e) if tries < UNBIND_TRIES => {
                        tries += 1;
                        tracing::debug!(error = %e, "unbinding an invalid token failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "an invalid token could not be unbound; it stays bound until the next bad answer");
                        break;
                    }
                }
            }
        }
    }

    /// Every certificate's lease (§7.6): renewed when held here, tried when rendezvous hashing
    /// prefers this node among the live ones or when it stayed ownerless for a few polls.
    async fn owner_loop(self: Arc<Self>) {
        let every =
            Duration::from_millis((self.cluster.config().cert_lease_ms / 4).clamp(100, 1_000));
        loop {
            tokio::time::sleep(every).await;
            let Some(gw) = self.gw() else { return };
            let me = self.me();
            let ids: Vec<CertificateId> = gw.certificates().iter().map(|e| e.cert().id).collect();
            let mut nodes: Vec<String> = self
                .alive
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect();
            if !nodes.contains(&me) {
                nodes.push(me.clone());
            }
            // Deleted certificates and leases of an older incarnation (after a fence) go.
            let stale: Vec<(CertificateId, String)> = self
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|(id, inc)| !ids.contains(id) || **inc != me)
                .map(|(id, inc)| (*id, inc.clone()))
                .collect();
            for (id, inc) in stale {
                self.lose(id);
                let _ = self.cluster.cert_release(id, &inc).await;
            }
            for id in ids {
                let mine = self
                    .owned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains_key(&id);
                if mine {
                    let asked = lease_clock_ms();
                    match self.cluster.cert_renew(id, &me).await {
                        Ok(Some(queued)) => {
                            self.fence(&gw, id, asked);
                            gw.metrics()
                                .cert_queue_depth
                                .with_label_values(&[&id.to_string()])
                                .set(queued as i64);
                        }
                        Ok(None) => {
                            tracing::warn!(certificate = id, "certificate lease lost");
                            self.lose(id);
                        }
                        Err(e) => {
                            tracing::warn!(certificate = id, error = %e, "certificate lease renewal failed")
                        }
                    }
                    continue;
                }
                let first = preferred(id, nodes.iter().map(String::as_str)) == Some(me.as_str());
                let ownerless = self
                    .ownerless
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .copied()
                    .unwrap_or(0);
                if !first && ownerless < OWNERLESS_POLLS {
                    let owner = self.cluster.cert_owner(id).await;
                    let mut o = self.ownerless.lock().unwrap_or_else(|e| e.into_inner());
                    match owner {
                        Ok(None) => *o.entry(id).or_default() += 1,
                        Ok(Some(_)) => {
                            o.remove(&id);
                        }
                        Err(_) => {}
                    }
                    continue;
                }
                let asked = lease_clock_ms();
                match self.cluster.cert_acquire(id, &me).await {
                    Ok(true) => {
                        self.fence(&gw, id, asked);
                        tracing::info!(certificate = id, "now consuming the certificate's queue");
                        self.ownerless
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                        self.owned
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id, me.clone());
                        actix_rt::spawn(self.clone().certificate_queue_loop(id, me.clone()));
                    }
                    Ok(false) => {
                        self.ownerless
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&id);
                    }
                    Err(e) => {
                        tracing::debug!(certificate = id, error = %e, "certificate lease not taken")
                    }
                }
            }
        }
    }

    /// Moves `cert`'s send fence to the end of a lease granted (or renewed) by a request sent at
    /// `asked` ([`lease_clock_ms`]), less a margin: Redis started the lease's TTL after that
    /// instant, so the local sender stops at least `margin` before another node can take the
    /// lease — whatever delays the renewal (a stalled process, an unreachable Redis). The
    /// margin covers a vendor request started just before the fence and clock-rate drift.
    fn fence(&self, gw: &Gateway, cert: CertificateId, asked: u64) {
        let lease = self.cluster.config().cert_lease_ms;
        if let Ok(e) = gw.certificate(cert) {
            e.lease_held_until(asked + lease - lease / 4);
        }
    }

    /// This node no longer consumes `cert`'s queue: what it holds stays pending in Redis for
    /// the next owner (sent again there, at least once), and its sender gives back what it
    /// holds unsent.
    fn lose(&self, cert: CertificateId) {
        if let Some(e) = self.gw().and_then(|gw| gw.certificate(cert).ok()) {
            e.lease_lost();
        }
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cert);
        // Taken again later, the back-off is read from Redis before anything is published.
        self.factor_published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cert);
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(cert);
    }

    fn owns(&self, cert: CertificateId, me: &str) -> bool {
        self.owned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cert)
            .is_some_and(|m| m == me)
    }

    /// Acks the finished entries of `cert`. A failed ack puts them back for the next try.
    async fn ack_finished(&self, cert: CertificateId) {
        let done = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_done(cert);
        if done.is_empty() {
            return;
        }
        if let Err(e) = self.cluster.cert_done(cert, &done).await {
            tracing::warn!(certificate = cert, error = %e, "acking finished queue entries failed");
            let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for id in done {
                h.drop_entry(cert, id);
            }
        }
    }

    /// The owner's work on one certificate while it holds the lease: take over what earlier
    /// owners left pending, then read new entries as the local sender makes room, feed them to
    /// it, and ack what it finished (§7.6).
    async fn certificate_queue_loop(self: Arc<Self>, cert: CertificateId, me: String) {
        let cfg = self.cluster.config().clone();
        while let Err(e) = self.cluster.cert_group(cert).await {
            tracing::warn!(certificate = cert, error = %e, "creating the queue's group failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !self.owns(cert, &me) || self.gw().is_none() {
                return;
            }
        }
        // The sender starts from the back-off the previous owner published (nothing is fed to
        // it before this). Unreadable: it starts at full qps, as a single node after a restart.
        match self.cluster.cert_rate_factor(cert).await {
            Ok(factor) => {
                if let Some(gw) = self.gw() {
                    if let Ok(e) = gw.certificate(cert) {
                        e.adopt_rate_factor(factor);
                    }
                }
                self.factor_published
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(cert, factor.to_bits());
                if factor < 1.0 {
                    tracing::info!(
                        certificate = cert,
                        factor,
                        "starting from the previous owner's back-off"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(certificate = cert, error = %e, "reading the previous owner's back-off failed");
                // Publish from here on what the sender reaches, not the factor it starts with.
                if let Some(entry) = self.gw().and_then(|gw| gw.certificate(cert).ok()) {
                    self.factor_published
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(cert, entry.rate_factor().to_bits());
                }
            }
        }
        // Takeover: whatever any earlier owner read and did not finish is ours now (the lease
        // makes this node the only consumer, so no idle time is needed).
        let mut claim_from = Some(("0-0".to_string(), 0u64));
        let mut last_claim = std::time::Instant::now();
        let block = Duration::from_millis(cfg.cert_queue_block_ms.max(1));
        let mut reader: Option<QueueReader> = None;
        loop {
            let Some(gw) = self.gw() else { return };
            if !self.owns(cert, &me) {
                return;
            }
            self.ack_finished(cert).await;
            if let Some((cursor, min_idle)) = claim_from.take() {
                match self.cluster.cert_claim(cert, &me, min_idle, &cursor).await {
                    // The lease may have been lost during the read: nothing is fed then (the
                    // entries stay pending for the next owner).
                    Ok(_) if !self.owns(cert, &me) => return,
                    Ok((entries, bad, next)) => {
                        if !entries.is_empty() {
                            tracing::info!(
                                certificate = cert,
                                entries = entries.len(),
                                "took over pending queue entries"
                            );
                        }
                        self.feed(&gw, cert, entries, bad);
                        if next != "0-0" {
                            claim_from = Some((next, min_idle));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(certificate = cert, error = %e, "claiming pending entries failed");
                        // Its reply may be what was lost, the entries claimed all the same (and
                        // no longer idle): start over with every pending entry.
                        claim_from = Some(("0-0".to_string(), 0));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                continue;
            }
            // Now and then, entries read by a consumer that lost the lease mid-read.
            if last_claim.elapsed() >= Duration::from_millis(cfg.cert_lease_ms) {
                last_claim = std::time::Instant::now();
                claim_from = Some(("0-0".to_string(), cfg.cert_lease_ms));
                continue;
            }
            let Some(entry) = gw.certificate(cert).ok() else {
                return;
            };
            // About a second of the certificate's rate held locally; the rest waits in Redis,
            // where a takeover finds it.
            let room = (entry.cert().qps as usize)
                .max(READ_COUNT)
                .min(gw.config.push.queue_capacity / 2)
                .saturating_sub(gw.queued(cert));
            if room == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let r = match reader.as_mut() {
                Some(r) => r.next(&me, room.min(READ_COUNT)).await,
                None => match QueueReader::new(&self.cluster, cert, block).await {
                    Ok(r) => {
                        reader = Some(r);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match r {
                Ok(_) if !self.owns(cert, &me) => return,
                Ok((entries, bad)) => self.feed(&gw, cert, entries, bad),
                Err(e) => {
                    tracing::warn!(certificate = cert, error = %e, "reading the certificate queue failed");
                    // A new connection next time (this one may point at a failed master).
                    reader = None;
                    // A read whose reply timed out (this process stalled, or Redis was slow)
                    // may have been served: its entries are pending under this node's name and
                    // would wait for the periodic takeover of idle ones (up to two lease
                    // periods). Take every pending entry back now; those this node is sending
                    // already are skipped (`Held::add`).
                    claim_from = Some(("0-0".to_string(), 0));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Hands queue entries to this node's sender of `cert`. A notification the certificate
    /// refuses now (deleted, broken, paused) is dropped with its reason counted.
    fn feed(&self, gw: &Gateway, cert: CertificateId, entries: Vec<QueueEntry>, bad: Vec<String>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !bad.is_empty() {
            tracing::warn!(
                certificate = cert,
                entries = bad.len(),
                "malformed queue entries dropped"
            );
            for id in bad {
                held.drop_entry(cert, id);
            }
        }
        let d = gw.dispatch();
        for e in entries {
            let msg = match decode_message(&e.msg) {
                Ok(m) => Arc::new(m),
                Err(err) => {
                    tracing::warn!(certificate = cert, error = %err, "undecodable queued message dropped");
                    held.drop_entry(cert, e.id);
                    continue;
                }
            };
            if !held.add(cert, &e, msg.id) {
                continue;
            }
            for j in &e.jobs {
                let refused = d.queue.borrow_mut().refuses(cert, now_secs());
                let r = match refused {
                    Some(r) => Err(r),
                    None => d
                        .queue
                        .borrow_mut()
                        .add(PushJob {
                            cert,
                            token: Arc::from(j.token.as_str()),
                            user: CompactString::from(j.user.as_str()),
                            device: CompactString::from(j.device.as_str()),
                            message: msg.clone(),
                            attempt: 0,
                            journal: None,
                        })
                        .map_err(|_| SkipReason::QueueFull),
                };
                if let Err(r) = r {
                    gw.metrics().skip(r);
                    held.finished(cert, msg.id, &j.user, &j.device);
                }
            }
        }
        drop(held);
        d.flush();
    }

    /// Appends one notification to its certificate's durable queue (what "push_queued" means
    /// in redis mode), unless the certificate refuses it now.
    async fn queue_push(
        &self,
        gw: &Gateway,
        user: &str,
        device: &str,
        cert: CertificateId,
        token: &str,
        msg: &Arc<Message>,
    ) -> Result<(Outcome, Option<SkipReason>), ClusterError> {
        if let Some(r) = refuses(gw, cert, msg) {
            return Ok((Outcome::Skipped, Some(r)));
        }
        let job = QueuedJob {
            user: user.to_string(),
            device: device.to_string(),
            token: token.to_string(),
        };
        Ok(
            match self
                .cluster
                .cert_enqueue(cert, &encode_message(msg), &[job])
                .await?
            {
                Some(_) => (Outcome::PushQueued, None),
                None => {
                    queue_full(gw, cert, 1);
                    (Outcome::Skipped, Some(SkipReason::QueueFull))
                }
            },
        )
    }

    /// This node's current incarnation (`gw-1#17`).
    pub fn me(&self) -> String {
        self.lease.incarnation()
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The gateway, while this node is running (None once it leaves).
    fn gw(&self) -> Option<Arc<Gateway>> {
        if self.leaving.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.gateway.get().and_then(Weak::upgrade)
    }

    fn is_alive(&self, node: &str) -> bool {
        node == self.me()
            || self
                .alive
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(node)
    }

    async fn refresh_view(&self) -> Result<Vec<String>, ClusterError> {
        let view = self.cluster.node_view().await?;
        let me = self.me();
        *self.alive.write().unwrap_or_else(|e| e.into_inner()) = view
            .iter()
            .filter(|v| v.alive)
            .map(|v| v.node.clone())
            .collect();
        Ok(view
            .into_iter()
            .filter(|v| !v.alive && v.node != me)
            .map(|v| v.node)
            .collect())
    }

    async fn renew_loop(self: Arc<Self>) {
        let every = Duration::from_millis(self.cluster.config().node_renew_ms.max(100));
        loop {
            tokio::time::sleep(every).await;
            if self.gw().is_none() {
                return;
            }
            match self.lease.tick(&self.cluster).await {
                Ok(LeaseTick::Renewed) => {}
                // Sessions are not re-asserted yet (§6): they keep their sockets, and the reaper
                // of the old incarnation has turned them PushOnline; their next login or event
                // puts them right.
                Ok(LeaseTick::Fenced { was, now }) => {
                    tracing::warn!(%was, %now, "node lease lost; running under a new incarnation");
                    if let Some(gw) = self.gw() {
                        self.reassert_sessions(&gw, &now).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "node lease renewal failed"),
            }
        }
    }

    /// After a fence (§6): each live session gets a CAS that puts its device back Online at
    /// (new incarnation, same connection) if nobody logged the device in since; otherwise the
    /// session is kicked. Sockets stay open through a Redis outage instead of reconnecting all
    /// at once; the old incarnation's reaper may have pushed their unacked messages meanwhile
    /// (at least once).
    async fn reassert_sessions(&self, gw: &Gateway, now: &str) {
        let live: HashSet<ConnId> = gw.hub().conn_ids().into_iter().collect();
        let sessions: Vec<(ConnId, (String, String, u64))> = {
            let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            s.retain(|c, _| live.contains(c));
            s.iter().map(|(c, v)| (*c, v.clone())).collect()
        };
        let (mut kept, mut kicked) = (0usize, 0usize);
        for (conn, (user, device, gen)) in sessions {
            let to = Location {
                node: now.to_string(),
                conn,
            };
            if let Err(e) = self.cluster.add_conn(now, &user, &device, conn).await {
                tracing::warn!(error = %e, "re-asserting a session failed; it stays as it is");
                continue;
            }
            match self.cluster.reassert(&user, &device, gen, &to).await {
                Ok(true) => kept += 1,
                Ok(false) => {
                    kicked += 1;
                    self.sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&conn);
                    let _ = gw.hub().send(
                        conn,
                        SessionCommand::Kick {
                            reason: "the device logged in elsewhere while this node was cut off"
                                .into(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "re-asserting a session failed; it stays as it is")
                }
            }
        }
        tracing::info!(kept, kicked, node = %now, "sessions re-asserted after a fence");
    }

    /// The cluster's gauges and counters (`/metrics`), from this node's view.
    fn publish_metrics(&self, gw: &Gateway, reachable: bool, dead: usize, seen: &mut [u64; 4]) {
        let m = gw.metrics();
        let live = self.alive.read().unwrap_or_else(|e| e.into_inner()).len();
        m.cluster_nodes
            .with_label_values(&["live"])
            .set(live as i64);
        m.cluster_nodes
            .with_label_values(&["dead"])
            .set(dead as i64);
        m.cluster_redis
            .with_label_values(&["reachable"])
            .set(i64::from(reachable));
        m.cluster_redis
            .with_label_values(&["unreachable"])
            .set(i64::from(!reachable));
        m.cluster_node.reset();
        m.cluster_node
            .with_label_values(&[&self.me()])
            .set(i64::from(self.lease.is_held()));
        let st = &self.cluster.stats;
        let now = [
            (
                "redis_error",
                st.errors.load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "cas_conflict",
                st.cas_conflicts.load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "reaped_device",
                st.reaped_devices.load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "unreplicated_write",
                st.unreplicated_writes
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        ];
        for (i, (kind, n)) in now.into_iter().enumerate() {
            m.cluster_events
                .with_label_values(&[kind])
                .inc_by(n.saturating_sub(seen[i]));
            seen[i] = seen[i].max(n);
        }
        m.cert_owned.reset();
        m.cert_rate_factor.reset();
        for id in self.owned.lock().unwrap_or_else(|e| e.into_inner()).keys() {
            let label = id.to_string();
            m.cert_owned.with_label_values(&[&label]).set(1);
            if let Ok(e) = gw.certificate(*id) {
                m.cert_rate_factor
                    .with_label_values(&[&label])
                    .set(e.rate_factor());
            }
        }
    }

    async fn view_loop(self: Arc<Self>) {
        let mut seen = [0u64; 4];
        loop {
            tokio::time::sleep(VIEW_EVERY).await;
            let Some(gw) = self.gw() else { return };
            let dead = match self.refresh_view().await {
                Ok(d) => {
                    self.publish_metrics(&gw, true, d.len(), &mut seen);
                    d
                }
                Err(e) => {
                    self.publish_metrics(&gw, false, 0, &mut seen);
                    tracing::warn!(error = %e, "membership view failed");
                    continue;
                }
            };
            for node in dead {
                let mut sink = GatewaySink {
                    node: &self,
                    gw: &gw,
                    action: StateAction::DisconnectTimeout,
                };
                match self.cluster.reap_node(&node, &self.me(), &mut sink).await {
                    Ok(Some(r)) => tracing::info!(
                        %node,
                        devices = r.devices.len(),
                        pushed = r.pushed,
                        redelivered = r.redelivered,
                        "reaped a dead node"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(%node, error = %e, "reaping a dead node failed"),
                }
            }
        }
    }

    async fn inbox_loop(self: Arc<Self>) {
        let mut reader: Option<(String, InboxReader)> = None;
        loop {
            let Some(gw) = self.gw() else { return };
            let me = self.me();
            if reader.as_ref().is_none_or(|(n, _)| *n != me) {
                match InboxReader::new(&self.cluster, &me, INBOX_BLOCK).await {
                    Ok(r) => reader = Some((me.clone(), r)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open the inbox reader");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let Some((inbox, r)) = reader.as_mut() else {
                continue;
            };
            match r.next().await {
                Ok((entries, bad)) => {
                    if !bad.is_empty() {
                        tracing::warn!(entries = bad.len(), "malformed inbox entries dropped");
                        let _ = self.cluster.inbox_done(inbox, &bad).await;
                    }
                    let inbox = inbox.clone();
                    for e in entries {
                        self.handle_entry(&gw, &inbox, e);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the inbox failed");
                    reader = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    fn handle_entry(self: &Arc<Self>, gw: &Arc<Gateway>, inbox: &str, e: InboxEntry) {
        if e.kind == EntryKind::Kick {
            for t in &e.targets {
                let _ = gw.hub().send(
                    t.conn,
                    SessionCommand::Kick {
                        reason: "a newer login or the server ended this session".into(),
                    },
                );
            }
            self.done_later(inbox.to_string(), e.id);
            return;
        }
        let msg = match decode_message(&e.msg) {
            Ok(m) => Arc::new(m),
            Err(err) => {
                tracing::warn!(error = %err, "undecodable message in the inbox dropped");
                self.done_later(inbox.to_string(), e.id);
                return;
            }
        };
        self.outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&e.id, e.targets.len());
        for t in e.targets {
            let key = (t.conn, msg.id);
            self.delivered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (inbox.to_string(), e.id.clone()));
            if gw
                .hub()
                .send(t.conn, SessionCommand::Deliver(msg.clone()))
                .is_err()
            {
                // Gone or not keeping up: as `Dispatch::online` does, the push path takes over.
                self.delivered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                let node = self.clone();
                let (gw, msg, inbox, id) =
                    (gw.clone(), msg.clone(), inbox.to_string(), e.id.clone());
                actix_rt::spawn(async move {
                    let from = Location {
                        node: inbox.clone(),
                        conn: t.conn,
                    };
                    node.reroute_and_finish(&gw, &t, Some(from), &msg, (inbox, id))
                        .await;
                });
            }
        }
    }

    /// Re-routes an unfinished target, then finishes its entry. When Redis cannot be reached
    /// the entry stays in the stream (the reaper of this incarnation sends it, at least once).
    async fn reroute_and_finish(
        self: &Arc<Self>,
        gw: &Gateway,
        t: &InboxTarget,
        from: Option<Location>,
        msg: &Arc<Message>,
        entry: (String, String),
    ) {
        let label = if t.also_pushed {
            Ok("fell_back_to_push")
        } else {
            self.reroute(gw, &t.user, &t.device, from.as_ref(), msg)
                .await
        };
        match label {
            Ok(l) => {
                gw.metrics().online_deliveries.with_label_values(&[l]).inc();
                self.finish(entry);
            }
            Err(e) => tracing::warn!(error = %e, "re-routing an unacked message failed"),
        }
    }

    /// One target of an inbox entry is finished; the entry goes when its last one is.
    fn finish(self: &Arc<Self>, (inbox, id): (String, String)) {
        let last = self
            .outstanding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish(&id);
        if last {
            self.done_later(inbox, id);
        }
    }

    fn done_later(self: &Arc<Self>, inbox: String, id: String) {
        let node = self.clone();
        actix_rt::spawn(async move {
            if let Err(e) = node.cluster.inbox_done(&inbox, &[id]).await {
                tracing::warn!(error = %e, "deleting a finished inbox entry failed");
            }
        });
    }

    /// Where a message that did not reach `device` through connection `from` goes now: its
    /// newer connection (any node), else push. The metric label of what happened.
    async fn reroute(
        &self,
        gw: &Gateway,
        user: &str,
        device: &str,
        from: Option<&Location>,
        msg: &Arc<Message>,
    ) -> Result<&'static str, ClusterError> {
        let h = self.cluster.read_user(user).await?;
        let Some(d) = h.get(device) else {
            gw.metrics().skip(SkipReason::UnknownUser);
            return Ok("dropped");
        };
        let now = now_secs();
        let at = location(d).filter(|l| Some(l) != from && self.is_alive(&l.node));
        if let Some(at) = &at {
            let target = InboxTarget {
                user: user.to_string(),
                device: device.to_string(),
                conn: at.conn,
                also_pushed: false,
            };
            if self
                .cluster
                .inbox_push(
                    &at.node,
                    EntryKind::Redeliver,
                    &encode_message(msg),
                    &[target],
                )
                .await?
                .is_some()
            {
                return Ok("redelivered");
            }
        }
        let mut d = d.clone();
        if d.state().is_connected() && at.is_none() {
            // Its connection is this dead one (or on a dead node): route as the reaper will
            // leave it.
            d.set_state(DeviceState::PushOnline { since: now });
        }
        let dev = d.to_device(device, None);
        let (outcome, reason) = match dev.route(now, self.cluster.retention()) {
            Route::Push { cert, token } | Route::OnlineAndPush { cert, token, .. } => {
                self.queue_push(gw, user, device, cert, &token, msg).await?
            }
            Route::Skip(r) => (Outcome::Skipped, Some(r)),
            Route::Online { .. } => (Outcome::Online, None),
        };
        if let Some(r) = reason {
            gw.metrics().skip(r);
        }
        Ok(match outcome {
            Outcome::PushQueued => "fell_back_to_push",
            _ => "dropped",
        })
    }

    /// Ends connection `loc` of (user, device): here through the hub, elsewhere through that
    /// node's inbox. Best effort: the device's record already says it is no longer there.
    async fn kick(&self, gw: &Gateway, loc: &Location, user: &str, device: &str, reason: String) {
        if loc.node == self.me() {
            let _ = gw.hub().send(loc.conn, SessionCommand::Kick { reason });
            return;
        }
        let target = InboxTarget {
            user: user.to_string(),
            device: device.to_string(),
            conn: loc.conn,
            also_pushed: false,
        };
        if let Err(e) = self
            .cluster
            .inbox_push(&loc.node, EntryKind::Kick, b"", &[target])
            .await
        {
            tracing::warn!(node = %loc.node, error = %e, "kick to another node failed");
        }
    }

    fn view_of(&self, gw: &Gateway, id: &str, d: &StoredDevice) -> DeviceView {
        let me = self.me();
        let mut v = gw.view(&d.to_device(id, Some(&me)));
        v.node = d.node.clone();
        v
    }

    async fn device_view(
        &self,
        gw: &Gateway,
        user: &str,
        device: &str,
    ) -> Result<DeviceView, GatewayError> {
        let h = self.cluster.read_user(user).await.map_err(gateway_error)?;
        h.get(device)
            .map(|d| self.view_of(gw, device, d))
            .ok_or_else(|| GatewayError::NotFound {
                code: ErrorCode::UnknownDevice,
                message: format!("unknown device '{device}' of user '{user}'"),
            })
    }

    async fn do_session_event(
        &self,
        gw: &Gateway,
        ev: &SessionEvent,
        conn: Option<ConnId>,
    ) -> Result<EventResult, GatewayError> {
        let now = now_secs();
        let me = self.me();
        let at = conn.map(|c| Location {
            node: me.clone(),
            conn: c,
        });
        let c = &self.cluster;
        let (state, kicked) = if ev.action == SessionAction::Login {
            if let Some(conn) = conn {
                // Before the login: the node's set stays a superset of its Online devices.
                c.add_conn(&me, &ev.user, &ev.device, conn)
                    .await
                    .map_err(gateway_error)?;
            }
            let out = c
                .login(&ev.user, ev.platform, &ev.device, at.clone(), now)
                .await
                .map_err(gateway_error)?;
            if let Some(conn) = conn {
                self.sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(conn, (ev.user.clone(), ev.device.clone(), out.record.gen));
            }
            let mut kicked = Vec::new();
            for k in &out.kicked {
                if let Some(l) = &k.at {
                    let reason = format!("a newer login on {} took over this account", ev.platform);
                    self.kick(gw, l, &ev.user, &k.device, reason).await;
                }
                kicked.push(KickedDevice {
                    device: k.device.clone(),
                    platform: k.platform.as_str(),
                });
            }
            if let Some(l) = &out.replaced {
                if Some(l) != at.as_ref() {
                    let reason = "a newer connection of this device took over".to_string();
                    self.kick(gw, l, &ev.user, &ev.device, reason).await;
                }
            }
            (UserStatus::Online, kicked)
        } else {
            let event = match ev.action {
                SessionAction::Logout => DeviceEvent::Logout,
                SessionAction::Disconnect => DeviceEvent::Disconnect,
                SessionAction::Kicked => DeviceEvent::Kicked,
                SessionAction::Background => DeviceEvent::Background,
                SessionAction::Foreground => DeviceEvent::Foreground,
                SessionAction::Login => DeviceEvent::Login,
            };
            let ends = matches!(ev.action, SessionAction::Logout | SessionAction::Kicked);
            if let (Some(conn), true) = (conn, ends || ev.action == SessionAction::Disconnect) {
                self.sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&conn);
            }
            // A logout or kick from the IM cluster also closes our own socket of the device,
            // wherever it is.
            let live = if conn.is_none() && ends {
                c.read_user(&ev.user)
                    .await
                    .map_err(gateway_error)?
                    .get(&ev.device)
                    .and_then(location)
            } else {
                None
            };
            let (new, _) = c
                .apply(&ev.user, &ev.device, event, at.as_ref(), now)
                .await
                .map_err(gateway_error)?;
            if let (Some(conn), false) = (conn, new.is_connected()) {
                if let Err(e) = c.remove_conn(&me, &ev.user, &ev.device, conn).await {
                    tracing::debug!(error = %e, "connection set not trimmed");
                }
            }
            if let Some(l) = live {
                let reason = "the session was ended by the server".to_string();
                self.kick(gw, &l, &ev.user, &ev.device, reason).await;
            }
            (new.status(), Vec::new())
        };
        Ok(EventResult {
            user: ev.user.clone(),
            device: ev.device.clone(),
            ok: true,
            state: Some(state),
            kicked,
            error: None,
        })
    }

    /// One queue entry per certificate with the message's notifications. A full queue skips
    /// them (`queue_full`); online devices keep their outcome and are returned (recipient,
    /// device index, certificate, token), so their inbox entry no longer counts on the push.
    async fn queue_all(
        &self,
        gw: &Gateway,
        body: &[u8],
        by_cert: HashMap<CertificateId, Vec<Queued>>,
        outcomes: &mut [Vec<DeviceOutcome>],
    ) -> Result<Vec<(usize, usize, CertificateId, String)>, GatewayError> {
        let mut refused_online = Vec::new();
        for (cert, jobs) in by_cert {
            let list: Vec<QueuedJob> = jobs.iter().map(|j| j.2.clone()).collect();
            let id = self
                .cluster
                .cert_enqueue(cert, body, &list)
                .await
                .map_err(gateway_error)?;
            if id.is_some() {
                continue;
            }
            queue_full(gw, cert, list.len() as u64);
            for (ri, di, job, online) in jobs {
                let d = &mut outcomes[ri][di];
                if online {
                    d.also_pushed = false;
                    refused_online.push((ri, di, cert, job.token));
                } else {
                    d.outcome = Outcome::Skipped;
                    d.reason = Some(SkipReason::QueueFull.as_str());
                }
            }
        }
        Ok(refused_online)
    }

    async fn do_send(
        &self,
        gw: &Gateway,
        req: &SendRequest,
        msg: Arc<Message>,
    ) -> Result<Vec<RecipientResult>, GatewayError> {
        let now = now_secs();
        let reads =
            futures_util::future::join_all(req.to.iter().map(|u| self.cluster.read_user(u))).await;
        // The view of live nodes is refreshed once a second: a node that joined since is not in
        // it yet, and routing would take its devices for a dead node's. A location on a node
        // outside the view refreshes the view first (rare: only after a join or a death).
        let unseen = reads.iter().flatten().any(|h| {
            h.devices
                .iter()
                .filter_map(|(_, d)| location(d))
                .any(|at| !self.is_alive(&at.node))
        });
        if unseen {
            if let Err(e) = self.refresh_view().await {
                tracing::warn!(error = %e, "refreshing the view of live nodes failed");
            }
        }
        let alive = |n: &str| self.is_alive(n);
        // Per recipient, per device: the outcome so far; live targets wait for their XADD, and
        // notifications for their certificate queue's.
        let mut outcomes: Vec<Vec<DeviceOutcome>> = Vec::with_capacity(req.to.len());
        // node → (recipient, device index, target, fallback token)
        type Pending = (usize, usize, InboxTarget, Option<(u64, Arc<str>)>);
        let mut by_node: HashMap<String, Vec<Pending>> = HashMap::new();
        // certificate → (recipient, device index, notification); one queue entry each.
        let mut by_cert: HashMap<CertificateId, Vec<Queued>> = HashMap::new();
        let mut refused_now: HashMap<CertificateId, Option<SkipReason>> = HashMap::new();
        let mut refused = |cert: CertificateId| {
            *refused_now
                .entry(cert)
                .or_insert_with(|| refuses(gw, cert, &msg))
        };
        for (ri, (user, read)) in req.to.iter().zip(reads).enumerate() {
            let h = read.map_err(gateway_error)?;
            let mut devices = Vec::new();
            for r in route_hash(&h, now, self.cluster.retention(), &alive) {
                let platform = h.get(&r.device).map_or("", |d| d.platform.as_str());
                let fallback = h.get(&r.device).and_then(|d| {
                    d.tok
                        .as_ref()
                        .map(|(c, t)| (*c, Arc::<str>::from(t.as_str())))
                });
                if r.node_down {
                    gw.metrics()
                        .online_deliveries
                        .with_label_values(&["node_down"])
                        .inc();
                }
                let di = devices.len();
                let job = |token: &Arc<str>| QueuedJob {
                    user: user.to_string(),
                    device: r.device.clone(),
                    token: token.to_string(),
                };
                let (outcome, also_pushed, reason) = match &r.route {
                    Route::Push { cert, token } => match refused(*cert) {
                        Some(why) => (Outcome::Skipped, false, Some(why)),
                        None => {
                            by_cert
                                .entry(*cert)
                                .or_default()
                                .push((ri, di, job(token), false));
                            (Outcome::PushQueued, false, None)
                        }
                    },
                    Route::Skip(why) => (Outcome::Skipped, false, Some(*why)),
                    Route::Online { .. } | Route::OnlineAndPush { .. } => {
                        let pushed = match &r.route {
                            Route::OnlineAndPush { cert, token, .. }
                                if refused(*cert).is_none() =>
                            {
                                by_cert
                                    .entry(*cert)
                                    .or_default()
                                    .push((ri, di, job(token), true));
                                true
                            }
                            _ => false,
                        };
                        if let (Some(at), false) = (&r.at, r.node_down) {
                            by_node.entry(at.node.clone()).or_default().push((
                                ri,
                                di,
                                InboxTarget {
                                    user: user.to_string(),
                                    device: r.device.clone(),
                                    conn: at.conn,
                                    also_pushed: pushed,
                                },
                                if pushed { None } else { fallback },
                            ));
                        }
                        // No location: the IM cluster holds the connection and delivers.
                        (Outcome::Online, pushed, None)
                    }
                };
                devices.push(DeviceOutcome {
                    device: CompactString::from(r.device.as_str()),
                    platform,
                    outcome,
                    also_pushed,
                    reason: reason.map(SkipReason::as_str),
                });
            }
            outcomes.push(devices);
        }
        let body = encode_message(&msg);
        // Pushes first: an inbox target says whether its device was also pushed.
        let mut later: HashMap<CertificateId, Vec<Queued>> = HashMap::new();
        let refused_online = self.queue_all(gw, &body, by_cert, &mut outcomes).await?;
        if !refused_online.is_empty() {
            // Online devices whose push a full queue refused: their fallback is push again.
            for t in by_node.values_mut().flatten() {
                if let Some((_, _, cert, token)) = refused_online
                    .iter()
                    .find(|(ri, di, ..)| (*ri, *di) == (t.0, t.1))
                {
                    t.2.also_pushed = false;
                    t.3 = Some((*cert, Arc::from(token.as_str())));
                }
            }
        }
        for (node, targets) in by_node {
            let list: Vec<InboxTarget> = targets.iter().map(|t| t.2.clone()).collect();
            let id = self
                .cluster
                .inbox_push(&node, EntryKind::Deliver, &body, &list)
                .await
                .map_err(gateway_error)?;
            if id.is_some() {
                continue;
            }
            // The holder's inbox is full: those devices get a notification instead.
            gw.metrics()
                .online_deliveries
                .with_label_values(&["node_inbox_full"])
                .inc();
            for (ri, di, t, fallback) in targets {
                let d = &mut outcomes[ri][di];
                match fallback {
                    Some((cert, token)) => match refused(cert) {
                        Some(why) => {
                            d.outcome = Outcome::Skipped;
                            d.reason = Some(why.as_str());
                        }
                        None => {
                            d.outcome = Outcome::PushQueued;
                            later.entry(cert).or_default().push((
                                ri,
                                di,
                                QueuedJob {
                                    user: t.user,
                                    device: t.device,
                                    token: token.to_string(),
                                },
                                false,
                            ));
                        }
                    },
                    None if t.also_pushed => d.outcome = Outcome::PushQueued,
                    None => {
                        d.outcome = Outcome::Skipped;
                        d.reason = Some(SkipReason::QueueFull.as_str());
                    }
                }
            }
        }
        self.queue_all(gw, &body, later, &mut outcomes).await?;
        let m = gw.metrics();
        Ok(req
            .to
            .iter()
            .zip(outcomes)
            .map(|(user, devices)| {
                let best = devices
                    .iter()
                    .map(|d| d.outcome)
                    .min_by_key(|o| match o {
                        Outcome::Online => 0,
                        Outcome::PushQueued => 1,
                        Outcome::Skipped => 2,
                    })
                    .unwrap_or(Outcome::Skipped);
                let reason = if devices.is_empty() {
                    Some(SkipReason::UnknownUser.as_str())
                } else if best == Outcome::Skipped {
                    devices.iter().find_map(|d| d.reason)
                } else {
                    None
                };
                if devices.is_empty() {
                    m.skip(SkipReason::UnknownUser);
                }
                for d in devices.iter().filter(|d| d.outcome == Outcome::Skipped) {
                    if let Some(r) = d
                        .reason
                        .and_then(|r| SkipReason::ALL.into_iter().find(|s| s.as_str() == r))
                    {
                        m.skip(r);
                    }
                }
                let i = match best {
                    Outcome::Online => 0,
                    Outcome::PushQueued => 1,
                    Outcome::Skipped => 2,
                };
                m.recipients_by_outcome[i].inc();
                RecipientResult {
                    user: CompactString::from(user.as_str()),
                    outcome: best,
                    reason,
                    devices: if req.detail { devices } else { Vec::new() },
                }
            })
            .collect())
    }
}

/// A notification waiting for its queue entry: recipient, device index, the notification, and
/// whether the device is online (pushed as well, not instead).
type Queued = (usize, usize, QueuedJob, bool);

/// Why `cert` takes no notification of `msg` now, if it does not (as dispatch decides it).
fn refuses(gw: &Gateway, cert: CertificateId, msg: &Message) -> Option<SkipReason> {
    if let Err(r) = &msg.push {
        return Some(*r);
    }
    gw.dispatch().queue.borrow_mut().refuses(cert, now_secs())
}

/// Counts notifications a full certificate queue refused, where the console reads them.
fn queue_full(gw: &Gateway, cert: CertificateId, n: u64) {
    if let Ok(e) = gw.certificate(cert) {
        e.stats.count(crate::providers::DeliveryClass::QueueFull, n);
    }
}

/// The reaper's effects on this node: webhooks for the devices it disconnected, notifications
/// for the unacked messages it drained (appended to their certificates' durable queues before
/// the reaper deletes the inbox entry).
struct GatewaySink<'a> {
    node: &'a ClusterNode,
    gw: &'a Gateway,
    /// `DisconnectTimeout` for a dead node's devices, `DisconnectLinkClose` for a leaving one's.
    action: StateAction,
}

impl ReapSink for GatewaySink<'_> {
    fn device(&mut self, d: &ReapedDevice) {
        self.gw.notify_state_change(StateChange::now(
            d.user.clone(),
            d.platform.as_str(),
            self.action.clone(),
            None,
        ));
    }

    fn push(&mut self, p: ReapPush) {
        // The reaper hands notifications over through `queue`; nothing calls this.
        tracing::error!(
            certificate = p.cert,
            "a reaped notification bypassed its durable queue"
        );
    }

    fn queue(&mut self, p: ReapPush) -> BoxFut<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            match decode_message(&p.msg) {
                Ok(m) => {
                    let (_, why) = self
                        .node
                        .queue_push(self.gw, &p.user, &p.device, p.cert, &p.token, &Arc::new(m))
                        .await?;
                    if let Some(r) = why {
                        self.gw.metrics().skip(r);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable message of a dead node dropped"),
            }
            Ok(())
        })
    }
}

/// A ticket that resolves when `fut` does (the WebSocket surface awaits tickets).
fn ticket_of(
    fut: impl std::future::Future<Output = Result<(), GatewayError>> + 'static,
) -> CommitTicket {
    let (tx, ticket) = CommitTicket::pending();
    actix_rt::spawn(async move {
        let r = fut
            .await
            .map_err(|e| Arc::new(StoreError::Engine(e.to_string())));
        let _ = tx.send(r);
    });
    ticket
}

impl RemoteDirectory for ClusterNode {
    fn session_event<'a>(
        &'a self,
        gw: &'a Gateway,
        ev: &'a SessionEvent,
        conn: Option<ConnId>,
    ) -> BoxFut<'a, Result<EventResult, GatewayError>> {
        Box::pin(self.do_session_event(gw, ev, conn))
    }

    fn session_event_detached(&self, ev: SessionEvent, conn: ConnId) -> CommitTicket {
        let node = self.gw();
        let this = self.this.upgrade();
        ticket_of(async move {
            let (Some(gw), Some(this)) = (node, this) else {
                return Err(GatewayError::Internal {
                    message: "the gateway is stopping".into(),
                });
            };
            match this.session_event(&gw, &ev, Some(conn)).await {
                Ok(_) => Ok(()),
                // A newer connection of the device replaced this one: nothing to change.
                Err(e) if e.code() == ErrorCode::StaleConnection => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn report_token<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
        device: &'a str,
        cert: u64,
        token: &'a str,
    ) -> BoxFut<'a, Result<DeviceView, GatewayError>> {
        Box::pin(async move {
            let out = self
                .cluster
                .set_token(user, device, cert, token)
                .await
                .map_err(gateway_error)?;
            Ok(self.view_of(gw, device, &out.record))
        })
    }

    fn report_token_detached(
        &self,
        user: String,
        device: String,
        cert: u64,
        token: String,
    ) -> CommitTicket {
        let cluster = self.cluster.clone();
        ticket_of(async move {
            cluster
                .set_token(&user, &device, cert, &token)
                .await
                .map(|_| ())
                .map_err(gateway_error)
        })
    }

    fn clear_token<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
        device: &'a str,
    ) -> BoxFut<'a, Result<DeviceView, GatewayError>> {
        Box::pin(async move {
            match self
                .cluster
                .clear_token(user, device)
                .await
                .map_err(gateway_error)?
            {
                Some(rec) => Ok(self.view_of(gw, device, &rec)),
                None => self.device_view(gw, user, device).await,
            }
        })
    }

    fn unbind_invalid_token<'a>(
        &'a self,
        gw: &'a Gateway,
        cert: CertificateId,
        token: &'a str,
    ) -> BoxFut<'a, Result<Option<(String, String)>, GatewayError>> {
        Box::pin(async move {
            ClusterNode::unbind_invalid_token(self, gw, token, Some(cert))
                .await
                .map_err(gateway_error)
        })
    }

    fn receipt_owner<'a>(
        &'a self,
        cert: CertificateId,
        token: &'a str,
    ) -> BoxFut<'a, Result<Option<(String, String)>, GatewayError>> {
        Box::pin(async move {
            self.cluster
                .receipt_owner(cert, token)
                .await
                .map_err(gateway_error)
        })
    }

    fn note_receipts<'a>(
        &'a self,
        user: &'a str,
        receipts: &'a [(&'a str, &'a crate::domain::receipt::Receipt)],
    ) -> BoxFut<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            self.cluster
                .note_receipts(user, receipts)
                .await
                .map_err(gateway_error)
        })
    }

    fn count_receipts<'a>(
        &'a self,
        cert: CertificateId,
        receipts: &'a [crate::domain::receipt::Receipt],
    ) -> BoxFut<'a, Result<Vec<bool>, GatewayError>> {
        Box::pin(async move {
            self.cluster
                .count_receipts(cert, receipts)
                .await
                .map_err(gateway_error)
        })
    }

    fn device_receipts<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFut<'a, HashMap<String, crate::push::outcomes::ReceiptsSeen>> {
        Box::pin(async move {
            self.cluster
                .device_receipts(user)
                .await
                .unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "receipts unreadable for diagnosis");
                    HashMap::new()
                })
        })
    }

    fn kick_user<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
    ) -> BoxFut<'a, Result<usize, GatewayError>> {
        Box::pin(async move {
            let h = self.cluster.read_user(user).await.map_err(gateway_error)?;
            let mut n = 0;
            for (id, d) in h.devices.iter().filter(|(_, d)| d.state().is_logged_in()) {
                match self
                    .cluster
                    .apply(user, id, DeviceEvent::Kicked, None, now_secs())
                    .await
                {
                    Ok(_) => {
                        n += 1;
                        if let Some(l) = location(d) {
                            self.kick(gw, &l, user, id, "kicked by the server".into())
                                .await;
                        }
                    }
                    Err(ClusterError::Registry(e)) => {
                        tracing::debug!(error = %e, "kick skipped a device")
                    }
                    Err(e) => return Err(gateway_error(e)),
                }
            }
            Ok(n)
        })
    }

    fn user_devices<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
    ) -> BoxFut<'a, Result<Vec<DeviceView>, GatewayError>> {
        Box::pin(async move {
            let h = self.cluster.read_user(user).await.map_err(gateway_error)?;
            Ok(h.devices
                .iter()
                .map(|(id, d)| self.view_of(gw, id, d))
                .collect())
        })
    }

    fn user_records<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFut<'a, Result<Vec<crate::registry::remote::LocatedDevice>, GatewayError>> {
        Box::pin(async move {
            let h = self.cluster.read_user(user).await.map_err(gateway_error)?;
            let me = self.me();
            Ok(h.devices
                .iter()
                .map(|(id, d)| (d.to_device(id, Some(&me)), d.node.clone()))
                .collect())
        })
    }

    fn last_notifications<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFut<'a, HashMap<String, LastNotification>> {
        Box::pin(async move {
            self.cluster.last_outcomes(user).await.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "last outcomes unreadable for diagnosis");
                HashMap::new()
            })
        })
    }

    fn refresh_certificate_figures<'a>(
        &'a self,
        entries: &'a [Arc<crate::certs::CertEntry>],
    ) -> BoxFut<'a, ()> {
        Box::pin(async move {
            // Only reads: cut short (Redis slow or down), it changes nothing, and the view
            // shows the totals read last.
            let read = async {
                let _one = self.figures.lock().await;
                let runs = entries.iter().map(|e| async move {
                    let id = e.cert().id;
                    match self.cluster.cert_figures(id).await {
                        Ok(totals) => e.stats.read_cluster(totals),
                        Err(err) => {
                            tracing::debug!(certificate = id, error = %err, "certificate figures unread")
                        }
                    }
                });
                futures_util::future::join_all(runs).await;
            };
            if tokio::time::timeout(FIGURES_WAIT, read).await.is_err() {
                tracing::debug!("certificate figures not read in time; the last ones shown");
            }
        })
    }

    fn dedupe_admit<'a>(
        &'a self,
        keys: &'a [u64],
        value: &'a str,
        window_ms: u64,
    ) -> BoxFut<'a, Result<Vec<Option<String>>, GatewayError>> {
        Box::pin(async move {
            self.cluster
                .dedupe_admit(keys, value, window_ms)
                .await
                .map_err(gateway_error)
        })
    }

    fn dedupe_forget<'a>(&'a self, keys: &'a [u64]) -> BoxFut<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.cluster.dedupe_forget(keys).await {
                tracing::warn!(error = %e, "forgetting duplicate-window keys of a failed send failed");
            }
        })
    }

    fn next_message_id(&self) -> BoxFut<'_, Result<u64, GatewayError>> {
        Box::pin(async move {
            let mut ids = self.ids.lock().await;
            if ids.0 >= ids.1 {
                let mut c = eval(scripts::MSG_ID_BLOCK, &[keys::MSG_ID]);
                c.arg(now_millis() << 12).arg(ID_BLOCK);
                let end: u64 = self.cluster.durable(c).await.map_err(gateway_error)?;
                *ids = (end - ID_BLOCK, end);
            }
            let id = ids.0;
            ids.0 += 1;
            Ok(id)
        })
    }

    fn send<'a>(
        &'a self,
        gw: &'a Gateway,
        req: &'a SendRequest,
        message: Arc<Message>,
    ) -> BoxFut<'a, Result<Vec<RecipientResult>, GatewayError>> {
        Box::pin(self.do_send(gw, req, message))
    }

    fn next_certificate_id(&self) -> BoxFut<'_, Result<u64, GatewayError>> {
        Box::pin(async move {
            self.cluster
                .next_certificate_id()
                .await
                .map_err(gateway_error)
        })
    }

    fn put_certificate<'a>(
        &'a self,
        cert: &'a Certificate,
    ) -> BoxFut<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            self.cluster
                .put_certificate(cert)
                .await
                .map_err(gateway_error)
        })
    }

    fn delete_certificate(&self, id: u64) -> BoxFut<'_, Result<(), GatewayError>> {
        Box::pin(async move {
            self.cluster
                .delete_certificate(id)
                .await
                .map_err(gateway_error)
        })
    }

    fn leave<'a>(&'a self, gw: &'a Gateway) -> BoxFut<'a, ()> {
        Box::pin(async move {
            self.leaving
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let me = self.me();
            let _ = self.refresh_view().await;
            // The reaper's work, done by the node itself: devices still here turn PushOnline,
            // whatever its inbox holds goes to its certificates' durable queues, its keys go.
            let mut sink = GatewaySink {
                node: self,
                gw,
                action: StateAction::DisconnectLinkClose,
            };
            match self.cluster.reap_node(&me, &me, &mut sink).await {
                Ok(Some(r)) => tracing::info!(
                    devices = r.devices.len(),
                    pushed = r.pushed,
                    redelivered = r.redelivered,
                    "left the cluster"
                ),
                Ok(None) => tracing::warn!("another node is reaping this one"),
                Err(e) => {
                    tracing::warn!(error = %e, "leaving the cluster failed; the lease expiry will reap this node")
                }
            }
            if let Err(e) = self.cluster.leave_node(&me).await {
                tracing::warn!(error = %e, "removing this node's keys failed");
            }
            // The queue loops have stopped reading. What this node's senders hold may go out
            // (bounded); then the finished entries are acked and the leases given up, so the
            // next owners take over at their next poll instead of after the lease. Whatever is
            // unfinished stays pending in Redis for them.
            let owned: Vec<(CertificateId, String)> = self
                .owned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(c, m)| (*c, m.clone()))
                .collect();
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline
                && owned.iter().any(|(c, _)| gw.queued(*c) > 0)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for (cert, inc) in owned {
                self.ack_finished(cert).await;
                self.lose(cert);
                if let Err(e) = self.cluster.cert_release(cert, &inc).await {
                    tracing::warn!(certificate = cert, error = %e, "releasing a certificate lease failed");
                }
            }
        })
    }

    fn is_ready(&self) -> bool {
        !self.leaving.load(std::sync::atomic::Ordering::Relaxed) && self.lease.is_held()
    }

    fn acked(&self, conn: ConnId, id: u64) {
        let entry = self
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(conn, id));
        if let (Some(entry), Some(this)) = (entry, self.this.upgrade()) {
            this.finish(entry);
        }
    }

    fn fall_back(
        &self,
        gw: Arc<Gateway>,
        conn: ConnId,
        user: &str,
        device: &str,
        msg: Arc<Message>,
        already_pushed: bool,
    ) {
        let entry = self
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(conn, msg.id));
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let Some(entry) = entry else {
            // Not from the inbox (cannot happen in cluster mode): nothing to finish.
            return;
        };
        let t = InboxTarget {
            user: user.to_string(),
            device: device.to_string(),
            conn,
            also_pushed: already_pushed,
        };
        actix_rt::spawn(async move {
            let from = Location {
                node: this.me(),
                conn,
            };
            this.reroute_and_finish(&gw, &t, Some(from), &msg, entry)
                .await;
        });
    }
}
