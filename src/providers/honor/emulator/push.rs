//! Honor's send endpoint `POST /api/v1/{appId}/sendMessage`.
//!
//! Order: outage knobs → bearer → `timestamp` header → JSON body → QPS → message rules →
//! tokens (`expireTokens`, `failTokens`) → marketing cap (importance LOW) → accept.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{HonorRules, Vendor};
use crate::providers::oauth_emulator::state::{now_ms, random_id};
use crate::providers::oauth_emulator::{
    authorization, intent_ext, media_type, outage, read_body, BearerCheck, DeviceToken,
    ReceivedNotification, Shared,
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/{app_id}/sendMessage").route(web::post().to(
            |req: HttpRequest,
             path: web::Path<String>,
             body: web::Payload,
             shared: web::Data<Shared>,
             vendor: web::Data<Vendor>| async move {
                handle(req, path.into_inner(), body, shared, vendor).await
            },
        )),
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub status: u16,
    pub code: i64,
    pub message: String,
}

fn answer(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .content_type("application/json;charset=UTF-8")
        .body(body.to_string())
}

async fn handle(
    req: HttpRequest,
    app_id: String,
    body: web::Payload,
    shared: web::Data<Shared>,
    vendor: web::Data<Vendor>,
) -> HttpResponse {
    let path = req.path().to_owned();
    if let Some(outage) = outage(&shared, &path).await {
        return outage;
    }
    let rules = &vendor.rules;
    match process(&req, &app_id, body, &shared, rules).await {
        Ok(body) => {
            shared.count_request(&path, &rules.success_code.to_string());
            answer(200, &body)
        }
        Err(reject) => {
            shared.count_request(&path, &reject.code.to_string());
            answer(
                reject.status,
                &json!({"code": reject.code, "message": reject.message}),
            )
        }
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Checks the `timestamp` header: present, epoch milliseconds, optionally near now.
pub(crate) fn check_timestamp(
    raw: Option<&str>,
    rules: &HonorRules,
    now: u64,
) -> Result<(), String> {
    if !rules.require_timestamp {
        return Ok(());
    }
    let Some(raw) = raw else {
        return Err("the timestamp header is required".into());
    };
    let Ok(ts) = raw.trim().parse::<u64>() else {
        return Err("the timestamp header must be epoch milliseconds".into());
    };
    // Seconds since the epoch are 10 digits until 2286; milliseconds are 13.
    if ts < 100_000_000_000 {
        return Err("the timestamp header must be in milliseconds, not seconds".into());
    }
    if let Some(skew) = rules.timestamp_max_skew_secs {
        if ts.abs_diff(now) > skew.saturating_mul(1000) {
            return Err("the timestamp header is too far from the current time".into());
        }
    }
    Ok(())
}

async fn process(
    req: &HttpRequest,
    app_id: &str,
    body: web::Payload,
    shared: &Shared,
    rules: &HonorRules,
) -> Result<Value, Reject> {
    let now = now_ms();
    let auth_error = |code: i64, message: &str| Reject {
        status: rules.auth_error_status,
        code,
        message: message.into(),
    };
    let bad = |message: &str| Reject {
        status: rules.bad_request_status,
        code: rules.bad_request_code,
        message: message.into(),
    };
    let token = authorization(req).and_then(|v| match v.strip_prefix("Bearer ") {
        Some(t) => Some(t.trim()),
        None if !rules.require_bearer_prefix => Some(v.trim()),
        None => None,
    });
    match shared.check_bearer(token, app_id, now) {
        BearerCheck::Ok => {}
        BearerCheck::Expired => {
            return Err(auth_error(rules.token_expired_code, "access token expired"))
        }
        _ => return Err(auth_error(rules.auth_error_code, "authentication failed")),
    }
    check_timestamp(header(req, "timestamp"), rules, now).map_err(|m| bad(&m))?;
    if media_type(req) != "application/json" {
        return Err(bad("Content-Type must be application/json"));
    }
    let raw = read_body(body, rules.max_body_bytes)
        .await
        .ok_or_else(|| bad("request body too long"))?;
    let parsed: Value = serde_json::from_slice(&raw).map_err(|_| bad("the body is not JSON"))?;
    let knobs = shared.knobs();
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit_qps(app_id, limit, now) {
            return Err(Reject {
                status: rules.rate_limit_status,
                code: rules.rate_limit_code,
                message: "request frequency exceeds the limit".into(),
            });
        }
    }
    let checked = validate(&parsed, rules).map_err(|m| bad(&m))?;
    let mut valid = Vec::new();
    let mut expired = Vec::new();
    let mut failed = Vec::new();
    for token in &checked.tokens {
        match shared.check_token(app_id, token) {
            DeviceToken::Valid => valid.push(token.clone()),
            DeviceToken::Invalid => expired.push(token.clone()),
            DeviceToken::Failing => failed.push(token.clone()),
        }
    }
    if valid.is_empty() && failed.is_empty() {
        if let Some(code) = rules.all_invalid_code {
            return Err(Reject {
                status: 200,
                code,
                message: "all tokens are invalid".into(),
            });
        }
    }
    let request_id = format!("{now}{}", random_id(8));
    let mut headers = BTreeMap::new();
    if let Some(ts) = header(req, "timestamp") {
        headers.insert("timestamp".to_owned(), ts.to_owned());
    }
    let marketing = checked.importance == "LOW";
    let records: Vec<ReceivedNotification> = valid
        .iter()
        .filter(|t| !marketing || shared.admit_marketing(app_id, t, knobs.marketing_daily_cap, now))
        .map(|token| ReceivedNotification {
            seq: 0,
            endpoint: req.path().to_owned(),
            app_id: app_id.to_owned(),
            token: token.clone(),
            title: checked.title.clone(),
            body: checked.body.clone(),
            category: String::new(),
            importance: checked.importance.clone(),
            click_type: checked.click_type,
            intent: checked.intent.clone(),
            url: checked.url.clone(),
            ext: checked.intent.as_deref().and_then(intent_ext),
            channel_id: None,
            notify_id: checked.notify_id,
            bi_tag: checked.bi_tag.clone(),
            request_id: request_id.clone(),
            headers: headers.clone(),
            message: checked.message.clone(),
            received_at_ms: now,
        })
        .collect();
    shared.record(records);
    Ok(json!({
        "code": rules.success_code,
        "message": "success",
        "data": {
            "sendResult": !valid.is_empty(),
            "requestId": request_id,
            "failTokens": failed,
            "expireTokens": expired,
        }
    }))
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub tokens: Vec<String>,
    pub title: String,
    pub body: String,
    pub importance: String,
    pub click_type: i64,
    pub intent: Option<String>,
    pub url: Option<String>,
    pub notify_id: Option<i64>,
    pub bi_tag: Option<String>,
    pub message: Value,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Checks a body against spec §3.
pub(crate) fn validate(body: &Value, rules: &HonorRules) -> Result<Checked, String> {
    if !body.is_object() {
        return Err("the body must be a JSON object".into());
    }
    if body.get("message").is_some() || body.get("validate_only").is_some() {
        return Err("the body is the message itself: no message wrapper, no validate_only".into());
    }
    let tokens: Vec<String> = body
        .get("token")
        .and_then(Value::as_array)
        .ok_or("token must be an array")?
        .iter()
        .map(|t| t.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or("every token must be a string")?;
    if tokens.is_empty() || tokens.len() > rules.max_tokens {
        return Err(format!(
            "the number of tokens must be 1 to {}",
            rules.max_tokens
        ));
    }
    if tokens.iter().any(|t| t.trim().is_empty()) {
        return Err("a token is empty".into());
    }
    let mut without_tokens = body.clone();
    if let Some(m) = without_tokens.as_object_mut() {
        m.remove("token");
    }
    if without_tokens.to_string().len() > rules.payload_max_bytes {
        return Err(format!(
            "the message is longer than {} bytes",
            rules.payload_max_bytes
        ));
    }
    let android = body.get("android").filter(|a| a.is_object());
    // Huawei's snake_case names are a sign of a Huawei body sent to Honor.
    if let Some(a) = android {
        for key in ["bi_tag", "target_user_type", "collapse_key"] {
            if a.get(key).is_some() {
                return Err(format!("android.{key} is not a Honor field (camelCase)"));
            }
        }
    }
    let notification = android
        .and_then(|a| a.get("notification"))
        .filter(|n| n.is_object())
        .ok_or("android.notification is required for a notification message")?;
    for key in ["click_action", "notify_id", "channel_id"] {
        if notification.get(key).is_some() {
            return Err(format!("android.notification.{key} is not a Honor field"));
        }
    }
    let common = body.get("notification");
    let pick = |key: &str| {
        text(notification, key)
            .or_else(|| common.and_then(|c| text(c, key)))
            .filter(|s| !s.trim().is_empty())
    };
    let (Some(title), Some(body_text)) = (pick("title"), pick("body")) else {
        return Err("title and body are required".into());
    };
    let importance = text(notification, "importance").unwrap_or("");
    if !matches!(importance, "" | "LOW" | "NORMAL") {
        return Err("importance must be LOW or NORMAL".into());
    }
    if let Some(ttl) = android.and_then(|a| a.get("ttl")) {
        let secs = ttl
            .as_str()
            .and_then(|t| t.strip_suffix('s'))
            .and_then(|t| t.parse::<u64>().ok());
        if secs.is_none_or(|s| s > 1_296_000) {
            return Err("ttl must be \"<seconds>s\", at most 1296000s".into());
        }
    }
    let click = notification
        .get("clickAction")
        .filter(|c| c.is_object())
        .ok_or("clickAction is required for a notification message")?;
    let click_type = click.get("type").and_then(Value::as_i64).unwrap_or(0);
    let intent = text(click, "intent").map(str::to_owned);
    let url = text(click, "url").map(str::to_owned);
    match click_type {
        1 if intent.is_none() && text(click, "action").is_none() => {
            return Err("clickAction type 1 needs intent or action".into())
        }
        2 if !url.as_deref().is_some_and(|u| u.starts_with("https://")) => {
            return Err("clickAction type 2 needs an https url".into())
        }
        1..=3 => {}
        _ => return Err("clickAction type must be 1, 2 or 3".into()),
    }
    Ok(Checked {
        tokens,
        title: title.to_owned(),
        body: body_text.to_owned(),
        importance: importance.to_owned(),
        click_type,
        intent,
        url,
        notify_id: notification.get("notifyId").and_then(Value::as_i64),
        bi_tag: android.and_then(|a| text(a, "biTag")).map(str::to_owned),
        message: without_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClickAction;
    use crate::providers::honor::wire::{send_body, HonorMessage};
    use crate::providers::huawei::wire::send_body as huawei_body;

    fn msg() -> HonorMessage {
        HonorMessage {
            title: "Alice".into(),
            body: "hi".into(),
            importance: "NORMAL".into(),
            package_name: "com.x".into(),
            click: ClickAction::OpenApp,
            ext: Some("{}".into()),
            notify_id: 3,
            bi_tag: None,
        }
    }

    #[test]
    fn our_body_passes_and_a_huawei_body_does_not() {
        let rules = HonorRules::default();
        let body: Value = serde_json::from_str(&send_body(&msg(), &["a", "b"])).expect("json");
        let c = validate(&body, &rules).expect("valid");
        assert_eq!(c.tokens, ["a", "b"]);
        assert_eq!(c.click_type, 1);
        assert_eq!(c.notify_id, Some(3));
        let hw = crate::providers::huawei::wire::HuaweiMessage {
            title: "t".into(),
            body: "b".into(),
            category: "IM".into(),
            importance: "NORMAL".into(),
            channel_id: None,
            package_name: "com.x".into(),
            click: ClickAction::OpenApp,
            ext: None,
            notify_id: 1,
            sound: None,
            ext_carriage: Default::default(),
            bi_tag: None,
            receipt_id: None,
        };
        let hw: Value = serde_json::from_str(&huawei_body(&hw, &["a"])).expect("json");
        assert!(validate(&hw, &rules).is_err());
    }

    #[test]
    fn rules_are_enforced() {
        let rules = HonorRules::default();
        let good: Value = serde_json::from_str(&send_body(&msg(), &["a"])).expect("json");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = good.clone();
            f(&mut b);
            validate(&b, &rules).is_err()
        };
        assert!(with(&|b| b["token"] = json!([])));
        assert!(with(
            &|b| b["android"]["notification"]["importance"] = json!("HIGH")
        ));
        assert!(with(&|b| {
            b["android"]["notification"]
                .as_object_mut()
                .map(|n| n.remove("clickAction"));
        }));
        assert!(with(&|b| b["android"]["ttl"] = json!("1296001s")));
        assert!(with(
            &|b| b["android"]["notification"]["body"] = json!("x".repeat(5000))
        ));
        assert!(!with(
            &|b| b["android"]["notification"]["importance"] = json!("LOW")
        ));
    }

    #[test]
    fn the_timestamp_must_be_milliseconds() {
        let rules = HonorRules::default();
        let now = 1_700_000_000_000;
        assert!(check_timestamp(Some("1700000000000"), &rules, now).is_ok());
        assert!(check_timestamp(Some("1700000000"), &rules, now).is_err());
        assert!(check_timestamp(None, &rules, now).is_err());
        assert!(check_timestamp(Some("soon"), &rules, now).is_err());
        let skewed = HonorRules {
            timestamp_max_skew_secs: Some(60),
            ..HonorRules::default()
        };
        assert!(check_timestamp(Some("1700000120000"), &skewed, now).is_err());
        let lax = HonorRules {
            require_timestamp: false,
            ..HonorRules::default()
        };
        assert!(check_timestamp(None, &lax, now).is_ok());
    }
}
