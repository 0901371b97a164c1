//! `/proc/sys` reads and writes.
//!
//! `/proc/sys/net` follows the namespace of the calling *thread* when a file is opened, so a
//! write lands in whatever netns the thread is in at that moment: enter a container's
//! namespace with [`crate::NetNs::run`] to change its settings.

use std::io;
use std::path::PathBuf;

/// Where sysctl files live.
const PROC_SYS: &str = "/proc/sys";

/// The file of `key`: slash form (`net/ipv4/ip_forward`) is used as is; dotted form
/// (`net.ipv4.ip_forward`) is converted only when it has no slash, because interface
/// names may contain dots (`net/ipv4/conf/eth0.100/rp_filter`).
#[must_use]
pub fn path_of(key: &str) -> PathBuf {
    let key = key.trim_start_matches('/');
    if key.contains('/') {
        PathBuf::from(PROC_SYS).join(key)
    } else {
        PathBuf::from(PROC_SYS).join(key.replace('.', "/"))
    }
}

/// Reads `key` in the calling thread's namespace, without the trailing newline.
pub fn read(key: &str) -> io::Result<String> {
    let path = path_of(key);
    let value = std::fs::read_to_string(&path).map_err(|e| with_path(e, "reading", &path))?;
    Ok(value.trim_end_matches('\n').to_string())
}

/// Sets `key` to `value` in the calling thread's namespace, writing only when the value
/// differs: some writes have side effects even when unchanged (`ip_forward` resets every
/// per-interface IPv4 setting).
pub fn write(key: &str, value: &str) -> io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let path = path_of(key);
    // One open for both: a /proc/sys path walk is most of the cost. A file that cannot
    // be opened for writing (read-only /proc/sys, a read-only key) may still hold the
    // value already, which is success: the read-then-write path decides.
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    else {
        if read(key)?.trim() == value.trim() {
            return Ok(());
        }
        return std::fs::write(&path, value).map_err(|e| with_path(e, "writing", &path));
    };
    let mut current = String::new();
    file.read_to_string(&mut current)
        .map_err(|e| with_path(e, "reading", &path))?;
    if current.trim() == value.trim() {
        return Ok(());
    }
    file.write_all_at(value.as_bytes(), 0)
        .map_err(|e| with_path(e, "writing", &path))
}

/// Keeps the errno kind and names the file, as a bare "Permission denied" does not.
fn with_path(e: io::Error, what: &str, path: &std::path::Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_proc_sys_paths() {
        let cases = [
            ("net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"),
            ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward"),
            (
                "/net/ipv6/conf/all/forwarding",
                "/proc/sys/net/ipv6/conf/all/forwarding",
            ),
            (
                "net/ipv4/conf/eth0.100/rp_filter",
                "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
            ),
        ];
        for (key, want) in cases {
            assert_eq!(path_of(key), PathBuf::from(want), "{key}");
        }
    }

    #[test]
    fn read_trims_newline() {
        let v = read("kernel/ostype").expect("read kernel.ostype");
        assert_eq!(v, "Linux");
    }

    #[test]
    fn missing_key_is_not_found() {
        let e = read("net/ipv4/conf/rcni-nonexistent/rp_filter").expect_err("must fail");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(crate::is_missing(&e));
    }

    #[test]
    fn write_of_unchanged_value_does_not_write() {
        // kernel/ostype is read-only: a write would fail, so success proves none happened.
        write("kernel.ostype", "Linux").expect("unchanged value");
        assert!(write("kernel.ostype", "Plan9").is_err());
    }

    #[test]
    fn a_changed_value_is_written_and_a_missing_key_named() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        // A thread of its own in a namespace of its own: the host's settings stay as they are.
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let key = "net/ipv4/conf/lo/arp_notify";
            for value in ["1", "0", "1"] {
                write(key, value).expect("write");
                assert_eq!(read(key).expect("read"), value);
            }
            let e = write("net/ipv4/conf/rcni-nonexistent/arp_notify", "1").expect_err("missing");
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            assert!(e.to_string().contains("rcni-nonexistent"), "{e}");
        })
        .join()
        .expect("test thread");
    }
}
