//! Deleting a link without waiting for the kernel's RCU barrier.
//!
//! The kernel unlists a device as soon as it takes the deletion, and announces it on the
//! namespace's `RTNLGRP_LINK` group (`RTM_DELLINK`) well under a millisecond later: from
//! then on the name is free, the index gone, a veth's peer gone with it and a bridge port
//! removed. It acknowledges the request only after `netdev_run_todo`'s `rcu_barrier()`,
//! 10–20 ms later here, which is most of a DEL.
//!
//! So [`start`] listens on the link group, forks a child that sends the deletion and
//! reports the kernel's answer through a pipe, and [`Deletion::wait`] returns at whichever
//! comes first: the announcement of the device's removal or the child's answer (an error,
//! or success when the announcement was lost). The child keeps only the route socket and
//! the pipe, so the runtime's pipes see end of file when the plugin exits; it exits after
//! the acknowledgement (see `rcni_netns::detach`).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::codec::{self, IfInfo, Msg, NLMSG_ERROR, NLMSG_HDR_LEN, RTM_DELLINK};
use crate::error::{Error, Result};
use crate::real::RealNetlink;

/// `RTMGRP_LINK`: link notifications.
const RTMGRP_LINK: u32 = 1;

/// A link deletion under way (see [`start`]).
#[must_use = "a deletion's outcome is known only from wait()"]
pub struct Deletion(Pending);

enum Pending {
    /// A child process sends the request; the device is gone when `watch` announces it.
    Child {
        index: u32,
        watch: Option<Socket>,
        answer: File,
    },
    /// No child could be made: a thread sends the request and waits for the answer.
    Thread(std::thread::JoinHandle<Result<()>>),
}

impl Deletion {
    /// Waits until the device is gone from its namespace; "not found" counts as done.
    ///
    /// # Errors
    /// The kernel refused the deletion.
    pub fn wait(self) -> Result<()> {
        match self.0 {
            Pending::Thread(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::new("deleting a link", None, "the thread panicked"))
            }),
            Pending::Child {
                index,
                watch,
                answer,
            } => wait_for_child(index, watch, answer),
        }
    }
}

/// A socket that hears the link announcements of the calling thread's namespace: made
/// next to the route socket that will delete, before the deletion is sent.
pub(crate) fn link_watch() -> io::Result<Socket> {
    let mut watch = Socket::new(NETLINK_ROUTE)?;
    watch.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
    Ok(watch)
}

/// Starts deleting link `index` through `nl`, a socket in the link's namespace, where
/// `watch` ([`link_watch`]) listens.
///
/// # Errors
/// Neither a child nor a thread could be started.
pub(crate) fn start(nl: RealNetlink, watch: io::Result<Socket>, index: u32) -> Result<Deletion> {
    let mut nl = nl;
    match watch.and_then(|watch| fork_deleter(&mut nl, watch, index)) {
        Ok(pending) => Ok(Deletion(pending)),
        Err(_) => std::thread::Builder::new()
            .name("del-link".into())
            .spawn(move || ignore_not_found(crate::Netlink::del_link(&mut nl, index)))
            .map(|t| Deletion(Pending::Thread(t)))
            .map_err(|e| Error::from_io("starting the link deletion", &e)),
    }
}

fn ignore_not_found(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// Forks the child that deletes link `index` through `nl` and answers through a pipe.
#[allow(unsafe_code)]
fn fork_deleter(nl: &mut RealNetlink, watch: Socket, index: u32) -> io::Result<Pending> {
    let (answer_r, answer_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (request, seq) = nl.prepare(&Msg::link(codec::RTM_DELLINK, IfInfo::index(index)));
    let sock = nl.raw_fd();
    let answer_fd = answer_w.as_raw_fd();
    // SAFETY: the child makes only system calls (send, recv, write, _exit) on the request
    // prepared above and a buffer on its stack.
    unsafe {
        rcni_netns::detach::fork_detached(&[sock, answer_fd], move || {
            let code = delete(sock, &request, seq);
            libc::write(answer_fd, (&raw const code).cast(), size_of::<i32>());
            libc::_exit(0)
        })?;
    }
    drop(answer_w);
    Ok(Pending::Child {
        index,
        watch: Some(watch),
        answer: File::from(answer_r),
    })
}

/// In the child: sends `request` on `sock` and returns the errno of the kernel's answer
/// (0 for success or "no such device"). Async-signal-safe: no allocation.
#[allow(unsafe_code)]
fn delete(sock: libc::c_int, request: &[u8], seq: u32) -> i32 {
    // SAFETY: plain system calls on a socket this process owns and buffers it owns.
    unsafe {
        while libc::send(sock, request.as_ptr().cast(), request.len(), 0) < 0 {
            let errno = *libc::__errno_location();
            if errno != libc::EINTR {
                return errno;
            }
        }
        let mut buf = [0u8; 8192];
        loop {
            let n = libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), 0);
            let Ok(n) = usize::try_from(n) else {
                let errno = *libc::__errno_location();
                if errno == libc::EINTR {
                    continue;
                }
                return errno;
            };
            if let Some(code) = ack_code(buf.get(..n).unwrap_or_default(), seq) {
                return if code == libc::ENODEV { 0 } else { code };
            }
        }
    }
}

/// The errno in the acknowledgement of request `seq` among the messages in `data`.
fn ack_code(mut data: &[u8], seq: u32) -> Option<i32> {
    while data.len() >= NLMSG_HDR_LEN {
        let len = codec::u32_of(&data[..4])? as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDR_LEN || len > data.len() {
            return None;
        }
        if kind == NLMSG_ERROR && codec::u32_of(&data[8..12]) == Some(seq) {
            let code = data.get(NLMSG_HDR_LEN..NLMSG_HDR_LEN + 4)?;
            return Some(-i32::from_ne_bytes(code.try_into().ok()?));
        }
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

/// Whether `data` announces the removal of link `index` (`RTM_DELLINK` in `AF_UNSPEC`; a
/// bridge sends `AF_BRIDGE` ones when a port leaves it).
fn announces_removal(mut data: &[u8], index: u32) -> bool {
    while data.len() >= NLMSG_HDR_LEN {
        let Some(len) = codec::u32_of(&data[..4]).map(|l| l as usize) else {
            return false;
        };
        if len < NLMSG_HDR_LEN || len > data.len() {
            return false;
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if kind == RTM_DELLINK
            && IfInfo::parse(&data[NLMSG_HDR_LEN..len])
                .is_some_and(|(ifi, _)| ifi.family == 0 && ifi.index == index)
        {
            return true;
        }
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    false
}

fn wait_for_child(index: u32, mut watch: Option<Socket>, mut answer: File) -> Result<()> {
    let failed = |e: &io::Error| Error::from_io("waiting for the link deletion", e);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let mut fds = vec![PollFd::new(answer.as_fd(), PollFlags::POLLIN)];
        if let Some(w) = &watch {
            fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(failed(&e.into())),
            Ok(_) => {}
        }
        let watch_ready = fds
            .get(1)
            .and_then(PollFd::revents)
            .is_some_and(|r| !r.is_empty());
        let answer_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        if watch_ready && let Some(w) = &watch {
            buf.clear();
            match w.recv(&mut buf, 0) {
                Ok(_) if announces_removal(&buf, index) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ENOBUFS: announcements were lost; the child's answer still comes.
                Err(_) => watch = None,
            }
        }
        if answer_ready {
            let mut code = [0u8; 4];
            return match answer.read(&mut code) {
                Ok(4) => match i32::from_ne_bytes(code) {
                    0 => Ok(()),
                    errno => Err(Error::from_errno("", errno)),
                },
                Ok(_) => Err(Error::new(
                    "",
                    None,
                    "the process deleting the link ended without an answer",
                )),
                Err(e) => Err(failed(&e)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(NLMSG_HDR_LEN + payload.len()).expect("len");
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn ifinfo(family: u8, index: u32) -> Vec<u8> {
        let mut b = vec![family, 0, 0, 0];
        b.extend_from_slice(&index.to_ne_bytes());
        b.extend_from_slice(&[0; 8]);
        b
    }

    #[test]
    fn the_ack_of_our_request_is_found_among_others() {
        let mut data = message(NLMSG_ERROR, 6, &(-libc::EPERM).to_ne_bytes());
        data.extend(message(NLMSG_ERROR, 7, &(-libc::EBUSY).to_ne_bytes()));
        assert_eq!(ack_code(&data, 7), Some(libc::EBUSY));
        assert_eq!(ack_code(&data, 8), None);
        assert_eq!(
            ack_code(&message(NLMSG_ERROR, 1, &0i32.to_ne_bytes()), 1),
            Some(0)
        );
    }

    #[test]
    fn only_the_links_own_removal_counts() {
        let other = message(RTM_DELLINK, 0, &ifinfo(0, 4));
        let bridge_port = message(RTM_DELLINK, 0, &ifinfo(7, 5));
        let change = message(codec::RTM_NEWLINK, 0, &ifinfo(0, 5));
        let mut data = [other, bridge_port, change].concat();
        assert!(!announces_removal(&data, 5));
        data.extend(message(RTM_DELLINK, 0, &ifinfo(0, 5)));
        assert!(announces_removal(&data, 5));
        assert!(!announces_removal(&data[..10], 5));
    }
}
