//! `dhcp daemon` flags, spelled and parsed as the reference's Go `flag` set: `-name value`,
//! `-name=value`, `--name`; booleans as `-broadcast` or `-broadcast=false`; durations in
//! Go's syntax (`10s`, `1m30s`, `500ms`).

use std::path::PathBuf;
use std::time::Duration;

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    pub socket_path: PathBuf,
    pub pidfile: Option<PathBuf>,
    pub host_prefix: String,
    pub broadcast: bool,
    pub timeout: Duration,
    pub resend_max: Duration,
    pub resend_timeout: Duration,
    pub state_dir: PathBuf,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            socket_path: PathBuf::from(crate::config::DEFAULT_SOCKET_PATH),
            pidfile: None,
            host_prefix: String::new(),
            broadcast: false,
            timeout: Duration::from_secs(10),
            resend_max: Duration::from_secs(62),
            resend_timeout: Duration::from_secs(208),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        }
    }
}

/// The flags that take a value.
const VALUED: [&str; 7] = [
    "socketpath",
    "pidfile",
    "hostprefix",
    "statedir",
    "timeout",
    "resendmax",
    "resendtimeout",
];

/// Where leases are persisted unless `-statedir` says otherwise (prefixed by
/// `-hostprefix`, like the socket path).
pub const DEFAULT_STATE_DIR: &str = "/run/cni/dhcp";

pub const USAGE: &str = "\
Usage of dhcp daemon:
  -broadcast
        broadcast DHCP leases (accepted for compatibility: replies are read from a
        packet socket, so unicast replies arrive too)
  -hostprefix string
        optional prefix to host root (prepended to the socket path, the state
        directory and netns paths)
  -pidfile string
        optional path to write daemon PID to
  -resendmax duration
        longest wait for an answer before a new DISCOVER: 4 attempts of 2s (+-1s
        jitter), then 4s doubling, each at most this (at least 500ms) (default 1m2s)
  -resendtimeout duration
        how long to keep asking for a lease; an ADD fails after this or -timeout,
        whichever is shorter (default 3m28s)
  -socketpath string
        optional dhcp server socketpath (default /run/cni/dhcp.sock)
  -statedir string
        where leases are kept across restarts (default /run/cni/dhcp)
  -timeout duration
        how long an ADD waits for a lease, in total; acquiring one stops after this
        or -resendtimeout, whichever is shorter (default 10s)
";

impl Flags {
    /// Parses the arguments after `daemon`.
    ///
    /// # Errors
    /// An unknown flag, a missing or malformed value, or `-h`/`-help` (with `USAGE`).
    pub fn parse(args: &[String]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            if name == "broadcast" {
                flags.broadcast = match inline.as_deref() {
                    None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
                    Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
                    Some(v) => return Err(format!("invalid boolean value {v:?} for -broadcast")),
                };
                continue;
            }
            if matches!(name, "h" | "help") {
                return Err("help requested".into());
            }
            if !VALUED.contains(&name) {
                return Err(format!("flag provided but not defined: -{name}"));
            }
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
            };
            match name {
                "socketpath" => flags.socket_path = PathBuf::from(value),
                "pidfile" => {
                    flags.pidfile = Some(PathBuf::from(value)).filter(|p| !p.as_os_str().is_empty())
                }
                "hostprefix" => flags.host_prefix = value,
                "statedir" => flags.state_dir = PathBuf::from(value),
                "timeout" => flags.timeout = duration(name, &value)?,
                "resendmax" => flags.resend_max = duration(name, &value)?,
                "resendtimeout" => flags.resend_timeout = duration(name, &value)?,
                _ => return Err(format!("flag provided but not defined: -{name}")),
            }
        }
        if flags.socket_path.as_os_str().is_empty() {
            flags.socket_path = PathBuf::from(crate::config::DEFAULT_SOCKET_PATH);
        }
        for (name, value) in [
            ("timeout", flags.timeout),
            ("resendmax", flags.resend_max),
            ("resendtimeout", flags.resend_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("-{name} must be more than 0"));
            }
        }
        Ok(flags)
    }

    /// A path on the host, as seen by the daemon: `-hostprefix` in front.
    #[must_use]
    pub fn on_host(&self, path: &std::path::Path) -> PathBuf {
        PathBuf::from(format!("{}{}", self.host_prefix, path.display()))
    }
}

fn duration(name: &str, value: &str) -> Result<Duration, String> {
    parse_duration(value)
        .ok_or_else(|| format!("invalid value {value:?} for flag -{name}: parse error"))
}

/// Go's `time.ParseDuration` for non-negative values: `0`, or numbers (decimals allowed)
/// each followed by `ns`, `us`, `µs`, `ms`, `s`, `m` or `h`.
#[must_use]
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn reference_flags_in_every_spelling() {
        let f = Flags::parse(&args(&[
            "-socketpath",
            "/tmp/d.sock",
            "--pidfile=/tmp/d.pid",
            "-hostprefix",
            "/host",
            "-broadcast",
            "-timeout=3s",
            "-resendmax",
            "1m2s",
            "-resendtimeout",
            "500ms",
            "-statedir",
            "/tmp/state",
        ]))
        .expect("valid");
        assert_eq!(
            f,
            Flags {
                socket_path: "/tmp/d.sock".into(),
                pidfile: Some("/tmp/d.pid".into()),
                host_prefix: "/host".into(),
                broadcast: true,
                timeout: Duration::from_secs(3),
                resend_max: Duration::from_secs(62),
                resend_timeout: Duration::from_millis(500),
                state_dir: "/tmp/state".into(),
            }
        );
        assert_eq!(f.on_host(&f.socket_path), PathBuf::from("/host/tmp/d.sock"));
        assert_eq!(Flags::parse(&[]).expect("defaults"), Flags::default());
        let f = Flags::parse(&args(&["-broadcast=false"])).expect("valid");
        assert!(!f.broadcast);
    }

    #[test]
    fn bad_flags_are_named() {
        for (a, want) in [
            (vec!["-nope"], "flag provided but not defined: -nope"),
            (vec!["-timeout"], "flag needs an argument: -timeout"),
            (
                vec!["-timeout", "10"],
                "invalid value \"10\" for flag -timeout",
            ),
            (vec!["-timeout", "0"], "-timeout must be more than 0"),
            (vec!["-resendmax=0s"], "-resendmax must be more than 0"),
            (
                vec!["-resendtimeout", "0"],
                "-resendtimeout must be more than 0",
            ),
            (vec!["-broadcast=maybe"], "invalid boolean value"),
            (vec!["stray"], "unexpected argument"),
        ] {
            let e = Flags::parse(&args(&a)).expect_err("must fail");
            assert!(e.starts_with(want), "{a:?}: {e}");
        }
    }

    #[test]
    fn durations_as_go_reads_them() {
        for (s, ms) in [
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("250ms", 250),
            ("0", 0),
        ] {
            assert_eq!(parse_duration(s), Some(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "10", "s", "1x", "-1s"] {
            assert_eq!(parse_duration(s), None, "{s}");
        }
    }
}
