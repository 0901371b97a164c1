fn main() {
    rcni_skel::run(&rcni_vlan::Vlan)
}
