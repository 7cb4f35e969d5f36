//! Huawei Push Kit request bodies (spec/vendors/huawei.md §3), v1/v2 send API.
//!
//! Pure functions: a notification and its tokens in, the JSON body out. The Android-intent helpers
//! (ext carried as an intent extra) are shared with Honor, whose click actions are Huawei's.

use serde::Serialize;

use crate::domain::ClickAction;

/// Shown when the caller gives a blank title or body (the same rule as Xiaomi).
pub const DEFAULT_TITLE: &str = "a new message";

/// Tokens one send request may carry: `token` has 1–1000 entries (spec §3, error 80300010).
pub const MAX_TOKENS_PER_REQUEST: usize = 1000;

/// The message must be at most 4096 bytes, the token list not counted (spec §3, 80300008).
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// `android.category` a chat gets unless the certificate or message says otherwise (`IM`), and
/// the categories Huawei accepts: certificates are checked against the same list.
pub use crate::domain::credentials::{
    HUAWEI_CATEGORIES as CATEGORIES, HUAWEI_DEFAULT_CATEGORY as DEFAULT_CATEGORY,
};

/// `android.notification.importance` by default: `NORMAL` (`HIGH` needs a permission, 80300011).
pub const DEFAULT_IMPORTANCE: &str = "NORMAL";

/// `android.ttl`: Huawei's default, one day (spec §3).
const TTL: &str = "86400s";

/// One Huawei certificate as the API sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct HuaweiApp {
    /// The OAuth client id, which is also the `{clientid}` of the v1 send URL (spec §1).
    pub app_id: String,
    /// The OAuth client secret; only ever sent in the token request's form body.
    pub client_secret: String,
    /// When set, sends go to the v2 per-project URL `/v2/{projectid}/messages:send`.
    pub project_id: Option<String>,
}

impl std::fmt::Debug for HuaweiApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiApp")
            .field("app_id", &self.app_id)
            .field("client_secret", &"<redacted>")
            .field("project_id", &self.project_id)
            .finish()
    }
}

/// One notification's content; `Eq + Hash` so identical content to many tokens shares a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HuaweiMessage {
    /// Raw text; defaulted when blank.
    pub title: String,
    /// Raw text; defaulted when blank, cut when the payload would pass 4096 bytes.
    pub body: String,
    /// `android.category` (IM by default).
    pub category: String,
    /// `android.notification.importance` (NORMAL by default).
    pub importance: String,
    /// `android.notification.channel_id` (TIM `HuaWeiChannelID`).
    pub channel_id: Option<String>,
    /// The Android package, needed to build an intent that opens the app with extras.
    pub package_name: String,
    pub click: ClickAction,
    /// TIM `Ext`: carried as the intent string extra `ext` (spec §3 "Extras").
    pub ext: Option<String>,
    /// Same id ⇒ replaces the shown notification.
    pub notify_id: i32,
    /// Sound file under `res/raw`, without suffix (TIM `AndroidInfo.Sound`).
    pub sound: Option<String>,
    /// How `ext` rides in the click intent (TIM `ExtAsHuaweiIntentParam`).
    pub ext_carriage: ExtCarriage,
    /// `android.bi_tag`, echoed in Huawei's delivery receipts.
    pub bi_tag: Option<String>,
    /// `android.receipt_id`: the AppGallery Connect receipt configuration Huawei posts this
    /// notification's receipts by (spec §3); `None` asks for none beyond the app's default.
    pub receipt_id: Option<String>,
}

/// Cuts `text` to at most `max` UTF-16 units, never splitting a char (Huawei's server is Java).
pub fn truncate_units(text: &str, max: usize) -> &str {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &text[..at];
        }
    }
    text
}

/// A blank text becomes [`DEFAULT_TITLE`].
pub fn or_default(text: &str) -> &str {
    if text.trim().is_empty() {
        DEFAULT_TITLE
    } else {
        text
    }
}

/// Percent-encodes an intent extra value as Android's `Uri.encode` does: everything but
/// `A-Z a-z 0-9 - _ . ! ~ * ' ( )` is `%XX` of its UTF-8 bytes, so `;` and `=` cannot end it.
pub fn intent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How a message's `Ext` rides in the click intent (TIM `ExtAsHuaweiIntentParam`, spec
/// tim-offline-push.md §2.2; the wire form is our design, Tencent documents only the switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExtCarriage {
    /// 0, the default: the whole `Ext` text is the one string extra `ext`, which Tencent's
    /// client SDK reads (`getIntent().getStringExtra("ext")`, tim-offline-push.md §2.4).
    #[default]
    OneExtra,
    /// 1: each top-level member of an `Ext` JSON object is its own string extra (a string as
    /// it is, any other value as its JSON text), for apps that read intent parameters by name.
    /// An `Ext` that is not a JSON object is carried as `OneExtra`.
    IntentParams,
}

impl ExtCarriage {
    pub fn from_flag(intent_params: bool) -> ExtCarriage {
        if intent_params {
            ExtCarriage::IntentParams
        } else {
            ExtCarriage::OneExtra
        }
    }

    /// `S.key=value` extras (each part `;`-led) for `ext`, as `Intent.parseUri` reads them.
    fn extras(self, ext: &str) -> String {
        if self == ExtCarriage::IntentParams {
            if let Ok(serde_json::Value::Object(members)) = serde_json::from_str(ext) {
                let mut out = String::new();
                for (key, value) in members.iter().filter(|(k, _)| !k.is_empty()) {
                    let text = match value {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    out.push_str(";S.");
                    out.push_str(&intent_encode(key));
                    out.push('=');
                    out.push_str(&intent_encode(&text));
                }
                return out;
            }
        }
        format!(";S.ext={}", intent_encode(ext))
    }
}

/// An intent URI that opens the app's launcher activity and carries `ext` as the string extra
/// `ext` (`Intent.parseUri` reads `S.ext=`); the app reads `getIntent().getStringExtra("ext")`.
pub fn launcher_intent(package: &str, ext: &str, carriage: ExtCarriage) -> String {
    format!(
        "intent:#Intent;action=android.intent.action.MAIN;\
         category=android.intent.category.LAUNCHER;package={package}{};end",
        carriage.extras(ext)
    )
}

/// The operator's intent URI with the `ext` extras added before its closing `end`.
pub fn intent_with_ext(intent_uri: &str, ext: &str, carriage: ExtCarriage) -> String {
    match intent_uri.strip_suffix(";end") {
        Some(head) => format!("{head}{};end", carriage.extras(ext)),
        // Certificate validation requires `;end`; an odd URI is sent as given, without ext.
        None => intent_uri.to_owned(),
    }
}

/// The vendor click action both Huawei and Honor take: type 1 custom intent, 2 URL, 3 open app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorClick<'a> {
    Intent(String),
    Url(&'a str),
    OpenApp,
}

impl<'a> VendorClick<'a> {
    /// Maps a certificate's click action, carrying `ext` in the intent where there is one:
    /// open-app with ext becomes an intent to the launcher; a URL click cannot carry ext.
    pub fn from_action(click: &'a ClickAction, package: &str, ext: Option<&str>) -> Self {
        Self::carrying(click, package, ext, ExtCarriage::OneExtra)
    }

    /// [`VendorClick::from_action`] with `ext` carried as `carriage` says.
    pub fn carrying(
        click: &'a ClickAction,
        package: &str,
        ext: Option<&str>,
        carriage: ExtCarriage,
    ) -> Self {
        let ext = ext.filter(|e| !e.is_empty());
        match (click, ext) {
            (ClickAction::OpenApp, None) => VendorClick::OpenApp,
            (ClickAction::OpenApp, Some(ext)) => {
                VendorClick::Intent(launcher_intent(package, ext, carriage))
            }
            (ClickAction::OpenActivity { intent_uri }, None) => {
                VendorClick::Intent(intent_uri.clone())
            }
            (ClickAction::OpenActivity { intent_uri }, Some(ext)) => {
                VendorClick::Intent(intent_with_ext(intent_uri, ext, carriage))
            }
            (ClickAction::OpenUrl { url }, _) => VendorClick::Url(url),
        }
    }

    pub fn kind(&self) -> u8 {
        match self {
            VendorClick::Intent(_) => 1,
            VendorClick::Url(_) => 2,
            VendorClick::OpenApp => 3,
        }
    }

    pub fn intent(&self) -> Option<&str> {
        match self {
            VendorClick::Intent(i) => Some(i),
            _ => None,
        }
    }

    pub fn url(&self) -> Option<&str> {
        match self {
            VendorClick::Url(u) => Some(u),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct SendJson<'a> {
    validate_only: bool,
    message: MessageJson<'a>,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    notification: TitleBody<'a>,
    android: AndroidJson<'a>,
    token: &'a [&'a str],
}

#[derive(Serialize)]
struct TitleBody<'a> {
    title: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
struct AndroidJson<'a> {
    collapse_key: i32,
    urgency: &'a str,
    category: &'a str,
    ttl: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bi_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt_id: Option<&'a str>,
    notification: AndroidNotificationJson<'a>,
}

#[derive(Serialize)]
struct AndroidNotificationJson<'a> {
    title: &'a str,
    body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<&'a str>,
    importance: &'a str,
    click_action: ClickJson<'a>,
    notify_id: i32,
    default_sound: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sound: Option<String>,
}

/// `click_action`; shared with Honor, whose field is spelled `clickAction` but has the same shape.
#[derive(Serialize)]
pub(crate) struct ClickJson<'a> {
    #[serde(rename = "type")]
    pub kind: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
}

impl<'a> ClickJson<'a> {
    pub(crate) fn new(click: &'a VendorClick<'a>) -> Self {
        ClickJson {
            kind: click.kind(),
            intent: click.intent(),
            url: click.url(),
        }
    }
}

pub(crate) fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

fn body_json(msg: &HuaweiMessage, title: &str, body: &str, tokens: &[&str]) -> String {
    let click = VendorClick::carrying(
        &msg.click,
        &msg.package_name,
        msg.ext.as_deref(),
        msg.ext_carriage,
    );
    let sound = non_empty(&msg.sound).map(|s| format!("/raw/{s}"));
    let json = SendJson {
        validate_only: false,
        message: MessageJson {
            notification: TitleBody { title, body },
            android: AndroidJson {
                // -1: every offline message is kept (a chat must not lose one).
                collapse_key: -1,
                urgency: "HIGH",
                category: if msg.category.trim().is_empty() {
                    DEFAULT_CATEGORY
                } else {
                    &msg.category
                },
                ttl: TTL,
                bi_tag: non_empty(&msg.bi_tag),
                receipt_id: non_empty(&msg.receipt_id),
                notification: AndroidNotificationJson {
                    title,
                    body,
                    channel_id: non_empty(&msg.channel_id),
                    importance: if msg.importance.trim().is_empty() {
                        DEFAULT_IMPORTANCE
                    } else {
                        &msg.importance
                    },
                    click_action: ClickJson::new(&click),
                    notify_id: msg.notify_id,
                    // A custom sound needs default_sound=false, else default_sound=true (§3).
                    default_sound: sound.is_none(),
                    sound,
                },
            },
            token: tokens,
        },
    };
    // Plain strings, integers and booleans: serialising cannot fail.
    serde_json::to_string(&json).unwrap_or_default()
}

/// The payload size Huawei checks: the body without its token list.
fn payload_bytes(msg: &HuaweiMessage, title: &str, body: &str) -> usize {
    body_json(msg, title, body, &[]).len()
}

/// The title and body as they go on the wire: defaulted when blank; the body (then the title)
/// cut so the payload stays within [`MAX_PAYLOAD_BYTES`] (Huawei documents no text limits of its
/// own, only the payload size).
pub fn wire_texts(msg: &HuaweiMessage) -> (&str, &str) {
    fit_texts(or_default(&msg.title), or_default(&msg.body), 2, |t, b| {
        payload_bytes(msg, t, b)
    })
}

/// `title` and `body` cut (the body first) until `measure(title, body)`, the payload's bytes,
/// is within [`MAX_PAYLOAD_BYTES`]; each text stands `copies` times in the payload.
pub(crate) fn fit_texts<'a>(
    title: &'a str,
    body: &'a str,
    copies: usize,
    measure: impl Fn(&str, &str) -> usize,
) -> (&'a str, &'a str) {
    if measure(title, body) <= MAX_PAYLOAD_BYTES {
        return (title, body);
    }
    let fixed = measure(title, "");
    let body = fit(body, MAX_PAYLOAD_BYTES.saturating_sub(fixed), copies);
    if measure(title, body) <= MAX_PAYLOAD_BYTES {
        return (title, body);
    }
    let fixed = measure("", body);
    (
        fit(title, MAX_PAYLOAD_BYTES.saturating_sub(fixed), copies),
        body,
    )
}

/// The longest prefix of `text` whose JSON string encoding, `copies` times, is at most
/// `budget` bytes.
fn fit(text: &str, budget: usize, copies: usize) -> &str {
    let per_copy = budget / copies.max(1);
    let mut used = 0;
    for (at, c) in text.char_indices() {
        let mut buf = [0u8; 4];
        let encoded = serde_json::to_string(c.encode_utf8(&mut buf)).map_or(6, |s| s.len() - 2);
        used += encoded;
        if used > per_copy {
            return &text[..at];
        }
    }
    text
}

/// Body for `POST /v1/{clientid}/messages:send` (or v2): one message to 1–1000 tokens.
pub fn send_body(msg: &HuaweiMessage, tokens: &[&str]) -> String {
    let (title, body) = wire_texts(msg);
    body_json(msg, title, body, tokens)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A chat notification the tests of every Huawei body start from.
    pub(crate) fn msg() -> HuaweiMessage {
        HuaweiMessage {
            title: "Alice".into(),
            body: "hi there".into(),
            category: "IM".into(),
            importance: "NORMAL".into(),
            channel_id: None,
            package_name: "com.example.chat".into(),
            click: ClickAction::OpenApp,
            ext: None,
            notify_id: 12345,
            sound: None,
            ext_carriage: Default::default(),
            bi_tag: None,
            receipt_id: None,
        }
    }

    #[test]
    fn body_matches_the_spec_sample_shape() {
        let body: Value = serde_json::from_str(&send_body(&msg(), &["t1", "t2"])).expect("json");
        assert_eq!(
            body,
            json!({
                "validate_only": false,
                "message": {
                    "notification": {"title": "Alice", "body": "hi there"},
                    "android": {
                        "collapse_key": -1, "urgency": "HIGH", "category": "IM", "ttl": "86400s",
                        "notification": {
                            "title": "Alice", "body": "hi there", "importance": "NORMAL",
                            "click_action": {"type": 3}, "notify_id": 12345, "default_sound": true
                        }
                    },
                    "token": ["t1", "t2"]
                }
            })
        );
    }

    #[test]
    fn blank_texts_and_classification_get_defaults() {
        let mut m = msg();
        m.title = " ".into();
        m.body = String::new();
        m.category = String::new();
        m.importance = String::new();
        let body: Value = serde_json::from_str(&send_body(&m, &["t"])).expect("json");
        let n = &body["message"]["android"]["notification"];
        assert_eq!(n["title"], DEFAULT_TITLE);
        assert_eq!(n["body"], DEFAULT_TITLE);
        assert_eq!(n["importance"], "NORMAL");
        assert_eq!(body["message"]["android"]["category"], "IM");
    }

    #[test]
    fn overrides_sound_and_channel_are_sent() {
        let mut m = msg();
        m.category = "MARKETING".into();
        m.importance = "LOW".into();
        m.channel_id = Some("chat".into());
        m.sound = Some("ring".into());
        m.bi_tag = Some("msg-1".into());
        m.receipt_id = Some("RCP1".into());
        let body: Value = serde_json::from_str(&send_body(&m, &["t"])).expect("json");
        let a = &body["message"]["android"];
        assert_eq!(a["category"], "MARKETING");
        assert_eq!(a["bi_tag"], "msg-1");
        assert_eq!(a["receipt_id"], "RCP1");
        assert_eq!(a["notification"]["importance"], "LOW");
        assert_eq!(a["notification"]["channel_id"], "chat");
        assert_eq!(a["notification"]["sound"], "/raw/ring");
        assert_eq!(a["notification"]["default_sound"], false);
    }

    #[test]
    fn click_actions_map_to_huawei_types_and_carry_ext() {
        let ext = r#"{"conv":"42","a;b":"c=d"}"#;
        let app_with_ext = VendorClick::from_action(&ClickAction::OpenApp, "com.x", Some(ext));
        assert_eq!(app_with_ext.kind(), 1);
        assert_eq!(
            app_with_ext.intent(),
            Some(
                "intent:#Intent;action=android.intent.action.MAIN;\
                 category=android.intent.category.LAUNCHER;package=com.x;\
                 S.ext=%7B%22conv%22%3A%2242%22%2C%22a%3Bb%22%3A%22c%3Dd%22%7D;end"
            )
        );
        let activity = ClickAction::OpenActivity {
            intent_uri: "intent://x/detail#Intent;scheme=s;component=com.x/.A;end".into(),
        };
        let c = VendorClick::from_action(&activity, "com.x", Some("{}"));
        assert_eq!(
            c.intent(),
            Some("intent://x/detail#Intent;scheme=s;component=com.x/.A;S.ext=%7B%7D;end")
        );
        let c = VendorClick::from_action(&activity, "com.x", None);
        assert_eq!(
            c.intent(),
            Some("intent://x/detail#Intent;scheme=s;component=com.x/.A;end")
        );
        let url = ClickAction::OpenUrl {
            url: "https://e.x/a".into(),
        };
        let c = VendorClick::from_action(&url, "com.x", Some("{}"));
        assert_eq!((c.kind(), c.url()), (2, Some("https://e.x/a")));
        assert_eq!(
            VendorClick::from_action(&ClickAction::OpenApp, "com.x", Some("")),
            VendorClick::OpenApp
        );
    }

    #[test]
    fn ext_as_intent_params_gives_each_member_its_own_extra() {
        let activity = ClickAction::OpenActivity {
            intent_uri: "intent://x/detail#Intent;scheme=s;end".into(),
        };
        let ext = r#"{"conv":"c2c;bob","n":3,"o":{"k":1}}"#;
        let c = VendorClick::carrying(&activity, "com.x", Some(ext), ExtCarriage::IntentParams);
        assert_eq!(
            c.intent(),
            Some(
                "intent://x/detail#Intent;scheme=s;S.conv=c2c%3Bbob;S.n=3;\
                 S.o=%7B%22k%22%3A1%7D;end"
            )
        );
        // Not a JSON object: carried whole, as with the default.
        let c = VendorClick::carrying(&activity, "com.x", Some("[1]"), ExtCarriage::IntentParams);
        assert_eq!(
            c.intent(),
            Some("intent://x/detail#Intent;scheme=s;S.ext=%5B1%5D;end")
        );
        let c = VendorClick::carrying(
            &ClickAction::OpenApp,
            "com.x",
            Some(r#"{"k":"v"}"#),
            ExtCarriage::IntentParams,
        );
        assert!(c
            .intent()
            .is_some_and(|i| i.ends_with(";package=com.x;S.k=v;end")));
    }

    #[test]
    fn intent_encoding_is_androids() {
        assert_eq!(intent_encode("aZ9-_.!~*'()"), "aZ9-_.!~*'()");
        assert_eq!(intent_encode("a b;c=d/e"), "a%20b%3Bc%3Dd%2Fe");
        assert_eq!(intent_encode("消"), "%E6%B6%88");
    }

    #[test]
    fn a_long_body_is_cut_to_keep_the_payload_within_4096_bytes() {
        let mut m = msg();
        m.body = "消".repeat(3000);
        m.ext = Some("x".repeat(500));
        let tokens: Vec<String> = (0..1000).map(|i| format!("token-{i:040}")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let (title, body) = wire_texts(&m);
        assert_eq!(title, "Alice");
        assert!(body.chars().count() > 100, "cut too much: {}", body.len());
        assert!(m.body.starts_with(body));
        assert!(payload_bytes(&m, title, body) <= MAX_PAYLOAD_BYTES);
        // The token list does not count against the limit.
        assert!(send_body(&m, &refs).len() > MAX_PAYLOAD_BYTES);
        // An emoji is never split.
        m.body = "😀".repeat(2000);
        let (_, body) = wire_texts(&m);
        assert!(body.chars().all(|c| c == '😀'));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let app = HuaweiApp {
            app_id: "10086".into(),
            client_secret: "s3cr3t/+=".into(),
            project_id: None,
        };
        let shown = format!("{app:?}");
        assert!(!shown.contains("s3cr3t"));
        assert!(shown.contains("10086"));
    }
}
