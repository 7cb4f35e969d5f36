//! Meizu replies classified once (spec/vendors/meizu.md §4, §5): every request-level `code` and
//! every per-target code of the `value` map has its class here. Note the overloaded 110010:
//! request-level "too frequent", per target "the user switched messages off".

use serde::Deserialize;
use serde_json::Value;

use crate::providers::outcome::{json_i64, snippet, Outcome, TargetFault};

/// How a request-level `code` is handled (§5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Delivered,
    Redirect,
    Transient,
    Invalid,
    Broken,
    RateLimited,
    Quota,
}

pub fn code_class(code: i64) -> Option<CodeClass> {
    use CodeClass::*;
    Some(match code {
        200 => Delivered,
        300 => Redirect,
        // -1 unknown, 500 other error, 1001 system error, 1003 server busy: retried with backoff,
        // bounded by the sender's attempt budget.
        -1 | 500 | 1001 | 1003 => Transient,
        // 1005 parameter error, 110004 parameter empty, 110032 illegal taskId.
        1005 | 110_004 | 110_032 => Invalid,
        // 1006 signature failed, 110000/110001 appId/appKey illegal, 110009 app blacklisted,
        // 110031 packageName illegal, 110033 appSecret illegal.
        1006 | 110_000 | 110_001 | 110_009 | 110_031 | 110_033 => Broken,
        110_010 => RateLimited,
        // 110019 daily push count, 110051 push count limit, 110053 pass-through limit.
        110_019 | 110_051 | 110_053 => Quota,
        _ => return None,
    })
}

/// A per-target code of the `value` map; `None` for 520 (folded: shown, not retried).
pub fn target_fault(code: i64) -> Option<TargetFault> {
    Some(match code {
        // Folded: the device got this app's messages many times within a minute; the message is
        // in the tray, collapsed. Counted delivered, never retried.
        520 => return None,
        110_002 | 110_003 => TargetFault::Invalid { code },
        // We never send to aliases, so "alias unsubscribed" cannot concern a token of ours.
        110_005 => TargetFault::Rejected { code },
        110_010 => TargetFault::SwitchedOff { code },
        110_011 => TargetFault::Quota { code },
        201 => TargetFault::Refused { code },
        501 | 513 | 519 => TargetFault::Retry { code },
        518 => TargetFault::RateLimited { code },
        _ => TargetFault::Unknown { code },
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Envelope {
    code: Option<Value>,
    message: Option<String>,
    value: Option<Value>,
    redirect: Option<String>,
    #[serde(rename = "msgId")]
    msg_id: Option<String>,
}

/// Classifies a `pushByPushId` reply. A 300 whose redirect the client did not follow is
/// transient.
pub fn classify(http_status: u16, body: &[u8]) -> Outcome {
    if http_status >= 500 {
        // The official SDK treats 5xx as "service unavailable", retryable (§4).
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
    let reason = envelope.message.clone().unwrap_or_default();
    match code_class(code) {
        Some(CodeClass::Delivered) => {
            let mut faults = Vec::new();
            if let Some(Value::Object(map)) = &envelope.value {
                for (key, targets) in map {
                    let Ok(code) = key.trim().parse::<i64>() else {
                        continue;
                    };
                    let Some(fault) = target_fault(code) else {
                        continue;
                    };
                    for target in targets
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        faults.push((target.to_owned(), fault));
                    }
                }
            }
            Outcome::Accepted {
                msg_id: envelope.msg_id.unwrap_or_default(),
                faults,
            }
        }
        Some(CodeClass::Redirect | CodeClass::Transient) => Outcome::Transient {
            reason: format!("code {code}: {reason}"),
        },
        Some(CodeClass::Invalid) => Outcome::InvalidRequest { code, reason },
        Some(CodeClass::Broken) => Outcome::Broken { code, reason },
        Some(CodeClass::RateLimited) => Outcome::RateLimited { code, reason },
        Some(CodeClass::Quota) => Outcome::QuotaExceeded { code, reason },
        None => Outcome::Unknown { code, reason },
    }
}

/// The URL of a code-300 reply, when it is one the client may follow.
pub fn redirect(body: &[u8]) -> Option<String> {
    let envelope = serde_json::from_slice::<Envelope>(body).ok()?;
    if envelope.code.as_ref().and_then(json_i64) != Some(300) {
        return None;
    }
    envelope
        .redirect
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"))
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
        // Other non-200s are "invalid request" to the SDK (§4).
        _ => Outcome::InvalidRequest {
            code: i64::from(http_status),
            reason: format!("HTTP {http_status}, not Meizu JSON: {text}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_code_of_the_table_has_a_class() {
        use CodeClass::*;
        for (code, class) in [
            (200, Delivered),
            (300, Redirect),
            (-1, Transient),
            (500, Transient),
            (1001, Transient),
            (1003, Transient),
            (1005, Invalid),
            (1006, Broken),
            (110000, Broken),
            (110001, Broken),
            (110004, Invalid),
            (110009, Broken),
            (110010, RateLimited),
            (110019, Quota),
            (110051, Quota),
            (110031, Broken),
            (110032, Invalid),
            (110033, Broken),
            (110053, Quota),
        ] {
            assert_eq!(code_class(code), Some(class), "{code}");
        }
        assert_eq!(code_class(4242), None);
    }

    #[test]
    fn every_target_code_of_the_table_has_a_class() {
        assert_eq!(
            target_fault(110002),
            Some(TargetFault::Invalid { code: 110002 })
        );
        assert_eq!(
            target_fault(110003),
            Some(TargetFault::Invalid { code: 110003 })
        );
        assert_eq!(
            target_fault(110005),
            Some(TargetFault::Rejected { code: 110005 })
        );
        assert_eq!(
            target_fault(110010),
            Some(TargetFault::SwitchedOff { code: 110010 })
        );
        assert_eq!(
            target_fault(110011),
            Some(TargetFault::Quota { code: 110011 })
        );
        assert_eq!(target_fault(201), Some(TargetFault::Refused { code: 201 }));
        for code in [501, 513, 519] {
            assert_eq!(target_fault(code), Some(TargetFault::Retry { code }));
        }
        assert_eq!(
            target_fault(518),
            Some(TargetFault::RateLimited { code: 518 })
        );
        assert_eq!(target_fault(520), None);
        assert_eq!(target_fault(7), Some(TargetFault::Unknown { code: 7 }));
    }

    #[test]
    fn the_value_map_becomes_per_target_faults() {
        let outcome = classify(
            200,
            br#"{"code":"200","message":"","value":{"110003":["bad"],"110010":["off1","off2"],"520":["folded"]},"redirect":"","msgId":"NS2016"}"#,
        );
        let Outcome::Accepted { msg_id, mut faults } = outcome else {
            panic!("accepted expected");
        };
        faults.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(msg_id, "NS2016");
        assert_eq!(
            faults,
            [
                ("bad".to_owned(), TargetFault::Invalid { code: 110003 }),
                ("off1".to_owned(), TargetFault::SwitchedOff { code: 110010 }),
                ("off2".to_owned(), TargetFault::SwitchedOff { code: 110010 }),
            ]
        );
    }

    #[test]
    fn request_level_classes() {
        for (body, class) in [
            (
                r#"{"code":"110010","message":"app request frequency too high"}"#,
                "rate_limited",
            ),
            (
                r#"{"code":"1006","message":"sign failed"}"#,
                "misconfigured",
            ),
            (
                r#"{"code":"110019","message":"daily limit"}"#,
                "quota_exceeded",
            ),
            (
                r#"{"code":"1005","message":"param error"}"#,
                "invalid_request",
            ),
            (r#"{"code":"1003","message":"busy"}"#, "transient"),
            (
                r#"{"code":"300","redirect":"https://other/push"}"#,
                "transient",
            ),
            (r#"{"code":"4242"}"#, "unknown"),
        ] {
            assert_eq!(classify(200, body.as_bytes()).class(), class, "{body}");
        }
        assert_eq!(classify(503, b"").class(), "transient");
        assert_eq!(classify(400, b"<html/>").class(), "invalid_request");
        assert_eq!(
            redirect(br#"{"code":"300","redirect":"https://other/push"}"#).as_deref(),
            Some("https://other/push")
        );
        assert_eq!(redirect(br#"{"code":"300","redirect":"ftp://x"}"#), None);
        assert_eq!(redirect(br#"{"code":"200","redirect":"https://x"}"#), None);
    }
}
