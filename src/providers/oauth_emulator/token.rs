//! The OAuth token endpoint: `POST` a client-credentials form, get a bearer token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::state::{now_ms, ClientCheck, Shared};
use super::{media_type, read_body};

/// How the vendor's token endpoint words its refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStyle {
    /// Huawei: `{"error":1101,"sub_error":20003,"error_description":…}` (spec §2.1).
    Huawei,
    /// Keycloak, behind Honor's `openid-connect` path: `{"error":"invalid_client",…}`.
    Keycloak,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Form {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn refusal(style: TokenStyle, status: StatusCode, kind: Refusal) -> HttpResponse {
    let body = match (style, kind) {
        (TokenStyle::Huawei, Refusal::BadRequest(why)) => {
            json!({"error": 1102, "sub_error": 20152, "error_description": why})
        }
        (TokenStyle::Huawei, Refusal::UnknownClient) => {
            json!({"error": 1101, "sub_error": 20003, "error_description": "invalid client_id"})
        }
        (TokenStyle::Huawei, Refusal::WrongSecret) => {
            json!({"error": 1101, "sub_error": 12304, "error_description": "client secret invalid"})
        }
        (TokenStyle::Keycloak, Refusal::BadRequest(why)) => {
            json!({"error": "invalid_request", "error_description": why})
        }
        (TokenStyle::Keycloak, Refusal::UnknownClient | Refusal::WrongSecret) => {
            json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"})
        }
    };
    HttpResponse::build(status).json(body)
}

enum Refusal {
    BadRequest(&'static str),
    UnknownClient,
    WrongSecret,
}

/// Handles one token request for an emulator of the given style.
pub async fn handle(
    style: TokenStyle,
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let path = req.path().to_owned();
    let knobs = shared.knobs();
    if knobs.auth_unavailable {
        shared.count_request(&path, "http_503");
        return HttpResponse::ServiceUnavailable().body("system rate limiting");
    }
    let bad = |why: &'static str| {
        shared.count_request(&path, "bad_request");
        refusal(style, StatusCode::BAD_REQUEST, Refusal::BadRequest(why))
    };
    if media_type(&req) != "application/x-www-form-urlencoded" {
        return bad("Content-Type must be application/x-www-form-urlencoded");
    }
    let Some(raw) = read_body(body, 64 * 1024).await else {
        return bad("request body too long or unreadable");
    };
    let Ok(form) = serde_urlencoded::from_bytes::<Form>(&raw) else {
        return bad("request body is not a form");
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return bad("grant_type must be client_credentials");
    }
    let client_id = form.client_id.unwrap_or_default();
    let secret = form.client_secret.unwrap_or_default();
    if client_id.is_empty() || secret.is_empty() {
        return bad("client_id and client_secret are required");
    }
    let (status, kind) = match shared.check_client(&client_id, &secret) {
        ClientCheck::Ok => {
            let now = now_ms();
            if !shared.admit_token_fetch(&client_id, knobs.token_fetch_limit_per_5min, now) {
                shared.count_request(&path, "http_503");
                return HttpResponse::ServiceUnavailable().body("system rate limiting");
            }
            let token = shared.issue(&client_id, knobs.access_token_ttl_secs, now);
            shared.count_request(&path, "ok");
            return HttpResponse::Ok().json(json!({
                "access_token": token,
                "expires_in": knobs.access_token_ttl_secs,
                "token_type": "Bearer",
            }));
        }
        ClientCheck::UnknownClient => (StatusCode::BAD_REQUEST, Refusal::UnknownClient),
        ClientCheck::WrongSecret => (StatusCode::BAD_REQUEST, Refusal::WrongSecret),
    };
    // Keycloak answers 401 to a bad client.
    let status = match style {
        TokenStyle::Huawei => status,
        TokenStyle::Keycloak => StatusCode::UNAUTHORIZED,
    };
    shared.count_token_refusal();
    shared.count_request(&path, "refused");
    refusal(style, status, kind)
}
