//! The error body of every /v1 endpoint: `{"error":{"code","message"[,"field"][,"tim_code"]}}`.

use crate::gateway::GatewayError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, Clone, Serialize)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tim_code: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// An error as an HTTP response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: ErrorDetail,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: ErrorDetail {
                code,
                message: message.into(),
                field: None,
                tim_code: None,
            },
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> ApiError {
        self.detail.field = Some(field.into());
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.detail.code, self.detail.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            b.insert_header(("Retry-After", "1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            b.insert_header(("WWW-Authenticate", "Bearer"));
        }
        b.json(ErrorBody {
            error: self.detail.clone(),
        })
    }
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> ApiError {
        let message = e.to_string();
        let code = e.code().as_str();
        let (status, field, tim_code) = match e {
            GatewayError::Invalid {
                field, tim_code, ..
            } => (StatusCode::BAD_REQUEST, field, tim_code),
            GatewayError::NotFound { .. } => (StatusCode::NOT_FOUND, None, None),
            GatewayError::Conflict { tim_code, .. } => (StatusCode::CONFLICT, None, tim_code),
            GatewayError::Busy { .. } | GatewayError::StoreUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, None, None)
            }
            GatewayError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, None, None),
        };
        ApiError {
            status,
            detail: ErrorDetail {
                code,
                message,
                field: field.map(Cow::Borrowed),
                tim_code,
            },
        }
    }
}
