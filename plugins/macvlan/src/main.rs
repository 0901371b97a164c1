fn main() {
    rcni_skel::run(&rcni_macvlan::Macvlan)
}
