//! The v3 send request of HarmonyOS NEXT (5 and later), spec/vendors/huawei.md §1 "Send, v3":
//! `POST /v3/{projectId}/messages:send` with the extra header `push-type: 0` (0 = notification),
//! the service-account JWT as the only bearer (§2.2), and a body of its own,
//! `payload` / `target` / `pushOptions`. The replies and their codes are v1's (§4, §5; the v3
//! codes 80200005, 80300029/30 and 80300036 are in the same table).
//!
//! The spec names only the three members. Inside them we follow the request sample of the v3
//! page the spec cites ([H6], [H14]: the copy in `xiaobingtech/bark-server`):
//!
//! ```json
//! {"payload": {"notification": {"category": "IM", "title": "…", "body": "…",
//!                               "clickAction": {"actionType": 0}}},
//!  "target": {"token": ["…"]},
//!  "pushOptions": {"ttl": 86400}}
//! ```
//!
//! `ttl` is an integer of seconds there, default 86,400 and at most 1,296,000 (§3, "stated for
//! the v3 API"); we send the default. `actionType` 0 opens the app's home page and 1 a page of
//! the app named by its `action` (the sample's live-view click). Sent nowhere in v3: `importance`,
//! `channel_id`, `sound`, `notify_id` — the sample has no such members.
//!
//! UNCONFIRMED, so documented client defaults (README) with an emulator knob on the other side:
//! - `Ext` rides in `clickAction.data`, a JSON object the app receives with the click: as the one
//!   member `ext` (its text), or with `ExtAsHuaweiIntentParam` as the members of the `Ext`
//!   object. Knob: `HuaweiRules::v3_click_data` (off: the emulator refuses `data`).
//! - A certificate's Android intent URI maps to `actionType` 1 with the intent's `action=` as
//!   the ability's action; an intent without one, or a web page (v3 has no URL click in the
//!   sample), opens the app (`actionType` 0).
//! - A partial success lists the refused tokens in `msg` as v1 does (§4).

use serde::Serialize;
use serde_json::{Map, Value};

use super::wire::{fit_texts, non_empty, or_default, ExtCarriage, HuaweiMessage, DEFAULT_CATEGORY};
use crate::domain::ClickAction;

/// The header that says which kind of message a v3 request carries.
pub const PUSH_TYPE_HEADER: &str = "push-type";
/// `push-type` of a notification ("Alert" message).
pub const PUSH_TYPE_NOTIFICATION: &str = "0";
/// `pushOptions.ttl`: Huawei's default, one day (§3).
pub const TTL_SECS: u64 = 86_400;
/// The largest `pushOptions.ttl` Huawei takes: 15 days (§3).
pub const MAX_TTL_SECS: u64 = 1_296_000;
/// The `clickAction.data` member that carries the whole `Ext` text (our default).
pub const EXT_DATA_KEY: &str = "ext";

#[derive(Serialize)]
struct V3Json<'a> {
    payload: PayloadJson<'a>,
    target: TargetJson<'a>,
    #[serde(rename = "pushOptions")]
    push_options: OptionsJson<'a>,
}

#[derive(Serialize)]
struct PayloadJson<'a> {
    notification: NotificationJson<'a>,
}

#[derive(Serialize)]
struct NotificationJson<'a> {
    category: &'a str,
    title: &'a str,
    body: &'a str,
    #[serde(rename = "clickAction")]
    click_action: &'a HarmonyClick,
}

#[derive(Serialize)]
struct TargetJson<'a> {
    token: &'a [&'a str],
}

#[derive(Serialize)]
struct OptionsJson<'a> {
    ttl: u64,
    #[serde(rename = "biTag", skip_serializing_if = "Option::is_none")]
    bi_tag: Option<&'a str>,
}

/// `payload.notification.clickAction` of a v3 notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HarmonyClick {
    /// 0 opens the app's home page, 1 the page whose ability declares `action`.
    #[serde(rename = "actionType")]
    pub action_type: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// What the app receives with the click: our carriage of `Ext`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Map<String, Value>>,
}

/// The `action=` of an Android intent URI (`intent:#Intent;action=com.x.OPEN;…;end`).
fn intent_action(intent_uri: &str) -> Option<&str> {
    let (_, fragment) = intent_uri.split_once("#Intent;")?;
    fragment
        .split(';')
        .find_map(|part| part.strip_prefix("action="))
        .filter(|a| !a.trim().is_empty())
}

/// `Ext` as `clickAction.data`: `{"ext": <text>}`, or with intent parameters asked for and an
/// `Ext` that is a JSON object, that object's members.
fn ext_data(ext: &str, carriage: ExtCarriage) -> Map<String, Value> {
    if carriage == ExtCarriage::IntentParams {
        if let Ok(Value::Object(members)) = serde_json::from_str::<Value>(ext) {
            return members.into_iter().filter(|(k, _)| !k.is_empty()).collect();
        }
    }
    let mut data = Map::new();
    data.insert(EXT_DATA_KEY.to_owned(), Value::String(ext.to_owned()));
    data
}

impl HarmonyClick {
    /// A certificate's click action and a message's `Ext` as v3 takes them (module docs).
    pub fn new(click: &ClickAction, ext: Option<&str>, carriage: ExtCarriage) -> HarmonyClick {
        let action = match click {
            ClickAction::OpenActivity { intent_uri } => intent_action(intent_uri),
            ClickAction::OpenApp | ClickAction::OpenUrl { .. } => None,
        };
        HarmonyClick {
            action_type: if action.is_some() { 1 } else { 0 },
            action: action.map(str::to_owned),
            data: ext.filter(|e| !e.is_empty()).map(|e| ext_data(e, carriage)),
        }
    }
}

fn body_json(
    msg: &HuaweiMessage,
    click: &HarmonyClick,
    title: &str,
    body: &str,
    tokens: &[&str],
) -> String {
    let json = V3Json {
        payload: PayloadJson {
            notification: NotificationJson {
                category: if msg.category.trim().is_empty() {
                    DEFAULT_CATEGORY
                } else {
                    &msg.category
                },
                title,
                body,
                click_action: click,
            },
        },
        target: TargetJson { token: tokens },
        push_options: OptionsJson {
            ttl: TTL_SECS,
            bi_tag: non_empty(&msg.bi_tag),
        },
    };
    // Strings, integers and a map of JSON values: serialising cannot fail.
    serde_json::to_string(&json).unwrap_or_default()
}

/// Body for `POST /v3/{projectId}/messages:send`: one notification to 1–1000 tokens, its
/// title and body defaulted when blank and cut so that the body without the token list stays
/// within 4096 bytes (80300008).
pub fn harmony_body(msg: &HuaweiMessage, tokens: &[&str]) -> String {
    let click = HarmonyClick::new(&msg.click, msg.ext.as_deref(), msg.ext_carriage);
    let (title, body) = fit_texts(or_default(&msg.title), or_default(&msg.body), 1, |t, b| {
        body_json(msg, &click, t, b, &[]).len()
    });
    body_json(msg, &click, title, body, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// v1's sample with the members v3 does not send set, to show they stay out.
    fn msg() -> HuaweiMessage {
        HuaweiMessage {
            channel_id: Some("chat".into()),
            sound: Some("ring".into()),
            receipt_id: Some("RCP1".into()),
            ..crate::providers::huawei::wire::tests::msg()
        }
    }

    #[test]
    fn the_body_has_the_v3_shape_and_nothing_of_v1() {
        let body: Value = serde_json::from_str(&harmony_body(&msg(), &["t1", "t2"])).unwrap();
        assert_eq!(
            body,
            json!({
                "payload": {"notification": {
                    "category": "IM", "title": "Alice", "body": "hi there",
                    "clickAction": {"actionType": 0}
                }},
                "target": {"token": ["t1", "t2"]},
                "pushOptions": {"ttl": 86400}
            })
        );
    }

    #[test]
    fn blank_texts_and_category_get_defaults_and_overrides_are_sent() {
        let mut m = msg();
        m.title = " ".into();
        m.body = String::new();
        m.category = String::new();
        let body: Value = serde_json::from_str(&harmony_body(&m, &["t"])).unwrap();
        let n = &body["payload"]["notification"];
        assert_eq!(
            (&n["title"], &n["body"]),
            (&json!("a new message"), &json!("a new message"))
        );
        assert_eq!(n["category"], "IM");
        m.category = "MARKETING".into();
        m.bi_tag = Some("msg-1".into());
        let body: Value = serde_json::from_str(&harmony_body(&m, &["t"])).unwrap();
        assert_eq!(body["payload"]["notification"]["category"], "MARKETING");
        assert_eq!(body["pushOptions"]["biTag"], "msg-1");
    }

    #[test]
    fn ext_rides_in_click_data_and_intents_give_their_action() {
        let ext = r#"{"conv":"c2c_bob","n":3}"#;
        let c = HarmonyClick::new(&ClickAction::OpenApp, Some(ext), ExtCarriage::OneExtra);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"actionType": 0, "data": {"ext": ext}})
        );
        let c = HarmonyClick::new(&ClickAction::OpenApp, Some(ext), ExtCarriage::IntentParams);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"actionType": 0, "data": {"conv": "c2c_bob", "n": 3}})
        );
        let activity = ClickAction::OpenActivity {
            intent_uri: "intent://chat#Intent;action=com.example.OPEN_CHAT;scheme=app;end".into(),
        };
        let c = HarmonyClick::new(&activity, None, ExtCarriage::OneExtra);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"actionType": 1, "action": "com.example.OPEN_CHAT"})
        );
        let no_action = ClickAction::OpenActivity {
            intent_uri: "intent://chat#Intent;scheme=app;end".into(),
        };
        assert_eq!(
            HarmonyClick::new(&no_action, None, ExtCarriage::OneExtra).action_type,
            0
        );
        let url = ClickAction::OpenUrl {
            url: "https://e.x/a".into(),
        };
        let c = HarmonyClick::new(&url, Some(""), ExtCarriage::OneExtra);
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({"actionType": 0}));
    }

    #[test]
    fn a_long_body_is_cut_to_4096_bytes_without_the_tokens() {
        let mut m = msg();
        m.body = "消".repeat(3000);
        m.ext = Some("x".repeat(500));
        let body = harmony_body(&m, &[]);
        assert!(body.len() <= 4096, "{}", body.len());
        let v: Value = serde_json::from_str(&body).unwrap();
        let sent = v["payload"]["notification"]["body"].as_str().unwrap();
        assert!(sent.chars().count() > 500, "cut too much: {}", sent.len());
        assert!(m.body.starts_with(sent));
        let tokens: Vec<String> = (0..1000).map(|i| format!("token-{i:040}")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let with_tokens: Value = serde_json::from_str(&harmony_body(&m, &refs)).unwrap();
        assert_eq!(with_tokens["payload"], v["payload"]);
    }
}
