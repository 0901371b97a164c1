//! The bridge plugin's `macspoofchk`: frames entering the bridge from a container's host veth
//! must carry the container's MAC. Same layout as the reference (`pkg/link/spoofcheck.go`), so
//! a Go bridge DEL removes our rules and ours removes the Go bridge's:
//!
//! ```text
//! table bridge nat {
//!     chain PREROUTING {
//!         type filter hook prerouting priority dstnat; policy accept;      # dstnat = -300
//!         iifname "<host veth>" jump cni-br-iface-<id> comment "macspoofchk-<id>"
//!     }
//!     chain cni-br-iface-<id> {
//!         jump cni-br-iface-<id>-mac comment "macspoofchk-<id>"
//!     }
//!     chain cni-br-iface-<id>-mac {
//!         ether saddr <container mac> return comment "macspoofchk-<id>"
//!         drop comment "macspoofchk-<id>"
//!     }
//! }
//! ```
//!
//! with `<id>` = `<containerID>-<ifname>`. The table and `PREROUTING` are shared by every
//! attachment and never deleted, as in the reference.

use serde_json::{Value, json};

use crate::error::{Error, ErrorKind, Result};
use crate::iptables::is_missing;
use crate::names::{
    self, NFT_FAMILY_BRIDGE, SPOOFCHK_BASE_CHAIN, SPOOFCHK_BASE_PRIORITY, SPOOFCHK_TABLE,
};
use crate::nft::{self, ListedRule};

/// The spoof check of one bridge port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoofCheck {
    /// The host end of the container's veth, a port of the bridge.
    pub host_veth: String,
    /// The container interface's MAC: the only source address let through.
    pub container_mac: [u8; 6],
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
}

/// How many times [`SpoofCheck::teardown`] reads and deletes before it gives up: a second
/// round only happens when a rule it listed vanished before its batch ran.
const TEARDOWN_ROUNDS: usize = 2;

impl SpoofCheck {
    /// Installs the rules with one `nft -j -f -` transaction.
    ///
    /// The reference uses two (declare table and chains, then flush and fill them), on the
    /// grounds that a flush only succeeds once its chain exists; nft 1.0 accepts the flush of
    /// a chain added earlier in the same batch (the kernel tests start from an empty ruleset),
    /// so the whole change is one atomic transaction here. Like the reference, a repeated setup for the same attachment
    /// refills its chains but adds another `PREROUTING` jump (removing the old one would need a
    /// read first); [`SpoofCheck::teardown`] removes all of them.
    ///
    /// # Errors
    /// [`crate::ErrorKind::ToolMissing`] without `nft`; [`crate::ErrorKind::ToolFailed`] when
    /// nft refuses the batch (e.g. a kernel without the bridge family), with its message.
    pub fn setup(&self) -> Result<()> {
        let what = format!(
            "setting up the MAC spoof check of {} in table {}",
            self.host_veth,
            table_what()
        );
        if nft::apply_json(&self.setup_commands(), &what)? {
            Ok(())
        } else {
            // Every object the batch names is created by the batch itself.
            Err(Error::new(
                ErrorKind::ToolFailed,
                format!("{what}: nft reported a missing object"),
            ))
        }
    }

    fn setup_commands(&self) -> Vec<Value> {
        let iface = names::spoofcheck_iface_chain(&self.container_id, &self.ifname);
        let mac = names::spoofcheck_mac_chain(&self.container_id, &self.ifname);
        let comment = names::spoofcheck_comment(&self.container_id, &self.ifname);
        let rule = |chain: &str, expr: Value| {
            json!({"add": {"rule": {
                "family": NFT_FAMILY_BRIDGE,
                "table": SPOOFCHK_TABLE,
                "chain": chain,
                "expr": expr,
                "comment": comment,
            }}})
        };
        vec![
            json!({"add": {"table": {"family": NFT_FAMILY_BRIDGE, "name": SPOOFCHK_TABLE}}}),
            json!({"add": {"chain": {
                "family": NFT_FAMILY_BRIDGE,
                "table": SPOOFCHK_TABLE,
                "name": SPOOFCHK_BASE_CHAIN,
                "type": "filter",
                "hook": "prerouting",
                "prio": SPOOFCHK_BASE_PRIORITY,
                "policy": "accept",
            }}}),
            chain_command("add", &iface),
            chain_command("add", &mac),
            chain_command("flush", &iface),
            chain_command("flush", &mac),
            rule(
                SPOOFCHK_BASE_CHAIN,
                json!([
                    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": self.host_veth}},
                    {"jump": {"target": iface}},
                ]),
            ),
            rule(&iface, json!([{"jump": {"target": mac}}])),
            rule(
                &mac,
                json!([
                    {"match": {
                        "op": "==",
                        "left": {"payload": {"protocol": "ether", "field": "saddr"}},
                        "right": names::format_mac(self.container_mac),
                    }},
                    {"return": null},
                ]),
            ),
            rule(&mac, json!([{"drop": null}])),
        ]
    }

    /// Removes one attachment's spoof check: every `PREROUTING` rule carrying its comment (or
    /// jumping to its chain), then both its chains. Missing table, chains or rules are success.
    ///
    /// Two processes: `nft -j list chain bridge nat PREROUTING` (only the base chain is read,
    /// never the whole table: large rulesets made the reference's DEL slow, plugins#852), then
    /// one `nft -j -f -` batch that deletes the jump rules by handle and, for each chain, adds
    /// it (a no-op when it exists), flushes and deletes it, so the batch needs no knowledge
    /// of which chains exist. When the table is gone nft refuses the batch with ENOENT, which
    /// is success. Every nft run is killed after 30 s (the reference reads with a 55 s timeout).
    ///
    /// # Errors
    /// [`crate::ErrorKind::ToolFailed`] when nft fails other than for a missing object, or
    /// overruns; a missing `nft` is success (nothing of ours can exist).
    pub fn teardown(container_id: &str, ifname: &str) -> Result<()> {
        let id = names::spoofcheck_id(container_id, ifname);
        let what = || {
            format!(
                "removing the MAC spoof check of {id:?} from table {}",
                table_what()
            )
        };
        for _ in 0..TEARDOWN_ROUNDS {
            let listed =
                match nft::list(NFT_FAMILY_BRIDGE, SPOOFCHK_TABLE, Some(SPOOFCHK_BASE_CHAIN)) {
                    Ok(listed) => listed,
                    // No nft at all: nothing of ours can exist.
                    Err(e) if is_missing(&e) => return Ok(()),
                    Err(e) => return Err(e.context(what())),
                };
            let base_chain_exists = listed.is_some();
            let jumps: Vec<u64> = listed
                .unwrap_or_default()
                .iter()
                .filter(|r| is_jump_of(r, container_id, ifname))
                .map(|r| r.handle)
                .collect();
            let commands = teardown_commands(container_id, ifname, &jumps);
            if nft::apply_json(&commands, &what())? {
                return Ok(());
            }
            if !base_chain_exists {
                // Nothing but the table can be missing for a batch that deletes no rule.
                return Ok(());
            }
            // A listed rule vanished before the batch ran (a concurrent teardown): read again.
        }
        Err(Error::new(
            ErrorKind::ToolFailed,
            format!(
                "{}: rules kept changing during {TEARDOWN_ROUNDS} attempts",
                what()
            ),
        ))
    }
}

/// Whether a `PREROUTING` rule belongs to the attachment: the reference finds its rule by
/// comment; a rule jumping to the attachment's chain (whatever its comment) must go too, or
/// the chain could not be deleted.
fn is_jump_of(rule: &ListedRule, container_id: &str, ifname: &str) -> bool {
    rule.chain == SPOOFCHK_BASE_CHAIN
        && (rule.comment.as_deref()
            == Some(names::spoofcheck_comment(container_id, ifname).as_str())
            || rule.jump_target()
                == Some(names::spoofcheck_iface_chain(container_id, ifname).as_str()))
}

/// Deletes the jump rules by handle, then each chain (iface first: it jumps to mac). `add`
/// before `flush` and `delete` makes the batch valid whether or not the chain exists.
fn teardown_commands(container_id: &str, ifname: &str, jumps: &[u64]) -> Vec<Value> {
    let mut commands: Vec<Value> = jumps
        .iter()
        .map(|handle| {
            json!({"delete": {"rule": {
                "family": NFT_FAMILY_BRIDGE,
                "table": SPOOFCHK_TABLE,
                "chain": SPOOFCHK_BASE_CHAIN,
                "handle": handle,
            }}})
        })
        .collect();
    for chain in [
        names::spoofcheck_iface_chain(container_id, ifname),
        names::spoofcheck_mac_chain(container_id, ifname),
    ] {
        for verb in ["add", "flush", "delete"] {
            commands.push(chain_command(verb, &chain));
        }
    }
    commands
}

/// `{"<verb>": {"chain": ...}}` for a regular chain of the table.
fn chain_command(verb: &str, chain: &str) -> Value {
    json!({verb: {"chain": {"family": NFT_FAMILY_BRIDGE, "table": SPOOFCHK_TABLE, "name": chain}}})
}

fn table_what() -> String {
    format!("{NFT_FAMILY_BRIDGE} {SPOOFCHK_TABLE}")
}

#[cfg(test)]
mod tests;
