//! Deleting one container's nftables portmap rules over nf_tables netlink, for DEL.
//!
//! nft can only delete a rule by handle, so the reference (and
//! `rcni_firewall::NftablesPortmap`) lists the chains with `nft`, which renders every rule
//! of the table: ~60 ms per family with 500 mapped pods, growing with each. The kernel's
//! own dump of one chain (`NFT_MSG_GETRULE`, filtered by table and chain) carries each
//! rule's handle and comment (the `NFTNL_UDATA_RULE_COMMENT` in its user data) and costs a
//! fraction of that; the matching rules are then deleted by handle in one batch, as one
//! transaction.

use std::io;
use std::net::IpAddr;

use crate::nf::abi::*;
use crate::nf::socket::{
    NFGEN_HDR_LEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NfSocket, attr,
    attr_str, attrs, check_ack, find, message,
};

/// libnftnl's user data TLV holding the rule comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// How often a dump interrupted by concurrent changes, or a batch that raced with another
/// DEL, is tried again.
const ATTEMPTS: usize = 3;

#[cfg(test)]
thread_local! {
    static OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread's lookups find nothing and its rule writes not attempted, so tests
/// reach the `iptables-restore` and `nft` paths that iptables-legacy hosts take.
#[cfg(test)]
pub(crate) fn off_on_this_thread() {
    OFF.with(|o| o.set(true));
}

pub(crate) fn off() -> bool {
    #[cfg(test)]
    {
        OFF.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// `NFPROTO_INET`, `NFPROTO_IPV4` or `NFPROTO_IPV6`: the `inet`, `ip` and `ip6` table
/// families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFamily {
    Inet,
    Ip,
    Ip6,
}

impl TableFamily {
    fn nfproto(self) -> u8 {
        match self {
            TableFamily::Inet => 1,
            TableFamily::Ip => 2,
            TableFamily::Ip6 => 10,
        }
    }
}

/// True when `family`'s `table` has no chain `chain` or the chain has no rules: one dump,
/// no `nft` process. The socket is handed to [`crate::nf::linger`].
///
/// # Errors
/// The socket failed or the kernel refused the dump.
pub fn chain_is_empty(family: TableFamily, table: &str, chain: &str) -> io::Result<bool> {
    if off() {
        return Ok(false);
    }
    let mut socket = NfSocket::open()?;
    let rules = dump_rules(&mut socket, family, table, chain);
    crate::nf::linger::keep(socket);
    Ok(rules?.is_empty())
}

/// The comment in a rule's user data, without its terminating NUL.
fn comment(userdata: &[u8]) -> Option<&[u8]> {
    let mut rest = userdata;
    while let [kind, len, tail @ ..] = rest {
        let value = tail.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(value.strip_suffix(&[0]).unwrap_or(value));
        }
        rest = tail.get(usize::from(*len)..)?;
    }
    None
}

/// Handles of the rules of `table`'s `chain` whose comment is `wanted`; a missing table or
/// chain has none.
fn commented_rules(
    socket: &mut NfSocket,
    family: TableFamily,
    table: &str,
    chain: &str,
    wanted: &str,
) -> io::Result<Vec<u64>> {
    rules_where(socket, family, table, chain, |rule| {
        find(rule, NFTA_RULE_USERDATA)
            .and_then(comment)
            .is_some_and(|c| c == wanted.as_bytes())
    })
}

/// Handles of the rules of `table`'s `chain` (their attributes) that `ours` picks; a
/// missing table or chain has none.
fn rules_where(
    socket: &mut NfSocket,
    family: TableFamily,
    table: &str,
    chain: &str,
    ours: impl Fn(&[u8]) -> bool,
) -> io::Result<Vec<u64>> {
    Ok(dump_rules(socket, family, table, chain)?
        .into_iter()
        .filter(|(_, rule)| ours(rule))
        .map(|(handle, _)| handle)
        .collect())
}

/// Every rule of `table`'s `chain`: its handle and its attributes; a missing table or
/// chain has none.
pub(crate) fn dump_rules(
    socket: &mut NfSocket,
    family: TableFamily,
    table: &str,
    chain: &str,
) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut body = Vec::new();
    attr_str(&mut body, NFTA_RULE_TABLE, table);
    attr_str(&mut body, NFTA_RULE_CHAIN, chain);
    'dump: for _ in 0..ATTEMPTS {
        let seq = socket.send(NFT_GETRULE, NLM_F_DUMP, family.nfproto(), &body)?;
        let mut handles = Vec::new();
        let mut interrupted = false;
        loop {
            for (header, payload) in socket.recv()? {
                if header.seq != seq {
                    continue;
                }
                interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                match header.kind {
                    NLMSG_DONE => {
                        if interrupted {
                            continue 'dump;
                        }
                        return Ok(handles);
                    }
                    NLMSG_ERROR => {
                        return match check_ack(&payload) {
                            Ok(()) => Ok(handles),
                            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(Vec::new()),
                            Err(e) => Err(e),
                        };
                    }
                    NFT_NEWRULE => {
                        let rule = payload.get(NFGEN_HDR_LEN..).unwrap_or_default();
                        let handle = find(rule, NFTA_RULE_HANDLE)
                            .and_then(|h| <[u8; 8]>::try_from(h).ok())
                            .map(u64::from_be_bytes);
                        if let Some(handle) = handle {
                            handles.push((handle, rule.to_vec()));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Err(io::Error::other(format!(
        "dump of chain {chain} interrupted by concurrent changes {ATTEMPTS} times"
    )))
}

/// Deletes `rules` (`(chain, handle)`) of `table` in one nf_tables transaction.
fn delete_batch(
    socket: &mut NfSocket,
    family: TableFamily,
    table: &str,
    rules: &[(&str, u64)],
) -> io::Result<()> {
    delete_batch_and_chains(socket, family, table, rules, &[])
}

/// Deletes `rules` (`(chain, handle)`), then flushes and deletes `chains`, of `table` in
/// one nf_tables transaction: all of it happens or none.
fn delete_batch_and_chains(
    socket: &mut NfSocket,
    family: TableFamily,
    table: &str,
    rules: &[(&str, u64)],
    chains: &[&str],
) -> io::Result<()> {
    let mut messages = Vec::with_capacity(rules.len() + 2 * chains.len());
    for (chain, handle) in rules {
        let mut body = Vec::new();
        attr_str(&mut body, NFTA_RULE_TABLE, table);
        attr_str(&mut body, NFTA_RULE_CHAIN, chain);
        attr(&mut body, NFTA_RULE_HANDLE, &handle.to_be_bytes());
        messages.push((NFT_DELRULE, 0, body));
    }
    for chain in chains {
        // A DELRULE naming only the chain deletes all its rules.
        let mut flush = Vec::new();
        attr_str(&mut flush, NFTA_RULE_TABLE, table);
        attr_str(&mut flush, NFTA_RULE_CHAIN, chain);
        let mut delete = Vec::new();
        attr_str(&mut delete, NFTA_CHAIN_TABLE, table);
        attr_str(&mut delete, NFTA_CHAIN_NAME, chain);
        messages.push((NFT_DELRULE, 0, flush));
        messages.push((NFT_DELCHAIN, 0, delete));
    }
    transact(socket, family, messages)?;
    crate::nf::linger::note_deletion();
    Ok(())
}

/// Sends `messages` (kind, flags, body; each also asks for an acknowledgement) as one
/// nf_tables transaction and waits for every answer: all of it happens or none, and the
/// first refusal is the error.
pub(crate) fn transact(
    socket: &mut NfSocket,
    family: TableFamily,
    messages: Vec<(u16, u16, Vec<u8>)>,
) -> io::Result<()> {
    transact_at(socket, family, messages, None)
}

/// [`transact`], refused as a whole (`ERESTART`) unless the ruleset is still at
/// generation `genid` (what was read before it was decided on).
pub(crate) fn transact_at(
    socket: &mut NfSocket,
    family: TableFamily,
    messages: Vec<(u16, u16, Vec<u8>)>,
    genid: Option<u32>,
) -> io::Result<()> {
    let mut begin = Vec::new();
    if let Some(genid) = genid {
        attr(&mut begin, NFNL_BATCH_GENID, &genid.to_be_bytes());
    }
    let mut batch = message(
        NFNL_MSG_BATCH_BEGIN,
        0,
        socket.next_seq(),
        0,
        NFNL_SUBSYS_NFTABLES,
        &begin,
    );
    let mut seqs = Vec::with_capacity(messages.len());
    for (kind, flags, body) in messages {
        let seq = socket.next_seq();
        seqs.push(seq);
        batch.extend(message(
            kind,
            flags | NLM_F_ACK,
            seq,
            family.nfproto(),
            0,
            &body,
        ));
    }
    batch.extend(message(
        NFNL_MSG_BATCH_END,
        0,
        socket.next_seq(),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    ));
    socket.send_raw(&batch)?;
    // One answer per message asking for it; the first failure fails the transaction.
    let mut first_error = None;
    while !seqs.is_empty() {
        for (header, payload) in socket.recv()? {
            if header.kind != NLMSG_ERROR {
                continue;
            }
            if let Some(at) = seqs.iter().position(|s| *s == header.seq) {
                seqs.swap_remove(at);
                if let Err(e) = check_ack(&payload) {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The ruleset's current generation (`NFT_MSG_GETGEN`).
pub(crate) fn generation(socket: &mut NfSocket) -> io::Result<u32> {
    let seq = socket.send(NFT_GETGEN, NLM_F_ACK, 0, &[])?;
    let mut genid = None;
    loop {
        for (header, payload) in socket.recv()? {
            if header.seq != seq {
                continue;
            }
            match header.kind {
                NFT_NEWGEN => {
                    genid = find(
                        payload.get(NFGEN_HDR_LEN..).unwrap_or_default(),
                        NFTA_GEN_ID,
                    )
                    .and_then(|v| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_be_bytes);
                }
                NLMSG_ERROR => {
                    check_ack(&payload)?;
                    return genid.ok_or_else(|| io::Error::other("no generation in the answer"));
                }
                _ => {}
            }
        }
    }
}

/// Deletes every rule of `chains` in `family`'s `table` commented with `comment`; returns
/// how many. A missing table or chain holds none.
///
/// # Errors
/// The socket failed, the kernel refused the dump or the deletion (a concurrent DEL of
/// the same rules is retried).
pub fn delete_commented(
    family: TableFamily,
    table: &str,
    chains: &[&str],
    comment: &str,
) -> io::Result<usize> {
    let mut socket = NfSocket::open()?;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let mut rules: Vec<(&str, u64)> = Vec::new();
        for chain in chains {
            for handle in commented_rules(&mut socket, family, table, chain, comment)? {
                rules.push((chain, handle));
            }
        }
        if rules.is_empty() {
            return Ok(0);
        }
        match delete_batch(&mut socket, family, table, &rules) {
            Ok(()) => return Ok(rules.len()),
            // Another DEL removed one of them first: look again.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("nf_tables rule deletion kept racing")))
}

/// One expression of a rule, as far as the lookups here need to tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expr<'a> {
    /// `payload load <len>b @ <base> + <offset>`.
    Payload { base: u32, offset: u32, len: u32 },
    /// `cmp eq` with this value.
    CmpEq(&'a [u8]),
    /// An `immediate` verdict: its code and, for a jump or goto, the chain.
    Verdict(i32, Option<&'a [u8]>),
    /// Anything else, by name (`match`, `ct`, `counter`, ...).
    Other(&'a [u8]),
}

/// The expressions of a rule (its attributes), in order.
fn exprs(rule: &[u8]) -> Vec<Expr<'_>> {
    let be32 = |v: &[u8]| <[u8; 4]>::try_from(v).ok().map(u32::from_be_bytes);
    let Some(list) = find(rule, NFTA_RULE_EXPRESSIONS) else {
        return Vec::new();
    };
    attrs(list)
        .into_iter()
        .filter(|(kind, _, _)| *kind == NFTA_LIST_ELEM)
        .map(|(_, expr, _)| {
            let name = find(expr, NFTA_EXPR_NAME).unwrap_or_default();
            let name = name.strip_suffix(&[0]).unwrap_or(name);
            let data = find(expr, NFTA_EXPR_DATA).unwrap_or_default();
            match name {
                b"payload" => {
                    let field = |kind| find(data, kind).and_then(be32);
                    match (
                        field(NFTA_PAYLOAD_BASE),
                        field(NFTA_PAYLOAD_OFFSET),
                        field(NFTA_PAYLOAD_LEN),
                    ) {
                        (Some(base), Some(offset), Some(len)) => {
                            Expr::Payload { base, offset, len }
                        }
                        _ => Expr::Other(name),
                    }
                }
                b"cmp" => {
                    let eq = find(data, NFTA_CMP_OP).and_then(be32) == Some(NFT_CMP_EQ);
                    match find(data, NFTA_CMP_DATA).and_then(|d| find(d, NFTA_DATA_VALUE)) {
                        Some(value) if eq => Expr::CmpEq(value),
                        _ => Expr::Other(name),
                    }
                }
                b"immediate" => {
                    let verdict =
                        find(data, NFTA_IMMEDIATE_DATA).and_then(|d| find(d, NFTA_DATA_VERDICT));
                    let code = verdict
                        .and_then(|v| find(v, NFTA_VERDICT_CODE))
                        .and_then(be32)
                        .map(|c| i32::from_be_bytes(c.to_be_bytes()));
                    match code {
                        Some(code) => Expr::Verdict(
                            code,
                            verdict
                                .and_then(|v| find(v, NFTA_VERDICT_CHAIN))
                                .map(|c| c.strip_suffix(&[0]).unwrap_or(c)),
                        ),
                        None => Expr::Other(name),
                    }
                }
                _ => Expr::Other(name),
            }
        })
        .collect()
}

/// True when a rule (its attributes) ends in a jump or goto to `target`: an `immediate`
/// expression whose verdict names that chain, which is how iptables-nft writes `-j CHAIN`.
fn jumps_to(rule: &[u8], target: &str) -> bool {
    exprs(rule).iter().any(|e| {
        matches!(e, Expr::Verdict(NFT_JUMP | NFT_GOTO, Some(chain)) if *chain == target.as_bytes())
    })
}

/// Which address of a packet a rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// The address match of an iptables-nft rule (`-s ip/32` or `-d ip/128` is a payload load
/// of the address from the network header, then `cmp eq`), when it compares `ip`.
fn address_match(exprs: &[Expr<'_>], ip: IpAddr) -> Option<Side> {
    let (bytes, src, dst): (Vec<u8>, u32, u32) = match ip {
        IpAddr::V4(v4) => (v4.octets().to_vec(), 12, 16),
        IpAddr::V6(v6) => (v6.octets().to_vec(), 8, 24),
    };
    exprs.windows(2).find_map(|pair| match pair {
        [
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset,
                len,
            },
            Expr::CmpEq(value),
        ] if *value == bytes.as_slice() && *len as usize == bytes.len() => match *offset {
            o if o == src => Some(Side::Source),
            o if o == dst => Some(Side::Destination),
            _ => None,
        },
        _ => None,
    })
}

/// Handles of the firewall plugin's rules for `addresses` in `chain` (one copy each, as the
/// reference deletes them): `-d <ip> -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`
/// and `-s <ip> -j ACCEPT`, recognised by their address match, a conntrack match (only
/// the first) and the accept verdict, with nothing else matching.
fn forward_rule_handles(rules: &[(u64, Vec<Expr<'_>>)], addresses: &[IpAddr]) -> Vec<u64> {
    let accepts = |e: &[Expr<'_>]| e.iter().any(|x| matches!(x, Expr::Verdict(NF_ACCEPT, _)));
    let conntrack = |e: &[Expr<'_>]| e.iter().any(|x| matches!(x, Expr::Other(b"match" | b"ct")));
    let mut taken: Vec<u64> = Vec::new();
    for ip in addresses {
        for want in [Side::Destination, Side::Source] {
            let found = rules.iter().find(|(handle, e)| {
                !taken.contains(handle)
                    && address_match(e, *ip) == Some(want)
                    && accepts(e)
                    && conntrack(e) == (want == Side::Destination)
            });
            if let Some((handle, _)) = found {
                taken.push(*handle);
            }
        }
    }
    taken
}

/// Deletes the firewall plugin's `CNI-FORWARD` rules for `addresses` (one family's) from
/// `family`'s `filter` table, where iptables-nft holds them, in one transaction: what the
/// iptables path's `-D` lines do, without a process. The socket is handed to
/// [`crate::nf::linger`].
///
/// # Errors
/// The socket failed, or the kernel refused the dump or the transaction.
pub fn delete_forward_rules(
    family: TableFamily,
    table: &str,
    chain: &str,
    addresses: &[IpAddr],
) -> io::Result<Removed> {
    deletion("rule deletion", |socket| {
        let dumped = dump_rules(socket, family, table, chain)?;
        let parsed: Vec<(u64, Vec<Expr<'_>>)> =
            dumped.iter().map(|(h, r)| (*h, exprs(r))).collect();
        let handles = forward_rule_handles(&parsed, addresses);
        if handles.is_empty() {
            return Ok(Some(Removed::NotHere));
        }
        let rules: Vec<(&str, u64)> = handles.iter().map(|h| (chain, *h)).collect();
        match delete_batch(socket, family, table, &rules) {
            Ok(()) => Ok(Some(Removed::Done)),
            // A concurrent change removed one first: look again.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    })
}

/// One of DEL's deletions where iptables-nft holds the rules: `attempt` runs on a fresh
/// socket until it decides (`Some`) or has been asked to look again [`ATTEMPTS`] times
/// (`None`: a concurrent change got in the way); the socket then goes to
/// [`crate::nf::linger`]. With nf_tables switched off (tests), nothing is here.
fn deletion(
    what: &str,
    mut attempt: impl FnMut(&mut NfSocket) -> io::Result<Option<Removed>>,
) -> io::Result<Removed> {
    if off() {
        return Ok(Removed::NotHere);
    }
    let mut socket = NfSocket::open()?;
    let outcome = (|| {
        for _ in 0..ATTEMPTS {
            if let Some(removed) = attempt(&mut socket)? {
                return Ok(removed);
            }
        }
        Err(io::Error::other(format!("nf_tables {what} kept racing")))
    })();
    crate::nf::linger::keep(socket);
    outcome
}

/// What [`delete_iptables_chain`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The chain and the rules jumping to it from `from` are gone, in one transaction.
    Done,
    /// Nothing was changed: the table or chain is not in nf_tables (absent, or written by
    /// iptables-legacy). The caller's iptables path decides.
    NotHere,
}

/// Deletes the iptables-nft chain `chain` of `family`'s `table` with the rules of chain
/// `from` that jump to it, as one transaction: what `iptables-restore` with `-D`, `-F` and
/// `-X` lines does, without a process and without probing for xtables extensions (each
/// probe opens and closes a netfilter socket, and a close waits out the grace period of
/// any deletion still pending in the kernel). The socket is handed to [`crate::nf::linger`].
///
/// # Errors
/// The socket failed, or the kernel refused the dump or the transaction.
pub fn delete_iptables_chain(
    family: TableFamily,
    table: &str,
    from: &str,
    chain: &str,
) -> io::Result<Removed> {
    deletion("chain deletion", |socket| {
        let jumps = rules_where(socket, family, table, from, |r| jumps_to(r, chain))?;
        let rules: Vec<(&str, u64)> = jumps.iter().map(|h| (from, *h)).collect();
        match delete_batch_and_chains(socket, family, table, &rules, &[chain]) {
            Ok(()) => Ok(Some(Removed::Done)),
            // The chain (or the table) is not there, or a concurrent change removed a
            // rule first: without jumps to it, there is nothing of ours here.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && jumps.is_empty() => {
                Ok(Some(Removed::NotHere))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::testutil::{in_private_netns, run_tool};

    #[test]
    fn comments_are_read_from_user_data() {
        assert_eq!(comment(&[0, 4, b'a', b'b', b'c', 0]), Some(&b"abc"[..]));
        assert_eq!(
            comment(&[1, 2, 9, 9, 0, 3, b'x', b'y', 0]),
            Some(&b"xy"[..])
        );
        assert_eq!(comment(&[1, 2, 9, 9]), None);
        assert_eq!(comment(&[0, 9, b'a']), None, "truncated");
        assert_eq!(comment(&[]), None);
    }

    fn nft(script: &str) -> String {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write");
        assert!(child.wait().expect("wait").success(), "{script}");
        let out = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .expect("nft list");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn deletes_only_the_commented_rules_of_the_chains() {
        in_private_netns("deletes_only_the_commented_rules_of_the_chains", || {
            nft("add table ip t
                 add chain ip t a
                 add chain ip t b
                 add chain ip t c
                 add rule ip t a tcp dport 1 accept comment \"abc\"
                 add rule ip t a tcp dport 2 accept comment \"abcd\"
                 add rule ip t a tcp dport 3 accept
                 add rule ip t b ip saddr 10.0.0.1 accept comment \"abc\"
                 add rule ip t c tcp dport 4 accept comment \"abc\"
                 add table ip6 t
                 add chain ip6 t a
                 add rule ip6 t a tcp dport 1 accept comment \"abc\"");
            let n = delete_commented(TableFamily::Ip, "t", &["a", "b", "missing"], "abc")
                .expect("delete");
            assert_eq!(n, 2);
            let left = nft("");
            assert!(
                !left.contains("dport 1 accept comment \"abc\"\n\t}\n\tchain b"),
                "{left}"
            );
            assert!(left.contains("dport 2 accept comment \"abcd\""), "{left}");
            assert!(left.contains("tcp dport 3 accept"), "{left}");
            assert!(!left.contains("10.0.0.1"), "{left}");
            assert!(
                left.contains("dport 4 accept comment \"abc\""),
                "chain c untouched"
            );
            assert!(
                left.contains("table ip6 t") && left.matches("comment \"abc\"").count() == 2,
                "the other family untouched: {left}"
            );
            assert_eq!(
                delete_commented(TableFamily::Ip, "t", &["a", "b"], "abc").expect("again"),
                0
            );
            assert_eq!(
                delete_commented(TableFamily::Ip, "missing", &["a"], "abc").expect("no table"),
                0
            );
        });
    }

    /// What iptables-nft wrote is found by its jump and deleted in one transaction; a
    /// chain that is not there changes nothing and says so.
    #[test]
    fn deletes_an_iptables_nft_chain_and_the_jumps_to_it() {
        in_private_netns("deletes_an_iptables_nft_chain_and_the_jumps_to_it", || {
            for chain in ["CNI-HOSTPORT-DNAT", "CNI-DN-a", "CNI-DN-b"] {
                run_tool("iptables", &["-t", "nat", "-N", chain]);
            }
            for (chain, port) in [("CNI-DN-a", "8080"), ("CNI-DN-b", "8081")] {
                run_tool(
                    "iptables",
                    &[
                        "-t",
                        "nat",
                        "-A",
                        "CNI-HOSTPORT-DNAT",
                        "-p",
                        "tcp",
                        "-m",
                        "comment",
                        "--comment",
                        "dnat name: \"n\" id: \"x\"",
                        "-m",
                        "multiport",
                        "--dports",
                        port,
                        "-j",
                        chain,
                    ],
                );
                run_tool(
                    "iptables",
                    &[
                        "-t",
                        "nat",
                        "-A",
                        chain,
                        "-p",
                        "tcp",
                        "--dport",
                        port,
                        "-j",
                        "DNAT",
                        "--to-destination",
                        "10.1.2.2:80",
                    ],
                );
            }
            let removed =
                delete_iptables_chain(TableFamily::Ip, "nat", "CNI-HOSTPORT-DNAT", "CNI-DN-a")
                    .expect("delete");
            assert_eq!(removed, Removed::Done);
            let saved = run_tool("iptables-save", &["-t", "nat"]);
            assert!(!saved.contains("CNI-DN-a"), "{saved}");
            assert!(
                saved.contains("-j CNI-DN-b") && saved.contains(":CNI-DN-b"),
                "{saved}"
            );
            assert_eq!(
                delete_iptables_chain(TableFamily::Ip, "nat", "CNI-HOSTPORT-DNAT", "CNI-DN-a")
                    .expect("again"),
                Removed::NotHere
            );
            assert_eq!(
                delete_iptables_chain(TableFamily::Ip6, "nat", "CNI-HOSTPORT-DNAT", "CNI-DN-b")
                    .expect("no ip6 table"),
                Removed::NotHere
            );
            crate::nf::linger::hand_off();
        });
    }

    /// The firewall plugin's rules, written by iptables as the reference writes them, are
    /// found by address and deleted one copy each; other addresses and rules stay.
    #[test]
    fn deletes_the_forward_rules_of_an_address_one_copy_each() {
        in_private_netns(
            "deletes_the_forward_rules_of_an_address_one_copy_each",
            || {
                run_tool("iptables", &["-N", "CNI-FORWARD"]);
                let own = |ip: &str| {
                    run_tool(
                        "iptables",
                        &[
                            "-A",
                            "CNI-FORWARD",
                            "-d",
                            ip,
                            "-m",
                            "conntrack",
                            "--ctstate",
                            "RELATED,ESTABLISHED",
                            "-j",
                            "ACCEPT",
                        ],
                    );
                    run_tool("iptables", &["-A", "CNI-FORWARD", "-s", ip, "-j", "ACCEPT"]);
                };
                own("10.88.0.2/32");
                own("10.88.0.3/32");
                own("10.88.0.2/32");
                // Same address, not ours: a different target and an extra match.
                run_tool(
                    "iptables",
                    &["-A", "CNI-FORWARD", "-s", "10.88.0.2/32", "-j", "DROP"],
                );
                run_tool(
                    "iptables",
                    &[
                        "-A",
                        "CNI-FORWARD",
                        "-s",
                        "10.88.0.2/32",
                        "-p",
                        "tcp",
                        "-j",
                        "ACCEPT",
                    ],
                );
                run_tool("ip6tables", &["-N", "CNI-FORWARD"]);
                run_tool(
                    "ip6tables",
                    &["-A", "CNI-FORWARD", "-s", "fd00::2/128", "-j", "ACCEPT"],
                );
                run_tool(
                    "ip6tables",
                    &[
                        "-A",
                        "CNI-FORWARD",
                        "-d",
                        "fd00::2/128",
                        "-m",
                        "conntrack",
                        "--ctstate",
                        "RELATED,ESTABLISHED",
                        "-j",
                        "ACCEPT",
                    ],
                );

                let ip2: IpAddr = "10.88.0.2".parse().expect("ip");
                let removed =
                    delete_forward_rules(TableFamily::Ip, "filter", "CNI-FORWARD", &[ip2])
                        .expect("delete");
                assert_eq!(removed, Removed::Done);
                let v4 = run_tool("iptables-save", &["-t", "filter"]);
                assert_eq!(
                    v4.matches("-A CNI-FORWARD -s 10.88.0.2/32 -j ACCEPT")
                        .count(),
                    1,
                    "{v4}"
                );
                assert_eq!(
                    v4.matches("-A CNI-FORWARD -d 10.88.0.2/32").count(),
                    1,
                    "{v4}"
                );
                assert_eq!(v4.matches("10.88.0.3/32").count(), 2, "{v4}");
                assert!(v4.contains("-s 10.88.0.2/32 -j DROP"), "{v4}");
                assert!(v4.contains("-s 10.88.0.2/32 -p tcp -j ACCEPT"), "{v4}");

                let ip6: IpAddr = "fd00::2".parse().expect("ip");
                let removed =
                    delete_forward_rules(TableFamily::Ip6, "filter", "CNI-FORWARD", &[ip6])
                        .expect("delete v6");
                assert_eq!(removed, Removed::Done);
                let v6 = run_tool("ip6tables-save", &["-t", "filter"]);
                assert!(!v6.contains("fd00::2"), "{v6}");
                assert_eq!(
                    delete_forward_rules(TableFamily::Ip6, "filter", "CNI-FORWARD", &[ip6])
                        .expect("again"),
                    Removed::NotHere
                );
                assert_eq!(
                    delete_forward_rules(TableFamily::Ip, "filter", "NO-SUCH-CHAIN", &[ip2])
                        .expect("no chain"),
                    Removed::NotHere
                );
                crate::nf::linger::hand_off();
            },
        );
    }
}
