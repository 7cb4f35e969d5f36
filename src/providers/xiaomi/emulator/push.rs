//! The Xiaomi send endpoints, checked the way the spec says Xiaomi checks them.
//!
//! Order of checks: outage knobs (latency, hang, 5xx) → AppSecret → parameters decoded →
//! package belongs to the app → QPS → message limits → targets → daily quota → accept.
//! Every refusal is Xiaomi's JSON envelope; nothing here panics on input.

use std::collections::BTreeMap;

use actix_web::http::header::AUTHORIZATION;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use rand::Rng;
use serde_json::{Map, Value};

use super::config::{EmulatorRules, Knobs};
use super::envelope::{self as env, json_response, xiaomi_id, Reject};
use super::state::{now_ms, AppCheck, ReceivedNotification, Shared};

/// The send endpoints the emulator serves (spec §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Single package only.
    RegidV2,
    /// Several packages allowed (comma-separated or repeated).
    RegidV3,
    /// A different message per regId, as a JSON `messages` field.
    MultiRegids,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::RegidV2 => "/v2/message/regid",
            Endpoint::RegidV3 => "/v3/message/regid",
            Endpoint::MultiRegids => "/v2/multi_messages/regids",
        }
    }
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    for endpoint in [Endpoint::RegidV2, Endpoint::RegidV3, Endpoint::MultiRegids] {
        cfg.service(
            web::resource(endpoint.path())
                .route(web::post().to(
                    move |req: HttpRequest, body: web::Payload, shared: web::Data<Shared>| {
                        handle(endpoint, req, body, shared)
                    },
                ))
                .default_service(web::to(method_not_allowed)),
        );
    }
}

async fn method_not_allowed(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let reject = Reject::new(
        env::CODE_METHOD_NOT_SUPPORTED,
        format!("HTTP method {} is not supported", req.method()),
    );
    shared.count_request(req.path(), &reject.code.to_string());
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &env::error_body(&reject, &xiaomi_id('X')),
    )
}

/// Any path the emulator does not serve.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    let reject = Reject::new(
        env::CODE_API_NOT_FOUND,
        format!("API {} not found", req.path()),
    );
    json_response(
        StatusCode::NOT_FOUND,
        &env::error_body(&reject, &xiaomi_id('X')),
    )
}

async fn handle(
    endpoint: Endpoint,
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let path = endpoint.path();
    let knobs = shared.knobs();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if knobs.hang && !wait_while_hung(&shared).await {
        shared.count_request(path, "http_504");
        return HttpResponse::GatewayTimeout()
            .content_type("text/html")
            .body("<html><body><h1>504 Gateway Time-out</h1></body></html>");
    }
    let knobs = shared.knobs();
    // `<` with a NaN ratio is false: a bad knob never panics, it just never fires.
    if knobs.error_5xx_ratio > 0.0 && rand::rng().random::<f64>() < knobs.error_5xx_ratio {
        shared.count_request(path, "http_503");
        return HttpResponse::ServiceUnavailable()
            .content_type("text/html")
            .body("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>");
    }

    let trace_id = xiaomi_id('X');
    match process(endpoint, &req, body, &shared, &knobs, &trace_id).await {
        Ok(reply) => {
            shared.count_request(path, "0");
            json_response(StatusCode::OK, &reply)
        }
        Err(reject) => {
            shared.count_request(path, &reject.code.to_string());
            let status =
                StatusCode::from_u16(shared.rules.business_error_status).unwrap_or(StatusCode::OK);
            json_response(status, &env::error_body(&reject, &trace_id))
        }
    }
}

/// Waits until the `hang` knob is cleared; false when the cap passed or the emulator stopped.
async fn wait_while_hung(shared: &Shared) -> bool {
    let mut knobs = shared.watch_knobs();
    // `sleep` saturates a huge cap instead of overflowing an `Instant`.
    let cap = tokio::time::sleep(shared.hang_cap());
    tokio::pin!(cap);
    loop {
        if !knobs.borrow_and_update().hang {
            return true;
        }
        tokio::select! {
            changed = knobs.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            () = &mut cap => return false,
        }
    }
}

/// One notification as decoded from either wire shape.
#[derive(Debug, Clone)]
struct Message {
    package: String,
    title: Option<String>,
    description: Option<String>,
    payload: Option<String>,
    pass_through: i64,
    notify_type: Option<i64>,
    notify_id: Option<i64>,
    /// Keyed without the `extra.` prefix.
    extras: BTreeMap<String, String>,
}

/// A decoded request: its messages and, per target, which message it gets.
struct Batch {
    packages: Vec<String>,
    messages: Vec<Message>,
    targets: Vec<(String, usize)>,
}

async fn process(
    endpoint: Endpoint,
    req: &HttpRequest,
    body: web::Payload,
    shared: &Shared,
    knobs: &Knobs,
    trace_id: &str,
) -> Result<Value, Reject> {
    let rules = &shared.rules;
    // `key` must be lowercase (spec §2); anything else is a bad secret.
    let secret = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("key="));
    let bad_secret = || Reject::new(env::CODE_BAD_SECRET, "Invalid application secret.");
    if let AppCheck::BadSecret = shared.check_app(secret, &[]) {
        return Err(bad_secret());
    }

    let body = read_body(body, rules.max_body_bytes).await?;
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
        .map_err(|_| Reject::new(env::CODE_ILLEGAL_PARAM, "request body is not form-encoded"))?;
    let batch = match endpoint {
        Endpoint::MultiRegids => decode_multi(&form, rules)?,
        Endpoint::RegidV2 | Endpoint::RegidV3 => decode_regid(endpoint, &form, rules)?,
    };

    match shared.check_app(secret, &batch.packages) {
        AppCheck::Known => {}
        AppCheck::BadSecret => return Err(bad_secret()),
        AppCheck::UnknownPackage(package) => {
            return Err(Reject::new(
                rules.unknown_package_code,
                format!("Invalid package name: {package}"),
            ))
        }
    }
    let package = batch.packages.first().cloned().unwrap_or_default();
    let now = now_ms();
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit_qps(&package, limit, now) {
            return Err(Reject::new(
                rules.qps_code,
                format!("The application's API calls are too frequent, qps limit: {limit}"),
            ));
        }
    }
    for message in &batch.messages {
        validate(message, rules)?;
    }

    let regids: Vec<&str> = batch.targets.iter().map(|(r, _)| r.as_str()).collect();
    let (valid, _) = shared.split_regids(&regids);
    let valid: std::collections::HashSet<&str> = valid.into_iter().collect();
    let mut bad: Vec<&str> = Vec::new();
    let mut accepted: Vec<&(String, usize)> = Vec::new();
    for target in &batch.targets {
        if valid.contains(target.0.as_str()) {
            accepted.push(target);
        } else if !bad.contains(&target.0.as_str()) {
            bad.push(&target.0);
        }
    }
    if accepted.is_empty() {
        return Err(Reject::new(env::CODE_NO_VALID_TARGETS, "No valid targets!"));
    }

    let mut data = Map::new();
    let message_id = xiaomi_id('s');
    data.insert("id".into(), Value::String(message_id.clone()));
    if !bad.is_empty() {
        data.insert("bad_regids".into(), Value::String(bad.join(",")));
    }
    let n = accepted.len() as u64;
    if endpoint == Endpoint::MultiRegids {
        // Multi APIs never answer 200001; they report what went over per channel (spec §5.3;
        // the exact JSON shape is UNCONFIRMED: an object channel → count is our choice).
        let granted = shared.take_quota_partial(&package, knobs.daily_quota, n, now);
        let over = accepted.split_off(
            usize::try_from(granted)
                .unwrap_or(usize::MAX)
                .min(accepted.len()),
        );
        if !over.is_empty() {
            let mut per_channel: BTreeMap<String, u64> = BTreeMap::new();
            for (_, index) in over {
                let channel = batch
                    .messages
                    .get(*index)
                    .and_then(|m| m.extras.get("channel_id").cloned())
                    .unwrap_or_else(|| "default".to_owned());
                *per_channel.entry(channel).or_insert(0) += 1;
            }
            data.insert(
                "channel_exceed_quota".into(),
                serde_json::json!(per_channel),
            );
        }
    } else if let Err(over) = shared.take_quota(&package, knobs.daily_quota, n, now) {
        return Err(Reject::new(
            env::CODE_QUOTA,
            format!(
                "exceed quota, quota: {}, have acked: {}",
                over.quota, over.acked
            ),
        ));
    }
    if let Some(quota) = knobs.daily_quota {
        // Some apps see these echoed as strings on success (spec §4.2).
        data.insert("day_quota".into(), Value::String(quota.to_string()));
        let acked = shared.acked_today(&package, now);
        data.insert("day_acked".into(), Value::String(acked.to_string()));
    }

    let records: Vec<ReceivedNotification> = accepted
        .iter()
        .filter_map(|(regid, index)| {
            let m = batch.messages.get(*index)?;
            Some(ReceivedNotification {
                seq: 0,
                endpoint: endpoint.path().to_owned(),
                package: m.package.clone(),
                regid: regid.clone(),
                title: m.title.clone().unwrap_or_default(),
                description: m.description.clone().unwrap_or_default(),
                notify_id: m.notify_id,
                notify_type: m.notify_type,
                pass_through: m.pass_through,
                payload: m.payload.clone(),
                extras: m.extras.clone(),
                message_id: message_id.clone(),
                trace_id: trace_id.to_owned(),
                received_at_ms: now,
            })
        })
        .collect();
    let count = records.len();
    let receipts = super::receipts::receipts_for(
        shared,
        &records,
        knobs.receipt_delay_ms,
        knobs.receipt_click_ratio,
    );
    shared.queue_receipts(receipts, knobs.receipt_loss_ratio);
    shared.record(records);
    Ok(env::ok_body(trace_id, count, data))
}

async fn read_body(mut body: web::Payload, limit: usize) -> Result<BytesMut, Reject> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|_| Reject::new(env::CODE_ILLEGAL_PARAM, "could not read the request body"))?;
        if buf.len() + chunk.len() > limit {
            return Err(Reject::new(
                env::CODE_REQUEST_TOO_LONG,
                format!("request body longer than {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn first<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// All values of a key, each split on `,`: Xiaomi takes comma-joined lists and the Java SDK
/// sends repeated fields (spec §2); trimmed, empties dropped, duplicates removed.
fn list(form: &[(String, String)], key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in form
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

fn int_field(name: &str, raw: Option<&str>) -> Result<Option<i64>, Reject> {
    raw.map(|v| {
        v.trim().parse::<i64>().map_err(|_| {
            Reject::new(
                env::CODE_ILLEGAL_PARAM,
                format!("{name} must be an integer"),
            )
        })
    })
    .transpose()
}

fn pass_through(raw: Option<i64>) -> Result<i64, Reject> {
    match raw.unwrap_or(0) {
        v @ (0 | 1) => Ok(v),
        _ => Err(Reject::new(
            env::CODE_ILLEGAL_PARAM,
            "pass_through must be 0 or 1",
        )),
    }
}

fn decode_regid(
    endpoint: Endpoint,
    form: &[(String, String)],
    rules: &EmulatorRules,
) -> Result<Batch, Reject> {
    let packages = list(form, "restricted_package_name");
    if packages.is_empty() {
        return Err(Reject::new(
            env::CODE_MISSING_PARAM,
            "restricted_package_name is required",
        ));
    }
    if endpoint == Endpoint::RegidV2 && packages.len() > 1 {
        return Err(Reject::new(
            env::CODE_ILLEGAL_PARAM,
            "v2 accepts exactly one restricted_package_name; use v3",
        ));
    }
    let regids = list(form, "registration_id");
    if regids.is_empty() {
        return Err(Reject::new(
            env::CODE_MISSING_PARAM,
            "registration_id is required",
        ));
    }
    if regids.len() > rules.max_regids {
        return Err(Reject::new(
            rules.too_many_targets_code,
            format!(
                "too many registration_id: {}, at most {}",
                regids.len(),
                rules.max_regids
            ),
        ));
    }
    let extras = form
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("extra.")?.to_owned(), v.clone())))
        .collect();
    let message = Message {
        package: packages.first().cloned().unwrap_or_default(),
        title: first(form, "title").map(str::to_owned),
        description: first(form, "description").map(str::to_owned),
        payload: first(form, "payload").map(str::to_owned),
        pass_through: pass_through(int_field("pass_through", first(form, "pass_through"))?)?,
        notify_type: int_field("notify_type", first(form, "notify_type"))?,
        notify_id: int_field("notify_id", first(form, "notify_id"))?,
        extras,
    };
    Ok(Batch {
        packages,
        messages: vec![message],
        targets: regids.into_iter().map(|r| (r, 0)).collect(),
    })
}

/// A JSON scalar as the string Xiaomi would see; objects and arrays are refused.
fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_int(message: &Map<String, Value>, name: &str) -> Result<Option<i64>, Reject> {
    match message.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match json_text(value) {
            Some(text) => int_field(name, Some(&text)),
            None => Err(Reject::new(
                env::CODE_ILLEGAL_PARAM,
                format!("{name} must be an integer"),
            )),
        },
    }
}

fn decode_multi(form: &[(String, String)], rules: &EmulatorRules) -> Result<Batch, Reject> {
    let raw = first(form, "messages")
        .ok_or_else(|| Reject::new(env::CODE_MISSING_PARAM, "messages is required"))?;
    let items: Vec<Value> = serde_json::from_str(raw)
        .map_err(|_| Reject::new(env::CODE_ILLEGAL_PARAM, "messages is not a JSON array"))?;
    if items.is_empty() {
        return Err(Reject::new(env::CODE_MISSING_PARAM, "messages is empty"));
    }
    if items.len() > rules.max_multi_messages {
        return Err(Reject::new(
            rules.too_many_targets_code,
            format!(
                "too many messages: {}, at most {}",
                items.len(),
                rules.max_multi_messages
            ),
        ));
    }
    let mut batch = Batch {
        packages: Vec::new(),
        messages: Vec::with_capacity(items.len()),
        targets: Vec::with_capacity(items.len()),
    };
    for (i, item) in items.iter().enumerate() {
        let bad =
            |what: &str| Reject::new(env::CODE_ILLEGAL_PARAM, format!("messages[{i}]: {what}"));
        let target = item
            .get("target")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("target is missing"))?;
        let message = item
            .get("message")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("message is not an object"))?;
        let text = |name: &str| message.get(name).and_then(json_text);
        let package = text("restricted_package_name")
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                Reject::new(
                    env::CODE_MISSING_PARAM,
                    format!("messages[{i}]: restricted_package_name is required"),
                )
            })?;
        let mut extras = BTreeMap::new();
        match message.get("extra") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let v = json_text(v).ok_or_else(|| bad("extra values must be strings"))?;
                    extras.insert(k.clone(), v);
                }
            }
            Some(_) => return Err(bad("extra is not an object")),
        }
        if !batch.packages.contains(&package) {
            batch.packages.push(package.clone());
        }
        batch.messages.push(Message {
            package,
            title: text("title"),
            description: text("description"),
            payload: text("payload"),
            pass_through: pass_through(json_int(message, "pass_through")?)?,
            notify_type: json_int(message, "notify_type")?,
            notify_id: json_int(message, "notify_id")?,
            extras,
        });
        batch.targets.push((target.to_owned(), i));
    }
    Ok(batch)
}

/// Extras Xiaomi defines itself (spec §3.2); every other key is custom and counts toward the
/// 10-pair / 1024-char limits of §3.3.
fn is_predefined_extra(key: &str) -> bool {
    const KEYS: &[&str] = &[
        "notify_effect",
        "intent_uri",
        "web_uri",
        "class_name",
        "intent_flag",
        "notify_foreground",
        "sound_uri",
        "ticker",
        "channel_id",
        "channel_name",
        "channel_description",
        "jobkey",
        "callback",
        "callback.param",
        "callback.type",
        "flow_control",
        "only_send_once",
        "locale",
        "locale_not_in",
        "model",
        "model_not_in",
        "app_version",
        "app_version_not_in",
        "connpt",
        "instant_notify",
        "notification_style_type",
        "notification_large_icon_uri",
        "notification_bigPic_uri",
        "notification_small_icon_uri",
        "notification_small_icon_color",
        "hybrid_pn",
        "push_server_action",
        "badge",
        "category",
        "sound_url",
        "ios_msg_channel",
    ];
    KEYS.contains(&key)
        || key.starts_with("notification_style_button_")
        || key.starts_with("apsAlert-")
}

fn validate(m: &Message, rules: &EmulatorRules) -> Result<(), Reject> {
    if m.pass_through == 0 {
        let title = m.title.as_deref().unwrap_or("");
        let description = m.description.as_deref().unwrap_or("");
        if title.trim().is_empty() || description.trim().is_empty() {
            return Err(Reject::new(
                env::CODE_EMPTY_TITLE,
                "Title or Description is empty!",
            ));
        }
        // Counted in chars: "each Chinese or Latin char counts 1" (spec §3.1).
        if title.chars().count() > rules.title_max_chars {
            return Err(Reject::new(
                rules.too_long_code,
                format!(
                    "title is too long, must be less than {} characters",
                    rules.title_max_chars + 1
                ),
            ));
        }
        if description.chars().count() > rules.description_max_chars {
            return Err(Reject::new(
                rules.too_long_code,
                format!(
                    "description is too long, must be less than {} characters",
                    rules.description_max_chars + 1
                ),
            ));
        }
    }
    if m.payload
        .as_ref()
        .is_some_and(|p| p.len() > rules.payload_max_bytes)
    {
        return Err(Reject::new(
            env::CODE_CONTENT_TOO_LONG,
            "payload is too long",
        ));
    }
    // Click targets must come with what they open (spec §3.2); the code for a violation is
    // UNCONFIRMED, 10017 "illegal parameter value" is our pick.
    let has = |k: &str| m.extras.get(k).is_some_and(|v| !v.trim().is_empty());
    match m.extras.get("notify_effect").map(String::as_str) {
        None | Some("1") => {}
        Some("2") if has("intent_uri") || has("class_name") => {}
        Some("3")
            if m.extras
                .get("web_uri")
                .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://")) => {}
        Some(_) => {
            return Err(Reject::new(
                env::CODE_ILLEGAL_PARAM,
                "notify_effect must be 1, 2 with intent_uri, or 3 with an http(s) web_uri",
            ))
        }
    }
    let custom: Vec<(&String, &String)> = m
        .extras
        .iter()
        .filter(|(k, _)| !is_predefined_extra(k))
        .collect();
    if custom.len() > rules.extra_max_custom {
        return Err(Reject::new(
            env::CODE_TOO_MANY_EXTRAS,
            format!(
                "too many extra key-value pairs: {}, at most {}",
                custom.len(),
                rules.extra_max_custom
            ),
        ));
    }
    let mut total = 0usize;
    for (k, v) in custom {
        let (kl, vl) = (k.chars().count(), v.chars().count());
        if kl > rules.extra_item_max_chars || vl > rules.extra_item_max_chars {
            return Err(Reject::new(
                env::CODE_EXTRAS_TOO_LONG,
                format!(
                    "extra {k} is longer than {} characters",
                    rules.extra_item_max_chars
                ),
            ));
        }
        total += kl + vl;
    }
    if total > rules.extra_total_max_chars {
        return Err(Reject::new(
            env::CODE_EXTRAS_TOO_LONG,
            format!(
                "extra key-value pairs total {total} characters, at most {}",
                rules.extra_total_max_chars
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn regids_comma_joined_and_repeated() {
        let f = form(&[
            ("restricted_package_name", "p"),
            ("registration_id", "a, b,,a"),
            ("registration_id", "c"),
        ]);
        let batch = decode_regid(Endpoint::RegidV3, &f, &EmulatorRules::default()).expect("ok");
        let targets: Vec<&str> = batch.targets.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(targets, ["a", "b", "c"]);
    }

    #[test]
    fn v2_takes_one_package() {
        let f = form(&[("restricted_package_name", "p,q"), ("registration_id", "a")]);
        assert!(decode_regid(Endpoint::RegidV2, &f, &EmulatorRules::default()).is_err());
        assert!(decode_regid(Endpoint::RegidV3, &f, &EmulatorRules::default()).is_ok());
    }

    #[test]
    fn bad_numbers_are_10017() {
        let f = form(&[
            ("restricted_package_name", "p"),
            ("registration_id", "a"),
            ("notify_id", "x"),
        ]);
        let err = decode_regid(Endpoint::RegidV3, &f, &EmulatorRules::default()).err();
        assert_eq!(err.map(|e| e.code), Some(10017));
        let multi = form(&[(
            "messages",
            r#"[{"target":"a","message":{"restricted_package_name":"p","pass_through":7}}]"#,
        )]);
        assert_eq!(
            decode_multi(&multi, &EmulatorRules::default())
                .err()
                .map(|e| e.code),
            Some(10017)
        );
        for junk in [
            "",
            "{",
            "{}",
            "[1]",
            r#"[{"target":"a"}]"#,
            r#"[{"target":"a","message":{"extra":[]}}]"#,
        ] {
            let f = form(&[("messages", junk)]);
            assert!(
                decode_multi(&f, &EmulatorRules::default()).is_err(),
                "{junk}"
            );
        }
    }
}
