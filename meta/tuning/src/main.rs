fn main() {
    rcni_skel::run(&rcni_tuning::Tuning::default())
}
