//! iptables portmap, byte-compatible with the reference (`portmap_iptables.go`, `chain.go`).
//! For network `podman`, container `abc` at 10.1.2.2/24 mapping host tcp 8080 to 80
//! (`iptables-save -t nat`, as the Go plugin leaves it):
//!
//! ```text
//! -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
//! -A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
//! -A CNI-DN-514f2d63f742a896f7a7f -s 10.1.2.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
//! -A CNI-DN-514f2d63f742a896f7a7f -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
//! -A CNI-DN-514f2d63f742a896f7a7f -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.2.2:80
//! -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8080 -j CNI-DN-514f2d63f742a896f7a7f
//! -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
//! -A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
//! ```
//!
//! Rules are generated in exactly this form (`iptables-save`'s order: addresses, protocol,
//! matches, target), so a test can compare whole tables with the Go plugin's; iptables
//! compares rules by meaning, so `-D` and `-C` match what either plugin wrote. Conditions
//! go where the reference puts them, after the multiport match.
//!
//! Costs (one family; the other is not touched when the container has no address in it):
//! - ADD: one `iptables-restore` that creates the container's chain and appends its entry
//!   rules. It is refused (changing nothing) when the chain already exists or a shared chain
//!   is missing; only then is the table read (`iptables-save`) and repaired in a second
//!   transaction, so the first container of a host and a repeated ADD take 3 processes.
//! - DEL: one `iptables-restore` deleting the entry rules and the chain; if any part is
//!   missing, one `iptables-save` and one transaction removing whatever is there.
//! - CHECK: one `iptables-restore` of `-C` checks, which change nothing.
//!
//! The kernel still validates the whole `nat` table on every commit that adds a jump, so a
//! commit gets somewhat slower as the table grows; that is one commit per ADD here, against
//! dozens in the reference.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;

use super::{MarkChain, PortMapper, PortmapSpec, family_name};
use crate::error::{Error, ErrorKind, Result};
use crate::exec::{self, LOCK_WAIT_SECS};
use crate::iptables::{self, Family, SavedTable, is_missing, quote};
use crate::names::{
    self, HOSTPORT_DNAT_CHAIN, HOSTPORT_MASQ_CHAIN, HOSTPORT_SETMARK_CHAIN, NAT_TABLE, OUTPUT,
    POSTROUTING, PREROUTING,
};

/// The iptables backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct IptablesPortmap;

/// The jump from PREROUTING and OUTPUT to `CNI-HOSTPORT-DNAT`.
fn toplevel_jump() -> String {
    format!("-m addrtype --dst-type LOCAL -j {HOSTPORT_DNAT_CHAIN}")
}

/// The jump inserted at the top of POSTROUTING.
fn masq_jump() -> String {
    format!(
        "-m comment --comment {} -j {HOSTPORT_MASQ_CHAIN}",
        quote(names::PORTMAP_MASQ_COMMENT)
    )
}

/// The only rule of `CNI-HOSTPORT-SETMARK` for `bit`.
fn setmark_rule(bit: u8) -> String {
    format!(
        "-m comment --comment {} -j MARK --set-xmark {}",
        quote(names::PORTMAP_MARK_COMMENT),
        MarkChain::mark(bit)
    )
}

/// The only rule of `CNI-HOSTPORT-MASQ` for `bit`.
fn masq_rule(bit: u8) -> String {
    format!("-m mark --mark {} -j MASQUERADE", MarkChain::mark(bit))
}

/// One condition token as `iptables-restore` reads it back to the same bytes.
fn word(token: &str) -> String {
    let plain = !token.is_empty()
        && !token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if plain {
        token.to_owned()
    } else {
        quote(token)
    }
}

/// The host part of an address as iptables-save prints it after `-s`/`-d`.
fn host(ip: std::net::IpAddr) -> String {
    format!("{ip}/{}", Family::of(ip).host_prefix())
}

/// The rules of the container's `CNI-DN-` chain for its address `net` of `family`: per
/// mapping, the hairpin mark, the localhost mark (IPv4 without masqAll) and the DNAT.
pub(super) fn chain_rules(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Vec<String> {
    let mark_target = match &spec.mark {
        MarkChain::Bit(_) => HOSTPORT_SETMARK_CHAIN,
        MarkChain::External(chain) => chain.as_str(),
    };
    // masqAll's `-s 0.0.0.0/0` matches everything, which iptables stores (and prints) as
    // no `-s` at all.
    let hairpin_source = (!spec.masq_all).then(|| {
        let subnet = IpNetwork::new(net.network(), net.prefix()).unwrap_or(net);
        format!("-s {subnet} ")
    });
    let to = match net.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let mut rules = Vec::with_capacity(3 * spec.mappings.len());
    for m in spec.mappings.iter().filter(|m| m.applies_to(family)) {
        let dst = m
            .destination()
            .map(|ip| format!("-d {} ", host(ip)))
            .unwrap_or_default();
        let proto = m.protocol.as_str();
        let base = format!("{dst}-p {proto} -m {proto} --dport {}", m.host_port);
        if spec.snat {
            if let Some(source) = &hairpin_source {
                rules.push(format!("{source}{base} -j {mark_target}"));
            } else {
                rules.push(format!("{base} -j {mark_target}"));
            }
            if family == Family::V4 && !spec.masq_all {
                rules.push(format!("-s 127.0.0.1/32 {base} -j {mark_target}"));
            }
        }
        rules.push(format!(
            "{base} -j DNAT --to-destination {to}:{}",
            m.container_port
        ));
    }
    rules
}

/// The container's entry rules in `CNI-HOSTPORT-DNAT`: per protocol (sorted by name, as
/// the reference does), its host ports in groups of 15 (multiport's limit). Every mapping
/// counts here, also one whose host IP belongs to the other family.
pub(super) fn entry_rules(spec: &PortmapSpec, family: Family) -> Vec<String> {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    let comment = quote(&names::portmap_dnat_comment(
        &spec.network,
        &spec.container_id,
    ));
    let conditions: String = spec
        .conditions(family)
        .iter()
        .map(|c| format!(" {}", word(c)))
        .collect();
    let mut by_proto: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for m in &spec.mappings {
        by_proto
            .entry(m.protocol.as_str())
            .or_default()
            .push(m.host_port.to_string());
    }
    let mut rules = Vec::new();
    for (proto, ports) in by_proto {
        for group in ports.chunks(names::MULTIPORT_MAX_PORTS) {
            rules.push(format!(
                "-p {proto} -m comment --comment {comment} -m multiport --dports {}{conditions} -j {chain}",
                group.join(",")
            ));
        }
    }
    rules
}

/// One `iptables-restore --noflush` transaction on `nat`.
#[derive(Debug, Default)]
struct Script {
    lines: Vec<String>,
}

impl Script {
    fn push(&mut self, line: String) {
        self.lines.push(line);
    }

    fn render(&self) -> String {
        let mut text = format!("*{NAT_TABLE}\n");
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        text
    }

    /// The script line that iptables-restore's `line N` refers to.
    fn line(&self, number: usize) -> Option<&str> {
        // Line 1 is `*nat`.
        self.lines.get(number.checked_sub(2)?).map(String::as_str)
    }
}

/// How a transaction ended when the tool ran.
enum Applied {
    Done,
    /// Refused as a whole (nothing changed); the tool's stderr.
    Refused(String),
}

/// As [`iptables::restore`]: over netlink where [`crate::nf::xt`] can, else the tool.
fn restore(family: Family, script: &Script) -> Result<Applied> {
    if crate::nf::xt::apply(family, NAT_TABLE, &script.lines) {
        return Ok(Applied::Done);
    }
    let tool = match family {
        Family::V4 => names::IPTABLES_RESTORE,
        Family::V6 => names::IP6TABLES_RESTORE,
    };
    let done = exec::run(
        tool,
        &["--noflush", "--wait", LOCK_WAIT_SECS],
        Some(&script.render()),
    )?;
    Ok(if done.success {
        Applied::Done
    } else {
        Applied::Refused(done.failure(format_args!("table {NAT_TABLE}")).to_string())
    })
}

/// The number after the first `line` in iptables-restore's error text.
pub(super) fn failed_line(stderr: &str) -> Option<usize> {
    let at = stderr.find("line")?;
    stderr[at + 4..]
        .trim_start_matches([' ', ':'])
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// ADD for one family, optimistic: the container chain is new (`-N` refuses the whole
/// transaction if it exists) and the shared chains exist (a jump to a missing chain is
/// refused too). A non-default mark bit also needs its rules checked in the shared chains,
/// which another network's ADD may have set up for another bit.
fn optimistic_add(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Script {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    let mut script = Script::default();
    if spec.snat
        && let MarkChain::Bit(bit) = spec.mark
        && bit != names::PORTMAP_DEFAULT_MARK_BIT
    {
        script.push(format!("-C {HOSTPORT_SETMARK_CHAIN} {}", setmark_rule(bit)));
        script.push(format!("-C {HOSTPORT_MASQ_CHAIN} {}", masq_rule(bit)));
    }
    script.push(format!("-N {chain}"));
    for rule in chain_rules(spec, family, net) {
        script.push(format!("-A {chain} {rule}"));
    }
    for entry in entry_rules(spec, family) {
        script.push(format!("-A {HOSTPORT_DNAT_CHAIN} {entry}"));
    }
    script
}

/// ADD for one family from what the table holds: shared chains and their jumps created
/// where missing (as the reference's check-then-insert), the container chain created or
/// flushed and refilled, every jump to it replaced by the wanted entry rules.
fn repair_add(saved: &SavedTable, spec: &PortmapSpec, family: Family, net: IpNetwork) -> Script {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    let has_rule = |chain: &str, args: &str| saved.rules_in(chain).any(|r| r.args == args);
    let mut script = Script::default();
    let ensure_chain = |script: &mut Script, name: &str| {
        if !saved.has_chain(name) {
            script.push(format!("-N {name}"));
        }
    };
    if spec.snat
        && let MarkChain::Bit(bit) = spec.mark
    {
        // First: the container chain jumps to SETMARK.
        ensure_chain(&mut script, HOSTPORT_SETMARK_CHAIN);
        if !has_rule(HOSTPORT_SETMARK_CHAIN, &setmark_rule(bit)) {
            script.push(format!("-A {HOSTPORT_SETMARK_CHAIN} {}", setmark_rule(bit)));
        }
        ensure_chain(&mut script, HOSTPORT_MASQ_CHAIN);
        if !has_rule(HOSTPORT_MASQ_CHAIN, &masq_rule(bit)) {
            script.push(format!("-A {HOSTPORT_MASQ_CHAIN} {}", masq_rule(bit)));
        }
        // At the top, or the bridge and ptp masquerade rules would take the packets first.
        if !has_rule(POSTROUTING, &masq_jump()) {
            script.push(format!("-I {POSTROUTING} 1 {}", masq_jump()));
        }
    }
    ensure_chain(&mut script, HOSTPORT_DNAT_CHAIN);
    for entry_chain in [PREROUTING, OUTPUT] {
        if !has_rule(entry_chain, &toplevel_jump()) {
            script.push(format!("-A {entry_chain} {}", toplevel_jump()));
        }
    }
    // Creates the chain, or flushes it when it exists.
    script.push(format!(":{chain} - [0:0]"));
    for rule in &saved.rules {
        if rule.target() == Some(chain.as_str()) && rule.chain != chain {
            script.push(format!("-D {} {}", rule.chain, rule.args));
        }
    }
    for rule in chain_rules(spec, family, net) {
        script.push(format!("-A {chain} {rule}"));
    }
    for entry in entry_rules(spec, family) {
        script.push(format!("-A {HOSTPORT_DNAT_CHAIN} {entry}"));
    }
    script
}

fn add_family(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Result<()> {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    let what = || {
        format!(
            "setting up port forwarding chain {chain} in {} table {NAT_TABLE}",
            family_name(family)
        )
    };
    let mut refusal =
        match restore(family, &optimistic_add(spec, family, net)).map_err(|e| e.context(what()))? {
            Applied::Done => return Ok(()),
            Applied::Refused(why) => why,
        };
    // Twice: a concurrent ADD may create a shared chain between our read and our write.
    for _ in 0..2 {
        let saved = iptables::save(family, NAT_TABLE).map_err(|e| e.context(what()))?;
        match restore(family, &repair_add(&saved, spec, family, net))
            .map_err(|e| e.context(what()))?
        {
            Applied::Done => return Ok(()),
            Applied::Refused(why) => refusal = why,
        }
    }
    Err(Error::new(ErrorKind::ToolFailed, refusal).context(what()))
}

/// The transaction removing `chains` and every rule jumping to them, as far as they exist.
fn removal(saved: &SavedTable, chains: &[String]) -> Script {
    let mut script = Script::default();
    for rule in &saved.rules {
        let jumps_to_ours = rule.target().is_some_and(|t| chains.iter().any(|c| c == t));
        if jumps_to_ours && !chains.contains(&rule.chain) {
            script.push(format!("-D {} {}", rule.chain, rule.args));
        }
    }
    for chain in chains {
        if saved.has_chain(chain) {
            script.push(format!("-F {chain}"));
            script.push(format!("-X {chain}"));
        }
    }
    script
}

/// DEL for one family. `required`: the container had an address in this family; otherwise
/// a family iptables cannot read at all holds nothing of ours.
fn del_family(spec: &PortmapSpec, family: Family, required: bool) -> Result<()> {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    let what = || {
        format!(
            "removing port forwarding chain {chain} from {} table {NAT_TABLE}",
            family_name(family)
        )
    };
    let mut quick = Script::default();
    for entry in entry_rules(spec, family) {
        quick.push(format!("-D {HOSTPORT_DNAT_CHAIN} {entry}"));
    }
    quick.push(format!("-F {chain}"));
    quick.push(format!("-X {chain}"));
    match restore(family, &quick) {
        Ok(Applied::Done) => return Ok(()),
        Ok(Applied::Refused(_)) => {}
        // No iptables at all: nothing of ours can exist (the reference ignores it too).
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    }
    let saved = match iptables::save(family, NAT_TABLE) {
        Ok(saved) => saved,
        Err(e) if !required || is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    };
    // The pre-v0.7 SNAT chain too, in case an old plugin made the ADD.
    let chains = [
        chain.clone(),
        names::portmap_old_snat_chain(&spec.network, &spec.container_id),
    ];
    let script = removal(&saved, &chains);
    if script.lines.is_empty() {
        return Ok(());
    }
    match restore(family, &script).map_err(|e| e.context(what()))? {
        Applied::Done => Ok(()),
        Applied::Refused(why) => Err(Error::new(ErrorKind::ToolFailed, why).context(what())),
    }
}

/// CHECK for one family: every rule ADD writes, tested with `-C` in one transaction that
/// changes nothing; the first missing one is named.
fn check_family(spec: &PortmapSpec, family: Family, net: IpNetwork) -> Result<()> {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    let mut script = Script::default();
    for rule in chain_rules(spec, family, net) {
        script.push(format!("-C {chain} {rule}"));
    }
    for entry in entry_rules(spec, family) {
        script.push(format!("-C {HOSTPORT_DNAT_CHAIN} {entry}"));
    }
    for entry_chain in [PREROUTING, OUTPUT] {
        script.push(format!("-C {entry_chain} {}", toplevel_jump()));
    }
    if spec.snat
        && let MarkChain::Bit(bit) = spec.mark
    {
        script.push(format!("-C {HOSTPORT_SETMARK_CHAIN} {}", setmark_rule(bit)));
        script.push(format!("-C {HOSTPORT_MASQ_CHAIN} {}", masq_rule(bit)));
        script.push(format!("-C {POSTROUTING} {}", masq_jump()));
    }
    let what = || {
        format!(
            "checking port forwarding chain {chain} in {} table {NAT_TABLE}",
            family_name(family)
        )
    };
    match restore(family, &script).map_err(|e| e.context(what()))? {
        Applied::Done => Ok(()),
        Applied::Refused(why) => {
            let missing = failed_line(&why)
                .and_then(|n| script.line(n))
                .map_or_else(|| why.clone(), |line| format!("`{line}` failed: {why}"));
            Err(Error::check(format!(
                "{} table {NAT_TABLE} lacks a port forwarding rule of chain {chain}: {missing}",
                family_name(family)
            )))
        }
    }
}

/// Per-container chains of `network` whose container is not kept, found by the entry rules'
/// comments; a chain is taken only if its name is the hash of exactly that network and id,
/// so other networks' rules and foreign chains are never touched.
fn stale_chains(saved: &SavedTable, network: &str, keep: &[(String, String)]) -> Vec<String> {
    let prefix = format!("dnat name: \"{network}\" id: \"");
    let mut stale: Vec<String> = Vec::new();
    for rule in saved.rules_in(HOSTPORT_DNAT_CHAIN) {
        let Some(cid) = rule
            .comment()
            .and_then(|c| c.strip_prefix(&prefix))
            .and_then(|c| c.strip_suffix('"'))
        else {
            continue;
        };
        let Some(target) = rule.target() else {
            continue;
        };
        if target != names::portmap_dnat_chain(network, cid)
            || keep.iter().any(|(kept, _)| kept == cid)
            || stale.iter().any(|s| s == target)
        {
            continue;
        }
        stale.push(target.to_owned());
    }
    stale
}

fn gc_family(family: Family, network: &str, keep: &[(String, String)]) -> Result<()> {
    let what = || {
        format!(
            "removing stale port forwarding chains of network {network:?} from {} table \
             {NAT_TABLE}",
            family_name(family)
        )
    };
    let saved = match iptables::save(family, NAT_TABLE) {
        Ok(saved) => saved,
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    };
    let stale = stale_chains(&saved, network, keep);
    if stale.is_empty() {
        return Ok(());
    }
    match restore(family, &removal(&saved, &stale)).map_err(|e| e.context(what()))? {
        Applied::Done => Ok(()),
        Applied::Refused(why) => Err(Error::new(ErrorKind::ToolFailed, why).context(what())),
    }
}

impl PortMapper for IptablesPortmap {
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
        let known = spec.container_v4.is_some() || spec.container_v6.is_some();
        let errors = spec
            .families_to_clean()
            .into_iter()
            .filter_map(|family| del_family(spec, family, known).err())
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

    fn gc(&self, network: &str, keep: &[(String, String)]) -> Result<()> {
        let errors = Family::ALL
            .into_iter()
            .filter_map(|family| gc_family(family, network, keep).err())
            .collect();
        Error::collect(errors)
    }
}
