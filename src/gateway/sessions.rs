//! Session events: login, logout, disconnect, kick, background and foreground, from the IM
//! cluster or a WebSocket session, through the one state machine.

use super::*;

/// Users whose events of one `/v1/sessions/events` batch are applied at the same time in
/// cluster mode.
const CLUSTER_EVENT_USERS: usize = 32;

/// A session event as the IM cluster reports it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEvent {
    pub user: String,
    pub platform: Platform,
    pub device: String,
    pub action: SessionAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    Login,
    Logout,
    Disconnect,
    Kicked,
    Background,
    Foreground,
}

/// The answer to one session event.
#[derive(Debug, Clone, Serialize)]
pub struct EventResult {
    pub user: String,
    pub device: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<UserStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kicked: Vec<KickedDevice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EventError>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KickedDevice {
    pub device: String,
    pub platform: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventError {
    pub code: ErrorCode,
    pub message: String,
}

impl Gateway {
    /// An iPhone or iPad's APNs badge count: set to the unread count when the app goes to the
    /// background, started over when it is in use again or the device leaves
    /// (`providers::apns::badge`).
    /// In cluster mode the count is in Redis: the write to await comes back.
    fn note_badge(
        &self,
        ev: &SessionEvent,
    ) -> Option<crate::registry::remote::BoxFut<'static, ()>> {
        use crate::providers::apns::BadgeEvent;
        if !matches!(ev.platform, Platform::IPhone | Platform::IPad) {
            return None;
        }
        let event = match ev.action {
            SessionAction::Background => match ev.unread {
                Some(unread) => BadgeEvent::Background(unread),
                None => return None,
            },
            SessionAction::Login
            | SessionAction::Foreground
            | SessionAction::Logout
            | SessionAction::Kicked => BadgeEvent::Reset,
            // Killed or offline: the badge keeps counting.
            SessionAction::Disconnect => return None,
        };
        self.apns_badges.session_shared(&ev.user, &ev.device, event)
    }

    /// Applies session events in order; each has its own result. Durable changes are on disk
    /// before this returns.
    pub async fn session_events(&self, events: Vec<SessionEvent>) -> Vec<EventResult> {
        if let Some(remote) = self.remote() {
            // One user's events stay in order; different users' run concurrently, up to
            // `CLUSTER_EVENT_USERS` at a time (each change is a CAS on that user's own hash,
            // acknowledged after its own WAIT). Unbounded, a batch of 1000 logins was 1000
            // concurrent CAS per request and ran into the Redis timeouts on the test machine.
            let mut by_user: std::collections::HashMap<&str, Vec<usize>> =
                std::collections::HashMap::new();
            for (i, ev) in events.iter().enumerate() {
                by_user.entry(ev.user.as_str()).or_default().push(i);
            }
            let events = &events;
            let runs = by_user.into_values().map(|indices| async move {
                let mut out = Vec::with_capacity(indices.len());
                for i in indices {
                    let ev = &events[i];
                    let r = match check_id("user", &ev.user)
                        .and_then(|_| check_id("device", &ev.device))
                    {
                        Ok(()) => {
                            if let Some(badge) = self.note_badge(ev) {
                                badge.await;
                            }
                            remote.session_event(self, ev, None).await
                        }
                        Err(e) => Err(id_error(e)),
                    };
                    out.push((
                        i,
                        r.unwrap_or_else(|e| EventResult {
                            user: ev.user.clone(),
                            device: ev.device.clone(),
                            ok: false,
                            state: None,
                            kicked: vec![],
                            error: Some(EventError {
                                code: e.code(),
                                message: e.to_string(),
                            }),
                        }),
                    ));
                }
                out
            });
            use futures_util::StreamExt;
            let mut results: Vec<(usize, EventResult)> = futures_util::stream::iter(runs)
                .buffer_unordered(CLUSTER_EVENT_USERS)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .flatten()
                .collect();
            results.sort_unstable_by_key(|(i, _)| *i);
            return results.into_iter().map(|(_, r)| r).collect();
        }
        let mut results = Vec::with_capacity(events.len());
        let mut tickets = Vec::new();
        for ev in events {
            let (res, ticket) = self.session_event(&ev, None);
            let i = results.len();
            results.push(match res {
                Ok(r) => r,
                Err(e) => EventResult {
                    user: ev.user.clone(),
                    device: ev.device.clone(),
                    ok: false,
                    state: None,
                    kicked: vec![],
                    error: Some(EventError {
                        code: e.code(),
                        message: e.to_string(),
                    }),
                },
            });
            if let Some(t) = ticket {
                tickets.push((i, t));
            }
        }
        for (i, t) in tickets {
            if let Err(e) = t.wait().await {
                let e = GatewayError::from(e);
                results[i].ok = false;
                results[i].error = Some(EventError {
                    code: e.code(),
                    message: e.to_string(),
                });
            }
        }
        results
    }

    /// One event. `conn` is the live connection on this gateway the event comes from (a
    /// WebSocket session), if any. Returns the result and the ticket of its durable write.
    pub fn session_event(
        &self,
        ev: &SessionEvent,
        conn: Option<ConnId>,
    ) -> (
        Result<EventResult, GatewayError>,
        Option<crate::store::CommitTicket>,
    ) {
        if let Err(e) = check_id("user", &ev.user).and_then(|_| check_id("device", &ev.device)) {
            return (Err(id_error(e)), None);
        }
        if let Some(badge) = self.note_badge(ev) {
            // Cluster mode, a WebSocket session's event: written in the background.
            actix_rt::spawn(badge);
        }
        if let (Some(remote), Some(conn)) = (self.remote(), conn) {
            // Cluster mode: the change is made in the background; the ticket says when it is
            // acknowledged (the state in the answer is not known before).
            let ticket = remote.session_event_detached(ev.clone(), conn);
            let ok = EventResult {
                user: ev.user.clone(),
                device: ev.device.clone(),
                ok: true,
                state: None,
                kicked: vec![],
                error: None,
            };
            return (Ok(ok), Some(ticket));
        }
        let durable = !matches!(
            ev.action,
            SessionAction::Background | SessionAction::Foreground
        );
        let mut store_journal = StoreJournal::new(&self.store);
        let mut no_journal = NoJournal;
        // Background and foreground are not durable: they change memory only.
        let journal: &mut dyn crate::registry::Journal = if durable {
            &mut store_journal
        } else {
            &mut no_journal
        };
        // A logout, kick or disconnect reported by the IM cluster also closes our own live
        // connection of that device, if it has one (the registry forgets the connection on the
        // change); left open, it would answer pings while its messages went to push.
        let live_conn = if conn.is_none()
            && matches!(
                ev.action,
                SessionAction::Logout | SessionAction::Kicked | SessionAction::Disconnect
            ) {
            self.registry
                .with_device(&ev.user, &ev.device, |d| d.conn)
                .filter(|c| *c != 0)
        } else {
            None
        };
        let now = now_secs();
        let outcome = match ev.action {
            SessionAction::Login => self
                .registry
                .login_journaled(&ev.user, ev.platform, &ev.device, conn, now, journal)
                .map(|out| {
                    let mut kicked = Vec::new();
                    for k in &out.kicked {
                        if let Some(c) = k.conn {
                            let _ = self.hub.send(
                                c,
                                SessionCommand::Kick {
                                    reason: format!(
                                        "a newer login on {} took over this account",
                                        ev.platform
                                    ),
                                },
                            );
                        }
                        kicked.push(KickedDevice {
                            device: k.device.to_string(),
                            platform: k.platform.as_str(),
                        });
                    }
                    if let Some(c) = out.replaced_conn {
                        if Some(c) != conn {
                            let _ = self.hub.send(
                                c,
                                SessionCommand::Kick {
                                    reason: "a newer connection of this device took over".into(),
                                },
                            );
                        }
                    }
                    (UserStatus::Online, kicked)
                }),
            other => {
                let event = match other {
                    SessionAction::Logout => DeviceEvent::Logout,
                    SessionAction::Disconnect => DeviceEvent::Disconnect,
                    SessionAction::Kicked => DeviceEvent::Kicked,
                    SessionAction::Background => DeviceEvent::Background,
                    SessionAction::Foreground => DeviceEvent::Foreground,
                    SessionAction::Login => DeviceEvent::Login,
                };
                self.registry
                    .apply_journaled(&ev.user, &ev.device, event, conn, now, journal)
                    .map(|(new, _)| (new.status(), vec![]))
            }
        };
        match outcome {
            Ok((state, kicked)) => {
                if let Some(c) = live_conn {
                    let command = if ev.action == SessionAction::Disconnect {
                        SessionCommand::Disconnect
                    } else {
                        SessionCommand::Kick {
                            reason: "the session was ended by the server".into(),
                        }
                    };
                    let _ = self.hub.send(c, command);
                }
                let ticket = store_journal.ticket();
                (
                    Ok(EventResult {
                        user: ev.user.clone(),
                        device: ev.device.clone(),
                        ok: true,
                        state: Some(state),
                        kicked,
                        error: None,
                    }),
                    ticket,
                )
            }
            Err(e) => (Err(e.into()), None),
        }
    }

    /// Kicks every device of a user (TIM `im_open_login_svc/kick`): no more pushes, live
    /// connections get `kicked`.
    pub async fn kick_user(&self, user: &str) -> Result<usize, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        if let Some(remote) = self.remote() {
            return remote.kick_user(self, user).await;
        }
        let devices = self.registry.devices(user);
        let mut tickets = Vec::new();
        let mut n = 0;
        for d in devices.iter().filter(|d| d.state().is_logged_in()) {
            let mut journal = StoreJournal::new(&self.store);
            let conn = d.conn;
            match self.registry.apply_journaled(
                user,
                &d.id,
                DeviceEvent::Kicked,
                None,
                now_secs(),
                &mut journal,
            ) {
                Ok(_) => {
                    n += 1;
                    if conn != 0 {
                        let _ = self.hub.send(
                            conn,
                            SessionCommand::Kick {
                                reason: "kicked by the server".into(),
                            },
                        );
                    }
                    tickets.extend(journal.ticket());
                }
                Err(RegistryError::Busy) => return Err(StoreError::Busy.into()),
                Err(e) => tracing::debug!(error = %e, "kick skipped a device"),
            }
        }
        for t in tickets {
            t.wait().await?;
        }
        Ok(n)
    }

    /// Counts every finished webhook request in `pushgate_webhook_requests_total`.
    pub fn export_webhook_requests(&self) {
        self.webhook.export_requests(&self.metrics.webhook_requests);
    }

    /// Queues a `State.StateChange` callback (never waits) and counts it.
    pub fn notify_state_change(&self, ev: crate::session::webhook::StateChange) {
        let ok = self.webhook.notify(ev);
        if self.webhook.is_enabled() {
            let result = if ok { "queued" } else { "dropped" };
            self.metrics.webhooks.with_label_values(&[result]).inc();
        }
    }

    /// The live connection on this gateway of `user`'s `device`, if it has one.
    pub fn live_connection(&self, user: &str, device: &str) -> Option<ConnId> {
        let mut found = None;
        self.registry.route_with(user, now_secs(), |d, route| {
            if d.id == device {
                if let Route::Online { conn: Some(c) }
                | Route::OnlineAndPush { conn: Some(c), .. } = route
                {
                    found = Some(c);
                }
            }
        });
        found
    }
}
