//! `cni`: dispatches on the basename of argv[0]; `cni <plugin>`, `cni --list` and
//! `cni --version` for people; `dhcp daemon` (or `cni dhcp daemon`) runs the lease daemon.

use std::path::Path;

fn main() {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let called_as = Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = if called_as == "cni" {
        match args.next().as_deref() {
            Some("--version") => {
                println!("rcni {}", env!("CARGO_PKG_VERSION"));
                return;
            }
            Some("--list") | None => {
                for (name, _) in rcni_bundle::PLUGINS {
                    println!("{name}");
                }
                return;
            }
            Some(other) => other.to_string(),
        }
    } else {
        called_as.to_string()
    };
    // The dhcp binary's second role, as the separate binary has it: `dhcp daemon ...`.
    if name == "dhcp" {
        let mut rest = args.peekable();
        if rest.peek().is_some_and(|a| a == "daemon") {
            std::process::exit(rcni_dhcp::daemon::main(rest.skip(1).collect()));
        }
    }
    // A delegate (IPAM) on CNI_PATH that is this executable runs in this process.
    rcni_invoke::run_own_delegates_in_process(rcni_bundle::find);
    match rcni_bundle::find(&name) {
        Some(plugin) => rcni_skel::run(plugin.as_ref()),
        None => {
            eprintln!("cni: no plugin named {name:?} in this bundle (cni --list shows them)");
            std::process::exit(2);
        }
    }
}
