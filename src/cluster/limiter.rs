//! The global limiter option of §8 (Appendix B): a reservation GCRA on the Redis server's clock,
//! shared by every node sending for one certificate. The recommended design keeps one owner per
//! certificate with its exact local bucket; this is the documented alternative. Nothing in the
//! sender uses it today: a certificate's owner sends with its local `push::bucket::TokenBucket`.

use super::{eval, keys, scripts, Cluster, ClusterError};
use crate::domain::CertificateId;
use crate::push::bucket::TICK;

/// A limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The requests were reserved; send after `wait_us`.
    pub granted: bool,
    /// Microseconds until the reserved slot (or until one would be free, when not granted).
    pub wait_us: u64,
    /// The server's clock when it answered, in microseconds.
    pub now_us: u64,
}

impl Cluster {
    /// Reserves `requests` vendor requests for `cert` at `qps` with `burst` (at least one timer
    /// tick's worth of the rate, [`TICK`], as the local token bucket), waiting at most
    /// `max_wait_us`. In any one-second window at most `qps + burst` requests are granted. Unconfirmed (§5): a lost reservation after a failover costs at most one
    /// replication lag of extra rate.
    pub async fn gcra_reserve(
        &self,
        cert: CertificateId,
        qps: u32,
        burst: u32,
        requests: u32,
        max_wait_us: u64,
    ) -> Result<Grant, ClusterError> {
        let mut c = eval(scripts::GCRA, &[&keys::cert_gcra(cert)]);
        c.arg(qps.max(1))
            .arg(burst.max(1))
            .arg(requests.max(1))
            .arg(max_wait_us)
            .arg(TICK.as_micros() as u64);
        let r: Vec<i64> = self.run(&c).await?;
        let get = |i: usize| r.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(Grant {
            granted: get(0) == 1,
            wait_us: get(1),
            now_us: get(2),
        })
    }
}
