//! `GET /v1/ws`: checks the query and the UserSig, logs the device in with this connection, and
//! hands the upgraded socket to a `SessionActor` (contract.md, "WebSocket").

use actix::prelude::*;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason};

use super::error::ApiError;
use super::AppState;
use crate::domain::ids::check_id;
use crate::domain::{now_secs, Platform};
use crate::gateway::{SessionAction, SessionEvent};
use crate::session::actor::{SessionActor, SessionIdentity};
use crate::session::frame::MAX_FRAME_BYTES;
use crate::session::outbound::OutboundQueue;
use crate::session::webhook::{StateAction, StateChange};
use crate::usersig::UserSigError;

/// Largest WebSocket message read at all. Frames between [`MAX_FRAME_BYTES`] and this get an
/// `error` frame and the connection stays; beyond it the connection closes (1009), as reading
/// on would mean buffering whatever the client sends.
const MAX_WIRE_FRAME_BYTES: usize = 4 * MAX_FRAME_BYTES;

/// The query parameters, all required.
struct Params {
    sdkappid: u64,
    identifier: String,
    usersig: String,
    platform: Platform,
    device: String,
}

fn bad(field: &'static str, code: &'static str, message: String) -> ApiError {
    ApiError::bad_request(code, message).with_field(field)
}

fn unauthorized(e: &UserSigError) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        e.reason(),
        format!("{e} (TIM error {})", e.tim_code()),
    )
}

fn params(req: &HttpRequest) -> Result<Params, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::bad_request("invalid_query", format!("the query string: {e}")))?;
    let get = |name: &'static str| -> Result<String, ApiError> {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                bad(
                    name,
                    "missing_parameter",
                    format!("query parameter `{name}` is required"),
                )
            })
    };
    let sdkappid = get("sdkappid")?;
    let sdkappid = sdkappid.parse::<u64>().map_err(|_| {
        bad(
            "sdkappid",
            "invalid_parameter",
            "query parameter `sdkappid` must be an unsigned integer".into(),
        )
    })?;
    let identifier = get("identifier")?;
    check_id("identifier", &identifier)
        .map_err(|e| bad("identifier", "invalid_parameter", e.to_string()))?;
    let platform_name = get("platform")?;
    let platform = Platform::parse(&platform_name).ok_or_else(|| {
        bad(
            "platform",
            "invalid_parameter",
            format!(
                "query parameter `platform`: unknown platform {:?}; one of Android, iPhone, iPad, Web, PC, Mac, Linux",
                platform_name.chars().take(32).collect::<String>()
            ),
        )
    })?;
    let device = get("device")?;
    check_id("device", &device).map_err(|e| bad("device", "invalid_parameter", e.to_string()))?;
    // Last, so that a client missing several parameters learns of the plain ones first.
    let usersig = get("usersig").map_err(|_| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "usersig_missing",
            "query parameter `usersig` is required",
        )
    })?;
    Ok(Params {
        sdkappid,
        identifier,
        usersig,
        platform,
        device,
    })
}

/// A ticket that does not verify. A WebSocket client cannot read an HTTP error's body (a browser
/// sees only close 1006), so a real handshake is answered with an upgrade and an immediate close
/// frame, 1008 (policy violation), whose reason names the case and Tencent's code, as
/// spec/usersig-v2.md says: `usersig_expired (TIM error 70001)`. Nothing is logged in. Any other
/// request gets the same case as a 401 with the usual JSON error.
fn refuse_ticket(
    req: &HttpRequest,
    body: web::Payload,
    e: &UserSigError,
) -> Result<HttpResponse, ApiError> {
    let Ok((response, session, _stream)) = actix_ws::handle(req, body) else {
        return Err(unauthorized(e));
    };
    let reason = CloseReason {
        code: CloseCode::Policy,
        description: Some(format!("{} (TIM error {})", e.reason(), e.tim_code())),
    };
    actix_web::rt::spawn(async move {
        // Fails only if the client is already gone.
        let _ = session.close(Some(reason)).await;
    });
    Ok(response)
}

pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let gw = state.gateway.clone();
    let p = params(&req)?;
    let config = &gw.config;
    let verified = if p.sdkappid != config.sdkappid {
        Err(UserSigError::SdkAppIdMismatch)
    } else {
        state.tickets.verify(&p.usersig, &p.identifier, now_secs())
    };
    if let Err(e) = verified {
        return refuse_ticket(&req, body, &e);
    }

    // actix-http answers the handshake and actix-ws reads the client's frames; frames go out
    // through our own response body (`OutboundBody`), which holds nothing while the connection
    // is idle, instead of actix-ws's `Session` and its channel.
    let mut handshake = actix_http::ws::handshake(req.head())
        .map_err(|e| ApiError::bad_request("not_a_websocket", format!("cannot upgrade: {e}")))?;
    let stream = actix_ws::MessageStream::new(body.into_inner());
    let stream = stream
        .max_frame_size(MAX_WIRE_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_WIRE_FRAME_BYTES);

    let capacity = config.sessions.outbound_queue.max(1);
    let conn = gw.hub().next_conn_id();
    let mut ctx: Context<SessionActor> = Context::new();
    // Deliveries beyond this are refused at once and dispatch pushes instead (design.md).
    ctx.set_mailbox_capacity(capacity);
    // In the hub before the login, so a delivery or kick right after it reaches this session.
    gw.hub().register(conn, ctx.address().recipient());

    let login = SessionEvent {
        user: p.identifier.clone(),
        platform: p.platform,
        device: p.device.clone(),
        action: SessionAction::Login,
        unread: None,
    };
    let (res, ticket) = gw.session_event(&login, Some(conn));
    let result = match res {
        Ok(r) => r,
        Err(e) => {
            gw.hub().unregister(conn);
            return Err(e.into());
        }
    };
    // The handshake completes only once the login is on disk.
    if let Some(t) = ticket {
        if let Err(e) = t.wait().await {
            gw.hub().unregister(conn);
            let undo = SessionEvent {
                action: SessionAction::Disconnect,
                ..login
            };
            let _ = gw.session_event(&undo, Some(conn));
            return Err(crate::gateway::GatewayError::from(e).into());
        }
    }
    let client_ip = req.peer_addr().map(|a| a.ip().to_string());
    gw.notify_state_change(StateChange::now(
        p.identifier.clone(),
        p.platform.as_str(),
        StateAction::Login {
            kicked: result
                .kicked
                .iter()
                .map(|k| k.platform.to_owned())
                .collect(),
        },
        client_ip.clone(),
    ));

    let who = SessionIdentity {
        user: p.identifier,
        platform: p.platform,
        device: p.device,
        client_ip,
    };
    let (out, out_body) = OutboundQueue::new(capacity, config.sessions.max_outbound_bytes);
    let response = HttpResponse::from(handshake.body(out_body)).map_into_boxed_body();
    ctx.add_stream(stream);
    ctx.run(SessionActor::new(gw, conn, who, out));
    Ok(response)
}
