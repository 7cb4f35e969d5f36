//! Tencent IM message bodies (spec/tim-offline-push.md §1.2, §1.3, §2): the fields of
//! `sendmsg` / `batchsendmsg`, their error codes, and the notification they make. Pure: takes a
//! parsed JSON document, returns values or a `TimError` with Tencent's code.

use super::codes::{self as code, TimError};
use crate::domain::global_push_fields::{ApnsInfo, GlobalPushFields};
use crate::gateway::SendRequest;
use serde_json::{Map, Value};
use std::hash::{Hash, Hasher};

/// Largest message, in bytes (§1.2: 12 KB now; older docs said 8 KB).
pub const MAX_MESSAGE_BYTES: usize = 12 * 1024;
/// Targets of one batchsendmsg / query_online_status (§1.3, §5.2).
pub const MAX_TARGETS: usize = 500;
/// Longest MsgLifeTime, seconds (§1.2: 7 days).
pub const MAX_LIFE_TIME_SECS: u64 = 604_800;

/// One `MsgBody` element, reduced to what the notification needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    Text(String),
    Location,
    Face,
    Sound,
    Image,
    File,
    Video,
    /// `Desc` and `Ext` are the legacy push fields of a custom element (§2.1).
    Custom {
        desc: Option<String>,
        ext: Option<String>,
    },
}

impl Element {
    /// The element's part of the default push text (§2.1). The placeholders are the Chinese
    /// ones of the zh docs and the iOS SDK doc; video has none documented, `[视频]` follows them.
    pub fn push_text(&self) -> &str {
        match self {
            Element::Text(t) => t,
            Element::Location => "[位置]",
            Element::Face => "[表情]",
            Element::Sound => "[语音]",
            Element::Image => "[图片]",
            Element::File => "[文件]",
            Element::Video => "[视频]",
            Element::Custom { desc, .. } => desc.as_deref().unwrap_or(""),
        }
    }
}

/// `OfflinePushInfo` (§2.2), the fields that reach a Xiaomi notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OfflinePushInfo {
    /// `PushFlag=1`: no offline push for this message.
    pub push_disabled: bool,
    pub title: Option<String>,
    pub desc: Option<String>,
    pub ext: Option<String>,
    /// `AndroidInfo.XiaoMiChannelID`; non-empty overrides the certificate's channel.
    pub xiaomi_channel_id: Option<String>,
    /// `AndroidInfo.{HuaWeiCategory, HuaWeiImportance, HuaWeiChannelID, HonorImportance}`.
    pub hw: crate::domain::hw_push_fields::HwPushFields,
    /// `AndroidInfo.{OPPOChannelID, OPPOCategory, VIVOClassification, VIVOCategory,
    /// MeiZuNoticeMsgType}`.
    pub ovm: crate::domain::vendor_fields::OvmPushFields,
    /// FCM and APNs fields (`AndroidInfo.GoogleChannelID`, `Sound`, `ApnsInfo.*`).
    pub global: GlobalPushFields,
}

/// The fields of a send request other than `To_Account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimMessage {
    pub from: Option<String>,
    pub random: u32,
    pub seq: Option<u32>,
    /// `None`: the default (7 days). `Some(0)`: online users only.
    pub life_time: Option<u64>,
    pub elements: Vec<Element>,
    pub offline_push: Option<OfflinePushInfo>,
    /// Hash of `MsgBody` as sent, for duplicate suppression.
    pub content_hash: u64,
}

impl TimMessage {
    /// Reads the common fields of sendmsg / batchsendmsg in the order a client would fix them.
    pub fn parse(body: &Map<String, Value>) -> Result<TimMessage, TimError> {
        let from = match body.get("From_Account") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if valid_account(s) => Some(s.clone()),
            Some(_) => {
                return Err(TimError::new(
                    code::FROM_ACCOUNT_INVALID,
                    "From_Account must be a non-empty string account",
                ))
            }
        };
        let random = match body.get("MsgRandom").and_then(Value::as_u64) {
            Some(r) => u32::try_from(r).map_err(|_| msg_random_error())?,
            None => return Err(msg_random_error()),
        };
        let seq =
            match body.get("MsgSeq") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().and_then(|s| u32::try_from(s).ok()).ok_or_else(
                    || TimError::new(code::MSG_SEQ_INVALID, "MsgSeq must be a uint32"),
                )?),
            };
        let life_time = match body.get("MsgLifeTime") {
            None | Some(Value::Null) => None,
            Some(v) if v.is_i64() || v.is_u64() => match v.as_u64() {
                Some(s) if s <= MAX_LIFE_TIME_SECS => Some(s),
                _ => {
                    return Err(TimError::new(
                        code::LIFE_TIME_TOO_LONG,
                        format!("MsgLifeTime must be between 0 and {MAX_LIFE_TIME_SECS} seconds"),
                    ))
                }
            },
            Some(_) => {
                return Err(TimError::new(
                    code::LIFE_TIME_NOT_INT,
                    "MsgLifeTime must be an integer",
                ))
            }
        };
        if let Some(v) = body.get("SyncOtherMachine") {
            if !(v.is_i64() || v.is_u64() || v.is_null()) {
                return Err(TimError::new(
                    code::SYNC_OTHER_MACHINE_INVALID,
                    "SyncOtherMachine must be an integer",
                ));
            }
        }
        let raw_body = body.get("MsgBody");
        let elements = parse_msg_body(raw_body)?;
        let offline_push = parse_offline_push_info(body.get("OfflinePushInfo"))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        raw_body.map(Value::to_string).hash(&mut h);
        Ok(TimMessage {
            from,
            random,
            seq,
            life_time,
            elements,
            offline_push,
            content_hash: h.finish(),
        })
    }

    /// The notification by Tencent's rules: Title else the default title (applied later by
    /// `PushText`); Desc else the elements' texts; OfflinePushInfo present ⇒ the custom
    /// element's legacy Ext is ignored (§2.1); custom-only without any Desc ⇒ no push.
    /// What the gateway is asked to send, by Tencent's push rules (§2.1–2.3); the recipients
    /// and sender are the caller's to fill in. `text` is the elements' texts joined in order, no
    /// separator (the online text and the default notification body); `nothing_to_show` marks a
    /// custom-only message without any Desc (not pushed).
    pub fn push_plan(&self) -> SendRequest {
        let text: String = self.elements.iter().map(Element::push_text).collect();
        let opi = self.offline_push.clone().unwrap_or_default();
        let desc = opi.desc.filter(|d| !d.is_empty());
        let custom_ext = self.elements.iter().find_map(|e| match e {
            Element::Custom { ext, .. } => ext.clone(),
            _ => None,
        });
        let ext = match &self.offline_push {
            Some(_) => opi.ext.filter(|e| !e.is_empty()),
            None => custom_ext.filter(|e| !e.is_empty()),
        };
        let custom_only = !self.elements.is_empty()
            && self
                .elements
                .iter()
                .all(|e| matches!(e, Element::Custom { .. }));
        let nothing_to_show = desc.is_none() && custom_only && text.trim().is_empty();
        SendRequest {
            text,
            title: opi.title.filter(|t| !t.is_empty()),
            desc,
            ext,
            channel_id: opi.xiaomi_channel_id.filter(|c| !c.is_empty()),
            hw: opi.hw,
            ovm: opi.ovm,
            global: opi.global,
            push_disabled: opi.push_disabled,
            online_only: self.life_time == Some(0),
            nothing_to_show,
            ..SendRequest::default()
        }
    }

    /// The duplicate-suppression key of this message to one recipient: (sender, recipient,
    /// MsgSeq, MsgRandom, content), as the newer sendmsg page describes (§1.2).
    pub fn dedupe_key(&self, from: &str, to: &str) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (from, to, self.seq, self.random, self.content_hash).hash(&mut h);
        h.finish()
    }
}

fn msg_random_error() -> TimError {
    TimError::new(code::MSG_RANDOM_INVALID, "MsgRandom must be a uint32")
}

/// An account id as TIM and our registry accept it: non-empty, at most 128 bytes, no control
/// characters (`domain::ids::check_id`).
pub fn valid_account(s: &str) -> bool {
    crate::domain::ids::check_id("account", s).is_ok()
}

/// `To_Account` of sendmsg: one string.
pub fn parse_to_account(body: &Map<String, Value>) -> Result<String, TimError> {
    match body.get("To_Account") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(TimError::new(
            code::TO_ACCOUNT_INVALID,
            "To_Account must be a non-empty string",
        )),
    }
}

/// `To_Account` of batchsendmsg / query_online_status: 1..=500 strings, duplicates dropped
/// (one notification per account). `missing_code` is the command's code for an absent or empty
/// list (90003 for batchsendmsg, 90001 for the status query, §5.2).
pub fn parse_to_accounts(
    body: &Map<String, Value>,
    missing_code: u32,
) -> Result<Vec<String>, TimError> {
    let list = match body.get("To_Account") {
        None | Some(Value::Null) => {
            return Err(TimError::new(missing_code, "To_Account is required"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(TimError::new(
                code::TO_ACCOUNT_INVALID,
                "To_Account must be an array of strings",
            ))
        }
    };
    if list.is_empty() {
        return Err(TimError::new(missing_code, "To_Account must not be empty"));
    }
    if list.len() > MAX_TARGETS {
        return Err(TimError::new(
            code::TOO_MANY_TARGETS,
            format!(
                "To_Account has {} accounts; at most {MAX_TARGETS}",
                list.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for v in list {
        let Value::String(s) = v else {
            return Err(TimError::new(
                code::TO_ACCOUNT_INVALID,
                "every To_Account entry must be a string",
            ));
        };
        if seen.insert(s.as_str()) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// `MsgBody`: a non-empty array of `{MsgType, MsgContent}`, each content with the field types of
/// the message format (§2.1); at most one TIMCustomElem. Absent fields are tolerated, fields of a
/// wrong type are not.
pub fn parse_msg_body(v: Option<&Value>) -> Result<Vec<Element>, TimError> {
    let list = match v {
        None | Some(Value::Null) => {
            return Err(TimError::new(code::MSG_BODY_INVALID, "MsgBody is required"))
        }
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(TimError::new(
                code::MSG_BODY_NOT_ARRAY,
                "MsgBody must be an array",
            ))
        }
    };
    if list.is_empty() {
        return Err(TimError::new(
            code::MSG_BODY_INVALID,
            "MsgBody must hold at least one element",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, el) in list.iter().enumerate() {
        let e = parse_element(el)
            .map_err(|m| TimError::new(code::MSG_BODY_INVALID, format!("MsgBody[{i}]: {m}")))?;
        out.push(e);
    }
    if out
        .iter()
        .filter(|e| matches!(e, Element::Custom { .. }))
        .count()
        > 1
    {
        return Err(TimError::new(
            code::MSG_BODY_INVALID,
            "MsgBody may hold at most one TIMCustomElem",
        ));
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Num,
    Array,
}

fn check_fields(c: &Map<String, Value>, fields: &[(&str, Kind)]) -> Result<(), String> {
    for (name, kind) in fields {
        let Some(v) = c.get(*name) else { continue };
        let ok = match kind {
            Kind::Str => v.is_string(),
            Kind::Int => v.is_i64() || v.is_u64(),
            Kind::Num => v.is_number(),
            Kind::Array => v.is_array(),
        };
        if !ok {
            let want = match kind {
                Kind::Str => "a string",
                Kind::Int => "an integer",
                Kind::Num => "a number",
                Kind::Array => "an array",
            };
            return Err(format!("MsgContent.{name} must be {want}"));
        }
    }
    Ok(())
}

fn opt_string(c: &Map<String, Value>, name: &str) -> Option<String> {
    c.get(name).and_then(Value::as_str).map(str::to_string)
}

fn parse_element(el: &Value) -> Result<Element, String> {
    let Value::Object(el) = el else {
        return Err("an element must be an object {MsgType, MsgContent}".into());
    };
    let Some(ty) = el.get("MsgType").and_then(Value::as_str) else {
        return Err("MsgType must be a string".into());
    };
    let Some(Value::Object(c)) = el.get("MsgContent") else {
        return Err("MsgContent must be an object".into());
    };
    use Kind::*;
    match ty {
        "TIMTextElem" => match c.get("Text") {
            Some(Value::String(t)) => Ok(Element::Text(t.clone())),
            _ => Err("MsgContent.Text must be a string".into()),
        },
        "TIMLocationElem" => {
            check_fields(c, &[("Desc", Str), ("Latitude", Num), ("Longitude", Num)])?;
            Ok(Element::Location)
        }
        "TIMFaceElem" => {
            check_fields(c, &[("Index", Int), ("Data", Str)])?;
            Ok(Element::Face)
        }
        "TIMCustomElem" => {
            check_fields(
                c,
                &[("Data", Str), ("Desc", Str), ("Ext", Str), ("Sound", Str)],
            )?;
            Ok(Element::Custom {
                desc: opt_string(c, "Desc"),
                ext: opt_string(c, "Ext"),
            })
        }
        "TIMSoundElem" => {
            check_fields(
                c,
                &[
                    ("Url", Str),
                    ("UUID", Str),
                    ("Size", Int),
                    ("Second", Int),
                    ("Download_Flag", Int),
                ],
            )?;
            Ok(Element::Sound)
        }
        "TIMImageElem" => {
            check_fields(
                c,
                &[
                    ("UUID", Str),
                    ("ImageFormat", Int),
                    ("ImageInfoArray", Array),
                ],
            )?;
            Ok(Element::Image)
        }
        "TIMFileElem" => {
            check_fields(
                c,
                &[
                    ("Url", Str),
                    ("UUID", Str),
                    ("FileSize", Int),
                    ("FileName", Str),
                    ("Download_Flag", Int),
                ],
            )?;
            Ok(Element::File)
        }
        "TIMVideoFileElem" => {
            check_fields(
                c,
                &[
                    ("VideoUrl", Str),
                    ("VideoUUID", Str),
                    ("VideoSize", Int),
                    ("VideoSecond", Int),
                    ("VideoFormat", Str),
                    ("VideoDownloadFlag", Int),
                    ("ThumbUrl", Str),
                    ("ThumbUUID", Str),
                    ("ThumbSize", Int),
                    ("ThumbWidth", Int),
                    ("ThumbHeight", Int),
                    ("ThumbFormat", Str),
                    ("ThumbDownloadFlag", Int),
                ],
            )?;
            Ok(Element::Video)
        }
        other => Err(format!("unknown MsgType {other:?}")),
    }
}

/// `OfflinePushInfo` (§2.2): known fields type-checked, the others (ApnsInfo, other vendors'
/// AndroidInfo keys) accepted and ignored.
pub fn parse_offline_push_info(v: Option<&Value>) -> Result<Option<OfflinePushInfo>, TimError> {
    let o = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(opi_error("OfflinePushInfo must be an object")),
    };
    let push_disabled = match o.get("PushFlag") {
        None | Some(Value::Null) => false,
        Some(v) => match v.as_u64() {
            Some(0) => false,
            Some(1) => true,
            _ => {
                return Err(opi_error(
                    "OfflinePushInfo.PushFlag must be 0 (push) or 1 (no push)",
                ))
            }
        },
    };
    let s = |o: &Map<String, Value>, name: &str, path: &str| match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(opi_error(format!("{path} must be a string"))),
    };
    let title = s(o, "Title", "OfflinePushInfo.Title")?;
    let desc = s(o, "Desc", "OfflinePushInfo.Desc")?;
    let ext = s(o, "Ext", "OfflinePushInfo.Ext")?;
    let (xiaomi_channel_id, hw, ovm) = match o.get("AndroidInfo") {
        None | Some(Value::Null) => (None, Default::default(), Default::default()),
        Some(Value::Object(a)) => (
            s(
                a,
                "XiaoMiChannelID",
                "OfflinePushInfo.AndroidInfo.XiaoMiChannelID",
            )?,
            crate::domain::hw_push_fields::HwPushFields::from_tim_android_info(a)
                .map_err(|e| opi_error(format!("{}: {}", e.field.v4(), e.message)))?,
            crate::domain::vendor_fields::OvmPushFields::from_tim_android_info(a)
                .map_err(opi_error)?,
        ),
        Some(_) => return Err(opi_error("OfflinePushInfo.AndroidInfo must be an object")),
    };
    let global = parse_global_fields(o)?;
    Ok(Some(OfflinePushInfo {
        push_disabled,
        title,
        desc,
        ext,
        xiaomi_channel_id,
        hw,
        ovm,
        global,
    }))
}

fn opi_error(info: impl Into<String>) -> TimError {
    TimError::new(code::BODY_INVALID, info)
}

/// The FCM and APNs fields of an `OfflinePushInfo`: `AndroidInfo.{GoogleChannelID, Sound}` and
/// `ApnsInfo.{Title, SubTitle, Sound, BadgeMode, MutableContent}` (§2.2). `""` means not set.
fn parse_global_fields(opi: &Map<String, Value>) -> Result<GlobalPushFields, TimError> {
    let obj = |name: &str| match opi.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(opi_error(format!(
            "OfflinePushInfo.{name} must be an object"
        ))),
    };
    let string = |o: &Map<String, Value>, path: &str, name: &str| match o.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(opi_error(format!(
            "OfflinePushInfo.{path}.{name} must be a string"
        ))),
    };
    let flag = |o: &Map<String, Value>, name: &str| match o.get(name) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_u64() {
            Some(n @ 0..=1) => Ok(n as u8),
            _ => Err(opi_error(format!(
                "OfflinePushInfo.ApnsInfo.{name} must be 0 or 1"
            ))),
        },
    };
    let mut out = GlobalPushFields::default();
    if let Some(a) = obj("AndroidInfo")? {
        out.google_channel_id = string(a, "AndroidInfo", "GoogleChannelID")?;
        out.sound = string(a, "AndroidInfo", "Sound")?;
    }
    if let Some(a) = obj("ApnsInfo")? {
        out.apns = ApnsInfo {
            title: string(a, "ApnsInfo", "Title")?,
            sub_title: string(a, "ApnsInfo", "SubTitle")?,
            sound: string(a, "ApnsInfo", "Sound")?,
            badge_mode: flag(a, "BadgeMode")?,
            mutable_content: flag(a, "MutableContent")?,
        };
    }
    Ok(out.normalized())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    fn msg(v: Value) -> Result<TimMessage, TimError> {
        TimMessage::parse(&obj(v))
    }

    fn code_of(v: Value) -> u32 {
        msg(v).expect_err("refused").code
    }

    #[test]
    fn every_element_type_joins_in_order() {
        let m = msg(json!({
            "MsgRandom": 1287657,
            "MsgBody": [
                {"MsgType": "TIMTextElem", "MsgContent": {"Text": "你好 👋"}},
                {"MsgType": "TIMLocationElem", "MsgContent": {"Desc": "腾讯大厦", "Latitude": 113.93, "Longitude": 22.54}},
                {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "content"}},
                {"MsgType": "TIMSoundElem", "MsgContent": {"Url": "https://x/a.m4a", "UUID": "u", "Size": 1, "Second": 2, "Download_Flag": 2}},
                {"MsgType": "TIMImageElem", "MsgContent": {"UUID": "i", "ImageFormat": 1, "ImageInfoArray": []}},
                {"MsgType": "TIMFileElem", "MsgContent": {"Url": "https://x/f", "UUID": "f", "FileSize": 3, "FileName": "a.txt", "Download_Flag": 2}},
                {"MsgType": "TIMVideoFileElem", "MsgContent": {"VideoUrl": "https://x/v", "VideoUUID": "v", "VideoSize": 1, "VideoSecond": 5, "VideoFormat": "mp4", "VideoDownloadFlag": 2}},
                {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d", "Desc": "自定义", "Ext": "{\"a\":1}"}}
            ]
        }))
        .unwrap();
        let p = m.push_plan();
        assert_eq!(p.text, "你好 👋[位置][表情][语音][图片][文件][视频]自定义");
        assert_eq!(p.ext.as_deref(), Some("{\"a\":1}"));
        assert!(!p.nothing_to_show && !p.push_disabled && !p.online_only);
        assert_eq!(p.title, None);
    }

    #[test]
    fn offline_push_info_overrides() {
        let m = msg(json!({
            "MsgRandom": 7, "MsgLifeTime": 0,
            "MsgBody": [{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d", "Desc": "x", "Ext": "legacy"}}],
            "OfflinePushInfo": {"PushFlag": 1, "Title": "标题", "Desc": "描述", "Ext": "{\"entity\":{}}",
                "AndroidInfo": {"XiaoMiChannelID": "high_system", "Sound": "shake"}, "ApnsInfo": {"BadgeMode": 1}}
        }))
        .unwrap();
        let p = m.push_plan();
        assert_eq!(p.title.as_deref(), Some("标题"));
        assert_eq!(p.desc.as_deref(), Some("描述"));
        assert_eq!(p.ext.as_deref(), Some("{\"entity\":{}}"));
        assert_eq!(p.channel_id.as_deref(), Some("high_system"));
        assert!(p.push_disabled && p.online_only && !p.nothing_to_show);
    }

    #[test]
    fn custom_only_without_desc_is_not_pushed() {
        let body = json!([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d"}}]);
        let m = msg(json!({"MsgRandom": 1, "MsgBody": body})).unwrap();
        assert!(m.push_plan().nothing_to_show);
        let m = msg(json!({"MsgRandom": 1, "MsgBody": body, "OfflinePushInfo": {"Title": "t"}}))
            .unwrap();
        assert!(m.push_plan().nothing_to_show);
        let m = msg(json!({"MsgRandom": 1, "MsgBody": body, "OfflinePushInfo": {"Desc": "d"}}))
            .unwrap();
        assert!(!m.push_plan().nothing_to_show);
        // A custom element next to text is pushed with the text.
        let m = msg(json!({"MsgRandom": 1, "MsgBody": [
            {"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}},
            {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "d"}}]}))
        .unwrap();
        let p = m.push_plan();
        assert!(!p.nothing_to_show);
        assert_eq!(p.text, "hi");
    }

    #[test]
    fn codes_for_bad_fields() {
        let text = json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "x"}}]);
        assert_eq!(code_of(json!({"MsgBody": text})), 90005);
        assert_eq!(code_of(json!({"MsgRandom": "1", "MsgBody": text})), 90005);
        assert_eq!(code_of(json!({"MsgRandom": -1, "MsgBody": text})), 90005);
        assert_eq!(
            code_of(json!({"MsgRandom": 4294967296u64, "MsgBody": text})),
            90005
        );
        assert!(msg(json!({"MsgRandom": 4294967295u64, "MsgBody": text})).is_ok());
        assert_eq!(code_of(json!({"MsgRandom": 1})), 90002);
        assert_eq!(code_of(json!({"MsgRandom": 1, "MsgBody": []})), 90002);
        assert_eq!(code_of(json!({"MsgRandom": 1, "MsgBody": {}})), 90007);
        assert_eq!(code_of(json!({"MsgRandom": 1, "MsgBody": "x"})), 90007);
        for bad in [
            json!([1]),
            json!([{"MsgType": "TIMTextElem"}]),
            json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": 5}}]),
            json!([{"MsgType": "TIMNopeElem", "MsgContent": {}}]),
            json!([{"MsgType": "TIMFaceElem", "MsgContent": {"Index": "1"}}]),
            json!([{"MsgType": "TIMLocationElem", "MsgContent": {"Latitude": "n"}}]),
            json!([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": "a"}},
                   {"MsgType": "TIMCustomElem", "MsgContent": {"Data": "b"}}]),
        ] {
            assert_eq!(code_of(json!({"MsgRandom": 1, "MsgBody": bad})), 90002);
        }
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "MsgLifeTime": 604801})),
            90026
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "MsgLifeTime": -1})),
            90026
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "MsgLifeTime": "0"})),
            90044
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "MsgSeq": -3})),
            90004
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "SyncOtherMachine": "1"})),
            90031
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "From_Account": 3})),
            90008
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "OfflinePushInfo": {"PushFlag": 2}})),
            90010
        );
        assert_eq!(
            code_of(json!({"MsgRandom": 1, "MsgBody": text, "OfflinePushInfo": {"Title": 1}})),
            90010
        );
    }

    #[test]
    fn to_accounts() {
        let o = obj(json!({"To_Account": ["a", "b", "a"]}));
        assert_eq!(parse_to_accounts(&o, 90003).unwrap(), vec!["a", "b"]);
        let o = obj(json!({"To_Account": []}));
        assert_eq!(parse_to_accounts(&o, 90001).unwrap_err().code, 90001);
        let o = obj(json!({"To_Account": ["a", 1]}));
        assert_eq!(parse_to_accounts(&o, 90003).unwrap_err().code, 90003);
        let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
        let o = obj(json!({ "To_Account": many }));
        assert_eq!(parse_to_accounts(&o, 90003).unwrap_err().code, 90011);
        assert_eq!(
            parse_to_account(&obj(json!({"To_Account": ["a"]})))
                .unwrap_err()
                .code,
            90003
        );
    }

    #[test]
    fn dedupe_key_depends_on_every_part() {
        let text = |t: &str| json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": t}}]);
        let a = msg(json!({"MsgRandom": 1, "MsgBody": text("x")})).unwrap();
        let b = msg(json!({"MsgRandom": 1, "MsgBody": text("y")})).unwrap();
        let c = msg(json!({"MsgRandom": 2, "MsgBody": text("x")})).unwrap();
        let k = a.dedupe_key("f", "t");
        assert_eq!(k, a.clone().dedupe_key("f", "t"));
        assert_ne!(k, b.dedupe_key("f", "t"));
        assert_ne!(k, c.dedupe_key("f", "t"));
        assert_ne!(k, a.dedupe_key("g", "t"));
        assert_ne!(k, a.dedupe_key("f", "u"));
    }
    #[test]
    fn google_and_apns_fields_are_read_and_checked() {
        let f = parse_global_fields(&obj(json!({
            "AndroidInfo": {"GoogleChannelID": "im", "Sound": "ding", "XiaoMiChannelID": "x"},
            "ApnsInfo": {"Title": "T", "SubTitle": "S", "Sound": "a.caf", "BadgeMode": 1,
                         "MutableContent": 1, "Image": "u"}
        })))
        .expect("fields");
        assert_eq!(f.google_channel_id.as_deref(), Some("im"));
        assert_eq!(f.sound.as_deref(), Some("ding"));
        assert_eq!(
            f.apns,
            ApnsInfo {
                title: Some("T".into()),
                sub_title: Some("S".into()),
                sound: Some("a.caf".into()),
                badge_mode: 1,
                mutable_content: 1
            }
        );
        let err = |v: Value| {
            parse_global_fields(&obj(v))
                .expect_err("refused")
                .to_string()
        };
        assert!(err(json!({"ApnsInfo": {"MutableContent": 2}})).contains("MutableContent"));
        assert!(err(json!({"ApnsInfo": {"SubTitle": 1}})).contains("ApnsInfo.SubTitle"));
        assert!(err(json!({"AndroidInfo": {"GoogleChannelID": 5}})).contains("GoogleChannelID"));
        let blank = parse_global_fields(&obj(json!({"AndroidInfo": {"GoogleChannelID": ""}})))
            .expect("fields");
        assert_eq!(blank.google_channel_id, None);
    }
}
