//! A reply of OPPO, vivo or Meizu classified once, before it becomes the sender's verdict: what
//! happened to the request, and which targets of an accepted request were not delivered and why.
//! Each vendor's `reply` module maps every code of its spec's table onto these classes.

/// What one request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted. `faults` lists the targets that were not (all others were delivered).
    Accepted {
        msg_id: String,
        faults: Vec<(String, TargetFault)>,
    },
    /// Every target of the request is invalid (a single send naming a dead token).
    AllInvalid { code: i64, reason: String },
    /// The cached auth token was refused (OPPO 11, vivo 10000): renew it once, then retry.
    AuthExpired { code: i64, reason: String },
    /// Credentials or app configuration refused: the certificate is broken until edited.
    Broken { code: i64, reason: String },
    /// "Too fast": retry later and slow down.
    RateLimited { code: i64, reason: String },
    /// The daily quota is used up: pause the certificate until the vendor's next day.
    QuotaExceeded { code: i64, reason: String },
    /// Our request was wrong; resending the same cannot help.
    InvalidRequest { code: i64, reason: String },
    /// Busy codes, HTTP 5xx, timeouts, connection errors: retry with backoff.
    Transient { reason: String },
    /// A code no rule covers; not retried.
    Unknown { code: i64, reason: String },
}

impl Outcome {
    /// A snake_case label for metrics; never carries an id or a token.
    pub fn class(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "delivered",
            Outcome::AllInvalid { .. } => "no_valid_targets",
            Outcome::AuthExpired { .. } => "auth_expired",
            Outcome::Broken { .. } => "misconfigured",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::QuotaExceeded { .. } => "quota_exceeded",
            Outcome::InvalidRequest { .. } => "invalid_request",
            Outcome::Transient { .. } => "transient",
            Outcome::Unknown { .. } => "unknown",
        }
    }
}

/// Why one target of an accepted request was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetFault {
    /// The token is dead (OPPO 10000, vivo status 1/3, Meizu 110002/110003): unbind it.
    Invalid { code: i64 },
    /// The user switched notifications off or uninstalled (vivo status 2, Meizu 110010): not
    /// delivered, but the token is kept — the user may switch them on again.
    SwitchedOff { code: i64 },
    /// Failed on the vendor's side for this target (Meizu 501/513/519): send again.
    Retry { code: i64 },
    /// Over the vendor's rate for this target (Meizu 518): send again, slower.
    RateLimited { code: i64 },
    /// Over a daily quota (Meizu 110011, OPPO 33 per target).
    Quota { code: i64 },
    /// The app may not send this (Meizu 201): the certificate is broken.
    Refused { code: i64 },
    /// Refused as malformed for this target, or a status we never ask for (vivo 4).
    Rejected { code: i64 },
    /// A per-target code no rule covers.
    Unknown { code: i64 },
}

impl TargetFault {
    pub fn code(self) -> i64 {
        match self {
            TargetFault::Invalid { code }
            | TargetFault::SwitchedOff { code }
            | TargetFault::Retry { code }
            | TargetFault::RateLimited { code }
            | TargetFault::Quota { code }
            | TargetFault::Refused { code }
            | TargetFault::Rejected { code }
            | TargetFault::Unknown { code } => code,
        }
    }
}

/// Why a vendor granted no auth token (OPPO, vivo).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The credentials were refused: the certificate is broken.
    #[error("the vendor refused the credentials: {0}")]
    Refused(String),
    /// The auth endpoint was unreachable, busy or rate limited: try again later.
    #[error("the auth endpoint failed: {0}")]
    Unavailable(String),
}

/// A granted auth token and how long the vendor says it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken {
    pub token: String,
    pub valid_for: std::time::Duration,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthToken")
            .field("token", &"<redacted>")
            .field("valid_for", &self.valid_for)
            .finish()
    }
}

/// At most 200 chars of a body, for a log-safe reason.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A JSON number or numeric string as an integer (Meizu sends codes as strings).
pub fn json_i64(value: &serde_json::Value) -> Option<i64> {
    match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(json_i64(&serde_json::json!("110010")), Some(110010));
        assert_eq!(json_i64(&serde_json::json!(-2)), Some(-2));
        assert_eq!(json_i64(&serde_json::json!(null)), None);
        assert_eq!(snippet("长".repeat(500).as_bytes()).chars().count(), 201);
        let shown = format!(
            "{:?}",
            AuthToken {
                token: "tok123".into(),
                valid_for: std::time::Duration::from_secs(1)
            }
        );
        assert!(!shown.contains("tok123"));
    }
}
