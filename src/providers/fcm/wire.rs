//! The HTTP v1 `messages:send` body (spec/vendors/fcm.md §3): one token per request.

use serde_json::{json, Map, Value};

use crate::domain::ClickAction;

/// Android delivery priority (`android.priority`). Chat wants `high`: delivered at once, may
/// wake the device (spec §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    #[default]
    High,
    Normal,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
        }
    }
}

/// Longest `android.ttl` FCM takes: 28 days (spec §3, [F13]).
pub const MAX_TTL_SECS: u32 = 2_419_200;
/// How long FCM keeps a chat notification for an offline device: 7 days, the registry's
/// `PushOnline` retention — later the device is `Offline` for us anyway.
pub const DEFAULT_TTL_SECS: u32 = 7 * 86_400;

/// A notification as FCM shows it, the same for every token of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FcmNotification {
    pub title: String,
    pub body: String,
    /// `android.notification.channel_id` (TIM `GoogleChannelID`, else the certificate's).
    pub channel_id: Option<String>,
    pub priority: Priority,
    pub ttl_secs: u32,
    /// `data.ext`: the message's `Ext`, passed as the string it is (data values are strings).
    pub ext: Option<String>,
    /// `android.notification.sound` (TIM `AndroidInfo.Sound`).
    pub sound: Option<String>,
    /// `android.restricted_package_name`: the certificate's package.
    pub package: String,
    /// `android.notification.click_action`: the intent-filter action of the activity a tap
    /// opens; `None` opens the launcher activity (spec §3). From [`click_action_of`].
    pub click_action: Option<String>,
}

/// FCM's `click_action` for a certificate's click action. FCM opens an activity by the action
/// of its intent filter, so an "open in-app page" intent URI gives its `action=`; one without
/// an action, "open app" and "open URL" (FCM's Android notification has no URL click; the app
/// gets `ext` in `data` either way) open the launcher activity.
pub fn click_action_of(click: &ClickAction) -> Option<String> {
    let ClickAction::OpenActivity { intent_uri } = click else {
        return None;
    };
    let (_, fragment) = intent_uri.split_once("#Intent;")?;
    fragment
        .split(';')
        .find_map(|part| part.strip_prefix("action="))
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

/// `message` for one `token`. `tag` is `android.notification.tag`: a notification with the same
/// tag replaces the shown one. We pass the gateway's message id, so a resend of one message
/// (a retry after a timeout that did get through) replaces itself instead of showing twice.
/// `collapse_key` is not set: collapsible messages are throttled to a burst of 20 per device
/// (spec §6), which a busy chat would hit.
pub fn send_body(token: &str, n: &FcmNotification, tag: Option<&str>) -> Value {
    let mut android_notification = Map::new();
    if let Some(channel) = &n.channel_id {
        android_notification.insert("channel_id".into(), json!(channel));
    }
    if let Some(tag) = tag {
        android_notification.insert("tag".into(), json!(tag));
    }
    if let Some(sound) = &n.sound {
        android_notification.insert("sound".into(), json!(sound));
    }
    if let Some(action) = &n.click_action {
        android_notification.insert("click_action".into(), json!(action));
    }
    let mut android = Map::new();
    android.insert("priority".into(), json!(n.priority.as_str()));
    android.insert(
        "ttl".into(),
        json!(format!("{}s", n.ttl_secs.min(MAX_TTL_SECS))),
    );
    if !n.package.is_empty() {
        android.insert("restricted_package_name".into(), json!(n.package));
    }
    if !android_notification.is_empty() {
        android.insert("notification".into(), Value::Object(android_notification));
    }
    let mut message = Map::new();
    message.insert("token".into(), json!(token));
    message.insert(
        "notification".into(),
        json!({ "title": n.title, "body": n.body }),
    );
    if let Some(ext) = &n.ext {
        message.insert("data".into(), json!({ "ext": ext }));
    }
    message.insert("android".into(), Value::Object(android));
    json!({ "message": message })
}

/// `{base}/v1/projects/{project_id}/messages:send`.
pub fn send_url(base: &str, project_id: &str) -> String {
    format!(
        "{}/v1/projects/{project_id}/messages:send",
        base.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FcmNotification {
        FcmNotification {
            title: "Alice".into(),
            body: "hi there".into(),
            channel_id: Some("im_messages".into()),
            priority: Priority::High,
            ttl_secs: 86_400,
            ext: Some("{\"entity\":1}".into()),
            sound: None,
            package: "com.example.chat".into(),
            click_action: None,
        }
    }

    #[test]
    fn click_action_is_the_intent_filter_action_of_an_in_app_page() {
        let page = ClickAction::OpenActivity {
            intent_uri: "intent://chat/detail#Intent;scheme=app;action=com.example.OPEN_CHAT;\
                         component=com.example.chat/.ChatActivity;end"
                .into(),
        };
        assert_eq!(
            click_action_of(&page).as_deref(),
            Some("com.example.OPEN_CHAT")
        );
        let n = FcmNotification {
            click_action: click_action_of(&page),
            ..sample()
        };
        let body = send_body("t", &n, None);
        assert_eq!(
            body["message"]["android"]["notification"]["click_action"],
            "com.example.OPEN_CHAT"
        );
        let no_action = ClickAction::OpenActivity {
            intent_uri: "intent://x#Intent;scheme=app;end".into(),
        };
        let url = ClickAction::OpenUrl {
            url: "https://e.x".into(),
        };
        for c in [ClickAction::OpenApp, no_action, url] {
            assert_eq!(click_action_of(&c), None, "{c:?}");
        }
    }

    #[test]
    fn body_matches_the_spec_example() {
        let body = send_body("tok-1", &sample(), Some("42"));
        assert_eq!(
            body,
            json!({"message": {
                "token": "tok-1",
                "notification": {"title": "Alice", "body": "hi there"},
                "data": {"ext": "{\"entity\":1}"},
                "android": {
                    "priority": "high",
                    "ttl": "86400s",
                    "restricted_package_name": "com.example.chat",
                    "notification": {"channel_id": "im_messages", "tag": "42"}
                }
            }})
        );
    }

    #[test]
    fn optional_parts_are_left_out_and_ttl_is_capped() {
        let n = FcmNotification {
            channel_id: None,
            ext: None,
            priority: Priority::Normal,
            ttl_secs: u32::MAX,
            ..sample()
        };
        let body = send_body("t", &n, None);
        let m = &body["message"];
        assert!(m.get("data").is_none());
        assert!(m["android"].get("notification").is_none());
        assert_eq!(m["android"]["priority"], "normal");
        assert_eq!(m["android"]["ttl"], "2419200s");
        assert_eq!(
            send_url("http://x:1/", "p-1"),
            "http://x:1/v1/projects/p-1/messages:send"
        );
    }
}
