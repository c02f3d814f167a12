//! PKCS#11 modules: finding the library, the allow-list, and one initialized context per module
//! per process.
//!
//! `C_Initialize` may be called once per process; a second `cryptoki::Pkcs11` for the same
//! library would either fail (`CKR_CRYPTOKI_ALREADY_INITIALIZED`) or, worse, a `C_Finalize` from
//! one owner would tear down every other owner's sessions. So every signer in the process goes
//! through [`Module::load`], which keeps one [`Module`] per canonical library path for the life
//! of the process and never finalizes it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use pkjwt_core::Pkcs11Uri;

use crate::Pkcs11Options;
use crate::error::{Pkcs11Error, ckr_name};

/// Environment variable with a colon-separated list of module paths that may be loaded.
pub const ALLOWED_MODULES_ENV: &str = "PKJWT_PKCS11_ALLOWED_MODULES";
/// Environment variable naming the module used when the URI names none.
pub const DEFAULT_MODULE_ENV: &str = "PKJWT_PKCS11_MODULE";

/// Directories searched for `module-name=NAME` (as `NAME.so`, `libNAME.so`, or `NAME`).
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/local/lib/pkcs11",
    "/usr/lib/softhsm",
    "/usr/local/lib/softhsm",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/opt/cloudhsm/lib",
];

/// One loaded and initialized PKCS#11 library.
pub(crate) struct Module {
    path: PathBuf,
    ctx: Pkcs11,
    /// One lock per slot, held while logging in, so that concurrent recoveries on one token do
    /// not race each other's `C_Login` (login state is per application and token).
    login_locks: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    /// Counts the PINs any token of this module refused (terminal `C_Login` errors, see
    /// [`crate::token::is_pin_refusal`]). A signer notes the count before it reads its PIN; a
    /// refusal on its token after that means its cached PIN is presumed stale too.
    refusals: AtomicU64,
    /// Per token (label and serial: slot ids change), the count after its latest refusal and
    /// the return value.
    refused: Mutex<HashMap<(String, String), (u64, RvError)>>,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Module>>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
    MODULES.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Module {
    /// The library path, canonical.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The cryptoki context.
    pub(crate) fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The login lock for a slot.
    pub(crate) fn login_lock(&self, slot: u64) -> Arc<Mutex<()>> {
        let mut map = self
            .login_locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(slot).or_default().clone()
    }

    /// The refusal count now: taken before a PIN is read, passed to
    /// [`crate::token::ensure_login`] with it.
    pub(crate) fn refusal_mark(&self) -> u64 {
        self.refusals.load(Ordering::SeqCst)
    }

    /// The return value of the latest PIN refusal on the token `label`/`serial` (trimmed, as
    /// the token reports them) after `mark`, if any.
    ///
    /// The token is named by its two fields rather than by `crate::token::TokenRef` so that this
    /// module, which the token module builds on, does not import it back.
    pub(crate) fn refused_since(&self, label: &str, serial: &str, mark: u64) -> Option<RvError> {
        let map = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(label.to_owned(), serial.to_owned()))
            .filter(|(at, _)| *at > mark)
            .map(|(_, rv)| *rv)
    }

    /// Records that the token `label`/`serial` refused a PIN with `rv`.
    pub(crate) fn record_refusal(&self, label: &str, serial: &str, rv: RvError) {
        let mut map = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let at = self.refusals.fetch_add(1, Ordering::SeqCst) + 1;
        map.insert((label.to_owned(), serial.to_owned()), (at, rv));
    }

    /// Resolves the module the URI names, checks the allow-list, and returns the process-wide
    /// context for it (loading and initializing it on first use). Blocking.
    pub(crate) fn load(uri: &Pkcs11Uri, opts: &Pkcs11Options) -> Result<Arc<Module>, Pkcs11Error> {
        let path = resolve_path(uri, opts)?;
        check_allowed(&path, opts)?;
        if !path.exists() {
            return Err(Pkcs11Error::ModuleNotFound { path });
        }
        let canonical = std::fs::canonicalize(&path).map_err(|e| Pkcs11Error::NotAModule {
            path: path.clone(),
            reason: format!("cannot resolve the path: {e}"),
        })?;
        if !canonical.is_file() {
            return Err(Pkcs11Error::NotAModule {
                path,
                reason: "it is not a regular file".into(),
            });
        }
        // The registry lock is held while loading so that two threads opening the first signer
        // of a module at once do not both call C_Initialize.
        let mut map = registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(m) = map.get(&canonical) {
            return Ok(m.clone());
        }
        let ctx = Pkcs11::new(&canonical).map_err(|e| Pkcs11Error::NotAModule {
            path: path.clone(),
            reason: match e {
                CkError::LibraryLoading(le) => format!("the dynamic loader refused it: {le}"),
                CkError::MissingSymbol(s) => {
                    format!("it is a shared library but does not export {s}")
                }
                other => other.to_string(),
            },
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Someone else in this process (another library using the same module) initialized
            // it; the module is usable, and we must not finalize it.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(CkError::Pkcs11(rv, _)) => {
                let softhsm = canonical.to_string_lossy().contains("softhsm");
                return Err(Pkcs11Error::ModuleInit {
                    path,
                    rv: ckr_name(rv),
                    hint: if softhsm && rv == RvError::GeneralError {
                        "; SoftHSM2 says this when its configuration is missing or wrong: set \
                         SOFTHSM2_CONF to a file with directories.tokendir = <existing directory>"
                    } else {
                        ""
                    },
                });
            }
            Err(other) => {
                return Err(Pkcs11Error::NotAModule {
                    path,
                    reason: format!("C_Initialize failed: {other}"),
                });
            }
        }
        let module = Arc::new(Module {
            path: canonical.clone(),
            ctx,
            login_locks: Mutex::new(HashMap::new()),
            refusals: AtomicU64::new(0),
            refused: Mutex::new(HashMap::new()),
        });
        map.insert(canonical, module.clone());
        Ok(module)
    }
}

fn resolve_path(uri: &Pkcs11Uri, opts: &Pkcs11Options) -> Result<PathBuf, Pkcs11Error> {
    if let Some(p) = &uri.module_path {
        return Ok(p.clone());
    }
    if let Some(name) = &uri.module_name {
        if name.contains('/') {
            return Err(Pkcs11Error::ModuleNameNotFound {
                name: name.clone(),
                searched: "nowhere (a module-name is a file name without directories; use \
                           module-path= for a path)"
                    .into(),
            });
        }
        for dir in MODULE_DIRS {
            for file in [format!("{name}.so"), format!("lib{name}.so"), name.clone()] {
                let p = Path::new(dir).join(file);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        return Err(Pkcs11Error::ModuleNameNotFound {
            name: name.clone(),
            searched: MODULE_DIRS.join(", "),
        });
    }
    if let Some(p) = &opts.default_module {
        return Ok(p.clone());
    }
    match std::env::var_os(DEFAULT_MODULE_ENV) {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => Err(Pkcs11Error::NoModule {
            uri: uri.to_string(),
        }),
    }
}

fn check_allowed(path: &Path, opts: &Pkcs11Options) -> Result<(), Pkcs11Error> {
    let (list, from): (Vec<PathBuf>, &'static str) = if let Some(l) = &opts.allowed_modules {
        (l.clone(), "Pkcs11Options::allowed_modules")
    } else {
        match std::env::var_os(ALLOWED_MODULES_ENV) {
            Some(v) if !v.is_empty() => (
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect(),
                ALLOWED_MODULES_ENV,
            ),
            _ => return Ok(()),
        }
    };
    // Compare canonical forms when they exist, so that a symlink to an allowed module is the
    // allowed module, and `..` tricks are not.
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let wanted = canon(path);
    if list.iter().any(|a| canon(a) == wanted) {
        return Ok(());
    }
    Err(Pkcs11Error::ModuleNotAllowed {
        path: path.to_path_buf(),
        allowed_from: from,
        allowed: list
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Pkcs11Uri {
        match pkjwt_core::KeyUri::parse(s) {
            Ok(pkjwt_core::KeyUri::Pkcs11(p)) => p,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn allow_list_from_options() {
        let dir = std::env::temp_dir().join(format!("pkjwt-p11-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.so");
        std::fs::write(&a, b"x").unwrap();
        let opts = Pkcs11Options::default().allowed_modules(vec![a.clone()]);
        assert!(check_allowed(&a, &opts).is_ok());
        let e = check_allowed(&dir.join("b.so"), &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.so") && e.contains("a.so"), "{e}");
        let u = uri(&format!(
            "pkcs11:object=k?module-path={}",
            dir.join("b.so").display()
        ));
        let e = Module::load(&u, &opts).unwrap_err();
        assert!(matches!(e, Pkcs11Error::ModuleNotAllowed { .. }), "{e}");
    }

    #[test]
    fn missing_and_bogus_modules() {
        let opts = Pkcs11Options::default();
        let u = uri("pkcs11:object=k?module-path=/nonexistent/libnothing.so");
        assert!(matches!(
            Module::load(&u, &opts),
            Err(Pkcs11Error::ModuleNotFound { .. })
        ));
        let dir = std::env::temp_dir().join(format!("pkjwt-p11-bogus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("not-a-module.so");
        std::fs::write(&f, b"this is text, not ELF").unwrap();
        let u = uri(&format!("pkcs11:object=k?module-path={}", f.display()));
        let e = Module::load(&u, &opts).unwrap_err();
        assert!(matches!(e, Pkcs11Error::NotAModule { .. }), "{e}");
        let u = uri("pkcs11:object=k?module-name=surely-no-such-module");
        let e = Module::load(&u, &opts).unwrap_err().to_string();
        assert!(
            e.contains("surely-no-such-module") && e.contains("/usr/lib"),
            "{e}"
        );
    }
}
