//! The random bytes of each `jti`: from the operating system, without a system call per
//! assertion, and never the same in a parent and its `fork()`ed child.
//!
//! # Design
//!
//! One `getrandom` call per `jti` costs 0.35–0.45 µs on a VM, about half of what pkjwt adds around
//! an Ed25519 signature. Each thread therefore keeps a pool of random bytes (255 `jti`s) filled by
//! one `getrandom` call and hands out 16 bytes at a time. A plain user-space pool would be unsafe:
//! `fork()` copies it, and parent and child would then send the same `jti`s, which a server that
//! remembers `jti`s rejects as replays (and which defeats the point of a `jti`).
//!
//! The pool and its fill level live in a page of their own, mapped privately and marked
//! `MADV_WIPEONFORK` (Linux ≥ 4.14), as AWS-LC and BoringSSL protect their random-generator state:
//! in a child created by `fork()` (or any `clone()` without `CLONE_VM`) the kernel hands out that
//! page zeroed. Because the fill level is in the same page, the child finds an empty pool and
//! fills its own from the kernel before its first `jti`. Nothing outside the page says whether the
//! pool is full, so no copied state can survive the wipe.
//!
//! Each 16-byte slot is overwritten with zeros as it is handed out and the level lowered first,
//! so the same bytes are never handed out twice; pools are per thread, so threads never share
//! bytes. Bytes go from the kernel into the page and from the page into the `jti`: no other copy.
//!
//! When the page cannot be protected — `madvise` refuses the advice (kernels before 4.14, or a
//! seccomp filter), `mmap` fails, the thread is shutting down, or the system is not Linux/Android
//! — every `jti` comes from its own `getrandom` call, as before this pool existed. There is no
//! unprotected pool in any case.
//!
//! # Limits
//!
//! - A copy of the whole machine or process state — a VM snapshot restored twice or cloned, a
//!   CRIU checkpoint restored twice — is not a fork and is not detected: both copies continue
//!   from the same pool, as with any user-space pool (and any user-space random generator
//!   without a VM generation counter). Up to 254 `jti`s can then repeat between the copies.
//! - `vfork()`/`posix_spawn()` children share the parent's memory until they `exec`; if such a
//!   child made a `jti` (it should call nothing but `exec`), the shared fill level would still keep
//!   parent and child from using the same slot.
//! - A signal handler that makes a `jti` while the same thread is inside this module would touch
//!   the pool reentrantly; making assertions from a signal handler is not supported (it also
//!   allocates).
//! - The mapping is one page per thread that has made a `jti`, returned when the thread exits.
//!   The unused bytes of the pool are future `jti`s; a `jti` is public once sent, so they are not
//!   treated as secrets (not locked, not excluded from core dumps).

use crate::{Error, Result};

/// 128 bits of `jti`.
pub(crate) const JTI_BYTES: usize = 16;

/// 128 random bits for one `jti`: from this thread's fork-protected pool where there is one,
/// else straight from the operating system.
pub(crate) fn jti_bytes() -> Result<[u8; JTI_BYTES]> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // `try_with` fails only while the thread's locals are being destroyed; `take` answers
        // `None` when this thread has no protected page. Both fall back to one call per jti.
        if let Ok(Some(taken)) = pool::POOL.try_with(|p| p.take()) {
            return taken;
        }
    }
    from_os()
}

/// One `getrandom` call for one `jti`.
fn from_os() -> Result<[u8; JTI_BYTES]> {
    let mut bytes = [0u8; JTI_BYTES];
    getrandom::fill(&mut bytes).map_err(os_error)?;
    Ok(bytes)
}

fn os_error(e: getrandom::Error) -> Error {
    Error::Assertion(format!("operating system random generator failed: {e}"))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod pool {
    use std::ptr::{self, NonNull};

    use rustix::mm::{self, Advice, MapFlags, ProtFlags};

    use super::{JTI_BYTES, os_error};
    use crate::Result;

    /// Bytes mapped per thread: one page on every Linux architecture (larger pages are mapped
    /// whole by the kernel; only these bytes are used).
    const MAP_LEN: usize = 4096;
    /// `jti`s per fill: as many as fit beside the fill level.
    pub(super) const SLOTS: usize = (MAP_LEN - size_of::<usize>()) / JTI_BYTES;

    /// The contents of the protected page. All zeros — a fresh mapping, or the page in a forked
    /// child — is an empty pool.
    #[repr(C)]
    struct Page {
        /// Slots `0..left` hold unused random bytes; the rest are used (zeroed) or, after a
        /// failed fill, partly written and never read. Lives in the page so that the kernel's
        /// wipe resets it together with the bytes.
        left: usize,
        slots: [[u8; JTI_BYTES]; SLOTS],
    }

    const _: () = assert!(size_of::<Page>() <= MAP_LEN);
    const _: () = assert!(align_of::<Page>() <= MAP_LEN);

    /// One thread's pool: the protected page, or `None` when it could not be protected (then
    /// every `jti` comes from its own `getrandom` call).
    pub(super) struct Pool {
        page: Option<NonNull<Page>>,
    }

    thread_local! {
        pub(super) static POOL: Pool = Pool { page: map_wipe_on_fork() };
    }

    #[cfg(test)]
    thread_local! {
        /// Test hook: makes `madvise(MADV_WIPEONFORK)` count as refused for the pool this thread
        /// creates, as on a kernel before 4.14. Set it before the thread's first `jti`.
        pub(super) static REFUSE_WIPE_ON_FORK: std::cell::Cell<bool> =
            const { std::cell::Cell::new(false) };
    }

    /// Maps a zeroed private page and marks it wipe-on-fork; `None` if either step fails (a
    /// refused advice unmaps the page again: an unprotected pool is never used).
    #[allow(unsafe_code)]
    fn map_wipe_on_fork() -> Option<NonNull<Page>> {
        // SAFETY: a new private anonymous mapping at an address the kernel chooses (hint null,
        // no MAP_FIXED), so it cannot overlap memory anything else owns. It is zero-filled.
        let addr = unsafe {
            mm::mmap_anonymous(
                ptr::null_mut(),
                MAP_LEN,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .ok()?;
        #[cfg(test)]
        let refused = REFUSE_WIPE_ON_FORK.with(|r| r.get());
        #[cfg(not(test))]
        let refused = false;
        let advised = if refused {
            Err(rustix::io::Errno::INVAL)
        } else {
            // SAFETY: `addr..addr + MAP_LEN` is exactly the mapping made above, owned here and
            // not yet used; the advice only changes what a forked child will find there.
            unsafe { mm::madvise(addr, MAP_LEN, Advice::LinuxWipeOnFork) }
        };
        if advised.is_err() {
            // SAFETY: unmaps the mapping made above, which nothing else refers to.
            // A failure would leak one page and changes nothing for correctness.
            let _ = unsafe { mm::munmap(addr, MAP_LEN) };
            return None;
        }
        NonNull::new(addr.cast::<Page>())
    }

    impl Pool {
        /// The next `jti` from the pool, filling it first when empty; `None` when this thread
        /// has no protected page.
        #[allow(unsafe_code)]
        pub(super) fn take(&self) -> Option<Result<[u8; JTI_BYTES]>> {
            let page = self.page?;
            // SAFETY: `page` points at a live mapping of MAP_LEN ≥ size_of::<Page>() bytes,
            // page-aligned (≥ align_of::<Page>()), readable and writable, and unmapped only when
            // this thread-local is dropped. Any bytes are a valid `Page` (integers only). The
            // pool is thread-local and `take` is not reentrant (it calls only getrandom), so
            // this is the only reference to the page while it lives.
            let page = unsafe { &mut *page.as_ptr() };
            if page.left == 0 || page.left > SLOTS {
                if let Err(e) = getrandom::fill(page.slots.as_flattened_mut()) {
                    // Empty: the partly filled slots are never handed out, only overwritten by
                    // the next fill.
                    page.left = 0;
                    return Some(Err(os_error(e)));
                }
                page.left = SLOTS;
            }
            page.left -= 1;
            let slot = &mut page.slots[page.left];
            let jti = *slot;
            *slot = [0; JTI_BYTES];
            Some(Ok(jti))
        }

        /// Unused `jti`s in this thread's pool, as the page says (0 right after a fork); `None`
        /// without a protected page.
        #[cfg(test)]
        #[allow(unsafe_code)]
        pub(super) fn left(&self) -> Option<usize> {
            // SAFETY: as in `take`: a live, aligned mapping only this thread uses, and no
            // reference to it is held across this read.
            self.page.map(|p| unsafe { (*p.as_ptr()).left })
        }

        /// A copy of the slots (tests check that used ones are zero).
        #[cfg(test)]
        #[allow(unsafe_code)]
        pub(super) fn slots(&self) -> Option<[[u8; JTI_BYTES]; SLOTS]> {
            // SAFETY: as in `left`.
            self.page.map(|p| unsafe { (*p.as_ptr()).slots })
        }
    }

    impl Drop for Pool {
        #[allow(unsafe_code)]
        fn drop(&mut self) {
            if let Some(page) = self.page.take() {
                // SAFETY: the mapping belongs to this thread-local, which is being destroyed;
                // after this no `take` can reach it (`try_with` fails from now on).
                let _ = unsafe { mm::munmap(page.as_ptr().cast(), MAP_LEN) };
            }
        }
    }
}

#[cfg(test)]
#[cfg(any(target_os = "linux", target_os = "android"))]
mod tests {
    use std::collections::HashSet;
    use std::io::{Read, Write};

    use super::pool::{POOL, REFUSE_WIPE_ON_FORK, SLOTS};
    use super::*;

    /// What a forked child reported: its pool's fill level before its first `jti` (`None`: no
    /// protected page) and its next `jti`s.
    struct ChildReport {
        left_after_fork: Option<usize>,
        jtis: Vec<[u8; JTI_BYTES]>,
    }

    /// The child's side: only system calls and no allocation (the parent's other threads may
    /// hold the allocator's locks at the fork).
    fn child_body(out: &mut std::io::PipeWriter, n: usize) -> bool {
        let left = POOL.with(|p| p.left()).map_or(u64::MAX, |l| l as u64);
        if out.write_all(&left.to_le_bytes()).is_err() {
            return false;
        }
        for _ in 0..n {
            match jti_bytes() {
                Ok(jti) if out.write_all(&jti).is_ok() => {}
                _ => return false,
            }
        }
        true
    }

    /// Forks a real child process (`fork()`, not a new process image) that reports through a
    /// pipe and leaves with `_exit`.
    #[allow(unsafe_code)]
    fn fork_child(n: usize) -> ChildReport {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        // SAFETY: the child runs only `child_body` (reads this thread's initialised locals,
        // getrandom and write system calls, no allocation or locks) and then `_exit`, so the
        // state of the parent's other threads copied mid-flight is never used.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                child_body(&mut writer, n)
            }))
            .unwrap_or(false);
            // SAFETY: ends the child at once, without running the test harness or destructors
            // it copied from the parent.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        drop(writer);
        let mut buf = Vec::new();
        reader.read_to_end(&mut buf).unwrap();
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid place for its status.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child failed (status {status:#x})"
        );
        assert_eq!(buf.len(), 8 + n * JTI_BYTES, "the child's report");
        let left = u64::from_le_bytes(buf[..8].try_into().unwrap());
        ChildReport {
            left_after_fork: (left != u64::MAX).then_some(left as usize),
            jtis: buf[8..]
                .chunks_exact(JTI_BYTES)
                .map(|c| c.try_into().unwrap())
                .collect(),
        }
    }

    /// Fills this thread's source, forks, and checks that the child's next `jti`s are none of
    /// the parent's next ones (the parent draws a whole pool's worth and more). Returns the
    /// child's report.
    fn fork_after_first_jti() -> ChildReport {
        let first = jti_bytes().unwrap();
        let protected = POOL.with(|p| p.left());
        // This kernel (Linux ≥ 4.14) honours MADV_WIPEONFORK unless the test hook refuses it.
        let refused = REFUSE_WIPE_ON_FORK.with(|r| r.get());
        let want = if refused { None } else { Some(SLOTS - 1) };
        assert_eq!(
            protected, want,
            "a pool, filled by the first jti, unless refused"
        );
        let child = fork_child(3);
        let parent: HashSet<[u8; JTI_BYTES]> =
            (0..SLOTS + 1).map(|_| jti_bytes().unwrap()).collect();
        assert_eq!(parent.len(), SLOTS + 1, "the parent's jtis are distinct");
        assert!(!parent.contains(&first));
        for (i, jti) in child.jtis.iter().enumerate() {
            assert!(
                !parent.contains(jti) && *jti != first,
                "the child's jti #{i} after fork() is also one of the parent's"
            );
        }
        assert_ne!(child.jtis[0], child.jtis[1]);
        child
    }

    #[test]
    fn forked_child_refills_instead_of_repeating_the_parents_jtis() {
        // A thread of its own, so that its pool is fresh whatever ran before on the test thread.
        std::thread::spawn(|| {
            let child = fork_after_first_jti();
            assert_eq!(
                child.left_after_fork,
                Some(0),
                "the kernel wiped the child's copy of the page, fill level included"
            );
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }

    #[test]
    fn refused_wipe_on_fork_means_one_getrandom_per_jti_never_an_unprotected_pool() {
        std::thread::spawn(|| {
            REFUSE_WIPE_ON_FORK.with(|r| r.set(true));
            let jtis: HashSet<_> = (0..1000).map(|_| jti_bytes().unwrap()).collect();
            assert_eq!(jtis.len(), 1000);
            assert_eq!(
                POOL.with(|p| p.left()),
                None,
                "no pool without the protection"
            );
            let child = fork_after_first_jti();
            assert_eq!(child.left_after_fork, None);
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }

    #[test]
    fn jtis_are_unique_across_threads_and_refills() {
        const THREADS: usize = 8;
        const EACH: usize = 4 * SLOTS + 7;
        let all: Vec<Vec<[u8; JTI_BYTES]>> = (0..THREADS)
            .map(|_| std::thread::spawn(|| (0..EACH).map(|_| jti_bytes().unwrap()).collect()))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        let unique: HashSet<_> = all.iter().flatten().collect();
        assert_eq!(unique.len(), THREADS * EACH, "no jti was handed out twice");
    }

    #[test]
    fn used_slots_are_zeroed_and_unused_ones_random() {
        std::thread::spawn(|| {
            for drawn in 1..=SLOTS + 3 {
                let jti = jti_bytes().unwrap();
                let left = POOL.with(|p| p.left()).unwrap();
                assert_eq!(left, (SLOTS - drawn % SLOTS) % SLOTS);
                let slots = POOL.with(|p| p.slots()).unwrap();
                assert!(slots[left..].iter().all(|s| *s == [0; JTI_BYTES]));
                assert!(
                    !slots[..left].contains(&jti),
                    "the jti handed out is not kept"
                );
                assert!(!slots[..left].contains(&[0; JTI_BYTES]));
            }
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}
