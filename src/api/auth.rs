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

/// An extractor that admits the request only with the token of role `R` (0 admin, 1 API,
/// 2 either). It comes first in a handler's arguments, so a request without the right token is
/// refused before its body is read.
pub struct Authorized<const R: u8>;

pub type AdminAuth = Authorized<0>;
pub type ApiAuth = Authorized<1>;
pub type AnyAuth = Authorized<2>;

impl<const R: u8> actix_web::FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let role = match R {
            0 => Role::Admin,
            1 => Role::Api,
            _ => Role::Any,
        };
        let result = match req.app_data::<actix_web::web::Data<super::AppState>>() {
            Some(state) => state.tokens.check(req, role).map(|_| Authorized),
            None => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server is not configured",
            )),
        };
        std::future::ready(result)
    }
}
