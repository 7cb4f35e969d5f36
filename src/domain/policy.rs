//! Multi-device login policy (spec/tim-offline-push.md §5.4).

use super::device::Platform;
use serde::{Deserialize, Serialize};

/// Which older logins a new login kicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiDevicePolicy {
    /// Tencent's default: a newer login on the same platform kicks the older one.
    #[default]
    PerPlatform,
    /// One device in all: any newer login kicks every other device.
    Single,
    /// All devices may be logged in at once.
    Multi,
}

impl MultiDevicePolicy {
    /// Whether a new login on `new` kicks a logged-in device on `other`.
    pub fn kicks(self, new: Platform, other: Platform) -> bool {
        match self {
            MultiDevicePolicy::PerPlatform => new == other,
            MultiDevicePolicy::Single => true,
            MultiDevicePolicy::Multi => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_kicks_same_platform_only() {
        let p = MultiDevicePolicy::default();
        assert!(p.kicks(Platform::Android, Platform::Android));
        assert!(!p.kicks(Platform::Android, Platform::Web));
        assert!(MultiDevicePolicy::Single.kicks(Platform::Android, Platform::Web));
        assert!(!MultiDevicePolicy::Multi.kicks(Platform::Android, Platform::Android));
    }
}
