//! [`Pkcs11Signer`]: a [`Signer`] over a private key on a PKCS#11 token, with a session pool
//! that survives sessions dying underneath it.
//!
//! # Sessions
//! A `cryptoki::Session` may move between threads but not be used by two at once, and one
//! session serializes every signature through it. So each signer keeps a pool: a semaphore with
//! `pool_size` permits bounds the `C_Sign` calls in flight, and idle sessions wait in a stack
//! (opened lazily, up to `pool_size`).
//!
//! # Threads
//! No PKCS#11 call runs on an async worker that still holds its scheduler. `C_Sign` runs in
//! `tokio::task::block_in_place` on a multi-thread runtime: the worker first hands its queued
//! tasks to another thread, then signs itself, so no thread has to be woken to carry the
//! signature there and back (on a VM those two wake-ups cost more than a SoftHSM P-256
//! signature; figures in `docs/performance-pkcs11.md`). On a current-thread runtime, and for
//! everything else (open, close), the call goes to `spawn_blocking`. Not supported: entering a
//! multi-thread runtime's handle (`Handle::enter`) from inside a current-thread runtime and
//! signing there, where Tokio refuses `block_in_place`.
//!
//! # Recovery
//! Sessions die for reasons outside the process: an HSM closes idle sessions (Thales Luna), the
//! device is reset, another part of the process calls `C_CloseAllSessions` or `C_Logout`. On
//! `CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`, `CKR_USER_NOT_LOGGED_IN`,
//! `CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`, `CKR_OBJECT_HANDLE_INVALID` or
//! `CKR_KEY_HANDLE_INVALID` (object handles of private keys die with the login), the signer
//! finds the token again (its slot may have changed), opens a session, logs in again, finds the
//! key again, and starts a new pool *epoch*: sessions of older epochs are closed instead of being
//! reused. Only the first thread to see a failed epoch rebuilds; the others wait and reuse its
//! work. After [`Pkcs11Options::max_attempts`](crate::Pkcs11Options::max_attempts) attempts the
//! signature fails with [`Pkcs11Error::RecoveryExhausted`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::types::AuthPin;
use pkjwt_core::{Algorithm, Curve, Pkcs11ObjectType, Pkcs11Uri, PublicKey, Signature, Signer};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::error::Pkcs11Error;
use crate::mechanism::Mech;
use crate::module::Module;
use crate::object::{self, FoundKey, ObjectSelector};
use crate::token::{self, TokenRef, TokenSelector};
use crate::{DEFAULT_MAX_ATTEMPTS, Pkcs11Options, run_blocking};

/// Counters describing what a signer has done; cheap to read at any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Stats {
    /// Signatures returned.
    pub signatures: u64,
    /// Times the pool was rebuilt after sessions died.
    pub recoveries: u64,
    /// Sessions opened (the first one included).
    pub sessions_opened: u64,
    /// Signatures made in place on the calling thread (`block_in_place`, multi-thread
    /// runtimes); the others went through the blocking pool.
    pub signed_in_place: u64,
    /// `C_Login` calls this signer made (at open and when logging in again), whatever their
    /// outcome.
    pub logins: u64,
}

/// A signing key on a PKCS#11 token.
///
/// Open it with [`Pkcs11Signer::open`]; use it through the [`Signer`] trait. The public key is
/// read once at open; signing never blocks the async runtime.
pub struct Pkcs11Signer {
    inner: Arc<Inner>,
    permits: Arc<Semaphore>,
    algorithm: Algorithm,
    public_key: PublicKey,
    warnings: Vec<String>,
    /// DER certificates stored on the token with the key's id, read at open.
    certificates: Vec<Vec<u8>>,
}

struct Pooled {
    session: Session,
    epoch: u64,
}

struct PoolState {
    idle: Vec<Pooled>,
    epoch: u64,
    /// Sessions of epochs below this one died with their handles (`CKR_SESSION_HANDLE_INVALID`
    /// and the like): they are forgotten, not closed, because after a module re-initialization
    /// the same handle number may already belong to a fresh session of ours.
    forget_below: u64,
    handle: ObjectHandle,
    token: TokenRef,
}

struct Inner {
    module: Arc<Module>,
    uri: String,
    token_selector: TokenSelector,
    key: FoundKey,
    pin: Option<AuthPin>,
    mech: Mech,
    curve: Option<Curve>,
    algorithm: Algorithm,
    pool_size: usize,
    max_attempts: u32,
    state: Mutex<PoolState>,
    /// Held by the one thread rebuilding a failed epoch.
    recovery: Mutex<()>,
    signatures: AtomicU64,
    recoveries: AtomicU64,
    sessions_opened: AtomicU64,
    signed_in_place: AtomicU64,
    logins: AtomicU64,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URI string is the redacting Display of Pkcs11Uri; the PIN is never stored in a
        // printable form.
        f.debug_struct("Pkcs11Signer")
            .field("uri", &self.inner.uri)
            .field("key", &self.inner.key.name())
            .field("algorithm", &self.algorithm)
            .field("mechanism", &self.inner.mech.name())
            .field("pool_size", &self.inner.pool_size)
            .finish_non_exhaustive()
    }
}

/// Return values that mean the session handle itself is gone.
fn session_is_dead(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
            _
        )
    )
}

/// Return values after which the sessions are rebuilt and the login renewed.
fn is_recoverable(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid,
            _
        )
    )
}

fn err_is_recoverable(e: &Pkcs11Error) -> bool {
    match e {
        Pkcs11Error::Call { source, .. } => is_recoverable(source),
        // The token vanished from the slot list (device removed, not back yet).
        Pkcs11Error::TokenNotFound { .. } => true,
        _ => false,
    }
}

/// Reads the PIN the URI points to. `pin-value` is accepted but reported as a warning.
pub(crate) fn read_pin(
    uri: &Pkcs11Uri,
    token: &TokenRef,
    warnings: &mut Vec<String>,
) -> Result<Option<AuthPin>, Pkcs11Error> {
    if let Some(src) = &uri.pin_source {
        let pin: Zeroizing<String> = src.read("PIN").map_err(|e| Pkcs11Error::PinSource {
            token: token.label.clone(),
            source: e,
        })?;
        return Ok(Some(AuthPin::from(pin.as_str())));
    }
    if let Some(v) = &uri.pin_value {
        warnings.push(
            "the key URI carries pin-value: the PIN is visible to anyone who can read the URI \
             (process list, shell history, configuration); use pin-source=file:PATH or \
             pin-source=env:NAME"
                .into(),
        );
        return Ok(Some(AuthPin::from(v.as_str())));
    }
    Ok(None)
}

impl Pkcs11Signer {
    /// Opens the private key `uri` names and prepares a session pool for it.
    ///
    /// Accepted URIs (RFC 7512): path attributes `token`, `serial`, `manufacturer`, `model`,
    /// `slot-id` select the token (labels are compared without their space padding); `object`
    /// (`CKA_LABEL`) and/or `id` (`CKA_ID`) select the key, which must be the only private key
    /// matching; `type` may be `private` or absent. Query attributes: `module-path` or
    /// `module-name` (else [`Pkcs11Options::default_module`] or `PKJWT_PKCS11_MODULE`),
    /// `pin-source=file:PATH|env:NAME`, or `pin-value` (accepted, reported in
    /// [`warnings`](Self::warnings)).
    ///
    /// `algorithm` picks the JWS algorithm (it must fit the key); `None` takes the key's default
    /// (ES256/384/512 by curve, PS256 for RSA, EdDSA for Ed25519). The mechanism is chosen from
    /// what the token advertises. This touches the token, so it runs on a blocking thread.
    pub async fn open(
        uri: &Pkcs11Uri,
        algorithm: Option<Algorithm>,
        opts: &Pkcs11Options,
    ) -> Result<Self, Pkcs11Error> {
        let uri = uri.clone();
        let opts = opts.clone();
        run_blocking(move || Self::open_blocking(&uri, algorithm, &opts)).await
    }

    fn open_blocking(
        uri: &Pkcs11Uri,
        requested: Option<Algorithm>,
        opts: &Pkcs11Options,
    ) -> Result<Self, Pkcs11Error> {
        match uri.object_type {
            Some(Pkcs11ObjectType::Public) => {
                return Err(Pkcs11Error::NotPrivateKey {
                    uri: uri.to_string(),
                    what: "public",
                });
            }
            Some(Pkcs11ObjectType::Cert) => {
                return Err(Pkcs11Error::NotPrivateKey {
                    uri: uri.to_string(),
                    what: "cert",
                });
            }
            _ => {}
        }
        let module = Module::load(uri, opts)?;
        let token_selector = TokenSelector::from_uri(uri);
        let token = token::find_token(&module, &token_selector)?;
        let mut warnings = Vec::new();
        let pin = read_pin(uri, &token, &mut warnings)?;
        let session = token::open_session(&module, &token, false)?;
        let logins = AtomicU64::new(0);
        token::ensure_login(&module, &token, &session, pin.as_ref(), Some(&logins))?;
        let sel = ObjectSelector {
            label: uri.object.clone(),
            id: uri.id.clone(),
        };
        let key = object::find_private_key(&session, &token, &sel)?;
        let (kind, attrs) = object::inspect_private_key(&session, &token, &key)?;
        let public_key = object::public_key(&session, &token, &key, kind, &attrs)?;
        let certificates = object::certificates(&session, &token, &key)?;
        let algorithm =
            public_key
                .resolve_algorithm(requested)
                .map_err(|e| Pkcs11Error::Algorithm {
                    key: key.name(),
                    source: e,
                })?;
        let mechs = module.ctx().get_mechanism_list(token.slot).map_err(|e| {
            Pkcs11Error::call(
                format!("listing the mechanisms of token \"{}\"", token.label),
                e,
            )
        })?;
        let mech = Mech::choose(algorithm, &mechs, &token.label, opts.local_hashing)?;
        let mut pool_size = opts.pool_size.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        if let Some(max) = token.max_sessions {
            pool_size = pool_size.min(usize::try_from(max).unwrap_or(usize::MAX));
        }
        let pool_size = pool_size.max(1);
        let handle = key.handle;
        let inner = Arc::new(Inner {
            module,
            uri: uri.to_string(),
            token_selector,
            key,
            pin,
            mech,
            curve: algorithm.curve(),
            algorithm,
            pool_size,
            max_attempts: opts.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
            state: Mutex::new(PoolState {
                idle: vec![Pooled { session, epoch: 0 }],
                epoch: 0,
                forget_below: 0,
                handle,
                token,
            }),
            recovery: Mutex::new(()),
            signatures: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            sessions_opened: AtomicU64::new(1),
            signed_in_place: AtomicU64::new(0),
            logins,
        });
        Ok(Pkcs11Signer {
            inner,
            permits: Arc::new(Semaphore::new(pool_size)),
            algorithm,
            public_key,
            warnings,
            certificates,
        })
    }

    /// Warnings collected at open (for example, a PIN given inline with `pin-value`). Callers
    /// should show them to the user; they never contain the PIN.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The PKCS#11 mechanism used for signing, e.g. `CKM_ECDSA`.
    pub fn mechanism(&self) -> &'static str {
        self.inner.mech.name()
    }

    /// The token's label, without padding.
    pub fn token_label(&self) -> String {
        self.inner.lock_state().token.label.clone()
    }

    /// The key's `CKA_LABEL`, if it has one.
    pub fn key_label(&self) -> Option<&str> {
        self.inner.key.label.as_deref()
    }

    /// The key's `CKA_ID`.
    pub fn key_id(&self) -> &[u8] {
        &self.inner.key.id
    }

    /// The number of sessions the pool may hold.
    pub fn pool_size(&self) -> usize {
        self.inner.pool_size
    }

    /// Counters: signatures, pool rebuilds, sessions opened.
    pub fn stats(&self) -> Pkcs11Stats {
        Pkcs11Stats {
            signatures: self.inner.signatures.load(Ordering::Relaxed),
            recoveries: self.inner.recoveries.load(Ordering::Relaxed),
            sessions_opened: self.inner.sessions_opened.load(Ordering::Relaxed),
            signed_in_place: self.inner.signed_in_place.load(Ordering::Relaxed),
            logins: self.inner.logins.load(Ordering::Relaxed),
        }
    }

    /// Signs and returns what the token produced (raw `r || s` for ECDSA), waiting for a free
    /// session. Used by [`Signer::sign`], which converts ECDSA to DER.
    async fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        // Outside Tokio's cooperative budget: with the budget, every 128th acquisition would
        // make the task yield even with permits free, and a task that yields after
        // `block_in_place` is taken back by a worker that must hand its scheduler off again —
        // on a machine whose CPUs are all signing, those hand-off threads then compete with
        // the signers (2 workers: 0.65x of the bare C_Sign rate instead of ~1x). Waiting for a
        // permit that is not free still suspends the task as usual. A task that only signs
        // then never yields on its own; during each signature the worker's queued tasks are
        // offered to another thread, and idle workers can steal them (docs/pkcs11.md).
        let permit = tokio::task::unconstrained(self.permits.clone().acquire_owned())
            .await
            .map_err(|e| Pkcs11Error::Worker(e.to_string()))?;
        let input = self.inner.mech.input(message);
        match tokio::runtime::Handle::try_current() {
            // On a multi-thread runtime the calling worker gives its scheduler (and the tasks
            // queued on it) to another thread and then makes the call itself: no hand-off to a
            // blocking thread and back, which costs tens of microseconds per signature on a VM
            // (each side sleeps and is woken). The runtime keeps all its workers meanwhile.
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                let _permit = permit;
                let result = tokio::task::block_in_place(|| self.inner.sign_blocking(&input));
                if result.is_ok() {
                    self.inner.signed_in_place.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
            // A current-thread runtime has no other worker to take over: use its blocking pool.
            _ => {
                let inner = self.inner.clone();
                run_blocking(move || {
                    let _permit = permit;
                    inner.sign_blocking(&input)
                })
                .await
            }
        }
    }
}

impl Inner {
    fn lock_state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the pool inconsistent in a way that
        // matters (at worst a session is lost), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sign_context(&self) -> String {
        let label = self.lock_state().token.label.clone();
        format!("signing with key {} on token \"{label}\"", self.key.name())
    }

    /// Disposes of a session that will not be reused: closed if it may still be alive,
    /// forgotten if its handle died (see [`PoolState::forget_below`]).
    fn dispose(p: Pooled, forget_below: u64) {
        if p.epoch < forget_below {
            // Leaks one reference count of the module context, never a live session.
            std::mem::forget(p.session);
        } else {
            drop(p);
        }
    }

    /// Takes an idle session of the current epoch, or opens a new one.
    fn checkout(&self) -> Result<(Pooled, ObjectHandle), (Pkcs11Error, u64)> {
        let (stale, forget_below, epoch, handle, token) = {
            let mut st = self.lock_state();
            let mut stale = Vec::new();
            let mut found = None;
            while let Some(p) = st.idle.pop() {
                if p.epoch == st.epoch {
                    found = Some(p);
                    break;
                }
                stale.push(p);
            }
            let fb = st.forget_below;
            if let Some(p) = found {
                // The hot path: no allocation, one short lock.
                let handle = st.handle;
                drop(st);
                stale.into_iter().for_each(|s| Self::dispose(s, fb));
                return Ok((p, handle));
            }
            (stale, fb, st.epoch, st.handle, st.token.clone())
        };
        stale
            .into_iter()
            .for_each(|s| Self::dispose(s, forget_below));
        let session = token::open_session(&self.module, &token, false).map_err(|e| (e, epoch))?;
        self.sessions_opened.fetch_add(1, Ordering::Relaxed);
        token::ensure_login(
            &self.module,
            &token,
            &session,
            self.pin.as_ref(),
            Some(&self.logins),
        )
        .map_err(|e| (e, epoch))?;
        Ok((Pooled { session, epoch }, handle))
    }

    fn checkin(&self, p: Pooled) {
        let mut st = self.lock_state();
        if p.epoch == st.epoch {
            st.idle.push(p);
        } else {
            let fb = st.forget_below;
            drop(st);
            Self::dispose(p, fb);
        }
    }

    /// Rebuilds after a failure seen in `failed_epoch`: unless another thread already did.
    fn recover(&self, failed_epoch: u64, sessions_dead: bool) -> Result<(), Pkcs11Error> {
        let _guard = self.recovery.lock().unwrap_or_else(|p| p.into_inner());
        if self.lock_state().epoch != failed_epoch {
            return Ok(());
        }
        let token = token::find_token(&self.module, &self.token_selector)?;
        let session = token::open_session(&self.module, &token, false)?;
        self.sessions_opened.fetch_add(1, Ordering::Relaxed);
        token::ensure_login(
            &self.module,
            &token,
            &session,
            self.pin.as_ref(),
            Some(&self.logins),
        )?;
        let handle = object::refind(&session, &token, &self.key)?;
        let (old, fb) = {
            let mut st = self.lock_state();
            st.epoch += 1;
            st.handle = handle;
            st.token = token;
            let epoch = st.epoch;
            if sessions_dead {
                st.forget_below = epoch;
            }
            let old = std::mem::take(&mut st.idle);
            st.idle.push(Pooled { session, epoch });
            (old, st.forget_below)
        };
        old.into_iter().for_each(|p| Self::dispose(p, fb));
        self.recoveries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sign_blocking(&self, input: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let mechanism = self.mech.mechanism();
        let mut last: Option<Pkcs11Error> = None;
        for attempt in 0..self.max_attempts {
            if attempt > 1 {
                // Back off a little when the first rebuild did not help (a device coming
                // back, an HSM failing over): 20 ms, 40 ms, … at most 640 ms.
                std::thread::sleep(Duration::from_millis(20 << (attempt - 2).min(5)));
            }
            let (pooled, handle) = match self.checkout() {
                Ok(x) => x,
                Err((e, epoch)) if err_is_recoverable(&e) => {
                    let dead =
                        matches!(&e, Pkcs11Error::Call { source, .. } if session_is_dead(source));
                    last = Some(e);
                    if let Err(e) = self.recover(epoch, dead) {
                        if !err_is_recoverable(&e) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                    continue;
                }
                Err((e, _)) => return Err(e),
            };
            match pooled.session.sign(&mechanism, handle, input) {
                Ok(sig) => {
                    self.checkin(pooled);
                    self.signatures.fetch_add(1, Ordering::Relaxed);
                    return Ok(sig);
                }
                Err(e) if is_recoverable(&e) => {
                    let epoch = pooled.epoch;
                    let dead = session_is_dead(&e);
                    if dead {
                        // Its handle is gone; never close a number that may be reused.
                        std::mem::forget(pooled.session);
                    } else {
                        drop(pooled);
                    }
                    last = Some(Pkcs11Error::call(self.sign_context(), e));
                    if let Err(e) = self.recover(epoch, dead) {
                        if !err_is_recoverable(&e) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                }
                Err(e) => {
                    // The failed operation is over (C_Sign terminates it), so the session is
                    // still good.
                    self.checkin(pooled);
                    return Err(Pkcs11Error::call(self.sign_context(), e));
                }
            }
        }
        let token = self.lock_state().token.label.clone();
        Err(Pkcs11Error::RecoveryExhausted {
            token,
            attempts: self.max_attempts,
            last: Box::new(last.unwrap_or_else(|| {
                Pkcs11Error::Worker("no attempt was made (max_attempts is 0)".into())
            })),
        })
    }
}

impl Drop for Pkcs11Signer {
    /// Closes the idle sessions on a blocking thread when a Tokio runtime is there:
    /// `C_CloseSession` is FFI and, on a network HSM, a round trip.
    fn drop(&mut self) {
        let (idle, fb) = {
            let mut st = self.inner.lock_state();
            (std::mem::take(&mut st.idle), st.forget_below)
        };
        if idle.is_empty() {
            return;
        }
        let close = move || idle.into_iter().for_each(|p| Inner::dispose(p, fb));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(close);
            }
            Err(_) => close(),
        }
    }
}

#[async_trait]
impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.certificates
    }

    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        let raw = self.sign_raw(message).await?;
        if !self.inner.mech.returns_raw_ecdsa() {
            return Ok(Signature::new(raw));
        }
        let curve = self
            .inner
            .curve
            .ok_or_else(|| pkjwt_core::Error::BadSignature {
                alg: self.inner.algorithm,
                reason: "ECDSA mechanism without a curve".into(),
            })?;
        let der = pkjwt_core::ecdsa_fixed_to_der(&raw, curve).map_err(|e| {
            pkjwt_core::Error::from(Pkcs11Error::BadSignature {
                token: self.token_label(),
                alg: self.inner.algorithm,
                reason: e.to_string(),
            })
        })?;
        Ok(Signature::new(der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn which_errors_rebuild_the_pool() {
        let e = |rv| CkError::Pkcs11(rv, Function::Sign);
        for rv in [
            RvError::SessionHandleInvalid,
            RvError::SessionClosed,
            RvError::UserNotLoggedIn,
            RvError::DeviceRemoved,
            RvError::TokenNotPresent,
            RvError::ObjectHandleInvalid,
            RvError::KeyHandleInvalid,
        ] {
            assert!(is_recoverable(&e(rv)), "{rv:?}");
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::KeyFunctionNotPermitted,
            RvError::MechanismInvalid,
            RvError::DataLenRange,
            RvError::GeneralError,
        ] {
            assert!(!is_recoverable(&e(rv)), "{rv:?}");
        }
        // Only handle-level failures make the old sessions unsafe to close.
        assert!(session_is_dead(&e(RvError::SessionHandleInvalid)));
        assert!(!session_is_dead(&e(RvError::UserNotLoggedIn)));
    }
}
