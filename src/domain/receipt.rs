//! Delivery receipts: what a vendor later tells us about a notification it accepted (reached
//! the phone, tapped, the token is dead), and the per-certificate secret that lets us tell a
//! vendor's receipt from a forged one. Plain types, no I/O.

use rand::Rng;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// A per-certificate secret that receipts must carry back (Xiaomi echoes `extra.callback.param`
/// in each receipt). Generated with the certificate, stored with it, never shown by an API or a
/// log (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReceiptSecret(String);

/// 24 random bytes as 32 URL-safe base64 characters: well under Xiaomi's 64-byte limit on
/// `extra.callback.param` (spec §3.2; 65036 "callback param too long").
const SECRET_BYTES: usize = 24;

impl ReceiptSecret {
    pub fn generate() -> ReceiptSecret {
        use base64::Engine;
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rng().fill(&mut bytes[..]);
        ReceiptSecret(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value sent to the vendor; never to an API caller or a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        self.0.as_bytes().ct_eq(given.as_bytes()).into()
    }

    #[cfg(test)]
    pub fn for_tests(s: &str) -> ReceiptSecret {
        ReceiptSecret(s.to_owned())
    }
}

impl std::fmt::Debug for ReceiptSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptSecret(<redacted>)")
    }
}

/// Where a vendor posts the receipts of a certificate: `<public URL>/v1/receipts/<vendor>/<id>`.
pub fn receipt_url(public_url: &str, vendor: &str, certificate: u64) -> String {
    format!(
        "{}/v1/receipts/{vendor}/{certificate}",
        public_url.trim_end_matches('/')
    )
}

/// Unix milliseconds as `2026-11-29 13:55:01 UTC`, for diagnosis sentences.
pub fn utc_text(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What a receipt says about a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// The notification reached the phone.
    Delivered,
    /// The user tapped it.
    Clicked,
    /// The vendor says the token is no longer valid (app uninstalled, device gone): unbind it.
    InvalidToken,
    /// Anything else the vendor reports (disabled push, filtered, quota, ...): acknowledged,
    /// changes nothing.
    Other,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Clicked => "clicked",
            ReceiptKind::InvalidToken => "invalid_token",
            ReceiptKind::Other => "other",
        }
    }
}

/// One receipt for one token, as a vendor's callback is parsed into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub kind: ReceiptKind,
    /// The vendor's id of the accepted message (Xiaomi `data.id`), when it gives one.
    pub msg_id: Option<String>,
    pub token: String,
    /// Unix milliseconds of the event as the vendor reports it.
    pub at_ms: u64,
}

impl Receipt {
    /// What tells this receipt from every other of its certificate, when a vendor posts it
    /// again (a re-post after a 503): the first 8 bytes of SHA-256 over its kind, the vendor's
    /// message id and the token. Without a message id, the vendor's time of the event stands in
    /// for it. The same on every node.
    pub fn id(&self) -> [u8; 8] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.kind.as_str().as_bytes());
        h.update([0]);
        match &self.msg_id {
            Some(m) => {
                h.update(b"m");
                h.update(m.as_bytes());
            }
            None => h.update(self.at_ms.to_be_bytes()),
        }
        h.update([0]);
        h.update(self.token.as_bytes());
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        id
    }
}

/// Why a receipt request was refused. Nothing of a refused request is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The body is not what the vendor sends; `field` names the part that is wrong.
    #[error("{field}: {message}")]
    Malformed {
        field: &'static str,
        message: String,
    },
    /// The secret or signature does not verify: forged, or meant for another certificate.
    #[error("{0}")]
    Unverified(String),
    /// This vendor sends no receipts to pushgate.
    #[error("{0} sends no delivery receipts to pushgate")]
    Unsupported(&'static str),
}

impl ReceiptError {
    pub fn malformed(field: &'static str, message: impl Into<String>) -> ReceiptError {
        ReceiptError::Malformed {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_distinct_short_and_redacted() {
        let a = ReceiptSecret::generate();
        let b = ReceiptSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().len() <= 64, "Xiaomi's limit on callback.param");
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(a.matches(a.expose()));
        assert!(!a.matches(b.expose()));
        assert!(!a.matches(""));
        assert!(!a.matches(&a.expose()[..31]));
    }

    #[test]
    fn the_receipt_url_joins_without_a_double_slash() {
        for base in ["https://push.example.com", "https://push.example.com/"] {
            assert_eq!(
                receipt_url(base, "xiaomi", 1001),
                "https://push.example.com/v1/receipts/xiaomi/1001"
            );
        }
    }

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(1_700_000_000_123), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn a_receipt_posted_again_has_the_same_id_and_another_receipt_another() {
        let r = Receipt {
            kind: ReceiptKind::Delivered,
            msg_id: Some("m1".into()),
            token: "t1".into(),
            at_ms: 5,
        };
        assert_eq!(r.id(), r.clone().id());
        assert_eq!(
            r.id(),
            Receipt {
                at_ms: 6,
                ..r.clone()
            }
            .id(),
            "the message id decides"
        );
        for other in [
            Receipt {
                kind: ReceiptKind::Clicked,
                ..r.clone()
            },
            Receipt {
                msg_id: Some("m2".into()),
                ..r.clone()
            },
            Receipt {
                token: "t2".into(),
                ..r.clone()
            },
            Receipt {
                msg_id: None,
                ..r.clone()
            },
        ] {
            assert_ne!(r.id(), other.id(), "{other:?}");
        }
        let no_msg = Receipt {
            msg_id: None,
            ..r.clone()
        };
        assert_ne!(
            no_msg.id(),
            Receipt {
                at_ms: 6,
                ..no_msg.clone()
            }
            .id()
        );
    }

    #[test]
    fn the_secret_is_stored_as_a_plain_string() {
        let s = ReceiptSecret::for_tests("abc");
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"abc\""));
    }
}
