//! Xiaomi request bodies, byte-exact (spec/xiaomi-push-api.md §3).
//!
//! Pure functions: a message and its targets in, a form-encoded body out. No I/O here, so the
//! encoding can be unit-tested against exact strings and benchmarked on its own.

use serde::Serialize;

use crate::domain::ClickAction;

/// Shown when the caller gives a blank title or description: Xiaomi rejects blank ones with 65011.
pub const DEFAULT_TITLE: &str = "a new message";

/// Longest title Xiaomi accepts: "length < 50" (spec §3.1).
pub const TITLE_MAX_CHARS: usize = 49;

/// Longest description Xiaomi accepts: "length < 128" (spec §3.1).
pub const DESCRIPTION_MAX_CHARS: usize = 127;

/// Most regIds one `/message/regid` request may carry (spec §3.1, §6.4); callers chunk.
pub const MAX_REGIDS_PER_REQUEST: usize = 1000;

/// `notify_type=-1`: default sound, vibration and lights (spec §3.1).
const NOTIFY_TYPE_DEFAULT_ALL: i32 = -1;

/// One vendor certificate's credentials as Xiaomi sees them.
#[derive(Clone, PartialEq, Eq)]
pub struct XiaomiApp {
    /// `restricted_package_name`: the Android package the AppSecret belongs to.
    pub package_name: String,
    /// Sent only in `Authorization: key=…`; never logged, never printed by `Debug`.
    pub app_secret: String,
}

impl std::fmt::Debug for XiaomiApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XiaomiApp")
            .field("package_name", &self.package_name)
            .field("app_secret", &"<redacted>")
            .finish()
    }
}

/// One notification's content; `Eq + Hash` so a sender can group recipients of identical content
/// into one `/v3/message/regid` request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct XiaomiMessage {
    /// Raw text; [`regid_form`] defaults a blank one and cuts it to [`TITLE_MAX_CHARS`].
    pub title: String,
    /// Raw text; defaulted when blank and cut to [`DESCRIPTION_MAX_CHARS`].
    pub description: String,
    /// Same id ⇒ notifications replace each other in the tray (spec §3.1).
    pub notify_id: i32,
    /// `extra.channel_id`: the console-registered category that decides 私信/公信 (spec §5.2).
    pub channel_id: Option<String>,
    /// `extra.notify_effect` 1 / 2 (+`extra.intent_uri`) / 3 (+`extra.web_uri`).
    pub click: ClickAction,
    /// `extra.ext`; the app reads it with `getExtra().get("ext")` (spec §3.3).
    pub ext: Option<String>,
    /// `payload`; the app reads it with `getContent()`.
    pub payload: Option<String>,
    /// `extra.callback*`: where Xiaomi posts delivery receipts, when the gateway has a public
    /// URL (spec §5.4).
    pub callback: Option<ReceiptCallback>,
}

/// Receipts pushgate asks for: delivered (1) + clicked (2) — together type 3, which "already
/// includes 1 and 2" — and target invalid (16): 3 + 16 = 19 (spec §5.4, [S21]).
pub const CALLBACK_TYPE: &str = "19";

/// Where and with what Xiaomi calls back for one notification.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReceiptCallback {
    /// `extra.callback`: `<public URL>/v1/receipts/xiaomi/<certificate id>`.
    pub url: String,
    /// `extra.callback.param` (≤ 64 bytes), echoed in every receipt: the certificate's receipt
    /// secret. Never logged (`Debug` redacts it).
    pub param: String,
}

impl std::fmt::Debug for ReceiptCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptCallback")
            .field("url", &self.url)
            .field("param", &"<redacted>")
            .finish()
    }
}

impl XiaomiMessage {
    /// A stable, non-negative `notify_id` for a conversation: 64-bit FNV-1a of the key, the two
    /// halves xor-folded and masked into `0..=i32::MAX`. Stable across processes and versions, so
    /// a restart keeps replacing the same tray entry.
    pub fn notify_id_for(conversation_key: &str) -> i32 {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = conversation_key
            .bytes()
            .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        let folded = ((hash >> 32) ^ (hash & 0xffff_ffff)) & 0x7fff_ffff;
        // The mask keeps 31 bits, so the value always fits.
        i32::try_from(folded).unwrap_or(0)
    }
}

/// Cuts `text` to at most `max` units, counting UTF-16 code units, never splitting a char.
///
/// Xiaomi documents the limits in characters ("each Chinese or Latin char counts 1", spec §3.1).
/// Its server is Java, where `String.length()` counts UTF-16 units, so an emoji may count 2
/// (UNCONFIRMED). Counting UTF-16 units is safe under both readings: for text in the Basic
/// Multilingual Plane (all CJK, Latin) it equals the char count; astral chars only cut earlier.
pub fn truncate_chars(text: &str, max: usize) -> &str {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &text[..at];
        }
    }
    text
}

/// The title as it goes on the wire: defaulted when blank, cut to Xiaomi's limit.
pub fn wire_title(msg: &XiaomiMessage) -> &str {
    non_blank_or_default(&msg.title, TITLE_MAX_CHARS)
}

/// The description as it goes on the wire: defaulted when blank, cut to Xiaomi's limit.
pub fn wire_description(msg: &XiaomiMessage) -> &str {
    non_blank_or_default(&msg.description, DESCRIPTION_MAX_CHARS)
}

fn non_blank_or_default(text: &str, max: usize) -> &str {
    if text.trim().is_empty() {
        DEFAULT_TITLE
    } else {
        truncate_chars(text, max)
    }
}

/// `(notify_effect, extra key, extra value)` for a click action (spec §3.2).
fn click_extras(click: &ClickAction) -> (&'static str, Option<(&'static str, &str)>) {
    match click {
        ClickAction::OpenApp => ("1", None),
        ClickAction::OpenActivity { intent_uri } => ("2", Some(("intent_uri", intent_uri))),
        ClickAction::OpenUrl { url } => ("3", Some(("web_uri", url))),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// Body for `POST /v3/message/regid`: one message to up to 1000 regIds of one package.
///
/// Field order follows the Java SDK (spec §3.4); empty optional fields are omitted (§3.5).
pub fn regid_form(app: &XiaomiApp, msg: &XiaomiMessage, regids: &[&str]) -> String {
    let notify_id = msg.notify_id.to_string();
    let notify_type = NOTIFY_TYPE_DEFAULT_ALL.to_string();
    let (effect, uri) = click_extras(&msg.click);

    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(14);
    pairs.push(("restricted_package_name", &app.package_name));
    if let Some(payload) = non_empty(&msg.payload) {
        pairs.push(("payload", payload));
    }
    pairs.push(("title", wire_title(msg)));
    pairs.push(("description", wire_description(msg)));
    pairs.push(("notify_type", &notify_type));
    pairs.push(("pass_through", "0"));
    pairs.push(("notify_id", &notify_id));
    pairs.push(("extra.notify_effect", effect));
    match uri {
        Some(("intent_uri", v)) => pairs.push(("extra.intent_uri", v)),
        Some((_, v)) => pairs.push(("extra.web_uri", v)),
        None => {}
    }
    if let Some(channel) = non_empty(&msg.channel_id) {
        pairs.push(("extra.channel_id", channel));
    }
    if let Some(ext) = non_empty(&msg.ext) {
        pairs.push(("extra.ext", ext));
    }
    if let Some(cb) = &msg.callback {
        pairs.push(("extra.callback", &cb.url));
        pairs.push(("extra.callback.param", &cb.param));
        pairs.push(("extra.callback.type", CALLBACK_TYPE));
    }
    // The regIds are encoded straight into the body, each comma as `%2C` (no joined copy).
    let targets_len: usize = regids.iter().map(|r| r.len() + 3).sum();
    let mut body = String::with_capacity(256 + targets_len);
    append_pairs(&mut body, &pairs);
    body.push_str("&registration_id=");
    for (i, regid) in regids.iter().enumerate() {
        if i > 0 {
            body.push_str("%2C");
        }
        append_encoded(&mut body, regid);
    }
    body
}

/// Body for `POST /v2/multi_messages/regids`: a different message per regId (spec §3.6).
///
/// `messages` is a JSON array whose `extra` is a nested object **without** the `extra.` prefix;
/// `time_to_send=0` means now.
pub fn multi_form(app: &XiaomiApp, items: &[(&str, &XiaomiMessage)]) -> String {
    let messages: Vec<TargetedJson<'_>> = items
        .iter()
        .map(|(regid, msg)| TargetedJson {
            target: regid,
            message: MessageJson::new(app, msg),
        })
        .collect();
    // Serialising plain strings and integers cannot fail; fall back to an empty array anyway.
    let json = serde_json::to_string(&messages).unwrap_or_else(|_| "[]".to_owned());
    encode_pairs(&[("messages", json.as_str()), ("time_to_send", "0")])
}

fn encode_pairs(pairs: &[(&str, &str)]) -> String {
    let mut body = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    append_pairs(&mut body, pairs);
    body
}

/// `pairs` as `application/x-www-form-urlencoded` (the WHATWG serializer, as
/// serde_urlencoded writes it), appended to `out`.
fn append_pairs(out: &mut String, pairs: &[(&str, &str)]) {
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        append_encoded(out, k);
        out.push('=');
        append_encoded(out, v);
    }
}

/// Appends `s` form-encoded: ASCII letters, digits and `*-._` as they are, a space as `+`,
/// every other byte as `%XX` (upper-case hex). Runs of bytes kept as they are are copied at
/// once: a body carries up to a thousand 64-character regIds, and the byte-at-a-time
/// serializer was a tenth of a batch send's CPU.
fn append_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            continue;
        }
        // `start..i` holds only ASCII bytes kept as they are, so it is a whole `str`.
        out.push_str(s.get(start..i).unwrap_or_default());
        if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

/// One element of the `messages` array (Java SDK `TargetedMessage` JSON, spec §3.6).
#[derive(Serialize)]
struct TargetedJson<'a> {
    target: &'a str,
    message: MessageJson<'a>,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a str>,
    title: &'a str,
    description: &'a str,
    notify_type: i32,
    notify_id: i32,
    pass_through: i32,
    restricted_package_name: &'a str,
    extra: ExtraJson<'a>,
}

impl<'a> MessageJson<'a> {
    fn new(app: &'a XiaomiApp, msg: &'a XiaomiMessage) -> Self {
        let (effect, uri) = click_extras(&msg.click);
        let (intent_uri, web_uri) = match uri {
            Some(("intent_uri", v)) => (Some(v), None),
            Some((_, v)) => (None, Some(v)),
            None => (None, None),
        };
        MessageJson {
            payload: non_empty(&msg.payload),
            title: wire_title(msg),
            description: wire_description(msg),
            notify_type: NOTIFY_TYPE_DEFAULT_ALL,
            notify_id: msg.notify_id,
            pass_through: 0,
            restricted_package_name: &app.package_name,
            extra: ExtraJson {
                notify_effect: effect,
                intent_uri,
                web_uri,
                channel_id: non_empty(&msg.channel_id),
                ext: non_empty(&msg.ext),
                callback: msg.callback.as_ref().map(|c| c.url.as_str()),
                callback_param: msg.callback.as_ref().map(|c| c.param.as_str()),
                callback_type: msg.callback.as_ref().map(|_| CALLBACK_TYPE),
            },
        }
    }
}

#[derive(Serialize)]
struct ExtraJson<'a> {
    notify_effect: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    intent_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    web_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ext: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback: Option<&'a str>,
    /// Nested extras drop only the `extra.` prefix (spec §3.6): `callback.param` keeps its dot.
    #[serde(rename = "callback.param", skip_serializing_if = "Option::is_none")]
    callback_param: Option<&'a str>,
    #[serde(rename = "callback.type", skip_serializing_if = "Option::is_none")]
    callback_type: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_encoder_writes_what_serde_urlencoded_writes() {
        let values = [
            "",
            "plain",
            "a b+c&d=e%f",
            "*-._~!'()",
            "中文 title ✓",
            "é",
            "{\"k\":[1,2]}\n\t\u{0}",
            "lt0000000012QQQQ/+=",
        ];
        for v in values {
            let pairs = [("key.with space", v), ("second", v)];
            assert_eq!(
                encode_pairs(&pairs),
                serde_urlencoded::to_string(pairs).unwrap(),
                "{v:?}"
            );
        }
    }

    fn app() -> XiaomiApp {
        XiaomiApp {
            package_name: "com.example.chat".to_owned(),
            app_secret: "c2VjcmV0c2VjcmV0c2VjcmV0==".to_owned(),
        }
    }

    fn msg() -> XiaomiMessage {
        XiaomiMessage {
            title: "Alice".to_owned(),
            description: "hi there".to_owned(),
            notify_id: 7,
            channel_id: Some("101556".to_owned()),
            click: ClickAction::OpenApp,
            ext: Some("{\"conv\":\"42\"}".to_owned()),
            payload: None,
            callback: None,
        }
    }

    #[test]
    fn regid_form_is_byte_exact() {
        let body = regid_form(&app(), &msg(), &["regA", "regB"]);
        assert_eq!(
            body,
            "restricted_package_name=com.example.chat&title=Alice&description=hi+there\
             &notify_type=-1&pass_through=0&notify_id=7&extra.notify_effect=1\
             &extra.channel_id=101556&extra.ext=%7B%22conv%22%3A%2242%22%7D\
             &registration_id=regA%2CregB"
        );
    }

    #[test]
    fn regid_form_click_variants_and_payload() {
        let mut m = msg();
        m.channel_id = None;
        m.ext = None;
        m.payload = Some("p=1&q".to_owned());
        m.click = ClickAction::OpenUrl {
            url: "https://e.x/a?b=c".to_owned(),
        };
        assert_eq!(
            regid_form(&app(), &m, &["r"]),
            "restricted_package_name=com.example.chat&payload=p%3D1%26q&title=Alice\
             &description=hi+there&notify_type=-1&pass_through=0&notify_id=7\
             &extra.notify_effect=3&extra.web_uri=https%3A%2F%2Fe.x%2Fa%3Fb%3Dc&registration_id=r"
        );
        m.click = ClickAction::OpenActivity {
            intent_uri: "intent:#Intent;end".to_owned(),
        };
        let body = regid_form(&app(), &m, &["r"]);
        assert!(body.contains("&extra.notify_effect=2&extra.intent_uri=intent%3A%23Intent%3Bend&"));
        assert!(!body.contains("web_uri"));
    }

    #[test]
    fn chinese_and_emoji_are_utf8_percent_encoded() {
        let mut m = msg();
        m.title = "新消息😀".to_owned();
        let body = regid_form(&app(), &m, &["r"]);
        assert!(body.contains("title=%E6%96%B0%E6%B6%88%E6%81%AF%F0%9F%98%80&"));
    }

    #[test]
    fn blank_title_and_description_get_the_default() {
        let mut m = msg();
        m.title = "  \t".to_owned();
        m.description = String::new();
        assert_eq!(wire_title(&m), DEFAULT_TITLE);
        assert_eq!(wire_description(&m), DEFAULT_TITLE);
    }

    #[test]
    fn truncation_counts_chars_not_bytes() {
        let long_cjk: String = "消".repeat(60);
        let cut = truncate_chars(&long_cjk, TITLE_MAX_CHARS);
        assert_eq!(cut.chars().count(), 49);
        assert_eq!(cut.len(), 49 * 3);
        let ascii = "a".repeat(200);
        assert_eq!(truncate_chars(&ascii, DESCRIPTION_MAX_CHARS).len(), 127);
        assert_eq!(truncate_chars("短", 49), "短");
        // An astral emoji counts two UTF-16 units and is never split.
        let emoji = "😀".repeat(30);
        let cut = truncate_chars(&emoji, TITLE_MAX_CHARS);
        assert_eq!(cut.chars().count(), 24);
        assert!(cut.chars().all(|c| c == '😀'));
        let mut m = msg();
        m.title = "标".repeat(50);
        assert_eq!(wire_title(&m).chars().count(), 49);
    }

    #[test]
    fn multi_form_nests_extras_without_prefix() {
        let mut second = msg();
        second.title = "Bob".to_owned();
        second.notify_id = 8;
        second.ext = None;
        second.click = ClickAction::OpenActivity {
            intent_uri: "intent:x".to_owned(),
        };
        let body = multi_form(&app(), &[("regA", &msg()), ("regB", &second)]);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).expect("form");
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1], ("time_to_send".to_owned(), "0".to_owned()));
        assert_eq!(pairs[0].0, "messages");
        assert_eq!(
            pairs[0].1,
            r#"[{"target":"regA","message":{"title":"Alice","description":"hi there","notify_type":-1,"notify_id":7,"pass_through":0,"restricted_package_name":"com.example.chat","extra":{"notify_effect":"1","channel_id":"101556","ext":"{\"conv\":\"42\"}"}}},{"target":"regB","message":{"title":"Bob","description":"hi there","notify_type":-1,"notify_id":8,"pass_through":0,"restricted_package_name":"com.example.chat","extra":{"notify_effect":"2","intent_uri":"intent:x","channel_id":"101556"}}}]"#
        );
    }

    fn with_callback(mut m: XiaomiMessage) -> XiaomiMessage {
        m.callback = Some(ReceiptCallback {
            url: "https://push.example.com/v1/receipts/xiaomi/1001".to_owned(),
            param: "s3cr3t".to_owned(),
        });
        m
    }

    #[test]
    fn the_receipt_callback_goes_in_extras_with_types_19() {
        let body = regid_form(&app(), &with_callback(msg()), &["r"]);
        assert!(
            body.ends_with(
                "&extra.ext=%7B%22conv%22%3A%2242%22%7D\
                 &extra.callback=https%3A%2F%2Fpush.example.com%2Fv1%2Freceipts%2Fxiaomi%2F1001\
                 &extra.callback.param=s3cr3t&extra.callback.type=19&registration_id=r"
            ),
            "{body}"
        );
        let body = multi_form(&app(), &[("r", &with_callback(msg()))]);
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&body).expect("form");
        let messages: serde_json::Value = serde_json::from_str(&pairs[0].1).expect("json");
        let extra = &messages[0]["message"]["extra"];
        assert_eq!(
            extra["callback"],
            "https://push.example.com/v1/receipts/xiaomi/1001"
        );
        assert_eq!(extra["callback.param"], "s3cr3t");
        assert_eq!(extra["callback.type"], "19");
        assert!(!format!("{:?}", with_callback(msg())).contains("s3cr3t"));
    }

    #[test]
    fn notify_id_is_stable_and_non_negative() {
        let a = XiaomiMessage::notify_id_for("c2c_alice_bob");
        assert_eq!(a, XiaomiMessage::notify_id_for("c2c_alice_bob"));
        assert_ne!(a, XiaomiMessage::notify_id_for("group_42"));
        for key in ["", "a", "group_@TGS#1", "很长的会话", "\u{0}"] {
            assert!(XiaomiMessage::notify_id_for(key) >= 0);
        }
        // Pinned so a refactor cannot silently move every tray entry.
        assert_eq!(XiaomiMessage::notify_id_for(""), 0x4FD0_BFC1);
    }

    #[test]
    fn debug_redacts_the_secret() {
        let shown = format!("{:?}", app());
        assert!(!shown.contains("c2VjcmV0"));
        assert!(shown.contains("<redacted>"));
    }
}
