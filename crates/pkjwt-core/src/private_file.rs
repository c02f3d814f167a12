//! The one way pkjwt writes and reads files that hold secrets or that it trusts: private keys,
//! PKCS#12 keystores, registrations (they hold a registration access token) and rotation states
//! (their key URIs name PKCS#11 modules that get loaded as shared libraries).
//!
//! Writing (issue 12, item 9):
//! - the file is created with `O_CREAT | O_EXCL` and mode 0600 from the start, so a planted file
//!   or symlink at that name is never followed or reused, and no moment exists in which the
//!   content is readable by others;
//! - a replacement is written to a temporary file with a random name in the same directory and
//!   renamed over the old one, so readers see the old or the new file, never half of one;
//! - the data and then the directory are flushed (`fsync`), so a crash after `save` returned
//!   cannot bring back the old file.
//!
//! Reading: the opened file (not the path, which could be swapped in between) must belong to the
//! effective user or to root and must not be writable by group or others; files that hold a
//! secret must not be readable by them either. The directory must not let others replace the
//! file (group- or world-writable without the sticky bit). The strict choice, with no opt-out:
//! the tools that write these files always write them that way.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// What to do when the file exists already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Refuse: the file may be the only copy of a key or a token.
    Never,
    /// Replace it atomically.
    Replace,
}

/// Who may read the file besides its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// The file holds a secret (a key, a token): nobody else may read or write it (0600/0400).
    Secret,
    /// The file is trusted but not secret (a rotation state): others may read it, nobody else
    /// may write it (at most 0644).
    Trusted,
}

/// Why a private file could not be written or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum PrivateFileError {
    /// [`Overwrite::Never`] and the file exists.
    Exists(PathBuf),
    /// The operating system refused `action`.
    Io {
        /// What pkjwt was doing: "create", "write", "replace", "read", …
        action: &'static str,
        /// The file (or directory).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file or its directory could be changed (or read) by someone else.
    Insecure {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl fmt::Display for PrivateFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateFileError::Exists(p) => write!(
                f,
                "{} exists; it is not overwritten (it may be the only copy of a key or token)",
                p.display()
            ),
            PrivateFileError::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            PrivateFileError::Insecure { path, reason } => {
                write!(f, "{}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for PrivateFileError {}

impl PrivateFileError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PrivateFileError::Exists(p) => p,
            PrivateFileError::Io { path, .. } | PrivateFileError::Insecure { path, .. } => path,
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PrivateFileError {
    let path = path.to_path_buf();
    move |source| PrivateFileError::Io {
        action,
        path,
        source,
    }
}

/// Writes `data` to `path` with mode 0600 (see the module doc for the guarantees).
pub fn write_private(
    path: &Path,
    data: &[u8],
    overwrite: Overwrite,
) -> Result<(), PrivateFileError> {
    match overwrite {
        Overwrite::Never => {
            let mut f = create_exclusive(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    PrivateFileError::Exists(path.to_path_buf())
                } else {
                    io("create", path)(e)
                }
            })?;
            f.write_all(data)
                .and_then(|_| f.sync_all())
                .map_err(io("write", path))?;
        }
        Overwrite::Replace => {
            let tmp = temporary_name(path)?;
            let mut f = create_exclusive(&tmp).map_err(io("create", &tmp))?;
            let written = f
                .write_all(data)
                .and_then(|_| f.sync_all())
                .map_err(io("write", &tmp))
                .and_then(|_| std::fs::rename(&tmp, path).map_err(io("replace", path)));
            if written.is_err() {
                // Best effort: the temporary file is ours (created exclusively) and private.
                let _ = std::fs::remove_file(&tmp);
            }
            written?;
        }
    }
    sync_directory(path)
}

/// Reads a file written by [`write_private`] (or by an operator following the same rules),
/// after checking its owner, its mode and its directory.
pub fn read_private(
    path: &Path,
    exposure: Exposure,
) -> Result<Zeroizing<Vec<u8>>, PrivateFileError> {
    let mut f = std::fs::File::open(path).map_err(io("read", path))?;
    // The checks are made on the opened file, so the path cannot be swapped after them.
    let meta = f.metadata().map_err(io("read", path))?;
    check_file(path, &meta, exposure)?;
    check_directory(path)?;
    let mut data = Zeroizing::new(Vec::with_capacity(meta.len().min(1 << 20) as usize));
    f.read_to_end(&mut data).map_err(io("read", path))?;
    Ok(data)
}

/// [`read_private`] of UTF-8 text.
pub fn read_private_text(
    path: &Path,
    exposure: Exposure,
) -> Result<Zeroizing<String>, PrivateFileError> {
    let mut bytes = read_private(path, exposure)?;
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
        // The bytes move into the error: wipe them there too.
        let mut v = e.into_bytes();
        zeroize::Zeroize::zeroize(&mut v);
        PrivateFileError::Insecure {
            path: path.to_path_buf(),
            reason: "the file is not UTF-8 text".into(),
        }
    })?;
    Ok(Zeroizing::new(text))
}

fn create_exclusive(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    // create_new = O_CREAT | O_EXCL: fails on any existing entry, a symlink included.
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// `.<name>.tmp-<64 random bits>` beside `path`: unpredictable, so nobody can plant it.
fn temporary_name(path: &Path) -> Result<PathBuf, PrivateFileError> {
    let name = path.file_name().ok_or_else(|| PrivateFileError::Insecure {
        path: path.to_path_buf(),
        reason: "not a file name".into(),
    })?;
    let mut r = [0u8; 8];
    getrandom::fill(&mut r).map_err(|_| PrivateFileError::Io {
        action: "name a temporary file for",
        path: path.to_path_buf(),
        source: std::io::Error::other("the operating system's random generator failed"),
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{:016x}", u64::from_be_bytes(r)));
    Ok(path.with_file_name(tmp))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Flushes the directory entry, so that a completed write survives a crash.
fn sync_directory(path: &Path) -> Result<(), PrivateFileError> {
    #[cfg(unix)]
    {
        let dir = parent(path);
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("flush the directory of", path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(unix)]
fn check_file(
    path: &Path,
    meta: &std::fs::Metadata,
    exposure: Exposure,
) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::MetadataExt;
    let insecure = |reason: String| PrivateFileError::Insecure {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.is_file() {
        return Err(insecure("not a regular file".into()));
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid && meta.uid() != 0 {
        return Err(insecure(format!(
            "the file belongs to user id {}, not to this user ({euid}) or root; another user \
             could have written it, so it is not trusted",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    let (forbidden, expected) = match exposure {
        Exposure::Secret => (0o077, "0600 or 0400 (run `chmod 600` on it)"),
        Exposure::Trusted => (
            0o022,
            "no write access for group or others (run `chmod 600` on it)",
        ),
    };
    if mode & forbidden != 0 {
        return Err(insecure(format!(
            "the file's mode is {mode:04o}, so other users can {} it; expected {expected}",
            if mode & 0o022 != 0 { "change" } else { "read" }
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_file(
    _path: &Path,
    _meta: &std::fs::Metadata,
    _exposure: Exposure,
) -> Result<(), PrivateFileError> {
    Ok(())
}

/// Others who can write the directory can rename another file over ours, unless the sticky bit
/// (as on /tmp) keeps them to their own entries.
#[cfg(unix)]
fn check_directory(path: &Path) -> Result<(), PrivateFileError> {
    use std::os::unix::fs::MetadataExt;
    let dir = parent(path);
    let meta = std::fs::metadata(dir).map_err(io("inspect the directory of", path))?;
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(PrivateFileError::Insecure {
            path: path.to_path_buf(),
            reason: format!(
                "its directory {} has mode {:04o}: other users could replace the file; expected \
                 a directory only its owner can write (or one with the sticky bit, like /tmp)",
                dir.display(),
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_directory(_path: &Path) -> Result<(), PrivateFileError> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> PathBuf {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).unwrap();
        let d = std::env::temp_dir().join(format!("pkjwt-pf-{:016x}", u64::from_ne_bytes(r)));
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn never_refuses_existing_files_and_symlinks() {
        let d = dir();
        let p = d.join("k.pem");
        write_private(&p, b"one", Overwrite::Never).unwrap();
        assert_eq!(mode(&p), 0o600);
        assert!(matches!(
            write_private(&p, b"two", Overwrite::Never),
            Err(PrivateFileError::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        // A dangling symlink planted at the name is not followed.
        let target = d.join("target");
        let link = d.join("link.pem");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_private(&link, b"x", Overwrite::Never).is_err());
        assert!(!target.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_is_private_and_ignores_planted_temporary_files() {
        let d = dir();
        let p = d.join("state.json");
        // An old file with a loose mode, and the names earlier versions used for their
        // temporary file (`<name>.tmp<pid>`), planted as a symlink to a victim file.
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        let victim = d.join("victim");
        std::fs::write(&victim, b"victim").unwrap();
        let planted = d.join(format!("state.json.tmp{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_private(&p, b"new", Overwrite::Replace).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            mode(&p),
            0o600,
            "the replacement is 0600 whatever the old file was"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reads_check_mode_and_directory() {
        let d = dir();
        let p = d.join("reg.json");
        write_private(&p, b"{}", Overwrite::Never).unwrap();
        assert_eq!(&*read_private(&p, Exposure::Secret).unwrap(), b"{}");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_private(&p, Exposure::Secret).unwrap_err().to_string();
        assert!(e.contains("mode is 0644") && e.contains("read"), "{e}");
        // A trusted (not secret) file may be world-readable, never writable by others.
        read_private(&p, Exposure::Trusted).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = read_private(&p, Exposure::Trusted).unwrap_err().to_string();
        assert!(e.contains("mode is 0664") && e.contains("change"), "{e}");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = read_private(&p, Exposure::Trusted).unwrap_err().to_string();
        assert!(e.contains("other users could replace the file"), "{e}");
        // The sticky bit (as on /tmp) keeps others to their own entries.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        read_private(&p, Exposure::Trusted).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reads_refuse_files_of_other_users() {
        // /etc/passwd belongs to root (accepted owner, mode 0644): fine as trusted, refused as
        // secret. A file of another non-root user cannot be made without privileges; when the
        // tests run as root, chown makes one.
        let passwd = Path::new("/etc/passwd");
        if passwd.exists() {
            read_private(passwd, Exposure::Trusted).unwrap();
            assert!(read_private(passwd, Exposure::Secret).is_err());
        }
        if rustix::process::geteuid().is_root() {
            let d = dir();
            let p = d.join("foreign.json");
            write_private(&p, b"{}", Overwrite::Never).unwrap();
            rustix::fs::chown(&p, Some(rustix::process::Uid::from_raw(65534)), None).unwrap();
            // root owns the directory; the file is nobody's: refused even though root could read it.
            // (root's own euid is 0, so only a non-root, non-self owner is refused.)
            let e = read_private(&p, Exposure::Trusted).unwrap_err().to_string();
            assert!(e.contains("belongs to user id 65534"), "{e}");
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}
