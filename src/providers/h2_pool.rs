//! A bounded pool of HTTP/2 connections for one certificate (FCM, APNs): each request is one
//! stream on the least busy connection. A `reqwest::Client` keeps one HTTP/2 connection per
//! host and multiplexes on it, so the pool is `size` clients. Each connection obeys the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` — streams over the limit wait for a free one inside h2
//! rather than fail — so when APNs cuts a connection's concurrency to 1 the requests on it
//! slow down, the least-busy choice moves new ones to the other connections, and nothing fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Connections per certificate. Apple asks for few, long-lived connections (spec/vendors/apns.md
/// §1: rapid reconnects look like DoS); 4 × hundreds of streams is far above a certificate's rate.
pub const CONNECTIONS_PER_CERTIFICATE: usize = 4;

/// Requests one certificate keeps in flight (FCM, APNs): one stream each, spread over the pool's
/// connections; each connection still obeys the server's own stream limit.
pub const STREAMS_IN_FLIGHT: usize = 256;

/// Exponential back-off with jitter for a retried request: about 0.5 s, 1 s, 2 s … up to 60 s.
pub fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let base_ms: u64 = 500u64 << attempt.min(7);
    let base_ms = base_ms.min(60_000);
    Duration::from_millis(base_ms / 2 + rand::rng().random_range(0..=base_ms / 2))
}

struct Slot {
    client: reqwest::Client,
    in_flight: AtomicUsize,
}

pub struct H2Pool {
    slots: Vec<Slot>,
}

/// A connection lent to one request; gives its stream back when dropped.
pub struct Lease<'a> {
    slot: &'a Slot,
    /// Which connection, for tests and logs.
    pub index: usize,
}

impl std::ops::Deref for Lease<'_> {
    type Target = reqwest::Client;
    fn deref(&self) -> &reqwest::Client {
        &self.slot.client
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An HTTP/2-only client: prior knowledge on `http://` (h2c, the emulators), ALPN `h2` on
/// `https://`. Pings keep an idle connection open (APNs answers `IdleTimeout` otherwise).
pub fn h2_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(600))
        .http2_keep_alive_interval(Duration::from_secs(60))
        .http2_keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .build()
}

impl H2Pool {
    pub fn new(size: usize, timeout: Duration) -> Result<H2Pool, reqwest::Error> {
        let slots = (0..size.max(1))
            .map(|_| {
                Ok(Slot {
                    client: h2_client(timeout)?,
                    in_flight: AtomicUsize::new(0),
                })
            })
            .collect::<Result<Vec<_>, reqwest::Error>>()?;
        Ok(H2Pool { slots })
    }

    /// The connection with the fewest requests in flight, `avoid` excepted when there is a
    /// choice (a retry after a connection failed goes to another one).
    pub fn lease(&self, avoid: Option<usize>) -> Lease<'_> {
        let mut best = 0;
        let mut best_load = usize::MAX;
        for (i, slot) in self.slots.iter().enumerate() {
            if Some(i) == avoid && self.slots.len() > 1 {
                continue;
            }
            let load = slot.in_flight.load(Ordering::Relaxed);
            if load < best_load {
                best = i;
                best_load = load;
            }
        }
        let slot = &self.slots[best];
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        Lease { slot, index: best }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Requests in flight over all connections.
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .map(|s| s.in_flight.load(Ordering::Relaxed))
            .sum()
    }
}

/// Whether a failed request never reached the server's handler (refused stream, GOAWAY, a
/// connection that died before the answer began): safe to try at once on another connection.
/// Timeouts are not: the server may still be working on it.
pub fn retry_at_once(err: &reqwest::Error) -> bool {
    !err.is_timeout() && (err.is_connect() || err.is_request())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(500));
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(u32::MAX) <= Duration::from_secs(60));
    }

    #[test]
    fn leases_spread_over_connections_and_come_back() {
        let pool = H2Pool::new(3, Duration::from_secs(1)).unwrap();
        let a = pool.lease(None);
        let b = pool.lease(None);
        let c = pool.lease(None);
        let mut used = vec![a.index, b.index, c.index];
        used.sort_unstable();
        assert_eq!(used, vec![0, 1, 2]);
        assert_eq!(pool.in_flight(), 3);
        let first = a.index;
        drop(a);
        assert_eq!(pool.lease(None).index, first);
        assert_eq!(pool.in_flight(), 2, "the lease above was dropped at once");
        let other = pool.lease(Some(first));
        assert_ne!(other.index, first);
    }
}
