//! Duplicate suppression of TIM sends (spec/tim-offline-push.md §1.2: the same sender, MsgSeq,
//! MsgRandom and content within 120 s is one message). Bounded: at most `cap` keys; when full,
//! the oldest is forgotten first. The clock is passed in, so the rules are testable.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The spec's window (§1.2, newer sendmsg page).
pub const WINDOW: Duration = Duration::from_secs(120);
/// Keys remembered at most: ~100k sends in 120 s is ~830/s, well above Tencent's 200 req/s
/// (batches count one key per recipient, so a burst of batches may push out older keys early).
pub const DEFAULT_CAP: usize = 100_000;

/// What a duplicate answers: the first send's `MsgTime` and `MsgKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSend {
    pub msg_time: u64,
    pub msg_key: String,
}

/// A std `Mutex`: nothing awaits while holding it, and each critical section is a few map
/// operations.
pub struct DedupeWindow {
    window: Duration,
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<u64, (Instant, FirstSend)>,
    /// Keys in insertion order, for expiry and eviction.
    order: VecDeque<(Instant, u64)>,
}

impl Default for DedupeWindow {
    fn default() -> Self {
        DedupeWindow::new(WINDOW, DEFAULT_CAP)
    }
}

impl DedupeWindow {
    pub fn new(window: Duration, cap: usize) -> DedupeWindow {
        DedupeWindow {
            window,
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records `key` as sent now, or returns the first send when `key` was seen within the
    /// window.
    pub fn admit(&self, key: u64, now: Instant, first: &FirstSend) -> Result<(), FirstSend> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *g;
        while let Some(&(at, k)) = inner.order.front() {
            if now.saturating_duration_since(at) < self.window {
                break;
            }
            inner.order.pop_front();
            inner.map.remove_if_at(k, at);
        }
        if let Some((_, f)) = inner.map.get(&key) {
            return Err(f.clone());
        }
        while inner.map.len() >= self.cap {
            match inner.order.pop_front() {
                Some((at, k)) => inner.map.remove_if_at(k, at),
                None => break,
            }
        }
        inner.map.insert(key, (now, first.clone()));
        inner.order.push_back((now, key));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

trait RemoveIfAt {
    fn remove_if_at(&mut self, key: u64, at: Instant);
}

impl RemoveIfAt for HashMap<u64, (Instant, FirstSend)> {
    /// Removes `key` only if it is the entry recorded at `at` (not a later re-insert).
    fn remove_if_at(&mut self, key: u64, at: Instant) {
        if self.get(&key).is_some_and(|(t, _)| *t == at) {
            self.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(k: &str) -> FirstSend {
        FirstSend {
            msg_time: 1,
            msg_key: k.into(),
        }
    }

    #[test]
    fn duplicates_within_the_window_answer_the_first_send() {
        let w = DedupeWindow::new(Duration::from_secs(120), 10);
        let t0 = Instant::now();
        assert!(w.admit(1, t0, &first("a")).is_ok());
        assert_eq!(
            w.admit(1, t0 + Duration::from_secs(119), &first("b")),
            Err(first("a"))
        );
        assert!(w.admit(2, t0, &first("c")).is_ok());
        // Past the window the key is new again.
        assert!(w
            .admit(1, t0 + Duration::from_secs(120), &first("d"))
            .is_ok());
        assert_eq!(
            w.admit(1, t0 + Duration::from_secs(121), &first("e")),
            Err(first("d"))
        );
    }

    #[test]
    fn bounded_by_evicting_the_oldest() {
        let w = DedupeWindow::new(Duration::from_secs(120), 3);
        let t0 = Instant::now();
        for k in 0..10u64 {
            assert!(w.admit(k, t0, &first("x")).is_ok());
            assert!(w.len() <= 3);
        }
        // The newest are remembered, the oldest forgotten.
        assert!(w.admit(9, t0, &first("y")).is_err());
        assert!(w.admit(0, t0, &first("y")).is_ok());
    }
}
