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
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use error::ApiError;
use prometheus::{Histogram, IntCounter};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
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
            // Its JSON errors become MessagePack for a client that asks (`Observe`).
            web::scope("/v1")
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

/// The middleware every request goes through ([`Observe`]): counts it by route pattern
/// (never the raw path: it may hold a user id) and by method from a fixed set, and under /v1
/// turns a JSON error answer into MessagePack for a client that asked for MessagePack
/// ([`codec::wants_msgpack_error`]). One layer with its own future: no boxed future, no boxed
/// inner service, per request (two `from_fn` layers did both), and `Accept` is read only for
/// errors.
pub struct Observe {
    gateway: Arc<Gateway>,
}

impl Observe {
    pub fn new(gateway: Arc<Gateway>) -> Observe {
        Observe { gateway }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: Unpin,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<ObserveService<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(ObserveService {
            service,
            shared: Rc::new(Observed {
                gateway: self.gateway.clone(),
                routes: RefCell::default(),
            }),
        }))
    }
}

/// What a worker's requests share: the metrics, and the metric handles of the routes seen.
struct Observed {
    gateway: Arc<Gateway>,
    routes: RefCell<RouteMetrics>,
}

/// The request counter and latency histogram of each (path, method, status), for the paths
/// that are their own route pattern (no `{user}` in them): finding the pattern walks the
/// routes again and a labelled metric is a hash and a lock, both for every request.
#[derive(Default)]
struct RouteMetrics {
    by_path: HashMap<Box<str>, Vec<RouteHandles>>,
    len: usize,
}

/// A path's (method, status, request counter, latency histogram).
type RouteHandles = (&'static str, u16, IntCounter, Histogram);

/// Bounds the handles kept: static paths × methods × statuses seen (the routes are fixed;
/// past this, requests are counted the slow way).
const MAX_ROUTE_METRICS: usize = 1024;

impl Observed {
    fn record(&self, req: &actix_web::HttpRequest, method: &'static str, status: u16, secs: f64) {
        let path = req.path();
        let cached = self.routes.borrow().by_path.get(path).and_then(|v| {
            v.iter()
                .find(|(m, s, _, _)| *m == method && *s == status)
                .map(|(_, _, c, h)| (c.clone(), h.clone()))
        });
        let (count, latency) = match cached {
            Some(handles) => handles,
            None => {
                let m = self.gateway.metrics();
                let route = req
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                let count =
                    m.http_requests
                        .with_label_values(&[&route, method, &status.to_string()]);
                let latency = m.http_duration.with_label_values(&[&route, method]);
                let mut routes = self.routes.borrow_mut();
                if route == path && routes.len < MAX_ROUTE_METRICS {
                    routes.len += 1;
                    routes.by_path.entry(path.into()).or_default().push((
                        method,
                        status,
                        count.clone(),
                        latency.clone(),
                    ));
                }
                (count, latency)
            }
        };
        count.inc();
        latency.observe(secs);
    }
}

pub struct ObserveService<S> {
    service: S,
    shared: Rc<Observed>,
}

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: Unpin,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ObserveFuture<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = method_label(req.method());
        // The /v1 scope's answers (its routes and its unmatched paths).
        let v1 = {
            let p = req.path();
            p == "/v1" || p.starts_with("/v1/")
        };
        ObserveFuture {
            state: Stage::Calling(self.service.call(req)),
            started,
            method,
            v1,
            shared: self.shared.clone(),
            _body: std::marker::PhantomData,
        }
    }
}

/// The error answer being turned into MessagePack (rare: boxed).
type Converting = Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>;

enum Stage<F> {
    Calling(F),
    Converting(Converting),
    Done,
}

pub struct ObserveFuture<F, B> {
    state: Stage<F>,
    started: Instant,
    method: &'static str,
    v1: bool,
    shared: Rc<Observed>,
    _body: std::marker::PhantomData<fn() -> B>,
}

impl<F, B> ObserveFuture<F, B> {
    fn finish<T>(&self, res: &ServiceResponse<T>) {
        let secs = self.started.elapsed().as_secs_f64();
        self.shared
            .record(res.request(), self.method, res.status().as_u16(), secs);
    }
}

impl<F, B> Future for ObserveFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + Unpin,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                Stage::Calling(fut) => {
                    let res = match ready!(Pin::new(fut).poll(cx)) {
                        Ok(res) => res,
                        Err(e) => {
                            this.state = Stage::Done;
                            return Poll::Ready(Err(e));
                        }
                    };
                    if this.v1 && codec::wants_msgpack_error(&res) {
                        this.state = Stage::Converting(Box::pin(codec::error_as_msgpack(res)));
                        continue;
                    }
                    this.state = Stage::Done;
                    this.finish(&res);
                    return Poll::Ready(Ok(res.map_into_left_body()));
                }
                Stage::Converting(fut) => {
                    let res = ready!(fut.as_mut().poll(cx));
                    this.state = Stage::Done;
                    let res = res?;
                    this.finish(&res);
                    return Poll::Ready(Ok(res.map_into_right_body()));
                }
                Stage::Done => panic!("ObserveFuture polled after it finished"),
            }
        }
    }
}
