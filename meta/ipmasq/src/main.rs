fn main() {
    rcni_skel::run(&rcni_ipmasq::IpMasq)
}
