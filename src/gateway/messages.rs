//! The one send pipeline: check → build → dispatch, shared by /v1 messages and /v4 sends.

use super::*;
use crate::domain::message::{
    MAX_CHANNEL_ID_CHARS, MAX_DESC_CHARS, MAX_EXT_CHARS, MAX_TEXT_BYTES, MAX_TITLE_CHARS,
};

/// A message to send, in the gateway's own terms (the /v1 body; /v4 translates into it).
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    /// The recipients (inline up to 24 bytes each: no allocation per name).
    pub to: Vec<CompactString>,
    pub from: String,
    pub text: String,
    pub title: Option<String>,
    pub desc: Option<String>,
    pub ext: Option<String>,
    pub channel_id: Option<String>,
    /// Huawei and Honor per-message fields (checked here, empty ones already dropped).
    pub hw: crate::domain::hw_push_fields::HwPushFields,
    /// OPPO, vivo and Meizu overrides of the certificate's classification.
    pub ovm: crate::domain::vendor_fields::OvmPushFields,
    /// FCM and APNs fields.
    pub global: crate::domain::global_push_fields::GlobalPushFields,
    /// 1 = no vendor notification (TIM `PushFlag`).
    pub push_disabled: bool,
    /// Deliver only to live connections (TIM `MsgLifeTime=0`).
    pub online_only: bool,
    /// Replacement key of the notification in the tray; the sender's id by default.
    pub conversation: Option<String>,
    /// The push text could not be built (e.g. a custom element without Desc).
    pub nothing_to_show: bool,
    /// Report each device's outcome in the results.
    pub detail: bool,
}

/// A message through the pipeline: its id and each routed recipient's result, in request order
/// (recipients the admission hook turned away are not in `results`).
#[derive(Debug)]
pub struct Sent {
    pub message: Arc<Message>,
    pub results: Vec<RecipientResult>,
    /// Recipients the admission hook turned away (e.g. /v4 duplicates).
    pub not_admitted: usize,
    /// Done when the notifications it queued are journaled ([`Sent::durable`]).
    journaled: crate::store::CommitTicket,
}

impl Sent {
    /// Waits until the notifications this message queued are on disk: answer `push_queued`
    /// only after it. A refusal by the disk is `store_unavailable` (the notifications are
    /// still sent if the process lives, so a retry may duplicate them).
    pub async fn durable(&mut self) -> Result<(), GatewayError> {
        std::mem::replace(&mut self.journaled, crate::store::CommitTicket::done())
            .wait()
            .await
            .map_err(GatewayError::from)
    }
}

impl Gateway {
    /// The one send pipeline: check → build → dispatch, for every surface. `admit` is asked per
    /// recipient, once the message is built and before it is routed; `false` leaves that
    /// recipient out (the /v4 duplicate window is such a hook). `/v1` admits everyone.
    pub fn send_with(
        &self,
        req: &SendRequest,
        mut admit: impl FnMut(&str, &Arc<Message>) -> bool,
    ) -> Result<Sent, GatewayError> {
        self.check_send(req)?;
        // The store refuses writes: no notification could be journaled, so nothing is sent
        // (a retry once it can write duplicates nothing).
        if let Some(fault) = self.store_fault() {
            return Err(GatewayError::StoreUnavailable {
                message: format!("{fault}: messages are refused until it can write; retry later"),
            });
        }
        let message = self.build_message(req);
        let mut d = self.dispatch();
        d.detail = req.detail;
        // Asked in request order, before any recipient is routed.
        let admitted: Vec<&str> = req
            .to
            .iter()
            .map(CompactString::as_str)
            .filter(|user| admit(user, &message))
            .collect();
        let not_admitted = req.to.len() - admitted.len();
        let results = d.recipients(&admitted, &message);
        let journaled = d.journaled();
        Ok(Sent {
            message,
            results,
            not_admitted,
            journaled,
        })
    }

    /// The pipeline with every recipient admitted, through the shared directory in cluster mode
    /// (where routing reads Redis, so it awaits).
    pub async fn send_any(&self, req: &SendRequest) -> Result<Sent, GatewayError> {
        let Some(remote) = self.remote() else {
            let mut sent = self.send(req)?;
            sent.durable().await?;
            return Ok(sent);
        };
        self.check_send(req)?;
        let id = remote.next_message_id().await?;
        self.send_remote(req, id).await
    }

    /// Cluster mode: the pipeline for a checked request whose id was reserved beforehand (the
    /// /v4 duplicate window needs the id before the recipients are admitted).
    pub async fn send_remote(&self, req: &SendRequest, id: u64) -> Result<Sent, GatewayError> {
        let Some(remote) = self.remote() else {
            return Err(GatewayError::Internal {
                message: "send_remote called without a shared directory".into(),
            });
        };
        let message = self.build_message_with_id(req, id);
        let results = remote.send(self, req, message.clone()).await?;
        let mut sent = Sent {
            message,
            results,
            not_admitted: 0,
            journaled: crate::store::CommitTicket::done(),
        };
        sent.durable().await?;
        Ok(sent)
    }

    /// The pipeline with every recipient admitted.
    pub fn send(&self, req: &SendRequest) -> Result<Sent, GatewayError> {
        self.send_with(req, |_, _| true)
    }

    /// Checks a send request; the error names the field.
    pub fn check_send(&self, req: &SendRequest) -> Result<(), GatewayError> {
        if req.to.is_empty() {
            return Err(GatewayError::invalid(
                ErrorCode::InvalidField,
                Some("to"),
                "to: at least one recipient is required",
            ));
        }
        let max = self.config.http.max_recipients;
        if req.to.len() > max {
            return Err(GatewayError::invalid(
                ErrorCode::TooManyRecipients,
                Some("to"),
                format!("to: {} recipients; at most {max} per request", req.to.len()),
            ));
        }
        for u in &req.to {
            check_id("to", u).map_err(id_error)?;
        }
        check_id("from", &req.from).map_err(id_error)?;
        if req.text.len() > MAX_TEXT_BYTES {
            return Err(GatewayError::invalid(
                ErrorCode::InvalidField,
                Some("text"),
                format!("text is {} bytes; at most {MAX_TEXT_BYTES}", req.text.len()),
            ));
        }
        for (field, v, max) in [
            ("offline_push.title", &req.title, MAX_TITLE_CHARS),
            ("offline_push.desc", &req.desc, MAX_DESC_CHARS),
            ("offline_push.ext", &req.ext, MAX_EXT_CHARS),
            (
                "offline_push.channel_id",
                &req.channel_id,
                MAX_CHANNEL_ID_CHARS,
            ),
        ] {
            if let Some(v) = v {
                if v.chars().count() > max {
                    return Err(GatewayError::invalid(
                        ErrorCode::InvalidField,
                        Some(field),
                        format!("{field} is longer than {max} characters"),
                    ));
                }
            }
        }
        req.hw.check().map_err(|e| {
            GatewayError::invalid(
                ErrorCode::InvalidField,
                Some(e.field.v1()),
                format!("{}: {}", e.field.v1(), e.message),
            )
        })?;
        req.ovm.check().map_err(field_error)?;
        req.global.check().map_err(field_error)?;
        Ok(())
    }

    /// Builds the shared message (id, notification text) once.
    fn build_message(&self, req: &SendRequest) -> Arc<Message> {
        self.build_message_with_id(req, self.next_message_id.fetch_add(1, Ordering::Relaxed))
    }

    fn build_message_with_id(&self, req: &SendRequest, id: u64) -> Arc<Message> {
        let push = if req.push_disabled {
            Err(SkipReason::PushDisabled)
        } else if req.online_only {
            Err(SkipReason::OnlineOnly)
        } else if req.nothing_to_show {
            Err(SkipReason::NothingToShow)
        } else {
            match PushText::new(req.title.as_deref(), req.desc.as_deref(), Some(&req.text)) {
                Some(t) => Ok(PushContent {
                    title: t.title,
                    desc: t.desc,
                    ext: req.ext.clone(),
                    channel_id: req.channel_id.clone(),
                    global: req.global.clone(),
                    hw: req.hw.clone(),
                    conversation: req
                        .conversation
                        .clone()
                        .unwrap_or_else(|| format!("c2c:{}", req.from)),
                    ovm: req.ovm.clone(),
                }),
                None => Err(SkipReason::NothingToShow),
            }
        };
        Arc::new(Message {
            id,
            from: req.from.clone(),
            text: req.text.clone(),
            title: req.title.clone(),
            desc: req.desc.clone(),
            ext: req.ext.clone(),
            push,
            accepted_at: Instant::now(),
        })
    }

    pub(crate) fn dispatch(&self) -> Dispatch<'_> {
        Dispatch {
            registry: &self.registry,
            hub: &self.hub,
            metrics: &self.metrics,
            queue: std::cell::RefCell::new(SenderQueue {
                certs: &self.certs,
                batch: self.senders.batch(),
                last: None,
            }),
            detail: false,
            now: now_secs(),
        }
    }

    /// Hands a message that a live connection did not ack to the push path of that device
    /// (the connection is gone; the device is `PushOnline` or `Offline` by now).
    pub fn push_fallback(&self, user: &str, device: &str, msg: &Arc<Message>) -> DeviceOutcome {
        let d = self.dispatch();
        let now = now_secs();
        let mut out = None;
        self.registry.route_with(user, now, |dev, route| {
            if dev.id == device {
                out = Some(d.fallback(user, dev, route, msg, now));
            }
        });
        out.unwrap_or_else(|| {
            self.metrics.skip(SkipReason::UnknownUser);
            DeviceOutcome {
                device: CompactString::from(device),
                platform: Platform::Android.as_str(),
                outcome: Outcome::Skipped,
                also_pushed: false,
                reason: Some(SkipReason::UnknownUser.as_str()),
            }
        })
    }
}
