//! nftables portmap, identical to the reference (`portmap_nftables.go`, v1.9), one table per
//! family. For container `abc` at 10.1.2.2 mapping host tcp 8080 to 80 (`nft list table ip
//! cni_hostport`):
//!
//! ```text
//! table ip cni_hostport {
//!     comment "CNI portmap plugin"
//!     chain hostports {
//!         tcp dport 8080 dnat to 10.1.2.2:80 comment "abc"
//!     }
//!     chain hostip_hostports {
//!     }
//!     chain hostports_all {
//!         jump hostip_hostports
//!         jump hostports
//!     }
//!     chain prerouting {
//!         type nat hook prerouting priority dstnat; policy accept;
//!         fib daddr type local jump hostports_all
//!     }
//!     chain output {
//!         type nat hook output priority -100; policy accept;
//!         fib daddr type local jump hostports_all
//!     }
//!     chain masquerading {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr 10.1.2.2 ip daddr 10.1.2.2 masquerade comment "abc"
//!         ip saddr 127.0.0.1 ip daddr 10.1.2.2 masquerade comment "abc"
//!     }
//! }
//! ```
//!
//! Costs per family with a container address:
//! - ADD: one `nft -f -` batch adding the container's rules. The reference's batch also
//!   re-creates the shared chains and flushes and refills `hostports_all`, `prerouting` and
//!   `output` every time; deleting rules makes the kernel wait for an RCU grace period
//!   (~10-15 ms here), so we send that batch only when the table or a chain is missing
//!   (ENOENT refuses the small batch, changing nothing), or when the family has conditions
//!   (their rule is rewritten on every ADD, as in the reference).
//! - DEL: one `nft -j list table`, and one batch deleting the rules commented with the
//!   container id if there are any. The listing is proportional to the portmap rules in
//!   the table (nft renders every rule: ~60 ms with 500 mapped pods), as the reference's
//!   three chain listings are; the portmap plugin therefore deletes over nf_tables netlink
//!   and uses this only when that fails.
//! - CHECK: one listing.
//!
//! A repeated ADD adds the rules again, as the reference's does: identical rules, all
//! removed by one DEL. Skipping them would need a listing on every ADD.

use std::collections::HashSet;

use ipnetwork::IpNetwork;

use super::{PortMapper, PortmapSpec, family_name};
use crate::error::{Error, ErrorKind, Result};
use crate::exec;
use crate::iptables::{Family, is_missing};
use crate::names::{
    self, NFT_HOSTIP_HOSTPORTS_CHAIN, NFT_HOSTPORTS_ALL_CHAIN, NFT_HOSTPORTS_CHAIN,
    NFT_PORTMAP_MASQ_CHAIN, NFT_PORTMAP_OUTPUT_CHAIN, NFT_PORTMAP_PREROUTING_CHAIN,
    NFT_PORTMAP_TABLE, NFT_PORTMAP_TABLE_COMMENT, NFT_PRIORITY_DSTNAT, NFT_PRIORITY_SRCNAT,
};
use crate::nft::{self, Batch};

/// The nftables backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct NftablesPortmap;

fn nft_family(family: Family) -> &'static str {
    match family {
        Family::V4 => names::NFT_FAMILY_IP,
        Family::V6 => names::NFT_FAMILY_IP6,
    }
}

fn table(family: Family) -> String {
    format!("{} {NFT_PORTMAP_TABLE}", nft_family(family))
}

fn table_what(family: Family) -> String {
    format!("table {}", table(family))
}

/// The per-container rules as `(chain, rule text with comment)`: one DNAT per mapping of
/// this family, then the hairpin masquerade and (IPv4 without masqAll) the localhost one.
pub(super) fn container_rules(
    spec: &PortmapSpec,
    family: Family,
    net: IpNetwork,
) -> Result<Vec<(&'static str, String)>> {
    let ipx = nft_family(family);
    let comment = nft::quote(&spec.container_id)?;
    let ip = net.ip();
    let to = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let mut rules = Vec::new();
    for m in spec.mappings.iter().filter(|m| m.applies_to(family)) {
        let daddr = m
            .destination()
            .map(|h| format!("{ipx} daddr {h} "))
            .unwrap_or_default();
        rules.push((
            NFT_HOSTPORTS_CHAIN,
            format!(
                "{daddr}{} dport {} dnat to {to}:{} comment {comment}",
                m.protocol.as_str(),
                m.host_port,
                m.container_port
            ),
        ));
    }
    if spec.snat {
        let source = if spec.masq_all {
            match family {
                Family::V4 => "0.0.0.0/0".to_owned(),
                Family::V6 => "::/0".to_owned(),
            }
        } else {
            ip.to_string()
        };
        rules.push((
            NFT_PORTMAP_MASQ_CHAIN,
            format!("{ipx} saddr {source} {ipx} daddr {ip} masquerade comment {comment}"),
        ));
        if family == Family::V4 && !spec.masq_all {
            rules.push((
                NFT_PORTMAP_MASQ_CHAIN,
                format!("{ipx} saddr 127.0.0.1 {ipx} daddr {ip} masquerade comment {comment}"),
            ));
        }
    }
    Ok(rules)
}

/// The reference's whole transaction (knftables' text, in its order): table and chains,
/// `hostports_all`, `prerouting` and `output` flushed and refilled, then the rules.
pub(super) fn full_batch(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Result<Batch> {
    let t = table(family);
    let entry: String = spec
        .conditions(family)
        .iter()
        .map(|c| format!("{c} "))
        .chain(std::iter::once(format!(
            "fib daddr type local jump {NFT_HOSTPORTS_ALL_CHAIN}"
        )))
        .collect();
    let mut batch = Batch::new();
    batch.push(format!(
        "add table {t} {{ comment {} ; }}",
        nft::quote(NFT_PORTMAP_TABLE_COMMENT)?
    ));
    batch.push(format!("add chain {t} {NFT_HOSTPORTS_CHAIN}"));
    batch.push(format!("add chain {t} {NFT_HOSTIP_HOSTPORTS_CHAIN}"));
    batch.push(format!("add chain {t} {NFT_HOSTPORTS_ALL_CHAIN}"));
    batch.push(format!("flush chain {t} {NFT_HOSTPORTS_ALL_CHAIN}"));
    batch.push(format!(
        "add rule {t} {NFT_HOSTPORTS_ALL_CHAIN} jump {NFT_HOSTIP_HOSTPORTS_CHAIN}"
    ));
    batch.push(format!(
        "add rule {t} {NFT_HOSTPORTS_ALL_CHAIN} jump {NFT_HOSTPORTS_CHAIN}"
    ));
    for (chain, hook) in [
        (NFT_PORTMAP_PREROUTING_CHAIN, "prerouting"),
        (NFT_PORTMAP_OUTPUT_CHAIN, "output"),
    ] {
        batch.push(format!(
            "add chain {t} {chain} {{ type nat hook {hook} priority {NFT_PRIORITY_DSTNAT} ; }}"
        ));
        batch.push(format!("flush chain {t} {chain}"));
        batch.push(format!("add rule {t} {chain} {entry}"));
    }
    if spec.snat {
        batch.push(format!(
            "add chain {t} {NFT_PORTMAP_MASQ_CHAIN} {{ type nat hook postrouting priority \
             {NFT_PRIORITY_SRCNAT} ; }}"
        ));
    }
    for (chain, rule) in container_rules(spec, family, net)? {
        batch.push(format!("add rule {t} {chain} {rule}"));
    }
    Ok(batch)
}

/// Only the container's rules, for a table that is already set up.
pub(super) fn rules_batch(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Result<Batch> {
    let t = table(family);
    let mut batch = Batch::new();
    for (chain, rule) in container_rules(spec, family, net)? {
        batch.push(format!("add rule {t} {chain} {rule}"));
    }
    Ok(batch)
}

/// strerror(ENOENT), stable under the `LC_ALL=C` every tool runs with: the batch named a
/// table or chain that does not exist, and nft changed nothing.
fn is_no_such_object(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

fn add_family(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Result<()> {
    let what = format!("setting up port forwarding in {}", table_what(family));
    if spec.conditions(family).is_empty() {
        let quick = rules_batch(spec, family, net)?;
        let done = exec::run(names::NFT, &["-f", "-"], Some(quick.text()))
            .map_err(|e| e.context(&what))?;
        if done.success {
            return Ok(());
        }
        if !is_no_such_object(&done.stderr) {
            return Err(done.failure(&what));
        }
    }
    full_batch(spec, family, net)?.apply(&what)
}

/// The rules of `listed` (one family's table) that belong to the container: commented with
/// its id, in one of the chains the reference deletes from.
fn container_handles(listed: &[nft::ListedRule], container_id: &str) -> Vec<(String, u64)> {
    listed
        .iter()
        .filter(|r| {
            [
                NFT_HOSTPORTS_CHAIN,
                NFT_HOSTIP_HOSTPORTS_CHAIN,
                NFT_PORTMAP_MASQ_CHAIN,
            ]
            .contains(&r.chain.as_str())
                && r.comment.as_deref() == Some(container_id)
        })
        .map(|r| (r.chain.clone(), r.handle))
        .collect()
}

fn del_family(spec: &PortmapSpec, family: Family) -> Result<()> {
    let what = || {
        format!(
            "removing port forwarding of container {:?} from {}",
            spec.container_id,
            table_what(family)
        )
    };
    // Twice: a concurrent DEL of the same container may delete a listed rule first.
    let mut last = None;
    for _ in 0..2 {
        let listed = match nft::list(nft_family(family), NFT_PORTMAP_TABLE, None) {
            Ok(Some(listed)) => listed,
            Ok(None) => return Ok(()),
            // No nft at all: nothing of ours can exist.
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e.context(what())),
        };
        let handles = container_handles(&listed, &spec.container_id);
        if handles.is_empty() {
            return Ok(());
        }
        let t = table(family);
        let mut batch = Batch::new();
        for (chain, handle) in &handles {
            batch.push(format!("delete rule {t} {chain} handle {handle}"));
        }
        let done = exec::run(names::NFT, &["-f", "-"], Some(batch.text()))
            .map_err(|e| e.context(what()))?;
        if done.success {
            return Ok(());
        }
        let failure = done.failure(what());
        if !is_no_such_object(&done.stderr) {
            return Err(failure);
        }
        last = Some(failure);
    }
    Err(last.unwrap_or_else(|| Error::new(ErrorKind::ToolFailed, what())))
}

fn check_family(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Result<()> {
    let what = format!("checking port forwarding in {}", table_what(family));
    let Some(listed) =
        nft::list(nft_family(family), NFT_PORTMAP_TABLE, None).map_err(|e| e.context(&what))?
    else {
        return Err(Error::check(format!(
            "{} does not exist",
            table_what(family)
        )));
    };
    let mut wanted: Vec<(&str, usize)> = Vec::new();
    for (chain, _) in container_rules(spec, family, net)? {
        match wanted.iter_mut().find(|(c, _)| *c == chain) {
            Some((_, n)) => *n += 1,
            None => wanted.push((chain, 1)),
        }
    }
    for (chain, n) in wanted {
        let found = listed
            .iter()
            .filter(|r| r.chain == chain && r.comment.as_deref() == Some(&spec.container_id))
            .count();
        if found < n {
            return Err(Error::check(format!(
                "chain {chain} of {} has {found} of the {n} rules of container {:?} ({})",
                table_what(family),
                spec.container_id,
                family_name(family)
            )));
        }
    }
    let chains: HashSet<&str> = listed.iter().map(|r| r.chain.as_str()).collect();
    for base in [NFT_PORTMAP_PREROUTING_CHAIN, NFT_PORTMAP_OUTPUT_CHAIN] {
        if !chains.contains(base) {
            return Err(Error::check(format!(
                "chain {base} of {} does not jump to {NFT_HOSTPORTS_ALL_CHAIN}",
                table_what(family)
            )));
        }
    }
    Ok(())
}

impl PortMapper for NftablesPortmap {
    fn add(&self, spec: &PortmapSpec) -> Result<()> {
        spec.validate()?;
        if spec.mappings.is_empty() {
            return Ok(());
        }
        for (family, net) in spec.addressed() {
            add_family(spec, family, net)?;
        }
        Ok(())
    }

    fn del(&self, spec: &PortmapSpec) -> Result<()> {
        spec.validate()?;
        if spec.mappings.is_empty() {
            return Ok(());
        }
        let errors = spec
            .families_to_clean()
            .into_iter()
            .filter_map(|family| del_family(spec, family).err())
            .collect();
        Error::collect(errors)
    }

    fn check(&self, spec: &PortmapSpec) -> Result<()> {
        spec.validate()?;
        if spec.mappings.is_empty() {
            return Ok(());
        }
        for (family, net) in spec.addressed() {
            check_family(spec, family, net)?;
        }
        Ok(())
    }

    /// Nothing: the reference comments each nftables rule with the bare container id, so a
    /// rule does not say which network it belongs to, and GC of one network must not remove
    /// another network's rules. libcni's GC runs a full DEL (with the cached port mappings)
    /// for every stale attachment it knows, which removes these rules.
    fn gc(&self, _network: &str, _keep: &[(String, String)]) -> Result<()> {
        Ok(())
    }
}
