//! Requests for unit tests of a plugin's library, built as skel builds them from the
//! environment and stdin.

use rcni_skel::{Command, Request};
use rcni_types::args::CniArgs;
use serde_json::{Value, json};

/// A `command` request whose config is the minimal network config of a plugin of type
/// `kind` (`cniVersion` 1.0.0, `name` "net") with `keys`, the plugin's own, merged in;
/// CNI_CONTAINERID `ctr`, CNI_IFNAME `eth0`, and no CNI_NETNS, CNI_ARGS or CNI_PATH. Tests
/// set the fields they need on the result.
///
/// # Panics
/// `keys` break the common keys (`cniVersion`, `name`, `ipam`, `dns`).
#[must_use]
pub fn request(command: Command, kind: &str, keys: &Value) -> Request {
    let mut config = json!({"cniVersion": "1.0.0", "name": "net", "type": kind});
    if let (Some(doc), Some(keys)) = (config.as_object_mut(), keys.as_object()) {
        doc.extend(keys.clone());
    }
    let stdin = config.to_string().into_bytes();
    Request {
        command,
        container_id: "ctr".into(),
        netns: None,
        ifname: "eth0".into(),
        args: CniArgs::read(""),
        raw_args: String::new(),
        path: Vec::new(),
        net: serde_json::from_slice(&stdin).expect("network config"),
        stdin,
        config,
    }
}
