//! The `host-local` binary: the plugin behind the CNI dispatcher.
fn main() {
    rcni_skel::run(&rcni_host_local::HostLocal)
}
