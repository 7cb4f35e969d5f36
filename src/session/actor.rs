//! `SessionActor`: one actix actor per live WebSocket connection. It reads the client's frames
//! (its stream), receives the gateway's commands (its mailbox: deliveries and kicks), and turns
//! both into calls on the one state machine of the gateway. It never waits on the socket: writes
//! go to the bounded [`OutboundQueue`].
//!
//! How a session ends decides the device's state (spec/tim-offline-push.md §3.3, §5):
//! close or loss without `logout` and heartbeat timeout → `PushOnline`; `logout` and a kick →
//! `Offline`. Messages delivered here but not acked by then go to the push path of the device, so
//! that a message is neither lost between the two paths nor shown twice once acked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, ProtocolError};

use crate::domain::message::Message;
use crate::domain::Platform;
use crate::gateway::{Gateway, GatewayError, SessionAction, SessionEvent};
use crate::push::Outcome;
use crate::registry::ConnId;
use crate::session::frame::{self, ClientFrame, Encoding, ServerFrame};
use crate::session::outbound::{Outbound, OutboundQueue, QueueError};
use crate::session::webhook::{StateAction, StateChange};
use crate::session::SessionCommand;
use crate::store::CommitTicket;

/// After a session has ended, the actor lives this much longer so that deliveries already in
/// its mailbox (or handed to it just before it left the hub) reach the push path instead of
/// being dropped with the mailbox.
const LINGER: Duration = Duration::from_millis(200);

/// Messages sent on one connection and not yet acked before the client counts as one that reads
/// but does not ack, and is disconnected. Entries are shared `Arc`s, so this bounds bookkeeping,
/// not copies; it is far above what a reading client has in flight.
pub const MAX_UNACKED: usize = 1024;

/// Who the connection is; fixed at the upgrade.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    pub user: String,
    pub platform: Platform,
    pub device: String,
    /// The peer's address, for the webhook's `ClientIP`.
    pub client_ip: Option<String>,
}

/// Why a session ended; the label of `pushgate_ws_disconnects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client closed, or the connection was lost.
    LinkClose,
    /// No frame (nor pong) within the heartbeat timeout.
    Timeout,
    /// The outbound queue was full: the client does not read.
    SlowReader,
    /// More messages unacked than the queue holds: the client reads but does not ack.
    AckBacklog,
    /// The WebSocket protocol was violated (e.g. a frame over the size limit).
    ProtocolError,
    Logout,
    Kicked,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::LinkClose => "link_close",
            EndReason::Timeout => "heartbeat_timeout",
            EndReason::SlowReader => "slow_reader",
            EndReason::AckBacklog => "ack_backlog",
            EndReason::ProtocolError => "protocol_error",
            EndReason::Logout => "logout",
            EndReason::Kicked => "kicked",
        }
    }

    /// The session ended without the client logging out and without another login taking
    /// its place: the device stays logged in for push (`PushOnline`).
    fn is_disconnect(self) -> bool {
        !matches!(self, EndReason::Logout | EndReason::Kicked)
    }
}

/// A `message` frame sent and not yet acked.
struct Pending {
    msg: Arc<Message>,
    /// The device was in the background when it arrived, so dispatch also pushed it.
    pushed: bool,
}

pub struct SessionActor {
    gateway: Arc<Gateway>,
    conn: ConnId,
    who: SessionIdentity,
    out: OutboundQueue,
    /// Answers go in the encoding of the client's last frame (JSON until it sends binary).
    encoding: Encoding,
    /// Last time anything arrived from the client; the heartbeat timeout counts from here.
    /// Frames only overwrite it: the timer armed in [`Self::arm_heartbeat`] reads it when it
    /// fires, so activity costs no timer work.
    last_seen: Instant,
    /// When the last server ping was queued; the next one is due a ping interval later.
    last_ping: Instant,
    /// The client said `background` (and not `foreground` since).
    background: bool,
    /// Sent `message` frames awaiting their ack, by id.
    pending: BTreeMap<u64, Pending>,
    /// Set once the session has ended; from then on deliveries go to the push path.
    ended: Option<EndReason>,
}

impl SessionActor {
    pub fn new(
        gateway: Arc<Gateway>,
        conn: ConnId,
        who: SessionIdentity,
        out: OutboundQueue,
    ) -> Self {
        let now = Instant::now();
        SessionActor {
            gateway,
            conn,
            who,
            out,
            encoding: Encoding::Json,
            last_seen: now,
            last_ping: now,
            background: false,
            pending: BTreeMap::new(),
            ended: None,
        }
    }

    fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs(self.gateway.config.sessions.heartbeat_timeout_secs)
    }

    fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.gateway.config.sessions.ping_interval_secs.max(1))
    }

    fn event(&self, action: SessionAction, unread: Option<u32>) -> SessionEvent {
        SessionEvent {
            user: self.who.user.clone(),
            platform: self.who.platform,
            device: self.who.device.clone(),
            action,
            unread,
        }
    }

    fn webhook(&self, action: StateAction) {
        self.gateway.notify_state_change(StateChange::now(
            self.who.user.clone(),
            self.who.platform.as_str(),
            action,
            self.who.client_ip.clone(),
        ));
    }

    /// Queues a frame; a full queue ends the session (the client does not read).
    fn send(&mut self, f: &ServerFrame, ctx: &mut Context<Self>) -> bool {
        let name = server_frame_type(f);
        match self
            .out
            .push(Outbound::Frame(frame::encode(f, self.encoding)))
        {
            Ok(()) => {
                self.gateway
                    .metrics()
                    .ws_frames
                    .with_label_values(&["out", name])
                    .inc();
                true
            }
            Err(QueueError::Full) => {
                self.end(EndReason::SlowReader, ctx);
                false
            }
            Err(QueueError::Gone) => {
                self.end(EndReason::LinkClose, ctx);
                false
            }
        }
    }

    fn send_error(&mut self, code: &str, message: String, ctx: &mut Context<Self>) {
        self.send(
            &ServerFrame::Error {
                code: code.to_owned(),
                message,
            },
            ctx,
        );
    }

    fn send_gateway_error(&mut self, e: &GatewayError, ctx: &mut Context<Self>) {
        let message = match e {
            GatewayError::Invalid {
                tim_code: Some(c), ..
            }
            | GatewayError::Conflict {
                tim_code: Some(c), ..
            } => format!("{e} (TIM error {c})"),
            _ => e.to_string(),
        };
        self.send_error(e.code().as_str(), message, ctx);
    }

    /// Waits for a durable write before answering `ok` for `frame`; later frames and commands
    /// wait too, so answers keep the order of requests.
    fn confirm_after(
        &mut self,
        ticket: CommitTicket,
        for_frame: ClientFrame,
        ctx: &mut Context<Self>,
    ) {
        ctx.wait(
            async move { ticket.wait().await }.into_actor(self).map(
                move |res, act, ctx| match res {
                    Ok(()) => {
                        act.send(&ServerFrame::ok_for(&for_frame), ctx);
                    }
                    Err(e) => {
                        let e = GatewayError::from(e);
                        act.send_gateway_error(&e, ctx);
                    }
                },
            ),
        );
    }

    fn on_frame(&mut self, f: ClientFrame, ctx: &mut Context<Self>) {
        self.gateway
            .metrics()
            .ws_frames
            .with_label_values(&["in", f.type_name()])
            .inc();
        match f {
            ClientFrame::Ping => {
                self.send(&ServerFrame::Pong, ctx);
            }
            ClientFrame::Ack { id } => {
                if self.pending.remove(&id).is_some() {
                    self.gateway
                        .metrics()
                        .online_deliveries
                        .with_label_values(&["acked"])
                        .inc();
                } else {
                    self.send_error(
                        "unknown_message",
                        format!("no unacked message with id {id} on this connection"),
                        ctx,
                    );
                }
            }
            ClientFrame::Background { unread } => {
                self.lifecycle(SessionAction::Background, Some(unread), &f, ctx)
            }
            ClientFrame::Foreground => self.lifecycle(SessionAction::Foreground, None, &f, ctx),
            ClientFrame::Logout => {
                let (res, ticket) = self
                    .gateway
                    .session_event(&self.event(SessionAction::Logout, None), Some(self.conn));
                match res {
                    Ok(_) => {
                        self.webhook(StateAction::Logout);
                        match ticket {
                            Some(t) => {
                                ctx.wait(async move { t.wait().await }.into_actor(self).map(
                                    |res, act, ctx| {
                                        match res {
                                            Ok(()) => {
                                                act.send(
                                                    &ServerFrame::ok_for(&ClientFrame::Logout),
                                                    ctx,
                                                );
                                            }
                                            Err(e) => {
                                                act.send_gateway_error(&GatewayError::from(e), ctx)
                                            }
                                        }
                                        act.end(EndReason::Logout, ctx);
                                    },
                                ));
                            }
                            None => {
                                self.send(&ServerFrame::ok_for(&ClientFrame::Logout), ctx);
                                self.end(EndReason::Logout, ctx);
                            }
                        }
                    }
                    Err(e) => self.send_gateway_error(&e, ctx),
                }
            }
            ClientFrame::SetPushToken {
                certificate_id,
                token,
            } => {
                if token.is_empty() {
                    // TIM: an empty push config turns offline push off for this device (§3.1).
                    let gw = self.gateway.clone();
                    let (user, device) = (self.who.user.clone(), self.who.device.clone());
                    ctx.wait(
                        async move { gw.clear_token(&user, &device).await }
                            .into_actor(self)
                            .map(move |res, act, ctx| match res {
                                Ok(_) => {
                                    act.send(
                                        &ServerFrame::Ok {
                                            for_type: Some("set_push_token".into()),
                                        },
                                        ctx,
                                    );
                                }
                                Err(e) => act.send_gateway_error(&e, ctx),
                            }),
                    );
                    return;
                }
                match self.gateway.report_token_now(
                    &self.who.user,
                    &self.who.device,
                    certificate_id,
                    &token,
                ) {
                    Ok(ticket) => {
                        let f = ClientFrame::SetPushToken {
                            certificate_id,
                            token,
                        };
                        self.confirm_after(ticket, f, ctx)
                    }
                    Err(e) => self.send_gateway_error(&e, ctx),
                }
            }
        }
    }

    fn lifecycle(
        &mut self,
        action: SessionAction,
        unread: Option<u32>,
        f: &ClientFrame,
        ctx: &mut Context<Self>,
    ) {
        let (res, ticket) = self
            .gateway
            .session_event(&self.event(action, unread), Some(self.conn));
        match res {
            Ok(_) => {
                self.background = action == SessionAction::Background;
                match ticket {
                    Some(t) => self.confirm_after(t, f.clone(), ctx),
                    None => {
                        self.send(&ServerFrame::ok_for(f), ctx);
                    }
                }
            }
            Err(e) => self.send_gateway_error(&e, ctx),
        }
    }

    fn deliver(&mut self, msg: Arc<Message>, ctx: &mut Context<Self>) {
        if self.ended.is_some() {
            self.fall_back(msg, false);
            return;
        }
        let id = msg.id;
        let f = ServerFrame::Message {
            id,
            from: msg.from.clone(),
            text: msg.text.clone(),
            title: msg.title.clone(),
            desc: msg.desc.clone(),
            ext: msg.ext.clone(),
        };
        // Recorded first, so that ending the session below hands it to the push path.
        self.pending.insert(
            id,
            Pending {
                msg,
                pushed: self.background,
            },
        );
        if self.pending.len() > MAX_UNACKED {
            self.end(EndReason::AckBacklog, ctx);
            return;
        }
        self.send(&f, ctx);
    }

    /// Hands an unacked message to the push path of this device, now that the connection is
    /// gone. Counted in `pushgate_online_deliveries_total`.
    fn fall_back(&self, msg: Arc<Message>, already_pushed: bool) {
        let gw = &self.gateway;
        let result = if already_pushed {
            "fell_back_to_push"
        } else if let Some(conn) = self.newer_connection() {
            // The same device reconnected meanwhile: its new connection takes the message.
            match gw.hub().send(conn, SessionCommand::Deliver(msg.clone())) {
                Ok(()) => "redelivered",
                Err(_) => push_result(
                    gw.push_fallback(&self.who.user, &self.who.device, &msg)
                        .outcome,
                ),
            }
        } else {
            push_result(
                gw.push_fallback(&self.who.user, &self.who.device, &msg)
                    .outcome,
            )
        };
        gw.metrics()
            .online_deliveries
            .with_label_values(&[result])
            .inc();
    }

    /// The live connection of this device on this gateway, when it is not this one.
    fn newer_connection(&self) -> Option<ConnId> {
        self.gateway
            .live_connection(&self.who.user, &self.who.device)
            .filter(|c| *c != self.conn)
    }

    /// Ends the session once: leaves the hub, applies the state change that `reason` means,
    /// sends the webhook, hands unacked messages to the push path, closes the socket.
    pub fn end(&mut self, reason: EndReason, ctx: &mut Context<Self>) {
        self.end_with(reason, None, ctx);
    }

    fn end_with(&mut self, reason: EndReason, close: Option<CloseReason>, ctx: &mut Context<Self>) {
        if self.ended.is_some() {
            return;
        }
        self.ended = Some(reason);
        let gw = self.gateway.clone();
        gw.hub().unregister(self.conn);
        gw.metrics()
            .ws_disconnects
            .with_label_values(&[reason.as_str()])
            .inc();
        if reason.is_disconnect() {
            let (res, ticket) = gw.session_event(
                &self.event(SessionAction::Disconnect, None),
                Some(self.conn),
            );
            match res {
                Ok(_) => self.webhook(if reason == EndReason::Timeout {
                    StateAction::DisconnectTimeout
                } else {
                    StateAction::DisconnectLinkClose
                }),
                // A newer connection (or an event from the IM cluster) already replaced this
                // one: no state change and, as with Tencent, no Disconnect callback.
                Err(e) => {
                    tracing::debug!(error = %e, "disconnect of a replaced connection ignored")
                }
            }
            if let Some(t) = ticket {
                actix_rt::spawn(async move {
                    if let Err(e) = t.wait().await {
                        tracing::error!(error = %e, "persisting a disconnect failed");
                    }
                });
            }
        }
        for (_, p) in std::mem::take(&mut self.pending) {
            self.fall_back(p.msg, p.pushed);
        }
        let close = close.or(match reason {
            EndReason::LinkClose => None,
            EndReason::Logout => Some(close_reason(CloseCode::Normal, "logout")),
            EndReason::Kicked => Some(close_reason(CloseCode::Policy, "kicked")),
            EndReason::Timeout => Some(close_reason(CloseCode::Away, "heartbeat_timeout")),
            EndReason::SlowReader => Some(close_reason(
                CloseCode::Policy,
                "slow_reader: outbound queue full",
            )),
            EndReason::AckBacklog => Some(close_reason(
                CloseCode::Policy,
                "ack_backlog: too many unacked messages",
            )),
            EndReason::ProtocolError => Some(close_reason(CloseCode::Protocol, "protocol_error")),
        });
        match reason {
            // The client is not reading: an orderly close would wait behind the backlog.
            EndReason::SlowReader => self.out.abort(),
            EndReason::LinkClose => self.out.close(None),
            _ => self.out.close(close),
        }
        ctx.run_later(LINGER, |_, ctx| ctx.stop());
    }

    /// Arms the one heartbeat timer of this connection for the next event due: the next ping or
    /// the timeout, whichever comes first. An idle connection thus wakes once per ping interval
    /// (120 s by default) instead of on a fixed short tick; frames in between only move
    /// `last_seen`, and a timer that finds the client was heard from re-arms for the new
    /// deadline. The timer is an entry in the runtime's own timing wheel, so arming it is
    /// cheap; what costs is waking the actor, and the ping needs that wake-up anyway.
    fn arm_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let due = heartbeat_due(
            self.last_seen,
            self.heartbeat_timeout(),
            self.last_ping,
            self.ping_interval(),
        );
        // At least a millisecond: the timer's resolution, so that a deadline a few nanoseconds
        // away does not spin.
        let wait = due
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        ctx.run_later(wait, |act, ctx| act.heartbeat(ctx));
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        if self.ended.is_some() {
            return;
        }
        let now = Instant::now();
        if now >= self.last_seen + self.heartbeat_timeout() {
            self.end(EndReason::Timeout, ctx);
            return;
        }
        if now >= self.last_ping + self.ping_interval() {
            self.last_ping = now;
            if self.out.push(Outbound::Ping) == Err(QueueError::Full) {
                self.end(EndReason::SlowReader, ctx);
                return;
            }
        }
        self.arm_heartbeat(ctx);
    }
}

/// When the heartbeat timer must next fire: the timeout (counted from the last frame) or the
/// next ping, whichever is earlier.
fn heartbeat_due(
    last_seen: Instant,
    timeout: Duration,
    last_ping: Instant,
    ping_interval: Duration,
) -> Instant {
    (last_seen + timeout).min(last_ping + ping_interval)
}

fn push_result(o: Outcome) -> &'static str {
    match o {
        Outcome::PushQueued => "fell_back_to_push",
        Outcome::Online | Outcome::Skipped => "dropped",
    }
}

fn close_reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

fn server_frame_type(f: &ServerFrame) -> &'static str {
    match f {
        ServerFrame::Message { .. } => "message",
        ServerFrame::Kicked { .. } => "kicked",
        ServerFrame::Pong => "pong",
        ServerFrame::Error { .. } => "error",
        ServerFrame::Ok { .. } => "ok",
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.arm_heartbeat(ctx);
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        // Stopped without a reason of its own (the arbiter is going away): a lost link.
        self.end(EndReason::LinkClose, ctx);
        Running::Stop
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for SessionActor {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        if self.ended.is_some() {
            return;
        }
        self.last_seen = Instant::now();
        let decoded = match item {
            Ok(AggregatedMessage::Text(s)) => {
                self.encoding = Encoding::Json;
                frame::decode_text(&s)
            }
            Ok(AggregatedMessage::Binary(b)) => {
                self.encoding = Encoding::MsgPack;
                frame::decode_binary(&b)
            }
            Ok(AggregatedMessage::Ping(p)) => {
                if self.out.push(Outbound::Pong(p)) == Err(QueueError::Full) {
                    self.end(EndReason::SlowReader, ctx);
                }
                return;
            }
            Ok(AggregatedMessage::Pong(_)) => return,
            Ok(AggregatedMessage::Close(_)) => {
                self.end(EndReason::LinkClose, ctx);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "websocket protocol error");
                self.gateway
                    .metrics()
                    .ws_frames
                    .with_label_values(&["in", "invalid"])
                    .inc();
                let reason = match e {
                    ProtocolError::Overflow => close_reason(
                        CloseCode::Size,
                        "frame_too_large: the frame exceeds the size limit",
                    ),
                    other => close_reason(CloseCode::Protocol, &format!("protocol_error: {other}")),
                };
                // The stream cannot continue past a protocol error; say why, then end.
                self.end_with(EndReason::ProtocolError, Some(reason), ctx);
                return;
            }
        };
        match decoded {
            Ok(f) => self.on_frame(f, ctx),
            Err(e) => {
                self.gateway
                    .metrics()
                    .ws_frames
                    .with_label_values(&["in", "invalid"])
                    .inc();
                self.send(&ServerFrame::from(&e), ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.end(EndReason::LinkClose, ctx);
    }
}

impl Handler<SessionCommand> for SessionActor {
    type Result = ();

    fn handle(&mut self, cmd: SessionCommand, ctx: &mut Context<Self>) {
        match cmd {
            SessionCommand::Deliver(msg) => self.deliver(msg, ctx),
            SessionCommand::Kick { reason } => {
                if self.ended.is_some() {
                    return;
                }
                self.send(&ServerFrame::Kicked { reason }, ctx);
                self.end(EndReason::Kicked, ctx);
            }
        }
    }
}
