//! Argon2id password hashing on a fixed pool of dedicated threads, never on
//! the async workers. Each thread owns one argon2 memory buffer (the
//! configured `memory_kib`) and reuses it for every hash it runs, so hashing
//! needs at most `max_concurrent` × `memory_kib` however many logins arrive;
//! a thread gives its buffer back after `IDLE_RELEASE` without work.
//! Verifying an unknown user runs against a dummy hash of the same cost, so
//! "no such user" and "wrong password" take the same time.

use crate::config::PasswordConfig;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tessera_core::{OAuthError, OAuthErrorCode, Secret};
use tokio::sync::oneshot;

pub struct PasswordHasher {
    params: Params,
    pool: Arc<Pool>,
    /// Hashes running or waiting; beyond `max_queued` new ones are refused.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    dummy: String,
}

/// Waiting hashes allowed per running one before the server answers "busy".
const QUEUE_PER_PERMIT: usize = 32;

/// A hashing thread without work for this long frees its memory buffer
/// (allocated again by its next hash), so RSS returns to idle after a burst.
const IDLE_RELEASE: Duration = Duration::from_secs(2);

impl PasswordHasher {
    pub fn new(cfg: &PasswordConfig) -> Self {
        let params =
            Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None).unwrap_or_default();
        // Costs a full verification like a real hash; no password matches it.
        let dummy = dummy_hash(&params);
        let workers = cfg.max_concurrent.max(1);
        Self {
            pool: Pool::start(workers, params.block_count()),
            params,
            queued: Arc::new(AtomicUsize::new(0)),
            max_queued: workers * QUEUE_PER_PERMIT,
            dummy,
        }
    }

    pub async fn hash(&self, password: &Secret<String>) -> Result<String, OAuthError> {
        let params = self.params.clone();
        let password = password.expose().clone();
        self.run(move |memory| hash_with(&params, password.as_bytes(), memory))
            .await?
            .map_err(OAuthError::server_error)
    }

    /// True when `password` matches `hash`. `None` (unknown user or no
    /// password set) still costs one full verification and returns false.
    /// A hash is checked with its own parameters (algorithm, version, m, t,
    /// p), whatever the current configuration says.
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
            .run(move |memory| verify_with(&phc, password.as_bytes(), memory))
            .await?;
        Ok(ok && real)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, OAuthError> {
        let _slot = QueueSlot::take(&self.queued, self.max_queued).ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "too many sign-ins in progress; retry shortly",
            )
        })?;
        let (tx, rx) = oneshot::channel();
        self.pool.submit(Box::new(move |memory| {
            // The request went away while this waited: skip the hash.
            if !tx.is_closed() {
                tx.send(f(memory)).ok();
            }
        }));
        rx.await.map_err(OAuthError::server_error)
    }
}

impl Drop for PasswordHasher {
    fn drop(&mut self) {
        self.pool.close();
    }
}

/// One argon2 memory buffer, owned by one hashing thread.
pub(crate) struct Memory {
    blocks: Vec<Block>,
    /// The pool's configured size; the buffer never grows beyond it.
    keep: usize,
}

impl Memory {
    /// The first `n` blocks: the thread's own buffer when `n` fits the
    /// configured cost (allocated on first use), else a buffer for this hash
    /// alone (a stored hash made with a higher cost than configured now).
    fn with<T>(&mut self, n: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if n > self.keep {
            return f(&mut buffer(n));
        }
        if self.blocks.is_empty() {
            self.blocks = buffer(self.keep);
        }
        f(&mut self.blocks[..n])
    }

    fn release(&mut self) {
        self.blocks = Vec::new();
    }
}

/// Reserved, never touched, beyond the blocks a buffer uses: glibc's malloc
/// always serves a request this large with a mapping of its own (its
/// adaptive mmap threshold stops at 32 MiB on 64-bit), which it unmaps when
/// the buffer is freed. A smaller request, once one such buffer was freed,
/// is carved from a malloc arena instead and its pages are never returned.
const RESERVE_BYTES: usize = 32 * 1024 * 1024 + 4096;

/// `n` zeroed blocks in an allocation of at least `RESERVE_BYTES`, of which
/// only the `n` blocks are written (so only they become resident).
fn buffer(n: usize) -> Vec<Block> {
    let mut blocks = Vec::with_capacity(n.max(RESERVE_BYTES / std::mem::size_of::<Block>()));
    blocks.resize(n, Block::default());
    blocks
}

type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The hashing threads and their shared queue of jobs.
struct Pool {
    state: Mutex<PoolState>,
    ready: Condvar,
}

#[derive(Default)]
struct PoolState {
    jobs: VecDeque<Job>,
    closed: bool,
}

enum Next {
    Job(Job),
    Idle,
    Closed,
}

impl Pool {
    fn start(workers: usize, blocks: usize) -> Arc<Self> {
        let pool = Arc::new(Pool {
            state: Mutex::new(PoolState::default()),
            ready: Condvar::new(),
        });
        for i in 0..workers {
            let pool = pool.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-argon2-{i}"))
                .spawn(move || pool.work(blocks));
            if let Err(e) = spawned {
                // Fewer threads only means less parallel hashing.
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        pool
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(&self, job: Job) {
        self.lock().jobs.push_back(job);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    fn work(&self, blocks: usize) {
        let mut memory = Memory {
            blocks: Vec::new(),
            keep: blocks,
        };
        loop {
            match self.next(!memory.blocks.is_empty()) {
                Next::Job(job) => {
                    // A panicking hash loses its answer (the caller sees an
                    // error), not the thread.
                    if catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
                        memory.release();
                    }
                }
                Next::Idle => memory.release(),
                Next::Closed => return,
            }
        }
    }

    /// Waits for a job; `Idle` after `IDLE_RELEASE` without one if the
    /// caller holds memory worth freeing.
    fn next(&self, holding: bool) -> Next {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                return Next::Job(job);
            }
            if state.closed {
                return Next::Closed;
            }
            if holding {
                let (s, waited) = self
                    .ready
                    .wait_timeout(state, IDLE_RELEASE)
                    .unwrap_or_else(PoisonError::into_inner);
                state = s;
                if waited.timed_out() && state.jobs.is_empty() && !state.closed {
                    return Next::Idle;
                }
            } else {
                state = self
                    .ready
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
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

/// A new argon2id v19 PHC string for `password` with a random 16-byte salt,
/// the same string `argon2::PasswordHasher::hash_password` produces.
fn hash_with(
    params: &Params,
    password: &[u8],
    memory: &mut Memory,
) -> Result<String, argon2::password_hash::Error> {
    let salt = tessera_core::secret::random_bytes(16);
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    memory.with(params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password, &salt, &mut out, blocks)
    })?;
    phc(params, &salt, &out)
}

fn phc(params: &Params, salt: &[u8], out: &[u8]) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(salt)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(out)?),
    }
    .to_string())
}

/// Whether `password` matches the PHC string `phc`, computed with the
/// string's own algorithm, version and parameters, as
/// `argon2::PasswordVerifier::verify_password` does (constant-time compare).
fn verify_with(phc: &str, password: &[u8], memory: &mut Memory) -> bool {
    let mut check = || -> Result<bool, argon2::password_hash::Error> {
        let parsed = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        memory.with(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password, salt, &mut out, blocks)
        })?;
        Ok(Output::new(&out)? == expected)
    };
    check().unwrap_or(false)
}

/// A well-formed hash with `params` that no password matches (random salt
/// and random output): verifying against it costs what a real one does.
fn dummy_hash(params: &Params) -> String {
    let salt = tessera_core::secret::random_bytes(16);
    let out = tessera_core::secret::random_bytes(
        params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN),
    );
    phc(params, &salt, &out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    fn small(max_concurrent: usize) -> PasswordConfig {
        PasswordConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent,
        }
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = PasswordHasher::new(&small(2));
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

    #[tokio::test]
    async fn the_dummy_hash_has_the_configured_cost_and_matches_nothing() {
        let h = PasswordHasher::new(&small(1));
        assert!(h.dummy.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let parsed = PasswordHash::new(&h.dummy).expect("dummy parses");
        assert_eq!(parsed.hash.expect("output").len(), 32);
        assert!(!h
            .verify(Some(&h.dummy), &Secret::new(String::new()))
            .await
            .expect("verify"));
    }

    /// Hashes stored before the pool (made by the argon2 crate's own API)
    /// verify, and the pool's hashes verify with that API.
    #[tokio::test]
    async fn interoperates_with_the_argon2_crate() {
        let h = PasswordHasher::new(&small(2));
        let pw = Secret::new("s3cret pässword".to_string());
        let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
        for (alg, version, m, t, p) in [
            (Algorithm::Argon2id, Version::V0x13, 1024, 1, 1),
            (Algorithm::Argon2id, Version::V0x13, 19 * 1024, 2, 1),
            (Algorithm::Argon2id, Version::V0x13, 2048, 3, 2),
            (Algorithm::Argon2i, Version::V0x13, 1024, 2, 1),
            (Algorithm::Argon2d, Version::V0x10, 1024, 1, 1),
        ] {
            let params = Params::new(m, t, p, None).expect("params");
            let theirs = Argon2::new(alg, version, params)
                .hash_password(pw.expose().as_bytes(), &salt)
                .expect("argon2 hash")
                .to_string();
            assert!(
                h.verify(Some(&theirs), &pw).await.expect("verify"),
                "{theirs}"
            );
            assert!(!h
                .verify(Some(&theirs), &Secret::new("nope".into()))
                .await
                .expect("verify"));
        }
        let ours = h.hash(&pw).await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("parses");
        assert!(Argon2::default()
            .verify_password(pw.expose().as_bytes(), &parsed)
            .is_ok());
        assert!(Argon2::default().verify_password(b"nope", &parsed).is_err());
    }

    /// A hash made with a higher cost than the pool's buffer holds still
    /// verifies (with a buffer of its own), and the thread's own buffer
    /// stays at the configured size.
    #[tokio::test]
    async fn a_hash_with_other_params_than_the_pool_verifies() {
        let h = PasswordHasher::new(&small(1));
        let pw = Secret::new("pw".to_string());
        let bigger = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).expect("params"),
        )
        .hash_password(
            b"pw",
            &SaltString::encode_b64(b"saltsaltsalt").expect("salt"),
        )
        .expect("hash")
        .to_string();
        assert!(h.verify(Some(&bigger), &pw).await.expect("verify"));
        let kept = h.run(|memory| memory.blocks.len()).await.expect("run");
        assert_eq!(kept, 0, "a bigger hash is not kept");
        let ours = h.hash(&pw).await.expect("hash");
        assert!(h.verify(Some(&ours), &pw).await.expect("verify"));
        let kept = h.run(|memory| memory.blocks.len()).await.expect("run");
        assert_eq!(kept, 1024, "the configured buffer is");
    }

    #[test]
    fn memory_is_reused_then_released() {
        let mut memory = Memory {
            blocks: Vec::new(),
            keep: 16,
        };
        let first = memory.with(8, |b| b.as_ptr());
        assert_eq!(memory.blocks.len(), 16);
        assert_eq!(memory.with(16, |b| b.as_ptr()), first, "same buffer");
        memory.with(32, |b| assert_eq!(b.len(), 32));
        assert_eq!(memory.blocks.len(), 16, "a bigger hash does not grow it");
        memory.release();
        assert!(memory.blocks.is_empty());
    }

    /// Beyond `max_concurrent` × QUEUE_PER_PERMIT waiting hashes the next
    /// is refused with temporarily_unavailable, and accepted again once the
    /// queue drains.
    #[tokio::test]
    async fn a_full_queue_refuses_then_recovers() {
        let h = Arc::new(PasswordHasher::new(&small(1)));
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Arc::new(Mutex::new(hold));
        let mut waiting = Vec::new();
        for _ in 0..QUEUE_PER_PERMIT {
            let (h, hold) = (h.clone(), hold.clone());
            waiting.push(tokio::spawn(async move {
                h.run(move |_| {
                    hold.lock().expect("lock").recv().ok();
                })
                .await
            }));
        }
        while h.queued.load(Ordering::SeqCst) < QUEUE_PER_PERMIT {
            tokio::task::yield_now().await;
        }
        let refused = h
            .verify(None, &Secret::new("pw".into()))
            .await
            .expect_err("queue full");
        assert_eq!(refused.code, OAuthErrorCode::TemporarilyUnavailable);
        for _ in 0..QUEUE_PER_PERMIT {
            release.send(()).expect("release");
        }
        for w in waiting {
            w.await.expect("join").expect("ran");
        }
        assert_eq!(h.queued.load(Ordering::SeqCst), 0);
        assert!(!h
            .verify(None, &Secret::new("pw".into()))
            .await
            .expect("accepted again"));
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
