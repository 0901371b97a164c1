//! The plugin's configuration: the `ipam` keys of the reference's dhcp plugin
//! (`daemonSocketPath`, `request`, `provide`, `priority`), turned into what the daemon
//! needs ([`LeaseOptions`]). Every check happens here, before the daemon is asked.

use std::path::PathBuf;

use rcni_types::args::CniArgs;
use rcni_types::{Error, Result, json};
use serde::Deserialize;
use serde_json::Value;

use crate::protocol::{LeaseOptions, ProvidedOption};

/// The reference's socket, also what the systemd unit listens on.
pub const DEFAULT_SOCKET_PATH: &str = "/run/cni/dhcp.sock";

/// Option codes the client can send with a value. mozim builds every message itself and
/// takes only these two from its caller.
pub const PROVIDABLE: [u8; 2] = [option::HOST_NAME, option::CLIENT_IDENTIFIER];

/// DHCP option codes by the names of dhcp-options(5), as the reference accepts them.
pub mod option {
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTERS: u8 = 3;
    pub const DOMAIN_NAME_SERVERS: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const BROADCAST_ADDRESS: u8 = 28;
    pub const STATIC_ROUTES: u8 = 33;
    pub const NTP_SERVERS: u8 = 42;
    pub const VENDOR_CLASS_IDENTIFIER: u8 = 60;
    pub const CLIENT_IDENTIFIER: u8 = 61;
    pub const USER_CLASS: u8 = 77;
    pub const DOMAIN_SEARCH: u8 = 119;
    pub const CLASSLESS_STATIC_ROUTES: u8 = 121;

    /// Names first (the reference's six, then more from dhcp-options(5)).
    pub const NAMES: [(&str, u8); 14] = [
        ("dhcp-client-identifier", CLIENT_IDENTIFIER),
        ("subnet-mask", SUBNET_MASK),
        ("routers", ROUTERS),
        ("host-name", HOST_NAME),
        ("user-class", USER_CLASS),
        ("vendor-class-identifier", VENDOR_CLASS_IDENTIFIER),
        ("domain-name-servers", DOMAIN_NAME_SERVERS),
        ("domain-name", DOMAIN_NAME),
        ("interface-mtu", INTERFACE_MTU),
        ("broadcast-address", BROADCAST_ADDRESS),
        ("static-routes", STATIC_ROUTES),
        ("ntp-servers", NTP_SERVERS),
        ("domain-search", DOMAIN_SEARCH),
        ("classless-static-routes", CLASSLESS_STATIC_ROUTES),
    ];

    /// A name from [`NAMES`] or a decimal code 0-255.
    ///
    /// # Errors
    /// Neither, with the reference's wording.
    pub fn parse(s: &str) -> Result<u8, String> {
        if let Some((_, code)) = NAMES.iter().find(|(name, _)| *name == s) {
            return Ok(*code);
        }
        s.parse::<u8>()
            .map_err(|e| format!("Can not parse option {s:?}: {e}"))
    }

    /// The name of `code` when it has one, for messages.
    #[must_use]
    pub fn name(code: u8) -> String {
        NAMES
            .iter()
            .find(|(_, c)| *c == code)
            .map_or_else(|| code.to_string(), |(n, _)| format!("{code} ({n})"))
    }
}

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub socket_path: PathBuf,
    pub options: LeaseOptions,
}

#[derive(Deserialize, Default)]
struct NetDoc {
    #[serde(default)]
    ipam: Option<IpamDoc>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IpamDoc {
    #[serde(default)]
    daemon_socket_path: String,
    #[serde(default)]
    request: Vec<RequestDoc>,
    #[serde(default)]
    provide: Vec<ProvideDoc>,
    #[serde(default)]
    priority: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RequestDoc {
    #[serde(default)]
    skip_default: bool,
    #[serde(default)]
    option: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ProvideDoc {
    #[serde(default)]
    option: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    from_arg: String,
}

impl Conf {
    /// Reads the `ipam` section and resolves `provide` values from `CNI_ARGS`.
    ///
    /// # Errors
    /// Code 7 for a relative socket path or an option that is neither a name nor a code;
    /// code 2 for a `provide` option this daemon cannot send; 999 for keys of the wrong
    /// type (as the reference's `json.Unmarshal` failures).
    pub fn parse(config: &Value, args: &CniArgs) -> Result<Conf> {
        let doc: NetDoc = json::from_value(config)
            .map_err(|e| Error::internal(format!("error parsing netconf: {e}")))?;
        let ipam = doc.ipam.unwrap_or_default();

        let socket_path = if ipam.daemon_socket_path.is_empty() {
            PathBuf::from(DEFAULT_SOCKET_PATH)
        } else {
            PathBuf::from(&ipam.daemon_socket_path)
        };
        if !socket_path.is_absolute() {
            return Err(Error::invalid_config(format!(
                "daemonSocketPath {:?} is not an absolute path",
                ipam.daemon_socket_path
            )));
        }

        let mut options = LeaseOptions {
            priority: ipam.priority,
            ..LeaseOptions::default()
        };
        for r in &ipam.request {
            options.skip_default |= r.skip_default;
            let code = option::parse(&r.option).map_err(|e| {
                Error::invalid_config(format!("request: {e}"))
                    .with_details("use a name from dhcp-options(5) or a number 0-255")
            })?;
            if !options.request.contains(&code) {
                options.request.push(code);
            }
        }
        for p in &ipam.provide {
            let code = option::parse(&p.option)
                .map_err(|e| Error::invalid_config(format!("provide: {e}")))?;
            // As the reference: `fromArg` wins when CNI_ARGS has the key; empty is unset.
            let value = match args.get(&p.from_arg).filter(|_| !p.from_arg.is_empty()) {
                Some(v) => v.to_string(),
                None => p.value.clone(),
            };
            if value.len() > 255 {
                return Err(Error::invalid_config(format!(
                    "value too long for option {:?}: {} bytes, at most 255",
                    p.option,
                    value.len()
                )));
            }
            if value.is_empty() {
                continue;
            }
            if !PROVIDABLE.contains(&code) {
                return Err(Error::unsupported_field(format!(
                    "provide: option {} cannot be sent by this dhcp daemon",
                    option::name(code)
                ))
                .with_details("supported: host-name (12), dhcp-client-identifier (61)"));
            }
            options.provide.retain(|o| o.code != code);
            options.provide.push(ProvidedOption { code, value });
        }
        Ok(Conf {
            socket_path,
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use rcni_types::Code;
    use serde_json::json;

    use super::*;

    fn parse(ipam: Value, args: &str) -> Result<Conf> {
        Conf::parse(
            &json!({"cniVersion": "1.0.0", "name": "n", "ipam": ipam}),
            &CniArgs::read(args),
        )
    }

    #[test]
    fn defaults() {
        let c = parse(json!({"type": "dhcp"}), "").expect("valid");
        assert_eq!(c.socket_path, PathBuf::from(DEFAULT_SOCKET_PATH));
        assert_eq!(c.options, LeaseOptions::default());
    }

    #[test]
    fn keys_as_the_reference_reads_them() {
        let c = parse(
            json!({"type": "dhcp", "DaemonSocketPath": "/tmp/x.sock", "priority": 50,
                   "request": [{"option": "classless-static-routes"}, {"option": "42", "skipDefault": true}],
                   "provide": [{"option": "host-name", "value": "fixed", "fromArg": "K8S_POD_NAME"},
                               {"option": "61", "value": "my-id"}]}),
            "IgnoreUnknown=1;K8S_POD_NAME=web-0",
        )
        .expect("valid");
        assert_eq!(c.socket_path, PathBuf::from("/tmp/x.sock"));
        assert_eq!(
            c.options,
            LeaseOptions {
                request: vec![121, 42],
                skip_default: true,
                provide: vec![
                    ProvidedOption {
                        code: 12,
                        value: "web-0".into()
                    },
                    ProvidedOption {
                        code: 61,
                        value: "my-id".into()
                    },
                ],
                priority: Some(50),
            }
        );
        // Without the CNI_ARGS key the literal value is used.
        let c = parse(
            json!({"provide": [{"option": "host-name", "value": "fixed", "fromArg": "K8S_POD_NAME"}]}),
            "",
        )
        .expect("valid");
        assert_eq!(c.options.provide[0].value, "fixed");
    }

    #[test]
    fn bad_input_is_named() {
        let table = [
            (
                json!({"daemonSocketPath": "run/dhcp.sock"}),
                Code::InvalidConfig,
                "daemonSocketPath \"run/dhcp.sock\" is not an absolute path",
            ),
            (
                json!({"request": [{"option": "no-such-option"}]}),
                Code::InvalidConfig,
                "request: Can not parse option \"no-such-option\"",
            ),
            (
                json!({"provide": [{"option": "256", "value": "x"}]}),
                Code::InvalidConfig,
                "provide: Can not parse option \"256\"",
            ),
            (
                json!({"provide": [{"option": "user-class", "value": "x"}]}),
                Code::UnsupportedField,
                "provide: option 77 (user-class) cannot be sent by this dhcp daemon",
            ),
            (
                json!({"provide": [{"option": "host-name", "value": "x".repeat(256)}]}),
                Code::InvalidConfig,
                "value too long for option \"host-name\"",
            ),
            (
                json!({"priority": "high"}),
                Code::Internal,
                "error parsing netconf",
            ),
        ];
        for (ipam, code, msg) in table {
            let e = parse(ipam.clone(), "").expect_err("must fail");
            assert_eq!(e.code, code, "{ipam}: {e}");
            assert!(e.msg.starts_with(msg), "{ipam}: {e}");
        }
    }
}
