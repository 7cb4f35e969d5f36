//! State one node learns and every node shows (shared/cluster.md §1, §7.6): a certificate's
//! health and figures, each device's last notification, and the APNs badge counts.
//!
//! - Health (`broken` with its reason, `paused_until`) is what the vendor told the certificate's
//!   owner. The owner writes it to `pg:{c:<id>}:meta` and logs `{id, op: health}` in
//!   `pg:certs:log`; every node tails the log and shows the same health in the API, the console,
//!   diagnosis and `/metrics`.
//! - Figures (sent, failed by class, …) are counted where they happen (the owner's sender, a
//!   node refusing a full queue) and added to the meta hash by a
//!   script that applies each numbered addition of a process once ([`FigureAdder`]): an
//!   addition retried after a timeout is not counted twice. A node shows the totals it last
//!   read; the API reads the same totals as before. Receipts are counted straight into the
//!   same fields by their own script, once per receipt (`cluster::receipts`).
//! - The 10027 back-off (`factor`, the share of the qps the owner's sender allows itself) is
//!   published by the owner when it changes and read by a node taking the lease over, whose
//!   sender starts from it. It decays as the owner's does, with traffic only: each request
//!   answered without "too fast" gives back 5% of the qps (full speed after at most 20), and the
//!   owner publishes the recovering value, removing it at 1. An idle certificate keeps its
//!   back-off, in Redis as in a single node's sender, until requests go through again.
//! - Last notifications go to `pg:{u:<user>}:last` (device → outcome, 7-day TTL), written by the
//!   owner in batches, unconfirmed (losing one in a failover costs a line of diagnosis).
//! - Badge counts live in `pg:{u:<user>}:badge` (device → count), so the next owner of an APNs
//!   certificate counts on from where the previous one stopped.

use super::codec::{decode_outcome, encode_outcome};
use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::certs::{CertFigures, CertStats};
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

/// Whether a published health was written whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Written,
    /// The broken mark was about a version of the certificate edited since: not written (the
    /// pause was).
    StaleBroken,
}

impl Cluster {
    /// Publishes a certificate's health as this node (its owner) knows it: the meta hash, then
    /// the log entry that tells the other nodes to read it. `about`: the version of the
    /// certificate a broken mark is about (`certsync::fingerprint`; None: unknown). A broken
    /// mark about a version an edit has replaced meanwhile is not written: a stale refusal never
    /// undoes a fix.
    pub async fn publish_health(
        &self,
        cert: CertificateId,
        health: &SharedHealth,
        about: Option<&str>,
    ) -> Result<Published, ClusterError> {
        let mut c = eval(scripts::PUBLISH_HEALTH, &[&keys::cert_meta(cert)]);
        c.arg(about.unwrap_or(""))
            .arg(if health.broken.is_some() { "1" } else { "0" })
            .arg(health.broken.as_deref().unwrap_or(""))
            .arg(health.paused_until);
        let fresh: i64 = self.run(&c).await?;
        self.log_certificate(cert, "health").await?;
        Ok(if fresh == 1 {
            Published::Written
        } else {
            Published::StaleBroken
        })
    }

    /// Publishes the owner's 10027 back-off (`factor`: the share of the qps its sender allows
    /// itself now), so that a next owner starts from it rather than at full qps; 1 removes it.
    /// Unconfirmed: a value lost in a failover costs a new owner one back-off more.
    pub async fn publish_rate_factor(
        &self,
        cert: CertificateId,
        factor: f64,
    ) -> Result<(), ClusterError> {
        let meta = keys::cert_meta(cert);
        let _: i64 = if factor >= 1.0 || !factor.is_finite() {
            self.run(redis::cmd("HDEL").arg(meta).arg("factor")).await?
        } else {
            self.run(
                redis::cmd("HSET")
                    .arg(meta)
                    .arg("factor")
                    // In full: a large qps backs off to tiny shares (1/s at least).
                    .arg(factor.to_string()),
            )
            .await?
        };
        Ok(())
    }

    /// The back-off the certificate's owner last published (1: none, or unreadable).
    pub async fn cert_rate_factor(&self, cert: CertificateId) -> Result<f64, ClusterError> {
        let f: Option<String> = self
            .run(redis::cmd("HGET").arg(keys::cert_meta(cert)).arg("factor"))
            .await?;
        Ok(f.and_then(|f| f.parse::<f64>().ok())
            .filter(|f| f.is_finite() && *f > 0.0)
            .map_or(1.0, |f| f.min(1.0)))
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

    /// Adds `added`, this process's figures numbered `seq` (see [`FigureAdder`]), to the
    /// certificate's totals unless that addition was applied already, and reads the totals
    /// back, in one request.
    pub async fn cert_figures_add(
        &self,
        cert: CertificateId,
        adder: &str,
        seq: u64,
        added: &CertFigures,
    ) -> Result<CertFigures, ClusterError> {
        let mut c = eval(scripts::FIGURES_ADD, &[&keys::cert_meta(cert)]);
        c.arg(adder).arg(seq).arg(ADDERS_KEPT_MS);
        for (field, n) in added.fields() {
            if n > 0 {
                c.arg(field).arg(n);
            }
        }
        let all: HashMap<String, redis::Value> = self.run(&c).await?;
        Ok(figures_of(&all))
    }

    /// The certificate's totals, every node's figures together.
    pub async fn cert_figures(&self, cert: CertificateId) -> Result<CertFigures, ClusterError> {
        let all: HashMap<String, redis::Value> = self
            .run(redis::cmd("HGETALL").arg(keys::cert_meta(cert)))
            .await?;
        Ok(figures_of(&all))
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

/// How long the last addition number of a process that stopped adding figures is kept: far
/// longer than any retry of one of its additions can come late.
const ADDERS_KEPT_MS: u64 = 86_400 * 1000;

/// The figures in a certificate's meta hash. `jobs`, `broken_reason`, the `add:` numbers and the
/// like are not figures; a figure that is not a number (never written so) reads as 0.
fn figures_of(all: &HashMap<String, redis::Value>) -> CertFigures {
    CertFigures::from_fields(all.iter().map(|(k, v)| {
        let n = redis::from_redis_value_ref::<u64>(v).unwrap_or(0);
        (k.as_str(), n)
    }))
}

/// Adds one process's certificate figures to the cluster's totals exactly once. Each addition
/// gets a number (milliseconds, increasing) under the process's own field `add:<node>`; one
/// whose reply was lost — a timeout, a failover — is sent again with the same number and the
/// same amounts until an answer comes, and Redis applies a number once. New figures wait for
/// that answer: they join the next addition.
pub struct FigureAdder {
    /// `add:<the process's first incarnation>`: kept across a fence, which changes the
    /// incarnation but not the process's counts.
    field: String,
    last_seq: std::sync::Mutex<u64>,
    /// Per certificate, the addition sent and not answered yet.
    unanswered: std::sync::Mutex<HashMap<CertificateId, (u64, CertFigures)>>,
}

impl FigureAdder {
    pub fn new(process: &str) -> FigureAdder {
        FigureAdder {
            field: format!("add:{process}"),
            last_seq: std::sync::Mutex::new(0),
            unanswered: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn next_seq(&self) -> u64 {
        let mut last = self.last_seq.lock().unwrap_or_else(|e| e.into_inner());
        *last = (*last + 1).max(crate::domain::now_millis());
        *last
    }

    /// The addition for `cert` sent and not answered yet (its number and amounts): what the
    /// next `flush` sends again, and Redis applies only if it did not already.
    pub fn unanswered(&self, cert: CertificateId) -> Option<(u64, CertFigures)> {
        self.unanswered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cert)
            .cloned()
    }

    /// The `add:<process>` field its additions are numbered in.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Adds what `stats` counted since its last addition (or sends the unanswered one again)
    /// and shows the cluster's totals in it.
    pub async fn flush(
        &self,
        cluster: &Cluster,
        cert: CertificateId,
        stats: &CertStats,
    ) -> Result<(), ClusterError> {
        let waiting = self
            .unanswered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cert)
            .cloned();
        let (seq, added) = match waiting {
            Some(w) => w,
            None => {
                let added = stats.unflushed();
                if added.is_zero() {
                    return Ok(());
                }
                let w = (self.next_seq(), added);
                self.unanswered
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(cert, w.clone());
                w
            }
        };
        let totals = cluster
            .cert_figures_add(cert, &self.field, seq, &added)
            .await?;
        self.unanswered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cert);
        stats.flushed(&added, totals);
        Ok(())
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
