//! The native API the IM cluster calls: session events, push tokens, messages, user status,
//! diagnosis. Translation only; the rules live in `gateway`.

use super::auth::{AnyAuth, ApiAuth};
use super::codec::{reply, Body};
use super::error::ApiError;
use super::AppState;
use crate::domain::{CertificateId, Platform};
use crate::gateway::{ErrorCode, SendRequest, SessionEvent, UserStatus};
use crate::push::RecipientResult;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Events in one request.
pub const MAX_EVENTS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsBody {
    events: Vec<SessionEvent>,
}

pub async fn session_events(
    _auth: ApiAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<EventsBody>,
) -> Result<HttpResponse, ApiError> {
    let events = body.0.events;
    if events.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField.as_str(),
            "events: at least one event is required",
        )
        .with_field("events"));
    }
    if events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(
            "too_many_events",
            format!(
                "events: {} events; at most {MAX_EVENTS} per request",
                events.len()
            ),
        )
        .with_field("events"));
    }
    let results = state.gateway.session_events(events).await;
    #[derive(Serialize)]
    struct Out {
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<super::error::ErrorDetail>,
        results: Vec<crate::gateway::EventResult>,
    }
    // An event the disk refused was not acknowledged: the whole answer says so (503 with
    // Retry-After, the error body), with each event's result beside it.
    let refused = results.iter().find_map(|r| {
        r.error
            .as_ref()
            .filter(|e| e.code == ErrorCode::StoreUnavailable)
    });
    let Some(refused) = refused else {
        return Ok(reply(
            &req,
            StatusCode::OK,
            &Out {
                error: None,
                results,
            },
        ));
    };
    let error = super::error::ErrorDetail {
        code: ErrorCode::StoreUnavailable.as_str(),
        message: refused.message.clone(),
        field: None,
        tim_code: None,
    };
    let mut res = reply(
        &req,
        StatusCode::SERVICE_UNAVAILABLE,
        &Out {
            error: Some(error),
            results,
        },
    );
    res.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("1"),
    );
    Ok(res)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    user: String,
    #[serde(default)]
    platform: Option<Platform>,
    device: String,
    certificate_id: CertificateId,
    token: String,
}

pub async fn put_token(
    _auth: ApiAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<TokenBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let v = state
        .gateway
        .report_token(&b.user, b.platform, &b.device, b.certificate_id, &b.token)
        .await?;
    Ok(reply(&req, StatusCode::OK, &v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearTokenBody {
    user: String,
    device: String,
}

pub async fn delete_token(
    _auth: ApiAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<ClearTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let v = state
        .gateway
        .clear_token(&body.0.user, &body.0.device)
        .await?;
    Ok(reply(&req, StatusCode::OK, &v))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OfflinePush {
    #[serde(default)]
    push_flag: u8,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    desc: Option<String>,
    #[serde(default)]
    ext: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
    /// Huawei / Honor overrides (contract.md: TIM's AndroidInfo names in snake_case).
    #[serde(default)]
    huawei_category: Option<String>,
    #[serde(default)]
    huawei_importance: Option<String>,
    #[serde(default)]
    huawei_channel_id: Option<String>,
    #[serde(default)]
    honor_importance: Option<String>,
    /// 1: each member of `ext` its own Huawei intent extra (TIM `ExtAsHuaweiIntentParam`).
    #[serde(default)]
    ext_as_huawei_intent_param: Option<u64>,
    /// OPPO, vivo and Meizu overrides (contract.md: TIM's AndroidInfo names in snake_case).
    #[serde(default)]
    oppo_channel_id: Option<String>,
    #[serde(default)]
    oppo_category: Option<String>,
    #[serde(default)]
    vivo_classification: Option<u8>,
    #[serde(default)]
    vivo_category: Option<String>,
    #[serde(default)]
    meizu_notice_msg_type: Option<u8>,
    /// OPPO private-message template and its placeholders (TIM `OPPOPrivateMsgTemplateId`, …).
    #[serde(default)]
    oppo_private_msg_template_id: Option<String>,
    #[serde(default)]
    oppo_private_title_parameters: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    oppo_private_content_parameters: Option<std::collections::BTreeMap<String, String>>,
    /// FCM `android.notification.channel_id` (TIM `GoogleChannelID`).
    #[serde(default)]
    google_channel_id: Option<String>,
    /// Android notification sound (TIM `AndroidInfo.Sound`).
    #[serde(default)]
    sound: Option<String>,
    /// TIM `ApnsInfo` in snake_case.
    #[serde(default)]
    apns: Option<crate::domain::global_push_fields::ApnsInfo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// Inline up to 24 bytes each: 500 names parse without 500 allocations.
    to: Vec<CompactString>,
    from: String,
    text: String,
    #[serde(default)]
    offline_push: Option<OfflinePush>,
    /// Deliver only over live connections (TIM `MsgLifeTime=0`).
    #[serde(default)]
    online_only: bool,
    /// Notifications with the same conversation replace each other in the tray.
    #[serde(default)]
    conversation: Option<String>,
    /// Also report each device's outcome (`results[].devices`).
    #[serde(default)]
    detail: bool,
}

#[derive(Serialize)]
pub struct MessageReply {
    pub message_id: u64,
    pub results: Vec<RecipientResult>,
}

pub async fn send_message(
    _auth: ApiAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Body<MessageBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let op = b.offline_push.unwrap_or_default();
    if op.push_flag > 1 {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidField.as_str(),
            format!(
                "offline_push.push_flag is {}; it must be 0 (push) or 1 (no push)",
                op.push_flag
            ),
        )
        .with_field("offline_push.push_flag"));
    }
    // The limit counts the list as sent, repeats included, so the request is judged before the
    // repeats are dropped.
    let max = state.gateway.config.http.max_recipients;
    if b.to.len() > max {
        return Err(ApiError::bad_request(
            "too_many_recipients",
            format!("to: {} recipients; at most {max} per request", b.to.len()),
        )
        .with_field("to"));
    }
    let ext_as_huawei_intent_param = op
        .ext_as_huawei_intent_param
        .map(crate::domain::hw_push_fields::HwPushFields::intent_param_flag)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidField.as_str(),
                format!("{}: {}", e.field.v1(), e.message),
            )
            .with_field(e.field.v1())
        })?
        .unwrap_or(false);
    let send = SendRequest {
        to: distinct(b.to),
        from: b.from,
        text: b.text,
        title: op.title,
        desc: op.desc,
        ext: op.ext,
        channel_id: op.channel_id,
        hw: crate::domain::hw_push_fields::HwPushFields {
            huawei_category: op.huawei_category,
            huawei_importance: op.huawei_importance,
            huawei_channel_id: op.huawei_channel_id,
            honor_importance: op.honor_importance,
            ext_as_huawei_intent_param,
        }
        .normalized(),
        ovm: crate::domain::vendor_fields::OvmPushFields {
            oppo_channel_id: op.oppo_channel_id,
            oppo_category: op.oppo_category,
            vivo_classification: op.vivo_classification,
            vivo_category: op.vivo_category,
            meizu_notice_msg_type: op.meizu_notice_msg_type,
            oppo_private_msg_template_id: op.oppo_private_msg_template_id,
            oppo_private_title_parameters: op.oppo_private_title_parameters,
            oppo_private_content_parameters: op.oppo_private_content_parameters,
        },
        global: crate::domain::global_push_fields::GlobalPushFields {
            google_channel_id: op.google_channel_id,
            sound: op.sound,
            apns: op.apns.unwrap_or_default(),
        }
        .normalized(),
        push_disabled: op.push_flag == 1,
        online_only: b.online_only,
        conversation: b.conversation,
        nothing_to_show: false,
        detail: b.detail,
    };
    let sent = state.gateway.send_any(&send).await?;
    let out = MessageReply {
        message_id: sent.message.id,
        results: sent.results,
    };
    if !super::codec::wants_msgpack(&req) {
        if let Some(body) = out.to_json() {
            return Ok(HttpResponse::Ok()
                .content_type(actix_web::http::header::ContentType::json())
                .body(body));
        }
    }
    Ok(reply(&req, StatusCode::OK, &out))
}

impl MessageReply {
    /// The JSON answer written directly, byte for byte what `serde_json` makes of it (the
    /// members in declaration order, the same escaping); `None` when a result lists its
    /// devices (`detail`), which goes through serde. A 500-recipient answer went through
    /// serde's per-member machinery 2,000 times, each key and enum value escaped anew.
    fn to_json(&self) -> Option<Vec<u8>> {
        if self.results.iter().any(|r| !r.devices.is_empty()) {
            return None;
        }
        let mut out = Vec::with_capacity(48 + self.results.len() * 48);
        out.extend_from_slice(b"{\"message_id\":");
        crate::json_out::push_u64(&mut out, self.message_id);
        out.extend_from_slice(b",\"results\":[");
        for (i, r) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"user\":");
            crate::json_out::push_str(&mut out, &r.user);
            out.extend_from_slice(b",\"outcome\":\"");
            out.extend_from_slice(r.outcome.as_str().as_bytes());
            out.push(b'"');
            if let Some(reason) = r.reason {
                out.extend_from_slice(b",\"reason\":");
                crate::json_out::push_str(&mut out, reason);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        Some(out)
    }
}

/// The recipients without repeats, first mention first: a user named twice gets one delivery,
/// one result and one count (500 × "alice" would otherwise send 500 notifications).
fn distinct(to: Vec<CompactString>) -> Vec<CompactString> {
    // Borrowed names: no copy of the list when it has no repeats (the usual case).
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(to.len());
        to.iter().map(|u| seen.insert(u.as_str())).collect()
    };
    if keep.iter().all(|k| *k) {
        return to;
    }
    to.into_iter()
        .zip(keep)
        .filter_map(|(u, k)| k.then_some(u))
        .collect()
}

pub async fn user_status(
    _auth: AnyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let devices = state.gateway.user_devices_any(&user).await?;
    let status = crate::gateway::user_status(&devices);
    #[derive(Serialize)]
    struct Out<'a> {
        user: &'a str,
        status: UserStatus,
        devices: Vec<crate::gateway::DeviceView>,
    }
    Ok(reply(
        &req,
        StatusCode::OK,
        &Out {
            user: &user,
            status,
            devices,
        },
    ))
}

pub async fn diagnosis(
    _auth: AnyAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    user: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = state.gateway.diagnose_any(&user).await?;
    Ok(reply(&req, StatusCode::OK, &d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{DeviceOutcome, Outcome};

    fn result(user: &str, outcome: Outcome, reason: Option<&'static str>) -> RecipientResult {
        RecipientResult {
            user: user.into(),
            outcome,
            reason,
            devices: Vec::new(),
        }
    }

    #[test]
    fn the_written_answer_is_what_serde_json_makes_of_it() {
        let reply = MessageReply {
            message_id: u64::MAX,
            results: vec![
                result("alice", Outcome::PushQueued, None),
                result("bob", Outcome::Online, None),
                result("\"quoted\" \\ back", Outcome::Skipped, Some("unknown_user")),
                result("tab\there\u{1}\u{7f}", Outcome::Skipped, Some("no_token")),
                result("用户-0001 🍜", Outcome::PushQueued, None),
                result("", Outcome::Skipped, Some("expired")),
            ],
        };
        let written = reply.to_json().expect("no devices listed");
        assert_eq!(
            String::from_utf8(written).expect("utf-8"),
            serde_json::to_string(&reply).expect("serializes")
        );
        let empty = MessageReply {
            message_id: 0,
            results: Vec::new(),
        };
        assert_eq!(
            empty.to_json().expect("no results"),
            serde_json::to_vec(&empty).expect("serializes")
        );
        // A result that lists its devices goes through serde.
        let mut detailed = result("carol", Outcome::Online, None);
        detailed.devices.push(DeviceOutcome {
            device: "d1".into(),
            platform: "android",
            outcome: Outcome::Online,
            also_pushed: false,
            reason: None,
        });
        let reply = MessageReply {
            message_id: 1,
            results: vec![detailed],
        };
        assert!(reply.to_json().is_none());
    }
}
