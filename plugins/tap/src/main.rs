fn main() {
    rcni_skel::run(&rcni_tap::Tap)
}
