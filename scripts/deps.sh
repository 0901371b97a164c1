#!/usr/bin/env bash
# Installs, with apt-get, what the demo and the tests need and a fresh Debian machine lacks:
# iproute2, iptables, nftables, ping, dnsmasq (the DHCP server of the dhcp tests), the Go
# reference plugins (the interop peers in
# /usr/lib/cni), Go and libcni's sources (the libcni test driver), qemu, busybox and cpio
# (the VM test bed, scripts/vm-test.sh), strace and time (for the benchmark), firewalld
# with a D-Bus daemon and busctl (the firewall plugin's firewalld backend), and
# systemd-socket-activate (the dhcp daemon started by socket activation). Installs
# nothing already present.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have iptables-restore || need+=(iptables)
have nft || need+=(nftables)
have ping || need+=(iputils-ping)
have dnsmasq || need+=(dnsmasq-base)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
have go || need+=(golang-go)
[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] || need+=(golang-github-appc-cni-dev)
have qemu-system-x86_64 || need+=(qemu-system-x86)
have busybox || need+=(busybox-static)
have cpio || need+=(cpio)
[ -x /usr/bin/strace ] || need+=(strace)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/sbin/firewalld ] || need+=(firewalld)
have dbus-daemon || need+=(dbus-daemon)
{ have busctl && have systemd-socket-activate; } || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! have cargo; then
  echo "deps: cargo is missing: install a Rust toolchain (https://rustup.rs) first" >&2
  exit 1
fi
