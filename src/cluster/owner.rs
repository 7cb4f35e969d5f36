//! Per-certificate durable queues and their owners (shared/cluster.md §7.6, §8).
//!
//! In redis mode a send does not hand a notification to this node's sender: it appends it to
//! the certificate's stream `pg:{c:<id>}:q` (bounded, acknowledged after `WAIT`). One node per
//! certificate owns it — a lease `pg:{c:<id>}:owner`, tried first by the node that rendezvous
//! hashing prefers among the live ones — and feeds the entries to its local sender, whose token
//! bucket is today's, exact for the whole cluster because only the owner sends. An entry is
//! acked and deleted when every notification in it has a final outcome. When the owner dies its
//! lease expires and the next owner claims the entries still pending (`XAUTOCLAIM`): they are
//! sent again (at least once), never lost.

use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::domain::CertificateId;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

/// The consumer group of every certificate queue.
pub const GROUP: &str = "senders";

/// One notification in a queue entry: the device and the token it was routed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedJob {
    pub user: String,
    pub device: String,
    pub token: String,
}

/// One entry of a certificate queue: a message and the devices it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: String,
    /// The message, encoded by the sender (`codec::encode_message`).
    pub msg: Vec<u8>,
    pub jobs: Vec<QueuedJob>,
}

fn field(e: &StreamId, name: &str) -> Option<Vec<u8>> {
    e.map
        .get(name)
        .and_then(|v| redis::from_redis_value_ref::<Vec<u8>>(v).ok())
}

/// The entry, or `Err(id)` when it is malformed (finished by the caller, counted).
fn parse(e: &StreamId) -> Result<QueueEntry, String> {
    let jobs = field(e, "jobs").and_then(|j| rmp_serde::from_slice::<Vec<QueuedJob>>(&j).ok());
    match (field(e, "msg"), jobs) {
        (Some(msg), Some(jobs)) if !jobs.is_empty() => Ok(QueueEntry {
            id: e.id.clone(),
            msg,
            jobs,
        }),
        _ => Err(e.id.clone()),
    }
}

fn split(ids: &[StreamId]) -> (Vec<QueueEntry>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for e in ids {
        match parse(e) {
            Ok(q) => good.push(q),
            Err(id) => bad.push(id),
        }
    }
    (good, bad)
}

/// The node rendezvous hashing prefers for `cert` among `nodes` (highest score wins; ties by
/// name), so every node that sees the same live set picks the same one, and a node's death
/// moves only its own certificates.
pub fn preferred<'a>(
    cert: CertificateId,
    nodes: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    nodes.into_iter().max_by_key(|n| {
        let mut h = Sha256::new();
        h.update(n.as_bytes());
        h.update(b"\0");
        h.update(cert.to_be_bytes());
        let d = h.finalize();
        let mut score = [0u8; 8];
        score.copy_from_slice(&d[..8]);
        (u64::from_be_bytes(score), *n)
    })
}

impl Cluster {
    /// Appends one message's notifications to the certificate's queue and waits for a replica.
    /// `None` when the queue holds `cert_queue_capacity` notifications already (`queue_full`).
    pub async fn cert_enqueue(
        &self,
        cert: CertificateId,
        msg: &[u8],
        jobs: &[QueuedJob],
    ) -> Result<Option<String>, ClusterError> {
        if jobs.is_empty() {
            return Ok(None);
        }
        let encoded = rmp_serde::to_vec_named(jobs)
            .map_err(|e| ClusterError::Unavailable(format!("queue entry not encodable: {e}")))?;
        let mut c = eval(
            scripts::XADD_BOUNDED,
            &[&keys::cert_queue(cert), &keys::cert_meta(cert)],
        );
        c.arg(self.cfg.cert_queue_capacity)
            .arg(jobs.len())
            .arg("n")
            .arg(jobs.len())
            .arg("msg")
            .arg(msg)
            .arg("jobs")
            .arg(encoded);
        self.durable(c).await
    }

    /// Creates the queue's consumer group (and the stream) unless it exists.
    pub async fn cert_group(&self, cert: CertificateId) -> Result<(), ClusterError> {
        let r: Result<String, ClusterError> = self
            .run(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(keys::cert_queue(cert))
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match r {
            Err(ClusterError::Unavailable(e)) if e.contains("BUSYGROUP") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Takes over entries other consumers read and did not finish, idle for at least
    /// `min_idle_ms`, from `cursor` on; the entries, the malformed ids, and the next cursor
    /// ("0-0" once the whole pending list was scanned).
    pub async fn cert_claim(
        &self,
        cert: CertificateId,
        me: &str,
        min_idle_ms: u64,
        cursor: &str,
    ) -> Result<(Vec<QueueEntry>, Vec<String>, String), ClusterError> {
        let r: StreamAutoClaimReply = self
            .run(
                redis::cmd("XAUTOCLAIM")
                    .arg(keys::cert_queue(cert))
                    .arg(GROUP)
                    .arg(me)
                    .arg(min_idle_ms)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(100),
            )
            .await?;
        let (good, bad) = split(&r.claimed);
        Ok((good, bad, r.next_stream_id))
    }

    /// Acks and deletes finished entries and lowers the bound by their notifications.
    /// Unconfirmed: a delete lost in a failover means a duplicate notification, never a loss.
    pub async fn cert_done(
        &self,
        cert: CertificateId,
        ids: &[String],
    ) -> Result<u64, ClusterError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = eval(
            scripts::CERTQ_DONE,
            &[&keys::cert_queue(cert), &keys::cert_meta(cert)],
        );
        for id in ids {
            c.arg(id);
        }
        self.run(&c).await
    }

    /// Notifications queued for `cert` and not finished (the bound's counter).
    pub async fn cert_queued(&self, cert: CertificateId) -> Result<u64, ClusterError> {
        let n: Option<i64> = self
            .run(redis::cmd("HGET").arg(keys::cert_meta(cert)).arg("jobs"))
            .await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// Tries to take the certificate's lease; true when it is now `me`'s.
    pub async fn cert_acquire(&self, cert: CertificateId, me: &str) -> Result<bool, ClusterError> {
        let r: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(keys::cert_owner(cert))
                    .arg(me)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.cfg.cert_lease_ms),
            )
            .await?;
        Ok(r.is_some())
    }

    /// Extends `me`'s lease: the notifications queued (one request for both), or None when
    /// the lease is no longer `me`'s.
    pub async fn cert_renew(
        &self,
        cert: CertificateId,
        me: &str,
    ) -> Result<Option<u64>, ClusterError> {
        let mut c = eval(
            scripts::CERT_RENEW,
            &[&keys::cert_owner(cert), &keys::cert_meta(cert)],
        );
        c.arg(me).arg(self.cfg.cert_lease_ms);
        let r: i64 = self.run(&c).await?;
        Ok((r >= 0).then_some(r as u64))
    }

    /// Gives the lease up (graceful stop), so another node takes over at its next poll.
    pub async fn cert_release(&self, cert: CertificateId, me: &str) -> Result<(), ClusterError> {
        let mut c = eval(scripts::LEASE_RELEASE, &[&keys::cert_owner(cert)]);
        c.arg(me);
        let _: i64 = self.run(&c).await?;
        Ok(())
    }

    /// The incarnation owning `cert` now, if any.
    pub async fn cert_owner(&self, cert: CertificateId) -> Result<Option<String>, ClusterError> {
        self.run(redis::cmd("GET").arg(keys::cert_owner(cert)))
            .await
    }
}

/// Reads one certificate's queue for its owner with `XREADGROUP … BLOCK` on a connection of
/// its own (a blocking read would hold up every command behind it on the shared one): an idle
/// owned certificate costs one request per block period, and an entry appended meanwhile is
/// read at once.
pub struct QueueReader {
    conn: redis::cluster_async::ClusterConnection,
    stream: String,
    block_ms: u64,
}

impl QueueReader {
    pub async fn new(
        cluster: &Cluster,
        cert: CertificateId,
        block: std::time::Duration,
    ) -> Result<QueueReader, ClusterError> {
        Ok(QueueReader {
            conn: cluster.blocking_connection(block).await?,
            stream: keys::cert_queue(cert),
            block_ms: block.as_millis().max(1) as u64,
        })
    }

    /// Up to `count` entries no consumer has read yet, now delivered to `me` (empty after the
    /// block period with nothing new); and the malformed ids met.
    pub async fn next(
        &mut self,
        me: &str,
        count: usize,
    ) -> Result<(Vec<QueueEntry>, Vec<String>), ClusterError> {
        let r: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(me)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(self.block_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut self.conn)
            .await?;
        let ids: Vec<StreamId> = r
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        Ok(split(&ids))
    }
}

/// What the owner has handed to its local senders and not finished: entries by notifications
/// left, notifications by (certificate, message id, user, device) → entries (one device may
/// get the same message twice, after a re-route), and entries finished, to ack.
#[derive(Debug, Default)]
pub struct Held {
    left: HashMap<(CertificateId, String), usize>,
    jobs: HashMap<(CertificateId, u64, String, String), VecDeque<String>>,
    done: HashMap<CertificateId, Vec<String>>,
}

impl Held {
    /// Notes an entry handed to the sender; false when it is held already (a claim that found
    /// an entry this node is still sending).
    pub fn add(&mut self, cert: CertificateId, entry: &QueueEntry, message_id: u64) -> bool {
        let key = (cert, entry.id.clone());
        if self.left.contains_key(&key) {
            return false;
        }
        self.left.insert(key, entry.jobs.len());
        for j in &entry.jobs {
            self.jobs
                .entry((cert, message_id, j.user.clone(), j.device.clone()))
                .or_default()
                .push_back(entry.id.clone());
        }
        true
    }

    /// A notification reached its final outcome. True when it was one of the held ones.
    pub fn finished(
        &mut self,
        cert: CertificateId,
        message_id: u64,
        user: &str,
        device: &str,
    ) -> bool {
        let key = (cert, message_id, user.to_string(), device.to_string());
        let Some(q) = self.jobs.get_mut(&key) else {
            return false;
        };
        let entry = q.pop_front();
        if q.is_empty() {
            self.jobs.remove(&key);
        }
        let Some(entry) = entry else { return false };
        let k = (cert, entry);
        match self.left.get_mut(&k) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.left.remove(&k);
                self.done.entry(cert).or_default().push(k.1);
            }
            None => {}
        }
        true
    }

    /// An entry to ack without sending (malformed, or its certificate refuses it).
    pub fn drop_entry(&mut self, cert: CertificateId, id: String) {
        self.done.entry(cert).or_default().push(id);
    }

    /// Entries of `cert` finished since the last call.
    pub fn take_done(&mut self, cert: CertificateId) -> Vec<String> {
        self.done.remove(&cert).unwrap_or_default()
    }

    /// Certificates with finished entries waiting for their ack.
    pub fn with_done(&self) -> Vec<CertificateId> {
        self.done.keys().copied().collect()
    }

    /// Entries of `cert` still being sent here.
    pub fn held(&self, cert: CertificateId) -> usize {
        self.left.keys().filter(|(c, _)| *c == cert).count()
    }

    /// The lease was lost: what is held stays pending in Redis for the new owner to claim.
    pub fn forget(&mut self, cert: CertificateId) {
        self.left.retain(|(c, _), _| *c != cert);
        self.jobs.retain(|(c, ..), _| *c != cert);
        self.done.remove(&cert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, devices: &[&str]) -> QueueEntry {
        QueueEntry {
            id: id.into(),
            msg: Vec::new(),
            jobs: devices
                .iter()
                .map(|d| QueuedJob {
                    user: "u".into(),
                    device: (*d).into(),
                    token: "t".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_entry_is_done_when_its_last_notification_is() {
        let mut h = Held::default();
        assert!(h.add(1001, &entry("1-0", &["a", "b"]), 7));
        assert!(!h.add(1001, &entry("1-0", &["a", "b"]), 7), "held once");
        assert!(h.finished(1001, 7, "u", "a"));
        assert!(h.take_done(1001).is_empty());
        assert!(!h.finished(1001, 8, "u", "b"), "another message");
        assert!(!h.finished(1002, 7, "u", "b"), "another certificate");
        assert!(h.finished(1001, 7, "u", "b"));
        assert_eq!(h.take_done(1001), ["1-0"]);
        assert!(!h.finished(1001, 7, "u", "b"), "finished once");
        assert_eq!(h.held(1001), 0);
    }

    #[test]
    fn the_same_message_twice_to_one_device_finishes_both_entries_in_order() {
        let mut h = Held::default();
        assert!(h.add(1001, &entry("1-0", &["a"]), 7));
        assert!(h.add(1001, &entry("2-0", &["a"]), 7));
        assert!(h.finished(1001, 7, "u", "a"));
        assert!(h.finished(1001, 7, "u", "a"));
        assert_eq!(h.take_done(1001), ["1-0", "2-0"]);
        h.add(1001, &entry("3-0", &["a"]), 9);
        h.forget(1001);
        assert!(!h.finished(1001, 9, "u", "a"), "forgotten with the lease");
        assert_eq!(h.held(1001), 0);
    }

    #[test]
    fn rendezvous_moves_only_the_dead_nodes_certificates() {
        let all = ["gw-1#1", "gw-2#2", "gw-3#3"];
        let certs: Vec<u64> = (1001..1101).collect();
        let before: Vec<&str> = certs
            .iter()
            .map(|c| preferred(*c, all).unwrap_or_default())
            .collect();
        for n in all {
            let owned = before.iter().filter(|o| **o == n).count();
            assert!(owned > 10, "{n} prefers {owned} of 100: spread");
        }
        let after: Vec<&str> = certs
            .iter()
            .map(|c| preferred(*c, ["gw-1#1", "gw-3#3"]).unwrap_or_default())
            .collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != "gw-2#2" {
                assert_eq!(b, a, "a live node's certificate stays");
            }
        }
        assert_eq!(preferred(1001, std::iter::empty::<&str>()), None);
    }
}
