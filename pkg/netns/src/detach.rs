//! Children that finish a plugin's last kernel wait after the plugin has answered.
//!
//! Releasing a netfilter socket right after a deletion waits out an RCU grace period
//! (see `rcni_firewall::nf::linger`). A runtime waits for the plugin's exit and for end of
//! file on its stdout, so a plugin that must not wait hands such a release to a forked
//! child that keeps open only the descriptors it needs. The child is never waited for:
//! when the plugin exits it is reparented (to init, or to the runtime if that is a child
//! subreaper), which reaps it.
//!
//! Only work that costs nobody else may be handed off this way. A link deletion is not:
//! the kernel unlists the device within a millisecond but acknowledges only after
//! `rcu_barrier()`, and a child finishing that barrier makes the next link deletion on
//! the host wait for it (measured 2026-11-23: the reference's bridge DEL right after such
//! a DEL took 37-43 ms instead of 17-19 ms), so DEL waits for its own deletion.

use std::io;
use std::os::fd::RawFd;

/// Forks a child that closes every descriptor except `keep` (stdin, stdout and stderr
/// included) and then runs `child`. Returns in the parent once the child exists.
///
/// # Safety
/// The caller may be multi-threaded, so `child` must make only async-signal-safe calls:
/// system calls on values prepared before the fork, no allocation, no locks, no panics.
/// It should end with `_exit`; if it returns, the child exits with status 127.
///
/// # Errors
/// fork(2) failed; nothing was started.
#[allow(unsafe_code)]
pub unsafe fn fork_detached(keep: &[RawFd], child: impl FnOnce()) -> io::Result<()> {
    let mut keep: Vec<libc::c_uint> = keep
        .iter()
        .filter_map(|fd| libc::c_uint::try_from(*fd).ok())
        .collect();
    keep.sort_unstable();
    // SAFETY: the child only closes descriptors and runs `child`, which the caller
    // guarantees to be async-signal-safe; it never returns into the parent's code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let mut low: libc::c_uint = 0;
            for &fd in &keep {
                if fd > low {
                    // SAFETY: closing descriptors the child owns; no memory is touched.
                    unsafe { close_range(low, fd - 1) };
                }
                low = fd + 1;
            }
            // SAFETY: as above.
            unsafe { close_range(low, libc::c_uint::MAX) };
            child();
            // SAFETY: ends the child without running anything of the parent's.
            unsafe { libc::_exit(127) }
        }
        _ => Ok(()),
    }
}

/// close_range(2) (Linux 5.9); on older kernels, one close(2) per descriptor up to a
/// bound past anything a plugin opens.
#[allow(unsafe_code)]
unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    // SAFETY: closing descriptors this (child) process owns; no memory is touched.
    unsafe {
        if libc::syscall(libc::SYS_close_range, first, last, 0) != 0 {
            for fd in first..=last.min(4096) {
                libc::close(libc::c_int::try_from(fd).unwrap_or(-1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::{AsRawFd, OwnedFd};

    use super::*;

    fn pipe() -> (std::fs::File, OwnedFd) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        (std::fs::File::from(r), w)
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_child_keeps_only_what_it_is_given() {
        // The child writes one byte per descriptor 0..64 it still has open.
        let (mut report, report_w) = pipe();
        let (mut other, other_w) = pipe();
        let fd = report_w.as_raw_fd();
        // SAFETY: the child only calls fcntl, write and _exit.
        unsafe {
            fork_detached(&[fd], move || {
                let mut open = [0u8; 64];
                for (i, slot) in open.iter_mut().enumerate() {
                    let i = libc::c_int::try_from(i).unwrap_or(0);
                    *slot = u8::from(libc::fcntl(i, libc::F_GETFD) != -1);
                }
                libc::write(fd, open.as_ptr().cast(), open.len());
                libc::_exit(0)
            })
        }
        .expect("fork");
        drop(report_w);
        drop(other_w);
        let mut open = Vec::new();
        report.read_to_end(&mut open).expect("read");
        let kept: Vec<usize> = (0..open.len()).filter(|i| open[*i] == 1).collect();
        assert_eq!(kept, vec![usize::try_from(fd).expect("fd")]);
        // Nobody else holds the other pipe's write end: end of file at once.
        let mut rest = Vec::new();
        assert_eq!(other.read_to_end(&mut rest).expect("eof"), 0);
    }
}
