//! Push tokens: bind to a logged-in device (TIM rules and codes), unbind.

use super::*;
use crate::store::CommitTicket;

impl Gateway {
    /// Binds a vendor token to a logged-in device (TIM rules and codes).
    pub async fn report_token(
        &self,
        user: &str,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<DeviceView, GatewayError> {
        if let Some(remote) = self.remote() {
            self.check_token_report(user, device, certificate_id, token)?;
            return remote
                .report_token(self, user, device, certificate_id, token)
                .await;
        }
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
        self.check_token_report(user, device, certificate_id, token)?;
        if let Some(remote) = self.remote() {
            return Ok(remote.report_token_detached(
                user.to_string(),
                device.to_string(),
                certificate_id,
                token.to_string(),
            ));
        }
        let mut journal = StoreJournal::new(&self.store);
        self.registry
            .set_token_journaled(user, device, certificate_id, token, &mut journal)?;
        Ok(journal.ticket().unwrap_or_else(CommitTicket::done))
    }

    fn check_token_report(
        &self,
        user: &str,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<(), GatewayError> {
        check_id("user", user).map_err(id_error)?;
        check_id("device", device).map_err(id_error)?;
        crate::domain::token::check_token_shape(token).map_err(token_error)?;
        if !self.certs.contains(certificate_id) {
            return Err(token_error(TokenError::UnknownCertificate(certificate_id)));
        }
        Ok(())
    }

    /// Unbinds a device's token (the client disabled offline push).
    pub async fn clear_token(&self, user: &str, device: &str) -> Result<DeviceView, GatewayError> {
        check_id("user", user).map_err(id_error)?;
        check_id("device", device).map_err(id_error)?;
        if let Some(remote) = self.remote() {
            return remote.clear_token(self, user, device).await;
        }
        let mut journal = StoreJournal::new(&self.store);
        self.registry
            .clear_token_journaled(user, device, &mut journal)?;
        if let Some(t) = journal.ticket() {
            t.wait().await?;
        }
        self.device_view(user, device)
    }
}
