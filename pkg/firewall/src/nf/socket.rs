//! A blocking NETLINK_NETFILTER socket and the message plumbing ctnetlink and nf_tables
//! requests share: one request (or one batch) at a time, replies matched by sequence number.
//!
//! Messages are built by hand: a `nlmsghdr`, a `nfgenmsg` (family, version 0, resource id)
//! and attributes; this is all either subsystem needs, and no crate covers both.

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

/// `struct nlmsghdr` and `struct nfgenmsg`.
pub const NLMSG_HDR_LEN: usize = 16;
pub const NFGEN_HDR_LEN: usize = 4;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
/// Set on dump replies when the dumped objects changed meanwhile.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const RECV_BUF_LEN: usize = 64 * 1024;

/// One received message's header fields that matter here.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
}

/// An open socket in the calling thread's network namespace.
pub struct NfSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NfSocket {
    pub fn open() -> io::Result<NfSocket> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(NfSocket {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUF_LEN),
        })
    }

    /// The descriptor, for [`crate::nf::linger`].
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.socket.as_raw_fd()
    }

    /// A new sequence number for the next message.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request and returns its sequence number.
    pub fn send(&mut self, kind: u16, flags: u16, family: u8, body: &[u8]) -> io::Result<u32> {
        let seq = self.next_seq();
        let msg = message(kind, flags, seq, family, 0, body);
        self.send_raw(&msg)?;
        Ok(seq)
    }

    /// Sends already built messages (a batch) in one datagram.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        loop {
            match self.socket.send(bytes, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The messages of the next datagram, with their payloads.
    pub fn recv(&mut self) -> io::Result<Vec<(Header, Vec<u8>)>> {
        loop {
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(io::Error::other(format!(
                        "netfilter netlink reply of {n} bytes truncated"
                    )));
                }
                Ok(n) => {
                    let data = self.buf.get(..n).unwrap_or_default();
                    return Ok(messages(data)
                        .into_iter()
                        .map(|(h, p)| (h, p.to_vec()))
                        .collect());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the acknowledgement of request `seq`.
    pub fn ack(&mut self, seq: u32) -> io::Result<()> {
        loop {
            for (header, payload) in self.recv()? {
                if header.seq == seq && header.kind == NLMSG_ERROR {
                    return check_ack(&payload);
                }
            }
        }
    }
}

/// One message: header, `nfgenmsg` (`res_id` in network order) and `body`.
pub fn message(kind: u16, flags: u16, seq: u32, family: u8, res_id: u16, body: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDR_LEN + NFGEN_HDR_LEN + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.push(family);
    msg.push(0);
    msg.extend_from_slice(&res_id.to_be_bytes());
    msg.extend_from_slice(body);
    msg
}

pub fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Appends one attribute, padded to 4 bytes.
pub fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len() + align(len) - len, 0);
}

/// Appends a NUL-terminated string attribute.
pub fn attr_str(buf: &mut Vec<u8>, kind: u16, value: &str) {
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    attr(buf, kind, &bytes);
}

/// Appends a nested attribute whose content `fill` writes.
pub fn nested(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    attr(buf, kind | NLA_F_NESTED, &inner);
}

/// The attributes in `data`: type (flags masked off), payload, and the whole attribute.
pub fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8], &[u8])> {
    let mut out = Vec::new();
    while let Some(head) = data.get(..4) {
        let len = usize::from(u16::from_ne_bytes([head[0], head[1]]));
        let kind = u16::from_ne_bytes([head[2], head[3]]) & NLA_TYPE_MASK;
        let (Some(whole), Some(payload)) = (data.get(..len), data.get(4..len)) else {
            break;
        };
        out.push((kind, payload, whole));
        data = data.get(align(len).max(4)..).unwrap_or_default();
    }
    out
}

/// The payload of the first attribute of type `kind`.
pub fn find(data: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(data)
        .into_iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, payload, _)| payload)
}

/// The netlink messages of one datagram, each with its payload.
fn messages(mut data: &[u8]) -> Vec<(Header, &[u8])> {
    let mut out = Vec::new();
    while let Some(head) = data.get(..NLMSG_HDR_LEN) {
        let word =
            |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let Ok(len) = usize::try_from(word(0)) else {
            break;
        };
        let header = Header {
            kind: u16::from_ne_bytes([head[4], head[5]]),
            flags: u16::from_ne_bytes([head[6], head[7]]),
            seq: word(8),
        };
        let Some(payload) = data.get(NLMSG_HDR_LEN..len) else {
            break;
        };
        out.push((header, payload));
        data = data
            .get(align(len).max(NLMSG_HDR_LEN)..)
            .unwrap_or_default();
    }
    out
}

/// `NLMSG_ERROR`: 0 is an acknowledgement, anything else the request's errno.
pub fn check_ack(payload: &[u8]) -> io::Result<()> {
    let errno = payload
        .get(..4)
        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    if errno == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(-errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip() {
        let mut buf = Vec::new();
        nested(&mut buf, 1, |t| {
            nested(t, 2, |p| {
                attr(p, 1, &[17]);
                attr(p, 3, &5353u16.to_be_bytes());
            });
            attr_str(t, 4, "abc");
        });
        assert_eq!(buf.len() % 4, 0);
        let top = attrs(&buf);
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].0, 1, "nested flag masked off");
        let inner = find(top[0].1, 2).expect("nested");
        assert_eq!(find(inner, 1), Some(&[17][..]));
        assert_eq!(find(inner, 3), Some(&5353u16.to_be_bytes()[..]));
        assert_eq!(find(top[0].1, 4), Some(&b"abc\0"[..]));
        assert!(attrs(&[1, 0]).is_empty(), "short input is no attribute");
    }

    #[test]
    fn messages_split_a_datagram() {
        let mut data = message(0x0a06, 0, 7, 2, 0, &[1, 2, 3]);
        data.resize(align(data.len()), 0);
        data.extend(message(NLMSG_DONE, NLM_F_DUMP_INTR, 7, 0, 0, &[]));
        let parsed = messages(&data);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].0.kind, 0x0a06);
        assert_eq!(parsed[0].1, [2, 0, 0, 0, 1, 2, 3]);
        assert_eq!(parsed[1].0.kind, NLMSG_DONE);
        assert_eq!(parsed[1].0.flags & NLM_F_DUMP_INTR, NLM_F_DUMP_INTR);
        assert!(messages(&[0; 8]).is_empty());
    }
}
