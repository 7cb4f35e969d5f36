//! The emulator's OAuth token endpoint (`POST /token`): the `jwt-bearer` grant, checked as Google
//! checks it (spec/vendors/fcm.md §2) — RS256, signature against the account's public key,
//! `iss` a known account, `aud` the token endpoint, `scope` FCM's, `iat`/`exp` sane.

use hyper::StatusCode;
use rand::Rng;
use serde_json::json;

use super::state::{now_ms, Issued, Shared};
use crate::providers::fcm::account::GOOGLE_TOKEN_URI;
use crate::providers::h2_emulator::{json as json_reply, Reply};
use crate::providers::jwt::{decode, Alg};

/// Clock skew allowed on `iat` (seconds).
const SKEW_SECS: i64 = 300;

fn refuse(shared: &Shared, outcome: &str, error: &str, description: &str) -> Reply {
    shared.count("token", outcome);
    json_reply(
        StatusCode::BAD_REQUEST,
        &json!({ "error": error, "error_description": description }),
    )
}

pub(crate) fn handle(shared: &Shared, content_type: Option<&str>, body: &[u8]) -> Reply {
    if shared.knobs().token_endpoint_down {
        shared.count("token", "http_503");
        return json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error":"temporarily_unavailable","error_description":"emulated outage"}),
        );
    }
    if !content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return refuse(
            shared,
            "bad_content_type",
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(
            shared,
            "unsupported_grant_type",
            "unsupported_grant_type",
            "Invalid grant_type",
        );
    }
    let Some(assertion) = field("assertion") else {
        return refuse(
            shared,
            "invalid_request",
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let Ok(jwt) = decode(assertion) else {
        return refuse(
            shared,
            "invalid_grant",
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        );
    };
    if jwt.header_str("alg") != Some("RS256") {
        return refuse(
            shared,
            "invalid_grant",
            "invalid_grant",
            "Invalid JWT: alg must be RS256",
        );
    }
    let Some(account) = jwt.claim_str("iss").and_then(|iss| shared.account(iss)) else {
        return refuse(
            shared,
            "invalid_grant",
            "invalid_grant",
            "Invalid grant: account not found",
        );
    };
    if jwt.verify(Alg::Rs256, &account.public_key).is_err() {
        return refuse(
            shared,
            "invalid_grant",
            "invalid_grant",
            "Invalid JWT Signature.",
        );
    }
    let aud_ok = jwt.claim_str("aud").is_some_and(|aud| {
        aud == GOOGLE_TOKEN_URI
            || super::state::lock(&shared.own_token_uris)
                .iter()
                .any(|u| u == aud)
    });
    if !aud_ok {
        return refuse(
            shared,
            "invalid_grant",
            "invalid_grant",
            "Invalid JWT: aud must be the token endpoint",
        );
    }
    let scope_ok = jwt.claim_str("scope").is_some_and(|s| {
        s.split(' ').any(|s| {
            s == "https://www.googleapis.com/auth/firebase.messaging"
                || s == "https://www.googleapis.com/auth/cloud-platform"
        })
    });
    if !scope_ok {
        return refuse(
            shared,
            "invalid_scope",
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let now = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
    let (Some(iat), Some(exp)) = (jwt.claim_i64("iat"), jwt.claim_i64("exp")) else {
        return refuse(
            shared,
            "invalid_grant",
            "invalid_grant",
            "Invalid JWT: iat and exp are required",
        );
    };
    if iat > now + SKEW_SECS || exp <= now || exp - iat > 3600 || exp <= iat {
        return refuse(shared, "invalid_grant", "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.");
    }
    let ttl = shared.knobs().access_token_ttl_secs;
    let token = format!("ya29.emu-{:032x}", rand::rng().random::<u128>());
    shared.issue(
        token.clone(),
        Issued {
            project_id: account.project_id,
            expires_at_ms: now_ms().saturating_add(ttl.saturating_mul(1000)),
        },
    );
    shared.count("token", "ok");
    json_reply(
        StatusCode::OK,
        &json!({ "access_token": token, "expires_in": ttl, "token_type": "Bearer" }),
    )
}
