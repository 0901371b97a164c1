//! Releasing netfilter sockets once nf_tables no longer has deletions pending.
//!
//! Releasing the last reference to a `NETLINK_NETFILTER` socket makes the kernel flush
//! nf_tables' pending destroy work (`nft_rcv_nl_event`), which waits out an RCU grace
//! period (10–20 ms here) whenever a transaction, ours or anyone's, deleted something
//! just before, and it waits holding the namespace's commit mutex, so every other
//! transaction in the namespace waits too. A plugin releases its sockets when it exits,
//! right after its own deletion: the runtime waits for that exit, and the next plugin of
//! the chain for the mutex.
//!
//! So DEL keeps its sockets ([`keep`]) and [`hand_off`] forks a child holding copies of
//! them and nothing else. The plugin's exit then drops references that are not the last.
//! The child waits for one grace period (`membarrier(MEMBARRIER_CMD_GLOBAL)` is a
//! `synchronize_rcu()`), after which the destroy work queued by our deletion has run, and
//! only then exits, releasing the sockets with nothing left to flush (see
//! `rcni_netns::detach`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::nf::socket::NfSocket;

static KEPT: Mutex<Vec<NfSocket>> = Mutex::new(Vec::new());

/// Whether this process committed a deletion (see [`settle`]).
static DELETED: AtomicBool = AtomicBool::new(false);

/// `MEMBARRIER_CMD_GLOBAL`.
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;

/// Keeps `socket` open until [`hand_off`].
pub fn keep(socket: NfSocket) {
    KEPT.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(socket);
}

/// Records that this process committed an nf_tables deletion: its destroy work is
/// pending in the kernel for a grace period.
pub fn note_deletion() {
    DELETED.store(true, Ordering::Relaxed);
}

/// Waits until the kernel has run the destroy work of this process's deletions, if it
/// made any: releasing a fresh netfilter socket flushes it. A plugin whose DEL ends with
/// a longer wait of its own (a link deletion) calls this after it, so the last of that
/// work is paid for here, not by whichever tool next releases a netfilter socket on the
/// host (an ADD's `iptables-restore`, say). Without a deletion it does nothing.
pub fn settle() {
    if DELETED.swap(false, Ordering::Relaxed) {
        drop(NfSocket::open());
    }
}

/// Hands every kept socket to a child that releases them a grace period later, then
/// closes this process's copies. Without kept sockets it does nothing; if no child can
/// be made, the sockets are closed here, as they would have been.
pub fn hand_off() {
    let kept = std::mem::take(&mut *KEPT.lock().unwrap_or_else(PoisonError::into_inner));
    if kept.is_empty() {
        return;
    }
    let keep_fds: Vec<libc::c_int> = kept.iter().map(NfSocket::raw_fd).collect();
    fork_releaser(&keep_fds);
    drop(kept);
}

/// Forks a child that keeps only `keep`, waits for a grace period and exits.
#[allow(unsafe_code)]
fn fork_releaser(keep: &[libc::c_int]) {
    // SAFETY: the child calls only membarrier and _exit. If no child can be made, the
    // sockets are closed here, as they would have been.
    let _ = unsafe {
        rcni_netns::detach::fork_detached(keep, || {
            libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
            libc::_exit(0)
        })
    };
}
