//! Access tokens shared by every request of one certificate (OAuth for Huawei/Honor, a signed
//! JWT for FCM/APNs). Xiaomi signs each request with its AppSecret and acquires nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Grant<A> {
    pub value: A,
    /// `None`: never expires (credentials used directly).
    pub expires_at: Option<Instant>,
}

impl<A> Grant<A> {
    pub fn forever(value: A) -> Grant<A> {
        Grant {
            value,
            expires_at: None,
        }
    }
}

/// The vendor did not grant an access token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The credentials were refused: the certificate is broken.
    #[error("the vendor refused the credentials: {0}")]
    Refused(String),
    /// The token endpoint was unreachable or busy: retry later.
    #[error("the token endpoint failed: {0}")]
    Unavailable(String),
}

/// A token is renewed this long before it expires, so no request carries one that expires on
/// the way.
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// The access token of one certificate. Concurrent requests wait for one acquisition (the
/// async lock is held across it on purpose: a second caller must not acquire a second token).
pub struct AccessCache<A> {
    current: tokio::sync::Mutex<Option<Grant<A>>>,
    /// Set (without waiting for the lock) when the vendor refused the token; the next `get`
    /// acquires a new one. Synchronous so that a retry queued right after the refusal cannot
    /// take the refused token from the cache first.
    refused: AtomicBool,
}

impl<A: Clone> Default for AccessCache<A> {
    fn default() -> Self {
        AccessCache {
            current: tokio::sync::Mutex::new(None),
            refused: AtomicBool::new(false),
        }
    }
}

impl<A: Clone> AccessCache<A> {
    pub fn new() -> Arc<AccessCache<A>> {
        Arc::new(AccessCache::default())
    }

    /// The cached token, or a new one from `acquire` when none is valid.
    pub async fn get<F, Fut>(&self, acquire: F) -> Result<A, AccessError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Grant<A>, AccessError>>,
    {
        let mut current = self.current.lock().await;
        if self.refused.swap(false, Ordering::AcqRel) {
            *current = None;
        }
        if let Some(g) = current.as_ref() {
            let fresh = g
                .expires_at
                .is_none_or(|at| Instant::now() + RENEW_MARGIN < at);
            if fresh {
                return Ok(g.value.clone());
            }
        }
        let grant = acquire().await?;
        let value = grant.value.clone();
        *current = Some(grant);
        Ok(value)
    }

    /// Forgets the token (the vendor refused it); the next request acquires a new one. Takes
    /// effect at once, before any later `get`, without waiting for a fetch in progress.
    pub fn invalidate(&self) {
        self.refused.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test]
    async fn a_token_is_acquired_once_until_it_expires_or_is_refused() {
        let cache = AccessCache::<u32>::new();
        let calls = AtomicU32::new(0);
        let acquire = |life: Duration| {
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                Ok(Grant {
                    value: n,
                    expires_at: Some(Instant::now() + life),
                })
            }
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(cache.get(|| acquire(hour)).await, Ok(1));
        assert_eq!(cache.get(|| acquire(hour)).await, Ok(1));
        cache.invalidate();
        // Expires within the renewal margin: renewed on the next use.
        assert_eq!(cache.get(|| acquire(Duration::from_secs(5))).await, Ok(2));
        assert_eq!(cache.get(|| acquire(hour)).await, Ok(3));
        assert_eq!(cache.get(|| acquire(hour)).await, Ok(3));
    }

    #[tokio::test]
    async fn a_refusal_is_passed_on() {
        let cache = AccessCache::<()>::new();
        let r = cache
            .get(|| async { Err(AccessError::Refused("bad client secret".into())) })
            .await;
        assert_eq!(r, Err(AccessError::Refused("bad client secret".into())));
    }
}
