//! The dispatcher, run in-process with injected env and I/O.

use std::cell::RefCell;
use std::collections::HashMap;

use rcni_types::{Error, IpConfig, Result, Success};

use crate::{Command, Plugin, Request, run_with};

#[derive(Default)]
struct Recorder {
    calls: RefCell<Vec<(Command, String)>>,
    fail_with: Option<Error>,
}

impl Recorder {
    fn record(&self, req: &Request) -> Result<()> {
        self.calls
            .borrow_mut()
            .push((req.command, req.ifname.clone()));
        self.fail_with.clone().map_or(Ok(()), Err)
    }
}

impl Plugin for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn add(&self, req: &Request) -> Result<Success> {
        self.record(req)?;
        Ok(Success {
            cni_version: req.version().to_string(),
            ips: vec![IpConfig {
                interface: None,
                address: "10.1.2.3/24".parse().expect("literal"),
                gateway: "10.1.2.1".parse().ok(),
            }],
            ..Success::default()
        })
    }
    fn del(&self, req: &Request) -> Result<()> {
        self.record(req)
    }
    fn check(&self, req: &Request) -> Result<()> {
        self.record(req)
    }
}

struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn error(&self) -> serde_json::Value {
        assert_eq!(self.status, 1, "stdout: {}", self.stdout);
        serde_json::from_str(&self.stdout).expect("error document is JSON")
    }
}

fn invoke(plugin: &dyn Plugin, env: &[(&str, &str)], stdin: &str) -> Outcome {
    let env: HashMap<&str, &str> = env.iter().copied().collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run_with(plugin, &env, &mut stdin.as_bytes(), &mut out, &mut err);
    Outcome {
        status,
        stdout: String::from_utf8(out).expect("utf8"),
        stderr: String::from_utf8(err).expect("utf8"),
    }
}

const ADD_ENV: &[(&str, &str)] = &[
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "c1"),
    ("CNI_NETNS", "/nonexistent/netns"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_PATH", "/opt/cni/bin"),
];

fn with(
    base: &[(&'static str, &'static str)],
    key: &'static str,
    value: &'static str,
) -> Vec<(&'static str, &'static str)> {
    let mut env: Vec<_> = base.iter().copied().filter(|(k, _)| *k != key).collect();
    env.push((key, value));
    env
}

#[test]
fn no_command_prints_about_on_stderr() {
    let o = invoke(&Recorder::default(), &[], "");
    assert_eq!(o.status, 0);
    assert!(o.stdout.is_empty());
    assert!(
        o.stderr.starts_with("CNI recorder plugin v"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains(
        "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
    ));
}

#[test]
fn version_is_compact_json_with_newline() {
    let o = invoke(
        &Recorder::default(),
        &[("CNI_COMMAND", "VERSION")],
        "garbage",
    );
    assert_eq!(o.status, 0);
    assert_eq!(
        o.stdout,
        "{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.1.0\",\"0.2.0\",\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n"
    );
}

#[test]
fn env_errors_name_the_variables() {
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, u64, &'a str);
    let cases: &[Case] = &[
        (
            "unknown command",
            vec![("CNI_COMMAND", "FROB")],
            4,
            "unknown CNI_COMMAND: FROB",
        ),
        (
            "add without anything",
            vec![("CNI_COMMAND", "ADD")],
            4,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing",
        ),
        (
            "del needs no netns",
            vec![("CNI_COMMAND", "DEL"), ("CNI_CONTAINERID", "c")],
            4,
            "required env variables [CNI_IFNAME,CNI_PATH] missing",
        ),
        (
            "gc needs the path",
            vec![("CNI_COMMAND", "GC")],
            4,
            "required env variables [CNI_PATH] missing",
        ),
        (
            "bad container id",
            with(ADD_ENV, "CNI_CONTAINERID", "-x"),
            4,
            "invalid characters in containerID",
        ),
        (
            "long ifname",
            with(ADD_ENV, "CNI_IFNAME", "abcdefghijklmnop"),
            4,
            "interface name is too long",
        ),
        (
            "ifname with slash",
            with(ADD_ENV, "CNI_IFNAME", "a/b"),
            4,
            "interface name contains / or : or whitespace characters",
        ),
    ];
    for (name, env, code, msg) in cases {
        let o = invoke(
            &Recorder::default(),
            env,
            r#"{"cniVersion":"1.0.0","name":"n"}"#,
        );
        let doc = o.error();
        assert_eq!(doc["code"], *code, "{name}: {doc}");
        assert_eq!(doc["msg"], *msg, "{name}: {doc}");
    }
}

#[test]
fn config_errors_have_spec_codes() {
    let cases: &[(&str, &str, u64, &str)] = &[
        ("invalid json", "{", 6, ""),
        ("not an object", "[1]", 6, ""),
        (
            "missing name",
            r#"{"cniVersion":"1.0.0"}"#,
            7,
            "missing network name",
        ),
        (
            "bad name",
            r#"{"cniVersion":"1.0.0","name":"a b"}"#,
            7,
            "invalid characters found in network name",
        ),
        (
            "unknown version",
            r#"{"cniVersion":"9.9.9","name":"n"}"#,
            1,
            "incompatible CNI versions",
        ),
    ];
    for (name, stdin, code, msg) in cases {
        let plugin = Recorder::default();
        let doc = invoke(&plugin, ADD_ENV, stdin).error();
        assert_eq!(doc["code"], *code, "{name}: {doc}");
        if !msg.is_empty() {
            assert_eq!(doc["msg"], *msg, "{name}: {doc}");
        }
        assert!(
            plugin.calls.borrow().is_empty(),
            "{name}: the plugin must not run"
        );
    }
    let doc = invoke(
        &Recorder::default(),
        ADD_ENV,
        r#"{"cniVersion":"9.9.9","name":"n"}"#,
    )
    .error();
    assert_eq!(
        doc["details"],
        r#"config is "9.9.9", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
    );
}

#[test]
fn verbs_need_their_minimum_version() {
    let env = with(ADD_ENV, "CNI_COMMAND", "CHECK");
    let doc = invoke(
        &Recorder::default(),
        &env,
        r#"{"cniVersion":"0.3.1","name":"n"}"#,
    )
    .error();
    assert_eq!(
        (doc["code"].as_u64(), doc["msg"].as_str()),
        (Some(1), Some("config version does not allow CHECK"))
    );
    let env = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
    let doc = invoke(
        &Recorder::default(),
        &env,
        r#"{"cniVersion":"1.0.0","name":"n"}"#,
    )
    .error();
    assert_eq!(doc["msg"], "config version does not allow GC");
    let o = invoke(
        &Recorder::default(),
        &env,
        r#"{"cniVersion":"1.1.0","name":"n"}"#,
    );
    assert_eq!(
        (o.status, o.stdout.as_str()),
        (0, ""),
        "GC without a handler succeeds silently"
    );
}

#[test]
fn add_prints_the_result_in_the_config_version() {
    let plugin = Recorder::default();
    let o = invoke(&plugin, ADD_ENV, r#"{"cniVersion":"0.4.0","name":"n"}"#);
    assert_eq!(o.status, 0, "{}", o.stdout);
    assert_eq!(
        o.stdout,
        "{\n    \"cniVersion\": \"0.4.0\",\n    \"ips\": [\n        {\n            \"version\": \"4\",\n            \"address\": \"10.1.2.3/24\",\n            \"gateway\": \"10.1.2.1\"\n        }\n    ],\n    \"dns\": {}\n}"
    );
    assert_eq!(*plugin.calls.borrow(), [(Command::Add, "eth0".to_string())]);

    let o = invoke(&plugin, ADD_ENV, r#"{"name":"n"}"#);
    let doc: serde_json::Value = serde_json::from_str(&o.stdout).expect("json");
    assert_eq!(
        doc["ip4"]["ip"], "10.1.2.3/24",
        "missing cniVersion means 0.1.0: {doc}"
    );
}

#[test]
fn plugin_errors_pass_through_unchanged() {
    let plugin = Recorder {
        fail_with: Some(Error::not_available("no addresses left").with_details("range 0")),
        ..Recorder::default()
    };
    let doc = invoke(&plugin, ADD_ENV, r#"{"cniVersion":"1.0.0","name":"n"}"#).error();
    assert_eq!(
        doc,
        serde_json::json!({"code": 50, "msg": "no addresses left", "details": "range 0"})
    );
}

#[test]
fn own_netns_is_refused() {
    let env = with(ADD_ENV, "CNI_NETNS", "/proc/thread-self/ns/net");
    let plugin = Recorder::default();
    let doc = invoke(&plugin, &env, r#"{"cniVersion":"1.0.0","name":"n"}"#).error();
    assert_eq!(doc["code"], 8);
    assert!(plugin.calls.borrow().is_empty());
    let env = with(&env, "CNI_NETNS_OVERRIDE", "1");
    assert_eq!(
        invoke(&plugin, &env, r#"{"cniVersion":"1.0.0","name":"n"}"#).status,
        0
    );
}
