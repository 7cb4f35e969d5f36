//! The gateway's errors: what a caller sees when an operation is refused or fails.

use super::*;

/// A refused or failed operation, with what the caller should see.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// 400: the input is wrong; `field` names the culprit when there is one.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
        tim_code: Option<u32>,
    },
    /// 404
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the state does not allow it (token before login).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        tim_code: Option<u32>,
    },
    /// 503 with Retry-After: a bounded queue is full.
    #[error("{message}")]
    Busy { message: String },
    /// 500: the store failed.
    #[error("{message}")]
    Internal { message: String },
}

impl GatewayError {
    pub fn invalid(
        code: &'static str,
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

    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Invalid { code, .. }
            | GatewayError::NotFound { code, .. }
            | GatewayError::Conflict { code, .. } => code,
            GatewayError::Busy { .. } => "busy",
            GatewayError::Internal { .. } => "internal",
        }
    }
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy => GatewayError::Busy {
                message: "the store's write queue is full; retry shortly".into(),
            },
            other => GatewayError::Internal {
                message: format!("the change could not be made durable: {other}"),
            },
        }
    }
}

impl From<Arc<StoreError>> for GatewayError {
    fn from(e: Arc<StoreError>) -> Self {
        GatewayError::Internal {
            message: format!("the change could not be made durable: {e}"),
        }
    }
}

impl From<RegistryError> for GatewayError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::UnknownDevice { .. } => GatewayError::NotFound {
                code: "unknown_device",
                message,
            },
            RegistryError::PlatformMismatch { .. } => {
                GatewayError::invalid("platform_mismatch", Some("platform"), message)
            }
            RegistryError::Transition(t) => GatewayError::Conflict {
                code: match t {
                    crate::domain::TransitionError::NotLoggedIn => "not_logged_in",
                    crate::domain::TransitionError::NotConnected => "not_connected",
                    crate::domain::TransitionError::NotExpired => "not_expired",
                },
                message,
                tim_code: None,
            },
            RegistryError::Token(t) => token_error(t),
            RegistryError::StaleConnection => GatewayError::Conflict {
                code: "stale_connection",
                message,
                tim_code: None,
            },
            RegistryError::TooManyDevices { .. } => GatewayError::Conflict {
                code: "too_many_devices",
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
            code: t.code(),
            message,
            tim_code: Some(t.tim_code()),
        },
        _ => GatewayError::Invalid {
            code: t.code(),
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
    GatewayError::invalid("invalid_field", Some(e.field), e.to_string())
}

pub(crate) fn cert_not_found(id: CertificateId) -> GatewayError {
    GatewayError::NotFound {
        code: "unknown_certificate",
        message: format!("no certificate with id {id}"),
    }
}
