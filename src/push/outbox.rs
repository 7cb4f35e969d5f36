//! The journal of accepted notifications: each notification a sender takes is written to the
//! store (in the group commit of the request that accepted it) and removed when it reaches a
//! final outcome, so a start sends again exactly what the last process held unfinished,
//! whether it stopped with SIGTERM or was killed. Older versions kept an outbox written at
//! shutdown only; its entries are read (and sent) the same way.

use crate::domain::message::{Message, PushContent};
use crate::domain::CertificateId;
use crate::push::PushJob;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// One unsent notification as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub cert: CertificateId,
    pub token: String,
    pub user: String,
    pub device: String,
    pub message_id: u64,
    pub from: String,
    pub text: String,
    pub title: Option<String>,
    pub desc: Option<String>,
    pub ext: Option<String>,
    pub content: PushContent,
}

impl OutboxEntry {
    /// The job's notification; `None` for a job without one (never queued by dispatch).
    pub fn of(job: &PushJob) -> Option<OutboxEntry> {
        let content = job.message.push.as_ref().ok()?.clone();
        let m = &job.message;
        Some(OutboxEntry {
            cert: job.cert,
            token: job.token.to_string(),
            user: job.user.to_string(),
            device: job.device.to_string(),
            message_id: m.id,
            from: m.from.clone(),
            text: m.text.clone(),
            title: m.title.clone(),
            desc: m.desc.clone(),
            ext: m.ext.clone(),
            content,
        })
    }

    /// The notification again, as a fresh job (its attempts start over).
    pub fn into_job(self) -> PushJob {
        PushJob {
            cert: self.cert,
            token: Arc::from(self.token.as_str()),
            user: self.user.into(),
            device: self.device.into(),
            message: Arc::new(Message {
                id: self.message_id,
                from: self.from,
                text: self.text,
                title: self.title,
                desc: self.desc,
                ext: self.ext,
                push: Ok(self.content),
                accepted_at: Instant::now(),
            }),
            attempt: 0,
        }
    }
}

/// The senders' shared view of a shutdown in progress.
#[derive(Default)]
pub struct Drain {
    /// Set when the shutdown starts: until then, send as usual (linger skipped); from then on,
    /// what a sender still holds stays in the journal for the next start.
    deadline: std::sync::OnceLock<Instant>,
    /// Notifications left unsent at the deadline (they stay journaled).
    held: std::sync::atomic::AtomicUsize,
}

impl Drain {
    pub fn start(&self, deadline: Instant) {
        let _ = self.deadline.set(deadline);
    }

    /// The deadline, once a shutdown has started.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    pub fn hold(&self, n: usize) {
        self.held.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The journal key of a notification: its message id, then its user and device. A message
/// reaches a device once (recipients are de-duplicated), so the key is unique, and it stays
/// the same when a start queues the notification again.
pub fn accepted_key(job: &PushJob) -> Box<[u8]> {
    let mut k = Vec::with_capacity(8 + job.user.len() + 1 + job.device.len());
    k.extend_from_slice(&job.message.id.to_be_bytes());
    k.extend_from_slice(job.user.as_bytes());
    k.push(0);
    k.extend_from_slice(job.device.as_bytes());
    k.into_boxed_slice()
}

/// The per-notification part of a journal entry (user and device are in the key).
#[derive(Serialize)]
struct JobPart<'a> {
    cert: CertificateId,
    token: &'a str,
}

#[derive(Deserialize)]
struct JobPartOwned {
    cert: CertificateId,
    token: String,
}

/// The message part of a journal entry, the same for every recipient of the message.
#[derive(Serialize)]
struct MessagePart<'a> {
    from: &'a str,
    text: &'a str,
    title: &'a Option<String>,
    desc: &'a Option<String>,
    ext: &'a Option<String>,
    content: &'a PushContent,
}

#[derive(Deserialize)]
struct MessagePartOwned {
    from: String,
    text: String,
    title: Option<String>,
    desc: Option<String>,
    ext: Option<String>,
    content: PushContent,
}

/// Encodes journal entries, each message once per commit group however many recipients it
/// has: an entry is the length of its job part (u32 BE), the job part, the message part
/// (both JSON).
#[derive(Default)]
pub struct MessageCache {
    /// Encoded message parts by the address of their message (alive for the whole group).
    encoded: HashMap<*const Message, Vec<u8>>,
}

impl MessageCache {
    /// The job's key and value; `None` for a job without a notification (never queued).
    pub fn encode(&mut self, job: &PushJob) -> Option<(Box<[u8]>, Vec<u8>)> {
        let m = &job.message;
        let content = m.push.as_ref().ok()?;
        let message = match self.encoded.entry(Arc::as_ptr(m)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                serde_json::to_vec(&MessagePart {
                    from: &m.from,
                    text: &m.text,
                    title: &m.title,
                    desc: &m.desc,
                    ext: &m.ext,
                    content,
                })
                .ok()?,
            ),
        };
        let part = serde_json::to_vec(&JobPart {
            cert: job.cert,
            token: &job.token,
        })
        .ok()?;
        let mut v = Vec::with_capacity(4 + part.len() + message.len());
        v.extend_from_slice(&(part.len() as u32).to_be_bytes());
        v.extend_from_slice(&part);
        v.extend_from_slice(message);
        Some((accepted_key(job), v))
    }
}

/// A journal entry back as the notification it was; the error says what is wrong with it.
pub fn decode_accepted(key: &[u8], value: &[u8]) -> Result<OutboxEntry, String> {
    let (id, rest) = key
        .split_first_chunk::<8>()
        .ok_or("the key is shorter than a message id")?;
    let sep = rest
        .iter()
        .position(|b| *b == 0)
        .ok_or("the key has no user/device separator")?;
    let user = std::str::from_utf8(&rest[..sep]).map_err(|e| e.to_string())?;
    let device = std::str::from_utf8(&rest[sep + 1..]).map_err(|e| e.to_string())?;
    let (len, value) = value
        .split_first_chunk::<4>()
        .ok_or("the value is shorter than its length prefix")?;
    let len = u32::from_be_bytes(*len) as usize;
    if value.len() < len {
        return Err("the job part is cut short".into());
    }
    let (part, message) = value.split_at(len);
    let part: JobPartOwned = serde_json::from_slice(part).map_err(|e| e.to_string())?;
    let m: MessagePartOwned = serde_json::from_slice(message).map_err(|e| e.to_string())?;
    Ok(OutboxEntry {
        cert: part.cert,
        token: part.token,
        user: user.to_string(),
        device: device.to_string(),
        message_id: u64::from_be_bytes(*id),
        from: m.from,
        text: m.text,
        title: m.title,
        desc: m.desc,
        ext: m.ext,
        content: m.content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(message: &Arc<Message>, user: &str, token: &str) -> PushJob {
        PushJob {
            cert: 1001,
            token: Arc::from(token),
            user: user.into(),
            device: "d1".into(),
            message: message.clone(),
            attempt: 3,
        }
    }

    #[test]
    fn a_journal_entry_reads_back_as_the_notification_it_was() {
        let message = Arc::new(Message {
            id: 0x0123_4567_89ab_cdef,
            from: "carol".into(),
            text: "晚上一起吃饭吗？\"🍜\"".into(),
            title: Some("Carol".into()),
            desc: None,
            ext: Some("{\"conv\":42}".into()),
            push: Ok(PushContent {
                title: "Carol".into(),
                desc: "晚上一起吃饭吗？".into(),
                ext: Some("{\"conv\":42}".into()),
                channel_id: Some("101556".into()),
                global: Default::default(),
                hw: Default::default(),
                conversation: "carol".into(),
                ovm: Default::default(),
            }),
            accepted_at: Instant::now(),
        });
        let mut cache = MessageCache::default();
        for (user, token) in [("alice", "tok\\en-1"), ("bob", "token-2")] {
            let j = job(&message, user, token);
            let (key, value) = cache.encode(&j).expect("a notification");
            assert_eq!(key, accepted_key(&j));
            let back = decode_accepted(&key, &value).expect("decodes");
            assert_eq!(Some(back.clone()), OutboxEntry::of(&j));
            // Queued again, it is the same notification under the same key (attempts anew).
            let again = back.into_job();
            assert_eq!(accepted_key(&again), key);
            assert_eq!(again.attempt, 0);
        }
        assert_eq!(cache.encoded.len(), 1, "the message is encoded once");
        assert!(decode_accepted(&[1, 2], b"").is_err());
        assert!(decode_accepted(b"12345678alice\0d1", b"\0\0\0\x09{}").is_err());
    }
}
