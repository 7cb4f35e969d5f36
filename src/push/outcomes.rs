//! The last notification result per device, for "why did this user get no notification?".

use crate::providers::DeliveryClass;
use compact_str::CompactString;
use dashmap::DashMap;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

/// What happened to the last notification sent to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastNotification {
    /// Unix milliseconds of the vendor's answer.
    pub at: u64,
    pub message_id: u64,
    pub certificate_id: u64,
    /// How it ended: delivered, bad_token, misconfigured, …
    pub class: DeliveryClass,
    pub vendor_code: Option<i64>,
    /// Shared by every notification of one vendor request.
    pub trace_id: Option<Arc<str>>,
    pub msg_id: Option<Arc<str>>,
    pub detail: Cow<'static, str>,
}

/// Last results keyed by (user, device); one small entry per device that was ever pushed to.
#[derive(Default)]
pub struct Outcomes {
    last: DashMap<(CompactString, CompactString), LastNotification>,
}

impl Outcomes {
    pub fn record(&self, user: &CompactString, device: &CompactString, n: LastNotification) {
        self.last.insert((user.clone(), device.clone()), n);
    }

    pub fn get(&self, user: &str, device: &str) -> Option<LastNotification> {
        self.last
            .get(&(CompactString::from(user), CompactString::from(device)))
            .map(|e| e.value().clone())
    }
}
