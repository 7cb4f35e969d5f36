//! The common core of loopback emulators for push services that use OAuth client credentials
//! (Huawei, Honor): the token endpoint, access tokens with a lifetime, device-token validity,
//! outage knobs (latency, hang, 5xx), QPS windows, the marketing cap, the received log and the
//! `/_emulator/*` control surface. Each vendor adds its send endpoint (`huawei::emulator`,
//! `honor::emulator`) and the shape of its answers.
//!
//! Huawei's emulator posts delivery receipts (spec §6) with `providers::receipt_poster`,
//! started by [`serve_with`]; the receipt knobs live in [`Knobs`].

pub mod control;
pub mod state;
pub mod token;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::BytesMut;
use futures_util::StreamExt;
use rand::Rng;

pub use state::{
    BearerCheck, DeviceToken, EmulatorStats, Knobs, OAuthApp, ReceivedFilter, ReceivedNotification,
    Shared,
};
pub use token::TokenStyle;

/// A running emulator. Dropping the handle stops it.
pub struct ServerParts {
    pub addr: SocketAddr,
    pub server: ServerHandle,
}

/// Starts an actix server on `listen` in its own thread with its own `System`, serving the
/// control surface plus what `configure` adds. Returns once the socket is bound.
pub fn serve<D: Send + Sync + 'static>(
    name: &'static str,
    shared: Arc<Shared>,
    vendor_data: Arc<D>,
    configure: fn(&mut web::ServiceConfig),
    workers: usize,
    listen: SocketAddr,
) -> io::Result<ServerParts> {
    serve_with(name, shared, vendor_data, configure, workers, listen, || {})
}

/// [`serve`], running `on_start` inside the server's `System` first, where it may
/// `actix_rt::spawn` background tasks (a receipt poster) that end with the server.
pub fn serve_with<D: Send + Sync + 'static>(
    name: &'static str,
    shared: Arc<Shared>,
    vendor_data: Arc<D>,
    configure: fn(&mut web::ServiceConfig),
    workers: usize,
    listen: SocketAddr,
    on_start: impl FnOnce() + Send + 'static,
) -> io::Result<ServerParts> {
    let listener = std::net::TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    let (started_tx, started_rx) = std::sync::mpsc::channel::<io::Result<ServerHandle>>();
    std::thread::Builder::new()
        .name(format!("{name}-emulator-{}", addr.port()))
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                on_start();
                let shared = web::Data::from(shared);
                let vendor = web::Data::from(vendor_data);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .app_data(vendor.clone())
                        .configure(configure)
                        .configure(control::configure)
                })
                .workers(workers.max(1))
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener);
                let server = match server {
                    Ok(server) => server.run(),
                    Err(err) => {
                        let _ = started_tx.send(Err(err));
                        return;
                    }
                };
                let _ = started_tx.send(Ok(server.handle()));
                if let Err(err) = server.await {
                    tracing::warn!(error = %err, emulator = name, "emulator stopped with an error");
                }
            });
        })?;
    let server = started_rx.recv().map_err(|_| {
        io::Error::other(format!("{name} emulator thread ended before it started"))
    })??;
    tracing::info!(%addr, emulator = name, "emulator listening");
    Ok(ServerParts { addr, server })
}

/// Waits for SIGTERM or ctrl-c (standalone emulators).
#[cfg(unix)]
pub async fn shutdown_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
pub async fn shutdown_signal() -> io::Result<()> {
    tokio::signal::ctrl_c().await
}

/// The outage knobs every send request passes first: latency, hang (504 at the cap), and a
/// share of 5xx answers. `Some` is the answer to give instead of processing.
pub async fn outage(shared: &Shared, path: &str) -> Option<HttpResponse> {
    let knobs = shared.knobs();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if knobs.hang && !wait_while_hung(shared).await {
        shared.count_request(path, "http_504");
        return Some(
            HttpResponse::GatewayTimeout()
                .content_type("text/html")
                .body("<html><body><h1>504 Gateway Time-out</h1></body></html>"),
        );
    }
    let knobs = shared.knobs();
    // `<` with a NaN ratio is false: a bad knob never panics, it just never fires.
    if knobs.error_5xx_ratio > 0.0 && rand::rng().random::<f64>() < knobs.error_5xx_ratio {
        let status =
            StatusCode::from_u16(knobs.error_5xx_status).unwrap_or(StatusCode::BAD_GATEWAY);
        shared.count_request(path, &format!("http_{}", status.as_u16()));
        return Some(
            HttpResponse::build(status)
                .content_type("text/html")
                .body(format!("<html><body><h1>{status}</h1></body></html>")),
        );
    }
    None
}

/// Waits until the `hang` knob is cleared; false when the cap passed or the emulator stopped.
async fn wait_while_hung(shared: &Shared) -> bool {
    let mut knobs = shared.watch_knobs();
    let cap = tokio::time::sleep(shared.hang_cap);
    tokio::pin!(cap);
    loop {
        if !knobs.borrow_and_update().hang {
            return true;
        }
        tokio::select! {
            changed = knobs.changed() => {
                if changed.is_err() {
                    return false;
                }
            }
            () = &mut cap => return false,
        }
    }
}

/// Reads a body up to `limit` bytes; `None` when longer or unreadable.
pub async fn read_body(mut body: web::Payload, limit: usize) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if buf.len() + chunk.len() > limit {
            return None;
        }
        buf.extend_from_slice(&chunk);
    }
    Some(buf)
}

/// The bearer token of a request (`Authorization: Bearer …`); `None` without the prefix.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The raw `Authorization` value (Honor's emulator can accept it without `Bearer `).
pub fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The content type's media type, lower-case, without parameters.
pub fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The `S.ext` string extra of an intent URI, percent-decoded, as `getStringExtra("ext")` gives
/// it to the app.
pub fn intent_ext(intent: &str) -> Option<String> {
    let (_, fragment) = intent.split_once("#Intent;")?;
    let raw = fragment
        .split(';')
        .find_map(|part| part.strip_prefix("S.ext="))?;
    percent_decode(raw)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_ext_is_decoded() {
        let i = "intent:#Intent;action=a;package=p;S.ext=%7B%22k%22%3A%22v%3B%22%7D;end";
        assert_eq!(intent_ext(i).as_deref(), Some(r#"{"k":"v;"}"#));
        assert_eq!(intent_ext("intent:#Intent;end"), None);
        assert_eq!(intent_ext("intent:#Intent;S.ext=%ZZ;end"), None);
        assert_eq!(
            intent_ext("intent:#Intent;S.ext=%E6%B6%88;end").as_deref(),
            Some("消")
        );
    }
}
