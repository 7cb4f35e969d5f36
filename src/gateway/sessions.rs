//! Session events: login, logout, disconnect, kick, background and foreground, from the IM
//! cluster or a WebSocket session, through the one state machine.

use super::*;

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
    /// Applies session events in order; each has its own result. Durable changes are on disk
    /// before this returns.
    pub async fn session_events(&self, events: Vec<SessionEvent>) -> Vec<EventResult> {
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
        let durable = !matches!(
            ev.action,
            SessionAction::Background | SessionAction::Foreground
        );
        let permit = if durable {
            match self.store.reserve() {
                Ok(p) => Some(p),
                Err(e) => return (Err(e.into()), None),
            }
        } else {
            None
        };
        // A logout or kick reported by the IM cluster also closes our own live connection of
        // that device, if it has one (the registry forgets the connection on the change).
        let live_conn = if conn.is_none()
            && matches!(ev.action, SessionAction::Logout | SessionAction::Kicked)
        {
            self.registry
                .devices(&ev.user)
                .iter()
                .find(|d| d.id == ev.device)
                .map(|d| d.conn)
                .filter(|c| *c != 0)
        } else {
            None
        };
        let now = now_secs();
        let put = |user: &str, device: &str, record| StoreOp::PutDevice {
            user: user.to_string(),
            device: device.to_string(),
            record,
        };
        let outcome = match ev.action {
            SessionAction::Login => self
                .registry
                .login(&ev.user, ev.platform, &ev.device, conn, now)
                .map(|out| {
                    let mut ops = vec![put(&ev.user, &ev.device, out.record.clone())];
                    let mut kicked = Vec::new();
                    for k in &out.kicked {
                        ops.push(put(&ev.user, &k.device, k.record.clone()));
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
                    (ops, UserStatus::Online, kicked)
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
                    .apply(&ev.user, &ev.device, event, conn, now)
                    .map(|(new, rec)| (vec![put(&ev.user, &ev.device, rec)], new.status(), vec![]))
            }
        };
        match outcome {
            Ok((ops, state, kicked)) => {
                if let Some(c) = live_conn {
                    let _ = self.hub.send(
                        c,
                        SessionCommand::Kick {
                            reason: "the session was ended by the server".into(),
                        },
                    );
                }
                let ticket = permit.map(|p| p.send(ops));
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
        let devices = self.registry.devices(user);
        let mut tickets = Vec::new();
        let mut n = 0;
        for d in devices.iter().filter(|d| d.state().is_logged_in()) {
            let permit = self.store.reserve()?;
            let conn = d.conn;
            match self
                .registry
                .apply(user, &d.id, DeviceEvent::Kicked, None, now_secs())
            {
                Ok((_, rec)) => {
                    n += 1;
                    if conn != 0 {
                        let _ = self.hub.send(
                            conn,
                            SessionCommand::Kick {
                                reason: "kicked by the server".into(),
                            },
                        );
                    }
                    tickets.push(permit.send(vec![StoreOp::PutDevice {
                        user: user.to_string(),
                        device: d.id.to_string(),
                        record: rec,
                    }]));
                }
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
