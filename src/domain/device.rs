//! The state of one device of one user, and every transition between states
//! (spec/tim-offline-push.md §3, §5, §8.1; Tencent's names kept).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Client platforms as Tencent names them in `query_online_status` Detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Platform {
    Android,
    #[serde(rename = "iPhone", alias = "iOS", alias = "IOS")]
    IPhone,
    #[serde(rename = "iPad")]
    IPad,
    Web,
    #[serde(rename = "PC", alias = "Windows")]
    Pc,
    Mac,
    Linux,
}

impl Platform {
    pub const ALL: [Platform; 7] = [
        Platform::Android,
        Platform::IPhone,
        Platform::IPad,
        Platform::Web,
        Platform::Pc,
        Platform::Mac,
        Platform::Linux,
    ];

    /// Only mobile platforms ever enter `PushOnline`; a desktop or web client that loses its
    /// connection is simply `Offline` (§5.1).
    pub fn is_mobile(self) -> bool {
        matches!(self, Platform::Android | Platform::IPhone | Platform::IPad)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "Android",
            Platform::IPhone => "iPhone",
            Platform::IPad => "iPad",
            Platform::Web => "Web",
            Platform::Pc => "PC",
            Platform::Mac => "Mac",
            Platform::Linux => "Linux",
        }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        Some(match s {
            "Android" => Platform::Android,
            "iPhone" | "iOS" | "IOS" => Platform::IPhone,
            "iPad" => Platform::IPad,
            "Web" => Platform::Web,
            "PC" | "Windows" => Platform::Pc,
            "Mac" => Platform::Mac,
            "Linux" => Platform::Linux,
            _ => return None,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a device is `Offline`; diagnosis reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineReason {
    LoggedOut,
    Kicked,
    /// `PushOnline` for longer than the retention (7 days by default).
    Expired,
    /// A desktop or web client whose connection ended.
    Disconnected,
}

/// The state of one device. `Online` carries the background flag of `doBackground`;
/// `PushOnline` carries the moment the connection was lost, for the retention rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    Online { background: bool },
    PushOnline { since: u64 },
    Offline { reason: OfflineReason },
}

/// What happened to a device, from its own WebSocket session or reported by the IM cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceEvent {
    Login,
    Logout,
    /// Connection closed without logout (`LinkClose`) or heartbeat timeout (`TimeOut`).
    Disconnect,
    /// A newer login under the multi-device policy, or a REST kick.
    Kicked,
    Background,
    Foreground,
    /// The retention sweep: `PushOnline` since longer than the retention.
    Expire,
}

/// Why an event cannot apply to the device's current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the device is not logged in; log in first")]
    NotLoggedIn,
    #[error("the device has no live connection; background and foreground need one")]
    NotConnected,
    #[error("the device has not been PushOnline for longer than the retention")]
    NotExpired,
}

/// TIM's status of a device, or of a user (spec/tim-offline-push.md §5.1). Ordered from the
/// most reachable: a user's status is the first of its devices'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserStatus {
    Online,
    PushOnline,
    Offline,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Online => "Online",
            UserStatus::PushOnline => "PushOnline",
            UserStatus::Offline => "Offline",
        }
    }

    pub const ALL: [UserStatus; 3] = [
        UserStatus::Online,
        UserStatus::PushOnline,
        UserStatus::Offline,
    ];

    /// A user's status: `Online` if any device is, else `PushOnline` if any device is, else
    /// `Offline` (no device at all included).
    pub fn of_user(devices: impl IntoIterator<Item = UserStatus>) -> UserStatus {
        devices.into_iter().min().unwrap_or(UserStatus::Offline)
    }
}

impl std::fmt::Display for UserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compares with a TIM name, as responses carry it.
impl PartialEq<&str> for UserStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// As its TIM name, in JSON and MessagePack alike.
impl serde::Serialize for UserStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl DeviceState {
    pub const NEVER_LOGGED_IN: DeviceState = DeviceState::Offline {
        reason: OfflineReason::LoggedOut,
    };

    /// TIM's name of the state: `Online`, `PushOnline` or `Offline`.
    pub fn tim_name(&self) -> &'static str {
        self.status().as_str()
    }

    /// The state as TIM reports it, without its details.
    pub fn status(&self) -> UserStatus {
        match self {
            DeviceState::Online { .. } => UserStatus::Online,
            DeviceState::PushOnline { .. } => UserStatus::PushOnline,
            DeviceState::Offline { .. } => UserStatus::Offline,
        }
    }

    pub fn is_logged_in(&self) -> bool {
        !matches!(self, DeviceState::Offline { .. })
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, DeviceState::Online { .. })
    }

    /// Whether a vendor notification may reach this device (§8.1): killed, or connected but in
    /// the background. Token and certificate are checked elsewhere.
    pub fn push_eligible(&self) -> bool {
        matches!(
            self,
            DeviceState::PushOnline { .. } | DeviceState::Online { background: true }
        )
    }

    /// Applies one event. `now` is unix seconds; `retention` the `PushOnline` lifetime in seconds.
    /// Returns the new state; the old one is unchanged on error.
    pub fn apply(
        self,
        event: DeviceEvent,
        platform: Platform,
        now: u64,
        retention: u64,
    ) -> Result<DeviceState, TransitionError> {
        use DeviceEvent as E;
        use DeviceState as S;
        match (self, event) {
            (_, E::Login) => Ok(S::Online { background: false }),
            (S::Offline { reason }, E::Logout) => Ok(S::Offline { reason }),
            (_, E::Logout) => Ok(S::Offline {
                reason: OfflineReason::LoggedOut,
            }),
            (S::Offline { reason }, E::Kicked) => Ok(S::Offline { reason }),
            (_, E::Kicked) => Ok(S::Offline {
                reason: OfflineReason::Kicked,
            }),
            (S::Online { .. }, E::Disconnect) if platform.is_mobile() => {
                Ok(S::PushOnline { since: now })
            }
            (S::Online { .. }, E::Disconnect) => Ok(S::Offline {
                reason: OfflineReason::Disconnected,
            }),
            // A second disconnect report (the IM cluster and our own socket both saw it) is a no-op.
            (S::PushOnline { since }, E::Disconnect) => Ok(S::PushOnline { since }),
            (S::Offline { .. }, E::Disconnect) => Err(TransitionError::NotLoggedIn),
            (S::Online { .. }, E::Background) => Ok(S::Online { background: true }),
            (S::Online { .. }, E::Foreground) => Ok(S::Online { background: false }),
            (S::PushOnline { .. }, E::Background | E::Foreground) => {
                Err(TransitionError::NotConnected)
            }
            (S::Offline { .. }, E::Background | E::Foreground) => Err(TransitionError::NotLoggedIn),
            (S::PushOnline { since }, E::Expire) if now.saturating_sub(since) >= retention => {
                Ok(S::Offline {
                    reason: OfflineReason::Expired,
                })
            }
            (_, E::Expire) => Err(TransitionError::NotExpired),
        }
    }

    /// The state as seen at `now`: a `PushOnline` older than the retention reads as `Offline`
    /// even before the sweep has run.
    pub fn effective(self, now: u64, retention: u64) -> DeviceState {
        match self {
            DeviceState::PushOnline { since } if now.saturating_sub(since) >= retention => {
                DeviceState::Offline {
                    reason: OfflineReason::Expired,
                }
            }
            s => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: u64 = 7 * 86_400;

    fn online() -> DeviceState {
        DeviceState::Online { background: false }
    }

    #[test]
    fn login_from_anywhere_is_online_foreground() {
        for s in [
            DeviceState::NEVER_LOGGED_IN,
            DeviceState::PushOnline { since: 5 },
            DeviceState::Online { background: true },
        ] {
            assert_eq!(
                s.apply(DeviceEvent::Login, Platform::Android, 10, R),
                Ok(online())
            );
        }
    }

    #[test]
    fn disconnect_of_mobile_is_push_online_and_of_desktop_offline() {
        assert_eq!(
            online().apply(DeviceEvent::Disconnect, Platform::Android, 42, R),
            Ok(DeviceState::PushOnline { since: 42 })
        );
        assert_eq!(
            online().apply(DeviceEvent::Disconnect, Platform::Web, 42, R),
            Ok(DeviceState::Offline {
                reason: OfflineReason::Disconnected
            })
        );
    }

    #[test]
    fn background_is_push_eligible_foreground_is_not() {
        let bg = online()
            .apply(DeviceEvent::Background, Platform::Android, 1, R)
            .unwrap();
        assert!(bg.push_eligible());
        assert_eq!(bg.tim_name(), "Online");
        let fg = bg
            .apply(DeviceEvent::Foreground, Platform::Android, 2, R)
            .unwrap();
        assert!(!fg.push_eligible());
    }

    #[test]
    fn logout_and_kick_stop_pushes() {
        let po = DeviceState::PushOnline { since: 1 };
        let out = po
            .apply(DeviceEvent::Logout, Platform::Android, 2, R)
            .unwrap();
        assert!(!out.push_eligible());
        let kicked = online()
            .apply(DeviceEvent::Kicked, Platform::Android, 2, R)
            .unwrap();
        assert_eq!(
            kicked,
            DeviceState::Offline {
                reason: OfflineReason::Kicked
            }
        );
    }

    #[test]
    fn background_needs_a_connection() {
        assert_eq!(
            DeviceState::PushOnline { since: 1 }.apply(
                DeviceEvent::Background,
                Platform::Android,
                2,
                R
            ),
            Err(TransitionError::NotConnected)
        );
        assert_eq!(
            DeviceState::NEVER_LOGGED_IN.apply(DeviceEvent::Foreground, Platform::Android, 2, R),
            Err(TransitionError::NotLoggedIn)
        );
    }

    #[test]
    fn push_online_expires_after_retention_only() {
        let po = DeviceState::PushOnline { since: 100 };
        assert_eq!(
            po.apply(DeviceEvent::Expire, Platform::Android, 100 + R - 1, R),
            Err(TransitionError::NotExpired)
        );
        assert_eq!(
            po.apply(DeviceEvent::Expire, Platform::Android, 100 + R, R),
            Ok(DeviceState::Offline {
                reason: OfflineReason::Expired
            })
        );
        assert!(po.effective(100 + R - 1, R).push_eligible());
        assert!(!po.effective(100 + R, R).push_eligible());
    }
}
