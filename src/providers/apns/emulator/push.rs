//! `POST /3/device/<token>`, checked the way spec/vendors/apns.md says APNs checks it:
//! provider token (signature, team, age, environment, one key per connection, renewal rate) →
//! headers (duplicates, topic, push type, priority, expiration, collapse id, apns-id) → device
//! token → payload → rate → device state.

use std::sync::Arc;

use hyper::{HeaderMap, StatusCode};
use rand::Rng;
use serde_json::{json, Value};

use super::state::{now_ms, DeviceState, ReceivedNotification, Shared};
use crate::providers::h2_emulator::{json as json_reply, text, Connection, Reply};
use crate::providers::jwt::{decode, Alg};

/// Clock skew allowed on `iat`.
const SKEW_SECS: i64 = 60;

pub(crate) struct Refusal {
    status: StatusCode,
    reason: &'static str,
}

fn refuse(status: StatusCode, reason: &'static str) -> Refusal {
    Refusal { status, reason }
}

pub(crate) fn refusal(status: StatusCode, reason: &'static str) -> Refusal {
    refuse(status, reason)
}

pub(crate) fn reply_error(shared: &Shared, r: Refusal, apns_id: &str, retry_after: u64) -> Reply {
    shared.count(r.reason);
    let mut body = json!({ "reason": r.reason });
    if r.status == StatusCode::GONE {
        body["timestamp"] = json!(now_ms());
    }
    let mut reply = json_reply(r.status, &body);
    set(&mut reply, "apns-id", apns_id);
    if retry_after > 0 && matches!(r.status.as_u16(), 429 | 503) {
        set(&mut reply, "retry-after", &retry_after.to_string());
    }
    reply
}

fn set(reply: &mut Reply, name: &'static str, value: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
        reply.headers_mut().insert(name, v);
    }
}

fn new_uuid() -> String {
    let n: u128 = rand::rng().random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn one<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(refuse(StatusCode::BAD_REQUEST, "DuplicateHeaders"));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "BadTopic")),
    }
}

/// The key and team of a valid provider token, or why not.
fn check_provider_token(
    shared: &Shared,
    headers: &HeaderMap,
    conn: &Connection,
) -> Result<(String, String), Refusal> {
    let forbidden = |reason| refuse(StatusCode::FORBIDDEN, reason);
    let Some(auth) = one(headers, "authorization")? else {
        return Err(forbidden("MissingProviderToken"));
    };
    let jwt = auth
        .strip_prefix("bearer ")
        .or_else(|| auth.strip_prefix("Bearer "))
        .ok_or_else(|| forbidden("MissingProviderToken"))?;
    let decoded = decode(jwt).map_err(|_| forbidden("InvalidProviderToken"))?;
    if decoded.header_str("alg") != Some("ES256") {
        return Err(forbidden("InvalidProviderToken"));
    }
    let kid = decoded
        .header_str("kid")
        .ok_or_else(|| forbidden("InvalidProviderToken"))?;
    let key = shared
        .key(kid)
        .ok_or_else(|| forbidden("InvalidProviderToken"))?;
    if decoded.claim_str("iss") != Some(key.team_id.as_str()) {
        return Err(forbidden("InvalidProviderToken"));
    }
    decoded
        .verify(Alg::Es256, &key.public_key)
        .map_err(|_| forbidden("InvalidProviderToken"))?;
    let iat = decoded
        .claim_i64("iat")
        .ok_or_else(|| forbidden("InvalidProviderToken"))?;
    let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
    if iat > now + SKEW_SECS {
        return Err(forbidden("InvalidProviderToken"));
    }
    let knobs = shared.knobs();
    if now - iat > i64::try_from(knobs.provider_token_ttl_secs).unwrap_or(i64::MAX) {
        return Err(forbidden("ExpiredProviderToken"));
    }
    if key.environment.is_some_and(|e| e != shared.environment) {
        return Err(forbidden("BadEnvironmentKeyInToken"));
    }
    let mut memo = super::state::lock(&conn.memo);
    match memo.get("kid") {
        Some(first) if first != kid => return Err(forbidden("UnrelatedKeyIdInToken")),
        Some(_) => {}
        None => {
            memo.insert("kid", kid.to_owned());
        }
    }
    if memo.get("jwt").map(String::as_str) != Some(jwt) {
        let now_ms = now_ms();
        let last: Option<u64> = memo.get("jwt_at").and_then(|s| s.parse().ok());
        if last.is_some_and(|at| now_ms.saturating_sub(at) < knobs.min_token_interval_secs * 1000) {
            return Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyProviderTokenUpdates",
            ));
        }
        memo.insert("jwt", jwt.to_owned());
        memo.insert("jwt_at", now_ms.to_string());
        shared.note_token(jwt);
    }
    Ok((kid.to_owned(), key.team_id))
}

const PUSH_TYPES: &[&str] = &[
    "alert",
    "background",
    "voip",
    "location",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "pushtotalk",
];

pub(crate) fn handle(
    shared: &Shared,
    device_token: &str,
    headers: &HeaderMap,
    body: &[u8],
    conn: &Arc<Connection>,
) -> Reply {
    let given_id = headers.get("apns-id").and_then(|v| v.to_str().ok());
    let apns_id = given_id
        .filter(|s| is_uuid(s))
        .map_or_else(new_uuid, str::to_ascii_lowercase);
    match check(shared, device_token, headers, body, conn, &apns_id) {
        Ok(()) => {
            shared.count("200");
            let mut reply = text(StatusCode::OK, "application/json", bytes::Bytes::new());
            set(&mut reply, "apns-id", &apns_id);
            reply
        }
        Err(r) => reply_error(shared, r, &apns_id, shared.knobs().retry_after_secs),
    }
}

fn check(
    shared: &Shared,
    device_token: &str,
    headers: &HeaderMap,
    body: &[u8],
    conn: &Arc<Connection>,
    apns_id: &str,
) -> Result<(), Refusal> {
    let bad = |reason| refuse(StatusCode::BAD_REQUEST, reason);
    let (key_id, team_id) = check_provider_token(shared, headers, conn)?;
    for name in [
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
        "apns-id",
    ] {
        one(headers, name)?;
    }
    let topic = one(headers, "apns-topic")?.ok_or_else(|| bad("MissingTopic"))?;
    if topic.is_empty() {
        return Err(bad("MissingTopic"));
    }
    if let Some(key) = shared.key(&key_id) {
        if !key.topics.is_empty() && !key.topics.iter().any(|t| t == topic) {
            return Err(bad("TopicDisallowed"));
        }
    }
    let push_type = one(headers, "apns-push-type")?.ok_or_else(|| bad("InvalidPushType"))?;
    if !PUSH_TYPES.contains(&push_type) {
        return Err(bad("InvalidPushType"));
    }
    let priority = one(headers, "apns-priority")?;
    if let Some(p) = priority {
        if !matches!(p, "1" | "5" | "10") || (push_type == "background" && p == "10") {
            return Err(bad("BadPriority"));
        }
    }
    let expiration = one(headers, "apns-expiration")?;
    if expiration.is_some_and(|e| e.parse::<u64>().is_err()) {
        return Err(bad("BadExpirationDate"));
    }
    let collapse_id = one(headers, "apns-collapse-id")?;
    if collapse_id.is_some_and(|c| c.len() > 64) {
        return Err(bad("BadCollapseId"));
    }
    if one(headers, "apns-id")?.is_some_and(|id| !is_uuid(id)) {
        return Err(bad("BadMessageId"));
    }
    if device_token.is_empty() {
        return Err(bad("MissingDeviceToken"));
    }
    if !device_token.len().is_multiple_of(2) || !device_token.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(bad("BadDeviceToken"));
    }
    if body.is_empty() {
        return Err(bad("PayloadEmpty"));
    }
    if body.len() > shared.max_payload_bytes {
        return Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"));
    }
    // Apple names no reason for a payload that is not JSON; the emulator answers `BadPayload`
    // (a 400 any client must treat as "the request is wrong", UNCONFIRMED).
    let payload: Value = serde_json::from_slice(body).map_err(|_| bad("BadPayload"))?;
    let aps = payload
        .get("aps")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("BadPayload"))?;
    if push_type == "alert"
        && !["alert", "badge", "sound"]
            .iter()
            .any(|k| aps.contains_key(*k))
    {
        return Err(bad("InvalidPushType"));
    }
    if let Some(limit) = shared.knobs().qps_limit {
        if !shared.admit_qps(limit, now_ms()) {
            return Err(refuse(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"));
        }
    }
    let token = device_token.to_ascii_lowercase();
    match shared.device(&token) {
        DeviceState::Valid => {}
        DeviceState::Unregistered => return Err(refuse(StatusCode::GONE, "Unregistered")),
        DeviceState::Expired => return Err(refuse(StatusCode::GONE, "ExpiredToken")),
        DeviceState::Bad => return Err(bad("BadDeviceToken")),
        DeviceState::OtherTopic => return Err(bad("DeviceTokenNotForTopic")),
    }
    shared.record(ReceivedNotification {
        seq: 0,
        device_token: token,
        topic: topic.to_owned(),
        push_type: push_type.to_owned(),
        priority: priority.map(str::to_owned),
        expiration: expiration.map(str::to_owned),
        collapse_id: collapse_id.map(str::to_owned),
        apns_id: apns_id.to_owned(),
        payload,
        key_id,
        team_id,
        connection: conn.id,
        received_at_ms: now_ms(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(is_uuid(&new_uuid()));
        assert!(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
        assert!(!is_uuid("123e4567e89b12d3a456426614174000"));
        assert!(!is_uuid("zzze4567-e89b-12d3-a456-426614174000"));
    }
}
