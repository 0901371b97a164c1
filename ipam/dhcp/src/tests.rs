//! The plugin side against no daemon, a stale socket, and a scripted daemon: no DHCP and
//! no root needed.

use std::collections::HashMap;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::protocol::{self, Reply, Request};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "rcni-dhcp-unit-{}-{}",
            std::process::id(),
            rcni_testkit::random_hex(4)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn conf(socket: &Path, version: &str) -> String {
    json!({
        "cniVersion": version,
        "name": "dhcp-net",
        "ipam": {"type": "dhcp", "daemonSocketPath": socket,
                 "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}]},
        "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]
    })
    .to_string()
}

fn run(command: &str, stdin: &str) -> (i32, Value) {
    let env: HashMap<&str, &str> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/pod"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web-0"),
    ]
    .into_iter()
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = rcni_skel::run_with(
        &crate::Dhcp,
        &env,
        &mut stdin.as_bytes(),
        &mut out,
        &mut err,
    );
    let doc = if out.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out).expect("stdout is JSON")
    };
    (status, doc)
}

/// A daemon that answers `replies` in order, one per connection, and returns what it got.
fn scripted_daemon(socket: &Path, replies: Vec<Reply>) -> std::thread::JoinHandle<Vec<Value>> {
    let listener = UnixListener::bind(socket).expect("bind");
    std::thread::spawn(move || {
        let mut got = Vec::new();
        for reply in replies {
            let (stream, _) = listener.accept().expect("accept");
            let req: Value = protocol::read_line(&stream).expect("request line");
            // Every request must also decode as the typed request.
            serde_json::from_value::<Request>(req.clone()).expect("typed request");
            got.push(req);
            protocol::write_line(&stream, &reply).expect("reply");
        }
        got
    })
}

#[test]
fn without_a_daemon_every_verb_fails_at_once_naming_the_socket() {
    let dir = TempDir::new();
    let socket = dir.0.join("missing.sock");
    for (command, code) in [
        ("ADD", 11),
        ("DEL", 11),
        ("CHECK", 11),
        ("GC", 11),
        ("STATUS", 50),
    ] {
        let start = Instant::now();
        let (status, doc) = run(command, &conf(&socket, "1.1.0"));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{command} was slow"
        );
        assert_eq!(status, 1, "{command}: {doc}");
        assert_eq!(doc["code"], code, "{command}: {doc}");
        let msg = doc["msg"].as_str().expect("msg");
        assert!(
            msg.starts_with("dhcp daemon is not running: cannot connect to ")
                && msg.contains(&socket.display().to_string()),
            "{command}: {msg}"
        );
        assert!(
            doc["details"]
                .as_str()
                .is_some_and(|d| d.contains("dhcp daemon")),
            "{doc}"
        );
    }
}

#[test]
fn a_stale_socket_file_is_a_daemon_not_running() {
    let dir = TempDir::new();
    let socket = dir.0.join("stale.sock");
    drop(UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());
    let (status, doc) = run("STATUS", &conf(&socket, "1.1.0"));
    assert_eq!(status, 1);
    assert_eq!(doc["code"], 50, "{doc}");
    assert!(
        doc["msg"]
            .as_str()
            .is_some_and(|m| m.contains("Connection refused")),
        "{doc}"
    );
}

#[test]
fn add_sends_allocate_and_prints_the_result_in_the_config_version() {
    let dir = TempDir::new();
    let socket = dir.0.join("d.sock");
    let result = json!({
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.9.0.50/24", "gateway": "10.9.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.9.0.1"}],
        "dns": {"nameservers": ["10.9.0.1"], "domain": "rcni.test"}
    });
    let daemon = scripted_daemon(&socket, vec![Reply::from_result(Ok(result))]);
    let (status, doc) = run("ADD", &conf(&socket, "0.4.0"));
    assert_eq!(status, 0, "{doc}");
    assert_eq!(
        doc,
        json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.9.0.50/24", "gateway": "10.9.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.9.0.1"}],
            "dns": {"nameservers": ["10.9.0.1"], "domain": "rcni.test"}
        })
    );
    let got = daemon.join().expect("daemon");
    assert_eq!(
        got,
        [json!({
            "version": 1, "method": "allocate",
            "containerId": "c1", "network": "dhcp-net", "ifname": "eth0",
            "netns": "/run/netns/pod",
            "options": {"request": [], "skipDefault": false,
                        "provide": [{"code": 12, "value": "web-0"}], "priority": null}
        })]
    );
}

#[test]
fn daemon_errors_pass_through_and_gc_sends_what_to_keep() {
    let dir = TempDir::new();
    let socket = dir.0.join("d.sock");
    let daemon = scripted_daemon(
        &socket,
        vec![
            Reply::from_result(Err(rcni_types::Error::try_again(
                "no DHCP lease for eth0 within 10s",
            ))),
            Reply::from_result(Ok(json!({"released": []}))),
            Reply::from_result(Ok(Value::Null)),
        ],
    );
    let (status, doc) = run("ADD", &conf(&socket, "1.1.0"));
    assert_eq!(status, 1);
    assert_eq!(
        doc,
        json!({"code": 11, "msg": "no DHCP lease for eth0 within 10s"})
    );
    let (status, doc) = run("GC", &conf(&socket, "1.1.0"));
    assert_eq!(status, 0, "{doc}");
    let (status, doc) = run("STATUS", &conf(&socket, "1.1.0"));
    assert_eq!(status, 0, "{doc}");
    let got = daemon.join().expect("daemon");
    assert_eq!(got[0]["method"], "allocate");
    assert_eq!(
        got[1],
        json!({"version": 1, "method": "gc", "network": "dhcp-net",
               "keep": [{"containerId": "keep", "ifname": "eth0"}]})
    );
    assert_eq!(got[2], json!({"version": 1, "method": "status"}));
}

#[test]
fn a_daemon_that_hangs_up_is_named() {
    let dir = TempDir::new();
    let socket = dir.0.join("d.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let t = std::thread::spawn(move || drop(listener.accept().expect("accept")));
    let (status, doc) = run("DEL", &conf(&socket, "1.1.0"));
    t.join().expect("thread");
    assert_eq!(status, 1);
    assert_eq!(doc["code"], 11, "{doc}");
    assert!(
        doc["msg"]
            .as_str()
            .is_some_and(|m| m.contains("did not answer release")),
        "{doc}"
    );
}
