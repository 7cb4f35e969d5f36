//! A loopback Meizu push server for tests, demos and load runs.
//!
//! It behaves as `spec/vendors/meizu.md` says Meizu behaves: the MD5 signature over the sorted
//! parameters plus AppSecret (1006), a known appId (110000), required parameters (110004),
//! `messageJson` limits (1005), comma-separated push ids, the per-target `value` map (110003
//! illegal, 110010 switched off), QPS (request-level 110010), the daily quota (110019) and
//! outages (5xx, latency, hang). Where the spec says UNCONFIRMED the choice is a [`MeizuRules`]
//! field.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::wire::{
    sign, CONTENT_MAX_CHARS, MAX_PUSH_IDS_PER_REQUEST, PUSH_BY_PUSH_ID_PATH, TITLE_MAX_CHARS,
};
use crate::providers::emulator_kit::{
    self as kit, json_response, now_ms, random_hex, EmulatorApp, KitRules, Knobs,
    ReceivedNotification, Shared, TokenFate,
};

pub use crate::providers::emulator_kit::{EmulatorHandle, EmulatorStats, ReceivedFilter};

/// Meizu's limits where the spec is UNCONFIRMED; fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeizuRules {
    /// Push ids per request; 1,000 is what integrators use, Meizu's maximum is UNCONFIRMED.
    pub max_push_ids: usize,
}

impl Default for MeizuRules {
    fn default() -> Self {
        MeizuRules {
            max_push_ids: MAX_PUSH_IDS_PER_REQUEST,
        }
    }
}

/// How the emulator starts. Strict by default: no app is known until one is added (here, by
/// [`EmulatorHandle::add_app`] or `POST /_emulator/apps {"app_id","secret"}`).
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// `app_id` + `secret` (the AppSecret) of each app.
    pub apps: Vec<EmulatorApp>,
    pub knobs: Knobs,
    pub kit: KitRules,
    pub rules: MeizuRules,
}

impl EmulatorConfig {
    /// Any appId is accepted and signatures are not checked (load runs without setup).
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

/// An app as Meizu knows it.
pub fn app(app_id: impl Into<String>, app_secret: impl Into<String>) -> EmulatorApp {
    EmulatorApp::new(app_id, "", app_secret)
}

pub fn start(config: EmulatorConfig, listen: SocketAddr) -> std::io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new("meizu", config.apps, config.knobs, config.kit));
    let rules = web::Data::new(config.rules);
    kit::start(shared, listen, move |cfg| {
        cfg.app_data(rules.clone())
            .route(PUSH_BY_PUSH_ID_PATH, web::post().to(push_by_push_id));
    })
}

/// `pushgate emulator meizu`: runs until SIGTERM or ctrl-c.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> std::io::Result<()> {
    kit::run_until_signal(start(config, listen)?).await
}

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

async fn push_by_push_id(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    rules: web::Data<MeizuRules>,
) -> HttpResponse {
    if let Some(outage) = kit::outage(&shared, PUSH_BY_PUSH_ID_PATH).await {
        return outage;
    }
    // Codes travel as strings; business errors with HTTP 200 (§4).
    let body = match process(&req, body, &shared, &rules).await {
        Ok((value, msg_id)) => {
            shared.count_request(PUSH_BY_PUSH_ID_PATH, "200");
            json!({"code": "200", "message": "", "value": value, "redirect": "", "msgId": msg_id})
        }
        Err(r) => {
            shared.count_request(PUSH_BY_PUSH_ID_PATH, &r.code.to_string());
            json!({"code": r.code.to_string(), "message": r.message, "value": {}, "redirect": ""})
        }
    };
    json_response(StatusCode::OK, &body)
}

async fn process(
    req: &HttpRequest,
    body: web::Payload,
    shared: &Shared,
    rules: &MeizuRules,
) -> Result<(Value, String), Reject> {
    if !kit::content_type_is(req, "application/x-www-form-urlencoded") {
        return Err(reject(
            1005,
            "parameter error: expected a x-www-form-urlencoded body",
        ));
    }
    let bytes = kit::read_body(body, shared.rules.max_body_bytes)
        .await
        .ok_or_else(|| reject(1005, "parameter error: body unreadable or too long"))?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| reject(1005, "parameter error: not form-encoded"))?;
    let form: HashMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let required = |k: &str| {
        form.get(k)
            .copied()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| reject(110_004, format!("parameter empty: {k}")))
    };
    let app_id = required("appId")?;
    let signature = required("sign")?;
    let push_ids = required("pushIds")?;
    let message = required("messageJson")?;
    match shared.find_app(|a| a.app_id == app_id) {
        Some(app) => {
            let unsigned: Vec<(&str, &str)> = pairs
                .iter()
                .filter(|(k, _)| k != "sign")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            if sign(&unsigned, &app.secret) != signature {
                return Err(reject(1006, "signature failed"));
            }
        }
        None if shared.rules.accept_any_app => {}
        None => return Err(reject(110_000, "appId illegal")),
    }
    let targets: Vec<&str> = push_ids
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if targets.is_empty() || targets.len() > rules.max_push_ids {
        return Err(reject(
            1005,
            format!(
                "parameter error: {} pushIds, 1 to {} allowed",
                targets.len(),
                rules.max_push_ids
            ),
        ));
    }
    let message: Map<String, Value> = match serde_json::from_str(message) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(reject(
                1005,
                "parameter error: messageJson is not a JSON object",
            ))
        }
    };
    validate(&message)?;

    let now = now_ms();
    let knobs = shared.knobs();
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit(app_id, 1, limit, now) {
            return Err(reject(110_010, "app request frequency too high"));
        }
    }
    let fates: Vec<(&str, Option<TokenFate>)> =
        targets.iter().map(|t| (*t, shared.fate(t))).collect();
    let deliverable = fates.iter().filter(|(_, f)| f.is_none()).count() as u64;
    if let Err(over) = shared.take_quota(app_id, knobs.daily_quota, deliverable, now) {
        return Err(reject(
            110_019,
            format!(
                "app daily push count exceeded ({}/{})",
                over.acked, over.quota
            ),
        ));
    }
    let msg_id = format!("NS{}", random_hex(20));
    let mut value: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let bar = message.get("noticeBarInfo");
    let text = |k: &str| {
        bar.and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut records = Vec::new();
    for (target, fate) in fates {
        match fate {
            Some(TokenFate::Invalid) => value.entry("110003").or_default().push(target),
            Some(TokenFate::SwitchedOff) => value.entry("110010").or_default().push(target),
            None => records.push(ReceivedNotification {
                seq: 0,
                endpoint: PUSH_BY_PUSH_ID_PATH.to_owned(),
                app: app_id.to_owned(),
                target: target.to_owned(),
                title: text("title"),
                body: text("content"),
                message: Value::Object(message.clone()),
                message_id: msg_id.clone(),
                received_at_ms: now,
            }),
        }
    }
    shared.record(records);
    Ok((json!(value), msg_id))
}

/// `messageJson` as the Java SDK's `VarnishedMessage` defines it (§3).
fn validate(m: &Map<String, Value>) -> Result<(), Reject> {
    let bad = |what: &str| reject(1005, format!("parameter error: {what}"));
    let Some(bar) = m.get("noticeBarInfo").and_then(Value::as_object) else {
        return Err(bad("noticeBarInfo is required"));
    };
    let text =
        |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let title = text(bar, "title").unwrap_or_default();
    if title.trim().is_empty() || title.chars().count() > TITLE_MAX_CHARS {
        return Err(bad(&format!(
            "title must be 1 to {TITLE_MAX_CHARS} characters"
        )));
    }
    let content = text(bar, "content").unwrap_or_default();
    if content.trim().is_empty() || content.chars().count() > CONTENT_MAX_CHARS {
        return Err(bad(&format!(
            "content must be 1 to {CONTENT_MAX_CHARS} characters"
        )));
    }
    if !matches!(
        bar.get("noticeMsgType").map_or(Some(0), Value::as_i64),
        Some(0 | 1)
    ) {
        return Err(bad("noticeMsgType must be 0 or 1"));
    }
    if !matches!(
        bar.get("noticeBarType").map_or(Some(0), Value::as_i64),
        Some(0 | 2)
    ) {
        return Err(bad("noticeBarType must be 0 or 2"));
    }
    if let Some(click) = m.get("clickTypeInfo") {
        let Some(click) = click.as_object() else {
            return Err(bad("clickTypeInfo must be an object"));
        };
        let has = |k: &str| text(click, k).is_some_and(|v| !v.trim().is_empty() && v.len() <= 1000);
        match click.get("clickType").map_or(Some(0), Value::as_i64) {
            Some(0) => {}
            Some(1) if has("activity") => {}
            Some(2) if has("url") => {}
            Some(3) if has("customAttribute") => {}
            _ => {
                return Err(bad(
                    "clickType must be 0, 1 with activity, 2 with url or 3 with customAttribute",
                ))
            }
        }
        if click.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(bad("parameters must be a JSON object"));
        }
    }
    if let Some(time) = m.get("pushTimeInfo").and_then(Value::as_object) {
        if time.contains_key("validTime")
            && !matches!(time.get("validTime").and_then(Value::as_i64), Some(1..=72))
        {
            return Err(bad("validTime must be 1 to 72 hours"));
        }
    }
    if let Some(key) = m.get("advanceInfo").and_then(|a| a.get("notifyKey")) {
        let ok = key.as_str().is_some_and(|k| {
            k.len() <= 8
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        if !ok {
            return Err(bad(
                "notifyKey must be at most 8 characters of [0-9a-zA-Z_-]",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ClickAction;
    use crate::providers::meizu::wire::{message_json, MeizuNotification};

    fn our_message() -> Map<String, Value> {
        let n = MeizuNotification {
            title: "t".into(),
            content: "c".into(),
            notice_msg_type: 1,
            click: ClickAction::OpenUrl {
                url: "https://e.x".into(),
            },
            ext: Some("{}".into()),
            notify_id: 1,
        };
        match serde_json::from_str(&message_json(&n)) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn validate_accepts_ours_and_refuses_what_meizu_refuses() {
        assert!(validate(&our_message()).is_ok());
        let refused = |path: &[&str], v: Value| {
            let mut m = our_message();
            let mut cur = &mut m;
            for p in &path[..path.len() - 1] {
                cur = cur
                    .get_mut(*p)
                    .and_then(Value::as_object_mut)
                    .expect("object");
            }
            cur.insert(path[path.len() - 1].to_owned(), v);
            validate(&m).err().map(|r| r.code)
        };
        assert_eq!(
            refused(&["noticeBarInfo", "title"], json!("t".repeat(33))),
            Some(1005)
        );
        assert_eq!(
            refused(&["noticeBarInfo", "content"], json!("")),
            Some(1005)
        );
        assert_eq!(
            refused(&["noticeBarInfo", "noticeMsgType"], json!(2)),
            Some(1005)
        );
        assert_eq!(
            refused(&["clickTypeInfo", "clickType"], json!(1)),
            Some(1005),
            "no activity"
        );
        assert_eq!(
            refused(&["clickTypeInfo", "parameters"], json!("x")),
            Some(1005)
        );
        assert_eq!(
            refused(&["pushTimeInfo", "validTime"], json!(73)),
            Some(1005)
        );
        assert_eq!(
            refused(&["advanceInfo", "notifyKey"], json!("123456789")),
            Some(1005)
        );
        assert!(validate(&Map::new()).is_err());
    }
}
