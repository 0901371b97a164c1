fn main() {
    rcni_skel::run(&rcni_portmap::Portmap)
}
