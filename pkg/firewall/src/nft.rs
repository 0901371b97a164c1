//! nftables plumbing: one `nft -f -` batch per change (atomic in the kernel), and reading one
//! chain of our own table with `nft -j list chain`.
//!
//! Masquerade batches use nft's text syntax: it is what knftables (the reference's library)
//! writes too. The spoof check's batches use JSON, as go-nft (its reference library) does: its
//! chain names hold the container id and ifname, which the text syntax cannot always name
//! (no quoted chain names in nft 1.0), and nft applies a batch of that size in the same ~3 ms
//! either way. Listings use JSON, which carries handles and comments unambiguously.

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::exec;

/// The text of one `nft -f -` batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    text: String,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// One command, e.g. `add rule inet t c ip saddr 10.0.0.1 masquerade`.
    pub(crate) fn push(&mut self, command: impl AsRef<str>) {
        self.text.push_str(command.as_ref());
        self.text.push('\n');
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Applies the batch with one `nft -f -`; `what` names the table in errors.
    pub(crate) fn apply(&self, what: &str) -> Result<()> {
        exec::run(crate::names::NFT, &["-f", "-"], Some(self.text()))?
            .into_stdout(what)
            .map(drop)
    }
}

/// Applies `commands` (`{"add": {...}}`, `{"delete": {...}}`, ...) as one `nft -j -f -`
/// transaction: JSON names any table or chain, where the text syntax takes only identifiers.
///
/// `Ok(false)` when nft refused the batch because an object it names does not exist
/// (ENOENT); the transaction then changed nothing. Any other refusal is an error naming `what`.
pub(crate) fn apply_json(commands: &[Value], what: &str) -> Result<bool> {
    let doc = serde_json::json!({ "nftables": commands }).to_string();
    let done = exec::run(crate::names::NFT, &["-j", "-f", "-"], Some(&doc))?;
    if done.success {
        Ok(true)
    } else if is_no_such_object(&done.stderr) {
        Ok(false)
    } else {
        Err(done.failure(what))
    }
}

/// nft has no distinct exit status for a missing object; this is strerror(ENOENT), made
/// stable by running nft with `LC_ALL=C` (knftables matches the same text).
fn is_no_such_object(stderr: &str) -> bool {
    stderr.contains("No such file or directory")
}

/// A quoted nft string. The scanner takes everything up to the next `"`, with no escapes, so
/// a value must not contain `"`; control characters would end the command early.
pub(crate) fn quote(value: &str) -> Result<String> {
    if value.contains('"') || value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{value:?} cannot be written as an nftables string"
        )));
    }
    Ok(format!("\"{value}\""))
}

/// Whether nft's text syntax takes `name` bare as a table or chain name (its scanner's
/// `string`: a letter, `_` or `.`, then letters, digits, `/`, `-`, `_`, `.`). nft 1.0 accepts
/// no quoted chain names, and anything else (`#` starts a comment) would change the command.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '.'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

/// One rule from `nft -j list`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListedRule {
    pub(crate) chain: String,
    pub(crate) handle: u64,
    pub(crate) comment: Option<String>,
    pub(crate) expr: Value,
}

impl ListedRule {
    /// The chain this rule jumps or goes to, if its verdict is one.
    pub(crate) fn jump_target(&self) -> Option<&str> {
        self.expr.as_array()?.iter().find_map(|statement| {
            ["jump", "goto"]
                .iter()
                .find_map(|verdict| statement.get(verdict)?.get("target")?.as_str())
        })
    }
}

/// Rules of `family table`, or of one `chain` in it; `None` when the table or the chain
/// does not exist.
pub(crate) fn list(
    family: &str,
    table: &str,
    chain: Option<&str>,
) -> Result<Option<Vec<ListedRule>>> {
    let (object, what) = match chain {
        Some(chain) => (
            vec!["-j", "list", "chain", family, table, chain],
            format!("reading chain {family} {table} {chain}"),
        ),
        None => (
            vec!["-j", "list", "table", family, table],
            format!("reading table {family} {table}"),
        ),
    };
    let done = exec::run(crate::names::NFT, &object, None)?;
    if !done.success {
        if is_no_such_object(&done.stderr) {
            return Ok(None);
        }
        return Err(done.failure(what));
    }
    parse_rules(&done.stdout)
        .map(Some)
        .map_err(|e| e.context(what))
}

/// Extracts the rules from `nft -j list ...` output.
pub(crate) fn parse_rules(json: &str) -> Result<Vec<ListedRule>> {
    let bad = |why: &str| Error::new(ErrorKind::ToolFailed, format!("unexpected nft JSON: {why}"));
    let doc: Value = serde_json::from_str(json).map_err(|e| bad(&e.to_string()))?;
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no \"nftables\" array"))?;
    let mut rules = Vec::new();
    for rule in items.iter().filter_map(|item| item.get("rule")) {
        let chain = rule
            .get("chain")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("rule without chain"))?;
        let handle = rule
            .get("handle")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("rule without handle"))?;
        rules.push(ListedRule {
            chain: chain.to_owned(),
            handle,
            comment: rule
                .get("comment")
                .and_then(Value::as_str)
                .map(str::to_owned),
            expr: rule.get("expr").cloned().unwrap_or(Value::Null),
        });
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Output of `nft -j list chain inet cni_plugins_masquerade masq_checks` (nft 1.0.6).
    const LISTED: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"chain": {"family": "inet", "table": "cni_plugins_masquerade", "name": "masq_checks", "handle": 1}}, {"rule": {"family": "inet", "table": "cni_plugins_masquerade", "chain": "masq_checks", "handle": 6, "comment": "1d8721804f16f412-e65086f8a75535c6, net: podman, if: eth0, id: abc", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.1.2.2"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.1.2.0", "len": 24}}}}, {"masquerade": null}]}}]}"#;

    #[test]
    fn parses_rules_with_handles_and_comments() {
        let rules = parse_rules(LISTED).expect("valid listing");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].chain, "masq_checks");
        assert_eq!(rules[0].handle, 6);
        assert_eq!(
            rules[0].comment.as_deref(),
            Some("1d8721804f16f412-e65086f8a75535c6, net: podman, if: eth0, id: abc")
        );
        assert_eq!(rules[0].jump_target(), None);
        assert!(parse_rules("{}").is_err());
        assert!(parse_rules("not json").is_err());
    }

    // `nft -j list chain bridge nat PREROUTING` after the bridge plugin's spoof check.
    const JUMP: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}, {"rule": {"family": "bridge", "table": "nat", "chain": "PREROUTING", "handle": 4, "comment": "macspoofchk-abc-eth0", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "veth1234"}}, {"jump": {"target": "cni-br-iface-abc-eth0"}}]}}]}"#;

    #[test]
    fn jump_targets_are_found() {
        let rules = parse_rules(JUMP).expect("valid listing");
        assert_eq!(rules[0].jump_target(), Some("cni-br-iface-abc-eth0"));
        assert_eq!(rules[0].comment.as_deref(), Some("macspoofchk-abc-eth0"));
    }

    #[test]
    fn identifiers_are_what_nft_reads_bare() {
        for ok in [
            "masq_checks",
            "PREROUTING",
            "cni-br-iface-a.b_c-eth0",
            "_x",
            ".x",
            "a/b",
        ] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "1a", "a#b", "a b", "a@b", "a\\b", "a\"b", "-a"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn quote_rejects_what_nft_cannot_read() {
        assert_eq!(quote("a b").expect("plain text"), "\"a b\"");
        assert!(quote("a\"b").is_err());
        assert!(quote("a\nb").is_err());
    }
}
