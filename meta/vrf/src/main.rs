fn main() {
    rcni_skel::run(&rcni_vrf::Vrf)
}
