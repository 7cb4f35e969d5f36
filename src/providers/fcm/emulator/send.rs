//! `POST /v1/projects/{project_id}/messages:send`, checked the way the spec says FCM checks it:
//! Bearer token → project → rate → JSON shape (unknown fields refused, proto3 JSON names in
//! snake_case or lowerCamelCase) → target → data map → android block → size → token state.

use std::collections::BTreeMap;

use hyper::StatusCode;
use rand::Rng;
use serde_json::{json, Value};

use super::state::{now_ms, ReceivedMessage, Shared, TokenState};
use crate::providers::h2_emulator::{json as json_reply, Reply};

/// A Google error envelope (spec §4), with the FCM code and a field violation when given.
pub(crate) fn google_error(
    http: StatusCode,
    status: &str,
    message: &str,
    fcm_code: Option<&str>,
    field: Option<&str>,
) -> Reply {
    let mut details = Vec::new();
    if let Some(code) = fcm_code {
        details.push(json!({
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": code,
        }));
    }
    if let Some(field) = field {
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{ "field": field, "description": message }],
        }));
    }
    json_reply(
        http,
        &json!({ "error": {
            "code": http.as_u16(),
            "message": message,
            "status": status,
            "details": details,
        }}),
    )
}

/// A 400 about one field of the request.
struct Invalid {
    field: String,
    message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Normalises keys to snake_case and refuses any name not in `allowed` (Google: "Invalid JSON
/// payload received. Unknown name").
fn fields<'a>(
    value: &'a Value,
    path: &str,
    allowed: &[&str],
) -> Result<BTreeMap<String, &'a Value>, Invalid> {
    let Value::Object(obj) = value else {
        return Err(invalid(
            path,
            format!("Invalid value at '{path}': must be an object"),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        let Some(name) = allowed.iter().find(|a| **a == k || camel(a) == *k) else {
            return Err(invalid(
                format!("{path}.{k}"),
                format!("Invalid JSON payload received. Unknown name \"{k}\" at '{path}': Cannot find field."),
            ));
        };
        if out.insert((*name).to_owned(), v).is_some() {
            return Err(invalid(
                format!("{path}.{k}"),
                format!("Field '{name}' given twice at '{path}'"),
            ));
        }
    }
    Ok(out)
}

fn opt_string(
    map: &BTreeMap<String, &Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, Invalid> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(
            format!("{path}.{key}"),
            format!("Invalid value at '{path}.{key}' (TYPE_STRING)"),
        )),
    }
}

/// Reserved data keys (spec §3).
fn reserved_data_key(k: &str) -> bool {
    matches!(k, "from" | "notification" | "message_type")
        || k.starts_with("google")
        || k.starts_with("gcm")
}

fn string_map(value: &Value, path: &str) -> Result<BTreeMap<String, String>, Invalid> {
    let Value::Object(obj) = value else {
        return Err(invalid(
            path,
            format!("Invalid value at '{path}': must be a map of strings"),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in obj {
        let Value::String(s) = v else {
            return Err(invalid(
                format!("{path}[{k}]"),
                format!(
                    "Invalid value at '{path}[{k}]' (TYPE_STRING): data values must be strings"
                ),
            ));
        };
        if reserved_data_key(k) {
            return Err(invalid(
                format!("{path}[{k}]"),
                format!("Invalid data payload key: {k}"),
            ));
        }
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

/// A protobuf Duration string `"<seconds>[.<nanos>]s"` within 0–28 days (spec §3).
fn valid_ttl(ttl: &str) -> bool {
    let Some(number) = ttl.strip_suffix('s') else {
        return false;
    };
    let (secs, frac) = number.split_once('.').unwrap_or((number, ""));
    !secs.is_empty()
        && secs.chars().all(|c| c.is_ascii_digit())
        && frac.len() <= 9
        && frac.chars().all(|c| c.is_ascii_digit())
        && secs.parse::<u64>().is_ok_and(|s| s <= 2_419_200)
}

/// What FCM tokens look like: URL-safe characters, no blanks (Google's exact rule is
/// undocumented; anything else is "not a valid FCM registration token").
fn token_shape_ok(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 4096
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
}

struct Parsed {
    token: String,
    record: ReceivedMessage,
    validate_only: bool,
}

const NOTIFICATION_FIELDS: &[&str] = &["title", "body", "image"];
const ANDROID_FIELDS: &[&str] = &[
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
    "bandwidth_constrained_ok",
    "restricted_satellite_ok",
];
const ANDROID_NOTIFICATION_FIELDS: &[&str] = &[
    "title",
    "body",
    "icon",
    "color",
    "sound",
    "tag",
    "click_action",
    "body_loc_key",
    "body_loc_args",
    "title_loc_key",
    "title_loc_args",
    "channel_id",
    "ticker",
    "sticky",
    "event_time",
    "local_only",
    "notification_priority",
    "default_sound",
    "default_vibrate_timings",
    "default_light_settings",
    "vibrate_timings",
    "visibility",
    "notification_count",
    "light_settings",
    "image",
    "bypass_proxy_notification",
    "proxy",
];

fn parse(body: &[u8], project: &str, max_message_bytes: usize) -> Result<Parsed, Invalid> {
    let top: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("", format!("Invalid JSON payload received. {e}")))?;
    let top = fields(&top, "", &["message", "validate_only"])?;
    let validate_only = match top.get("validate_only") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                "validate_only",
                "Invalid value at 'validate_only' (TYPE_BOOL)",
            ))
        }
    };
    let message = top.get("message").ok_or_else(|| {
        invalid(
            "message",
            "Request contains an invalid argument: message is required",
        )
    })?;
    let m = fields(
        message,
        "message",
        &[
            "name",
            "token",
            "topic",
            "condition",
            "fid",
            "notification",
            "data",
            "android",
            "apns",
            "webpush",
            "fcm_options",
        ],
    )?;
    let targets = ["token", "topic", "condition", "fid"]
        .iter()
        .filter(|t| m.contains_key(**t))
        .count();
    if targets != 1 {
        return Err(invalid(
            "message",
            "Exactly one of token, topic or condition must be given",
        ));
    }
    let Some(token) = opt_string(&m, "token", "message")? else {
        return Err(invalid(
            "message.token",
            "This emulator delivers to tokens only",
        ));
    };
    let (title, body_text) = match m.get("notification") {
        Some(n) => {
            let n = fields(n, "message.notification", NOTIFICATION_FIELDS)?;
            (
                opt_string(&n, "title", "message.notification")?,
                opt_string(&n, "body", "message.notification")?,
            )
        }
        None => (None, None),
    };
    let data = match m.get("data") {
        Some(d) => string_map(d, "message.data")?,
        None => BTreeMap::new(),
    };
    let mut record = ReceivedMessage {
        seq: 0,
        project_id: project.to_owned(),
        token: token.clone(),
        title,
        body: body_text,
        data,
        priority: None,
        ttl: None,
        collapse_key: None,
        restricted_package_name: None,
        channel_id: None,
        tag: None,
        sound: None,
        click_action: None,
        name: String::new(),
        http_version: String::new(),
        connection: 0,
        received_at_ms: 0,
    };
    if let Some(android) = m.get("android") {
        let a = fields(android, "message.android", ANDROID_FIELDS)?;
        record.priority = opt_string(&a, "priority", "message.android")?;
        if let Some(p) = &record.priority {
            if !matches!(p.to_ascii_lowercase().as_str(), "normal" | "high") {
                return Err(invalid("message.android.priority", format!("Invalid value at 'message.android.priority' (type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority), \"{p}\"")));
            }
        }
        record.ttl = opt_string(&a, "ttl", "message.android")?;
        if let Some(ttl) = &record.ttl {
            if !valid_ttl(ttl) {
                return Err(invalid("message.android.ttl", format!("Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), \"{ttl}\"")));
            }
        }
        record.collapse_key = opt_string(&a, "collapse_key", "message.android")?;
        record.restricted_package_name =
            opt_string(&a, "restricted_package_name", "message.android")?;
        if let Some(d) = a.get("data") {
            string_map(d, "message.android.data")?;
        }
        if let Some(n) = a.get("notification") {
            let path = "message.android.notification";
            let n = fields(n, path, ANDROID_NOTIFICATION_FIELDS)?;
            for key in [
                "title",
                "body",
                "icon",
                "color",
                "click_action",
                "ticker",
                "image",
                "visibility",
                "notification_priority",
            ] {
                opt_string(&n, key, path)?;
            }
            record.channel_id = opt_string(&n, "channel_id", path)?;
            record.tag = opt_string(&n, "tag", path)?;
            record.sound = opt_string(&n, "sound", path)?;
            record.click_action = opt_string(&n, "click_action", path)?;
            if let Some(count) = n.get("notification_count") {
                if !count.is_i64() {
                    return Err(invalid(
                        format!("{path}.notification_count"),
                        "Invalid value (TYPE_INT32)",
                    ));
                }
            }
        }
    }
    // The 4 KB limit counts what the device receives: notification and data (spec §3).
    let size = m.get("notification").map_or(0, |v| v.to_string().len())
        + m.get("data").map_or(0, |v| v.to_string().len());
    if size > max_message_bytes {
        return Err(invalid("message", "Message is too big"));
    }
    Ok(Parsed {
        token,
        record,
        validate_only,
    })
}

/// Handles one send once the outage knobs have let it through.
pub(crate) fn handle(
    shared: &Shared,
    project: &str,
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    http_version: &str,
    connection: u64,
) -> Reply {
    let count = |outcome: &str| shared.count("send", outcome);
    let bearer = authorization.and_then(|a| a.strip_prefix("Bearer "));
    let now = now_ms();
    let Some(issued) = bearer
        .and_then(|t| shared.access(t))
        .filter(|i| i.expires_at_ms > now)
    else {
        count("UNAUTHENTICATED");
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            None,
            None,
        );
    };
    if issued.project_id != project {
        count("PERMISSION_DENIED");
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/{project}'"),
            None,
            None,
        );
    }
    let knobs = shared.knobs();
    if let Some(limit) = knobs.qps_limit {
        if !shared.admit_qps(project, limit, now) {
            count("QUOTA_EXCEEDED");
            let mut reply = google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Messages sent' of service 'fcm.googleapis.com'",
                Some("QUOTA_EXCEEDED"),
                None,
            );
            retry_after(&mut reply, knobs.retry_after_secs);
            return reply;
        }
    }
    if !content_type.is_some_and(|c| c.starts_with("application/json")) {
        count("INVALID_ARGUMENT");
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Content-Type must be application/json",
            Some("INVALID_ARGUMENT"),
            None,
        );
    }
    let parsed = match parse(body, project, shared.max_message_bytes) {
        Ok(p) => p,
        Err(e) => {
            count("INVALID_ARGUMENT");
            let field = (!e.field.is_empty()).then_some(e.field.as_str());
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &e.message,
                Some("INVALID_ARGUMENT"),
                field,
            );
        }
    };
    let token_state = if token_shape_ok(&parsed.token) {
        shared.token_state(&parsed.token)
    } else {
        TokenState::Invalid
    };
    match token_state {
        TokenState::Valid => {}
        TokenState::Unregistered => {
            count("UNREGISTERED");
            return google_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Requested entity was not found.",
                Some("UNREGISTERED"),
                None,
            );
        }
        TokenState::Invalid => {
            count("INVALID_ARGUMENT_token");
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                Some("INVALID_ARGUMENT"),
                None,
            );
        }
        TokenState::OtherSender => {
            count("SENDER_ID_MISMATCH");
            return google_error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "SenderId mismatch",
                Some("SENDER_ID_MISMATCH"),
                None,
            );
        }
    }
    let id: u64 = rand::rng().random_range(1_000_000_000_000_000..10_000_000_000_000_000);
    let name = if parsed.validate_only {
        format!("projects/{project}/messages/fake_message_id")
    } else {
        format!("projects/{project}/messages/0:{id}%{:016x}", id ^ 0x5eed)
    };
    if !parsed.validate_only {
        let mut record = parsed.record;
        record.name = name.clone();
        record.http_version = http_version.to_owned();
        record.connection = connection;
        record.received_at_ms = now;
        shared.record(record);
    }
    count("ok");
    json_reply(StatusCode::OK, &json!({ "name": name }))
}

pub(crate) fn retry_after(reply: &mut Reply, secs: u64) {
    if secs > 0 {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&secs.to_string()) {
            reply.headers_mut().insert(hyper::header::RETRY_AFTER, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: Value) -> Vec<u8> {
        json!({ "message": message }).to_string().into_bytes()
    }

    #[test]
    fn a_spec_shaped_message_parses() {
        let p = parse(
            &body(
                json!({"token":"t-1","notification":{"title":"A","body":"b"},"data":{"ext":"{}"},
                "android":{"priority":"high","ttl":"86400s","restrictedPackageName":"com.x",
                    "notification":{"channel_id":"im","tag":"7","notification_count":3}}}),
            ),
            "p",
            4096,
        )
        .ok()
        .unwrap();
        assert_eq!(p.token, "t-1");
        assert_eq!(p.record.channel_id.as_deref(), Some("im"));
        assert_eq!(p.record.restricted_package_name.as_deref(), Some("com.x"));
        assert_eq!(p.record.data.get("ext").map(String::as_str), Some("{}"));
    }

    #[test]
    fn payload_mistakes_name_their_field() {
        let field = |m: Value| parse(&body(m), "p", 4096).err().unwrap().field;
        assert_eq!(field(json!({"token":"t","extra":1})), "message.extra");
        assert_eq!(field(json!({"token":"t","topic":"x"})), "message");
        assert_eq!(
            field(json!({"token":"t","data":{"ext":{"a":1}}})),
            "message.data[ext]"
        );
        assert_eq!(
            field(json!({"token":"t","data":{"from":"x"}})),
            "message.data[from]"
        );
        assert_eq!(
            field(json!({"token":"t","android":{"priority":"urgent"}})),
            "message.android.priority"
        );
        assert_eq!(
            field(json!({"token":"t","android":{"ttl":"86400"}})),
            "message.android.ttl"
        );
        assert_eq!(
            field(json!({"token":"t","android":{"ttl":"2419201s"}})),
            "message.android.ttl"
        );
        assert_eq!(
            field(json!({"token":"t","android":{"notification":{"channel":"x"}}})),
            "message.android.notification.channel"
        );
        assert_eq!(
            field(json!({"token":"t","notification":{"body":"x".repeat(5000)}})),
            "message"
        );
        assert!(parse(b"{", "p", 4096).is_err());
        assert!(valid_ttl("0s") && valid_ttl("3.5s") && !valid_ttl("s") && !valid_ttl("-1s"));
        assert!(!token_shape_ok("has space") && token_shape_ok("abc:APA91b-_x"));
    }
}
