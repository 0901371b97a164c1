//! iptables plumbing shared by every iptables rule set: one `iptables-restore --noflush`
//! transaction per table and family, and a parser for `iptables-save` output.
//!
//! Rules are written exactly as `iptables-save` prints them (same match order, same quoting),
//! so a rule line we generate can be compared with a saved one as text, and a saved line can be
//! fed back as `-D <chain> <args>` to delete precisely that rule.

use std::net::IpAddr;

use crate::error::{Error, ErrorKind, Result};
use crate::exec::{self, LOCK_WAIT_SECS};
use crate::names;

/// IPv4 (`iptables*`) or IPv6 (`ip6tables*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Family {
    V4,
    V6,
}

impl Family {
    pub(crate) const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn restore_tool(self) -> &'static str {
        match self {
            Family::V4 => names::IPTABLES_RESTORE,
            Family::V6 => names::IP6TABLES_RESTORE,
        }
    }

    fn save_tool(self) -> &'static str {
        match self {
            Family::V4 => names::IPTABLES_SAVE,
            Family::V6 => names::IP6TABLES_SAVE,
        }
    }

    /// The nf_tables family iptables-nft keeps this family's tables in.
    pub(crate) fn table_family(self) -> crate::nf::rules::TableFamily {
        match self {
            Family::V4 => crate::nf::rules::TableFamily::Ip,
            Family::V6 => crate::nf::rules::TableFamily::Ip6,
        }
    }

    pub(crate) fn multicast(self) -> &'static str {
        match self {
            Family::V4 => names::IPV4_MULTICAST,
            Family::V6 => names::IPV6_MULTICAST,
        }
    }

    /// Prefix length of a single host, as iptables-save prints it after `-s`/`-d`.
    pub(crate) fn host_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// The lines of one `iptables-restore` transaction on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestoreScript {
    table: &'static str,
    lines: Vec<String>,
}

impl RestoreScript {
    pub(crate) fn new(table: &'static str) -> Self {
        Self {
            table,
            lines: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// `:chain - [0:0]`: with `--noflush`, creates a user chain or flushes it if it exists.
    pub(crate) fn declare_chain(&mut self, chain: &str) {
        self.lines.push(format!(":{chain} - [0:0]"));
    }

    /// `-N chain`: fails the whole transaction if the chain exists.
    pub(crate) fn new_chain(&mut self, chain: &str) {
        self.lines.push(format!("-N {chain}"));
    }

    pub(crate) fn append(&mut self, chain: &str, args: &str) {
        self.lines.push(format!("-A {chain} {args}"));
    }

    /// `-I chain position args`: `position` 1 puts the rule first.
    pub(crate) fn insert(&mut self, chain: &str, position: u32, args: &str) {
        self.lines.push(format!("-I {chain} {position} {args}"));
    }

    /// `-C chain args`: fails the whole transaction if no rule matches, changes nothing.
    pub(crate) fn check(&mut self, chain: &str, args: &str) {
        self.lines.push(format!("-C {chain} {args}"));
    }

    /// `-D chain args`: fails the whole transaction if no rule matches.
    pub(crate) fn delete(&mut self, chain: &str, args: &str) {
        self.lines.push(format!("-D {chain} {args}"));
    }

    pub(crate) fn flush_chain(&mut self, chain: &str) {
        self.lines.push(format!("-F {chain}"));
    }

    /// `-X chain`: fails if the chain is missing or still referenced.
    pub(crate) fn delete_chain(&mut self, chain: &str) {
        self.lines.push(format!("-X {chain}"));
    }

    pub(crate) fn render(&self) -> String {
        let mut text = format!("*{}\n", self.table);
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str("COMMIT\n");
        text
    }
}

/// Applies `script` atomically: over nf_tables netlink when it only creates chains and
/// appends rules iptables-nft would write (see [`crate::nf::xt`]), otherwise, or when the
/// kernel refuses that, with one `iptables-restore --noflush --wait N` process.
///
/// `Ok(Err(_))` means the tool ran and rejected the transaction (nothing was changed); callers
/// that tried an optimistic transaction fall back on it. `Err` means it could not run at all.
pub(crate) fn restore(family: Family, script: &RestoreScript) -> Result<Result<()>> {
    if crate::nf::xt::apply(family, script.table, &script.lines) {
        return Ok(Ok(()));
    }
    let tool = family.restore_tool();
    let done = exec::run(
        tool,
        &["--noflush", "--wait", LOCK_WAIT_SECS],
        Some(&script.render()),
    )?;
    if done.success {
        Ok(Ok(()))
    } else {
        Ok(Err(done.failure(format_args!("table {}", script.table))))
    }
}

/// Runs `iptables-save -t table` and parses it.
pub(crate) fn save(family: Family, table: &str) -> Result<SavedTable> {
    let text = exec::run(family.save_tool(), &["-t", table], None)?
        .into_stdout(format_args!("reading table {table}"))?;
    SavedTable::parse(&text, table)
}

/// `true` when `err` says the tool is not installed: nothing of ours can exist then.
pub(crate) fn is_missing(err: &Error) -> bool {
    err.kind() == ErrorKind::ToolMissing
}

/// One table as `iptables-save` printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SavedTable {
    pub(crate) chains: Vec<String>,
    pub(crate) rules: Vec<SavedRule>,
}

/// One `-A chain args` line; `args` is kept verbatim for `-D chain args` and comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedRule {
    pub(crate) chain: String,
    pub(crate) args: String,
    words: Vec<String>,
}

impl SavedTable {
    /// Parses the `*table` section of `iptables-save` output (other tables are skipped).
    pub(crate) fn parse(text: &str, table: &str) -> Result<Self> {
        let mut saved = SavedTable::default();
        let mut in_table = false;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                in_table = name == table;
                continue;
            }
            if !in_table {
                continue;
            }
            // Besides chains and rules there are only `#` comments and COMMIT.
            if let Some(decl) = line.strip_prefix(':') {
                if let Some(chain) = decl.split_whitespace().next() {
                    saved.chains.push(chain.to_owned());
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, args) = rule.split_once(' ').unwrap_or((rule, ""));
                let words = split_words(args).ok_or_else(|| {
                    Error::new(
                        ErrorKind::ToolFailed,
                        format!("table {table}: cannot parse saved rule {line:?}"),
                    )
                })?;
                saved.rules.push(SavedRule {
                    chain: chain.to_owned(),
                    args: args.to_owned(),
                    words,
                });
            }
        }
        Ok(saved)
    }

    pub(crate) fn has_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|c| c == chain)
    }

    pub(crate) fn rules_in<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a SavedRule> {
        self.rules.iter().filter(move |r| r.chain == chain)
    }
}

impl SavedRule {
    /// The value following `option`, unquoted.
    fn option(&self, option: &str) -> Option<&str> {
        let at = self.words.iter().position(|w| w == option)?;
        self.words.get(at + 1).map(String::as_str)
    }

    /// The `-j` target.
    pub(crate) fn target(&self) -> Option<&str> {
        self.option("-j")
    }

    /// The `-m comment --comment` text, unquoted.
    pub(crate) fn comment(&self) -> Option<&str> {
        self.option("--comment")
    }
}

/// Quotes a value the way `iptables-save` does (`xtables_save_string`): bare when it is only
/// letters, digits, `_` and `-`; otherwise in double quotes with `"`, `\` and `'` escaped.
/// `iptables-restore` reads it back to the same bytes.
pub(crate) fn quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits saved rule arguments into words the way `iptables-restore` does: whitespace
/// separates, double quotes group, a backslash inside quotes takes the next character.
/// `None` on an unterminated quote.
pub(crate) fn split_words(args: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '\\' => word.push(chars.next()?),
                '"' => quoted = false,
                c => word.push(c),
            }
        } else if c == '"' {
            quoted = true;
            in_word = true;
        } else if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
        } else {
            word.push(c);
            in_word = true;
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables) on Mon Nov 23 08:45:06 2026
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-514f2d63f742a896f7a7f9d8 - [0:0]
-A POSTROUTING -s 10.1.2.2/32 -m comment --comment "name: \"podman\" id: \"abc\"" -j CNI-514f2d63f742a896f7a7f9d8
-A CNI-514f2d63f742a896f7a7f9d8 ! -d 224.0.0.0/4 -m comment --comment "name: \"podman\" id: \"abc\"" -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j DROP
COMMIT
"#;

    #[test]
    fn parses_only_the_requested_table() {
        let t = SavedTable::parse(SAVED, "nat").expect("valid save output");
        assert_eq!(t.chains.len(), 3);
        assert!(t.has_chain("CNI-514f2d63f742a896f7a7f9d8"));
        assert_eq!(t.rules.len(), 2);
        let jump = &t.rules[0];
        assert_eq!(jump.chain, "POSTROUTING");
        assert_eq!(jump.target(), Some("CNI-514f2d63f742a896f7a7f9d8"));
        assert_eq!(jump.comment(), Some(r#"name: "podman" id: "abc""#));
        assert!(jump.args.starts_with("-s 10.1.2.2/32 -m comment"));
    }

    #[test]
    fn quote_matches_iptables_save() {
        assert_eq!(quote("ACCEPT"), "ACCEPT");
        assert_eq!(
            quote(r#"name: "podman" id: "abc""#),
            r#""name: \"podman\" id: \"abc\"""#
        );
        assert_eq!(quote(r"a\b'c"), r#""a\\b\'c""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn split_words_inverts_quote() {
        for v in ["plain", "two words", r#"q"uo\te's"#, ""] {
            let line = format!("-m comment --comment {} -j X", quote(v));
            let words = split_words(&line).expect("balanced quotes");
            assert_eq!(words, ["-m", "comment", "--comment", v, "-j", "X"]);
        }
        assert_eq!(split_words(r#"--comment "open"#), None);
    }

    #[test]
    fn script_renders_one_table_transaction() {
        let mut s = RestoreScript::new("nat");
        assert!(s.is_empty());
        s.new_chain("C");
        s.append("C", "-j ACCEPT");
        s.delete("POSTROUTING", "-j C");
        assert_eq!(
            s.render(),
            "*nat\n-N C\n-A C -j ACCEPT\n-D POSTROUTING -j C\nCOMMIT\n"
        );
    }
}
