//! What an APNs answer means: every status and `reason` of spec/vendors/apns.md §6, with the
//! reason parsed as an open string and a fallback keyed on the status.

use std::time::Duration;

/// The raw outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApnsReply {
    Http {
        status: u16,
        apns_id: Option<String>,
        retry_after: Option<Duration>,
        body: bytes::Bytes,
    },
    /// No answer (connect error, reset, GOAWAY before the answer, timeout).
    Transport(String),
    /// The token was not even sent: it is not hex.
    MalformedToken,
    /// No provider token could be signed.
    Unsigned(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApnsOutcome {
    /// 200; `apns_id` echoes the notification id.
    Delivered {
        apns_id: Option<String>,
    },
    /// 410 `Unregistered`/`ExpiredToken`, 400 `BadDeviceToken`/`DeviceTokenNotForTopic`:
    /// unbind the token.
    BadToken(String),
    /// The request itself is wrong (payload, headers, path): not retried, never unbinds.
    InvalidRequest(String),
    /// 403 `ExpiredProviderToken`: sign a new token (within the 20-minute floor) and retry once.
    ProviderTokenExpired,
    /// The key or certificate is refused: the certificate is broken, with the reason.
    AuthBroken(String),
    /// 429 `TooManyRequests`: slow down and retry later.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 5xx, `IdleTimeout`, `UnrelatedKeyIdInToken`, `TooManyProviderTokenUpdates`, no answer:
    /// retry with back-off (on a fresh stream or connection).
    Retry {
        retry_after: Option<Duration>,
        detail: String,
    },
    Unknown(String),
}

impl ApnsOutcome {
    pub fn unbinds(&self) -> bool {
        matches!(self, ApnsOutcome::BadToken(_))
    }

    pub fn class(&self) -> &'static str {
        match self {
            ApnsOutcome::Delivered { .. } => "ok",
            ApnsOutcome::BadToken(_) => "bad_token",
            ApnsOutcome::InvalidRequest(_) => "bad_request",
            ApnsOutcome::ProviderTokenExpired => "expired_provider_token",
            ApnsOutcome::AuthBroken(_) => "auth_error",
            ApnsOutcome::RateLimited { .. } => "too_many_requests",
            ApnsOutcome::Retry { .. } => "retry",
            ApnsOutcome::Unknown(_) => "unknown",
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    reason: String,
}

pub fn classify(reply: &ApnsReply) -> ApnsOutcome {
    let (status, apns_id, retry_after, body) = match reply {
        ApnsReply::Http {
            status,
            apns_id,
            retry_after,
            body,
        } => (*status, apns_id, *retry_after, body),
        ApnsReply::Transport(e) => {
            return ApnsOutcome::Retry {
                retry_after: None,
                detail: e.clone(),
            }
        }
        ApnsReply::MalformedToken => {
            return ApnsOutcome::BadToken("BadDeviceToken (not hex, not sent)".into())
        }
        ApnsReply::Unsigned(e) => {
            return ApnsOutcome::AuthBroken(format!("the provider token could not be signed: {e}"))
        }
    };
    if status == 200 {
        return ApnsOutcome::Delivered {
            apns_id: apns_id.clone(),
        };
    }
    let reason = serde_json::from_slice::<ErrorBody>(body)
        .unwrap_or_default()
        .reason;
    let r = reason.as_str();
    match r {
        "BadDeviceToken" | "DeviceTokenNotForTopic" | "Unregistered" | "ExpiredToken" => {
            ApnsOutcome::BadToken(reason)
        }
        "BadCollapseId" | "BadExpirationDate" | "BadMessageId" | "BadPriority" | "BadTopic"
        | "DuplicateHeaders" | "InvalidPushType" | "MissingDeviceToken" | "MissingTopic"
        | "PayloadEmpty" | "TopicDisallowed" | "BadPath" | "MethodNotAllowed"
        | "PayloadTooLarge" => ApnsOutcome::InvalidRequest(reason),
        "IdleTimeout"
        | "UnrelatedKeyIdInToken"
        | "TooManyProviderTokenUpdates"
        | "InternalServerError"
        | "ServiceUnavailable"
        | "Shutdown" => ApnsOutcome::Retry {
            retry_after,
            detail: reason,
        },
        "ExpiredProviderToken" => ApnsOutcome::ProviderTokenExpired,
        "BadCertificate"
        | "BadCertificateEnvironment"
        | "Forbidden"
        | "InvalidProviderToken"
        | "MissingProviderToken"
        | "BadEnvironmentKeyInToken"
        | "BadEnvironmentKeyIdInToken" => ApnsOutcome::AuthBroken(reason),
        "TooManyRequests" => ApnsOutcome::RateLimited { retry_after },
        _ => {
            let what = if r.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status} {r}")
            };
            match status {
                410 => ApnsOutcome::BadToken(what),
                400 | 404 | 405 | 413 => ApnsOutcome::InvalidRequest(what),
                401 | 403 => ApnsOutcome::AuthBroken(what),
                429 => ApnsOutcome::RateLimited { retry_after },
                500..=599 => ApnsOutcome::Retry {
                    retry_after,
                    detail: what,
                },
                _ => ApnsOutcome::Unknown(what),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, reason: &str) -> ApnsReply {
        ApnsReply::Http {
            status,
            apns_id: None,
            retry_after: None,
            body: if reason.is_empty() {
                bytes::Bytes::new()
            } else {
                format!("{{\"reason\":\"{reason}\",\"timestamp\":1}}").into()
            },
        }
    }

    #[test]
    fn every_reason_of_the_table() {
        let unbind = [
            "BadDeviceToken",
            "DeviceTokenNotForTopic",
            "Unregistered",
            "ExpiredToken",
        ];
        for (s, r) in [
            (400, unbind[0]),
            (400, unbind[1]),
            (410, unbind[2]),
            (410, unbind[3]),
        ] {
            assert_eq!(classify(&http(s, r)), ApnsOutcome::BadToken(r.into()));
        }
        for r in [
            "BadCollapseId",
            "BadExpirationDate",
            "BadMessageId",
            "BadPriority",
            "BadTopic",
            "DuplicateHeaders",
            "InvalidPushType",
            "MissingDeviceToken",
            "MissingTopic",
            "PayloadEmpty",
            "TopicDisallowed",
        ] {
            let out = classify(&http(400, r));
            assert_eq!(out, ApnsOutcome::InvalidRequest(r.into()));
            assert!(!out.unbinds());
        }
        assert_eq!(
            classify(&http(404, "BadPath")),
            ApnsOutcome::InvalidRequest("BadPath".into())
        );
        assert_eq!(
            classify(&http(405, "MethodNotAllowed")),
            ApnsOutcome::InvalidRequest("MethodNotAllowed".into())
        );
        assert_eq!(
            classify(&http(413, "PayloadTooLarge")),
            ApnsOutcome::InvalidRequest("PayloadTooLarge".into())
        );
        assert!(matches!(
            classify(&http(400, "IdleTimeout")),
            ApnsOutcome::Retry { .. }
        ));
        for r in [
            "BadCertificate",
            "BadCertificateEnvironment",
            "Forbidden",
            "InvalidProviderToken",
            "MissingProviderToken",
            "BadEnvironmentKeyInToken",
            "BadEnvironmentKeyIdInToken",
        ] {
            assert_eq!(classify(&http(403, r)), ApnsOutcome::AuthBroken(r.into()));
        }
        assert_eq!(
            classify(&http(403, "ExpiredProviderToken")),
            ApnsOutcome::ProviderTokenExpired
        );
        assert!(matches!(
            classify(&http(403, "UnrelatedKeyIdInToken")),
            ApnsOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(&http(429, "TooManyProviderTokenUpdates")),
            ApnsOutcome::Retry { .. }
        ));
        assert_eq!(
            classify(&http(429, "TooManyRequests")),
            ApnsOutcome::RateLimited { retry_after: None }
        );
        for (s, r) in [
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (503, "Shutdown"),
        ] {
            assert!(matches!(classify(&http(s, r)), ApnsOutcome::Retry { .. }));
        }
    }

    #[test]
    fn unknown_reasons_fall_back_on_the_status() {
        assert!(matches!(
            classify(&http(410, "SomethingNew")),
            ApnsOutcome::BadToken(_)
        ));
        assert!(matches!(
            classify(&http(400, "")),
            ApnsOutcome::InvalidRequest(_)
        ));
        assert!(matches!(
            classify(&http(403, "Nope")),
            ApnsOutcome::AuthBroken(_)
        ));
        assert!(matches!(
            classify(&http(502, "")),
            ApnsOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(&http(429, "")),
            ApnsOutcome::RateLimited { .. }
        ));
        assert!(matches!(classify(&http(302, "")), ApnsOutcome::Unknown(_)));
        let garbage = ApnsReply::Http {
            status: 400,
            apns_id: None,
            retry_after: None,
            body: "<html>".into(),
        };
        assert!(matches!(classify(&garbage), ApnsOutcome::InvalidRequest(_)));
        assert_eq!(
            classify(&ApnsReply::Http {
                status: 200,
                apns_id: Some("x".into()),
                retry_after: None,
                body: bytes::Bytes::new()
            }),
            ApnsOutcome::Delivered {
                apns_id: Some("x".into())
            }
        );
        assert!(classify(&ApnsReply::MalformedToken).unbinds());
        assert!(matches!(
            classify(&ApnsReply::Transport("goaway".into())),
            ApnsOutcome::Retry { .. }
        ));
    }
}
