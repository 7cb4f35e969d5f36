//! The ceiling of our HTTP path: actix-web with the gateway's server settings, answering every
//! `POST /bare` with a fixed small JSON after reading the body. `loadtest/run` drives it with the
//! same k6 script shape as `/v1/messages`, so the report can state our send throughput as a
//! share of what actix-web itself does on this machine.
//!
//! `cargo run --release --example bare_http -- --listen 127.0.0.1:0 [--workers N]`

use actix_web::{web, App, HttpResponse, HttpServer};

/// Shaped like a one-recipient `/v1/messages` reply, so both paths write similar bytes.
const REPLY: &str =
    r#"{"message_id":1,"results":[{"user":"u1","outcome":"push_queued","devices":[]}]}"#;

async fn bare(body: web::Bytes) -> HttpResponse {
    // The gateway reads and parses the body; this reads it, which is the floor of that cost.
    std::hint::black_box(body.len());
    HttpResponse::Ok()
        .content_type("application/json")
        .body(REPLY)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = arg("--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let workers: usize = arg("--workers").and_then(|w| w.parse().ok()).unwrap_or(0);
    // The same server settings as `server::bind` (backlog, connection cap per worker).
    let mut server = HttpServer::new(|| {
        App::new()
            .route("/bare", web::post().to(bare))
            .route("/healthz", web::get().to(healthz))
    })
    .max_connections(100_000)
    .backlog(4096)
    .shutdown_timeout(1);
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server.bind(listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no listening address"))?;
    println!("bare_http listening on {addr}");
    server.run().await
}
