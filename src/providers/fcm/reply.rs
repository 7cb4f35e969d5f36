//! What an FCM answer means (spec/vendors/fcm.md §4, §5): every `errorCode` and canonical
//! `status` of the table classified once. The FCM code in `details[].errorCode` decides first,
//! the canonical `status` second, the HTTP status last (as the Admin SDK does).

use std::time::Duration;

use serde::Deserialize;

/// The raw outcome of one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FcmReply {
    /// An HTTP answer.
    Http {
        status: u16,
        retry_after: Option<Duration>,
        body: bytes::Bytes,
    },
    /// No answer: connect error, reset, timeout.
    Transport(String),
    /// No access token could be had (the token endpoint refused or failed).
    NoAccess { refused: bool, reason: String },
}

/// One reply, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FcmOutcome {
    /// 200; `name` is `projects/{p}/messages/{id}`.
    Delivered { name: String },
    /// 404 `UNREGISTERED`: the app was removed or the token expired. Unbind.
    Unregistered,
    /// 400 whose message or field violation names the registration token. Unbind.
    InvalidToken,
    /// 403 `SENDER_ID_MISMATCH`: the token belongs to another project. Unbind (for this cert).
    SenderMismatch,
    /// Any other 400: the payload is wrong. Never unbinds a token; not retried.
    InvalidRequest(String),
    /// 429 `QUOTA_EXCEEDED` / `RESOURCE_EXHAUSTED`: slow down, retry after.
    QuotaExceeded { retry_after: Option<Duration> },
    /// 500 / 503 / other 5xx, or no answer: retry with back-off.
    Unavailable {
        retry_after: Option<Duration>,
        detail: String,
    },
    /// 401 without an FCM code: our access token was refused. Renew once and retry.
    AccessRefused,
    /// The credentials can't send (permission denied, APNs credentials in the Firebase
    /// console, the token endpoint refused the account). The certificate is broken.
    AuthBroken(String),
    /// `UNSPECIFIED_ERROR`: retry once, then give up.
    Unspecified,
    /// An answer no row of the table covers.
    Unknown(String),
}

impl FcmOutcome {
    /// Whether the token is to be unbound from its device.
    pub fn unbinds(&self) -> bool {
        matches!(
            self,
            FcmOutcome::Unregistered | FcmOutcome::InvalidToken | FcmOutcome::SenderMismatch
        )
    }

    /// The label for `pushgate_vendor_requests_total`.
    pub fn class(&self) -> &'static str {
        match self {
            FcmOutcome::Delivered { .. } => "ok",
            FcmOutcome::Unregistered => "unregistered",
            FcmOutcome::InvalidToken => "invalid_token",
            FcmOutcome::SenderMismatch => "sender_id_mismatch",
            FcmOutcome::InvalidRequest(_) => "invalid_argument",
            FcmOutcome::QuotaExceeded { .. } => "quota_exceeded",
            FcmOutcome::Unavailable { .. } => "unavailable",
            FcmOutcome::AccessRefused => "unauthenticated",
            FcmOutcome::AuthBroken(_) => "auth_error",
            FcmOutcome::Unspecified => "unspecified",
            FcmOutcome::Unknown(_) => "unknown",
        }
    }
}

/// A 200's body: `{"name": "projects/{p}/messages/{id}"}` (other fields ignored).
#[derive(Deserialize)]
struct Sent<'a> {
    #[serde(borrow, default)]
    name: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize, Default)]
struct Envelope {
    #[serde(default)]
    error: ErrorBody,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Deserialize, Default)]
struct Detail {
    #[serde(rename = "@type", default)]
    kind: String,
    #[serde(rename = "errorCode", default)]
    error_code: String,
    #[serde(rename = "fieldViolations", default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize, Default)]
struct FieldViolation {
    #[serde(default)]
    field: String,
}

/// The text Google answers for a malformed or foreign-format token ([F16]).
const INVALID_TOKEN_TEXT: &str = "not a valid fcm registration token";

/// Classifies one reply. Never panics: a body that is not Google's envelope falls back to the
/// HTTP status.
pub fn classify(reply: &FcmReply) -> FcmOutcome {
    let (status, retry_after, body) = match reply {
        FcmReply::Http {
            status,
            retry_after,
            body,
        } => (*status, *retry_after, body),
        FcmReply::Transport(e) => {
            return FcmOutcome::Unavailable {
                retry_after: None,
                detail: e.clone(),
            }
        }
        FcmReply::NoAccess {
            refused: true,
            reason,
        } => {
            return FcmOutcome::AuthBroken(format!(
                "the token endpoint refused the account: {reason}"
            ))
        }
        FcmReply::NoAccess {
            refused: false,
            reason,
        } => {
            return FcmOutcome::Unavailable {
                retry_after: None,
                detail: format!("the token endpoint failed: {reason}"),
            }
        }
    };
    if status == 200 {
        // Only `name` is read: no generic JSON value built per delivered notification.
        let name = serde_json::from_slice::<Sent>(body)
            .map(|s| s.name.into_owned())
            .unwrap_or_default();
        return FcmOutcome::Delivered { name };
    }
    let envelope: Envelope = serde_json::from_slice(body).unwrap_or_default();
    let e = envelope.error;
    let fcm_code = e
        .details
        .iter()
        .find(|d| d.kind.ends_with("FcmError") || !d.error_code.is_empty())
        .map(|d| d.error_code.as_str())
        .unwrap_or("");
    let names_token = e.message.to_ascii_lowercase().contains(INVALID_TOKEN_TEXT)
        || e.details.iter().any(|d| {
            d.field_violations
                .iter()
                .any(|v| v.field == "message.token")
        });
    let message = || {
        if e.message.is_empty() {
            format!("HTTP {status}")
        } else {
            e.message.clone()
        }
    };
    match fcm_code {
        "UNREGISTERED" => return FcmOutcome::Unregistered,
        "SENDER_ID_MISMATCH" => return FcmOutcome::SenderMismatch,
        "QUOTA_EXCEEDED" => return FcmOutcome::QuotaExceeded { retry_after },
        "UNAVAILABLE" | "INTERNAL" => {
            return FcmOutcome::Unavailable {
                retry_after,
                detail: fcm_code.to_owned(),
            }
        }
        "THIRD_PARTY_AUTH_ERROR" | "APNS_AUTH_ERROR" => {
            return FcmOutcome::AuthBroken(format!("{fcm_code}: {}", message()))
        }
        "INVALID_ARGUMENT" if names_token => return FcmOutcome::InvalidToken,
        "INVALID_ARGUMENT" => return FcmOutcome::InvalidRequest(message()),
        "UNSPECIFIED_ERROR" => return FcmOutcome::Unspecified,
        _ => {}
    }
    match (status, e.status.as_str()) {
        (404, _) | (_, "NOT_FOUND") => {
            // A 404 without an FCM code is a wrong project or path, not a token verdict.
            FcmOutcome::AuthBroken(format!("not found: {} (is project_id right?)", message()))
        }
        (400, _) | (_, "INVALID_ARGUMENT") if names_token => FcmOutcome::InvalidToken,
        (400, _) | (_, "INVALID_ARGUMENT") => FcmOutcome::InvalidRequest(message()),
        (401, _) | (_, "UNAUTHENTICATED") => FcmOutcome::AccessRefused,
        (403, _) | (_, "PERMISSION_DENIED") => {
            FcmOutcome::AuthBroken(format!("permission denied: {}", message()))
        }
        (429, _) | (_, "RESOURCE_EXHAUSTED") => FcmOutcome::QuotaExceeded { retry_after },
        (500..=599, _) | (_, "UNAVAILABLE") | (_, "INTERNAL") => FcmOutcome::Unavailable {
            retry_after,
            detail: format!("HTTP {status}"),
        },
        _ => FcmOutcome::Unknown(format!("HTTP {status}: {}", message())),
    }
}

/// A token endpoint answer (spec §2 step 3): the access token and its lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenGrant {
    pub access_token: String,
    #[serde(default = "default_expires_in")]
    pub expires_in: u64,
}

fn default_expires_in() -> u64 {
    3599
}

/// Why the token endpoint gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// 4xx (`invalid_grant`, `invalid_client`, …): the account or key is wrong.
    Refused(String),
    /// 5xx, transport, or an answer we can't read: try later.
    Unavailable(String),
}

/// Classifies the token endpoint's answer.
pub fn classify_token(status: u16, body: &[u8]) -> Result<TokenGrant, TokenFailure> {
    if status == 200 {
        return serde_json::from_slice::<TokenGrant>(body)
            .ok()
            .filter(|g| !g.access_token.is_empty())
            .ok_or_else(|| {
                TokenFailure::Unavailable("the token answer has no access_token".into())
            });
    }
    #[derive(Deserialize, Default)]
    struct OAuthError {
        #[serde(default)]
        error: String,
        #[serde(default)]
        error_description: String,
    }
    let e: OAuthError = serde_json::from_slice(body).unwrap_or_default();
    let text = match (e.error.is_empty(), e.error_description.is_empty()) {
        (true, _) => format!("HTTP {status}"),
        (false, true) => e.error,
        (false, false) => format!("{}: {}", e.error, e.error_description),
    };
    if (400..500).contains(&status) && status != 429 {
        Err(TokenFailure::Refused(text))
    } else {
        Err(TokenFailure::Unavailable(text))
    }
}

/// `Retry-After` in seconds (HTTP dates are not used by Google; they read as absent).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(status: u16, body: serde_json::Value) -> FcmReply {
        FcmReply::Http {
            status,
            retry_after: Some(Duration::from_secs(7)),
            body: body.to_string().into(),
        }
    }

    fn google(code: u16, status: &str, message: &str, fcm: Option<&str>) -> serde_json::Value {
        let mut details = vec![];
        if let Some(c) = fcm {
            details.push(json!({"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":c}));
        }
        json!({"error":{"code":code,"message":message,"status":status,"details":details}})
    }

    #[test]
    fn every_row_of_the_table() {
        use FcmOutcome::*;
        let cases = [
            (
                http(200, json!({"name":"projects/p/messages/1"})),
                Delivered {
                    name: "projects/p/messages/1".into(),
                },
            ),
            (
                http(
                    404,
                    google(
                        404,
                        "NOT_FOUND",
                        "Requested entity was not found.",
                        Some("UNREGISTERED"),
                    ),
                ),
                Unregistered,
            ),
            (
                http(
                    400,
                    google(
                        400,
                        "INVALID_ARGUMENT",
                        "The registration token is not a valid FCM registration token",
                        Some("INVALID_ARGUMENT"),
                    ),
                ),
                InvalidToken,
            ),
            (
                http(
                    400,
                    google(
                        400,
                        "INVALID_ARGUMENT",
                        "Message is too big",
                        Some("INVALID_ARGUMENT"),
                    ),
                ),
                InvalidRequest("Message is too big".into()),
            ),
            (
                http(
                    403,
                    google(
                        403,
                        "PERMISSION_DENIED",
                        "SenderId mismatch",
                        Some("SENDER_ID_MISMATCH"),
                    ),
                ),
                SenderMismatch,
            ),
            (
                http(
                    429,
                    google(429, "RESOURCE_EXHAUSTED", "quota", Some("QUOTA_EXCEEDED")),
                ),
                QuotaExceeded {
                    retry_after: Some(Duration::from_secs(7)),
                },
            ),
            (
                http(503, google(503, "UNAVAILABLE", "busy", Some("UNAVAILABLE"))),
                Unavailable {
                    retry_after: Some(Duration::from_secs(7)),
                    detail: "UNAVAILABLE".into(),
                },
            ),
            (
                http(500, google(500, "INTERNAL", "oops", Some("INTERNAL"))),
                Unavailable {
                    retry_after: Some(Duration::from_secs(7)),
                    detail: "INTERNAL".into(),
                },
            ),
            (
                http(
                    401,
                    google(
                        401,
                        "UNAUTHENTICATED",
                        "apns",
                        Some("THIRD_PARTY_AUTH_ERROR"),
                    ),
                ),
                AuthBroken("THIRD_PARTY_AUTH_ERROR: apns".into()),
            ),
            (
                http(
                    401,
                    google(
                        401,
                        "UNAUTHENTICATED",
                        "Request had invalid authentication credentials.",
                        None,
                    ),
                ),
                AccessRefused,
            ),
            (
                http(
                    403,
                    google(
                        403,
                        "PERMISSION_DENIED",
                        "Permission 'cloudmessaging.messages.create' denied",
                        None,
                    ),
                ),
                AuthBroken(
                    "permission denied: Permission 'cloudmessaging.messages.create' denied".into(),
                ),
            ),
            (
                http(
                    400,
                    google(400, "INVALID_ARGUMENT", "x", Some("UNSPECIFIED_ERROR")),
                ),
                Unspecified,
            ),
            (
                http(
                    401,
                    google(401, "UNAUTHENTICATED", "old", Some("APNS_AUTH_ERROR")),
                ),
                AuthBroken("APNS_AUTH_ERROR: old".into()),
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(classify(&reply), want, "{reply:?}");
        }
    }

    #[test]
    fn field_violation_on_the_token_unbinds_but_other_fields_do_not() {
        let body = json!({"error":{"code":400,"status":"INVALID_ARGUMENT","message":"Invalid value",
            "details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"bad"}]}]}});
        assert_eq!(classify(&http(400, body)), FcmOutcome::InvalidToken);
        let body = json!({"error":{"code":400,"status":"INVALID_ARGUMENT","message":"Invalid value at 'message.android.ttl'",
            "details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl"}]}]}});
        let out = classify(&http(400, body));
        assert!(!out.unbinds(), "{out:?}");
        assert!(matches!(out, FcmOutcome::InvalidRequest(_)));
    }

    #[test]
    fn a_200_is_delivered_whatever_its_body_and_keeps_the_name_it_gives() {
        let raw = |body: &'static str| FcmReply::Http {
            status: 200,
            retry_after: None,
            body: body.into(),
        };
        let name = |body| match classify(&raw(body)) {
            FcmOutcome::Delivered { name } => name,
            other => panic!("{body}: {other:?}"),
        };
        // Escapes are decoded; fields other than `name` are ignored, in any order.
        assert_eq!(
            name(r#"{"extra":{"a":[1]},"name":"projects\/p\/messages\/0:1\u0041"}"#),
            "projects/p/messages/0:1A"
        );
        assert_eq!(name(""), "");
        assert_eq!(name("not json"), "");
        assert_eq!(name(r#"{"name":null}"#), "");
        assert_eq!(name(r#"{"name":7}"#), "");
        assert_eq!(name("{}"), "");
    }

    #[test]
    fn bodies_that_are_not_google_fall_back_to_the_status() {
        let raw = |status: u16, body: &'static str| FcmReply::Http {
            status,
            retry_after: None,
            body: body.into(),
        };
        assert_eq!(
            classify(&raw(502, "<html>bad gateway</html>")),
            FcmOutcome::Unavailable {
                retry_after: None,
                detail: "HTTP 502".into()
            }
        );
        assert_eq!(
            classify(&raw(429, "")),
            FcmOutcome::QuotaExceeded { retry_after: None }
        );
        assert_eq!(classify(&raw(401, "")), FcmOutcome::AccessRefused);
        assert!(matches!(classify(&raw(404, "")), FcmOutcome::AuthBroken(_)));
        assert!(matches!(classify(&raw(418, "")), FcmOutcome::Unknown(_)));
        assert!(matches!(
            classify(&FcmReply::Transport("reset".into())),
            FcmOutcome::Unavailable { .. }
        ));
        assert!(matches!(
            classify(&FcmReply::NoAccess {
                refused: true,
                reason: "invalid_grant".into()
            }),
            FcmOutcome::AuthBroken(_)
        ));
        assert!(matches!(
            classify(&FcmReply::NoAccess {
                refused: false,
                reason: "503".into()
            }),
            FcmOutcome::Unavailable { .. }
        ));
    }

    #[test]
    fn token_answers() {
        assert_eq!(
            classify_token(
                200,
                br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#
            ),
            Ok(TokenGrant {
                access_token: "ya29.x".into(),
                expires_in: 3599
            })
        );
        assert_eq!(
            classify_token(
                400,
                br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#
            ),
            Err(TokenFailure::Refused(
                "invalid_grant: Invalid JWT Signature.".into()
            ))
        );
        assert!(matches!(
            classify_token(503, b""),
            Err(TokenFailure::Unavailable(_))
        ));
        assert!(matches!(
            classify_token(200, b"{}"),
            Err(TokenFailure::Unavailable(_))
        ));
        assert_eq!(
            parse_retry_after(Some(" 30 ")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
    }
}
