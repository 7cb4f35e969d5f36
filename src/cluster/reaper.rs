//! The reaper of a dead node (§6). Any node that sees an incarnation in `pg:nodes` without its
//! `alive` key claims `pg:{n:X}:reap` (`SET NX`); the winner turns X's devices PushOnline (mobile)
//! or Offline (desktop) with a CAS that applies only while the device is still at (X, conn), so a
//! device that reconnected elsewhere is untouched; then it drains X's inbox: each unfinished
//! target is re-routed (redelivered to the device's new node, or handed to push), and finally
//! X's keys are deleted.

use super::codec::{EntryKind, InboxTarget};
use super::directory::{route_hash, Location};
use super::{keys, unix_now, Cluster, ClusterError};
use crate::domain::{CertificateId, DeviceState};
use crate::registry::Route;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// The reaper's claim on a dead node, renewed while it works.
const REAP_LEASE_MS: u64 = 30_000;
/// Connections handled per HSCAN step, inbox entries per XRANGE step.
const CHUNK: usize = 500;

/// A device the reaper disconnected (the caller sends its State.StateChange webhook).
#[derive(Debug, Clone, PartialEq)]
pub struct ReapedDevice {
    pub user: String,
    pub device: String,
    pub platform: crate::domain::Platform,
    pub state: DeviceState,
}

/// An unacked message of the dead node that goes out as a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapPush {
    pub msg: Vec<u8>,
    pub user: String,
    pub device: String,
    pub cert: CertificateId,
    pub token: String,
}

/// What one reap did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ReapReport {
    pub devices: Vec<ReapedDevice>,
    /// Targets handed to push (through the caller's `on_push`).
    pub pushed: usize,
    /// Targets moved into another node's inbox (the device reconnected there).
    pub redelivered: usize,
    /// Targets with nothing to do, with the reason (logged out, no token, already pushed…).
    pub skipped: Vec<(String, String, &'static str)>,
    /// Kick entries, meaningless once the node is gone.
    pub kicks_dropped: usize,
}

/// How a reaper hands a notification to push; it runs before the inbox entry is deleted, so a
/// reaper that dies mid-way leaves the rest for the next one (at least once).
pub trait ReapSink: Send {
    fn device(&mut self, d: &ReapedDevice);
    fn push(&mut self, p: ReapPush);

    /// Hands `p` to push and answers once it is safe to delete its inbox entry (cluster mode:
    /// appended to the certificate's durable queue). By default, `push`.
    fn queue(
        &mut self,
        p: ReapPush,
    ) -> crate::registry::remote::BoxFut<'_, Result<(), ClusterError>> {
        self.push(p);
        Box::pin(async { Ok(()) })
    }
}

impl Cluster {
    /// Incarnations other than `me` whose lease is gone.
    pub async fn dead_nodes(&self, me: &str) -> Result<Vec<String>, ClusterError> {
        Ok(self
            .node_view()
            .await?
            .into_iter()
            .filter(|v| !v.alive && v.node != me)
            .map(|v| v.node)
            .collect())
    }

    /// Reaps `dead` if no other node is reaping it; `None` when another reaper holds the claim.
    pub async fn reap_node(
        &self,
        dead: &str,
        me: &str,
        sink: &mut dyn ReapSink,
    ) -> Result<Option<ReapReport>, ClusterError> {
        let claim = keys::node_reap(dead);
        if !self.lease_acquire(&claim, me, REAP_LEASE_MS).await? {
            return Ok(None);
        }
        let mut report = ReapReport::default();
        self.reap_devices(dead, sink, &mut report).await?;
        self.lease_renew(&claim, me, REAP_LEASE_MS).await?;
        self.drain_inbox(dead, me, &claim, sink, &mut report)
            .await?;
        let _: i64 = self
            .durable(
                redis::cmd("DEL")
                    .arg(keys::node_conns(dead))
                    .arg(keys::node_inbox(dead))
                    .arg(keys::node_meta(dead))
                    .clone(),
            )
            .await?;
        let _: i64 = self
            .durable(redis::cmd("ZREM").arg(keys::NODES).arg(dead).clone())
            .await?;
        self.lease_release(&claim, me).await?;
        tracing::info!(
            node = %dead,
            devices = report.devices.len(),
            pushed = report.pushed,
            redelivered = report.redelivered,
            "reaped a dead node"
        );
        Ok(Some(report))
    }

    async fn reap_devices(
        &self,
        dead: &str,
        sink: &mut dyn ReapSink,
        report: &mut ReapReport,
    ) -> Result<(), ClusterError> {
        let conns = keys::node_conns(dead);
        let mut cursor = "0".to_string();
        let now = unix_now();
        loop {
            let (next, flat): (String, Vec<String>) = self
                .run(
                    redis::cmd("HSCAN")
                        .arg(&conns)
                        .arg(&cursor)
                        .arg("COUNT")
                        .arg(CHUNK),
                )
                .await?;
            let pairs: Vec<(&str, &str, u64)> = flat
                .chunks(2)
                .filter_map(|p| {
                    let (u, d) = keys::split_owner(p.first()?)?;
                    Some((u, d, p.get(1)?.parse().ok()?))
                })
                .collect();
            let flips = pairs.iter().map(|(u, d, conn)| {
                let at = Location {
                    node: dead.to_string(),
                    conn: *conn,
                };
                async move {
                    let r = self.disconnect_if_at(u, d, &at, now).await?;
                    Ok::<_, ClusterError>(r.map(|(state, rec)| ReapedDevice {
                        user: u.to_string(),
                        device: d.to_string(),
                        platform: rec.platform,
                        state,
                    }))
                }
            });
            for r in futures_util::future::try_join_all(flips)
                .await?
                .into_iter()
                .flatten()
            {
                self.stats.reaped_devices.fetch_add(1, Ordering::Relaxed);
                sink.device(&r);
                report.devices.push(r);
            }
            if next == "0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    async fn drain_inbox(
        &self,
        dead: &str,
        me: &str,
        claim: &str,
        sink: &mut dyn ReapSink,
        report: &mut ReapReport,
    ) -> Result<(), ClusterError> {
        let alive: HashSet<String> = self
            .node_view()
            .await?
            .into_iter()
            .filter(|v| v.alive)
            .map(|v| v.node)
            .collect();
        let is_alive = |n: &str| n != dead && alive.contains(n);
        let now = unix_now();
        // Handled entries are deleted after each chunk, so every chunk starts from the top.
        loop {
            let (entries, bad) = self.inbox_range(dead, "-", CHUNK).await?;
            if entries.is_empty() && bad.is_empty() {
                return Ok(());
            }
            for e in &entries {
                if e.kind == EntryKind::Kick {
                    report.kicks_dropped += 1;
                    continue;
                }
                for t in &e.targets {
                    self.fall_back(&e.msg, t, now, &is_alive, sink, report)
                        .await?;
                }
            }
            if !bad.is_empty() {
                tracing::warn!(node = %dead, entries = bad.len(), "malformed inbox entries dropped");
            }
            let done: Vec<String> = entries.iter().map(|e| e.id.clone()).chain(bad).collect();
            self.inbox_done(dead, &done).await?;
            self.lease_renew(claim, me, REAP_LEASE_MS).await?;
        }
    }

    /// The fallback of one unfinished target, against the device's record as it is now.
    async fn fall_back(
        &self,
        msg: &[u8],
        t: &InboxTarget,
        now: u64,
        alive: &(dyn Fn(&str) -> bool + Sync),
        sink: &mut dyn ReapSink,
        report: &mut ReapReport,
    ) -> Result<(), ClusterError> {
        let h = self.read_user(&t.user).await?;
        let routed = route_hash(&h, now, self.retention, alive);
        let Some(r) = routed.into_iter().find(|r| r.device == t.device) else {
            report
                .skipped
                .push((t.user.clone(), t.device.clone(), "unknown_device"));
            return Ok(());
        };
        // Reconnected on a live node: the message goes to that connection.
        if let (Some(at), false) = (&r.at, r.node_down) {
            let target = InboxTarget {
                conn: at.conn,
                ..t.clone()
            };
            if self
                .inbox_push(&at.node, EntryKind::Redeliver, msg, &[target])
                .await?
                .is_some()
            {
                report.redelivered += 1;
                return Ok(());
            }
        }
        match r.route {
            Route::Push { cert, token } | Route::OnlineAndPush { cert, token, .. } => {
                if t.also_pushed {
                    report
                        .skipped
                        .push((t.user.clone(), t.device.clone(), "already_pushed"));
                } else {
                    sink.queue(ReapPush {
                        msg: msg.to_vec(),
                        user: t.user.clone(),
                        device: t.device.clone(),
                        cert,
                        token: token.to_string(),
                    })
                    .await?;
                    report.pushed += 1;
                }
            }
            Route::Skip(reason) => {
                report
                    .skipped
                    .push((t.user.clone(), t.device.clone(), reason.as_str()))
            }
            Route::Online { .. } => report.skipped.push((
                t.user.clone(),
                t.device.clone(),
                "online_without_connection",
            )),
        }
        Ok(())
    }
}
