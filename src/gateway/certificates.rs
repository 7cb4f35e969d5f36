//! Certificate CRUD: validated, durable before the answer, effective at once.

use super::*;

impl Gateway {
    pub async fn create_certificate(
        &self,
        input: CertificateInput,
    ) -> Result<Arc<CertEntry>, GatewayError> {
        validate_certificate(&input, true)
            .map_err(|e| GatewayError::invalid("invalid_field", Some(e.field), e.to_string()))?;
        let _g = self.cert_lock.lock().await;
        let id = self.next_cert_id.load(Ordering::Relaxed);
        let cert = input.into_certificate(id, None);
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
        validate_certificate(&input, false)
            .map_err(|e| GatewayError::invalid("invalid_field", Some(e.field), e.to_string()))?;
        let _g = self.cert_lock.lock().await;
        let entry = self.certs.get(id).ok_or_else(|| cert_not_found(id))?;
        let old = entry.cert();
        let cert = input.into_certificate(id, Some(&old.app_secret));
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

    pub fn certificate(&self, id: CertificateId) -> Result<Arc<CertEntry>, GatewayError> {
        self.certs.get(id).ok_or_else(|| cert_not_found(id))
    }
}
