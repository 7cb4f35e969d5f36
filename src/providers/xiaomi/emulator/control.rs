//! The emulator's own HTTP control surface under `/_emulator/`, on the same listener.
//!
//! JSON in, JSON out; a bad control request gets `400 {"error": "..."}`. Secrets are accepted
//! but never returned.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::providers::emulator_kit::patch_knobs;

use super::config::{EmulatorApp, Knobs};
use super::envelope::json_response;
use super::state::{ReceivedFilter, Shared};

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
    .service(web::resource("/_emulator/regids").route(web::post().to(add_regids)))
    .service(web::resource("/_emulator/stats").route(web::get().to(stats)))
    .service(web::resource("/_emulator/receipts").route(web::get().to(receipt_stats)));
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message.into() }))
}

/// `GET /_emulator/received?regid=&package=&since=` (since: unix ms).
async fn list_received(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    match serde_urlencoded::from_str::<ReceivedFilter>(req.query_string()) {
        Ok(filter) => HttpResponse::Ok().json(shared.received(&filter)),
        Err(err) => bad_request(format!("bad query: {err}")),
    }
}

/// `DELETE /_emulator/received`.
async fn clear_received(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "cleared": shared.clear() }))
}

async fn get_knobs(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.knobs())
}

/// `PUT /_emulator/knobs`: the fields given replace the current ones; others stay.
async fn put_knobs(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let ratios = |k: &Knobs| {
        vec![
            ("error_5xx_ratio", k.error_5xx_ratio),
            ("receipt_loss_ratio", k.receipt_loss_ratio),
            ("receipt_click_ratio", k.receipt_click_ratio),
        ]
    };
    match patch_knobs(&shared.knobs(), &body, ratios) {
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
    HttpResponse::Ok().json(json!({ "apps": shared.package_names() }))
}

/// `POST /_emulator/apps` with `{"package_name","app_secret"}` or an array of them.
async fn add_apps(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let apps = match serde_json::from_slice::<OneOrMany<EmulatorApp>>(&body) {
        Ok(OneOrMany::One(app)) => vec![app],
        Ok(OneOrMany::Many(apps)) => apps,
        Err(_) => {
            return bad_request(
                "expected {\"package_name\":…,\"app_secret\":…} or an array of them",
            )
        }
    };
    if apps
        .iter()
        .any(|a| a.package_name.trim().is_empty() || a.app_secret.is_empty())
    {
        return bad_request("package_name and app_secret must not be empty");
    }
    for app in apps {
        shared.add_app(app);
    }
    list_apps(shared).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegidChange {
    #[serde(default)]
    valid: Vec<String>,
    #[serde(default)]
    invalid: Vec<String>,
    /// Accepted, then reported invalid by a receipt (type 16).
    #[serde(default)]
    uninstalled: Vec<String>,
}

/// `POST /_emulator/regids` with `{"valid":[…],"invalid":[…],"uninstalled":[…]}`.
async fn add_regids(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<RegidChange>(&body) {
        Ok(change) => {
            let counts = json!({
                "valid": change.valid.len(),
                "invalid": change.invalid.len(),
                "uninstalled": change.uninstalled.len(),
            });
            shared.add_regids(change.valid, change.invalid);
            shared.add_uninstalled(change.uninstalled);
            HttpResponse::Ok().json(counts)
        }
        Err(err) => bad_request(format!("expected {{\"valid\":[…],\"invalid\":[…]}}: {err}")),
    }
}

/// `GET /_emulator/receipts`: receipts posted, lost and failed since start.
async fn receipt_stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.receipt_stats())
}

async fn stats(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.stats())
}
