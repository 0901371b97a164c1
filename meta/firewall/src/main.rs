fn main() {
    rcni_skel::run(&rcni_firewall_plugin::Firewall)
}
