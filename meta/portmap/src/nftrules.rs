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

use crate::nfnl::{
    NFGEN_HDR_LEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NfSocket, attr,
    attr_str, attrs, check_ack, find, message,
};

/// `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`, and the batch delimiters.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_NEWRULE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 6;
const NFT_GETRULE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 7;
const NFT_DELRULE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 8;
const NFT_DELCHAIN: u16 = NFNL_SUBSYS_NFTABLES << 8 | 5;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
/// `enum nft_rule_attributes`.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `enum nft_chain_attributes`.
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
/// Expression lists: `NFTA_LIST_ELEM` holding `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA`.
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// An `immediate` expression's data: a verdict with its code and target chain.
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFT_JUMP` (-3) and `NFT_GOTO` (-4), big-endian on the wire.
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
/// libnftnl's user data TLV holding the rule comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// How often a dump interrupted by concurrent changes, or a batch that raced with another
/// DEL, is tried again.
const ATTEMPTS: usize = 3;

/// `NFPROTO_IPV4` or `NFPROTO_IPV6`, as in the `ip` and `ip6` table families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFamily {
    Ip,
    Ip6,
}

impl TableFamily {
    fn nfproto(self) -> u8 {
        match self {
            TableFamily::Ip => 2,
            TableFamily::Ip6 => 10,
        }
    }
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
                        let ours = ours(rule);
                        let handle = find(rule, NFTA_RULE_HANDLE)
                            .and_then(|h| <[u8; 8]>::try_from(h).ok())
                            .map(u64::from_be_bytes);
                        if let (true, Some(handle)) = (ours, handle) {
                            handles.push(handle);
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
    let mut batch = message(
        NFNL_MSG_BATCH_BEGIN,
        0,
        socket.next_seq(),
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    let mut seqs = Vec::with_capacity(rules.len());
    for (chain, handle) in rules {
        let mut body = Vec::new();
        attr_str(&mut body, NFTA_RULE_TABLE, table);
        attr_str(&mut body, NFTA_RULE_CHAIN, chain);
        attr(&mut body, NFTA_RULE_HANDLE, &handle.to_be_bytes());
        let seq = socket.next_seq();
        seqs.push(seq);
        batch.extend(message(
            NFT_DELRULE,
            NLM_F_ACK,
            seq,
            family.nfproto(),
            0,
            &body,
        ));
    }
    for chain in chains {
        // A DELRULE naming only the chain deletes all its rules.
        let mut flush = Vec::new();
        attr_str(&mut flush, NFTA_RULE_TABLE, table);
        attr_str(&mut flush, NFTA_RULE_CHAIN, chain);
        let mut delete = Vec::new();
        attr_str(&mut delete, NFTA_CHAIN_TABLE, table);
        attr_str(&mut delete, NFTA_CHAIN_NAME, chain);
        for (kind, body) in [(NFT_DELRULE, flush), (NFT_DELCHAIN, delete)] {
            let seq = socket.next_seq();
            seqs.push(seq);
            batch.extend(message(kind, NLM_F_ACK, seq, family.nfproto(), 0, &body));
        }
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

/// True when a rule (its attributes) ends in a jump or goto to `target`: an `immediate`
/// expression whose verdict names that chain, which is how iptables-nft writes `-j CHAIN`.
fn jumps_to(rule: &[u8], target: &str) -> bool {
    let Some(exprs) = find(rule, NFTA_RULE_EXPRESSIONS) else {
        return false;
    };
    attrs(exprs)
        .into_iter()
        .filter(|(kind, _, _)| *kind == NFTA_LIST_ELEM)
        .any(|(_, expr, _)| {
            let immediate = find(expr, NFTA_EXPR_NAME).is_some_and(|n| n == b"immediate\0");
            let verdict = find(expr, NFTA_EXPR_DATA)
                .and_then(|d| find(d, NFTA_IMMEDIATE_DATA))
                .and_then(|d| find(d, NFTA_DATA_VERDICT));
            let Some(verdict) = verdict.filter(|_| immediate) else {
                return false;
            };
            let code = find(verdict, NFTA_VERDICT_CODE)
                .and_then(|c| <[u8; 4]>::try_from(c).ok())
                .map(i32::from_be_bytes);
            let chain = find(verdict, NFTA_VERDICT_CHAIN);
            matches!(code, Some(NFT_JUMP | NFT_GOTO))
                && chain.is_some_and(|c| c.strip_suffix(&[0]).unwrap_or(c) == target.as_bytes())
        })
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
/// any deletion still pending in the kernel). The socket is handed to [`crate::linger`].
///
/// # Errors
/// The socket failed, or the kernel refused the dump or the transaction.
pub fn delete_iptables_chain(
    family: TableFamily,
    table: &str,
    from: &str,
    chain: &str,
) -> io::Result<Removed> {
    let mut socket = NfSocket::open()?;
    let outcome = (|| {
        for _ in 0..ATTEMPTS {
            let jumps = rules_where(&mut socket, family, table, from, |r| jumps_to(r, chain))?;
            let rules: Vec<(&str, u64)> = jumps.iter().map(|h| (from, *h)).collect();
            match delete_batch_and_chains(&mut socket, family, table, &rules, &[chain]) {
                Ok(()) => return Ok(Removed::Done),
                // The chain (or the table) is not there, or a concurrent change removed
                // a rule first: without jumps to it, there is nothing of ours here.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && jumps.is_empty() => {
                    return Ok(Removed::NotHere);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("nf_tables chain deletion kept racing"))
    })();
    crate::linger::keep(socket);
    outcome
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

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
        if !rcni_testkit::require_root() {
            return;
        }
        std::thread::spawn(|| {
            rcni_testkit::unshare_thread_netns();
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
        })
        .join()
        .expect("test thread");
    }

    fn iptables(args: &[&str]) {
        let out = Command::new("iptables")
            .args(args)
            .output()
            .expect("iptables");
        assert!(out.status.success(), "iptables {args:?}: {:?}", out.stderr);
    }

    /// What iptables-nft wrote is found by its jump and deleted in one transaction; a
    /// chain that is not there changes nothing and says so.
    #[test]
    fn deletes_an_iptables_nft_chain_and_the_jumps_to_it() {
        if !rcni_testkit::require_root() {
            return;
        }
        std::thread::spawn(|| {
            rcni_testkit::unshare_thread_netns();
            for chain in ["CNI-HOSTPORT-DNAT", "CNI-DN-a", "CNI-DN-b"] {
                iptables(&["-t", "nat", "-N", chain]);
            }
            for (chain, port) in [("CNI-DN-a", "8080"), ("CNI-DN-b", "8081")] {
                iptables(&[
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
                ]);
                iptables(&[
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
                ]);
            }
            let removed =
                delete_iptables_chain(TableFamily::Ip, "nat", "CNI-HOSTPORT-DNAT", "CNI-DN-a")
                    .expect("delete");
            assert_eq!(removed, Removed::Done);
            let saved = Command::new("iptables-save")
                .args(["-t", "nat"])
                .output()
                .expect("save");
            let saved = String::from_utf8_lossy(&saved.stdout);
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
            crate::linger::hand_off();
        })
        .join()
        .expect("test thread");
    }
}
