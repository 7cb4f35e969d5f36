//! Huawei's send endpoint, checked the way the spec says Huawei checks it.
//!
//! Order: outage knobs → bearer (401: 80200001 / 80200003) → JSON body (80100003) → QPS (HTTP
//! 503) → message rules → tokens (80100000 / 80300007) → marketing cap → accept.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::receipts::Accepted;
use super::{HuaweiRules, Vendor};
use crate::providers::huawei::wire::CATEGORIES;
use crate::providers::oauth_emulator::state::{now_ms, request_id};
use crate::providers::oauth_emulator::{
    bearer, intent_ext, media_type, outage, read_body, BearerCheck, DeviceToken, Knobs,
    ReceivedNotification, Shared,
};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    for version in ["v1", "v2"] {
        cfg.service(
            web::resource(format!("/{version}/{{app_id}}/messages:send")).route(web::post().to(
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
}

/// A refusal: HTTP status, Huawei code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub status: u16,
    pub code: &'static str,
    pub msg: String,
}

impl Reject {
    pub(crate) fn new(status: u16, code: &'static str, msg: impl Into<String>) -> Self {
        Reject {
            status,
            code,
            msg: msg.into(),
        }
    }
}

fn answer(status: u16, code: &str, msg: &str, request_id: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("application/json;charset=UTF-8")
        .body(json!({"code": code, "msg": msg, "requestId": request_id}).to_string())
}

async fn handle(
    req: HttpRequest,
    app_id: String,
    body: web::Payload,
    shared: web::Data<Shared>,
    vendor: web::Data<Vendor>,
) -> HttpResponse {
    let (r, s, v) = (&req, &**shared, &**vendor);
    respond(r, s, move |now, rid| async move {
        process(r, &app_id, body, s, v, now, &rid).await
    })
    .await
}

/// Runs the outage knobs, then `process` (given now and a request id), and answers with
/// Huawei's envelope — or a bare status for flow control — counting the outcome.
pub(super) async fn respond<F, Fut>(req: &HttpRequest, shared: &Shared, process: F) -> HttpResponse
where
    F: FnOnce(u64, String) -> Fut,
    Fut: std::future::Future<Output = Result<(&'static str, String), Reject>>,
{
    let path = req.path().to_owned();
    if let Some(outage) = outage(shared, &path).await {
        return outage;
    }
    let now = now_ms();
    let rid = request_id(now);
    match process(now, rid.clone()).await {
        Ok((code, msg)) => {
            shared.count_request(&path, code);
            answer(200, code, &msg, &rid)
        }
        Err(reject) => {
            let outcome = if reject.code.is_empty() {
                format!("http_{}", reject.status)
            } else {
                reject.code.to_owned()
            };
            shared.count_request(&path, &outcome);
            if reject.code.is_empty() {
                return HttpResponse::build(
                    StatusCode::from_u16(reject.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                )
                .content_type("text/html")
                .body(reject.msg);
            }
            answer(reject.status, reject.code, &reject.msg, &rid)
        }
    }
}

/// Splits tokens into those Huawei takes and the illegal ones; none taken is 80300007.
pub(super) fn sort_tokens(
    shared: &Shared,
    app_id: &str,
    tokens: &[String],
) -> Result<(Vec<String>, Vec<String>), Reject> {
    let mut valid = Vec::new();
    let mut illegal = Vec::new();
    for token in tokens {
        match shared.check_token(app_id, token) {
            DeviceToken::Valid | DeviceToken::Failing => valid.push(token.clone()),
            DeviceToken::Invalid => illegal.push(token.clone()),
        }
    }
    if valid.is_empty() {
        return Err(Reject::new(200, "80300007", "All the tokens are invalid"));
    }
    Ok((valid, illegal))
}

/// The answer to an accepted request: 80000000, or 80100000 with `msg` itself JSON text
/// listing the illegal tokens (spec §4).
pub(super) fn accepted(valid: usize, illegal: Vec<String>) -> (&'static str, String) {
    if illegal.is_empty() {
        return ("80000000", "Success".into());
    }
    let msg = json!({
        "success": valid,
        "failure": illegal.len(),
        "illegal_tokens": illegal,
    })
    .to_string();
    ("80100000", msg)
}

#[allow(clippy::too_many_arguments)]
async fn process(
    req: &HttpRequest,
    app_id: &str,
    body: web::Payload,
    shared: &Shared,
    vendor: &Vendor,
    now: u64,
    rid: &str,
) -> Result<(&'static str, String), Reject> {
    let Vendor {
        rules,
        receipts,
        accounts,
    } = vendor;
    let mut headers = BTreeMap::new();
    // A bearer with three dot-separated parts is a service-account JWT (§2.2); anything else
    // must be an access token this emulator issued.
    let token = bearer(req);
    match token.filter(|t| t.split('.').count() == 3) {
        Some(jwt) => {
            let kid = accounts.check(jwt, app_id, now / 1000, rules, shared.accept_any_app)?;
            headers.insert("auth".to_owned(), format!("jwt {kid}"));
        }
        None => {
            check_access_token(shared, rules, token, app_id, now)?;
            headers.insert("auth".to_owned(), "oauth".to_owned());
        }
    }
    let (parsed, knobs) = json_within_limits(
        req,
        body,
        shared,
        rules,
        app_id,
        now,
        "message body too long",
    )
    .await?;
    let checked = validate(&parsed, rules)?;
    let (valid, illegal) = sort_tokens(shared, app_id, &checked.tokens)?;
    if checked.validate_only {
        return Ok(("80000000", "Success".into()));
    }
    let marketing = checked.category == "MARKETING";
    let (delivered, capped): (Vec<String>, Vec<String>) = valid.iter().cloned().partition(|t| {
        !marketing || shared.admit_marketing(app_id, t, knobs.marketing_daily_cap, now)
    });
    let records: Vec<ReceivedNotification> = delivered
        .iter()
        .map(|token| ReceivedNotification {
            seq: 0,
            endpoint: req.path().to_owned(),
            app_id: app_id.to_owned(),
            token: token.clone(),
            title: checked.title.clone(),
            body: checked.body.clone(),
            category: checked.category.clone(),
            importance: checked.importance.clone(),
            click_type: checked.click_type,
            intent: checked.intent.clone(),
            url: checked.url.clone(),
            ext: checked.intent.as_deref().and_then(intent_ext),
            channel_id: checked.channel_id.clone(),
            notify_id: checked.notify_id,
            bi_tag: checked.bi_tag.clone(),
            request_id: rid.to_owned(),
            headers: headers.clone(),
            message: checked.message.clone(),
            received_at_ms: now,
        })
        .collect();
    shared.record(records);
    receipts.accepted(
        &Accepted {
            app_id,
            receipt_id: checked.receipt_id.as_deref(),
            request_id: rid,
            bi_tag: checked.bi_tag.as_deref(),
            delivered: &delivered,
            capped: &capped,
        },
        knobs.receipt_delay_ms,
        knobs.receipt_loss_ratio,
    );
    Ok(accepted(valid.len(), illegal))
}

/// An OAuth access token: one this emulator issued, unexpired, to a client owning the app id.
/// What the v1 and v3 sends check alike before their bodies differ: a JSON content type, the
/// size (80300008, with the wording of each API's documentation in `too_long`), the body being
/// JSON, and the QPS knob counted under `key` (flow control is an HTTP 503 without Huawei's
/// envelope, spec §4, §6). Returns the body and the knobs read for this request.
pub(super) async fn json_within_limits(
    req: &HttpRequest,
    body: web::Payload,
    shared: &Shared,
    rules: &HuaweiRules,
    key: &str,
    now: u64,
    too_long: &str,
) -> Result<(Value, Knobs), Reject> {
    if !media_type(req).starts_with("application/json") {
        return Err(Reject::new(
            rules.bad_request_status,
            "80100001",
            "Content-Type must be application/json",
        ));
    }
    let raw = read_body(body, rules.max_body_bytes)
        .await
        .ok_or_else(|| Reject::new(rules.bad_request_status, "80300008", too_long))?;
    let parsed: Value = serde_json::from_slice(&raw).map_err(|_| {
        Reject::new(
            rules.bad_request_status,
            "80100003",
            "Illegal payload, the body is not JSON",
        )
    })?;
    let knobs = shared.knobs();
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit_qps(key, limit, now) {
            return Err(Reject::new(503, "", "Traffic control"));
        }
    }
    Ok((parsed, knobs))
}

fn check_access_token(
    shared: &Shared,
    rules: &HuaweiRules,
    token: Option<&str>,
    app_id: &str,
    now: u64,
) -> Result<(), Reject> {
    match shared.check_bearer(token, app_id, now) {
        BearerCheck::Ok => Ok(()),
        BearerCheck::Expired => Err(Reject::new(
            rules.auth_error_status,
            "80200003",
            "OAuth token expired",
        )),
        BearerCheck::Missing | BearerCheck::Unknown | BearerCheck::OtherApp => Err(Reject::new(
            rules.auth_error_status,
            "80200001",
            "Oauth authentication error",
        )),
    }
}

/// What the rules let through, decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checked {
    pub validate_only: bool,
    pub tokens: Vec<String>,
    pub title: String,
    pub body: String,
    pub category: String,
    pub importance: String,
    pub click_type: i64,
    pub intent: Option<String>,
    pub url: Option<String>,
    pub channel_id: Option<String>,
    pub notify_id: Option<i64>,
    pub bi_tag: Option<String>,
    /// `android.receipt_id`: which receipt configuration reports this message.
    pub receipt_id: Option<String>,
    /// The message without `token`.
    pub message: Value,
}

pub(super) fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `\d+|\d+[sS]|\d+.\d{1,9}|\d+.\d{1,9}[sS]` (spec §3).
fn ttl_ok(ttl: &str) -> bool {
    let t = ttl.strip_suffix(['s', 'S']).unwrap_or(ttl);
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (t, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a send body against spec §3 (the demos' validators).
pub(crate) fn validate(body: &Value, rules: &HuaweiRules) -> Result<Checked, Reject> {
    let bad = |code: &'static str, msg: &str| Reject::new(rules.bad_request_status, code, msg);
    let message = body
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad("80100003", "Illegal payload, message is required"))?;
    let validate_only = match body.get("validate_only") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("80100001", "validate_only must be a boolean")),
    };
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|k| message.get(**k).is_some_and(|v| !v.is_null()))
        .count();
    if targets != 1 {
        return Err(bad(
            "80100001",
            "exactly one of token, topic and condition is required",
        ));
    }
    let Some(tokens) = message.get("token") else {
        return Err(bad("80100001", "only token targets are emulated"));
    };
    let tokens: Vec<String> = match tokens.as_array() {
        Some(items) => items
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("82000010", "Some token is wrong"))?,
        None => return Err(bad("80100001", "token must be an array")),
    };
    if tokens.is_empty() || tokens.len() > rules.max_tokens {
        return Err(bad("80300010", "the number of tokens must be 1 to 1000"));
    }
    if tokens.iter().any(|t| t.trim().is_empty()) {
        return Err(bad("82000011", "Token is null"));
    }
    let mut without_tokens = message.clone();
    if let Some(m) = without_tokens.as_object_mut() {
        m.remove("token");
    }
    if without_tokens.to_string().len() > rules.payload_max_bytes {
        return Err(bad(
            "80300008",
            "message body size exceeds the default value",
        ));
    }

    let android = message.get("android").filter(|a| a.is_object());
    let common = message.get("notification");
    let notification = android
        .and_then(|a| a.get("notification"))
        .filter(|n| n.is_object());
    let pick = |key: &str| {
        notification
            .and_then(|n| text(n, key))
            .or_else(|| common.and_then(|c| text(c, key)))
            .filter(|s| !s.trim().is_empty())
    };
    let (Some(title), Some(body_text)) = (pick("title"), pick("body")) else {
        return Err(bad(
            "80100003",
            "Illegal payload, title and body are required",
        ));
    };

    let category = android.and_then(|a| text(a, "category")).unwrap_or("");
    if !category.is_empty() && !CATEGORIES.contains(&category) {
        return Err(bad(
            "80100001",
            "android.category is not a known classification",
        ));
    }
    if let Some(urgency) = android.and_then(|a| a.get("urgency")) {
        if !matches!(urgency.as_str(), Some("HIGH" | "NORMAL")) {
            return Err(bad("80100001", "urgency must be HIGH or NORMAL"));
        }
    }
    if let Some(ttl) = android.and_then(|a| a.get("ttl")) {
        if !ttl.as_str().is_some_and(ttl_ok) {
            return Err(bad("80100001", "ttl is not a valid duration"));
        }
    }
    if let Some(key) = android.and_then(|a| a.get("collapse_key")) {
        if !key.as_i64().is_some_and(|k| (-1..=100).contains(&k)) {
            return Err(bad("80100013", "collapse_key is illegal"));
        }
    }
    let Some(n) = notification else {
        return Err(bad(
            "80100003",
            "Illegal payload, android.notification is required",
        ));
    };
    let importance = text(n, "importance").unwrap_or("");
    match importance {
        "" | "LOW" | "NORMAL" => {}
        "HIGH" => {
            return Err(Reject::new(
                rules.bad_request_status,
                "80300011",
                "No permission to send high-level notification messages",
            ))
        }
        _ => return Err(bad("80100001", "importance must be LOW or NORMAL")),
    }
    let click = n
        .get("click_action")
        .filter(|c| c.is_object())
        .ok_or_else(|| bad("80100001", "click_action is required"))?;
    let click_type = click.get("type").and_then(Value::as_i64).unwrap_or(0);
    let intent = text(click, "intent").map(str::to_owned);
    let url = text(click, "url").map(str::to_owned);
    match click_type {
        1 if intent.is_none() && text(click, "action").is_none() => {
            return Err(bad(
                "80100001",
                "click_action type 1 needs intent or action",
            ))
        }
        2 if !url.as_deref().is_some_and(|u| u.starts_with("https")) => {
            return Err(bad("80100001", "click_action type 2 needs an https url"))
        }
        1..=4 => {}
        _ => return Err(bad("80100001", "click_action type must be 1 to 4")),
    }
    let custom_sound = text(n, "sound").is_some_and(|s| !s.is_empty());
    let default_sound = n.get("default_sound").and_then(Value::as_bool);
    if custom_sound && default_sound != Some(false) {
        return Err(bad("80100001", "sound requires default_sound false"));
    }
    Ok(Checked {
        validate_only,
        tokens,
        title: title.to_owned(),
        body: body_text.to_owned(),
        category: category.to_owned(),
        importance: importance.to_owned(),
        click_type,
        intent,
        url,
        channel_id: text(n, "channel_id").map(str::to_owned),
        notify_id: n.get("notify_id").and_then(Value::as_i64),
        bi_tag: android.and_then(|a| text(a, "bi_tag")).map(str::to_owned),
        receipt_id: android
            .and_then(|a| text(a, "receipt_id"))
            .map(str::to_owned),
        message: without_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClickAction;
    use crate::providers::huawei::wire::{send_body, HuaweiMessage};

    fn msg() -> HuaweiMessage {
        HuaweiMessage {
            title: "Alice".into(),
            body: "hi".into(),
            category: "IM".into(),
            importance: "NORMAL".into(),
            channel_id: None,
            package_name: "com.x".into(),
            click: ClickAction::OpenApp,
            ext: Some("{\"c\":1}".into()),
            notify_id: 1,
            sound: None,
            ext_carriage: Default::default(),
            bi_tag: None,
            receipt_id: None,
        }
    }

    fn check(body: &Value) -> Result<Checked, &'static str> {
        validate(body, &HuaweiRules::default()).map_err(|r| r.code)
    }

    #[test]
    fn our_client_body_passes() {
        let body: Value = serde_json::from_str(&send_body(&msg(), &["t1", "t2"])).expect("json");
        let c = check(&body).expect("valid");
        assert_eq!(c.tokens, ["t1", "t2"]);
        assert_eq!(
            (c.category.as_str(), c.importance.as_str()),
            ("IM", "NORMAL")
        );
        assert_eq!(c.click_type, 1);
        assert_eq!(
            c.intent.as_deref().and_then(intent_ext).as_deref(),
            Some("{\"c\":1}")
        );
        assert!(c.message.get("token").is_none());
    }

    #[test]
    fn the_rules_of_the_spec_are_enforced() {
        let good: Value = serde_json::from_str(&send_body(&msg(), &["t"])).expect("json");
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = good.clone();
            f(&mut b);
            check(&b).err()
        };
        assert_eq!(
            with(&|b| b["message"]["token"] = json!([])),
            Some("80300010")
        );
        let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        assert_eq!(
            with(&|b| b["message"]["token"] = json!(many)),
            Some("80300010")
        );
        assert_eq!(
            with(&|b| b["message"]["topic"] = json!("news")),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| b["message"]["token"] = json!([""])),
            Some("82000011")
        );
        assert_eq!(
            with(&|b| b["message"]["android"]["notification"]["body"] = json!("x".repeat(4096))),
            Some("80300008")
        );
        assert_eq!(
            with(&|b| b["message"]["android"]["category"] = json!("CHAT")),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| b["message"]["android"]["notification"]["importance"] = json!("HIGH")),
            Some("80300011")
        );
        assert_eq!(
            with(&|b| {
                b["message"]["android"]["notification"]
                    .as_object_mut()
                    .map(|n| n.remove("click_action"));
            }),
            Some("80100001")
        );
        assert_eq!(
            with(
                &|b| b["message"]["android"]["notification"]["click_action"] =
                    json!({"type": 2, "url": "http://x"})
            ),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| b["message"]["android"]["ttl"] = json!("1 day")),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| b["message"]["android"]["collapse_key"] = json!(101)),
            Some("80100013")
        );
        assert_eq!(
            with(&|b| b["message"]["android"]["notification"]["sound"] = json!("/raw/x")),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| {
                b["message"]["notification"] = json!({});
                b["message"]["android"]["notification"]["title"] = json!("");
            }),
            Some("80100003")
        );
        assert_eq!(check(&json!({"foo": 1})).err(), Some("80100003"));
        assert!(with(&|b| b["message"]["android"]["ttl"] = json!("86400.5S")).is_none());
    }
}
