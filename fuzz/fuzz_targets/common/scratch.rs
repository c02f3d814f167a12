//! Scratch files for fuzz targets that must go through a path-based API.

use std::io::Write;
use std::path::Path;

/// A fresh private (0700) scratch directory `prefix<pid>` in /dev/shm (else the temporary
/// directory), after removing those of fuzzing processes that have exited.
pub fn dir(prefix: &str) -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    remove_stale(&base, prefix);
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod scratch directory");
    }
    dir
}

/// Writes `data` to `path` (created or truncated) with mode 0600: scratch inputs may be key
/// material.
pub fn write_private(path: &Path, data: &[u8]) {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .and_then(|mut file| file.write_all(data))
        .expect("write scratch file");
}

/// Removes scratch directories `prefix<pid>` left by fuzzing processes that have exited
/// (libFuzzer ends with `exit`, so a process cannot clean up after itself).
fn remove_stale(base: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
