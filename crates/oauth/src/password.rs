//! Argon2id password hashing on a bounded pool of blocking threads, never on
//! the async workers. Verifying an unknown user runs against a dummy hash of
//! the same cost, so "no such user" and "wrong password" take the same time.

use crate::config::PasswordConfig;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tessera_core::{OAuthError, OAuthErrorCode, Secret};
use tokio::sync::Semaphore;

pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// Hashes running or waiting; beyond `max_queued` new ones are refused.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    dummy: String,
}

/// Waiting hashes allowed per running one before the server answers "busy".
const QUEUE_PER_PERMIT: usize = 32;

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> Self {
        let params =
            Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None).unwrap_or_default();
        let dummy = hash_with(&params, "tessera-dummy-password").unwrap_or_default();
        let permits = cfg.max_concurrent.max(1);
        Self {
            params,
            permits: Arc::new(Semaphore::new(permits)),
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: permits * QUEUE_PER_PERMIT,
            dummy,
        }
    }

    pub async fn hash(&self, password: &Secret<String>) -> Result<String, OAuthError> {
        let params = self.params.clone();
        let password = password.expose().clone();
        self.run(move || hash_with(&params, &password))
            .await?
            .map_err(OAuthError::server_error)
    }

    /// True when `password` matches `hash`. `None` (unknown user or no
    /// password set) still costs one full verification and returns false.
    /// Fails only when too many checks are already queued (server busy).
    pub async fn verify(
        &self,
        hash: Option<&str>,
        password: &Secret<String>,
    ) -> Result<bool, OAuthError> {
        let (phc, real) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy.clone(), false),
        };
        let password = password.expose().clone();
        let ok = self
            .run(move || {
                PasswordHash::new(&phc)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && real)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, OAuthError> {
        let _slot = QueueSlot::take(&self.queued, self.max_queued).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "too many sign-ins in progress; retry shortly",
            )
        })?;
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(OAuthError::server_error)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(OAuthError::server_error)
    }
}

/// A place in the hashing queue, released on drop.
struct QueueSlot<'a>(&'a AtomicUsize);

impl<'a> QueueSlot<'a> {
    fn take(counter: &'a AtomicUsize, max: usize) -> Option<Self> {
        let prev = counter.fetch_add(1, Ordering::SeqCst);
        if prev >= max {
            counter.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Self(counter))
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&tessera_core::secret::random_bytes(16))?;
    Ok(
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password(password.as_bytes(), &salt)?
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(&PasswordConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        });
        let pw = Secret::new("correct horse".to_string());
        let phc = h.hash(&pw).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert!(h.verify(Some(&phc), &pw).await.expect("verify"));
        assert!(!h
            .verify(Some(&phc), &Secret::new("wrong".into()))
            .await
            .expect("verify"));
        assert!(
            !h.verify(None, &pw).await.expect("verify"),
            "no user never verifies"
        );
        assert!(!h.verify(Some("garbage"), &pw).await.expect("verify"));
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_and_slots_are_released() {
        let counter = AtomicUsize::new(0);
        let a = QueueSlot::take(&counter, 2).expect("first");
        let b = QueueSlot::take(&counter, 2).expect("second");
        assert!(QueueSlot::take(&counter, 2).is_none(), "full");
        drop(a);
        assert!(QueueSlot::take(&counter, 2).is_some(), "released on drop");
        drop(b);
        assert_eq!(counter.load(Ordering::SeqCst), 0);
    }
}
