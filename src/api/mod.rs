//! The HTTP surfaces: native /v1 (IM cluster and admin), health, metrics. Handlers translate
//! requests into `gateway` calls and back; they hold no business rules.

pub mod admin;
pub mod auth;
pub mod codec;
pub mod console;
pub mod error;
pub mod receipts;
pub mod v1;
pub mod v4;
pub mod ws;

use crate::gateway::Gateway;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use error::ApiError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What every handler shares.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub tokens: auth::Tokens,
    /// UserSig checks of /v1/ws and /v4, built once from the config.
    pub tickets: crate::usersig::TicketVerifier,
    /// Set once the store is loaded and the listener is up.
    pub ready: Arc<AtomicBool>,
    /// Recent TIM sends, for /v4 duplicate suppression (bounded; shared by every HTTP worker).
    pub tim_dedupe: v4::dedupe::DedupeWindow,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    let json_errors = web::JsonConfig::default().limit(body_limit);
    cfg.app_data(web::PayloadConfig::new(body_limit))
        .app_data(json_errors)
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .configure(console::configure)
        .service(
            web::scope("/v1")
                .wrap(actix_web::middleware::from_fn(codec::errors_as_accepted))
                .route("/certificates", web::post().to(admin::create))
                .route("/certificates", web::get().to(admin::list))
                .route("/certificates/{id}", web::get().to(admin::get))
                .route("/certificates/{id}", web::put().to(admin::update))
                .route("/certificates/{id}", web::delete().to(admin::delete))
                .route("/sessions/events", web::post().to(v1::session_events))
                .route("/push-tokens", web::put().to(v1::put_token))
                .route("/push-tokens", web::delete().to(v1::delete_token))
                .route("/messages", web::post().to(v1::send_message))
                .route("/users/{user}", web::get().to(v1::user_status))
                .route("/users/{user}/diagnosis", web::get().to(v1::diagnosis))
                .route("/ws", web::get().to(ws::upgrade))
                .route("/openapi.json", web::get().to(openapi))
                .route(
                    "/receipts/{vendor}/{certificate}",
                    web::post().to(receipts::receive),
                ),
        )
        .configure(v4::configure)
        .default_service(web::to(not_found));
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// The OpenAPI document of /v1 (kept true by tests/openapi.rs and scripts/test's
/// property-based run). Public: it describes the API, it holds no data.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    // Cluster mode: not ready while this node's lease is not trusted (Redis unreachable).
    if state.gateway.remote().is_some_and(|r| !r.is_ready()) {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("cluster lease not held\n");
    }
    // The disk refuses writes: every durable change would be refused, so take no new traffic.
    if let Some(fault) = state.gateway.store_fault() {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(format!("store unwritable ({}): {fault}\n", fault.label()));
    }
    if state.ready.load(Ordering::Relaxed) {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("starting\n")
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.gateway.refresh_gauges();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.gateway.metrics().render())
}

/// The method as a metric label. The method comes from unauthenticated clients and actix
/// accepts any token as a method, so anything outside the standard set is "other": each new
/// label value would otherwise add a counter and a histogram for the process's lifetime.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts every request by route pattern (never the raw path: it may hold a user id) and by
/// method from a fixed set.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    // The state (one reference count), not a copy of every metric handle in `Metrics`.
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let m = state.gateway.metrics();
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_string());
        let status = res.status().as_u16().to_string();
        m.http_requests
            .with_label_values(&[&route, method, &status])
            .inc();
        m.http_duration
            .with_label_values(&[&route, method])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
