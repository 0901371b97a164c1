//! A blocking NETLINK_ROUTE socket: one request at a time, replies matched by sequence
//! number, every request acknowledged, interrupted dumps retried.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::error::{Error, Result};

/// Large enough for any datagram the kernel sends: dump skbs are capped at 32 KiB.
const RECV_BUF_LEN: usize = 64 * 1024;
/// How many times a dump interrupted by concurrent changes is started again (Go's
/// `netlinksafe` retries the same way).
pub(crate) const DUMP_ATTEMPTS: usize = 5;
/// `struct nlmsghdr`.
const HEADER_LEN: usize = 16;
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
    pub(crate) fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let (replies, _) = self.exchange(msg, NLM_F_ACK | flags, false)?;
        Ok(replies)
    }

    /// Dumps (`NLM_F_DUMP`), starting again when the kernel flags the dump as interrupted by
    /// a concurrent change (`NLM_F_DUMP_INTR`), up to [`DUMP_ATTEMPTS`] times.
    pub(crate) fn dump(&mut self, msg: &RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_ATTEMPTS {
            let (replies, interrupted) = self.exchange(msg.clone(), NLM_F_DUMP, true)?;
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

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::from(msg);
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
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
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        dump: bool,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        self.send(msg, flags)?;
        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let len = self.recv()?;
            let mut offset = 0;
            while offset < len {
                let Some(chunk) = self.buf.get(offset..len) else {
                    break;
                };
                let header = NetlinkBuffer::new_checked(chunk)
                    .map_err(|e| Error::new("", None, format!("malformed netlink reply: {e}")))?;
                let msg_len = header.length() as usize;
                let (seq, port, msg_flags) = (
                    header.sequence_number(),
                    header.port_number(),
                    header.flags(),
                );
                let raw = chunk.get(..msg_len).unwrap_or(chunk);
                offset += msg_len.next_multiple_of(4).max(HEADER_LEN);
                // Replies to an earlier request that failed half-way are left over; skip them.
                if seq != self.seq || (port != 0 && port != self.port) {
                    continue;
                }
                if msg_flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(raw) {
                    Ok(parsed) => parsed,
                    // One link or route we cannot decode must not fail a whole dump: the
                    // caller looks for its own objects, which we can decode.
                    Err(_) if dump => continue,
                    Err(e) => {
                        return Err(Error::new("", None, format!("decoding netlink reply: {e}")));
                    }
                };
                match parsed.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok((replies, interrupted)),
                        Some(code) => {
                            let ack = extended_ack(&e.header, msg_flags);
                            return Err(Error::with_ack("", -code.get(), ack.as_deref()));
                        }
                    },
                    NetlinkPayload::Done(done) => {
                        if done.code < 0 {
                            let ack = if msg_flags & NLM_F_ACK_TLVS != 0 {
                                ack_message(&done.extended_ack)
                            } else {
                                None
                            };
                            return Err(Error::with_ack("", -done.code, ack.as_deref()));
                        }
                        return Ok((replies, interrupted));
                    }
                    NetlinkPayload::Noop => {}
                    NetlinkPayload::Overrun(_) => {
                        return Err(Error::new("", Some(libc::ENOBUFS), "netlink overrun"));
                    }
                    _ => {}
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
