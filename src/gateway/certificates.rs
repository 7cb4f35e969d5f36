//! Certificate CRUD: validated, durable before the answer, effective at once.

use super::*;

impl Gateway {
    pub async fn create_certificate(
        &self,
        input: CertificateInput,
    ) -> Result<Arc<CertEntry>, GatewayError> {
        validate_certificate(&input, true).map_err(field_error)?;
        let _g = self.cert_lock.lock().await;
        let id = self.next_cert_id.load(Ordering::Relaxed);
        let cert = Certificate {
            id,
            package_name: input.package_name,
            click_action: input.click_action,
            qps: input.qps,
            credentials: input.credentials.into_credentials(None),
        };
        self.store
            .commit(vec![
                StoreOp::PutCertificate(Box::new(cert.clone())),
                StoreOp::NextCertificateId(id + 1),
            ])
            .await?;
        self.next_cert_id.store(id + 1, Ordering::Relaxed);
        if let Some(h) = self.cert_hook.get() {
            h(&cert);
        }
        let entry = self.certs.insert(cert);
        self.senders.start(entry.clone());
        tracing::info!(certificate = id, "certificate created");
        Ok(entry)
    }

    pub async fn update_certificate(
        &self,
        id: CertificateId,
        input: CertificateInput,
    ) -> Result<Arc<CertEntry>, GatewayError> {
        validate_certificate(&input, false).map_err(field_error)?;
        let _g = self.cert_lock.lock().await;
        let entry = self.certs.get(id).ok_or_else(|| cert_not_found(id))?;
        let old = entry.cert();
        if old.vendor() != input.vendor() {
            // Another vendor's secrets cannot be kept: they must all be given.
            input.credentials.validate(true).map_err(field_error)?;
        }
        let cert = Certificate {
            id,
            package_name: input.package_name,
            click_action: input.click_action,
            qps: input.qps,
            credentials: input.credentials.into_credentials(Some(&old.credentials)),
        };
        self.store
            .commit(vec![StoreOp::PutCertificate(Box::new(cert.clone()))])
            .await?;
        if let Some(h) = self.cert_hook.get() {
            h(&cert);
        }
        entry.replace(cert);
        tracing::info!(certificate = id, "certificate updated");
        Ok(entry)
    }

    pub async fn delete_certificate(&self, id: CertificateId) -> Result<(), GatewayError> {
        let _g = self.cert_lock.lock().await;
        if !self.certs.contains(id) {
            return Err(cert_not_found(id));
        }
        self.store
            .commit(vec![StoreOp::DeleteCertificate(id)])
            .await?;
        self.certs.remove(id);
        self.senders.stop(id);
        tracing::info!(certificate = id, "certificate deleted");
        Ok(())
    }

    /// Every certificate, in id order.
    pub fn certificates(&self) -> Vec<Arc<CertEntry>> {
        self.certs.all()
    }

    /// Notifications waiting in the sender of certificate `id`.
    pub fn queued(&self, id: CertificateId) -> usize {
        self.senders.depth(id)
    }

    pub fn certificate(&self, id: CertificateId) -> Result<Arc<CertEntry>, GatewayError> {
        self.certs.get(id).ok_or_else(|| cert_not_found(id))
    }
}
