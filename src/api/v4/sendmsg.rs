//! `openim/sendmsg` and `openim/batchsendmsg` (spec/tim-offline-push.md §1.2, §1.3): the TIM
//! body becomes a `SendRequest` and goes down the same dispatch path as `/v1/messages`.

use super::codes::{self as code, TimError};
use super::dedupe::{DedupeWindow, FirstSend, WINDOW};
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
        to: to
            .into_iter()
            .map(compact_str::CompactString::from)
            .collect(),
        from,
        ..msg.push_plan()
    }
}

/// `MsgKey`: `{MsgRandom}_{message id}_{MsgTime}`, at most 42 characters (Tencent: ≤ 50).
fn msg_key(random: u32, message_id: u64, msg_time: u64) -> String {
    format!("{random}_{message_id}_{msg_time}")
}

/// Whether the gateway has ever seen `user`.
fn known(gw: &Gateway, user: &str) -> bool {
    valid_account(user) && gw.has_user(user)
}

/// Which of `users` any node has seen (cluster mode: the shared directory, read concurrently).
async fn known_any(gw: &Gateway, users: &[String]) -> Result<Vec<bool>, TimError> {
    let devices = gw.users_devices_any(users).await.map_err(tim_error)?;
    Ok(users
        .iter()
        .zip(devices)
        .map(|(u, d)| valid_account(u) && !d.is_empty())
        .collect())
}

/// A first send as the shared window stores it: `{MsgTime} {MsgKey}` (a MsgKey has no space).
fn encode_first(f: &FirstSend) -> String {
    format!("{} {}", f.msg_time, f.msg_key)
}

fn decode_first(v: &str) -> Option<FirstSend> {
    let (t, k) = v.split_once(' ')?;
    Some(FirstSend {
        msg_time: t.parse().ok()?,
        msg_key: k.to_string(),
    })
}

/// What a send through the shared window did.
struct SharedSent {
    /// This send's answer.
    first: FirstSend,
    /// The first send's answer of the last recipient found in the window.
    prior: Option<FirstSend>,
    routed: usize,
    duplicates: usize,
}

/// Cluster mode: the duplicate window is shared by every node (one Redis key per recipient
/// with the window as its TTL), so a retry through another node is still a duplicate. The id is
/// reserved first because the answer (`MsgKey`) is stored with each key. When the send fails
/// after admission, the keys it recorded are forgotten, so the retry is not taken for a
/// duplicate.
async fn send_shared(
    gw: &Gateway,
    msg: &TimMessage,
    req: SendRequest,
) -> Result<SharedSent, TimError> {
    let Some(remote) = gw.remote() else {
        return Err(TimError::new(code::INTERNAL, "no shared directory"));
    };
    gw.check_send(&req).map_err(tim_error)?;
    let id = remote.next_message_id().await.map_err(tim_error)?;
    let msg_time = now_secs();
    let first = FirstSend {
        msg_time,
        msg_key: msg_key(msg.random, id, msg_time),
    };
    let keys: Vec<u64> = req
        .to
        .iter()
        .map(|to| msg.dedupe_key(&req.from, to))
        .collect();
    let window_ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
    let verdicts = remote
        .dedupe_admit(&keys, &encode_first(&first), window_ms)
        .await
        .map_err(tim_error)?;
    let mut admitted = Vec::with_capacity(req.to.len());
    let mut admitted_keys = Vec::with_capacity(req.to.len());
    let mut prior = None;
    for ((to, key), verdict) in req.to.iter().zip(&keys).zip(verdicts) {
        match verdict {
            None => {
                admitted.push(to.clone());
                admitted_keys.push(*key);
            }
            // A value that does not parse came from elsewhere: treat the key as taken.
            Some(v) => prior = decode_first(&v).or(prior),
        }
    }
    let duplicates = req.to.len() - admitted.len();
    let routed = admitted.len();
    if !admitted.is_empty() {
        let req = SendRequest {
            to: admitted,
            ..req
        };
        if let Err(e) = gw.send_remote(&req, id).await {
            remote.dedupe_forget(&admitted_keys).await;
            return Err(tim_error(e));
        }
    }
    Ok(SharedSent {
        first,
        prior,
        routed,
        duplicates,
    })
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
            msg_key: msg_key(self.msg.random, m.id, self.msg_time),
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
    if gw.remote().is_some() {
        if !known_any(gw, std::slice::from_ref(&to)).await?[0] {
            return Err(TimError::new(
                code::TO_ACCOUNT_NOT_REGISTERED,
                format!("To_Account {to} is not registered"),
            ));
        }
        let sent = send_shared(gw, &msg, send_request(&msg, from, vec![to])).await?;
        return Ok(accepted(&sent.prior.unwrap_or(sent.first)));
    }
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
    if gw.remote().is_some() {
        return batch_shared(gw, admin, body, body_len).await;
    }
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

/// A batch's recipients and message, checked: the list, then the message without the list.
fn parse_batch(
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<(Vec<String>, TimMessage), TimError> {
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
    Ok((to, TimMessage::parse(body)?))
}

/// Splits recipients into the known ones and the `ErrorList` entries of the others.
fn split_known(to: Vec<String>, known: impl Fn(usize, &str) -> bool) -> (Vec<String>, Vec<Value>) {
    let mut errors = Vec::new();
    let mut targets = Vec::with_capacity(to.len());
    for (i, u) in to.into_iter().enumerate() {
        if known(i, &u) {
            targets.push(u);
        } else {
            errors.push(json!({"To_Account": u, "ErrorCode": code::ACCOUNT_NOT_FOUND}));
        }
    }
    (targets, errors)
}

/// The answer when no recipient is known: FAIL 90012 with the list.
fn none_registered(errors: Vec<Value>) -> Reply {
    Reply::from(TimError::new(
        code::TO_ACCOUNT_NOT_REGISTERED,
        "no To_Account is registered",
    ))
    .with("ErrorList", errors)
}

/// `batch` in cluster mode: known accounts and the duplicate window from Redis.
async fn batch_shared(
    gw: &Gateway,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<Reply, TimError> {
    let (to, msg) = parse_batch(body, body_len)?;
    let from = msg.from.clone().unwrap_or_else(|| admin.to_string());
    let known = known_any(gw, &to).await?;
    let (targets, errors) = split_known(to, |i, _| known[i]);
    if targets.is_empty() {
        return Ok(none_registered(errors));
    }
    let sent = send_shared(gw, &msg, send_request(&msg, from, targets)).await?;
    tracing::debug!(
        routed = sent.routed,
        duplicates = sent.duplicates,
        "v4 batchsendmsg routed"
    );
    let mut r = Reply::ok()
        .with("MsgTime", sent.first.msg_time)
        .with("MsgKey", sent.first.msg_key);
    if !errors.is_empty() {
        r = r.with("ErrorList", errors);
    }
    Ok(r)
}

/// The batch's reply and figures, and what was sent (to wait for its journal), if anything.
fn batch_sent(
    gw: &Gateway,
    window: &DedupeWindow,
    admin: &str,
    body: &Map<String, Value>,
    body_len: usize,
) -> Result<(Reply, BatchStats, Option<crate::gateway::Sent>), TimError> {
    let (to, msg) = parse_batch(body, body_len)?;
    let from = msg.from.clone().unwrap_or_else(|| admin.to_string());
    let mut stats = BatchStats::default();
    let (targets, errors) = split_known(to, |_, u| known(gw, u));
    stats.unknown = errors.len();
    if targets.is_empty() {
        return Ok((none_registered(errors), stats, None));
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
