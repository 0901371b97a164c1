#!/usr/bin/env bash
# Runs test binaries of this workspace inside a VM whose kernel has what this machine's
# kernel lacks (ipvlan, vlan, dummy, vrf, bridge VLAN filtering), and reports their results
# as on the host, with their exit status.
#
# Usage: scripts/vm-test.sh [OPTIONS] [PATTERN] [-- ARGS FOR THE TEST BINARIES]
#   PATTERN            extended regex on the test target names (default: all), e.g. vm_smoke
#   -p, --package PKG  the package whose test binaries run (default: rcni-integration)
#   -t, --timeout SECS whole-run limit, boot included (default 600, or $RCNI_VM_TIMEOUT)
#   --build-release    run `cargo build --release --bins` first (done anyway when
#                      target/<triple>/release has no binaries)
#   -h, --help
# Example: scripts/vm-test.sh vm_smoke -- --include-ignored
# Environment: RCNI_VM_TIMEOUT, RCNI_VM_MEMORY (MiB, default 1024), RCNI_VM_TEST_THREADS
# (default 2), RCNI_VM_KERNEL_PACKAGE (default linux-image-cloud-amd64). RUST_* and RCNI_*
# variables are passed to the tests; RCNI_BIN_DIR is set to the plugins in the VM.
# RCNI_VM_KEEP=1 keeps the run's directory (initramfs, console log, reports).
#
# What it does:
#  1. installs what it needs with apt-get when missing (qemu-system-x86, busybox-static,
#     cpio, iproute2, iptables, nftables, iputils-ping);
#  2. fetches Debian's cloud kernel with `apt-get download` and unpacks it (no install)
#     into target/vm/kernel/ (once);
#  3. builds the base initramfs target/vm/base.cpio (once, again when its inputs change):
#     busybox, ip/bridge/tc, ping, iptables-nft, nft with their libraries, the Go reference
#     plugins of /usr/lib/cni when installed, the kernel modules of scripts/vm/modules with
#     their dependencies (some loaded at boot, the rest on demand by the kernel through
#     busybox modprobe), and scripts/vm/init as /init;
#  4. builds the test binaries (`cargo test -p PKG --no-run`), and packs them with the
#     release plugins into a second cpio archive appended to the base;
#  5. boots it with `qemu-system-x86_64 -accel tcg` (KVM hangs in this nested VM) and
#     qboot (SeaBIOS when qboot is missing), no network device, 1 GiB, 2 CPUs: /init
#     loads the modules, runs each test binary with --test-threads=2 and the ARGS, its
#     output streamed here, reports each exit status on a second serial port, powers off;
#  6. prints a summary and exits 0 when every binary passed, the first failing binary's
#     status when one failed, 2 when the VM did not boot, did not finish or timed out.
# The console output of the last run stays in target/vm/console.log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HELPERS=$ROOT/scripts/vm
VM_DIR=$ROOT/target/vm
KERNEL_DIR=$VM_DIR/kernel
BASE_CPIO=$VM_DIR/base.cpio
# shellcheck source=scripts/target.sh
source "$ROOT/scripts/target.sh"
VM_BIN_DIR=/rcni/bin

TIMEOUT=${RCNI_VM_TIMEOUT:-600}
MEMORY=${RCNI_VM_MEMORY:-1024}
THREADS=${RCNI_VM_TEST_THREADS:-2}
KERNEL_PACKAGE=${RCNI_VM_KERNEL_PACKAGE:-linux-image-cloud-amd64}
PACKAGE=rcni-integration
PATTERN=
BUILD_RELEASE=false
TEST_ARGS=()
WORK=

log() { echo "vm-test: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
die() {
    log "$*"
    exit 2
}

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
        -h | --help) usage; exit 0 ;;
        -t | --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift 2 ;;
        -p | --package) PACKAGE=${2:?--package needs a name}; shift 2 ;;
        --build-release) BUILD_RELEASE=true; shift ;;
        --) shift; TEST_ARGS=("$@"); break ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [ -z "$PATTERN" ] || die "one PATTERN only (see --help)"
            PATTERN=$1
            shift
            ;;
        esac
    done
    [[ $TIMEOUT =~ ^[0-9]+$ ]] || die "timeout must be whole seconds: $TIMEOUT"
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    if [ -z "$WORK" ]; then return; fi
    if [ "${RCNI_VM_KEEP:-}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# --- 1. prerequisites -------------------------------------------------------------------

apt_install() {
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_prerequisites() {
    local need=()
    have qemu-system-x86_64 || need+=(qemu-system-x86)
    have busybox || need+=(busybox-static)
    have cpio || need+=(cpio)
    have ip || need+=(iproute2)
    have xtables-nft-multi || need+=(iptables)
    have nft || need+=(nftables)
    [ -x /usr/bin/ping ] || need+=(iputils-ping)
    if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
}

# --- 2. kernel ----------------------------------------------------------------------------

# Unpacks the newest kernel of $KERNEL_PACKAGE (a metapackage) into $KERNEL_DIR, once.
fetch_kernel() {
    if [ -f "$KERNEL_DIR/version" ]; then return; fi
    local image tmp
    image=$(apt-cache depends "$KERNEL_PACKAGE" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    if [ -z "$image" ]; then
        apt-get update -qq
        image=$(apt-cache depends "$KERNEL_PACKAGE" | awk '/Depends: linux-image-/ {print $2; exit}')
    fi
    [ -n "$image" ] || die "no kernel image package behind $KERNEL_PACKAGE"
    log "fetching kernel $image"
    tmp=$WORK/kernel
    mkdir "$tmp"
    # apt drops to the _apt user for downloads: let it write there.
    if id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
    (cd "$tmp" && apt-get download -q "$image" >/dev/null)
    dpkg-deb -x "$tmp"/*.deb "$tmp/root"
    local modules
    modules=$(echo "$tmp"/root/lib/modules/*)
    [ -d "$modules" ] || die "$image has no modules"
    busybox depmod -b "$tmp/root" "$(basename "$modules")"
    mkdir -p "$KERNEL_DIR"
    mv "$tmp/root/boot" "$tmp/root/lib" "$KERNEL_DIR/"
    echo "$image $(basename "$modules")" >"$KERNEL_DIR/version"
}

kernel_release() { awk '{print $2}' "$KERNEL_DIR/version"; }

# --- 3. base initramfs -------------------------------------------------------------------

# The tools of the host that go into the VM, by resolved path, and the names they go by.
TOOLS=(ip bridge tc ping nft xtables-nft-multi)
XTABLES_NAMES=(iptables ip6tables iptables-save ip6tables-save iptables-restore ip6tables-restore
    iptables-nft ip6tables-nft iptables-nft-save ip6tables-nft-save iptables-nft-restore
    ip6tables-nft-restore)
XTABLES_LIBS=/usr/lib/x86_64-linux-gnu/xtables
GO_PLUGINS=/usr/lib/cni

# What the base initramfs is made of: when this changes, it is rebuilt.
base_inputs() {
    cat "$KERNEL_DIR/version" "$HELPERS/init" "$HELPERS/modules"
    sed -n '/^# --- 3\./,/^# --- 4\./p' "$0"
    local t
    for t in busybox "${TOOLS[@]}"; do stat -L -c '%n %s %Y' "$(command -v "$t")"; done
    find "$XTABLES_LIBS" "$GO_PLUGINS" -type f -printf '%p %s %T@\n' 2>/dev/null | sort
}

# Copies a host file to the same path under $1, with the shared libraries it loads.
copy_with_libs() {
    local dest=$1 file=$2 lib
    install -D -m 0755 "$file" "$dest$file"
    # ldd prints "name => /path (addr)" and "/path (addr)" lines; static files have none.
    for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
        [ -e "$dest$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$dest$lib"
    done
}

# The modules to pack, as lines "load<TAB>path" (in load order, dependencies first) and
# "ship<TAB>path" (loaded on demand), paths relative to lib/modules/<release>. In
# scripts/vm/modules a name is a module to load at boot, a path ending in / a directory
# whose modules are shipped; dependencies come along.
resolve_modules() {
    local dir
    dir=$KERNEL_DIR/lib/modules/$(kernel_release)
    grep -v -e '^#' -e '^[[:space:]]*$' "$HELPERS/modules" | awk -v dir="$dir" '
        function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.(xz|zst|gz))?$/, "", p); gsub(/-/, "_", p); return p }
        # modules.dep lists every dependency of a module, each after the ones it needs.
        function closure(name, how,   i) {
            for (i = ndeps[name]; i >= 1; i--) add(dep[name, i], how)
            add(path[name], how)
        }
        function add(p, how) { if (!(p in seen)) { seen[p] = 1; print how "\t" p } }
        FILENAME == dir "/modules.dep" {
            key = $1; sub(/:$/, "", key); name = base(key)
            path[name] = key; ndeps[name] = NF - 1
            for (i = 2; i <= NF; i++) dep[name, i - 1] = $i
            order[++n] = name
            next
        }
        FILENAME == dir "/modules.builtin" { builtin[base($1)] = 1; next }
        $1 ~ /\/$/ { dirs[++ndirs] = $1; next }
        {
            name = base($1)
            if (name in builtin) next
            if (!(name in path)) { print "vm-test: no module " $1 > "/dev/stderr"; bad = 1; next }
            closure(name, "load")
        }
        END {
            for (d = 1; d <= ndirs; d++) {
                found = 0
                for (k = 1; k <= n; k++) {
                    if (index(path[order[k]], dirs[d]) == 1) { closure(order[k], "ship"); found = 1 }
                }
                if (!found) { print "vm-test: no modules in " dirs[d] > "/dev/stderr"; bad = 1 }
            }
            exit bad
        }
    ' "$dir/modules.dep" "$dir/modules.builtin" -
}

# Copies the modules, decompressed (busybox insmod reads plain .ko), writes the boot load
# order to /etc/rcni-vm/modules.order and modules.dep and modules.alias for the kernel's
# on-demand loading (through busybox modprobe).
pack_modules() {
    local root=$1 release src how m out
    release=$(kernel_release)
    src=$KERNEL_DIR/lib/modules/$release
    mkdir -p "$root/etc/rcni-vm"
    resolve_modules >"$WORK/modules.tsv" || die "scripts/vm/modules names unknown modules"
    if grep -q '\.xz$' "$WORK/modules.tsv" && ! have xz; then apt_install xz-utils; fi
    if grep -q '\.zst$' "$WORK/modules.tsv" && ! have zstd; then apt_install zstd; fi
    while IFS=$'\t' read -r how m; do
        out=${m%.xz}
        out=${out%.zst}
        out=${out%.gz}
        mkdir -p "$(dirname "$root/lib/modules/$release/$out")"
        case $m in
        *.ko.xz) xz -dc "$src/$m" ;;
        *.ko.zst) zstd -qdc "$src/$m" ;;
        *.ko.gz) gzip -dc "$src/$m" ;;
        *) cat "$src/$m" ;;
        esac >"$root/lib/modules/$release/$out"
        if [ "$how" = load ]; then echo "$out"; fi
    done <"$WORK/modules.tsv" >"$root/etc/rcni-vm/modules.order"
    cp "$src/modules.builtin" "$src/modules.order" "$root/lib/modules/$release/"
    busybox depmod -b "$root" "$release"
}

pack_tools() {
    local root=$1 t path applet
    copy_with_libs "$root" "$(readlink -f "$(command -v busybox)")"
    for t in "${TOOLS[@]}"; do
        path=$(readlink -f "$(command -v "$t")")
        copy_with_libs "$root" "$path"
        [ -e "$root/usr/sbin/$t" ] || [ -e "$root/usr/bin/$t" ] || ln -s "$path" "$root/usr/sbin/$t"
    done
    for t in "${XTABLES_NAMES[@]}"; do ln -sf xtables-nft-multi "$root/usr/sbin/$t"; done
    for path in "$XTABLES_LIBS"/*.so; do copy_with_libs "$root" "$path"; done
    # busybox for everything else, each applet where it usually is (the kernel runs
    # /sbin/modprobe); the real tools above win.
    for applet in $(busybox --list-full); do
        applet=usr/${applet#usr/}
        [ -e "$root/usr/bin/${applet##*/}" ] || [ -e "$root/usr/sbin/${applet##*/}" ] ||
            ln -s "$(readlink -f "$(command -v busybox)")" "$root/$applet"
    done
    if [ -d "$GO_PLUGINS" ]; then
        mkdir -p "$root$GO_PLUGINS"
        cp -a "$GO_PLUGINS"/. "$root$GO_PLUGINS/"
    fi
}

pack_etc() {
    local root=$1 f
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    printf '127.0.0.1 localhost rcni-vm\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    printf 'passwd: files\ngroup: files\nhosts: files\nprotocols: files\nservices: files\n' \
        >"$root/etc/nsswitch.conf"
    for f in /etc/protocols /etc/services /etc/ethertypes /etc/iproute2; do
        if [ -e "$f" ]; then cp -a "$f" "$root/etc/"; fi
    done
}

# Writes a newc cpio archive of directory $1 to $2, everything owned by root.
make_cpio() {
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
}

build_base() {
    local stamp root
    stamp=$(base_inputs | sha256sum | cut -d' ' -f1)
    if [ -f "$BASE_CPIO" ] && [ "$(cat "$BASE_CPIO.stamp" 2>/dev/null)" = "$stamp" ]; then return; fi
    log "building the base initramfs"
    root=$WORK/base
    mkdir -p "$root"/{usr/bin,usr/sbin,usr/lib,usr/lib64,dev,proc,sys,run,tmp,etc,root,rcni}
    ln -s usr/bin "$root/bin"
    ln -s usr/sbin "$root/sbin"
    ln -s usr/lib "$root/lib"
    ln -s usr/lib64 "$root/lib64"
    # The kernel opens /dev/console for /init before /init mounts devtmpfs.
    mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true
    install -m 0755 "$HELPERS/init" "$root/init"
    pack_tools "$root"
    pack_etc "$root"
    pack_modules "$root"
    make_cpio "$root" "$BASE_CPIO.new"
    mv "$BASE_CPIO.new" "$BASE_CPIO"
    echo "$stamp" >"$BASE_CPIO.stamp"
    rm -rf "$root"
}

# --- 4. test binaries ------------------------------------------------------------------

# Lines "name<TAB>package dir<TAB>executable<TAB>label" of the selected test binaries; the
# label is what cargo prints after "Running", e.g. "tests/vm_smoke.rs".
build_tests() {
    if $BUILD_RELEASE || ! find "$RELEASE_DIR" -maxdepth 1 -type f -perm -u+x 2>/dev/null | grep -q .; then
        log "building the release plugins"
        (cd "$ROOT" && cargo build --release --bins) || die "cargo could not build the release plugins"
    fi
    (cd "$ROOT" && cargo test -p "$PACKAGE" --no-run --message-format=json) >"$WORK/cargo.json" ||
        die "cargo could not build the tests of $PACKAGE"
    # Test binaries are the artifacts with an executable and a test profile (examples have
    # an executable too). JSON without jq: cargo prints one object per line, its fields in
    # a fixed order.
    grep '"profile":{[^}]*"test":true' "$WORK/cargo.json" | grep '"executable":"/' |
        sed -n 's|.*"manifest_path":"\([^"]*\)/Cargo.toml","target":{"kind":\["\([^"]*\)"[^}]*"name":"\([^"]*\)","src_path":"\([^"]*\)".*"executable":"\([^"]*\)".*|\3\t\1\t\5\t\2\t\4|p' |
        awk -F '\t' -v OFS='\t' -v pattern="$PATTERN" 'pattern == "" || $1 ~ pattern {
            src = substr($5, length($2) + 2)
            print $1, $2, $3, ($4 == "test" ? "" : "unittests ") src
        }' |
        LC_ALL=C sort
}

# Quotes a word for the VM's sh.
quote() {
    local q="'\\''"
    printf "'%s'" "${1//\'/$q}"
}

write_run_conf() {
    local args=() a v
    for a in "${TEST_ARGS[@]}"; do
        case $a in --test-threads*) THREADS= ;; esac
    done
    if [ -n "$THREADS" ]; then args+=("--test-threads=$THREADS"); fi
    args+=("${TEST_ARGS[@]}")
    printf 'set --'
    for a in "${args[@]}"; do printf ' %s' "$(quote "$a")"; done
    printf '\n'
    for v in $(compgen -e); do
        case $v in
        RCNI_VM_* | RCNI_BIN_DIR) ;;
        RUST_* | RCNI_*) printf 'export %s=%s\n' "$v" "$(quote "${!v}")" ;;
        esac
    done
    printf 'export RCNI_BIN_DIR=%s RCNI_VM=1\n' "$VM_BIN_DIR"
}

# Packs the test binaries, the release plugins and the run configuration into $2.
pack_tests() {
    local tests=$1 out=$2 root=$WORK/tests name dir exe label f
    mkdir -p "$root/rcni/tests" "$root$VM_BIN_DIR"
    while IFS=$'\t' read -r name dir exe label; do
        cp "$exe" "$root/rcni/tests/$name"
        printf '%s\t%s\t%s (%s)\n' "$name" "$dir" "$label" "${exe#"$ROOT/"}" >>"$root/rcni/tests.list"
        if [ -d "$dir/testdata" ] && [ ! -e "$root$dir/testdata" ]; then
            mkdir -p "$root$dir"
            cp -a "$dir/testdata" "$root$dir/"
        fi
    done <"$tests"
    for f in "$RELEASE_DIR"/*; do
        if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" "$root$VM_BIN_DIR/"; fi
    done
    write_run_conf >"$root/rcni/run.conf"
    make_cpio "$root" "$out"
}

# --- 5. the VM ---------------------------------------------------------------------------

now() { date +%s.%N; }

# $1 - $2, seconds with one decimal.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

# Boots the VM; its console streams to stdout and to $WORK/console.log, its reports go to
# $WORK/results. Returns timeout's status (124 when the time ran out).
run_vm() {
    local initrd=$1 release status=0 firmware=()
    release=$(kernel_release)
    # qboot boots a -kernel faster than SeaBIOS and prints nothing.
    if [ -f /usr/share/qemu/qboot.rom ]; then firmware=(-bios /usr/share/qemu/qboot.rom); fi
    log "booting $(awk '{print $1}' "$KERNEL_DIR/version") ($(du -m "$initrd" | cut -f1) MiB initramfs, timeout ${TIMEOUT}s)"
    : >"$WORK/results"
    timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
        -nographic -monitor none -no-reboot \
        -accel tcg -cpu max -m "$MEMORY" -smp 2 "${firmware[@]}" \
        -nic none \
        -serial stdio -serial "file:$WORK/results" \
        -kernel "$KERNEL_DIR/boot/vmlinuz-$release" -initrd "$initrd" \
        -append "console=ttyS0 quiet panic=-1 mitigations=off" \
        </dev/null 2>&1 | sed -u -e 's/\r$//' -e 's/\x1b\(c\|\[[0-9;?]*[A-Za-z]\)//g' \
            -e '/^\[ *[0-9.]*\] reboot: Power down$/d' |
        tee "$WORK/console.log" || status=$?
    cp "$WORK/console.log" "$VM_DIR/console.log"
    return "$status"
}

# --- 6. summary --------------------------------------------------------------------------

# Prints what the VM reported and exits with the combined status.
summarize() {
    local tests=$1 vm_status=$2 wall=$3 results=$WORK/results
    local status=0 init ready start name rc up line
    tr -d '\r' <"$results" >"$results.txt"
    echo
    ready=$(awk '$2 == "READY" {print $3}' "$results.txt")
    if [ -z "$ready" ]; then
        if [ "$vm_status" = 124 ]; then
            log "timed out after ${TIMEOUT}s before /init was ready: see target/vm/console.log"
        else
            log "the VM did not boot (qemu status $vm_status): see target/vm/console.log"
        fi
        exit 2
    fi
    while read -r line; do
        log "module not loaded: ${line#RCNI-VM MODULE-FAILED }"
        status=2
    done < <(grep 'MODULE-FAILED' "$results.txt" || true)
    init=$(awk '$2 == "INIT" {print $3}' "$results.txt")
    log "boot: /init started at ${init}s, modules loaded at ${ready}s (kernel uptime);" \
        "${wall}s in qemu in all"
    while IFS=$'\t' read -r name _ _; do
        start=$(awk -v n="$name" '$2 == "START" && $3 == n {print $4}' "$results.txt")
        read -r rc up < <(awk -v n="$name" '$2 == "EXIT" && $3 == n {print $4, $5}' "$results.txt") || true
        if [ -z "${rc:-}" ]; then
            log "$name: did not finish"
            status=2
        else
            log "$(printf '%s: %s (exit %s, %.1fs)' "$name" "$([ "$rc" = 0 ] && echo ok || echo FAILED)" "$rc" "$(elapsed "$up" "$start")")"
            if [ "$rc" != 0 ] && [ "$status" = 0 ]; then status=$rc; fi
        fi
        rc=
    done <"$tests"
    if ! grep -q 'RCNI-VM DONE' "$results.txt"; then
        if [ "$vm_status" = 124 ]; then log "timed out after ${TIMEOUT}s"; else log "the VM stopped before the end (qemu status $vm_status)"; fi
        status=2
    fi
    exit "$status"
}

main() {
    parse_args "$@"
    mkdir -p "$VM_DIR"
    WORK=$(mktemp -d "$VM_DIR/run.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    install_prerequisites
    build_tests >"$WORK/tests.tsv"
    [ -s "$WORK/tests.tsv" ] || die "no test binary of $PACKAGE matches '${PATTERN}'"
    (
        # One builder at a time for the shared cache under target/vm.
        flock 9
        fetch_kernel
        build_base
        pack_tests "$WORK/tests.tsv" "$WORK/tests.cpio"
        cat "$BASE_CPIO" "$WORK/tests.cpio" >"$WORK/initrd"
    ) 9>"$VM_DIR/lock"
    local t0 t1 vm_status=0
    t0=$(now)
    run_vm "$WORK/initrd" || vm_status=$?
    t1=$(now)
    summarize "$WORK/tests.tsv" "$vm_status" "$(elapsed "$t1" "$t0")"
}

main "$@"
