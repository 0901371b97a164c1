//! A blocking NETLINK_ROUTE socket: one request at a time, replies matched by sequence
//! number, every request acknowledged, interrupted dumps retried.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::codec::{
    Msg, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_HDR_LEN, NLMSG_NOOP, NLMSG_OVERRUN,
};
use crate::error::{Error, Result};

/// One message of a reply: its type and what follows its `nlmsghdr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) kind: u16,
    pub(crate) payload: Vec<u8>,
}

/// Large enough for any datagram the kernel sends: dump skbs are capped at 32 KiB.
const RECV_BUF_LEN: usize = 64 * 1024;
/// How many times a dump interrupted by concurrent changes is started again (Go's
/// `netlinksafe` retries the same way).
pub(crate) const DUMP_ATTEMPTS: usize = 5;
const HEADER_LEN: usize = NLMSG_HDR_LEN;
/// `NLMSGERR_ATTR_MSG`: the extended-ack text.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A NETLINK_ROUTE socket bound in the namespace of the thread that created it.
#[derive(Debug)]
pub(crate) struct RouteSocket {
    socket: Socket,
    port: u32,
    seq: u32,
    buf: Vec<u8>,
    restarts: u64,
}

impl RouteSocket {
    /// Opens, binds and connects a socket with strict checking (so dump filters apply) and
    /// extended acks (so errors carry the kernel's explanation).
    pub(crate) fn new() -> io::Result<RouteSocket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        let addr = socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        socket.set_netlink_get_strict_chk(true)?;
        // Both exist since Linux 4.12; without them errors are plain errnos.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(RouteSocket {
            socket,
            port: addr.port_number(),
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF_LEN),
            restarts: 0,
        })
    }

    /// Sends one request (`NLM_F_REQUEST | NLM_F_ACK | flags`) and returns the messages the
    /// kernel answered before its ACK.
    pub(crate) fn request(&mut self, msg: &Msg, flags: u16) -> Result<Vec<Reply>> {
        let (replies, _) = self.exchange(msg, NLM_F_ACK | flags)?;
        Ok(replies)
    }

    /// Dumps (`NLM_F_DUMP`), starting again when the kernel flags the dump as interrupted by
    /// a concurrent change (`NLM_F_DUMP_INTR`), up to [`DUMP_ATTEMPTS`] times.
    pub(crate) fn dump(&mut self, msg: &Msg) -> Result<Vec<Reply>> {
        for _ in 0..DUMP_ATTEMPTS {
            let (replies, interrupted) = self.exchange(msg, NLM_F_DUMP)?;
            if !interrupted {
                return Ok(replies);
            }
            self.restarts += 1;
        }
        Err(Error::new(
            "",
            Some(libc::EINTR),
            format!("dump interrupted by concurrent changes {DUMP_ATTEMPTS} times"),
        ))
    }

    /// How many dumps were started again because they were interrupted.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts
    }

    fn send(&mut self, msg: &Msg, flags: u16) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = msg.finish(NLM_F_REQUEST | flags, self.seq);
        loop {
            match self.socket.send(&bytes, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io("sending netlink request", &e)),
            }
        }
    }

    fn recv(&mut self) -> Result<usize> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(Error::new(
                        "",
                        None,
                        format!("netlink reply of {n} bytes truncated"),
                    ));
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io("receiving netlink reply", &e)),
            }
        }
    }

    /// One request and its replies up to the ACK (or DONE for a dump). Returns whether any
    /// reply carried `NLM_F_DUMP_INTR`.
    fn exchange(&mut self, msg: &Msg, flags: u16) -> Result<(Vec<Reply>, bool)> {
        self.send(msg, flags)?;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let len = self.recv()?;
            let mut offset = 0;
            while offset + HEADER_LEN <= len {
                let Some(chunk) = self.buf.get(offset..len) else {
                    break;
                };
                let field = |at: usize| chunk.get(at..at + 4).and_then(crate::codec::u32_of);
                let (Some(msg_len), Some(seq), Some(port)) = (field(0), field(8), field(12)) else {
                    break;
                };
                let msg_len = msg_len as usize;
                if msg_len < HEADER_LEN || msg_len > chunk.len() {
                    return Err(Error::new(
                        "",
                        None,
                        format!("malformed netlink reply (length {msg_len})"),
                    ));
                }
                let kind = u16::from_ne_bytes([chunk[4], chunk[5]]);
                let msg_flags = u16::from_ne_bytes([chunk[6], chunk[7]]);
                let payload = &chunk[HEADER_LEN..msg_len];
                offset += msg_len.next_multiple_of(4);
                // Replies to an earlier request that failed half-way are left over; skip them.
                if seq != self.seq || (port != 0 && port != self.port) {
                    continue;
                }
                if msg_flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match kind {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                        if code == 0 {
                            return Ok((replies, interrupted));
                        }
                        let ack = extended_ack(payload.get(4..).unwrap_or_default(), msg_flags);
                        return Err(Error::with_ack("", -code, ack.as_deref()));
                    }
                    NLMSG_DONE => {
                        let code = payload
                            .get(..4)
                            .map_or(0, |c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
                        if code < 0 {
                            let ack = if msg_flags & NLM_F_ACK_TLVS != 0 {
                                ack_message(payload.get(4..).unwrap_or_default())
                            } else {
                                None
                            };
                            return Err(Error::with_ack("", -code, ack.as_deref()));
                        }
                        return Ok((replies, interrupted));
                    }
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => {
                        return Err(Error::new("", Some(libc::ENOBUFS), "netlink overrun"));
                    }
                    _ => replies.push(Reply {
                        kind,
                        payload: payload.to_vec(),
                    }),
                }
            }
        }
    }
}

/// The kernel's explanation in an error reply: after the echoed request (only its header
/// when `NLM_F_CAPPED`) come attributes, when `NLM_F_ACK_TLVS` is set.
fn extended_ack(payload: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        let len = payload.get(..4)?;
        u32::from_ne_bytes(len.try_into().ok()?) as usize
    };
    ack_message(payload.get(echoed.next_multiple_of(4)..)?)
}

/// Finds `NLMSGERR_ATTR_MSG` among extended-ack attributes.
fn ack_message(mut attrs: &[u8]) -> Option<String> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = attrs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + value.len()).expect("short attribute");
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    #[test]
    fn extended_ack_after_a_capped_header() {
        let mut payload = vec![0u8; HEADER_LEN];
        payload.extend(attr(4, &7u32.to_ne_bytes()));
        payload.extend(attr(NLMSGERR_ATTR_MSG, b"Unknown device type\0"));
        let got = extended_ack(&payload, NLM_F_CAPPED | NLM_F_ACK_TLVS);
        assert_eq!(got.as_deref(), Some("Unknown device type"));
    }

    #[test]
    fn extended_ack_after_a_full_echo() {
        let mut payload = 22u32.to_ne_bytes().to_vec();
        payload.resize(22, 0xee);
        payload.resize(24, 0);
        payload.extend(attr(NLMSGERR_ATTR_MSG, b"bad\0"));
        assert_eq!(
            extended_ack(&payload, NLM_F_ACK_TLVS).as_deref(),
            Some("bad")
        );
    }

    #[test]
    fn no_tlvs_flag_means_no_message() {
        let mut payload = vec![0u8; HEADER_LEN];
        payload.extend(attr(NLMSGERR_ATTR_MSG, b"ignored\0"));
        assert_eq!(extended_ack(&payload, NLM_F_CAPPED), None);
    }

    #[test]
    fn malformed_attributes_are_ignored() {
        assert_eq!(ack_message(&[1, 0, 1, 0]), None);
        assert_eq!(ack_message(&[200, 0, 1, 0, b'x']), None);
        assert_eq!(ack_message(&[]), None);
    }
}
