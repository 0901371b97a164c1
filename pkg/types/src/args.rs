//! CNI_ARGS: `K=V;K=V` (reference §1.3, Go `types.LoadArgs`).
//!
//! Keys are matched exactly (case-sensitive). A key the plugin does not know is an error
//! unless `IgnoreUnknown` is true, which Kubernetes runtimes always send.
//!
//! As in Go, only plugins that read CNI_ARGS judge them: a malformed string is reported
//! by [`CniArgs::check_known`], not when it is read. Errors carry code 999, which is what
//! every reference plugin returns for them (Go's `LoadArgs` gives plain errors).

use crate::error::{Error, Result};

/// Parsed CNI_ARGS, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
    /// The first pair that is not `K=V`, reported when a plugin checks its keys.
    malformed: Option<String>,
}

/// The key every plugin accepts.
pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";

impl CniArgs {
    /// Splits `raw` into pairs. A pair that is not exactly `K=V` is an error, as in Go.
    ///
    /// # Errors
    /// A malformed pair (naming the pair).
    pub fn parse(raw: &str) -> Result<CniArgs> {
        let args = CniArgs::read(raw);
        match args.malformed_error() {
            Some(e) => Err(e),
            None => Ok(args),
        }
    }

    /// Splits `raw` without judging it; [`CniArgs::check_known`] reports a malformed pair.
    #[must_use]
    pub fn read(raw: &str) -> CniArgs {
        let mut args = CniArgs::default();
        if raw.is_empty() {
            return args;
        }
        for pair in raw.split(';') {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) => args.pairs.push((k.to_string(), v.to_string())),
                _ => {
                    args.malformed.get_or_insert_with(|| pair.to_string());
                }
            }
        }
        args
    }

    fn malformed_error(&self) -> Option<Error> {
        self.malformed.as_ref().map(|pair| {
            Error::internal(format!("ARGS: invalid pair {pair:?}"))
                .with_details("CNI_ARGS must be K=V pairs separated by ';'")
        })
    }

    /// The last value given for `key` (later pairs override earlier ones, as in Go).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when `IgnoreUnknown` is `1`/`true` (any case). Go rejects other values.
    ///
    /// # Errors
    /// `IgnoreUnknown` with a value that is not a boolean.
    pub fn ignore_unknown(&self) -> Result<bool> {
        match self.get(IGNORE_UNKNOWN) {
            None => Ok(false),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" => Ok(true),
                "0" | "false" => Ok(false),
                _ => Err(Error::internal(format!(
                    "ARGS: invalid value {v:?} for {IGNORE_UNKNOWN}"
                ))),
            },
        }
    }

    /// Checks every key against what the plugin understands (`IgnoreUnknown` is always
    /// known). Unknown keys are an error unless `IgnoreUnknown` is true.
    ///
    /// # Errors
    /// A malformed pair, unknown keys (naming them) or a bad `IgnoreUnknown` value.
    pub fn check_known(&self, known: &[&str]) -> Result<()> {
        if let Some(e) = self.malformed_error() {
            return Err(e);
        }
        let ignore = self.ignore_unknown()?;
        // Go names the whole pairs: `ARGS: unknown args ["FOO=bar"]`.
        let unknown: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != IGNORE_UNKNOWN && !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if unknown.is_empty() || ignore {
            Ok(())
        } else {
            // Go's %q of a []string: quoted items separated by spaces.
            let quoted: Vec<String> = unknown.iter().map(|p| format!("{p:?}")).collect();
            Err(Error::internal(format!(
                "ARGS: unknown args [{}]",
                quoted.join(" ")
            )))
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_last_wins() {
        let a = CniArgs::parse("IP=10.0.0.5;K8S_POD_NAME=x;IP=10.0.0.6").expect("valid");
        assert_eq!(a.get("IP"), Some("10.0.0.6"));
        assert_eq!(a.get("ip"), None, "keys are case-sensitive");
        assert_eq!(CniArgs::parse("").expect("empty").iter().count(), 0);
    }

    #[test]
    fn rejects_malformed_pairs() {
        for bad in ["IP", "IP=1=2", "A=1;;B=2", "A=1;"] {
            let e = CniArgs::parse(bad).expect_err(bad);
            assert_eq!(e.code.number(), 999, "{bad}");
            assert!(CniArgs::read(bad).check_known(&[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let a = CniArgs::parse("K8S_POD_NAME=x;IP=10.0.0.5").expect("valid");
        let e = a.check_known(&["IP"]).expect_err("unknown key");
        assert_eq!(e.msg, r#"ARGS: unknown args ["K8S_POD_NAME=x"]"#);
        let a = CniArgs::parse("IgnoreUnknown=TRUE;K8S_POD_NAME=x").expect("valid");
        a.check_known(&["IP"]).expect("ignored");
        let a = CniArgs::parse("IgnoreUnknown=yes").expect("valid");
        assert!(a.check_known(&[]).is_err());
    }
}
