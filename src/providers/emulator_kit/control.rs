//! The emulators' own HTTP control surface under `/_emulator/`, on the same listener.
//!
//! JSON in, JSON out; a bad control request gets `400 {"error": "..."}`. Secrets are accepted but
//! never returned.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::{EmulatorApp, Knobs, ReceivedFilter, Shared, TokenFate};

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
    .service(web::resource("/_emulator/auth/expire").route(web::post().to(expire_auth)))
    .service(web::resource("/_emulator/stats").route(web::get().to(stats)));
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json;charset=UTF-8")
        .body(body.to_string())
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message.into() }))
}

/// `GET /_emulator/received?target=&app=&since=` (since: unix ms).
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

/// `PUT /_emulator/knobs`: the fields given replace the current ones; others stay.
async fn put_knobs(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    match super::patch_knobs(&shared.knobs(), &body, |k: &Knobs| {
        vec![("error_5xx_ratio", k.error_5xx_ratio)]
    }) {
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
    let apps: Vec<Value> = shared
        .app_ids()
        .into_iter()
        .map(|(app_id, app_key)| json!({ "app_id": app_id, "app_key": app_key }))
        .collect();
    HttpResponse::Ok().json(json!({ "apps": apps }))
}

/// `POST /_emulator/apps` with `{"app_id","app_key","secret"}` or an array of them.
async fn add_apps(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let apps = match serde_json::from_slice::<OneOrMany<EmulatorApp>>(&body) {
        Ok(OneOrMany::One(app)) => vec![app],
        Ok(OneOrMany::Many(apps)) => apps,
        Err(_) => {
            return bad_request(
                "expected {\"app_id\":…,\"app_key\":…,\"secret\":…} or an array of them",
            )
        }
    };
    if apps.iter().any(|a| a.secret.is_empty()) {
        return bad_request("secret must not be empty");
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
    switched_off: Vec<String>,
}

/// `POST /_emulator/tokens` with `{"valid":[…],"invalid":[…],"switched_off":[…]}`.
async fn set_tokens(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<TokenChange>(&body) {
        Ok(change) => {
            let counts = json!({
                "valid": change.valid.len(),
                "invalid": change.invalid.len(),
                "switched_off": change.switched_off.len(),
            });
            let fates = change
                .invalid
                .into_iter()
                .map(|t| (t, TokenFate::Invalid))
                .chain(
                    change
                        .switched_off
                        .into_iter()
                        .map(|t| (t, TokenFate::SwitchedOff)),
                )
                .collect();
            shared.set_fates(change.valid, fates);
            HttpResponse::Ok().json(counts)
        }
        Err(err) => bad_request(format!(
            "expected {{\"valid\":[…],\"invalid\":[…],\"switched_off\":[…]}}: {err}"
        )),
    }
}

/// `POST /_emulator/auth/expire`: every issued auth token expires now.
async fn expire_auth(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "expired": shared.expire_auth_tokens() }))
}

async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats())
}
