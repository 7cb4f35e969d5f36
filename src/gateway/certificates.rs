//! Certificate CRUD: validated, durable before the answer, effective at once.

use super::*;
use crate::domain::receipt::ReceiptSecret;

impl Gateway {
    pub async fn create_certificate(
        &self,
        input: CertificateInput,
    ) -> Result<Arc<CertEntry>, GatewayError> {
        validate_certificate(&input, true).map_err(field_error)?;
        let _g = self.cert_lock.lock().await;
        let id = match self.remote() {
            Some(r) => r.next_certificate_id().await?,
            None => self.next_cert_id.load(Ordering::Relaxed),
        };
        let cert = Certificate {
            id,
            package_name: input.package_name,
            click_action: input.click_action,
            qps: input.qps,
            credentials: input.credentials.into_credentials(None),
            receipt_secret: Some(ReceiptSecret::generate()),
        };
        if let Some(r) = self.remote() {
            // Cluster mode: Redis holds the certificates; every node tails their changes.
            r.put_certificate(&cert).await?;
        } else {
            self.store
                .commit(vec![
                    StoreOp::PutCertificate(Box::new(cert.clone())),
                    StoreOp::NextCertificateId(id + 1),
                ])
                .await?;
            self.next_cert_id.store(id + 1, Ordering::Relaxed);
        }
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
            // Kept across edits: receipts of notifications already sent must still verify.
            receipt_secret: old
                .receipt_secret
                .clone()
                .or_else(|| Some(ReceiptSecret::generate())),
        };
        cert.credentials.check().map_err(field_error)?;
        if let Some(r) = self.remote() {
            r.put_certificate(&cert).await?;
        } else {
            self.store
                .commit(vec![StoreOp::PutCertificate(Box::new(cert.clone()))])
                .await?;
        }
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
        if let Some(r) = self.remote() {
            r.delete_certificate(id).await?;
        } else {
            self.store
                .commit(vec![StoreOp::DeleteCertificate(id)])
                .await?;
        }
        self.certs.remove(id);
        self.senders.stop(id);
        self.receipt_limits.forget(id);
        tracing::info!(certificate = id, "certificate deleted");
        Ok(())
    }

    /// Cluster mode: a certificate created or edited on another node (or this one, read back
    /// from the change log). An unchanged one is left alone, so its health marks stay.
    pub fn certificate_changed_elsewhere(&self, cert: Certificate) {
        if let Some(h) = self.cert_hook.get() {
            h(&cert);
        }
        match self.certs.get(cert.id) {
            Some(entry) if *entry.cert() == cert => {}
            Some(entry) => {
                tracing::info!(certificate = cert.id, "certificate updated on another node");
                entry.replace(cert);
            }
            None => {
                tracing::info!(certificate = cert.id, "certificate created on another node");
                let entry = self.certs.insert(cert);
                self.senders.start(entry);
            }
        }
    }

    /// Cluster mode: a certificate deleted on another node.
    pub fn certificate_deleted_elsewhere(&self, id: CertificateId) {
        if self.certs.remove(id).is_some() {
            self.senders.stop(id);
            self.receipt_limits.forget(id);
            tracing::info!(certificate = id, "certificate deleted on another node");
        }
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
