//! The TIM duplicate window shared by the nodes (shared/cluster.md §1): one key per (sender,
//! recipient, MsgSeq, MsgRandom, content) hash, `SET pg:dd:{<key>} <first send> NX GET PX
//! <window>`. A key that exists answers the first send's value; Redis expires it with the window,
//! so nothing here sweeps. Not WAITed: a key lost in a failover lets one duplicate through, the
//! same as a restart of an embedded node.

use super::{keys, Cluster, ClusterError};

impl Cluster {
    /// Per key: `None` when it was new (now recorded with `value` for `window_ms`), or the value
    /// it was first recorded with. The keys live in different slots: one command each, run
    /// concurrently (the multiplexed connections pipeline them on the wire).
    pub async fn dedupe_admit(
        &self,
        keys: &[u64],
        value: &str,
        window_ms: u64,
    ) -> Result<Vec<Option<String>>, ClusterError> {
        let cmds: Vec<redis::Cmd> = keys
            .iter()
            .map(|k| {
                let mut c = redis::cmd("SET");
                // NX with GET needs Redis 7.0, which the start-up check requires.
                c.arg(keys::dedupe(*k))
                    .arg(value)
                    .arg("NX")
                    .arg("GET")
                    .arg("PX")
                    .arg(window_ms.max(1));
                c
            })
            .collect();
        futures_util::future::join_all(cmds.iter().map(|c| self.run::<Option<String>>(c)))
            .await
            .into_iter()
            .collect()
    }

    /// Deletes keys recorded for a send that failed afterwards.
    pub async fn dedupe_forget(&self, keys: &[u64]) -> Result<(), ClusterError> {
        let cmds: Vec<redis::Cmd> = keys
            .iter()
            .map(|k| {
                let mut c = redis::cmd("DEL");
                c.arg(keys::dedupe(*k));
                c
            })
            .collect();
        for r in futures_util::future::join_all(cmds.iter().map(|c| self.run::<i64>(c))).await {
            r?;
        }
        Ok(())
    }
}
