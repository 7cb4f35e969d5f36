//! Bearer tokens: the admin token for certificates and the console, the API token for the IM
//! cluster. Compared in constant time.

use super::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

/// Which token an endpoint accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Api,
    /// Either token (read-only views useful to both: diagnosis, user status).
    Any,
}

/// The configured tokens.
#[derive(Clone)]
pub struct Tokens {
    pub admin: String,
    pub api: String,
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Tokens {
    pub fn check(&self, req: &HttpRequest, role: Role) -> Result<(), ApiError> {
        let Some(given) = bearer(req) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing 'Authorization: Bearer <token>' header",
            ));
        };
        let ok = match role {
            Role::Admin => eq(given, &self.admin),
            Role::Api => eq(given, &self.api),
            Role::Any => eq(given, &self.admin) | eq(given, &self.api),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                match role {
                    Role::Admin => "the bearer token is not the admin token",
                    Role::Api => "the bearer token is not the API token",
                    Role::Any => "the bearer token is neither the admin nor the API token",
                },
            ))
        }
    }
}
