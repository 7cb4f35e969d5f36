//! `openim/sendmsg` and `openim/batchsendmsg` (spec/tim-offline-push.md §1.2, §1.3): the TIM
//! body becomes a `SendRequest` and goes down the same dispatch path as `/v1/messages`.

use super::{tim_error, Reply};
use crate::domain::now_secs;
use crate::domain::tim_dedupe::FirstSend;
use crate::domain::tim_msg::{
    code, parse_to_account, parse_to_accounts, valid_account, TimError, TimMessage,
    MAX_MESSAGE_BYTES,
};
use crate::gateway::{Gateway, SendRequest};
use crate::push::Message;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// The gateway's request for a TIM message to `to`.
fn send_request(msg: &TimMessage, from: String, to: Vec<String>) -> SendRequest {
    let plan = msg.push_plan();
    SendRequest {
        to,
        from,
        text: plan.text,
        title: plan.title,
        desc: plan.desc,
        ext: plan.ext,
        channel_id: plan.channel_id,
        global: plan.global,
        push_disabled: plan.push_disabled,
        online_only: plan.online_only,
        conversation: None,
        nothing_to_show: plan.nothing_to_show,
        detail: false,
    }
}

/// `MsgKey`: `{MsgRandom}_{message id}_{MsgTime}`, at most 42 characters (Tencent: ≤ 50).
fn msg_key(random: u32, m: &Message, msg_time: u64) -> String {
    format!("{random}_{}_{msg_time}", m.id)
}

/// Whether the registry has ever seen `user` (no allocation; same answer as
/// `registry.devices(user).is_empty()` negated).
fn known(gw: &Gateway, user: &str) -> bool {
    valid_account(user) && gw.registry.route_with(user, now_secs(), |_, _| {}) > 0
}

fn accepted(first: &FirstSend) -> Reply {
    Reply::ok()
        .with("MsgTime", first.msg_time)
        .with("MsgKey", first.msg_key.clone())
}

/// One-to-one. An account the gateway has never seen answers 90012 ("To_Account not
/// registered", §1.2); a duplicate within 120 s answers the first send's MsgTime and MsgKey and
/// is not routed again.
pub fn single(gw: &Gateway, admin: &str, body: &Map<String, Value>) -> Result<Reply, TimError> {
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
    gw.check_send(&req).map_err(tim_error)?;
    let m = gw.build_message(&req);
    let msg_time = now_secs();
    let first = FirstSend {
        msg_time,
        msg_key: msg_key(msg.random, &m, msg_time),
    };
    let to = &req.to[0];
    if let Err(prior) = gw
        .tim_dedupe
        .admit(msg.dedupe_key(&req.from, to), Instant::now(), &first)
    {
        return Ok(accepted(&prior));
    }
    let r = gw.dispatch().recipient(to, &m);
    tracing::debug!(outcome = r.outcome.as_str(), "v4 sendmsg routed");
    Ok(accepted(&first))
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
pub fn batch(
    gw: &Gateway,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<Reply, TimError> {
    batch_with_stats(gw, admin, body, body_len).map(|(r, _)| r)
}

pub fn batch_with_stats(
    gw: &Gateway,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<(Reply, BatchStats), TimError> {
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
        return Ok((r, stats));
    }
    let req = send_request(&msg, from, targets);
    gw.check_send(&req).map_err(tim_error)?;
    let m: Arc<Message> = gw.build_message(&req);
    let msg_time = now_secs();
    let first = FirstSend {
        msg_time,
        msg_key: msg_key(msg.random, &m, msg_time),
    };
    let d = gw.dispatch();
    let now = Instant::now();
    for u in &req.to {
        // Per recipient: a retried batch reaches only those the first attempt missed.
        if gw
            .tim_dedupe
            .admit(msg.dedupe_key(&req.from, u), now, &first)
            .is_err()
        {
            stats.duplicates += 1;
            continue;
        }
        d.recipient(u, &m);
        stats.routed += 1;
    }
    let mut r = Reply::ok()
        .with("MsgTime", first.msg_time)
        .with("MsgKey", first.msg_key);
    if !errors.is_empty() {
        r = r.with("ErrorList", errors);
    }
    Ok((r, stats))
}
