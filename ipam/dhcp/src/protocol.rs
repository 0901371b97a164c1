//! The wire protocol between the `dhcp` plugin and `dhcp daemon` (documented for people
//! in `ipam/dhcp/README.md`, "Wire protocol").
//!
//! One request per connection on the daemon's unix stream socket: the plugin writes one
//! JSON document on one line, the daemon answers with one JSON document on one line and
//! closes. Both carry `"version": 1`; a daemon refuses versions it does not speak with an
//! error naming both, so a plugin and a daemon from different releases fail clearly.
//!
//! The Go daemon speaks gob-encoded `net/rpc` over HTTP instead; neither side talks to the
//! other implementation (reference §3.10), so ship both halves together.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rcni_types::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The longest line either side reads (a result with many routes is a few KiB).
pub const MAX_LINE: u64 = 1 << 20;

/// One lease is held per attachment: container, network and interface (Go's clientID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseKey {
    pub container_id: String,
    pub network: String,
    pub ifname: String,
}

impl LeaseKey {
    /// The reference's client identifier `containerID/netName/ifName`, cut to 254 bytes
    /// (RFC 2132 option lengths are one octet). It names the lease in logs and state, and
    /// is sent as DHCP option 61 (type 0) unless the config provides its own.
    #[must_use]
    pub fn client_id(&self) -> String {
        let mut id = format!("{}/{}/{}", self.container_id, self.network, self.ifname);
        if id.len() > 254 {
            let mut cut = 254;
            while !id.is_char_boundary(cut) {
                cut -= 1;
            }
            id.truncate(cut);
        }
        id
    }
}

/// A DHCP option the client sends with its own value (`provide`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvidedOption {
    pub code: u8,
    pub value: String,
}

/// What the client asks for and sends, decided by the plugin from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseOptions {
    /// Option codes for the parameter request list, besides the defaults.
    #[serde(default)]
    pub request: Vec<u8>,
    /// When true, only `request` is asked for (and the subnet mask, which the address
    /// needs), not the defaults.
    #[serde(default)]
    pub skip_default: bool,
    /// Options sent with a value (host name, client identifier).
    #[serde(default)]
    pub provide: Vec<ProvidedOption>,
    /// Metric for every route of the result.
    #[serde(default)]
    pub priority: Option<u32>,
}

/// ADD: get (or return the held) lease for `key`, obtained inside `netns` on `key.ifname`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocateArgs {
    #[serde(flatten)]
    pub key: LeaseKey,
    /// Absolute path of the container's network namespace.
    pub netns: String,
    #[serde(default)]
    pub options: LeaseOptions,
}

/// A (containerID, ifname) pair that GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeepAttachment {
    pub container_id: String,
    pub ifname: String,
}

/// GC: release every lease of `network` whose attachment is not in `keep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcArgs {
    pub network: String,
    pub keep: Vec<KeepAttachment>,
}

/// The methods, tagged by `method`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Call {
    /// Answer: the result (CNI 1.1.0 JSON: `ips`, `routes`, `dns`).
    Allocate(AllocateArgs),
    /// Answer: the held lease's result; an error when none is held or it expired.
    Check(LeaseKey),
    /// Answer: `null`. A lease not held is success (DEL is idempotent).
    Release(LeaseKey),
    /// Answer: `null`: the daemon is up and accepting.
    Status,
    /// Answer: `{"released": [clientID, ...]}`.
    Gc(GcArgs),
}

impl Call {
    /// The method name, for messages.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Call::Allocate(_) => "allocate",
            Call::Check(_) => "check",
            Call::Release(_) => "release",
            Call::Status => "status",
            Call::Gc(_) => "gc",
        }
    }
}

/// A request line: `{"version":1,"method":"...", ...arguments}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub call: Call,
}

/// The error half of a reply: a CNI error document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDoc {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl From<&Error> for ErrorDoc {
    fn from(e: &Error) -> ErrorDoc {
        ErrorDoc {
            code: e.code.number(),
            msg: e.msg.clone(),
            details: e.details.clone(),
        }
    }
}

impl From<ErrorDoc> for Error {
    fn from(d: ErrorDoc) -> Error {
        Error::new(Code::from_number(d.code), d.msg).with_details(d.details)
    }
}

/// A reply line: `{"version":1,"result":...}` or `{"version":1,"error":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDoc>,
}

impl Reply {
    #[must_use]
    pub fn from_result(r: Result<Value>) -> Reply {
        match r {
            Ok(v) => Reply {
                version: VERSION,
                result: Some(v),
                error: None,
            },
            Err(e) => Reply {
                version: VERSION,
                result: None,
                error: Some(ErrorDoc::from(&e)),
            },
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes and decodes it.
///
/// # Errors
/// I/O failure, end of stream before a line, a line too long, or JSON that is not a `T`.
pub fn read_line<T: serde::de::DeserializeOwned>(r: impl Read) -> std::io::Result<T> {
    let mut line = Vec::new();
    BufReader::new(r.take(MAX_LINE)).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            if line.is_empty() {
                "connection closed without a message".to_string()
            } else {
                format!("message not terminated by a newline within {MAX_LINE} bytes")
            },
        ));
    }
    serde_json::from_slice(&line).map_err(std::io::Error::other)
}

/// Writes `msg` as one line.
///
/// # Errors
/// I/O failure.
pub fn write_line<T: Serialize>(mut w: impl Write, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Why a call failed before the daemon answered it.
#[derive(Debug)]
pub enum CallError {
    /// Nothing accepts on the socket: no file, a stale file, not a socket, no permission.
    NotRunning(std::io::Error),
    /// Connected, but the exchange failed (timeout, closed, garbage).
    Exchange(std::io::Error),
    /// The daemon answered with an error.
    Daemon(Error),
}

/// The plugin's side of one exchange: connect, send `call`, read the answer. Synchronous
/// on purpose: the plugin starts no runtime.
///
/// # Errors
/// See [`CallError`].
pub fn call(socket: &Path, call: Call, timeout: Duration) -> Result<Value, CallError> {
    let stream = UnixStream::connect(socket).map_err(CallError::NotRunning)?;
    let exchange = || -> std::io::Result<Reply> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write_line(
            &stream,
            &Request {
                version: VERSION,
                call,
            },
        )?;
        read_line(&stream)
    };
    let reply = exchange().map_err(CallError::Exchange)?;
    if let Some(e) = reply.error {
        return Err(CallError::Daemon(e.into()));
    }
    Ok(reply.result.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key() -> LeaseKey {
        LeaseKey {
            container_id: "c1".into(),
            network: "net".into(),
            ifname: "eth0".into(),
        }
    }

    /// The documented shapes (README "Wire protocol"): changing them is a new version.
    #[test]
    fn requests_have_the_documented_shape() {
        let table = [
            (
                Call::Allocate(AllocateArgs {
                    key: key(),
                    netns: "/run/netns/x".into(),
                    options: LeaseOptions {
                        request: vec![121],
                        skip_default: false,
                        provide: vec![ProvidedOption {
                            code: 12,
                            value: "pod".into(),
                        }],
                        priority: Some(100),
                    },
                }),
                json!({"version":1,"method":"allocate","containerId":"c1","network":"net",
                       "ifname":"eth0","netns":"/run/netns/x",
                       "options":{"request":[121],"skipDefault":false,
                                  "provide":[{"code":12,"value":"pod"}],"priority":100}}),
            ),
            (
                Call::Check(key()),
                json!({"version":1,"method":"check","containerId":"c1","network":"net","ifname":"eth0"}),
            ),
            (
                Call::Release(key()),
                json!({"version":1,"method":"release","containerId":"c1","network":"net","ifname":"eth0"}),
            ),
            (Call::Status, json!({"version":1,"method":"status"})),
            (
                Call::Gc(GcArgs {
                    network: "net".into(),
                    keep: vec![KeepAttachment {
                        container_id: "c1".into(),
                        ifname: "eth0".into(),
                    }],
                }),
                json!({"version":1,"method":"gc","network":"net",
                       "keep":[{"containerId":"c1","ifname":"eth0"}]}),
            ),
        ];
        for (call, want) in table {
            let req = Request {
                version: VERSION,
                call,
            };
            assert_eq!(serde_json::to_value(&req).expect("encodes"), want);
            let back: Request = serde_json::from_value(want).expect("decodes");
            assert_eq!(back, req);
        }
    }

    #[test]
    fn replies_carry_a_result_or_a_cni_error() {
        let ok = Reply::from_result(Ok(json!({"ips": []})));
        assert_eq!(
            serde_json::to_value(&ok).expect("encodes"),
            json!({"version":1,"result":{"ips":[]}})
        );
        let err = Reply::from_result(Err(Error::try_again("no offer").with_details("eth0")));
        assert_eq!(
            serde_json::to_value(&err).expect("encodes"),
            json!({"version":1,"error":{"code":11,"msg":"no offer","details":"eth0"}})
        );
    }

    #[test]
    fn client_id_is_the_reference_one_cut_to_254_bytes() {
        assert_eq!(key().client_id(), "c1/net/eth0");
        let long = LeaseKey {
            container_id: "a".repeat(300),
            ..key()
        };
        assert_eq!(long.client_id().len(), 254);
    }

    #[test]
    fn lines_must_end_and_fit() {
        let e = read_line::<Value>(&b"{\"a\":1}"[..]).expect_err("no newline");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let e = read_line::<Value>(&b""[..]).expect_err("empty");
        assert!(e.to_string().contains("closed"), "{e}");
        let v: Value = read_line(&b"{\"a\":1}\n"[..]).expect("a line");
        assert_eq!(v, json!({"a":1}));
    }
}
