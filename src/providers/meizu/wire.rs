//! Meizu request bodies (spec/vendors/meizu.md §2–§3). Pure functions, no I/O.
//!
//! Every request is a form POST signed on its own: `sign` = MD5 of the other parameters sorted by
//! key as `k=v` pairs with no separator, followed by the AppSecret. There is no token.

use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::Value;

use crate::domain::ClickAction;
use crate::providers::outcome::hex;
use crate::providers::text::{cut_chars, or_default};

/// Meizu's push host (§1); `PUSHGATE_MEIZU_BASE_URL` overrides it.
pub const DEFAULT_BASE_URL: &str = "https://server-api-push.meizu.com";
/// Notification-bar ("varnished") messages to push ids (§1).
pub const PUSH_BY_PUSH_ID_PATH: &str = "/garcia/api/server/push/varnished/pushByPushId";

/// Push ids per request: integrators use 1,000; Meizu's own maximum is UNCONFIRMED (§3).
pub const MAX_PUSH_IDS_PER_REQUEST: usize = 1000;
/// `noticeBarInfo.title` 1–32 chars (§3).
pub const TITLE_MAX_CHARS: usize = 32;
/// `noticeBarInfo.content` 1–100 chars (§3).
pub const CONTENT_MAX_CHARS: usize = 100;
/// Chats are private messages (私信): `noticeMsgType` 1; 0 (public) is quota-limited (§3).
pub const DEFAULT_NOTICE_MSG_TYPE: u8 = crate::domain::credentials::MEIZU_DEFAULT_NOTICE_MSG_TYPE;
/// Hours a message waits for an offline device (§3: 1–72, default 24).
const VALID_HOURS: u8 = 24;

/// One certificate's credentials as Meizu sees them.
#[derive(Clone, PartialEq, Eq)]
pub struct MeizuApp {
    pub app_id: String,
    /// Signs every request; never sent, never logged.
    pub app_secret: String,
}

impl std::fmt::Debug for MeizuApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeizuApp")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .finish()
    }
}

/// One notification's content; equal contents share one request (comma-separated push ids).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeizuNotification {
    /// Raw text; defaulted when blank and cut to [`TITLE_MAX_CHARS`] on the wire.
    pub title: String,
    /// Raw text; defaulted when blank and cut to [`CONTENT_MAX_CHARS`].
    pub content: String,
    /// 0 public, 1 private.
    pub notice_msg_type: u8,
    pub click: ClickAction,
    /// Tencent's `Ext`, handed to the app as `clickTypeInfo.parameters.ext`.
    pub ext: Option<String>,
    /// A conversation's notifications collapse into one (`advanceInfo.notifyKey`).
    pub notify_id: i32,
}

/// `sign` over `params` (without `sign` itself): MD5 hex of the pairs sorted by key as `k=v`,
/// concatenated, then the AppSecret (§2). Values are the raw, un-encoded strings.
pub fn sign(params: &[(&str, &str)], app_secret: &str) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Md5::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
    }
    h.update(app_secret.as_bytes());
    hex(&h.finalize())
}

/// `advanceInfo.notifyKey`: ≤ 8 chars of `[0-9a-zA-Z_-]` (§3); the conversation hash in hex.
pub fn notify_key(notify_id: i32) -> String {
    format!("{:08x}", notify_id.unsigned_abs())
}

/// The activity class an intent URI names in `component=pkg/.Class` (Meizu `clickType` 1 takes
/// a class name, not an intent URI).
fn component_activity(intent_uri: &str) -> Option<String> {
    let component = intent_uri
        .split(';')
        .find_map(|part| part.strip_prefix("component="))?;
    let (package, class) = component.split_once('/')?;
    if class.is_empty() {
        return None;
    }
    Some(match class.strip_prefix('.') {
        Some(rest) => format!("{package}.{rest}"),
        None => class.to_owned(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageJson<'a> {
    notice_bar_info: NoticeBarInfo<'a>,
    notice_expand_info: Value,
    click_type_info: ClickTypeInfo,
    push_time_info: Value,
    advance_info: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NoticeBarInfo<'a> {
    notice_msg_type: u8,
    notice_bar_type: u8,
    title: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClickTypeInfo {
    click_type: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    activity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
}

/// `clickTypeInfo` (§3): 0 open the app, 1 an activity by class name, 2 a URI. An intent URI
/// with a component opens that activity; one without is handed over as a URI.
fn click_type_info(click: &ClickAction, ext: Option<&str>) -> ClickTypeInfo {
    let parameters = ext
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::json!({ "ext": e }));
    let (click_type, activity, url) = match click {
        ClickAction::OpenApp => (0, None, None),
        ClickAction::OpenUrl { url } => (2, None, Some(url.clone())),
        ClickAction::OpenActivity { intent_uri } => match component_activity(intent_uri) {
            Some(activity) => (1, Some(activity), None),
            None => (2, None, Some(intent_uri.clone())),
        },
    };
    ClickTypeInfo {
        click_type,
        activity,
        url,
        parameters,
    }
}

/// `messageJson` of a notification.
pub fn message_json(n: &MeizuNotification) -> String {
    let message = MessageJson {
        notice_bar_info: NoticeBarInfo {
            notice_msg_type: n.notice_msg_type,
            notice_bar_type: 0,
            title: cut_chars(or_default(&n.title), TITLE_MAX_CHARS),
            content: cut_chars(or_default(&n.content), CONTENT_MAX_CHARS),
        },
        notice_expand_info: serde_json::json!({"noticeExpandType": 0, "noticeExpandContent": ""}),
        click_type_info: click_type_info(&n.click, n.ext.as_deref()),
        push_time_info: serde_json::json!({"offLine": 1, "validTime": VALID_HOURS}),
        advance_info: serde_json::json!({
            "suspend": 1,
            "clearNoticeBar": 1,
            "notifyKey": notify_key(n.notify_id),
            "notificationType": {"vibrate": 1, "lights": 1, "sound": 1},
        }),
    };
    // Serialising strings and integers cannot fail.
    serde_json::to_string(&message).unwrap_or_default()
}

/// Body of `pushByPushId`: `appId`, comma-separated `pushIds`, `messageJson`, `sign`.
pub fn push_form(app: &MeizuApp, push_ids: &[&str], n: &MeizuNotification) -> String {
    let ids = push_ids.join(",");
    let message = message_json(n);
    let mut params = vec![
        ("appId", app.app_id.as_str()),
        ("messageJson", message.as_str()),
        ("pushIds", ids.as_str()),
    ];
    let signature = sign(&params, &app.app_secret);
    params.push(("sign", signature.as_str()));
    // Encoding `&str` pairs has no failure path in serde_urlencoded.
    serde_urlencoded::to_string(&params).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> MeizuNotification {
        MeizuNotification {
            title: "Alice".into(),
            content: "hi there".into(),
            notice_msg_type: DEFAULT_NOTICE_MSG_TYPE,
            click: ClickAction::OpenActivity {
                intent_uri: "intent://chat#Intent;component=com.example.chat/.ChatActivity;end"
                    .into(),
            },
            ext: Some(r#"{"conv":"42"}"#.into()),
            notify_id: 42,
        }
    }

    #[test]
    fn sign_sorts_by_key_and_appends_the_secret() {
        // md5("appId=100999messageJson={}pushIds=a,bsecret"), computed with md5sum.
        assert_eq!(
            sign(
                &[
                    ("pushIds", "a,b"),
                    ("appId", "100999"),
                    ("messageJson", "{}")
                ],
                "secret"
            ),
            "9053b82af75726eac4bb9dc2b8d6da88"
        );
    }

    #[test]
    fn message_json_is_exact() {
        assert_eq!(
            message_json(&note()),
            r#"{"noticeBarInfo":{"noticeMsgType":1,"noticeBarType":0,"title":"Alice","content":"hi there"},"noticeExpandInfo":{"noticeExpandContent":"","noticeExpandType":0},"clickTypeInfo":{"clickType":1,"activity":"com.example.chat.ChatActivity","parameters":{"ext":"{\"conv\":\"42\"}"}},"pushTimeInfo":{"offLine":1,"validTime":24},"advanceInfo":{"clearNoticeBar":1,"notificationType":{"lights":1,"sound":1,"vibrate":1},"notifyKey":"0000002a","suspend":1}}"#
        );
    }

    #[test]
    fn push_form_is_signed_over_the_raw_values() {
        let app = MeizuApp {
            app_id: "100999".into(),
            app_secret: "secret".into(),
        };
        let body = push_form(&app, &["a", "b"], &note());
        let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).expect("form");
        let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["appId", "messageJson", "pushIds", "sign"]);
        assert_eq!(form[2].1, "a,b");
        let raw: Vec<(&str, &str)> = form[..3]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(form[3].1, sign(&raw, "secret"));
        assert!(!body.contains("secret"));
        assert!(!format!("{app:?}").contains("secret\""));
    }

    #[test]
    fn clicks_and_limits() {
        let mut n = note();
        n.click = ClickAction::OpenActivity {
            intent_uri: "intent://chat#Intent;scheme=app;end".into(),
        };
        n.title = "标".repeat(40);
        n.content = " ".into();
        n.ext = None;
        let m: Value = serde_json::from_str(&message_json(&n)).expect("json");
        assert_eq!(m["clickTypeInfo"]["clickType"], 2);
        assert_eq!(
            m["clickTypeInfo"]["url"],
            "intent://chat#Intent;scheme=app;end"
        );
        assert!(m["clickTypeInfo"].get("parameters").is_none());
        assert_eq!(
            m["noticeBarInfo"]["title"]
                .as_str()
                .map(|t| t.chars().count()),
            Some(32)
        );
        assert_eq!(m["noticeBarInfo"]["content"], "a new message");
        n.click = ClickAction::OpenApp;
        let m: Value = serde_json::from_str(&message_json(&n)).expect("json");
        assert_eq!(m["clickTypeInfo"]["clickType"], 0);
        assert_eq!(
            component_activity("intent:#Intent;component=a.b/c.d.E;end").as_deref(),
            Some("c.d.E")
        );
        assert_eq!(
            component_activity("intent:#Intent;component=a.b/;end"),
            None
        );
        assert_eq!(notify_key(i32::MIN).len(), 8);
    }
}
