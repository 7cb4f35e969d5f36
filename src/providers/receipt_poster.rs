//! What the emulators that post delivery receipts share (Xiaomi, Huawei): receipts waiting for
//! their time in a bounded queue, the `receipt_loss_ratio` knob that drops some for good (as when
//! a vendor's callback is lost), the counts of what happened to them, and the loop that posts
//! the due ones every batch window. Each vendor says how due receipts become requests (its body,
//! its headers); everything else is here.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// A receipt with the time it is due.
pub trait Due {
    /// Unix milliseconds from which it may be posted.
    fn due_ms(&self) -> u64;
}

/// What an emulator did with receipts since start (`GET /_emulator/receipts`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptStats {
    /// Receipts in POSTs the callback answered 2xx.
    pub posted: u64,
    /// Receipts dropped by `receipt_loss_ratio` (or because the queue was full).
    pub lost: u64,
    /// Receipts in POSTs that failed (connection error, timeout, non-2xx answer).
    pub failed: u64,
    /// POST requests made.
    pub requests: u64,
}

/// Receipts waiting for their time, bounded so a stalled callback cannot grow it for ever.
pub struct ReceiptQueue<R> {
    max_pending: usize,
    inner: Mutex<Inner<R>>,
}

struct Inner<R> {
    pending: VecDeque<R>,
    stats: ReceiptStats,
}

impl<R: Due> ReceiptQueue<R> {
    pub fn new(max_pending: usize) -> Self {
        ReceiptQueue {
            max_pending,
            inner: Mutex::new(Inner {
                pending: VecDeque::new(),
                stats: ReceiptStats::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<R>> {
        // Each critical section is a few infallible queue operations: a panic elsewhere leaves
        // the data consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues receipts, dropping `loss_ratio` of them (counted as lost), and any past the bound.
    pub fn queue(&self, receipts: Vec<R>, loss_ratio: f64) {
        let mut rng = rand::rng();
        let mut q = self.lock();
        for r in receipts {
            // `<` with a NaN ratio is false: a bad knob never fires.
            if rng.random::<f64>() < loss_ratio || q.pending.len() >= self.max_pending {
                q.stats.lost += 1;
            } else {
                q.pending.push_back(r);
            }
        }
    }

    /// Removes and returns the receipts due at `now_ms`, in the order they were queued.
    pub fn take_due(&self, now_ms: u64) -> Vec<R> {
        let mut q = self.lock();
        let (due, later): (Vec<R>, Vec<R>) =
            q.pending.drain(..).partition(|r| r.due_ms() <= now_ms);
        q.pending = later.into();
        due
    }

    /// Counts one POST of `receipts` receipts.
    pub fn count_post(&self, receipts: u64, ok: bool) {
        let mut q = self.lock();
        q.stats.requests += 1;
        if ok {
            q.stats.posted += receipts;
        } else {
            q.stats.failed += receipts;
        }
    }

    pub fn stats(&self) -> ReceiptStats {
        self.lock().stats.clone()
    }
}

/// One receipt request, as the vendor would make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptPost {
    pub url: String,
    pub content_type: &'static str,
    /// Extra headers (Huawei's `X-HUAWEI-CALLBACK-ID`).
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    /// Receipts the body carries, for the stats.
    pub receipts: u64,
}

/// Posts the due receipts of `queue` every `window` until the emulator's runtime stops;
/// `posts` turns one window's due receipts into requests.
pub async fn run_poster<R: Due>(
    vendor: &'static str,
    queue: Arc<ReceiptQueue<R>>,
    window: Duration,
    posts: impl Fn(Vec<R>) -> Vec<ReceiptPost>,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, vendor, "emulator: no HTTP client; receipts are not posted");
            return;
        }
    };
    let window = window.max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(window).await;
        let due = queue.take_due(crate::domain::now_millis());
        if due.is_empty() {
            continue;
        }
        for post in posts(due) {
            let mut request = client
                .post(&post.url)
                .header(reqwest::header::CONTENT_TYPE, post.content_type);
            for (name, value) in &post.headers {
                request = request.header(*name, value);
            }
            let sent = request.body(post.body).send().await;
            let ok = matches!(&sent, Ok(r) if r.status().is_success());
            if !ok {
                tracing::debug!(url = %post.url, vendor, "emulator: a receipt POST failed");
            }
            queue.count_post(post.receipts, ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct R(u64);

    impl Due for R {
        fn due_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn due_receipts_leave_in_order_and_the_rest_wait() {
        let q = ReceiptQueue::new(10);
        q.queue(vec![R(5), R(1), R(9), R(3)], 0.0);
        assert_eq!(q.take_due(4), [R(1), R(3)]);
        assert_eq!(q.take_due(4), []);
        assert_eq!(q.take_due(100), [R(5), R(9)]);
    }

    #[test]
    fn loss_and_the_bound_are_counted_as_lost() {
        let q = ReceiptQueue::new(2);
        q.queue(vec![R(0), R(0)], 1.0);
        q.queue(vec![R(0), R(0), R(0)], 0.0);
        assert_eq!(q.stats().lost, 3);
        assert_eq!(q.take_due(0).len(), 2);
        q.count_post(2, true);
        q.count_post(1, false);
        assert_eq!(
            q.stats(),
            ReceiptStats {
                posted: 2,
                lost: 3,
                failed: 1,
                requests: 2
            }
        );
    }
}
