//! The per-node inbox stream `pg:{n:<node>}:in` (§7.4, §7.5): senders append bounded entries
//! with WAIT; the owning node reads them with `XREAD BLOCK` on its own connection and deletes an
//! entry once every target has acked or gone to push. Whatever is still in the stream is
//! unfinished, which is what lets the reaper of a dead node send it out as notifications.

use super::codec::{decode_targets, encode_targets, EntryKind, InboxTarget};
use super::{eval, keys, scripts, Cluster, ClusterError};
use redis::cluster_async::ClusterConnection;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use std::collections::HashMap;
use std::time::Duration;

/// Entries one `XREAD` returns at most.
const READ_COUNT: usize = 256;

/// One inbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    pub id: String,
    pub kind: EntryKind,
    /// The message, encoded by the sender (opaque here).
    pub msg: Vec<u8>,
    pub targets: Vec<InboxTarget>,
}

fn field(e: &StreamId, name: &str) -> Option<Vec<u8>> {
    e.map
        .get(name)
        .and_then(|v| redis::from_redis_value_ref::<Vec<u8>>(v).ok())
}

/// An entry as read, or `Err(id)` when it is malformed (deleted and counted by the caller).
fn parse(e: &StreamId) -> Result<InboxEntry, String> {
    let kind = field(e, "k").and_then(|k| EntryKind::parse(&k));
    let targets = field(e, "to").and_then(|t| decode_targets(&t).ok());
    match (kind, targets) {
        (Some(kind), Some(targets)) => Ok(InboxEntry {
            id: e.id.clone(),
            kind,
            msg: field(e, "msg").unwrap_or_default(),
            targets,
        }),
        _ => Err(e.id.clone()),
    }
}

impl Cluster {
    /// Appends an entry to `node`'s inbox and waits for a replica. `None` when the inbox holds
    /// `inbox_capacity` entries already (`node_inbox_full`: the caller falls back to push).
    pub async fn inbox_push(
        &self,
        node: &str,
        kind: EntryKind,
        msg: &[u8],
        targets: &[InboxTarget],
    ) -> Result<Option<String>, ClusterError> {
        let (stream, meta) = (keys::node_inbox(node), keys::node_meta(node));
        let mut c = eval(scripts::XADD_BOUNDED, &[&stream, &meta]);
        c.arg(self.cfg.inbox_capacity)
            .arg(1)
            .arg("k")
            .arg(kind.as_str())
            .arg("msg")
            .arg(msg)
            .arg("to")
            .arg(encode_targets(targets));
        self.durable(c).await
    }

    /// Deletes finished entries (acked, pushed, or dropped) and lowers the bound's counter.
    /// Unconfirmed: losing a delete in a failover means a duplicate, never a loss.
    pub async fn inbox_done(&self, node: &str, ids: &[String]) -> Result<u64, ClusterError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = eval(
            scripts::XDEL_DONE,
            &[&keys::node_inbox(node), &keys::node_meta(node)],
        );
        for id in ids {
            c.arg(id);
        }
        self.run(&c).await
    }

    /// Entries in `node`'s inbox.
    pub async fn inbox_len(&self, node: &str) -> Result<u64, ClusterError> {
        self.run(redis::cmd("XLEN").arg(keys::node_inbox(node)))
            .await
    }

    /// Up to `count` entries after `after` ("-" for the start), and the malformed ids met.
    pub async fn inbox_range(
        &self,
        node: &str,
        after: &str,
        count: usize,
    ) -> Result<(Vec<InboxEntry>, Vec<String>), ClusterError> {
        let start = if after == "-" {
            "-".to_string()
        } else {
            format!("({after}")
        };
        let r: StreamRangeReply = self
            .run(
                redis::cmd("XRANGE")
                    .arg(keys::node_inbox(node))
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(count),
            )
            .await?;
        Ok(split(r.ids.iter().map(parse)))
    }
}

fn split(it: impl Iterator<Item = Result<InboxEntry, String>>) -> (Vec<InboxEntry>, Vec<String>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for r in it {
        match r {
            Ok(e) => good.push(e),
            Err(id) => bad.push(id),
        }
    }
    (good, bad)
}

/// Reads one node's inbox with `XREAD BLOCK` on a dedicated connection (a blocking read would
/// hold up every command behind it on the shared one).
pub struct InboxReader {
    conn: ClusterConnection,
    stream: String,
    /// The last id read; in memory only: a new incarnation starts with a new, empty inbox.
    last_id: String,
    block_ms: u64,
}

impl InboxReader {
    pub async fn new(
        cluster: &Cluster,
        node: &str,
        block: Duration,
    ) -> Result<InboxReader, ClusterError> {
        Ok(InboxReader {
            conn: cluster.blocking_connection(block).await?,
            stream: keys::node_inbox(node),
            last_id: "0-0".into(),
            block_ms: block.as_millis() as u64,
        })
    }

    /// The next entries (empty after the block time with nothing new), and the malformed ids
    /// met (the caller deletes and counts them).
    pub async fn next(&mut self) -> Result<(Vec<InboxEntry>, Vec<String>), ClusterError> {
        let r: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(self.block_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(&self.last_id)
            .query_async(&mut self.conn)
            .await?;
        let ids: Vec<StreamId> = r
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        if let Some(last) = ids.last() {
            self.last_id = last.id.clone();
        }
        Ok(split(ids.iter().map(parse)))
    }
}

/// Targets still outstanding per entry: an entry is finished when every target has acked,
/// fallen back to push or ended with its session.
#[derive(Debug, Default)]
pub struct Outstanding {
    left: HashMap<String, usize>,
}

impl Outstanding {
    pub fn add(&mut self, id: &str, targets: usize) {
        if targets > 0 {
            *self.left.entry(id.to_string()).or_default() += targets;
        }
    }

    /// One target of `id` finished; true when that was the last one (delete the entry now).
    pub fn finish(&mut self, id: &str) -> bool {
        match self.left.get_mut(id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.left.remove(id);
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.left.len()
    }

    pub fn is_empty(&self) -> bool {
        self.left.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_finished_by_its_last_target_only_once() {
        let mut o = Outstanding::default();
        o.add("1-0", 2);
        o.add("2-0", 0);
        assert_eq!(o.len(), 1, "an entry without targets is never outstanding");
        assert!(!o.finish("1-0"));
        assert!(o.finish("1-0"));
        assert!(
            !o.finish("1-0"),
            "a late ack of a finished entry changes nothing"
        );
        assert!(o.is_empty());
    }
}
