fn main() {
    rcni_skel::run(&rcni_bridge::Bridge)
}
