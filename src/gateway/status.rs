//! What the status API shows of a user's devices.

use super::*;
pub use crate::domain::UserStatus;

/// One device as the status API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub device: String,
    pub platform: &'static str,
    pub state: UserStatus,
    pub background: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_reason: Option<crate::domain::OfflineReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_online_since: Option<u64>,
    pub connected_here: bool,
    pub token_bound: bool,
    /// The token shortened (first and last four characters), never in full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_id: Option<CertificateId>,
    /// Cluster mode: the node incarnation holding the device's connection (`gw-2#17`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A user's aggregate state (TIM §5.1): `Online` if any device is, else `PushOnline` if any
/// device is, else `Offline`.
pub fn user_status(devices: &[DeviceView]) -> UserStatus {
    UserStatus::of_user(devices.iter().map(|d| d.state))
}

impl Gateway {
    pub fn view(&self, d: &Device) -> DeviceView {
        let state = d.state().effective(now_secs(), self.registry.retention());
        DeviceView {
            device: d.id.to_string(),
            platform: d.platform.as_str(),
            state: state.status(),
            background: matches!(
                state,
                crate::domain::DeviceState::Online { background: true }
            ),
            offline_reason: match state {
                crate::domain::DeviceState::Offline { reason } => Some(reason),
                _ => None,
            },
            push_online_since: match state {
                crate::domain::DeviceState::PushOnline { since } => Some(since),
                _ => None,
            },
            connected_here: d.conn != 0,
            token_bound: d.token.is_some(),
            token_hint: d.token.as_deref().map(crate::domain::token::redact),
            certificate_id: d.token.as_ref().map(|_| d.cert),
            node: None,
        }
    }

    /// The platform `user`'s `device` is registered on, if this node's registry knows it.
    pub fn device_platform(&self, user: &str, device: &str) -> Option<Platform> {
        self.registry.with_device(user, device, |d| d.platform)
    }

    pub fn device_view(&self, user: &str, device: &str) -> Result<DeviceView, GatewayError> {
        self.registry
            .with_device(user, device, |d| self.view(d))
            .ok_or_else(|| GatewayError::NotFound {
                code: ErrorCode::UnknownDevice,
                message: format!("unknown device '{device}' of user '{user}'"),
            })
    }

    /// Whether the registry knows any device of `user` (no allocation).
    pub fn has_user(&self, user: &str) -> bool {
        self.registry.has_user(user)
    }

    /// `user_devices`, from the shared directory in cluster mode.
    pub async fn user_devices_any(&self, user: &str) -> Result<Vec<DeviceView>, GatewayError> {
        match self.remote() {
            Some(remote) => remote.user_devices(self, user).await,
            None => Ok(self.user_devices(user)),
        }
    }

    /// Whether any node has seen `user`: the shared directory in cluster mode.
    pub async fn has_user_any(&self, user: &str) -> Result<bool, GatewayError> {
        match self.remote() {
            Some(remote) => Ok(!remote.user_devices(self, user).await?.is_empty()),
            None => Ok(self.has_user(user)),
        }
    }

    /// `user_devices_any` for many users; in cluster mode the reads run concurrently.
    pub async fn users_devices_any(
        &self,
        users: &[String],
    ) -> Result<Vec<Vec<DeviceView>>, GatewayError> {
        match self.remote() {
            Some(remote) => {
                futures_util::future::join_all(users.iter().map(|u| remote.user_devices(self, u)))
                    .await
                    .into_iter()
                    .collect()
            }
            None => Ok(users.iter().map(|u| self.user_devices(u)).collect()),
        }
    }

    pub fn user_devices(&self, user: &str) -> Vec<DeviceView> {
        self.registry
            .devices(user)
            .iter()
            .map(|d| self.view(d))
            .collect()
    }
}
