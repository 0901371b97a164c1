fn main() {
    rcni_skel::run(&rcni_dummy::Dummy)
}
