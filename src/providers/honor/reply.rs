//! A Honor send reply classified once (spec/vendors/honor.md §4, §5).
//!
//! Honor's non-success codes are UNCONFIRMED. The client's documented defaults: `code` is read
//! as an integer; 200 (and, defensively, 0 and Huawei's 80000000) is success, and `data`'s
//! `expireTokens` / `failTokens` are always read; any other code is read with Huawei's table
//! (Honor's API descends from it) and HTTP statuses decide where no code does: 401/403 a refused
//! token, 429/503 rate limiting, other 5xx transient, 400 a bad request.

use serde::Deserialize;
use serde_json::Value;

use crate::providers::huawei::auth::snippet;
use crate::providers::huawei::reply::{code_class, CodeClass};

/// Codes read as success (spec §4: "treat 200 (and 0/80000000 defensively) as success").
pub const SUCCESS_CODES: [i64; 3] = [200, 0, 80000000];

/// What one Honor send came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HonorReply {
    /// Success code. `expire_tokens` are expired/unregistered (unbind them); `fail_tokens`
    /// failed for a reason Honor does not tell (unbind only after repeated failure).
    Delivered {
        request_id: String,
        expire_tokens: Vec<String>,
        fail_tokens: Vec<String>,
    },
    /// Every token invalid, or a wrong app id (Huawei's 80300007 reading): check first.
    AllTokensInvalid {
        code: i64,
        msg: String,
    },
    /// The access token expired: renew and resend at once.
    AccessExpired {
        code: i64,
        msg: String,
    },
    /// The access token was refused: renew once, then the certificate is broken.
    AccessRefused {
        code: i64,
        msg: String,
    },
    Misconfigured {
        code: i64,
        msg: String,
    },
    RateLimited {
        code: i64,
        msg: String,
    },
    InvalidRequest {
        code: i64,
        msg: String,
    },
    Transient {
        reason: String,
    },
    Unknown {
        code: i64,
        msg: String,
    },
}

impl HonorReply {
    pub fn class(&self) -> &'static str {
        match self {
            HonorReply::Delivered { .. } => "delivered",
            HonorReply::AllTokensInvalid { .. } => "no_valid_targets",
            HonorReply::AccessExpired { .. } => "access_expired",
            HonorReply::AccessRefused { .. } => "access_refused",
            HonorReply::Misconfigured { .. } => "misconfigured",
            HonorReply::RateLimited { .. } => "rate_limited",
            HonorReply::InvalidRequest { .. } => "invalid_request",
            HonorReply::Transient { .. } => "transient",
            HonorReply::Unknown { .. } => "unknown",
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            HonorReply::Delivered { request_id, .. } if !request_id.is_empty() => Some(request_id),
            _ => None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    code: Option<Value>,
    message: Option<String>,
    /// Some integrators see `msg` instead of `message`.
    msg: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Data {
    send_result: Option<bool>,
    request_id: Option<Value>,
    fail_tokens: Option<Value>,
    expire_tokens: Option<Value>,
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A token list: a JSON array of strings, or (tolerated) one comma-separated string.
fn tokens(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Classifies one HTTP reply of the send API.
pub fn classify(http_status: u16, body: &[u8]) -> HonorReply {
    if matches!(http_status, 429 | 503) {
        return HonorReply::RateLimited {
            code: i64::from(http_status),
            msg: format!("HTTP {http_status}: {}", snippet(body)),
        };
    }
    let envelope = serde_json::from_slice::<Envelope>(body).unwrap_or_default();
    let msg = envelope
        .message
        .clone()
        .or_else(|| envelope.msg.clone())
        .unwrap_or_default();
    let code = envelope.code.as_ref().and_then(as_i64);
    if http_status == 200 {
        if let Some(code) = code.filter(|c| SUCCESS_CODES.contains(c)) {
            let data = envelope.data.unwrap_or_default();
            let expire_tokens = tokens(data.expire_tokens.as_ref());
            let fail_tokens = tokens(data.fail_tokens.as_ref());
            if data.send_result == Some(false) && expire_tokens.is_empty() && fail_tokens.is_empty()
            {
                // "Not sent" without naming a token: nothing to unbind, nothing to count delivered.
                return HonorReply::Unknown {
                    code,
                    msg: format!("sendResult false: {msg}"),
                };
            }
            let request_id = data
                .request_id
                .map(|r| match r {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .unwrap_or_default();
            return HonorReply::Delivered {
                request_id,
                expire_tokens,
                fail_tokens,
            };
        }
    }
    let Some(code) = code else {
        return classify_status(http_status, body);
    };
    match code_class(code) {
        Some(CodeClass::Success | CodeClass::Partial) | None => match http_status {
            401 | 403 => HonorReply::AccessRefused { code, msg },
            400 => HonorReply::InvalidRequest { code, msg },
            s if s >= 500 => HonorReply::Transient {
                reason: format!("HTTP {s}, code {code}: {msg}"),
            },
            _ => HonorReply::Unknown { code, msg },
        },
        Some(CodeClass::AllTokensInvalid) => HonorReply::AllTokensInvalid { code, msg },
        Some(CodeClass::AccessExpired) => HonorReply::AccessExpired { code, msg },
        Some(CodeClass::AccessRefused) => HonorReply::AccessRefused { code, msg },
        Some(CodeClass::Misconfigured) => HonorReply::Misconfigured { code, msg },
        Some(CodeClass::RateLimited) => HonorReply::RateLimited { code, msg },
        Some(CodeClass::Invalid) => HonorReply::InvalidRequest { code, msg },
        Some(CodeClass::Transient) => HonorReply::Transient {
            reason: format!("code {code}: {msg}"),
        },
    }
}

fn classify_status(http_status: u16, body: &[u8]) -> HonorReply {
    let text = snippet(body);
    let code = i64::from(http_status);
    match http_status {
        401 | 403 => HonorReply::AccessRefused {
            code,
            msg: format!("HTTP {http_status}: {text}"),
        },
        404 => HonorReply::Misconfigured {
            code,
            msg: format!("HTTP 404 (wrong URL: check the base URL and the app id): {text}"),
        },
        400 => HonorReply::InvalidRequest {
            code,
            msg: format!("HTTP 400: {text}"),
        },
        408 => HonorReply::Transient {
            reason: format!("HTTP 408: {text}"),
        },
        s if s >= 500 => HonorReply::Transient {
            reason: format!("HTTP {s}: {text}"),
        },
        s => HonorReply::Unknown {
            code: -1,
            msg: format!("HTTP {s}, not Honor JSON: {text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, body: Value) -> HonorReply {
        classify(status, body.to_string().as_bytes())
    }

    #[test]
    fn success_with_token_lists() {
        let r = reply(
            200,
            json!({"code":200,"message":"success","data":{"sendResult":true,"requestId":"r1",
                   "failTokens":["f1"],"expireTokens":["e1","e2"]}}),
        );
        assert_eq!(
            r,
            HonorReply::Delivered {
                request_id: "r1".into(),
                expire_tokens: vec!["e1".into(), "e2".into()],
                fail_tokens: vec!["f1".into()],
            }
        );
        for code in [json!(0), json!("80000000"), json!(200)] {
            assert_eq!(
                reply(200, json!({"code": code, "data": {}})).class(),
                "delivered"
            );
        }
        assert_eq!(
            reply(200, json!({"code":200,"data":{"sendResult":false}})).class(),
            "unknown"
        );
    }

    #[test]
    fn codes_read_with_huaweis_table_and_statuses() {
        assert_eq!(
            reply(401, json!({"code":80200003,"message":"token expired"})).class(),
            "access_expired"
        );
        assert_eq!(
            reply(401, json!({"code":80200001,"message":"auth"})).class(),
            "access_refused"
        );
        assert_eq!(
            reply(401, json!({"code":40100,"message":"?"})).class(),
            "access_refused"
        );
        assert_eq!(classify(403, b"").class(), "access_refused");
        assert_eq!(classify(503, b"").class(), "rate_limited");
        assert_eq!(classify(429, b"{}").class(), "rate_limited");
        assert_eq!(
            reply(200, json!({"code":80100017,"message":"too many"})).class(),
            "rate_limited"
        );
        assert_eq!(
            reply(400, json!({"code":80100003,"message":"bad"})).class(),
            "invalid_request"
        );
        assert_eq!(classify(400, b"nope").class(), "invalid_request");
        assert_eq!(classify(500, b"").class(), "transient");
        assert_eq!(
            reply(200, json!({"code":80300007,"message":"all invalid"})).class(),
            "no_valid_targets"
        );
        assert_eq!(
            reply(200, json!({"code":80300002,"message":"no right"})).class(),
            "misconfigured"
        );
        assert_eq!(
            reply(200, json!({"code":12345,"message":"?"})).class(),
            "unknown"
        );
        assert_eq!(classify(404, b"").class(), "misconfigured");
        assert_eq!(classify(200, b"garbage").class(), "unknown");
    }
}
