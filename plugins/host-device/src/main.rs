fn main() {
    rcni_skel::run(&rcni_host_device::HostDevice)
}
