//! A stand-in IPAM plugin for unit tests of interface plugins (dummy, vlan): a shell
//! script named [`NAME`] that logs the verbs it runs and answers ADD with 10.1.2.3/24
//! (gateway 10.1.2.1), a route to 10.9.0.0/16 and the nameserver 10.1.2.53.
//!
//! Put [`dir`] on the request's CNI_PATH, give each test a container id unique to the
//! process (the log is per container id), and read what ran with [`log`].

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The plugin's name: the `ipam.type` a test config names.
pub const NAME: &str = "fake-ipam";

/// The directory holding the script (under the workspace's `target/`). Written once per
/// process, before any test runs it: a script still open for writing in one thread when
/// another forks could not be executed.
///
/// # Panics
/// The script cannot be written.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/rcni-fake-ipam");
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let result = serde_json::json!({"cniVersion": "1.0.0",
            "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
            "routes": [{"dst": "10.9.0.0/16"}],
            "dns": {"nameservers": ["10.1.2.53"]}});
        // Replaced by a rename, so a concurrent run never sees a half-written script.
        let temp = dir.join(format!("{NAME}.{}", std::process::id()));
        std::fs::write(
            &temp,
            format!(
                "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND\" >>\"$(dirname \"$0\")/log.$CNI_CONTAINERID\"\n\
                 [ \"$CNI_COMMAND\" = ADD ] && echo '{result}'\nexit 0\n"
            ),
        )
        .expect("script");
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::rename(&temp, dir.join(NAME)).expect("rename");
        dir
    })
}

/// The verbs the plugin ran for `container`, one a line (`"ADD\nDEL\n"`), read once: the
/// log is removed.
#[must_use]
pub fn log(container: &str) -> String {
    let log = dir().join(format!("log.{container}"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    text
}
