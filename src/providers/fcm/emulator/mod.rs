//! A loopback Firebase Cloud Messaging for tests, demos and load runs: the HTTP v1 send endpoint
//! and the OAuth token endpoint on one h2c/HTTP/1.1 port.
//!
//! It behaves as spec/vendors/fcm.md says Google behaves: access tokens only from a `jwt-bearer`
//! assertion whose RS256 signature verifies against the account's public key; sends need a live
//! token of the same project; bodies are checked field by field (unknown names refused); tokens
//! can be marked unregistered (404), invalid (400) or of another sender (403). Knobs: rate limit
//! (429 + Retry-After), failure share (503 + Retry-After), latency, hang, access-token lifetime,
//! token endpoint down. There is no daily quota: FCM has none (spec §6).
//!
//! Control surface under `/_emulator/`: `received` (GET, DELETE), `knobs` (GET, PUT),
//! `accounts` (GET, POST), `tokens` (POST), `revoke` (POST: every access token stops working),
//! `sample-account` (GET), `stats` (GET).

mod config;
mod send;
mod state;
mod token;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::{Method, Request, StatusCode};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

pub use config::{EmulatorAccount, EmulatorConfig, Knobs};
pub use state::{EmulatorStats, ReceivedFilter, ReceivedMessage, TokenState};

use crate::providers::emulator_kit;
use crate::providers::h2_emulator::{self as h2, json as json_reply, text, Connection, Reply};
use crate::providers::jwt::Rs256Key;
use state::Shared;

/// A running emulator; dropping it stops it.
pub struct EmulatorHandle {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: h2::H2Server,
}

pub fn start(config: EmulatorConfig, listen: SocketAddr) -> io::Result<EmulatorHandle> {
    let shared = Arc::new(Shared::new(&config));
    let handler_state = Arc::clone(&shared);
    let handler: h2::Handler = Arc::new(move |req, conn| {
        let shared = Arc::clone(&handler_state);
        Box::pin(async move { route(&shared, req, conn).await })
    });
    let server = h2::start(
        listen,
        h2::Options {
            name: "fcm-emulator",
            http2_only: false,
            max_body_bytes: 1024 * 1024,
            workers: config.workers,
            streams: Arc::new(|| 1000),
        },
        handler,
    )?;
    let addr = server.addr;
    {
        let mut uris = state::lock(&shared.own_token_uris);
        uris.push(format!("http://{addr}/token"));
        uris.push(format!("http://localhost:{}/token", addr.port()));
    }
    if let Some(project) = &config.sample_project {
        let (account, public) = crate::providers::fcm::account::sample_account_json(
            project,
            &format!("http://{addr}/token"),
        )
        .map_err(io::Error::other)?;
        shared.add_account(EmulatorAccount {
            client_email: account["client_email"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            project_id: project.clone(),
            public_key: public,
        });
        *state::lock(&shared.sample_account) = Some(account);
    }
    tracing::info!(%addr, "fcm emulator listening");
    Ok(EmulatorHandle {
        addr,
        shared,
        server,
    })
}

impl EmulatorHandle {
    /// `http://addr`: the `PUSHGATE_FCM_BASE_URL` to use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://addr/token`: the `token_uri` its accounts carry.
    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn add_account(&self, account: EmulatorAccount) {
        self.shared.add_account(account);
    }

    /// Trusts the account of a service-account JSON (its public half is derived from the
    /// private key): what the sandbox does for every certificate an operator creates.
    pub fn trust_service_account(&self, json: &Value) -> Result<(), String> {
        let email = json["client_email"].as_str().ok_or("no client_email")?;
        let project = json["project_id"].as_str().ok_or("no project_id")?;
        let pem = json["private_key"].as_str().ok_or("no private_key")?;
        let public = Rs256Key::from_pem(pem)
            .and_then(|k| k.public_pem())
            .map_err(|e| e.to_string())?;
        self.add_account(EmulatorAccount {
            client_email: email.to_owned(),
            project_id: project.to_owned(),
            public_key: public,
        });
        Ok(())
    }

    /// The generated test-only service account, when started with `sample_project`.
    pub fn sample_account(&self) -> Option<Value> {
        state::lock(&self.shared.sample_account).clone()
    }

    pub fn received(&self) -> Vec<ReceivedMessage> {
        self.shared.received(&ReceivedFilter::default())
    }

    pub fn received_filtered(&self, filter: &ReceivedFilter) -> Vec<ReceivedMessage> {
        self.shared.received(filter)
    }

    pub fn clear(&self) {
        self.shared.clear();
    }

    pub fn set_tokens<I, S>(&self, state: TokenState, tokens: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared
            .set_tokens(state, tokens.into_iter().map(Into::into).collect());
    }

    /// Every issued access token stops working: the next send with one gets 401.
    pub fn revoke_access_tokens(&self) -> usize {
        self.shared.revoke_access()
    }

    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

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

    pub fn stop(&self) {
        self.server.stop();
    }
}

/// `pushgate emulator fcm --listen HOST:PORT`: runs until SIGTERM or ctrl-c.
pub async fn run_standalone(listen: SocketAddr, config: EmulatorConfig) -> io::Result<()> {
    let handle = start(config, listen)?;
    println!("fcm emulator at {}", handle.base_url());
    h2::until_signal().await?;
    handle.stop();
    Ok(())
}

fn header<'a>(req: &'a Request<bytes::Bytes>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn route(shared: &Shared, req: Request<bytes::Bytes>, conn: Arc<Connection>) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(rest) = path.strip_prefix("/_emulator/") {
        return control(shared, req.method(), rest, req.uri().query(), req.body());
    }
    if path == "/token" {
        if req.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "POST only");
        }
        return token::handle(shared, header(&req, "content-type"), req.body());
    }
    let project = path
        .strip_prefix("/v1/projects/")
        .and_then(|p| p.strip_suffix("/messages:send"))
        .filter(|p| !p.is_empty() && !p.contains('/'));
    let Some(project) = project else {
        return send::google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("The requested URL {path} was not found on this server."),
            None,
            None,
        );
    };
    if req.method() != Method::POST {
        return send::google_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_ARGUMENT",
            "POST only",
            None,
            None,
        );
    }
    let knobs = shared.knobs();
    if knobs.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(knobs.latency_ms)).await;
    }
    if knobs.hang {
        let mut watch = shared.watch_knobs();
        let cap = std::time::Duration::from_secs(shared.hang_cap_secs);
        if !h2::wait_while(&mut watch, |k| k.hang, cap).await {
            shared.count("send", "http_504");
            return text(
                StatusCode::GATEWAY_TIMEOUT,
                "text/html",
                "<html><body>504 Gateway Timeout</body></html>",
            );
        }
    }
    let knobs = shared.knobs();
    // `<` with a NaN ratio is false: a bad knob never fires rather than panics.
    if knobs.error_5xx_ratio > 0.0 && rand::rng().random::<f64>() < knobs.error_5xx_ratio {
        shared.count("send", "UNAVAILABLE");
        let mut reply = send::google_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "The service is currently unavailable.",
            Some("UNAVAILABLE"),
            None,
        );
        send::retry_after(&mut reply, knobs.retry_after_secs);
        return reply;
    }
    let version = format!("{:?}", req.version());
    send::handle(
        shared,
        project,
        header(&req, "authorization"),
        header(&req, "content-type"),
        req.body(),
        &version,
        conn.id,
    )
}

fn bad_control(message: impl Into<String>) -> Reply {
    json_reply(StatusCode::BAD_REQUEST, &json!({ "error": message.into() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenChange {
    #[serde(default)]
    valid: Vec<String>,
    #[serde(default)]
    unregistered: Vec<String>,
    #[serde(default)]
    invalid: Vec<String>,
    #[serde(default)]
    sender_mismatch: Vec<String>,
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
            Ok(filter) => json_reply(StatusCode::OK, &json!(shared.received(&filter))),
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
        ("GET", "accounts") => json_reply(StatusCode::OK, &json!({ "accounts": shared.account_emails() })),
        ("POST", "accounts") => match serde_json::from_slice::<EmulatorAccount>(body) {
            Ok(a) if !a.client_email.is_empty() && !a.project_id.is_empty() => {
                if crate::providers::jwt::pem_decode(&a.public_key, "PUBLIC KEY").is_err() {
                    return bad_control("public_key must be a PUBLIC KEY PEM");
                }
                shared.add_account(a);
                json_reply(StatusCode::OK, &json!({ "accounts": shared.account_emails() }))
            }
            _ => bad_control("expected {\"client_email\",\"project_id\",\"public_key\"}"),
        },
        ("POST", "tokens") => match serde_json::from_slice::<TokenChange>(body) {
            Ok(c) => {
                let counts = json!({"valid": c.valid.len(), "unregistered": c.unregistered.len(),
                    "invalid": c.invalid.len(), "sender_mismatch": c.sender_mismatch.len()});
                shared.set_tokens(TokenState::Valid, c.valid);
                shared.set_tokens(TokenState::Unregistered, c.unregistered);
                shared.set_tokens(TokenState::Invalid, c.invalid);
                shared.set_tokens(TokenState::OtherSender, c.sender_mismatch);
                json_reply(StatusCode::OK, &counts)
            }
            Err(e) => bad_control(format!("expected {{\"unregistered\":[…],\"invalid\":[…],\"sender_mismatch\":[…],\"valid\":[…]}}: {e}")),
        },
        ("POST", "revoke") => json_reply(StatusCode::OK, &json!({ "revoked": shared.revoke_access() })),
        ("GET", "sample-account") => match state::lock(&shared.sample_account).clone() {
            Some(a) => json_reply(StatusCode::OK, &a),
            None => json_reply(StatusCode::NOT_FOUND, &json!({"error": "started without a sample account"})),
        },
        ("GET", "stats") => json_reply(StatusCode::OK, &json!(shared.stats())),
        _ => json_reply(StatusCode::NOT_FOUND, &json!({"error": format!("no control endpoint {method} /_emulator/{rest}")})),
    }
}

#[cfg(test)]
mod tests;
