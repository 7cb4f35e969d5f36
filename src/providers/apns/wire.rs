//! The APNs request (spec/vendors/apns.md §3, §4): `POST /3/device/<token>` with the `apns-*`
//! headers and the JSON payload, `ext` outside `aps`.

use serde_json::{json, Map, Value};

/// Longest `apns-collapse-id` in bytes (spec §3).
pub const MAX_COLLAPSE_ID_BYTES: usize = 64;
/// Largest alert payload (spec §4).
pub const MAX_PAYLOAD_BYTES: usize = 4096;
/// How long APNs stores a notification for an offline device: 7 days, the registry's
/// `PushOnline` retention.
pub const DEFAULT_EXPIRATION_SECS: u64 = 7 * 86_400;

/// A notification as iOS shows it, the same for every token of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ApnsNotification {
    pub title: String,
    /// `aps.alert.subtitle` (TIM `ApnsInfo.SubTitle`).
    pub subtitle: Option<String>,
    pub body: String,
    /// `aps.sound` (TIM `ApnsInfo.Sound`, a file name with suffix); `None`: silent.
    pub sound: Option<String>,
    /// Whether this notification adds one to the device's badge (TIM `BadgeMode` 0); when not,
    /// `aps.badge` is left out and the badge stays as it is. The number is per device
    /// (`badge::Badges`), given to [`payload`].
    pub counts_badge: bool,
    /// `aps.mutable-content: 1` runs the app's service extension (TIM `MutableContent`).
    pub mutable_content: bool,
    /// `aps.thread-id`: groups a conversation's notifications.
    pub thread_id: Option<String>,
    /// Top-level `ext`: the message's `Ext` string.
    pub ext: Option<String>,
    /// `apns-expiration` = send time + this.
    pub expiration_secs: u64,
}

/// The JSON payload; `badge` is this device's `aps.badge`, if any.
pub fn payload(n: &ApnsNotification, badge: Option<u32>) -> Value {
    let mut alert = Map::new();
    if !n.title.is_empty() {
        alert.insert("title".into(), json!(n.title));
    }
    if let Some(sub) = n.subtitle.as_ref().filter(|s| !s.is_empty()) {
        alert.insert("subtitle".into(), json!(sub));
    }
    alert.insert("body".into(), json!(n.body));
    let mut aps = Map::new();
    aps.insert("alert".into(), Value::Object(alert));
    if let Some(badge) = badge {
        aps.insert("badge".into(), json!(badge));
    }
    if let Some(sound) = n.sound.as_ref().filter(|s| !s.is_empty()) {
        aps.insert("sound".into(), json!(sound));
    }
    if let Some(thread) = n.thread_id.as_ref().filter(|s| !s.is_empty()) {
        aps.insert("thread-id".into(), json!(thread));
    }
    if n.mutable_content {
        aps.insert("mutable-content".into(), json!(1));
    }
    let mut top = Map::new();
    top.insert("aps".into(), Value::Object(aps));
    if let Some(ext) = &n.ext {
        top.insert("ext".into(), json!(ext));
    }
    Value::Object(top)
}

/// The headers of one request, in the order the spec lists them; `authorization` is added by
/// the client. The collapse id is cut to 64 bytes on a char boundary.
pub fn headers(
    n: &ApnsNotification,
    topic: &str,
    now: u64,
    collapse_id: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("apns-push-type", "alert".to_owned()),
        ("apns-priority", "10".to_owned()),
        ("apns-topic", topic.to_owned()),
        ("apns-expiration", (now + n.expiration_secs).to_string()),
    ];
    if let Some(id) = collapse_id.filter(|s| !s.is_empty()) {
        let mut end = id.len().min(MAX_COLLAPSE_ID_BYTES);
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        h.push(("apns-collapse-id", id[..end].to_owned()));
    }
    h
}

/// A device token as the path wants it: lowercase hex. `None` when it is not hex at all (the
/// request would only earn `BadDeviceToken`).
pub fn device_path(token: &str) -> Option<String> {
    let token = token.trim();
    let ok = !token.is_empty()
        && token.len() <= 400
        && token.len().is_multiple_of(2)
        && token.chars().all(|c| c.is_ascii_hexdigit());
    ok.then(|| format!("/3/device/{}", token.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApnsNotification {
        ApnsNotification {
            title: "Alice".into(),
            subtitle: Some("Group X".into()),
            body: "hi there".into(),
            sound: Some("default".into()),
            counts_badge: true,
            mutable_content: true,
            thread_id: Some("c2c_alice".into()),
            ext: Some("{\"entity\":1}".into()),
            expiration_secs: 3600,
        }
    }

    #[test]
    fn payload_matches_the_spec_example() {
        assert_eq!(
            payload(&sample(), Some(3)),
            json!({
                "aps": {
                    "alert": {"title": "Alice", "subtitle": "Group X", "body": "hi there"},
                    "badge": 3, "sound": "default", "thread-id": "c2c_alice", "mutable-content": 1
                },
                "ext": "{\"entity\":1}"
            })
        );
        let bare = ApnsNotification {
            subtitle: None,
            sound: None,
            counts_badge: false,
            mutable_content: false,
            thread_id: None,
            ext: None,
            ..sample()
        };
        assert_eq!(
            payload(&bare, None),
            json!({"aps": {"alert": {"title": "Alice", "body": "hi there"}}})
        );
    }

    #[test]
    fn headers_and_path() {
        let h = headers(&sample(), "com.example.chat", 1000, Some(&"é".repeat(40)));
        assert_eq!(h[0], ("apns-push-type", "alert".into()));
        assert_eq!(h[1], ("apns-priority", "10".into()));
        assert_eq!(h[2], ("apns-topic", "com.example.chat".into()));
        assert_eq!(h[3], ("apns-expiration", "4600".into()));
        assert_eq!(h[4].1.len(), 64, "cut on a char boundary");
        assert_eq!(device_path("AB01"), Some("/3/device/ab01".into()));
        assert_eq!(device_path("xyz"), None);
        assert_eq!(device_path("abc"), None);
        assert_eq!(device_path(""), None);
    }
}
