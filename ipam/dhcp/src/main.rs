//! The `dhcp` binary: the IPAM plugin, or with `daemon` as first argument the lease daemon
//! (as the reference's one binary with two roles).
fn main() {
    #[cfg(feature = "daemon")]
    if std::env::args_os().nth(1).is_some_and(|a| a == "daemon") {
        std::process::exit(rcni_dhcp::daemon::main(std::env::args().skip(2).collect()));
    }
    rcni_skel::run(&rcni_dhcp::Dhcp)
}
