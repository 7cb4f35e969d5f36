//! A loopback OPPO push server for tests, demos and load runs.
//!
//! It behaves as `spec/vendors/oppo.md` says OPPO behaves, not as our client happens to send:
//! the auth call's SHA-256 signature and ±10 min timestamp, `auth_token` on every send (11 when
//! unknown or expired), form encoding, `category` / `notify_level` rules (67), title and content
//! lengths, click actions, `action_parameters` size, ≤1,000 messages per `unicast_batch`,
//! per-target `errorCode` 10000, QPS counted in targets, the daily quota (33) and outages (5xx,
//! latency, hang), and the private-message template fields. Where the spec says UNCONFIRMED
//! the choice is an [`OppoRules`] field.
//! Shared machinery (knobs, received log, `/_emulator/*`) is `providers::emulator_kit`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::wire::{
    auth_sign, ACTION_PARAMETERS_MAX_BYTES, AUTH_PATH, CONTENT_MAX_CHARS, MAX_MESSAGES_PER_BATCH,
    TITLE_MAX_CHARS, UNICAST_BATCH_PATH, UNICAST_PATH,
};
use crate::providers::emulator_kit::{
    self as kit, json_response, now_ms, random_hex, EmulatorApp, KitRules, Knobs,
    ReceivedNotification, Shared, TokenCheck, TokenFate,
};

pub use crate::providers::emulator_kit::{
    EmulatorHandle, EmulatorStats, ReceivedFilter, TokenFate as Fate,
};

/// Choices where the spec is UNCONFIRMED, and OPPO's limits; fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OppoRules {
    /// Code of a QPS overrun: −2, 13 or 55 (§7 UNCONFIRMED); 55 "App Call Frequency Limit".
    pub rate_code: i64,
    /// Apps enabled after 2024-11-20 must send `category` (§4); older ones may omit it.
    pub require_category: bool,
    /// `notify_level` 16 (heads-up) needs OPPO's approval (§4); refused with 67 unless granted.
    pub allow_notify_level_16: bool,
    /// Timestamp tolerance of the auth call (§2: ±10 min).
    pub timestamp_skew_ms: u64,
    /// Service-category notifications (IM, ACCOUNT, …) must name a private-message template,
    /// refused with 67 otherwise: integrators report OPPO requiring it for IM since 2024, the
    /// spec does not confirm it. Off by default.
    pub require_private_template: bool,
    /// The templates registered in OPPO's console; another `private_msg_template_id` is refused
    /// (41). Empty: any id is taken.
    pub private_template_ids: Vec<String>,
}

impl Default for OppoRules {
    fn default() -> Self {
        OppoRules {
            rate_code: 55,
            require_category: true,
            allow_notify_level_16: false,
            timestamp_skew_ms: 10 * 60 * 1000,
            require_private_template: false,
            private_template_ids: Vec::new(),
        }
    }
}

/// How the emulator starts. Strict by default: no app is known until one is added (here, by
/// [`EmulatorHandle::add_app`] or `POST /_emulator/apps {"app_key","secret"}`), every regId is
/// valid until marked otherwise.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// `app_key` + `secret` (the MasterSecret) of each app.
    pub apps: Vec<EmulatorApp>,
    pub knobs: Knobs,
    pub kit: KitRules,
    pub rules: OppoRules,
}

impl EmulatorConfig {
    /// Any app key with any non-empty MasterSecret is accepted (load runs without setup).
    pub fn permissive() -> Self {
        EmulatorConfig {
            kit: KitRules {
                accept_any_app: true,
                ..KitRules::default()
            },
            ..EmulatorConfig::default()
        }
    }
}

/// An app as OPPO knows it: its AppKey and MasterSecret.
pub fn app(app_key: impl Into<String>, master_secret: impl Into<String>) -> EmulatorApp {
    EmulatorApp::new("", app_key, master_secret)
}

pub fn start(config: EmulatorConfig, listen: SocketAddr) -> std::io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new("oppo", config.apps, config.knobs, config.kit));
    let rules = web::Data::new(config.rules);
    kit::start(shared, listen, move |cfg| {
        cfg.app_data(rules.clone())
            .route(AUTH_PATH, web::post().to(auth))
            .route(UNICAST_PATH, web::post().to(unicast))
            .route(UNICAST_BATCH_PATH, web::post().to(unicast_batch));
    })
}

/// `pushgate emulator oppo`: runs until SIGTERM or ctrl-c.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> std::io::Result<()> {
    kit::run_until_signal(start(config, listen)?).await
}

/// An OPPO refusal: its code and English message (§6 texts).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reject {
    code: i64,
    message: String,
}

fn reject(code: i64, message: impl Into<String>) -> Reject {
    Reject {
        code,
        message: message.into(),
    }
}

fn reply(shared: &Shared, endpoint: &str, result: Result<Value, Reject>) -> HttpResponse {
    // Business errors come with HTTP 200 and OPPO's envelope (§5).
    let body = match result {
        Ok(data) => {
            shared.count_request(endpoint, "0");
            json!({"code": 0, "message": "Success", "data": data})
        }
        Err(r) => {
            shared.count_request(endpoint, &r.code.to_string());
            json!({"code": r.code, "message": r.message})
        }
    };
    json_response(StatusCode::OK, &body)
}

async fn read_form(
    req: &HttpRequest,
    body: web::Payload,
    shared: &Shared,
) -> Result<HashMap<String, String>, Reject> {
    if !kit::content_type_is(req, "application/x-www-form-urlencoded") {
        return Err(reject(
            40,
            "Missing Arguments: expected a x-www-form-urlencoded body",
        ));
    }
    let bytes = kit::read_body(body, shared.rules.max_body_bytes)
        .await
        .ok_or_else(|| {
            reject(
                41,
                "Invalid Arguments: the body could not be read or is too long",
            )
        })?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| reject(25, "Invalid Encoding"))?;
    Ok(pairs.into_iter().collect())
}

async fn auth(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    rules: web::Data<OppoRules>,
) -> HttpResponse {
    let result = async {
        let form = read_form(&req, body, &shared).await?;
        let app_key = form
            .get("app_key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| reject(15, "Missing AppKey"))?;
        let timestamp = form
            .get("timestamp")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| reject(18, "Missing Timestamp"))?;
        let sign = form
            .get("sign")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| reject(17, "Missing Signature"))?;
        let now = now_ms();
        let ts: u64 = timestamp
            .parse()
            .map_err(|_| reject(19, "Invalid Timestamp"))?;
        if now.abs_diff(ts) > rules.timestamp_skew_ms {
            return Err(reject(
                19,
                "Invalid Timestamp: more than 10 minutes from OPPO's clock",
            ));
        }
        let secret = match shared.find_app(|a| a.app_key == *app_key) {
            Some(app) => app.secret,
            None if shared.rules.accept_any_app => String::new(),
            None => return Err(reject(14, "Invalid AppKey")),
        };
        if !shared.rules.accept_any_app && *sign != auth_sign(app_key, ts, &secret) {
            return Err(reject(16, "Invalid Signature"));
        }
        let (token, _) = shared.issue_auth_token(app_key, now);
        Ok(json!({"auth_token": token, "create_time": now}))
    }
    .await;
    reply(&shared, AUTH_PATH, result)
}

async fn unicast(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    rules: web::Data<OppoRules>,
) -> HttpResponse {
    send(Endpoint::Unicast, req, body, shared, rules).await
}

async fn unicast_batch(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    rules: web::Data<OppoRules>,
) -> HttpResponse {
    send(Endpoint::Batch, req, body, shared, rules).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Unicast,
    Batch,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Unicast => UNICAST_PATH,
            Endpoint::Batch => UNICAST_BATCH_PATH,
        }
    }
}

async fn send(
    endpoint: Endpoint,
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    rules: web::Data<OppoRules>,
) -> HttpResponse {
    let path = endpoint.path();
    if let Some(outage) = kit::outage(&shared, path).await {
        return outage;
    }
    let result = process(endpoint, &req, body, &shared, &rules).await;
    reply(&shared, path, result)
}

/// One decoded message: its target and notification object.
struct Decoded {
    target: String,
    notification: Map<String, Value>,
}

async fn process(
    endpoint: Endpoint,
    req: &HttpRequest,
    body: web::Payload,
    shared: &Shared,
    rules: &OppoRules,
) -> Result<Value, Reject> {
    let form = read_form(req, body, shared).await?;
    let token = form
        .get("auth_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| reject(29, "Missing AuthToken"))?;
    let now = now_ms();
    let app_key = match shared.check_auth_token(token, now) {
        TokenCheck::Valid(app) => app,
        TokenCheck::Expired | TokenCheck::Unknown => return Err(reject(11, "Invalid AuthToken")),
    };
    let messages: Vec<Value> = match endpoint {
        Endpoint::Unicast => {
            let raw = form
                .get("message")
                .ok_or_else(|| reject(40, "Missing Arguments: message"))?;
            vec![serde_json::from_str(raw)
                .map_err(|_| reject(41, "Invalid Arguments: message is not JSON"))?]
        }
        Endpoint::Batch => {
            let raw = form
                .get("messages")
                .ok_or_else(|| reject(40, "Missing Arguments: messages"))?;
            serde_json::from_str(raw)
                .map_err(|_| reject(41, "Invalid Arguments: messages is not a JSON array"))?
        }
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES_PER_BATCH {
        return Err(reject(
            41,
            format!(
                "Invalid Arguments: {} messages, 1 to {MAX_MESSAGES_PER_BATCH} allowed",
                messages.len()
            ),
        ));
    }
    let decoded = messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| decode(i, m, rules))
        .collect::<Result<Vec<_>, _>>()?;

    let knobs = shared.knobs();
    // OPPO's QPS counts targets, shared by all APIs of the app (§7).
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit(&app_key, decoded.len() as u64, limit, now) {
            return Err(reject(rules.rate_code, "App Call Frequency Limit"));
        }
    }
    let fates: Vec<Option<TokenFate>> = decoded.iter().map(|d| shared.fate(&d.target)).collect();
    if endpoint == Endpoint::Unicast && fates.first() == Some(&Some(TokenFate::Invalid)) {
        return Err(reject(10000, "Invalid Registration_id"));
    }
    let deliverable = fates.iter().filter(|f| f.is_none()).count() as u64;
    if let Err(over) = shared.take_quota(&app_key, knobs.daily_quota, deliverable, now) {
        return Err(reject(
            33,
            format!(
                "The number of messages exceeds the daily limit ({} of {})",
                over.acked, over.quota
            ),
        ));
    }

    let mut entries = Vec::with_capacity(decoded.len());
    let mut records = Vec::new();
    let mut first_id = None;
    for (d, fate) in decoded.into_iter().zip(fates) {
        if fate == Some(TokenFate::Invalid) {
            entries.push(json!({"registrationId": d.target, "errorCode": 10000, "errorMessage": "Invalid Registration_id"}));
            continue;
        }
        let message_id = format!("{app_key}-1-1-{}", random_hex(24));
        first_id.get_or_insert_with(|| message_id.clone());
        entries.push(json!({"messageId": message_id, "registrationId": d.target}));
        // Switched-off devices are accepted: OPPO reports them only through receipts (§6).
        if fate.is_none() {
            let text = |k: &str| {
                d.notification
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            records.push(ReceivedNotification {
                seq: 0,
                endpoint: endpoint.path().to_owned(),
                app: app_key.clone(),
                target: d.target.clone(),
                title: text("title"),
                body: text("content"),
                message: Value::Object(d.notification),
                message_id,
                received_at_ms: now,
            });
        }
    }
    shared.record(records);
    Ok(match endpoint {
        Endpoint::Unicast => json!({"messageId": first_id.unwrap_or_default()}),
        Endpoint::Batch => Value::Array(entries),
    })
}

const CATEGORIES: &[&str] = &[
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

fn decode(i: usize, message: Value, rules: &OppoRules) -> Result<Decoded, Reject> {
    let bad = |what: &str| reject(41, format!("Invalid Arguments: messages[{i}]: {what}"));
    let Value::Object(mut message) = message else {
        return Err(bad("not an object"));
    };
    if message.get("target_type").and_then(Value::as_i64) != Some(2) {
        return Err(bad("target_type must be 2 (registration_id)"));
    }
    let target = message
        .get("target_value")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| bad("target_value is missing"))?
        .to_owned();
    let Some(Value::Object(n)) = message.remove("notification") else {
        return Err(bad("notification is missing"));
    };
    let text = |k: &str| n.get(k).and_then(Value::as_str);
    let title = text("title").unwrap_or_default();
    if title.trim().is_empty() || title.chars().count() > TITLE_MAX_CHARS {
        return Err(bad(&format!(
            "title must be 1 to {TITLE_MAX_CHARS} characters"
        )));
    }
    let content = text("content").unwrap_or_default();
    if content.trim().is_empty() || content.chars().count() > CONTENT_MAX_CHARS {
        return Err(bad(&format!(
            "content must be 1 to {CONTENT_MAX_CHARS} characters"
        )));
    }
    let category_error = |what: &str| {
        reject(
            67,
            format!("Category error / Private classify channel notify_level invalid: {what}"),
        )
    };
    match text("category") {
        Some(c) if CATEGORIES.contains(&c) => {}
        Some(c) => return Err(category_error(&format!("unknown category {c}"))),
        None if rules.require_category => return Err(category_error("category is required")),
        None => {}
    }
    match n.get("notify_level").map(Value::as_i64) {
        None => {}
        Some(_) if text("category").is_none() => {
            return Err(category_error("notify_level requires category"))
        }
        Some(Some(1 | 2)) => {}
        Some(Some(16)) if rules.allow_notify_level_16 => {}
        Some(Some(16)) => return Err(category_error("notify_level 16 needs OPPO's approval")),
        Some(_) => return Err(category_error("notify_level must be 1, 2 or 16")),
    }
    let has = |k: &str| text(k).is_some_and(|v| !v.trim().is_empty() && v.chars().count() <= 500);
    match n.get("click_action_type").map_or(Some(0), Value::as_i64) {
        Some(0) => {}
        Some(1 | 4) if has("click_action_activity") => {}
        Some(2) if has("click_action_url") && text("click_action_url").is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) => {}
        Some(5) if has("click_action_url") => {}
        _ => return Err(bad("click_action_type must be 0, 1/4 with click_action_activity, 2 with an http(s) click_action_url, or 5 with click_action_url")),
    }
    check_private_template(&n, rules, &bad, &category_error)?;
    if let Some(params) = n.get("action_parameters") {
        let ok = params.as_str().is_some_and(|p| {
            p.len() <= ACTION_PARAMETERS_MAX_BYTES
                && matches!(serde_json::from_str::<Value>(p), Ok(Value::Object(_)))
        });
        if !ok {
            return Err(bad(&format!("action_parameters must be a JSON object text of at most {ACTION_PARAMETERS_MAX_BYTES} bytes")));
        }
    }
    Ok(Decoded {
        target,
        notification: n,
    })
}

/// Service categories: the "communication & service" class (§4).
const SERVICE_CATEGORIES: &[&str] = &[
    "IM",
    "ACCOUNT",
    "DEVICE_REMINDER",
    "ORDER",
    "TODO",
    "SUBSCRIPTION",
];

/// `private_msg_template_id` (a registered template when the rules list them) and its
/// `private_title_parameters` / `private_content_parameters`, JSON objects of strings that
/// need the id.
fn check_private_template(
    n: &Map<String, Value>,
    rules: &OppoRules,
    bad: &dyn Fn(&str) -> Reject,
    category_error: &dyn Fn(&str) -> Reject,
) -> Result<(), Reject> {
    let id = match n.get("private_msg_template_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.trim().is_empty() => Some(id.as_str()),
        Some(_) => return Err(bad("private_msg_template_id must be a non-empty string")),
    };
    let service = n
        .get("category")
        .and_then(Value::as_str)
        .is_some_and(|c| SERVICE_CATEGORIES.contains(&c));
    match id {
        None if rules.require_private_template && service => {
            return Err(category_error(
                "a service message needs private_msg_template_id",
            ))
        }
        Some(id)
            if !rules.private_template_ids.is_empty()
                && !rules.private_template_ids.iter().any(|t| t == id) =>
        {
            return Err(bad(&format!(
                "private_msg_template_id {id} is not registered"
            )))
        }
        _ => {}
    }
    for key in ["private_title_parameters", "private_content_parameters"] {
        match n.get(key) {
            None | Some(Value::Null) => {}
            Some(_) if id.is_none() => {
                return Err(bad(&format!("{key} needs private_msg_template_id")))
            }
            Some(Value::Object(params)) if params.values().all(Value::is_string) => {}
            Some(_) => return Err(bad(&format!("{key} must be a JSON object of strings"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(notification: Value) -> Value {
        json!({"target_type": 2, "target_value": "CN_a", "notification": notification})
    }

    fn ok() -> Value {
        json!({"title": "t", "content": "c", "category": "IM", "notify_level": 2})
    }

    #[test]
    fn decode_accepts_a_chat_and_refuses_what_oppo_refuses() {
        let rules = OppoRules::default();
        assert!(decode(0, message(ok()), &rules).is_ok());
        let code = |n: Value| decode(0, message(n), &rules).err().map(|r| r.code);
        assert_eq!(code(json!({"title": "t", "content": "c"})), Some(67));
        assert_eq!(
            code(json!({"title": "t", "content": "c", "category": "CHAT"})),
            Some(67)
        );
        assert_eq!(
            code(json!({"title": "t", "content": "c", "category": "IM", "notify_level": 16})),
            Some(67)
        );
        assert_eq!(
            code(json!({"title": "t", "content": "c", "category": "IM", "notify_level": 3})),
            Some(67)
        );
        assert_eq!(
            code(json!({"title": "", "content": "c", "category": "IM"})),
            Some(41)
        );
        assert_eq!(
            code(json!({"title": "t".repeat(51), "content": "c", "category": "IM"})),
            Some(41)
        );
        assert_eq!(
            code(json!({"title": "t", "content": "c".repeat(201), "category": "IM"})),
            Some(41)
        );
        assert_eq!(
            code(
                json!({"title": "t", "content": "c", "category": "IM", "click_action_type": 2, "click_action_url": "ftp://x"})
            ),
            Some(41)
        );
        assert_eq!(
            code(json!({"title": "t", "content": "c", "category": "IM", "click_action_type": 5})),
            Some(41)
        );
        assert_eq!(
            code(
                json!({"title": "t", "content": "c", "category": "IM", "action_parameters": "[1]"})
            ),
            Some(41)
        );
        assert_eq!(
            code(
                json!({"title": "t", "content": "c", "category": "IM", "action_parameters": format!("{{\"ext\":\"{}\"}}", "x".repeat(4100))})
            ),
            Some(41)
        );
        let lax = OppoRules {
            require_category: false,
            ..OppoRules::default()
        };
        assert!(decode(0, message(json!({"title": "t", "content": "c"})), &lax).is_ok());
        assert!(decode(
            0,
            json!({"target_type": 5, "target_value": "x", "notification": ok()}),
            &rules
        )
        .is_err());
        assert!(decode(0, json!([]), &rules).is_err());
    }

    #[test]
    fn private_template_checks_follow_the_rules() {
        let rules = OppoRules::default();
        let with = |extra: Value| {
            let mut n = ok();
            if let (Value::Object(n), Value::Object(extra)) = (&mut n, extra) {
                n.extend(extra);
            }
            message(n)
        };
        let code = |m: Value, rules: &OppoRules| decode(0, m, rules).err().map(|r| r.code);
        let full = json!({"private_msg_template_id": "tpl-1",
            "private_title_parameters": {"title": "Bob"},
            "private_content_parameters": {"content": "hi"}});
        assert_eq!(code(with(full.clone()), &rules), None);
        assert_eq!(code(message(ok()), &rules), None, "not required by default");
        assert_eq!(
            code(
                with(json!({"private_title_parameters": {"t": "x"}})),
                &rules
            ),
            Some(41),
            "parameters without a template"
        );
        assert_eq!(
            code(
                with(
                    json!({"private_msg_template_id": "tpl-1", "private_title_parameters": {"t": 1}})
                ),
                &rules
            ),
            Some(41)
        );
        let strict = OppoRules {
            require_private_template: true,
            private_template_ids: vec!["tpl-1".into()],
            ..OppoRules::default()
        };
        assert_eq!(code(message(ok()), &strict), Some(67));
        assert_eq!(code(with(full), &strict), None);
        assert_eq!(
            code(with(json!({"private_msg_template_id": "tpl-2"})), &strict),
            Some(41)
        );
        // Marketing needs no template even then.
        let marketing = json!({"title": "t", "content": "c", "category": "MARKETING"});
        assert_eq!(code(message(marketing), &strict), None);
    }
}
