//! State one node learns and every node shows (shared/cluster.md §1, §7.6): a certificate's
//! health and figures, each device's last notification, and the APNs badge counts.
//!
//! - Health (`broken` with its reason, `paused_until`) is what the vendor told the certificate's
//!   owner. The owner writes it to `pg:{c:<id>}:meta` and logs `{id, op: health}` in
//!   `pg:certs:log`; every node tails the log and shows the same health in the API, the console,
//!   diagnosis and `/metrics`.
//! - Figures (sent, failed by class, …) are counted where they happen (the owner's sender, a
//!   node refusing a full queue, the node a receipt reached) and added to the meta hash with
//!   `HINCRBY`; a node shows the totals it last read.
//! - Last notifications go to `pg:{u:<user>}:last` (device → outcome, 7-day TTL), written by the
//!   owner in batches, unconfirmed (losing one in a failover costs a line of diagnosis).
//! - Badge counts live in `pg:{u:<user>}:badge` (device → count), so the next owner of an APNs
//!   certificate counts on from where the previous one stopped.

use super::codec::{decode_outcome, encode_outcome};
use super::{keys, Cluster, ClusterError};
use crate::certs::CertFigures;
use crate::domain::CertificateId;
use crate::providers::apns::badge::SharedBadges;
use crate::push::outcomes::LastNotification;
use crate::registry::remote::BoxFut;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a device's last outcome and badge count are kept without a new one (the
/// PushOnline retention's default: a device silent longer is Offline anyway).
pub const KEPT_MS: u64 = 7 * 86_400 * 1000;

/// A certificate's health as published: broken with its reason, and the pause's end (unix
/// seconds, 0 = none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedHealth {
    pub broken: Option<String>,
    pub paused_until: u64,
}

impl Cluster {
    /// Publishes a certificate's health as this node (its owner) knows it: the meta hash, then
    /// the log entry that tells the other nodes to read it.
    pub async fn publish_health(
        &self,
        cert: CertificateId,
        health: &SharedHealth,
    ) -> Result<(), ClusterError> {
        let meta = keys::cert_meta(cert);
        let mut p = redis::pipe();
        match &health.broken {
            Some(reason) => p
                .cmd("HSET")
                .arg(&meta)
                .arg("broken")
                .arg(1)
                .arg("broken_reason")
                .arg(reason)
                .ignore(),
            None => p
                .cmd("HDEL")
                .arg(&meta)
                .arg("broken")
                .arg("broken_reason")
                .ignore(),
        };
        p.cmd("HSET")
            .arg(&meta)
            .arg("paused_until")
            .arg(health.paused_until)
            .ignore();
        let () = self.run_pipe(&p).await?;
        self.log_certificate(cert, "health").await
    }

    /// A certificate's health as its owner last published it.
    pub async fn cert_health(&self, cert: CertificateId) -> Result<SharedHealth, ClusterError> {
        let (broken, reason, paused): (Option<String>, Option<String>, Option<u64>) = self
            .run(
                redis::cmd("HMGET")
                    .arg(keys::cert_meta(cert))
                    .arg("broken")
                    .arg("broken_reason")
                    .arg("paused_until"),
            )
            .await?;
        Ok(SharedHealth {
            broken: broken.map(|_| reason.unwrap_or_default()),
            paused_until: paused.unwrap_or(0),
        })
    }

    /// Adds `added` (this node's new figures) to the certificate's totals and reads the totals
    /// back, in one request.
    pub async fn cert_figures(
        &self,
        cert: CertificateId,
        added: &CertFigures,
    ) -> Result<CertFigures, ClusterError> {
        let meta = keys::cert_meta(cert);
        let mut p = redis::pipe();
        for (field, n) in added.fields() {
            if n > 0 {
                p.cmd("HINCRBY").arg(&meta).arg(field).arg(n).ignore();
            }
        }
        p.cmd("HGETALL").arg(&meta);
        let (all,): (HashMap<String, redis::Value>,) = self.run_pipe(&p).await?;
        // `jobs`, `broken_reason` and the like are not figures; a figure that is not a number
        // (never written so) reads as 0.
        Ok(CertFigures::from_fields(all.iter().map(|(k, v)| {
            let n = redis::from_redis_value_ref::<u64>(v).unwrap_or(0);
            (k.as_str(), n)
        })))
    }

    /// Records last outcomes of one user's devices (unconfirmed).
    pub async fn record_outcomes(
        &self,
        user: &str,
        outcomes: &[(String, LastNotification)],
    ) -> Result<(), ClusterError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let key = keys::user_last(user);
        let mut p = redis::pipe();
        p.cmd("HSET").arg(&key);
        for (device, n) in outcomes {
            p.arg(device).arg(encode_outcome(n));
        }
        p.ignore();
        p.cmd("PEXPIRE").arg(&key).arg(KEPT_MS).ignore();
        let () = self.run_pipe(&p).await?;
        Ok(())
    }

    /// The last outcome of each of the user's devices (unreadable ones left out).
    pub async fn last_outcomes(
        &self,
        user: &str,
    ) -> Result<HashMap<String, LastNotification>, ClusterError> {
        let all: HashMap<String, Vec<u8>> = self
            .run(redis::cmd("HGETALL").arg(keys::user_last(user)))
            .await?;
        Ok(all
            .into_iter()
            .filter_map(|(d, b)| decode_outcome(&b).map(|n| (d, n)))
            .collect())
    }
}

/// The badge counts in Redis (see `providers::apns::badge`).
pub struct RedisBadges(pub Arc<Cluster>);

impl SharedBadges for RedisBadges {
    fn set<'a>(
        &'a self,
        user: &'a str,
        device: &'a str,
        count: Option<u32>,
    ) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            let key = keys::user_badge(user);
            let mut p = redis::pipe();
            match count {
                Some(n) => {
                    p.cmd("HSET").arg(&key).arg(device).arg(n).ignore();
                    p.cmd("PEXPIRE").arg(&key).arg(KEPT_MS).ignore();
                }
                None => {
                    p.cmd("HDEL").arg(&key).arg(device).ignore();
                }
            }
            let r: Result<(), ClusterError> = self.0.run_pipe(&p).await;
            r.map_err(|e| e.to_string())
        })
    }

    fn next<'a>(&'a self, user: &'a str, device: &'a str) -> BoxFut<'a, Result<u32, String>> {
        Box::pin(async move {
            let key = keys::user_badge(user);
            let mut p = redis::pipe();
            p.cmd("HINCRBY").arg(&key).arg(device).arg(1);
            p.cmd("PEXPIRE").arg(&key).arg(KEPT_MS).ignore();
            let r: Result<(i64,), ClusterError> = self.0.run_pipe(&p).await;
            r.map(|(n,)| n.clamp(1, i64::from(u32::MAX)) as u32)
                .map_err(|e| e.to_string())
        })
    }

    fn current<'a>(&'a self, user: &'a str, device: &'a str) -> BoxFut<'a, Result<u32, String>> {
        Box::pin(async move {
            let r: Result<Option<i64>, ClusterError> = self
                .0
                .run(redis::cmd("HGET").arg(keys::user_badge(user)).arg(device))
                .await;
            r.map(|n| n.unwrap_or(1).clamp(1, i64::from(u32::MAX)) as u32)
                .map_err(|e| e.to_string())
        })
    }
}
