//! Network namespace handles, run-in-namespace guard, exec in a namespace, per-thread sysctl.
//!
//! `setns(2)` changes the namespace of the calling *thread* only (DESIGN §4). Everything here
//! works per thread: [`NetNs::current`] reads `/proc/thread-self/ns/net`, [`NetNs::run`]
//! enters a namespace on the calling thread and switches back when its `!Send` guard drops,
//! and [`sysctl`] writes land in the calling thread's namespace.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, setns};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

pub mod detach;
pub mod sysctl;

/// The calling thread's network namespace file.
pub const THREAD_SELF_NETNS: &str = "/proc/thread-self/ns/net";

/// `NS_GET_NSTYPE` (`_IO(0xb7, 0x3)`, linux/nsfs.h): which kind of namespace an nsfs file is.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

/// An open network namespace: the namespace file (which keeps it alive) and its path.
#[derive(Debug)]
pub struct NetNs {
    file: File,
    path: PathBuf,
}

impl NetNs {
    /// Opens `path` (e.g. `/run/netns/x`, `/proc/<pid>/ns/net`) and checks that it is a
    /// network namespace; a missing path is an `ENOENT` error (see [`is_missing`]).
    pub fn open(path: &Path) -> io::Result<NetNs> {
        let file = File::open(path)?;
        let not_netns = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a network namespace", path.display()),
            )
        };
        // The reference also accepts procfs, where namespace files lived before Linux 3.19;
        // on any kernel we run on, an opened namespace file is on nsfs.
        let fs = fstatfs(&file).map_err(io::Error::from)?.filesystem_type();
        if fs != NSFS_MAGIC {
            return Err(not_netns());
        }
        // The reference stops at the file system type; asking nsfs for the namespace type
        // also refuses a mount or user namespace file, which setns would reject later.
        // Kernels before 4.11 answer ENOTTY, and then the file system check must do.
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which `file` owns.
        let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
        if kind >= 0 && kind != libc::CLONE_NEWNET {
            return Err(not_netns());
        }
        Ok(NetNs {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The calling thread's current network namespace (`/proc/thread-self/ns/net`).
    pub fn current() -> io::Result<NetNs> {
        NetNs::open(Path::new(THREAD_SELF_NETNS))
    }

    /// The path this handle was opened from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open namespace file.
    #[must_use]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// True when both handles refer to the same namespace (same device and inode).
    #[must_use]
    pub fn same_as(&self, other: &NetNs) -> bool {
        match (self.file.metadata(), other.file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Moves the calling thread into this namespace until the returned guard drops.
    pub fn enter(&self) -> io::Result<NetNsGuard> {
        let previous = NetNs::current()?;
        setns(&self.file, CloneFlags::CLONE_NEWNET)?;
        Ok(NetNsGuard {
            previous,
            _not_send: PhantomData,
        })
    }

    /// Runs `f` on the calling thread inside this namespace, then switches back (also when
    /// `f` panics). Sockets created by `f` stay bound to this namespace.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> io::Result<T> {
        let guard = self.enter()?;
        let out = f();
        drop(guard);
        Ok(out)
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// Returned by [`NetNs::enter`]: switches the thread back to its previous namespace on drop.
///
/// It is `!Send` because the namespace belongs to the thread that entered it.
#[derive(Debug)]
pub struct NetNsGuard {
    previous: NetNs,
    _not_send: PhantomData<*const ()>,
}

impl Drop for NetNsGuard {
    fn drop(&mut self) {
        // A thread that cannot go back would do the rest of its work (and that of anything
        // reusing it) in the wrong namespace; stopping is the only safe answer.
        if let Err(e) = setns(&self.previous.file, CloneFlags::CLONE_NEWNET) {
            panic!(
                "cannot return to netns {}: {e}",
                self.previous.path.display()
            );
        }
    }
}

/// Makes `cmd`'s child enter `ns` before it execs (for `iptables-restore`, `nft`, `ip`).
///
/// The namespace fd is duplicated into the command, so `ns` may be dropped before spawning.
/// If it cannot be duplicated, spawning fails with that error.
pub fn command_in(ns: &NetNs, cmd: &mut Command) {
    let fd: Result<OwnedFd, i32> = ns
        .file
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EBADF));
    let enter = move || -> io::Result<()> {
        let fd = fd
            .as_ref()
            .map_err(|errno| io::Error::from_raw_os_error(*errno))?;
        // SAFETY: setns(2) is async-signal-safe and `fd` is owned by this closure, which
        // the Command keeps alive until after the fork.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: the hook only calls setns(2) on an fd it owns and allocates nothing when it
    // succeeds (the error path builds an io::Error from an errno, which does not allocate).
    unsafe {
        cmd.pre_exec(enter);
    }
}

/// True when `e` means "no such file" (`ENOENT`): DEL treats a vanished netns as success.
#[must_use]
pub fn is_missing(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT) || e.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_missing() {
        let e = NetNs::open(Path::new("/nonexistent/rcni/netns")).expect_err("must fail");
        assert!(is_missing(&e), "{e}");
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let e = NetNs::open(Path::new("/proc/self/status")).expect_err("must fail");
        assert!(!is_missing(&e));
        assert_eq!(
            e.to_string(),
            "/proc/self/status is not a network namespace"
        );
    }

    #[test]
    fn other_namespace_kind_is_not_a_netns() {
        let e = NetNs::open(Path::new("/proc/thread-self/ns/uts")).expect_err("must fail");
        assert_eq!(
            e.to_string(),
            "/proc/thread-self/ns/uts is not a network namespace"
        );
    }

    #[test]
    fn current_is_same_as_itself_and_main() {
        let a = NetNs::current().expect("current netns");
        let b = NetNs::open(Path::new("/proc/self/ns/net")).expect("process netns");
        assert!(a.same_as(&b));
        assert_eq!(a.path(), Path::new(THREAD_SELF_NETNS));
    }

    #[test]
    fn run_into_own_namespace_returns_value() {
        let ns = NetNs::current().expect("current netns");
        match ns.run(|| 42) {
            Ok(v) => assert_eq!(v, 42),
            // Entering needs CAP_SYS_ADMIN, even into the namespace we are in.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}"),
        }
    }

    #[test]
    fn is_missing_matches_only_enoent() {
        assert!(is_missing(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(!is_missing(&io::Error::from_raw_os_error(libc::EACCES)));
    }
}
