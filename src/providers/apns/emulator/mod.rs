//! A loopback APNs for tests, demos and load runs: HTTP/2 only, without TLS (prior knowledge).
//!
//! It behaves as spec/vendors/apns.md says Apple behaves: the ES256 provider token must verify
//! against the key's public half, be younger than an hour, keep one key id per connection and
//! not change more often than the renewal floor; every header and the payload are checked and
//! refused with Apple's `reason`s; device tokens can be marked unregistered, expired, bad or of
//! another topic. Knobs: rate limit (429 `TooManyRequests`), failure share (503), latency, hang,
//! provider-token lifetime and renewal floor, streams per connection, and "connection
//! concurrency cut to 1". No daily quota: APNs has none (spec §7).
//!
//! Control surface under `/_emulator/` (served on the same h2c port; `curl --http2-prior-knowledge`):
//! `received` (GET, DELETE), `knobs` (GET, PUT), `keys` (GET, POST), `devices` (POST),
//! `sample-key` (GET), `stats` (GET).

mod config;
mod push;
mod state;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::{Method, Request, StatusCode};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

pub use config::{EmulatorConfig, EmulatorKey, Knobs};
pub use state::{DeviceState, EmulatorStats, ReceivedFilter, ReceivedNotification};

use crate::providers::emulator_kit;
use crate::providers::h2_emulator::{self as h2, json as json_reply, Connection, Reply};
use crate::providers::jwt::Es256Key;
use state::Shared;

/// Ids of the generated sample key (Apple's shape: 10 characters).
pub const SAMPLE_KEY_ID: &str = "EMUKEY0001";
pub const SAMPLE_TEAM_ID: &str = "EMUTEAM001";

pub struct EmulatorHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: h2::H2Server,
}

pub fn start(config: EmulatorConfig, listen: SocketAddr) -> io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new(&config));
    let for_handler = Arc::clone(&shared);
    let handler: h2::Handler = Arc::new(move |req, conn| {
        let shared = Arc::clone(&for_handler);
        Box::pin(async move { route(&shared, req, conn).await })
    });
    let for_limit = Arc::clone(&shared);
    let server = h2::start(
        listen,
        h2::Options {
            name: "apns-emulator",
            http2_only: true,
            max_body_bytes: 64 * 1024,
            workers: config.workers,
            streams: Arc::new(move || for_limit.stream_limit()),
        },
        handler,
    )?;
    let _ = shared.resetter.set(server.resetter());
    if config.sample_key {
        let pem = Es256Key::generate_pem().map_err(io::Error::other)?;
        let public = Es256Key::from_pem(&pem)
            .and_then(|k| k.public_pem())
            .map_err(io::Error::other)?;
        shared.add_key(EmulatorKey {
            key_id: SAMPLE_KEY_ID.into(),
            team_id: SAMPLE_TEAM_ID.into(),
            public_key: public,
            topics: Vec::new(),
            environment: None,
        });
        *state::lock(&shared.sample_key) = Some(json!({
            "key_id": SAMPLE_KEY_ID,
            "team_id": SAMPLE_TEAM_ID,
            "private_key": pem,
            "environment": config.environment.as_str(),
        }));
    }
    tracing::info!(addr = %server.addr, "apns emulator listening (h2c)");
    Ok(EmulatorHandle {
        addr: server.addr,
        shared,
        server,
    })
}

impl EmulatorHandle {
    /// `http://addr`: the `PUSHGATE_APNS_BASE_URL` to use (HTTP/2 without TLS).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_key(&self, key: EmulatorKey) {
        self.shared.add_key(key);
    }

    /// Trusts a .p8 key (its public half is derived): what the sandbox does for every APNs
    /// certificate an operator creates.
    pub fn trust_p8(&self, key_id: &str, team_id: &str, private_key: &str) -> Result<(), String> {
        let public = Es256Key::from_pem(private_key)
            .and_then(|k| k.public_pem())
            .map_err(|e| e.to_string())?;
        self.add_key(EmulatorKey {
            key_id: key_id.to_owned(),
            team_id: team_id.to_owned(),
            public_key: public,
            topics: Vec::new(),
            environment: None,
        });
        Ok(())
    }

    /// `{key_id, team_id, private_key, environment}` of the generated test-only key.
    pub fn sample_key(&self) -> Option<Value> {
        state::lock(&self.shared.sample_key).clone()
    }

    pub fn set_devices<I, S>(&self, state: DeviceState, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .set_devices(state, tokens.into_iter().map(Into::into).collect());
    }

    pub fn received(&self) -> Vec<ReceivedNotification> {
        self.shared.received(&ReceivedFilter::default())
    }

    pub fn received_filtered(&self, f: &ReceivedFilter) -> Vec<ReceivedNotification> {
        self.shared.received(f)
    }

    pub fn clear(&self) {
        self.shared.clear();
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// Replaces the knobs; changing the stream limit or the cut ends live connections.
    pub fn set_knobs(&self, knobs: Knobs) {
        self.shared.set_knobs(knobs);
    }

    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    /// Connections accepted since start.
    pub fn connections(&self) -> u64 {
        self.server.connections_accepted()
    }

    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.server.connections_open()
    }

    pub fn stop(&self) {
        self.server.stop();
    }
}

/// `pushgate emulator apns --listen HOST:PORT`: runs until SIGTERM or ctrl-c.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> io::Result<()> {
    let handle = start(config, listen)?;
    println!(
        "apns emulator at {} (HTTP/2 without TLS)",
        handle.base_url()
    );
    h2::until_signal().await?;
    handle.stop();
    Ok(())
}

async fn route(shared: &Shared, req: Request<bytes::Bytes>, conn: Arc<Connection>) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/_emulator/") {
        return control(shared, req.method(), rest, req.uri().query(), req.body());
    }
    let new_id = || {
        let n: u128 = rand::rng().random();
        let h = format!("{n:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    let Some(token) = path.strip_prefix("/3/device/") else {
        return push::reply_error(
            shared,
            push::refusal(StatusCode::NOT_FOUND, "BadPath"),
            &new_id(),
            0,
        );
    };
    if req.method() != Method::POST {
        return push::reply_error(
            shared,
            push::refusal(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            &new_id(),
            0,
        );
    }
    shared.note_streams(conn.in_flight.load(Ordering::Relaxed));
    let knobs = shared.knobs();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if knobs.hang {
        let mut watch = shared.watch_knobs();
        let cap = std::time::Duration::from_secs(shared.hang_cap_secs);
        if !h2::wait_while(&mut watch, |k| k.hang, cap).await {
            return push::reply_error(
                shared,
                push::refusal(StatusCode::SERVICE_UNAVAILABLE, "Shutdown"),
                &new_id(),
                0,
            );
        }
    }
    let knobs = shared.knobs();
    // `<` with a NaN ratio is false: a bad knob never fires rather than panics.
    if knobs.error_5xx_ratio > 0.0 && rand::rng().random::<f64>() < knobs.error_5xx_ratio {
        return push::reply_error(
            shared,
            push::refusal(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            &new_id(),
            knobs.retry_after_secs,
        );
    }
    let token = token.to_owned();
    push::handle(shared, &token, req.headers(), req.body(), &conn)
}

fn bad_control(message: impl Into<String>) -> Reply {
    json_reply(StatusCode::BAD_REQUEST, &json!({ "error": message.into() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceChange {
    #[serde(default)]
    valid: Vec<String>,
    #[serde(default)]
    unregistered: Vec<String>,
    #[serde(default)]
    expired: Vec<String>,
    #[serde(default)]
    bad: Vec<String>,
    #[serde(default)]
    other_topic: Vec<String>,
}

fn control(
    shared: &Shared,
    method: &Method,
    rest: &str,
    query: Option<&str>,
    body: &[u8],
) -> Reply {
    match (method.as_str(), rest) {
        ("GET", "received") => match serde_urlencoded::from_str::<ReceivedFilter>(query.unwrap_or("")) {
            Ok(f) => json_reply(StatusCode::OK, &json!(shared.received(&f))),
            Err(e) => bad_control(format!("bad query: {e}")),
        },
        ("DELETE", "received") => json_reply(StatusCode::OK, &json!({ "cleared": shared.clear() })),
        ("GET", "knobs") => json_reply(StatusCode::OK, &json!(shared.knobs())),
        ("PUT", "knobs") => {
            let ratios = |k: &Knobs| vec![("error_5xx_ratio", k.error_5xx_ratio)];
            match emulator_kit::patch_knobs(&shared.knobs(), body, ratios) {
                Ok(k) => {
                    shared.set_knobs(k.clone());
                    json_reply(StatusCode::OK, &json!(k))
                }
                Err(e) => bad_control(e),
            }
        }
        ("GET", "keys") => json_reply(StatusCode::OK, &json!({ "keys": shared.key_ids() })),
        ("POST", "keys") => match serde_json::from_slice::<EmulatorKey>(body) {
            Ok(k) if !k.key_id.is_empty() && !k.team_id.is_empty() => {
                if crate::providers::jwt::pem_decode(&k.public_key, "PUBLIC KEY").is_err() {
                    return bad_control("public_key must be a PUBLIC KEY PEM");
                }
                shared.add_key(k);
                json_reply(StatusCode::OK, &json!({ "keys": shared.key_ids() }))
            }
            _ => bad_control("expected {\"key_id\",\"team_id\",\"public_key\"[,\"topics\",\"environment\"]}"),
        },
        ("POST", "devices") => match serde_json::from_slice::<DeviceChange>(body) {
            Ok(c) => {
                let n = c.valid.len() + c.unregistered.len() + c.expired.len() + c.bad.len() + c.other_topic.len();
                shared.set_devices(DeviceState::Valid, c.valid);
                shared.set_devices(DeviceState::Unregistered, c.unregistered);
                shared.set_devices(DeviceState::Expired, c.expired);
                shared.set_devices(DeviceState::Bad, c.bad);
                shared.set_devices(DeviceState::OtherTopic, c.other_topic);
                json_reply(StatusCode::OK, &json!({ "changed": n }))
            }
            Err(e) => bad_control(format!("expected {{\"unregistered\":[…],\"expired\":[…],\"bad\":[…],\"other_topic\":[…],\"valid\":[…]}}: {e}")),
        },
        ("GET", "sample-key") => match state::lock(&shared.sample_key).clone() {
            Some(k) => json_reply(StatusCode::OK, &k),
            None => json_reply(StatusCode::NOT_FOUND, &json!({"error": "started without a sample key"})),
        },
        ("GET", "stats") => json_reply(StatusCode::OK, &json!(shared.stats())),
        _ => json_reply(StatusCode::NOT_FOUND, &json!({"error": format!("no control endpoint {method} /_emulator/{rest}")})),
    }
}

#[cfg(test)]
mod tests;
