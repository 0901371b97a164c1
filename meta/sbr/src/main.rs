fn main() {
    rcni_skel::run(&rcni_sbr::Sbr)
}
