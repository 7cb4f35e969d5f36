//! The token bucket of one certificate: one token per vendor request (Xiaomi counts requests,
//! not devices). In any one-second window at most `burst + rate` requests start, where the
//! burst is at least one timer tick's worth of tokens (see [`TICK`]).

use std::time::{Duration, Instant};

/// The resolution of the timers a sender waits on for its next token (tokio's: 1 ms). The
/// bucket holds at least this long's worth of tokens: with less, every wait would throw away
/// the tokens that accrued past the burst (at 100,000 qps and a burst of 1, 99 of the 100
/// tokens of each 1 ms wait), so a busy sender could neither reach its rate nor start more
/// than one request per wake-up. At most `rate × TICK` more requests per one-second window.
pub const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens added per second: the certificate's qps, or less while backing off from 10027.
    rate: f64,
    /// The configured qps; `rate` climbs back to it after a rate-limit answer.
    target: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(qps: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(qps.max(1)),
            target: f64::from(qps.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// The configured burst, or one timer tick of tokens at the current rate if that is more.
    fn capacity(&self) -> f64 {
        self.burst.max((self.rate * TICK.as_secs_f64()).floor())
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity());
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available.
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    /// A new qps from an edited certificate, effective at once.
    pub fn set_qps(&mut self, qps: u32, now: Instant) {
        self.refill(now);
        self.target = f64::from(qps.max(1));
        self.rate = self.target;
    }

    /// The vendor said "too fast" (10027): halve the rate (at least 1/s).
    pub fn slow_down(&mut self, now: Instant) {
        self.refill(now);
        self.rate = (self.rate / 2.0).max(1.0);
        self.tokens = self.tokens.min(0.0);
    }

    /// A request went through: recover 5% of the target rate, up to the target.
    pub fn recover(&mut self) {
        if self.rate < self.target {
            self.rate = (self.rate + self.target * 0.05).min(self.target);
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The share of the configured qps allowed now: 1, or less while backing off from 10027.
    pub fn factor(&self) -> f64 {
        self.rate / self.target
    }

    /// Starts from a back-off another sender of the same certificate reached (cluster mode: its
    /// previous owner): `factor` × qps, at least 1/s, never above the qps. It recovers from
    /// there as after a `slow_down` here.
    pub fn set_factor(&mut self, factor: f64, now: Instant) {
        self.refill(now);
        if factor.is_finite() {
            self.rate = (self.target * factor.clamp(0.0, 1.0))
                .max(1.0)
                .min(self.target);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_burst_plus_rate_in_a_second() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 5, t0);
        // Try every 100 µs for 3 s; count starts in every 1 s sliding window.
        let mut starts = vec![];
        for i in 0..30_000u64 {
            let now = t0 + Duration::from_micros(i * 100);
            if b.try_take(now) {
                starts.push(now);
            }
        }
        for (i, s) in starts.iter().enumerate() {
            let in_window = starts[i..]
                .iter()
                .take_while(|t| t.duration_since(*s) < Duration::from_secs(1))
                .count();
            assert!(in_window <= 105, "{in_window} requests in one second");
        }
        // And it keeps up: ≥ 0.97 × rate over the run.
        assert!(starts.len() as f64 >= 0.97 * 300.0, "{}", starts.len());
    }

    #[test]
    fn a_fast_bucket_holds_one_timer_tick_of_tokens() {
        // 100,000 qps with a burst of 1, woken only by 1 ms timers: each wake may start the
        // 100 requests whose tokens accrued, and it keeps up with its rate.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100_000, 1, t0);
        let mut started = 0;
        for ms in 1..=1000u64 {
            let now = t0 + Duration::from_millis(ms);
            while b.try_take(now) {
                started += 1;
            }
        }
        assert!((99_000..=100_101).contains(&started), "{started}");
        // A slow certificate keeps its configured burst: 1 per wake, however long the wait.
        let mut slow = TokenBucket::new(100, 1, t0);
        assert!(slow.try_take(t0 + Duration::from_secs(5)));
        assert!(!slow.try_take(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn slow_down_and_recover() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 1, t0);
        b.slow_down(t0);
        assert_eq!(b.rate(), 50.0);
        for _ in 0..100 {
            b.recover();
        }
        assert_eq!(b.rate(), 100.0);
        b.set_qps(10, t0);
        assert_eq!(b.rate(), 10.0);
        assert!(b.wait_time(t0) <= Duration::from_millis(100));
    }

    #[test]
    fn a_back_off_taken_over_recovers_like_one_reached_here() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 1, t0);
        b.set_factor(0.25, t0);
        assert_eq!((b.rate(), b.factor()), (25.0, 0.25));
        b.recover();
        assert_eq!(b.factor(), 0.3);
        b.set_factor(0.0, t0);
        assert_eq!(b.rate(), 1.0, "at least 1/s");
        b.set_factor(7.0, t0);
        assert_eq!(b.rate(), 100.0, "never above the qps");
        b.set_factor(f64::NAN, t0);
        assert_eq!(b.rate(), 100.0, "an unreadable factor changes nothing");
    }
}
