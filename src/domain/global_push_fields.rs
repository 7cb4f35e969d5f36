//! Per-message fields for FCM and APNs: Tencent's `OfflinePushInfo.AndroidInfo.{GoogleChannelID,
//! Sound}` and `OfflinePushInfo.ApnsInfo.{Title, SubTitle, Sound, BadgeMode, MutableContent}` on
//! /v4, the same in snake_case under /v1's `offline_push` (`google_channel_id`, `sound`,
//! `apns.sub_title`, …; contract.md "More push services"). Empty means "not set".

use serde::{Deserialize, Serialize};

use super::validate::FieldError;

/// `ApnsInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApnsInfo {
    /// `aps.alert.title`; else the message's title.
    pub title: Option<String>,
    /// `aps.alert.subtitle`.
    pub sub_title: Option<String>,
    /// `aps.sound`: a file name with its suffix.
    pub sound: Option<String>,
    /// 0: count (default), 1: leave the badge alone.
    pub badge_mode: u8,
    /// 1: `aps.mutable-content: 1` (the app's service extension runs).
    pub mutable_content: u8,
}

/// The FCM and APNs fields one message may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalPushFields {
    /// FCM `android.notification.channel_id` (TIM `AndroidInfo.GoogleChannelID`).
    pub google_channel_id: Option<String>,
    /// Android notification sound (TIM `AndroidInfo.Sound`, a file name without suffix).
    pub sound: Option<String>,
    pub apns: ApnsInfo,
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

fn blank_to_none(v: &mut Option<String>) {
    if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
        *v = None;
    }
}

impl GlobalPushFields {
    /// Drops empty strings (TIM sends `""` for "not set").
    pub fn normalized(mut self) -> GlobalPushFields {
        for v in [
            &mut self.google_channel_id,
            &mut self.sound,
            &mut self.apns.title,
            &mut self.apns.sub_title,
            &mut self.apns.sound,
        ] {
            blank_to_none(v);
        }
        self
    }

    /// Checks every set field; errors name the /v1 field.
    pub fn check(&self) -> Result<(), FieldError> {
        let longest = [
            (
                "offline_push.google_channel_id",
                &self.google_channel_id,
                64usize,
            ),
            ("offline_push.sound", &self.sound, 128),
            ("offline_push.apns.title", &self.apns.title, 256),
            ("offline_push.apns.sub_title", &self.apns.sub_title, 256),
            ("offline_push.apns.sound", &self.apns.sound, 128),
        ];
        for (field, v, max) in longest {
            if v.as_ref().is_some_and(|s| s.chars().count() > max) {
                return Err(bad(field, format!("is longer than {max} characters")));
            }
        }
        if self.apns.badge_mode > 1 {
            return Err(bad(
                "offline_push.apns.badge_mode",
                "must be 0 (count) or 1 (leave alone)",
            ));
        }
        if self.apns.mutable_content > 1 {
            return Err(bad("offline_push.apns.mutable_content", "must be 0 or 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_fields_are_checked() {
        let f: GlobalPushFields = serde_json::from_value(
            json!({"google_channel_id": "c", "apns": {"sub_title": "s", "mutable_content": 1}}),
        )
        .unwrap();
        assert!(f.check().is_ok());
        let long = GlobalPushFields {
            google_channel_id: Some("x".repeat(65)),
            ..f.clone()
        };
        assert_eq!(
            long.check().unwrap_err().field,
            "offline_push.google_channel_id"
        );
        let badge = GlobalPushFields {
            apns: ApnsInfo {
                badge_mode: 2,
                ..ApnsInfo::default()
            },
            ..f
        };
        assert_eq!(
            badge.check().unwrap_err().field,
            "offline_push.apns.badge_mode"
        );
        assert!(serde_json::from_value::<ApnsInfo>(json!({"subtitle": "x"})).is_err());
    }
}
