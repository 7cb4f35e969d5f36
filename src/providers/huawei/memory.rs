//! What a certificate's past answers proved, kept per certificate across requests.
//!
//! - 80200001 (token refused): renew the token and resend once; refused again with the new
//!   token, the credentials are wrong (spec §2.1: the Go demo refreshes and re-sends once).
//! - 80300007 (all tokens invalid) also comes from a wrong app id (spec §5). Tokens are unbound
//!   only once this certificate, with this app id, has had a delivery accepted — proof that the
//!   app id is right. Honor's service reads the same memory.

use std::sync::Arc;

use dashmap::DashMap;

use crate::domain::CertificateId;

#[derive(Debug, Default, Clone)]
struct CertMemory {
    /// The app id (or project id) a delivery was accepted for.
    confirmed_app: Option<String>,
    /// The access token last refused.
    refused_token: Option<Arc<str>>,
}

/// Whether a refusal of the access token is the first since the last success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Renew the token and resend once.
    First,
    /// The renewed token was refused too: the credentials are wrong.
    Repeated,
}

/// Per-certificate memory of answers, shared by every request of the process.
#[derive(Debug, Default)]
pub struct AuthMemory {
    certs: DashMap<CertificateId, CertMemory>,
}

impl AuthMemory {
    /// A delivery was accepted for `app_key`: the app id is right and the token works.
    pub fn delivered(&self, cert: CertificateId, app_key: &str) {
        let mut m = self.certs.entry(cert).or_default();
        if m.confirmed_app.as_deref() != Some(app_key) {
            m.confirmed_app = Some(app_key.to_owned());
        }
        m.refused_token = None;
    }

    /// Whether a delivery was accepted for this certificate with this app id.
    pub fn confirmed(&self, cert: CertificateId, app_key: &str) -> bool {
        self.certs
            .get(&cert)
            .is_some_and(|m| m.confirmed_app.as_deref() == Some(app_key))
    }

    /// Records a refusal of `token`; a refusal of a different (renewed) token is a repeat.
    pub fn refused(&self, cert: CertificateId, token: &Arc<str>) -> Refusal {
        let mut m = self.certs.entry(cert).or_default();
        match &m.refused_token {
            Some(before) if before != token => Refusal::Repeated,
            _ => {
                m.refused_token = Some(token.clone());
                Refusal::First
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_confirms_the_app_id_it_was_for() {
        let m = AuthMemory::default();
        assert!(!m.confirmed(1, "v1/10086"));
        m.delivered(1, "v1/10086");
        assert!(m.confirmed(1, "v1/10086"));
        // An edited app id must prove itself again; other certificates are apart.
        assert!(!m.confirmed(1, "v1/999"));
        assert!(!m.confirmed(2, "v1/10086"));
    }

    #[test]
    fn a_renewed_token_refused_again_is_a_repeat() {
        let m = AuthMemory::default();
        let first: Arc<str> = Arc::from("tok-1");
        let second: Arc<str> = Arc::from("tok-2");
        assert_eq!(m.refused(1, &first), Refusal::First);
        // The same token refused by a request that was in flight: still the first.
        assert_eq!(m.refused(1, &first), Refusal::First);
        assert_eq!(m.refused(1, &second), Refusal::Repeated);
        m.delivered(1, "v1/1");
        assert_eq!(m.refused(1, &second), Refusal::First);
    }
}
