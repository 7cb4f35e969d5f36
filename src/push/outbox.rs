//! The journal of accepted notifications: each notification a sender takes is written to the
//! store (in the group commit of the request that accepted it) and removed when it reaches a
//! final outcome, so a start sends again exactly what the last process held unfinished,
//! whether it stopped with SIGTERM or was killed. Older versions kept an outbox written at
//! shutdown only; its entries are read (and sent) the same way.

use crate::domain::message::{Message, PushContent};
use crate::domain::CertificateId;
use crate::push::PushJob;
use serde::{Deserialize, Serialize};
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
            journal: None,
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
    accepted_key_of(job.message.id, &job.user, &job.device)
}

/// The per-notification part of an older version's journal entry (user and device are in the
/// key); only the tests write one now.
#[cfg(test)]
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

/// A message's part of a journal record (JSON), the same in a share and in an older version's
/// one-record-each entry.
fn message_part(m: &Message, content: &PushContent) -> Option<Vec<u8>> {
    serde_json::to_vec(&MessagePart {
        from: &m.from,
        text: &m.text,
        title: &m.title,
        desc: &m.desc,
        ext: &m.ext,
        content,
    })
    .ok()
}

/// Encodes journal entries in the one-record-each format of earlier versions, each message
/// once per commit group however many recipients it has: an entry is the length of its job part
/// (u32 BE), the job part, the message part (both JSON). The store now writes shares
/// ([`encode_share`]); it still reads and removes these, and the tests write them with this.
#[cfg(test)]
#[derive(Default)]
pub struct MessageCache {
    /// Encoded message parts by the address of their message (alive for the whole group).
    encoded: std::collections::HashMap<*const Message, Vec<u8>>,
}

#[cfg(test)]
impl MessageCache {
    /// The job's key and value; `None` for a job without a notification (never queued).
    pub fn encode(&mut self, job: &PushJob) -> Option<(Box<[u8]>, Vec<u8>)> {
        let m = &job.message;
        let content = m.push.as_ref().ok()?;
        let message = match self.encoded.entry(Arc::as_ptr(m)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(message_part(m, content)?),
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

/// The journal key of the notification of message `id` to `user`'s `device` (as [`accepted_key`]).
pub fn accepted_key_of(id: u64, user: &str, device: &str) -> Box<[u8]> {
    let mut k = Vec::with_capacity(8 + user.len() + 1 + device.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(device.as_bytes());
    k.into_boxed_slice()
}

/// The format version of a share record (its first byte).
const SHARE_V1: u8 = 1;

/// Encodes the notifications of one message to one certificate as one journal record (a
/// share): version, message id, certificate, the message part once (JSON, length-prefixed),
/// then each notification's user, device and token (each u32 BE length + bytes), in index
/// order. `None` when the message has no notification (never queued by dispatch) or `jobs`
/// is empty. Every job must carry the same message and certificate.
pub fn encode_share(jobs: &[PushJob]) -> Option<Vec<u8>> {
    let first = jobs.first()?;
    let m = &first.message;
    let message = message_part(m, m.push.as_ref().ok()?)?;
    let per_job: usize = jobs
        .iter()
        .map(|j| 12 + j.user.len() + j.device.len() + j.token.len())
        .sum();
    let mut v = Vec::with_capacity(1 + 8 + 8 + 4 + message.len() + 4 + per_job);
    v.push(SHARE_V1);
    v.extend_from_slice(&m.id.to_be_bytes());
    v.extend_from_slice(&first.cert.to_be_bytes());
    v.extend_from_slice(&(message.len() as u32).to_be_bytes());
    v.extend_from_slice(&message);
    v.extend_from_slice(&(jobs.len() as u32).to_be_bytes());
    for j in jobs {
        for part in [j.user.as_bytes(), j.device.as_bytes(), j.token.as_bytes()] {
            v.extend_from_slice(&(part.len() as u32).to_be_bytes());
            v.extend_from_slice(part);
        }
    }
    Some(v)
}

/// A journaled notification: where it is journaled, and the notification.
pub type Journaled = (crate::store::JournalPlace, OutboxEntry);

/// A share record read back: its notifications in index order.
pub fn decode_share(value: &[u8]) -> Result<Vec<OutboxEntry>, String> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err(format!("the record is cut short in {what}"));
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Ok(a)
        }
        fn u32(&mut self, what: &str) -> Result<usize, String> {
            let b = self.take(4, what)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        }
        fn u64(&mut self, what: &str) -> Result<u64, String> {
            let mut a = [0u8; 8];
            a.copy_from_slice(self.take(8, what)?);
            Ok(u64::from_be_bytes(a))
        }
        fn text(&mut self, what: &str) -> Result<&'a str, String> {
            let n = self.u32(what)?;
            std::str::from_utf8(self.take(n, what)?).map_err(|e| format!("{what}: {e}"))
        }
    }
    let mut r = Reader(value);
    let version = r.take(1, "the version")?[0];
    if version != SHARE_V1 {
        return Err(format!("unknown share record version {version}"));
    }
    let message_id = r.u64("the message id")?;
    let cert = r.u64("the certificate")?;
    let n = r.u32("the message part")?;
    let m: MessagePartOwned =
        serde_json::from_slice(r.take(n, "the message part")?).map_err(|e| e.to_string())?;
    let count = r.u32("the count")?;
    // Each notification takes at least 12 bytes: a count beyond that is corrupt, not a reason
    // to reserve memory.
    if count > r.0.len() / 12 {
        return Err(format!("{count} notifications in {} bytes", r.0.len()));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let user = r.text("a user")?;
        let device = r.text("a device")?;
        let token = r.text("a token")?;
        out.push(OutboxEntry {
            cert,
            token: token.to_string(),
            user: user.to_string(),
            device: device.to_string(),
            message_id,
            from: m.from.clone(),
            text: m.text.clone(),
            title: m.title.clone(),
            desc: m.desc.clone(),
            ext: m.ext.clone(),
            content: m.content.clone(),
        });
    }
    if !r.0.is_empty() {
        return Err(format!("{} trailing bytes", r.0.len()));
    }
    Ok(out)
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
            journal: None,
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

        // The same notifications as one share record read back the same, in order.
        let jobs = [
            job(&message, "alice", "tok\\en-1"),
            job(&message, "bob", "token-2"),
        ];
        let record = encode_share(&jobs).expect("a notification");
        let back = decode_share(&record).expect("decodes");
        assert_eq!(back.len(), 2);
        for (entry, j) in back.iter().zip(&jobs) {
            assert_eq!(Some(entry.clone()), OutboxEntry::of(j));
        }
        for cut in [0, 1, 20, record.len() - 1] {
            assert!(decode_share(&record[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_accepted(&[1, 2], b"").is_err());
        assert!(decode_accepted(b"12345678alice\0d1", b"\0\0\0\x09{}").is_err());
    }
}
