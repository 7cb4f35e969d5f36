//! vivo request bodies (spec/vendors/vivo.md §2–§3). Pure functions, no I/O; every body is JSON.

use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::Value;

use crate::domain::ClickAction;
use crate::providers::outcome::hex;
use crate::providers::text::{cut_width, or_default};

/// vivo's only host (§1); `PUSHGATE_VIVO_BASE_URL` overrides it.
pub const DEFAULT_BASE_URL: &str = "https://api-push.vivo.com.cn";
pub const AUTH_PATH: &str = "/message/auth";
pub const SEND_PATH: &str = "/message/send";
pub const SAVE_LIST_PAYLOAD_PATH: &str = "/message/saveListPayload";
pub const PUSH_TO_LIST_PATH: &str = "/message/pushToList";

/// `pushToList` takes 2 to 1,000 regIds (§1); one device goes through `/message/send`.
pub const MAX_REGIDS_PER_LIST: usize = 1000;
pub const MIN_REGIDS_PER_LIST: usize = 2;
/// `title` ≤ 20 CJK / 40 Latin: width with CJK counting 2 (§3).
pub const TITLE_MAX_WIDTH: usize = 40;
/// `content` ≤ 50 CJK / 100 Latin (§3).
pub const CONTENT_MAX_WIDTH: usize = 100;
/// `clientCustomMap`: ≤ 10 pairs, keys + values ≤ 1024 chars (§3).
pub const CUSTOM_MAP_MAX_PAIRS: usize = 10;
pub const CUSTOM_MAP_MAX_CHARS: usize = 1024;
/// `requestId` ≤ 64 chars (§3).
pub const REQUEST_ID_MAX_CHARS: usize = 64;
/// Chats are system messages (§3: 0 operational is vivo's default, Tencent's default is 1).
pub const DEFAULT_CLASSIFICATION: u8 = crate::domain::credentials::VIVO_DEFAULT_CLASSIFICATION;
pub const DEFAULT_CATEGORY: &str = crate::domain::credentials::VIVO_DEFAULT_CATEGORY;
/// Ring and vibrate (§3 `notifyType` 4).
const NOTIFY_TYPE_RING_AND_VIBRATE: u8 = 4;
/// One day, vivo's own default (§3: 60 s to 7 days).
const TIME_TO_LIVE_SECS: u32 = 86_400;

/// Second-level classes of system (1) and operational (0) messages, §3.
pub use crate::domain::vendor_fields::{
    VIVO_OPERATIONAL_CATEGORIES as OPERATIONAL_CATEGORIES,
    VIVO_SYSTEM_CATEGORIES as SYSTEM_CATEGORIES,
};

/// One certificate's credentials as vivo sees them.
#[derive(Clone, PartialEq, Eq)]
pub struct VivoApp {
    /// vivo's numeric AppId; sent as a JSON number in every body (v2.9.2, §2).
    pub app_id: u64,
    pub app_key: String,
    /// Signs the auth call only; never sent, never logged.
    pub app_secret: String,
}

impl std::fmt::Debug for VivoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VivoApp")
            .field("app_id", &self.app_id)
            .field("app_key", &self.app_key)
            .field("app_secret", &"<redacted>")
            .finish()
    }
}

/// One notification's content; equal contents share one `saveListPayload` + `pushToList`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VivoNotification {
    /// Raw text; defaulted when blank and cut to [`TITLE_MAX_WIDTH`] on the wire.
    pub title: String,
    /// Raw text; defaulted when blank and cut to [`CONTENT_MAX_WIDTH`].
    pub content: String,
    /// 0 operational, 1 system.
    pub classification: u8,
    /// `None` omits it (vivo then classifies by `classification` alone).
    pub category: Option<String>,
    pub click: ClickAction,
    /// Tencent's `Ext`, handed to the app as `clientCustomMap.ext`.
    pub ext: Option<String>,
    /// Same id ⇒ the notifications replace each other; 1…2147483647.
    pub notify_id: i32,
}

/// `sign` of the auth call: lower-case hex MD5 of `appId + appKey + timestamp + appSecret` (§2).
pub fn auth_sign(app_id: u64, app_key: &str, timestamp_ms: u64, app_secret: &str) -> String {
    let mut h = Md5::new();
    h.update(app_id.to_string().as_bytes());
    h.update(app_key.as_bytes());
    h.update(timestamp_ms.to_string().as_bytes());
    h.update(app_secret.as_bytes());
    hex(&h.finalize())
}

/// Body of `POST /message/auth`.
pub fn auth_body(app: &VivoApp, timestamp_ms: u64) -> String {
    serde_json::json!({
        "appId": app.app_id,
        "appKey": app.app_key,
        "timestamp": timestamp_ms,
        "sign": auth_sign(app.app_id, &app.app_key, timestamp_ms, &app.app_secret),
    })
    .to_string()
}

/// A caller-unique `requestId` (vivo de-duplicates on it, §3): 32 random hex digits.
pub fn new_request_id() -> String {
    use rand::Rng;
    format!("{:032x}", rand::rng().random::<u128>())
}

/// `skipType` and `skipContent` (§3): 1 open the app, 2 a URL, 4 an in-app page by intent URI.
fn skip(click: &ClickAction) -> (u8, Option<&str>) {
    match click {
        ClickAction::OpenApp => (1, None),
        ClickAction::OpenUrl { url } => (2, Some(url)),
        ClickAction::OpenActivity { intent_uri } => (4, Some(intent_uri)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageJson<'a> {
    app_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reg_id: Option<&'a str>,
    notify_type: u8,
    title: &'a str,
    content: &'a str,
    time_to_live: u32,
    skip_type: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_content: Option<&'a str>,
    classification: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_custom_map: Option<Value>,
    notify_id: i32,
    request_id: &'a str,
    push_mode: u8,
    network_type: i8,
}

fn message_json<'a>(
    app_id: u64,
    reg_id: Option<&'a str>,
    n: &'a VivoNotification,
    request_id: &'a str,
) -> MessageJson<'a> {
    let (skip_type, skip_content) = skip(&n.click);
    MessageJson {
        app_id,
        reg_id,
        notify_type: NOTIFY_TYPE_RING_AND_VIBRATE,
        title: cut_width(or_default(&n.title), TITLE_MAX_WIDTH),
        content: cut_width(or_default(&n.content), CONTENT_MAX_WIDTH),
        time_to_live: TIME_TO_LIVE_SECS,
        skip_type,
        skip_content,
        classification: n.classification,
        category: n.category.as_deref().filter(|c| !c.is_empty()),
        client_custom_map: n
            .ext
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::json!({ "ext": e })),
        // vivo takes 1…2147483647; the conversation hash may be 0.
        notify_id: n.notify_id.max(1),
        request_id,
        // 0: production (1 would reach only the console's test devices).
        push_mode: 0,
        network_type: -1,
    }
}

/// Body of `/message/send`: one notification to one regId.
pub fn send_body(app_id: u64, reg_id: &str, n: &VivoNotification, request_id: &str) -> String {
    // Serialising strings and integers cannot fail.
    serde_json::to_string(&message_json(app_id, Some(reg_id), n, request_id)).unwrap_or_default()
}

/// Body of `/message/saveListPayload`: the message without a target; vivo answers a `taskId`.
pub fn list_payload_body(app_id: u64, n: &VivoNotification, request_id: &str) -> String {
    serde_json::to_string(&message_json(app_id, None, n, request_id)).unwrap_or_default()
}

/// Body of `/message/pushToList`: the saved message (`taskId`) to 2…1000 regIds.
pub fn push_to_list_body(app_id: u64, reg_ids: &[&str], task_id: &str, request_id: &str) -> String {
    serde_json::json!({
        "appId": app_id,
        "regIds": reg_ids,
        "taskId": task_id,
        "requestId": request_id,
        "pushMode": 0,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note() -> VivoNotification {
        VivoNotification {
            title: "Alice".into(),
            content: "hi there".into(),
            classification: DEFAULT_CLASSIFICATION,
            category: Some(DEFAULT_CATEGORY.into()),
            click: ClickAction::OpenActivity {
                intent_uri: "intent://chat#Intent;end".into(),
            },
            ext: Some(r#"{"conv":"42"}"#.into()),
            notify_id: 0,
        }
    }

    #[test]
    fn sign_is_md5_hex_of_id_key_timestamp_secret() {
        // md5("105562603" + "appkey" + "1700000000000" + "appsecret"), computed with md5sum.
        assert_eq!(
            auth_sign(105_562_603, "appkey", 1_700_000_000_000, "appsecret"),
            "1ae43b073edb5952a2f07dfb84889ed0"
        );
        let app = VivoApp {
            app_id: 105_562_603,
            app_key: "appkey".into(),
            app_secret: "appsecret".into(),
        };
        let body: Value = serde_json::from_str(&auth_body(&app, 1_700_000_000_000)).expect("json");
        assert_eq!(body["appId"], 105_562_603);
        assert_eq!(body["timestamp"], 1_700_000_000_000_u64);
        assert_eq!(
            body["sign"],
            auth_sign(105_562_603, "appkey", 1_700_000_000_000, "appsecret")
        );
        assert!(!format!("{app:?}").contains("appsecret"));
    }

    #[test]
    fn send_body_is_exact() {
        assert_eq!(
            send_body(105_562_603, "v2-abc", &note(), "r1"),
            r#"{"appId":105562603,"regId":"v2-abc","notifyType":4,"title":"Alice","content":"hi there","timeToLive":86400,"skipType":4,"skipContent":"intent://chat#Intent;end","classification":1,"category":"IM","clientCustomMap":{"ext":"{\"conv\":\"42\"}"},"notifyId":1,"requestId":"r1","pushMode":0,"networkType":-1}"#
        );
    }

    #[test]
    fn list_bodies_and_limits() {
        let mut n = note();
        n.title = "新".repeat(30);
        n.content = String::new();
        n.ext = None;
        n.click = ClickAction::OpenApp;
        let payload: Value = serde_json::from_str(&list_payload_body(7, &n, "r2")).expect("json");
        assert!(payload.get("regId").is_none());
        assert_eq!(
            payload["title"].as_str().map(|t| t.chars().count()),
            Some(20)
        );
        assert_eq!(payload["content"], "a new message");
        assert_eq!(payload["skipType"], 1);
        assert!(payload.get("skipContent").is_none());
        assert!(payload.get("clientCustomMap").is_none());
        assert_eq!(
            push_to_list_body(7, &["a", "b"], "t1", "r3"),
            r#"{"appId":7,"pushMode":0,"regIds":["a","b"],"requestId":"r3","taskId":"t1"}"#
        );
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert_ne!(id, new_request_id());
    }
}
