fn main() {
    rcni_skel::run(&rcni_loopback::Loopback)
}
