//! A Xiaomi reply classified once (pingora style): retry, token clean-up, metrics and diagnosis
//! all read the one [`VendorReply`] (spec/xiaomi-push-api.md §4, §6).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// What one Xiaomi send call came to, and so what the caller should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VendorReply {
    /// `code` 0. `bad_regids` lists the targets Xiaomi rejected; unbind those tokens.
    /// `over_quota` is the multi APIs' `channel_exceed_quota` (channel, count): that many of
    /// the request's messages were *not* accepted because the daily quota is used up (§5.3).
    Delivered {
        msg_id: String,
        trace_id: String,
        bad_regids: Vec<String>,
        over_quota: Vec<(String, u64)>,
    },
    /// 20301 "No valid targets!": every regId of the request is bad; unbind them all.
    NoValidTargets { trace_id: String },
    /// Auth or package errors (21301, 22022, …): the certificate is broken; no retry.
    Misconfigured {
        code: i64,
        reason: String,
        trace_id: String,
    },
    /// 10027 and kin: back off and retry.
    RateLimited {
        code: i64,
        reason: String,
        trace_id: String,
    },
    /// 200001 / 10034: pause the certificate until the next day, China time.
    QuotaExceeded { reason: String, trace_id: String },
    /// Our request was wrong (65011, 65014, 65015, …); retrying the same request cannot help.
    InvalidRequest {
        code: i64,
        reason: String,
        trace_id: String,
    },
    /// Busy codes, HTTP 5xx, timeouts, connection errors: retry with backoff.
    Transient { reason: String },
    /// A code we have no rule for; not retried, logged with its trace_id.
    Unknown {
        code: i64,
        reason: String,
        trace_id: String,
    },
}

impl VendorReply {
    /// A snake_case label for metrics; never carries an id or a token.
    pub fn class(&self) -> &'static str {
        match self {
            VendorReply::Delivered { .. } => "delivered",
            VendorReply::NoValidTargets { .. } => "no_valid_targets",
            VendorReply::Misconfigured { .. } => "misconfigured",
            VendorReply::RateLimited { .. } => "rate_limited",
            VendorReply::QuotaExceeded { .. } => "quota_exceeded",
            VendorReply::InvalidRequest { .. } => "invalid_request",
            VendorReply::Transient { .. } => "transient",
            VendorReply::Unknown { .. } => "unknown",
        }
    }

    /// Whether sending the same request again later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            VendorReply::RateLimited { .. } | VendorReply::Transient { .. }
        )
    }

    /// Xiaomi's trace id, for logs and diagnosis; `None` when the reply never reached Xiaomi's
    /// envelope (transport errors, 5xx).
    pub fn trace_id(&self) -> Option<&str> {
        let id = match self {
            VendorReply::Delivered { trace_id, .. }
            | VendorReply::NoValidTargets { trace_id }
            | VendorReply::Misconfigured { trace_id, .. }
            | VendorReply::RateLimited { trace_id, .. }
            | VendorReply::QuotaExceeded { trace_id, .. }
            | VendorReply::InvalidRequest { trace_id, .. }
            | VendorReply::Unknown { trace_id, .. } => trace_id.as_str(),
            VendorReply::Transient { .. } => "",
        };
        (!id.is_empty()).then_some(id)
    }
}

/// How a non-zero Xiaomi `code` is handled, from the meanings in spec §4.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CodeClass {
    Misconfigured,
    RateLimited,
    Quota,
    Invalid,
    Busy,
}

fn code_class(code: i64) -> Option<CodeClass> {
    use CodeClass::*;
    Some(match code {
        // Auth, app and package problems; 27001 (channel mismatch) is inferred, UNCONFIRMED.
        10004 | 10005 | 10006 | 10014 | 10026 | 10031 | 10036 | 21301 | 21302 | 21303 | 22000
        | 22001 | 22002 | 22003 | 22004 | 22005 | 22006 | 22007 | 22008 | 22020 | 22021 | 22022
        | 27001 => Misconfigured,
        // Frequency control; which one the QPS limiter returns is UNCONFIRMED, so take them all.
        10022 | 10023 | 10024 | 10027 | 10028 | 10030 | 10032 | 10039 | 26004 => RateLimited,
        200001 | 10034 => Quota,
        // Parameter errors: a bug on our side.
        100 | 10007 | 10008 | 10012 | 10016 | 10017 | 10018 | 10020 | 10021 | 10025 | 21305
        | 22100 | 22101 | 22103 | 65008 | 65009 | 65010 | 65011 | 65012 | 65013 | 65014 | 65015
        | 65016 | 65017 | 65030 | 65035 | 65036 | 65037 | 65038 => Invalid,
        // Busy / internal; 10037 "request expired" is retried by the production gateway [S22].
        1 | 10001 | 10002 | 10003 | 10009 | 10010 | 10011 | 10037 | 20607 | 26003 | 65029 => Busy,
        _ => return None,
    })
}

/// Xiaomi's envelope (spec §4.1). Everything optional: a reply is never trusted to be complete.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    result: Option<String>,
    code: Option<Value>,
    description: Option<String>,
    reason: Option<String>,
    trace_id: Option<String>,
    data: Option<Value>,
}

/// Classifies one HTTP reply from Xiaomi.
///
/// The JSON body is authoritative whatever the HTTP status (spec §2: whether business errors
/// come with 200 or 4xx is UNCONFIRMED). Without a parsable body: 5xx, 408, an empty body
/// (the Java SDK retries those, §6.2) are transient; 429 is rate limiting; anything else unknown.
pub fn classify(http_status: u16, body: &[u8]) -> VendorReply {
    if http_status >= 500 {
        return VendorReply::Transient {
            reason: format!("HTTP {http_status}: {}", snippet(body)),
        };
    }
    let envelope = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope,
        Err(_) => return classify_without_envelope(http_status, body),
    };
    let trace_id = envelope.trace_id.clone().unwrap_or_default();
    let code = match envelope.code.as_ref().and_then(as_i64) {
        Some(code) => code,
        // `code` is always present in Xiaomi's envelope; tolerate a bare `result: ok`.
        None if envelope.result.as_deref() == Some("ok") => 0,
        None => {
            return VendorReply::Unknown {
                code: -1,
                reason: format!("HTTP {http_status}, no code: {}", snippet(body)),
                trace_id,
            }
        }
    };
    let reason = envelope
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .or_else(|| envelope.description.clone())
        .unwrap_or_default();

    if code == 0 {
        let data = envelope.data.as_ref();
        let msg_id = data
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            // Java SDK Result: messageId falls back to trace_id (spec §4.1).
            .map_or_else(|| trace_id.clone(), str::to_owned);
        return VendorReply::Delivered {
            msg_id,
            trace_id,
            bad_regids: data.map(bad_regids).unwrap_or_default(),
            over_quota: data.map(over_quota).unwrap_or_default(),
        };
    }
    if code == 20301 {
        // 20301 is "send message failed" in general; only "No valid targets!" (or no reason at
        // all) means every target is dead. Other reasons must not unbind tokens.
        let lower = reason.to_ascii_lowercase();
        if envelope.reason.as_deref().is_none_or(str::is_empty) || lower.contains("valid target") {
            return VendorReply::NoValidTargets { trace_id };
        }
        return VendorReply::Unknown {
            code,
            reason,
            trace_id,
        };
    }
    match code_class(code) {
        Some(CodeClass::Misconfigured) => VendorReply::Misconfigured {
            code,
            reason,
            trace_id,
        },
        Some(CodeClass::RateLimited) => VendorReply::RateLimited {
            code,
            reason,
            trace_id,
        },
        Some(CodeClass::Quota) => VendorReply::QuotaExceeded { reason, trace_id },
        Some(CodeClass::Invalid) => VendorReply::InvalidRequest {
            code,
            reason,
            trace_id,
        },
        Some(CodeClass::Busy) => VendorReply::Transient {
            reason: format!("code {code}: {reason} (trace_id {trace_id})"),
        },
        None => VendorReply::Unknown {
            code,
            reason,
            trace_id,
        },
    }
}

fn classify_without_envelope(http_status: u16, body: &[u8]) -> VendorReply {
    let text = snippet(body);
    match http_status {
        408 => VendorReply::Transient {
            reason: format!("HTTP 408: {text}"),
        },
        429 => VendorReply::RateLimited {
            code: 429,
            reason: format!("HTTP 429: {text}"),
            trace_id: String::new(),
        },
        _ if body.iter().all(u8::is_ascii_whitespace) => VendorReply::Transient {
            reason: format!("HTTP {http_status} with an empty body"),
        },
        _ => VendorReply::Unknown {
            code: -1,
            reason: format!("HTTP {http_status}, not Xiaomi JSON: {text}"),
            trace_id: String::new(),
        },
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `data.bad_regids` (spelled `badRegIds` / `bad_regIds` by some ports, spec §4.2), a
/// comma-separated string; a JSON array is accepted too.
fn bad_regids(data: &Value) -> Vec<String> {
    let field = ["bad_regids", "badRegIds", "bad_regIds"]
        .iter()
        .find_map(|name| data.get(*name));
    match field {
        Some(Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// `data.channel_exceed_quota` of the multi APIs (spec §5.3): per channel, how many messages
/// of the request went over the daily quota. Its shape is UNCONFIRMED, so this takes an object
/// channel → count (numbers or numeric strings), that object as a JSON string, or a bare count
/// (one Go port types the field as a string), whose channel is unknown (`""`).
fn over_quota(data: &Value) -> Vec<(String, u64)> {
    let count = |v: &Value| {
        as_i64(v)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
    };
    let from_value = |v: &Value| match v {
        Value::Object(per_channel) => per_channel
            .iter()
            .filter_map(|(channel, n)| Some((channel.clone(), count(n)?)))
            .collect(),
        other => count(other)
            .map(|n| vec![(String::new(), n)])
            .unwrap_or_default(),
    };
    match data.get("channel_exceed_quota") {
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ Value::Object(_)) => from_value(&inner),
            _ => from_value(&Value::String(s.clone())),
        },
        Some(v) => from_value(v),
        None => Vec::new(),
    }
}

/// At most 200 chars of a body, for a log-safe reason.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// First backoff of the official SDK (spec §6.1/§6.2): 1000 ms.
const BACKOFF_START_MS: u64 = 1_000;
/// The SDK doubles the backoff only while `2 * backoff < 1_024_000` ms, so it tops out here.
const BACKOFF_MAX_MS: u64 = 512_000;

/// The official SDK's jittered exponential backoff (spec §6): before retry `attempt` (1-based)
/// sleep `backoff/2 + random(0..backoff)`, with `backoff = 1000 ms · 2^(attempt-1)` capped at
/// 512 000 ms. So attempt 1 waits 0.5–1.5 s and no wait ever exceeds 768 s.
pub fn retry_delay(attempt: u32) -> Duration {
    use rand::Rng;
    let doublings = attempt.saturating_sub(1).min(20);
    let backoff = (BACKOFF_START_MS << doublings).min(BACKOFF_MAX_MS);
    let jitter = rand::rng().random_range(0..backoff);
    Duration::from_millis(backoff / 2 + jitter)
}

/// UTC+8: Xiaomi's day, for the daily quota, turns at midnight China time (no DST).
const CHINA_OFFSET_SECS: u64 = 8 * 3600;
const DAY_SECS: u64 = 86_400;

/// The first China-time midnight strictly after `now_unix` (seconds), as unix seconds.
pub fn next_china_midnight_unix(now_unix: u64) -> u64 {
    let local_day = now_unix.saturating_add(CHINA_OFFSET_SECS) / DAY_SECS;
    (local_day + 1) * DAY_SECS - CHINA_OFFSET_SECS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str) -> VendorReply {
        classify(200, body.as_bytes())
    }

    #[test]
    fn delivered_with_each_bad_regids_spelling() {
        for field in ["bad_regids", "badRegIds", "bad_regIds"] {
            let body = format!(
                r#"{{"result":"ok","trace_id":"Xcm07b77488763663927bm","code":0,"data":{{"id":"scm01b20510561935064bK","{field}":"r2, r3,"}},"description":"成功","info":"Received push messages for 1 REGID"}}"#
            );
            assert_eq!(
                reply(&body),
                VendorReply::Delivered {
                    msg_id: "scm01b20510561935064bK".into(),
                    trace_id: "Xcm07b77488763663927bm".into(),
                    bad_regids: vec!["r2".into(), "r3".into()],
                    over_quota: vec![],
                },
                "{field}"
            );
        }
        let plain = reply(r#"{"result":"ok","code":0,"trace_id":"Xt","data":{"id":"s1"}}"#);
        assert_eq!(plain.class(), "delivered");
        assert!(
            matches!(plain, VendorReply::Delivered { bad_regids, .. } if bad_regids.is_empty())
        );
        // No data.id: the Java SDK falls back to trace_id.
        assert!(matches!(
            reply(r#"{"result":"ok","code":0,"trace_id":"Xt"}"#),
            VendorReply::Delivered { msg_id, .. } if msg_id == "Xt"
        ));
    }

    #[test]
    fn channel_exceed_quota_in_each_shape() {
        let over = |field: &str| match reply(&format!(
            r#"{{"result":"ok","code":0,"trace_id":"Xt","data":{{"id":"s1","channel_exceed_quota":{field}}}}}"#
        )) {
            VendorReply::Delivered { over_quota, .. } => over_quota,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            over(r#"{"101556":2,"pre54":"1","x":0}"#),
            vec![("101556".to_string(), 2), ("pre54".to_string(), 1)]
        );
        assert_eq!(over(r#""{\"101556\":3}""#), vec![("101556".to_string(), 3)]);
        assert_eq!(over(r#""4""#), vec![(String::new(), 4)]);
        assert_eq!(over("0"), vec![]);
        assert_eq!(over("null"), vec![]);
    }

    #[test]
    fn every_class() {
        let cases = [
            (
                r#"{"result":"error","reason":"No valid targets!","trace_id":"Xc","code":20301,"description":"发送消息失败"}"#,
                "no_valid_targets",
            ),
            (
                r#"{"result":"error","reason":"something else","trace_id":"Xc","code":20301}"#,
                "unknown",
            ),
            (
                r#"{"result":"error","trace_id":"Xc","code":21301,"description":"认证失败","reason":"Invalid application secret."}"#,
                "misconfigured",
            ),
            (
                r#"{"result":"error","code":22022,"reason":"invalid package name"}"#,
                "misconfigured",
            ),
            (
                r#"{"result":"error","code":10027,"reason":"too frequent"}"#,
                "rate_limited",
            ),
            (
                r#"{"result":"error","code":200001,"reason":"exceed quota, quota: 10, have acked: 10"}"#,
                "quota_exceeded",
            ),
            (
                r#"{"result":"error","reason":"Title or Description is empty!","trace_id":"Xl","code":65011,"description":"未提供参数"}"#,
                "invalid_request",
            ),
            (r#"{"result":"error","code":65014}"#, "invalid_request"),
            (r#"{"result":"error","code":"65015"}"#, "invalid_request"),
            (
                r#"{"result":"error","code":10002,"reason":"busy"}"#,
                "transient",
            ),
            (
                r#"{"result":"error","code":99999,"reason":"new"}"#,
                "unknown",
            ),
            (r#"{"result":"error"}"#, "unknown"),
        ];
        for (body, class) in cases {
            assert_eq!(reply(body).class(), class, "{body}");
        }
        assert_eq!(
            classify(503, b"<html>bad gateway</html>").class(),
            "transient"
        );
        assert_eq!(classify(200, b"").class(), "transient");
        assert_eq!(classify(429, b"slow down").class(), "rate_limited");
        assert_eq!(classify(404, b"<html>nope</html>").class(), "unknown");
        assert_eq!(classify(200, b"{not json").class(), "unknown");
        // A business error on a 4xx still reads the body.
        assert_eq!(
            classify(401, br#"{"result":"error","code":21301}"#).class(),
            "misconfigured"
        );
    }

    #[test]
    fn fields_are_carried() {
        assert_eq!(
            reply(
                r#"{"result":"error","code":200001,"reason":"exceed quota, quota: 5, have acked: 5","trace_id":"Xq"}"#
            ),
            VendorReply::QuotaExceeded {
                reason: "exceed quota, quota: 5, have acked: 5".into(),
                trace_id: "Xq".into()
            }
        );
        let r =
            reply(r#"{"result":"error","code":21301,"description":"认证失败","trace_id":"Xa"}"#);
        assert_eq!(
            r,
            VendorReply::Misconfigured {
                code: 21301,
                reason: "认证失败".into(),
                trace_id: "Xa".into()
            }
        );
        assert_eq!(r.trace_id(), Some("Xa"));
        assert!(!r.retryable());
    }

    #[test]
    fn only_rate_limits_and_transients_retry() {
        let retry: Vec<&str> = [
            reply(r#"{"code":10027}"#),
            reply(r#"{"code":10002}"#),
            reply(r#"{"code":0}"#),
            reply(r#"{"code":20301}"#),
            reply(r#"{"code":21301}"#),
            reply(r#"{"code":200001}"#),
            reply(r#"{"code":65011}"#),
            reply(r#"{"code":4242}"#),
        ]
        .iter()
        .filter(|r| r.retryable())
        .map(VendorReply::class)
        .collect();
        assert_eq!(retry, ["rate_limited", "transient"]);
    }

    #[test]
    fn snippet_is_bounded() {
        let long = "长".repeat(500);
        assert_eq!(snippet(long.as_bytes()).chars().count(), 201);
    }

    #[test]
    fn retry_delay_follows_the_sdk() {
        for _ in 0..200 {
            let first = retry_delay(1).as_millis();
            assert!((500..1500).contains(&first), "{first}");
            let third = retry_delay(3).as_millis();
            assert!((2000..6000).contains(&third), "{third}");
            for attempt in [10, 11, 30, u32::MAX] {
                let late = retry_delay(attempt).as_millis();
                assert!((256_000..768_000).contains(&late), "{late}");
            }
        }
        assert!(retry_delay(0) <= Duration::from_millis(1500));
    }

    #[test]
    fn china_midnight() {
        // 2024-01-01 00:00:00 UTC is 08:00 China time; next China midnight is 16:00 UTC.
        let jan1 = 1_704_067_200;
        assert_eq!(next_china_midnight_unix(jan1), jan1 + 16 * 3600);
        // 15:59:59 UTC → still that midnight; exactly at it → the following one.
        assert_eq!(
            next_china_midnight_unix(jan1 + 16 * 3600 - 1),
            jan1 + 16 * 3600
        );
        assert_eq!(
            next_china_midnight_unix(jan1 + 16 * 3600),
            jan1 + 16 * 3600 + 86_400
        );
        assert_eq!(next_china_midnight_unix(0), 16 * 3600);
    }
}
