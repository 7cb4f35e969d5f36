//! The outbox: notifications a shutdown could not send within its grace, kept in the store and
//! sent by the next start, so that nothing accepted is lost or left unlabelled by a restart.

use crate::domain::message::{Message, PushContent};
use crate::domain::CertificateId;
use crate::push::PushJob;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, OnceLock};
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
    /// what a sender still holds goes to `held`.
    deadline: OnceLock<Instant>,
    /// Notifications left unsent at the deadline, for the store's outbox.
    held: Mutex<Vec<OutboxEntry>>,
}

impl Drain {
    pub fn start(&self, deadline: Instant) {
        let _ = self.deadline.set(deadline);
    }

    /// The deadline, once a shutdown has started.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }

    pub fn hold(&self, entries: impl IntoIterator<Item = OutboxEntry>) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(entries);
    }

    pub fn take_held(&self) -> Vec<OutboxEntry> {
        std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
