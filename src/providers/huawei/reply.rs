//! A Huawei send reply classified once (spec/vendors/huawei.md §4, §5): every code of the table
//! maps to one [`HuaweiReply`], which retry, token clean-up, metrics and diagnosis all read.

use serde::Deserialize;
use serde_json::Value;

use super::auth::snippet;

/// What one Huawei send came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HuaweiReply {
    /// 80000000, or 80100000 (partial success) with the tokens Huawei called illegal: unbind those.
    Delivered {
        request_id: String,
        illegal_tokens: Vec<String>,
    },
    /// 80300007: every token of the request is invalid — or the app id is wrong; the caller must
    /// check the certificate before unbinding anything (spec §5).
    AllTokensInvalid { request_id: String, msg: String },
    /// 80200003 (OAuth token expired) / 80200005 (JWT expired): renew the token and resend at once.
    AccessExpired { code: i64, msg: String },
    /// 80200001 or HTTP 401: the token was refused; renew once, then the certificate is broken.
    AccessRefused { code: i64, msg: String },
    /// App not allowed to send, wrong app/project id, no permission, penalty: certificate broken.
    Misconfigured { code: i64, msg: String },
    /// HTTP 503 flow control, 80100017, 80300029: slow down and retry.
    RateLimited { code: i64, msg: String },
    /// Our request was wrong; resending it cannot help.
    InvalidRequest { code: i64, msg: String },
    /// 80600003, 81000001, HTTP 5xx, timeouts, connection errors: retry with backoff.
    Transient { reason: String },
    /// A code no rule covers; not retried.
    Unknown { code: i64, msg: String },
}

impl HuaweiReply {
    /// A snake_case label for metrics; never carries an id or a token.
    pub fn class(&self) -> &'static str {
        match self {
            HuaweiReply::Delivered { .. } => "delivered",
            HuaweiReply::AllTokensInvalid { .. } => "no_valid_targets",
            HuaweiReply::AccessExpired { .. } => "access_expired",
            HuaweiReply::AccessRefused { .. } => "access_refused",
            HuaweiReply::Misconfigured { .. } => "misconfigured",
            HuaweiReply::RateLimited { .. } => "rate_limited",
            HuaweiReply::InvalidRequest { .. } => "invalid_request",
            HuaweiReply::Transient { .. } => "transient",
            HuaweiReply::Unknown { .. } => "unknown",
        }
    }

    /// Huawei's `requestId`, for logs and diagnosis.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            HuaweiReply::Delivered { request_id, .. }
            | HuaweiReply::AllTokensInvalid { request_id, .. } => {
                Some(request_id.as_str()).filter(|r| !r.is_empty())
            }
            _ => None,
        }
    }
}

pub const CODE_SUCCESS: i64 = 80000000;
pub const CODE_PARTIAL: i64 = 80100000;
pub const CODE_AUTH_ERROR: i64 = 80200001;
pub const CODE_TOKEN_EXPIRED: i64 = 80200003;
pub const CODE_JWT_EXPIRED: i64 = 80200005;
pub const CODE_ALL_TOKENS_INVALID: i64 = 80300007;

/// How a code of spec §5 is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Success,
    Partial,
    AllTokensInvalid,
    AccessExpired,
    AccessRefused,
    Misconfigured,
    RateLimited,
    Invalid,
    Transient,
}

/// The class of every code of the table in spec §5; `None` for codes it does not list.
pub fn code_class(code: i64) -> Option<CodeClass> {
    use CodeClass::*;
    Some(match code {
        CODE_SUCCESS => Success,
        CODE_PARTIAL => Partial,
        // 80100016 sensitive content: resending the same text cannot help.
        80100001 | 80100002 | 80100003 | 80100004 | 80100013 | 80100016 | 80100018 => Invalid,
        80100017 => RateLimited,
        CODE_AUTH_ERROR => AccessRefused,
        CODE_TOKEN_EXPIRED | CODE_JWT_EXPIRED => AccessExpired,
        // 80300002 push not enabled / wrong app id; 80300011 importance HIGH without permission;
        // 80300036 JWT validity > 1 day; 80300037 penalty.
        80300002 | 80300011 | 80300036 | 80300037 => Misconfigured,
        CODE_ALL_TOKENS_INVALID => AllTokensInvalid,
        // 80300008 body > 4096 B, 80300010 token count, 80300030 test token count.
        80300008 | 80300010 | 80300030 => Invalid,
        // 80300029: test-message rate limit.
        80300029 => RateLimited,
        80600003 | 81000001 => Transient,
        82000001..=82000013 => Invalid,
        _ => return None,
    })
}

/// Huawei's envelope: `{"code":"80000000","msg":"Success","requestId":"…"}`; `code` is a string.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    code: Option<Value>,
    msg: Option<String>,
    #[serde(rename = "requestId")]
    request_id: Option<String>,
}

/// The `msg` of 80100000, itself JSON text: `{"success":1,"failure":1,"illegal_tokens":[…]}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PartialMsg {
    illegal_tokens: Vec<String>,
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The tokens listed in a partial success's `msg`, parsed a second time (spec §4). A `msg` that
/// is not that JSON lists nothing: no token is unbound on a guess.
pub fn illegal_tokens(msg: &str) -> Vec<String> {
    serde_json::from_str::<PartialMsg>(msg)
        .map(|p| {
            p.illegal_tokens
                .into_iter()
                .filter(|t| !t.trim().is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// Classifies one HTTP reply of the send API.
///
/// HTTP 503 is flow control whatever the body (spec §4, §6); otherwise a body with a `code`
/// decides, so a 400 carrying 80100003 is an invalid request. Without a code: 401 is a refused
/// token, 404 a wrong URL (app or project id), 5xx transient.
pub fn classify(http_status: u16, body: &[u8]) -> HuaweiReply {
    if http_status == 503 {
        return HuaweiReply::RateLimited {
            code: 503,
            msg: format!("HTTP 503 flow control: {}", snippet(body)),
        };
    }
    let envelope = serde_json::from_slice::<Envelope>(body).unwrap_or_default();
    let msg = envelope.msg.clone().unwrap_or_default();
    let request_id = envelope.request_id.clone().unwrap_or_default();
    let Some(code) = envelope.code.as_ref().and_then(as_i64) else {
        return classify_without_code(http_status, body);
    };
    let Some(class) = code_class(code) else {
        if http_status >= 500 {
            return HuaweiReply::Transient {
                reason: format!("HTTP {http_status}, code {code}: {msg}"),
            };
        }
        return HuaweiReply::Unknown { code, msg };
    };
    match class {
        CodeClass::Success => HuaweiReply::Delivered {
            request_id,
            illegal_tokens: Vec::new(),
        },
        CodeClass::Partial => HuaweiReply::Delivered {
            request_id,
            illegal_tokens: illegal_tokens(&msg),
        },
        CodeClass::AllTokensInvalid => HuaweiReply::AllTokensInvalid { request_id, msg },
        CodeClass::AccessExpired => HuaweiReply::AccessExpired { code, msg },
        CodeClass::AccessRefused => HuaweiReply::AccessRefused { code, msg },
        CodeClass::Misconfigured => HuaweiReply::Misconfigured { code, msg },
        CodeClass::RateLimited => HuaweiReply::RateLimited { code, msg },
        CodeClass::Invalid => HuaweiReply::InvalidRequest { code, msg },
        CodeClass::Transient => HuaweiReply::Transient {
            reason: format!("code {code}: {msg} (requestId {request_id})"),
        },
    }
}

fn classify_without_code(http_status: u16, body: &[u8]) -> HuaweiReply {
    let text = snippet(body);
    match http_status {
        401 => HuaweiReply::AccessRefused {
            code: 401,
            msg: format!("HTTP 401: {text}"),
        },
        404 => HuaweiReply::Misconfigured {
            code: 404,
            msg: format!("HTTP 404 (wrong URL: check the base URL and the app id): {text}"),
        },
        429 => HuaweiReply::RateLimited {
            code: 429,
            msg: format!("HTTP 429: {text}"),
        },
        400 => HuaweiReply::InvalidRequest {
            code: 400,
            msg: format!("HTTP 400: {text}"),
        },
        408 => HuaweiReply::Transient {
            reason: format!("HTTP 408: {text}"),
        },
        s if s >= 500 => HuaweiReply::Transient {
            reason: format!("HTTP {s}: {text}"),
        },
        s => HuaweiReply::Unknown {
            code: -1,
            msg: format!("HTTP {s}, not Huawei JSON: {text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, code: &str, msg: &str) -> HuaweiReply {
        let body =
            serde_json::json!({"code": code, "msg": msg, "requestId": "160209653167346065000206"});
        classify(status, body.to_string().as_bytes())
    }

    #[test]
    fn success_and_partial_success() {
        assert_eq!(
            reply(200, "80000000", "Success"),
            HuaweiReply::Delivered {
                request_id: "160209653167346065000206".into(),
                illegal_tokens: vec![]
            }
        );
        let partial = r#"{"success":1,"failure":2,"illegal_tokens":["bad1","bad2"]}"#;
        assert_eq!(
            reply(200, "80100000", partial),
            HuaweiReply::Delivered {
                request_id: "160209653167346065000206".into(),
                illegal_tokens: vec!["bad1".into(), "bad2".into()]
            }
        );
        // A msg that is not the JSON string unbinds nothing.
        assert_eq!(
            reply(200, "80100000", "Some tokens failed"),
            HuaweiReply::Delivered {
                request_id: "160209653167346065000206".into(),
                illegal_tokens: vec![]
            }
        );
        // `code` as a number is tolerated.
        assert_eq!(
            classify(200, br#"{"code":80000000,"msg":"Success"}"#).class(),
            "delivered"
        );
    }

    #[test]
    fn every_code_of_the_table_has_its_class() {
        use CodeClass::*;
        let table: &[(i64, CodeClass)] = &[
            (80000000, Success),
            (80100000, Partial),
            (80100001, Invalid),
            (80100002, Invalid),
            (80100003, Invalid),
            (80100004, Invalid),
            (80100013, Invalid),
            (80100016, Invalid),
            (80100017, RateLimited),
            (80100018, Invalid),
            (80200001, AccessRefused),
            (80200003, AccessExpired),
            (80200005, AccessExpired),
            (80300002, Misconfigured),
            (80300007, AllTokensInvalid),
            (80300008, Invalid),
            (80300010, Invalid),
            (80300011, Misconfigured),
            (80300029, RateLimited),
            (80300030, Invalid),
            (80300036, Misconfigured),
            (80300037, Misconfigured),
            (80600003, Transient),
            (81000001, Transient),
            (82000001, Invalid),
            (82000010, Invalid),
            (82000011, Invalid),
            (82000013, Invalid),
        ];
        for (code, class) in table {
            assert_eq!(code_class(*code), Some(*class), "{code}");
        }
        assert_eq!(code_class(82000014), None);
        assert_eq!(code_class(0), None);
    }

    #[test]
    fn replies_of_each_class() {
        assert!(matches!(
            reply(200, "80300007", "All the tokens are invalid"),
            HuaweiReply::AllTokensInvalid { .. }
        ));
        assert!(matches!(
            reply(401, "80200003", "OAuth token expired"),
            HuaweiReply::AccessExpired { code: 80200003, .. }
        ));
        assert!(matches!(
            reply(401, "80200001", "Oauth authentication error"),
            HuaweiReply::AccessRefused { code: 80200001, .. }
        ));
        assert!(matches!(
            reply(400, "80100003", "Illegal payload"),
            HuaweiReply::InvalidRequest { code: 80100003, .. }
        ));
        assert!(matches!(
            reply(
                200,
                "80300002",
                "No permission to send message to these tmIDs"
            ),
            HuaweiReply::Misconfigured { code: 80300002, .. }
        ));
        assert!(matches!(
            reply(500, "81000001", "System inner error"),
            HuaweiReply::Transient { .. }
        ));
        assert!(matches!(
            reply(200, "80999999", "new"),
            HuaweiReply::Unknown { code: 80999999, .. }
        ));
        assert!(matches!(
            reply(502, "80999999", "new"),
            HuaweiReply::Transient { .. }
        ));
    }

    #[test]
    fn http_statuses_without_a_code() {
        assert!(matches!(
            classify(503, b"<html>Traffic control</html>"),
            HuaweiReply::RateLimited { code: 503, .. }
        ));
        // 503 is flow control even with a code in the body.
        assert!(matches!(
            classify(503, br#"{"code":"81000001"}"#),
            HuaweiReply::RateLimited { .. }
        ));
        assert!(matches!(
            classify(401, b""),
            HuaweiReply::AccessRefused { .. }
        ));
        assert!(matches!(
            classify(404, b"not found"),
            HuaweiReply::Misconfigured { code: 404, .. }
        ));
        assert!(matches!(classify(502, b""), HuaweiReply::Transient { .. }));
        assert!(matches!(
            classify(500, b"{}"),
            HuaweiReply::Transient { .. }
        ));
        assert!(matches!(
            classify(200, b"garbage"),
            HuaweiReply::Unknown { .. }
        ));
        assert!(matches!(
            classify(400, b"bad"),
            HuaweiReply::InvalidRequest { .. }
        ));
    }
}
