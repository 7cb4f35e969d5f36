//! The app-icon badge APNs shows, counted per device (`aps.badge` is an absolute number, spec
//! apns.md §4). Tencent's rule (tim-offline-push.md §3.4): going to the background sets the
//! base to the app's unread count, and each offline push adds one unless the message says
//! `BadgeMode` 1. The exact server arithmetic is UNCONFIRMED there; ours is base + pushes since
//! the app last went to the background, the base forgotten when the app is in use again (login,
//! foreground) or the device leaves (logout, kick), so the next push after that counts from 0.
//!
//! In cluster mode the count lives in Redis ([`SharedBadges`], `pg:{u:<user>}:badge`): session
//! events reach any node and the certificate's owner may change, and the count goes on from
//! where it was. If Redis cannot answer, this node's own count is used for that notification (a
//! badge is cosmetic; the app sets its own when opened).

use compact_str::CompactString;
use dashmap::DashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Badge counts kept outside this process (cluster mode), one per (user, device).
pub trait SharedBadges: Send + Sync {
    /// Sets the count (`Some`) or forgets it (`None`: the next push counts from 0).
    fn set<'a>(
        &'a self,
        user: &'a str,
        device: &'a str,
        count: Option<u32>,
    ) -> BoxFut<'a, Result<(), String>>;
    /// Adds one and returns the new count.
    fn next<'a>(&'a self, user: &'a str, device: &'a str) -> BoxFut<'a, Result<u32, String>>;
    /// The count so far, at least 1 (see [`Badges::current`]).
    fn current<'a>(&'a self, user: &'a str, device: &'a str) -> BoxFut<'a, Result<u32, String>>;
}

/// Badge counts keyed by (user, device); an entry only for an iOS device that went to the
/// background or was pushed to since it was last in use.
#[derive(Default)]
pub struct Badges {
    counts: DashMap<(CompactString, CompactString), u32>,
    /// Cluster mode: where the counts really are.
    shared: OnceLock<Arc<dyn SharedBadges>>,
}

/// What a session event does to a device's badge count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeEvent {
    /// The app went to the background with this many unread messages.
    Background(u32),
    /// The app is in use again or the device left: the count starts over.
    Reset,
}

impl Badges {
    /// Keeps the counts in `shared` from now on (cluster mode, at start). Only the first call
    /// counts.
    pub fn share(&self, shared: Arc<dyn SharedBadges>) {
        let _ = self.shared.set(shared);
    }

    /// `session`, and in cluster mode the write of the shared count to await (this node's
    /// count is changed at once either way).
    pub fn session_shared(
        &self,
        user: &str,
        device: &str,
        event: BadgeEvent,
    ) -> Option<BoxFut<'static, ()>> {
        self.session(user, device, event);
        let shared = self.shared.get()?.clone();
        let (user, device) = (user.to_string(), device.to_string());
        let count = match event {
            BadgeEvent::Background(n) => Some(n),
            BadgeEvent::Reset => None,
        };
        Some(Box::pin(async move {
            if let Err(e) = shared.set(&user, &device, count).await {
                tracing::debug!(error = %e, "the shared badge count was not written");
            }
        }))
    }

    /// [`Badges::next`] in the shared count when there is one.
    pub async fn next_counted(&self, user: &CompactString, device: &CompactString) -> u32 {
        if let Some(shared) = self.shared.get() {
            match shared.next(user, device).await {
                Ok(n) => return n,
                Err(e) => {
                    tracing::debug!(error = %e, "shared badge count unreadable; this node's used")
                }
            }
        }
        self.next(user, device)
    }

    /// [`Badges::current`] in the shared count when there is one.
    pub async fn current_counted(&self, user: &CompactString, device: &CompactString) -> u32 {
        if let Some(shared) = self.shared.get() {
            match shared.current(user, device).await {
                Ok(n) => return n,
                Err(e) => {
                    tracing::debug!(error = %e, "shared badge count unreadable; this node's used")
                }
            }
        }
        self.current(user, device)
    }

    pub fn session(&self, user: &str, device: &str, event: BadgeEvent) {
        let key = (CompactString::from(user), CompactString::from(device));
        match event {
            BadgeEvent::Background(unread) => {
                self.counts.insert(key, unread);
            }
            BadgeEvent::Reset => {
                self.counts.remove(&key);
            }
        }
    }

    /// The badge for a notification that counts: one more than the last, kept. A retry of a
    /// notification already counted takes [`Badges::current`] instead, so it adds nothing.
    pub fn next(&self, user: &CompactString, device: &CompactString) -> u32 {
        let mut n = self
            .counts
            .entry((user.clone(), device.clone()))
            .or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// The badge as counted so far (at least 1: the notification being resent was counted,
    /// unless a reset came between).
    pub fn current(&self, user: &CompactString, device: &CompactString) -> u32 {
        self.counts
            .get(&(user.clone(), device.clone()))
            .map_or(1, |n| (*n).max(1))
    }

    /// Devices with a count (for tests and memory checks).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_count_up_from_the_background_unread_and_start_over_when_in_use() {
        let b = Badges::default();
        let (u, d) = (CompactString::from("alice"), CompactString::from("ip"));
        assert_eq!(b.next(&u, &d), 1, "no background event: counts from 0");
        b.session("alice", "ip", BadgeEvent::Background(5));
        assert_eq!(b.next(&u, &d), 6);
        assert_eq!(b.next(&u, &d), 7);
        assert_eq!(b.current(&u, &d), 7, "a retry adds nothing");
        b.session("alice", "ip", BadgeEvent::Reset);
        assert!(b.is_empty());
        assert_eq!(b.current(&u, &d), 1);
        assert_eq!(b.next(&u, &d), 1);
        let other = CompactString::from("ipad");
        assert_eq!(b.next(&u, &other), 1, "each device its own count");
        b.session("alice", "ip", BadgeEvent::Background(u32::MAX));
        assert_eq!(b.next(&u, &d), u32::MAX, "saturates");
    }
}
