//! The app-icon badge APNs shows, counted per device (`aps.badge` is an absolute number, spec
//! apns.md §4). Tencent's rule (tim-offline-push.md §3.4): going to the background sets the
//! base to the app's unread count, and each offline push adds one unless the message says
//! `BadgeMode` 1. The exact server arithmetic is UNCONFIRMED there; ours is base + pushes since
//! the app last went to the background, the base forgotten when the app is in use again (login,
//! foreground) or the device leaves (logout, kick), so the next push after that counts from 0.
//!
//! The count is this node's: in cluster mode a device whose session events reach another node
//! counts from its last background event seen here (a badge is cosmetic; the app sets its own
//! when opened).

use compact_str::CompactString;
use dashmap::DashMap;

/// Badge counts keyed by (user, device); an entry only for an iOS device that went to the
/// background or was pushed to since it was last in use.
#[derive(Default)]
pub struct Badges {
    counts: DashMap<(CompactString, CompactString), u32>,
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
