//! Per-message overrides of a Huawei or Honor certificate's classification: Tencent's
//! `OfflinePushInfo.AndroidInfo.{HuaWeiCategory, HuaWeiImportance, HuaWeiChannelID,
//! HonorImportance, ExtAsHuaweiIntentParam}` on /v4, and `huawei_category`, `huawei_importance`,
//! `huawei_channel_id`, `honor_importance`, `ext_as_huawei_intent_param` under /v1's
//! `offline_push` (contract.md "More push services"). Absent or empty means "the certificate's
//! setting".

use serde_json::{Map, Value};

use super::credentials::{is_honor_importance, is_huawei_category};
use super::message::MAX_CHANNEL_ID_CHARS;

/// The Huawei and Honor fields of one message (serde: it travels inside `PushContent` to another
/// node's inbox and to the shutdown outbox).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct HwPushFields {
    /// Huawei `android.category` (`IM`, `VOIP`, … `MARKETING`).
    pub huawei_category: Option<String>,
    /// Huawei `android.notification.importance` (`LOW` or `NORMAL`).
    pub huawei_importance: Option<String>,
    /// Huawei `android.notification.channel_id`.
    pub huawei_channel_id: Option<String>,
    /// Honor `android.notification.importance` (`LOW` or `NORMAL`).
    pub honor_importance: Option<String>,
    /// TIM `ExtAsHuaweiIntentParam` 1: each top-level member of `Ext` becomes its own extra of
    /// Huawei's click intent; 0 (default): `Ext` is the one string extra `ext`
    /// (`huawei::wire::ExtCarriage`).
    pub ext_as_huawei_intent_param: bool,
}

/// One of the fields, to name it in an error on either surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwField {
    HuaweiCategory,
    HuaweiImportance,
    HuaweiChannelId,
    HonorImportance,
    ExtAsHuaweiIntentParam,
}

impl HwField {
    /// Its path in a /v1 send body.
    pub fn v1(self) -> &'static str {
        match self {
            HwField::HuaweiCategory => "offline_push.huawei_category",
            HwField::HuaweiImportance => "offline_push.huawei_importance",
            HwField::HuaweiChannelId => "offline_push.huawei_channel_id",
            HwField::HonorImportance => "offline_push.honor_importance",
            HwField::ExtAsHuaweiIntentParam => "offline_push.ext_as_huawei_intent_param",
        }
    }

    /// Its path in a /v4 message.
    pub fn v4(self) -> &'static str {
        match self {
            HwField::HuaweiCategory => "OfflinePushInfo.AndroidInfo.HuaWeiCategory",
            HwField::HuaweiImportance => "OfflinePushInfo.AndroidInfo.HuaWeiImportance",
            HwField::HuaweiChannelId => "OfflinePushInfo.AndroidInfo.HuaWeiChannelID",
            HwField::HonorImportance => "OfflinePushInfo.AndroidInfo.HonorImportance",
            HwField::ExtAsHuaweiIntentParam => "OfflinePushInfo.AndroidInfo.ExtAsHuaweiIntentParam",
        }
    }

    /// Its key in Tencent's `AndroidInfo`.
    fn tim_key(self) -> &'static str {
        match self {
            HwField::HuaweiCategory => "HuaWeiCategory",
            HwField::HuaweiImportance => "HuaWeiImportance",
            HwField::HuaweiChannelId => "HuaWeiChannelID",
            HwField::HonorImportance => "HonorImportance",
            HwField::ExtAsHuaweiIntentParam => "ExtAsHuaweiIntentParam",
        }
    }
}

/// A field that is wrong: which, and why (the caller words it for its surface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwFieldError {
    pub field: HwField,
    pub message: String,
}

impl HwPushFields {
    /// Empty strings become "not given", so they fall back to the certificate's setting.
    pub fn normalized(mut self) -> HwPushFields {
        for v in [
            &mut self.huawei_category,
            &mut self.huawei_importance,
            &mut self.huawei_channel_id,
            &mut self.honor_importance,
        ] {
            if v.as_deref().is_some_and(str::is_empty) {
                *v = None;
            }
        }
        self
    }

    /// Checks each given field against what the vendor accepts.
    pub fn check(&self) -> Result<(), HwFieldError> {
        let bad = |field, message: String| Err(HwFieldError { field, message });
        if let Some(c) = &self.huawei_category {
            if !is_huawei_category(c) {
                return bad(
                    HwField::HuaweiCategory,
                    format!(
                        "'{c}' is not a Huawei notification category (IM, VOIP, SUBSCRIPTION, \
                         TRAVEL, HEALTH, WORK, ACCOUNT, EXPRESS, FINANCE, DEVICE_REMINDER, \
                         SYSTEM_REMINDER, MAIL, MARKETING)"
                    ),
                );
            }
        }
        // Huawei's HIGH needs a permission few apps have (80300011); Tencent offers LOW/NORMAL.
        for (field, v) in [
            (HwField::HuaweiImportance, &self.huawei_importance),
            (HwField::HonorImportance, &self.honor_importance),
        ] {
            if let Some(i) = v {
                if !is_honor_importance(i) {
                    return bad(field, format!("'{i}' is not an importance (LOW or NORMAL)"));
                }
            }
        }
        if let Some(c) = &self.huawei_channel_id {
            if c.chars().count() > MAX_CHANNEL_ID_CHARS
                || c.chars().any(|ch| ch.is_whitespace() || ch.is_control())
            {
                return bad(
                    HwField::HuaweiChannelId,
                    format!(
                        "the channel id must be at most {MAX_CHANNEL_ID_CHARS} characters \
                         without spaces"
                    ),
                );
            }
        }
        Ok(())
    }

    /// TIM's 0/1 `ExtAsHuaweiIntentParam` (/v1 `ext_as_huawei_intent_param`) as a flag.
    pub fn intent_param_flag(value: u64) -> Result<bool, HwFieldError> {
        match value {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(HwFieldError {
                field: HwField::ExtAsHuaweiIntentParam,
                message: format!(
                    "{n} must be 0 (Ext as the one intent extra `ext`) or 1 (each member of \
                     Ext its own intent extra)"
                ),
            }),
        }
    }

    /// The fields of a TIM `AndroidInfo` object (each must be a string when present, but
    /// `ExtAsHuaweiIntentParam`, a 0/1 number or numeric string), checked.
    pub fn from_tim_android_info(a: &Map<String, Value>) -> Result<HwPushFields, HwFieldError> {
        let get = |field: HwField| match a.get(field.tim_key()) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(HwFieldError {
                field,
                message: "must be a string".into(),
            }),
        };
        let f = HwPushFields {
            huawei_category: get(HwField::HuaweiCategory)?,
            huawei_importance: get(HwField::HuaweiImportance)?,
            huawei_channel_id: get(HwField::HuaweiChannelId)?,
            honor_importance: get(HwField::HonorImportance)?,
            ext_as_huawei_intent_param: match a.get(HwField::ExtAsHuaweiIntentParam.tim_key()) {
                None | Some(Value::Null) => false,
                Some(Value::String(s)) if s.trim().is_empty() => false,
                Some(v) => match v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()) {
                    Some(n) => Self::intent_param_flag(n)?,
                    None => {
                        return Err(HwFieldError {
                            field: HwField::ExtAsHuaweiIntentParam,
                            message: "must be 0 or 1".into(),
                        })
                    }
                },
            },
        }
        .normalized();
        f.check()?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tim(v: Value) -> Result<HwPushFields, HwFieldError> {
        HwPushFields::from_tim_android_info(v.as_object().expect("object"))
    }

    #[test]
    fn tim_keys_map_to_the_fields_and_empty_means_the_certificates() {
        let f = tim(json!({"HuaWeiCategory": "VOIP", "HuaWeiImportance": "LOW",
            "HuaWeiChannelID": "calls", "HonorImportance": "LOW", "XiaoMiChannelID": "x"}))
        .expect("fields");
        assert_eq!(f.huawei_category.as_deref(), Some("VOIP"));
        assert_eq!(f.huawei_importance.as_deref(), Some("LOW"));
        assert_eq!(f.huawei_channel_id.as_deref(), Some("calls"));
        assert_eq!(f.honor_importance.as_deref(), Some("LOW"));
        assert!(!f.ext_as_huawei_intent_param);
        let empty = tim(json!({"HuaWeiCategory": "", "HonorImportance": "",
            "ExtAsHuaweiIntentParam": 0}))
        .expect("fields");
        assert_eq!(empty, HwPushFields::default());
        for one in [json!(1), json!("1")] {
            let f = tim(json!({ "ExtAsHuaweiIntentParam": one })).expect("fields");
            assert!(f.ext_as_huawei_intent_param);
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        for (body, field) in [
            (json!({"HuaWeiCategory": "CHAT"}), HwField::HuaweiCategory),
            (json!({"HuaWeiCategory": 1}), HwField::HuaweiCategory),
            (
                json!({"HuaWeiImportance": "HIGH"}),
                HwField::HuaweiImportance,
            ),
            (json!({"HuaWeiChannelID": "a b"}), HwField::HuaweiChannelId),
            (
                json!({"HonorImportance": "normal"}),
                HwField::HonorImportance,
            ),
            (
                json!({"ExtAsHuaweiIntentParam": 2}),
                HwField::ExtAsHuaweiIntentParam,
            ),
            (
                json!({"ExtAsHuaweiIntentParam": "yes"}),
                HwField::ExtAsHuaweiIntentParam,
            ),
        ] {
            assert_eq!(tim(body.clone()).map_err(|e| e.field), Err(field), "{body}");
        }
        assert_eq!(
            HwField::HonorImportance.v4(),
            "OfflinePushInfo.AndroidInfo.HonorImportance"
        );
        assert_eq!(HwField::HuaweiCategory.v1(), "offline_push.huawei_category");
    }
}
