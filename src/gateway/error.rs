//! The gateway's errors: what a caller sees when an operation is refused or fails.

use super::*;

/// The `code` of an error body: what went wrong, in a word a program can match. The strings are
/// part of the contract (contract.md); `ALL` lists every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A field is missing, malformed or over its limit (`field` names it).
    InvalidField,
    /// More recipients than `http.max_recipients`.
    TooManyRecipients,
    PlatformMismatch,
    UnknownDevice,
    UnknownCertificate,
    /// A token report or state change that needs a login first.
    NotLoggedIn,
    NotConnected,
    NotExpired,
    /// An event of a connection that a newer one has replaced.
    StaleConnection,
    /// A login of one more device than `sessions.max_devices_per_user`.
    TooManyDevices,
    EmptyToken,
    TokenTooLong,
    /// A bounded queue is full (503 with Retry-After).
    Busy,
    /// The store's disk refuses writes (full, read-only): 503 with Retry-After, nothing done.
    StoreUnavailable,
    /// The store failed.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::TooManyRecipients => "too_many_recipients",
            ErrorCode::PlatformMismatch => "platform_mismatch",
            ErrorCode::UnknownDevice => "unknown_device",
            ErrorCode::UnknownCertificate => "unknown_certificate",
            ErrorCode::NotLoggedIn => "not_logged_in",
            ErrorCode::NotConnected => "not_connected",
            ErrorCode::NotExpired => "not_expired",
            ErrorCode::StaleConnection => "stale_connection",
            ErrorCode::TooManyDevices => "too_many_devices",
            ErrorCode::EmptyToken => "empty_token",
            ErrorCode::TokenTooLong => "token_too_long",
            ErrorCode::Busy => "busy",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidField,
        ErrorCode::TooManyRecipients,
        ErrorCode::PlatformMismatch,
        ErrorCode::UnknownDevice,
        ErrorCode::UnknownCertificate,
        ErrorCode::NotLoggedIn,
        ErrorCode::NotConnected,
        ErrorCode::NotExpired,
        ErrorCode::StaleConnection,
        ErrorCode::TooManyDevices,
        ErrorCode::EmptyToken,
        ErrorCode::TokenTooLong,
        ErrorCode::Busy,
        ErrorCode::StoreUnavailable,
        ErrorCode::Internal,
    ];
}

/// As its string, in JSON and MessagePack alike.
impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<&TokenError> for ErrorCode {
    fn from(t: &TokenError) -> ErrorCode {
        match t {
            TokenError::NotLoggedIn => ErrorCode::NotLoggedIn,
            TokenError::UnknownCertificate(_) => ErrorCode::UnknownCertificate,
            TokenError::Empty => ErrorCode::EmptyToken,
            TokenError::TooLong(_) => ErrorCode::TokenTooLong,
        }
    }
}

/// A refused or failed operation, with what the caller should see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// 400: the input is wrong; `field` names the culprit when there is one.
    #[error("{message}")]
    Invalid {
        code: ErrorCode,
        field: Option<&'static str>,
        message: String,
        tim_code: Option<u32>,
    },
    /// 404
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// 409: the state does not allow it (token before login).
    #[error("{message}")]
    Conflict {
        code: ErrorCode,
        message: String,
        tim_code: Option<u32>,
    },
    /// 503 with Retry-After: a bounded queue is full.
    #[error("{message}")]
    Busy { message: String },
    /// 503 with Retry-After: the store's disk refuses writes; the change was not acknowledged.
    #[error("{message}")]
    StoreUnavailable { message: String },
    /// 500: the store failed.
    #[error("{message}")]
    Internal { message: String },
}

impl GatewayError {
    pub fn invalid(
        code: ErrorCode,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        GatewayError::Invalid {
            code,
            field,
            message: message.into(),
            tim_code: None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::Invalid { code, .. }
            | GatewayError::NotFound { code, .. }
            | GatewayError::Conflict { code, .. } => *code,
            GatewayError::Busy { .. } => ErrorCode::Busy,
            GatewayError::StoreUnavailable { .. } => ErrorCode::StoreUnavailable,
            GatewayError::Internal { .. } => ErrorCode::Internal,
        }
    }
}

impl From<&StoreError> for GatewayError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::Busy => GatewayError::Busy {
                message: "the store's write queue is full; retry shortly".into(),
            },
            StoreError::Unwritable { .. } => GatewayError::StoreUnavailable {
                message: format!("the change could not be made durable: {e}; retry later"),
            },
            other => GatewayError::Internal {
                message: format!("the change could not be made durable: {other}"),
            },
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        GatewayError::from(&e)
    }
}

impl From<Arc<StoreError>> for GatewayError {
    fn from(e: Arc<StoreError>) -> Self {
        GatewayError::from(&*e)
    }
}

impl From<RegistryError> for GatewayError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::UnknownDevice { .. } => GatewayError::NotFound {
                code: ErrorCode::UnknownDevice,
                message,
            },
            RegistryError::PlatformMismatch { .. } => {
                GatewayError::invalid(ErrorCode::PlatformMismatch, Some("platform"), message)
            }
            RegistryError::Transition(t) => GatewayError::Conflict {
                code: match t {
                    crate::domain::TransitionError::NotLoggedIn => ErrorCode::NotLoggedIn,
                    crate::domain::TransitionError::NotConnected => ErrorCode::NotConnected,
                    crate::domain::TransitionError::NotExpired => ErrorCode::NotExpired,
                },
                message,
                tim_code: None,
            },
            RegistryError::Token(t) => token_error(t),
            RegistryError::StaleConnection => GatewayError::Conflict {
                code: ErrorCode::StaleConnection,
                message,
                tim_code: None,
            },
            RegistryError::Busy => GatewayError::Busy { message },
            RegistryError::TooManyDevices { .. } => GatewayError::Conflict {
                code: ErrorCode::TooManyDevices,
                message,
                tim_code: None,
            },
        }
    }
}

pub(crate) fn token_error(t: TokenError) -> GatewayError {
    let message = t.to_string();
    match t {
        TokenError::NotLoggedIn => GatewayError::Conflict {
            code: ErrorCode::from(&t),
            message,
            tim_code: Some(t.tim_code()),
        },
        _ => GatewayError::Invalid {
            code: ErrorCode::from(&t),
            field: Some(if matches!(t, TokenError::UnknownCertificate(_)) {
                "certificate_id"
            } else {
                "token"
            }),
            message,
            tim_code: Some(t.tim_code()),
        },
    }
}

pub(crate) fn id_error(e: crate::domain::ids::IdError) -> GatewayError {
    GatewayError::invalid(ErrorCode::InvalidField, Some(e.field), e.to_string())
}

pub(crate) fn field_error(e: crate::domain::validate::FieldError) -> GatewayError {
    GatewayError::invalid(ErrorCode::InvalidField, Some(e.field), e.to_string())
}

pub(crate) fn cert_not_found(id: CertificateId) -> GatewayError {
    GatewayError::NotFound {
        code: ErrorCode::UnknownCertificate,
        message: format!("no certificate with id {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_distinct_snake_case_and_match_token_errors() {
        let names: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
        for t in [
            TokenError::NotLoggedIn,
            TokenError::UnknownCertificate(1),
            TokenError::Empty,
            TokenError::TooLong(5000),
        ] {
            assert_eq!(ErrorCode::from(&t).as_str(), t.code());
        }
    }
}
