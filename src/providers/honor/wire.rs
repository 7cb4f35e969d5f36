//! Honor Push request bodies (spec/vendors/honor.md §3): Huawei-like but camelCase, with no
//! `message` wrapper and no `validate_only` — the body is the message itself.

use serde::Serialize;

use crate::domain::ClickAction;
use crate::providers::huawei::wire::{or_default, ClickJson, VendorClick, MAX_PAYLOAD_BYTES};

/// Tokens per request: UNCONFIRMED for Honor (spec §3); Huawei's 1,000 is the assumption.
pub const MAX_TOKENS_PER_REQUEST: usize = 1000;

/// `android.notification.importance` for a chat: `NORMAL` = service & communication, not
/// counted against the marketing cap (spec §3, §6).
pub use crate::domain::credentials::HONOR_DEFAULT_IMPORTANCE as DEFAULT_IMPORTANCE;

/// `android.ttl`, Honor's default one day (spec §3).
const TTL: &str = "86400s";

/// One Honor certificate as the API sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct HonorApp {
    /// The numeric APP ID of the send URL `/api/v1/{appId}/sendMessage`.
    pub app_id: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret; only sent in the token request's form body.
    pub client_secret: String,
}

impl std::fmt::Debug for HonorApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HonorApp")
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// One notification's content; `Eq + Hash` so identical content shares a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HonorMessage {
    pub title: String,
    pub body: String,
    /// `LOW` (marketing) or `NORMAL` (service & communication, the default).
    pub importance: String,
    /// The Android package, for the intent that opens the app with extras.
    pub package_name: String,
    pub click: ClickAction,
    /// TIM `Ext`, carried as the intent string extra `ext` (as for Huawei).
    pub ext: Option<String>,
    /// Same id ⇒ replaces the shown notification.
    pub notify_id: i32,
    /// `android.biTag`, for receipts.
    pub bi_tag: Option<String>,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    token: &'a [&'a str],
    notification: TitleBody<'a>,
    android: AndroidJson<'a>,
}

#[derive(Serialize)]
struct TitleBody<'a> {
    title: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AndroidJson<'a> {
    ttl: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bi_tag: Option<&'a str>,
    /// 0 = a formal message; 1 would be a test message (≤1000 a day).
    target_user_type: u8,
    notification: NotificationJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationJson<'a> {
    title: &'a str,
    body: &'a str,
    importance: &'a str,
    click_action: ClickJson<'a>,
    notify_id: i32,
}

fn body_json(msg: &HonorMessage, title: &str, body: &str, tokens: &[&str]) -> String {
    let click = VendorClick::from_action(&msg.click, &msg.package_name, msg.ext.as_deref());
    let json = MessageJson {
        token: tokens,
        notification: TitleBody { title, body },
        android: AndroidJson {
            ttl: TTL,
            bi_tag: msg.bi_tag.as_deref().filter(|t| !t.trim().is_empty()),
            target_user_type: 0,
            notification: NotificationJson {
                title,
                body,
                importance: if msg.importance.trim().is_empty() {
                    DEFAULT_IMPORTANCE
                } else {
                    &msg.importance
                },
                click_action: ClickJson::new(&click),
                notify_id: msg.notify_id,
            },
        },
    };
    serde_json::to_string(&json).unwrap_or_default()
}

/// Title and body on the wire: defaulted when blank; cut so the body without tokens stays under
/// Huawei's 4096 bytes, the assumed Honor limit (spec §3, UNCONFIRMED).
pub fn wire_texts(msg: &HonorMessage) -> (&str, &str) {
    let title = or_default(&msg.title);
    let body = or_default(&msg.body);
    let size = |t: &str, b: &str| body_json(msg, t, b, &[]).len();
    if size(title, body) <= MAX_PAYLOAD_BYTES {
        return (title, body);
    }
    let body = fit(body, MAX_PAYLOAD_BYTES.saturating_sub(size(title, "")));
    if size(title, body) <= MAX_PAYLOAD_BYTES {
        return (title, body);
    }
    (
        fit(title, MAX_PAYLOAD_BYTES.saturating_sub(size("", body))),
        body,
    )
}

/// The longest prefix whose JSON encoding, written twice, fits `budget` bytes.
fn fit(text: &str, budget: usize) -> &str {
    let per_copy = budget / 2;
    let mut used = 0;
    for (at, c) in text.char_indices() {
        let mut buf = [0u8; 4];
        used += serde_json::to_string(c.encode_utf8(&mut buf)).map_or(6, |s| s.len() - 2);
        if used > per_copy {
            return &text[..at];
        }
    }
    text
}

/// Body for `POST /api/v1/{appId}/sendMessage`: one message to 1–1000 tokens.
pub fn send_body(msg: &HonorMessage, tokens: &[&str]) -> String {
    let (title, body) = wire_texts(msg);
    body_json(msg, title, body, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn msg() -> HonorMessage {
        HonorMessage {
            title: "Alice".into(),
            body: "hi there".into(),
            importance: "NORMAL".into(),
            package_name: "com.example.chat".into(),
            click: ClickAction::OpenApp,
            ext: None,
            notify_id: 12345,
            bi_tag: None,
        }
    }

    #[test]
    fn body_is_camel_case_without_a_message_wrapper() {
        let body: Value = serde_json::from_str(&send_body(&msg(), &["t1"])).expect("json");
        assert_eq!(
            body,
            json!({
                "token": ["t1"],
                "notification": {"title": "Alice", "body": "hi there"},
                "android": {
                    "ttl": "86400s", "targetUserType": 0,
                    "notification": {
                        "title": "Alice", "body": "hi there", "importance": "NORMAL",
                        "clickAction": {"type": 3}, "notifyId": 12345
                    }
                }
            })
        );
    }

    #[test]
    fn defaults_ext_and_low_importance() {
        let mut m = msg();
        m.title = String::new();
        m.body = "  ".into();
        m.importance = String::new();
        m.ext = Some(r#"{"k":"v"}"#.into());
        m.bi_tag = Some("msg-9".into());
        let body: Value = serde_json::from_str(&send_body(&m, &["t"])).expect("json");
        let n = &body["android"]["notification"];
        assert_eq!(n["title"], "a new message");
        assert_eq!(n["body"], "a new message");
        assert_eq!(n["importance"], "NORMAL");
        assert_eq!(n["clickAction"]["type"], 1);
        assert!(n["clickAction"]["intent"].as_str().is_some_and(
            |i| i.ends_with(";package=com.example.chat;S.ext=%7B%22k%22%3A%22v%22%7D;end")
        ));
        assert_eq!(body["android"]["biTag"], "msg-9");
        m.importance = "LOW".into();
        let body: Value = serde_json::from_str(&send_body(&m, &["t"])).expect("json");
        assert_eq!(body["android"]["notification"]["importance"], "LOW");
    }

    #[test]
    fn long_text_is_cut_to_the_payload_limit() {
        let mut m = msg();
        m.body = "b".repeat(10_000);
        let (_, body) = wire_texts(&m);
        assert!(body.len() > 1000);
        assert!(send_body(&m, &[]).len() <= MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn debug_redacts_the_secret() {
        let app = HonorApp {
            app_id: "104".into(),
            client_id: "cid".into(),
            client_secret: "topsecret".into(),
        };
        assert!(!format!("{app:?}").contains("topsecret"));
    }
}
