//! Push tokens: bind to a logged-in device (TIM rules and codes), unbind.

use super::*;

impl Gateway {
    /// Binds a vendor token to a logged-in device (TIM rules and codes).
    pub async fn report_token(
        &self,
        user: &str,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<DeviceView, GatewayError> {
        let ticket = self.report_token_now(user, device, certificate_id, token)?;
        ticket.wait().await?;
        self.device_view(user, device)
    }

    /// The synchronous part of a token report (the WebSocket session awaits the ticket itself).
    pub fn report_token_now(
        &self,
        user: &str,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<crate::store::CommitTicket, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        check_id("device", device).map_err(id_error)?;
        crate::domain::token::check_token_shape(token).map_err(token_error)?;
        if !self.certs.contains(certificate_id) {
            return Err(token_error(TokenError::UnknownCertificate(certificate_id)));
        }
        let permit = self.store.reserve()?;
        let out = self
            .registry
            .set_token(user, device, certificate_id, token)?;
        let mut ops = vec![StoreOp::PutDevice {
            user: user.to_string(),
            device: device.to_string(),
            record: out.record,
        }];
        for (d, rec) in out.cleared_here {
            ops.push(StoreOp::PutDevice {
                user: user.to_string(),
                device: d.to_string(),
                record: rec,
            });
        }
        if let Some((u, d, rec)) = out.moved_from {
            ops.push(StoreOp::PutDevice {
                user: u.to_string(),
                device: d.to_string(),
                record: rec,
            });
        }
        Ok(permit.send(ops))
    }

    /// Unbinds a device's token (the client disabled offline push).
    pub async fn clear_token(&self, user: &str, device: &str) -> Result<DeviceView, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        check_id("device", device).map_err(id_error)?;
        let permit = self.store.reserve()?;
        let Some(rec) = self.registry.clear_token(user, device) else {
            drop(permit);
            return self.device_view(user, device);
        };
        permit
            .send(vec![StoreOp::PutDevice {
                user: user.to_string(),
                device: device.to_string(),
                record: rec,
            }])
            .wait()
            .await?;
        self.device_view(user, device)
    }
}
