//! Per-message overrides of a certificate's classification for OPPO, vivo and Meizu: Tencent's
//! `OfflinePushInfo.AndroidInfo.{OPPOChannelID, OPPOCategory, VIVOClassification, VIVOCategory,
//! MeiZuNoticeMsgType}` on /v4, and the same in snake_case under /v1's `offline_push`
//! (contract.md "More push services"). Empty or absent means "the certificate's setting".
//! OPPO's private-message template (`OPPOPrivateMsgTemplateId` with `OPPOPrivateTitleParameters`
//! and `OPPOPrivateContentParameters`, spec/vendors/README.md) rides here too.
//! The value lists are shared with the certificates' checks (`credentials::{oppo, vivo, meizu}`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::validate::FieldError;

/// OPPO's `category` values (spec/vendors/oppo.md §4): service, then content & marketing.
pub const OPPO_CATEGORIES: &[&str] = &[
    "IM",
    "ACCOUNT",
    "DEVICE_REMINDER",
    "ORDER",
    "TODO",
    "SUBSCRIPTION",
    "NEWS",
    "CONTENT",
    "MARKETING",
    "SOCIAL",
];
/// vivo's `category` values (spec/vendors/vivo.md §3): system, then operational.
pub const VIVO_CATEGORIES: &[&str] = &[
    "IM",
    "ACCOUNT",
    "TODO",
    "DEVICE_REMINDER",
    "ORDER",
    "SUBSCRIPTION",
    "NEWS",
    "CONTENT",
    "MARKETING",
    "SOCIAL",
];
/// Second-level classes of vivo system messages (`classification` 1), vivo.md §3.
pub const VIVO_SYSTEM_CATEGORIES: &[&str] = &[
    "IM",
    "ACCOUNT",
    "TODO",
    "DEVICE_REMINDER",
    "ORDER",
    "SUBSCRIPTION",
];
/// Second-level classes of vivo operational messages (`classification` 0), vivo.md §3.
pub const VIVO_OPERATIONAL_CATEGORIES: &[&str] = &["NEWS", "CONTENT", "MARKETING", "SOCIAL"];

/// Whether a vivo category belongs to the classification (vivo refuses a mismatch).
pub fn vivo_category_fits(classification: u8, category: &str) -> bool {
    if classification == 1 {
        VIVO_SYSTEM_CATEGORIES.contains(&category)
    } else {
        VIVO_OPERATIONAL_CATEGORIES.contains(&category)
    }
}

/// OPPO's `notify_level` values (§4): shade only, shade + lock screen + sound, + heads-up.
pub const OPPO_NOTIFY_LEVELS: &[u8] = &[1, 2, 16];

/// The OPPO, vivo and Meizu fields one message may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct OvmPushFields {
    /// OPPO `channel_id` (TIM `OPPOChannelID`).
    pub oppo_channel_id: Option<String>,
    /// OPPO `category` (TIM `OPPOCategory`).
    pub oppo_category: Option<String>,
    /// vivo `classification`: 0 operational, 1 system (TIM `VIVOClassification`).
    pub vivo_classification: Option<u8>,
    /// vivo `category` (TIM `VIVOCategory`).
    pub vivo_category: Option<String>,
    /// Meizu `noticeMsgType`: 0 public, 1 private (TIM `MeiZuNoticeMsgType`).
    pub meizu_notice_msg_type: Option<u8>,
    /// OPPO private-message template id (TIM `OPPOPrivateMsgTemplateId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oppo_private_msg_template_id: Option<String>,
    /// The template's title placeholders (TIM `OPPOPrivateTitleParameters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oppo_private_title_parameters: Option<BTreeMap<String, String>>,
    /// The template's content placeholders (TIM `OPPOPrivateContentParameters`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oppo_private_content_parameters: Option<BTreeMap<String, String>>,
}

/// Placeholders one template's title or content may fill, and their sizes: our limits, OPPO
/// publishes none (the template itself is registered in OPPO's console).
pub const OPPO_TEMPLATE_MAX_PARAMETERS: usize = 16;
pub const OPPO_TEMPLATE_KEY_MAX_CHARS: usize = 64;
pub const OPPO_TEMPLATE_VALUE_MAX_CHARS: usize = 200;

/// An OPPO private-message template id: 1 to 64 characters without spaces.
pub fn check_oppo_template_id(field: &'static str, id: &str) -> Result<(), FieldError> {
    if id.is_empty()
        || id.chars().count() > 64
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(field, "must be 1 to 64 characters without spaces"));
    }
    Ok(())
}

fn check_template_parameters(
    field: &'static str,
    params: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    if params.len() > OPPO_TEMPLATE_MAX_PARAMETERS {
        return Err(bad(
            field,
            format!("at most {OPPO_TEMPLATE_MAX_PARAMETERS} placeholders"),
        ));
    }
    for (k, v) in params {
        if k.trim().is_empty() || k.chars().count() > OPPO_TEMPLATE_KEY_MAX_CHARS {
            return Err(bad(
                field,
                format!("placeholder names are 1 to {OPPO_TEMPLATE_KEY_MAX_CHARS} characters"),
            ));
        }
        if v.chars().count() > OPPO_TEMPLATE_VALUE_MAX_CHARS {
            return Err(bad(
                field,
                format!(
                    "the value of {k:?} is longer than {OPPO_TEMPLATE_VALUE_MAX_CHARS} characters"
                ),
            ));
        }
    }
    Ok(())
}

fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A value from `allowed`, or a field error listing them.
pub fn check_one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<(), FieldError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

/// vivo's classification or Meizu's noticeMsgType: 0 or 1.
pub fn check_zero_or_one(field: &'static str, value: u8) -> Result<(), FieldError> {
    if value <= 1 {
        Ok(())
    } else {
        Err(bad(field, format!("{value} must be 0 or 1")))
    }
}

impl OvmPushFields {
    /// Drops empty strings (TIM sends `""` for "not set").
    pub fn normalized(mut self) -> OvmPushFields {
        for v in [
            &mut self.oppo_channel_id,
            &mut self.oppo_category,
            &mut self.vivo_category,
            &mut self.oppo_private_msg_template_id,
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
        self
    }

    /// Checks every set field; `prefix` is `offline_push` (/v1) and names the field.
    pub fn check(&self) -> Result<(), FieldError> {
        if let Some(c) = &self.oppo_channel_id {
            if c.chars().count() > 64 {
                return Err(bad(
                    "offline_push.oppo_channel_id",
                    "is longer than 64 characters",
                ));
            }
        }
        if let Some(c) = &self.oppo_category {
            check_one_of("offline_push.oppo_category", c, OPPO_CATEGORIES)?;
        }
        if let Some(c) = self.vivo_classification {
            check_zero_or_one("offline_push.vivo_classification", c)?;
        }
        if let Some(c) = &self.vivo_category {
            check_one_of("offline_push.vivo_category", c, VIVO_CATEGORIES)?;
        }
        if let Some(t) = self.meizu_notice_msg_type {
            check_zero_or_one("offline_push.meizu_notice_msg_type", t)?;
        }
        if let Some(id) = &self.oppo_private_msg_template_id {
            check_oppo_template_id("offline_push.oppo_private_msg_template_id", id)?;
        }
        if let Some(p) = &self.oppo_private_title_parameters {
            check_template_parameters("offline_push.oppo_private_title_parameters", p)?;
        }
        if let Some(p) = &self.oppo_private_content_parameters {
            check_template_parameters("offline_push.oppo_private_content_parameters", p)?;
        }
        Ok(())
    }

    /// Reads `OfflinePushInfo.AndroidInfo` (/v4). `VIVOClassification` may be a number or the
    /// strings "0"/"1" (Tencent's PHP SDK types it as a string). The error is the TIM field path.
    pub fn from_tim_android_info(a: &Map<String, Value>) -> Result<OvmPushFields, String> {
        let text = |name: &str| match a.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!(
                "OfflinePushInfo.AndroidInfo.{name} must be a string"
            )),
        };
        let small = |name: &str| match a.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n| *n <= 1)
                .map(|n| Some(n as u8))
                .ok_or_else(|| format!("OfflinePushInfo.AndroidInfo.{name} must be 0 or 1")),
        };
        // A JSON object of strings, or that object as JSON text (Tencent says "in json format").
        let params = |name: &str| {
            let wrong =
                || format!("OfflinePushInfo.AndroidInfo.{name} must be a JSON object of strings");
            let object = match a.get(name) {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
                Some(Value::String(s)) => serde_json::from_str::<Value>(s).map_err(|_| wrong())?,
                Some(v) => v.clone(),
            };
            serde_json::from_value::<BTreeMap<String, String>>(object)
                .map(Some)
                .map_err(|_| wrong())
        };
        let fields = OvmPushFields {
            oppo_channel_id: text("OPPOChannelID")?,
            oppo_category: text("OPPOCategory")?,
            vivo_classification: small("VIVOClassification")?,
            vivo_category: text("VIVOCategory")?,
            meizu_notice_msg_type: small("MeiZuNoticeMsgType")?,
            oppo_private_msg_template_id: text("OPPOPrivateMsgTemplateId")?,
            oppo_private_title_parameters: params("OPPOPrivateTitleParameters")?,
            oppo_private_content_parameters: params("OPPOPrivateContentParameters")?,
        }
        .normalized();
        fields.check().map_err(|e| {
            let name = match e.field {
                "offline_push.oppo_category" => "OPPOCategory",
                "offline_push.vivo_category" => "VIVOCategory",
                "offline_push.oppo_private_msg_template_id" => "OPPOPrivateMsgTemplateId",
                "offline_push.oppo_private_title_parameters" => "OPPOPrivateTitleParameters",
                "offline_push.oppo_private_content_parameters" => "OPPOPrivateContentParameters",
                _ => "OPPOChannelID",
            };
            format!("OfflinePushInfo.AndroidInfo.{name}: {}", e.message)
        })?;
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn android(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn tim_fields_are_read() {
        let f = OvmPushFields::from_tim_android_info(&android(json!({
            "OPPOChannelID": "chat", "OPPOCategory": "IM", "VIVOClassification": "1",
            "VIVOCategory": "IM", "MeiZuNoticeMsgType": 1, "XiaoMiChannelID": "x"
        })))
        .expect("fields");
        assert_eq!(f.oppo_channel_id.as_deref(), Some("chat"));
        assert_eq!(f.vivo_classification, Some(1));
        assert_eq!(f.meizu_notice_msg_type, Some(1));
        let empty = OvmPushFields::from_tim_android_info(&android(
            json!({"OPPOCategory": "", "VIVOClassification": ""}),
        ))
        .expect("fields");
        assert_eq!(empty, OvmPushFields::default());
        for (k, v) in [
            ("OPPOCategory", json!("CHAT")),
            ("VIVOClassification", json!(2)),
            ("MeiZuNoticeMsgType", json!("x")),
            ("VIVOCategory", json!(1)),
        ] {
            let err = OvmPushFields::from_tim_android_info(&android(json!({ k: v }))).expect_err(k);
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn the_oppo_private_template_is_read_as_object_or_json_text() {
        let f = OvmPushFields::from_tim_android_info(&android(json!({
            "OPPOPrivateMsgTemplateId": "687557242b1634hzefs3d5013",
            "OPPOPrivateTitleParameters": {"name": "Bob"},
            "OPPOPrivateContentParameters": "{\"text\":\"hi\"}",
        })))
        .expect("fields");
        assert_eq!(
            f.oppo_private_msg_template_id.as_deref(),
            Some("687557242b1634hzefs3d5013")
        );
        assert_eq!(
            f.oppo_private_title_parameters,
            Some(BTreeMap::from([("name".into(), "Bob".into())]))
        );
        assert_eq!(
            f.oppo_private_content_parameters,
            Some(BTreeMap::from([("text".into(), "hi".into())]))
        );
        for (k, v) in [
            ("OPPOPrivateTitleParameters", json!({"n": 1})),
            ("OPPOPrivateContentParameters", json!("[1]")),
            (
                "OPPOPrivateContentParameters",
                json!({"n": "x".repeat(201)}),
            ),
            ("OPPOPrivateMsgTemplateId", json!("a b")),
        ] {
            let err = OvmPushFields::from_tim_android_info(&android(json!({ k: v }))).expect_err(k);
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn check_names_the_field() {
        let f = OvmPushFields {
            vivo_category: Some("SPAM".into()),
            ..OvmPushFields::default()
        };
        assert_eq!(
            f.check().map_err(|e| e.field),
            Err("offline_push.vivo_category")
        );
        let f = OvmPushFields {
            meizu_notice_msg_type: Some(3),
            ..OvmPushFields::default()
        };
        assert_eq!(
            f.check().map_err(|e| e.field),
            Err("offline_push.meizu_notice_msg_type")
        );
    }
}
