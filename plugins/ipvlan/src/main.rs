fn main() {
    rcni_skel::run(&rcni_ipvlan::Ipvlan)
}
