//! `openim/sendmsg` and `openim/batchsendmsg` (spec/tim-offline-push.md §1.2, §1.3): the TIM
//! body becomes a `SendRequest` and goes down the same dispatch path as `/v1/messages`.

use super::codes::{self as code, TimError};
use super::dedupe::{DedupeWindow, FirstSend};
use super::message::{
    parse_to_account, parse_to_accounts, valid_account, TimMessage, MAX_MESSAGE_BYTES,
};
use super::{tim_error, Reply};
use crate::domain::message::Message;
use crate::domain::now_secs;
use crate::gateway::{Gateway, SendRequest};
use serde_json::{json, Map, Value};
use std::time::Instant;

/// The gateway's request for a TIM message to `to`.
fn send_request(msg: &TimMessage, from: String, to: Vec<String>) -> SendRequest {
    SendRequest {
        to,
        from,
        ..msg.push_plan()
    }
}

/// `MsgKey`: `{MsgRandom}_{message id}_{MsgTime}`, at most 42 characters (Tencent: ≤ 50).
fn msg_key(random: u32, m: &Message, msg_time: u64) -> String {
    format!("{random}_{}_{msg_time}", m.id)
}

/// Whether the gateway has ever seen `user`.
fn known(gw: &Gateway, user: &str) -> bool {
    valid_account(user) && gw.has_user(user)
}

fn accepted(first: &FirstSend) -> Reply {
    Reply::ok()
        .with("MsgTime", first.msg_time)
        .with("MsgKey", first.msg_key.clone())
}

/// The /v4 admission hook of the send pipeline: a recipient is routed unless the same message
/// (sender, recipient, MsgSeq, MsgRandom, content) went to it within the window. Remembers the
/// first send's answer (`MsgTime`, `MsgKey`) and the last duplicate's.
struct Dedupe<'a> {
    window: &'a DedupeWindow,
    msg: &'a TimMessage,
    msg_time: u64,
    now: Instant,
    first: Option<FirstSend>,
    prior: Option<FirstSend>,
}

impl<'a> Dedupe<'a> {
    fn new(window: &'a DedupeWindow, msg: &'a TimMessage) -> Self {
        Dedupe {
            window,
            msg,
            msg_time: now_secs(),
            now: Instant::now(),
            first: None,
            prior: None,
        }
    }

    /// This send's answer: `{MsgRandom}_{message id}_{MsgTime}`.
    fn first_send(&self, m: &Message) -> FirstSend {
        FirstSend {
            msg_time: self.msg_time,
            msg_key: msg_key(self.msg.random, m, self.msg_time),
        }
    }

    fn admit(&mut self, from: &str, to: &str, m: &Message) -> bool {
        // One key for the whole send, made when the first recipient is asked about.
        let first = match self.first.take() {
            Some(first) => first,
            None => self.first_send(m),
        };
        let verdict = self
            .window
            .admit(self.msg.dedupe_key(from, to), self.now, &first);
        self.first = Some(first);
        match verdict {
            Ok(()) => true,
            Err(prior) => {
                self.prior = Some(prior);
                false
            }
        }
    }
}

/// One-to-one. An account the gateway has never seen answers 90012 ("To_Account not
/// registered", §1.2); a duplicate within 120 s answers the first send's MsgTime and MsgKey and
/// is not routed again.
pub async fn single(
    gw: &Gateway,
    window: &DedupeWindow,
    admin: &str,
    body: &Map<String, Value>,
) -> Result<Reply, TimError> {
    let to = parse_to_account(body)?;
    let msg = TimMessage::parse(body)?;
    let from = msg.from.clone().unwrap_or_else(|| admin.to_string());
    if !known(gw, &to) {
        return Err(TimError::new(
            code::TO_ACCOUNT_NOT_REGISTERED,
            format!("To_Account {to} is not registered"),
        ));
    }
    let req = send_request(&msg, from, vec![to]);
    let mut dedupe = Dedupe::new(window, &msg);
    let mut sent = gw
        .send_with(&req, |to, m| dedupe.admit(&req.from, to, m))
        .map_err(tim_error)?;
    sent.durable().await.map_err(tim_error)?;
    if let Some(r) = sent.results.first() {
        tracing::debug!(outcome = r.outcome.as_str(), "v4 sendmsg routed");
    }
    let answer = match dedupe.prior {
        Some(prior) => prior,
        None => dedupe.first_send(&sent.message),
    };
    Ok(accepted(&answer))
}

/// What one batch did, for callers that look past the reply (the benchmark).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    pub routed: usize,
    pub duplicates: usize,
    pub unknown: usize,
}

/// Up to 500 recipients; unknown accounts go to `ErrorList` with 70107 and the rest are sent.
/// All unknown: FAIL 90012 with the list. Partial failure answers `ActionStatus: "OK"` — the
/// doc's sample shows `"SomeError"` but its field table only names OK/FAIL (§1.3, §9.5).
pub async fn batch(
    gw: &Gateway,
    window: &DedupeWindow,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<Reply, TimError> {
    let (reply, _, sent) = batch_sent(gw, window, admin, body, body_len)?;
    if let Some(mut sent) = sent {
        sent.durable().await.map_err(tim_error)?;
    }
    Ok(reply)
}

/// `batch` without waiting for the notifications' journal (the benchmark).
pub fn batch_with_stats(
    gw: &Gateway,
    window: &DedupeWindow,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<(Reply, BatchStats), TimError> {
    batch_sent(gw, window, admin, body, body_len).map(|(r, stats, _)| (r, stats))
}

/// The batch's reply and figures, and what was sent (to wait for its journal), if anything.
fn batch_sent(
    gw: &Gateway,
    window: &DedupeWindow,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<(Reply, BatchStats, Option<crate::gateway::Sent>), TimError> {
    let to = parse_to_accounts(body, code::TO_ACCOUNT_INVALID)?;
    // The message is the body without its recipients; 12 KB at most (§1.3).
    let list_len = body.get("To_Account").map_or(0, |v| v.to_string().len());
    let content = body_len.saturating_sub(list_len);
    if content > MAX_MESSAGE_BYTES {
        return Err(TimError::new(
            code::BODY_TOO_LARGE,
            format!("the message is {content} bytes; at most {MAX_MESSAGE_BYTES}"),
        ));
    }
    let msg = TimMessage::parse(body)?;
    let from = msg.from.clone().unwrap_or_else(|| admin.to_string());
    let mut stats = BatchStats::default();
    let mut errors = Vec::new();
    let mut targets = Vec::with_capacity(to.len());
    for u in to {
        if known(gw, &u) {
            targets.push(u);
        } else {
            errors.push(json!({"To_Account": u, "ErrorCode": code::ACCOUNT_NOT_FOUND}));
        }
    }
    stats.unknown = errors.len();
    if targets.is_empty() {
        let r = Reply::from(TimError::new(
            code::TO_ACCOUNT_NOT_REGISTERED,
            "no To_Account is registered",
        ))
        .with("ErrorList", errors);
        return Ok((r, stats, None));
    }
    let req = send_request(&msg, from, targets);
    // Per recipient: a retried batch reaches only those the first attempt missed.
    let mut dedupe = Dedupe::new(window, &msg);
    let sent = gw
        .send_with(&req, |to, m| dedupe.admit(&req.from, to, m))
        .map_err(tim_error)?;
    stats.routed = sent.results.len();
    stats.duplicates = sent.not_admitted;
    let first = dedupe.first_send(&sent.message);
    let mut r = Reply::ok()
        .with("MsgTime", first.msg_time)
        .with("MsgKey", first.msg_key);
    if !errors.is_empty() {
        r = r.with("ErrorList", errors);
    }
    Ok((r, stats, Some(sent)))
}
