//! Tokens: picking the slot a URI names, and logging in once per token.
//!
//! Token labels, serials, manufacturers and models are fixed-width, space-padded fields in
//! `CK_TOKEN_INFO` (32 or 16 bytes). Real HSMs pad with spaces (some with NULs), so both sides of
//! every comparison are trimmed at the end before comparing. Slot ids are not stable (SoftHSM2
//! renumbers them when a token is initialized), so the label or serial is the reliable selector.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::{Slot, TokenInfo};
use cryptoki::types::AuthPin;
use pkjwt_core::Pkcs11Uri;

use crate::error::{Pkcs11Error, ckr_name};
use crate::module::Module;

/// Trims the padding PKCS#11 puts at the end of fixed-width text fields.
pub(crate) fn trim_padded(s: &str) -> &str {
    s.trim_end_matches([' ', '\0'])
}

/// The token attributes a URI selects by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TokenSelector {
    label: Option<String>,
    serial: Option<String>,
    manufacturer: Option<String>,
    model: Option<String>,
    slot_id: Option<u64>,
}

impl TokenSelector {
    pub(crate) fn from_uri(uri: &Pkcs11Uri) -> Self {
        TokenSelector {
            label: uri.token.clone(),
            serial: uri.serial.clone(),
            manufacturer: uri.manufacturer.clone(),
            model: uri.model.clone(),
            slot_id: uri.slot_id,
        }
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.label {
            parts.push(format!("token={v:?}"));
        }
        if let Some(v) = &self.serial {
            parts.push(format!("serial={v:?}"));
        }
        if let Some(v) = &self.manufacturer {
            parts.push(format!("manufacturer={v:?}"));
        }
        if let Some(v) = &self.model {
            parts.push(format!("model={v:?}"));
        }
        if let Some(v) = self.slot_id {
            parts.push(format!("slot-id={v}"));
        }
        if parts.is_empty() {
            "a URI without token attributes".into()
        } else {
            parts.join(";")
        }
    }

    fn matches(&self, slot: Slot, info: &TokenInfo) -> bool {
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref()
                .is_none_or(|w| trim_padded(w) == trim_padded(have))
        };
        eq(&self.label, info.label())
            && eq(&self.serial, info.serial_number())
            && eq(&self.manufacturer, info.manufacturer_id())
            && eq(&self.model, info.model())
            && self.slot_id.is_none_or(|s| s == slot.id())
    }
}

/// The token a signer uses: its slot and what it said about itself.
#[derive(Clone, Debug)]
pub(crate) struct TokenRef {
    pub(crate) slot: Slot,
    pub(crate) label: String,
    /// The serial number, trimmed: with the label, what identifies the token across slot
    /// renumbering (for the PIN refusal record).
    pub(crate) serial: String,
    pub(crate) login_required: bool,
    pub(crate) protected_auth_path: bool,
    pub(crate) max_sessions: Option<u64>,
}

fn summarize(slot: Slot, info: &TokenInfo) -> String {
    format!(
        "slot {} \"{}\" (serial {}, manufacturer {}, model {})",
        slot.id(),
        trim_padded(info.label()),
        trim_padded(info.serial_number()),
        trim_padded(info.manufacturer_id()),
        trim_padded(info.model()),
    )
}

/// Finds the one initialized token the selector matches. Blocking.
pub(crate) fn find_token(module: &Module, sel: &TokenSelector) -> Result<TokenRef, Pkcs11Error> {
    let ctx = module.ctx();
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| Pkcs11Error::call("listing the module's slots", e))?;
    let mut all = Vec::new();
    let mut hits = Vec::new();
    for slot in slots {
        let info = match ctx.get_token_info(slot) {
            Ok(i) => i,
            // A token removed between C_GetSlotList and C_GetTokenInfo is simply not there.
            Err(CkError::Pkcs11(RvError::TokenNotPresent | RvError::SlotIdInvalid, _)) => {
                continue;
            }
            Err(e) => return Err(Pkcs11Error::call("reading token information", e)),
        };
        if !info.token_initialized() {
            continue;
        }
        all.push(summarize(slot, &info));
        if sel.matches(slot, &info) {
            hits.push((slot, info));
        }
    }
    match hits.len() {
        1 => {
            let (slot, info) = hits.remove(0);
            Ok(TokenRef {
                slot,
                label: trim_padded(info.label()).to_string(),
                serial: trim_padded(info.serial_number()).to_string(),
                login_required: info.login_required(),
                protected_auth_path: info.protected_authentication_path(),
                max_sessions: info.max_session_count().into(),
            })
        }
        0 => Err(Pkcs11Error::TokenNotFound {
            wanted: sel.describe(),
            module: module.path().to_path_buf(),
            available: if all.is_empty() {
                "no initialized token".into()
            } else {
                all.join("; ")
            },
        }),
        n => Err(Pkcs11Error::AmbiguousToken {
            wanted: sel.describe(),
            count: n,
            candidates: hits
                .iter()
                .map(|(s, i)| summarize(*s, i))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// `C_Login` return values after which pkjwt never presents the same cached PIN again: the
/// PIN is wrong (`CKR_PIN_INCORRECT`: each retry counts towards locking the user PIN), the
/// token will not take any PIN until its security officer acts (`CKR_PIN_LOCKED`,
/// `CKR_PIN_EXPIRED`), or the PIN is malformed for this token (`CKR_PIN_INVALID`,
/// `CKR_PIN_LEN_RANGE`: the same value can never succeed, and some tokens count these too).
pub(crate) fn is_pin_refusal(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::PinInvalid
            | RvError::PinLenRange
    )
}

/// Makes sure the application is logged in to the session's token as the user.
///
/// Login state in PKCS#11 belongs to the application and token, not to one session: one
/// successful `C_Login` logs every session of the process in. So this first asks the session
/// whether it is already in a user state, and only then logs in, under a per-token lock so that
/// concurrent recoveries log in once. `CKR_USER_ALREADY_LOGGED_IN` is success (issue 9 of the
/// standards notes: another part of the process got there first).
///
/// PIN refusals ([`is_pin_refusal`]) are recorded per token in the [`Module`]. `pin_mark` is
/// [`Module::refusal_mark`] taken before `pin` was read: if the token refused a PIN since then,
/// `pin` is presumed stale too and `C_Login` is not called ([`Pkcs11Error::PinRefused`]). The
/// check and the call happen under the login lock, so concurrent callers holding the same stale
/// PIN make one attempt between them. `logins` counts each `C_Login` call, whatever its
/// outcome ([`Pkcs11Stats::logins`](crate::Pkcs11Stats::logins)). Blocking.
pub(crate) fn ensure_login(
    module: &Module,
    token: &TokenRef,
    session: &Session,
    pin: Option<&AuthPin>,
    pin_mark: u64,
    logins: Option<&AtomicU64>,
) -> Result<(), Pkcs11Error> {
    let logged_in = |s: &Session| {
        matches!(
            s.get_session_info().map(|i| i.session_state()),
            Ok(SessionState::RoUser | SessionState::RwUser)
        )
    };
    if logged_in(session) {
        return Ok(());
    }
    if pin.is_none() && !token.protected_auth_path {
        if token.login_required {
            return Err(Pkcs11Error::PinRequired {
                token: token.label.clone(),
            });
        }
        // A token that needs no login and was given no PIN: public use only.
        return Ok(());
    }
    let lock = module.login_lock(token.slot.id());
    let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if logged_in(session) {
        return Ok(());
    }
    if let Some(rv) = module.refused_since(&token.label, &token.serial, pin_mark) {
        return Err(Pkcs11Error::PinRefused {
            token: token.label.clone(),
            rv,
        });
    }
    if let Some(n) = logins {
        n.fetch_add(1, Ordering::Relaxed);
    }
    match session.login(UserType::User, pin) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(rv, _)) if is_pin_refusal(rv) => {
            module.record_refusal(&token.label, &token.serial, rv);
            Err(if rv == RvError::PinIncorrect {
                Pkcs11Error::PinIncorrect {
                    token: token.label.clone(),
                }
            } else {
                Pkcs11Error::PinUnusable {
                    token: token.label.clone(),
                    rv: ckr_name(rv),
                }
            })
        }
        Err(e) => Err(Pkcs11Error::call(
            format!("logging in to token \"{}\"", token.label),
            e,
        )),
    }
}

/// Opens a read-only session on the token. Blocking.
pub(crate) fn open_session(
    module: &Arc<Module>,
    token: &TokenRef,
    rw: bool,
) -> Result<Session, Pkcs11Error> {
    let r = if rw {
        module.ctx().open_rw_session(token.slot)
    } else {
        module.ctx().open_ro_session(token.slot)
    };
    r.map_err(|e| Pkcs11Error::call(format!("opening a session on token \"{}\"", token.label), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_trimmed() {
        assert_eq!(trim_padded("payments                        "), "payments");
        assert_eq!(trim_padded("payments\0\0\0"), "payments");
        assert_eq!(trim_padded("  lead"), "  lead");
    }

    #[test]
    fn which_login_errors_stop_the_pin() {
        for rv in [
            RvError::PinIncorrect,
            RvError::PinLocked,
            RvError::PinExpired,
            RvError::PinInvalid,
            RvError::PinLenRange,
        ] {
            assert!(is_pin_refusal(rv), "{rv:?}");
        }
        // Transient or unrelated: the PIN itself was not judged.
        for rv in [
            RvError::DeviceRemoved,
            RvError::SessionHandleInvalid,
            RvError::UserAlreadyLoggedIn,
            RvError::GeneralError,
            RvError::DeviceError,
        ] {
            assert!(!is_pin_refusal(rv), "{rv:?}");
        }
    }
}
