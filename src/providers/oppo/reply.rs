//! OPPO replies classified once (spec/vendors/oppo.md §5, §6): every code of the table has its
//! class here, and `unicast_batch`'s per-target `errorCode`s become [`TargetFault`]s.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::providers::outcome::{json_i64, snippet, AuthFailure, AuthToken, Outcome, TargetFault};

/// `auth_token` lives 24 h (§2); renewed a little early by the access cache.
pub const AUTH_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Invalid registration_id, per target in a batch or for the whole `unicast` (§5).
pub const CODE_INVALID_REGISTRATION_ID: i64 = 10000;

/// How a non-zero OPPO code is handled (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Delivered,
    RateLimited,
    Transient,
    AuthExpired,
    Broken,
    Quota,
    Invalid,
    InvalidTarget,
}

pub fn code_class(code: i64) -> Option<CodeClass> {
    use CodeClass::*;
    Some(match code {
        0 => Delivered,
        // 32 "data duplicate" is OPPO's answer to a reused `app_message_id`: the message went out
        // the first time (UNCONFIRMED, §6). We send no app_message_id, so it should not happen.
        32 => Delivered,
        // -2 flow control, 13 app call limited, 55 app call frequency limit: which one a QPS
        // overrun answers is UNCONFIRMED (§7), so all three slow down.
        -2 | 13 | 55 => RateLimited,
        -1 => Transient,
        11 => AuthExpired,
        // 14/15 app key, 16/17 signature, 18/19 timestamp, 26 IP blacklisted, 27 no permission,
        // 28 app disabled, 29 missing auth token, 30 no API push permission, 59 no secondary-
        // action permission, 67 category / notify_level refused: all need the operator.
        14..=19 | 26..=30 | 59 | 67 => Broken,
        // 33 daily message limit, 34 daily picture upload limit.
        33 | 34 => Quota,
        // 12 method not allowed, 20–24 method/version, 25 encoding, 31 data not exist,
        // 40/41 missing/invalid arguments, 51 invalid picture.
        12 | 20..=25 | 31 | 40 | 41 | 51 => Invalid,
        CODE_INVALID_REGISTRATION_ID => InvalidTarget,
        // The business codes of each API (§6): a bad request unless listed above.
        10_001..=20_000 => Invalid,
        _ => return None,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    code: Option<Value>,
    message: Option<String>,
    data: Option<Value>,
}

/// Classifies the reply to a `unicast` or `unicast_batch`.
pub fn classify(http_status: u16, body: &[u8]) -> Outcome {
    if http_status >= 500 {
        return Outcome::Transient {
            reason: format!("HTTP {http_status}: {}", snippet(body)),
        };
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return without_envelope(http_status, body);
    };
    let Some(code) = envelope.code.as_ref().and_then(json_i64) else {
        return Outcome::Unknown {
            code: -1,
            reason: format!("HTTP {http_status}, no code: {}", snippet(body)),
        };
    };
    let reason = envelope.message.unwrap_or_default();
    match code_class(code) {
        Some(CodeClass::Delivered) => accepted(envelope.data.as_ref()),
        Some(CodeClass::RateLimited) => Outcome::RateLimited { code, reason },
        Some(CodeClass::Transient) => Outcome::Transient {
            reason: format!("code {code}: {reason}"),
        },
        Some(CodeClass::AuthExpired) => Outcome::AuthExpired { code, reason },
        Some(CodeClass::Broken) => Outcome::Broken { code, reason },
        Some(CodeClass::Quota) => Outcome::QuotaExceeded { code, reason },
        Some(CodeClass::Invalid) => Outcome::InvalidRequest { code, reason },
        Some(CodeClass::InvalidTarget) => Outcome::AllInvalid { code, reason },
        None => Outcome::Unknown { code, reason },
    }
}

/// `data` of a success: an object with `messageId` (unicast) or an array with one entry per
/// message, failed ones carrying `errorCode` (unicast_batch).
fn accepted(data: Option<&Value>) -> Outcome {
    let mut msg_id = String::new();
    let mut faults = Vec::new();
    match data {
        Some(Value::Array(entries)) => {
            for entry in entries {
                let target = entry
                    .get("registrationId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                match entry.get("errorCode").and_then(json_i64) {
                    Some(code) if code != 0 => {
                        if !target.is_empty() {
                            faults.push((target.to_owned(), target_fault(code)));
                        }
                    }
                    _ => {
                        if msg_id.is_empty() {
                            msg_id = message_id(entry);
                        }
                    }
                }
            }
        }
        Some(entry @ Value::Object(_)) => msg_id = message_id(entry),
        _ => {}
    }
    Outcome::Accepted { msg_id, faults }
}

fn message_id(entry: &Value) -> String {
    // unicast says `messageId`, broadcast `message_id` (§5).
    ["messageId", "message_id"]
        .iter()
        .find_map(|k| entry.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

/// A per-target `errorCode` of `unicast_batch`.
pub fn target_fault(code: i64) -> TargetFault {
    match code_class(code) {
        Some(CodeClass::InvalidTarget) => TargetFault::Invalid { code },
        Some(CodeClass::RateLimited) => TargetFault::RateLimited { code },
        Some(CodeClass::Transient | CodeClass::AuthExpired) => TargetFault::Retry { code },
        Some(CodeClass::Quota) => TargetFault::Quota { code },
        Some(CodeClass::Broken) => TargetFault::Refused { code },
        Some(CodeClass::Invalid) => TargetFault::Rejected { code },
        Some(CodeClass::Delivered) | None => TargetFault::Unknown { code },
    }
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
            reason: format!("HTTP {http_status}, not OPPO JSON: {text}"),
        },
    }
}

/// Classifies the reply to `POST /server/v1/auth`:
/// `{"code":0,"data":{"auth_token":…,"create_time":…}}`.
pub fn classify_auth(http_status: u16, body: &[u8]) -> Result<AuthToken, AuthFailure> {
    if http_status >= 500 {
        return Err(AuthFailure::Unavailable(format!(
            "OPPO auth HTTP {http_status}: {}",
            snippet(body)
        )));
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        return Err(AuthFailure::Unavailable(format!(
            "OPPO auth HTTP {http_status}, not OPPO JSON: {}",
            snippet(body)
        )));
    };
    let code = envelope.code.as_ref().and_then(json_i64).unwrap_or(-1);
    let reason = envelope.message.unwrap_or_default();
    if code == 0 {
        let token = envelope
            .data
            .as_ref()
            .and_then(|d| d.get("auth_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        return match token {
            Some(token) => Ok(AuthToken {
                token: token.to_owned(),
                valid_for: AUTH_TOKEN_LIFETIME,
            }),
            None => Err(AuthFailure::Unavailable(
                "OPPO auth answered code 0 without data.auth_token".to_owned(),
            )),
        };
    }
    match code_class(code) {
        Some(CodeClass::Broken) => Err(AuthFailure::Refused(format!(
            "OPPO auth answered {code}: {reason}"
        ))),
        _ => Err(AuthFailure::Unavailable(format!(
            "OPPO auth answered {code}: {reason}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str) -> Outcome {
        classify(200, body.as_bytes())
    }

    #[test]
    fn every_code_of_the_table_has_a_class() {
        use CodeClass::*;
        let table: &[(i64, CodeClass)] = &[
            (0, Delivered),
            (-2, RateLimited),
            (-1, Transient),
            (11, AuthExpired),
            (12, Invalid),
            (13, RateLimited),
            (14, Broken),
            (15, Broken),
            (16, Broken),
            (17, Broken),
            (18, Broken),
            (19, Broken),
            (20, Invalid),
            (24, Invalid),
            (25, Invalid),
            (26, Broken),
            (27, Broken),
            (28, Broken),
            (29, Broken),
            (30, Broken),
            (31, Invalid),
            (32, Delivered),
            (33, Quota),
            (34, Quota),
            (40, Invalid),
            (41, Invalid),
            (51, Invalid),
            (55, RateLimited),
            (59, Broken),
            (67, Broken),
            (10000, InvalidTarget),
            (10001, Invalid),
            (20000, Invalid),
        ];
        for (code, class) in table {
            assert_eq!(code_class(*code), Some(*class), "{code}");
        }
        assert_eq!(code_class(99), None);
        assert_eq!(code_class(20001), None);
    }

    #[test]
    fn batch_results_are_split_per_target() {
        let outcome = reply(
            r#"{"code":0,"message":"Success","data":[
                {"messageId":"5ee1-1-1-abc","registrationId":"CN_a"},
                {"registrationId":"CN_b","errorCode":10000,"errorMessage":"Invalid Registration_id"},
                {"registrationId":"CN_c","errorCode":-2,"errorMessage":"flow control"}]}"#,
        );
        assert_eq!(
            outcome,
            Outcome::Accepted {
                msg_id: "5ee1-1-1-abc".into(),
                faults: vec![
                    ("CN_b".into(), TargetFault::Invalid { code: 10000 }),
                    ("CN_c".into(), TargetFault::RateLimited { code: -2 }),
                ],
            }
        );
        assert_eq!(
            reply(r#"{"code":0,"message":"Success","data":{"messageId":"m1"}}"#),
            Outcome::Accepted {
                msg_id: "m1".into(),
                faults: vec![]
            }
        );
    }

    #[test]
    fn request_level_classes() {
        let cases = [
            (
                r#"{"code":10000,"message":"Invalid Registration_id"}"#,
                "no_valid_targets",
            ),
            (
                r#"{"code":11,"message":"Invalid AuthToken"}"#,
                "auth_expired",
            ),
            (
                r#"{"code":16,"message":"Invalid Signature"}"#,
                "misconfigured",
            ),
            (r#"{"code":67,"message":"Category error"}"#, "misconfigured"),
            (
                r#"{"code":-2,"message":"Service in Flow Control"}"#,
                "rate_limited",
            ),
            (
                r#"{"code":"55","message":"App Call Frequency Limit"}"#,
                "rate_limited",
            ),
            (
                r#"{"code":33,"message":"The number of messages exceeds the daily limit"}"#,
                "quota_exceeded",
            ),
            (
                r#"{"code":41,"message":"Invalid Arguments"}"#,
                "invalid_request",
            ),
            (
                r#"{"code":-1,"message":"Service Currently Unavailable"}"#,
                "transient",
            ),
            (r#"{"code":4242}"#, "unknown"),
            (r#"{"message":"x"}"#, "unknown"),
        ];
        for (body, class) in cases {
            assert_eq!(reply(body).class(), class, "{body}");
        }
        assert_eq!(classify(502, b"<html/>").class(), "transient");
        assert_eq!(classify(200, b"").class(), "transient");
        assert_eq!(classify(429, b"slow").class(), "rate_limited");
        assert_eq!(classify(404, b"<html/>").class(), "unknown");
    }

    #[test]
    fn auth_replies() {
        let ok = classify_auth(
            200,
            br#"{"code":0,"message":"Success","data":{"auth_token":"58ad47319e8d725350a5afd5","create_time":1470000000000}}"#,
        )
        .expect("token");
        assert_eq!(ok.token, "58ad47319e8d725350a5afd5");
        assert_eq!(ok.valid_for, Duration::from_secs(86_400));
        assert!(matches!(
            classify_auth(200, br#"{"code":16,"message":"Invalid Signature"}"#),
            Err(AuthFailure::Refused(m)) if m.contains("16")
        ));
        assert!(matches!(
            classify_auth(200, br#"{"code":-2,"message":"flow"}"#),
            Err(AuthFailure::Unavailable(_))
        ));
        assert!(matches!(
            classify_auth(503, b""),
            Err(AuthFailure::Unavailable(_))
        ));
        assert!(matches!(
            classify_auth(200, br#"{"code":0,"data":{}}"#),
            Err(AuthFailure::Unavailable(_))
        ));
    }
}
