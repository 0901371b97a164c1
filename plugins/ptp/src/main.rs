fn main() {
    rcni_skel::run(&rcni_ptp::Ptp)
}
