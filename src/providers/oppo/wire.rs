//! OPPO request bodies (spec/vendors/oppo.md §2–§4). Pure functions, no I/O.
//!
//! Every call is a form POST; notifications travel as JSON text inside the form (`message` for
//! `unicast`, `messages` for `unicast_batch`), with snake_case keys as every SDK sends (§3).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::ClickAction;
use crate::providers::outcome::hex;
use crate::providers::text::{cut_chars, or_default};

/// OPPO's China host (§1); `PUSHGATE_OPPO_BASE_URL` overrides it.
pub const DEFAULT_BASE_URL: &str = "https://api.push.oppomobile.com";
pub const AUTH_PATH: &str = "/server/v1/auth";
pub const UNICAST_PATH: &str = "/server/v1/message/notification/unicast";
pub const UNICAST_BATCH_PATH: &str = "/server/v1/message/notification/unicast_batch";

/// Messages one `unicast_batch` may carry (§3).
pub const MAX_MESSAGES_PER_BATCH: usize = 1000;
/// `title` ≤ 50 chars, CJK and emoji counting 1 (§3).
pub const TITLE_MAX_CHARS: usize = 50;
/// `content` ≤ 200 chars for the standard style 1 (§3).
pub const CONTENT_MAX_CHARS: usize = 200;
/// `action_parameters` ≤ 4 KB (§3).
pub const ACTION_PARAMETERS_MAX_BYTES: usize = 4096;
/// Chats are service messages: `category` IM (§4), so they are not counted as marketing.
pub const DEFAULT_CATEGORY: &str = crate::domain::credentials::OPPO_DEFAULT_CATEGORY;
/// Shade + lock screen + ring + vibrate, the default level of service messages (§4).
pub const DEFAULT_NOTIFY_LEVEL: u8 = crate::domain::credentials::OPPO_DEFAULT_NOTIFY_LEVEL;
/// `target_type` 2: the target is a registration id (§3).
const TARGET_REGISTRATION_ID: u8 = 2;

/// One certificate's credentials as OPPO sees them.
#[derive(Clone, PartialEq, Eq)]
pub struct OppoApp {
    pub app_key: String,
    /// Signs the auth call only; never sent, never logged.
    pub master_secret: String,
}

impl std::fmt::Debug for OppoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OppoApp")
            .field("app_key", &self.app_key)
            .field("master_secret", &"<redacted>")
            .finish()
    }
}

/// One notification's content; `Eq + Hash` so equal contents can be told apart cheaply.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OppoNotification {
    /// Raw text; defaulted when blank and cut to [`TITLE_MAX_CHARS`] on the wire.
    pub title: String,
    /// Raw text; defaulted when blank and cut to [`CONTENT_MAX_CHARS`].
    pub content: String,
    /// Android notification channel (the older 私信 channel scheme).
    pub channel_id: Option<String>,
    /// `category`; `None` sends neither it nor `notify_level` (which requires it, §4).
    pub category: Option<String>,
    /// 1, 2 or 16 (§4).
    pub notify_level: Option<u8>,
    pub click: ClickAction,
    /// Tencent's `Ext`, handed to the app as `action_parameters` `{"ext": …}`.
    pub ext: Option<String>,
    /// Same id ⇒ the notifications replace each other.
    pub notify_id: i32,
    /// A private-message template the notification is shown with.
    pub private_template: Option<PrivateTemplate>,
}

/// OPPO's private-message template: its id and the values of its title and content
/// placeholders. The wire names (`private_msg_template_id`, `private_title_parameters`,
/// `private_content_parameters` inside `notification`, the parameters as JSON objects of
/// strings) are UNCONFIRMED (spec/vendors/README.md): they are what integrators send.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrivateTemplate {
    pub id: String,
    pub title_parameters: BTreeMap<String, String>,
    pub content_parameters: BTreeMap<String, String>,
}

/// `sign` of the auth call: lower-case hex SHA-256 of `app_key + timestamp + master_secret` (§2).
pub fn auth_sign(app_key: &str, timestamp_ms: u64, master_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(app_key.as_bytes());
    h.update(timestamp_ms.to_string().as_bytes());
    h.update(master_secret.as_bytes());
    hex(&h.finalize())
}

/// Body of `POST /server/v1/auth`.
pub fn auth_form(app: &OppoApp, timestamp_ms: u64) -> String {
    let timestamp = timestamp_ms.to_string();
    let sign = auth_sign(&app.app_key, timestamp_ms, &app.master_secret);
    encode(&[
        ("app_key", app.app_key.as_str()),
        ("sign", sign.as_str()),
        ("timestamp", timestamp.as_str()),
    ])
}

/// `click_action_type` and its URL / activity (§3 table): 0 open app, 2 web URL, 5 intent
/// scheme URL.
fn click(click: &ClickAction) -> (u8, Option<&str>) {
    match click {
        ClickAction::OpenApp => (0, None),
        ClickAction::OpenUrl { url } => (2, Some(url)),
        ClickAction::OpenActivity { intent_uri } => (5, Some(intent_uri)),
    }
}

/// `action_parameters`: the JSON object `{"ext": <Ext>}`, so the app reads `ext` from the
/// intent extras as it does with Huawei, vivo and Meizu.
pub fn action_parameters(ext: Option<&str>) -> Option<String> {
    let ext = ext.filter(|e| !e.is_empty())?;
    serde_json::to_string(&serde_json::json!({ "ext": ext })).ok()
}

#[derive(Serialize)]
struct MessageJson<'a> {
    target_type: u8,
    target_value: &'a str,
    notification: NotificationJson<'a>,
}

#[derive(Serialize)]
struct NotificationJson<'a> {
    title: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_level: Option<u8>,
    click_action_type: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    click_action_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_parameters: Option<String>,
    off_line: bool,
    notify_id: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_msg_template_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_title_parameters: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_content_parameters: Option<&'a BTreeMap<String, String>>,
}

fn message_json<'a>(target: &'a str, n: &'a OppoNotification) -> MessageJson<'a> {
    let (click_action_type, click_action_url) = click(&n.click);
    let category = n.category.as_deref().filter(|c| !c.is_empty());
    MessageJson {
        target_type: TARGET_REGISTRATION_ID,
        target_value: target,
        notification: NotificationJson {
            title: cut_chars(or_default(&n.title), TITLE_MAX_CHARS),
            content: cut_chars(or_default(&n.content), CONTENT_MAX_CHARS),
            channel_id: n.channel_id.as_deref().filter(|c| !c.is_empty()),
            category,
            notify_level: category.and(n.notify_level),
            click_action_type,
            click_action_url,
            action_parameters: action_parameters(n.ext.as_deref()),
            off_line: true,
            notify_id: n.notify_id,
            private_msg_template_id: n.private_template.as_ref().map(|t| t.id.as_str()),
            private_title_parameters: n
                .private_template
                .as_ref()
                .map(|t| &t.title_parameters)
                .filter(|p| !p.is_empty()),
            private_content_parameters: n
                .private_template
                .as_ref()
                .map(|t| &t.content_parameters)
                .filter(|p| !p.is_empty()),
        },
    }
}

/// Body of `unicast`: `auth_token` and `message` (one target).
pub fn unicast_form(auth_token: &str, target: &str, n: &OppoNotification) -> String {
    // Serialising strings and integers cannot fail.
    let message = serde_json::to_string(&message_json(target, n)).unwrap_or_default();
    encode(&[("auth_token", auth_token), ("message", message.as_str())])
}

/// Body of `unicast_batch`: `auth_token` and `messages`, one message object per target.
pub fn unicast_batch_form(auth_token: &str, items: &[(&str, &OppoNotification)]) -> String {
    let messages: Vec<MessageJson<'_>> = items.iter().map(|(t, n)| message_json(t, n)).collect();
    let messages = serde_json::to_string(&messages).unwrap_or_else(|_| "[]".to_owned());
    encode(&[("auth_token", auth_token), ("messages", messages.as_str())])
}

fn encode(pairs: &[(&str, &str)]) -> String {
    // Encoding `&str` pairs has no failure path in serde_urlencoded.
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> OppoNotification {
        OppoNotification {
            title: "Alice".into(),
            content: "hi there".into(),
            channel_id: Some("chat".into()),
            category: Some(DEFAULT_CATEGORY.into()),
            notify_level: Some(DEFAULT_NOTIFY_LEVEL),
            click: ClickAction::OpenActivity {
                intent_uri: "intent://chat#Intent;end".into(),
            },
            ext: Some(r#"{"conv":"42"}"#.into()),
            notify_id: 42,
            private_template: None,
        }
    }

    #[test]
    fn sign_is_sha256_hex_of_key_timestamp_secret() {
        // sha256("appkey1" + "1700000000000" + "mastersecret"), computed with sha256sum.
        assert_eq!(
            auth_sign("appkey1", 1_700_000_000_000, "mastersecret"),
            "5b5ae583a3a60c40e27537053a3abbdf8a4b4ec1a5d544470388efd69743f391"
        );
    }

    #[test]
    fn auth_form_carries_key_sign_timestamp() {
        let app = OppoApp {
            app_key: "appkey1".into(),
            master_secret: "mastersecret".into(),
        };
        let form: Vec<(String, String)> =
            serde_urlencoded::from_str(&auth_form(&app, 1_700_000_000_000)).expect("form");
        assert_eq!(form[0], ("app_key".into(), "appkey1".into()));
        assert_eq!(
            form[1].1,
            auth_sign("appkey1", 1_700_000_000_000, "mastersecret")
        );
        assert_eq!(form[2], ("timestamp".into(), "1700000000000".into()));
        assert!(!auth_form(&app, 1).contains("mastersecret"));
    }

    #[test]
    fn unicast_batch_is_exact() {
        let mut other = note();
        other.title = " ".into();
        other.category = None;
        other.channel_id = None;
        other.ext = None;
        other.click = ClickAction::OpenApp;
        let body = unicast_batch_form("tok", &[("CN_a", &note()), ("CN_b", &other)]);
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).expect("form");
        assert_eq!(form[0], ("auth_token".into(), "tok".into()));
        assert_eq!(form[1].0, "messages");
        assert_eq!(
            form[1].1,
            r#"[{"target_type":2,"target_value":"CN_a","notification":{"title":"Alice","content":"hi there","channel_id":"chat","category":"IM","notify_level":2,"click_action_type":5,"click_action_url":"intent://chat#Intent;end","action_parameters":"{\"ext\":\"{\\\"conv\\\":\\\"42\\\"}\"}","off_line":true,"notify_id":42}},{"target_type":2,"target_value":"CN_b","notification":{"title":"a new message","content":"hi there","click_action_type":0,"off_line":true,"notify_id":42}}]"#
        );
    }

    #[test]
    fn unicast_and_limits() {
        let mut n = note();
        n.title = "标".repeat(60);
        n.content = "😀".repeat(250);
        n.click = ClickAction::OpenUrl {
            url: "https://e.x/a".into(),
        };
        let body = unicast_form("tok", "CN_a", &n);
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).expect("form");
        assert_eq!(form[1].0, "message");
        let msg: serde_json::Value = serde_json::from_str(&form[1].1).expect("json");
        let notification = &msg["notification"];
        assert_eq!(
            notification["title"].as_str().map(|t| t.chars().count()),
            Some(50)
        );
        assert_eq!(
            notification["content"].as_str().map(|t| t.chars().count()),
            Some(200)
        );
        assert_eq!(notification["click_action_type"], 2);
        assert_eq!(notification["click_action_url"], "https://e.x/a");
        assert_eq!(msg["target_value"], "CN_a");
    }

    #[test]
    fn a_private_template_rides_in_the_notification() {
        let mut n = note();
        n.private_template = Some(PrivateTemplate {
            id: "tpl-1".into(),
            title_parameters: BTreeMap::from([("title".into(), "Alice".into())]),
            content_parameters: BTreeMap::new(),
        });
        let form: Vec<(String, String)> =
            serde_urlencoded::from_str(&unicast_form("tok", "CN_a", &n)).expect("form");
        let msg: serde_json::Value = serde_json::from_str(&form[1].1).expect("json");
        let notification = &msg["notification"];
        assert_eq!(notification["private_msg_template_id"], "tpl-1");
        assert_eq!(
            notification["private_title_parameters"],
            serde_json::json!({"title": "Alice"})
        );
        assert!(notification.get("private_content_parameters").is_none());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let app = OppoApp {
            app_key: "k".into(),
            master_secret: "s3cr3t".into(),
        };
        assert!(!format!("{app:?}").contains("s3cr3t"));
    }
}
