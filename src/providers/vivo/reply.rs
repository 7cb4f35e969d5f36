//! vivo replies classified once (spec/vendors/vivo.md §4, §5): every code of the table has its
//! class here, and `invalidUser(s)` become [`TargetFault`]s.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::providers::outcome::{json_i64, snippet, AuthFailure, AuthToken, Outcome, TargetFault};

/// `authToken` lives 24 h (§2).
pub const AUTH_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How a vivo `result` is handled (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Delivered,
    AuthExpired,
    Broken,
    RateLimited,
    InvalidTarget,
    Quota,
    Invalid,
}

pub fn code_class(code: i64) -> Option<CodeClass> {
    use CodeClass::*;
    Some(match code {
        0 => Delivered,
        // 10000 "无权限请求": the token is invalid or expired. 10003 is treated as an auth error
        // by one client (UNCONFIRMED); renewing once is harmless if it is not.
        10000 | 10003 => AuthExpired,
        // 10094 appId ≠ the token's app; 10200 auth params missing / app unknown; 10206 sign
        // wrong; 10207 timestamp illegal (clock skew).
        10094 | 10200 | 10206 | 10207 => Broken,
        // 10250 auth calls over 10/s; 10072 sending too fast.
        10250 | 10072 => RateLimited,
        10302 => InvalidTarget,
        // 10070 daily total, 10252 saveListPayload daily count, 10254 `/message/all` count.
        10070 | 10252 | 10254 => Quota,
        // Every other 10xxx is a parameter error ("xxx不合法").
        10_001..=10_999 => Invalid,
        _ => return None,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    result: Option<Value>,
    desc: Option<String>,
    #[serde(rename = "taskId")]
    task_id: Option<Value>,
    #[serde(rename = "authToken")]
    auth_token: Option<String>,
    #[serde(rename = "invalidUser")]
    invalid_user: Option<Value>,
    #[serde(rename = "invalidUsers")]
    invalid_users: Option<Value>,
}

fn parse(http_status: u16, body: &[u8]) -> Result<(i64, Envelope), Outcome> {
    if http_status >= 500 {
        // vivo answers outages with HTTP 500 "Internet server error!" (§4).
        return Err(Outcome::Transient {
            reason: format!("HTTP {http_status}: {}", snippet(body)),
        });
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Err(without_envelope(http_status, body));
    };
    match envelope.result.as_ref().and_then(json_i64) {
        Some(code) => Ok((code, envelope)),
        None => Err(Outcome::Unknown {
            code: -1,
            reason: format!("HTTP {http_status}, no result: {}", snippet(body)),
        }),
    }
}

/// Classifies the reply to `/message/send`, `/message/pushToList` or a failed
/// `/message/saveListPayload`.
pub fn classify(http_status: u16, body: &[u8]) -> Outcome {
    match parse(http_status, body) {
        Ok((code, envelope)) => from_code(code, envelope),
        Err(outcome) => outcome,
    }
}

fn from_code(code: i64, envelope: Envelope) -> Outcome {
    let reason = envelope.desc.clone().unwrap_or_default();
    match code_class(code) {
        Some(CodeClass::Delivered) => {
            let mut faults = Vec::new();
            for user in envelope.invalid_user.iter().chain(
                envelope
                    .invalid_users
                    .iter()
                    .flat_map(|v| v.as_array().into_iter().flatten()),
            ) {
                let target = user
                    .get("userid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let status = user.get("status").and_then(json_i64).unwrap_or(0);
                if !target.is_empty() {
                    faults.push((target.to_owned(), invalid_user(status)));
                }
            }
            Outcome::Accepted {
                msg_id: envelope
                    .task_id
                    .as_ref()
                    .map(task_id_text)
                    .unwrap_or_default(),
                faults,
            }
        }
        Some(CodeClass::AuthExpired) => Outcome::AuthExpired { code, reason },
        Some(CodeClass::Broken) => Outcome::Broken { code, reason },
        Some(CodeClass::RateLimited) => Outcome::RateLimited { code, reason },
        Some(CodeClass::InvalidTarget) => Outcome::AllInvalid { code, reason },
        Some(CodeClass::Quota) => Outcome::QuotaExceeded { code, reason },
        Some(CodeClass::Invalid) => Outcome::InvalidRequest { code, reason },
        None => Outcome::Unknown { code, reason },
    }
}

/// `invalidUser.status` (§4): 1 no such user and 3 offline ≥ 90 days are dead tokens; 2 app
/// uninstalled or notifications off keeps the token (the user may switch them on again, as
/// mizhousoft does); 4 "not a test user" only answers test pushes, which we never send.
pub fn invalid_user(status: i64) -> TargetFault {
    match status {
        1 | 3 => TargetFault::Invalid { code: status },
        2 => TargetFault::SwitchedOff { code: status },
        4 => TargetFault::Rejected { code: status },
        _ => TargetFault::Unknown { code: status },
    }
}

fn task_id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The `taskId` of a successful `saveListPayload`, or the classified failure.
pub fn classify_list_payload(http_status: u16, body: &[u8]) -> Result<String, Outcome> {
    let (code, envelope) = parse(http_status, body)?;
    if code == 0 {
        let task = envelope
            .task_id
            .as_ref()
            .map(task_id_text)
            .unwrap_or_default();
        if task.is_empty() {
            return Err(Outcome::Unknown {
                code: 0,
                reason: "saveListPayload answered 0 without a taskId".to_owned(),
            });
        }
        return Ok(task);
    }
    Err(from_code(code, envelope))
}

fn without_envelope(http_status: u16, body: &[u8]) -> Outcome {
    let text = snippet(body);
    match http_status {
        408 => Outcome::Transient {
            reason: format!("HTTP 408: {text}"),
        },
        429 => Outcome::RateLimited {
            code: 429,
            reason: format!("HTTP 429: {text}"),
        },
        _ if body.iter().all(u8::is_ascii_whitespace) => Outcome::Transient {
            reason: format!("HTTP {http_status} with an empty body"),
        },
        _ => Outcome::Unknown {
            code: -1,
            reason: format!("HTTP {http_status}, not vivo JSON: {text}"),
        },
    }
}

/// Classifies the reply to `POST /message/auth`: `{"result":0,"authToken":…}`.
pub fn classify_auth(http_status: u16, body: &[u8]) -> Result<AuthToken, AuthFailure> {
    let (code, envelope) = match parse(http_status, body) {
        Ok(parsed) => parsed,
        Err(outcome) => {
            return Err(AuthFailure::Unavailable(format!(
                "vivo auth: {}",
                outcome_reason(&outcome)
            )))
        }
    };
    let reason = envelope.desc.clone().unwrap_or_default();
    if code == 0 {
        return match envelope.auth_token.filter(|t| !t.is_empty()) {
            Some(token) => Ok(AuthToken {
                token,
                valid_for: AUTH_TOKEN_LIFETIME,
            }),
            None => Err(AuthFailure::Unavailable(
                "vivo auth answered 0 without authToken".to_owned(),
            )),
        };
    }
    match code_class(code) {
        Some(CodeClass::Broken) => Err(AuthFailure::Refused(format!(
            "vivo auth answered {code}: {reason}"
        ))),
        // 10250 (over 10 calls/s) and anything unknown: try again later.
        _ => Err(AuthFailure::Unavailable(format!(
            "vivo auth answered {code}: {reason}"
        ))),
    }
}

fn outcome_reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Transient { reason } => reason.clone(),
        Outcome::RateLimited { reason, .. } | Outcome::Unknown { reason, .. } => reason.clone(),
        other => other.class().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_table_has_a_class() {
        use CodeClass::*;
        for (code, class) in [
            (0, Delivered),
            (10000, AuthExpired),
            (10003, AuthExpired),
            (10094, Broken),
            (10200, Broken),
            (10206, Broken),
            (10207, Broken),
            (10250, RateLimited),
            (10302, InvalidTarget),
            (10070, Quota),
            (10072, RateLimited),
            (10252, Quota),
            (10254, Quota),
            (10055, Invalid),
            (10999, Invalid),
        ] {
            assert_eq!(code_class(code), Some(class), "{code}");
        }
        assert_eq!(code_class(20000), None);
    }

    #[test]
    fn invalid_users_are_split_by_status() {
        let outcome = classify(
            200,
            br#"{"result":0,"desc":"","taskId":"5367","invalidUsers":[
                {"userid":"v2-a","status":1},{"userid":"v2-b","status":2},
                {"userid":"v2-c","status":3},{"userid":"v2-d","status":4}]}"#,
        );
        assert_eq!(
            outcome,
            Outcome::Accepted {
                msg_id: "5367".into(),
                faults: vec![
                    ("v2-a".into(), TargetFault::Invalid { code: 1 }),
                    ("v2-b".into(), TargetFault::SwitchedOff { code: 2 }),
                    ("v2-c".into(), TargetFault::Invalid { code: 3 }),
                    ("v2-d".into(), TargetFault::Rejected { code: 4 }),
                ]
            }
        );
        assert_eq!(
            classify(
                200,
                br#"{"result":0,"taskId":123,"invalidUser":{"userid":"v2-x","status":"2"}}"#
            ),
            Outcome::Accepted {
                msg_id: "123".into(),
                faults: vec![("v2-x".into(), TargetFault::SwitchedOff { code: 2 })]
            }
        );
    }

    #[test]
    fn request_level_classes() {
        for (body, class) in [
            (r#"{"result":10000,"desc":"无权限请求"}"#, "auth_expired"),
            (r#"{"result":10094,"desc":"appId不一致"}"#, "misconfigured"),
            (
                r#"{"result":10302,"desc":"regId不合法"}"#,
                "no_valid_targets",
            ),
            (
                r#"{"result":10070,"desc":"发送总量超出限制"}"#,
                "quota_exceeded",
            ),
            (r#"{"result":10072,"desc":"超频"}"#, "rate_limited"),
            (
                r#"{"result":10055,"desc":"title不合法"}"#,
                "invalid_request",
            ),
            (r#"{"result":31337}"#, "unknown"),
            (r#"{"desc":"x"}"#, "unknown"),
        ] {
            assert_eq!(classify(200, body.as_bytes()).class(), class, "{body}");
        }
        assert_eq!(
            classify(500, b"Internet server error!").class(),
            "transient"
        );
        assert_eq!(classify(200, b"").class(), "transient");
    }

    #[test]
    fn list_payload_and_auth() {
        assert_eq!(
            classify_list_payload(200, br#"{"result":0,"taskId":"t9"}"#),
            Ok("t9".into())
        );
        assert_eq!(
            classify_list_payload(200, br#"{"result":10252,"desc":"x"}"#).map_err(|o| o.class()),
            Err("quota_exceeded")
        );
        assert!(classify_list_payload(200, br#"{"result":0}"#).is_err());
        let ok = classify_auth(
            200,
            r#"{"result":0,"desc":"请求成功","authToken":"24ojf8f2"}"#.as_bytes(),
        )
        .expect("token");
        assert_eq!(ok.token, "24ojf8f2");
        assert!(matches!(
            classify_auth(200, r#"{"result":10206,"desc":"sign错误"}"#.as_bytes()),
            Err(AuthFailure::Refused(_))
        ));
        assert!(matches!(
            classify_auth(200, r#"{"result":10250,"desc":"超限"}"#.as_bytes()),
            Err(AuthFailure::Unavailable(_))
        ));
        assert!(matches!(
            classify_auth(500, b"x"),
            Err(AuthFailure::Unavailable(_))
        ));
    }
}
