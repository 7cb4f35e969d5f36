//! A loopback vivo push server for tests, demos and load runs.
//!
//! It behaves as `spec/vendors/vivo.md` says vivo behaves: the auth call's MD5 signature, ±10 min
//! timestamp and 10 calls/s per app (10250); the `authToken` header on every send (10000 when
//! unknown or expired); `appId` in every body matching the token's app (10094); classification
//! and category; title and content widths; `clientCustomMap` limits; `saveListPayload` →
//! `taskId` → `pushToList` with 2…1000 regIds and `invalidUsers`; 10302 for an illegal regId on a
//! single send; QPS (10072), the daily quota (10070) and outages (5xx, latency, hang). Where the
//! spec says UNCONFIRMED the choice is a [`VivoRules`] field.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::wire::{
    auth_sign, AUTH_PATH, CONTENT_MAX_WIDTH, CUSTOM_MAP_MAX_CHARS, CUSTOM_MAP_MAX_PAIRS,
    MAX_REGIDS_PER_LIST, MIN_REGIDS_PER_LIST, OPERATIONAL_CATEGORIES, PUSH_TO_LIST_PATH,
    REQUEST_ID_MAX_CHARS, SAVE_LIST_PAYLOAD_PATH, SEND_PATH, SYSTEM_CATEGORIES, TITLE_MAX_WIDTH,
};
use crate::providers::emulator_kit::{
    self as kit, json_response, now_ms, random_hex, EmulatorApp, KitRules, Knobs,
    ReceivedNotification, Shared, TokenCheck, TokenFate,
};
use crate::providers::text::width;

pub use crate::providers::emulator_kit::{EmulatorHandle, EmulatorStats, ReceivedFilter};

/// Choices where the spec is UNCONFIRMED, and vivo's limits; fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VivoRules {
    /// Auth calls per app and second (§2: 10); more get 10250.
    pub auth_calls_per_sec: u32,
    /// Code of a parameter error: any 10xxx outside the table; vivo's own numbers per field are
    /// UNCONFIRMED (§5 "other 10xxx"), 10055 is our pick.
    pub param_error_code: i64,
    /// Timestamp tolerance of the auth call (§2: ±10 min).
    pub timestamp_skew_ms: u64,
}

impl Default for VivoRules {
    fn default() -> Self {
        VivoRules {
            auth_calls_per_sec: 10,
            param_error_code: 10055,
            timestamp_skew_ms: 10 * 60 * 1000,
        }
    }
}

/// How the emulator starts. Strict by default: no app is known until one is added (here, by
/// [`EmulatorHandle::add_app`] or `POST /_emulator/apps {"app_id","app_key","secret"}`).
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// `app_id` (numeric) + `app_key` + `secret` (the AppSecret) of each app.
    pub apps: Vec<EmulatorApp>,
    pub knobs: Knobs,
    pub kit: KitRules,
    pub rules: VivoRules,
}

impl EmulatorConfig {
    /// Any numeric app id with any app key and non-empty signature is accepted (load runs).
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

/// An app as vivo knows it.
pub fn app(app_id: u64, app_key: impl Into<String>, app_secret: impl Into<String>) -> EmulatorApp {
    EmulatorApp::new(app_id.to_string(), app_key, app_secret)
}

/// A saved list payload: the app that saved it and its message.
type SavedPayload = (String, Map<String, Value>);

struct VivoState {
    rules: VivoRules,
    /// taskId → saved payload.
    tasks: Mutex<HashMap<String, SavedPayload>>,
}

pub fn start(config: EmulatorConfig, listen: SocketAddr) -> std::io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new("vivo", config.apps, config.knobs, config.kit));
    let state = web::Data::new(VivoState {
        rules: config.rules,
        tasks: Mutex::default(),
    });
    kit::start(shared, listen, move |cfg| {
        cfg.app_data(state.clone())
            .route(AUTH_PATH, web::post().to(auth))
            .route(SEND_PATH, web::post().to(send))
            .route(SAVE_LIST_PAYLOAD_PATH, web::post().to(save_list_payload))
            .route(PUSH_TO_LIST_PATH, web::post().to(push_to_list));
    })
}

/// `pushgate emulator vivo`: runs until SIGTERM or ctrl-c.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> std::io::Result<()> {
    kit::run_until_signal(start(config, listen)?).await
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Reject {
    code: i64,
    desc: String,
}

fn reject(code: i64, desc: impl Into<String>) -> Reject {
    Reject {
        code,
        desc: desc.into(),
    }
}

fn reply(
    shared: &Shared,
    endpoint: &str,
    result: Result<Map<String, Value>, Reject>,
) -> HttpResponse {
    // Business errors come with HTTP 200 and vivo's envelope (§4).
    let body = match result {
        Ok(mut fields) => {
            shared.count_request(endpoint, "0");
            fields.insert("result".into(), json!(0));
            fields.insert("desc".into(), json!("请求成功"));
            Value::Object(fields)
        }
        Err(r) => {
            shared.count_request(endpoint, &r.code.to_string());
            json!({"result": r.code, "desc": r.desc})
        }
    };
    json_response(StatusCode::OK, &body)
}

async fn read_json(
    req: &HttpRequest,
    body: web::Payload,
    shared: &Shared,
    param: i64,
) -> Result<Map<String, Value>, Reject> {
    if !kit::content_type_is(req, "application/json") {
        return Err(reject(
            param,
            "Content-Type不合法: expected application/json",
        ));
    }
    let bytes = kit::read_body(body, shared.rules.max_body_bytes)
        .await
        .ok_or_else(|| reject(param, "请求体过长"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(reject(param, "请求体不是JSON对象")),
    }
}

/// appId as vivo reads it: a JSON number (or numeric string).
fn app_id_of(body: &Map<String, Value>) -> Option<String> {
    match body.get("appId") {
        Some(Value::Number(n)) => n.as_u64().map(|n| n.to_string()),
        Some(Value::String(s)) if s.parse::<u64>().is_ok() => Some(s.clone()),
        _ => None,
    }
}

async fn auth(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    state: web::Data<VivoState>,
) -> HttpResponse {
    let rules = &state.rules;
    let result = async {
        let body = read_json(&req, body, &shared, 10200).await?;
        let missing = || reject(10200, "appId/appKey/timestamp/sign不能为空");
        let app_id = app_id_of(&body).ok_or_else(missing)?;
        let app_key = body
            .get("appKey")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or_else(missing)?;
        let timestamp = body
            .get("timestamp")
            .and_then(Value::as_u64)
            .ok_or_else(missing)?;
        let sign = body
            .get("sign")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(missing)?;
        let now = now_ms();
        if !shared.admit(&format!("auth:{app_id}"), 1, rules.auth_calls_per_sec, now) {
            return Err(reject(10250, "鉴权接口调用超过限制"));
        }
        if now.abs_diff(timestamp) > rules.timestamp_skew_ms {
            return Err(reject(10207, "timestamp不合法"));
        }
        let secret = match shared.find_app(|a| a.app_id == app_id) {
            Some(app) if app.app_key == app_key => app.secret,
            Some(_) => return Err(reject(10200, "appKey不合法")),
            None if shared.rules.accept_any_app => String::new(),
            None => return Err(reject(10200, "appId不存在")),
        };
        let numeric: u64 = app_id.parse().map_err(|_| missing())?;
        if !shared.rules.accept_any_app && sign != auth_sign(numeric, app_key, timestamp, &secret) {
            return Err(reject(10206, "sign不合法"));
        }
        let (token, _) = shared.issue_auth_token(&app_id, now);
        let mut out = Map::new();
        out.insert("authToken".into(), json!(token));
        Ok(out)
    }
    .await;
    reply(&shared, AUTH_PATH, result)
}

/// Checks the `authToken` header and the body's `appId`; returns the app id.
fn authorize(
    req: &HttpRequest,
    body: &Map<String, Value>,
    shared: &Shared,
    now: u64,
) -> Result<String, Reject> {
    let token = req
        .headers()
        .get("authToken")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let app = match shared.check_auth_token(token, now) {
        TokenCheck::Valid(app) => app,
        TokenCheck::Expired | TokenCheck::Unknown => return Err(reject(10000, "无权限请求")),
    };
    if app_id_of(body).as_deref() != Some(app.as_str()) {
        return Err(reject(10094, "appId与authToken不一致"));
    }
    Ok(app)
}

fn request_id(body: &Map<String, Value>, param: i64) -> Result<(), Reject> {
    match body.get("requestId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.chars().count() <= REQUEST_ID_MAX_CHARS => Ok(()),
        _ => Err(reject(param, "requestId不合法")),
    }
}

/// The message fields of `/message/send` and `saveListPayload` (§3).
fn validate(m: &Map<String, Value>, param: i64) -> Result<(), Reject> {
    let bad = |what: &str| reject(param, format!("{what}不合法"));
    let text = |k: &str| m.get(k).and_then(Value::as_str);
    let int = |k: &str| m.get(k).and_then(Value::as_i64);
    let title = text("title").unwrap_or_default();
    if title.trim().is_empty() || width(title) > TITLE_MAX_WIDTH {
        return Err(bad("title"));
    }
    let content = text("content").unwrap_or_default();
    if content.trim().is_empty() || width(content) > CONTENT_MAX_WIDTH {
        return Err(bad("content"));
    }
    if !matches!(int("notifyType"), Some(1..=4)) {
        return Err(bad("notifyType"));
    }
    if m.contains_key("timeToLive") && !matches!(int("timeToLive"), Some(60..=604_800)) {
        return Err(bad("timeToLive"));
    }
    let skip_content = text("skipContent").unwrap_or_default();
    match int("skipType") {
        Some(1) => {}
        Some(2)
            if (skip_content.starts_with("http://") || skip_content.starts_with("https://"))
                && skip_content.chars().count() <= 1000 => {}
        Some(4) if !skip_content.is_empty() && skip_content.chars().count() <= 1024 => {}
        _ => return Err(bad("skipType/skipContent")),
    }
    let classification = match m.get("classification") {
        None => 0,
        Some(v) => match v.as_i64() {
            Some(c @ (0 | 1)) => c,
            _ => return Err(bad("classification")),
        },
    };
    if let Some(category) = m.get("category") {
        let allowed = if classification == 1 {
            SYSTEM_CATEGORIES
        } else {
            OPERATIONAL_CATEGORIES
        };
        if !category.as_str().is_some_and(|c| allowed.contains(&c)) {
            return Err(bad("category"));
        }
    }
    if let Some(map) = m.get("clientCustomMap") {
        let Some(map) = map.as_object() else {
            return Err(bad("clientCustomMap"));
        };
        let mut total = 0;
        for (k, v) in map {
            let Some(v) = v.as_str() else {
                return Err(bad("clientCustomMap"));
            };
            total += k.chars().count() + v.chars().count();
        }
        if map.len() > CUSTOM_MAP_MAX_PAIRS || total > CUSTOM_MAP_MAX_CHARS {
            return Err(bad("clientCustomMap"));
        }
    }
    if m.contains_key("notifyId") && !matches!(int("notifyId"), Some(1..=2_147_483_647)) {
        return Err(bad("notifyId"));
    }
    if !matches!(
        m.get("pushMode").map_or(Some(0), Value::as_i64),
        Some(0 | 1)
    ) {
        return Err(bad("pushMode"));
    }
    Ok(())
}

/// QPS (per request) and the daily quota, then the records of the deliverable targets.
fn admit_and_record(
    shared: &Shared,
    endpoint: &str,
    app: &str,
    now: u64,
    message: &Map<String, Value>,
    targets: &[(String, Option<TokenFate>)],
    task_id: &str,
) -> Result<(), Reject> {
    let knobs = shared.knobs();
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit(app, 1, limit, now) {
            return Err(reject(10072, "发送频率过快(超频)"));
        }
    }
    let deliverable = targets.iter().filter(|(_, f)| f.is_none()).count() as u64;
    if let Err(over) = shared.take_quota(app, knobs.daily_quota, deliverable, now) {
        return Err(reject(
            10070,
            format!("发送总量超出限制({}/{})", over.acked, over.quota),
        ));
    }
    let text = |k: &str| {
        message
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let records = targets
        .iter()
        .filter(|(_, f)| f.is_none())
        .map(|(target, _)| ReceivedNotification {
            seq: 0,
            endpoint: endpoint.to_owned(),
            app: app.to_owned(),
            target: target.clone(),
            title: text("title"),
            body: text("content"),
            message: Value::Object(message.clone()),
            message_id: task_id.to_owned(),
            received_at_ms: now,
        })
        .collect();
    shared.record(records);
    Ok(())
}

fn invalid_user(target: &str, fate: TokenFate) -> Value {
    let status = match fate {
        TokenFate::Invalid => 1,
        TokenFate::SwitchedOff => 2,
    };
    json!({"userid": target, "status": status})
}

async fn send(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    state: web::Data<VivoState>,
) -> HttpResponse {
    if let Some(outage) = kit::outage(&shared, SEND_PATH).await {
        return outage;
    }
    let param = state.rules.param_error_code;
    let result = async {
        let m = read_json(&req, body, &shared, param).await?;
        let now = now_ms();
        let app = authorize(&req, &m, &shared, now)?;
        request_id(&m, param)?;
        let reg_id = m
            .get("regId")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| reject(param, "regId不能为空"))?
            .to_owned();
        validate(&m, param)?;
        let fate = shared.fate(&reg_id);
        if fate == Some(TokenFate::Invalid) {
            return Err(reject(10302, "regId不合法"));
        }
        let task_id = random_hex(16);
        admit_and_record(
            &shared,
            SEND_PATH,
            &app,
            now,
            &m,
            &[(reg_id.clone(), fate)],
            &task_id,
        )?;
        let mut out = Map::new();
        out.insert("taskId".into(), json!(task_id));
        if let Some(fate) = fate {
            out.insert("invalidUser".into(), invalid_user(&reg_id, fate));
        }
        Ok(out)
    }
    .await;
    reply(&shared, SEND_PATH, result)
}

async fn save_list_payload(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    state: web::Data<VivoState>,
) -> HttpResponse {
    if let Some(outage) = kit::outage(&shared, SAVE_LIST_PAYLOAD_PATH).await {
        return outage;
    }
    let param = state.rules.param_error_code;
    let result = async {
        let m = read_json(&req, body, &shared, param).await?;
        let app = authorize(&req, &m, &shared, now_ms())?;
        request_id(&m, param)?;
        if m.contains_key("regId") {
            return Err(reject(param, "saveListPayload不接受regId"));
        }
        validate(&m, param)?;
        let task_id = random_hex(16);
        state
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task_id.clone(), (app, m));
        let mut out = Map::new();
        out.insert("taskId".into(), json!(task_id));
        Ok(out)
    }
    .await;
    reply(&shared, SAVE_LIST_PAYLOAD_PATH, result)
}

async fn push_to_list(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    state: web::Data<VivoState>,
) -> HttpResponse {
    if let Some(outage) = kit::outage(&shared, PUSH_TO_LIST_PATH).await {
        return outage;
    }
    let param = state.rules.param_error_code;
    let result = async {
        let m = read_json(&req, body, &shared, param).await?;
        let now = now_ms();
        let app = authorize(&req, &m, &shared, now)?;
        request_id(&m, param)?;
        let reg_ids: Vec<String> = m
            .get("regIds")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if !(MIN_REGIDS_PER_LIST..=MAX_REGIDS_PER_LIST).contains(&reg_ids.len()) {
            return Err(reject(
                param,
                format!("regIds数量不合法: {} (2-1000)", reg_ids.len()),
            ));
        }
        let task_id = m.get("taskId").and_then(Value::as_str).unwrap_or_default();
        let message = match state
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task_id)
        {
            Some((owner, message)) if *owner == app => message.clone(),
            _ => return Err(reject(param, "taskId不合法")),
        };
        let targets: Vec<(String, Option<TokenFate>)> = reg_ids
            .into_iter()
            .map(|r| {
                let fate = shared.fate(&r);
                (r, fate)
            })
            .collect();
        admit_and_record(
            &shared,
            PUSH_TO_LIST_PATH,
            &app,
            now,
            &message,
            &targets,
            task_id,
        )?;
        let invalid: Vec<Value> = targets
            .iter()
            .filter_map(|(t, f)| f.map(|f| invalid_user(t, f)))
            .collect();
        let mut out = Map::new();
        out.insert("taskId".into(), json!(task_id));
        out.insert("invalidUsers".into(), Value::Array(invalid));
        Ok(out)
    }
    .await;
    reply(&shared, PUSH_TO_LIST_PATH, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> Map<String, Value> {
        match json!({"title": "Alice", "content": "hi", "notifyType": 4, "skipType": 1,
                     "classification": 1, "category": "IM", "requestId": "r"})
        {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn validate_accepts_a_chat_and_refuses_what_vivo_refuses() {
        assert!(validate(&chat(), 10055).is_ok());
        let refused = |k: &str, v: Value| {
            let mut m = chat();
            m.insert(k.into(), v);
            validate(&m, 10055).err().map(|r| r.code)
        };
        assert_eq!(refused("title", json!("新".repeat(21))), Some(10055));
        assert_eq!(refused("title", json!("")), Some(10055));
        assert_eq!(refused("content", json!("a".repeat(101))), Some(10055));
        assert_eq!(refused("notifyType", json!(5)), Some(10055));
        assert_eq!(refused("classification", json!(2)), Some(10055));
        assert_eq!(
            refused("category", json!("MARKETING")),
            Some(10055),
            "operational class with classification 1"
        );
        assert_eq!(refused("skipType", json!(2)), Some(10055), "URL missing");
        assert_eq!(refused("skipType", json!(3)), Some(10055));
        assert_eq!(
            refused("clientCustomMap", json!({"ext": "x".repeat(1022)})),
            Some(10055)
        );
        assert_eq!(refused("notifyId", json!(0)), Some(10055));
        assert_eq!(refused("timeToLive", json!(30)), Some(10055));
        assert!(refused("clientCustomMap", json!({"ext": "{}"})).is_none());
    }
}
