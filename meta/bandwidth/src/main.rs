fn main() {
    rcni_skel::run(&rcni_bandwidth::Bandwidth)
}
