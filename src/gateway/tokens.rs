//! Push tokens: bind to a logged-in device (TIM rules and codes), unbind.

use super::*;
use crate::store::CommitTicket;

impl Gateway {
    /// Binds a vendor token to a logged-in device (TIM rules and codes). With `platform`, a
    /// device this node knows on another platform is refused (`platform_mismatch`) and nothing
    /// changes. The answer is the device as the report left it.
    pub async fn report_token(
        &self,
        user: &str,
        platform: Option<Platform>,
        device: &str,
        certificate_id: CertificateId,
        token: &str,
    ) -> Result<DeviceView, GatewayError> {
        if let Some(remote) = self.remote() {
            if let Some(given) = platform {
                self.check_platform(user, device, given)?;
            }
            self.check_token_report(user, device, certificate_id, token)?;
            return remote
                .report_token(self, user, device, certificate_id, token)
                .await;
        }
        self.check_token_report(user, device, certificate_id, token)?;
        let mut journal = StoreJournal::new(&self.store);
        // One registry write does the platform check, the binding and the answer's view: a
        // token report is tens of microseconds, and each extra lookup of the user was a few.
        let (_, view) = self.registry.set_token_checked(
            user,
            device,
            certificate_id,
            token,
            platform,
            &mut journal,
            |d| self.view(d),
        )?;
        if let Some(ticket) = journal.ticket() {
            ticket.wait().await?;
        }
        Ok(view)
    }

    /// Refuses a report naming another platform than the one `device` is registered on here.
    fn check_platform(
        &self,
        user: &str,
        device: &str,
        given: Platform,
    ) -> Result<(), GatewayError> {
        match self.device_platform(user, device) {
            Some(actual) if actual != given => Err(RegistryError::PlatformMismatch {
                device: device.to_string(),
                actual,
                given,
            }
            .into()),
            _ => Ok(()),
        }
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
