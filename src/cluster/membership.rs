//! Node identity, lease and view (§6). A node is `<name>#<INCR pg:node:seq>`; its lease
//! `pg:{n:<node>}:alive` is set `NX` at start and `XX` every `node_renew_ms`. A nil renewal, or
//! passing the local deadline (last successful renew + TTL − 2 s), fences the node: it takes a new
//! incarnation and re-asserts its sessions, since a reaper may already have flipped them.

use super::{eval, keys, scripts, unix_now, Cluster, ClusterError};
use crate::registry::ConnId;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Margin before the lease's expiry at which a node stops trusting it.
pub const FENCE_MARGIN: Duration = Duration::from_secs(2);

/// What one lease tick did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseTick {
    Renewed,
    /// The lease was lost; the node now runs as `now` (re-assert the sessions of `was`).
    Fenced {
        was: String,
        now: String,
    },
}

/// This node's identity and lease.
pub struct NodeLease {
    name: String,
    incarnation: RwLock<String>,
    /// Past this instant the lease may have expired: fence.
    deadline: Mutex<Instant>,
    ttl: Duration,
}

impl NodeLease {
    /// Registers a new incarnation of `name`.
    pub async fn register(cluster: &Cluster, name: &str) -> Result<NodeLease, ClusterError> {
        let ttl = Duration::from_millis(cluster.cfg.node_lease_ms);
        let start = Instant::now();
        let inc = cluster.register_node(name).await?;
        Ok(NodeLease {
            name: name.to_string(),
            incarnation: RwLock::new(inc),
            deadline: Mutex::new(start + ttl.saturating_sub(FENCE_MARGIN)),
            ttl,
        })
    }

    /// The current incarnation (`gw-1#17`).
    pub fn incarnation(&self) -> String {
        self.incarnation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the lease is trusted now (readiness; certificate senders check it before a send).
    pub fn is_held(&self) -> bool {
        Instant::now() < *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renews the lease; fences and re-registers when it is lost. An error (Redis unreachable)
    /// leaves the lease as it is: the deadline decides.
    pub async fn tick(&self, cluster: &Cluster) -> Result<LeaseTick, ClusterError> {
        let start = Instant::now();
        let inc = self.incarnation();
        let expired = !self.is_held();
        if !expired && cluster.renew_node(&inc).await? {
            *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) =
                start + self.ttl.saturating_sub(FENCE_MARGIN);
            return Ok(LeaseTick::Renewed);
        }
        let now = cluster.register_node(&self.name).await?;
        *self.incarnation.write().unwrap_or_else(|e| e.into_inner()) = now.clone();
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) =
            start + self.ttl.saturating_sub(FENCE_MARGIN);
        tracing::warn!(was = %inc, now = %now, "node lease lost; re-registered");
        Ok(LeaseTick::Fenced { was: inc, now })
    }
}

/// One node incarnation as the membership view sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub node: String,
    pub alive: bool,
}

impl Cluster {
    /// A new incarnation: `INCR` the sequence, take the lease, list the node.
    pub async fn register_node(&self, name: &str) -> Result<String, ClusterError> {
        let seq: u64 = self
            .durable(redis::cmd("INCR").arg(keys::NODE_SEQ).clone())
            .await?;
        let inc = format!("{name}#{seq}");
        let _: Option<String> = self
            .durable(
                redis::cmd("SET")
                    .arg(keys::node_alive(&inc))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(self.cfg.node_lease_ms)
                    .clone(),
            )
            .await?;
        let _: i64 = self
            .durable(
                redis::cmd("ZADD")
                    .arg(keys::NODES)
                    .arg(unix_now())
                    .arg(&inc)
                    .clone(),
            )
            .await?;
        Ok(inc)
    }

    /// `SET … XX PX`: false when the key had expired (the node may have been reaped).
    /// Unconfirmed (§5): a renewal lost in a failover is repeated 2 s later.
    pub async fn renew_node(&self, node: &str) -> Result<bool, ClusterError> {
        let r: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(keys::node_alive(node))
                    .arg(1)
                    .arg("XX")
                    .arg("PX")
                    .arg(self.cfg.node_lease_ms),
            )
            .await?;
        Ok(r.is_some())
    }

    /// Every registered incarnation and whether its lease is alive (ZRANGE, then the EXISTS
    /// checks as concurrent requests).
    pub async fn node_view(&self) -> Result<Vec<NodeView>, ClusterError> {
        let nodes: Vec<String> = self
            .run(redis::cmd("ZRANGE").arg(keys::NODES).arg(0).arg(-1))
            .await?;
        let checks = nodes.iter().map(|n| async move {
            let alive: i64 = self
                .run(redis::cmd("EXISTS").arg(keys::node_alive(n)))
                .await?;
            Ok::<_, ClusterError>(NodeView {
                node: n.clone(),
                alive: alive == 1,
            })
        });
        futures_util::future::try_join_all(checks).await
    }

    /// Graceful leave (§7.9 step 5): the lease, connection set and inbox go, and the node leaves
    /// the list. The caller has ended its sessions and flushed its inbox first.
    pub async fn leave_node(&self, node: &str) -> Result<(), ClusterError> {
        let _: i64 = self
            .durable(
                redis::cmd("DEL")
                    .arg(keys::node_alive(node))
                    .arg(keys::node_conns(node))
                    .arg(keys::node_inbox(node))
                    .arg(keys::node_meta(node))
                    .clone(),
            )
            .await?;
        let _: i64 = self
            .durable(redis::cmd("ZREM").arg(keys::NODES).arg(node).clone())
            .await?;
        Ok(())
    }

    /// Records a connection in the node's set, before the login CAS (the set stays a superset
    /// of the node's Online devices, so the reaper finds them all).
    pub async fn add_conn(
        &self,
        node: &str,
        user: &str,
        device: &str,
        conn: ConnId,
    ) -> Result<(), ClusterError> {
        let _: i64 = self
            .durable(
                redis::cmd("HSET")
                    .arg(keys::node_conns(node))
                    .arg(keys::owner_value(user, device))
                    .arg(conn)
                    .clone(),
            )
            .await?;
        Ok(())
    }

    /// Removes a connection from the node's set if it is still that connection (after the
    /// disconnect CAS). Unconfirmed: a stale entry only costs the reaper one no-op CAS.
    pub async fn remove_conn(
        &self,
        node: &str,
        user: &str,
        device: &str,
        conn: ConnId,
    ) -> Result<(), ClusterError> {
        let mut c = eval(scripts::CONN_REMOVE, &[&keys::node_conns(node)]);
        c.arg(keys::owner_value(user, device)).arg(conn);
        let _: i64 = self.run(&c).await?;
        Ok(())
    }

    /// `SET key me NX PX ttl`: whether `me` holds the lease now.
    pub async fn lease_acquire(
        &self,
        key: &str,
        me: &str,
        ttl_ms: u64,
    ) -> Result<bool, ClusterError> {
        let r: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(key)
                    .arg(me)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        Ok(r.is_some())
    }

    /// Extends the lease if `me` still holds it.
    pub async fn lease_renew(
        &self,
        key: &str,
        me: &str,
        ttl_ms: u64,
    ) -> Result<bool, ClusterError> {
        let mut c = eval(scripts::LEASE_RENEW, &[key]);
        c.arg(me).arg(ttl_ms);
        Ok(self.run::<i64>(&c).await? == 1)
    }

    /// Releases the lease if `me` holds it.
    pub async fn lease_release(&self, key: &str, me: &str) -> Result<bool, ClusterError> {
        let mut c = eval(scripts::LEASE_RELEASE, &[key]);
        c.arg(me);
        Ok(self.run::<i64>(&c).await? == 1)
    }
}
