//! The emulator's control surface under `/_emulator/`, on the same listener.
//!
//! JSON in, JSON out; a bad control request gets `400 {"error": "..."}`. Client secrets are
//! accepted but never returned.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::state::{Knobs, OAuthApp, ReceivedFilter, Shared};
use crate::providers::emulator_kit;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_emulator/received")
            .route(web::get().to(list_received))
            .route(web::delete().to(clear_received)),
    )
    .service(
        web::resource("/_emulator/knobs")
            .route(web::get().to(get_knobs))
            .route(web::put().to(put_knobs)),
    )
    .service(
        web::resource("/_emulator/apps")
            .route(web::get().to(list_apps))
            .route(web::post().to(add_apps)),
    )
    .service(web::resource("/_emulator/tokens").route(web::post().to(set_tokens)))
    .service(web::resource("/_emulator/expire_access").route(web::post().to(expire_access)))
    .service(web::resource("/_emulator/stats").route(web::get().to(stats)));
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message.into() }))
}

/// `GET /_emulator/received?token=&app_id=&since=` (since: unix ms).
async fn list_received(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    match serde_urlencoded::from_str::<ReceivedFilter>(req.query_string()) {
        Ok(filter) => HttpResponse::Ok().json(shared.received(&filter)),
        Err(err) => bad_request(format!("bad query: {err}")),
    }
}

async fn clear_received(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "cleared": shared.clear() }))
}

async fn get_knobs(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.knobs())
}

/// Merges a JSON patch into the current knobs; fields not given stay.
pub fn patch_knobs(current: &Knobs, patch: &[u8]) -> Result<Knobs, String> {
    let knobs = emulator_kit::patch_knobs(current, patch, |k: &Knobs| {
        vec![
            ("error_5xx_ratio", k.error_5xx_ratio),
            ("receipt_loss_ratio", k.receipt_loss_ratio),
        ]
    })?;
    if !(500..=599).contains(&knobs.error_5xx_status) {
        return Err("error_5xx_status must be a 5xx status".into());
    }
    Ok(knobs)
}

async fn put_knobs(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    match patch_knobs(&shared.knobs(), &body) {
        Ok(knobs) => {
            shared.set_knobs(knobs.clone());
            HttpResponse::Ok().json(knobs)
        }
        Err(err) => bad_request(err),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

async fn list_apps(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "client_ids": shared.client_ids() }))
}

/// `POST /_emulator/apps` with `{"client_id","client_secret","app_ids":[…]}` or an array.
async fn add_apps(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let apps = match serde_json::from_slice::<OneOrMany<OAuthApp>>(&body) {
        Ok(OneOrMany::One(app)) => vec![app],
        Ok(OneOrMany::Many(apps)) => apps,
        Err(_) => {
            return bad_request(
                "expected {\"client_id\":…,\"client_secret\":…,\"app_ids\":[…]} or an array",
            )
        }
    };
    if apps
        .iter()
        .any(|a| a.client_id.trim().is_empty() || a.client_secret.is_empty())
    {
        return bad_request("client_id and client_secret must not be empty");
    }
    for app in apps {
        shared.add_app(app);
    }
    list_apps(shared).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenChange {
    #[serde(default)]
    valid: Vec<String>,
    #[serde(default)]
    invalid: Vec<String>,
    #[serde(default)]
    failing: Vec<String>,
    /// The app whose SDK registered the `valid` tokens; they are invalid for any other app.
    #[serde(default)]
    owner: Option<String>,
}

/// `POST /_emulator/tokens` with `{"valid":[…],"invalid":[…],"failing":[…],"owner":"app id"}`.
async fn set_tokens(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<TokenChange>(&body) {
        Ok(change) => {
            let counts = json!({
                "valid": change.valid.len(),
                "invalid": change.invalid.len(),
                "failing": change.failing.len(),
            });
            shared.set_tokens(
                change.valid,
                change.invalid,
                change.failing,
                change.owner.as_deref(),
            );
            HttpResponse::Ok().json(counts)
        }
        Err(err) => bad_request(format!(
            "expected {{\"valid\":[…],\"invalid\":[…],\"failing\":[…],\"owner\":…}}: {err}"
        )),
    }
}

/// `POST /_emulator/expire_access`: every access token issued so far expires now.
async fn expire_access(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "expired": shared.expire_access_tokens() }))
}

async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knob_patches_merge_and_are_checked() {
        let k = patch_knobs(&Knobs::default(), br#"{"qps_limit":5}"#).expect("ok");
        assert_eq!(k.qps_limit, Some(5));
        assert_eq!(k.access_token_ttl_secs, 3600);
        assert!(patch_knobs(&k, br#"{"error_5xx_ratio":2}"#).is_err());
        assert!(patch_knobs(&k, br#"{"receipt_loss_ratio":-0.5}"#).is_err());
        assert!(patch_knobs(&k, br#"{"error_5xx_status":200}"#).is_err());
        assert!(patch_knobs(&k, br#"{"nope":1}"#).is_err());
        assert!(patch_knobs(&k, b"[]").is_err());
    }
}
